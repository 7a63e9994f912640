//! Where the pinned tools live, and the environment that makes every tool use them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub use bridge_tests::harness::repo_root;

/// worker-build version matching `worker = "=0.8.7"`.
pub const WORKER_BUILD_VERSION: &str = "0.8.7";
/// The only target the Worker is built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// `node_modules/.bin`: Node 24, wrangler, wasm-opt.
pub fn node_bin_dir() -> PathBuf {
    repo_root().join("node_modules/.bin")
}

/// A command with `node_modules/.bin` first on `PATH` and wrangler's telemetry off.
pub fn node_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(repo_root())
        .env("PATH", bridge_tests::harness::prepend_path(&node_bin_dir()))
        .env("WRANGLER_SEND_METRICS", "false");
    command
}

/// `$CARGO_HOME/bin`, where `cargo install` puts worker-build and wasm-bindgen.
pub fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"))
        .join("bin")
}

/// The wasm-bindgen version locked in Cargo.lock; the CLI must be exactly this version.
pub fn locked_wasm_bindgen_version() -> Result<String> {
    let lock_path = repo_root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("cannot read {}", lock_path.display()))?;
    let mut lines = lock.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line == r#"name = "wasm-bindgen""#
            && let Some(version) = lines
                .next()
                .and_then(|line| line.strip_prefix("version = "))
        {
            return Ok(version.trim_matches('"').to_owned());
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package")
}

/// The version `program --version` reports: the last word of its first line (`0.8.7`,
/// `wasm-bindgen 0.2.130`), if the program runs at all.
pub fn version_of(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()?
        .split_whitespace()
        .last()
        .map(str::to_owned)
}
