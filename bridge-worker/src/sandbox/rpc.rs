//! Options and results of the `Sandbox` RPC methods the bridge calls.
//!
//! Absent fields are omitted, never `null` (the SDK crashes on `env: null`), and maps are
//! serialised as plain objects by the glue, never as JS `Map`s the SDK would silently ignore.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Argument of `configure`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxConfiguration {
    /// Write-once name; it also selects the default session's id.
    pub sandbox_name: SandboxName,
    /// Idle time after which the container sleeps, e.g. `"10m"`; ignored with `keep_alive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep_after: Option<String>,
    /// Keep the container running until it is destroyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<bool>,
}

/// The `sandboxName` member of [`SandboxConfiguration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxName {
    /// The sandbox id.
    pub name: String,
    /// Whether the SDK lower-cases the id; ids are lower case already, so this is `true`.
    pub normalize_id: bool,
}

/// Options of `execWithSessionToken`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOptions {
    /// Container-side timeout in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Extra environment for this command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Working directory for this command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

/// The part of the SDK's `ExecResult` the bridge uses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutput {
    /// Exit code; absent means the SDK could not tell, which is an error, never success.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Everything the command wrote to stdout.
    #[serde(default)]
    pub stdout: String,
    /// Everything the command wrote to stderr.
    #[serde(default)]
    pub stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_options_are_omitted() {
        let options = ExecOptions {
            cwd: Some("/workspace".into()),
            ..ExecOptions::default()
        };
        assert_eq!(
            serde_json::to_string(&options).expect("serialisable"),
            r#"{"cwd":"/workspace"}"#
        );
        let configuration = SandboxConfiguration {
            sandbox_name: SandboxName {
                name: "pc-probe-1".into(),
                normalize_id: true,
            },
            sleep_after: None,
            keep_alive: Some(false),
        };
        assert_eq!(
            serde_json::to_string(&configuration).expect("serialisable"),
            r#"{"sandboxName":{"name":"pc-probe-1","normalizeId":true},"keepAlive":false}"#
        );
    }

    #[test]
    fn a_result_without_exit_code_is_visible_as_such() {
        let output: ExecOutput =
            serde_json::from_str(r#"{"success":true,"stdout":"x"}"#).expect("parses");
        assert_eq!(output.exit_code, None);
        assert_eq!(output.stdout, "x");
    }
}
