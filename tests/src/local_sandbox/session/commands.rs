//! Running commands in a session's shell: foreground commands in the shell itself, background
//! commands in a subshell that is followed until it reports its exit.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, watch};

use super::shell::{Shell, ShellStatus, exited};
use super::{SessionError, SessionOptions};
use crate::local_sandbox::command::{
    CommandSpec, EventSink, ExecOutput, Killer, StartedCommand, deadline,
};
use crate::local_sandbox::control::{CommandChannel, CommandDir, ControlFifo, ControlMessage};
use crate::local_sandbox::pidfd::PidFd;
use crate::local_sandbox::pipes::{Collector, OutputPipes};
use crate::local_sandbox::proctree::Targets;
use crate::local_sandbox::sandbox::SandboxEnv;
use crate::local_sandbox::scripts::{self, ControlFiles, Invocation};

/// How long a background subshell that has exited may take to deliver its exit report.
const REPORT_GRACE: Duration = Duration::from_millis(100);

/// A session's state, guarded by its lock.
#[derive(Debug)]
pub(super) struct SessionState {
    /// How the shell is (to be) started.
    pub(super) options: SessionOptions,
    /// The shell, once started.
    pub(super) shell: Option<Shell>,
    /// Replaced in the manager's map (shell died or session deleted); whoever waited for this
    /// lock must look the session up again.
    pub(super) retired: bool,
}

impl SessionState {
    /// Forgets a dead shell; the manager drops the session so the next call starts afresh.
    fn shell_died(&mut self) {
        self.shell = None;
        self.retired = true;
    }

    /// The running shell, started on first use; a shell that died answers `Terminated` once and
    /// retires the session.
    fn shell(&mut self, sandbox: &SandboxEnv) -> Result<&mut Shell, SessionError> {
        if let Some(code) = self.shell.as_ref().and_then(Shell::exit_code) {
            self.shell_died();
            return Err(SessionError::Terminated(code));
        }
        let shell = match self.shell.take() {
            Some(shell) => shell,
            None => Shell::spawn(sandbox, &self.options)?,
        };
        Ok(self.shell.insert(shell))
    }

    /// Hands `spec` to the shell through the script `build` makes for it; returns the command's
    /// channel and a watch on the shell's exit.
    async fn submit(
        &mut self,
        sandbox: &SandboxEnv,
        spec: &CommandSpec,
        build: fn(&ControlFiles, Invocation<'_>) -> String,
    ) -> Result<(CommandChannel, watch::Receiver<ShellStatus>), SessionError> {
        let shell = self.shell(sandbox)?;
        let channel = CommandChannel::create(&sandbox.dirs, &spec.command)?;
        let script = build(&channel.files, spec.invocation());
        let script = channel.write_script(&sandbox.dirs, &script)?;
        let status = shell.status.clone();
        shell.source(&script).await?;
        Ok((channel, status))
    }
}

/// One session.
#[derive(Debug)]
pub(super) struct Session {
    /// The lock that serialises the session's commands.
    pub(super) state: Arc<AsyncMutex<SessionState>>,
    /// Set when the sandbox is torn down, so in-flight commands report `SESSION_DESTROYED`.
    pub(super) destroyed: AtomicBool,
}

impl Session {
    /// A session whose shell starts on first use.
    pub(super) fn new(options: SessionOptions) -> Self {
        Self {
            state: Arc::new(AsyncMutex::new(SessionState {
                options,
                shell: None,
                retired: false,
            })),
            destroyed: AtomicBool::new(false),
        }
    }

    fn ended(&self, code: Option<i32>) -> SessionError {
        if self.destroyed.load(Ordering::Relaxed) {
            SessionError::Destroyed
        } else {
            SessionError::Terminated(code)
        }
    }

    /// Runs a foreground command in the shell and collects its output.
    pub(super) async fn exec(
        &self,
        sandbox: &SandboxEnv,
        state: &mut SessionState,
        spec: &CommandSpec,
    ) -> Result<ExecOutput, SessionError> {
        let timeout = spec.timeout.or(state.options.command_timeout);
        let (channel, mut status) = state.submit(sandbox, spec, scripts::foreground).await?;
        let CommandChannel {
            dir,
            mut output,
            mut control,
            ..
        } = channel;

        enum Ending {
            Exited(io::Result<i32>),
            ShellDied(Option<i32>),
            TimedOut,
        }
        let mut collected = Collector::default();
        let ending = output
            .forward_until(&mut collected, async {
                tokio::select! {
                    biased;
                    code = control.exit() => Ending::Exited(code),
                    code = exited(&mut status) => Ending::ShellDied(code),
                    () = deadline(timeout) => Ending::TimedOut,
                }
            })
            .await;
        match ending {
            Ending::Exited(code) => {
                output.drain_ready(&mut collected).await;
                output.retire(async {}, dir);
                Ok(ExecOutput::new(code?, collected))
            }
            Ending::ShellDied(code) => {
                state.shell_died();
                output.retire(async {}, dir);
                Err(self.ended(code))
            }
            Ending::TimedOut => {
                let shell_done = async move {
                    tokio::select! {
                        _ = control.exit() => {}
                        _ = exited(&mut status) => {}
                    }
                };
                output.retire(shell_done, dir);
                Err(SessionError::Timeout(timeout.unwrap_or_default()))
            }
        }
    }

    /// Starts a background command in a subshell; the lock is released once it has started.
    pub(super) async fn start(
        &self,
        sandbox: &SandboxEnv,
        mut state: OwnedMutexGuard<SessionState>,
        spec: &CommandSpec,
    ) -> Result<StartedCommand, SessionError> {
        let (channel, mut status) = state.submit(sandbox, spec, scripts::background).await?;
        let CommandChannel {
            dir,
            output,
            mut control,
            ..
        } = channel;

        let mut early_exit = None;
        let pid = loop {
            tokio::select! {
                message = control.next() => match message? {
                    ControlMessage::Pid(pid) => break pid,
                    ControlMessage::Exit(code) => early_exit = Some(code),
                },
                code = exited(&mut status) => {
                    state.shell_died();
                    return Err(self.ended(code));
                }
            }
        };
        drop(state);

        let killer = Killer::new(Targets::Tree {
            root: pid,
            group: None,
        });
        let (sink, events) = EventSink::channel();
        tokio::spawn(follow_background(
            pid,
            output,
            control,
            dir,
            early_exit,
            killer.clone(),
            sink,
        ));
        Ok(StartedCommand {
            pid,
            events,
            killer,
        })
    }
}

/// Forwards a background command's output until it ends, then reports its exit status.
async fn follow_background(
    pid: u32,
    mut output: OutputPipes,
    mut control: ControlFifo,
    dir: CommandDir,
    early_exit: Option<i32>,
    killer: Killer,
    mut sink: EventSink,
) {
    let code = match early_exit {
        Some(code) => code,
        None => {
            output
                .forward_until(&mut sink, background_exit(pid, &mut control, &killer))
                .await
        }
    };
    output.drain_ready(&mut sink).await;
    sink.exit(code).await;
    output.retire(async {}, dir);
}

/// A background subshell's exit status: its own report or, if it vanished without one (killed),
/// the killer's account of which signal ended it.
async fn background_exit(pid: u32, control: &mut ControlFifo, killer: &Killer) -> i32 {
    let vanished = async {
        if let Ok(pidfd) = PidFd::open(pid) {
            pidfd.exited().await;
        }
    };
    tokio::select! {
        biased;
        code = control.exit() => if let Ok(code) = code {
            return code;
        },
        () = vanished => {}
    }
    match tokio::time::timeout(REPORT_GRACE, control.exit()).await {
        Ok(Ok(code)) => code,
        _ => killer.vanished_code(),
    }
}
