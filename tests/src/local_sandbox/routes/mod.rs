//! The HTTP surface: the container API under `/api` (paths exact, as in the real container's
//! `routes/setup.ts`), the local control endpoints under `/_local`, and a JSON 404 body for
//! everything else.

mod execute;
mod extract;
mod files;
mod health;
mod local;
mod processes;
mod sessions;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use super::errors::ApiError;
use super::registry::Sandboxes;

/// Largest request body accepted (a `write` of a 32 MiB file base64-encodes to about 43 MiB).
const MAX_BODY: usize = 128 * 1024 * 1024;

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    /// All sandboxes.
    pub sandboxes: Sandboxes,
}

/// The complete router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(health::readiness))
        .route("/_local/info", get(local::info))
        .route("/_local/containers/{id}/start", post(local::start))
        .route("/_local/containers/{id}", delete(local::destroy))
        .route("/api/ping", get(health::ping))
        .route("/api/version", get(health::version))
        .route("/api/session/create", post(sessions::create))
        .route("/api/session/list", get(sessions::list))
        .route("/api/session/delete", post(sessions::delete))
        .route("/api/execute", post(execute::execute))
        .route("/api/execute/stream", post(execute::stream))
        .route("/api/process/start", post(processes::start))
        .route("/api/process/list", get(processes::list))
        .route("/api/process/kill-all", delete(processes::kill_all))
        .route(
            "/api/process/{id}",
            get(processes::get).delete(processes::kill),
        )
        .route("/api/process/{id}/logs", get(processes::logs))
        .route("/api/process/{id}/stream", get(processes::stream))
        .route("/api/read", post(files::read))
        .route("/api/write", post(files::write))
        .route("/api/delete", post(files::delete))
        .route("/api/mkdir", post(files::mkdir))
        .route("/api/exists", post(files::exists))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The container's router answers unknown method/path pairs with a 404 `UNKNOWN_ERROR` body.
async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// Runs request work as its own task, so that a client disconnecting cannot cancel a command
/// halfway through (the session shell would be left mid-command with its pipes gone).
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work)
        .await
        .map_err(|error| ApiError::Internal(format!("request task failed: {error}")))?
}
