//! What the client needs from an HTTP stack: send one request and read its body in chunks, each
//! within a time limit, and wait. The plugin and the tests plug reqwest in
//! ([`super::ReqwestTransport`]); any other stack fits the same three calls.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Bytes produced while a request is being sent (an upload's frames); an error aborts the request.
pub type BodyStream =
    Pin<Box<dyn futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send>>;

/// A request body.
pub enum HttpBody {
    /// All of it, in hand.
    Bytes(Vec<u8>),
    /// Read while sending, so it is never held whole.
    Stream(BodyStream),
}

impl fmt::Debug for HttpBody {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(bytes) => write!(formatter, "Bytes({} bytes)", bytes.len()),
            Self::Stream(_) => formatter.write_str("Stream"),
        }
    }
}

/// One request, exactly as it goes on the wire.
#[derive(Debug)]
pub struct HttpRequest {
    /// Method, upper case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in order (`Host` among them when the request pins one).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: HttpBody,
}

/// The head of a response, and its body still to be read.
#[derive(Debug)]
pub struct HttpResponse<B> {
    /// Status code.
    pub status: u16,
    /// `X-PCB-Response-Signature`, when present.
    pub signature: Option<String>,
    /// `Content-Type`, when present: a stream is only taken for one if it says so.
    pub content_type: Option<String>,
    /// The body.
    pub body: B,
}

/// How a transport failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// The time limit passed.
    TimedOut,
    /// Connecting, sending or receiving failed (refused, reset, TLS, DNS, …).
    Connection,
}

/// A failure below HTTP; always worth another try for an idempotent call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// What kind of failure.
    pub kind: TransportErrorKind,
    /// What the stack said.
    pub message: String,
}

/// A response body, read a chunk at a time.
pub trait ResponseBody: Send {
    /// The next chunk, `None` at the end; fails when none arrives within `limit`.
    fn chunk(
        &mut self,
        limit: Duration,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;
}

/// An HTTP stack.
pub trait Transport: Send + Sync {
    /// Its response bodies.
    type Body: ResponseBody;

    /// Sends `request`; fails when its response head does not arrive within `limit`.
    fn send(
        &self,
        request: HttpRequest,
        limit: Duration,
    ) -> impl Future<Output = Result<HttpResponse<Self::Body>, TransportError>> + Send;

    /// Waits (between retries).
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}
