//! Laying a tar stream from an untrusted sandbox down on the host, inside one directory.
//!
//! The sandbox runs an AI agent's code, and its `tar` may be anything, so every member is checked
//! before a byte of it is written:
//!
//! - names must be relative, without `..`;
//! - only regular files, directories, symlinks and hard links are accepted (no devices, no FIFOs,
//!   no sparse files);
//! - permission bits lose setuid, setgid and sticky;
//! - sizes are counted against a cap before the content is read, and header extensions (long
//!   names, PAX records) may not exceed 1 MiB.
//!
//! Symlinks are created last, once every other member is in place. Each one must then resolve, on
//! the real tree, to somewhere inside the target, so no member is ever written through a link.
//! Hard links must name a regular file this archive already laid down; it is copied, so no inode
//! outside the target is shared. When anything is refused, everything this archive created is
//! removed again.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

mod guard;

use guard::ExtensionGuard;

/// Most symlinks followed while resolving one link (the kernel's limit).
const MAX_LINK_HOPS: usize = 40;

/// Why an archive was refused; the message names the member.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A member the sandbox must not produce.
    #[error("the sandbox sent a refused tar member {member:?}: {reason}")]
    Refused {
        /// The member's name as the archive gives it.
        member: String,
        /// Why.
        reason: String,
    },
    /// More bytes than the configured cap.
    #[error(
        "the sandbox's files exceed the sync cap of {cap} bytes (syncMaxBytes) at member {member:?} ({size} bytes)"
    )]
    TooLarge {
        /// The member that crossed the cap.
        member: String,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// The archive itself is unreadable.
    #[error("the sandbox's tar stream is unreadable: {0}")]
    Corrupt(String),
    /// Writing on the host failed.
    #[error("writing {path} on the host failed: {error}")]
    Write {
        /// Where.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
}

/// What an archive laid down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files (hard links included, as copies).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Unpacks tar streams into `root` (which must exist), at most `cap` bytes of content.
#[derive(Debug)]
pub struct Unpacker {
    root: PathBuf,
    cap: u64,
}

/// What one run created, so a refusal can take it back.
#[derive(Default)]
struct Created {
    /// In creation order.
    paths: Vec<PathBuf>,
    /// Regular files of this archive, by name relative to the root (hard-link sources).
    files: HashSet<PathBuf>,
    /// Directories and the mode they get once everything is in.
    directories: Vec<(PathBuf, u32)>,
    /// Symlinks to create at the end: name, target, member name.
    symlinks: Vec<(PathBuf, PathBuf, String)>,
}

impl Unpacker {
    /// `root` is the mapping's host target; `cap` the configured `syncMaxBytes`.
    pub fn new(root: &Path, cap: u64) -> Result<Self, UnpackError> {
        let root = fs::canonicalize(root).map_err(|error| UnpackError::Write {
            path: root.to_owned(),
            error,
        })?;
        Ok(Self { root, cap })
    }

    /// Reads the whole archive from `reader` and lays it down; on any error nothing it created is
    /// left.
    pub fn unpack(&self, reader: impl Read) -> Result<Unpacked, UnpackError> {
        let mut created = Created::default();
        let outcome = self.unpack_into(reader, &mut created);
        if outcome.is_err() {
            for path in created.paths.iter().rev() {
                let removed = match fs::symlink_metadata(path) {
                    Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
                    Ok(_) => fs::remove_file(path),
                    Err(_) => Ok(()),
                };
                if let Err(error) = removed {
                    tracing::warn!(path = %path.display(), %error, "removing a refused member");
                }
            }
        }
        outcome
    }

    fn unpack_into(
        &self,
        reader: impl Read,
        created: &mut Created,
    ) -> Result<Unpacked, UnpackError> {
        let mut archive = tar::Archive::new(ExtensionGuard::new(reader));
        let mut unpacked = Unpacked::default();
        let entries = archive.entries().map_err(corrupt)?;
        for entry in entries {
            let mut entry = entry.map_err(corrupt)?;
            let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let refuse = |reason: &str| UnpackError::Refused {
                member: member.clone(),
                reason: reason.to_owned(),
            };
            let Some(relative) = member_path(&entry.path_bytes()).map_err(&refuse)? else {
                continue;
            };
            let path = self.root.join(&relative);
            let mode = entry.header().mode().map_err(corrupt)? & 0o777;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.header().size().map_err(corrupt)?;
                    self.charge(&member, size, &mut unpacked)?;
                    self.prepare_parent(&relative, &member, created)?;
                    write_file(&path, mode, &mut entry, size, &member)?;
                    created.paths.push(path);
                    created.files.insert(relative);
                }
                tar::EntryType::Directory => {
                    self.prepare_parent(&relative, &member, created)?;
                    make_directory(&path, &member, created)?;
                    created.directories.push((path, mode));
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| refuse("a symlink without a target"))?;
                    let target = PathBuf::from(OsString::from(
                        String::from_utf8_lossy(&target).into_owned(),
                    ));
                    if target.is_absolute() {
                        return Err(refuse(&format!(
                            "a symlink to the absolute path {}, outside the target",
                            target.display()
                        )));
                    }
                    self.prepare_parent(&relative, &member, created)?;
                    created.symlinks.push((relative, target, member.clone()));
                }
                tar::EntryType::Link => {
                    let source = entry
                        .link_name_bytes()
                        .ok_or_else(|| refuse("a hard link without a target"))?;
                    let source = member_path(&source)
                        .map_err(|reason| refuse(&format!("a hard link whose target is {reason}")))?
                        .filter(|source| created.files.contains(source))
                        .ok_or_else(|| {
                            refuse("a hard link to something that is not a file of this archive")
                        })?;
                    let size = fs::metadata(self.root.join(&source))
                        .map_err(|error| write_error(&path, error))?
                        .len();
                    self.charge(&member, size, &mut unpacked)?;
                    self.prepare_parent(&relative, &member, created)?;
                    let mut original = File::open(self.root.join(&source))
                        .map_err(|error| write_error(&path, error))?;
                    write_file(&path, mode, &mut original, size, &member)?;
                    created.paths.push(path);
                    created.files.insert(relative);
                }
                tar::EntryType::Char | tar::EntryType::Block => {
                    return Err(refuse("a device file"));
                }
                tar::EntryType::Fifo => return Err(refuse("a FIFO")),
                tar::EntryType::GNUSparse => return Err(refuse("a sparse file")),
                other => {
                    return Err(refuse(&format!("an unsupported entry type {other:?}")));
                }
            }
        }
        self.make_symlinks(created)?;
        for (path, mode) in created.directories.iter().rev() {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .map_err(|error| write_error(path, error))?;
        }
        Ok(unpacked)
    }

    /// Counts `size` bytes of `member` against the cap.
    fn charge(&self, member: &str, size: u64, unpacked: &mut Unpacked) -> Result<(), UnpackError> {
        let total = unpacked.bytes.saturating_add(size);
        if total > self.cap {
            return Err(UnpackError::TooLarge {
                member: member.to_owned(),
                size,
                cap: self.cap,
            });
        }
        unpacked.bytes = total;
        unpacked.files += 1;
        Ok(())
    }

    /// Creates the missing directories above `relative`, refusing to go through anything that
    /// is not a real directory (a symlink, a file).
    fn prepare_parent(
        &self,
        relative: &Path,
        member: &str,
        created: &mut Created,
    ) -> Result<(), UnpackError> {
        let mut current = self.root.clone();
        let Some(parent) = relative.parent() else {
            return Ok(());
        };
        for component in parent.components() {
            current.push(component);
            match fs::symlink_metadata(&current) {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackError::Refused {
                        member: member.to_owned(),
                        reason: format!(
                            "its parent {} is not a directory (a member may never be written through a link)",
                            current.display()
                        ),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    make_directory(&current, member, created)?;
                }
                Err(error) => return Err(write_error(&current, error)),
            }
        }
        Ok(())
    }

    /// Creates the deferred symlinks and checks, on the finished tree, that each resolves inside
    /// the root.
    fn make_symlinks(&self, created: &mut Created) -> Result<(), UnpackError> {
        let symlinks = std::mem::take(&mut created.symlinks);
        for (relative, target, member) in &symlinks {
            let path = self.root.join(relative);
            if fs::symlink_metadata(&path).is_ok() {
                return Err(UnpackError::Refused {
                    member: member.clone(),
                    reason: "a symlink where the archive already put something else".into(),
                });
            }
            std::os::unix::fs::symlink(target, &path).map_err(|error| write_error(&path, error))?;
            created.paths.push(path);
        }
        for (relative, target, member) in &symlinks {
            if !self.resolves_inside(relative) {
                return Err(UnpackError::Refused {
                    member: member.clone(),
                    reason: format!(
                        "a symlink to {} resolves outside the target",
                        target.display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether `relative` resolves, following every symlink on the way as the kernel would,
    /// to a place inside the root.
    fn resolves_inside(&self, relative: &Path) -> bool {
        let mut pending: VecDeque<OsString> = relative
            .components()
            .map(|component| component.as_os_str().to_owned())
            .collect();
        let mut inside: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(name) = pending.pop_front() {
            match name.to_str() {
                Some(".") | Some("") => continue,
                Some("..") => {
                    if inside.pop().is_none() {
                        return false;
                    }
                    continue;
                }
                _ => {}
            }
            inside.push(name);
            let path: PathBuf = std::iter::once(self.root.as_os_str().to_owned())
                .chain(inside.iter().cloned())
                .collect();
            let Ok(metadata) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !metadata.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            let Ok(target) = fs::read_link(&path) else {
                return false;
            };
            if hops > MAX_LINK_HOPS || target.is_absolute() {
                return false;
            }
            inside.pop();
            for component in target.components().rev() {
                pending.push_front(component.as_os_str().to_owned());
            }
        }
        true
    }
}

/// A member's name as a path below the root: `Ok(None)` for the root itself (`.`, `./`), an error
/// sentence for names that could escape it.
fn member_path(name: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    let name = std::str::from_utf8(name).map_err(|_| "a name that is not UTF-8")?;
    if name.contains('\0') {
        return Err("a name with a NUL byte");
    }
    let path = Path::new(name);
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("a name with a '..' component"),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute name"),
        }
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

/// Writes exactly `size` bytes of `content` to a new file at `path`; `create_new` never follows a
/// link at `path`.
fn write_file(
    path: &Path,
    mode: u32,
    content: &mut impl Read,
    size: u64,
    member: &str,
) -> Result<(), UnpackError> {
    if let Ok(existing) = fs::symlink_metadata(path) {
        if !existing.is_file() {
            return Err(UnpackError::Refused {
                member: member.to_owned(),
                reason: "a file where the archive already put a directory or link".into(),
            });
        }
        fs::remove_file(path).map_err(|error| write_error(path, error))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode | 0o600)
        .open(path)
        .map_err(|error| write_error(path, error))?;
    let written = match io::copy(&mut content.take(size), &mut file) {
        Ok(copied) if copied == size => file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|error| write_error(path, error)),
        Ok(copied) => Err(UnpackError::Corrupt(format!(
            "member {member:?} ends after {copied} of its {size} bytes"
        ))),
        Err(error) => Err(corrupt(error)),
    };
    if written.is_err() {
        drop(fs::remove_file(path));
    }
    written
}

/// Creates one directory (kept writable until the end).
fn make_directory(path: &Path, member: &str, created: &mut Created) -> Result<(), UnpackError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(UnpackError::Refused {
            member: member.to_owned(),
            reason: format!("{} exists and is not a directory", path.display()),
        }),
        Err(_) => {
            fs::create_dir(path).map_err(|error| write_error(path, error))?;
            created.paths.push(path.to_owned());
            Ok(())
        }
    }
}

fn corrupt(error: io::Error) -> UnpackError {
    UnpackError::Corrupt(error.to_string())
}

fn write_error(path: &Path, error: io::Error) -> UnpackError {
    UnpackError::Write {
        path: path.to_owned(),
        error,
    }
}

#[cfg(test)]
mod tests;
