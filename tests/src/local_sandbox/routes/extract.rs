//! Request extractors that fail with container error bodies instead of axum's plain-text ones.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::local_sandbox::errors::ApiError;
use crate::local_sandbox::ids::SandboxId;
use crate::local_sandbox::sandbox::Sandbox;

/// A JSON body, parsed whatever the `Content-Type`; malformed JSON or a missing field is
/// `VALIDATION_FAILED` (400).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::validation("body", rejection.body_text()))?;
        serde_json::from_slice(&body)
            .map(Self)
            .map_err(|error| ApiError::validation("body", format!("Invalid request body: {error}")))
    }
}

/// Validates a sandbox id from `field` (a header or a path segment).
pub fn sandbox_id(field: &'static str, raw: &str) -> Result<SandboxId, ApiError> {
    SandboxId::parse(raw).ok_or_else(|| {
        ApiError::validation(
            field,
            format!("{field} must be 1 to 128 characters from A-Z, a-z, 0-9, '_' and '-'"),
        )
    })
}

/// The sandbox named by the `X-Sandbox-Id` header, created on first use.
#[derive(Debug)]
pub struct SandboxHandle(pub Arc<Sandbox>);

impl FromRequestParts<Arc<AppState>> for SandboxHandle {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        const HEADER: &str = "X-Sandbox-Id";
        let raw = parts
            .headers
            .get(HEADER)
            .ok_or_else(|| {
                ApiError::validation(HEADER, format!("the {HEADER} header is required"))
            })?
            .to_str()
            .unwrap_or_default();
        let id = sandbox_id(HEADER, raw)?;
        state.sandboxes.get(&id).await.map(Self)
    }
}
