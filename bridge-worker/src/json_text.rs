//! Output text kept as a JSON string literal, so the bridge can forward a command's output from the
//! container's events to its own without decoding and re-encoding every byte.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A JSON string literal (quotes included), valid JSON by construction.
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for JsonText {}

impl JsonText {
    /// Encodes `text` (the container does this in production; tests build events with it).
    #[cfg(test)]
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(text).map(Self)
    }

    /// The literal, quotes included.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// The literal without its quotes: the encoded text.
    pub fn inner(&self) -> &str {
        let literal = self.as_json();
        literal.get(1..literal.len() - 1).unwrap_or_default()
    }

    /// A literal from encoded text (as [`Self::inner`] returns it); `None` unless it is valid.
    pub fn from_inner(inner: &str) -> Option<Self> {
        RawValue::from_string(format!("\"{inner}\""))
            .ok()
            .filter(|raw| raw.get().starts_with('"'))
            .map(Self)
    }

    /// Whether it encodes the empty string.
    pub fn is_empty(&self) -> bool {
        self.as_json() == "\"\""
    }

    /// The decoded text.
    pub fn decode(&self) -> String {
        serde_json::from_str(self.as_json()).unwrap_or_default()
    }

    /// Length in bytes of the decoded UTF-8 text, computed from the escapes without decoding.
    pub fn decoded_len(&self) -> usize {
        let literal = self.as_json().as_bytes();
        let body = &literal[1..literal.len().saturating_sub(1).max(1)];
        let mut length = 0;
        let mut index = 0;
        while index < body.len() {
            // Runs without escapes are most of any output: count them at once.
            let Some(run) = memchr::memchr(b'\\', &body[index..]) else {
                length += body.len() - index;
                break;
            };
            length += run;
            index += run;
            match body.get(index + 1) {
                Some(b'u') => {
                    let unit = hex_unit(body, index + 2);
                    let low = (body.get(index + 6) == Some(&b'\\')
                        && body.get(index + 7) == Some(&b'u'))
                    .then(|| hex_unit(body, index + 8))
                    .flatten();
                    match (unit, low) {
                        (Some(0xD800..=0xDBFF), Some(0xDC00..=0xDFFF)) => {
                            length += 4;
                            index += 12;
                        }
                        (Some(unit), _) => {
                            length += char::from_u32(unit).map_or(3, char::len_utf8);
                            index += 6;
                        }
                        (None, _) => {
                            index += 2;
                        }
                    }
                }
                _ => {
                    length += 1;
                    index += 2;
                }
            }
        }
        length
    }

    /// The first `max_bytes` bytes of the decoded text, cut at a character boundary.
    pub fn decode_prefix(&self, max_bytes: usize) -> String {
        let mut text = self.decode();
        if text.len() > max_bytes {
            let mut end = max_bytes;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

fn hex_unit(bytes: &[u8], start: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(start..start + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

impl fmt::Debug for JsonText {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_json())
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if raw.get().starts_with('"') {
            Ok(Self(raw))
        } else {
            Err(D::Error::custom("expected a JSON string"))
        }
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Properties, run natively (proptest is not built for wasm).
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// `text` as a literal with every character escaped as `\uXXXX` (surrogate pairs beyond
        /// the BMP), the other spelling a JSON encoder may use.
        fn escaped_everywhere(text: &str) -> JsonText {
            let inner: String = text
                .encode_utf16()
                .map(|unit| format!("\\u{unit:04x}"))
                .collect();
            JsonText::from_inner(&inner).expect("valid escapes")
        }

        proptest! {
            #[test]
            fn the_decoded_length_and_any_prefix_agree_with_decoding_in_either_spelling(
                text in "\\PC{0,80}|[\\x00-\\x1f\"\\\\/]{0,20}",
                max_bytes in 0usize..400,
            ) {
                for literal in [JsonText::from_text(&text).expect("encodable"), escaped_everywhere(&text)] {
                    prop_assert_eq!(literal.decode(), text.clone());
                    prop_assert_eq!(literal.decoded_len(), text.len());
                    let prefix = literal.decode_prefix(max_bytes);
                    prop_assert!(text.starts_with(&prefix) && prefix.len() <= max_bytes);
                    let next = text[prefix.len()..].chars().next();
                    prop_assert!(next.is_none_or(|next| prefix.len() + next.len_utf8() > max_bytes));
                }
            }
        }
    }

    #[test]
    fn decoded_length_matches_real_decoding() {
        for text in [
            "",
            "plain",
            "line\nbreak\t\"quoted\" back\\slash",
            "ünïcødé ✓ 日本 😀",
            "\u{0}\u{1f}\u{7f}",
            "</script>",
        ] {
            let encoded = JsonText::from_text(text).expect("encodable");
            assert_eq!(encoded.decoded_len(), text.len(), "{text:?}");
            assert_eq!(encoded.decode(), text);
        }
        let escaped: JsonText = serde_json::from_str(r#""\u00e9\ud83d\ude00\/x""#).expect("valid");
        assert_eq!(escaped.decoded_len(), "é😀/x".len());
        assert_eq!(escaped.decode(), "é😀/x");
    }

    #[test]
    fn encoded_text_splits_into_valid_literals() {
        let text = JsonText::from_text("a\n\"b\"").expect("encodable");
        assert_eq!(text.inner(), r#"a\n\"b\""#);
        let (left, right) = text.inner().split_at(3);
        let joined = JsonText::from_inner(left).expect("valid").decode()
            + &JsonText::from_inner(right).expect("valid").decode();
        assert_eq!(joined, "a\n\"b\"");
        assert!(JsonText::from_inner(r#"bad"quote"#).is_none());
        assert!(JsonText::from_inner(r"dangling\").is_none());
    }

    #[test]
    fn only_strings_are_accepted_and_they_stay_encoded() {
        assert!(serde_json::from_str::<JsonText>("12").is_err());
        let text: JsonText = serde_json::from_str(r#""a\nb""#).expect("valid");
        assert_eq!(text.as_json(), r#""a\nb""#);
        assert_eq!(
            serde_json::to_string(&text).expect("serialises"),
            r#""a\nb""#
        );
        assert!(JsonText::from_text("").expect("encodable").is_empty());
        assert_eq!(
            JsonText::from_text("aé✓")
                .expect("encodable")
                .decode_prefix(3),
            "aé"
        );
    }
}
