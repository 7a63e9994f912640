//! Readiness, ping and version.

use axum::Json;

use crate::local_sandbox::api::{Health, Success, Version};

/// The `@cloudflare/sandbox` version whose container this server stands in for.
const CONTAINER_VERSION: &str = "0.12.10";

/// `GET /`: what the Durable Object polls until the container answers.
pub async fn readiness() -> &'static str {
    "Hello from local-sandbox"
}

/// `GET /api/ping`.
pub async fn ping() -> Json<Success<Health>> {
    Json(Success::new(Health { status: "healthy" }))
}

/// `GET /api/version`: the DO compares it with its own and warns on mismatch.
pub async fn version() -> Json<Success<Version>> {
    Json(Success::new(Version {
        version: CONTAINER_VERSION,
    }))
}
