//! Client side: turning a request into its `Authorization` and content-hash headers.

use super::{Authorization, CanonicalRequest, KeyId, Nonce, STREAMING_BODY, SecretKey, sha256_hex};

/// Signs requests for one bridge deployment with one key.
#[derive(Debug, Clone)]
pub struct RequestSigner {
    key_id: KeyId,
    secret: SecretKey,
    host: String,
}

/// The headers a signed request carries, plus the nonce its response signature will cover.
#[derive(Debug, Clone)]
pub struct SignedHeaders {
    /// Value of the `Authorization` header.
    pub authorization: String,
    /// Value of the `X-PCB-Content-SHA256` header.
    pub content_sha256: String,
    /// The nonce, needed to check the response signature.
    pub nonce: Nonce,
    /// The signature itself: a framed body chains its frames from it.
    pub signature: [u8; 32],
}

impl RequestSigner {
    /// `host` is the bridge's host as it appears in its URL (with a non-default port).
    pub fn new(key_id: KeyId, secret: SecretKey, host: &str) -> Self {
        Self {
            key_id,
            secret,
            host: host.to_ascii_lowercase(),
        }
    }

    /// The secret, for checking the signatures of this request's response.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }

    /// Signs with an explicit clock and nonce; `path` and `raw_query` exactly as they will be sent.
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        raw_query: &str,
        body: &[u8],
        timestamp: u64,
        nonce: Nonce,
    ) -> SignedHeaders {
        self.sign_digest(method, path, raw_query, sha256_hex(body), timestamp, nonce)
    }

    /// Signs a request whose body will be framed ([`super::FrameSealer`], seeded with the
    /// returned signature): the canonical string carries [`STREAMING_BODY`] instead of a hash.
    pub fn sign_streaming(
        &self,
        method: &str,
        path: &str,
        raw_query: &str,
        timestamp: u64,
        nonce: Nonce,
    ) -> SignedHeaders {
        let digest = STREAMING_BODY.to_owned();
        self.sign_digest(method, path, raw_query, digest, timestamp, nonce)
    }

    fn sign_digest(
        &self,
        method: &str,
        path: &str,
        raw_query: &str,
        content_sha256: String,
        timestamp: u64,
        nonce: Nonce,
    ) -> SignedHeaders {
        let canonical = CanonicalRequest {
            key_id: self.key_id.as_str(),
            timestamp,
            nonce: nonce.as_str(),
            method,
            host: &self.host,
            path,
            raw_query,
            body_sha256: &content_sha256,
        };
        let signature = self.secret.sign(canonical.to_canonical_string().as_bytes());
        let authorization = Authorization {
            key_id: self.key_id.to_string(),
            timestamp,
            signature,
            nonce: nonce.clone(),
        };
        SignedHeaders {
            authorization: authorization.to_header_value(),
            content_sha256,
            nonce,
            signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_implementation() {
        // Expected value from Python over the canonical string of `canonical.rs`'s fixed vector:
        // hmac.new(b"0123456789abcdef0123456789abcdef", canonical, hashlib.sha256).hexdigest()
        let signer = RequestSigner::new(
            KeyId::parse("primary").expect("valid"),
            SecretKey::new("0123456789abcdef0123456789abcdef").expect("valid"),
            "Bridge.Example.COM",
        );
        let signed = signer.sign(
            "post",
            "/api/paperclip-sandbox/v1/probe",
            "z=1&a=%41",
            b"",
            1_767_225_600,
            Nonce::parse("AAECAwQFBgcICQoLDA0ODw").expect("valid"),
        );
        assert_eq!(
            signed.content_sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed.authorization,
            "PCB1-HMAC-SHA256 KeyId=primary, Timestamp=1767225600, Nonce=AAECAwQFBgcICQoLDA0ODw, \
             Signature=a1879c3b4c6a61a012711034e6f9b0394c02d95860f7a7cfd55af99e396e91cf"
        );
    }

    #[test]
    fn a_streaming_signature_covers_the_literal_instead_of_a_hash() {
        // Python: the nine lines with STREAMING-PCB1-FRAMES as the last one.
        let signer = RequestSigner::new(
            KeyId::parse("primary").expect("valid"),
            SecretKey::new("0123456789abcdef0123456789abcdef").expect("valid"),
            "bridge.example.com",
        );
        let signed = signer.sign_streaming(
            "POST",
            "/api/paperclip-sandbox/v1/files/upload",
            "path=%2Fworkspace%2Fa&lease=pc-env-1",
            1_767_225_600,
            Nonce::parse("AAECAwQFBgcICQoLDA0ODw").expect("valid"),
        );
        assert_eq!(signed.content_sha256, STREAMING_BODY);
        assert_eq!(
            hex::encode(signed.signature),
            "ec0d013c59c821e09bdc4b66438db0c80a7b09fb9f0a232e451b66f7da1e2e5d"
        );
        assert!(
            signed
                .authorization
                .ends_with(&hex::encode(signed.signature))
        );
    }
}
