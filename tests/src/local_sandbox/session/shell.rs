//! A session's live `bash` process: started in the sandbox, fed script paths on stdin, watched
//! for its exit.

use std::io;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::SessionOptions;
use crate::local_sandbox::command::Killer;
use crate::local_sandbox::launcher::{LaunchSpec, Launched};
use crate::local_sandbox::proctree::Targets;
use crate::local_sandbox::reaper::exit_code;
use crate::local_sandbox::sandbox::SandboxEnv;
use crate::local_sandbox::scripts;

/// Whether a shell is still running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShellStatus {
    /// Still running.
    Running,
    /// Exited, with its exit code if known.
    Exited(Option<i32>),
}

/// Resolves with the shell's exit code (if known) once it has exited.
pub(super) async fn exited(status: &mut watch::Receiver<ShellStatus>) -> Option<i32> {
    match status
        .wait_for(|status| *status != ShellStatus::Running)
        .await
    {
        Ok(status) => match *status {
            ShellStatus::Exited(code) => code,
            ShellStatus::Running => None,
        },
        Err(_) => None,
    }
}

/// A running session shell.
#[derive(Debug)]
pub(super) struct Shell {
    pid: u32,
    stdin: pipe::Sender,
    /// Follows the shell's exit.
    pub(super) status: watch::Receiver<ShellStatus>,
}

impl Shell {
    /// Starts a shell with `options`.
    pub(super) fn spawn(sandbox: &SandboxEnv, options: &SessionOptions) -> io::Result<Self> {
        let Launched { mut child, exit } = sandbox.launch(LaunchSpec {
            args: &["--norc", "--noprofile"],
            cwd: &options.cwd,
            cwd_fallback: true,
            env: options.env.pairs(),
            stdin: Stdio::piped(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        })?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("the shell has no stdin pipe"))?;
        let (report, status) = watch::channel(ShellStatus::Running);
        tokio::spawn(async move {
            let code = exit.await.ok().map(exit_code);
            // Nobody listening means the session is gone already.
            let _ = report.send(ShellStatus::Exited(code));
        });
        Ok(Self {
            pid: child.id(),
            stdin: pipe::Sender::from_owned_fd(stdin.into())?,
            status,
        })
    }

    /// `Some(code)` once the shell has exited.
    pub(super) fn exit_code(&self) -> Option<Option<i32>> {
        match *self.status.borrow() {
            ShellStatus::Running => None,
            ShellStatus::Exited(code) => Some(code),
        }
    }

    /// Makes the shell run a script file.
    pub(super) async fn source(&mut self, script: &str) -> io::Result<()> {
        self.stdin
            .write_all(scripts::source_line(script).as_bytes())
            .await
    }

    /// Kills the shell and everything it started.
    pub(super) async fn terminate(self) {
        Killer::new(Targets::Tree {
            root: self.pid,
            group: Some(self.pid),
        })
        .kill()
        .await;
    }
}
