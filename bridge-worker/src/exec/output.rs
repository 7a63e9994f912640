//! Following a command's output: sequence ids, byte totals, the bounded copy a JSON result keeps,
//! and recognising the "sentinel missing" answer of the command script.

use crate::json_text::JsonText;
use crate::sandbox::ContainerEvent;
use crate::script::{LOST_EXIT_CODE, LOST_MARKER};

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// The SSE event name.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

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

/// How the container says the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exited (the code may be missing, which is an error for the caller to report).
    Exited(Option<i32>),
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
}

impl OutputTracker {
    /// `retain_limit`: bytes of each stream a JSON result keeps; `None` keeps nothing (streaming).
    pub fn new(retain_limit: Option<usize>) -> Self {
        Self {
            next_id: 1,
            stdout_bytes: 0,
            stderr_bytes: 0,
            retain_limit,
            retained: Retained::default(),
            held: None,
            seen_output: false,
        }
    }

    /// Feeds one container event.
    pub fn on_event(&mut self, event: ContainerEvent) -> Step {
        let mut step = Step::default();
        match event {
            ContainerEvent::Stdout { data: Some(data) } => {
                self.output(OutputStream::Stdout, data, &mut step);
            }
            ContainerEvent::Stderr { data: Some(data) } => {
                self.output(OutputStream::Stderr, data, &mut step);
            }
            ContainerEvent::Complete { exit_code } => {
                let held = self.held.take();
                if exit_code == Some(LOST_EXIT_CODE) && held.is_some() {
                    step.ending = Some(Ending::SandboxLost);
                } else {
                    if let Some(held) = held {
                        self.record(OutputStream::Stderr, held, &mut step);
                    }
                    step.ending = Some(Ending::Exited(exit_code));
                }
            }
            ContainerEvent::Error { error, data } => {
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

    #[test]
    fn numbers_chunks_and_counts_bytes() {
        let mut tracker = OutputTracker::new(None);
        assert!(tracker.on_event(ContainerEvent::Start).chunks.is_empty());
        let first = tracker.on_event(stdout("é\n"));
        let second = tracker.on_event(stderr("x"));
        assert_eq!(first.chunks[0].id, 1);
        assert_eq!(second.chunks[0].id, 2);
        assert!(tracker.on_event(stdout("")).chunks.is_empty());
        let end = tracker.on_event(ContainerEvent::Complete { exit_code: Some(0) });
        assert_eq!(end.ending, Some(Ending::Exited(Some(0))));
        assert_eq!(tracker.totals(), (3, 1));
        assert_eq!(tracker.into_retained(), Retained::default());
    }

    #[test]
    fn retains_a_bounded_copy_at_character_boundaries() {
        let mut tracker = OutputTracker::new(Some(4));
        tracker.on_event(stdout("ab"));
        tracker.on_event(stdout("cdé"));
        tracker.on_event(stderr("xy"));
        assert_eq!(tracker.totals(), (6, 2));
        let retained = tracker.into_retained();
        assert_eq!(retained.stdout, "abcd");
        assert_eq!(retained.stderr, "xy");
        assert!(retained.truncated);

        let mut tracker = OutputTracker::new(Some(3));
        tracker.on_event(stdout("aé"));
        tracker.on_event(stdout("é"));
        assert_eq!(tracker.into_retained().stdout, "aé");
    }

    #[test]
    fn recognises_the_missing_sentinel() {
        let mut tracker = OutputTracker::new(Some(100));
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
        let mut tracker = OutputTracker::new(Some(1_000));
        tracker.on_event(stderr(LOST_MARKER));
        let next = tracker.on_event(stdout("more"));
        assert_eq!(next.chunks.len(), 2, "the held chunk is released first");
        assert_eq!(next.chunks[0].data.decode(), LOST_MARKER);

        let mut tracker = OutputTracker::new(Some(1_000));
        tracker.on_event(stderr(LOST_MARKER));
        let end = tracker.on_event(ContainerEvent::Complete { exit_code: Some(1) });
        assert_eq!(end.chunks.len(), 1);
        assert_eq!(end.ending, Some(Ending::Exited(Some(1))));
    }

    #[test]
    fn container_failures_end_the_output() {
        let mut tracker = OutputTracker::new(None);
        let end = tracker.on_event(ContainerEvent::Error {
            error: None,
            data: Some("spawn failed".into()),
        });
        assert_eq!(end.ending, Some(Ending::Failed("spawn failed".into())));
    }
}
