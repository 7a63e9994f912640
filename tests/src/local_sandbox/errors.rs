//! Every failure a request can meet, and the ONE place where it becomes the real container's error
//! body `{code, message, context, operation?, httpStatus, timestamp, suggestion?}`, answered with
//! HTTP status = `httpStatus`. Codes, statuses, messages and suggestions follow
//! `packages/shared/src/errors` of `cloudflare/sandbox-sdk`. Nothing here is ever a 503: the SDK
//! retries every 503 for about 150 s.

use std::fmt;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::time::now_iso;

/// The subset of the container's error codes that local-sandbox can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// `FILE_NOT_FOUND` (404).
    FileNotFound,
    /// `IS_DIRECTORY` (400).
    IsDirectory,
    /// `FILE_TOO_LARGE` (413).
    FileTooLarge,
    /// `FILESYSTEM_ERROR` (500).
    FilesystemError,
    /// `COMMAND_NOT_FOUND` (404): killing a process that already ended.
    CommandNotFound,
    /// `INVALID_COMMAND` (400).
    InvalidCommand,
    /// `COMMAND_EXECUTION_ERROR` (500), including session timeouts.
    CommandExecutionError,
    /// `STREAM_START_ERROR` (500).
    StreamStartError,
    /// `PROCESS_NOT_FOUND` (404).
    ProcessNotFound,
    /// `SESSION_ALREADY_EXISTS` (409).
    SessionAlreadyExists,
    /// `SESSION_DESTROYED` (410).
    SessionDestroyed,
    /// `SESSION_TERMINATED` (410).
    SessionTerminated,
    /// `VALIDATION_FAILED` (400).
    ValidationFailed,
    /// `UNKNOWN_ERROR`: the router's answer for an unknown endpoint (sent with 404).
    UnknownError,
    /// `INTERNAL_ERROR` (500).
    InternalError,
}

impl ErrorCode {
    /// The status the container's `getHttpStatus` maps this code to.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::FileNotFound | Self::CommandNotFound | Self::ProcessNotFound => {
                StatusCode::NOT_FOUND
            }
            Self::IsDirectory | Self::InvalidCommand | Self::ValidationFailed => {
                StatusCode::BAD_REQUEST
            }
            Self::SessionAlreadyExists => StatusCode::CONFLICT,
            Self::SessionDestroyed | Self::SessionTerminated => StatusCode::GONE,
            Self::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::FilesystemError
            | Self::CommandExecutionError
            | Self::StreamStartError
            | Self::UnknownError
            | Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The session id that asks for a one-shot `bash -c` instead of a session shell.
pub const SESSIONLESS: &str = "__DISABLE_SESSION__";

/// Where a command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecTarget {
    /// A named session shell.
    Session(String),
    /// A one-shot `bash -c` (session id `"__DISABLE_SESSION__"`).
    Sessionless,
}

impl ExecTarget {
    /// The session id as requests spell it (`"__DISABLE_SESSION__"` for sessionless).
    pub fn session_id(&self) -> &str {
        match self {
            Self::Session(id) => id,
            Self::Sessionless => SESSIONLESS,
        }
    }
}

impl fmt::Display for ExecTarget {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(id) => write!(formatter, "session '{id}'"),
            Self::Sessionless => formatter.write_str("sessionless execution"),
        }
    }
}

/// How a command was asked for; the container words (and codes) their failures differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandCall {
    /// Run to completion (`execute`).
    Run,
    /// Start in the background (`execute/stream`, processes).
    Start,
}

/// The file operation an error belongs to (the body's `operation` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOperation {
    /// `file.read`.
    Read,
    /// `file.write`.
    Write,
    /// `file.delete`.
    Delete,
    /// `directory.create`.
    Mkdir,
}

impl FileOperation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "file.read",
            Self::Write => "file.write",
            Self::Delete => "file.delete",
            Self::Mkdir => "directory.create",
        }
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route for this method and path.
    #[error("The requested endpoint was not found")]
    RouteNotFound,
    /// The request is malformed (body, header or a field's value).
    #[error("{message}")]
    Validation {
        /// Human-readable reason.
        message: String,
        /// The offending field (`body`, `path`, `X-Sandbox-Id`, …).
        field: &'static str,
    },
    /// `session/create` for an id whose shell is alive.
    #[error("Session '{session_id}' already exists")]
    SessionAlreadyExists {
        /// The session id.
        session_id: String,
    },
    /// `session/delete` for an unknown id (the container answers `INTERNAL_ERROR`).
    #[error("Session '{session_id}' not found")]
    SessionNotFound {
        /// The session id.
        session_id: String,
    },
    /// The session's shell exited (e.g. the command ran `exit`); the next call gets a new shell.
    #[error("Session '{session_id}' shell exited (exit code: {})", display_code(*exit_code))]
    SessionTerminated {
        /// The session id.
        session_id: String,
        /// The shell's exit status, if known.
        exit_code: Option<i32>,
    },
    /// The session was deleted or its sandbox destroyed while the command ran.
    #[error("Session '{session_id}' was destroyed during command execution")]
    SessionDestroyed {
        /// The session id.
        session_id: String,
    },
    /// A command could not be run or did not finish in time.
    #[error("Failed to execute command '{command}' in {target}: {reason}")]
    CommandFailed {
        /// The command text.
        command: String,
        /// Where it ran.
        target: ExecTarget,
        /// Why, e.g. `Command timeout after 500ms`.
        reason: String,
    },
    /// A streaming or background command could not be started.
    #[error("Failed to execute streaming command '{command}' in {target}: {reason}")]
    StreamStartFailed {
        /// The command text.
        command: String,
        /// Where it should have run.
        target: ExecTarget,
        /// Why.
        reason: String,
    },
    /// A process was started with an empty command.
    #[error("Invalid command: empty command provided")]
    EmptyCommand,
    /// No process with this id.
    #[error("Process {process_id} not found")]
    ProcessNotFound {
        /// The process id.
        process_id: String,
    },
    /// The process exists but is no longer running.
    #[error(
        "Command '{process_id}' not found or already completed in session '{}'",
        target.session_id()
    )]
    ProcessNotRunning {
        /// The process id.
        process_id: String,
        /// Where it ran.
        target: ExecTarget,
    },
    /// The file does not exist.
    #[error("File not found: {path}")]
    FileNotFound {
        /// The sandbox path.
        path: String,
        /// What was attempted.
        operation: FileOperation,
    },
    /// A file operation met a directory.
    #[error("{message}")]
    IsDirectory {
        /// The sandbox path.
        path: String,
        /// What was attempted.
        operation: FileOperation,
        /// Human-readable reason.
        message: String,
    },
    /// The file is over the 32 MiB limit of encoded reads.
    #[error(
        "File too large. Size {size} bytes exceeds the 32 MiB limit. Use readFile() with {{ encoding: 'none' }} and the RPC transport for large files."
    )]
    FileTooLarge {
        /// The sandbox path.
        path: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        max_size: u64,
    },
    /// Any other filesystem failure.
    #[error("{message}")]
    FileSystem {
        /// The sandbox path.
        path: String,
        /// What was attempted.
        operation: FileOperation,
        /// Human-readable summary.
        message: String,
        /// The underlying error.
        stderr: String,
    },
    /// Anything else (the container's `INTERNAL_ERROR`).
    #[error("{0}")]
    Internal(String),
}

fn display_code(code: Option<i32>) -> String {
    code.map_or_else(|| "unknown".to_owned(), |code| code.to_string())
}

impl ApiError {
    /// A command that could not be run (`COMMAND_EXECUTION_ERROR`) or started
    /// (`STREAM_START_ERROR`).
    pub fn command(call: CommandCall, command: &str, target: &ExecTarget, reason: String) -> Self {
        let (command, target) = (command.to_owned(), target.clone());
        match call {
            CommandCall::Run => Self::CommandFailed {
                command,
                target,
                reason,
            },
            CommandCall::Start => Self::StreamStartFailed {
                command,
                target,
                reason,
            },
        }
    }

    /// A request-validation failure on `field`.
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            message: message.into(),
            field,
        }
    }

    /// The container's error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::RouteNotFound => ErrorCode::UnknownError,
            Self::Validation { .. } => ErrorCode::ValidationFailed,
            Self::SessionAlreadyExists { .. } => ErrorCode::SessionAlreadyExists,
            Self::SessionNotFound { .. } | Self::Internal(_) => ErrorCode::InternalError,
            Self::SessionTerminated { .. } => ErrorCode::SessionTerminated,
            Self::SessionDestroyed { .. } => ErrorCode::SessionDestroyed,
            Self::CommandFailed { .. } => ErrorCode::CommandExecutionError,
            Self::StreamStartFailed { .. } => ErrorCode::StreamStartError,
            Self::EmptyCommand => ErrorCode::InvalidCommand,
            Self::ProcessNotFound { .. } => ErrorCode::ProcessNotFound,
            Self::ProcessNotRunning { .. } => ErrorCode::CommandNotFound,
            Self::FileNotFound { .. } => ErrorCode::FileNotFound,
            Self::IsDirectory { .. } => ErrorCode::IsDirectory,
            Self::FileTooLarge { .. } => ErrorCode::FileTooLarge,
            Self::FileSystem { .. } => ErrorCode::FilesystemError,
        }
    }

    /// The HTTP status: the code's, except the router's 404 for unknown endpoints.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            other => other.code().http_status(),
        }
    }

    /// The body's `context` object.
    fn context(&self) -> Value {
        match self {
            Self::RouteNotFound | Self::EmptyCommand | Self::Internal(_) => json!({}),
            Self::Validation { message, field } => {
                let code = if *field == "path" {
                    "INVALID_PATH"
                } else {
                    "INVALID_REQUEST"
                };
                json!({"validationErrors": [{"field": field, "message": message, "code": code}]})
            }
            Self::SessionAlreadyExists { session_id } => {
                json!({"sessionId": session_id, "containerPlacementId": null})
            }
            Self::SessionNotFound { session_id } => {
                json!({"sessionId": session_id, "originalError": "Session not found"})
            }
            Self::SessionTerminated {
                session_id,
                exit_code,
            } => json!({"sessionId": session_id, "exitCode": exit_code}),
            Self::SessionDestroyed { session_id } => json!({"sessionId": session_id}),
            Self::CommandFailed {
                command, reason, ..
            }
            | Self::StreamStartFailed {
                command, reason, ..
            } => json!({"command": command, "stderr": reason}),
            Self::ProcessNotFound { process_id } => json!({"processId": process_id}),
            Self::ProcessNotRunning { process_id, .. } => json!({"command": process_id}),
            Self::FileNotFound { path, operation }
            | Self::IsDirectory {
                path, operation, ..
            } => json!({"path": path, "operation": operation.as_str()}),
            Self::FileTooLarge {
                path,
                size,
                max_size,
            } => json!({
                "path": path,
                "operation": FileOperation::Read.as_str(),
                "actualSize": size,
                "maxSize": max_size
            }),
            Self::FileSystem {
                path,
                operation,
                stderr,
                ..
            } => json!({"path": path, "operation": operation.as_str(), "stderr": stderr}),
        }
    }

    /// The body's `operation` field (the container copies `context.operation`).
    fn operation(&self) -> Option<&'static str> {
        match self {
            Self::FileNotFound { operation, .. }
            | Self::IsDirectory { operation, .. }
            | Self::FileSystem { operation, .. } => Some(operation.as_str()),
            Self::FileTooLarge { .. } => Some(FileOperation::Read.as_str()),
            _ => None,
        }
    }

    /// The container's `getSuggestion` text for this failure, if it has one.
    fn suggestion(&self) -> Option<String> {
        Some(match self {
            Self::FileNotFound { path, .. } => {
                format!("Ensure the file exists at {path} before attempting to access it")
            }
            Self::ProcessNotRunning { process_id, .. } => {
                format!("Check that \"{process_id}\" is installed and available in the system PATH")
            }
            Self::ProcessNotFound { .. } => {
                "Verify the process ID is correct and the process has not already exited".into()
            }
            Self::SessionAlreadyExists { session_id } => format!(
                "Session \"{session_id}\" already exists. Use a different session ID or reuse the existing session"
            ),
            Self::SessionDestroyed { session_id } => format!(
                "Session \"{session_id}\" was destroyed. Create a new session to continue executing commands"
            ),
            Self::SessionTerminated {
                session_id,
                exit_code,
            } => format!(
                "Session \"{session_id}\" ended because its shell exited (exit code: {}). Session-local state (env vars, cwd, shell functions) has been lost. Retry the call to start a fresh session, or call createSession() with the same id to recreate it explicitly",
                display_code(*exit_code)
            ),
            Self::Validation { .. } => {
                "Check the request parameters and ensure they match the required format".into()
            }
            Self::IsDirectory { path, .. } => {
                format!("Cannot perform this operation on a directory. Path {path} is a directory")
            }
            _ => return None,
        })
    }
}

/// The container's `ErrorResponse` JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    code: ErrorCode,
    message: String,
    context: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<&'static str>,
    http_status: u16,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggestion: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(code = ?self.code(), "{self}");
        } else {
            tracing::debug!(code = ?self.code(), "{self}");
        }
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
            context: self.context(),
            operation: self.operation(),
            http_status: status.as_u16(),
            timestamp: now_iso(),
            suggestion: self.suggestion(),
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::{ApiError, ErrorCode, ExecTarget};

    #[test]
    fn session_timeout_reads_like_the_container() {
        let error = ApiError::CommandFailed {
            command: "sleep 5".into(),
            target: ExecTarget::Session("s1".into()),
            reason: "Command timeout after 500ms".into(),
        };
        assert_eq!(
            error.to_string(),
            "Failed to execute command 'sleep 5' in session 's1': Command timeout after 500ms"
        );
        assert_eq!(error.code(), ErrorCode::CommandExecutionError);
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn no_error_is_ever_a_503() {
        for code in [
            ErrorCode::FileNotFound,
            ErrorCode::IsDirectory,
            ErrorCode::FileTooLarge,
            ErrorCode::FilesystemError,
            ErrorCode::CommandNotFound,
            ErrorCode::InvalidCommand,
            ErrorCode::CommandExecutionError,
            ErrorCode::StreamStartError,
            ErrorCode::ProcessNotFound,
            ErrorCode::SessionAlreadyExists,
            ErrorCode::SessionDestroyed,
            ErrorCode::SessionTerminated,
            ErrorCode::ValidationFailed,
            ErrorCode::UnknownError,
            ErrorCode::InternalError,
        ] {
            assert_ne!(
                code.http_status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "{code:?}"
            );
        }
        assert_eq!(ApiError::RouteNotFound.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn terminated_session_names_the_exit_code() {
        let error = ApiError::SessionTerminated {
            session_id: "s".into(),
            exit_code: None,
        };
        assert_eq!(
            error.to_string(),
            "Session 's' shell exited (exit code: unknown)"
        );
        assert_eq!(error.status(), StatusCode::GONE);
    }
}
