//! Events of the container's execution stream (`execStream…` → `/api/execute/stream`).

use serde::Deserialize;

use crate::json_text::JsonText;

/// One `data:` payload of the container's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    /// The command started.
    Start,
    /// Output on stdout (UTF-8 text, still JSON-encoded).
    Stdout {
        /// The text; absent counts as empty.
        data: Option<JsonText>,
    },
    /// Output on stderr (UTF-8 text, still JSON-encoded).
    Stderr {
        /// The text; absent counts as empty.
        data: Option<JsonText>,
    },
    /// The command ended.
    Complete {
        /// Its exit code; absent means the container could not tell.
        exit_code: Option<i32>,
    },
    /// The container gave up on the command.
    Error {
        /// What went wrong.
        error: Option<String>,
        /// Older containers put the message here.
        data: Option<String>,
    },
    /// An event type this bridge does not use.
    Other,
}

/// The flat shape of every event. A flat struct (rather than an internally tagged enum) lets the
/// output text stay a borrowed-then-kept raw JSON literal instead of being decoded.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<JsonText>,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    error: Option<String>,
}

impl ContainerEvent {
    /// Parses one `data:` payload.
    pub fn parse(data: &str) -> Result<Self, serde_json::Error> {
        let wire: WireEvent = serde_json::from_str(data)?;
        Ok(match wire.kind.as_str() {
            "start" => Self::Start,
            "stdout" => Self::Stdout { data: wire.data },
            "stderr" => Self::Stderr { data: wire.data },
            "complete" => Self::Complete {
                exit_code: wire.exit_code,
            },
            "error" => Self::Error {
                error: wire.error,
                data: wire.data.map(|text| text.decode()),
            },
            _ => Self::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_container_events() {
        let cases = [
            (
                r#"{"type":"start","pid":7,"timestamp":"t"}"#,
                ContainerEvent::Start,
            ),
            (
                r#"{"type":"stdout","data":"hi\n","timestamp":"t"}"#,
                ContainerEvent::Stdout {
                    data: Some(JsonText::from_text("hi\n").expect("encodable")),
                },
            ),
            (
                r#"{"type":"complete","exitCode":3,"timestamp":"t"}"#,
                ContainerEvent::Complete { exit_code: Some(3) },
            ),
            (
                r#"{"type":"complete","timestamp":"t"}"#,
                ContainerEvent::Complete { exit_code: None },
            ),
            (
                r#"{"type":"error","error":"boom"}"#,
                ContainerEvent::Error {
                    error: Some("boom".into()),
                    data: None,
                },
            ),
            (r#"{"type":"result","x":1}"#, ContainerEvent::Other),
        ];
        for (json, expected) in cases {
            assert_eq!(ContainerEvent::parse(json).expect(json), expected);
        }
        assert!(ContainerEvent::parse("not json").is_err());
    }
}
