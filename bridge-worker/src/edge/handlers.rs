//! The route handlers: decode, run, encode.

use serde::de::DeserializeOwned;
use worker::{Env, Response};

use super::byte_reader::ByteReader;
use super::http::{Reply, unix_millis, whole_body};
use super::sandbox_stub::{Sandbox, with_deadline};
use super::{exec, lease_object, transfer};
use crate::error::BridgeError;
use crate::lease::AcquirePlan;
use crate::lease::protocol::{ExecOrder, LeaseCommand};
use crate::probe::ProbePlan;
use crate::replay::NonceClaim;
use crate::sandbox::{
    ExecOptions, SESSIONLESS, SandboxConfiguration, SandboxError, SandboxId, SandboxName,
};
use crate::script::probe_script;
use bridge_protocol::api::{
    API_VERSION, BRIDGE_VERSION, CancelRequest, Capabilities, ExecRequest, HealthResponse,
    LeaseDetails, LeaseResponse, PROVIDER, ProbeRequest, ProbeResponse, ReleaseLeaseRequest,
    ResumeLeaseRequest, TerminationReceipt,
};
use bridge_protocol::auth::{Authenticated, CONTENT_SHA256_HEADER, STREAMING_BODY};
use bridge_protocol::fields::{lifecycle_timeout, optional_sleep_after};
use bridge_protocol::routes::Route;

/// Deadline for destroying a sandbox; `destroy()` itself has none.
const DESTROY_TIMEOUT_MS: u64 = 30_000;

/// An authenticated request, as the handlers see it.
pub struct Call<'a> {
    /// Worker bindings.
    pub env: &'a Env,
    /// The request body (empty when it is framed).
    pub body: &'a [u8],
    /// The raw query, as signed.
    pub raw_query: &'a str,
    /// A framed body, still to be read and verified frame by frame.
    pub framed: Option<ByteReader>,
    /// The client asked for `text/event-stream`.
    pub wants_stream: bool,
    /// Who signed it (streams sign their terminal event with it).
    pub authenticated: &'a Authenticated,
    /// The request's nonce, still to be claimed by the lease object when the route is one of
    /// `entry::claimed_by_lease`'s (already claimed otherwise).
    pub nonce: NonceClaim,
}

/// What a handler answers: a JSON reply (signed by the caller) or an event stream.
pub enum Answer {
    /// A JSON body and its status.
    Json(Reply),
    /// An SSE response whose terminal event carries the signature.
    Stream(Response),
}

/// Serves an authenticated request for `route`.
pub async fn handle(route: Route, call: Call<'_>) -> Result<Answer, BridgeError> {
    let env = call.env;
    let json = |reply: Result<Reply, BridgeError>| reply.map(Answer::Json);
    if call.framed.is_some() && route != Route::Upload {
        return Err(BridgeError::InvalidRequest(format!(
            "only {} takes a framed body",
            Route::Upload.path()
        )));
    }
    match route {
        Route::Health => json(Reply::json(200, &health())),
        Route::Probe => json(Reply::json(200, &probe(env, decode(call.body)?).await?)),
        Route::AcquireLease => {
            let plan = AcquirePlan::from_request(&decode(call.body)?)?;
            let lease_id = plan.lease_id.clone();
            let lease: LeaseResponse =
                lease_object::send(env, &lease_id, LeaseCommand::Acquire { plan }).await?;
            json(Reply::json(200, &lease))
        }
        Route::ResumeLease => {
            let request: ResumeLeaseRequest = decode(call.body)?;
            let command = LeaseCommand::Resume {
                keep_alive: request.keep_alive,
                sleep_after: optional_sleep_after(request.sleep_after.as_deref())?,
                timeout_ms: lifecycle_timeout(request.timeout_ms)?,
            };
            let lease: LeaseResponse =
                lease_object::send(env, lease_id(&request.provider_lease_id)?, command).await?;
            json(Reply::json(200, &lease))
        }
        Route::ReleaseLease => {
            let request: ReleaseLeaseRequest = decode(call.body)?;
            let command = LeaseCommand::Release {
                cancel_active_work: request.cancel_active_work,
                destroy: request.destroy,
            };
            let receipt: TerminationReceipt =
                lease_object::send(env, lease_id(&request.provider_lease_id)?, command).await?;
            json(Reply::json(200, &receipt))
        }
        Route::InspectLease(id) => {
            let details: LeaseDetails =
                lease_object::send(env, lease_id(&id)?, LeaseCommand::Inspect).await?;
            json(Reply::json(200, &details))
        }
        Route::DestroyLease(id) => {
            let receipt: TerminationReceipt =
                lease_object::send(env, lease_id(&id)?, LeaseCommand::Destroy).await?;
            json(Reply::json(200, &receipt))
        }
        Route::Exec => {
            let request: ExecRequest = decode(call.body)?;
            let lease = lease_id(&request.provider_lease_id)?.to_owned();
            let order = ExecOrder {
                request,
                nonce: call.nonce,
                stream_key: call
                    .wants_stream
                    .then(|| call.authenticated.key_id.as_str().to_owned()),
            };
            let answer = lease_object::execute(env, &lease, &order).await?;
            let status = answer.status_code();
            if order.stream_key.is_some() && status == 200 {
                return Ok(Answer::Stream(answer));
            }
            let body = whole_body(&answer).await.map_err(|error| {
                BridgeError::Internal(format!("reading the lease object's answer: {error}"))
            })?;
            json(Ok(Reply::encoded(status, body)))
        }
        Route::Upload => {
            let body = call.framed.ok_or_else(|| {
                BridgeError::InvalidRequest(format!(
                    "{} takes a framed body: sign it with {CONTENT_SHA256_HEADER}: {STREAMING_BODY}",
                    Route::Upload.path()
                ))
            })?;
            let result =
                transfer::upload(env, call.raw_query, body, call.nonce, call.authenticated).await?;
            json(Reply::json(200, &result))
        }
        Route::Download => {
            transfer::download(env, decode(call.body)?, call.nonce, call.authenticated)
                .await
                .map(Answer::Stream)
        }
        Route::CancelExec(execution_id) => {
            let request: CancelRequest = decode(call.body)?;
            let cancelled = exec::cancel(env, &request.provider_lease_id, &execution_id).await?;
            json(Reply::json(200, &cancelled))
        }
    }
}

/// A lease id from a request: it must be a valid sandbox id, so no arbitrary object is addressed.
fn lease_id(id: &str) -> Result<&str, BridgeError> {
    if id.is_empty() {
        return Err(BridgeError::InvalidRequest(
            "providerLeaseId is required".into(),
        ));
    }
    SandboxId::parse(id)?;
    Ok(id)
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
            reuse_lease: true,
            named_sessions: true,
            streaming: true,
            cancel: true,
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
