//! Local-only control endpoints, used by the fake container in `workerd` and by tests.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};

use super::extract::sandbox_id;
use super::{AppState, detached};
use crate::local_sandbox::api::{ContainerDestroyed, ContainerStarted, LocalInfo};
use crate::local_sandbox::errors::ApiError;

/// `GET /_local/info`.
pub async fn info(State(state): State<Arc<AppState>>) -> Json<LocalInfo> {
    Json(LocalInfo {
        isolation: state.sandboxes.isolated(),
        state_dir: state.sandboxes.state_dir().to_path_buf(),
        sandboxes: state.sandboxes.live(),
    })
}

/// `POST /_local/containers/{id}/start`: creates the sandbox's state (idempotent).
pub async fn start(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ContainerStarted>, ApiError> {
    let id = sandbox_id("id", &id)?;
    state.sandboxes.get(&id).await?;
    Ok(Json(ContainerStarted { id: id.to_string() }))
}

/// `DELETE /_local/containers/{id}`: kills every process of the sandbox and wipes its state
/// (idempotent).
pub async fn destroy(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ContainerDestroyed>, ApiError> {
    let id = sandbox_id("id", &id)?;
    let existed = detached({
        let (state, id) = (Arc::clone(&state), id.clone());
        async move { state.sandboxes.destroy(&id).await }
    })
    .await?;
    Ok(Json(ContainerDestroyed {
        id: id.to_string(),
        existed,
    }))
}
