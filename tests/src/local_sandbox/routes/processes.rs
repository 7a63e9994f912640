//! `/api/process/*`: background processes that outlive the request that started them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query};
use axum::response::Response;
use futures_util::future::join_all;

use super::detached;
use super::execute::command_spec;
use super::extract::{ApiJson, SandboxHandle};
use crate::local_sandbox::api::{
    CommandRequest, ProcessDetail, ProcessEvent, ProcessInfo, ProcessKilled, ProcessList,
    ProcessListQuery, ProcessLogs, ProcessStarted, ProcessesKilled, Success,
};
use crate::local_sandbox::command;
use crate::local_sandbox::errors::{ApiError, CommandCall};
use crate::local_sandbox::process::{ProcessEntry, ProcessStatus};
use crate::local_sandbox::sandbox::Sandbox;
use crate::local_sandbox::sse::{self, EventSender};
use crate::local_sandbox::time::now_iso;

/// Starts `request` as a background process (also `execute` with `background: true`). In a
/// session it runs in a subshell of the session shell; sessionless, in its own process group,
/// where `timeoutMs` applies.
pub(super) async fn start_process(
    sandbox: Arc<Sandbox>,
    request: CommandRequest,
) -> Result<Success<ProcessStarted>, ApiError> {
    if request.command.trim().is_empty() {
        return Err(ApiError::EmptyCommand);
    }
    let target = command::target(request.session_id.as_deref())?;
    let spec = command_spec(&request, &target, CommandCall::Start)?;
    let running = detached({
        let (sandbox, target) = (Arc::clone(&sandbox), target.clone());
        async move { sandbox.start(&target, &spec).await }
    })
    .await?;
    let entry = sandbox
        .processes()
        .register(request.process_id, request.command, target, running);
    Ok(Success::new(ProcessStarted {
        process_id: entry.id.clone(),
        pid: entry.pid,
        command: entry.command.clone(),
    }))
}

fn info(entry: &ProcessEntry) -> ProcessInfo {
    let outcome = entry.outcome();
    ProcessInfo {
        id: entry.id.clone(),
        pid: entry.pid,
        command: entry.command.clone(),
        status: outcome.status,
        start_time: entry.start_time.clone(),
        end_time: outcome.end_time,
        exit_code: outcome.exit_code,
    }
}

/// `POST /api/process/start`.
pub async fn start(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<CommandRequest>,
) -> Result<Json<Success<ProcessStarted>>, ApiError> {
    start_process(sandbox, request).await.map(Json)
}

/// `GET /api/process/list` (`?status=` filters).
pub async fn list(
    SandboxHandle(sandbox): SandboxHandle,
    Query(query): Query<ProcessListQuery>,
) -> Json<Success<ProcessList>> {
    let processes = sandbox
        .processes()
        .list()
        .iter()
        .map(|entry| info(entry))
        .filter(|process| {
            query
                .status
                .as_deref()
                .is_none_or(|wanted| process.status.as_str() == wanted)
        })
        .collect();
    Json(Success::new(ProcessList { processes }))
}

/// `GET /api/process/{id}`.
pub async fn get(
    SandboxHandle(sandbox): SandboxHandle,
    Path(id): Path<String>,
) -> Result<Json<Success<ProcessDetail>>, ApiError> {
    let entry = sandbox.processes().get(&id)?;
    Ok(Json(Success::new(ProcessDetail {
        process: info(&entry),
    })))
}

/// `DELETE /api/process/{id}`: kills the whole process tree (SIGTERM, SIGKILL after 5 s) and
/// answers once it is gone; a process that already ended is `COMMAND_NOT_FOUND`.
pub async fn kill(
    SandboxHandle(sandbox): SandboxHandle,
    Path(id): Path<String>,
) -> Result<Json<Success<ProcessKilled>>, ApiError> {
    let entry = sandbox.processes().get(&id)?;
    detached(async move { entry.kill().await }).await?;
    Ok(Json(Success::new(ProcessKilled { process_id: id })))
}

/// `DELETE /api/process/kill-all`: kills every running process; counts the ones killed.
pub async fn kill_all(
    SandboxHandle(sandbox): SandboxHandle,
) -> Result<Json<Success<ProcessesKilled>>, ApiError> {
    let running: Vec<Arc<ProcessEntry>> = sandbox
        .processes()
        .list()
        .into_iter()
        .filter(|entry| entry.outcome().status == ProcessStatus::Running)
        .collect();
    let cleaned_count = detached(async move {
        let kills = join_all(running.iter().map(|entry| entry.kill())).await;
        Ok(kills.iter().filter(|killed| killed.is_ok()).count())
    })
    .await?;
    Ok(Json(Success::new(ProcessesKilled { cleaned_count })))
}

/// `GET /api/process/{id}/logs`: all output so far.
pub async fn logs(
    SandboxHandle(sandbox): SandboxHandle,
    Path(id): Path<String>,
) -> Result<Json<Success<ProcessLogs>>, ApiError> {
    let entry = sandbox.processes().get(&id)?;
    let (stdout, stderr) = entry.logs();
    Ok(Json(Success::new(ProcessLogs {
        process_id: id,
        stdout,
        stderr,
    })))
}

/// `GET /api/process/{id}/stream`: SSE `process_info`, the output so far, live output, `exit`.
pub async fn stream(
    SandboxHandle(sandbox): SandboxHandle,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let entry = sandbox.processes().get(&id)?;
    Ok(sse::response(move |events| follow(entry, events)))
}

async fn follow(entry: Arc<ProcessEntry>, events: EventSender) {
    let mut state = entry.subscribe();
    let info = ProcessEvent::ProcessInfo {
        process_id: entry.id.clone(),
        command: entry.command.clone(),
        status: state.borrow().status,
        timestamp: now_iso(),
    };
    if !events.send(&info).await {
        return;
    }
    let mut sent = 0;
    loop {
        let (output, ended) = {
            let state = state.borrow_and_update();
            let output = state.output.get(sent..).unwrap_or_default().to_vec();
            let ended = state
                .status
                .is_terminal()
                .then_some((state.status, state.exit_code));
            (output, ended)
        };
        sent += output.len();
        for (stream, data) in output {
            if !events
                .send(&ProcessEvent::output(stream, data, &entry.id))
                .await
            {
                return;
            }
        }
        if let Some((status, exit_code)) = ended {
            let code = exit_code.map_or_else(|| "undefined".to_owned(), |code| code.to_string());
            events
                .send(&ProcessEvent::Exit {
                    process_id: entry.id.clone(),
                    exit_code,
                    data: format!("Process {} with exit code {code}", status.as_str()),
                    timestamp: now_iso(),
                })
                .await;
            return;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
