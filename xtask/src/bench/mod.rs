//! `cargo xtask bench`: the performance numbers of DESIGN §10 that the local stack can measure,
//! as medians and percentiles over many runs, printed as a table and written as JSON.

mod heartbeat;
mod plugin;
mod sync;

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bridge_protocol::api::{
    AcquireLeaseRequest, ExecRequest, ExecResult, LeaseResponse, SessionMode,
};
use bridge_protocol::routes::Route;
use bridge_tests::client::{BridgeClient, StreamEvent, stream_to_end};
use bridge_tests::harness::{LocalStack, StackOptions};
use bridge_tests::local_sandbox::SESSIONLESS;
use serde_json::json;

use crate::build;
use crate::command::announce;
use crate::tools::repo_root;

/// Round trips measured per variant.
const ROUND_TRIPS: usize = 300;
/// Round trips run first and thrown away (isolate and JIT warm-up).
const WARM_UP: usize = 30;
/// Size of the streaming measurement.
const STREAM_BYTES: usize = 100 * 1024 * 1024;
/// Streams measured; the median is reported (the first run also pays for warming workerd up).
const STREAM_RUNS: usize = 5;

/// Runs only the native-sync measurement (`cargo xtask bench sync`), printed and written to
/// `target/bench/sync.json`.
pub fn run_sync() -> Result<()> {
    let Built {
        local_sandbox,
        package,
        work_dir,
        ..
    } = prepare()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = json!({ "sync": sync::measure(&local_sandbox, &package, &work_dir, &runtime)? });
    print_rows(&sync_rows(&report));
    let out = repo_root().join("target/bench/sync.json");
    fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}

/// The table rows of the sync measurement.
fn sync_rows(report: &serde_json::Value) -> Vec<(&'static str, &serde_json::Value)> {
    let sync = &report["sync"];
    vec![
        (
            "50 MiB workspace sync-in, native, median of 3 (ms)",
            &sync["nativeSyncInMs"],
        ),
        (
            "50 MiB workspace sync-in, host fallback, median of 3 (ms)",
            &sync["fallbackSyncInMs"],
        ),
        (
            "fallback / native sync-in (target >= 10)",
            &sync["fallbackOverNative"],
        ),
        (
            "bridge time serving sync-in, native, median (ms)",
            &sync["nativeBridgeMs"],
        ),
        (
            "bridge time serving sync-in, host fallback, median (ms)",
            &sync["fallbackBridgeMs"],
        ),
        (
            "fallback / native bridge time",
            &sync["fallbackOverNativeBridge"],
        ),
        (
            "100 MiB via environmentSyncIn, median of 3 (ms, target <= 3000)",
            &sync["direct100MiBMs"],
        ),
    ]
}

/// The optimised binaries and package every measurement uses, and an empty work directory.
struct Built {
    local_sandbox: std::path::PathBuf,
    plugin_binary: std::path::PathBuf,
    package: std::path::PathBuf,
    work_dir: std::path::PathBuf,
}

fn prepare() -> Result<Built> {
    build::worker()?;
    let local_sandbox = build::local_sandbox_optimised()?;
    let plugin_binary = build::plugin_optimised()?;
    let package = bridge_tests::harness::plugin_package::assemble(
        &repo_root().join("target/bench/package"),
        &plugin_binary,
    )?;
    let work_dir = repo_root().join("target/local-stack/bench");
    if work_dir.exists() {
        fs::remove_dir_all(&work_dir)?;
    }
    fs::create_dir_all(&work_dir)?;
    Ok(Built {
        local_sandbox,
        plugin_binary,
        package,
        work_dir,
    })
}

/// Runs every measurement.
pub fn run() -> Result<()> {
    let Built {
        local_sandbox,
        plugin_binary,
        package,
        work_dir,
    } = prepare()?;
    announce("bench: starting the local stack (optimised local-sandbox)");
    let stack = LocalStack::start(&StackOptions::new(&local_sandbox, &work_dir))?;
    let client = stack.client()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(measure(&stack, &client))?;
    let plugin = runtime.block_on(plugin::measure(&stack, &package, &plugin_binary))?;
    drop(stack);
    let heartbeat = heartbeat::measure(&local_sandbox, &package, &runtime)?;
    let sync = sync::measure(&local_sandbox, &package, &work_dir, &runtime)?;
    let wasm = fs::read(repo_root().join("bridge-worker/build/index_bg.wasm"))?;
    let report = json!({
        "roundTrip": report.round_trip,
        "streaming": report.streaming,
        "plugin": plugin,
        "heartbeat": heartbeat,
        "sync": sync,
        "worker": { "wasmBytes": wasm.len(), "wasmGzipBytes": build::gzipped_len(&wasm)? },
    });
    print_table(&report);
    let out = repo_root().join("target/bench/bench.json");
    fs::create_dir_all(out.parent().context("bench dir")?)?;
    fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}

struct Report {
    round_trip: serde_json::Value,
    streaming: serde_json::Value,
}

async fn measure(stack: &LocalStack, client: &BridgeClient) -> Result<Report> {
    let lease: LeaseResponse = client
        .post(
            Route::AcquireLease,
            &AcquireLeaseRequest {
                environment_id: "bench".into(),
                run_id: "bench-run".into(),
                ..AcquireLeaseRequest::default()
            },
        )
        .await?;
    let sandbox = sandbox_id(stack).await?;
    let direct_url = format!("{}/api/execute", stack.local_sandbox().base_url());
    let http = bridge_tests::http_client();
    let bridge_true = ExecRequest {
        provider_lease_id: lease.provider_lease_id.clone(),
        command: "true".into(),
        session: SessionMode::None,
        login_shell: Some(false),
        ..ExecRequest::default()
    };
    let direct_body = json!({ "command": "true", "sessionId": SESSIONLESS });

    announce(&format!(
        "bench: `true` round trips, bridge vs direct local-sandbox ({ROUND_TRIPS} each, interleaved)"
    ));
    let mut bridge = Vec::with_capacity(ROUND_TRIPS);
    let mut direct = Vec::with_capacity(ROUND_TRIPS);
    for index in 0..WARM_UP + ROUND_TRIPS {
        let started = Instant::now();
        let result: ExecResult = client.post(Route::Exec, &bridge_true).await?;
        let bridge_time = started.elapsed();
        if result.exit_code != Some(0) {
            bail!("`true` through the bridge failed: {result:?}");
        }
        let started = Instant::now();
        let response = http
            .post(&direct_url)
            .header("X-Sandbox-Id", &sandbox)
            .json(&direct_body)
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        let direct_time = started.elapsed();
        if !status.is_success() {
            bail!("direct local-sandbox call failed: {status}");
        }
        if index >= WARM_UP {
            bridge.push(bridge_time);
            direct.push(direct_time);
        }
    }
    let bridge = Stats::of(&mut bridge);
    let direct = Stats::of(&mut direct);
    let round_trip = json!({
        "runs": ROUND_TRIPS,
        "bridgeMs": bridge.json(),
        "directMs": direct.json(),
        "overheadP50Ms": ms(bridge.p50.saturating_sub(direct.p50)),
        "overheadP99Ms": ms(bridge.p99.saturating_sub(direct.p99)),
    });

    announce(&format!(
        "bench: 100 MiB of output through the bridge as an SSE stream ({STREAM_RUNS} runs)"
    ));
    let group = stack.bridge_process_group();
    let (stop_sampling, sampling) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(peak_rss_of_workerd(group, sampling));
    let baseline_rss = workerd_rss(group);
    let request = ExecRequest {
        provider_lease_id: lease.provider_lease_id.clone(),
        command: "sh".into(),
        args: vec![
            "-c".into(),
            format!("yes the-quick-brown-fox-jumps-over-the-lazy-dog | head -c {STREAM_BYTES}"),
        ],
        session: SessionMode::None,
        login_shell: Some(false),
        ..ExecRequest::default()
    };
    let mut rates = Vec::with_capacity(STREAM_RUNS);
    let mut first_chunks = Vec::with_capacity(STREAM_RUNS);
    for _ in 0..STREAM_RUNS {
        let mut received = 0usize;
        let started = Instant::now();
        let mut first_chunk = None;
        let end = stream_to_end(client, &request, |item| {
            if let StreamEvent::Output { data, .. } = item {
                first_chunk.get_or_insert_with(|| started.elapsed());
                received += data.len();
            }
        })
        .await?;
        let elapsed = started.elapsed();
        if !matches!(end, StreamEvent::Complete(ref result) if result.exit_code == Some(0))
            || received != STREAM_BYTES
        {
            bail!("the stream did not complete: {end:?}, {received} bytes");
        }
        rates.push(STREAM_BYTES as f64 / 1_048_576.0 / elapsed.as_secs_f64());
        first_chunks.push(first_chunk.map_or(f64::NAN, ms));
    }
    stop_sampling.send(()).ok();
    let peak_rss = sampler.await?;
    let first_run = rates[0];
    let streaming = json!({
        "bytes": STREAM_BYTES,
        "runs": STREAM_RUNS,
        "mibPerSecond": median(&mut rates),
        "firstRunMibPerSecond": first_run,
        "firstChunkMs": median(&mut first_chunks),
        "workerdRssBaselineMiB": baseline_rss as f64 / 1_048_576.0,
        "workerdRssPeakMiB": peak_rss as f64 / 1_048_576.0,
    });
    client
        .fetch::<serde_json::Value>(Route::DestroyLease(lease.provider_lease_id))
        .await?;
    Ok(Report {
        round_trip,
        streaming,
    })
}

/// The one sandbox local-sandbox has: the bench lease's.
async fn sandbox_id(stack: &LocalStack) -> Result<String> {
    let info: serde_json::Value = bridge_tests::http_client()
        .get(format!("{}/_local/info", stack.local_sandbox().base_url()))
        .send()
        .await?
        .json()
        .await?;
    info["sandboxes"][0]
        .as_str()
        .map(str::to_owned)
        .context("local-sandbox has no sandbox for the bench lease")
}

/// Median and tail of a set of durations.
struct Stats {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn of(samples: &mut [Duration]) -> Self {
        samples.sort();
        let at = |quantile: f64| {
            let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
            samples[index]
        };
        Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({ "p50": ms(self.p50), "p90": ms(self.p90), "p99": ms(self.p99), "max": ms(self.max) })
    }
}

/// The median of `samples` (sorted in place).
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Resident memory of the workerd processes of a process group, in bytes.
fn workerd_rss(group: u32) -> u64 {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let process_group: u32 = rest.split_whitespace().nth(2)?.parse().ok()?;
            (name == "workerd" && process_group == group).then_some(pid)
        })
        .filter_map(|pid| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum::<u64>()
        * 1024
}

/// Samples workerd's memory every 20 ms until told to stop; returns the peak.
async fn peak_rss_of_workerd(group: u32, mut stop: tokio::sync::oneshot::Receiver<()>) -> u64 {
    let mut peak = 0;
    loop {
        peak = peak.max(workerd_rss(group));
        tokio::select! {
            _ = &mut stop => return peak,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

fn print_table(report: &serde_json::Value) {
    let round_trip = &report["roundTrip"];
    let streaming = &report["streaming"];
    let mut rows = vec![
        (
            "exec `true` via bridge, p50 (ms)",
            &round_trip["bridgeMs"]["p50"],
        ),
        (
            "exec `true` via bridge, p99 (ms)",
            &round_trip["bridgeMs"]["p99"],
        ),
        (
            "exec `true` direct local-sandbox, p50 (ms)",
            &round_trip["directMs"]["p50"],
        ),
        (
            "exec `true` direct local-sandbox, p99 (ms)",
            &round_trip["directMs"]["p99"],
        ),
        (
            "bridge overhead p50 (ms, target <= 5)",
            &round_trip["overheadP50Ms"],
        ),
        (
            "bridge overhead p99 (ms, target <= 20)",
            &round_trip["overheadP99Ms"],
        ),
        (
            "100 MiB stream, median of 5 (MiB/s, target >= 100)",
            &streaming["mibPerSecond"],
        ),
        (
            "100 MiB stream, first chunk (ms)",
            &streaming["firstChunkMs"],
        ),
        (
            "workerd RSS before stream (MiB)",
            &streaming["workerdRssBaselineMiB"],
        ),
        (
            "workerd RSS peak during stream (MiB)",
            &streaming["workerdRssPeakMiB"],
        ),
        (
            "Worker wasm gzipped (bytes)",
            &report["worker"]["wasmGzipBytes"],
        ),
        (
            "plugin fork to initialize, median (ms, target <= 40)",
            &report["plugin"]["forkToInitializeMs"],
        ),
        (
            "plugin idle RSS, median (MiB, target <= 10)",
            &report["plugin"]["idleRssMiB"],
        ),
        (
            "64 MiB via the plugin, median of 3 (MiB/s, target >= 100)",
            &report["plugin"]["stream"]["mibPerSecond"],
        ),
        (
            "plugin peak RSS / output size (target <= 3)",
            &report["plugin"]["stream"]["peakOverOutput"],
        ),
        (
            "execute via the worker manager, p50 (ms)",
            &report["plugin"]["managerExecuteRoundTripMs"]["p50"],
        ),
        (
            "execute via the worker manager, p99 (ms)",
            &report["plugin"]["managerExecuteRoundTripMs"]["p99"],
        ),
        (
            "heartbeat runs succeeded (of 20 in a row)",
            &report["heartbeat"]["succeeded"],
        ),
        ("heartbeat runs hung", &report["heartbeat"]["hung"]),
        (
            "heartbeat run wall time, p50 (ms)",
            &report["heartbeat"]["wallMs"]["p50"],
        ),
        (
            "heartbeat run wall time, max (ms)",
            &report["heartbeat"]["wallMs"]["max"],
        ),
        (
            "bridge requests per heartbeat run, median",
            &report["heartbeat"]["bridgeRequestsPerRun"],
        ),
    ];
    rows.extend(sync_rows(report));
    print_rows(&rows);
}

/// Prints `rows` as the measurement table.
fn print_rows(rows: &[(&str, &serde_json::Value)]) {
    println!("\n{:<66} {:>12}", "measurement", "value");
    for (name, value) in rows {
        let shown = value
            .as_f64()
            .map_or_else(|| value.to_string(), |number| format!("{number:.2}"));
        println!("{name:<66} {shown:>12}");
    }
}
