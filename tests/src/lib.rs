//! The local stack: `local-sandbox` (a stand-in for the Sandbox container) and the harness that
//! runs it with the bridge in `wrangler dev`, plus a signed bridge client; shared by the
//! end-to-end tests and `cargo xtask`.

pub mod client;
pub mod harness;
pub mod local_sandbox;
