//! `wrangler dev --env local`: the bridge Worker in local workerd.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::process::ProcessGroup;
use super::{HarnessError, http_get, repo_root, tail};

/// How long workerd may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// wrangler's switch for its local observability collector. When on (wrangler's default), every
/// invocation of every Worker and Durable Object streams its tail events to a collector worker in
/// the same workerd: about 3 ms more per `/healthz` and 6 ms more per exec on a 2-core machine,
/// work a deployed Worker never does (docs/performance.md).
const LOCAL_OBSERVABILITY_VAR: &str = "X_LOCAL_OBSERVABILITY";

/// The collector stays off unless the caller's environment turns it on (to browse traces in
/// wrangler's local explorer while debugging).
fn local_observability() -> String {
    std::env::var(LOCAL_OBSERVABILITY_VAR).unwrap_or_else(|_| "false".to_owned())
}

/// Settings of one `wrangler dev` run.
#[derive(Debug, Clone)]
pub struct WranglerDevOptions {
    /// Address the Worker listens on.
    pub addr: SocketAddr,
    /// Port of the devtools inspector (must be free too).
    pub inspector_port: u16,
    /// Durable Object storage directory.
    pub persist_dir: PathBuf,
    /// Where wrangler's output goes.
    pub log_path: PathBuf,
    /// Env file with the vars and secrets of this run (overrides `[env.local.vars]`).
    pub env_file: PathBuf,
}

/// A running `wrangler dev`; dropping it stops its whole process tree.
#[derive(Debug)]
pub struct WranglerDev {
    group: ProcessGroup,
    addr: SocketAddr,
    log_path: PathBuf,
    options: WranglerDevOptions,
}

impl WranglerDev {
    /// Starts wrangler and waits until the Worker answers `/healthz`.
    pub fn start(options: &WranglerDevOptions) -> Result<Self, HarnessError> {
        let root = repo_root();
        let bin_dir = root.join("node_modules/.bin");
        let wrangler = bin_dir.join("wrangler");
        if !wrangler.exists() {
            return Err(HarnessError::Missing(format!(
                "{} (run `cargo xtask setup`)",
                wrangler.display()
            )));
        }
        let entry = root.join("bridge-worker/build/index.js");
        if !entry.exists() {
            return Err(HarnessError::Missing(format!(
                "{} (run `cargo xtask build`)",
                entry.display()
            )));
        }
        fs::create_dir_all(&options.persist_dir)?;
        let log = File::create(&options.log_path)?;
        let mut command = Command::new(&wrangler);
        command
            .current_dir(&root)
            .args(["dev", "--env", "local", "--ip"])
            .arg(options.addr.ip().to_string())
            .arg("--port")
            .arg(options.addr.port().to_string())
            .arg("--inspector-port")
            .arg(options.inspector_port.to_string())
            .arg("--persist-to")
            .arg(&options.persist_dir)
            .arg("--env-file")
            .arg(&options.env_file)
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "info",
            ])
            .env("PATH", prepend_path(&bin_dir))
            .env("WRANGLER_SEND_METRICS", "false")
            .env(LOCAL_OBSERVABILITY_VAR, local_observability())
            .env("CI", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let group = ProcessGroup::spawn("wrangler dev", command)?;
        let mut dev = Self {
            group,
            addr: options.addr,
            log_path: options.log_path.clone(),
            options: options.clone(),
        };
        dev.wait_until_ready()?;
        Ok(dev)
    }

    /// Base URL of the Worker.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Process group of wrangler and its workerd processes (for measurements).
    pub fn process_group(&self) -> u32 {
        self.group.pid()
    }

    /// Everything wrangler and the Worker printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops wrangler, workerd and esbuild.
    pub fn stop(&mut self) {
        self.group.stop(Duration::from_secs(8));
    }

    /// Stops workerd (every running invocation dies with it) and starts it again on the same
    /// address and storage, as a deploy or a crash would.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let log_path = self.options.log_path.with_extension("restarted.log");
        *self = Self::start(&WranglerDevOptions {
            log_path,
            ..self.options.clone()
        })?;
        Ok(())
    }

    fn wait_until_ready(&mut self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if http_get(self.addr, "/healthz").is_ok_and(|(status, _)| status == 200) {
                return Ok(());
            }
            if let Some(status) = self.group.exit_status()? {
                return Err(HarnessError::Exited {
                    name: "wrangler dev",
                    status: status.to_string(),
                    log_tail: tail(&self.log(), 40),
                });
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::NotReady {
                    name: "wrangler dev",
                    seconds: READY_TIMEOUT.as_secs(),
                    log_tail: tail(&self.log(), 40),
                });
            }
            sleep(Duration::from_millis(100));
        }
    }
}

/// `PATH` with `dir` first, so wrangler runs on the pinned Node.
pub fn prepend_path(dir: &Path) -> String {
    match std::env::var("PATH") {
        Ok(path) if !path.is_empty() => format!("{}:{path}", dir.display()),
        _ => dir.display().to_string(),
    }
}
