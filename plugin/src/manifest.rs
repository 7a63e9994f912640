//! The plugin manifest: the one source of truth for `plugin/npm/dist/manifest.js`, which the host
//! imports (`paperclip-cloudflare-bridge --print-manifest` prints it; a test keeps them equal).

use serde::Serialize;
use serde_json::Value;

/// Plugin id (the bundled first-party plugin is `paperclip.cloudflare-sandbox-provider`).
pub const PLUGIN_ID: &str = "paperclip-cloudflare-bridge";
/// Driver key (the bundled plugin already uses `cloudflare`).
pub const DRIVER_KEY: &str = "cloudflare-bridge";
/// Path of the worker entry inside the package.
pub const WORKER_ENTRY: &str = "./dist/worker.js";

/// The manifest as the host validates it (`pluginManifestV1Schema`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    id: &'static str,
    api_version: u32,
    version: &'static str,
    display_name: &'static str,
    description: &'static str,
    author: &'static str,
    categories: [&'static str; 1],
    capabilities: [&'static str; 1],
    entrypoints: Entrypoints,
    environment_drivers: [Driver; 1],
}

#[derive(Debug, Serialize)]
struct Entrypoints {
    worker: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    driver_key: &'static str,
    kind: &'static str,
    display_name: &'static str,
    description: &'static str,
    sandbox_capabilities: SandboxCapabilities,
    config_schema: Value,
}

/// Only what an end-to-end test through the real host proves (`docs/paperclip-host.md`): the host
/// treats an absent worker-property capability (`persistentProcessSessions`,
/// `independentControlCommands`) as on once `environmentExecute` is verified, so declaring one
/// changes nothing, and in 2026.916.1 neither is consulted on the Codex CLI path. Native sync is
/// declared explicitly; `concurrentSyncOperations` is not, so the host runs sync calls one at a
/// time.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SandboxCapabilities {
    reusable_leases: bool,
    native_sync_in: bool,
    native_sync_out: bool,
}

/// This build's manifest.
pub fn manifest() -> Manifest {
    Manifest {
        id: PLUGIN_ID,
        api_version: 1,
        version: env!("CARGO_PKG_VERSION"),
        display_name: "Cloudflare Sandbox bridge",
        description: "Runs agent sandboxes in Cloudflare Sandbox containers through a bridge Worker you deploy (signed HMAC requests, streamed output).",
        author: "paperclip-cloudflare-bridge contributors",
        categories: ["automation"],
        capabilities: ["environment.drivers.register"],
        entrypoints: Entrypoints {
            worker: WORKER_ENTRY,
        },
        environment_drivers: [Driver {
            driver_key: DRIVER_KEY,
            kind: "sandbox_provider",
            display_name: "Cloudflare Sandbox (bridge)",
            description: "Sandboxes in Cloudflare Sandbox containers, driven through the paperclip-sandbox-bridge Worker.",
            sandbox_capabilities: SandboxCapabilities {
                reusable_leases: true,
                native_sync_in: true,
                native_sync_out: true,
            },
            config_schema: crate::config::schema(),
        }],
    }
}

/// The manifest as pretty JSON (what `--print-manifest` prints).
pub fn manifest_json() -> String {
    serde_json::to_string_pretty(&manifest()).unwrap_or_default()
}

/// The exact text of the package's `dist/manifest.js` (`cargo xtask manifest` writes it).
pub fn manifest_module() -> String {
    format!(
        "// The plugin manifest, imported by the Paperclip host. Generated from the binary:\n\
         // `paperclip-cloudflare-bridge --print-manifest` is the source of truth, and a test keeps this\n\
         // file equal to it (`cargo xtask manifest` rewrites it).\n\
         export default {};\n",
        manifest_json()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/npm");

    #[test]
    fn the_packaged_manifest_module_is_the_binarys_manifest() {
        let module = std::fs::read_to_string(format!("{PACKAGE_DIR}/dist/manifest.js"))
            .expect("plugin/npm/dist/manifest.js");
        assert_eq!(module, manifest_module(), "run `cargo xtask manifest`");
    }

    #[test]
    fn the_package_version_is_the_crate_version() {
        let package: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{PACKAGE_DIR}/package.json")).expect("package.json"),
        )
        .expect("JSON");
        assert_eq!(package["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(package["paperclipPlugin"]["worker"], WORKER_ENTRY);
    }
}
