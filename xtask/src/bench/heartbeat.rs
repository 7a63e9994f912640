//! Heartbeat runs through the real Paperclip server: the wall time of a whole run of the fake
//! agent (invoke to a finished run with its log read), the bridge requests it makes, and whether
//! any run hangs — many runs in a row on one environment, as an operator's agent would make them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bridge_tests::paperclip::{Deployment, DeploymentError, FakeAgent};
use serde_json::{Value, json};

use super::{Stats, median, ms};
use crate::command::announce;

/// Runs in a row.
pub const RUNS: usize = 20;
/// A run still going after this long counts as hung.
const HANG_LIMIT: Duration = Duration::from_secs(120);

/// Starts a deployment (local stack, server, plugin package in `package`) and measures [`RUNS`]
/// heartbeat runs one after the other.
pub fn measure(
    local_sandbox: &Path,
    package: &Path,
    runtime: &tokio::runtime::Runtime,
) -> Result<Value> {
    announce(&format!(
        "bench: {RUNS} heartbeat runs in a row through a real Paperclip server"
    ));
    let started = Instant::now();
    let deployment = Deployment::start(local_sandbox, package, runtime)?;
    println!(
        "    deployment ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let report = runtime.block_on(runs(&deployment));
    let leaked = deployment.stop();
    if !leaked.is_empty() {
        bail!("sandbox processes outlived the bench: {leaked:?}");
    }
    report
}

async fn runs(deployment: &Deployment) -> Result<Value> {
    let environment = deployment.create_environment("bench", &json!({})).await?;
    let agent = deployment
        .create_agent("Bench agent", &environment, &FakeAgent::default())
        .await?;
    let mut walls = Vec::with_capacity(RUNS);
    let mut requests = Vec::with_capacity(RUNS);
    let (mut succeeded, mut hung, mut failed) = (0, 0, Vec::new());
    for _ in 0..RUNS {
        let before = deployment.bridge_requests().len();
        let started = Instant::now();
        let run_id = deployment.api().invoke_heartbeat(&agent).await?;
        match deployment.follow_run(&run_id, HANG_LIMIT, |_, _| {}).await {
            Ok(run) if run.status == "succeeded" => succeeded += 1,
            Ok(run) => failed.push(format!("{}: {}", run.status, run.error.unwrap_or_default())),
            Err(DeploymentError::RunTimedOut { .. }) => {
                hung += 1;
                deployment.api().cancel_run(&run_id).await.ok();
            }
            Err(error) => return Err(error.into()),
        }
        walls.push(started.elapsed());
        // The host releases the lease after the run ends; wait for it so that every request of
        // this run is counted here and none overlaps the next run.
        deployment
            .settled_lease(&environment, &run_id, HANG_LIMIT)
            .await?;
        requests.push((deployment.bridge_requests().len() - before) as f64);
    }
    let wall = Stats::of(&mut walls);
    println!(
        "    {succeeded}/{RUNS} succeeded, {hung} hung, wall p50 {:.0} ms",
        ms(wall.p50)
    );
    Ok(json!({
        "runs": RUNS,
        "succeeded": succeeded,
        "hung": hung,
        "failed": failed,
        "wallMs": wall.json(),
        "bridgeRequestsPerRun": median(&mut requests),
    }))
}
