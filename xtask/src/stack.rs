//! `cargo xtask dev` and `cargo xtask demo`: the local stack for people.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bridge_tests::client::BridgeClient;
use bridge_tests::harness::{LocalStack, StackOptions};
use bridge_worker::api::{HealthResponse, ProbeRequest, ProbeResponse};
use bridge_worker::routes::Route;

use crate::build;
use crate::command::announce;
use crate::tools::repo_root;

/// Builds what the stack runs and starts it in `target/local-stack/<name>`.
fn start(name: &str) -> Result<LocalStack> {
    build::worker()?;
    let local_sandbox = build::local_sandbox()?;
    let work_dir = repo_root().join("target/local-stack").join(name);
    if work_dir.exists() {
        fs::remove_dir_all(&work_dir)
            .with_context(|| format!("cannot clear {}", work_dir.display()))?;
    }
    announce("starting the local stack (local-sandbox + wrangler dev --env local)");
    let started = Instant::now();
    let stack = LocalStack::start(&StackOptions::new(local_sandbox, &work_dir))?;
    println!(
        "    ready in {:.1} s: bridge {} (pinned host {}), local-sandbox {}",
        started.elapsed().as_secs_f64(),
        stack.bridge_url(),
        stack.bridge_host(),
        stack.local_sandbox().base_url()
    );
    Ok(stack)
}

fn client(stack: &LocalStack) -> Result<BridgeClient> {
    let (key_id, secret) = &stack.keys().primary;
    Ok(BridgeClient::new(
        &stack.bridge_url(),
        stack.bridge_host(),
        key_id,
        secret,
    )?)
}

/// Keeps the stack up until Ctrl-C or SIGTERM, then stops everything.
pub fn dev() -> Result<()> {
    let stack = start("dev")?;
    let env_path: PathBuf = repo_root().join("target/local-stack.env");
    bridge_tests::harness::write_private(&env_path, &stack.client_env())?;
    println!("\n{}", stack.client_env().trim_end());
    println!(
        "\n(also written to {}; logs in {})\nPress Ctrl-C to stop.",
        env_path.display(),
        stack.work_dir().display()
    );
    tokio::runtime::Runtime::new()?.block_on(wait_for_termination())?;
    println!("\nstopping the local stack");
    drop(stack);
    fs::remove_file(&env_path).ok();
    Ok(())
}

async fn wait_for_termination() -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Starts the stack and exercises the bridge through the real Sandbox SDK.
pub fn demo() -> Result<()> {
    let stack = start("demo")?;
    let client = client(&stack)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        announce("GET /health (signed)");
        let health: HealthResponse = client.fetch(Route::Health).await?;
        println!("{}", serde_json::to_string_pretty(&health)?);
        announce("POST /probe: create a sandbox through the Sandbox SDK, run pwd, destroy it");
        let started = Instant::now();
        let probe: ProbeResponse = client
            .post(
                Route::Probe,
                &ProbeRequest {
                    requested_cwd: Some("/workspace/paperclip".to_owned()),
                    timeout_ms: None,
                },
            )
            .await?;
        println!("{}", serde_json::to_string_pretty(&probe)?);
        println!(
            "\nsummary: bridge {} healthy, probe answered {:?} in {:.0} ms; every response signature verified",
            health.bridge_version,
            probe.remote_cwd,
            started.elapsed().as_secs_f64() * 1000.0
        );
        anyhow::Ok(())
    })?;
    drop(stack);
    Ok(())
}
