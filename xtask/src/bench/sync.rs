//! Native file sync: the same 50 MiB git workspace into a sandbox through the real Paperclip
//! server with native sync and with the host's own fallback (native sync turned off with
//! `nativeSync: false`, which makes leases say `nativeFileSyncUnsupported`), and 100 MiB through
//! the plugin's `environmentSyncIn` code directly on a local stack of its own.
//!
//! A run's sync-in time is read from the host's own run log: from its "Syncing workspace and
//! CODEX_HOME" line to its "Starting sandbox callback bridge" line, both timestamped by the host,
//! so it covers the upload and the extraction of workspace and home in either mode.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bridge_protocol::api::{AcquireLeaseRequest, LeaseResponse, ReleaseLeaseRequest};
use bridge_protocol::routes::Route;
use bridge_tests::harness::{LocalStack, StackOptions};
use bridge_tests::paperclip::workspace::{make_git_workspace, noise};
use bridge_tests::paperclip::{Deployment, FakeAgent};
use paperclip_cloudflare_bridge::config::ProviderConfig;
use paperclip_cloudflare_bridge::protocol::{SyncFileMapping, SyncKind, SyncOperation};
use paperclip_cloudflare_bridge::sync::Sync;
use serde_json::{Value, json};

use super::{median, ms};
use crate::command::announce;

/// Runs per mode; the median is reported.
const RUNS: usize = 3;
/// The workspace: 2,000 files of 26 KiB (50.8 MiB).
const FILES: usize = 2_000;
const FILE_BYTES: usize = 26 * 1024;
/// The direct measurement.
const DIRECT_BYTES: usize = 100 * 1024 * 1024;
/// A run still going after this long is a failure of the bench.
const RUN_LIMIT: Duration = Duration::from_secs(600);
const SYNC_STARTS: &str = "Syncing workspace and CODEX_HOME to sandbox environment";
const SYNC_ENDS: &str = "Starting sandbox callback bridge";

/// Starts a deployment and measures both modes, then the direct 100 MiB upload.
pub fn measure(
    local_sandbox: &Path,
    package: &Path,
    work_dir: &Path,
    runtime: &tokio::runtime::Runtime,
) -> Result<Value> {
    announce(&format!(
        "bench: a {:.0} MiB git workspace into a sandbox through a real Paperclip server, native sync vs the host's fallback ({RUNS} runs each)",
        (FILES * FILE_BYTES) as f64 / 1048576.0
    ));
    let repo = work_dir.join("sync-workspace");
    if repo.exists() {
        std::fs::remove_dir_all(&repo)?;
    }
    std::fs::create_dir_all(&repo)?;
    make_git_workspace(&repo, FILES, FILE_BYTES).context("the bench workspace")?;
    let direct = {
        let stack = LocalStack::start(&StackOptions::new(
            local_sandbox,
            work_dir.join("sync-direct"),
        ))?;
        runtime.block_on(direct(&stack, work_dir))?
    };
    let deployment = Deployment::start(local_sandbox, package, runtime)?;
    let report = runtime.block_on(async {
        let native = mode(&deployment, &repo, "native", json!({})).await?;
        let fallback = mode(
            &deployment,
            &repo,
            "fallback",
            json!({ "nativeSync": false }),
        )
        .await?;
        Ok::<_, anyhow::Error>((native, fallback))
    });
    let leaked = deployment.stop();
    if !leaked.is_empty() {
        bail!("sandbox processes outlived the bench: {leaked:?}");
    }
    let (native, fallback) = report?;
    let ratio = fallback.phase_ms / native.phase_ms;
    let bridge_ratio = fallback.bridge_ms / native.bridge_ms;
    println!(
        "    sync-in median: native {:.0} ms, fallback {:.0} ms ({ratio:.1}x); bridge time native {:.0} ms, fallback {:.0} ms ({bridge_ratio:.1}x); 100 MiB direct {direct:.0} ms",
        native.phase_ms, fallback.phase_ms, native.bridge_ms, fallback.bridge_ms
    );
    Ok(json!({
        "workspaceBytes": FILES * FILE_BYTES,
        "workspaceFiles": FILES,
        "runs": RUNS,
        "nativeSyncInMs": native.phase_ms,
        "fallbackSyncInMs": fallback.phase_ms,
        "fallbackOverNative": ratio,
        "nativeBridgeMs": native.bridge_ms,
        "fallbackBridgeMs": fallback.bridge_ms,
        "fallbackOverNativeBridge": bridge_ratio,
        "direct100MiBMs": direct,
    }))
}

/// One mode's medians: the host's whole sync-in phase, and the bridge's time serving it.
struct ModeTimes {
    phase_ms: f64,
    bridge_ms: f64,
}

/// The medians of [`RUNS`] runs on an environment with `extra` config. The bridge's time is the
/// sum of the durations wrangler logs for the requests served between the two markers (the
/// fallback runs its two uploads at once, so for it the sum may exceed the wall time).
async fn mode(deployment: &Deployment, repo: &Path, name: &str, extra: Value) -> Result<ModeTimes> {
    let api = deployment.api();
    let company = deployment.company();
    let environment = deployment
        .create_environment(&format!("sync-{name}"), &extra)
        .await?;
    let project = api
        .create_project_in(
            company,
            &format!("Sync {name}"),
            &repo.display().to_string(),
        )
        .await?;
    let agent = deployment
        .create_agent(&format!("Sync {name}"), &environment, &FakeAgent::default())
        .await?;
    let issue = api
        .create_issue(company, &project, &agent, &format!("Sync {name}"))
        .await?;
    let (mut phases, mut bridge_times) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        let run_id = api.invoke_heartbeat_on_issue(&agent, &issue).await?;
        let (mut starts, mut ends) = (None, None);
        let (mut first_request, mut last_request) = (None, None);
        let run = deployment
            .follow_run(&run_id, RUN_LIMIT, |entry, _| {
                if entry.chunk.contains(SYNC_STARTS) {
                    starts = starts.or(entry.unix_millis());
                    first_request = first_request.or(Some(deployment.bridge_requests().len()));
                }
                if entry.chunk.contains(SYNC_ENDS) {
                    ends = ends.or(entry.unix_millis());
                    last_request = last_request.or(Some(deployment.bridge_requests().len()));
                }
            })
            .await?;
        deployment
            .settled_lease(&environment, &run_id, RUN_LIMIT)
            .await?;
        if run.status != "succeeded" {
            bail!("a {name} run failed: {:?}", run.error);
        }
        let (Some(starts), Some(ends)) = (starts, ends) else {
            bail!("the {name} run's log lacks the sync markers");
        };
        let elapsed = ends.saturating_sub(starts) as f64;
        let served = deployment.bridge_request_times();
        let window = &served[first_request.unwrap_or(0)..last_request.unwrap_or(served.len())];
        let bridge_ms: u64 = window.iter().map(|(_, millis)| millis).sum();
        println!(
            "    {name}: sync-in {elapsed:.0} ms, of which the bridge served {} requests in {bridge_ms} ms",
            window.len()
        );
        phases.push(elapsed);
        bridge_times.push(bridge_ms as f64);
    }
    Ok(ModeTimes {
        phase_ms: median(&mut phases),
        bridge_ms: median(&mut bridge_times),
    })
}

/// The median time of [`RUNS`] 100 MiB uploads through the plugin's sync code into one lease of
/// `stack` (a local stack of its own, so nothing else competes for the two cores).
async fn direct(stack: &LocalStack, work_dir: &Path) -> Result<f64> {
    let file = work_dir.join("sync-100mib.bin");
    std::fs::write(&file, noise(DIRECT_BYTES, 7))?;
    let bridge = stack.client()?;
    let lease: LeaseResponse = bridge
        .post(
            Route::AcquireLease,
            &AcquireLeaseRequest {
                environment_id: "sync-direct".into(),
                run_id: "sync-direct".into(),
                ..AcquireLeaseRequest::default()
            },
        )
        .await?;
    let (key_id, secret) = &stack.keys().primary;
    let config = ProviderConfig::from_value(&json!({
        "bridgeBaseUrl": stack.bridge_url(),
        "bridgeSecret": secret,
        "keyId": key_id,
    }))?;
    let client = paperclip_cloudflare_bridge::client::bridge_client(
        bridge_tests::http_client(),
        &config.bridge_base_url,
        config.key_id.clone(),
        config.secret_key()?,
    );
    let sync = Sync {
        client: &client,
        config: &config,
        lease_id: &lease.provider_lease_id,
    };
    let operation = SyncOperation {
        operation_id: "bench".into(),
        files: vec![SyncFileMapping {
            source_path: file.display().to_string(),
            target_path: "/workspace/bench/sync-100mib.bin".into(),
            kind: SyncKind::File,
            mode: None,
            exclude: Vec::new(),
            follow_symlinks: false,
        }],
        post_upload_commands: Vec::new(),
    };
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let result = sync.sync_in(std::slice::from_ref(&operation)).await?;
        let elapsed = ms(started.elapsed());
        if result.operations[0].bytes_transferred != DIRECT_BYTES as u64 {
            bail!("the direct upload moved {result:?}");
        }
        println!("    100 MiB through environmentSyncIn: {elapsed:.0} ms");
        times.push(elapsed);
    }
    let _: bridge_protocol::api::TerminationReceipt = bridge
        .post(
            Route::ReleaseLease,
            &ReleaseLeaseRequest {
                provider_lease_id: lease.provider_lease_id.clone(),
                cancel_active_work: false,
                destroy: true,
            },
        )
        .await?;
    std::fs::remove_file(&file)?;
    Ok(median(&mut times))
}
