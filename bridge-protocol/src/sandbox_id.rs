//! Sandbox ids: the SDK's own rules, enforced before any Durable Object is addressed.

use std::fmt;

/// Why an id cannot name a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxIdError {
    /// Empty or longer than 63 characters.
    #[error("sandbox id {0:?} must be 1–63 characters long")]
    Length(String),
    /// Starts or ends with `-` (it becomes a DNS label).
    #[error("sandbox id {0:?} must not start or end with a hyphen")]
    Hyphen(String),
    /// Not lowercase letters, digits and hyphens.
    #[error("sandbox id {0:?} may only contain a–z, 0–9 and hyphens")]
    Characters(String),
    /// One of the names the SDK reserves.
    #[error("sandbox id {0:?} is reserved by the Sandbox SDK")]
    Reserved(String),
}

/// A valid sandbox id: the SDK's rules (1–63 characters, no edge hyphen, not reserved), narrowed
/// to lowercase DNS-label characters so `normalizeId` can never map two ids onto one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SandboxId(String);

impl SandboxId {
    const RESERVED: [&'static str; 7] = [
        "www",
        "api",
        "admin",
        "root",
        "system",
        "cloudflare",
        "workers",
    ];

    /// Checks every rule.
    pub fn parse(id: &str) -> Result<Self, SandboxIdError> {
        if id.is_empty() || id.len() > 63 {
            return Err(SandboxIdError::Length(id.to_owned()));
        }
        if id.starts_with('-') || id.ends_with('-') {
            return Err(SandboxIdError::Hyphen(id.to_owned()));
        }
        if !id
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        {
            return Err(SandboxIdError::Characters(id.to_owned()));
        }
        if Self::RESERVED.contains(&id) {
            return Err(SandboxIdError::Reserved(id.to_owned()));
        }
        Ok(Self(id.to_owned()))
    }

    /// A throw-away probe sandbox id from 64 random bits.
    pub fn for_probe(random: [u8; 8]) -> Self {
        Self(format!("pc-probe-{}", hex::encode(random)))
    }

    /// The id text, also the Durable Object name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SandboxId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_within_the_rules() {
        for id in ["a", "pc-env-123", &"x".repeat(63), "api-2"] {
            assert_eq!(SandboxId::parse(id).expect("valid").as_str(), id);
        }
        let probe = SandboxId::for_probe([0xab; 8]);
        assert_eq!(probe.as_str(), "pc-probe-abababababababab");
        assert_eq!(SandboxId::parse(probe.as_str()), Ok(probe));
    }

    #[test]
    fn rejects_ids_the_sdk_would_refuse_or_normalise() {
        assert!(matches!(
            SandboxId::parse(""),
            Err(SandboxIdError::Length(_))
        ));
        assert!(matches!(
            SandboxId::parse(&"x".repeat(64)),
            Err(SandboxIdError::Length(_))
        ));
        assert!(matches!(
            SandboxId::parse("-a"),
            Err(SandboxIdError::Hyphen(_))
        ));
        assert!(matches!(
            SandboxId::parse("a-"),
            Err(SandboxIdError::Hyphen(_))
        ));
        assert!(matches!(
            SandboxId::parse("Pc-1"),
            Err(SandboxIdError::Characters(_))
        ));
        assert!(matches!(
            SandboxId::parse("a_b"),
            Err(SandboxIdError::Characters(_))
        ));
        assert!(matches!(
            SandboxId::parse("workers"),
            Err(SandboxIdError::Reserved(_))
        ));
    }
}
