//! `cargo xtask dev` and `cargo xtask demo`: the local stack for people.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bridge_tests::harness::plugin_package::assemble;
use bridge_tests::harness::{LocalStack, StackOptions};
use bridge_tests::paperclip::{Deployment, FakeAgent};
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

/// The main job: the local stack and a real Paperclip server with the plugin installed from its
/// package, as an operator sets them up, running one heartbeat of an agent in a sandbox behind the
/// bridge; with `keep`, everything stays up afterwards until Ctrl-C, to look at the run.
pub fn demo(keep: bool) -> Result<()> {
    build::worker()?;
    let local_sandbox = build::local_sandbox()?;
    let package = assemble(
        &repo_root().join("target/local-stack/demo-package"),
        &build::plugin()?,
    )?;
    announce("starting the local stack and a Paperclip server, installing the plugin");
    let runtime = tokio::runtime::Runtime::new()?;
    let started = Instant::now();
    let deployment = Deployment::start(&local_sandbox, &package, &runtime)?;
    println!(
        "    ready in {:.1} s: board {}, bridge {}, plugin {} {}",
        started.elapsed().as_secs_f64(),
        deployment.server().url(),
        deployment.stack().bridge_url(),
        deployment.plugin().plugin_key,
        deployment.plugin().status
    );
    runtime.block_on(demo_run(&deployment))?;
    if keep {
        println!("\nEverything stays up; press Ctrl-C to stop.");
        runtime.block_on(wait_for_termination())?;
    } else {
        println!("  (the server stops now; `cargo xtask demo --keep` keeps it up to open the run)");
    }
    announce("stopping the server and the local stack");
    let leaked = deployment.stop();
    if !leaked.is_empty() {
        bail!("sandbox processes outlived the stack: {leaked:?}");
    }
    Ok(())
}

/// One environment, one agent, one heartbeat, printed as it happens.
async fn demo_run(deployment: &Deployment) -> Result<()> {
    announce("creating a sandbox environment on the bridge and probing it");
    let environment = deployment
        .create_environment("Cloudflare bridge (local stack)", &json!({}))
        .await?;
    let probe = deployment
        .api()
        .probe_environment(deployment.company(), &environment)
        .await?;
    println!("    {}", probe.summary);
    if !probe.ok {
        bail!("the environment's probe failed: {:?}", probe.details);
    }
    announce("running one heartbeat of a Codex agent (a fake Codex CLI) in the sandbox");
    let agent = deployment
        .create_agent(
            "Demo agent",
            &environment,
            &FakeAgent {
                message: Some("Hello from a Cloudflare sandbox".into()),
                work_seconds: 2,
                ..FakeAgent::default()
            },
        )
        .await?;
    let requests_before = deployment.bridge_requests().len();
    let started = Instant::now();
    let run_id = deployment.api().invoke_heartbeat(&agent).await?;
    let run = deployment
        .follow_run(&run_id, Duration::from_secs(300), |entry, _| {
            for line in entry.chunk.lines() {
                println!("    │ {}: {line}", entry.stream);
            }
        })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let requests = deployment.bridge_requests().len() - requests_before;
    println!(
        "\nsummary: heartbeat run {} {} in {seconds:.1} s (exit code {}), {requests} bridge requests\n  \
         agent said: {}\n  \
         the run:    {}",
        run.id,
        run.status,
        run.exit_code
            .map_or_else(|| "none".to_owned(), |code| code.to_string()),
        run.summary().unwrap_or("(nothing)"),
        deployment.run_url(&agent, &run.id)
    );
    if run.status != "succeeded" {
        bail!(
            "the heartbeat run ended {}: {}",
            run.status,
            run.error.unwrap_or_default()
        );
    }
    Ok(())
}

/// The plugin alone (`demo --no-host`): the local stack, driven through the native plugin
/// exactly as the Paperclip host drives a provider for one run.
pub fn demo_plugin_only() -> Result<()> {
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
