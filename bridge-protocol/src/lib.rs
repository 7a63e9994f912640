//! The bridge's HTTP API (v1), as plain target-independent Rust: what the Worker serves and what
//! every client sends, defined once so the two cannot drift.
//!
//! - [`api`]: the JSON bodies of every route, and the error body with its codes;
//! - [`routes`]: the route table, for building paths and for matching requests;
//! - [`fields`], [`remote_path`], [`sandbox_id`]: the rules fields follow beyond their types;
//! - [`auth`]: `PCB1-HMAC-SHA256` request signing and verification, and response signatures;
//! - [`sse`]: the event-stream codec of streamed executions;
//! - `client` (feature `client`): the one client of the bridge, over a pluggable HTTP transport.

pub mod api;
pub mod auth;
#[cfg(feature = "client")]
pub mod client;
pub mod fields;
pub mod remote_path;
pub mod routes;
pub mod sandbox_id;
pub mod sse;
