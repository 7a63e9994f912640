//! Following a command's output: sequence ids, byte totals, the bounded copy a JSON result keeps,
//! the end records that say the command exited, and the "sentinel missing" answer of the command
//! script.

pub use bridge_protocol::api::OutputStream;

use super::end_record::{EndRecord, EndScanner};
use crate::json_text::JsonText;
use crate::sandbox::ContainerEvent;
use crate::script::{LOST_EXIT_CODE, LOST_MARKER};

/// A piece of output to forward, numbered in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Stream.
    pub stream: OutputStream,
    /// Sequence number (1, 2, …) across both streams.
    pub id: u64,
    /// Text, still JSON-encoded (forwarded as it is).
    pub data: JsonText,
}

/// How the command ended, as its end records or the container say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exited (the code may be missing, which is an error for the caller to report). Once the
    /// end records are in, the rest of the container's stream belongs to processes the command
    /// left behind and is not waited for.
    Exited(Option<i32>),
    /// The container reports the script's exit, but the script never wrote its end records:
    /// something other than the command's own end stopped it (a kill, the container losing
    /// its processes and state), so the caller must find out which before trusting the code.
    Interrupted(Option<i32>),
    /// The sandbox did not hold the lease's sentinel; nothing ran.
    SandboxLost,
    /// The container reported a failure.
    Failed(String),
}

/// What one container event produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Output to forward now.
    pub chunks: Vec<Chunk>,
    /// Set when the command ended.
    pub ending: Option<Ending>,
}

/// A bounded copy of both streams for a JSON result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    /// Kept stdout.
    pub stdout: String,
    /// Kept stderr.
    pub stderr: String,
    /// Something was left out.
    pub truncated: bool,
}

/// The state of one execution's output.
#[derive(Debug)]
pub struct OutputTracker {
    next_id: u64,
    stdout_bytes: u64,
    stderr_bytes: u64,
    retain_limit: Option<usize>,
    retained: Retained,
    held: Option<JsonText>,
    seen_output: bool,
    stdout_end: EndScanner,
    stderr_end: EndScanner,
}

impl OutputTracker {
    /// `retain_limit`: bytes of each stream a JSON result keeps; `None` keeps nothing (streaming).
    /// `end`: the record the command script writes to both streams when the command exits.
    pub fn new(retain_limit: Option<usize>, end: &EndRecord) -> Self {
        Self {
            next_id: 1,
            stdout_bytes: 0,
            stderr_bytes: 0,
            retain_limit,
            retained: Retained::default(),
            held: None,
            seen_output: false,
            stdout_end: end.scanner(),
            stderr_end: end.scanner(),
        }
    }

    /// Feeds one container event.
    pub fn on_event(&mut self, event: ContainerEvent) -> Step {
        let mut step = Step::default();
        match event {
            ContainerEvent::Stdout { data: Some(data) } => {
                if let Some(data) = self.stdout_end.feed(data) {
                    self.output(OutputStream::Stdout, data, &mut step);
                }
                self.check_end_records(&mut step);
            }
            ContainerEvent::Stderr { data: Some(data) } => {
                if let Some(data) = self.stderr_end.feed(data) {
                    self.output(OutputStream::Stderr, data, &mut step);
                }
                self.check_end_records(&mut step);
            }
            ContainerEvent::Complete { exit_code } => {
                self.flush_end_scanners(&mut step);
                let held = self.held.take();
                if exit_code == Some(LOST_EXIT_CODE) && held.is_some() {
                    step.ending = Some(Ending::SandboxLost);
                } else {
                    if let Some(held) = held {
                        self.record(OutputStream::Stderr, held, &mut step);
                    }
                    step.ending = Some(Ending::Interrupted(exit_code));
                }
            }
            ContainerEvent::Error { error, data } => {
                self.flush_end_scanners(&mut step);
                if let Some(held) = self.held.take() {
                    self.record(OutputStream::Stderr, held, &mut step);
                }
                step.ending = Some(Ending::Failed(
                    error
                        .or(data)
                        .unwrap_or_else(|| "the command failed".to_owned()),
                ));
            }
            ContainerEvent::Stdout { data: None }
            | ContainerEvent::Stderr { data: None }
            | ContainerEvent::Start
            | ContainerEvent::Other => {}
        }
        step
    }

    /// Bytes written to stdout and stderr so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.stdout_bytes, self.stderr_bytes)
    }

    /// The kept copy (empty when streaming).
    pub fn into_retained(self) -> Retained {
        self.retained
    }

    /// Both records are in: the command exited with the code they carry.
    fn check_end_records(&mut self, step: &mut Step) {
        if let (Some(code), Some(_)) = (self.stdout_end.code(), self.stderr_end.code()) {
            if let Some(held) = self.held.take() {
                self.record(OutputStream::Stderr, held, step);
            }
            step.ending = Some(Ending::Exited(Some(code)));
        }
    }

    /// The stream ended before both records: text held back as a possible record is output.
    fn flush_end_scanners(&mut self, step: &mut Step) {
        if let Some(data) = self.stdout_end.flush() {
            self.output(OutputStream::Stdout, data, step);
        }
        if let Some(data) = self.stderr_end.flush() {
            self.output(OutputStream::Stderr, data, step);
        }
    }

    fn output(&mut self, stream: OutputStream, data: JsonText, step: &mut Step) {
        if data.is_empty() {
            return;
        }
        let first = !self.seen_output;
        self.seen_output = true;
        if first && stream == OutputStream::Stderr && is_lost_marker(&data) {
            self.held = Some(data);
            return;
        }
        if let Some(held) = self.held.take() {
            self.record(OutputStream::Stderr, held, step);
        }
        self.record(stream, data, step);
    }

    fn record(&mut self, stream: OutputStream, data: JsonText, step: &mut Step) {
        let bytes = data.decoded_len();
        let (total, kept) = match stream {
            OutputStream::Stdout => (&mut self.stdout_bytes, &mut self.retained.stdout),
            OutputStream::Stderr => (&mut self.stderr_bytes, &mut self.retained.stderr),
        };
        *total += bytes as u64;
        if let Some(limit) = self.retain_limit {
            let room = limit.saturating_sub(kept.len());
            if room > 0 {
                kept.push_str(&data.decode_prefix(room));
            }
            if bytes > room {
                self.retained.truncated = true;
            }
        }
        step.chunks.push(Chunk {
            stream,
            id: self.next_id,
            data,
        });
        self.next_id += 1;
    }
}

/// Whether a chunk is the command script's "sentinel missing" line (decoded only when short).
fn is_lost_marker(data: &JsonText) -> bool {
    data.decoded_len() <= LOST_MARKER.len() + 2 && data.decode().starts_with(LOST_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(data: &str) -> Option<JsonText> {
        Some(JsonText::from_text(data).expect("encodable"))
    }

    fn stdout(data: &str) -> ContainerEvent {
        ContainerEvent::Stdout { data: text(data) }
    }

    fn stderr(data: &str) -> ContainerEvent {
        ContainerEvent::Stderr { data: text(data) }
    }

    fn end_record() -> EndRecord {
        EndRecord::new("t0k")
    }

    #[test]
    fn both_end_records_end_the_command_without_the_container() {
        let mut tracker = OutputTracker::new(Some(100), &end_record());
        let first = tracker.on_event(stdout("out\npcb-end-t0k:3;"));
        assert_eq!(first.chunks.len(), 1);
        assert_eq!(first.chunks[0].data.decode(), "out\n");
        assert_eq!(first.ending, None, "stderr may still carry output");
        let second = tracker.on_event(stderr("errpcb-end-"));
        assert_eq!(second.chunks[0].data.decode(), "err");
        let last = tracker.on_event(stderr("t0k:3;"));
        assert!(last.chunks.is_empty());
        assert_eq!(last.ending, Some(Ending::Exited(Some(3))));
        assert_eq!(tracker.totals(), (4, 3));
        let retained = tracker.into_retained();
        assert_eq!(
            (retained.stdout.as_str(), retained.stderr.as_str()),
            ("out\n", "err")
        );
    }

    #[test]
    fn without_both_records_the_script_was_interrupted_and_the_container_has_the_code() {
        let mut tracker = OutputTracker::new(Some(100), &end_record());
        tracker.on_event(stdout("pcb-end-t0k:0;"));
        tracker.on_event(stderr("killed before its recordpcb-"));
        let end = tracker.on_event(ContainerEvent::Complete {
            exit_code: Some(137),
        });
        assert_eq!(end.ending, Some(Ending::Interrupted(Some(137))));
        assert_eq!(
            end.chunks[0].data.decode(),
            "pcb-",
            "held text is output after all"
        );
    }

    #[test]
    fn numbers_chunks_and_counts_bytes() {
        let mut tracker = OutputTracker::new(None, &end_record());
        assert!(tracker.on_event(ContainerEvent::Start).chunks.is_empty());
        let first = tracker.on_event(stdout("é\n"));
        let second = tracker.on_event(stderr("x"));
        assert_eq!(first.chunks[0].id, 1);
        assert_eq!(second.chunks[0].id, 2);
        assert!(tracker.on_event(stdout("")).chunks.is_empty());
        let end = tracker.on_event(ContainerEvent::Complete { exit_code: Some(0) });
        assert_eq!(end.ending, Some(Ending::Interrupted(Some(0))));
        assert_eq!(tracker.totals(), (3, 1));
        assert_eq!(tracker.into_retained(), Retained::default());
    }

    #[test]
    fn retains_a_bounded_copy_at_character_boundaries() {
        let mut tracker = OutputTracker::new(Some(4), &end_record());
        tracker.on_event(stdout("ab"));
        tracker.on_event(stdout("cdé"));
        tracker.on_event(stderr("xy"));
        assert_eq!(tracker.totals(), (6, 2));
        let retained = tracker.into_retained();
        assert_eq!(retained.stdout, "abcd");
        assert_eq!(retained.stderr, "xy");
        assert!(retained.truncated);

        let mut tracker = OutputTracker::new(Some(3), &end_record());
        tracker.on_event(stdout("aé"));
        tracker.on_event(stdout("é"));
        assert_eq!(tracker.into_retained().stdout, "aé");
    }

    #[test]
    fn recognises_the_missing_sentinel() {
        let mut tracker = OutputTracker::new(Some(100), &end_record());
        assert!(
            tracker
                .on_event(stderr(&format!("{LOST_MARKER}\n")))
                .chunks
                .is_empty()
        );
        let end = tracker.on_event(ContainerEvent::Complete {
            exit_code: Some(LOST_EXIT_CODE),
        });
        assert!(end.chunks.is_empty());
        assert_eq!(end.ending, Some(Ending::SandboxLost));
    }

    #[test]
    fn a_command_printing_the_marker_is_not_mistaken_for_a_lost_sandbox() {
        let mut tracker = OutputTracker::new(Some(1_000), &end_record());
        tracker.on_event(stderr(LOST_MARKER));
        let next = tracker.on_event(stdout("more"));
        assert_eq!(next.chunks.len(), 2, "the held chunk is released first");
        assert_eq!(next.chunks[0].data.decode(), LOST_MARKER);

        let mut tracker = OutputTracker::new(Some(1_000), &end_record());
        tracker.on_event(stderr(LOST_MARKER));
        let end = tracker.on_event(ContainerEvent::Complete { exit_code: Some(1) });
        assert_eq!(end.chunks.len(), 1);
        assert_eq!(end.ending, Some(Ending::Interrupted(Some(1))));
    }

    #[test]
    fn container_failures_end_the_output() {
        let mut tracker = OutputTracker::new(None, &end_record());
        let end = tracker.on_event(ContainerEvent::Error {
            error: None,
            data: Some("spawn failed".into()),
        });
        assert_eq!(end.ending, Some(Ending::Failed("spawn failed".into())));
    }
}
