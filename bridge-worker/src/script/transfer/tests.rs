//! The transfer scripts run by a real `bash` and GNU `tar` in a scratch directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

fn run(argv: &[String]) -> Output {
    Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .expect("bash runs")
}

fn remote(path: &Path) -> RemotePath {
    RemotePath::parse("path", path.to_str().expect("utf-8")).expect("absolute")
}

/// Stages `parts` as an upload of `target` would, and returns the staging directory.
fn stage(target: &RemotePath, parts: &[&[u8]]) -> String {
    let staging = upload_staging(target, "x1");
    fs::create_dir_all(&staging).expect("staging");
    for (index, part) in parts.iter().enumerate() {
        let index = u32::try_from(index).expect("few parts");
        fs::write(part_path(&staging, index), part).expect("part");
    }
    staging
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn staging_sits_beside_the_target() {
    let target = RemotePath::parse("path", "/workspace/run/a.tar").expect("valid");
    assert_eq!(
        upload_staging(&target, "x9"),
        "/workspace/run/.paperclip-upload-x9"
    );
    let root_file = RemotePath::parse("path", "/a").expect("valid");
    assert_eq!(upload_staging(&root_file, "x9"), "/.paperclip-upload-x9");
    assert_eq!(part_path("/s", 12), "/s/part-000012");
}

#[test]
fn a_file_is_assembled_from_its_parts_and_moved_into_place() {
    let scratch = tempfile::tempdir().expect("scratch");
    let target = remote(&scratch.path().join("deep/out.bin"));
    fs::create_dir_all(scratch.path().join("deep")).expect("parent");
    let first: Vec<u8> = (0..=255).collect();
    let staging = stage(&target, &[&first, b"\0tail"]);
    let output = run(&assemble_argv(
        TransferFormat::File,
        &staging,
        &target,
        0o751,
        261,
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let written = fs::read(target.as_str()).expect("written");
    assert_eq!(written, [first.as_slice(), b"\0tail"].concat());
    let mode = fs::metadata(target.as_str())
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o751);
    assert!(
        !Path::new(&staging).exists(),
        "the staging directory is gone"
    );
}

#[test]
fn an_empty_file_needs_no_part_nor_an_existing_parent() {
    let scratch = tempfile::tempdir().expect("scratch");
    let target = remote(&scratch.path().join("new/dir/empty"));
    let staging = upload_staging(&target, "x1");
    let output = run(&assemble_argv(
        TransferFormat::File,
        &staging,
        &target,
        0o644,
        0,
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fs::read(target.as_str()).expect("written"), b"");
}

#[test]
fn missing_bytes_fail_and_leave_the_old_target_alone() {
    let scratch = tempfile::tempdir().expect("scratch");
    let target = remote(&scratch.path().join("kept"));
    fs::write(target.as_str(), "old").expect("old content");
    let staging = stage(&target, &[b"abc"]);
    let output = run(&assemble_argv(
        TransferFormat::File,
        &staging,
        &target,
        0o644,
        4,
    ));
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("4 bytes were sent for"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fs::read(target.as_str()).expect("kept"), b"old");
    assert!(!Path::new(&staging).exists());
}

#[test]
fn a_directory_is_never_replaced_by_a_file() {
    let scratch = tempfile::tempdir().expect("scratch");
    let target = remote(&scratch.path().join("dir"));
    fs::create_dir(target.as_str()).expect("dir");
    let staging = stage(&target, &[b"x"]);
    let output = run(&assemble_argv(
        TransferFormat::File,
        &staging,
        &target,
        0o644,
        1,
    ));
    assert!(
        stderr(&output).contains("is a directory"),
        "{}",
        stderr(&output)
    );
    assert!(Path::new(target.as_str()).is_dir());
}

/// A tar of a tree with a file, an empty directory and a symlink.
fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("src/empty")).expect("dirs");
    fs::write(root.join("src/main.rs"), "fn main() {}\n").expect("file");
    fs::write(root.join(".hidden"), [0u8, 1, 2, 255]).expect("binary");
    std::os::unix::fs::symlink("src/main.rs", root.join("link")).expect("symlink");
}

fn tar_of(root: &Path) -> Vec<u8> {
    let output = Command::new("tar")
        .args(["-cf", "-", "-C"])
        .arg(root)
        .arg(".")
        .output()
        .expect("tar");
    assert!(output.status.success());
    output.stdout
}

#[test]
fn a_tar_upload_replaces_the_directory_with_the_archive_tree() {
    let scratch = tempfile::tempdir().expect("scratch");
    let source = scratch.path().join("source");
    sample_tree(&source);
    let archive = tar_of(&source);
    let target = remote(&scratch.path().join("target"));
    fs::create_dir_all(scratch.path().join("target/stale")).expect("stale content");
    let (first, second) = archive.split_at(1000);
    let staging = stage(&target, &[first, second]);
    let bytes = u64::try_from(archive.len()).expect("small");
    let output = run(&assemble_argv(
        TransferFormat::Tar,
        &staging,
        &target,
        0o644,
        bytes,
    ));
    assert!(output.status.success(), "{}", stderr(&output));
    let root = Path::new(target.as_str());
    assert!(!root.join("stale").exists(), "the old tree is replaced");
    assert_eq!(
        fs::read(root.join("src/main.rs")).expect("file"),
        b"fn main() {}\n"
    );
    assert_eq!(
        fs::read(root.join(".hidden")).expect("file"),
        [0, 1, 2, 255]
    );
    assert!(root.join("src/empty").is_dir());
    assert_eq!(
        fs::read_link(root.join("link")).expect("symlink"),
        Path::new("src/main.rs")
    );
}

#[test]
fn a_corrupt_archive_fails_and_keeps_the_old_tree() {
    let scratch = tempfile::tempdir().expect("scratch");
    let target = remote(&scratch.path().join("target"));
    fs::create_dir_all(scratch.path().join("target/kept")).expect("old tree");
    let staging = stage(&target, &[&[7u8; 700]]);
    let output = run(&assemble_argv(
        TransferFormat::Tar,
        &staging,
        &target,
        0o644,
        700,
    ));
    assert!(
        stderr(&output).contains("does not extract"),
        "{}",
        stderr(&output)
    );
    assert!(Path::new(target.as_str()).join("kept").is_dir());
    assert!(!Path::new(&staging).exists());
}

fn download(request: &DownloadRequest) -> Output {
    run(&download_argv(request, &remote(Path::new(&request.path))))
}

fn decoded(output: &Output) -> Vec<u8> {
    assert!(!output.stdout.contains(&b'\n'), "base64 is not wrapped");
    STANDARD.decode(&output.stdout).expect("base64")
}

#[test]
fn a_file_downloads_as_its_exact_bytes() {
    let scratch = tempfile::tempdir().expect("scratch");
    let content: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let path = scratch.path().join("blob");
    fs::write(&path, &content).expect("file");
    let output = download(&DownloadRequest {
        path: path.display().to_string(),
        ..DownloadRequest::default()
    });
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(decoded(&output), content);
}

#[test]
fn a_missing_source_exits_with_its_own_code() {
    let scratch = tempfile::tempdir().expect("scratch");
    for (format, path) in [
        (TransferFormat::File, scratch.path().join("nothing")),
        (TransferFormat::File, scratch.path().to_path_buf()),
        (TransferFormat::Tar, scratch.path().join("nothing")),
    ] {
        let output = download(&DownloadRequest {
            path: path.display().to_string(),
            format,
            ..DownloadRequest::default()
        });
        assert_eq!(output.status.code(), Some(SOURCE_MISSING_EXIT_CODE));
        assert!(
            stderr(&output).contains("in the sandbox"),
            "{}",
            stderr(&output)
        );
    }
}

/// The member names of a tar stream.
fn members(archive: &[u8]) -> Vec<String> {
    let scratch = tempfile::tempdir().expect("scratch");
    let file = scratch.path().join("a.tar");
    fs::write(&file, archive).expect("archive");
    let output = Command::new("tar")
        .arg("-tf")
        .arg(&file)
        .output()
        .expect("tar");
    assert!(output.status.success(), "{}", stderr(&output));
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim_end_matches('/').to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_directory_downloads_as_a_tar_of_its_content_with_excludes() {
    let scratch = tempfile::tempdir().expect("scratch");
    let root = scratch.path().join("w");
    sample_tree(&root);
    fs::create_dir_all(root.join("node_modules/x")).expect("heavy");
    fs::create_dir_all(root.join("src/node_modules")).expect("nested heavy");
    fs::write(root.join("node_modules/x/i.js"), "x").expect("file");
    let request = DownloadRequest {
        path: root.display().to_string(),
        format: TransferFormat::Tar,
        exclude: vec!["node_modules".into(), "*/node_modules/*".into()],
        ..DownloadRequest::default()
    };
    let output = download(&request);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        members(&decoded(&output)),
        [".hidden", "link", "src", "src/empty", "src/main.rs"]
    );
}

#[test]
fn follow_symlinks_archives_the_target_instead_of_the_link() {
    let scratch = tempfile::tempdir().expect("scratch");
    let root = scratch.path().join("w");
    sample_tree(&root);
    let request = DownloadRequest {
        path: root.display().to_string(),
        format: TransferFormat::Tar,
        follow_symlinks: true,
        ..DownloadRequest::default()
    };
    let output = download(&request);
    assert!(output.status.success(), "{}", stderr(&output));
    let unpacked = scratch.path().join("unpacked");
    fs::create_dir(&unpacked).expect("dir");
    fs::write(scratch.path().join("a.tar"), decoded(&output)).expect("archive");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(scratch.path().join("a.tar"))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar");
    assert!(status.success());
    let link = fs::symlink_metadata(unpacked.join("link")).expect("member");
    assert!(link.is_file(), "the link became a regular file");
}

#[test]
fn an_empty_directory_downloads_as_an_empty_archive() {
    let scratch = tempfile::tempdir().expect("scratch");
    let request = DownloadRequest {
        path: scratch.path().display().to_string(),
        format: TransferFormat::Tar,
        ..DownloadRequest::default()
    };
    let output = download(&request);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(members(&decoded(&output)).is_empty());
}
