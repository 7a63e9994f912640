//! `cargo xtask build`: the Worker bundle, with the pinned tools and nothing downloaded.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use flate2::{Compression, write::GzEncoder};

use crate::command::{announce, execute};
use crate::tools::{cargo_bin_dir, node_bin_dir, node_command, repo_root};

/// Builds `bridge-worker/build/`.
pub fn run() -> Result<()> {
    worker()
}

/// Runs worker-build in release mode. The previous output is removed first, so a failed build
/// never leaves a stale Worker behind for wrangler to pick up.
pub fn worker() -> Result<()> {
    announce("build: bridge Worker (worker-build --release)");
    let root = repo_root();
    let tools = [
        ("WASM_BINDGEN_BIN", cargo_bin_dir().join("wasm-bindgen")),
        ("WASM_OPT_BIN", node_bin_dir().join("wasm-opt")),
        (
            "ESBUILD_BIN",
            root.join("node_modules/@esbuild/linux-x64/bin/esbuild"),
        ),
    ];
    for (variable, path) in &tools {
        if !path.exists() {
            bail!(
                "{variable}: {} is missing; run `cargo xtask setup`",
                path.display()
            );
        }
    }
    let worker_build = cargo_bin_dir().join("worker-build");
    if !worker_build.exists() {
        bail!(
            "{} is missing; run `cargo xtask setup`",
            worker_build.display()
        );
    }
    let out_dir = root.join("bridge-worker/build");
    if out_dir.exists() {
        fs::remove_dir_all(&out_dir)
            .with_context(|| format!("cannot remove the previous {}", out_dir.display()))?;
    }
    let mut command = node_command(&worker_build);
    command
        .current_dir(root.join("bridge-worker"))
        .arg("--release")
        .envs(tools.iter().map(|(name, path)| (*name, path.as_os_str())));
    execute(&mut command)?;
    let wasm = out_dir.join("index_bg.wasm");
    for output in [out_dir.join("index.js"), wasm.clone()] {
        if !output.exists() {
            bail!("worker-build succeeded but {} is missing", output.display());
        }
    }
    // worker-build keeps the name section (a fifth of the module); rustc's `strip` would also
    // drop the target-features section wasm-bindgen reads, so names are stripped here instead.
    execute(
        node_command(node_bin_dir().join("wasm-opt"))
            .arg(&wasm)
            .args(["--all-features", "--strip-debug", "--strip-producers", "-o"])
            .arg(&wasm),
    )?;
    let bytes = fs::read(&wasm)?;
    println!(
        "    {}: {} KiB raw, {} KiB gzipped",
        wasm.strip_prefix(&root).unwrap_or(&wasm).display(),
        bytes.len() / 1024,
        gzipped_len(&bytes)? / 1024
    );
    Ok(())
}

/// Cargo profile of binaries shared with the tests.
const DEBUG: &str = "debug";
/// Cargo profile of optimised native binaries (see the workspace `Cargo.toml`).
const NATIVE: &str = "native";

/// Builds the plugin binary (debug profile, shared with the tests) and returns its path.
pub fn plugin() -> Result<PathBuf> {
    binary(
        "paperclip-cloudflare-bridge-plugin",
        "paperclip-cloudflare-bridge",
        DEBUG,
    )
}

/// Builds the plugin binary as it is shipped (profile `native`) and returns its path.
pub fn plugin_optimised() -> Result<PathBuf> {
    binary(
        "paperclip-cloudflare-bridge-plugin",
        "paperclip-cloudflare-bridge",
        NATIVE,
    )
}

/// Builds the `local-sandbox` binary (debug profile, shared with the tests) and returns its path.
pub fn local_sandbox() -> Result<PathBuf> {
    binary("bridge-tests", "local-sandbox", DEBUG)
}

/// Builds an optimised `local-sandbox`, so measurements are not about the stand-in's speed.
pub fn local_sandbox_optimised() -> Result<PathBuf> {
    binary("bridge-tests", "local-sandbox", NATIVE)
}

/// Builds binary `name` of `package` with `profile` and returns its path.
fn binary(package: &str, name: &str, profile: &str) -> Result<PathBuf> {
    announce(&format!("build: {name} ({profile})"));
    let mut command = Command::new("cargo");
    command
        .current_dir(repo_root())
        .args(["build", "--package", package, "--bin", name]);
    if profile != DEBUG {
        command.args(["--profile", profile]);
    }
    execute(&mut command)?;
    Ok(target_dir().join(profile).join(name))
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Size of `bytes` gzipped at the best level, as Cloudflare reports uploads.
pub fn gzipped_len(bytes: &[u8]) -> Result<usize> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}
