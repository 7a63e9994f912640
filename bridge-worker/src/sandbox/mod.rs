//! Target-independent knowledge about the `Sandbox` Durable Object of `@cloudflare/sandbox`:
//! its id rules (in `bridge_protocol`, since lease ids are sandbox ids), the shapes of its RPC options and results, and the meaning of its errors.
//! The wasm glue that actually calls it lives in `crate::edge::sandbox_stub`.

mod error;
mod rpc;
mod stream;

pub use bridge_protocol::sandbox_id::{SandboxId, SandboxIdError};
pub use error::SandboxError;
pub use rpc::{ExecOptions, ExecOutput, SandboxConfiguration, SandboxName};
pub use stream::ContainerEvent;

/// Session token that makes the SDK run a command in a fresh one-shot shell.
pub const SESSIONLESS: &str = "__DISABLE_SESSION__";
