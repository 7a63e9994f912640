//! Starting and stopping the processes of the local stack: `local-sandbox`, `wrangler dev`, and the
//! two together as a [`LocalStack`]. Every process runs in its own process group and is stopped,
//! with everything it spawned, when its handle is dropped — also when a test panics.

pub mod conformance;
pub mod local_sandbox;
pub mod paperclip;
pub mod plugin_package;
mod process;
mod stack;
mod workerd;
mod wrangler;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

pub use process::ProcessGroup;
pub use stack::{LocalStack, StackKeys, StackOptions, write_private};
pub use workerd::{worker_socket, workerd_pids, workerd_rss};
pub use wrangler::{WranglerDev, WranglerDevOptions, prepend_path};

/// Why the local stack could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A build output or installed tool is missing.
    #[error("missing {0}")]
    Missing(String),
    /// A process exited during start-up.
    #[error("{name} exited during start-up ({status}); last output:\n{log_tail}")]
    Exited {
        /// Which process.
        name: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its output.
        log_tail: String,
    },
    /// A process did not become ready in time.
    #[error("{name} was not ready after {seconds} s; last output:\n{log_tail}")]
    NotReady {
        /// Which process.
        name: &'static str,
        /// How long we waited.
        seconds: u64,
        /// The end of its output.
        log_tail: String,
    },
    /// Filesystem or process error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The repository root (the directory holding `package.json` and `wrangler.toml`).
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// A loopback address with a port that was free a moment ago.
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `GET path` over a bare HTTP/1.0 exchange, for readiness checks before any async runtime
/// exists: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    http_exchange(addr, "GET", path, &[("Host", &addr.to_string())])
}

/// One bare HTTP/1.0 request with `headers` (no body), its path written on the request line
/// byte for byte, as no URL-parsing client would: the status code and the body.
pub fn http_exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, "not an HTTP response");
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}
