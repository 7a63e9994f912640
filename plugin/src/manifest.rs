//! The plugin manifest: the one source of truth for `plugin/npm/dist/manifest.js`, which the host
//! imports (`paperclip-cloudflare-bridge --print-manifest` prints it; a test keeps them equal).

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{DEFAULT_KEY_ID, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_TIMEOUT_MS};

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
/// changes nothing, and in 2026.916.1 neither is consulted on the Codex CLI path.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SandboxCapabilities {
    reusable_leases: bool,
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
            },
            config_schema: config_schema(),
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

fn config_schema() -> Value {
    json!({
        "type": "object",
        "required": ["bridgeBaseUrl", "bridgeSecret"],
        "properties": {
            "bridgeBaseUrl": {
                "type": "string",
                "format": "uri",
                "title": "Bridge URL",
                "description": "Origin of the deployed bridge Worker, e.g. https://paperclip-sandbox-bridge.example.workers.dev (https unless it runs on this machine)."
            },
            "bridgeSecret": {
                "type": "string",
                "format": "secret-ref",
                "title": "Bridge secret",
                "description": "The secret of keyId in the bridge's BRIDGE_HMAC_KEYS (at least 32 characters)."
            },
            "keyId": {
                "type": "string",
                "default": DEFAULT_KEY_ID,
                "title": "Key id",
                "description": "Which BRIDGE_HMAC_KEYS entry bridgeSecret belongs to."
            },
            "reuseLease": {
                "type": "boolean",
                "default": false,
                "description": "Keep one sandbox per environment across runs (requires keepAlive)."
            },
            "keepAlive": {
                "type": "boolean",
                "default": false,
                "description": "Keep containers running while idle."
            },
            "sleepAfter": {
                "type": "string",
                "description": "Idle time before a container sleeps, e.g. \"10m\" (ignored with keepAlive).",
                "x-paperclip-advanced": true
            },
            "normalizeId": {
                "type": "boolean",
                "default": true,
                "description": "Kept for compatibility: sandbox ids are always lower case.",
                "x-paperclip-advanced": true
            },
            "requestedCwd": {
                "type": "string",
                "default": bridge_protocol::api::DEFAULT_REMOTE_CWD,
                "description": "Absolute working directory of commands in the sandbox."
            },
            "sessionStrategy": {
                "type": "string",
                "enum": ["named", "default"],
                "default": "named",
                "x-paperclip-advanced": true
            },
            "sessionId": {
                "type": "string",
                "default": bridge_protocol::fields::DEFAULT_SESSION_ID,
                "x-paperclip-advanced": true
            },
            "timeoutMs": {
                "type": "integer",
                "minimum": 1000,
                "default": DEFAULT_TIMEOUT_MS,
                "description": "Default command timeout in milliseconds."
            },
            "bridgeRequestTimeoutMs": {
                "type": "integer",
                "minimum": 1000,
                "default": DEFAULT_REQUEST_TIMEOUT_MS,
                "description": "Deadline of bridge calls that run no command.",
                "x-paperclip-advanced": true
            },
            "streamOutput": {
                "type": "boolean",
                "default": true,
                "description": "Stream command output to Paperclip as it is produced."
            },
            "loginShell": {
                "type": "boolean",
                "default": true,
                "description": "Source /etc/profile and ~/.profile before each command.",
                "x-paperclip-advanced": true
            }
        }
    })
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
