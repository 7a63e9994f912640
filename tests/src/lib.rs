//! The local stack: `local-sandbox` (a stand-in for the Sandbox container) and the harness that
//! runs it with the bridge in `wrangler dev`, a signed bridge client, and a driver of the real
//! Paperclip server; shared by the end-to-end tests and `cargo xtask`.

pub mod chaos;
pub mod client;
pub mod harness;
pub mod local_sandbox;
pub mod paperclip;

/// An HTTP client for tests and tools.
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .build()
        .expect("a reqwest client with default settings builds")
}

/// The builder of [`http_client`], for clients with settings of their own. The plugin enables
/// reqwest's `rustls-no-provider` in a workspace build, after which reqwest needs a process-wide
/// crypto provider to build any client; this installs ring's (once) first.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
