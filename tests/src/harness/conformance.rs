//! The host conformance script (`tests/conformance/host-conformance.mjs`): the real worker manager
//! of the installed Paperclip server drives a plugin package against a running local stack.

use std::path::Path;
use std::process::Command;

use super::paperclip::HostInstall;
use super::{HarnessError, LocalStack, prepend_path, repo_root};

/// The script's command for the package in `package_dir` and the bridge of `stack`, on the pinned
/// Node with the host's modules; `round_trips` > 0 also measures that many execute round trips.
pub fn command(
    stack: &LocalStack,
    package_dir: &Path,
    round_trips: usize,
) -> Result<Command, HarnessError> {
    let install = HostInstall::locate()?;
    if !install.is_installed() {
        return Err(HarnessError::Missing(format!(
            "the Paperclip host in {} (run `cargo xtask setup`)",
            install.dir().display()
        )));
    }
    let root = repo_root();
    let node_bin = root.join("node_modules/.bin");
    let (key_id, secret) = &stack.keys().primary;
    let mut command = Command::new(node_bin.join("node"));
    command
        .arg(root.join("tests/conformance/host-conformance.mjs"))
        .current_dir(&root)
        .env("PATH", prepend_path(&node_bin))
        .env("PAPERCLIP_HOST_MODULES", install.dir().join("node_modules"))
        .env("PACKAGE_DIR", package_dir)
        .env("BRIDGE_URL", stack.bridge_url())
        .env("BRIDGE_KEY_ID", key_id)
        .env("BRIDGE_SECRET", secret)
        .env("ROUND_TRIPS", round_trips.to_string())
        .env("NODE_ENV", "production");
    Ok(command)
}
