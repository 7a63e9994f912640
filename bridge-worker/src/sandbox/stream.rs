//! Events of the container's execution stream (`execStream…` → `/api/execute/stream`).

use serde::Deserialize;

/// One `data:` payload of the container's stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContainerEvent {
    /// The command started.
    Start,
    /// Output on stdout.
    Stdout {
        /// UTF-8 text.
        #[serde(default)]
        data: String,
    },
    /// Output on stderr.
    Stderr {
        /// UTF-8 text.
        #[serde(default)]
        data: String,
    },
    /// The command ended.
    #[serde(rename_all = "camelCase")]
    Complete {
        /// Its exit code; absent means the container could not tell.
        #[serde(default)]
        exit_code: Option<i32>,
    },
    /// The container gave up on the command.
    Error {
        /// What went wrong.
        #[serde(default)]
        error: Option<String>,
        /// Older containers put the message here.
        #[serde(default)]
        data: Option<String>,
    },
    /// An event type this bridge does not use.
    #[serde(other)]
    Other,
}

impl ContainerEvent {
    /// Parses one `data:` payload.
    pub fn parse(data: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(data)
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
                    data: "hi\n".into(),
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
