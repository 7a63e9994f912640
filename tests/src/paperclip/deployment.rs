//! A whole deployment on one machine, as an operator would set it up: the bridge on the local
//! stack, a real Paperclip server with the packaged plugin installed, one company, and fake
//! Codex agents in sandbox environments that point at the bridge.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::api::{
    AgentSpec, CodexEngine, Company, EnvironmentLease, HeartbeatRun, HostApi, HostApiError,
    InstalledPlugin, LogEntry,
};
use crate::client::{BridgeClient, CredentialsError};
use crate::harness::local_sandbox::leaked_processes;
use crate::harness::paperclip::{HostInstall, PaperclipServer};
use crate::harness::{HarnessError, LocalStack, StackOptions};

/// The provider key of the plugin's driver.
pub const PROVIDER: &str = "cloudflare-bridge";
/// The plugin's manifest id.
pub const PLUGIN_KEY: &str = "paperclip-cloudflare-bridge";
/// The fake Codex CLI (`tests/host/fake-codex.sh`).
const FAKE_CODEX: &str = include_str!("../../host/fake-codex.sh");
/// How often a followed run is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(150);

/// Why a deployment could not be set up or driven.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// A process of the deployment did not start.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// The host refused or failed a call.
    #[error(transparent)]
    Api(#[from] HostApiError),
    /// The plugin did not become ready.
    #[error("the plugin installed as {status}: {error}")]
    PluginNotReady {
        /// Its status.
        status: String,
        /// The host's reason.
        error: String,
    },
    /// The host did not let go of a run's lease in time.
    #[error("the lease of run {run} was still {status} after {seconds} s")]
    LeaseNotSettled {
        /// The run id.
        run: String,
        /// The lease row's last status (`missing` without a row).
        status: String,
        /// How long we waited.
        seconds: u64,
    },
    /// A run did not end in time.
    #[error("run {run} was still {status} after {seconds} s")]
    RunTimedOut {
        /// The run id.
        run: String,
        /// Its last status.
        status: String,
        /// How long we waited.
        seconds: u64,
    },
}

/// How a fake agent behaves (the `FAKE_CODEX_*` variables of `tests/host/fake-codex.sh`).
#[derive(Debug, Clone, Default)]
pub struct FakeAgent {
    /// Run it under the ACP engine. The fake speaks no ACP, so such a run never gets past its
    /// start-up: for stopping a run there.
    pub acp: bool,
    /// The agent's final message (no `"` or `\`).
    pub message: Option<String>,
    /// Seconds of work between its first events and its message.
    pub work_seconds: u32,
    /// Exit code; non-zero fails the turn.
    pub exit_code: i32,
    /// A shell command the agent runs in its working directory (its "work").
    pub work: Option<String>,
}

impl FakeAgent {
    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            // The adapter refuses to start Codex without credentials; nothing ever uses it.
            (
                "OPENAI_API_KEY".to_owned(),
                "sk-fake-agent-not-a-key".to_owned(),
            ),
            ("FAKE_CODEX_SLEEP".to_owned(), self.work_seconds.to_string()),
            ("FAKE_CODEX_EXIT".to_owned(), self.exit_code.to_string()),
        ]);
        if let Some(message) = &self.message {
            env.insert("FAKE_CODEX_MESSAGE".to_owned(), message.clone());
        }
        if let Some(work) = &self.work {
            env.insert("FAKE_CODEX_WORK".to_owned(), work.clone());
        }
        env
    }
}

/// The local stack and a Paperclip server with the plugin installed and one company.
#[derive(Debug)]
pub struct Deployment {
    api: HostApi,
    company: Company,
    plugin: InstalledPlugin,
    fake_codex: PathBuf,
    server: PaperclipServer,
    stack: LocalStack,
    _stack_dir: tempfile::TempDir,
}

impl Deployment {
    /// Starts the local stack (with `local_sandbox_bin`) and a server, installs the plugin
    /// package in `package_dir` and creates a company, using `runtime` for the API calls.
    ///
    /// The processes stop when the deployment is dropped, and also when the calling thread ends
    /// without unwinding: call this from the program's main thread, outside any async context.
    pub fn start(
        local_sandbox_bin: &Path,
        package_dir: &Path,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Self, DeploymentError> {
        let stack_dir = tempfile::Builder::new()
            .prefix("paperclip-e2e-stack-")
            .tempdir()
            .map_err(HarnessError::from)?;
        let stack = LocalStack::start(&StackOptions::new(local_sandbox_bin, stack_dir.path()))?;
        let server = PaperclipServer::start(&HostInstall::locate()?)?;
        let fake_codex = write_fake_codex()?;
        let api = HostApi::new(server.api_url());
        let (company, plugin) = runtime.block_on(async {
            let company = api.create_company("Cloudflare bridge e2e").await?;
            let plugin = api
                .install_plugin(&package_dir.display().to_string())
                .await?;
            Ok::<_, DeploymentError>((company, plugin))
        })?;
        if plugin.status != "ready" {
            return Err(DeploymentError::PluginNotReady {
                status: plugin.status,
                error: plugin.last_error.unwrap_or_default(),
            });
        }
        Ok(Self {
            api,
            company,
            plugin,
            fake_codex,
            server,
            stack,
            _stack_dir: stack_dir,
        })
    }

    /// The host's API.
    pub fn api(&self) -> &HostApi {
        &self.api
    }

    /// The id of the company every environment and agent belongs to.
    pub fn company(&self) -> &str {
        &self.company.id
    }

    /// Where the board shows `run` of `agent`.
    pub fn run_url(&self, agent: &str, run: &str) -> String {
        format!(
            "{}/{}/agents/{agent}/runs/{run}",
            self.server.url(),
            self.company.issue_prefix
        )
    }

    /// The installed plugin.
    pub fn plugin(&self) -> &InstalledPlugin {
        &self.plugin
    }

    /// The Paperclip server.
    pub fn server(&self) -> &PaperclipServer {
        &self.server
    }

    /// The local stack (bridge and `local-sandbox`).
    pub fn stack(&self) -> &LocalStack {
        &self.stack
    }

    /// Where the fake Codex CLI is, as agents name it (a path the sandboxes see).
    pub fn fake_codex(&self) -> String {
        self.fake_codex.display().to_string()
    }

    /// A signed client of the bridge, as the plugin is configured (for preparing or inspecting
    /// sandboxes behind the host's back).
    pub fn bridge_client(&self) -> Result<BridgeClient, CredentialsError> {
        self.stack.client()
    }

    /// The environment config reaching this deployment's bridge, plus `extra` keys.
    pub fn bridge_config(&self, extra: &Value) -> Value {
        let (key_id, secret) = &self.stack.keys().primary;
        let mut config = json!({
            "bridgeBaseUrl": self.stack.bridge_url(),
            "bridgeSecret": secret,
            "keyId": key_id,
        });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        config
    }

    /// Creates a sandbox environment on the bridge, with `extra` config keys; returns its id.
    pub async fn create_environment(
        &self,
        name: &str,
        extra: &Value,
    ) -> Result<String, DeploymentError> {
        Ok(self
            .api
            .create_environment(&self.company.id, name, PROVIDER, &self.bridge_config(extra))
            .await?)
    }

    /// Creates a fake Codex agent whose runs use `environment`; returns its id.
    pub async fn create_agent(
        &self,
        name: &str,
        environment: &str,
        behaviour: &FakeAgent,
    ) -> Result<String, DeploymentError> {
        let spec = AgentSpec {
            name: name.to_owned(),
            engine: if behaviour.acp {
                CodexEngine::Acp
            } else {
                CodexEngine::Cli
            },
            command: self.fake_codex(),
            env: behaviour.env(),
            environment_id: environment.to_owned(),
        };
        Ok(self.api.create_agent(&self.company.id, &spec).await?)
    }

    /// Follows `run` until it ends, handing each new log entry to `on_entry` as it appears, and
    /// returns its final state once the log is read to the end.
    pub async fn follow_run(
        &self,
        run: &str,
        limit: Duration,
        mut on_entry: impl FnMut(&LogEntry, &HeartbeatRun),
    ) -> Result<HeartbeatRun, DeploymentError> {
        let started = Instant::now();
        let mut offset = 0;
        loop {
            let state = self.api.run(run).await?;
            let page = self.api.run_log(run, offset).await?;
            offset = page.next_offset;
            for entry in &page.entries {
                on_entry(entry, &state);
            }
            if state.is_final() && page.entries.is_empty() {
                return Ok(state);
            }
            if started.elapsed() > limit {
                return Err(DeploymentError::RunTimedOut {
                    run: run.to_owned(),
                    status: state.status,
                    seconds: limit.as_secs(),
                });
            }
            if page.entries.is_empty() {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    }

    /// The host's lease row of `run` on `environment`, once the host has let go of it (the host
    /// marks a run finished before it releases the run's lease).
    pub async fn settled_lease(
        &self,
        environment: &str,
        run: &str,
        limit: Duration,
    ) -> Result<EnvironmentLease, DeploymentError> {
        let started = Instant::now();
        loop {
            let lease = self
                .api
                .leases(environment)
                .await?
                .into_iter()
                .find(|lease| lease.heartbeat_run_id.as_deref() == Some(run));
            match lease {
                Some(lease) if lease.status != "active" => return Ok(lease),
                other if started.elapsed() > limit => {
                    return Err(DeploymentError::LeaseNotSettled {
                        run: run.to_owned(),
                        status: other.map_or_else(|| "missing".to_owned(), |lease| lease.status),
                        seconds: limit.as_secs(),
                    });
                }
                _ => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// Stops the server (with its database and plugin workers), then the local stack; returns
    /// the sandbox processes that outlived the stack.
    pub fn stop(mut self) -> Vec<u32> {
        self.server.stop();
        self.stack.stop();
        leaked_processes(&self.stack.work_dir().join("sandboxes"))
    }

    /// The `local-sandbox` id of the sandbox a fake agent of `run` works in (found by the state
    /// file the agent writes; sandboxes are named by their Durable Object id, not their lease).
    pub fn sandbox_of_run(&self, run: &str) -> Option<String> {
        let sandboxes = fs::read_dir(self.stack.local_sandbox().state_dir()).ok()?;
        sandboxes.filter_map(Result::ok).find_map(|entry| {
            let last_run = entry.path().join("workspace/.fake-codex/last-run");
            let found = fs::read_to_string(last_run).ok()?;
            (found.trim() == run).then(|| entry.file_name().to_string_lossy().into_owned())
        })
    }

    /// Every bridge request served so far, as `METHOD /path` (wrangler logs one line per request).
    pub fn bridge_requests(&self) -> Vec<String> {
        self.bridge_request_times()
            .into_iter()
            .map(|(request, _)| request)
            .collect()
    }

    /// Every bridge request served so far with how long it took, as wrangler logs them
    /// (`POST /api/… 200 OK (123ms)`).
    pub fn bridge_request_times(&self) -> Vec<(String, u64)> {
        self.stack
            .bridge_log()
            .lines()
            .filter_map(|line| line.strip_prefix("[wrangler:info] "))
            .filter_map(|line| {
                let mut words = line.split(' ');
                let (method, path) = (words.next()?, words.next()?);
                let millis = line
                    .rsplit_once('(')
                    .and_then(|(_, rest)| rest.strip_suffix("ms)"))
                    .and_then(|millis| millis.parse().ok())
                    .unwrap_or(0);
                path.starts_with("/api/")
                    .then(|| (format!("{method} {path}"), millis))
            })
            .collect()
    }
}

/// Writes the fake Codex CLI where every sandbox of the local stack sees it: `local-sandbox`
/// gives each sandbox its own `/workspace` and `/tmp` only, so a file outside both is shared.
/// The name carries the content's digest, so runs of different versions never clash.
fn write_fake_codex() -> Result<PathBuf, HarnessError> {
    let digest = hex::encode(Sha256::digest(FAKE_CODEX.as_bytes()));
    let dir = HostInstall::cache_root().join("agents");
    fs::create_dir_all(&dir)?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    let path = dir.join(format!("fake-codex-{}", &digest[..12]));
    if !path.exists() {
        let staging = dir.join(format!(".fake-codex-{}", std::process::id()));
        fs::write(&staging, FAKE_CODEX)?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))?;
        fs::rename(&staging, &path)?;
    }
    Ok(path)
}
