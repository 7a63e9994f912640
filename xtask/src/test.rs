//! `cargo xtask test`: every check, in order, with a summary. Stops at the first failure.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::build;
use crate::command::{announce, execute};
use crate::tools::{WASM_TARGET, node_command, repo_root};

/// One named check.
struct Step {
    name: &'static str,
    action: fn() -> Result<()>,
}

const STEPS: [Step; 6] = [
    Step {
        name: "rustfmt --check",
        action: || execute(cargo().args(["fmt", "--all", "--", "--check"])),
    },
    Step {
        name: "clippy (native, all targets)",
        action: || clippy(&["--workspace"]),
    },
    Step {
        name: "clippy (wasm32, bridge-worker)",
        action: || clippy(&["--package", "bridge-worker", "--target", WASM_TARGET]),
    },
    Step {
        name: "build the Worker",
        action: build::worker,
    },
    Step {
        name: "unit and end-to-end tests",
        action: || execute(cargo().args(["test", "--workspace", "--locked"])),
    },
    Step {
        name: "wrangler deploy --dry-run (production config)",
        action: deploy_dry_run,
    },
];

/// Runs every step; prints a summary either way.
pub fn run() -> Result<()> {
    let mut finished = Vec::new();
    for step in &STEPS {
        announce(&format!("test: {}", step.name));
        let started = Instant::now();
        let outcome = (step.action)();
        finished.push((step.name, started.elapsed().as_secs_f64(), outcome.is_ok()));
        if let Err(error) = outcome {
            print_summary(&finished);
            bail!("test step \"{}\" failed: {error:#}", step.name);
        }
    }
    print_summary(&finished);
    Ok(())
}

fn print_summary(finished: &[(&str, f64, bool)]) {
    println!("\nsummary:");
    for (name, seconds, passed) in finished {
        let mark = if *passed { "pass" } else { "FAIL" };
        println!("  {mark}  {name:<48} {seconds:>7.1} s");
    }
}

/// Clippy over all targets of `scope`, with every warning an error.
fn clippy(scope: &[&str]) -> Result<()> {
    execute(cargo().arg("clippy").args(scope).args([
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))
}

fn cargo() -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(repo_root());
    command
}

/// Bundles and validates the production config offline. The container image is built by Docker,
/// which this machine does not run, so `--containers-rollout=none` skips only that step. The
/// empty `--env` selects the production configuration explicitly.
fn deploy_dry_run() -> Result<()> {
    let out_dir = repo_root().join("target/deploy-dry-run");
    execute(
        node_command(repo_root().join("node_modules/.bin/wrangler"))
            .args([
                "deploy",
                "--env=",
                "--dry-run",
                "--containers-rollout=none",
                "--outdir",
            ])
            .arg(&out_dir),
    )
}
