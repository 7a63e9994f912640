//! `POST /exec` and `POST /exec/{executionId}/cancel`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which session a command runs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// The lease's session (named or default, per its strategy): commands run one at a time.
    #[default]
    Named,
    /// The sandbox's default session.
    Default,
    /// `<sessionId>-bridge`: Paperclip's control traffic, serialised apart from the agent.
    Bridge,
    /// No session: runs at once, in parallel with everything else.
    None,
}

/// `POST /exec`: one argv in the lease's sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecRequest {
    /// The lease whose sandbox runs the command.
    pub provider_lease_id: String,
    /// Client-chosen id (1–64 of `A–Z a–z 0–9 _ -`) for cancelling; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// argv[0]; never re-split.
    pub command: String,
    /// argv[1..]; each element arrives unchanged.
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory; defaults to the lease's remote cwd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Extra environment; keys must match `^[A-Za-z_][A-Za-z0-9_]*$`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Text for the command's stdin; empty stdin when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// The bridge's deadline for the command in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Session to run in.
    #[serde(default)]
    pub session: SessionMode,
    /// Source `/etc/profile` and `~/.profile` first, for the PATH images set there (default on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_shell: Option<bool>,
}

/// The outcome of an execution (JSON mode), or its summary (the `complete` stream event, where
/// `stdout`/`stderr` are empty because the output was streamed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// The execution id (for the journal and cancel).
    pub execution_id: String,
    /// Exit code; `null` when the command was killed (timeout, cancel) or never exited.
    pub exit_code: Option<i32>,
    /// The signal that ended the command, when one did (`SIGTERM`, `SIGKILL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The bridge's timeout fired.
    pub timed_out: bool,
    /// A cancel request (or release with `cancelActiveWork`) stopped it.
    #[serde(default)]
    pub cancelled: bool,
    /// Output kept for the result (bounded; see `truncated`).
    #[serde(default)]
    pub stdout: String,
    /// Error output kept for the result (bounded; see `truncated`).
    #[serde(default)]
    pub stderr: String,
    /// Wall time measured by the bridge.
    pub duration_ms: u64,
    /// Total stdout bytes the command wrote.
    pub stdout_bytes: u64,
    /// Total stderr bytes the command wrote.
    pub stderr_bytes: u64,
    /// `stdout`/`stderr` hold less than the totals because of the output limit.
    #[serde(default)]
    pub truncated: bool,
    /// Stream signature (DESIGN §4); present only in the `complete` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Payload of a `stdout` or `stderr` stream event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// A piece of output text.
    pub data: String,
}

/// Which of a command's output streams a stream event carries; also the event's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output (`event: stdout`).
    Stdout,
    /// Standard error (`event: stderr`).
    Stderr,
}

impl OutputStream {
    /// The SSE event name, which is also the name Paperclip's `execute.log` uses.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }

    /// The stream an event name stands for.
    pub fn from_event_name(name: &str) -> Option<Self> {
        match name {
            "stdout" => Some(Self::Stdout),
            "stderr" => Some(Self::Stderr),
            _ => None,
        }
    }
}

/// Payload of the `error` stream event: the stream's terminal failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamFailure {
    /// snake_case error code, as in error bodies.
    pub error: super::ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// Stream signature over nonce, `error` and the code.
    pub signature: String,
}

/// `POST /exec/{executionId}/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    /// The lease the execution runs in.
    pub provider_lease_id: String,
}

/// Answer to a cancel: sent once the command's process group is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelResponse {
    /// The execution.
    pub execution_id: String,
    /// `true` when a running command was stopped; `false` when it had already ended.
    pub cancelled: bool,
}
