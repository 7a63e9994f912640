//! Server-sent events: an incremental decoder (for the container's stream and for clients of the
//! bridge's stream) and the encoder of the bridge's own events.

use std::borrow::Cow;

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The last `id:` field, if any.
    pub id: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// What a stream carries: events, and comments (heartbeats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A complete event.
    Event(SseEvent),
    /// A `:` comment line, without the colon.
    Comment(String),
}

/// The largest event a decoder takes by default (its data so far and the line being read). The
/// bridge's events carry one piece of output each, far below this; a peer that sends more (one
/// endless line, endless `data:` lines) is refused instead of growing memory until a deadline.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Decodes an event stream fed in arbitrary byte chunks (a line or a UTF-8 sequence may be split
/// anywhere). Lines end with `\n`, `\r\n` or `\r`.
#[derive(Debug)]
pub struct SseDecoder {
    line: Vec<u8>,
    after_cr: bool,
    pending: SseEvent,
    has_data: bool,
    limit: usize,
    oversized: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl SseDecoder {
    /// A decoder at the start of a stream, taking events up to [`MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder taking events of up to `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            pending: SseEvent::default(),
            has_data: false,
            limit,
            oversized: false,
        }
    }

    /// Whether an event grew past the limit; the decoder has stopped reading, and the stream is
    /// to be failed.
    pub fn is_oversized(&self) -> bool {
        self.oversized
    }

    /// Feeds bytes; returns every item completed by them. Works on whole slices between line
    /// ends, since output streams carry large events.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<SseItem> {
        let mut items = Vec::new();
        while let Some(&first) = bytes.first() {
            if self.oversized {
                break;
            }
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            let line_end = memchr::memchr2(b'\n', b'\r', bytes);
            let taken = line_end.unwrap_or(bytes.len());
            if self.line.len() + taken + self.pending.data.len() > self.limit {
                self.oversized = true;
                self.line = Vec::new();
                self.pending = SseEvent::default();
                break;
            }
            match line_end {
                Some(end) => {
                    self.after_cr = bytes[end] == b'\r';
                    if self.line.is_empty() {
                        // The whole line is in this chunk: read it where it is.
                        self.end_line(&bytes[..end], &mut items);
                    } else {
                        self.line.extend_from_slice(&bytes[..end]);
                        let line = std::mem::take(&mut self.line);
                        self.end_line(&line, &mut items);
                    }
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    break;
                }
            }
        }
        items
    }

    /// Whether the stream stopped in the middle of an event (bytes not yet dispatched).
    pub fn has_partial_event(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.pending.event.is_some()
    }

    fn end_line(&mut self, line: &[u8], items: &mut Vec<SseItem>) {
        // `from_utf8` first: it checks ASCII a word at a time, far faster than the lossy
        // decoder, which is only for the rare invalid line.
        let line = match std::str::from_utf8(line) {
            Ok(line) => Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(line),
        };
        if line.is_empty() {
            if self.has_data {
                items.push(SseItem::Event(std::mem::take(&mut self.pending)));
            }
            self.pending = SseEvent::default();
            self.has_data = false;
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            items.push(SseItem::Comment(comment.trim_start().to_owned()));
            return;
        }
        let (field_len, value_start) = match line.find(':') {
            Some(colon) if line[colon + 1..].starts_with(' ') => (colon, colon + 2),
            Some(colon) => (colon, colon + 1),
            None => (line.len(), line.len()),
        };
        let value = &line[value_start..];
        match &line[..field_len] {
            "event" => self.pending.event = Some(value.to_owned()),
            "id" => self.pending.id = Some(value.to_owned()),
            "data" if !self.has_data => {
                self.pending.data = value.to_owned();
                self.has_data = true;
            }
            "data" => {
                self.pending.data.push('\n');
                self.pending.data.push_str(value);
            }
            _ => {}
        }
    }
}

/// Encodes an event; `data` may contain newlines (each line becomes a `data:` line).
pub fn encode_event(event: &str, id: Option<u64>, data: &str) -> String {
    encode_event_parts(event, id, &[data])
}

/// Encodes an event whose data is `parts` concatenated, without joining them first: an output
/// event is a few bytes of JSON around a large text, written here once. Newlines in the data
/// become separate `data:` lines, as in [`encode_event`].
pub fn encode_event_parts(event: &str, id: Option<u64>, parts: &[&str]) -> String {
    let mut encoded = start_event(event, id, parts);
    for part in parts {
        let mut lines = part.split('\n');
        if let Some(first) = lines.next() {
            encoded.push_str(first);
        }
        for line in lines {
            encoded.push_str("\ndata: ");
            encoded.push_str(line);
        }
    }
    encoded.push_str("\n\n");
    encoded
}

/// Encodes an event whose data is one line, `parts` concatenated: compact JSON, such as an output
/// event around a JSON string literal (which escapes its line breaks). Unlike
/// [`encode_event_parts`] it does not search the data for line breaks, a pass over every byte
/// of an output stream; a part that holds one anyway is a caller's bug, caught in debug builds.
pub fn encode_line_event(event: &str, id: Option<u64>, parts: &[&str]) -> String {
    debug_assert!(
        parts.iter().all(|part| !part.contains(['\n', '\r'])),
        "a line event's data holds a line break"
    );
    let mut encoded = start_event(event, id, parts);
    for part in parts {
        encoded.push_str(part);
    }
    encoded.push_str("\n\n");
    encoded
}

/// An event's fields up to its first `data: `, with room for `parts` after it.
fn start_event(event: &str, id: Option<u64>, parts: &[&str]) -> String {
    let data_len: usize = parts.iter().map(|part| part.len()).sum();
    let mut encoded = String::with_capacity(event.len() + data_len + 48);
    encoded.push_str("event: ");
    encoded.push_str(event);
    encoded.push('\n');
    if let Some(id) = id {
        encoded.push_str("id: ");
        encoded.push_str(&id.to_string());
        encoded.push('\n');
    }
    encoded.push_str("data: ");
    encoded
}

/// Encodes a comment line, used as a heartbeat while a command is silent.
pub fn encode_comment(text: &str) -> String {
    format!(": {text}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, id: Option<&str>, data: &str) -> SseItem {
        SseItem::Event(SseEvent {
            event: name.map(str::to_owned),
            id: id.map(str::to_owned),
            data: data.to_owned(),
        })
    }

    #[test]
    fn decodes_whatever_the_chunking() {
        let stream = "event: stdout\nid: 1\ndata: {\"data\":\"é\"}\n\n: keepalive\n\r\ndata: a\r\ndata: b\r\rdata:c\n\n";
        let expected = vec![
            event(Some("stdout"), Some("1"), "{\"data\":\"é\"}"),
            SseItem::Comment("keepalive".into()),
            event(None, None, "a\nb"),
            event(None, None, "c"),
        ];
        let bytes = stream.as_bytes();
        for chunk_size in 1..=bytes.len() {
            let mut decoder = SseDecoder::new();
            let items: Vec<SseItem> = bytes
                .chunks(chunk_size)
                .flat_map(|chunk| decoder.push(chunk))
                .collect();
            assert_eq!(items, expected, "chunk size {chunk_size}");
            assert!(!decoder.has_partial_event());
        }
    }

    #[test]
    fn an_event_past_the_limit_stops_the_decoder_however_it_grows() {
        let mut endless_line = SseDecoder::with_limit(64);
        assert_eq!(endless_line.push(b"data: ok\n\n").len(), 1);
        for _ in 0..100 {
            assert!(endless_line.push(&[b'x'; 10]).is_empty());
        }
        assert!(endless_line.is_oversized());
        assert!(
            endless_line.push(b"\n\ndata: later\n\n").is_empty(),
            "nothing more is read"
        );

        let mut endless_data = SseDecoder::with_limit(64);
        for _ in 0..20 {
            assert!(endless_data.push(b"data: 0123456789\n").is_empty());
        }
        assert!(endless_data.is_oversized());

        let mut at_the_limit = SseDecoder::with_limit(64);
        let line = format!("data: {}\n\n", "y".repeat(58));
        assert_eq!(at_the_limit.push(line.as_bytes()).len(), 1);
        assert!(!at_the_limit.is_oversized());
    }

    #[test]
    fn reports_a_stream_cut_mid_event() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: {\"type\":\"stdout\"").is_empty());
        assert!(decoder.has_partial_event());
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: x\n").is_empty());
        assert!(decoder.has_partial_event());
    }

    #[test]
    fn an_event_in_parts_is_the_event_of_their_concatenation() {
        for parts in [
            vec!["{\"data\":", "\"x\"", "}"],
            vec!["", "two\nli", "nes", ""],
            vec!["a\n", "\nb"],
            vec![],
        ] {
            let joined: String = parts.concat();
            assert_eq!(
                encode_event_parts("stdout", Some(3), &parts),
                encode_event("stdout", Some(3), &joined),
                "{parts:?}"
            );
        }
        assert_eq!(
            encode_event("note", None, "a\n\nb"),
            "event: note\ndata: a\ndata: \ndata: b\n\n"
        );
    }

    #[test]
    fn a_line_event_is_the_event_of_its_parts() {
        for parts in [vec!["{\"data\":", "\"a\\nb\"", "}"], vec!["x"], vec![]] {
            let encoded = encode_line_event("stdout", Some(9), &parts);
            assert_eq!(encoded, encode_event_parts("stdout", Some(9), &parts));
            assert_eq!(
                SseDecoder::new().push(encoded.as_bytes()),
                if parts.is_empty() {
                    vec![event(Some("stdout"), Some("9"), "")]
                } else {
                    vec![event(Some("stdout"), Some("9"), &parts.concat())]
                }
            );
        }
    }

    #[test]
    fn encodes_events_the_decoder_reads_back() {
        let encoded = encode_event("stdout", Some(7), "{\"data\":\"x\"}")
            + &encode_comment("keepalive")
            + &encode_event("note", None, "two\nlines");
        assert_eq!(
            encoded,
            "event: stdout\nid: 7\ndata: {\"data\":\"x\"}\n\n: keepalive\n\nevent: note\ndata: two\ndata: lines\n\n"
        );
        let items = SseDecoder::new().push(encoded.as_bytes());
        assert_eq!(
            items,
            vec![
                event(Some("stdout"), Some("7"), "{\"data\":\"x\"}"),
                SseItem::Comment("keepalive".into()),
                event(Some("note"), None, "two\nlines"),
            ]
        );
    }
}
