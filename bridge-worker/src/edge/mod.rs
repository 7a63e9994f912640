//! The Workers-runtime glue: entry point, Durable Objects and the `Sandbox` binding. Everything
//! that can be decided without the runtime is decided by the target-independent modules.

mod byte_reader;
mod digest;
mod entry;
mod exec;
mod handlers;
mod http;
// `#[durable_object]` adds undocumented glue methods (the JS-facing constructor and handlers).
#[allow(missing_docs)]
mod lease_object;
mod outlet;
#[allow(missing_docs)]
mod replay_guard;
mod sandbox_stub;
mod transfer;

pub use lease_object::LeaseObject;
pub use replay_guard::ReplayGuard;
