//! The bridge Worker: leases of Cloudflare Sandbox containers for Paperclip.
//!
//! The wire protocol (types, routes, field rules, signing) is `bridge_protocol`'s, shared with
//! every client. The modules here are the Worker's own logic, target-independent and unit-tested
//! natively: configuration, errors and their bodies, command execution, leases, the Sandbox SDK's
//! rules, the scripts run in sandboxes. Only `edge` touches the Workers runtime and is compiled for
//! `wasm32` alone.

pub mod config;
pub mod error;
pub mod exec;
pub mod json_text;
pub mod lease;
pub mod probe;
pub mod sandbox;
pub mod script;

#[cfg(target_arch = "wasm32")]
mod edge;

#[cfg(target_arch = "wasm32")]
pub use edge::{LeaseObject, ReplayGuard};
