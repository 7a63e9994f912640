//! `local-sandbox`: a native stand-in for the Cloudflare Sandbox container's control-plane HTTP
//! API (`@cloudflare/sandbox` 0.12.10), so that the real Sandbox Durable Object running in local
//! `workerd` drives real processes without Docker.
//!
//! Each sandbox id (the `X-Sandbox-Id` header) gets `<state-dir>/<id>/{workspace,tmp}`, seen by
//! its processes at `/workspace` and `/tmp` through a private mount namespace when the OS allows
//! it. Sessions are real persistent shells; one-shot, streamed and background commands, file
//! operations and error bodies follow the real container (see `docs/cloudflare-sandbox-sdk.md`).
//!
//! Layout: [`server`] starts everything, `routes` is the HTTP surface over `api` shapes and
//! `errors`; `registry` and `sandbox` own per-sandbox state; `session`, `oneshot`, `process` and
//! `files` do the work; `launcher`, `namespace`, `reaper`, `proctree`, `pidfd`, `pipes`, `control`, `scripts`,
//! `sse`, `utf8`, `paths`, `ids` and `time` are the building blocks.

mod api;
pub mod cli;
mod command;
mod control;
mod errors;
mod files;
mod ids;
mod launcher;
mod namespace;
mod oneshot;
mod paths;
mod pidfd;
mod pipes;
mod process;
mod proctree;
mod reaper;
mod registry;
mod routes;
mod sandbox;
mod scripts;
mod server;
mod session;
mod sse;
mod time;
mod utf8;

pub use errors::SESSIONLESS;
pub use launcher::{SANDBOX_ID_VAR, STATE_DIR_VAR};
pub use proctree::{processes_with_cmdline, processes_with_env};
pub use server::{ServerError, run};
