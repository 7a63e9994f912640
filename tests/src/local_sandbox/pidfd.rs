//! Waiting for a process that is not our child to exit (a session's background subshell is the
//! session shell's child), through a Linux pidfd.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A handle that becomes readable when its process exits.
#[derive(Debug)]
pub struct PidFd(AsyncFd<OwnedFd>);

impl PidFd {
    /// Opens a pidfd for `pid`; fails with `ESRCH` if the process is already gone.
    pub fn open(pid: u32) -> io::Result<Self> {
        let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: `fd` is a descriptor we just opened and nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the `OwnedFd` keeps the descriptor open, unchanged, for the `AsyncFd`'s lifetime.
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map(Self)
            .map_err(|error| error.into_parts().1)
    }

    /// Resolves once the process has exited.
    pub async fn exited(&self) {
        if let Err(error) = self.0.readable().await {
            tracing::debug!(%error, "pidfd wait failed; treating the process as gone");
        }
    }
}
