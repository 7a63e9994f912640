//! Every way a host call can fail, and the one place where a failure becomes the host's JSON-RPC
//! error. Whether a bridge failure may be retried is decided once, by the bridge client
//! ([`ClientError::is_transient`]); the client retries only those, inside each call's deadline.

use bridge_protocol::client::ClientError;

use crate::config::ConfigError;
use crate::rpc::{RpcError, codes};
use crate::sync::SyncError;

/// A failed host call.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The parameters are not what the method takes.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// The environment's configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A call to the bridge failed.
    #[error(transparent)]
    Bridge(#[from] ClientError),
    /// The call needs a lease the host did not name.
    #[error("{0} needs a lease with a providerLeaseId")]
    NoLease(&'static str),
    /// The workspace directory could not be created in the sandbox.
    #[error("could not create the workspace directory {cwd} (exit code {exit_code:?}): {stderr}")]
    Workspace {
        /// The directory.
        cwd: String,
        /// The exit code of `mkdir -p`.
        exit_code: Option<i32>,
        /// What it said.
        stderr: String,
    },
    /// A native sync operation failed; the message names the operation and the path.
    #[error("native file sync failed: {0}")]
    Sync(Box<SyncError>),
    /// A result could not be encoded for the host.
    #[error("cannot encode the result: {0}")]
    Encode(String),
}

impl From<SyncError> for ProviderError {
    fn from(error: SyncError) -> Self {
        Self::Sync(Box::new(error))
    }
}

impl From<ProviderError> for RpcError {
    fn from(error: ProviderError) -> Self {
        let code = match error {
            ProviderError::InvalidParams(_) => codes::INVALID_PARAMS,
            _ => codes::WORKER_ERROR,
        };
        RpcError::new(code, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_code_and_keeps_its_sentence() {
        let invalid = RpcError::from(ProviderError::InvalidParams("missing field".into()));
        assert_eq!(invalid.code, codes::INVALID_PARAMS);
        let unavailable = RpcError::from(ProviderError::Bridge(ClientError::Gateway(503)));
        assert_eq!(unavailable.code, codes::WORKER_ERROR);
        assert!(
            unavailable.message.contains("temporarily unavailable"),
            "the words the host's resume retry looks for survive: {}",
            unavailable.message
        );
    }
}
