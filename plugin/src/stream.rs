//! Reading the bridge's execution stream: SSE bytes in any chunking, output items out, and a
//! terminal event whose signature proves it came from the bridge for this request.

use bridge_protocol::api::{ExecResult, OutputChunk, StreamFailure};
use bridge_protocol::auth::{SecretKey, StreamOutcome};
use bridge_protocol::sse::{SseDecoder, SseItem};

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name the host expects in `execute.log`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// What the stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// A piece of output.
    Output(Stream, String),
    /// The command ended (verified).
    Complete(ExecResult),
    /// The bridge gave up (verified).
    Failed(StreamFailure),
}

/// Why a stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// An event's payload is not what the protocol says.
    #[error("the bridge sent an unreadable {event} event: {reason}")]
    Malformed {
        /// The event name.
        event: String,
        /// Why.
        reason: String,
    },
    /// The terminal event is not signed by the bridge for this request.
    #[error(
        "the stream's final event is not signed by the bridge (wrong bridgeSecret, or something between the plugin and the bridge answered)"
    )]
    Unsigned,
}

/// Decodes one execution stream.
pub struct StreamReader {
    decoder: SseDecoder,
    secret: SecretKey,
    nonce: String,
}

impl StreamReader {
    /// A reader for the response to the request signed with `nonce`.
    pub fn new(secret: SecretKey, nonce: String) -> Self {
        Self {
            decoder: SseDecoder::new(),
            secret,
            nonce,
        }
    }

    /// Feeds bytes; returns the events they completed (a terminal event is always last).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, StreamError> {
        let mut events = Vec::new();
        for item in self.decoder.push(bytes) {
            let SseItem::Event(event) = item else {
                continue;
            };
            let name = event.event.unwrap_or_default();
            let malformed = |reason: serde_json::Error| StreamError::Malformed {
                event: name.clone(),
                reason: reason.to_string(),
            };
            match name.as_str() {
                "stdout" | "stderr" => {
                    let chunk: OutputChunk =
                        serde_json::from_str(&event.data).map_err(malformed)?;
                    let stream = if name == "stdout" {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    };
                    events.push(StreamEvent::Output(stream, chunk.data));
                }
                "complete" => {
                    let result: ExecResult =
                        serde_json::from_str(&event.data).map_err(malformed)?;
                    let outcome = StreamOutcome::Complete {
                        exit_code: result.exit_code,
                        timed_out: result.timed_out,
                        stdout_bytes: result.stdout_bytes,
                        stderr_bytes: result.stderr_bytes,
                    };
                    self.check(&outcome, result.signature.as_deref())?;
                    events.push(StreamEvent::Complete(result));
                    return Ok(events);
                }
                "error" => {
                    let failure: StreamFailure =
                        serde_json::from_str(&event.data).map_err(malformed)?;
                    let code = serde_json::to_value(failure.error).map_err(malformed)?;
                    let outcome = StreamOutcome::Error {
                        code: code.as_str().unwrap_or_default(),
                    };
                    self.check(&outcome, Some(&failure.signature))?;
                    events.push(StreamEvent::Failed(failure));
                    return Ok(events);
                }
                _ => {}
            }
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
    use bridge_protocol::api::ErrorCode;
    use bridge_protocol::sse::encode_event;

    use super::*;

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
            let text: Vec<(Stream, String)> = events
                .iter()
                .filter_map(|event| match event {
                    StreamEvent::Output(stream, data) => Some((*stream, data.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(
                text,
                [
                    (Stream::Stdout, "héllo ✓ 日本\n".to_owned()),
                    (Stream::Stderr, "😀 error\n".to_owned()),
                    (Stream::Stdout, "end".to_owned())
                ],
                "chunk size {chunk}"
            );
            assert!(
                matches!(events.last(), Some(StreamEvent::Complete(result)) if result.exit_code == Some(0))
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
}
