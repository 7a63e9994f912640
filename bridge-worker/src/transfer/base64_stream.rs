//! Decoding a download's base64 as it arrives in chunks cut anywhere.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The sandbox's output was not base64: the download cannot be trusted and is failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sandbox's output is not valid base64 (near byte {offset}): the download is broken")]
pub struct Base64Error {
    /// Position in the encoded stream where decoding failed.
    pub offset: u64,
}

/// Decodes standard base64 (line breaks ignored) across chunk boundaries.
#[derive(Debug, Default)]
pub struct Base64Stream {
    /// The characters of an unfinished group, at most three outside [`Base64Stream::push`].
    carry: Vec<u8>,
    progress: Progress,
}

/// How far decoding got.
#[derive(Debug, Default)]
struct Progress {
    /// Characters decoded so far.
    consumed: u64,
    /// The last group decoded had padding: nothing may follow it.
    padded: bool,
}

impl Base64Stream {
    /// Takes the next text; returns the bytes of every whole 4-character group so far. A
    /// character outside the alphabet fails the stream at once, placed by the characters before
    /// it. A download's output is megabytes of base64 without line breaks, which is decoded where
    /// it is: the decoder checks the alphabet itself, and the text is only scanned character by
    /// character to place an error, or to drop line breaks.
    pub fn push(&mut self, text: &str) -> Result<Vec<u8>, Base64Error> {
        let mut text = text.as_bytes();
        let mut decoded = Vec::with_capacity(text.len() / 4 * 3 + 3);
        if memchr::memchr2(b'\n', b'\r', text).is_some() {
            if let Some(kept) = first_invalid(text) {
                return Err(Base64Error {
                    offset: self.progress.consumed + (self.carry.len() + kept) as u64,
                });
            }
            self.carry
                .extend(text.iter().filter(|&&byte| !is_break(byte)));
            text = &[];
        } else if !self.carry.is_empty() {
            // Complete the unfinished group, so that the rest is decoded where it is.
            let fill = (4 - self.carry.len()).min(text.len());
            self.carry.extend_from_slice(&text[..fill]);
            text = &text[fill..];
        }
        if !self.carry.is_empty() {
            let whole = self.progress.take_groups(&self.carry, &mut decoded)?;
            self.carry.drain(..whole);
        }
        if !text.is_empty() {
            let whole = self.progress.take_groups(text, &mut decoded)?;
            self.carry.extend_from_slice(&text[whole..]);
        }
        Ok(decoded)
    }

    /// Call at the end: an error if characters of an unfinished group are left over.
    pub fn finish(&self) -> Result<(), Base64Error> {
        if self.carry.is_empty() {
            Ok(())
        } else {
            Err(self.progress.error())
        }
    }
}

impl Progress {
    /// Decodes the whole groups of `pending` (text without line breaks that follows what was
    /// decoded so far) onto `out`, and checks the characters after them; returns how many
    /// characters were decoded.
    fn take_groups(&mut self, pending: &[u8], out: &mut Vec<u8>) -> Result<usize, Base64Error> {
        let whole = pending.len() - pending.len() % 4;
        self.decode(&pending[..whole], out).map_err(|error| {
            first_invalid(pending).map_or(error, |kept| Base64Error {
                offset: self.consumed + kept as u64,
            })
        })?;
        if let Some(kept) = first_invalid(&pending[whole..]) {
            return Err(Base64Error {
                offset: self.consumed + kept as u64,
            });
        }
        Ok(whole)
    }

    /// Decodes whole groups onto `out`.
    fn decode(&mut self, groups: &[u8], out: &mut Vec<u8>) -> Result<(), Base64Error> {
        if groups.is_empty() {
            return Ok(());
        }
        if self.padded {
            return Err(self.error());
        }
        STANDARD.decode_vec(groups, out).map_err(|_| self.error())?;
        self.padded = groups.ends_with(b"=");
        self.consumed += groups.len() as u64;
        Ok(())
    }

    fn error(&self) -> Base64Error {
        Base64Error {
            offset: self.consumed,
        }
    }
}

/// The first byte of `text` outside the alphabet (a non-ASCII character's first byte is), as the
/// number of characters before it that are not line breaks.
fn first_invalid(text: &[u8]) -> Option<usize> {
    let mut kept = 0;
    for &byte in text {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => kept += 1,
            b'\n' | b'\r' => {}
            _ => return Some(kept),
        }
    }
    None
}

fn is_break(byte: u8) -> bool {
    matches!(byte, b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Properties, run natively (proptest is not built for wasm).
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        /// Feeds `text` cut at the given points (on character boundaries, as the container's text
        /// arrives) and returns the bytes, or the error that stopped it.
        fn decode_at(text: &str, cuts: &[prop::sample::Index]) -> Result<Vec<u8>, Base64Error> {
            let boundaries: Vec<usize> = (0..=text.len())
                .filter(|&index| text.is_char_boundary(index))
                .collect();
            let mut points: Vec<usize> = cuts.iter().map(|cut| *cut.get(&boundaries)).collect();
            points.sort_unstable();
            let mut stream = Base64Stream::default();
            let mut out = Vec::new();
            let mut start = 0;
            for point in points.into_iter().chain([text.len()]) {
                out.extend(stream.push(&text[start..point])?);
                start = point;
            }
            stream.finish()?;
            Ok(out)
        }

        proptest! {
            #[test]
            fn any_cut_of_valid_base64_decodes_to_its_bytes(
                data in vec(any::<u8>(), 0..600),
                wrap in 1usize..100,
                cuts in vec(any::<prop::sample::Index>(), 0..20),
            ) {
                let encoded = STANDARD.encode(&data);
                let wrapped: String = encoded
                    .as_bytes()
                    .chunks(wrap)
                    .map(|line| format!("{}\n", String::from_utf8_lossy(line)))
                    .collect();
                prop_assert_eq!(decode_at(&wrapped, &cuts), Ok(data));
            }

            #[test]
            fn any_text_is_decoded_or_refused_without_panicking(
                text in "\\PC{0,200}",
                cuts in vec(any::<prop::sample::Index>(), 0..20),
            ) {
                let whole = decode_at(&text, &[]);
                let cut = decode_at(&text, &cuts);
                prop_assert_eq!(whole.is_ok(), cut.is_ok(), "{:?} vs {:?}", whole, cut);
            }
        }
    }

    fn decode_in_pieces(encoded: &str, piece: usize) -> Result<Vec<u8>, Base64Error> {
        let mut stream = Base64Stream::default();
        let mut out = Vec::new();
        let bytes = encoded.as_bytes();
        for chunk in bytes.chunks(piece) {
            out.extend(stream.push(std::str::from_utf8(chunk).expect("ascii"))?);
        }
        stream.finish()?;
        Ok(out)
    }

    #[test]
    fn any_split_decodes_to_the_same_bytes() {
        for length in [0, 1, 2, 3, 4, 100, 1001] {
            let data: Vec<u8> = (0..=255u8).rev().cycle().take(length).collect();
            let encoded = STANDARD.encode(&data);
            for piece in [1, 2, 3, 5, 64, 4096] {
                assert_eq!(
                    decode_in_pieces(&encoded, piece).expect("valid"),
                    data,
                    "{length} bytes in pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn wrapped_lines_are_accepted() {
        let data = vec![42u8; 200];
        let encoded = STANDARD.encode(&data);
        let wrapped: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|line| format!("{}\n", std::str::from_utf8(line).expect("ascii")))
            .collect();
        assert_eq!(decode_in_pieces(&wrapped, 13).expect("valid"), data);
    }

    #[test]
    fn a_bad_character_is_placed_by_the_characters_before_it_whatever_the_cuts() {
        for piece in [1, 2, 3, 5, 100] {
            assert_eq!(
                decode_in_pieces("QUJD\nQU!D", piece),
                Err(Base64Error { offset: 6 }),
                "in pieces of {piece}"
            );
        }
        assert_eq!(
            decode_in_pieces("QUJDQU\u{e9}D", 100),
            Err(Base64Error { offset: 6 }),
            "a non-ASCII character"
        );
    }

    #[test]
    fn garbage_and_cut_streams_fail() {
        assert!(decode_in_pieces("not base64!", 3).is_err());
        assert!(decode_in_pieces("QUJD", 4).is_ok());
        assert_eq!(decode_in_pieces("QUJDR", 2), Err(Base64Error { offset: 4 }));
        assert!(
            decode_in_pieces("QQ==QUJD", 4).is_err(),
            "nothing may follow padding"
        );
    }
}
