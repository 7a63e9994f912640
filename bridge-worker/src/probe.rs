//! The probe's pure part: validating its request and wording its result.

use crate::error::BridgeError;
use bridge_protocol::api::ProbeRequest;
use bridge_protocol::remote_path::RemotePath;

/// A validated probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    /// Directory to create and enter.
    pub cwd: RemotePath,
    /// Deadline for running the command (destroying gets its own).
    pub timeout_ms: u64,
}

impl ProbePlan {
    /// Default deadline; the Paperclip host gives a probe 120 s in all.
    pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
    /// Longest deadline accepted.
    pub const MAX_TIMEOUT_MS: u64 = 110_000;

    /// Validates the request, filling defaults.
    pub fn from_request(request: &ProbeRequest) -> Result<Self, BridgeError> {
        let cwd = RemotePath::requested_cwd(request.requested_cwd.as_deref())?;
        let timeout_ms = request.timeout_ms.unwrap_or(Self::DEFAULT_TIMEOUT_MS);
        if !(1..=Self::MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(BridgeError::InvalidRequest(format!(
                "timeoutMs must be between 1 and {} milliseconds, got {timeout_ms}",
                Self::MAX_TIMEOUT_MS
            )));
        }
        Ok(Self { cwd, timeout_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_protocol::api::DEFAULT_REMOTE_CWD;

    #[test]
    fn fills_defaults_and_validates() {
        let plan = ProbePlan::from_request(&ProbeRequest::default()).expect("valid");
        assert_eq!(plan.cwd.as_str(), DEFAULT_REMOTE_CWD);
        assert_eq!(plan.timeout_ms, ProbePlan::DEFAULT_TIMEOUT_MS);
        let request = ProbeRequest {
            requested_cwd: Some("relative".into()),
            timeout_ms: None,
        };
        assert!(matches!(
            ProbePlan::from_request(&request),
            Err(BridgeError::InvalidRequest(message)) if message.contains("requestedCwd")
        ));
        let request = ProbeRequest {
            requested_cwd: None,
            timeout_ms: Some(0),
        };
        assert!(matches!(
            ProbePlan::from_request(&request),
            Err(BridgeError::InvalidRequest(message)) if message.contains("timeoutMs")
        ));
    }
}
