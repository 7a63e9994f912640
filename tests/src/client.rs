//! A signed client of the bridge for tests and `cargo xtask`, built only from the shared `api` and
//! `auth` modules. Requests can be prepared, inspected and tampered with before they are sent.

use std::time::{SystemTime, UNIX_EPOCH};

use bridge_protocol::api::{ErrorBody, ExecRequest, ExecResult, OutputChunk, StreamFailure};
use bridge_protocol::auth::{
    CONTENT_SHA256_HEADER, KeyId, Nonce, RESPONSE_SIGNATURE_HEADER, RequestSigner,
    ResponseSignature, SecretKey, StreamOutcome,
};
use bridge_protocol::routes::Route;
use bridge_protocol::sse::{SseDecoder, SseItem};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The key id or secret is unusable.
    #[error("invalid credentials: {0}")]
    Credentials(String),
    /// The bridge could not be reached.
    #[error("cannot reach the bridge: {0}")]
    Transport(#[from] reqwest::Error),
    /// The bridge answered with an error body.
    #[error("the bridge answered {status}: {} ({:?})", body.message, body.error)]
    Api {
        /// HTTP status.
        status: u16,
        /// The decoded error body.
        body: ErrorBody,
    },
    /// The response was not signed by the bridge for this request.
    #[error("the response (HTTP {status}) is not signed by the bridge: {body_start:?}")]
    Unsigned {
        /// HTTP status.
        status: u16,
        /// Start of the body, for the diagnosis.
        body_start: String,
    },
    /// The operating system gave no randomness for a nonce.
    #[error("no randomness for a nonce: {0}")]
    Entropy(String),
    /// An event stream that ended without its one terminal event.
    #[error("the event stream ended without a terminal event (transport failure)")]
    Truncated,
    /// A terminal event whose signature does not verify.
    #[error("the stream's terminal event is not signed by the bridge")]
    BadStreamSignature,
    /// A signed response that is not the expected JSON.
    #[error("unexpected response body: {0}")]
    Decode(#[from] serde_json::Error),
}

/// A signed request, not yet sent.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// HTTP method.
    pub method: String,
    /// Path as sent.
    pub path: String,
    /// Query without `?`.
    pub query: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Headers, including `Host`, `Authorization` and the content hash.
    pub headers: Vec<(String, String)>,
    /// The nonce, bound into the response signature.
    pub nonce: Nonce,
}

impl PreparedRequest {
    /// Replaces (or, with `None`, removes) a header.
    pub fn set_header(&mut self, name: &str, value: Option<&str>) {
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
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
    pub fn error_body(&self) -> Option<ErrorBody> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Something an event stream carried before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A piece of output.
    Output {
        /// `stdout` or `stderr`.
        stream: String,
        /// The event id.
        id: u64,
        /// The text.
        data: String,
    },
    /// A heartbeat comment.
    Heartbeat,
}

/// How an event stream ended (its signature verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// `complete`: the result without the output text.
    Complete(ExecResult),
    /// `error`: the bridge gave up.
    Error(StreamFailure),
}

/// A client for one bridge with one key.
#[derive(Debug, Clone)]
pub struct BridgeClient {
    http: reqwest::Client,
    base_url: String,
    signer: RequestSigner,
    host: String,
}

impl BridgeClient {
    /// `host` is the pinned bridge host the requests are signed for and addressed to.
    pub fn new(
        base_url: &str,
        host: &str,
        key_id: &str,
        secret: &str,
    ) -> Result<Self, ClientError> {
        let key_id =
            KeyId::parse(key_id).map_err(|error| ClientError::Credentials(error.to_string()))?;
        let secret =
            SecretKey::new(secret).map_err(|error| ClientError::Credentials(error.to_string()))?;
        Ok(Self {
            http: crate::http_client(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            signer: RequestSigner::new(key_id, secret, host),
            host: host.to_owned(),
        })
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

    /// Signs a request as if the clock said `timestamp`.
    pub fn prepare_at(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        timestamp: u64,
    ) -> Result<PreparedRequest, ClientError> {
        let nonce = Nonce::random().map_err(|error| ClientError::Entropy(error.to_string()))?;
        let signed = self
            .signer
            .sign(method, path, query, body, timestamp, nonce);
        Ok(PreparedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: body.to_vec(),
            headers: vec![
                ("Host".to_owned(), self.host.clone()),
                ("Authorization".to_owned(), signed.authorization),
                (CONTENT_SHA256_HEADER.to_owned(), signed.content_sha256),
                ("Content-Type".to_owned(), "application/json".to_owned()),
            ],
            nonce: signed.nonce,
        })
    }

    /// Sends a prepared request as it is.
    pub async fn send(&self, request: &PreparedRequest) -> Result<RawResponse, ClientError> {
        let mut url = format!("{}{}", self.base_url, request.path);
        if !request.query.is_empty() {
            url.push('?');
            url.push_str(&request.query);
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|error| ClientError::Credentials(format!("bad method: {error}")))?;
        let mut builder = self.http.request(method, url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let signature = response
            .headers()
            .get(RESPONSE_SIGNATURE_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?.to_vec();
        Ok(RawResponse {
            status,
            body,
            signature,
        })
    }

    /// Whether `response` carries a valid signature for `request`.
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

    /// Calls a route without a body (GET, DELETE).
    pub async fn fetch<T: DeserializeOwned>(&self, route: Route) -> Result<T, ClientError> {
        self.call(route, Vec::new()).await
    }

    /// Calls a POST `route` with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        route: Route,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.call(route, serde_json::to_vec(body)?).await
    }

    /// Signs and sends, checks the response signature, and decodes the result or the error body.
    async fn call<T: DeserializeOwned>(
        &self,
        route: Route,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let request = self.prepare(route.method(), &route.path(), "", &body)?;
        let response = self.send(&request).await?;
        if !self.is_authentic(&request, &response) {
            return Err(ClientError::Unsigned {
                status: response.status,
                body_start: String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
                    .into_owned(),
            });
        }
        if response.status >= 400 {
            return Err(ClientError::Api {
                status: response.status,
                body: serde_json::from_slice(&response.body)?,
            });
        }
        Ok(serde_json::from_slice(&response.body)?)
    }
}

impl BridgeClient {
    /// Runs `request` as an event stream, handing every item to `on_item` as it arrives, and
    /// returns the verified terminal event.
    pub async fn exec_stream(
        &self,
        request: &ExecRequest,
        mut on_item: impl FnMut(StreamItem),
    ) -> Result<StreamEnd, ClientError> {
        let body = serde_json::to_vec(request)?;
        let route = Route::Exec;
        let mut prepared = self.prepare(route.method(), &route.path(), "", &body)?;
        prepared.set_header("Accept", Some("text/event-stream"));
        let mut url = format!("{}{}", self.base_url, prepared.path);
        if !prepared.query.is_empty() {
            url = format!("{url}?{}", prepared.query);
        }
        let mut builder = self.http.post(url).body(prepared.body.clone());
        for (name, value) in &prepared.headers {
            builder = builder.header(name, value);
        }
        let mut response = builder.send().await?;
        let status = response.status().as_u16();
        if status != 200 {
            let signature = response
                .headers()
                .get(RESPONSE_SIGNATURE_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let raw = RawResponse {
                status,
                body: response.bytes().await?.to_vec(),
                signature,
            };
            if !self.is_authentic(&prepared, &raw) {
                return Err(ClientError::Unsigned {
                    status,
                    body_start: String::from_utf8_lossy(&raw.body[..raw.body.len().min(200)])
                        .into_owned(),
                });
            }
            return Err(ClientError::Api {
                status,
                body: serde_json::from_slice(&raw.body)?,
            });
        }
        let mut decoder = SseDecoder::new();
        while let Some(bytes) = response.chunk().await? {
            for item in decoder.push(&bytes) {
                let event = match item {
                    SseItem::Comment(_) => {
                        on_item(StreamItem::Heartbeat);
                        continue;
                    }
                    SseItem::Event(event) => event,
                };
                match event.event.as_deref() {
                    Some(name @ ("stdout" | "stderr")) => {
                        let chunk: OutputChunk = serde_json::from_str(&event.data)?;
                        on_item(StreamItem::Output {
                            stream: name.to_owned(),
                            id: event.id.and_then(|id| id.parse().ok()).unwrap_or(0),
                            data: chunk.data,
                        });
                    }
                    Some("complete") => {
                        let result: ExecResult = serde_json::from_str(&event.data)?;
                        let outcome = StreamOutcome::Complete {
                            exit_code: result.exit_code,
                            timed_out: result.timed_out,
                            stdout_bytes: result.stdout_bytes,
                            stderr_bytes: result.stderr_bytes,
                        };
                        return self.verified(
                            &prepared,
                            outcome,
                            result.signature.as_deref(),
                            StreamEnd::Complete(result.clone()),
                        );
                    }
                    Some("error") => {
                        let failure: StreamFailure = serde_json::from_str(&event.data)?;
                        let code = serde_json::to_value(failure.error)?;
                        let outcome = StreamOutcome::Error {
                            code: code.as_str().unwrap_or_default(),
                        };
                        return self.verified(
                            &prepared,
                            outcome,
                            Some(&failure.signature.clone()),
                            StreamEnd::Error(failure),
                        );
                    }
                    _ => {}
                }
            }
        }
        Err(ClientError::Truncated)
    }

    fn verified(
        &self,
        request: &PreparedRequest,
        outcome: StreamOutcome<'_>,
        signature: Option<&str>,
        end: StreamEnd,
    ) -> Result<StreamEnd, ClientError> {
        let valid = signature.is_some_and(|signature| {
            outcome.verify(self.signer.secret(), request.nonce.as_str(), signature)
        });
        if valid {
            Ok(end)
        } else {
            Err(ClientError::BadStreamSignature)
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
