//! Turning a byte stream into UTF-8 text chunk by chunk without ever splitting a character, so
//! every SSE event carries whole characters however the command's writes were cut.

use std::borrow::Cow;

/// Incremental UTF-8 decoder: an incomplete trailing sequence is held back until the next chunk
/// completes it; invalid bytes become U+FFFD, like a JavaScript `TextDecoder` in stream mode.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Decodes `bytes` after whatever was held back, returning every complete character.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        let input: Cow<'_, [u8]> = if self.pending.is_empty() {
            Cow::Borrowed(bytes)
        } else {
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(bytes);
            Cow::Owned(joined)
        };
        let mut text = String::with_capacity(input.len());
        let mut rest: &[u8] = &input;
        while !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    break;
                }
                Err(error) => {
                    let (valid, tail) = rest.split_at(error.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    match error.error_len() {
                        Some(invalid) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = tail.get(invalid..).unwrap_or_default();
                        }
                        None => {
                            self.pending = tail.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        text
    }

    /// Ends the stream: a sequence still held back can never complete, so it becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&pending).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::Utf8Decoder;

    proptest! {
        /// However a command's output is cut, the text is what decoding it whole gives: split
        /// characters are reassembled, invalid bytes replaced exactly once.
        #[test]
        fn any_cut_of_any_bytes_decodes_like_the_whole(
            bytes in prop_oneof![
                vec(any::<u8>(), 0..400),
                "\\PC{0,120}".prop_map(String::into_bytes),
            ],
            cuts in vec(any::<prop::sample::Index>(), 0..24),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut decoder = Utf8Decoder::default();
            let mut text = String::new();
            let mut start = 0;
            for point in points.into_iter().chain([bytes.len()]) {
                text.push_str(&decoder.decode(&bytes[start..point]));
                start = point;
            }
            text.push_str(&decoder.finish());
            prop_assert_eq!(text, String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn carries_a_split_character_over_to_the_next_chunk() {
        let mut decoder = Utf8Decoder::default();
        assert_eq!(decoder.decode(b"caf\xc3"), "caf");
        assert_eq!(decoder.decode(b"\xa9!"), "\u{e9}!");
        assert_eq!(decoder.finish(), "");
    }

    #[test]
    fn reassembles_a_four_byte_character_cut_in_three() {
        let mut decoder = Utf8Decoder::default();
        let crab = "\u{1f980}".as_bytes();
        assert_eq!(decoder.decode(&crab[..1]), "");
        assert_eq!(decoder.decode(&crab[1..3]), "");
        assert_eq!(decoder.decode(&crab[3..]), "\u{1f980}");
    }

    #[test]
    fn replaces_invalid_bytes_and_keeps_going() {
        let mut decoder = Utf8Decoder::default();
        assert_eq!(decoder.decode(b"a\xffb\xc3"), "a\u{fffd}b");
        assert_eq!(decoder.finish(), "\u{fffd}");
        assert_eq!(decoder.decode(b"ok"), "ok");
    }
}
