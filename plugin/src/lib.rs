//! The Paperclip sandbox-provider plugin for the Cloudflare bridge: the host's JSON-RPC protocol
//! on stdio, mapped onto the bridge's signed HTTP API.

pub mod chunks;
pub mod client;
pub mod config;
pub mod error;
pub mod manifest;
pub mod protocol;
pub mod provider;
pub mod rpc;
pub mod sync;
