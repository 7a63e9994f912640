//! The installable plugin package: `plugin/npm/` plus the native binary in
//! `bin/<platform>-<arch>/`, as `cargo xtask package` ships it and the conformance test loads it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{HarnessError, repo_root};

/// The binary's path inside the package, relative to its root.
pub const BINARY_PATH: &str = "bin/linux-x64/paperclip-cloudflare-bridge";

/// Copies `plugin/npm/` and `binary` into `destination` (created, or emptied first).
pub fn assemble(destination: &Path, binary: &Path) -> Result<PathBuf, HarnessError> {
    let source = repo_root().join("plugin/npm");
    if destination.exists() {
        fs::remove_dir_all(destination)?;
    }
    fs::create_dir_all(destination.join("dist"))?;
    fs::copy(
        source.join("package.json"),
        destination.join("package.json"),
    )?;
    for entry in fs::read_dir(source.join("dist"))? {
        let entry = entry?;
        fs::copy(
            entry.path(),
            destination.join("dist").join(entry.file_name()),
        )?;
    }
    let target = destination.join(BINARY_PATH);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::copy(binary, &target)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    Ok(destination.to_path_buf())
}

/// A binary of this workspace in the target directory the running test was built into,
/// built first when it is missing (a test of one package cannot name another's binary).
pub fn workspace_binary(package: &str, binary: &str) -> Result<PathBuf, HarnessError> {
    let profile_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| HarnessError::Missing("the test's target directory".into()))?;
    let path = profile_dir.join(binary);
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(repo_root())
            .args(["build", "--package", package, "--bin", binary])
            .status()?;
        if !status.success() || !path.exists() {
            return Err(HarnessError::Missing(format!(
                "{} (cargo build failed)",
                path.display()
            )));
        }
    }
    Ok(path)
}
