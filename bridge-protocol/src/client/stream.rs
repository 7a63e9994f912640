//! Reading an execution's event stream: SSE bytes in any chunking, output and heartbeats out,
//! and one terminal event whose signature proves it came from the bridge for this request.

use crate::api::{ExecResult, OutputChunk, OutputStream, StreamFailure};
use crate::auth::{SecretKey, StreamOutcome};
use crate::sse::{MAX_EVENT_BYTES, SseDecoder, SseItem};

use super::error::StreamError;

/// What a stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A piece of output.
    Output {
        /// Which stream.
        stream: OutputStream,
        /// The event's sequence id (increasing across both streams).
        id: u64,
        /// The text.
        data: String,
    },
    /// A heartbeat comment: the command is silent, the connection alive.
    Heartbeat,
    /// The command ended (signature verified).
    Complete(ExecResult),
    /// The bridge gave up on the command (signature verified).
    Failed(StreamFailure),
}

impl StreamEvent {
    /// Whether this is the stream's one terminal event.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Complete(_) | Self::Failed(_))
    }
}

/// Decodes one execution stream and checks its end.
#[derive(Debug)]
pub struct StreamReader {
    decoder: SseDecoder,
    secret: SecretKey,
    nonce: String,
    finished: bool,
}

impl StreamReader {
    /// A reader for the response to the request signed with `nonce`.
    pub fn new(secret: SecretKey, nonce: String) -> Self {
        Self {
            decoder: SseDecoder::new(),
            secret,
            nonce,
            finished: false,
        }
    }

    /// Whether the terminal event has been read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds bytes; returns the events they completed. A terminal event is always last, and
    /// nothing after it is read.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, StreamError> {
        let mut events = Vec::new();
        if self.finished {
            return Ok(events);
        }
        let items = self.decoder.push(bytes);
        if self.decoder.is_oversized() {
            return Err(StreamError::Oversized {
                limit: MAX_EVENT_BYTES,
            });
        }
        for item in items {
            let event = match item {
                SseItem::Comment(_) => {
                    events.push(StreamEvent::Heartbeat);
                    continue;
                }
                SseItem::Event(event) => event,
            };
            let name = event.event.unwrap_or_default();
            let malformed = |reason: serde_json::Error| StreamError::Malformed {
                event: name.clone(),
                reason: reason.to_string(),
            };
            if let Some(stream) = OutputStream::from_event_name(&name) {
                let chunk: OutputChunk = serde_json::from_str(&event.data).map_err(malformed)?;
                events.push(StreamEvent::Output {
                    stream,
                    id: event.id.and_then(|id| id.parse().ok()).unwrap_or(0),
                    data: chunk.data,
                });
                continue;
            }
            let terminal = match name.as_str() {
                "complete" => {
                    let result: ExecResult =
                        serde_json::from_str(&event.data).map_err(malformed)?;
                    self.check(
                        &StreamOutcome::complete(&result),
                        result.signature.as_deref(),
                    )?;
                    StreamEvent::Complete(result)
                }
                "error" => {
                    let failure: StreamFailure =
                        serde_json::from_str(&event.data).map_err(malformed)?;
                    let outcome = StreamOutcome::Error {
                        code: failure.error.as_str(),
                    };
                    self.check(&outcome, Some(&failure.signature))?;
                    StreamEvent::Failed(failure)
                }
                _ => continue,
            };
            events.push(terminal);
            self.finished = true;
            return Ok(events);
        }
        Ok(events)
    }

    fn check(
        &self,
        outcome: &StreamOutcome<'_>,
        signature: Option<&str>,
    ) -> Result<(), StreamError> {
        let valid =
            signature.is_some_and(|signature| outcome.verify(&self.secret, &self.nonce, signature));
        if valid {
            Ok(())
        } else {
            Err(StreamError::Unsigned)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ErrorCode;
    use crate::sse::encode_event;

    const NONCE: &str = "AAECAwQFBgcICQoLDA0ODw";

    fn secret() -> SecretKey {
        SecretKey::new("0123456789abcdef0123456789abcdef").expect("valid")
    }

    fn stream(output: &[(&str, &str)], exit_code: Option<i32>, key: &SecretKey) -> Vec<u8> {
        let mut text = String::new();
        let (mut stdout_bytes, mut stderr_bytes) = (0, 0);
        for (index, (name, data)) in output.iter().enumerate() {
            if *name == "stdout" {
                stdout_bytes += data.len() as u64;
            } else {
                stderr_bytes += data.len() as u64;
            }
            let payload = serde_json::to_string(&OutputChunk {
                data: (*data).into(),
            })
            .expect("json");
            text += &encode_event(name, Some(index as u64 + 1), &payload);
            text += ": keepalive\n\n";
        }
        let mut result = ExecResult {
            execution_id: "e1".into(),
            exit_code,
            stdout_bytes,
            stderr_bytes,
            ..ExecResult::default()
        };
        result.signature = Some(
            StreamOutcome::Complete {
                exit_code,
                timed_out: false,
                stdout_bytes,
                stderr_bytes,
            }
            .sign(key, NONCE),
        );
        text += &encode_event(
            "complete",
            None,
            &serde_json::to_string(&result).expect("json"),
        );
        text += &encode_event("stdout", Some(99), r#"{"data":"after the end"}"#);
        text.into_bytes()
    }

    fn read(bytes: &[u8], chunk: usize) -> Result<Vec<StreamEvent>, StreamError> {
        let mut reader = StreamReader::new(secret(), NONCE.into());
        let mut events = Vec::new();
        for piece in bytes.chunks(chunk) {
            events.extend(reader.push(piece)?);
        }
        Ok(events)
    }

    #[test]
    fn utf8_split_across_network_chunks_arrives_intact() {
        let output = [
            ("stdout", "héllo ✓ 日本\n"),
            ("stderr", "😀 error\n"),
            ("stdout", "end"),
        ];
        let bytes = stream(&output, Some(0), &secret());
        for chunk in 1..=17 {
            let events = read(&bytes, chunk).expect("readable");
            let text: Vec<(OutputStream, u64, String)> = events
                .iter()
                .filter_map(|event| match event {
                    StreamEvent::Output { stream, id, data } => Some((*stream, *id, data.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(
                text,
                [
                    (OutputStream::Stdout, 1, "héllo ✓ 日本\n".to_owned()),
                    (OutputStream::Stderr, 2, "😀 error\n".to_owned()),
                    (OutputStream::Stdout, 3, "end".to_owned())
                ],
                "chunk size {chunk}"
            );
            let heartbeats = events
                .iter()
                .filter(|event| **event == StreamEvent::Heartbeat)
                .count();
            assert_eq!(heartbeats, 3);
            assert!(
                matches!(events.last(), Some(StreamEvent::Complete(result)) if result.exit_code == Some(0)),
                "the terminal event is last and nothing after it counts"
            );
        }
    }

    #[test]
    fn a_terminal_event_signed_with_another_key_is_rejected() {
        let impostor = SecretKey::new("ffffffffffffffffffffffffffffffff").expect("valid");
        let bytes = stream(&[("stdout", "x")], Some(0), &impostor);
        assert_eq!(read(&bytes, 64), Err(StreamError::Unsigned));
    }

    #[test]
    fn signed_failures_are_reported() {
        let failure = StreamFailure {
            error: ErrorCode::SandboxStateLost,
            message: "lost".into(),
            signature: StreamOutcome::Error {
                code: "sandbox_state_lost",
            }
            .sign(&secret(), NONCE),
        };
        let bytes = encode_event(
            "error",
            None,
            &serde_json::to_string(&failure).expect("json"),
        );
        let events = read(bytes.as_bytes(), 5).expect("readable");
        assert_eq!(events, [StreamEvent::Failed(failure)]);
    }

    #[test]
    fn garbage_events_are_malformed_not_output() {
        let bytes = encode_event("stdout", Some(1), "not json");
        assert!(matches!(
            read(bytes.as_bytes(), 64),
            Err(StreamError::Malformed { event, .. }) if event == "stdout"
        ));
    }
}
