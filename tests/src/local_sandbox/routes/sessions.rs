//! `/api/session/*`.

use std::time::Duration;

use axum::Json;

use super::detached;
use super::extract::{ApiJson, SandboxHandle};
use crate::local_sandbox::api::{
    SessionCreateRequest, SessionCreated, SessionData, SessionDeleteRequest, SessionDeleted,
    SessionList, Success,
};
use crate::local_sandbox::errors::ApiError;
use crate::local_sandbox::ids;
use crate::local_sandbox::paths::WORKSPACE;
use crate::local_sandbox::scripts::EnvVars;
use crate::local_sandbox::session::SessionOptions;

/// `POST /api/session/create`: starts the session's shell; an id whose shell is alive is
/// `SESSION_ALREADY_EXISTS` (409).
pub async fn create(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<SessionCreateRequest>,
) -> Result<Json<Success<SessionCreated>>, ApiError> {
    let id = request.id.unwrap_or_else(ids::session_id);
    let options = SessionOptions {
        cwd: request.cwd.unwrap_or_else(|| WORKSPACE.to_owned()),
        env: EnvVars::parse(request.env.unwrap_or_default()).map_err(|error| {
            ApiError::Internal(format!("Failed to create session '{id}': {error}"))
        })?,
        command_timeout: request.command_timeout_ms.map(Duration::from_millis),
    };
    let data = SessionData {
        id: id.clone(),
        cwd: options.cwd.clone(),
        command_timeout_ms: request.command_timeout_ms,
    };
    detached(async move { sandbox.sessions().create(sandbox.env(), &id, options).await }).await?;
    Ok(Json(Success::new(SessionCreated {
        data,
        container_placement_id: None,
    })))
}

/// `GET /api/session/list`.
pub async fn list(SandboxHandle(sandbox): SandboxHandle) -> Json<Success<SessionList>> {
    Json(Success::new(SessionList {
        data: sandbox.sessions().list(),
    }))
}

/// `POST /api/session/delete`: kills the shell and what it started; an unknown id is the
/// container's `INTERNAL_ERROR` "Session 'x' not found".
pub async fn delete(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<SessionDeleteRequest>,
) -> Result<Json<Success<SessionDeleted>>, ApiError> {
    let session_id = request.session_id;
    detached({
        let session_id = session_id.clone();
        async move { sandbox.sessions().delete(&session_id).await }
    })
    .await?;
    Ok(Json(Success::new(SessionDeleted { session_id })))
}
