//! `GET /health`.

use serde::{Deserialize, Serialize};

/// What this bridge deployment is and what it can do, so a client can refuse a bridge too old for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// Always `true` when the bridge answers at all.
    pub ok: bool,
    /// Always `cloudflare`.
    pub provider: String,
    /// Version of the bridge build.
    pub bridge_version: String,
    /// Version of the HTTP API.
    pub api_version: u32,
    /// Features this deployment offers.
    pub capabilities: Capabilities,
}

/// Feature flags; a flag is `true` only once the feature is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// `POST /probe` is served.
    pub probe: bool,
    /// Responses carry `X-PCB-Response-Signature`.
    pub response_signing: bool,
    /// Leases can be kept warm and reattached.
    pub reuse_lease: bool,
    /// Commands can run in named persistent sessions.
    pub named_sessions: bool,
    /// `POST /exec` can answer with an SSE stream.
    pub streaming: bool,
    /// Running executions can be cancelled.
    pub cancel: bool,
}
