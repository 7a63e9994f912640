//! Identifiers: sandbox ids (the `X-Sandbox-Id` header the SDK sends, i.e. the Durable Object id
//! as 64 hex chars) and the ids the server makes up for processes and unnamed sessions, in the
//! real container's formats.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

/// A validated sandbox id, safe to use as a directory name: `[A-Za-z0-9_-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SandboxId(String);

impl SandboxId {
    /// Accepts `raw` if it is 1 to 128 ASCII letters, digits, `_` or `-`.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        valid.then(|| Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A process id like the container's `proc_<ms>_<6 base-36 chars>`.
pub fn process_id() -> String {
    let suffix: String = std::iter::successors(Some(random()), |rest| Some(rest / 36))
        .take(6)
        .filter_map(|rest| char::from_digit(u32::try_from(rest % 36).unwrap_or(0), 36))
        .collect();
    format!("proc_{}_{suffix}", epoch_millis())
}

/// A session id like the container's `session_<ms>_<12 hex chars>`, for `session/create` without
/// an `id`.
pub fn session_id() -> String {
    format!(
        "session_{}_{:012x}",
        epoch_millis(),
        random() & 0xffff_ffff_ffff
    )
}

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

/// 64 random bits from the standard library's per-process hash keys (no extra crate needed).
fn random() -> u64 {
    RandomState::new().hash_one(epoch_millis())
}

#[cfg(test)]
mod tests {
    use super::{SandboxId, process_id, session_id};

    #[test]
    fn generated_ids_follow_the_container_formats() {
        let process = process_id();
        let parts: Vec<&str> = process.split('_').collect();
        assert_eq!(parts.len(), 3, "{process}");
        assert_eq!(parts[0], "proc");
        assert_eq!(parts[2].len(), 6, "{process}");
        assert!(session_id().starts_with("session_"));
        assert_ne!(process_id(), process_id());
    }

    #[test]
    fn accepts_durable_object_ids_and_simple_names() {
        let hex = "0123456789abcdef".repeat(4);
        assert_eq!(SandboxId::parse(&hex).map(|id| id.to_string()), Some(hex));
        assert!(SandboxId::parse("my_sandbox-1").is_some());
        assert!(SandboxId::parse(&"a".repeat(128)).is_some());
    }

    #[test]
    fn rejects_anything_that_could_escape_the_state_dir() {
        for bad in ["", "..", "a/b", "a b", "é", &"a".repeat(129)] {
            assert!(SandboxId::parse(bad).is_none(), "{bad:?} was accepted");
        }
    }
}
