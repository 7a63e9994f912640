//! One sandbox (one "container"): its directories, sessions and processes, and the routing of a
//! command to a session shell or a one-shot `bash -c`.

use std::io;
use std::sync::Arc;

use super::command::{CommandSpec, ExecOutput, StartedCommand};
use super::errors::{ApiError, ExecTarget};
use super::ids::SandboxId;
use super::launcher::{LaunchSpec, Launched, Launcher};
use super::oneshot;
use super::paths::SandboxDirs;
use super::process::ProcessRegistry;
use super::proctree::terminate;
use super::session::SessionManager;

/// What every part of a sandbox needs to start processes in it.
#[derive(Debug)]
pub struct SandboxEnv {
    /// The sandbox id.
    pub id: SandboxId,
    /// Its directories.
    pub dirs: SandboxDirs,
    launcher: Arc<Launcher>,
}

impl SandboxEnv {
    /// Starts a process in this sandbox.
    pub fn launch(&self, spec: LaunchSpec<'_>) -> io::Result<Launched> {
        self.launcher.launch(&self.id, &self.dirs, spec)
    }
}

/// A live sandbox.
#[derive(Debug)]
pub struct Sandbox {
    env: SandboxEnv,
    sessions: SessionManager,
    processes: ProcessRegistry,
}

impl Sandbox {
    /// Creates the sandbox's directories.
    pub fn create(id: SandboxId, launcher: Arc<Launcher>) -> io::Result<Self> {
        let dirs = SandboxDirs::new(launcher.state_dir(), &id, launcher.isolated());
        dirs.create()?;
        Ok(Self {
            env: SandboxEnv { id, dirs, launcher },
            sessions: SessionManager::default(),
            processes: ProcessRegistry::default(),
        })
    }

    /// Its environment.
    pub fn env(&self) -> &SandboxEnv {
        &self.env
    }

    /// Its directories.
    pub fn dirs(&self) -> &SandboxDirs {
        &self.env.dirs
    }

    /// Its sessions.
    pub fn sessions(&self) -> &SessionManager {
        &self.sessions
    }

    /// Its background processes.
    pub fn processes(&self) -> &ProcessRegistry {
        &self.processes
    }

    /// Runs a command to completion where `target` says.
    pub async fn execute(
        &self,
        target: &ExecTarget,
        spec: &CommandSpec,
    ) -> Result<ExecOutput, ApiError> {
        match target {
            ExecTarget::Session(id) => self.sessions.exec(&self.env, id, spec).await,
            ExecTarget::Sessionless => oneshot::run(&self.env, spec).await,
        }
    }

    /// Starts a command in the background where `target` says.
    pub async fn start(
        &self,
        target: &ExecTarget,
        spec: &CommandSpec,
    ) -> Result<StartedCommand, ApiError> {
        match target {
            ExecTarget::Session(id) => self.sessions.start(&self.env, id, spec).await,
            ExecTarget::Sessionless => oneshot::start(&self.env, spec),
        }
    }

    /// Kills every process of the sandbox (sessions, one-shot commands, background processes),
    /// waiting until they are gone; in-flight session commands report `SESSION_DESTROYED`.
    pub async fn shut_down(&self) {
        self.sessions.close();
        terminate(&self.env.launcher.processes_of(Some(&self.env.id)), |_| {}).await;
    }
}
