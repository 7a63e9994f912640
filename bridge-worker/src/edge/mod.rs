//! The Workers-runtime glue: entry point, Durable Objects and the `Sandbox` binding. Everything
//! that can be decided without the runtime is decided by the target-independent modules.

mod entry;
mod handlers;
mod http;
mod replay_guard;
mod sandbox_stub;

pub use replay_guard::ReplayGuard;
