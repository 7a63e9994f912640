//! Bridge between Paperclip and Cloudflare Sandbox containers.
//!
//! The modules at the top are target-independent and unit-tested natively; the plugin and the tests
//! use `api` and `auth` from here, so clients and bridge share one definition of the protocol. Only
//! `edge` touches the Workers runtime and is compiled for `wasm32` alone.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod exec;
pub mod json_text;
pub mod lease;
pub mod probe;
pub mod remote_path;
pub mod routes;
pub mod sandbox;
pub mod script;
pub mod sse;

#[cfg(target_arch = "wasm32")]
mod edge;

#[cfg(target_arch = "wasm32")]
pub use edge::{LeaseObject, ReplayGuard};
