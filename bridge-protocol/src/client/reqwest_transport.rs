//! [`Transport`] over a `reqwest::Client` (feature `reqwest`), on tokio's timers. The caller
//! builds the `reqwest::Client` (TLS roots, pools), so one stack serves the plugin and the tests.

use std::time::Duration;

use super::transport::{
    HttpBody, HttpRequest, HttpResponse, ResponseBody, Transport, TransportError,
    TransportErrorKind,
};
use crate::auth::RESPONSE_SIGNATURE_HEADER;

/// reqwest as the client's HTTP stack.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    http: reqwest::Client,
}

impl ReqwestTransport {
    /// Sends through `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }
}

/// A reqwest response body.
#[derive(Debug)]
pub struct ReqwestBody(reqwest::Response);

impl Transport for ReqwestTransport {
    type Body = ReqwestBody;

    async fn send(
        &self,
        request: HttpRequest,
        limit: Duration,
    ) -> Result<HttpResponse<ReqwestBody>, TransportError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|error| {
            TransportError {
                kind: TransportErrorKind::Connection,
                message: format!("invalid method {:?}: {error}", request.method),
            }
        })?;
        let body = match request.body {
            HttpBody::Bytes(bytes) => reqwest::Body::from(bytes),
            HttpBody::Stream(stream) => reqwest::Body::wrap_stream(stream),
        };
        let mut builder = self.http.request(method, &request.url).body(body);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let response = tokio::time::timeout(limit, builder.send())
            .await
            .map_err(|_| timed_out(limit))?
            .map_err(failed)?;
        let signature = response
            .headers()
            .get(RESPONSE_SIGNATURE_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(HttpResponse {
            status: response.status().as_u16(),
            signature,
            content_type,
            body: ReqwestBody(response),
        })
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

impl ResponseBody for ReqwestBody {
    async fn chunk(&mut self, limit: Duration) -> Result<Option<Vec<u8>>, TransportError> {
        tokio::time::timeout(limit, self.0.chunk())
            .await
            .map_err(|_| timed_out(limit))?
            .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
            .map_err(failed)
    }
}

fn timed_out(limit: Duration) -> TransportError {
    TransportError {
        kind: TransportErrorKind::TimedOut,
        message: format!("no answer within {} ms", limit.as_millis()),
    }
}

/// reqwest's own message names only the URL; the causes under it (refused, reset, which TLS
/// failure) are what an operator acts on, so the message carries the whole chain.
fn failed(error: reqwest::Error) -> TransportError {
    let mut message = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    TransportError {
        kind: if error.is_timeout() {
            TransportErrorKind::TimedOut
        } else {
            TransportErrorKind::Connection
        },
        message,
    }
}
