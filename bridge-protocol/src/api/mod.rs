//! Wire types of the bridge HTTP API (v1), shared by the Worker and every Rust client.
//!
//! Bodies are camelCase JSON. Each route has its own request and response type, so neither side
//! ever builds or reads JSON by hand.

mod error;
mod exec;
mod files;
mod health;
mod lease;
mod probe;

pub use error::{ErrorBody, ErrorCode, ErrorDetails};
pub use exec::{
    CancelRequest, CancelResponse, ExecRequest, ExecResult, OutputChunk, OutputStream, SessionMode,
    StreamFailure,
};
pub use files::{DownloadRequest, TransferFormat, UploadResult, UploadTarget};
pub use health::{Capabilities, HealthResponse};
pub use lease::{
    AcquireLeaseRequest, ExecutionRecord, ExecutionStatus, LeaseDetails, LeaseResponse, LeaseState,
    ReleaseLeaseRequest, ResumeLeaseRequest, ReuseScope, SessionStrategy, TerminationReceipt,
    TerminationState,
};
pub use probe::{ProbeRequest, ProbeResponse};

/// Prefix of every API route.
pub const BASE_PATH: &str = "/api/paperclip-sandbox/v1";
/// Unauthenticated liveness route for load balancers; answers a bare `ok`.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Provider name reported by `/health`.
pub const PROVIDER: &str = "cloudflare";
/// Version of this API; bumped only on incompatible changes.
pub const API_VERSION: u32 = 1;
/// Version of the bridge build, reported by `/health`.
pub const BRIDGE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Remote working directory used when a client asks for none.
pub const DEFAULT_REMOTE_CWD: &str = "/workspace/paperclip";
/// Environment variable marking every process of an execution inside its sandbox; its value is
/// the execution id.
pub const EXECUTION_ENV_VAR: &str = "PAPERCLIP_BRIDGE_EXECUTION";
/// Environment variable marking every process of a lease's executions; its value is the lease id
/// (one sandbox per lease, but the local stack runs every sandbox on one host).
pub const LEASE_ENV_VAR: &str = "PAPERCLIP_BRIDGE_LEASE";
