//! `cargo xtask bench compare <worker build> [rounds]`: the 64 MiB stream of two Worker builds,
//! A/B on one machine. This machine's speed moves by 2× between days, so an absolute figure from another day
//! says little about a change; rounds that alternate the two builds on fresh stacks, minutes
//! apart, do. Each round starts a stack on one build, streams [`STREAMS_PER_ROUND`] times at
//! workerd's socket after one warm-up stream, and stops it; the order of the builds alternates
//! from round to round.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bridge_protocol::routes::Route;
use bridge_tests::harness::{LocalStack, StackOptions};
use serde_json::{Value, json};

use super::exec::{socket_and_lease, stream_once, stream_request};
use super::median;
use crate::build;
use crate::command::announce;
use crate::tools::repo_root;

/// Streams measured per build and round, after the warm-up.
const STREAMS_PER_ROUND: usize = 5;
/// Rounds unless the command line says otherwise.
const DEFAULT_ROUNDS: usize = 4;

/// Compares the Worker built from the work tree with the build in `baseline` over `rounds`.
pub fn run(baseline: &Path, rounds: Option<&str>) -> Result<()> {
    let rounds = match rounds {
        None => DEFAULT_ROUNDS,
        Some(text) => text
            .parse()
            .ok()
            .filter(|rounds| *rounds > 0)
            .with_context(|| format!("rounds must be a positive number, not {text:?}"))?,
    };
    for file in ["index.js", "index_bg.wasm"] {
        if !baseline.join(file).is_file() {
            bail!(
                "{} holds no Worker build (no {file}); build the baseline with `cargo xtask \
                 build` and copy bridge-worker/build somewhere first",
                baseline.display()
            );
        }
    }
    build::worker()?;
    let local_sandbox = build::local_sandbox_optimised()?;
    let root = repo_root();
    let compare_dir = root.join("target/bench/compare");
    let current = compare_dir.join("current");
    if current.exists() {
        fs::remove_dir_all(&current)?;
    }
    copy_dir(&root.join("bridge-worker/build"), &current)?;
    let installed = InstalledBuild {
        live: root.join("bridge-worker/build"),
        current: current.clone(),
    };
    let builds = [("baseline", baseline.to_path_buf()), ("current", current)];
    let runtime = tokio::runtime::Runtime::new()?;
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut round_medians = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut medians = [f64::NAN; 2];
        for index in order {
            let (name, dir) = &builds[index];
            announce(&format!(
                "bench compare: round {} of {rounds}, {name} ({})",
                round + 1,
                dir.display()
            ));
            installed.install(dir)?;
            let work_dir = compare_dir.join("stack");
            if work_dir.exists() {
                fs::remove_dir_all(&work_dir)?;
            }
            fs::create_dir_all(&work_dir)?;
            let stack = LocalStack::start(&StackOptions::new(&local_sandbox, &work_dir))?;
            let mut streams = runtime.block_on(streams(&stack))?;
            rates[index].extend(&streams);
            medians[index] = median(&mut streams);
        }
        round_medians.push(medians);
    }
    drop(installed);
    let baseline_median = median(&mut rates[0]);
    let current_median = median(&mut rates[1]);
    let won = round_medians
        .iter()
        .filter(|[base, current]| current > base)
        .count();
    println!(
        "\n{:<8} {:>18} {:>18}",
        "round", "baseline MiB/s", "current MiB/s"
    );
    for (round, [base, current]) in round_medians.iter().enumerate() {
        println!("{:<8} {base:>18.1} {current:>18.1}", round + 1);
    }
    println!(
        "{:<8} {baseline_median:>18.1} {current_median:>18.1}\n\ncurrent / baseline: {:.3}, \
         ahead in {won} of {rounds} rounds",
        "median",
        current_median / baseline_median
    );
    let report = json!({
        "baseline": baseline.display().to_string(),
        "bytes": super::exec::STREAM_BYTES,
        "streamsPerRound": STREAMS_PER_ROUND,
        "rounds": round_medians.iter().map(|[base, current]| json!({"baseline": base, "current": current})).collect::<Vec<Value>>(),
        "baselineMibPerSecond": baseline_median,
        "currentMibPerSecond": current_median,
        "currentOverBaseline": current_median / baseline_median,
        "roundsWon": won,
    });
    let out = compare_dir.join("compare.json");
    fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("written to {}", out.display());
    Ok(())
}

/// One warm-up stream, then [`STREAMS_PER_ROUND`] measured ones at workerd's socket, in MiB/s.
async fn streams(stack: &LocalStack) -> Result<Vec<f64>> {
    let client = stack.client()?;
    let (at_socket, lease) = socket_and_lease(stack, &client, "bench-compare").await?;
    let request = stream_request(&lease);
    stream_once(&at_socket, &request).await?;
    let mut rates = Vec::with_capacity(STREAMS_PER_ROUND);
    for _ in 0..STREAMS_PER_ROUND {
        rates.push(stream_once(&at_socket, &request).await?.0);
    }
    client
        .fetch::<Value>(Route::DestroyLease(lease.provider_lease_id))
        .await?;
    Ok(rates)
}

/// The build the local stack loads (`bridge-worker/build`), put back to the work tree's own when
/// dropped, whatever happened in between.
struct InstalledBuild {
    live: PathBuf,
    current: PathBuf,
}

impl InstalledBuild {
    fn install(&self, build: &Path) -> Result<()> {
        if self.live.exists() {
            fs::remove_dir_all(&self.live)?;
        }
        copy_dir(build, &self.live)
    }
}

impl Drop for InstalledBuild {
    fn drop(&mut self) {
        if let Err(error) = self.install(&self.current) {
            eprintln!(
                "bench compare: could not put the work tree's Worker back in {}: {error:#}; \
                 run `cargo xtask build`",
                self.live.display()
            );
        }
    }
}

/// Copies the files of `from` (a Worker build: files and subdirectories) to `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}
