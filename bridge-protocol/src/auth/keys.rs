//! The shared secrets, from `BRIDGE_HMAC_KEYS` (`kid:secret` pairs) or a client's configuration.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub(super) type HmacSha256 = Hmac<Sha256>;

/// Name of a shared secret, sent in clear so the bridge knows which secret to check against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Longest key id accepted.
    pub const MAX_LEN: usize = 64;

    /// Accepts 1–64 characters of `A–Z a–z 0–9 . _ -`, which survive every header and env file.
    pub fn parse(value: &str) -> Result<Self, KeyRingError> {
        let well_formed = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'));
        if well_formed {
            Ok(Self(value.to_owned()))
        } else {
            Err(KeyRingError::BadKeyId(value.to_owned()))
        }
    }

    /// The key id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A shared secret, kept as a keyed HMAC state so every signature starts from the precomputed pads.
#[derive(Clone)]
pub struct SecretKey {
    mac: HmacSha256,
}

impl SecretKey {
    /// Shortest secret accepted: 32 characters, e.g. the 64 hex digits of `openssl rand -hex 32`.
    pub const MIN_LEN: usize = 32;

    /// Accepts the secret's UTF-8 bytes when it is long enough to resist guessing.
    pub fn new(secret: &str) -> Result<Self, KeyRingError> {
        if secret.len() < Self::MIN_LEN {
            return Err(KeyRingError::WeakSecret);
        }
        let mac =
            HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| KeyRingError::WeakSecret)?;
        Ok(Self { mac })
    }

    /// HMAC-SHA256 of `message` under this secret.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Checks `tag` against the HMAC of `message` in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SecretKey(<redacted>)")
    }
}

/// Why a key list was refused. Messages never contain secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// No `kid:secret` pair at all.
    #[error("no keys are configured: set BRIDGE_HMAC_KEYS to one or more kid:secret pairs")]
    Empty,
    /// An entry lacks the `:` between key id and secret.
    #[error("key entry #{0} is not of the form kid:secret")]
    NotAPair(usize),
    /// A key id breaks the naming rules.
    #[error(
        "key id {0:?} must be 1–{max} characters of A–Z a–z 0–9 . _ -",
        max = KeyId::MAX_LEN
    )]
    BadKeyId(String),
    /// A secret is too short.
    #[error("a secret is shorter than {min} characters", min = SecretKey::MIN_LEN)]
    WeakSecret,
    /// Two entries share a key id.
    #[error("key id {0:?} is listed twice")]
    DuplicateKeyId(String),
}

/// All keys the bridge accepts; every listed key is valid, which is what makes rotation seamless.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<(KeyId, SecretKey)>,
}

impl KeyRing {
    /// Parses `kid:secret` entries separated by commas, spaces or newlines; a secret may contain `:`.
    pub fn parse(spec: &str) -> Result<Self, KeyRingError> {
        let mut keys: Vec<(KeyId, SecretKey)> = Vec::new();
        let entries = spec
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let (key_id, secret) = entry
                .split_once(':')
                .ok_or(KeyRingError::NotAPair(index + 1))?;
            let key_id = KeyId::parse(key_id)?;
            if keys.iter().any(|(existing, _)| *existing == key_id) {
                return Err(KeyRingError::DuplicateKeyId(key_id.0));
            }
            keys.push((key_id, SecretKey::new(secret)?));
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(Self { keys })
    }

    /// The key named `key_id` and its secret, if configured.
    pub fn get(&self, key_id: &str) -> Option<(&KeyId, &SecretKey)> {
        self.keys
            .iter()
            .find(|(id, _)| id.as_str() == key_id)
            .map(|(id, secret)| (id, secret))
    }

    /// The configured key ids, in the order given.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.iter().map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SECRET_B: &str = "b:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn parses_pairs_separated_by_commas_and_newlines() {
        let ring = KeyRing::parse(&format!(" old:{SECRET_A},\nnew:{SECRET_B} ")).expect("valid");
        let ids: Vec<_> = ring.key_ids().map(KeyId::as_str).collect();
        assert_eq!(ids, ["old", "new"]);
        let (_, secret) = ring.get("new").expect("present");
        assert_eq!(
            secret.sign(b"m"),
            SecretKey::new(SECRET_B).expect("valid").sign(b"m")
        );
        assert!(ring.get("missing").is_none());
    }

    #[test]
    fn refuses_bad_key_lists_with_a_reason() {
        assert_eq!(KeyRing::parse("").unwrap_err(), KeyRingError::Empty);
        assert_eq!(KeyRing::parse(" , ").unwrap_err(), KeyRingError::Empty);
        assert_eq!(
            KeyRing::parse(SECRET_A).unwrap_err(),
            KeyRingError::NotAPair(1)
        );
        assert_eq!(
            KeyRing::parse("k:short").unwrap_err(),
            KeyRingError::WeakSecret
        );
        assert_eq!(
            KeyRing::parse(&format!("bad/id:{SECRET_A}")).unwrap_err(),
            KeyRingError::BadKeyId("bad/id".into())
        );
        assert_eq!(
            KeyRing::parse(&format!("k:{SECRET_A},k:{SECRET_A}")).unwrap_err(),
            KeyRingError::DuplicateKeyId("k".into())
        );
    }

    #[test]
    fn hmac_matches_an_independent_implementation_and_verifies() {
        // Expected value from Python: hmac.new(b"a" * 40, message, hashlib.sha256).hexdigest()
        let message = b"what do ya want for nothing?";
        let secret = SecretKey::new(SECRET_A).expect("valid");
        let tag = secret.sign(message);
        assert_eq!(
            hex::encode(tag),
            "7fc5212aa1183c073411348616b492d1cbb75e35f2ad7fda9d1fe0a38828d649"
        );
        assert!(secret.verify(message, &tag));
        assert!(!secret.verify(b"what do ya want for nothing!", &tag));
        assert!(!secret.verify(message, &tag[..31]));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let ring = KeyRing::parse(&format!("k:{SECRET_A}")).expect("valid");
        assert!(!format!("{ring:?}").contains(SECRET_A));
    }
}
