//! `POST /probe`: proves end to end that the bridge can create, use and destroy a sandbox.

use serde::{Deserialize, Serialize};

/// Probe parameters; every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRequest {
    /// Directory to create and run `pwd` in; defaults to [`super::DEFAULT_REMOTE_CWD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_cwd: Option<String>,
    /// Deadline for the whole probe in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A successful probe; failures are error bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResponse {
    /// Always `true`.
    pub ok: bool,
    /// One sentence for the operator.
    pub summary: String,
    /// What `pwd` printed in the sandbox.
    pub remote_cwd: String,
    /// The throw-away sandbox that was used and destroyed.
    pub sandbox_id: String,
    /// Wall time of create + run + destroy.
    pub duration_ms: u64,
}
