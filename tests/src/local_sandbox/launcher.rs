//! Spawning every sandbox process the same way: `bash` with a clean environment (plus markers
//! that let leaked processes be found), in its own process group, inside the sandbox's mount
//! namespace when isolation is active, and reaped by the [`Reaper`].

use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::ids::SandboxId;
use super::namespace::MountPlan;
use super::paths::{SandboxDirs, WORKSPACE};
use super::proctree::Targets;
use super::reaper::Reaper;

/// Environment variable naming the server's state directory in every sandbox process.
pub const STATE_DIR_VAR: &str = "LOCAL_SANDBOX_STATE_DIR";
/// Environment variable naming the sandbox in every sandbox process.
pub const SANDBOX_ID_VAR: &str = "LOCAL_SANDBOX_ID";

/// Spawns sandbox processes.
#[derive(Debug)]
pub struct Launcher {
    reaper: Arc<Reaper>,
    state_dir: PathBuf,
    isolated: bool,
    path: OsString,
}

/// One process to start.
#[derive(Debug)]
pub struct LaunchSpec<'a> {
    /// Arguments after `bash`.
    pub args: &'a [&'a str],
    /// Working directory, as a sandbox path.
    pub cwd: &'a str,
    /// Start in `$HOME` instead of failing when `cwd` does not exist (what session shells do).
    pub cwd_fallback: bool,
    /// Variables on top of the base environment.
    pub env: &'a [(String, String)],
    /// Standard input.
    pub stdin: Stdio,
    /// Standard output.
    pub stdout: Stdio,
    /// Standard error.
    pub stderr: Stdio,
}

/// A started process and its exit status, delivered by the reaper.
#[derive(Debug)]
pub struct Launched {
    /// The child, for its pid and pipes (never waited on directly).
    pub child: Child,
    /// Resolves once the reaper has collected the child.
    pub exit: oneshot::Receiver<ExitStatus>,
}

impl Launcher {
    /// A launcher for sandboxes under `state_dir`; `isolated` selects mount namespaces.
    pub fn new(reaper: Arc<Reaper>, state_dir: PathBuf, isolated: bool) -> Self {
        Self {
            reaper,
            state_dir,
            isolated,
            path: std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        }
    }

    /// Whether sandbox processes get a private mount namespace.
    pub fn isolated(&self) -> bool {
        self.isolated
    }

    /// The state directory (canonical).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Every process of sandbox `id` (of every sandbox if `None`), found by the environment
    /// markers each of them inherits.
    pub fn processes_of(&self, id: Option<&SandboxId>) -> Targets {
        let mut markers = vec![(
            STATE_DIR_VAR.to_owned(),
            self.state_dir.to_string_lossy().into_owned(),
        )];
        markers.extend(id.map(|id| (SANDBOX_ID_VAR.to_owned(), id.to_string())));
        Targets::Marked(markers)
    }

    /// Starts `bash` for sandbox `id` as described by `spec`.
    pub fn launch(
        &self,
        id: &SandboxId,
        dirs: &SandboxDirs,
        spec: LaunchSpec<'_>,
    ) -> io::Result<Launched> {
        let home = dirs.process_path(WORKSPACE);
        let setup = ChildSetup {
            mounts: self
                .isolated
                .then(|| MountPlan::new(dirs.workspace(), dirs.tmp()))
                .transpose()?,
            cwd: CString::new(dirs.process_path(spec.cwd))?,
            fallback: spec
                .cwd_fallback
                .then(|| CString::new(home.clone()))
                .transpose()?,
        };
        let mut command = Command::new("bash");
        command
            .args(spec.args)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env(STATE_DIR_VAR, &self.state_dir)
            .env(SANDBOX_ID_VAR, id.as_str())
            .envs(spec.env.iter().map(|(name, value)| (name, value)))
            .stdin(spec.stdin)
            .stdout(spec.stdout)
            .stderr(spec.stderr)
            .process_group(0);
        // SAFETY: `ChildSetup::apply` only makes async-signal-safe syscalls.
        unsafe { command.pre_exec(move || setup.apply()) };
        let (child, exit) = self.reaper.spawn(&mut command)?;
        Ok(Launched { child, exit })
    }
}

/// What the forked child does before exec; everything is prepared before the fork.
struct ChildSetup {
    mounts: Option<MountPlan>,
    cwd: CString,
    fallback: Option<CString>,
}

impl ChildSetup {
    /// Runs in the forked child: only async-signal-safe calls. The working directory is entered
    /// here, after the mounts, so that `/workspace` means the sandbox's.
    fn apply(&self) -> io::Result<()> {
        if let Some(mounts) = &self.mounts {
            mounts.enter()?;
        }
        // SAFETY: chdir on NUL-terminated strings that outlive the calls.
        unsafe {
            if libc::chdir(self.cwd.as_ptr()) == 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            match &self.fallback {
                Some(home) if libc::chdir(home.as_ptr()) == 0 => Ok(()),
                _ => Err(error),
            }
        }
    }
}
