//! `cargo xtask bench compare <worker build> [rounds]`: the 64 MiB stream, a 64 MiB download and
//! upload, and the `exec true` overhead of two Worker builds, A/B on one machine. This machine's
//! speed moves by 2× between days, so an absolute figure from another day says little about a
//! change; rounds that alternate the two builds on fresh stacks, minutes apart, do. Each round
//! starts a stack on one build, runs [`TRIPS_PER_ROUND`] round trips of each request shape at
//! workerd's socket, each after a direct local-sandbox call, then streams [`STREAMS_PER_ROUND`]
//! times after one warm-up stream, downloads and uploads as often after one warm-up each, and
//! stops it; the order of the builds alternates from round to round.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bridge_protocol::routes::Route;
use bridge_tests::harness::{LocalStack, StackOptions};
use serde_json::{Value, json};

use super::exec::{
    DirectCall, DownloadFile, UploadFile, exec_true, shapes, socket_and_lease, stream_once,
    stream_request,
};
use super::{median, ms};
use crate::build;
use crate::command::announce;
use crate::tools::repo_root;

/// Streams measured per build and round, after the warm-up.
const STREAMS_PER_ROUND: usize = 5;
/// Round trips of each request shape measured per build and round, after the warm-up ones.
const TRIPS_PER_ROUND: usize = 100;
/// Round trips per build and round run first and thrown away.
const WARM_UP_TRIPS: usize = 20;
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
    let mut all: [Measured; 2] = Default::default();
    let mut per_round = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut this_round: [Option<Summary>; 2] = [None, None];
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
            let mut measured = runtime.block_on(measure(&stack))?;
            this_round[index] = Some(measured.summary());
            all[index].append(&mut measured);
        }
        let [Some(baseline), Some(current)] = this_round else {
            bail!("round {} measured only one build", round + 1);
        };
        per_round.push([baseline, current]);
    }
    drop(installed);
    let overall = [all[0].summary(), all[1].summary()];
    print_report(&per_round, &overall);
    let won = |better: fn(&Summary, &Summary) -> bool| {
        per_round
            .iter()
            .filter(|[base, current]| better(current, base))
            .count()
    };
    let report = json!({
        "baseline": baseline.display().to_string(),
        "bytes": super::exec::STREAM_BYTES,
        "streamsPerRound": STREAMS_PER_ROUND,
        "tripsPerRound": TRIPS_PER_ROUND,
        "rounds": per_round.iter().map(|[base, current]| json!({"baseline": base.json(), "current": current.json()})).collect::<Vec<Value>>(),
        "baselineOverall": overall[0].json(),
        "currentOverall": overall[1].json(),
        "streamCurrentOverBaseline": overall[1].mib_per_second / overall[0].mib_per_second,
        "downloadCurrentOverBaseline": overall[1].download_mib_per_second / overall[0].download_mib_per_second,
        "uploadCurrentOverBaseline": overall[1].upload_mib_per_second / overall[0].upload_mib_per_second,
        "agentOverheadCurrentOverBaseline": overall[1].agent_overhead_ms / overall[0].agent_overhead_ms,
        "controlOverheadCurrentOverBaseline": overall[1].control_overhead_ms / overall[0].control_overhead_ms,
        "roundsWon": {
            "stream": won(|current, base| current.mib_per_second > base.mib_per_second),
            "download": won(|current, base| current.download_mib_per_second > base.download_mib_per_second),
            "upload": won(|current, base| current.upload_mib_per_second > base.upload_mib_per_second),
            "agentOverhead": won(|current, base| current.agent_overhead_ms < base.agent_overhead_ms),
            "controlOverhead": won(|current, base| current.control_overhead_ms < base.control_overhead_ms),
        },
    });
    let out = compare_dir.join("compare.json");
    fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("written to {}", out.display());
    Ok(())
}

/// What one build measured: stream, download and upload rates in MiB/s, and round trips in ms.
#[derive(Default)]
struct Measured {
    mib_per_second: Vec<f64>,
    download_mib_per_second: Vec<f64>,
    upload_mib_per_second: Vec<f64>,
    direct_ms: Vec<f64>,
    agent_ms: Vec<f64>,
    control_ms: Vec<f64>,
}

impl Measured {
    fn append(&mut self, other: &mut Self) {
        self.mib_per_second.append(&mut other.mib_per_second);
        self.download_mib_per_second
            .append(&mut other.download_mib_per_second);
        self.upload_mib_per_second
            .append(&mut other.upload_mib_per_second);
        self.direct_ms.append(&mut other.direct_ms);
        self.agent_ms.append(&mut other.agent_ms);
        self.control_ms.append(&mut other.control_ms);
    }

    /// Medians; an overhead is the median round trip less the median direct call.
    fn summary(&self) -> Summary {
        let of = |samples: &[f64]| median(&mut samples.to_vec());
        let direct = of(&self.direct_ms);
        Summary {
            mib_per_second: of(&self.mib_per_second),
            download_mib_per_second: of(&self.download_mib_per_second),
            upload_mib_per_second: of(&self.upload_mib_per_second),
            direct_ms: direct,
            agent_overhead_ms: of(&self.agent_ms) - direct,
            control_overhead_ms: of(&self.control_ms) - direct,
        }
    }
}

/// The medians of a [`Measured`].
struct Summary {
    mib_per_second: f64,
    download_mib_per_second: f64,
    upload_mib_per_second: f64,
    direct_ms: f64,
    agent_overhead_ms: f64,
    control_overhead_ms: f64,
}

impl Summary {
    fn json(&self) -> Value {
        json!({
            "mibPerSecond": self.mib_per_second,
            "downloadMibPerSecond": self.download_mib_per_second,
            "uploadMibPerSecond": self.upload_mib_per_second,
            "directP50Ms": self.direct_ms,
            "agentOverheadP50Ms": self.agent_overhead_ms,
            "controlOverheadP50Ms": self.control_overhead_ms,
        })
    }
}

fn print_report(per_round: &[[Summary; 2]], overall: &[Summary; 2]) {
    println!(
        "\n{:<8} {:>22} {:>22} {:>22} {:>22} {:>22} {:>22}",
        "round",
        "stream MiB/s",
        "download MiB/s",
        "upload MiB/s",
        "agent overhead ms",
        "control overhead ms",
        "direct call ms"
    );
    let row = |label: &str, [base, current]: &[Summary; 2]| {
        let pair = |a: f64, b: f64| format!("{a:.1} -> {b:.1}");
        println!(
            "{label:<8} {:>22} {:>22} {:>22} {:>22} {:>22} {:>22}",
            pair(base.mib_per_second, current.mib_per_second),
            pair(
                base.download_mib_per_second,
                current.download_mib_per_second
            ),
            pair(base.upload_mib_per_second, current.upload_mib_per_second),
            pair(base.agent_overhead_ms, current.agent_overhead_ms),
            pair(base.control_overhead_ms, current.control_overhead_ms),
            pair(base.direct_ms, current.direct_ms),
        );
    };
    for (round, pair) in per_round.iter().enumerate() {
        row(&(round + 1).to_string(), pair);
    }
    row("median", overall);
    let [base, current] = overall;
    println!(
        "\ncurrent / baseline: stream {:.3}, download {:.3}, upload {:.3}, agent overhead {:.3}, \
         control overhead {:.3} (baseline -> current in every column)",
        current.mib_per_second / base.mib_per_second,
        current.download_mib_per_second / base.download_mib_per_second,
        current.upload_mib_per_second / base.upload_mib_per_second,
        current.agent_overhead_ms / base.agent_overhead_ms,
        current.control_overhead_ms / base.control_overhead_ms,
    );
}

/// The round trips, each shape's after a direct call; then one warm-up stream and
/// [`STREAMS_PER_ROUND`] measured ones at workerd's socket, and the same for downloads and
/// uploads. The round trips come first, on the fresh stack: run after the uploads, the direct
/// calls read slower behind a faster build's uploads than behind a slower one's (in an A/A of one
/// build they did not differ), which skewed the overheads taken over them.
async fn measure(stack: &LocalStack) -> Result<Measured> {
    let client = stack.client()?;
    let (at_socket, lease) = socket_and_lease(stack, &client, "bench-compare").await?;
    let mut measured = Measured::default();
    let direct = DirectCall::of_true(stack).await?;
    let [agent, control] = shapes(&lease);
    for trip in 0..WARM_UP_TRIPS + TRIPS_PER_ROUND {
        let keep = trip >= WARM_UP_TRIPS;
        for (shape, samples) in [
            (&agent, &mut measured.agent_ms),
            (&control, &mut measured.control_ms),
        ] {
            let started = Instant::now();
            direct.run().await?;
            let direct_ms = ms(started.elapsed());
            let started = Instant::now();
            exec_true(&at_socket, shape).await?;
            if keep {
                measured.direct_ms.push(direct_ms);
                samples.push(ms(started.elapsed()));
            }
        }
    }
    let request = stream_request(&lease);
    stream_once(&at_socket, &request).await?;
    for _ in 0..STREAMS_PER_ROUND {
        measured
            .mib_per_second
            .push(stream_once(&at_socket, &request).await?.0);
    }
    let file = DownloadFile::create(&at_socket, &lease).await?;
    file.download_once(&at_socket).await?;
    for _ in 0..STREAMS_PER_ROUND {
        measured
            .download_mib_per_second
            .push(file.download_once(&at_socket).await?);
    }
    let upload = UploadFile::new(&lease);
    upload.upload_once(&at_socket).await?;
    for _ in 0..STREAMS_PER_ROUND {
        measured
            .upload_mib_per_second
            .push(upload.upload_once(&at_socket).await?);
    }
    client
        .fetch::<Value>(Route::DestroyLease(lease.provider_lease_id))
        .await?;
    Ok(measured)
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
