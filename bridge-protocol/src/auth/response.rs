//! Bridge side of the exchange: signatures that prove a response came from the bridge and answers
//! this very request, so a proxy's error page can never pass for a result.

use super::{STREAMING_BODY, SecretKey, header::parse_lower_hex_32, sha256_hex};
use crate::api::ExecResult;

/// Signature of a complete (JSON) response: `X-PCB-Response-Signature`.
#[derive(Debug, Clone, Copy)]
pub struct ResponseSignature;

impl ResponseSignature {
    /// hex(HMAC(secret, "PCB1-RESPONSE\n<nonce>\n<status>\n<hex sha256 of body>")).
    pub fn sign(secret: &SecretKey, nonce: &str, status: u16, body: &[u8]) -> String {
        hex::encode(secret.sign(Self::canonical(nonce, status, body).as_bytes()))
    }

    /// Checks a received header value in constant time; anything malformed fails.
    pub fn verify(
        secret: &SecretKey,
        nonce: &str,
        status: u16,
        body: &[u8],
        signature: &str,
    ) -> bool {
        parse_lower_hex_32(signature)
            .is_some_and(|tag| secret.verify(Self::canonical(nonce, status, body).as_bytes(), &tag))
    }

    /// The signature of a response whose body is framed: [`STREAMING_BODY`] stands in for the
    /// body hash, and the frames chain from the returned tag (send it hex-encoded).
    pub fn sign_streaming(secret: &SecretKey, nonce: &str, status: u16) -> [u8; 32] {
        secret.sign(Self::streaming_canonical(nonce, status).as_bytes())
    }

    /// Checks the header of a framed response; on success returns the tag its frames chain from.
    pub fn verify_streaming(
        secret: &SecretKey,
        nonce: &str,
        status: u16,
        signature: &str,
    ) -> Option<[u8; 32]> {
        parse_lower_hex_32(signature)
            .filter(|tag| secret.verify(Self::streaming_canonical(nonce, status).as_bytes(), tag))
    }

    fn canonical(nonce: &str, status: u16, body: &[u8]) -> String {
        format!("PCB1-RESPONSE\n{nonce}\n{status}\n{}", sha256_hex(body))
    }

    fn streaming_canonical(nonce: &str, status: u16) -> String {
        format!("PCB1-RESPONSE\n{nonce}\n{status}\n{STREAMING_BODY}")
    }
}

/// How a stream ended: the part of its terminal event covered by the `signature` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome<'a> {
    /// The command ran to an end (or was timed out by the bridge).
    Complete {
        /// Exit code; `None` when there is none (timed out or killed).
        exit_code: Option<i32>,
        /// The bridge's own timeout fired.
        timed_out: bool,
        /// Bytes of stdout sent in the stream.
        stdout_bytes: u64,
        /// Bytes of stderr sent in the stream.
        stderr_bytes: u64,
    },
    /// The bridge gave up; `code` is the API error code.
    Error {
        /// snake_case API error code.
        code: &'a str,
    },
}

impl StreamOutcome<'static> {
    /// The outcome a `complete` event's result stands for (what its signature covers).
    pub fn complete(result: &ExecResult) -> Self {
        Self::Complete {
            exit_code: result.exit_code,
            timed_out: result.timed_out,
            stdout_bytes: result.stdout_bytes,
            stderr_bytes: result.stderr_bytes,
        }
    }
}

impl StreamOutcome<'_> {
    /// hex(HMAC(secret, "PCB1-STREAM\n<nonce>\n…")) with the lines of DESIGN §4.
    pub fn sign(&self, secret: &SecretKey, nonce: &str) -> String {
        hex::encode(secret.sign(self.canonical(nonce).as_bytes()))
    }

    /// Checks the `signature` field of a terminal event in constant time.
    pub fn verify(&self, secret: &SecretKey, nonce: &str, signature: &str) -> bool {
        parse_lower_hex_32(signature)
            .is_some_and(|tag| secret.verify(self.canonical(nonce).as_bytes(), &tag))
    }

    fn canonical(&self, nonce: &str) -> String {
        match *self {
            Self::Complete {
                exit_code,
                timed_out,
                stdout_bytes,
                stderr_bytes,
            } => {
                let exit_code =
                    exit_code.map_or_else(|| "null".to_owned(), |code| code.to_string());
                format!(
                    "PCB1-STREAM\n{nonce}\ncomplete\n{exit_code}\n{timed_out}\n{stdout_bytes}\n{stderr_bytes}"
                )
            }
            Self::Error { code } => format!("PCB1-STREAM\n{nonce}\nerror\n{code}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from Python's hmac over the same lines with the same secret.
    const NONCE: &str = "AAECAwQFBgcICQoLDA0ODw";

    fn secret() -> SecretKey {
        SecretKey::new("0123456789abcdef0123456789abcdef").expect("valid")
    }

    #[test]
    fn response_signature_matches_the_fixed_vector() {
        let expected = "0ae5a23badceb238ff4b9a9fc7fe12d439e60a968e229d1fe7ab9c4432df8830";
        assert_eq!(
            ResponseSignature::sign(&secret(), NONCE, 200, br#"{"ok":true}"#),
            expected
        );
        assert!(ResponseSignature::verify(
            &secret(),
            NONCE,
            200,
            br#"{"ok":true}"#,
            expected
        ));
        assert!(!ResponseSignature::verify(
            &secret(),
            NONCE,
            201,
            br#"{"ok":true}"#,
            expected
        ));
        assert!(!ResponseSignature::verify(
            &secret(),
            NONCE,
            200,
            b"<html>",
            expected
        ));
        assert!(!ResponseSignature::verify(
            &secret(),
            NONCE,
            200,
            br#"{"ok":true}"#,
            "zz"
        ));
    }

    #[test]
    fn stream_signatures_match_the_fixed_vectors() {
        let cases = [
            (
                StreamOutcome::Complete {
                    exit_code: Some(0),
                    timed_out: false,
                    stdout_bytes: 12,
                    stderr_bytes: 3,
                },
                "68ed2fa7917823c1118aa9720c4801216b63353cb745e0ee377a104e756ac9b6",
            ),
            (
                StreamOutcome::Complete {
                    exit_code: None,
                    timed_out: true,
                    stdout_bytes: 0,
                    stderr_bytes: 0,
                },
                "2d56a90aa1c5e80d43a1312e16407f6b29f0188ea80c00d73d98656e5a8b6a0c",
            ),
            (
                StreamOutcome::Error {
                    code: "sandbox_timeout",
                },
                "bbe19596aa9e840a894076c64d1708230b490dcfcfa557ff876efc0b20feffee",
            ),
        ];
        for (outcome, expected) in cases {
            assert_eq!(outcome.sign(&secret(), NONCE), expected, "{outcome:?}");
            assert!(outcome.verify(&secret(), NONCE, expected));
            assert!(!outcome.verify(&secret(), "other-nonce-value-xx", expected));
        }
    }

    #[test]
    fn a_streaming_response_signature_matches_the_fixed_vector() {
        let expected = "9826d0ae991395280064e2df538dcf72894acfe52bc554fe25db71ada1ae355f";
        let tag = ResponseSignature::sign_streaming(&secret(), NONCE, 200);
        assert_eq!(hex::encode(tag), expected);
        assert_eq!(
            ResponseSignature::verify_streaming(&secret(), NONCE, 200, expected),
            Some(tag)
        );
        assert_eq!(
            ResponseSignature::verify_streaming(&secret(), NONCE, 500, expected),
            None
        );
        let whole = ResponseSignature::sign(&secret(), NONCE, 200, b"");
        assert_eq!(
            ResponseSignature::verify_streaming(&secret(), NONCE, 200, &whole),
            None,
            "a signature over a complete body never passes for a framed one"
        );
    }
}
