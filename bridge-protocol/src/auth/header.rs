//! The `Authorization: PCB1-HMAC-SHA256 KeyId=…, Timestamp=…, Nonce=…, Signature=…` header.

use std::fmt;

use super::SCHEME;

/// A nonce: 16–64 characters of unpadded base64url; clients draw at least 128 random bits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nonce(String);

impl Nonce {
    /// Shortest nonce accepted.
    pub const MIN_LEN: usize = 16;
    /// Longest nonce accepted.
    pub const MAX_LEN: usize = 64;

    /// Checks the alphabet and length rules.
    pub fn parse(value: &str) -> Result<Self, AuthorizationError> {
        let well_formed = (Self::MIN_LEN..=Self::MAX_LEN).contains(&value.len())
            && value
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if well_formed {
            Ok(Self(value.to_owned()))
        } else {
            Err(AuthorizationError::BadNonce)
        }
    }

    /// A fresh nonce of 128 random bits (22 characters).
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self(base64url(&bytes)))
    }

    /// The nonce text as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Why an `Authorization` header could not be read; all of them are the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// The header names another scheme or has no parameters.
    #[error("the Authorization header does not use the {SCHEME} scheme")]
    WrongScheme,
    /// A parameter is not `Name=value`, is unknown, or appears twice.
    #[error("the Authorization header has a malformed or repeated parameter: {0}")]
    BadParameter(String),
    /// One of the four parameters is absent.
    #[error("the Authorization header lacks the {0} parameter")]
    MissingParameter(&'static str),
    /// The timestamp is not a decimal number of seconds.
    #[error("the Authorization Timestamp is not a decimal number of Unix seconds")]
    BadTimestamp,
    /// The nonce breaks the alphabet or length rules.
    #[error(
        "the Authorization Nonce must be {min}–{max} characters of unpadded base64url",
        min = Nonce::MIN_LEN,
        max = Nonce::MAX_LEN
    )]
    BadNonce,
    /// The signature is not 64 lowercase hex digits.
    #[error("the Authorization Signature must be 64 lowercase hex digits")]
    BadSignature,
}

/// The parsed `Authorization` header of a signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Which shared secret signed the request.
    pub key_id: String,
    /// Unix seconds at signing time.
    pub timestamp: u64,
    /// Single-use value that makes the request unrepeatable.
    pub nonce: Nonce,
    /// HMAC-SHA256 of the canonical string.
    pub signature: [u8; 32],
}

impl Authorization {
    /// Parses the header value; parameters may come in any order, separated by `,` and spaces.
    pub fn parse(value: &str) -> Result<Self, AuthorizationError> {
        let parameters = value
            .trim()
            .strip_prefix(SCHEME)
            .filter(|rest| rest.starts_with(' '))
            .ok_or(AuthorizationError::WrongScheme)?;
        let mut key_id = None;
        let mut timestamp = None;
        let mut nonce = None;
        let mut signature = None;
        for parameter in parameters.split(',').map(str::trim) {
            let (name, value) = parameter
                .split_once('=')
                .filter(|(_, value)| !value.is_empty())
                .ok_or_else(|| AuthorizationError::BadParameter(parameter.to_owned()))?;
            let slot = match name {
                "KeyId" => &mut key_id,
                "Timestamp" => &mut timestamp,
                "Nonce" => &mut nonce,
                "Signature" => &mut signature,
                _ => return Err(AuthorizationError::BadParameter(parameter.to_owned())),
            };
            if slot.replace(value).is_some() {
                return Err(AuthorizationError::BadParameter(parameter.to_owned()));
            }
        }
        let key_id = key_id.ok_or(AuthorizationError::MissingParameter("KeyId"))?;
        let timestamp = timestamp.ok_or(AuthorizationError::MissingParameter("Timestamp"))?;
        let nonce = nonce.ok_or(AuthorizationError::MissingParameter("Nonce"))?;
        let signature = signature.ok_or(AuthorizationError::MissingParameter("Signature"))?;
        Ok(Self {
            key_id: key_id.to_owned(),
            timestamp: parse_decimal(timestamp).ok_or(AuthorizationError::BadTimestamp)?,
            nonce: Nonce::parse(nonce)?,
            signature: parse_lower_hex_32(signature).ok_or(AuthorizationError::BadSignature)?,
        })
    }

    /// Renders the header value in the canonical parameter order.
    pub fn to_header_value(&self) -> String {
        format!(
            "{SCHEME} KeyId={}, Timestamp={}, Nonce={}, Signature={}",
            self.key_id,
            self.timestamp,
            self.nonce,
            hex::encode(self.signature)
        )
    }
}

fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses exactly 64 lowercase hex digits.
pub(super) fn parse_lower_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let block = chunk
            .iter()
            .enumerate()
            .fold(0u32, |block, (index, &byte)| {
                block | u32::from(byte) << (16 - 8 * index)
            });
        for sextet in 0..=chunk.len() {
            let index = (block >> (18 - 6 * sextet)) & 0x3f;
            encoded.push(char::from(ALPHABET[index as usize]));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNATURE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_parameters_in_any_order_with_optional_spaces() {
        let header = format!(
            "PCB1-HMAC-SHA256 Nonce=AAECAwQFBgcICQoLDA0ODw,Signature={SIGNATURE} ,  KeyId=k1, Timestamp=42"
        );
        let parsed = Authorization::parse(&header).expect("valid header");
        assert_eq!(parsed.key_id, "k1");
        assert_eq!(parsed.timestamp, 42);
        assert_eq!(parsed.nonce.as_str(), "AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(hex::encode(parsed.signature), SIGNATURE);
        assert_eq!(Authorization::parse(&parsed.to_header_value()), Ok(parsed));
    }

    #[test]
    fn rejects_malformed_headers_with_a_reason() {
        let nonce = "AAECAwQFBgcICQoLDA0ODw";
        let cases = [
            ("Bearer abc".to_owned(), AuthorizationError::WrongScheme),
            (
                "PCB1-HMAC-SHA256".to_owned(),
                AuthorizationError::WrongScheme,
            ),
            (
                format!("PCB1-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce={nonce}"),
                AuthorizationError::MissingParameter("Signature"),
            ),
            (
                format!(
                    "PCB1-HMAC-SHA256 KeyId=k, KeyId=j, Timestamp=1, Nonce={nonce}, Signature={SIGNATURE}"
                ),
                AuthorizationError::BadParameter("KeyId=j".into()),
            ),
            (
                format!(
                    "PCB1-HMAC-SHA256 KeyId=k, Timestamp=-1, Nonce={nonce}, Signature={SIGNATURE}"
                ),
                AuthorizationError::BadTimestamp,
            ),
            (
                format!(
                    "PCB1-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce=short, Signature={SIGNATURE}"
                ),
                AuthorizationError::BadNonce,
            ),
            (
                format!(
                    "PCB1-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce={nonce}==, Signature={SIGNATURE}"
                ),
                AuthorizationError::BadNonce,
            ),
            (
                format!(
                    "PCB1-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce={nonce}, Signature={}",
                    SIGNATURE.to_uppercase()
                ),
                AuthorizationError::BadSignature,
            ),
            (
                format!("PCB1-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce={nonce}, Signature=abc"),
                AuthorizationError::BadSignature,
            ),
            (
                format!(
                    "PCB1-HMAC-SHA256 KeyId=k, Timestamp=1, Nonce={nonce}, Signature={SIGNATURE}, Extra=1"
                ),
                AuthorizationError::BadParameter("Extra=1".into()),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(Authorization::parse(&header), Err(expected), "{header}");
        }
    }

    #[test]
    fn random_nonces_are_valid_and_distinct() {
        let first = Nonce::random().expect("entropy");
        let second = Nonce::random().expect("entropy");
        assert_eq!(first.as_str().len(), 22);
        assert_eq!(Nonce::parse(first.as_str()), Ok(first.clone()));
        assert_ne!(first, second);
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
