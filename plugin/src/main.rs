//! The Paperclip sandbox-provider plugin binary.
//!
//! Not implemented yet: the host's JSON-RPC protocol arrives with the plugin issue. Until then the
//! binary says so and fails, rather than pretending to be a provider.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "paperclip-cloudflare-bridge {}: the Paperclip plugin protocol is not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::FAILURE
}
