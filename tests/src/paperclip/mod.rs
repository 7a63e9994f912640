//! Driving a real Paperclip server as its operators do, through its HTTP API: the client and a
//! whole deployment (local stack, server, installed plugin) for the end-to-end tests, the demo
//! and the benchmarks, and host workspaces for the sync tests.

pub mod api;
pub mod deployment;
pub mod workspace;

pub use api::{HeartbeatRun, HostApi, HostApiError};
pub use deployment::{Deployment, DeploymentError, FakeAgent};
