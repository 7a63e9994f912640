//! The bridge's deployment settings, read from Worker vars and secrets.
//!
//! A bridge without a pinned host or without keys refuses to serve: there is no unauthenticated mode.

use bridge_protocol::auth::{DEFAULT_SKEW_SECONDS, KeyRing, KeyRingError, Verifier};

/// Names of the settings, as operators write them in `wrangler.toml` or `wrangler secret put`.
pub mod vars {
    /// Host the bridge answers to, e.g. `sandbox-bridge.example.workers.dev`.
    pub const HOST: &str = "BRIDGE_HOST";
    /// Secret: `kid:secret` pairs.
    pub const HMAC_KEYS: &str = "BRIDGE_HMAC_KEYS";
    /// Tolerated client clock distance in seconds.
    pub const CLOCK_SKEW_SECONDS: &str = "BRIDGE_CLOCK_SKEW_SECONDS";
    /// Largest accepted request body in bytes.
    pub const MAX_BODY_BYTES: &str = "BRIDGE_MAX_BODY_BYTES";
    /// Bytes of each output stream a JSON exec result keeps.
    pub const MAX_OUTPUT_BYTES: &str = "BRIDGE_MAX_OUTPUT_BYTES";
    /// Idle time after which an abandoned lease's sandbox is destroyed.
    pub const LEASE_IDLE_TTL_SECONDS: &str = "BRIDGE_LEASE_IDLE_TTL_SECONDS";
}

/// Default request body limit: room for a 10 MiB stdin after JSON escaping.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;
/// Default output kept per stream in a JSON exec result.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 8 * 1024 * 1024;
/// Default idle time before an abandoned lease is reaped: an hour without any command.
pub const DEFAULT_LEASE_IDLE_TTL_SECONDS: u64 = 3600;

/// Why the bridge refuses to serve; every message names the setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent or empty.
    #[error("{0} is not set; the bridge refuses to serve without it")]
    Missing(&'static str),
    /// `BRIDGE_HOST` is not a bare host.
    #[error(
        "BRIDGE_HOST must be a bare host with an optional port, such as bridge.example.workers.dev or 127.0.0.1:8787 (got {0:?})"
    )]
    BadHost(String),
    /// `BRIDGE_HMAC_KEYS` is malformed.
    #[error("BRIDGE_HMAC_KEYS is invalid: {0}")]
    BadKeys(#[from] KeyRingError),
    /// A numeric setting is not a number in range.
    #[error("{name} must be a whole number between {min} and {max} (got {value:?})")]
    BadNumber {
        /// Setting name.
        name: &'static str,
        /// What was configured.
        value: String,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Request authentication, with the pinned host and the keys.
    pub verifier: Verifier,
    /// Largest accepted request body.
    pub max_body_bytes: u64,
    /// Output kept per stream in a JSON exec result.
    pub max_output_bytes: u64,
}

impl BridgeConfig {
    /// Reads every setting through `lookup`, so the same code serves the Worker and the tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let present = |name: &'static str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let host = present(vars::HOST).ok_or(ConfigError::Missing(vars::HOST))?;
        if !is_bare_host(&host) {
            return Err(ConfigError::BadHost(host));
        }
        let keys = KeyRing::parse(
            &present(vars::HMAC_KEYS).ok_or(ConfigError::Missing(vars::HMAC_KEYS))?,
        )?;
        let skew = number(
            vars::CLOCK_SKEW_SECONDS,
            present(vars::CLOCK_SKEW_SECONDS),
            DEFAULT_SKEW_SECONDS,
            1..=3600,
        )?;
        let max_body_bytes = number(
            vars::MAX_BODY_BYTES,
            present(vars::MAX_BODY_BYTES),
            DEFAULT_MAX_BODY_BYTES,
            1024..=100 * 1024 * 1024,
        )?;
        let max_output_bytes = number(
            vars::MAX_OUTPUT_BYTES,
            present(vars::MAX_OUTPUT_BYTES),
            DEFAULT_MAX_OUTPUT_BYTES,
            1024..=64 * 1024 * 1024,
        )?;
        // Lease objects read the TTL themselves (they never see this config); checking it here
        // makes a bad value refuse service like every other setting.
        lease_idle_ttl_seconds(&lookup)?;
        Ok(Self {
            verifier: Verifier::new(keys, &host, skew),
            max_body_bytes,
            max_output_bytes,
        })
    }
}

/// `BRIDGE_LEASE_IDLE_TTL_SECONDS`, also read on its own by lease objects.
pub fn lease_idle_ttl_seconds(lookup: impl Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
    let value = lookup(vars::LEASE_IDLE_TTL_SECONDS)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty());
    number(
        vars::LEASE_IDLE_TTL_SECONDS,
        value,
        DEFAULT_LEASE_IDLE_TTL_SECONDS,
        1..=30 * 24 * 3600,
    )
}

fn number(
    name: &'static str,
    value: Option<String>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    value
        .parse()
        .ok()
        .filter(|number| range.contains(number))
        .ok_or(ConfigError::BadNumber {
            name,
            value,
            min: *range.start(),
            max: *range.end(),
        })
}

/// `host[:port]` with DNS or IPv4 characters, or a bracketed IPv6 literal; no scheme, path or user.
fn is_bare_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') || name.ends_with(']') => (name, Some(port)),
        _ => (host, None),
    };
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|byte| byte.is_ascii_hexdigit() || byte == b':')
    } else {
        !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-')
    };
    port_ok && name_ok
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEYS: &str = "k1:0123456789abcdef0123456789abcdef";

    fn load(pairs: &[(&str, &str)]) -> Result<BridgeConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        BridgeConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn loads_with_defaults() {
        let config =
            load(&[(vars::HOST, "127.0.0.1:8787"), (vars::HMAC_KEYS, KEYS)]).expect("valid");
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.max_output_bytes, DEFAULT_MAX_OUTPUT_BYTES);
        assert_eq!(
            config.verifier.replay_window_seconds(),
            2 * DEFAULT_SKEW_SECONDS
        );
        let config = load(&[
            (vars::HOST, "bridge.example.workers.dev"),
            (vars::HMAC_KEYS, KEYS),
            (vars::CLOCK_SKEW_SECONDS, "60"),
            (vars::MAX_BODY_BYTES, "2048"),
            (vars::LEASE_IDLE_TTL_SECONDS, "3"),
        ])
        .expect("valid");
        assert_eq!(config.max_body_bytes, 2048);
        assert_eq!(config.verifier.replay_window_seconds(), 120);
    }

    #[test]
    fn the_lease_ttl_is_read_on_its_own_and_checked_with_the_rest() {
        assert_eq!(
            lease_idle_ttl_seconds(|_| None),
            Ok(DEFAULT_LEASE_IDLE_TTL_SECONDS)
        );
        assert_eq!(lease_idle_ttl_seconds(|_| Some("3".into())), Ok(3));
        let bad = [
            (vars::HOST, "127.0.0.1:8787"),
            (vars::HMAC_KEYS, KEYS),
            (vars::LEASE_IDLE_TTL_SECONDS, "soon"),
        ];
        assert!(load(&bad).is_err(), "a bad TTL refuses service");
    }

    #[test]
    fn fails_closed_with_a_message_naming_the_setting() {
        assert_eq!(
            load(&[(vars::HMAC_KEYS, KEYS)]).unwrap_err(),
            ConfigError::Missing(vars::HOST)
        );
        assert_eq!(
            load(&[(vars::HOST, "  "), (vars::HMAC_KEYS, KEYS)]).unwrap_err(),
            ConfigError::Missing(vars::HOST)
        );
        assert_eq!(
            load(&[(vars::HOST, "h.example")]).unwrap_err(),
            ConfigError::Missing(vars::HMAC_KEYS)
        );
        assert!(matches!(
            load(&[(vars::HOST, "h.example"), (vars::HMAC_KEYS, "k1:short")]),
            Err(ConfigError::BadKeys(KeyRingError::WeakSecret))
        ));
        assert!(matches!(
            load(&[
                (vars::HOST, "h.example"),
                (vars::HMAC_KEYS, KEYS),
                (vars::CLOCK_SKEW_SECONDS, "0")
            ]),
            Err(ConfigError::BadNumber {
                name: vars::CLOCK_SKEW_SECONDS,
                ..
            })
        ));
        let message = load(&[(vars::HMAC_KEYS, KEYS)]).unwrap_err().to_string();
        assert!(message.contains("BRIDGE_HOST"), "{message}");
    }

    #[test]
    fn host_must_be_bare() {
        for good in [
            "a.example",
            "127.0.0.1:8787",
            "[::1]:8787",
            "[::1]",
            "localhost",
        ] {
            assert!(is_bare_host(good), "{good}");
        }
        for bad in [
            "https://a.example",
            "a.example/path",
            "user@a.example",
            "a.example:0",
            "a.example:99999",
            "a.example:",
            "::1",
            "[]",
        ] {
            assert!(!is_bare_host(bad), "{bad}");
        }
    }
}
