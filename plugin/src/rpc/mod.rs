//! The Paperclip host protocol: NDJSON JSON-RPC 2.0 over stdin/stdout.

pub mod framing;
pub mod message;
pub mod server;

pub use message::{Invocation, RpcError, codes};
pub use server::{Exit, Handler, Notifier, Request, serve};
