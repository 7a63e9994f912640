//! The whole local stack: `local-sandbox` plus the bridge in `wrangler dev`, wired together with a
//! pinned host and freshly generated keys.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::local_sandbox::LocalSandboxServer;
use super::wrangler::{WranglerDev, WranglerDevOptions};
use super::{HarnessError, free_loopback_addr};
use crate::client::{BridgeClient, CredentialsError, connect};
use bridge_protocol::auth::{KeyId, SecretKey};
use bridge_protocol::client::ReqwestTransport;

/// What to start.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Path of the `local-sandbox` binary.
    pub local_sandbox_bin: PathBuf,
    /// Directory for state, logs and the env file; created if missing.
    pub work_dir: PathBuf,
    /// Pin `BRIDGE_HOST` to the bridge's address (`false`: leave it empty, so the bridge refuses).
    pub pin_host: bool,
    /// Configure `BRIDGE_HMAC_KEYS` (`false`: leave it empty, so the bridge refuses).
    pub configure_keys: bool,
    /// Extra Worker vars, e.g. a smaller `BRIDGE_MAX_BODY_BYTES`.
    pub vars: Vec<(String, String)>,
}

impl StackOptions {
    /// A fully configured stack.
    pub fn new(local_sandbox_bin: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            local_sandbox_bin: local_sandbox_bin.into(),
            work_dir: work_dir.into(),
            pin_host: true,
            configure_keys: true,
            vars: Vec::new(),
        }
    }
}

/// The two generated keys of `BRIDGE_HMAC_KEYS`: clients use the primary; the secondary proves
/// that every listed key is accepted (rotation).
#[derive(Debug, Clone)]
pub struct StackKeys {
    /// `(key id, secret)` clients use by default.
    pub primary: (String, String),
    /// A second accepted `(key id, secret)`.
    pub secondary: (String, String),
}

impl StackKeys {
    fn generate() -> Result<Self, HarnessError> {
        Ok(Self {
            primary: ("dev".to_owned(), random_secret()?),
            secondary: ("dev-next".to_owned(), random_secret()?),
        })
    }

    /// The `BRIDGE_HMAC_KEYS` value.
    pub fn spec(&self) -> String {
        format!(
            "{}:{},{}:{}",
            self.primary.0, self.primary.1, self.secondary.0, self.secondary.1
        )
    }
}

/// A running local stack; dropping it stops the bridge, then `local-sandbox`.
#[derive(Debug)]
pub struct LocalStack {
    bridge: WranglerDev,
    local_sandbox: LocalSandboxServer,
    keys: StackKeys,
    bridge_host: String,
    work_dir: PathBuf,
}

/// How often the bridge is started on fresh ports when the ones picked were taken meanwhile
/// (another process, or workerd's own random ports, can bind a port between our pick and
/// wrangler's bind).
const PORT_ATTEMPTS: u32 = 3;
/// What wrangler prints when its port was taken.
const PORT_TAKEN: &str = "Address already in use";

/// Starts the bridge on free ports, pointed at `local_sandbox`; returns it and its pinned host.
fn start_bridge(
    options: &StackOptions,
    keys: &StackKeys,
    local_sandbox: &LocalSandboxServer,
) -> Result<(WranglerDev, String), HarnessError> {
    let addr = free_loopback_addr()?;
    let inspector_port = free_loopback_addr()?.port();
    let bridge_host = addr.to_string();
    let mut vars = vec![
        (
            "BRIDGE_HOST".to_owned(),
            if options.pin_host {
                bridge_host.clone()
            } else {
                String::new()
            },
        ),
        (
            "BRIDGE_HMAC_KEYS".to_owned(),
            if options.configure_keys {
                keys.spec()
            } else {
                String::new()
            },
        ),
        ("LOCAL_SANDBOX_URL".to_owned(), local_sandbox.base_url()),
    ];
    vars.extend(options.vars.iter().cloned());
    let env_file = options.work_dir.join("worker.env");
    write_private(&env_file, &env_file_text(&vars))?;
    let bridge = WranglerDev::start(&WranglerDevOptions {
        addr,
        inspector_port,
        persist_dir: options.work_dir.join("durable-objects"),
        log_path: options.work_dir.join("wrangler.log"),
        env_file,
    })?;
    Ok((bridge, bridge_host))
}

impl LocalStack {
    /// Starts `local-sandbox`, then the bridge pointed at it, and waits until both answer.
    pub fn start(options: &StackOptions) -> Result<Self, HarnessError> {
        fs::create_dir_all(&options.work_dir)?;
        let state_dir = options.work_dir.join("sandboxes");
        fs::create_dir_all(&state_dir)?;
        let local_sandbox = LocalSandboxServer::start(&options.local_sandbox_bin, &state_dir)?;
        let keys = StackKeys::generate()?;
        let mut attempt = 1;
        let (bridge, bridge_host) = loop {
            match start_bridge(options, &keys, &local_sandbox) {
                Err(HarnessError::Exited { log_tail, .. })
                    if attempt < PORT_ATTEMPTS && log_tail.contains(PORT_TAKEN) =>
                {
                    attempt += 1;
                }
                started => break started?,
            }
        };
        Ok(Self {
            bridge,
            local_sandbox,
            keys,
            bridge_host,
            work_dir: options.work_dir.clone(),
        })
    }

    /// Base URL of the bridge.
    pub fn bridge_url(&self) -> String {
        self.bridge.url()
    }

    /// The host the bridge is pinned to (`127.0.0.1:<port>`).
    pub fn bridge_host(&self) -> &str {
        &self.bridge_host
    }

    /// The configured keys.
    pub fn keys(&self) -> &StackKeys {
        &self.keys
    }

    /// A signed client of the bridge with the primary key.
    pub fn client(&self) -> Result<BridgeClient, CredentialsError> {
        let (key_id, secret) = &self.keys.primary;
        self.client_with(key_id, secret)
    }

    /// A signed client of the bridge with any key id and secret.
    pub fn client_with(
        &self,
        key_id: &str,
        secret: &str,
    ) -> Result<BridgeClient, CredentialsError> {
        connect(&self.bridge_url(), &self.bridge_host, key_id, secret)
    }

    /// Restarts the bridge (workerd) on the same address and Durable Object storage.
    pub fn restart_bridge(&mut self) -> Result<(), HarnessError> {
        self.bridge.restart()
    }

    /// A signed client of the Worker at workerd's own socket, past wrangler's dev proxy (which a
    /// deployed Worker does not have), sending the pinned `Host` as the proxy does; `None` when
    /// the socket cannot be found.
    pub fn worker_socket_client(&self) -> Option<BridgeClient> {
        let proxy = self.bridge_url().strip_prefix("http://")?.parse().ok()?;
        let socket = super::worker_socket(self.bridge_process_group(), proxy)?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::HOST, self.bridge_host.parse().ok()?);
        let http = crate::http_client_builder()
            .default_headers(headers)
            .build()
            .ok()?;
        let (key_id, secret) = &self.keys.primary;
        Some(BridgeClient::new(
            ReqwestTransport::new(http),
            &format!("http://{socket}"),
            &self.bridge_host,
            KeyId::parse(key_id).ok()?,
            SecretKey::new(secret).ok()?,
        ))
    }

    /// Process group of the bridge (`wrangler dev` and workerd), for measurements.
    pub fn bridge_process_group(&self) -> u32 {
        self.bridge.process_group()
    }

    /// The `local-sandbox` server.
    pub fn local_sandbox(&self) -> &LocalSandboxServer {
        &self.local_sandbox
    }

    /// Everything the bridge printed (wrangler, workerd, `console.*`).
    pub fn bridge_log(&self) -> String {
        self.bridge.log()
    }

    /// The directory holding state, logs and the env file.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// `BRIDGE_URL=…`, `BRIDGE_KEY_ID=…`, `BRIDGE_SECRET=…` lines for scripts and a local host.
    pub fn client_env(&self) -> String {
        format!(
            "BRIDGE_URL={}\nBRIDGE_KEY_ID={}\nBRIDGE_SECRET={}\n",
            self.bridge_url(),
            self.keys.primary.0,
            self.keys.primary.1
        )
    }

    /// Stops both processes now (dropping does the same).
    pub fn stop(&mut self) {
        self.bridge.stop();
        self.local_sandbox.stop();
    }
}

fn env_file_text(vars: &[(String, String)]) -> String {
    vars.iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect()
}

/// Writes a file only the owner can read: it holds secrets.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

fn random_secret() -> Result<String, HarnessError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| HarnessError::Io(std::io::Error::other(error.to_string())))?;
    Ok(hex::encode(bytes))
}
