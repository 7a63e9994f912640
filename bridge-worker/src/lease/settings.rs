//! Validated lease settings, from an acquire or resume request.

use serde::{Deserialize, Serialize};

use crate::error::BridgeError;
use crate::sandbox::SandboxId;
use bridge_protocol::api::{AcquireLeaseRequest, ReuseScope, SessionStrategy};
use bridge_protocol::fields::{identifier, lifecycle_timeout, optional_sleep_after, session_id};
use bridge_protocol::remote_path::RemotePath;

/// Everything a lease keeps from its acquisition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSettings {
    /// The Paperclip environment.
    pub environment_id: String,
    /// The run that acquired it.
    pub run_id: String,
    /// The issue, if any.
    pub issue_id: Option<String>,
    /// Survives release, reattachable.
    pub reusable: bool,
    /// Default working directory.
    pub remote_cwd: String,
    /// Name of the lease's session.
    pub session_id: String,
    /// Default session policy.
    pub session_strategy: SessionStrategy,
    /// Container stays up while idle.
    pub keep_alive: bool,
    /// Idle time before the container sleeps.
    pub sleep_after: Option<String>,
}

/// A validated acquire request, addressed to its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcquirePlan {
    /// The lease (and sandbox) id.
    pub lease_id: String,
    /// The settings to record.
    pub settings: LeaseSettings,
    /// Deadline for preparing the sandbox.
    pub timeout_ms: u64,
}

impl AcquirePlan {
    /// Validates `request` and derives the lease id.
    pub fn from_request(request: &AcquireLeaseRequest) -> Result<Self, BridgeError> {
        let environment_id = identifier("environmentId", &request.environment_id)?;
        let run_id = identifier("runId", &request.run_id)?;
        let issue_id = request
            .issue_id
            .as_deref()
            .filter(|issue| !issue.is_empty())
            .map(|issue| identifier("issueId", issue))
            .transpose()?;
        if request.reuse_lease && !request.keep_alive {
            return Err(BridgeError::InvalidRequest(
                "reuseLease requires keepAlive: a reusable sandbox must stay up between runs"
                    .into(),
            ));
        }
        let lease_id: SandboxId = if request.reuse_lease {
            super::id::reusable(
                &environment_id,
                request.reuse_scope.unwrap_or(ReuseScope::Environment),
                issue_id.as_deref(),
            )?
        } else {
            super::id::per_run(&environment_id, &run_id)?
        };
        let remote_cwd = RemotePath::requested_cwd(request.requested_cwd.as_deref())?;
        Ok(Self {
            lease_id: lease_id.to_string(),
            settings: LeaseSettings {
                environment_id,
                run_id,
                issue_id,
                reusable: request.reuse_lease,
                remote_cwd: remote_cwd.to_string(),
                session_id: session_id(request.session_id.as_deref())?,
                session_strategy: request.session_strategy.unwrap_or_default(),
                keep_alive: request.keep_alive,
                sleep_after: optional_sleep_after(request.sleep_after.as_deref())?,
            },
            timeout_ms: lifecycle_timeout(request.timeout_ms)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use bridge_protocol::fields::{DEFAULT_LIFECYCLE_TIMEOUT_MS, DEFAULT_SESSION_ID};

    use super::*;
    use bridge_protocol::api::DEFAULT_REMOTE_CWD;

    fn request() -> AcquireLeaseRequest {
        AcquireLeaseRequest {
            environment_id: "env-1".into(),
            run_id: "run-1".into(),
            ..AcquireLeaseRequest::default()
        }
    }

    fn rejection(request: &AcquireLeaseRequest) -> String {
        match AcquirePlan::from_request(request) {
            Err(BridgeError::InvalidRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn fills_defaults() {
        let plan = AcquirePlan::from_request(&request()).expect("valid");
        assert!(plan.lease_id.starts_with("pc-run-1-"));
        assert_eq!(plan.settings.remote_cwd, DEFAULT_REMOTE_CWD);
        assert_eq!(plan.settings.session_id, DEFAULT_SESSION_ID);
        assert_eq!(plan.settings.session_strategy, SessionStrategy::Named);
        assert!(!plan.settings.reusable);
        assert_eq!(plan.timeout_ms, DEFAULT_LIFECYCLE_TIMEOUT_MS);
    }

    #[test]
    fn reusable_leases_need_keep_alive_and_get_environment_ids() {
        let message = rejection(&AcquireLeaseRequest {
            reuse_lease: true,
            ..request()
        });
        assert!(
            message.contains("reuseLease requires keepAlive"),
            "{message}"
        );
        let plan = AcquirePlan::from_request(&AcquireLeaseRequest {
            reuse_lease: true,
            keep_alive: true,
            ..request()
        })
        .expect("valid");
        assert_eq!(plan.lease_id, "pc-env-env-1");
    }

    #[test]
    fn rejects_bad_fields_with_their_names() {
        let cases = [
            (
                AcquireLeaseRequest {
                    environment_id: String::new(),
                    ..request()
                },
                "environmentId",
            ),
            (
                AcquireLeaseRequest {
                    run_id: "a\nb".into(),
                    ..request()
                },
                "runId",
            ),
            (
                AcquireLeaseRequest {
                    requested_cwd: Some("rel".into()),
                    ..request()
                },
                "requestedCwd",
            ),
            (
                AcquireLeaseRequest {
                    session_id: Some("a b".into()),
                    ..request()
                },
                "sessionId",
            ),
            (
                AcquireLeaseRequest {
                    sleep_after: Some("10 minutes".into()),
                    ..request()
                },
                "sleepAfter",
            ),
            (
                AcquireLeaseRequest {
                    timeout_ms: Some(0),
                    ..request()
                },
                "timeoutMs",
            ),
        ];
        for (request, field) in cases {
            let message = rejection(&request);
            assert!(message.contains(field), "{field}: {message}");
        }
    }
}
