//! The plugin's bridge client: the one client of `bridge_protocol` over reqwest, with TLS from
//! bundled Mozilla roots (the host gives plugin workers no CA or proxy variables).

use std::sync::Arc;
use std::time::Duration;

use bridge_protocol::auth::{KeyId, SecretKey};
use bridge_protocol::client::ReqwestTransport;
use reqwest::Url;

/// The client of one bridge with one key.
pub type BridgeClient = bridge_protocol::client::BridgeClient<ReqwestTransport>;

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

/// A client of the bridge at the origin `base`, whose requests are signed for the host the URL
/// names (with its port when it is not the scheme's default), as the bridge's `BRIDGE_HOST`.
pub fn bridge_client(
    http: reqwest::Client,
    base: &Url,
    key_id: KeyId,
    secret: SecretKey,
) -> BridgeClient {
    let host = match base.port() {
        Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
        None => base.host_str().unwrap_or_default().to_owned(),
    };
    BridgeClient::new(
        ReqwestTransport::new(http),
        base.as_str(),
        &host,
        key_id,
        secret,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bridge_protocol::auth::{
        CONTENT_SHA256_HEADER, IncomingRequest, KeyRing, RequestBody, Verifier,
    };
    use bridge_protocol::client::{CallPolicy, ClientError};
    use bridge_protocol::routes::Route;

    use super::*;

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

    fn client(base: &Url) -> BridgeClient {
        bridge_client(
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
        let error = client(&base)
            .call::<serde_json::Value>(
                Route::Health,
                None::<&()>,
                CallPolicy::retried(Duration::from_secs(5)),
            )
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
        let error = client(&base)
            .call::<serde_json::Value>(
                Route::Health,
                None::<&()>,
                CallPolicy::retried(Duration::from_secs(5)),
            )
            .await
            .expect_err("a forged signature is never a result");
        assert!(matches!(error, ClientError::NotTheBridge { .. }), "{error}");
    }

    #[test]
    fn requests_are_signed_for_the_host_and_port_of_the_url() {
        let keys = KeyRing::parse("main:0123456789abcdef0123456789abcdef").expect("keys");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        for (url, host) in [
            ("http://127.0.0.1:8787", "127.0.0.1:8787"),
            (
                "https://bridge.example.workers.dev",
                "bridge.example.workers.dev",
            ),
        ] {
            let request = client(&Url::parse(url).expect("url"))
                .prepare("GET", "/x", "", b"")
                .expect("signed");
            let incoming = IncomingRequest {
                authorization: request.header("Authorization"),
                content_sha256: request.header(CONTENT_SHA256_HEADER),
                method: "GET",
                host: Some(host),
                path: "/x",
                raw_query: "",
                body: RequestBody::Complete(b""),
            };
            let verified = Verifier::new(keys.clone(), host, 300).verify(&incoming, now);
            assert!(verified.is_ok(), "{url}: {verified:?}");
        }
    }
}
