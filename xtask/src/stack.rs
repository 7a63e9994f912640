//! `cargo xtask dev` and `cargo xtask demo`: the local stack for people.

use std::fs;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bridge_tests::harness::{LocalStack, StackOptions};
use paperclip_cloudflare_bridge::manifest::DRIVER_KEY;
use serde_json::json;

use crate::build;
use crate::command::announce;
use crate::plugin_host::PluginProcess;
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

/// The main job: the local stack, driven through the native plugin exactly as the Paperclip host
/// drives a provider for one run.
pub fn demo() -> Result<()> {
    let stack = start("demo")?;
    let plugin = build::plugin()?;
    let (key_id, secret) = stack.keys().primary.clone();
    let config = json!({
        "bridgeBaseUrl": stack.bridge_url(),
        "bridgeSecret": secret,
        "keyId": key_id,
        "timeoutMs": 60_000,
    });
    tokio::runtime::Runtime::new()?.block_on(async {
        let started = Instant::now();
        let mut host = PluginProcess::spawn(&plugin)?;
        let base = json!({"driverKey": DRIVER_KEY, "companyId": "demo", "environmentId": "demo-environment", "config": config});
        let step = |name: &str| announce(&format!("plugin: {name}"));

        step("initialize");
        let init = host.call("initialize", json!({"config": {}, "apiVersion": 1}), None, |_, _| {}).await?;
        let initialized_ms = started.elapsed().as_millis();
        println!("    answered in {initialized_ms} ms after spawn; methods: {}", init["supportedMethods"]);

        step("environmentValidateConfig");
        let validation = host.call("environmentValidateConfig", json!({"driverKey": DRIVER_KEY, "config": config}), None, |_, _| {}).await?;
        println!("    ok: {}, warnings: {}", validation["ok"], validation.get("warnings").unwrap_or(&json!([])));

        step("environmentProbe");
        let probe = host.call("environmentProbe", base.clone(), None, |_, _| {}).await?;
        println!("    {}", probe["summary"].as_str().unwrap_or_default());

        step("environmentAcquireLease");
        let mut params = base.clone();
        params["runId"] = json!(format!("demo-run-{}", std::process::id()));
        let lease = host.call("environmentAcquireLease", params, None, |_, _| {}).await?;
        println!("    lease {} with remoteCwd {}", lease["providerLeaseId"], lease["metadata"]["remoteCwd"]);
        let mut lease_config = config.clone();
        if let (Some(target), Some(metadata)) = (lease_config.as_object_mut(), lease["metadata"].as_object()) {
            target.extend(metadata.clone());
        }
        let mut lease_base = base.clone();
        lease_base["config"] = lease_config;
        lease_base["lease"] = lease.clone();

        step("environmentRealizeWorkspace");
        let mut params = lease_base.clone();
        params["workspace"] = json!({"remotePath": lease["metadata"]["remoteCwd"]});
        let realized = host.call("environmentRealizeWorkspace", params, None, |_, _| {}).await?;
        println!("    cwd {}", realized["cwd"]);

        step("environmentExecute (streamed; each line arrives as an execute.log notification)");
        let mut params = lease_base.clone();
        params["command"] = json!("sh");
        params["args"] = json!(["-c", "for i in 1 2 3 4 5; do echo \"step $i of 5 in $(pwd)\"; sleep 0.3; done; echo done >&2"]);
        let mut chunks = 0;
        let executed_at = Instant::now();
        let result = host
            .call("environmentExecute", params, Some("demo-invocation"), |stream, chunk| {
                chunks += 1;
                for line in chunk.lines() {
                    println!("    │ {stream}: {line}");
                }
            })
            .await?;
        let executed_ms = executed_at.elapsed().as_millis();
        println!("    exit code {}, {chunks} live chunks, full output {} bytes", result["exitCode"], result["stdout"].as_str().unwrap_or_default().len());

        step("environmentReleaseLease");
        let mut params = lease_base.clone();
        params["providerLeaseId"] = lease["providerLeaseId"].clone();
        params["cancelActiveWork"] = json!(true);
        let receipt = host.call("environmentReleaseLease", params, None, |_, _| {}).await?;
        println!("    receipt: {receipt}");

        step("shutdown");
        let status = host.shutdown().await?;
        println!("    plugin exited with {status}");
        println!(
            "\nsummary: the plugin answered initialize {initialized_ms} ms after spawn, probed, leased {}, ran a streamed command ({chunks} chunks, {executed_ms} ms), and released it ({}); every bridge response was signature-checked.",
            lease["providerLeaseId"].as_str().unwrap_or_default(),
            receipt["state"].as_str().unwrap_or_default()
        );
        anyhow::Ok(())
    })?;
    drop(stack);
    Ok(())
}
