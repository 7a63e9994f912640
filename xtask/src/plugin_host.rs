//! A minimal Paperclip host for the demo: spawns the plugin binary and speaks the host protocol
//! to it, one call at a time, handing `execute.log` notifications to a callback.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A running plugin worker.
pub struct PluginProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl PluginProcess {
    /// Starts `binary` with the minimal environment the host gives workers.
    pub fn spawn(binary: &Path) -> Result<Self> {
        let mut child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NODE_ENV", "production")
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::with_capacity(1 << 20, stdout).lines(),
            next_id: 1,
        })
    }

    /// The worker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Calls `method`; with `invocation`, `execute.log` chunks for it go to `on_log`.
    pub async fn call(
        &mut self,
        method: &str,
        params: Value,
        invocation: Option<&str>,
        mut on_log: impl FnMut(&str, &str),
    ) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if let Some(invocation) = invocation {
            request["paperclipInvocation"] =
                json!({"id": invocation, "scope": {"companyId": "demo"}});
        }
        let mut line = serde_json::to_vec(&request)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        while let Some(line) = self.lines.next_line().await? {
            let message: Message = serde_json::from_str(&line)
                .with_context(|| format!("the plugin wrote a line that is not JSON: {line}"))?;
            if let Some(log) = message
                .params
                .filter(|_| message.method.as_deref() == Some("execute.log"))
            {
                on_log(&log.stream, &log.chunk);
                continue;
            }
            if message.id != Some(id) {
                continue;
            }
            if let Some(error) = message.error {
                bail!("{method} failed: {}", error["message"]);
            }
            return Ok(message.result.unwrap_or(Value::Null));
        }
        bail!("the plugin exited while {method} was pending")
    }

    /// Sends `shutdown` and waits for the process to exit.
    pub async fn shutdown(mut self) -> Result<ExitStatus> {
        self.call("shutdown", json!({}), None, |_, _| {}).await?;
        Ok(self.child.wait().await?)
    }
}

/// A line from the plugin, typed only as far as a host needs (notifications are frequent).
#[derive(Deserialize)]
struct Message {
    id: Option<u64>,
    method: Option<String>,
    params: Option<LogParams>,
    result: Option<Value>,
    error: Option<Value>,
}

/// Parameters of `execute.log`.
#[derive(Deserialize)]
struct LogParams {
    stream: String,
    chunk: String,
}
