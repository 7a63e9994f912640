//! The bridge Worker: leases of Cloudflare Sandbox containers for Paperclip.
//!
//! The wire protocol (types, routes, field rules, signing) is `bridge_protocol`'s, shared with
//! every client. The modules here are the Worker's own logic, target-independent and unit-tested
//! natively: configuration, errors and their bodies, command execution, leases, the Sandbox SDK's
//! rules, the scripts run in sandboxes. Only `edge` touches the Workers runtime and is compiled for
//! `wasm32` alone.

// Natively only the unit tests use these modules (the Worker's entry point is wasm32-only), so
// dead code is reported by the wasm32 build alone.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unused_imports))]

mod config;
mod error;
mod exec;
mod json_text;
mod lease;
mod probe;
mod replay;
mod sandbox;
mod script;
mod transfer;

#[cfg(target_arch = "wasm32")]
mod edge;

#[cfg(target_arch = "wasm32")]
pub use edge::{LeaseObject, ReplayGuard};

/// What a command's script is rendered from ([`ExecPlan::script`]), for the bench, which runs
/// the bridge's own scripts straight in the container to tell their cost from the bridge's.
pub use exec::{EndRecord, ExecPlan};
pub use lease::protocol::ExecutionTicket;
pub use script::SENTINEL_PATH;
