//! The sandbox provider: every host method, mapped onto the bridge API.

use std::time::{Duration, Instant};

use bridge_protocol::api::{
    AcquireLeaseRequest, ErrorBody, ErrorCode, ExecRequest, ExecResult, LeaseResponse,
    OutputStream, ProbeRequest, ProbeResponse, ReleaseLeaseRequest, ResumeLeaseRequest,
    SessionMode, TerminationReceipt, TerminationState,
};
use bridge_protocol::client::{CallPolicy, ClientError, StreamEvent};
use bridge_protocol::fields::EXEC_CHANNEL_VAR;
use bridge_protocol::routes::Route;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::chunks::{MAX_CHUNK_UNITS, split_for_host};
use crate::client::{BridgeClient, bridge_client};
use crate::config::{self, ProviderConfig};
use crate::error::ProviderError;
use crate::protocol::{
    AcquireParams, Diagnostic, ExecuteParams, ExecuteResult, LeaseResult, ProbeResult,
    RealizeParams, RealizeResult, ReceiptResult, ResumeParams, SyncParams, SyncResult,
    TerminateParams, ValidateConfigParams, ValidateConfigResult,
};
use crate::rpc::{Handler, Notifier, Request, RpcError, codes};
use crate::sync::{Direction, Sync};

/// The optional methods this plugin implements (what `initialize` advertises).
pub const SUPPORTED_METHODS: [&str; 11] = [
    "configChanged",
    "environmentValidateConfig",
    "environmentProbe",
    "environmentAcquireLease",
    "environmentResumeLease",
    "environmentReleaseLease",
    "environmentDestroyLease",
    "environmentRealizeWorkspace",
    "environmentExecute",
    "environmentSyncIn",
    "environmentSyncOut",
];

/// Optional methods of the protocol this plugin does not implement (`-32004`).
const UNIMPLEMENTED_METHODS: [&str; 23] = [
    "validateConfig",
    "onEvent",
    "runJob",
    "handleWebhook",
    "handleApiRequest",
    "getData",
    "performAction",
    "executeTool",
    "detectExternalObjects",
    "resolveExternalObject",
    "refreshExternalObjects",
    "environmentRunnerIngressEndpoint",
    "environmentStartInteractiveSetup",
    "environmentGetInteractiveSetup",
    "environmentCancelInteractiveSetup",
    "environmentCaptureTemplate",
    "environmentDeleteTemplate",
    "loginPtyOpen",
    "loginPtyInput",
    "loginPtyStop",
    "loginPtyClose",
    "duplexChannelOpen",
    "duplexChannelWrite",
];

/// Time the plugin allows past a command's timeout for the bridge to kill it and answer; the
/// host itself waits 30 s past it.
pub(crate) const EXEC_GRACE: Duration = Duration::from_secs(25);
/// Longest probe the bridge accepts, below the host's fixed 120 s.
const PROBE_LIMIT_MS: u64 = 100_000;

/// The provider; holds the one HTTP connection pool.
pub struct Provider {
    http: reqwest::Client,
}

impl Provider {
    /// A provider using `http` for every bridge.
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    fn client(&self, config: &ProviderConfig) -> Result<BridgeClient, ProviderError> {
        Ok(bridge_client(
            self.http.clone(),
            &config.bridge_base_url,
            config.key_id.clone(),
            config.secret_key()?,
        ))
    }

    async fn route(&self, request: Request, notifier: Notifier) -> Result<Value, RpcError> {
        let params = request.params;
        let outcome: Result<Value, ProviderError> = match request.method.as_str() {
            "initialize" => Ok(json!({"ok": true, "supportedMethods": SUPPORTED_METHODS})),
            "health" => Ok(json!({"status": "ok"})),
            "configChanged" => Ok(Value::Null),
            "environmentValidateConfig" => decode(params).map(validate_config).and_then(to_value),
            "environmentProbe" => async { to_value(self.probe(&config_of(&params)?).await) }.await,
            "environmentAcquireLease" => {
                async { to_value(self.acquire(decode(params)?).await?) }.await
            }
            "environmentResumeLease" => {
                async { to_value(self.resume(decode(params)?).await?) }.await
            }
            "environmentReleaseLease" => {
                async { to_value(self.release(decode(params)?).await?) }.await
            }
            "environmentDestroyLease" => {
                async { to_value(self.destroy(decode(params)?).await?) }.await
            }
            "environmentRealizeWorkspace" => {
                async { to_value(self.realize(decode(params)?).await?) }.await
            }
            "environmentExecute" => {
                let invocation = request.invocation.map(|invocation| invocation.id);
                async { to_value(self.execute(decode(params)?, invocation, notifier).await?) }.await
            }
            "environmentSyncIn" => {
                async { to_value(self.sync(decode(params)?, Direction::In).await?) }.await
            }
            "environmentSyncOut" => {
                async { to_value(self.sync(decode(params)?, Direction::Out).await?) }.await
            }
            method if UNIMPLEMENTED_METHODS.contains(&method) => {
                return Err(RpcError::new(
                    codes::METHOD_NOT_IMPLEMENTED,
                    format!("{method} is not implemented by the Cloudflare bridge plugin"),
                ));
            }
            method => {
                return Err(RpcError::new(
                    codes::METHOD_NOT_FOUND,
                    format!("unknown method {method}"),
                ));
            }
        };
        outcome.map_err(RpcError::from)
    }

    async fn probe(&self, config: &ProviderConfig) -> ProbeResult {
        let timeout_ms = config.timeout_ms.min(PROBE_LIMIT_MS);
        let request = ProbeRequest {
            requested_cwd: Some(config.requested_cwd.clone()),
            timeout_ms: Some(timeout_ms),
        };
        let outcome = match self.client(config) {
            Ok(client) => client
                .call::<ProbeResponse>(
                    Route::Probe,
                    Some(&request),
                    CallPolicy::retried(Duration::from_millis(timeout_ms) + Duration::from_secs(5)),
                )
                .await
                .map_err(|error| (error.code(), error.to_string())),
            Err(error) => Err((None, error.to_string())),
        };
        match outcome {
            Ok(probe) => ProbeResult {
                ok: true,
                summary: probe.summary,
                diagnostics: Vec::new(),
                metadata: object(json!({
                    "remoteCwd": probe.remote_cwd,
                    "sandboxName": probe.sandbox_id,
                    "durationMs": probe.duration_ms,
                })),
            },
            Err((code, message)) => ProbeResult {
                ok: false,
                summary: "The Cloudflare bridge probe failed.".to_owned(),
                diagnostics: vec![Diagnostic {
                    severity: "error",
                    message,
                    code: code.map(|code| code.as_str().to_owned()),
                }],
                metadata: Map::new(),
            },
        }
    }

    async fn acquire(&self, params: AcquireParams) -> Result<LeaseResult, ProviderError> {
        let config = ProviderConfig::from_value(&params.driver.config)?;
        let timeout_ms = config
            .timeout_ms
            .max(config.bridge_request_timeout_ms)
            .min(bridge_protocol::fields::MAX_LIFECYCLE_TIMEOUT_MS);
        let request = AcquireLeaseRequest {
            environment_id: params.driver.environment_id.unwrap_or_default(),
            run_id: params.run_id,
            issue_id: params.driver.issue_id,
            reuse_lease: config.reuse_lease,
            reuse_scope: None,
            keep_alive: config.keep_alive,
            sleep_after: config.sleep_after.clone(),
            requested_cwd: Some(config.requested_cwd.clone()),
            session_strategy: Some(config.session_strategy),
            session_id: Some(config.session_id.clone()),
            timeout_ms: Some(timeout_ms),
        };
        let lease: LeaseResponse = self
            .client(&config)?
            .call(
                Route::AcquireLease,
                Some(&request),
                CallPolicy::retried(Duration::from_millis(timeout_ms) + Duration::from_secs(5)),
            )
            .await?;
        Ok(lease_result(&lease, &config))
    }

    async fn resume(&self, params: ResumeParams) -> Result<LeaseResult, ProviderError> {
        let config = ProviderConfig::from_value(&params.driver.config)?;
        let timeout_ms = config
            .timeout_ms
            .max(config.bridge_request_timeout_ms)
            .min(bridge_protocol::fields::MAX_LIFECYCLE_TIMEOUT_MS);
        let request = ResumeLeaseRequest {
            provider_lease_id: params.provider_lease_id,
            keep_alive: Some(config.keep_alive),
            sleep_after: config.sleep_after.clone(),
            timeout_ms: Some(timeout_ms),
        };
        let outcome = self
            .client(&config)?
            .call::<LeaseResponse>(
                Route::ResumeLease,
                Some(&request),
                CallPolicy::retried(Duration::from_millis(timeout_ms) + Duration::from_secs(5)),
            )
            .await;
        match outcome {
            Ok(lease) => Ok(lease_result(&lease, &config)),
            Err(error) if is_gone(&error) => Ok(LeaseResult {
                provider_lease_id: None,
                metadata: object(json!({"expired": true})),
            }),
            Err(error) => Err(error.into()),
        }
    }

    async fn release(
        &self,
        params: TerminateParams,
    ) -> Result<Option<ReceiptResult>, ProviderError> {
        let Some(lease_id) = params.provider_lease_id else {
            return Ok(None);
        };
        let config = ProviderConfig::from_value(&params.driver.config)?;
        let request = ReleaseLeaseRequest {
            provider_lease_id: lease_id.clone(),
            cancel_active_work: params.cancel_active_work,
            destroy: false,
        };
        let outcome = self
            .client(&config)?
            .call::<TerminationReceipt>(
                Route::ReleaseLease,
                Some(&request),
                CallPolicy::retried(Duration::from_millis(
                    config.bridge_request_timeout_ms.max(60_000),
                )),
            )
            .await;
        receipt(lease_id, outcome)
    }

    async fn destroy(
        &self,
        params: TerminateParams,
    ) -> Result<Option<ReceiptResult>, ProviderError> {
        let Some(lease_id) = params.provider_lease_id else {
            return Ok(None);
        };
        let config = ProviderConfig::from_value(&params.driver.config)?;
        let outcome = self
            .client(&config)?
            .call::<TerminationReceipt>(
                Route::DestroyLease(lease_id.clone()),
                None::<&()>,
                CallPolicy::retried(Duration::from_millis(
                    config.bridge_request_timeout_ms.max(60_000),
                )),
            )
            .await;
        receipt(lease_id, outcome)
    }

    async fn realize(&self, params: RealizeParams) -> Result<RealizeResult, ProviderError> {
        let config = ProviderConfig::from_value(&params.driver.config)?;
        let cwd = params
            .lease
            .remote_cwd()
            .map(str::to_owned)
            .or(params.workspace.remote_path)
            .unwrap_or_else(|| config.requested_cwd.clone());
        let lease_id = params
            .lease
            .provider_lease_id
            .ok_or(ProviderError::NoLease("environmentRealizeWorkspace"))?;
        let request = ExecRequest {
            provider_lease_id: lease_id,
            command: "mkdir".into(),
            args: vec!["-p".into(), "--".into(), cwd.clone()],
            cwd: Some("/".into()),
            session: SessionMode::None,
            login_shell: Some(false),
            timeout_ms: Some(config.bridge_request_timeout_ms),
            ..ExecRequest::default()
        };
        let result: ExecResult = self
            .client(&config)?
            .call(
                Route::Exec,
                Some(&request),
                CallPolicy::once(
                    Duration::from_millis(config.bridge_request_timeout_ms) + EXEC_GRACE,
                ),
            )
            .await?;
        if result.exit_code != Some(0) {
            return Err(ProviderError::Workspace {
                cwd,
                exit_code: result.exit_code,
                stderr: result.stderr.trim().to_owned(),
            });
        }
        Ok(RealizeResult {
            metadata: object(json!({"remoteCwd": cwd})),
            cwd,
        })
    }

    async fn sync(
        &self,
        params: SyncParams,
        direction: Direction,
    ) -> Result<SyncResult, ProviderError> {
        let config = ProviderConfig::from_value(&params.driver.config)?;
        let lease_id = params
            .lease
            .provider_lease_id
            .ok_or(ProviderError::NoLease(match direction {
                Direction::In => "environmentSyncIn",
                Direction::Out => "environmentSyncOut",
            }))?;
        let client = self.client(&config)?;
        let sync = Sync {
            client: &client,
            config: &config,
            lease_id: &lease_id,
        };
        Ok(sync.each_operation(&params.operations, direction).await?)
    }

    async fn execute(
        &self,
        params: ExecuteParams,
        invocation: Option<String>,
        notifier: Notifier,
    ) -> Result<ExecuteResult, ProviderError> {
        let config = ProviderConfig::from_value(&params.driver.config)?;
        let Some(lease_id) = params.lease.provider_lease_id.clone() else {
            return Ok(failed_command(
                "the execution has no lease (providerLeaseId is null)",
            ));
        };
        let control_channel =
            params.env.get(EXEC_CHANNEL_VAR).map(String::as_str) == Some("bridge");
        let timeout_ms = params.timeout_ms.unwrap_or(config.timeout_ms);
        let request = ExecRequest {
            provider_lease_id: lease_id,
            execution_id: None,
            command: params.command,
            args: params.args,
            cwd: params
                .cwd
                .or_else(|| params.lease.remote_cwd().map(str::to_owned)),
            env: params.env,
            stdin: params.stdin,
            timeout_ms: Some(timeout_ms),
            session: if params.bypass_session {
                SessionMode::None
            } else {
                SessionMode::Named
            },
            login_shell: Some(config.login_shell),
        };
        let client = self.client(&config)?;
        let deadline = Duration::from_millis(timeout_ms) + EXEC_GRACE;
        let started = Instant::now();
        let streaming = config.stream_output && !control_channel;
        let outcome = match invocation.filter(|_| streaming) {
            Some(invocation) => {
                stream_execution(&client, &request, deadline, &notifier, &invocation).await
            }
            None => client
                .call::<ExecResult>(Route::Exec, Some(&request), CallPolicy::once(deadline))
                .await
                .map(|result| {
                    let (stdout, stderr) = (result.stdout.clone(), result.stderr.clone());
                    (result, stdout, stderr)
                }),
        };
        match outcome {
            Ok((result, stdout, stderr)) => Ok(ExecuteResult {
                exit_code: result.exit_code,
                signal: result.signal,
                timed_out: result.timed_out,
                stdout,
                stderr,
                metadata: object(json!({
                    "durationMs": result.duration_ms,
                    "roundTripMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "truncated": result.truncated,
                })),
            }),
            Err(error) if is_gone(&error) => Ok(failed_command(&format!(
                "The sandbox lease is no longer usable: {error}"
            ))),
            Err(error) => Err(error.into()),
        }
    }
}

impl Handler for Provider {
    async fn handle(&self, request: Request, notifier: Notifier) -> Result<Value, RpcError> {
        let method = request.method.clone();
        let started = Instant::now();
        let outcome = self.route(request, notifier).await;
        match &outcome {
            Ok(_) => {
                tracing::debug!(%method, elapsed_ms = started.elapsed().as_millis(), "answered")
            }
            Err(error) => {
                tracing::warn!(%method, code = error.code, message = %error.message, "failed")
            }
        }
        outcome
    }
}

/// Runs an execution as a stream: output goes to the host as `execute.log` as it arrives, and is
/// also kept whole for the result.
async fn stream_execution(
    client: &BridgeClient,
    request: &ExecRequest,
    deadline: Duration,
    notifier: &Notifier,
    invocation: &str,
) -> Result<(ExecResult, String, String), ClientError> {
    let mut stream = client.exec_stream(request, deadline).await?;
    let (mut stdout, mut stderr) = (String::new(), String::new());
    while let Some(event) = stream.next().await? {
        match event {
            StreamEvent::Output { stream, data, .. } => {
                for piece in split_for_host(&data, MAX_CHUNK_UNITS) {
                    notifier
                        .notify(
                            "execute.log",
                            json!({"stream": stream.event_name(), "chunk": piece}),
                            invocation,
                        )
                        .await;
                }
                match stream {
                    OutputStream::Stdout => stdout.push_str(&data),
                    OutputStream::Stderr => stderr.push_str(&data),
                }
            }
            StreamEvent::Heartbeat => {}
            StreamEvent::Complete(result) => return Ok((result, stdout, stderr)),
            StreamEvent::Failed(failure) => {
                return Err(ClientError::Bridge {
                    status: 200,
                    body: ErrorBody {
                        error: failure.error,
                        message: failure.message,
                        details: None,
                    },
                });
            }
        }
    }
    Err(ClientError::Truncated)
}

fn validate_config(params: ValidateConfigParams) -> ValidateConfigResult {
    let validation = config::validate(&params.config);
    ValidateConfigResult {
        ok: validation.errors.is_empty(),
        errors: validation.errors,
        warnings: validation.warnings,
        normalized_config: validation.normalized,
    }
}

/// Acquire's metadata: only keys the host does not own, and no `provider` key. Without native
/// sync the lease says so, which is what makes the host use its own fallback.
fn lease_result(lease: &LeaseResponse, config: &ProviderConfig) -> LeaseResult {
    let mut metadata = object(json!({
        "remoteCwd": lease.remote_cwd,
        "sandboxName": lease.provider_lease_id,
    }));
    if !config.native_sync {
        metadata.insert("nativeFileSyncUnsupported".to_owned(), Value::Bool(true));
    }
    LeaseResult {
        provider_lease_id: Some(lease.provider_lease_id.clone()),
        metadata,
    }
}

/// The lease (or its sandbox) no longer exists or serves.
fn is_gone(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(ErrorCode::SandboxStateLost | ErrorCode::LeaseNotFound | ErrorCode::LeaseNotActive)
    )
}

fn receipt(
    lease_id: String,
    outcome: Result<TerminationReceipt, ClientError>,
) -> Result<Option<ReceiptResult>, ProviderError> {
    match outcome {
        Ok(receipt) => Ok(Some(ReceiptResult {
            provider_lease_id: receipt.provider_lease_id,
            state: receipt.state,
        })),
        Err(error) if error.code() == Some(ErrorCode::LeaseNotFound) => Ok(Some(ReceiptResult {
            provider_lease_id: lease_id,
            state: TerminationState::Destroyed,
        })),
        Err(error) => Err(error.into()),
    }
}

/// A command that could not run on its lease: a failed command, not an RPC error.
fn failed_command(reason: &str) -> ExecuteResult {
    ExecuteResult {
        exit_code: Some(1),
        stderr: format!("{reason}\n"),
        ..ExecuteResult::default()
    }
}

fn config_of(params: &Value) -> Result<ProviderConfig, ProviderError> {
    Ok(ProviderConfig::from_value(
        params.get("config").unwrap_or(&Value::Null),
    )?)
}

fn decode<T: DeserializeOwned>(params: Value) -> Result<T, ProviderError> {
    serde_json::from_value(params).map_err(|error| ProviderError::InvalidParams(error.to_string()))
}

fn to_value(value: impl Serialize) -> Result<Value, ProviderError> {
    serde_json::to_value(value).map_err(|error| ProviderError::Encode(error.to_string()))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> ProviderConfig {
        let mut config = json!({
            "bridgeBaseUrl": "https://bridge.example.com",
            "bridgeSecret": "0123456789abcdef0123456789abcdef",
        });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        ProviderConfig::from_value(&config).expect("valid")
    }

    #[test]
    fn a_lease_without_native_sync_tells_the_host_so() {
        let lease: LeaseResponse = serde_json::from_value(json!({
            "providerLeaseId": "pc-env-1",
            "remoteCwd": "/workspace/paperclip",
            "sessionId": "paperclip",
            "sessionStrategy": "named",
            "keepAlive": false,
            "reusable": false,
            "resumed": false,
            "state": "active",
        }))
        .expect("a lease");
        let on = lease_result(&lease, &config(json!({})));
        assert_eq!(on.metadata.get("nativeFileSyncUnsupported"), None);
        assert_eq!(on.metadata["remoteCwd"], "/workspace/paperclip");
        let off = lease_result(&lease, &config(json!({"nativeSync": false})));
        assert_eq!(off.metadata["nativeFileSyncUnsupported"], true);
    }

    #[test]
    fn both_sync_methods_are_advertised_and_none_is_also_unimplemented() {
        for method in ["environmentSyncIn", "environmentSyncOut"] {
            assert!(SUPPORTED_METHODS.contains(&method));
            assert!(!UNIMPLEMENTED_METHODS.contains(&method));
        }
    }
}
