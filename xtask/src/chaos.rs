//! `cargo xtask chaos`: the fault suite at full scale, one case at a time, with a summary of the
//! numbers each case measured (written to `target/chaos/chaos.json`).
//!
//! The cases themselves are ordinary tests (`tests/tests/chaos.rs` for the bridge,
//! `plugin/tests/misbehaving_bridge.rs` for the plugin), which `cargo xtask test` runs scaled
//! down. Here they run at full scale (a 1 GiB write after a disconnect, 64 leases × 8
//! concurrent commands for 60 s), optimised, and report what they measured (see `bridge_tests::chaos`).

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::build;
use crate::command::{announce, execute};
use crate::tools::repo_root;

/// Builds the Worker, runs every fault case at full scale and prints what they measured.
pub fn run() -> Result<()> {
    build::worker()?;
    let out_dir = repo_root().join("target/chaos");
    fs::create_dir_all(&out_dir)?;
    let lines_path = out_dir.join("report.jsonl");
    if lines_path.exists() {
        fs::remove_file(&lines_path)?;
    }
    announce("fault cases at full scale (one at a time: each owns the machine)");
    execute(
        Command::new("cargo")
            .current_dir(repo_root())
            .args([
                "test",
                "--locked",
                "--profile",
                "tooling",
                "--package",
                "bridge-tests",
                "--test",
                "chaos",
                "--package",
                "paperclip-cloudflare-bridge-plugin",
                "--test",
                "misbehaving_bridge",
                "--",
                "--test-threads=1",
            ])
            .env(bridge_tests::chaos::FULL_SCALE_VAR, "1")
            .env(bridge_tests::chaos::REPORT_VAR, &lines_path),
    )?;
    let measured = fs::read_to_string(&lines_path)
        .with_context(|| format!("the cases reported nothing to {}", lines_path.display()))?;
    let mut cases: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for line in measured.lines() {
        let entry: Value = serde_json::from_str(line).context("a report line")?;
        let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
        cases
            .entry(text("case"))
            .or_default()
            .push((text("metric"), entry["value"].as_f64().unwrap_or(f64::NAN)));
    }
    println!();
    for (case, metrics) in &cases {
        println!("{case}");
        for (metric, value) in metrics {
            println!("    {metric:<64} {value:>10.1}");
        }
    }
    let out = out_dir.join("chaos.json");
    let report: BTreeMap<_, _> = cases
        .iter()
        .map(|(case, metrics)| {
            let metrics: serde_json::Map<_, _> = metrics
                .iter()
                .map(|(metric, value)| (metric.clone(), json!(value)))
                .collect();
            (case.clone(), Value::Object(metrics))
        })
        .collect();
    fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}
