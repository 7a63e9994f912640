//! The bridge client of the tests and `cargo xtask`: `bridge_protocol`'s one client over reqwest.
//! Tests that tamper with requests use its `prepare`, `prepare_at` and `send`.

use std::time::Duration;

use bridge_protocol::api::ExecRequest;
use bridge_protocol::auth::{KeyId, SecretKey};
use bridge_protocol::client::ReqwestTransport;
pub use bridge_protocol::client::{ClientError, PreparedRequest, RawResponse, StreamEvent};

/// The client of one bridge with one key.
pub type BridgeClient = bridge_protocol::client::BridgeClient<ReqwestTransport>;

/// How long a test waits for one answer or one whole stream.
pub const LIMIT: Duration = Duration::from_secs(120);

/// The key id or secret a test gave is unusable.
#[derive(Debug, thiserror::Error)]
#[error("invalid credentials: {0}")]
pub struct CredentialsError(String);

/// A client of the bridge at `base_url`, signing for the pinned `host`.
pub fn connect(
    base_url: &str,
    host: &str,
    key_id: &str,
    secret: &str,
) -> Result<BridgeClient, CredentialsError> {
    let key_id = KeyId::parse(key_id).map_err(|error| CredentialsError(error.to_string()))?;
    let secret = SecretKey::new(secret).map_err(|error| CredentialsError(error.to_string()))?;
    Ok(BridgeClient::new(
        ReqwestTransport::new(crate::http_client()),
        base_url,
        host,
        key_id,
        secret,
    ))
}

/// Runs `request` as an event stream within `limit`, handing every event before the end to
/// `on_event` as it arrives, and returns the verified terminal event.
pub async fn stream_to_end(
    client: &BridgeClient,
    request: &ExecRequest,
    limit: Duration,
    mut on_event: impl FnMut(&StreamEvent),
) -> Result<StreamEvent, ClientError> {
    let mut stream = client.exec_stream(request, limit).await?;
    while let Some(event) = stream.next().await? {
        if event.is_terminal() {
            return Ok(event);
        }
        on_event(&event);
    }
    Err(ClientError::Truncated)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bridge_protocol::client::{
        HttpBody, HttpRequest, ReqwestTransport, Transport, TransportErrorKind,
    };

    /// The transport's own unit test lives here, where reqwest gets the crypto provider the
    /// workspace build needs.
    #[tokio::test]
    async fn a_transport_failure_says_what_failed_under_the_url() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("address");
        drop(listener);
        let transport = ReqwestTransport::new(crate::http_client());
        let request = HttpRequest {
            method: "GET".into(),
            url: format!("http://{addr}/"),
            headers: Vec::new(),
            body: HttpBody::Bytes(Vec::new()),
        };
        let Err(error) = transport.send(request, Duration::from_secs(5)).await else {
            panic!("nothing listens there");
        };
        assert_eq!(error.kind, TransportErrorKind::Connection);
        assert!(
            error.message.contains(&addr.to_string()),
            "{}",
            error.message
        );
        assert!(
            error.message.to_lowercase().contains("refused"),
            "{}",
            error.message
        );
    }
}
