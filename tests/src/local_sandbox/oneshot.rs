//! Sessionless commands (session id `"__DISABLE_SESSION__"`): a fresh `bash -c` in its own process
//! group per command. On timeout the whole group is terminated (SIGTERM, SIGKILL after 5 s) and the
//! call still returns, with exit code 124 and `Command timed out after <N>ms` appended to stderr,
//! as in the real container's `execution-service.ts`. As there, the result (or the stream's
//! `complete` event) comes only once the pipes are read to their end: a process the command left
//! running with its output inherited holds it until that process exits.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::sync::oneshot;

use super::command::{CommandSpec, EventSink, ExecOutput, Killer, StartedCommand, deadline};
use super::errors::{ApiError, CommandCall, ExecTarget};
use super::launcher::{LaunchSpec, Launched};
use super::paths::WORKSPACE;
use super::pipes::{Collector, OutputPipes, OutputSink, Stream};
use super::proctree::Targets;
use super::reaper::exit_code;
use super::sandbox::SandboxEnv;

/// Exit code reported for a command that timed out.
const TIMEOUT_EXIT_CODE: i32 = 124;

/// Runs `spec` to completion and collects its output.
pub async fn run(sandbox: &SandboxEnv, spec: &CommandSpec) -> Result<ExecOutput, ApiError> {
    let (pid, mut output, exit) = spawn(sandbox, spec, CommandCall::Run)?;
    let killer = group_killer(pid);
    let mut collected = Collector::default();
    let ending = output
        .forward_until(&mut collected, finish(exit, spec.timeout, &killer))
        .await;
    output.forward_to_end(&mut collected).await;
    Ok(match ending {
        Ending::Exited(code) => ExecOutput::new(code, collected),
        Ending::TimedOut(timeout) => {
            let mut result = ExecOutput::new(TIMEOUT_EXIT_CODE, collected);
            if !result.stderr.is_empty() && !result.stderr.ends_with('\n') {
                result.stderr.push('\n');
            }
            result.stderr.push_str(&timeout_message(timeout));
            result
        }
    })
}

/// Starts `spec` in the background.
pub fn start(sandbox: &SandboxEnv, spec: &CommandSpec) -> Result<StartedCommand, ApiError> {
    let (pid, mut output, exit) = spawn(sandbox, spec, CommandCall::Start)?;
    let killer = group_killer(pid);
    let (mut sink, events) = EventSink::channel();
    let timeout = spec.timeout;
    let watchdog = killer.clone();
    tokio::spawn(async move {
        let ending = output
            .forward_until(&mut sink, finish(exit, timeout, &watchdog))
            .await;
        output.forward_to_end(&mut sink).await;
        let code = match ending {
            Ending::Exited(code) => code,
            Ending::TimedOut(timeout) => {
                let notice = format!("{}\n", timeout_message(timeout));
                sink.write(Stream::Stderr, notice.into_bytes()).await;
                TIMEOUT_EXIT_CODE
            }
        };
        sink.exit(code).await;
    });
    Ok(StartedCommand {
        pid,
        events,
        killer,
    })
}

fn spawn(
    sandbox: &SandboxEnv,
    spec: &CommandSpec,
    call: CommandCall,
) -> Result<(u32, OutputPipes, oneshot::Receiver<ExitStatus>), ApiError> {
    launch(sandbox, spec).map_err(|error| {
        ApiError::command(
            call,
            &spec.command,
            &ExecTarget::Sessionless,
            error.to_string(),
        )
    })
}

fn launch(
    sandbox: &SandboxEnv,
    spec: &CommandSpec,
) -> io::Result<(u32, OutputPipes, oneshot::Receiver<ExitStatus>)> {
    let Launched { mut child, exit } = sandbox.launch(LaunchSpec {
        args: &["-c", &spec.command],
        cwd: spec.cwd.as_deref().unwrap_or(WORKSPACE),
        cwd_fallback: false,
        env: spec.env.pairs(),
        stdin: Stdio::null(),
        stdout: Stdio::piped(),
        stderr: Stdio::piped(),
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(io::Error::other("the command has no output pipes"));
    };
    Ok((child.id(), OutputPipes::from_child(stdout, stderr)?, exit))
}

/// The command leads its own process group, so the group catches descendants that left the tree.
fn group_killer(pid: u32) -> Killer {
    Killer::new(Targets::Tree {
        root: pid,
        group: Some(pid),
    })
}

fn timeout_message(timeout: Duration) -> String {
    format!("Command timed out after {}ms", timeout.as_millis())
}

enum Ending {
    Exited(i32),
    TimedOut(Duration),
}

/// Waits for the exit status; past the timeout, kills the command's group and waits for it.
async fn finish(
    mut exit: oneshot::Receiver<ExitStatus>,
    timeout: Option<Duration>,
    killer: &Killer,
) -> Ending {
    tokio::select! {
        status = &mut exit => Ending::Exited(status.map_or(-1, exit_code)),
        () = deadline(timeout) => {
            killer.kill().await;
            // Reaped by now or shortly; the status itself no longer matters.
            let _ = exit.await;
            Ending::TimedOut(timeout.unwrap_or_default())
        }
    }
}
