//! Recognising the end of a command in its own output streams.
//!
//! The container closes an execution's event stream only once every writer of the command's
//! pipes has closed them, so a process the command leaves running in the background with those
//! pipes inherited (`dev-server &`) would hold the stream — and the bridge's answer — for its
//! whole life. The command script therefore writes an end record to both streams the moment the
//! command itself has exited: `pcb-end-<nonce>:<exit code>;`, plain ASCII, so it appears verbatim
//! inside the container's JSON-encoded output. Each stream is read in order, so once both records
//! are in, all of the command's own output has been seen. The records are cut out of the output;
//! a tail that could be the beginning of one is held back until the next chunk decides.

use crate::json_text::JsonText;

/// Longest exit code text a record carries (`-2147483648`).
const MAX_CODE_LEN: usize = 11;

/// The end record of one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndRecord {
    prefix: String,
}

impl EndRecord {
    /// The record keyed by `nonce` (ASCII letters and digits, unknown to the command).
    pub fn new(nonce: &str) -> Self {
        Self {
            prefix: format!("pcb-end-{nonce}:"),
        }
    }

    /// A `printf` format writing the record; the exit code is its one argument.
    pub fn printf_format(&self) -> String {
        format!("{}%d;", self.prefix)
    }

    /// A scanner for one of the command's streams.
    pub fn scanner(&self) -> EndScanner {
        EndScanner {
            prefix: self.prefix.clone(),
            held: String::new(),
            code: None,
        }
    }
}

/// Follows one stream until its end record.
#[derive(Debug)]
pub struct EndScanner {
    prefix: String,
    /// Encoded text held back: a tail that may begin a record, or a record without its `;` yet.
    held: String,
    code: Option<i32>,
}

impl EndScanner {
    /// Takes the stream's next chunk and returns the part of it that is the command's output.
    /// Once the record is complete, nothing more is output: later text comes from processes the
    /// command left behind.
    pub fn feed(&mut self, data: JsonText) -> Option<JsonText> {
        if self.code.is_some() {
            return None;
        }
        let inner = data.inner();
        if self.held.is_empty() && !inner.contains(&self.prefix) {
            let keep = partial_prefix_len(inner, &self.prefix);
            if keep == 0 {
                return Some(data);
            }
            self.held = inner[inner.len() - keep..].to_owned();
            return output(&inner[..inner.len() - keep]);
        }
        let mut text = std::mem::take(&mut self.held);
        text.push_str(inner);
        let Some(start) = text.find(&self.prefix) else {
            let keep = partial_prefix_len(&text, &self.prefix);
            self.held = text[text.len() - keep..].to_owned();
            return output(&text[..text.len() - keep]);
        };
        let after = &text[start + self.prefix.len()..];
        match after.find(';') {
            Some(end) => match after[..end].parse() {
                Ok(code) => {
                    self.code = Some(code);
                    output(&text[..start])
                }
                Err(_) => output(&text),
            },
            None if after.len() <= MAX_CODE_LEN
                && after
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || byte == b'-') =>
            {
                self.held = text[start..].to_owned();
                output(&text[..start])
            }
            None => output(&text),
        }
    }

    /// The exit code the record carries, once it is complete.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// The stream ended without a complete record: what was held back was output after all.
    pub fn flush(&mut self) -> Option<JsonText> {
        output(&std::mem::take(&mut self.held))
    }
}

/// The length of the longest end of `text` that begins `prefix` (and is shorter than it).
fn partial_prefix_len(text: &str, prefix: &str) -> usize {
    (1..prefix.len())
        .rev()
        .find(|&length| text.ends_with(&prefix[..length]))
        .unwrap_or(0)
}

/// Encoded text as a chunk. Cuts are made only before the record's first letter, which is never
/// inside an escape sequence, so every piece is a valid literal.
fn output(inner: &str) -> Option<JsonText> {
    if inner.is_empty() {
        None
    } else {
        JsonText::from_inner(inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str) -> JsonText {
        JsonText::from_text(text).expect("encodable")
    }

    /// Feeds `pieces` and returns the decoded output and the record's code.
    fn scan(pieces: &[&str]) -> (String, Option<i32>) {
        let mut scanner = EndRecord::new("n0nce").scanner();
        let mut out = String::new();
        for piece in pieces {
            if let Some(data) = scanner.feed(chunk(piece)) {
                out.push_str(&data.decode());
            }
        }
        if scanner.code().is_none()
            && let Some(data) = scanner.flush()
        {
            out.push_str(&data.decode());
        }
        (out, scanner.code())
    }

    #[test]
    fn the_record_is_cut_out_wherever_the_chunks_split_it() {
        let stream = "output \"quoted\"\n\tline ✓pcb-end-n0nce:7;";
        for split in 0..=stream.len() {
            if !stream.is_char_boundary(split) {
                continue;
            }
            let (left, right) = stream.split_at(split);
            assert_eq!(
                scan(&[left, right]),
                ("output \"quoted\"\n\tline ✓".to_owned(), Some(7)),
                "split at {split}"
            );
        }
        let bytes: Vec<String> = stream.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(scan(&pieces).1, Some(7), "one character per chunk");
    }

    #[test]
    fn what_follows_the_record_is_not_the_commands_output() {
        assert_eq!(
            scan(&["a", "pcb-end-n0nce:0;late output", "more"]),
            ("a".to_owned(), Some(0))
        );
        assert_eq!(scan(&["pcb-end-n0nce:-1;"]), (String::new(), Some(-1)));
    }

    #[test]
    fn look_alikes_and_unfinished_records_are_output() {
        for text in [
            "pcb-end-other:0;",
            "pcb-end-n0nce:x;",
            "pcb-end-n0nce:12",
            "pcb-end-n0nc",
            "pcb-end-n0nce:123456789012345;",
        ] {
            assert_eq!(scan(&[text]), (text.to_owned(), None), "{text}");
        }
    }

    #[test]
    fn plain_chunks_pass_through_untouched() {
        let mut scanner = EndRecord::new("n0nce").scanner();
        let data: JsonText = serde_json::from_str(r#""\u00e9 \ud83d\ude00 p""#).expect("valid");
        let passed = scanner.feed(data.clone()).expect("output");
        assert_eq!(passed.as_json(), r#""\u00e9 \ud83d\ude00 ""#);
        assert_eq!(scanner.flush().expect("held").decode(), "p");
        assert_eq!(
            scanner.feed(chunk("plain")).expect("output").as_json(),
            r#""plain""#
        );
    }

    #[test]
    fn the_printf_format_writes_what_the_scanner_looks_for() {
        let record = EndRecord::new("n0nce");
        let printed = record.printf_format().replace("%d", "42");
        assert_eq!(scan(&[&printed]), (String::new(), Some(42)));
    }
}
