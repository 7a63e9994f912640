//! The server is a child subreaper and reaps every child itself, so no sandbox process is ever
//! left a zombie: one task loops `waitpid(-1, WNOHANG)` on each SIGCHLD and hands each status to
//! whoever spawned that pid; statuses of orphans reparented to us are discarded.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

/// Routes exit statuses from the SIGCHLD loop to the tasks that spawned the children.
#[derive(Debug, Default)]
pub struct Reaper {
    waiters: Mutex<HashMap<libc::pid_t, oneshot::Sender<ExitStatus>>>,
}

impl Reaper {
    /// Makes this process a child subreaper (orphaned descendants come to us, not to init) and
    /// starts the reaping task. Must run inside the tokio runtime, before any child is spawned.
    pub fn install() -> io::Result<Arc<Self>> {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Arc::new(Self::default());
        let reaping = Arc::clone(&reaper);
        tokio::spawn(async move {
            while sigchld.recv().await.is_some() {
                reaping.reap();
            }
        });
        Ok(reaper)
    }

    /// Spawns `command` and registers its pid while holding the lock the reaper takes around
    /// `waitpid`, so the child cannot be reaped before its waiter exists.
    pub fn spawn(
        &self,
        command: &mut Command,
    ) -> io::Result<(Child, oneshot::Receiver<ExitStatus>)> {
        let mut waiters = self.waiters();
        let child = command.spawn()?;
        let (sender, receiver) = oneshot::channel();
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| io::Error::other("child pid does not fit pid_t"))?;
        waiters.insert(pid, sender);
        Ok((child, receiver))
    }

    fn reap(&self) {
        let mut waiters = self.waiters();
        loop {
            let mut status = 0;
            // SAFETY: waitpid only writes the status integer we pass.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if let Some(waiter) = waiters.remove(&pid) {
                // The spawner may have stopped caring; nothing to do then.
                let _ = waiter.send(ExitStatus::from_raw(status));
            }
        }
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<libc::pid_t, oneshot::Sender<ExitStatus>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A shell-style exit code: the exit status, or 128 + the signal that killed the process.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::exit_code;

    #[test]
    fn signals_become_128_plus_signal() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }
}
