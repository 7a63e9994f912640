//! Small runtime helpers around requests and responses.

use std::cell::OnceCell;
use std::rc::Rc;

use futures_util::StreamExt;
use js_sys::Uint8Array;
use serde::Serialize;
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Headers, Request, Response, ResponseBody, web_sys};

use crate::config::{BridgeConfig, ConfigError};
use crate::error::BridgeError;
use bridge_protocol::auth::{Authenticated, RESPONSE_SIGNATURE_HEADER, ResponseSignature};

/// A JSON reply before it is signed.
pub struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    /// A JSON body with `status`.
    pub fn json(status: u16, value: &impl Serialize) -> Result<Self, BridgeError> {
        let body = serde_json::to_vec(value).map_err(|error| {
            BridgeError::Internal(format!("cannot encode the response: {error}"))
        })?;
        Ok(Self::encoded(status, body))
    }

    /// A body already encoded as JSON, with `status`.
    pub fn encoded(status: u16, body: Vec<u8>) -> Self {
        Self { status, body }
    }

    /// The error body of `error`, with its status.
    pub fn error(error: &BridgeError) -> Self {
        let body = serde_json::to_vec(&error.to_body()).unwrap_or_else(|_| {
            br#"{"error":"internal_error","message":"the error body could not be encoded"}"#
                .to_vec()
        });
        Self {
            status: error.status(),
            body,
        }
    }
}

/// Turns a reply into a response, signed with the request's key when it was authenticated.
pub fn respond(reply: Reply, authenticated: Option<&Authenticated>) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    if let Some(authenticated) = authenticated {
        let signature = ResponseSignature::sign(
            &authenticated.secret,
            authenticated.nonce.as_str(),
            reply.status,
            &reply.body,
        );
        headers.set(RESPONSE_SIGNATURE_HEADER, &signature)?;
    }
    Ok(Response::from_bytes(reply.body)?
        .with_status(reply.status)
        .with_headers(headers))
}

/// `N` random bytes as lowercase hex, for ids and nonces the bridge makes.
pub fn random_hex<const N: usize>() -> Result<String, BridgeError> {
    let mut random = [0u8; N];
    getrandom::fill(&mut random)
        .map_err(|error| BridgeError::Internal(format!("no randomness: {error}")))?;
    Ok(hex::encode(random))
}

/// A Worker var or secret as text; absent and non-text values read as `None`.
pub fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|value| value.to_string())
        .or_else(|_| env.secret(name).map(|value| value.to_string()))
        .ok()
}

thread_local! {
    /// The configuration once it parsed in this isolate.
    static CONFIG: OnceCell<Rc<BridgeConfig>> = const { OnceCell::new() };
}

/// The bridge's configuration, parsed from its vars and secrets on first use in an isolate: they
/// never change under a running isolate (a new version or secret starts new ones), and parsing
/// them on every request cost a dozen calls into JavaScript in the Worker and again in the lease
/// object. A configuration that does not parse is not kept, so every request reports it.
pub fn config(env: &Env) -> Result<Rc<BridgeConfig>, ConfigError> {
    CONFIG.with(|cell| {
        if let Some(config) = cell.get() {
            return Ok(Rc::clone(config));
        }
        let config = Rc::new(BridgeConfig::from_lookup(|name| var(env, name))?);
        Ok(Rc::clone(cell.get_or_init(|| config)))
    })
}

/// Reads the whole body, refusing it as soon as it grows past `limit`.
pub async fn read_body(request: &mut Request, limit: u64) -> Result<Vec<u8>, BridgeError> {
    let too_large = BridgeError::BodyTooLarge { limit };
    let declared = request
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|length| length.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large);
    }
    if request.inner().body().is_none() {
        return Ok(Vec::new());
    }
    if declared.is_some() {
        // The runtime delivers exactly the declared length, so one `arrayBuffer()` is bounded.
        return request.bytes().await.map_err(|error| {
            BridgeError::InvalidRequest(format!("cannot read the body: {error}"))
        });
    }
    let mut stream = request
        .stream()
        .map_err(|error| BridgeError::InvalidRequest(format!("cannot read the body: {error}")))?;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            BridgeError::InvalidRequest(format!("cannot read the body: {error}"))
        })?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The whole body of another object's answer in one `arrayBuffer()`: workers-rs'
/// `Response::bytes` pulls it through a stream reader chunk by chunk, and releasing that reader
/// costs workerd a `TypeError` with its stack, on every call.
pub async fn whole_body(response: &Response) -> worker::Result<Vec<u8>> {
    let stream = match response.body() {
        ResponseBody::Empty => return Ok(Vec::new()),
        ResponseBody::Body(bytes) => return Ok(bytes.clone()),
        ResponseBody::Stream(stream) => stream,
    };
    let whole = web_sys::Response::new_with_opt_readable_stream(Some(stream))?;
    let buffer = JsFuture::from(whole.array_buffer()?).await?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Seconds since the Unix epoch by the Workers clock.
pub fn unix_now() -> u64 {
    unix_millis() / 1000
}

/// Milliseconds since the Unix epoch by the Workers clock (advances only across I/O).
pub fn unix_millis() -> u64 {
    js_sys::Date::now() as u64
}
