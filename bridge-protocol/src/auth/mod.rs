//! `PCB1-HMAC-SHA256`: request signing, verification and response signatures (DESIGN §4).
//!
//! Everything here is target-independent: the bridge verifies with it inside the Worker, and every
//! client (the plugin, the tests) signs with the very same code, so the two sides cannot drift.

mod canonical;
mod frames;
mod header;
mod keys;
mod response;
mod signer;
mod verifier;

pub use canonical::{
    CanonicalRequest, UnsignablePath, canonical_query, check_signable_path, decode_query,
    encode_query, sha256, sha256_hex,
};
pub use frames::{
    FRAMES_CONTENT_TYPE, Frame, FrameError, FrameKind, FrameOpener, FrameSealer, MAX_FRAME_PAYLOAD,
    PayloadDigest, STREAMING_BODY,
};
pub use header::{Authorization, AuthorizationError, Nonce};
pub use keys::{KeyId, KeyRing, KeyRingError, SecretKey};
pub use response::{ResponseSignature, StreamOutcome};
pub use signer::{RequestSigner, SignedHeaders};
pub use verifier::{
    AuthRejection, AuthRejectionReason, Authenticated, IncomingRequest, RequestBody, Verifier,
};

/// Scheme name: first token of the `Authorization` header and first line of the canonical string.
pub const SCHEME: &str = "PCB1-HMAC-SHA256";
/// Header carrying the hex SHA-256 of the exact request body bytes.
pub const CONTENT_SHA256_HEADER: &str = "X-PCB-Content-SHA256";
/// Header carrying the bridge's signature over the request nonce, status and body.
pub const RESPONSE_SIGNATURE_HEADER: &str = "X-PCB-Response-Signature";
/// Default tolerated distance between a request's timestamp and the bridge clock.
pub const DEFAULT_SKEW_SECONDS: u64 = 300;
