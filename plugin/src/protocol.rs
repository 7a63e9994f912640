//! Parameters and results of the host's environment methods (`@paperclipai/plugin-sdk`
//! 2026.916.1). Open-ended host maps (`metadata`, `config`) stay JSON objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields every environment call carries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverParams {
    /// The environment's configuration (secret refs resolved on runtime calls).
    #[serde(default)]
    pub config: Value,
    /// The Paperclip environment.
    #[serde(default)]
    pub environment_id: Option<String>,
    /// The issue, if any.
    #[serde(default)]
    pub issue_id: Option<String>,
}

/// `environmentValidateConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct ValidateConfigParams {
    /// The configuration to check.
    #[serde(default)]
    pub config: Value,
}

/// `environmentAcquireLease`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcquireParams {
    /// Common fields.
    #[serde(flatten)]
    pub driver: DriverParams,
    /// The run (a fresh UUID for connection tests).
    pub run_id: String,
}

/// `environmentResumeLease`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeParams {
    /// Common fields.
    #[serde(flatten)]
    pub driver: DriverParams,
    /// The lease to reattach.
    pub provider_lease_id: String,
}

/// `environmentReleaseLease` and `environmentDestroyLease`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminateParams {
    /// Common fields.
    #[serde(flatten)]
    pub driver: DriverParams,
    /// The lease; `null` when acquisition never produced one.
    #[serde(default)]
    pub provider_lease_id: Option<String>,
    /// Stop running commands first.
    #[serde(default)]
    pub cancel_active_work: bool,
}

/// A lease as the host passes it back.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// The lease id.
    #[serde(default)]
    pub provider_lease_id: Option<String>,
    /// What acquire returned, merged with host keys.
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl Lease {
    /// The remote working directory acquire reported.
    pub fn remote_cwd(&self) -> Option<&str> {
        self.metadata.get("remoteCwd").and_then(Value::as_str)
    }
}

/// The workspace of `environmentRealizeWorkspace`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Where the host wants it in the sandbox.
    #[serde(default)]
    pub remote_path: Option<String>,
}

/// `environmentRealizeWorkspace`.
#[derive(Debug, Clone, Deserialize)]
pub struct RealizeParams {
    /// Common fields.
    #[serde(flatten)]
    pub driver: DriverParams,
    /// The lease.
    #[serde(default)]
    pub lease: Lease,
    /// The workspace.
    #[serde(default)]
    pub workspace: Workspace,
}

/// `environmentSyncIn` and `environmentSyncOut`.
#[derive(Debug, Clone, Deserialize)]
pub struct SyncParams {
    /// Common fields.
    #[serde(flatten)]
    pub driver: DriverParams,
    /// The lease.
    #[serde(default)]
    pub lease: Lease,
    /// What to move, in order.
    pub operations: Vec<SyncOperation>,
}

/// One operation of a sync call: its mappings, then (in) the commands run after the upload.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    /// Echoed in the result.
    pub operation_id: String,
    /// The mappings.
    #[serde(default)]
    pub files: Vec<SyncFileMapping>,
    /// Run in order once every file is in, fail-fast (`environmentSyncIn` only).
    #[serde(default)]
    pub post_upload_commands: Vec<PostUploadCommand>,
}

/// Whether a mapping is one file or a directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    /// One regular file.
    File,
    /// A directory and everything below it.
    Directory,
}

/// One source → target mapping. In: source on the host, target in the sandbox; out: reversed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncFileMapping {
    /// Where the bytes are.
    pub source_path: String,
    /// Where they go.
    pub target_path: String,
    /// File or directory.
    pub kind: SyncKind,
    /// Permission bits of the target.
    #[serde(default)]
    pub mode: Option<u32>,
    /// GNU-tar-style patterns left out of a directory.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Copy what symlinks point to instead of the links.
    #[serde(default)]
    pub follow_symlinks: bool,
}

/// A shell command the provider runs after an upload.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostUploadCommand {
    /// A `sh -c` script, run verbatim.
    pub command: String,
    /// Working directory (`/` when absent).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Deadline; the configuration's `timeoutMs` when absent.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The result of a sync call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncResult {
    /// One entry per operation, in order.
    pub operations: Vec<SyncOperationResult>,
}

/// What one operation moved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResult {
    /// The operation's id.
    pub operation_id: String,
    /// Regular files laid down.
    pub files_transferred: u64,
    /// Their bytes.
    pub bytes_transferred: u64,
}

/// `environmentExecute`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteParams {
    /// Common fields.
    #[serde(flatten)]
    pub driver: DriverParams,
    /// The lease.
    #[serde(default)]
    pub lease: Lease,
    /// argv[0].
    pub command: String,
    /// argv[1..].
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory; the lease's `remoteCwd` when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Environment additions (may hold the host's own secrets: never logged).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Text for stdin; absent or `null` means empty.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Timeout; the configuration's when absent.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Run outside any session.
    #[serde(default)]
    pub bypass_session: bool,
}

/// Result of `environmentValidateConfig`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateConfigResult {
    /// No errors.
    pub ok: bool,
    /// What must change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What may surprise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The configuration to store.
    pub normalized_config: Map<String, Value>,
}

/// One finding of a probe.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    /// `info`, `warning` or `error`.
    pub severity: &'static str,
    /// What was found.
    pub message: String,
    /// The bridge's error code, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Result of `environmentProbe`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    /// The bridge could create, use and destroy a sandbox.
    pub ok: bool,
    /// One sentence.
    pub summary: String,
    /// Details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// Facts for the host's test summary.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// Result of acquire and resume.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseResult {
    /// The lease; `null` when a resumed lease is gone.
    pub provider_lease_id: Option<String>,
    /// Merged into the host's lease metadata: only keys the host does not own.
    pub metadata: Map<String, Value>,
}

/// A termination receipt.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptResult {
    /// The lease.
    pub provider_lease_id: String,
    /// `stopped` or `destroyed`.
    pub state: bridge_protocol::api::TerminationState,
}

/// Result of `environmentRealizeWorkspace`.
#[derive(Debug, Clone, Serialize)]
pub struct RealizeResult {
    /// The remote working directory.
    pub cwd: String,
    /// Facts for the host's realization record.
    pub metadata: Map<String, Value>,
}

/// Result of `environmentExecute`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteResult {
    /// Exit code; `null` when the command was killed.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The timeout fired.
    pub timed_out: bool,
    /// Complete stdout.
    pub stdout: String,
    /// Complete stderr.
    pub stderr: String,
    /// Timing for the host's spans.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}
