//! The one client of the bridge (feature `client`): every request signed with [`crate::auth`],
//! every answer checked against the bridge's signature for that very request — so a proxy's page
//! or a wrong URL is a clear error, never a result — streams read to their one signed terminal
//! event, retries of idempotent calls inside one overall deadline, and typed errors.
//!
//! The HTTP stack is a [`Transport`]; [`ReqwestTransport`] (feature `reqwest`) is the one the
//! plugin and the tests use. Tests that tamper with requests use the same client: they
//! [`BridgeClient::prepare`] a request (at any clock, with [`BridgeClient::prepare_at`]), change
//! its headers or body, and [`BridgeClient::send`] it as it is, as often as they like.

mod error;
#[cfg(feature = "reqwest")]
mod reqwest_transport;
mod stream;
mod transfer;
mod transport;

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{ClientError, StreamError};
#[cfg(feature = "reqwest")]
pub use reqwest_transport::{ReqwestBody, ReqwestTransport};
pub use stream::{StreamEvent, StreamReader};
pub use transfer::Download;
pub use transport::{
    BodyStream, HttpBody, HttpRequest, HttpResponse, ResponseBody, Transport, TransportError,
    TransportErrorKind,
};

use crate::api::ExecRequest;
use crate::auth::{
    CONTENT_SHA256_HEADER, KeyId, Nonce, RequestSigner, ResponseSignature, SecretKey,
    check_signable_path,
};
use crate::routes::Route;

/// Attempts of an idempotent call while its failures are transient.
const ATTEMPTS: u32 = 3;
/// The first pause between attempts; each later one is four times longer.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The deadline of [`BridgeClient::fetch`] and [`BridgeClient::post`].
const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);

/// How long a call may take in all, and whether it may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// The overall deadline: attempts and the pauses between them all fit inside it.
    pub deadline: Duration,
    /// Whether the call is idempotent, so that a transient failure may be retried.
    pub retry: bool,
}

impl CallPolicy {
    /// One attempt within `deadline`.
    pub fn once(deadline: Duration) -> Self {
        Self {
            deadline,
            retry: false,
        }
    }

    /// Retried on transient failures within `deadline`.
    pub fn retried(deadline: Duration) -> Self {
        Self {
            deadline,
            retry: true,
        }
    }
}

/// A signed request, not yet sent; tests may change it before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    /// HTTP method.
    pub method: String,
    /// Path as sent.
    pub path: String,
    /// Query without `?`.
    pub query: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Headers (`Authorization`, the content hash, `Content-Type`; the transport adds `Host`
    /// from the URL unless one is set here).
    pub headers: Vec<(String, String)>,
    /// The nonce, which the response signature is bound to.
    pub nonce: Nonce,
}

impl PreparedRequest {
    /// The value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Replaces (or, with `None`, removes) a header.
    pub fn set_header(&mut self, name: &str, value: Option<&str>) {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
    }
}

/// An answer read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// `X-PCB-Response-Signature`, if present.
    pub signature: Option<String>,
}

impl RawResponse {
    /// The body as an error body, if it is one.
    pub fn error_body(&self) -> Option<crate::api::ErrorBody> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A client of one bridge, with one key.
#[derive(Debug, Clone)]
pub struct BridgeClient<T> {
    transport: T,
    base_url: String,
    signer: RequestSigner,
}

impl<T: Transport> BridgeClient<T> {
    /// A client of the bridge at `base_url` (an origin), whose requests are signed for `host`
    /// (the bridge's `BRIDGE_HOST`: the URL's host, with its port when it is not the scheme's
    /// default).
    pub fn new(transport: T, base_url: &str, host: &str, key_id: KeyId, secret: SecretKey) -> Self {
        Self {
            transport,
            base_url: base_url.trim_end_matches('/').to_owned(),
            signer: RequestSigner::new(key_id, secret, host),
        }
    }

    /// The origin requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Signs a request now, with a fresh nonce.
    pub fn prepare(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
    ) -> Result<PreparedRequest, ClientError> {
        self.prepare_at(method, path, query, body, unix_now())
    }

    /// Signs a request as if the clock said `timestamp` (Unix seconds).
    pub fn prepare_at(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Result<PreparedRequest, ClientError> {
        signable(path)?;
        let nonce = Nonce::random()
            .map_err(|error| ClientError::Request(format!("no randomness for a nonce: {error}")))?;
        let signed = self
            .signer
            .sign(method, path, query, body, timestamp, nonce);
        Ok(PreparedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: body.to_vec(),
            headers: vec![
                ("Authorization".to_owned(), signed.authorization),
                (CONTENT_SHA256_HEADER.to_owned(), signed.content_sha256),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ],
            nonce: signed.nonce,
        })
    }

    /// Signs a request whose body will be framed; returns it (without a body) and the signature
    /// its frames chain from.
    pub fn prepare_streaming(
        &self,
        method: &str,
        path: &str,
        query: &str,
    ) -> Result<(PreparedRequest, [u8; 32]), ClientError> {
        signable(path)?;
        let nonce = Nonce::random()
            .map_err(|error| ClientError::Request(format!("no randomness for a nonce: {error}")))?;
        let signed = self
            .signer
            .sign_streaming(method, path, query, unix_now(), nonce);
        let prepared = PreparedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: Vec::new(),
            headers: vec![
                ("Authorization".to_owned(), signed.authorization),
                (CONTENT_SHA256_HEADER.to_owned(), signed.content_sha256),
            ],
            nonce: signed.nonce,
        };
        Ok((prepared, signed.signature))
    }

    /// Sends a prepared request as it is and reads the whole answer, all within `limit`.
    pub async fn send(
        &self,
        request: &PreparedRequest,
        limit: Duration,
    ) -> Result<RawResponse, ClientError> {
        let deadline = Instant::now() + limit;
        let response = self.transmit(request, limit).await?;
        read_whole(response, deadline, limit).await
    }

    /// Whether `response` carries the bridge's signature for `request`.
    pub fn is_authentic(&self, request: &PreparedRequest, response: &RawResponse) -> bool {
        response.signature.as_deref().is_some_and(|signature| {
            ResponseSignature::verify(
                self.signer.secret(),
                request.nonce.as_str(),
                response.status,
                &response.body,
                signature,
            )
        })
    }

    /// Calls `route` with a JSON `body` (or none) under `policy`, checks the answer's signature
    /// and decodes the result or the error.
    pub async fn call<R: DeserializeOwned>(
        &self,
        route: Route,
        body: Option<&impl Serialize>,
        policy: CallPolicy,
    ) -> Result<R, ClientError> {
        let body = match body {
            Some(body) => serde_json::to_vec(body).map_err(|error| {
                ClientError::Request(format!("the body does not encode: {error}"))
            })?,
            None => Vec::new(),
        };
        let deadline = Instant::now() + policy.deadline;
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(&route, &body, remaining(deadline)).await;
            let pause = FIRST_BACKOFF * 4u32.pow(attempt - 1);
            match outcome {
                Err(error)
                    if policy.retry
                        && error.is_transient()
                        && attempt < ATTEMPTS
                        && remaining(deadline) > pause =>
                {
                    self.transport.sleep(pause).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// [`Self::call`] without a body, once, within a minute (GET, DELETE).
    pub async fn fetch<R: DeserializeOwned>(&self, route: Route) -> Result<R, ClientError> {
        self.call(route, None::<&()>, CallPolicy::once(DEFAULT_DEADLINE))
            .await
    }

    /// [`Self::call`] with a JSON body, once, within a minute.
    pub async fn post<R: DeserializeOwned>(
        &self,
        route: Route,
        body: &impl Serialize,
    ) -> Result<R, ClientError> {
        self.call(route, Some(body), CallPolicy::once(DEFAULT_DEADLINE))
            .await
    }

    /// Starts `request` as an event stream, to be read with [`ExecStream::next`] within
    /// `limit` in all. Failures before the stream starts are ordinary (signed) answers; a 200
    /// that is not an event stream (a proxy's or portal's page) is not the bridge.
    pub async fn exec_stream(
        &self,
        request: &ExecRequest,
        limit: Duration,
    ) -> Result<ExecStream<T::Body>, ClientError> {
        let deadline = Instant::now() + limit;
        let body = serde_json::to_vec(request)
            .map_err(|error| ClientError::Request(format!("the body does not encode: {error}")))?;
        let route = Route::Exec;
        let mut prepared = self.prepare(route.method(), &route.path(), "", &body)?;
        prepared.set_header("Accept", Some("text/event-stream"));
        let response = self.transmit(&prepared, limit).await?;
        let is_stream = response
            .content_type
            .as_deref()
            .is_some_and(|content_type| content_type.starts_with("text/event-stream"));
        if response.status != 200 || !is_stream {
            let raw = read_whole(response, deadline, limit).await?;
            return Err(self.error_of(&prepared, &raw));
        }
        Ok(ExecStream {
            body: response.body,
            reader: StreamReader::new(self.signer.secret().clone(), prepared.nonce.to_string()),
            pending: VecDeque::new(),
            deadline,
            limit,
        })
    }

    /// One signed attempt of a call.
    async fn attempt<R: DeserializeOwned>(
        &self,
        route: &Route,
        body: &[u8],
        limit: Duration,
    ) -> Result<R, ClientError> {
        let request = self.prepare(route.method(), &route.path(), "", body)?;
        let response = self.send(&request, limit).await?;
        if !self.is_authentic(&request, &response) || !(200..300).contains(&response.status) {
            return Err(self.error_of(&request, &response));
        }
        serde_json::from_slice(&response.body).map_err(|error| ClientError::NotTheBridge {
            status: response.status,
            body_start: format!("unexpected JSON: {error}"),
        })
    }

    /// The error an answer that is not a success stands for.
    fn error_of(&self, request: &PreparedRequest, response: &RawResponse) -> ClientError {
        if self.is_authentic(request, response) {
            ClientError::signed(response.status, &response.body)
        } else {
            ClientError::unsigned(response.status, &response.body)
        }
    }

    async fn transmit(
        &self,
        request: &PreparedRequest,
        limit: Duration,
    ) -> Result<HttpResponse<T::Body>, ClientError> {
        self.transmit_body(request, HttpBody::Bytes(request.body.clone()), limit)
            .await
    }

    /// Sends `request` with `body` in place of its own.
    async fn transmit_body(
        &self,
        request: &PreparedRequest,
        body: HttpBody,
        limit: Duration,
    ) -> Result<HttpResponse<T::Body>, ClientError> {
        let mut url = format!("{}{}", self.base_url, request.path);
        if !request.query.is_empty() {
            url.push('?');
            url.push_str(&request.query);
        }
        let http = HttpRequest {
            method: request.method.clone(),
            url,
            headers: request.headers.clone(),
            body,
        };
        self.transport
            .send(http, limit)
            .await
            .map_err(|error| ClientError::from_transport(error, millis(limit)))
    }
}

/// An execution's event stream.
#[derive(Debug)]
pub struct ExecStream<B> {
    body: B,
    reader: StreamReader,
    pending: VecDeque<StreamEvent>,
    deadline: Instant,
    limit: Duration,
}

impl<B: ResponseBody> ExecStream<B> {
    /// The next event, `None` after the terminal one. A stream that stops before its terminal
    /// event is [`ClientError::Truncated`], never a result.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>, ClientError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            if self.reader.is_finished() {
                return Ok(None);
            }
            match next_chunk(&mut self.body, self.deadline, self.limit).await? {
                Some(bytes) => self.pending.extend(self.reader.push(&bytes)?),
                None => return Err(ClientError::Truncated),
            }
        }
    }
}

/// Reads a response's whole body by `deadline` (`limit` names the call's time limit in errors).
async fn read_whole<B: ResponseBody>(
    response: HttpResponse<B>,
    deadline: Instant,
    limit: Duration,
) -> Result<RawResponse, ClientError> {
    let mut body = response.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = next_chunk(&mut body, deadline, limit).await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(RawResponse {
        status: response.status,
        body: bytes,
        signature: response.signature,
    })
}

/// The next chunk of `body` by `deadline` (`limit` names the call's time limit in errors).
async fn next_chunk<B: ResponseBody>(
    body: &mut B,
    deadline: Instant,
    limit: Duration,
) -> Result<Option<Vec<u8>>, ClientError> {
    body.chunk(remaining(deadline))
        .await
        .map_err(|error| ClientError::from_transport(error, millis(limit)))
}

/// Refuses to sign a path the bridge would not see as sent (DESIGN §4 as the README states it).
fn signable(path: &str) -> Result<(), ClientError> {
    check_signable_path(path).map_err(|error| ClientError::Request(error.to_string()))
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests;
