//! The rules request fields follow, beyond their JSON types: the bridge enforces them, and
//! clients check configuration against the very same rules before anything is sent.

/// A field broke its rule; the message names the field, the rule and what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

/// Env var with which Paperclip marks its control-plane commands; the bridge runs them in the
/// lease's `bridge` session and strips the variable.
pub const EXEC_CHANNEL_VAR: &str = "PAPERCLIP_SANDBOX_EXEC_CHANNEL";
/// Default command timeout when the request names none.
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Longest command timeout accepted (a day).
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// Session name used when a client names none.
pub const DEFAULT_SESSION_ID: &str = "paperclip";
/// Default deadline for preparing or reattaching a sandbox.
pub const DEFAULT_LIFECYCLE_TIMEOUT_MS: u64 = 120_000;
/// Longest deadline accepted for a lifecycle operation.
pub const MAX_LIFECYCLE_TIMEOUT_MS: u64 = 600_000;

/// A deadline for acquire or resume: default, or the request's within bounds.
pub fn lifecycle_timeout(timeout_ms: Option<u64>) -> Result<u64, FieldError> {
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_LIFECYCLE_TIMEOUT_MS);
    if (1..=MAX_LIFECYCLE_TIMEOUT_MS).contains(&timeout_ms) {
        Ok(timeout_ms)
    } else {
        Err(FieldError(format!(
            "timeoutMs must be between 1 and {MAX_LIFECYCLE_TIMEOUT_MS} milliseconds, got {timeout_ms}"
        )))
    }
}

/// A command's deadline: default, or the request's within bounds.
pub fn command_timeout(timeout_ms: Option<u64>) -> Result<u64, FieldError> {
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if (1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        Ok(timeout_ms)
    } else {
        Err(FieldError(format!(
            "timeoutMs must be between 1 and {MAX_TIMEOUT_MS} milliseconds, got {timeout_ms}"
        )))
    }
}

/// `sleepAfter`: a positive whole number of seconds, optionally suffixed `s`, `m` or `h`.
pub fn sleep_after(value: &str) -> Result<String, FieldError> {
    let digits = value.strip_suffix(['s', 'm', 'h']).unwrap_or(value);
    let valid = !digits.is_empty()
        && !digits.starts_with('0')
        && digits.len() <= 6
        && digits.bytes().all(|byte| byte.is_ascii_digit());
    if valid {
        Ok(value.to_owned())
    } else {
        Err(FieldError(format!(
            "sleepAfter must be a duration such as \"90s\", \"10m\" or \"1h\", got {value:?}"
        )))
    }
}

/// An optional `sleepAfter`, validated when present.
pub fn optional_sleep_after(value: Option<&str>) -> Result<Option<String>, FieldError> {
    value.map(sleep_after).transpose()
}

/// A client-side identifier (`environmentId`, `runId`, `issueId`): 1–256 characters without
/// control characters.
pub fn identifier(field: &str, value: &str) -> Result<String, FieldError> {
    if value.is_empty() || value.len() > 256 || value.chars().any(char::is_control) {
        return Err(FieldError(format!(
            "{field} must be 1–256 characters without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// A session name: 1–64 of `A–Z a–z 0–9 . _ -`.
pub fn session_id(value: Option<&str>) -> Result<String, FieldError> {
    let value = value.unwrap_or(DEFAULT_SESSION_ID);
    let valid = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(FieldError(format!(
            "sessionId must be 1–64 characters of A–Z a–z 0–9 . _ -, got {value:?}"
        )))
    }
}

/// An execution id chosen by the client: 1–64 of `A–Z a–z 0–9 _ -`, safe as a file name and in
/// a URL path.
pub fn execution_id(id: &str) -> Result<String, FieldError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if valid {
        Ok(id.to_owned())
    } else {
        Err(FieldError(format!(
            "executionId must be 1–64 characters of A–Z a–z 0–9 _ -, got {id:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_after_accepts_durations_only() {
        for good in ["30", "90s", "10m", "1h"] {
            assert_eq!(sleep_after(good).expect("valid"), good);
        }
        for bad in ["", "0m", "m", "10d", "-5s", "1.5h", "9999999"] {
            assert!(sleep_after(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_fill_defaults_and_stay_in_bounds() {
        assert_eq!(command_timeout(None), Ok(DEFAULT_TIMEOUT_MS));
        assert_eq!(lifecycle_timeout(None), Ok(DEFAULT_LIFECYCLE_TIMEOUT_MS));
        assert!(command_timeout(Some(0)).is_err());
        assert!(command_timeout(Some(MAX_TIMEOUT_MS + 1)).is_err());
        assert!(lifecycle_timeout(Some(MAX_LIFECYCLE_TIMEOUT_MS + 1)).is_err());
    }

    #[test]
    fn ids_follow_their_alphabets() {
        assert_eq!(session_id(None).as_deref(), Ok(DEFAULT_SESSION_ID));
        assert!(session_id(Some("a b")).is_err());
        assert!(execution_id("x-1_Y").is_ok());
        for bad in ["", "../x", "a/b", &"x".repeat(65)] {
            assert!(execution_id(bad).is_err(), "{bad}");
        }
        assert!(identifier("runId", "line\nbreak").is_err());
    }
}
