//! Sessions: one long-lived `bash --norc --noprofile` per session id, whose working directory,
//! exported variables and functions persist between commands, as in the real container.
//!
//! A session's lock serialises its commands; different sessions run in parallel. Foreground
//! commands run in the shell itself and hold the lock until they finish or time out (a timed-out
//! command keeps running, as in the real container, and later commands queue behind it in the
//! shell). Background commands (streams, processes) run in a subshell and release the lock as soon
//! as they have started, again like the real container. When the shell dies, the call that
//! notices answers `SESSION_TERMINATED` and the next call on that id gets a fresh shell.

mod commands;
mod shell;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use self::commands::{Session, SessionState};
use self::shell::Shell;
use super::command::{CommandSpec, ExecOutput, StartedCommand};
use super::errors::{ApiError, CommandCall, ExecTarget};
use super::paths::WORKSPACE;
use super::sandbox::SandboxEnv;
use super::scripts::EnvVars;

/// How a session's shell is set up.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Where the shell starts (its `$HOME` if this does not exist).
    pub cwd: String,
    /// Variables of the shell's environment.
    pub env: EnvVars,
    /// Default timeout of foreground commands.
    pub command_timeout: Option<Duration>,
}

impl SessionOptions {
    /// The options of a session auto-created by its first command: that command's `cwd` (or
    /// `/workspace`) and its timeout as the session default.
    fn for_first_command(spec: &CommandSpec) -> Self {
        Self {
            cwd: spec.cwd.clone().unwrap_or_else(|| WORKSPACE.to_owned()),
            env: EnvVars::default(),
            command_timeout: spec.timeout,
        }
    }
}

/// Why a session command did not produce a result.
#[derive(Debug)]
pub(super) enum SessionError {
    /// The shell exited on its own.
    Terminated(Option<i32>),
    /// The session was torn down while the command ran.
    Destroyed,
    /// The foreground command did not finish in time.
    Timeout(Duration),
    /// The server could not set the command up.
    Io(io::Error),
}

impl From<io::Error> for SessionError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

impl SessionError {
    fn into_api(self, session_id: &str, command: &str, call: CommandCall) -> ApiError {
        let session_id = session_id.to_owned();
        let target = ExecTarget::Session(session_id.clone());
        match self {
            Self::Terminated(exit_code) => ApiError::SessionTerminated {
                session_id,
                exit_code,
            },
            Self::Destroyed => ApiError::SessionDestroyed { session_id },
            Self::Timeout(timeout) => ApiError::command(
                call,
                command,
                &target,
                format!("Command timeout after {}ms", timeout.as_millis()),
            ),
            Self::Io(error) => ApiError::command(call, command, &target, error.to_string()),
        }
    }
}

/// The sessions of one sandbox.
#[derive(Debug, Default)]
pub struct SessionManager {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    closed: AtomicBool,
}

impl SessionManager {
    fn sessions(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks session `id`, creating it with `defaults` if it does not exist.
    async fn locked(
        &self,
        id: &str,
        defaults: impl Fn() -> SessionOptions,
    ) -> Result<(Arc<Session>, OwnedMutexGuard<SessionState>), ApiError> {
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Err(ApiError::SessionDestroyed {
                    session_id: id.to_owned(),
                });
            }
            let session = Arc::clone(
                self.sessions()
                    .entry(id.to_owned())
                    .or_insert_with(|| Arc::new(Session::new(defaults()))),
            );
            let state = Arc::clone(&session.state).lock_owned().await;
            if !state.retired {
                return Ok((session, state));
            }
        }
    }

    /// Takes a retired session out of the map (if it is still there).
    fn forget(&self, id: &str, session: &Arc<Session>) {
        let mut sessions = self.sessions();
        if sessions
            .get(id)
            .is_some_and(|current| Arc::ptr_eq(current, session))
        {
            sessions.remove(id);
        }
    }

    /// `session/create`: starts the shell now. An id whose shell is alive is a conflict; one whose
    /// shell died is replaced.
    pub async fn create(
        &self,
        sandbox: &SandboxEnv,
        id: &str,
        options: SessionOptions,
    ) -> Result<(), ApiError> {
        let (_session, mut state) = self.locked(id, || options.clone()).await?;
        if state
            .shell
            .as_ref()
            .is_some_and(|shell| shell.exit_code().is_none())
        {
            return Err(ApiError::SessionAlreadyExists {
                session_id: id.to_owned(),
            });
        }
        let shell = Shell::spawn(sandbox, &options).map_err(|error| {
            ApiError::Internal(format!("Failed to create session '{id}': {error}"))
        })?;
        state.options = options;
        state.shell = Some(shell);
        Ok(())
    }

    /// `session/list`: the ids, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.sessions().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// `session/delete`: waits for the running foreground command, then kills the shell and
    /// everything it started.
    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        let session =
            self.sessions()
                .get(id)
                .cloned()
                .ok_or_else(|| ApiError::SessionNotFound {
                    session_id: id.to_owned(),
                })?;
        let mut state = Arc::clone(&session.state).lock_owned().await;
        if let Some(shell) = state.shell.take() {
            shell.terminate().await;
        }
        state.retired = true;
        self.forget(id, &session);
        Ok(())
    }

    /// Runs a foreground command in session `id` (created on first use).
    pub async fn exec(
        &self,
        sandbox: &SandboxEnv,
        id: &str,
        spec: &CommandSpec,
    ) -> Result<ExecOutput, ApiError> {
        let (session, mut state) = self
            .locked(id, || SessionOptions::for_first_command(spec))
            .await?;
        let result = session.exec(sandbox, &mut state, spec).await;
        if state.retired {
            self.forget(id, &session);
        }
        result.map_err(|error| error.into_api(id, &spec.command, CommandCall::Run))
    }

    /// Starts a background command in session `id` (created on first use).
    pub async fn start(
        &self,
        sandbox: &SandboxEnv,
        id: &str,
        spec: &CommandSpec,
    ) -> Result<StartedCommand, ApiError> {
        let (session, state) = self
            .locked(id, || SessionOptions::for_first_command(spec))
            .await?;
        let result = session.start(sandbox, state, spec).await;
        if matches!(
            result,
            Err(SessionError::Terminated(_) | SessionError::Destroyed)
        ) {
            self.forget(id, &session);
        }
        result.map_err(|error| error.into_api(id, &spec.command, CommandCall::Start))
    }

    /// Marks every session destroyed and forgets them; the caller then kills their processes.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        for (_, session) in self.sessions().drain() {
            session.destroyed.store(true, Ordering::Relaxed);
        }
    }
}
