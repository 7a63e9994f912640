//! Plugin measurements: worker start-up through the package's shim, idle and busy memory, 64 MiB
//! streamed through the plugin as `execute.log` to a host loop of ours and into the real Paperclip
//! worker manager's `execute.log` sink, and execute round trips through that manager.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bridge_tests::harness::{LocalStack, conformance};
use paperclip_cloudflare_bridge::manifest::DRIVER_KEY;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::median;
use crate::command::announce;
use crate::plugin_host::PluginProcess;
use crate::tools::node_bin_dir;

/// Worker starts measured.
const STARTS: usize = 20;
/// Output streamed through the plugin.
const STREAM_BYTES: usize = 64 * 1024 * 1024;
/// Streams measured through the plugin; the median is reported.
const STREAM_RUNS: usize = 3;
/// Execute round trips through the worker manager.
const MANAGER_ROUND_TRIPS: usize = 120;

/// Every plugin measurement, as JSON.
pub async fn measure(stack: &LocalStack, package: &Path, binary: &Path) -> Result<Value> {
    let (key_id, secret) = stack.keys().primary.clone();
    let config = json!({"bridgeBaseUrl": stack.bridge_url(), "bridgeSecret": secret, "keyId": key_id, "timeoutMs": 120_000});

    announce(&format!(
        "bench: plugin worker start through dist/worker.js ({STARTS} runs)"
    ));
    let mut starts = Vec::new();
    let mut idle = Vec::new();
    let mut node_alone = Vec::new();
    for _ in 0..STARTS {
        let (start_ms, idle_rss) = start_once(package).await?;
        starts.push(start_ms);
        idle.push(idle_rss);
        node_alone.push(node_start_ms().await?);
    }

    announce(&format!(
        "bench: 64 MiB streamed through the plugin as execute.log ({STREAM_RUNS} runs)"
    ));
    let streaming = stream_through_plugin(binary, &config).await?;

    announce(&format!(
        "bench: execute round trips ({MANAGER_ROUND_TRIPS} runs) and 64 MiB into execute.log \
         through @paperclipai/server's worker manager"
    ));
    let manager = manager_measurements(stack, package).await?;

    Ok(json!({
        "forkToInitializeMs": median(&mut starts),
        "nodeAloneStartMs": median(&mut node_alone),
        "idleRssMiB": median(&mut idle) / 1_048_576.0,
        "stream": streaming,
        "managerExecuteRoundTripMs": manager["executeRoundTripMs"],
        "executeLogStream": manager["executeLogStream"],
    }))
}

/// Forks the shim as the host does (Node, minimal environment), times the `initialize` answer,
/// reads the worker's resident memory after a moment of idleness, and shuts it down.
async fn start_once(package: &Path) -> Result<(f64, f64)> {
    let started = Instant::now();
    let mut child = Command::new(node_bin_dir().join("node"))
        .arg(package.join("dist/worker.js"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NODE_ENV", "production")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}\n")
        .await?;
    let answer = lines.next_line().await?.context("no initialize answer")?;
    let start_ms = started.elapsed().as_secs_f64() * 1000.0;
    if !answer.contains("\"ok\":true") {
        bail!("initialize failed: {answer}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = child.id().map_or(0, |pid| memory_of(pid, "VmRSS:"));
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"shutdown\",\"params\":{}}\n")
        .await?;
    let status = child.wait().await?;
    if !status.success() {
        bail!("the worker exited with {status} after shutdown");
    }
    Ok((start_ms, rss as f64))
}

/// How long Node takes to start and exit doing nothing (`node -e 0`): the floor under the
/// worker's start, which the host forks as a Node program.
async fn node_start_ms() -> Result<f64> {
    let started = Instant::now();
    let status = Command::new(node_bin_dir().join("node"))
        .args(["-e", "0"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .status()
        .await?;
    if !status.success() {
        bail!("`node -e 0` failed: {status}");
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// Acquires a lease through the plugin and streams 64 MiB as `execute.log` notifications.
async fn stream_through_plugin(binary: &Path, config: &Value) -> Result<Value> {
    let mut host = PluginProcess::spawn(binary)?;
    let pid = host.pid().context("plugin pid")?;
    host.call("initialize", json!({}), None, |_, _| {}).await?;
    let base = json!({"driverKey": DRIVER_KEY, "companyId": "bench", "environmentId": "bench-plugin", "config": config});
    let mut params = base.clone();
    params["runId"] = json!("bench-plugin-run");
    let lease = host
        .call("environmentAcquireLease", params, None, |_, _| {})
        .await?;
    let mut params = base.clone();
    params["lease"] = lease.clone();
    params["command"] = json!("sh");
    params["args"] = json!([
        "-c",
        format!("yes the-quick-brown-fox-jumps-over-the-lazy-dog | head -c {STREAM_BYTES}")
    ]);
    params["bypassSession"] = json!(true);
    let mut rates = Vec::with_capacity(STREAM_RUNS);
    let mut first_chunks = Vec::with_capacity(STREAM_RUNS);
    for _ in 0..STREAM_RUNS {
        let mut streamed = 0usize;
        let mut first_chunk = None;
        let started = Instant::now();
        let result = host
            .call(
                "environmentExecute",
                params.clone(),
                Some("bench-invocation"),
                |_, chunk| {
                    first_chunk.get_or_insert_with(|| started.elapsed());
                    streamed += chunk.len();
                },
            )
            .await?;
        let elapsed = started.elapsed();
        let returned = result["stdout"].as_str().map_or(0, str::len);
        if streamed != STREAM_BYTES || returned != STREAM_BYTES {
            bail!("streamed {streamed} and returned {returned} bytes of {STREAM_BYTES}");
        }
        rates.push(STREAM_BYTES as f64 / 1_048_576.0 / elapsed.as_secs_f64());
        first_chunks.push(first_chunk.map_or(f64::NAN, |at| at.as_secs_f64() * 1000.0));
    }
    let peak = memory_of(pid, "VmHWM:");
    let cpu_seconds = cpu_seconds_of(pid) / STREAM_RUNS as f64;
    let mut params = base;
    params["providerLeaseId"] = lease["providerLeaseId"].clone();
    host.call("environmentDestroyLease", params, None, |_, _| {})
        .await?;
    host.shutdown().await?;
    Ok(json!({
        "bytes": STREAM_BYTES,
        "runs": STREAM_RUNS,
        "mibPerSecond": median(&mut rates),
        "firstChunkMs": median(&mut first_chunks),
        "pluginPeakRssMiB": peak as f64 / 1_048_576.0,
        "pluginCpuSecondsPerRun": cpu_seconds,
        "peakOverOutput": peak as f64 / STREAM_BYTES as f64,
    }))
}

/// Runs the conformance script with its measurements enabled and returns them.
async fn manager_measurements(stack: &LocalStack, package: &Path) -> Result<Value> {
    let mut command = conformance::command(stack, package, MANAGER_ROUND_TRIPS)?;
    command
        .env("PAPERCLIP_LOG_LEVEL", "error")
        .env("STREAM_BYTES", STREAM_BYTES.to_string());
    let output = Command::from(command).output().await?;
    let text = String::from_utf8_lossy(&output.stdout);
    let summary = text
        .lines()
        .find_map(|line| line.strip_prefix("CONFORMANCE_RESULT "))
        .context("the conformance script printed no result")?;
    let summary: Value = serde_json::from_str(summary)?;
    if !output.status.success() {
        bail!("the conformance script failed: {summary}");
    }
    Ok(summary["measurements"].clone())
}

/// A memory figure (`VmRSS:`, `VmHWM:`) of process `pid` in bytes.
fn memory_of(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// CPU time (user + system) process `pid` has used so far, in seconds.
fn cpu_seconds_of(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<u64> = stat
                .rsplit_once(") ")?
                .1
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|field| field.parse().ok())
                .collect();
            Some(fields.iter().sum::<u64>())
        })
        .unwrap_or(0);
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}
