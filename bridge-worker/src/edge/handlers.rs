//! The route handlers: decode, run, encode.

use serde::de::DeserializeOwned;
use worker::Env;

use super::http::{Reply, unix_millis};
use super::sandbox_stub::{Sandbox, with_deadline};
use crate::api::{
    API_VERSION, BRIDGE_VERSION, Capabilities, HealthResponse, PROVIDER, ProbeRequest,
    ProbeResponse,
};
use crate::error::BridgeError;
use crate::probe::ProbePlan;
use crate::routes::Route;
use crate::sandbox::{
    ExecOptions, SESSIONLESS, SandboxConfiguration, SandboxError, SandboxId, SandboxName,
};
use crate::script::probe_script;

/// Deadline for destroying a sandbox; `destroy()` itself has none.
const DESTROY_TIMEOUT_MS: u64 = 30_000;

/// Serves an authenticated request for `route`.
pub async fn handle(route: Route, env: &Env, body: &[u8]) -> Result<Reply, BridgeError> {
    match route {
        Route::Health => Reply::json(200, &health()),
        Route::Probe => Reply::json(200, &probe(env, decode(body)?).await?),
    }
}

/// Decodes a JSON body; an empty body means "all defaults".
fn decode<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, BridgeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|error| BridgeError::bad_json(&error))
}

fn health() -> HealthResponse {
    HealthResponse {
        ok: true,
        provider: PROVIDER.to_owned(),
        bridge_version: BRIDGE_VERSION.to_owned(),
        api_version: API_VERSION,
        capabilities: Capabilities {
            probe: true,
            response_signing: true,
            ..Capabilities::default()
        },
    }
}

/// Creates a throw-away sandbox, runs `pwd` in the requested directory, and always destroys it.
async fn probe(env: &Env, request: ProbeRequest) -> Result<ProbeResponse, BridgeError> {
    let plan = ProbePlan::from_request(&request)?;
    let started = unix_millis();
    let mut random = [0u8; 8];
    getrandom::fill(&mut random)
        .map_err(|error| BridgeError::Internal(format!("no randomness: {error}")))?;
    let sandbox = Sandbox::open(env, SandboxId::for_probe(random))?;
    let configuration = SandboxConfiguration {
        sandbox_name: SandboxName {
            name: sandbox.id().to_string(),
            normalize_id: true,
        },
        sleep_after: None,
        keep_alive: Some(false),
    };
    let options = ExecOptions {
        timeout: Some(plan.timeout_ms),
        ..ExecOptions::default()
    };
    let script = probe_script(plan.cwd.as_str());
    let ran = with_deadline(plan.timeout_ms, async {
        sandbox.configure(&configuration).await?;
        sandbox.exec(&script, SESSIONLESS, &options).await
    })
    .await;
    let destroyed = with_deadline(DESTROY_TIMEOUT_MS, sandbox.destroy()).await;
    let output = ran?;
    destroyed?;
    match output.exit_code {
        Some(0) => {}
        Some(code) => {
            return Err(SandboxError::Command(format!(
                "the probe command exited with code {code}: {}",
                output.stderr.trim()
            ))
            .into());
        }
        None => {
            return Err(
                SandboxError::Protocol("the probe command reported no exit code".into()).into(),
            );
        }
    }
    let remote_cwd = output.stdout.trim_end_matches('\n').to_owned();
    Ok(ProbeResponse {
        ok: true,
        summary: format!(
            "Created sandbox {}, ran pwd in {remote_cwd}, and destroyed it.",
            sandbox.id()
        ),
        remote_cwd,
        sandbox_id: sandbox.id().to_string(),
        duration_ms: unix_millis().saturating_sub(started),
    })
}
