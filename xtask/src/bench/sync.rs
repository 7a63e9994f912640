//! Native file sync: the same 50 MiB git workspace into a sandbox through the real Paperclip
//! server with native sync and with the host's own fallback (native sync turned off with
//! `nativeSync: false`, which makes leases say `nativeFileSyncUnsupported`), and 100 MiB through
//! the plugin's `environmentSyncIn` code directly.
//!
//! A run's sync-in time is read from the host's own run log: from its "Syncing workspace and
//! CODEX_HOME" line to its "Starting sandbox callback bridge" line, both timestamped by the host,
//! so it covers the upload and the extraction of workspace and home in either mode.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bridge_protocol::api::{AcquireLeaseRequest, LeaseResponse, ReleaseLeaseRequest};
use bridge_protocol::routes::Route;
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
        let direct = direct(&deployment, work_dir).await?;
        Ok::<_, anyhow::Error>((native, fallback, direct))
    });
    let leaked = deployment.stop();
    if !leaked.is_empty() {
        bail!("sandbox processes outlived the bench: {leaked:?}");
    }
    let (native, fallback, direct) = report?;
    let ratio = fallback / native;
    println!(
        "    sync-in median: native {native:.0} ms, fallback {fallback:.0} ms ({ratio:.1}x); 100 MiB direct {direct:.0} ms"
    );
    Ok(json!({
        "workspaceBytes": FILES * FILE_BYTES,
        "workspaceFiles": FILES,
        "runs": RUNS,
        "nativeSyncInMs": native,
        "fallbackSyncInMs": fallback,
        "fallbackOverNative": ratio,
        "direct100MiBMs": direct,
    }))
}

/// The median sync-in time of [`RUNS`] runs on an environment with `extra` config.
async fn mode(deployment: &Deployment, repo: &Path, name: &str, extra: Value) -> Result<f64> {
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
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let run_id = api.invoke_heartbeat_on_issue(&agent, &issue).await?;
        let (mut starts, mut ends) = (None, None);
        let run = deployment
            .follow_run(&run_id, RUN_LIMIT, |entry, _| {
                if entry.chunk.contains(SYNC_STARTS) {
                    starts = starts.or(entry.unix_millis());
                }
                if entry.chunk.contains(SYNC_ENDS) {
                    ends = ends.or(entry.unix_millis());
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
        println!("    {name}: sync-in {elapsed:.0} ms");
        times.push(elapsed);
    }
    Ok(median(&mut times))
}

/// The median time of [`RUNS`] 100 MiB uploads through the plugin's sync code, into one lease.
async fn direct(deployment: &Deployment, work_dir: &Path) -> Result<f64> {
    let file = work_dir.join("sync-100mib.bin");
    std::fs::write(&file, noise(DIRECT_BYTES, 7))?;
    let bridge = deployment.bridge_client()?;
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
    let config = ProviderConfig::from_value(&deployment.bridge_config(&json!({})))?;
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
