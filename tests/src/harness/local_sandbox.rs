//! Runs the `local-sandbox` binary for tests and `cargo xtask`: in its own process group, its
//! output (logs and the `LOCAL_SANDBOX_LISTENING=` announcement) in `<state-dir>/local-sandbox.log`,
//! stopped with SIGTERM (the server then kills every sandbox process) and SIGKILL after 8 s.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::process::ProcessGroup;
use super::{HarnessError, tail};
use crate::local_sandbox::{STATE_DIR_VAR, processes_with_env};

/// How long the server may take to announce its address.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server gets to clean up after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// The line prefix the server prints once it listens.
const ANNOUNCEMENT: &str = "LOCAL_SANDBOX_LISTENING=";
/// The server's output, inside the state directory (not a valid sandbox id, so never a sandbox).
const LOG_FILE: &str = "local-sandbox.log";

/// A running `local-sandbox`; dropping it stops the server and, through it, every sandbox process.
#[derive(Debug)]
pub struct LocalSandboxServer {
    group: ProcessGroup,
    addr: SocketAddr,
    state_dir: PathBuf,
}

impl LocalSandboxServer {
    /// Starts `binary` on a free loopback port with `state_dir` (created if missing) and waits
    /// until it announces its address.
    pub fn start(binary: &Path, state_dir: &Path) -> Result<Self, HarnessError> {
        if !binary.is_file() {
            return Err(HarnessError::Missing(format!(
                "{} (build it with `cargo build -p bridge-tests --bin local-sandbox`)",
                binary.display()
            )));
        }
        fs::create_dir_all(state_dir)?;
        let state_dir = state_dir.canonicalize()?;
        let log = File::create(state_dir.join(LOG_FILE))?;
        let mut command = Command::new(binary);
        command
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--state-dir")
            .arg(&state_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut group = ProcessGroup::spawn("local-sandbox", command)?;
        let addr = wait_for_announcement(&mut group, &state_dir)?;
        Ok(Self {
            group,
            addr,
            state_dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state directory (canonical, as the server uses it).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        read_log(&self.state_dir)
    }

    /// The ids of the sandboxes the server holds state for.
    pub async fn sandboxes(&self) -> Result<Vec<String>, reqwest::Error> {
        let info: serde_json::Value = crate::http_client()
            .get(format!("{}/_local/info", self.base_url()))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(info["sandboxes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect())
    }

    /// Kills every process of sandbox `id` and wipes its files behind the bridge's back, as a
    /// container restart would.
    pub async fn wipe(&self, id: &str) -> Result<(), reqwest::Error> {
        crate::http_client()
            .delete(format!("{}/_local/containers/{id}", self.base_url()))
            .send()
            .await?
            .error_for_status()
            .map(drop)
    }

    /// SIGTERM, up to 8 s for the server to kill its sandboxes' processes and exit, then SIGKILL
    /// (dropping does the same).
    pub fn stop(&mut self) {
        self.group.stop(STOP_GRACE);
    }
}

fn read_log(state_dir: &Path) -> String {
    fs::read_to_string(state_dir.join(LOG_FILE)).unwrap_or_default()
}

fn wait_for_announcement(
    group: &mut ProcessGroup,
    state_dir: &Path,
) -> Result<SocketAddr, HarnessError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let log = read_log(state_dir);
        let announced = log
            .lines()
            .find_map(|line| line.strip_prefix(ANNOUNCEMENT))
            .and_then(|addr| addr.trim().parse().ok());
        if let Some(addr) = announced {
            return Ok(addr);
        }
        if let Some(status) = group.exit_status()? {
            return Err(HarnessError::Exited {
                name: "local-sandbox",
                status: status.to_string(),
                log_tail: tail(&log, 40),
            });
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::NotReady {
                name: "local-sandbox",
                seconds: READY_TIMEOUT.as_secs(),
                log_tail: tail(&log, 40),
            });
        }
        sleep(Duration::from_millis(20));
    }
}

/// Pids of live processes started by a `local-sandbox` with this state directory: every sandbox
/// process carries it in its environment. Empty once the server has been stopped cleanly.
pub fn leaked_processes(state_dir: &Path) -> Vec<u32> {
    let state_dir = state_dir
        .canonicalize()
        .unwrap_or_else(|_| state_dir.to_path_buf());
    processes_with_env(&[(STATE_DIR_VAR, &state_dir.to_string_lossy())])
}
