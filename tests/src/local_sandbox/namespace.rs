//! The per-process filesystem view: each sandbox process runs in its own private mount namespace
//! with the sandbox's state directories bind-mounted on `/workspace` and `/tmp`. Everything here
//! that runs in the child (between fork and exec) is async-signal-safe: no allocation, no locks,
//! only raw syscalls on strings prepared before the fork.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::ptr;

use super::paths::{TMP, WORKSPACE, c_path};
use super::reaper::Reaper;

const ROOT: &CStr = c"/";
const WORKSPACE_TARGET: &CStr = c"/workspace";
const TMP_TARGET: &CStr = c"/tmp";

/// The bind mounts that give a process its sandbox's `/workspace` and `/tmp`.
#[derive(Debug, Clone)]
pub struct MountPlan {
    workspace: CString,
    tmp: CString,
}

impl MountPlan {
    /// Mounts `workspace` on `/workspace` and `tmp` on `/tmp`.
    pub fn new(workspace: &Path, tmp: &Path) -> io::Result<Self> {
        Ok(Self {
            workspace: c_path(workspace)?,
            tmp: c_path(tmp)?,
        })
    }

    /// Enters a private mount namespace and applies the bind mounts. Runs in the forked child:
    /// only async-signal-safe calls. `/workspace` is mounted first so that a state directory
    /// under `/tmp` is still reachable when its `tmp` source is resolved.
    pub fn enter(&self) -> io::Result<()> {
        // SAFETY: plain syscalls on NUL-terminated strings that outlive the calls.
        unsafe {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                ptr::null(),
                ROOT.as_ptr(),
                ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                ptr::null(),
            ))?;
            for (source, target) in [(&self.workspace, WORKSPACE_TARGET), (&self.tmp, TMP_TARGET)] {
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    ptr::null(),
                ))?;
            }
        }
        Ok(())
    }
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Checks whether this host lets us isolate sandboxes: creates the `/workspace` mountpoint if it is
/// missing, then runs `true` in a namespace with `scratch` bind-mounted on both mountpoints.
/// `Err` explains why isolation is unavailable.
pub async fn probe(reaper: &Reaper, scratch: &Path) -> Result<(), String> {
    for mountpoint in [WORKSPACE, TMP] {
        std::fs::create_dir_all(mountpoint)
            .map_err(|error| format!("cannot create mountpoint {mountpoint}: {error}"))?;
    }
    let plan = MountPlan::new(scratch, scratch).map_err(|error| error.to_string())?;
    let mut command = Command::new("true");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: `enter` only makes async-signal-safe syscalls.
    unsafe { command.pre_exec(move || plan.enter()) };
    let (_child, exit) = reaper
        .spawn(&mut command)
        .map_err(|error| format!("cannot enter a private mount namespace: {error}"))?;
    match exit.await {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("namespace probe exited with {status}")),
        Err(_) => Err("namespace probe was never reaped".to_owned()),
    }
}
