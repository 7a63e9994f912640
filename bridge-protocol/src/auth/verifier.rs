//! Bridge side: deciding whether a request was signed by a holder of a configured key.

use serde::{Deserialize, Serialize};

use super::{
    Authorization, AuthorizationError, CanonicalRequest, KeyId, KeyRing, Nonce, STREAMING_BODY,
    SecretKey, sha256_hex,
};

/// The parts of an HTTP request that authentication looks at.
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    /// `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// `X-PCB-Content-SHA256` header, if any.
    pub content_sha256: Option<&'a str>,
    /// HTTP method.
    pub method: &'a str,
    /// `Host` header, if any.
    pub host: Option<&'a str>,
    /// Path exactly as on the request line.
    pub path: &'a str,
    /// Query without the `?`, empty when absent.
    pub raw_query: &'a str,
    /// The body, or how it is authenticated when it streams.
    pub body: RequestBody<'a>,
}

/// A request body as authentication sees it.
#[derive(Debug, Clone, Copy)]
pub enum RequestBody<'a> {
    /// Read whole: its hash is checked against `X-PCB-Content-SHA256`.
    Complete(&'a [u8]),
    /// Still to be read as frames ([`super::FrameOpener`]), each verified on arrival; the
    /// content hash header must be [`STREAMING_BODY`].
    Framed,
}

/// Machine-readable reason of a 401, sent as `details.reason` so operators can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthRejectionReason {
    /// No `Authorization` header.
    MissingAuthorization,
    /// The header could not be parsed.
    MalformedAuthorization,
    /// The key id is not configured on the bridge.
    UnknownKey,
    /// The timestamp is outside the skew window.
    StaleTimestamp,
    /// `Host` is not the pinned bridge host.
    HostMismatch,
    /// The content hash header is missing or does not match the body.
    BadBodyHash,
    /// The signature does not match the canonical request.
    BadSignature,
    /// The nonce was used before.
    ReplayedNonce,
}

/// Why a request is refused, with enough context for a useful message and no secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthRejection {
    /// See [`AuthRejectionReason::MissingAuthorization`].
    #[error("the request is not signed: it has no Authorization header")]
    MissingAuthorization,
    /// See [`AuthRejectionReason::MalformedAuthorization`].
    #[error(transparent)]
    MalformedAuthorization(#[from] AuthorizationError),
    /// See [`AuthRejectionReason::UnknownKey`].
    #[error("key id {0:?} is not configured on this bridge")]
    UnknownKey(String),
    /// See [`AuthRejectionReason::StaleTimestamp`].
    #[error(
        "the request timestamp is {distance} s away from the bridge clock (allowed: {allowed} s); check the client's clock"
    )]
    StaleTimestamp {
        /// Absolute distance between the request time and now.
        distance: u64,
        /// The configured window.
        allowed: u64,
    },
    /// See [`AuthRejectionReason::HostMismatch`].
    #[error(
        "the request was addressed to host {received:?}, but this bridge is pinned to {pinned:?}"
    )]
    HostMismatch {
        /// Host header received (empty when absent).
        received: String,
        /// The pinned host.
        pinned: String,
    },
    /// See [`AuthRejectionReason::BadBodyHash`].
    #[error("the X-PCB-Content-SHA256 header is missing or does not match the body")]
    BadBodyHash,
    /// See [`AuthRejectionReason::BadSignature`].
    #[error(
        "the signature does not match this request: wrong secret, or the request was changed after signing"
    )]
    BadSignature,
    /// See [`AuthRejectionReason::ReplayedNonce`].
    #[error("this request was already received once (nonce replayed)")]
    ReplayedNonce,
}

impl AuthRejection {
    /// The wire reason code.
    pub fn reason(&self) -> AuthRejectionReason {
        match self {
            Self::MissingAuthorization => AuthRejectionReason::MissingAuthorization,
            Self::MalformedAuthorization(_) => AuthRejectionReason::MalformedAuthorization,
            Self::UnknownKey(_) => AuthRejectionReason::UnknownKey,
            Self::StaleTimestamp { .. } => AuthRejectionReason::StaleTimestamp,
            Self::HostMismatch { .. } => AuthRejectionReason::HostMismatch,
            Self::BadBodyHash => AuthRejectionReason::BadBodyHash,
            Self::BadSignature => AuthRejectionReason::BadSignature,
            Self::ReplayedNonce => AuthRejectionReason::ReplayedNonce,
        }
    }
}

/// A request whose signature checked out; the nonce still has to pass the replay guard.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Key that signed it; responses are signed with the same key.
    pub key_id: KeyId,
    /// That key's secret.
    pub secret: SecretKey,
    /// The request's nonce, bound into the response signature.
    pub nonce: Nonce,
    /// The request's timestamp.
    pub timestamp: u64,
    /// The request's signature: a framed body chains from it.
    pub signature: [u8; 32],
}

/// The bridge's checks of DESIGN §4, cheapest first.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeyRing,
    pinned_host: String,
    skew_seconds: u64,
}

impl Verifier {
    /// `pinned_host` is `BRIDGE_HOST`; `skew_seconds` the tolerated clock distance.
    pub fn new(keys: KeyRing, pinned_host: &str, skew_seconds: u64) -> Self {
        Self {
            keys,
            pinned_host: pinned_host.to_ascii_lowercase(),
            skew_seconds,
        }
    }

    /// How long a nonce must be remembered: any replay later than this is stale anyway.
    pub fn replay_window_seconds(&self) -> u64 {
        self.skew_seconds * 2
    }

    /// The secret of a configured key, for signing an answer away from the request that was
    /// verified (a lease object streaming an exec's terminal event).
    pub fn secret(&self, key_id: &str) -> Option<&SecretKey> {
        self.keys.get(key_id).map(|(_, secret)| secret)
    }

    /// Runs every check except the replay guard, which needs shared storage.
    pub fn verify(
        &self,
        request: &IncomingRequest<'_>,
        now: u64,
    ) -> Result<Authenticated, AuthRejection> {
        let header = request
            .authorization
            .ok_or(AuthRejection::MissingAuthorization)?;
        let authorization = Authorization::parse(header)?;
        let (key_id, secret) = self
            .keys
            .get(&authorization.key_id)
            .ok_or_else(|| AuthRejection::UnknownKey(authorization.key_id.clone()))?;
        let distance = now.abs_diff(authorization.timestamp);
        if distance > self.skew_seconds {
            return Err(AuthRejection::StaleTimestamp {
                distance,
                allowed: self.skew_seconds,
            });
        }
        let host = request.host.unwrap_or_default();
        if !host.eq_ignore_ascii_case(&self.pinned_host) {
            return Err(AuthRejection::HostMismatch {
                received: host.to_owned(),
                pinned: self.pinned_host.clone(),
            });
        }
        let body_sha256 = match request.body {
            RequestBody::Complete(body) => sha256_hex(body),
            RequestBody::Framed => STREAMING_BODY.to_owned(),
        };
        if request.content_sha256 != Some(body_sha256.as_str()) {
            return Err(AuthRejection::BadBodyHash);
        }
        if !self.signature_matches(&authorization, secret, request, &body_sha256) {
            return Err(AuthRejection::BadSignature);
        }
        Ok(Authenticated::by(key_id, secret, authorization))
    }

    /// Who signed `request`, judged by its headers alone: the signature is checked over the
    /// content hash the request claims (its body is not read), and neither its clock nor its
    /// `Host` is looked at. A refusal of a request that passes this (a body over the limit, a
    /// stale clock, a replay) is signed for it, so that its client can trust the reason; a
    /// request that fails it was not signed by a holder of a configured key.
    pub fn signer_of(&self, request: &IncomingRequest<'_>) -> Option<Authenticated> {
        let authorization = Authorization::parse(request.authorization?).ok()?;
        let (key_id, secret) = self.keys.get(&authorization.key_id)?;
        let claimed = request.content_sha256?;
        self.signature_matches(&authorization, secret, request, claimed)
            .then(|| Authenticated::by(key_id, secret, authorization))
    }

    fn signature_matches(
        &self,
        authorization: &Authorization,
        secret: &SecretKey,
        request: &IncomingRequest<'_>,
        body_sha256: &str,
    ) -> bool {
        let canonical = CanonicalRequest {
            key_id: &authorization.key_id,
            timestamp: authorization.timestamp,
            nonce: authorization.nonce.as_str(),
            method: request.method,
            host: &self.pinned_host,
            path: request.path,
            raw_query: request.raw_query,
            body_sha256,
        };
        secret.verify(
            canonical.to_canonical_string().as_bytes(),
            &authorization.signature,
        )
    }
}

impl Authenticated {
    fn by(key_id: &KeyId, secret: &SecretKey, authorization: Authorization) -> Self {
        Self {
            key_id: key_id.clone(),
            secret: secret.clone(),
            nonce: authorization.nonce,
            timestamp: authorization.timestamp,
            signature: authorization.signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::RequestSigner;
    use super::*;

    const NOW: u64 = 1_767_225_600;
    const SECRET_OLD: &str = "old-secret-old-secret-old-secret-0";
    const SECRET_NEW: &str = "new-secret-new-secret-new-secret-1";
    const HOST: &str = "127.0.0.1:8787";
    const PATH: &str = "/api/paperclip-sandbox/v1/probe";

    fn verifier() -> Verifier {
        let keys = KeyRing::parse(&format!("old:{SECRET_OLD},new:{SECRET_NEW}")).expect("valid");
        Verifier::new(keys, HOST, 300)
    }

    fn signer(key_id: &str, secret: &str) -> RequestSigner {
        RequestSigner::new(
            KeyId::parse(key_id).expect("valid"),
            SecretKey::new(secret).expect("valid"),
            HOST,
        )
    }

    #[derive(Clone)]
    struct Sent {
        authorization: String,
        content_sha256: String,
        body: Vec<u8>,
    }

    fn send(signer: &RequestSigner, query: &str, body: &[u8], timestamp: u64) -> Sent {
        let signed = signer.sign(
            "POST",
            PATH,
            query,
            body,
            timestamp,
            Nonce::random().expect("entropy"),
        );
        Sent {
            authorization: signed.authorization,
            content_sha256: signed.content_sha256,
            body: body.to_vec(),
        }
    }

    fn check(
        sent: &Sent,
        host: &str,
        path: &str,
        query: &str,
    ) -> Result<Authenticated, AuthRejection> {
        verifier().verify(
            &IncomingRequest {
                authorization: Some(&sent.authorization),
                content_sha256: Some(&sent.content_sha256),
                method: "POST",
                host: Some(host),
                path,
                raw_query: query,
                body: RequestBody::Complete(&sent.body),
            },
            NOW,
        )
    }

    fn reason(result: Result<Authenticated, AuthRejection>) -> AuthRejectionReason {
        result.expect_err("must be rejected").reason()
    }

    #[test]
    fn accepts_every_configured_key() {
        for (key_id, secret) in [("old", SECRET_OLD), ("new", SECRET_NEW)] {
            let sent = send(&signer(key_id, secret), "a=1", b"{}", NOW);
            let accepted = check(&sent, HOST, PATH, "a=1").expect("accepted");
            assert_eq!(accepted.key_id.as_str(), key_id);
        }
        let sent = send(&signer("new", SECRET_NEW), "", b"", NOW + 300);
        assert!(
            check(&sent, "127.0.0.1:8787", PATH, "").is_ok(),
            "edge of the window"
        );
        let sent = send(&signer("new", SECRET_NEW), "b=2&a=1", b"", NOW);
        assert!(
            check(&sent, HOST, PATH, "a=1&b=2").is_ok(),
            "query order is canonical"
        );
    }

    #[test]
    fn rejects_each_failure_with_its_reason() {
        let good = signer("new", SECRET_NEW);
        let sent = send(&good, "", b"{}", NOW);
        let missing = verifier().verify(
            &IncomingRequest {
                authorization: None,
                content_sha256: Some(&sent.content_sha256),
                method: "POST",
                host: Some(HOST),
                path: PATH,
                raw_query: "",
                body: RequestBody::Complete(b"{}"),
            },
            NOW,
        );
        assert_eq!(reason(missing), AuthRejectionReason::MissingAuthorization);
        let cases = [
            (
                check(
                    &send(&signer("nobody", SECRET_NEW), "", b"", NOW),
                    HOST,
                    PATH,
                    "",
                ),
                AuthRejectionReason::UnknownKey,
            ),
            (
                check(&send(&good, "", b"", NOW - 301), HOST, PATH, ""),
                AuthRejectionReason::StaleTimestamp,
            ),
            (
                check(&send(&good, "", b"", NOW + 301), HOST, PATH, ""),
                AuthRejectionReason::StaleTimestamp,
            ),
            (
                check(&sent, "evil.example:8787", PATH, ""),
                AuthRejectionReason::HostMismatch,
            ),
            (
                check(
                    &Sent {
                        body: b"{ }".to_vec(),
                        ..sent.clone()
                    },
                    HOST,
                    PATH,
                    "",
                ),
                AuthRejectionReason::BadBodyHash,
            ),
            (
                check(&sent, HOST, "/api/paperclip-sandbox/v1/health", ""),
                AuthRejectionReason::BadSignature,
            ),
            (
                check(&sent, HOST, PATH, "x=1"),
                AuthRejectionReason::BadSignature,
            ),
            (
                check(
                    &send(&signer("new", SECRET_OLD), "", b"{}", NOW),
                    HOST,
                    PATH,
                    "",
                ),
                AuthRejectionReason::BadSignature,
            ),
            (
                check(
                    &Sent {
                        authorization: "Bearer token".into(),
                        ..sent.clone()
                    },
                    HOST,
                    PATH,
                    "",
                ),
                AuthRejectionReason::MalformedAuthorization,
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(reason(result), expected);
        }
    }

    #[test]
    fn body_changed_together_with_its_hash_breaks_the_signature() {
        let sent = send(&signer("new", SECRET_NEW), "", b"{\"a\":1}", NOW);
        let tampered = Sent {
            body: b"{\"a\":2}".to_vec(),
            content_sha256: sha256_hex(b"{\"a\":2}"),
            authorization: sent.authorization.clone(),
        };
        assert_eq!(
            reason(check(&tampered, HOST, PATH, "")),
            AuthRejectionReason::BadSignature
        );
    }

    #[test]
    fn a_framed_body_is_accepted_only_as_signed() {
        let signer = signer("new", SECRET_NEW);
        let nonce = Nonce::random().expect("entropy");
        let streaming = signer.sign_streaming("POST", PATH, "", NOW, nonce);
        fn incoming<'a>(
            signed: &'a super::super::SignedHeaders,
            body: RequestBody<'a>,
        ) -> IncomingRequest<'a> {
            IncomingRequest {
                authorization: Some(&signed.authorization),
                content_sha256: Some(&signed.content_sha256),
                method: "POST",
                host: Some(HOST),
                path: PATH,
                raw_query: "",
                body,
            }
        }
        let accepted = verifier()
            .verify(&incoming(&streaming, RequestBody::Framed), NOW)
            .expect("accepted");
        assert_eq!(accepted.signature, streaming.signature);
        assert_eq!(
            reason(verifier().verify(&incoming(&streaming, RequestBody::Complete(b"")), NOW)),
            AuthRejectionReason::BadBodyHash
        );
        let whole = signer.sign(
            "POST",
            PATH,
            "",
            b"",
            NOW,
            Nonce::random().expect("entropy"),
        );
        assert_eq!(
            reason(verifier().verify(&incoming(&whole, RequestBody::Framed), NOW)),
            AuthRejectionReason::BadBodyHash
        );
        let relabelled = super::super::SignedHeaders {
            content_sha256: STREAMING_BODY.to_owned(),
            ..whole
        };
        assert_eq!(
            reason(verifier().verify(&incoming(&relabelled, RequestBody::Framed), NOW)),
            AuthRejectionReason::BadSignature
        );
    }

    #[test]
    fn a_refusal_is_signed_only_for_a_request_a_key_holder_signed() {
        let good = signer("new", SECRET_NEW);
        fn head<'a>(sent: &'a Sent, host: &'a str) -> IncomingRequest<'a> {
            IncomingRequest {
                authorization: Some(&sent.authorization),
                content_sha256: Some(&sent.content_sha256),
                method: "POST",
                host: Some(host),
                path: PATH,
                raw_query: "",
                body: RequestBody::Complete(b"not the body that was signed"),
            }
        }
        let stale = send(&good, "", b"{}", NOW - 10_000);
        let signed = verifier()
            .signer_of(&head(&stale, "evil.example"))
            .expect("signed by new");
        assert_eq!(signed.key_id.as_str(), "new");
        let forged = send(&signer("new", SECRET_OLD), "", b"{}", NOW);
        assert!(verifier().signer_of(&head(&forged, HOST)).is_none());
        let stranger = send(&signer("nobody", SECRET_NEW), "", b"{}", NOW);
        assert!(verifier().signer_of(&head(&stranger, HOST)).is_none());
        let relabelled = Sent {
            content_sha256: sha256_hex(b"other"),
            ..stale
        };
        assert!(verifier().signer_of(&head(&relabelled, HOST)).is_none());
    }
}
