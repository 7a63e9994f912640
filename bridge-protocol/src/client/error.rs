//! Every way a call to the bridge can fail, each classified once as worth retrying or not.
//!
//! The messages are written for the operator who has to act on them; the transient ones say
//! "temporarily unavailable", "network" or "timed out", the words Paperclip's resume retry looks
//! for.

use crate::api::{ErrorBody, ErrorCode};
use crate::auth::FrameError;

use super::transport::{TransportError, TransportErrorKind};

/// Why a call to the bridge failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The request could not be built: a URL, a body that does not encode, no randomness for a
    /// nonce. Retrying cannot help.
    #[error("the request to the Cloudflare bridge could not be built: {0}")]
    Request(String),
    /// Connecting, sending or receiving failed.
    #[error("the Cloudflare bridge is temporarily unavailable (network error: {0})")]
    Network(String),
    /// No answer within the call's deadline.
    #[error("the call to the Cloudflare bridge timed out after {0} ms")]
    TimedOut(u64),
    /// A gateway in front of the bridge failed (an unsigned 502, 503 or 504).
    #[error(
        "the Cloudflare bridge is temporarily unavailable (HTTP {0} from a gateway in front of it)"
    )]
    Gateway(u16),
    /// The bridge answered with an error, signed for this request.
    #[error("{}", body.message)]
    Bridge {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: ErrorBody,
    },
    /// The bridge refused the request before it could authenticate it (an unsigned error body
    /// with status 401, 413 or 500: wrong key or secret, wrong host, a body over its limit, its
    /// own configuration incomplete).
    #[error(
        "the Cloudflare bridge refused the request: {} (check the key id and secret against BRIDGE_HMAC_KEYS, and the bridge URL against BRIDGE_HOST)",
        body.message
    )]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: ErrorBody,
    },
    /// Whatever answered is not the bridge: no valid signature, or not the JSON expected.
    #[error(
        "the bridge URL does not lead to the Cloudflare bridge: HTTP {status} without the bridge's signature ({body_start:?}); check the bridge URL, key id and secret"
    )]
    NotTheBridge {
        /// HTTP status.
        status: u16,
        /// The start of the body, for the diagnosis.
        body_start: String,
    },
    /// The execution stream carried something unreadable or an unsigned end.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A transfer's frames are not the bridge's (a bad tag, a malformed frame).
    #[error("the Cloudflare bridge's transfer stream is not authentic: {0}")]
    Frames(FrameError),
    /// An upload's source failed while it was being sent; nothing was laid down.
    #[error("reading the upload's source failed: {0}")]
    Source(String),
    /// A stream (an execution's events, a transfer's frames) stopped before its terminal one.
    #[error("the Cloudflare bridge's stream was cut off before its end (network failure)")]
    Truncated,
}

impl ClientError {
    /// Whether the same call may succeed if tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) | Self::TimedOut(_) | Self::Gateway(_) | Self::Truncated => true,
            Self::Bridge { status, .. } => matches!(status, 503 | 504),
            Self::Request(_)
            | Self::Refused { .. }
            | Self::NotTheBridge { .. }
            | Self::Stream(_)
            | Self::Frames(_)
            | Self::Source(_) => false,
        }
    }

    /// The bridge's error code, when the bridge itself answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Bridge { body, .. } => Some(body.error),
            _ => None,
        }
    }

    /// The status code of an answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Bridge { status, .. }
            | Self::Refused { status, .. }
            | Self::NotTheBridge { status, .. } => Some(*status),
            Self::Gateway(status) => Some(*status),
            _ => None,
        }
    }

    pub(super) fn from_transport(error: TransportError, limit_ms: u64) -> Self {
        match error.kind {
            TransportErrorKind::TimedOut => Self::TimedOut(limit_ms),
            TransportErrorKind::Connection => Self::Network(error.message),
        }
    }

    /// An answer whose signature verified: an error body, or not the bridge after all.
    pub(super) fn signed(status: u16, bytes: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => Self::Bridge { status, body },
            Err(_) => Self::NotTheBridge {
                status,
                body_start: body_start(bytes),
            },
        }
    }

    /// An answer without the bridge's signature: the bridge's own refusals before
    /// authentication (their JSON error body says why), a gateway's failure, or something that
    /// is not the bridge.
    pub(super) fn unsigned(status: u16, bytes: &[u8]) -> Self {
        if matches!(status, 502..=504) {
            return Self::Gateway(status);
        }
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) if matches!(status, 401 | 413 | 500) => Self::Refused { status, body },
            _ => Self::NotTheBridge {
                status,
                body_start: body_start(bytes),
            },
        }
    }
}

/// Why an execution stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// An event's payload is not what the protocol says.
    #[error("the bridge sent an unreadable {event} event: {reason}")]
    Malformed {
        /// The event name.
        event: String,
        /// Why.
        reason: String,
    },
    /// An event grew past [`crate::sse::MAX_EVENT_BYTES`] (one endless line, endless data).
    #[error(
        "the bridge sent an event larger than {limit} bytes; the stream is not the bridge's and was abandoned"
    )]
    Oversized {
        /// The limit.
        limit: usize,
    },
    /// The terminal event is not signed by the bridge for this request.
    #[error(
        "the stream's final event is not signed by the bridge (wrong secret, or something between the client and the bridge answered)"
    )]
    Unsigned,
}

/// The first 120 bytes of a body, as text.
pub(super) fn body_start(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_html_page_is_not_the_bridge() {
        let page = b"<!DOCTYPE html><html><body>Welcome to nginx</body></html>";
        let error = ClientError::unsigned(200, page);
        assert!(
            matches!(error, ClientError::NotTheBridge { status: 200, .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("does not lead to the Cloudflare bridge")
        );
        assert!(!error.is_transient());
    }

    #[test]
    fn refusals_and_gateway_failures_are_told_apart() {
        let refusal = br#"{"error":"unauthorized","message":"key id \"x\" is not configured on this bridge","details":{"reason":"unknown_key"}}"#;
        let error = ClientError::unsigned(401, refusal);
        assert!(
            error
                .to_string()
                .contains("is not configured on this bridge"),
            "{error}"
        );
        assert!(!error.is_transient());
        let gateway = ClientError::unsigned(502, b"<html>Bad gateway</html>");
        assert!(gateway.is_transient());
        assert!(gateway.to_string().contains("temporarily unavailable"));
        assert!(ClientError::TimedOut(5).to_string().contains("timed out"));
        assert!(!ClientError::Request("bad URL".into()).is_transient());
    }

    #[test]
    fn signed_errors_keep_the_bridge_code() {
        let error = ClientError::signed(409, br#"{"error":"sandbox_state_lost","message":"gone"}"#);
        assert_eq!(error.code(), Some(ErrorCode::SandboxStateLost));
        assert_eq!(error.status(), Some(409));
        assert_eq!(error.to_string(), "gone");
        assert!(!error.is_transient());
        let busy = ClientError::signed(503, br#"{"error":"sandbox_error","message":"busy"}"#);
        assert!(busy.is_transient());
    }
}
