//! `paperclip-cloudflare-bridge`: the plugin worker process. The package's `dist/worker.js` hands
//! the forked Node process over to this binary, which then speaks the host protocol on stdio.

use std::process::ExitCode;
use std::sync::Arc;

use paperclip_cloudflare_bridge::client::http_client;
use paperclip_cloudflare_bridge::manifest::manifest_json;
use paperclip_cloudflare_bridge::provider::Provider;
use paperclip_cloudflare_bridge::rpc::{Exit, serve};
use tracing_subscriber::EnvFilter;

/// Environment variable setting the log filter (`tracing` syntax; default `info`).
const LOG_ENV: &str = "PAPERCLIP_CLOUDFLARE_BRIDGE_LOG";

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("--print-manifest") => {
            println!("{}", manifest_json());
            return ExitCode::SUCCESS;
        }
        Some("--version") => {
            println!("paperclip-cloudflare-bridge {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "usage: paperclip-cloudflare-bridge [--print-manifest | --version]\n\
                 (without arguments it serves the Paperclip plugin protocol on stdin/stdout; got {other:?})"
            );
            return ExitCode::from(2);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("paperclip-cloudflare-bridge: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let http = http_client()?;
        let input = tokio::io::BufReader::with_capacity(1 << 20, tokio::io::stdin());
        serve(input, tokio::io::stdout(), Arc::new(Provider::new(http)))
            .await
            .map_err(|error| format!("stdio failed: {error}"))
    });
    match outcome {
        Ok(Exit::Shutdown | Exit::EndOfInput) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopping");
            ExitCode::FAILURE
        }
    }
}
