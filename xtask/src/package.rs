//! `cargo xtask package` and `cargo xtask manifest`: the installable plugin package.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result};
use bridge_tests::harness::plugin_package::assemble;
use paperclip_cloudflare_bridge::manifest::manifest_module;

use crate::build;
use crate::command::{announce, capture};
use crate::tools::repo_root;

/// Name of the npm package (`plugin/npm/package.json`).
const PACKAGE_NAME: &str = "paperclip-plugin-cloudflare-bridge";

/// Rewrites `plugin/npm/dist/manifest.js` from the binary's manifest.
pub fn manifest() -> Result<()> {
    let path = repo_root().join("plugin/npm/dist/manifest.js");
    fs::write(&path, manifest_module())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Builds the optimised plugin binary and writes the package directory and its tarball.
pub fn run() -> Result<()> {
    let root = repo_root();
    let binary = build::plugin_optimised()?;
    let out = root.join("target/package");
    let directory = assemble(&out.join(PACKAGE_NAME), &binary)?;
    announce("package: npm pack");
    let packed = capture(
        Command::new("npm")
            .current_dir(&directory)
            .args(["pack", "--json", "--pack-destination"])
            .arg(&out),
    )?;
    let listing: serde_json::Value = serde_json::from_slice(&packed.stdout)?;
    let file = listing[0]["filename"]
        .as_str()
        .context("npm pack named no file")?;
    let tarball = out.join(file);
    println!(
        "    package directory: {}\n    tarball:           {} ({} KiB)\n    binary:            {} KiB\n\n\
         Install it into a Paperclip host with `paperclipai plugin install {} --local`\n\
         (or unpack the tarball there and install the directory).",
        directory.display(),
        tarball.display(),
        fs::metadata(&tarball)?.len() / 1024,
        fs::metadata(&binary)?.len() / 1024,
        directory.display()
    );
    Ok(())
}
