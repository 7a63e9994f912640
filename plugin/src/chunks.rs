//! Splitting output for `execute.log`: the host drops chunks longer than 1,000,000 characters
//! (JavaScript string length: UTF-16 code units), so long output is cut at character boundaries.

/// Longest chunk the host accepts, in UTF-16 code units.
pub const MAX_CHUNK_UNITS: usize = 1_000_000;

/// Cuts `text` into non-empty pieces of at most `max_units` UTF-16 code units each, never
/// splitting a character.
pub fn split_for_host(text: &str, max_units: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut units = 0;
    for (index, character) in text.char_indices() {
        let width = character.len_utf16();
        if units + width > max_units && index > start {
            pieces.push(&text[start..index]);
            start = index;
            units = 0;
        }
        units += width;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_respect_the_limit_in_utf16_units_and_rejoin_exactly() {
        let text = "ab😀cd€😀".repeat(3);
        for limit in 1..=8 {
            let pieces = split_for_host(&text, limit.max(2));
            assert_eq!(pieces.concat(), text, "limit {limit}");
            assert!(pieces.iter().all(|piece| !piece.is_empty()));
            assert!(
                pieces
                    .iter()
                    .all(|piece| piece.encode_utf16().count() <= limit.max(2)),
                "limit {limit}: {pieces:?}"
            );
        }
        assert!(split_for_host("", 10).is_empty());
        assert_eq!(split_for_host("short", MAX_CHUNK_UNITS), ["short"]);
    }
}
