//! `cargo xtask bench`: the performance numbers of DESIGN §10 that the local stack can measure,
//! as medians and percentiles over many runs, printed as a table of targets (measured value,
//! target, pass or fail), then every other measurement, and written as JSON.

mod checks;
pub mod compare;
mod exec;
mod heartbeat;
mod plugin;
mod sync;

use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};
use bridge_tests::harness::{LocalStack, StackOptions};
use serde_json::json;

use crate::build;
use crate::command::announce;
use crate::tools::repo_root;

/// Runs the bench in an optimised build of this program: its clients read and verify every
/// streamed byte, and an unoptimised client measured itself (40 MiB/s where the bridge streams
/// 65-85 MiB/s).
pub fn run_optimised(args: &[String]) -> Result<()> {
    crate::command::execute(
        std::process::Command::new("cargo")
            .current_dir(repo_root())
            .args([
                "run",
                "--quiet",
                "--profile",
                "tooling",
                "--package",
                "xtask",
                "--",
            ])
            .args(args),
    )
}

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
    let rows: Vec<_> = sync_rows(&report)
        .into_iter()
        .map(|(label, value)| (label.to_owned(), value))
        .collect();
    print_rows(&rows);
    let out = repo_root().join("target/bench/sync.json");
    fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}

/// Runs only the exec measurements (`cargo xtask bench exec`): round trips, Durable Object calls,
/// the breakdown and streaming, with their targets, written to `target/bench/exec.json`.
pub fn run_exec() -> Result<()> {
    let Built {
        local_sandbox,
        work_dir,
        ..
    } = prepare()?;
    announce("bench: starting the local stack (optimised local-sandbox)");
    let stack = LocalStack::start(&StackOptions::new(&local_sandbox, &work_dir))?;
    let client = stack.client()?;
    let mut report = tokio::runtime::Runtime::new()?.block_on(exec::measure(&stack, &client))?;
    drop(stack);
    let mut checks = checks::of(&report);
    checks.retain(checks::Check::is_measured);
    report["targets"] = checks::json(&checks);
    checks::print(&checks);
    print_table(&report);
    let out = repo_root().join("target/bench/exec.json");
    fs::create_dir_all(out.parent().context("bench dir")?)?;
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
        ("fallback / native sync-in", &sync["fallbackOverNative"]),
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
            "100 MiB via environmentSyncIn, median of 3 (ms)",
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
    let exec = runtime.block_on(exec::measure(&stack, &client))?;
    let plugin = runtime.block_on(plugin::measure(&stack, &package, &plugin_binary))?;
    drop(stack);
    let heartbeat = heartbeat::measure(&local_sandbox, &package, &runtime)?;
    let sync = sync::measure(&local_sandbox, &package, &work_dir, &runtime)?;
    let wasm = fs::read(repo_root().join("bridge-worker/build/index_bg.wasm"))?;
    let mut report = json!({
        "roundTrip": exec["roundTrip"],
        "breakdown": exec["breakdown"],
        "streaming": exec["streaming"],
        "download": exec["download"],
        "upload": exec["upload"],
        "plugin": plugin,
        "heartbeat": heartbeat,
        "sync": sync,
        "worker": { "wasmBytes": wasm.len(), "wasmGzipBytes": build::gzipped_len(&wasm)? },
    });
    let checks = checks::of(&report);
    report["targets"] = checks::json(&checks);
    checks::print(&checks);
    print_table(&report);
    let out = repo_root().join("target/bench/bench.json");
    fs::create_dir_all(out.parent().context("bench dir")?)?;
    fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
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

/// Prints every measurement besides the targets.
fn print_table(report: &serde_json::Value) {
    let at = |pointer: &str| report.pointer(pointer).unwrap_or(&serde_json::Value::Null);
    let mut rows = Vec::new();
    for (series, label) in [
        ("agent~1socket", "agent shape at workerd"),
        ("control~1socket", "control shape at workerd"),
        ("agent~1proxy", "agent shape through wrangler's proxy"),
        ("control~1proxy", "control shape through wrangler's proxy"),
        ("direct", "direct local-sandbox"),
        (
            "agent~1script",
            "the agent shape's bridge script, direct local-sandbox",
        ),
        (
            "control~1script",
            "the control shape's bridge script, direct local-sandbox",
        ),
        ("healthz~1socket", "GET /healthz at workerd"),
        ("healthz~1proxy", "GET /healthz through wrangler's proxy"),
    ] {
        for quantile in ["p50", "p99"] {
            rows.push((
                format!("exec `true`, {label}, {quantile} (ms)"),
                at(&format!("/roundTrip/{series}/{quantile}")),
            ));
        }
    }
    for (series, label) in [
        ("agent~1proxy", "agent shape"),
        ("control~1proxy", "control shape"),
    ] {
        for quantile in ["P50", "P99"] {
            rows.push((
                format!("overhead through wrangler's proxy, {label}, {quantile} (ms)"),
                at(&format!("/roundTrip/{series}/overhead{quantile}Ms")),
            ));
        }
    }
    for (series, label) in [
        ("agent~1socket", "agent shape"),
        ("control~1socket", "control shape"),
    ] {
        rows.push((
            format!("at workerd over the direct call of its own script, {label}, P50 (ms)"),
            at(&format!("/roundTrip/{series}/overScriptP50Ms")),
        ));
    }
    for (object, label) in [
        ("leaseObject", "lease object"),
        ("replayGuard", "replay guard"),
        ("sandbox", "Sandbox"),
    ] {
        rows.push((
            format!("Durable Object calls per exec: {label}"),
            at(&format!("/roundTrip/durableObjectCallsPerExec/{object}")),
        ));
    }
    for shape in ["agent", "control"] {
        for (part, label) in [
            ("clientMs", "whole round trip"),
            (
                "outsideWorkerMs",
                "outside the Worker (HTTP, workerd's entry)",
            ),
            (
                "workerMs",
                "Worker: auth, decoding, signing, the object call",
            ),
            (
                "leaseObjectMs",
                "lease object: nonce, journal, script, output",
            ),
            ("sandboxSdkMs", "Sandbox SDK: RPC and its own work"),
            (
                "containerUntilStreamMs",
                "container, until its stream starts",
            ),
        ] {
            rows.push((
                format!("{shape} exec, {label} (ms, mean)"),
                at(&format!("/breakdown/{shape}/{part}")),
            ));
        }
    }
    for (pointer, label) in [
        ("/streaming/firstChunkMs", "64 MiB stream, first chunk (ms)"),
        (
            "/streaming/firstRunMibPerSecond",
            "64 MiB stream, first run (MiB/s)",
        ),
        (
            "/download/mibPerSecond",
            "64 MiB file downloaded through the bridge (MiB/s)",
        ),
        (
            "/upload/mibPerSecond",
            "64 MiB file uploaded through the bridge (MiB/s)",
        ),
        (
            "/streaming/workerdRssIdleMiB",
            "workerd RSS before the stream (MiB)",
        ),
        ("/worker/wasmBytes", "Worker wasm (bytes)"),
        ("/worker/wasmGzipBytes", "Worker wasm gzipped (bytes)"),
        (
            "/plugin/nodeAloneStartMs",
            "Node alone, `node -e 0` (ms; the floor under the worker's start)",
        ),
        (
            "/plugin/stream/mibPerSecond",
            "64 MiB via the plugin to its own host loop (MiB/s)",
        ),
        (
            "/plugin/managerExecuteRoundTripMs/p50",
            "execute via the worker manager, p50 (ms)",
        ),
        (
            "/plugin/managerExecuteRoundTripMs/p99",
            "execute via the worker manager, p99 (ms)",
        ),
        (
            "/heartbeat/succeeded",
            "heartbeat runs succeeded (of 20 in a row)",
        ),
        ("/heartbeat/hung", "heartbeat runs hung"),
        ("/heartbeat/wallMs/p50", "heartbeat run wall time, p50 (ms)"),
        ("/heartbeat/wallMs/max", "heartbeat run wall time, max (ms)"),
        (
            "/heartbeat/bridgeRequestsPerRun",
            "bridge requests per heartbeat run, median",
        ),
    ] {
        rows.push((label.to_owned(), at(pointer)));
    }
    rows.extend(
        sync_rows(report)
            .into_iter()
            .map(|(label, value)| (label.to_owned(), value)),
    );
    print_rows(&rows);
}

/// Prints `rows` as the measurement table.
fn print_rows(rows: &[(String, &serde_json::Value)]) {
    println!("\n{:<66} {:>12}", "measurement", "value");
    for (name, value) in rows {
        let shown = value
            .as_f64()
            .map_or_else(|| value.to_string(), |number| format!("{number:.2}"));
        println!("{name:<66} {shown:>12}");
    }
}
