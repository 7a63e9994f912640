//! `POST /api/execute` and `POST /api/execute/stream`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::extract::{ApiJson, SandboxHandle};
use super::{detached, processes};
use crate::local_sandbox::api::{CommandRequest, ExecEvent, ExecResult};
use crate::local_sandbox::command::{
    self, CommandEvent, CommandSpec, StartedCommand, StreamDecoders,
};
use crate::local_sandbox::errors::{ApiError, CommandCall, ExecTarget};
use crate::local_sandbox::scripts::EnvVars;
use crate::local_sandbox::sse::{self, EventSender};
use crate::local_sandbox::time::now_iso;

/// Turns a request into what to run; a bad variable name fails the way the container's shell
/// setup does.
pub(super) fn command_spec(
    request: &CommandRequest,
    target: &ExecTarget,
    call: CommandCall,
) -> Result<CommandSpec, ApiError> {
    let env = EnvVars::parse(request.env.clone().unwrap_or_default())
        .map_err(|error| ApiError::command(call, &request.command, target, error.to_string()))?;
    Ok(CommandSpec {
        command: request.command.clone(),
        env,
        cwd: request.cwd.clone(),
        timeout: request.timeout_ms.map(Duration::from_millis),
    })
}

/// `POST /api/execute`: runs to completion and answers with the whole output; with
/// `background: true` it starts a process instead.
pub async fn execute(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<CommandRequest>,
) -> Result<Response, ApiError> {
    if request.background {
        return Ok(Json(processes::start_process(sandbox, request).await?).into_response());
    }
    let target = command::target(request.session_id.as_deref())?;
    let spec = command_spec(&request, &target, CommandCall::Run)?;
    let started = Instant::now();
    let output = detached(async move { sandbox.execute(&target, &spec).await }).await?;
    Ok(Json(ExecResult {
        success: output.exit_code == 0,
        exit_code: output.exit_code,
        stdout: output.stdout,
        stderr: output.stderr,
        command: request.command,
        duration: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        timestamp: now_iso(),
        session_id: request.session_id,
    })
    .into_response())
}

/// `POST /api/execute/stream`: SSE `start`, output as it is produced, then `complete`. Like the
/// container, it runs in a subshell of the session (nothing it does persists) and ignores
/// `timeoutMs`.
pub async fn stream(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<CommandRequest>,
) -> Result<Response, ApiError> {
    let target = command::target(request.session_id.as_deref())?;
    let spec = CommandSpec {
        timeout: None,
        ..command_spec(&request, &target, CommandCall::Start)?
    };
    let running = detached({
        let sandbox = Arc::clone(&sandbox);
        async move { sandbox.start(&target, &spec).await }
    })
    .await?;
    Ok(sse::response(move |events| {
        forward(request.command, running, events)
    }))
}

/// Relays a running command's events as SSE until it ends or the client goes away (the command
/// then keeps running, its output discarded).
async fn forward(command: String, mut running: StartedCommand, events: EventSender) {
    let start = ExecEvent::Start {
        command,
        timestamp: now_iso(),
    };
    if !events.send(&start).await {
        return;
    }
    let mut text = StreamDecoders::default();
    while let Some(event) = running.events.recv().await {
        match event {
            CommandEvent::Output(stream, bytes) => {
                let data = text.decode(stream, &bytes);
                if !data.is_empty() && !events.send(&ExecEvent::output(stream, data)).await {
                    return;
                }
            }
            CommandEvent::Exit(exit_code) => {
                for (stream, data) in text.finish() {
                    if !data.is_empty() && !events.send(&ExecEvent::output(stream, data)).await {
                        return;
                    }
                }
                let complete = ExecEvent::Complete {
                    exit_code,
                    timestamp: now_iso(),
                };
                events.send(&complete).await;
                return;
            }
        }
    }
    let error = "the command's output ended without an exit status".to_owned();
    events
        .send(&ExecEvent::Error {
            data: error.clone(),
            error,
            timestamp: now_iso(),
        })
        .await;
}
