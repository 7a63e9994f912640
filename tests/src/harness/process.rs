//! A child process that owns its process group, so stopping it also stops everything it spawned.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A running process group; dropping it stops the whole group.
#[derive(Debug)]
pub struct ProcessGroup {
    name: &'static str,
    child: Child,
    stopped: bool,
}

impl ProcessGroup {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(name: &'static str, mut command: Command) -> io::Result<Self> {
        command.process_group(0);
        let child = command.spawn().map_err(|error| {
            io::Error::new(error.kind(), format!("cannot start {name}: {error}"))
        })?;
        Ok(Self {
            name,
            child,
            stopped: false,
        })
    }

    /// Like [`Self::spawn`], and the kernel also sends the leader SIGTERM when the calling thread
    /// ends, so the group cannot outlive a program that dies without unwinding (killed, aborted).
    /// Call it from the thread that lives as long as the program (its main thread).
    pub fn spawn_bound_to_caller(name: &'static str, mut command: Command) -> io::Result<Self> {
        // SAFETY: the closure only calls prctl, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::spawn(name, command)
    }

    /// Process id of the group leader (also the group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the leader has exited, and how.
    pub fn exit_status(&mut self) -> io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }

    /// SIGTERM to the group; after `grace`, SIGKILL to whatever is left. Returns once the group is
    /// empty (or after a final bounded wait, which is logged).
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let group = -(self.child.id() as libc::pid_t);
        signal(group, libc::SIGTERM);
        if !self.wait_until_empty(grace) {
            signal(group, libc::SIGKILL);
            if !self.wait_until_empty(Duration::from_secs(5)) {
                eprintln!("{}: process group {} survived SIGKILL", self.name, -group);
            }
        }
    }

    /// Polls until the leader is reaped and no process of the group remains.
    fn wait_until_empty(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let group = -(self.child.id() as libc::pid_t);
        loop {
            let leader_gone = !matches!(self.child.try_wait(), Ok(None));
            // SAFETY: signal 0 only checks for existence; no signal is delivered.
            let group_empty = unsafe { libc::kill(group, 0) } == -1;
            if leader_gone && group_empty {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(8));
    }
}

fn signal(target: libc::pid_t, signal: libc::c_int) {
    // SAFETY: sending a signal to a process group we created has no memory-safety implications.
    unsafe {
        libc::kill(target, signal);
    }
}
