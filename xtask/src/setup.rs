//! `cargo xtask setup`: installs what is missing, idempotently, and says what it does.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result};
use base64::Engine as _;
use sha2::Digest as _;

use crate::command::{announce, capture, execute};
use crate::tools::{
    WASM_TARGET, WORKER_BUILD_VERSION, cargo_bin_dir, locked_wasm_bindgen_version, repo_root,
    version_of,
};

/// Installs every missing tool.
pub fn run() -> Result<()> {
    announce("setup: checking the toolchain");
    wasm_target()?;
    npm_packages()?;
    paperclip_host_packages()?;
    worker_build()?;
    wasm_bindgen_cli()?;
    Ok(())
}

fn wasm_target() -> Result<()> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is required to add the wasm32 target")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == WASM_TARGET)
    {
        println!("    present: Rust target {WASM_TARGET}");
        return Ok(());
    }
    println!("    installing: Rust target {WASM_TARGET}");
    execute(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// `npm ci` unless node_modules already matches package-lock.json.
fn npm_packages() -> Result<()> {
    let root = repo_root();
    let lock = root.join("package-lock.json");
    let installed_lock = root.join("node_modules/.package-lock.json");
    let modified = |path: &std::path::Path| fs::metadata(path).and_then(|meta| meta.modified());
    let up_to_date = match (modified(&lock), modified(&installed_lock)) {
        (Ok(wanted), Ok(installed)) => installed >= wanted,
        _ => false,
    };
    if up_to_date && root.join("node_modules/.bin/wrangler").exists() {
        println!("    present: npm packages (node_modules matches package-lock.json)");
        return Ok(());
    }
    println!(
        "    installing: npm packages from package-lock.json (wrangler, Node 24, binaryen, the Sandbox SDK)"
    );
    execute(
        Command::new("npm")
            .current_dir(&root)
            .args(["ci", "--no-audit", "--no-fund"]),
    )
    .context("npm (any Node.js >= 20) is needed once, to install the pinned Node 24 and wrangler")
}

/// Paperclip host packages the conformance test imports by file path (the worker manager) but
/// that must not be installed with their dependency trees (embedded PostgreSQL, image codecs,
/// cloud SDKs…): each tarball comes from the npm registry, is checked against its published
/// integrity, and is unpacked into `node_modules`, as Paperclip's plugin protocol notes describe.
const UNPACKED_PACKAGES: [(&str, &str, &str); 2] = [
    (
        "@paperclipai/server",
        "2026.916.1",
        "sha512-zRNWVpfhZUnV2nncNamp6lP5Y0W//y6iUA8eTYTL2QurIvBBuy178u7XTKkcjN5Z4hd6KNMVeFKyGh40jG4fVQ==",
    ),
    (
        "@paperclipai/adapter-utils",
        "2026.916.1",
        "sha512-o4gvSCTrnO9fJmQrmTvZPODM+U6byWpxgJkBMlN4qzkf8Gggu3CzVxhoIy7eVhOJxYT4eIpRhir5rFBiZaffTQ==",
    ),
];

fn paperclip_host_packages() -> Result<()> {
    let root = repo_root();
    for (name, version, integrity) in UNPACKED_PACKAGES {
        let destination = root.join("node_modules").join(name);
        let installed = fs::read_to_string(destination.join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|package| package["version"] == version);
        if installed {
            println!("    present: {name}@{version} (unpacked)");
            continue;
        }
        println!("    installing: {name}@{version} (tarball unpacked without its dependency tree)");
        let packs = root.join("target/npm-packs");
        fs::create_dir_all(&packs)?;
        let packed = capture(Command::new("npm").current_dir(&packs).args([
            "pack",
            &format!("{name}@{version}"),
            "--json",
            "--silent",
        ]))?;
        let listing: serde_json::Value = serde_json::from_slice(&packed.stdout)
            .with_context(|| format!("npm pack {name} printed no JSON"))?;
        let file = listing[0]["filename"]
            .as_str()
            .with_context(|| format!("npm pack {name} named no file"))?;
        let tarball = packs.join(file);
        let digest = sha2::Sha512::digest(fs::read(&tarball)?);
        let actual = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        if actual != integrity {
            anyhow::bail!(
                "{name}@{version}: the downloaded tarball's integrity is {actual}, expected {integrity}"
            );
        }
        if destination.exists() {
            fs::remove_dir_all(&destination)?;
        }
        fs::create_dir_all(&destination)?;
        execute(
            Command::new("tar")
                .arg("-xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&destination)
                .arg("--strip-components=1"),
        )?;
    }
    Ok(())
}

fn worker_build() -> Result<()> {
    let binary = cargo_bin_dir().join("worker-build");
    if version_of(&binary).is_some_and(|version| version == WORKER_BUILD_VERSION) {
        println!("    present: worker-build {WORKER_BUILD_VERSION}");
        return Ok(());
    }
    println!(
        "    installing: worker-build {WORKER_BUILD_VERSION} (cargo install, a few minutes the first time)"
    );
    execute(Command::new("cargo").args([
        "install",
        "worker-build",
        "--version",
        WORKER_BUILD_VERSION,
        "--locked",
    ]))
}

/// The CLI must equal Cargo.lock's wasm-bindgen; `--locked` is left out on purpose (it pins a
/// webpki-roots version some registries do not serve).
fn wasm_bindgen_cli() -> Result<()> {
    let version = locked_wasm_bindgen_version()?;
    let binary = cargo_bin_dir().join("wasm-bindgen");
    if version_of(&binary).is_some_and(|installed| installed == version) {
        println!("    present: wasm-bindgen-cli {version}");
        return Ok(());
    }
    println!(
        "    installing: wasm-bindgen-cli {version} (cargo install, a few minutes the first time)"
    );
    execute(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", &version]))
}
