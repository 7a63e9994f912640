//! `local-sandbox --listen 127.0.0.1:0 --state-dir <dir>`: serves the Cloudflare Sandbox
//! container API for local `workerd`; see [`bridge_tests::local_sandbox`].

use std::io::IsTerminal;
use std::process::ExitCode;

use bridge_tests::local_sandbox::{cli, run};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(cli::CliError::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("local-sandbox: {error}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("local-sandbox: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("local-sandbox: {error}");
            ExitCode::FAILURE
        }
    }
}
