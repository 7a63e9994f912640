//! Driving a real Paperclip server as its operators do, through its HTTP API: the client and a
//! whole deployment (local stack, server, installed plugin) for the end-to-end tests, the demo
//! and the benchmarks.

pub mod api;
pub mod deployment;

pub use api::{HeartbeatRun, HostApi, HostApiError};
pub use deployment::{Deployment, DeploymentError, FakeAgent};
