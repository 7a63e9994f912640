//! Validated lease settings, from an acquire or resume request.

use serde::{Deserialize, Serialize};

use crate::api::{AcquireLeaseRequest, ReuseScope, SessionStrategy};
use crate::error::BridgeError;
use crate::remote_path::RemotePath;
use crate::sandbox::SandboxId;

/// Session name used when a client names none.
pub const DEFAULT_SESSION_ID: &str = "paperclip";
/// Default deadline for preparing or reattaching a sandbox.
pub const DEFAULT_LIFECYCLE_TIMEOUT_MS: u64 = 120_000;
/// Longest deadline accepted for a lifecycle operation.
pub const MAX_LIFECYCLE_TIMEOUT_MS: u64 = 600_000;

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

/// A deadline for acquire or resume: default, or the request's within bounds.
pub fn lifecycle_timeout(timeout_ms: Option<u64>) -> Result<u64, BridgeError> {
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_LIFECYCLE_TIMEOUT_MS);
    if (1..=MAX_LIFECYCLE_TIMEOUT_MS).contains(&timeout_ms) {
        Ok(timeout_ms)
    } else {
        Err(BridgeError::InvalidRequest(format!(
            "timeoutMs must be between 1 and {MAX_LIFECYCLE_TIMEOUT_MS} milliseconds, got {timeout_ms}"
        )))
    }
}

/// `sleepAfter`: a positive whole number of seconds, optionally suffixed `s`, `m` or `h`.
pub fn sleep_after(value: &str) -> Result<String, BridgeError> {
    let digits = value.strip_suffix(['s', 'm', 'h']).unwrap_or(value);
    let valid = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.len() <= 6
        && digits.bytes().all(|byte| byte.is_ascii_digit());
    if valid {
        Ok(value.to_owned())
    } else {
        Err(BridgeError::InvalidRequest(format!(
            "sleepAfter must be a duration such as \"90s\", \"10m\" or \"1h\", got {value:?}"
        )))
    }
}

/// An optional `sleepAfter`, validated when present.
pub fn optional_sleep_after(value: Option<&str>) -> Result<Option<String>, BridgeError> {
    value.map(sleep_after).transpose()
}

/// A client-side identifier: 1–256 characters without control characters.
fn identifier(field: &str, value: &str) -> Result<String, BridgeError> {
    if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(BridgeError::InvalidRequest(format!(
            "{field} must be 1–256 characters without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// A session name: 1–64 of `A–Z a–z 0–9 . _ -`.
pub fn session_id(value: Option<&str>) -> Result<String, BridgeError> {
    let value = value.unwrap_or(DEFAULT_SESSION_ID);
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(BridgeError::InvalidRequest(format!(
            "sessionId must be 1–64 characters of A–Z a–z 0–9 . _ -, got {value:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DEFAULT_REMOTE_CWD;

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

    #[test]
    fn sleep_after_accepts_durations_only() {
        for good in ["30", "90s", "10m", "1h"] {
            assert_eq!(sleep_after(good).expect("valid"), good);
        }
        for bad in ["", "0m", "m", "10d", "-5s", "1.5h", "9999999"] {
            assert!(sleep_after(bad).is_err(), "{bad}");
        }
    }
}
