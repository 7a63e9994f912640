//! The signed HTTP client of the bridge. Every request is signed with the shared `auth` code;
//! every answer must carry the bridge's signature for that very request, so a proxy's error page
//! or a wrong URL becomes a clear configuration error instead of a result.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bridge_protocol::api::{ErrorBody, ErrorCode};
use bridge_protocol::auth::{
    CONTENT_SHA256_HEADER, KeyId, Nonce, RESPONSE_SIGNATURE_HEADER, RequestSigner,
    ResponseSignature, SecretKey,
};
use bridge_protocol::routes::Route;
use reqwest::Url;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::stream::{StreamError, StreamEvent, StreamReader};

/// Attempts of an idempotent call when the failure looks transient.
const ATTEMPTS: u32 = 3;

/// Why a call to the bridge failed. Transient failures say "temporarily unavailable", "network"
/// or "timed out", the words Paperclip's resume retry looks for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed.
    #[error("the Cloudflare bridge is temporarily unavailable (network error: {0})")]
    Network(String),
    /// No answer in time.
    #[error("the call to the Cloudflare bridge timed out after {0} ms")]
    TimedOut(u64),
    /// A gateway in front of the bridge failed (unsigned 502/503/504).
    #[error(
        "the Cloudflare bridge is temporarily unavailable (HTTP {0} from a gateway in front of it)"
    )]
    Gateway(u16),
    /// The bridge answered with an error (signed).
    #[error("{message}")]
    Bridge {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: ErrorCode,
        /// The bridge's sentence.
        message: String,
    },
    /// The bridge refused the request before authenticating it.
    #[error(
        "the Cloudflare bridge refused the request: {message} (check bridgeSecret and keyId against BRIDGE_HMAC_KEYS, and bridgeBaseUrl against BRIDGE_HOST)"
    )]
    Refused {
        /// HTTP status.
        status: u16,
        /// The bridge's sentence.
        message: String,
    },
    /// Whatever answered is not the bridge.
    #[error(
        "bridgeBaseUrl does not lead to the Cloudflare bridge: HTTP {status} without the bridge's signature ({body_start:?}); check bridgeBaseUrl, bridgeSecret and keyId"
    )]
    NotTheBridge {
        /// HTTP status.
        status: u16,
        /// Start of the body, for the diagnosis.
        body_start: String,
    },
    /// The execution stream was unreadable or unsigned.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The execution stream stopped before its terminal event.
    #[error("the Cloudflare bridge's stream ended before the command's result (network failure)")]
    Truncated,
}

impl ClientError {
    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) | Self::TimedOut(_) | Self::Gateway(_) | Self::Truncated => true,
            Self::Bridge { status, .. } => matches!(status, 503 | 504),
            Self::Refused { .. } | Self::NotTheBridge { .. } | Self::Stream(_) => false,
        }
    }

    /// The bridge's error code, when the bridge answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Bridge { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One HTTP client (one connection pool) for every bridge the plugin talks to.
pub fn http_client() -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS setup failed: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| format!("HTTP client setup failed: {error}"))
}

/// A client of one bridge with one key.
#[derive(Debug, Clone)]
pub struct BridgeClient {
    http: reqwest::Client,
    base: Url,
    signer: RequestSigner,
}

/// A signed request before it is sent.
struct Signed {
    url: Url,
    method: reqwest::Method,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    nonce: Nonce,
}

impl BridgeClient {
    /// A client for the bridge at `base` (an origin).
    pub fn new(http: reqwest::Client, base: Url, key_id: KeyId, secret: SecretKey) -> Self {
        let host = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_owned(),
        };
        Self {
            http,
            signer: RequestSigner::new(key_id, secret, &host),
            base,
        }
    }

    /// Calls `route`; idempotent calls are retried with back-off on transient failures.
    pub async fn call<T: DeserializeOwned>(
        &self,
        route: Route,
        body: Option<&impl Serialize>,
        timeout: Duration,
        idempotent: bool,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(body) => {
                serde_json::to_vec(body).map_err(|error| ClientError::Network(error.to_string()))?
            }
            None => Vec::new(),
        };
        let mut attempt = 1;
        loop {
            match self.once(&route, &body, timeout).await {
                Err(error) if idempotent && error.is_transient() && attempt < ATTEMPTS => {
                    tracing::warn!(%error, attempt, route = %route.path(), "retrying a bridge call");
                    tokio::time::sleep(Duration::from_millis(250 * 4u64.pow(attempt - 1))).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        route: &Route,
        body: &[u8],
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let signed = self.sign(route, body.to_vec(), None)?;
        let nonce = signed.nonce.clone();
        let response = self.send(signed, timeout).await?;
        let status = response.status().as_u16();
        let signature = header(&response, RESPONSE_SIGNATURE_HEADER);
        let bytes = tokio::time::timeout(timeout, response.bytes())
            .await
            .map_err(|_| ClientError::TimedOut(millis(timeout)))?
            .map_err(network)?;
        let authentic = signature.as_deref().is_some_and(|signature| {
            ResponseSignature::verify(
                self.signer.secret(),
                nonce.as_str(),
                status,
                &bytes,
                signature,
            )
        });
        if !authentic {
            return Err(unsigned(status, &bytes));
        }
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|error| ClientError::NotTheBridge {
                status,
                body_start: format!("unexpected JSON: {error}"),
            });
        }
        Err(bridge_error(status, &bytes))
    }

    /// Starts an execution as an event stream; read it with [`ExecStream::next`].
    pub async fn exec_stream(
        &self,
        request: &impl Serialize,
        timeout: Duration,
    ) -> Result<ExecStream, ClientError> {
        let body =
            serde_json::to_vec(request).map_err(|error| ClientError::Network(error.to_string()))?;
        let signed = self.sign(&Route::Exec, body, Some("text/event-stream"))?;
        let nonce = signed.nonce.clone();
        let deadline = Instant::now() + timeout;
        let response = self.send(signed, timeout).await?;
        let status = response.status().as_u16();
        if status != 200 {
            let signature = header(&response, RESPONSE_SIGNATURE_HEADER);
            let bytes = response.bytes().await.map_err(network)?;
            let authentic = signature.as_deref().is_some_and(|signature| {
                ResponseSignature::verify(
                    self.signer.secret(),
                    nonce.as_str(),
                    status,
                    &bytes,
                    signature,
                )
            });
            return Err(if authentic {
                bridge_error(status, &bytes)
            } else {
                unsigned(status, &bytes)
            });
        }
        Ok(ExecStream {
            response,
            reader: StreamReader::new(self.signer.secret().clone(), nonce.to_string()),
            pending: VecDeque::new(),
            finished: false,
            deadline,
            timeout,
        })
    }

    fn sign(
        &self,
        route: &Route,
        body: Vec<u8>,
        accept: Option<&str>,
    ) -> Result<Signed, ClientError> {
        let url = self
            .base
            .join(&route.path())
            .map_err(|error| ClientError::Network(format!("bad URL: {error}")))?;
        let nonce = Nonce::random()
            .map_err(|error| ClientError::Network(format!("no randomness: {error}")))?;
        let headers = self
            .signer
            .sign(route.method(), url.path(), "", &body, unix_now(), nonce);
        let mut header_list = vec![
            ("Authorization", headers.authorization),
            (CONTENT_SHA256_HEADER, headers.content_sha256),
            ("Content-Type", "application/json".to_owned()),
        ];
        if let Some(accept) = accept {
            header_list.push(("Accept", accept.to_owned()));
        }
        let method = reqwest::Method::from_bytes(route.method().as_bytes())
            .map_err(|error| ClientError::Network(error.to_string()))?;
        Ok(Signed {
            url,
            method,
            body,
            headers: header_list,
            nonce: headers.nonce,
        })
    }

    async fn send(
        &self,
        signed: Signed,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let mut builder = self
            .http
            .request(signed.method, signed.url)
            .body(signed.body)
            .timeout(timeout);
        for (name, value) in signed.headers {
            builder = builder.header(name, value);
        }
        builder.send().await.map_err(|error| {
            if error.is_timeout() {
                ClientError::TimedOut(millis(timeout))
            } else {
                network(error)
            }
        })
    }
}

/// An execution's event stream.
pub struct ExecStream {
    response: reqwest::Response,
    reader: StreamReader,
    pending: VecDeque<StreamEvent>,
    finished: bool,
    deadline: Instant,
    timeout: Duration,
}

impl ExecStream {
    /// The next event; `None` after the terminal event.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>, ClientError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if matches!(event, StreamEvent::Complete(_) | StreamEvent::Failed(_)) {
                    self.finished = true;
                }
                return Ok(Some(event));
            }
            if self.finished {
                return Ok(None);
            }
            let chunk = tokio::time::timeout_at(self.deadline, self.response.chunk())
                .await
                .map_err(|_| ClientError::TimedOut(millis(self.timeout)))?
                .map_err(network)?;
            match chunk {
                Some(bytes) => self.pending.extend(self.reader.push(&bytes)?),
                None => return Err(ClientError::Truncated),
            }
        }
    }
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// A signed error answer.
fn bridge_error(status: u16, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Bridge {
            status,
            code: body.error,
            message: body.message,
        },
        Err(_) => ClientError::NotTheBridge {
            status,
            body_start: body_start(bytes),
        },
    }
}

/// An answer without the bridge's signature: the bridge's own refusals before authentication
/// (their JSON error body says why), a gateway's failure, or something that is not the bridge.
fn unsigned(status: u16, bytes: &[u8]) -> ClientError {
    if matches!(status, 502..=504) {
        return ClientError::Gateway(status);
    }
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) if matches!(status, 401 | 413 | 500) => ClientError::Refused {
            status,
            message: body.message,
        },
        _ => ClientError::NotTheBridge {
            status,
            body_start: body_start(bytes),
        },
    }
}

fn body_start(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned()
}

fn network(error: reqwest::Error) -> ClientError {
    ClientError::Network(error.to_string())
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
mod tests {
    use super::*;

    #[test]
    fn an_html_page_is_not_the_bridge() {
        let page = b"<!DOCTYPE html><html><body>Welcome to nginx</body></html>";
        let error = unsigned(200, page);
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
        let error = unsigned(401, refusal);
        assert!(
            error
                .to_string()
                .contains("is not configured on this bridge"),
            "{error}"
        );
        assert!(!error.is_transient());
        let gateway = unsigned(502, b"<html>Bad gateway</html>");
        assert!(gateway.is_transient());
        assert!(gateway.to_string().contains("temporarily unavailable"));
        assert!(ClientError::TimedOut(5).to_string().contains("timed out"));
    }

    /// Serves one canned HTTP response per connection on loopback.
    async fn canned_server(response: &'static str) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bound");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        Url::parse(&format!("http://{address}")).expect("url")
    }

    fn client(base: Url) -> BridgeClient {
        BridgeClient::new(
            http_client().expect("client"),
            base,
            KeyId::parse("main").expect("valid"),
            SecretKey::new("0123456789abcdef0123456789abcdef").expect("valid"),
        )
    }

    #[tokio::test]
    async fn an_html_200_page_from_the_network_is_a_configuration_error() {
        let base = canned_server(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 40\r\nConnection: close\r\n\r\n<html><body>Captive portal</body></html>",
        )
        .await;
        let error = client(base)
            .call::<serde_json::Value>(Route::Health, None::<&()>, Duration::from_secs(5), true)
            .await
            .expect_err("an unsigned page is never a result");
        assert!(
            matches!(error, ClientError::NotTheBridge { status: 200, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("Captive portal"), "{error}");
    }

    #[tokio::test]
    async fn json_with_a_forged_signature_is_rejected_too() {
        let base = canned_server(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-PCB-Response-Signature: 0000000000000000000000000000000000000000000000000000000000000000\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
        )
        .await;
        let error = client(base)
            .call::<serde_json::Value>(Route::Health, None::<&()>, Duration::from_secs(5), true)
            .await
            .expect_err("a forged signature is never a result");
        assert!(matches!(error, ClientError::NotTheBridge { .. }), "{error}");
    }

    #[test]
    fn signed_errors_keep_the_bridge_code() {
        let error = bridge_error(409, br#"{"error":"sandbox_state_lost","message":"gone"}"#);
        assert_eq!(error.code(), Some(ErrorCode::SandboxStateLost));
        assert_eq!(error.to_string(), "gone");
    }
}
