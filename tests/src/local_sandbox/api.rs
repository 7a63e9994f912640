//! Request and response bodies of the container API (camelCase JSON, shapes as the real
//! container's handlers), the local control endpoints, and the SSE events. Unknown request fields
//! (`origin`, `encoding`, `autoCleanup`, …) are accepted and ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::pipes::Stream;
use super::process::ProcessStatus;
use super::time::now_iso;

/// Environment variables as sent: `null` values mean "unset" and are skipped.
pub type EnvMap = BTreeMap<String, Option<String>>;

/// `POST /api/session/create`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreateRequest {
    /// Session id (generated if absent).
    pub id: Option<String>,
    /// Shell environment.
    pub env: Option<EnvMap>,
    /// Starting directory (default `/workspace`).
    pub cwd: Option<String>,
    /// Default timeout of foreground commands.
    pub command_timeout_ms: Option<u64>,
}

/// `POST /api/session/delete`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDeleteRequest {
    /// The session to delete.
    pub session_id: String,
}

/// `POST /api/execute`, `POST /api/execute/stream`, `POST /api/process/start`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandRequest {
    /// The shell command.
    pub command: String,
    /// Session id; `"__DISABLE_SESSION__"` for a one-shot `bash -c`.
    pub session_id: Option<String>,
    /// `execute` only: start as a background process instead.
    #[serde(default)]
    pub background: bool,
    /// Timeout in milliseconds (ignored by `execute/stream`, as in the container).
    pub timeout_ms: Option<u64>,
    /// Variables for this command only.
    pub env: Option<EnvMap>,
    /// Directory for this command only.
    pub cwd: Option<String>,
    /// `process/start` only: the id to give the process.
    pub process_id: Option<String>,
}

/// `POST /api/delete`, `POST /api/exists`.
#[derive(Debug, Deserialize)]
pub struct PathRequest {
    /// Sandbox path.
    pub path: String,
}

/// `POST /api/read`.
#[derive(Debug, Deserialize)]
pub struct ReadRequest {
    /// Sandbox path.
    pub path: String,
    /// `"utf-8"` or `"base64"`; detected from the content if absent.
    pub encoding: Option<String>,
}

/// `POST /api/write`.
#[derive(Debug, Deserialize)]
pub struct WriteRequest {
    /// Sandbox path.
    pub path: String,
    /// Text, or base64 with `encoding: "base64"`.
    pub content: String,
    /// `"base64"` for binary content.
    pub encoding: Option<String>,
}

/// `POST /api/mkdir`.
#[derive(Debug, Deserialize)]
pub struct MkdirRequest {
    /// Sandbox path.
    pub path: String,
    /// Create missing parents too.
    #[serde(default)]
    pub recursive: bool,
}

/// `GET /api/process/list` query.
#[derive(Debug, Deserialize)]
pub struct ProcessListQuery {
    /// Only processes with this status.
    pub status: Option<String>,
}

/// The envelope of every successful container response: `{success: true, …, timestamp}`.
#[derive(Debug, Serialize)]
pub struct Success<T> {
    success: bool,
    #[serde(flatten)]
    body: T,
    timestamp: String,
}

impl<T> Success<T> {
    /// Wraps `body`, stamped now.
    pub fn new(body: T) -> Self {
        Self {
            success: true,
            body,
            timestamp: now_iso(),
        }
    }
}

/// `GET /api/ping`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `"healthy"`.
    pub status: &'static str,
}

/// `GET /api/version`.
#[derive(Debug, Serialize)]
pub struct Version {
    /// The container version this server stands in for.
    pub version: &'static str,
}

/// `POST /api/session/create`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreated {
    /// The session (the container serialises its internal object here; the SDK ignores it).
    pub data: SessionData,
    /// Always `null` locally.
    pub container_placement_id: Option<String>,
}

/// What `session/create` reports about the new session.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionData {
    /// Session id.
    pub id: String,
    /// Starting directory.
    pub cwd: String,
    /// Default command timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_timeout_ms: Option<u64>,
}

/// `GET /api/session/list`.
#[derive(Debug, Serialize)]
pub struct SessionList {
    /// Session ids.
    pub data: Vec<String>,
}

/// `POST /api/session/delete`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDeleted {
    /// The deleted session.
    pub session_id: String,
}

/// `POST /api/execute` (foreground). Not wrapped in [`Success`]: `success` means exit code 0.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// `exitCode == 0`.
    pub success: bool,
    /// Exit status.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The command text.
    pub command: String,
    /// Milliseconds it took (the container reports 0; the DO measures its own).
    pub duration: u64,
    /// When it finished.
    pub timestamp: String,
    /// The request's session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `POST /api/process/start`, `execute` with `background: true`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessStarted {
    /// Process id.
    pub process_id: String,
    /// Pid of its root process.
    pub pid: u32,
    /// The command text.
    pub command: String,
}

/// One process in `GET /api/process/{id}` and `GET /api/process/list`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    /// Process id.
    pub id: String,
    /// Pid of its root process.
    pub pid: u32,
    /// The command text.
    pub command: String,
    /// Status.
    pub status: ProcessStatus,
    /// When it started.
    pub start_time: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Exit code once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// `GET /api/process/{id}`.
#[derive(Debug, Serialize)]
pub struct ProcessDetail {
    /// The process.
    pub process: ProcessInfo,
}

/// `GET /api/process/list`.
#[derive(Debug, Serialize)]
pub struct ProcessList {
    /// The processes.
    pub processes: Vec<ProcessInfo>,
}

/// `DELETE /api/process/{id}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessKilled {
    /// The killed process.
    pub process_id: String,
}

/// `DELETE /api/process/kill-all`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessesKilled {
    /// How many running processes were killed.
    pub cleaned_count: usize,
}

/// `GET /api/process/{id}/logs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessLogs {
    /// Process id.
    pub process_id: String,
    /// All stdout so far.
    pub stdout: String,
    /// All stderr so far.
    pub stderr: String,
}

/// `POST /api/write`, `POST /api/delete`.
#[derive(Debug, Serialize)]
pub struct PathDone {
    /// The path as requested.
    pub path: String,
}

/// `POST /api/read`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRead {
    /// The path as requested.
    pub path: String,
    /// Text or base64.
    pub content: String,
    /// `"utf-8"` or `"base64"`.
    pub encoding: &'static str,
    /// Whether `content` is base64.
    pub is_binary: bool,
    /// MIME type.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// `POST /api/mkdir`.
#[derive(Debug, Serialize)]
pub struct DirectoryCreated {
    /// The path as requested.
    pub path: String,
    /// As requested.
    pub recursive: bool,
}

/// `POST /api/exists`.
#[derive(Debug, Serialize)]
pub struct FileExists {
    /// The path as requested.
    pub path: String,
    /// Whether it exists.
    pub exists: bool,
}

/// `GET /_local/info`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalInfo {
    /// Whether sandbox processes run in private mount namespaces.
    pub isolation: bool,
    /// The state directory (canonical).
    pub state_dir: PathBuf,
    /// Ids of the sandboxes that are live in this server.
    pub sandboxes: Vec<String>,
}

/// `POST /_local/containers/{id}/start`.
#[derive(Debug, Serialize)]
pub struct ContainerStarted {
    /// The sandbox id.
    pub id: String,
}

/// `DELETE /_local/containers/{id}`.
#[derive(Debug, Serialize)]
pub struct ContainerDestroyed {
    /// The sandbox id.
    pub id: String,
    /// Whether it had any state (live or on disk).
    pub existed: bool,
}

/// Events of `POST /api/execute/stream`.
#[derive(Debug, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ExecEvent {
    /// First event.
    Start {
        /// The command text.
        command: String,
        /// When it started.
        timestamp: String,
    },
    /// A chunk of stdout.
    Stdout {
        /// UTF-8 text (never a split character).
        data: String,
        /// When it was read.
        timestamp: String,
    },
    /// A chunk of stderr.
    Stderr {
        /// UTF-8 text (never a split character).
        data: String,
        /// When it was read.
        timestamp: String,
    },
    /// Last event when the command ran to its end.
    Complete {
        /// Exit status.
        exit_code: i32,
        /// When it ended.
        timestamp: String,
    },
    /// Last event when the command's output could not be followed to its end.
    Error {
        /// What went wrong.
        error: String,
        /// The same text, where the SDK's `exec` reads it.
        data: String,
        /// When it happened.
        timestamp: String,
    },
}

impl ExecEvent {
    /// A `stdout` or `stderr` event, stamped now.
    pub fn output(stream: Stream, data: String) -> Self {
        let timestamp = now_iso();
        match stream {
            Stream::Stdout => Self::Stdout { data, timestamp },
            Stream::Stderr => Self::Stderr { data, timestamp },
        }
    }
}

/// Events of `GET /api/process/{id}/stream`.
#[derive(Debug, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ProcessEvent {
    /// First event.
    ProcessInfo {
        /// Process id.
        process_id: String,
        /// The command text.
        command: String,
        /// Status when the stream started.
        status: ProcessStatus,
        /// Now.
        timestamp: String,
    },
    /// A chunk of stdout (buffered output first, then live).
    Stdout {
        /// UTF-8 text.
        data: String,
        /// Process id.
        process_id: String,
        /// When it was sent.
        timestamp: String,
    },
    /// A chunk of stderr (buffered output first, then live).
    Stderr {
        /// UTF-8 text.
        data: String,
        /// Process id.
        process_id: String,
        /// When it was sent.
        timestamp: String,
    },
    /// Last event.
    Exit {
        /// Process id.
        process_id: String,
        /// Exit status, if known.
        exit_code: Option<i32>,
        /// `Process <status> with exit code <n>`.
        data: String,
        /// When it was sent.
        timestamp: String,
    },
}

impl ProcessEvent {
    /// A `stdout` or `stderr` event of process `process_id`, stamped now.
    pub fn output(stream: Stream, data: String, process_id: &str) -> Self {
        let (process_id, timestamp) = (process_id.to_owned(), now_iso());
        match stream {
            Stream::Stdout => Self::Stdout {
                data,
                process_id,
                timestamp,
            },
            Stream::Stderr => Self::Stderr {
                data,
                process_id,
                timestamp,
            },
        }
    }
}
