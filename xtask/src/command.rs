//! Running external commands loudly: each is announced, and a failure names the command.

use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Prints a step heading.
pub fn announce(text: &str) {
    println!("\n==> {text}");
}

/// Runs `command` with inherited output; fails unless it exits with 0.
pub fn execute(command: &mut Command) -> Result<()> {
    let shown = describe(command);
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    println!(
        "    ok: `{shown}` ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `command` and captures its output; fails unless it exits with 0.
pub fn capture(command: &mut Command) -> Result<Output> {
    let shown = describe(command);
    let output = command
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
