//! The real Paperclip server (`paperclipai`, pinned in `tests/host/package-lock.json`) as a test
//! component: where `cargo xtask setup` installs it, and a server started on a free loopback
//! port with a fresh instance in a temporary directory, stopped with its whole process group (embedded PostgreSQL and
//! plugin workers included) when its handle is dropped.
//!
//! Running as root, the server's embedded PostgreSQL runs as the `postgres` user, which must be
//! able to reach both the installed binaries and the data directory: the install lives outside
//! the repository (which may sit under a private home directory), and every directory of an
//! instance is made traversable.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::process::ProcessGroup;
use super::{HarnessError, free_loopback_addr, http_get, prepend_path, repo_root, tail};

/// The pinned `paperclipai` version (also in `tests/host/package.json`).
pub const PAPERCLIP_VERSION: &str = "2026.916.1";
/// Overrides where the host is installed.
pub const INSTALL_DIR_VAR: &str = "PAPERCLIP_HOST_DIR";
/// How long a fresh instance may take to initialise its database and answer `/api/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the server gets to drain runs and stop PostgreSQL after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// File in the install directory naming the lock file it was installed from.
const INSTALLED_MARKER: &str = ".installed-lock-sha256";

/// Where the pinned host is (or will be) installed.
#[derive(Debug, Clone)]
pub struct HostInstall {
    dir: PathBuf,
    lock_digest: String,
}

impl HostInstall {
    /// `$PAPERCLIP_HOST_DIR`, or `/var/tmp/paperclip-cloudflare-bridge-<uid>/host-<version>-<lock
    /// digest>`: shared by every clone on the machine (it is 1.5 GB), and a new lock file gets a
    /// directory of its own.
    pub fn locate() -> Result<Self, HarnessError> {
        let lock = fs::read(Self::lock_file())?;
        let lock_digest = hex::encode(Sha256::digest(&lock));
        let dir = match std::env::var_os(INSTALL_DIR_VAR) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                Self::cache_root().join(format!("host-{PAPERCLIP_VERSION}-{}", &lock_digest[..12]))
            }
        };
        Ok(Self { dir, lock_digest })
    }

    /// The machine-wide directory holding installs and sandbox-visible fixtures.
    pub fn cache_root() -> PathBuf {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        PathBuf::from(format!("/var/tmp/paperclip-cloudflare-bridge-{uid}"))
    }

    /// The pinned manifest and lock file, in the repository.
    pub fn package_dir() -> PathBuf {
        repo_root().join("tests/host")
    }

    fn lock_file() -> PathBuf {
        Self::package_dir().join("package-lock.json")
    }

    /// The install directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `paperclipai` command.
    pub fn cli(&self) -> PathBuf {
        self.dir.join("node_modules/.bin/paperclipai")
    }

    /// Whether a complete install of the current lock file is present.
    pub fn is_installed(&self) -> bool {
        self.cli().exists()
            && fs::read_to_string(self.dir.join(INSTALLED_MARKER))
                .is_ok_and(|digest| digest.trim() == self.lock_digest)
    }

    /// Records that the install of the current lock file completed.
    pub fn mark_installed(&self) -> std::io::Result<()> {
        fs::write(self.dir.join(INSTALLED_MARKER), &self.lock_digest)
    }
}

/// A running Paperclip server; dropping it stops the server, its database and its plugin workers,
/// then removes the instance.
#[derive(Debug)]
pub struct PaperclipServer {
    group: ProcessGroup,
    port: u16,
    log_path: PathBuf,
    home: PathBuf,
    _instance_dir: tempfile::TempDir,
}

impl PaperclipServer {
    /// Starts a server with a fresh instance in a temporary directory and waits until it reports
    /// `ok`.
    pub fn start(install: &HostInstall) -> Result<Self, HarnessError> {
        if !install.is_installed() {
            return Err(HarnessError::Missing(format!(
                "the Paperclip host in {} (run `cargo xtask setup`)",
                install.dir().display()
            )));
        }
        let instance_dir = tempfile::Builder::new()
            .prefix("paperclip-host-")
            .tempdir()?;
        let work_dir = instance_dir.path();
        let home = work_dir.join("home");
        let instance = home.join(".paperclip/instances/default");
        let run_dir = work_dir.join("run");
        let temp_dir = work_dir.join("tmp");
        fs::create_dir_all(&run_dir)?;
        fs::create_dir_all(&temp_dir)?;
        make_traversable(&temp_dir)?;
        fs::create_dir_all(&instance)?;
        for dir in instance
            .ancestors()
            .take_while(|dir| dir.starts_with(work_dir))
        {
            make_traversable(dir)?;
        }
        prepare_database_dir(&instance.join("db"))?;
        let port = free_loopback_addr()?.port();
        let log_path = work_dir.join("server.log");
        let log = File::create(&log_path)?;
        let path = prepend_path(&repo_root().join("node_modules/.bin"));
        let path = format!(
            "{}:{path}",
            install.dir().join("node_modules/.bin").display()
        );
        let mut command = Command::new(install.cli());
        command
            .args(["onboard", "--yes", "--no-install-service"])
            .current_dir(&run_dir)
            .env("PATH", path)
            .env("HOME", &home)
            .env("PAPERCLIP_HOME", home.join(".paperclip"))
            // The host stages files for sandboxes in the temp dir and leaves some behind.
            .env("TMPDIR", &temp_dir)
            .env("PORT", port.to_string())
            .env("PAPERCLIP_TELEMETRY_DISABLED", "1")
            .env("DO_NOT_TRACK", "1")
            .env("NO_COLOR", "1")
            .env("PAPERCLIP_DB_BACKUP_ENABLED", "false")
            .env("PAPERCLIP_ANNOUNCEMENTS_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let group = ProcessGroup::spawn_bound_to_caller("paperclip server", command)?;
        let mut server = Self {
            group,
            port,
            log_path,
            home,
            _instance_dir: instance_dir,
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`, where the board UI is served.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Base URL of the HTTP API.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.url())
    }

    /// The instance's home (`HOME`; `PAPERCLIP_HOME` is its `.paperclip`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Stops the server, PostgreSQL and every plugin worker (dropping does the same).
    pub fn stop(&mut self) {
        self.group.stop(STOP_GRACE);
    }

    fn wait_until_ready(&mut self) -> Result<(), HarnessError> {
        let started = Instant::now();
        let addr = ([127, 0, 0, 1], self.port).into();
        loop {
            let healthy = http_get(addr, "/api/health").is_ok_and(|(status, body)| {
                status == 200
                    && serde_json::from_str::<serde_json::Value>(&body)
                        .is_ok_and(|health| health["status"] == "ok")
            });
            if healthy {
                return Ok(());
            }
            if let Some(status) = self.group.exit_status()? {
                return Err(HarnessError::Exited {
                    name: "paperclip server",
                    status: status.to_string(),
                    log_tail: tail(&self.log(), 40),
                });
            }
            if started.elapsed() >= READY_TIMEOUT {
                return Err(HarnessError::NotReady {
                    name: "paperclip server",
                    seconds: READY_TIMEOUT.as_secs(),
                    log_tail: tail(&self.log(), 40),
                });
            }
            sleep(Duration::from_millis(200));
        }
    }
}

/// Adds `r-x` for everyone, so the `postgres` user can pass through.
fn make_traversable(dir: &Path) -> std::io::Result<()> {
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o005 != 0o005 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o055))?;
    }
    Ok(())
}

/// As root, embedded PostgreSQL runs `initdb` as the `postgres` user without creating or
/// chowning its data directory: it must exist, owned by that user, before the first start.
fn prepare_database_dir(dir: &Path) -> Result<(), HarnessError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let (uid, gid) = postgres_user().ok_or_else(|| {
        HarnessError::Missing(
            "the `postgres` system user, which embedded PostgreSQL needs when run as root (run `cargo xtask setup`)"
                .into(),
        )
    })?;
    fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// The uid and gid of the `postgres` user, if it exists.
pub fn postgres_user() -> Option<(u32, u32)> {
    let name = CString::new("postgres").ok()?;
    // SAFETY: `passwd` is plain data (integers and pointers), for which all zeroes is valid.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the duration of the call; `buffer` is as long as we say.
    let status = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    (status == 0 && !found.is_null()).then_some((entry.pw_uid, entry.pw_gid))
}

impl Drop for PaperclipServer {
    fn drop(&mut self) {
        self.stop();
    }
}
