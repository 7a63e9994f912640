//! A client of the Paperclip server's HTTP API, for the calls an operator's board makes: install
//! a plugin, create environments and agents, probe, run heartbeats, read their logs, stop them.
//! The server runs in `local_trusted` mode on loopback, so no request carries credentials.
//!
//! Only the fields the tests and the demo read are typed; the host owns these shapes.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Why a host API call failed.
#[derive(Debug, thiserror::Error)]
pub enum HostApiError {
    /// The server could not be reached, or its answer was not the JSON expected.
    #[error("{method} {path}: {source}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Path below the API base.
        path: String,
        /// What went wrong.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{method} {path} answered {status}: {body}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Path below the API base.
        path: String,
        /// The status code.
        status: u16,
        /// The response body.
        body: String,
    },
}

impl HostApiError {
    /// The status code of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Transport { .. } => None,
        }
    }
}

/// A company: the scope of environments' secrets, agents and issues.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Company {
    /// Its id.
    pub id: String,
    /// The prefix of its issue keys, also the first segment of its board URLs.
    pub issue_prefix: String,
}

/// An installed plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledPlugin {
    /// The plugin's row id.
    pub id: String,
    /// The manifest id.
    pub plugin_key: String,
    /// `ready` once its worker answered `initialize`.
    pub status: String,
    /// Why it is not ready.
    pub last_error: Option<String>,
}

/// The outcome of an environment probe (saved or unsaved).
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeOutcome {
    /// Whether the probe passed.
    pub ok: bool,
    /// One sentence for the operator.
    pub summary: String,
    /// Provider details (diagnostics, metadata, lease ids).
    #[serde(default)]
    pub details: Value,
}

/// The outcome of an adapter's "test environment" call.
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterTest {
    /// `pass`, `warn` or `fail`.
    pub status: String,
    /// Each check the adapter made.
    #[serde(default)]
    pub checks: Vec<AdapterCheck>,
}

/// One check of an adapter test.
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterCheck {
    /// Machine-readable name.
    pub code: String,
    /// What was found.
    #[serde(default)]
    pub message: String,
}

/// A heartbeat run as the host reports it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRun {
    /// The run id.
    pub id: String,
    /// `queued`, `running`, then `succeeded`, `failed`, `cancelled` or `timed_out`.
    pub status: String,
    /// The agent command's exit code, when it ended by itself.
    pub exit_code: Option<i32>,
    /// Why the run did not succeed.
    pub error_code: Option<String>,
    /// The error shown to the operator.
    pub error: Option<String>,
    /// What the adapter made of the agent's output (`summary`, `stdout`, …).
    pub result_json: Option<Value>,
}

impl HeartbeatRun {
    /// Whether the run has ended.
    pub fn is_final(&self) -> bool {
        matches!(
            self.status.as_str(),
            "succeeded" | "failed" | "cancelled" | "timed_out"
        )
    }

    /// The agent's last message, as the adapter parsed it.
    pub fn summary(&self) -> Option<&str> {
        self.result_json.as_ref()?.get("summary")?.as_str()
    }
}

/// One line of a run's log.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    /// When the host wrote it (`2026-12-01T12:00:00.000Z`).
    #[serde(default)]
    pub ts: Option<String>,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    /// The text.
    pub chunk: String,
}

impl LogEntry {
    /// [`Self::ts`] as Unix milliseconds, when it is a UTC timestamp.
    pub fn unix_millis(&self) -> Option<u64> {
        parse_utc_millis(self.ts.as_deref()?)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` as Unix milliseconds (days from the civil calendar).
fn parse_utc_millis(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock = clock.split(':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let (year, month) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// A piece of a run's log, read from a byte offset.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    /// The entries in this piece.
    pub entries: Vec<LogEntry>,
    /// Where the next read starts.
    pub next_offset: u64,
}

/// A lease the host holds on an environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentLease {
    /// The host's lease id.
    pub id: String,
    /// `active`, `released`, `expired`, `failed`, …
    pub status: String,
    /// `ephemeral` or `reuse_by_environment`.
    pub lease_policy: String,
    /// The provider's lease id.
    pub provider_lease_id: Option<String>,
    /// The run that holds or held it.
    pub heartbeat_run_id: Option<String>,
    /// Host and provider metadata (`sandboxLeaseAcquisition.outcome`, `remoteCwd`, …).
    #[serde(default)]
    pub metadata: Value,
}

impl EnvironmentLease {
    /// How the host obtained the lease: `created`, `resumed` or `replacement`.
    pub fn acquisition(&self) -> Option<&str> {
        self.metadata
            .get("sandboxLeaseAcquisition")?
            .get("outcome")?
            .as_str()
    }
}

/// How the `codex_local` adapter runs the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodexEngine {
    /// The Codex CLI (`<command> exec --json … -`).
    Cli,
    /// The Agent Client Protocol engine (`agentCommand` speaks ACP; it is started during the
    /// run's start-up, which is the only part of a run the host can stop through the provider).
    Acp,
}

/// What an agent is: a `codex_local` agent running `command` in a sandbox environment.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// Display name.
    pub name: String,
    /// The engine.
    pub engine: CodexEngine,
    /// The command the adapter runs in the sandbox instead of `codex` (or `codex-acp`).
    pub command: String,
    /// Plain environment variables for the command.
    pub env: BTreeMap<String, String>,
    /// The environment its runs use.
    pub environment_id: String,
}

/// The API of one Paperclip server.
#[derive(Debug, Clone)]
pub struct HostApi {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

impl HostApi {
    /// A client of the API at `base` (`http://127.0.0.1:<port>/api`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: crate::http_client(),
        }
    }

    /// Creates a company.
    pub async fn create_company(&self, name: &str) -> Result<Company, HostApiError> {
        self.post("/companies", &json!({ "name": name })).await
    }

    /// Installs the plugin package in `directory` from its local path.
    pub async fn install_plugin(&self, directory: &str) -> Result<InstalledPlugin, HostApiError> {
        self.post(
            "/plugins/install",
            &json!({ "packageName": directory, "isLocalPath": true }),
        )
        .await
    }

    /// Creates a sandbox environment of `provider`; returns its id.
    pub async fn create_environment(
        &self,
        company: &str,
        name: &str,
        provider: &str,
        config: &Value,
    ) -> Result<String, HostApiError> {
        let created: Created = self
            .post(
                &format!("/companies/{company}/environments"),
                &json!({ "name": name, "driver": "sandbox", "config": with_provider(provider, config) }),
            )
            .await?;
        Ok(created.id)
    }

    /// Probes a configuration that is not saved (the "Test" button of a new environment).
    pub async fn probe_config(
        &self,
        company: &str,
        provider: &str,
        config: &Value,
    ) -> Result<ProbeOutcome, HostApiError> {
        self.post(
            &format!("/companies/{company}/environments/probe-config"),
            &json!({ "driver": "sandbox", "config": with_provider(provider, config) }),
        )
        .await
    }

    /// Probes a saved environment.
    pub async fn probe_environment(
        &self,
        company: &str,
        environment: &str,
    ) -> Result<ProbeOutcome, HostApiError> {
        self.post(
            &format!("/environments/{environment}/probe?companyId={company}"),
            &json!({}),
        )
        .await
    }

    /// The `codex_local` adapter's environment test, with `command` as its CLI.
    pub async fn test_codex_adapter(
        &self,
        company: &str,
        environment: &str,
        command: &str,
    ) -> Result<AdapterTest, HostApiError> {
        self.post(
            &format!("/companies/{company}/adapters/codex_local/test-environment"),
            &json!({
                "environmentId": environment,
                "adapterConfig": { "engine": "cli", "command": command },
            }),
        )
        .await
    }

    /// Creates a `codex_local` agent; returns its id.
    pub async fn create_agent(
        &self,
        company: &str,
        spec: &AgentSpec,
    ) -> Result<String, HostApiError> {
        let env: serde_json::Map<String, Value> = spec
            .env
            .iter()
            .map(|(key, value)| (key.clone(), json!({ "type": "plain", "value": value })))
            .collect();
        let adapter_config = match spec.engine {
            CodexEngine::Cli => json!({ "engine": "cli", "command": spec.command, "env": env }),
            CodexEngine::Acp => {
                json!({ "engine": "acp", "agentCommand": spec.command, "env": env })
            }
        };
        let created: Created = self
            .post(
                &format!("/companies/{company}/agents"),
                &json!({
                    "name": spec.name,
                    "adapterType": "codex_local",
                    "adapterConfig": adapter_config,
                    "defaultEnvironmentId": spec.environment_id,
                }),
            )
            .await?;
        Ok(created.id)
    }

    /// Starts a heartbeat run of `agent` now; returns the run id.
    pub async fn invoke_heartbeat(&self, agent: &str) -> Result<String, HostApiError> {
        let created: Created = self
            .post(&format!("/agents/{agent}/heartbeat/invoke"), &json!({}))
            .await?;
        Ok(created.id)
    }

    /// Turns on the instance's experimental isolated workspaces, without which the host drops an
    /// issue's `executionWorkspacePreference` (and so never resumes a reusable lease).
    pub async fn enable_isolated_workspaces(&self) -> Result<(), HostApiError> {
        let request = self
            .http
            .patch(format!("{}/instance/settings/experimental", self.base))
            .json(&json!({ "enableIsolatedWorkspaces": true }));
        Self::send::<Value>("PATCH", "/instance/settings/experimental", request)
            .await
            .map(drop)
    }

    /// Creates a project without a workspace of its own; returns its id.
    pub async fn create_project(&self, company: &str, name: &str) -> Result<String, HostApiError> {
        let created: Created = self
            .post(
                &format!("/companies/{company}/projects"),
                &json!({ "name": name }),
            )
            .await?;
        Ok(created.id)
    }

    /// Creates a project whose primary workspace is the host directory `cwd`; returns its id.
    pub async fn create_project_in(
        &self,
        company: &str,
        name: &str,
        cwd: &str,
    ) -> Result<String, HostApiError> {
        let created: Created = self
            .post(
                &format!("/companies/{company}/projects"),
                &json!({ "name": name, "workspace": { "cwd": cwd, "isPrimary": true } }),
            )
            .await?;
        Ok(created.id)
    }

    /// Creates an issue in `project` assigned to `agent`, in the backlog (so assigning it wakes
    /// nobody), whose runs reuse one execution workspace; returns its id.
    pub async fn create_issue(
        &self,
        company: &str,
        project: &str,
        agent: &str,
        title: &str,
    ) -> Result<String, HostApiError> {
        let created: Created = self
            .post(
                &format!("/companies/{company}/issues"),
                &json!({
                    "title": title,
                    "allowDuplicate": true,
                    "status": "backlog",
                    "projectId": project,
                    "assigneeAgentId": agent,
                    "executionWorkspacePreference": "reuse_existing",
                }),
            )
            .await?;
        Ok(created.id)
    }

    /// Starts a heartbeat run of `agent` on `issue` now; returns the run id.
    pub async fn invoke_heartbeat_on_issue(
        &self,
        agent: &str,
        issue: &str,
    ) -> Result<String, HostApiError> {
        let created: Created = self
            .post(
                &format!("/agents/{agent}/heartbeat/invoke"),
                &json!({ "payload": { "issueId": issue } }),
            )
            .await?;
        Ok(created.id)
    }

    /// The run's current state.
    pub async fn run(&self, run: &str) -> Result<HeartbeatRun, HostApiError> {
        self.get(&format!("/heartbeat-runs/{run}")).await
    }

    /// Stops a queued or running run (the board's "Stop").
    pub async fn cancel_run(&self, run: &str) -> Result<HeartbeatRun, HostApiError> {
        self.post(&format!("/heartbeat-runs/{run}/cancel"), &json!({}))
            .await
    }

    /// The run's log from byte `offset`; empty while the log does not exist yet.
    pub async fn run_log(&self, run: &str, offset: u64) -> Result<LogPage, HostApiError> {
        #[derive(Deserialize)]
        struct Page {
            content: String,
        }
        let page: Page = match self
            .get(&format!("/heartbeat-runs/{run}/log?offset={offset}"))
            .await
        {
            Ok(page) => page,
            Err(error) if error.status() == Some(404) => {
                return Ok(LogPage {
                    entries: Vec::new(),
                    next_offset: offset,
                });
            }
            Err(error) => return Err(error),
        };
        // Only whole lines are consumed; a line still being written is read again next time.
        let complete = page.content.rfind('\n').map_or(0, |end| end + 1);
        let entries = page.content[..complete]
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        Ok(LogPage {
            entries,
            next_offset: offset + complete as u64,
        })
    }

    /// The leases of an environment, newest first.
    pub async fn leases(&self, environment: &str) -> Result<Vec<EnvironmentLease>, HostApiError> {
        self.get(&format!("/environments/{environment}/leases"))
            .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, HostApiError> {
        let request = self.http.get(format!("{}{path}", self.base));
        Self::send("GET", path, request).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, HostApiError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        Self::send("POST", path, request).await
    }

    async fn send<T: DeserializeOwned>(
        method: &'static str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, HostApiError> {
        let transport = |source| HostApiError::Transport {
            method,
            path: path.to_owned(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(HostApiError::Status {
                method,
                path: path.to_owned(),
                status: status.as_u16(),
                body: response.text().await.unwrap_or_default(),
            });
        }
        response.json().await.map_err(transport)
    }
}

/// The host stores the provider's name inside the environment config.
fn with_provider(provider: &str, config: &Value) -> Value {
    let mut config = config.clone();
    if let Some(object) = config.as_object_mut() {
        object.insert("provider".into(), json!(provider));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::parse_utc_millis;

    #[test]
    fn log_timestamps_are_unix_milliseconds() {
        // `date -u -d 2026-12-01T12:33:33.123Z +%s%3N`.
        assert_eq!(
            parse_utc_millis("2026-12-01T12:33:33.123Z"),
            Some(1_796_128_413_123)
        );
        assert_eq!(parse_utc_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_utc_millis("2024-02-29T00:00:00.5Z"),
            Some(1_709_164_800_500)
        );
        assert_eq!(parse_utc_millis("yesterday"), None);
        assert_eq!(parse_utc_millis("2026-12-01T12:33:33"), None, "UTC only");
    }
}
