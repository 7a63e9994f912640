//! Host workspaces for sync tests and benchmarks: a committed git repository of incompressible
//! files, and the digests of a tree for comparing two of them byte for byte.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// Deterministic incompressible bytes.
pub fn noise(length: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(length);
    bytes
}

/// Runs git in `repo` with a fixed identity; returns its stdout.
pub fn git(repo: &Path, args: &[&str]) -> io::Result<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Creates, in the empty directory `repo`, a git repository with one commit of `files` files of
/// `file_bytes` bytes each (`src/dNN/fNNNN.bin`, 50 to a directory) and a README.
pub fn make_git_workspace(repo: &Path, files: usize, file_bytes: usize) -> io::Result<()> {
    for index in 0..files {
        let dir = repo.join(format!("src/d{:02}", index / 50));
        fs::create_dir_all(&dir)?;
        fs::write(
            dir.join(format!("f{index:04}.bin")),
            noise(file_bytes, index as u64),
        )?;
    }
    fs::write(repo.join("README.md"), "a workspace for native sync\n")?;
    git(repo, &["init", "-q", "-b", "main"])?;
    git(repo, &["add", "-A"])?;
    git(repo, &["commit", "-q", "-m", "initial"])?;
    Ok(())
}

/// `./<relative path>` → hex SHA-256 of every file below `root`, except git's and Paperclip's own
/// directories at the top (the form `find . -type f | xargs sha256sum` lists).
pub fn tree_digests(root: &Path) -> io::Result<BTreeMap<String, String>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            let relative = path
                .strip_prefix(root)
                .map_err(io::Error::other)?
                .display()
                .to_string();
            if relative == ".git" || relative == ".paperclip-runtime" {
                continue;
            }
            if fs::symlink_metadata(&path)?.is_dir() {
                walk(root, &path, out)?;
            } else {
                let digest = hex::encode(Sha256::digest(fs::read(&path)?));
                out.insert(format!("./{relative}"), digest);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_a_committed_repository_of_distinct_files() {
        let scratch = tempfile::tempdir().expect("scratch");
        make_git_workspace(scratch.path(), 120, 1000).expect("workspace");
        let digests = tree_digests(scratch.path()).expect("digests");
        assert_eq!(digests.len(), 121, "every file and the README, no .git");
        assert!(digests.contains_key("./src/d02/f0119.bin"));
        let distinct: std::collections::BTreeSet<_> = digests.values().collect();
        assert_eq!(distinct.len(), 121, "no two files are alike");
        let status = git(scratch.path(), &["status", "--porcelain"]).expect("status");
        assert!(status.is_empty(), "everything is committed: {status}");
    }
}
