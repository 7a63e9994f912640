//! Where a sandbox lives on the host, and how the sandbox paths that API calls and commands use
//! (`/workspace/…`, `/tmp/…`) map onto it.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ids::SandboxId;

/// The sandbox's working directory, bind-mounted from `<state>/<id>/workspace`.
pub const WORKSPACE: &str = "/workspace";
/// The sandbox's temporary directory, bind-mounted from `<state>/<id>/tmp`.
pub const TMP: &str = "/tmp";
/// Directory (inside the sandbox's `/tmp`) that holds the per-command FIFOs and scripts, like the
/// real container's `/tmp/session-*` directories.
const CONTROL: &str = ".local-sandbox";

/// A host path as a C string (for syscalls), refusing interior NULs.
pub fn c_path(path: &Path) -> io::Result<CString> {
    Ok(CString::new(path.as_os_str().as_bytes())?)
}

/// Why a sandbox path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// The path was empty.
    #[error("Path must be a non-empty string")]
    Empty,
    /// The path contained a NUL byte.
    #[error("Path contains null bytes")]
    Nul,
    /// `..` climbed above `/`.
    #[error("Path '{0}' climbs above the filesystem root with '..'")]
    AboveRoot(String),
    /// The path is outside the two directories a sandbox has.
    #[error(
        "Path '{0}' is outside the sandbox: local-sandbox only serves paths under /workspace and /tmp"
    )]
    Outside(String),
    /// A symlink inside the sandbox points out of it.
    #[error("Path '{0}' resolves through a symlink to a location outside the sandbox")]
    SymlinkEscape(String),
}

/// The host directories backing one sandbox, and how its processes see them.
#[derive(Debug, Clone)]
pub struct SandboxDirs {
    root: PathBuf,
    workspace: PathBuf,
    tmp: PathBuf,
    isolated: bool,
}

impl SandboxDirs {
    /// Directories of sandbox `id` under `state_dir` (which must be canonical); `isolated` tells
    /// whether its processes see them at `/workspace` and `/tmp` (private mount namespace) or only
    /// at their host paths.
    pub fn new(state_dir: &Path, id: &SandboxId, isolated: bool) -> Self {
        let root = state_dir.join(id.as_str());
        Self {
            workspace: root.join("workspace"),
            tmp: root.join("tmp"),
            root,
            isolated,
        }
    }

    /// Creates the directories (`/tmp` world-writable and sticky, as on any Linux system) and
    /// clears command control files left behind by an earlier server.
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.workspace)?;
        fs::create_dir_all(&self.tmp)?;
        fs::set_permissions(&self.tmp, fs::Permissions::from_mode(0o1777))?;
        let control = self.control_dir();
        if control.exists() {
            fs::remove_dir_all(&control)?;
        }
        fs::DirBuilder::new().mode(0o700).create(control)
    }

    /// Host directory backing the sandbox's `/workspace`.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Host directory backing the sandbox's `/tmp`.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// Host directory for per-command control files.
    pub fn control_dir(&self) -> PathBuf {
        self.tmp.join(CONTROL)
    }

    /// How the sandbox's processes name a host path inside the sandbox's `/tmp` or `/workspace`.
    pub fn process_view_of(&self, host: &Path) -> String {
        let view = match (
            self.isolated,
            host.strip_prefix(&self.tmp),
            host.strip_prefix(&self.workspace),
        ) {
            (true, Ok(rest), _) => Path::new(TMP).join(rest),
            (true, _, Ok(rest)) => Path::new(WORKSPACE).join(rest),
            _ => host.to_path_buf(),
        };
        view.to_string_lossy().into_owned()
    }

    /// How the sandbox's processes name sandbox path `path` (a command's `cwd`, `HOME`): the same
    /// path under isolation, else the host path it maps to (other paths stay as they are).
    pub fn process_path(&self, path: &str) -> String {
        match self.host_path(path) {
            Ok(host) if !self.isolated => host.to_string_lossy().into_owned(),
            _ => path.to_owned(),
        }
    }

    /// Maps a sandbox path to the host path backing it, after lexical normalisation; relative
    /// paths are taken from `/workspace`.
    pub fn host_path(&self, path: &str) -> Result<PathBuf, PathError> {
        let components = normalise(path)?;
        let (base, rest) = match components.split_first() {
            Some((&"workspace", rest)) => (&self.workspace, rest),
            Some((&"tmp", rest)) => (&self.tmp, rest),
            _ => return Err(PathError::Outside(path.to_owned())),
        };
        Ok(rest.iter().fold(base.clone(), |host, part| host.join(part)))
    }

    /// Like [`Self::host_path`], and also checks that no symlink on the way leads out of the
    /// sandbox (the deepest existing ancestor, resolved, must stay under `<state>/<id>`).
    pub fn contained_host_path(&self, path: &str) -> Result<PathBuf, PathError> {
        let host = self.host_path(path)?;
        let escape = || PathError::SymlinkEscape(path.to_owned());
        let resolved = host
            .ancestors()
            .find_map(|ancestor| ancestor.canonicalize().ok())
            .ok_or_else(escape)?;
        if resolved.starts_with(&self.root) {
            Ok(host)
        } else {
            Err(escape())
        }
    }
}

/// Splits `path` into normalised components: `.` dropped, `..` removes the previous component;
/// relative paths start at `/workspace`.
fn normalise(path: &str) -> Result<Vec<&str>, PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut components = if path.starts_with('/') {
        Vec::new()
    } else {
        vec!["workspace"]
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                components
                    .pop()
                    .ok_or_else(|| PathError::AboveRoot(path.to_owned()))?;
            }
            other => components.push(other),
        }
    }
    Ok(components)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{PathError, SandboxDirs};
    use crate::local_sandbox::ids::SandboxId;

    fn dirs(isolated: bool) -> SandboxDirs {
        let id = SandboxId::parse("sb").expect("valid id");
        SandboxDirs::new(Path::new("/state"), &id, isolated)
    }

    #[test]
    fn maps_workspace_and_tmp_after_normalising() {
        let dirs = dirs(true);
        let cases = [
            ("/workspace", "/state/sb/workspace"),
            ("/workspace/a/./b/../c/", "/state/sb/workspace/a/c"),
            ("/tmp//x", "/state/sb/tmp/x"),
            ("/workspace/../tmp/y", "/state/sb/tmp/y"),
            ("notes/todo.txt", "/state/sb/workspace/notes/todo.txt"),
        ];
        for (sandbox, host) in cases {
            assert_eq!(
                dirs.host_path(sandbox),
                Ok(PathBuf::from(host)),
                "{sandbox}"
            );
        }
    }

    #[test]
    fn refuses_paths_outside_the_sandbox() {
        let dirs = dirs(true);
        for outside in [
            "/etc/passwd",
            "/workspace/../etc",
            "/workspacex/a",
            "/",
            "../x",
        ] {
            assert!(
                matches!(dirs.host_path(outside), Err(PathError::Outside(_))),
                "{outside}"
            );
        }
        assert!(matches!(
            dirs.host_path("/workspace/../../x"),
            Err(PathError::AboveRoot(_))
        ));
        assert_eq!(dirs.host_path(""), Err(PathError::Empty));
        assert_eq!(dirs.host_path("/tmp/a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn process_view_depends_on_isolation() {
        let control = Path::new("/state/sb/tmp/.local-sandbox/c1");
        assert_eq!(
            dirs(true).process_view_of(control),
            "/tmp/.local-sandbox/c1"
        );
        assert_eq!(
            dirs(false).process_view_of(control),
            "/state/sb/tmp/.local-sandbox/c1"
        );
        assert_eq!(dirs(true).process_path("/workspace/x"), "/workspace/x");
        assert_eq!(
            dirs(false).process_path("/workspace/x"),
            "/state/sb/workspace/x"
        );
        assert_eq!(dirs(false).process_path("/usr"), "/usr");
    }
}
