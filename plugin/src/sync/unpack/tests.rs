//! Hostile archives, built byte by byte (the tar crate's builder refuses to write most of them),
//! against a target inside a scratch directory whose other contents must stay untouched.

use std::path::Path;

use super::*;

/// One raw GNU tar member.
fn member(name: &str, kind: tar::EntryType, link: &str, mode: u32, content: &[u8]) -> Vec<u8> {
    member_of_size(name, kind, link, mode, content, content.len() as u64)
}

fn member_of_size(
    name: &str,
    kind: tar::EntryType,
    link: &str,
    mode: u32,
    content: &[u8],
    size: u64,
) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    let gnu = header.as_gnu_mut().expect("gnu header");
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(content);
    bytes.resize(bytes.len().next_multiple_of(512), 0);
    bytes
}

fn file(name: &str, content: &[u8]) -> Vec<u8> {
    member(name, tar::EntryType::Regular, "", 0o644, content)
}

fn dir(name: &str) -> Vec<u8> {
    member(name, tar::EntryType::Directory, "", 0o755, b"")
}

fn symlink(name: &str, target: &str) -> Vec<u8> {
    member(name, tar::EntryType::Symlink, target, 0o777, b"")
}

fn hardlink(name: &str, target: &str) -> Vec<u8> {
    member(name, tar::EntryType::Link, target, 0o644, b"")
}

fn archive(members: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = members.concat();
    bytes.extend_from_slice(&[0; 1024]);
    bytes
}

/// A scratch directory holding `target/` (the mapping's root) and a file beside it that no
/// archive may touch.
struct Scene {
    scratch: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let scratch = tempfile::tempdir().expect("scratch");
        fs::create_dir(scratch.path().join("target")).expect("target");
        fs::write(scratch.path().join("outside"), "untouched").expect("outside file");
        Self { scratch }
    }

    fn root(&self) -> PathBuf {
        self.scratch.path().join("target")
    }

    fn unpack(&self, bytes: &[u8], cap: u64) -> Result<Unpacked, UnpackError> {
        Unpacker::new(&self.root(), cap)
            .expect("root exists")
            .unpack(bytes)
    }

    /// Everything in the scratch directory, as relative paths, sorted.
    fn listing(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).expect("readable") {
                let path = entry.expect("entry").path();
                out.push(
                    path.strip_prefix(base)
                        .expect("inside")
                        .display()
                        .to_string(),
                );
                if fs::symlink_metadata(&path).expect("meta").is_dir() {
                    walk(base, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.scratch.path(), self.scratch.path(), &mut out);
        out.sort();
        out
    }

    /// The refusal left the target empty and everything outside it as it was.
    fn assert_untouched(&self) {
        assert_eq!(self.listing(), ["outside", "target"]);
        assert_eq!(
            fs::read_to_string(self.scratch.path().join("outside")).expect("outside"),
            "untouched"
        );
    }
}

fn refused_member(result: Result<Unpacked, UnpackError>) -> (String, String) {
    match result {
        Err(UnpackError::Refused { member, reason }) => (member, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_plain_tree_is_laid_down_exactly() {
    let scene = Scene::new();
    let binary: Vec<u8> = (0..=255).collect();
    let bytes = archive(&[
        dir("./"),
        dir("src/"),
        file("src/main.rs", b"fn main() {}\n"),
        file("empty", b""),
        member(
            "run.sh",
            tar::EntryType::Regular,
            "",
            0o4755,
            b"#!/bin/sh\n",
        ),
        file("data/blob.bin", &binary),
        symlink("link", "src/main.rs"),
        symlink("src/up", "../data"),
        hardlink("copy.bin", "data/blob.bin"),
    ]);
    let unpacked = scene.unpack(&bytes, 1 << 20).expect("accepted");
    assert_eq!(
        unpacked,
        Unpacked {
            files: 5,
            bytes: 13 + 10 + 256 * 2,
        }
    );
    let root = scene.root();
    assert_eq!(
        fs::read(root.join("src/main.rs")).expect("file"),
        b"fn main() {}\n"
    );
    assert_eq!(fs::read(root.join("data/blob.bin")).expect("file"), binary);
    assert_eq!(fs::read(root.join("copy.bin")).expect("copy"), binary);
    assert_eq!(fs::read(root.join("empty")).expect("file"), b"");
    assert_eq!(
        fs::read_link(root.join("link")).expect("link"),
        Path::new("src/main.rs")
    );
    assert_eq!(
        fs::read(root.join("src/up/blob.bin")).expect("through link"),
        binary
    );
    let mode = fs::metadata(root.join("run.sh"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "setuid is stripped");
}

#[test]
fn a_dot_dot_member_is_refused_and_nothing_lands_outside() {
    let scene = Scene::new();
    let bytes = archive(&[file("ok.txt", b"fine"), file("../outside", b"owned")]);
    let (member, reason) = refused_member(scene.unpack(&bytes, 1 << 20));
    assert_eq!(member, "../outside");
    assert!(reason.contains(".."), "{reason}");
    scene.assert_untouched();
    let nested = archive(&[file("a/../../outside", b"owned")]);
    refused_member(scene.unpack(&nested, 1 << 20));
    scene.assert_untouched();
}

#[test]
fn an_absolute_member_is_refused() {
    let scene = Scene::new();
    let outside = scene.scratch.path().join("outside").display().to_string();
    let (member, reason) =
        refused_member(scene.unpack(&archive(&[file(&outside, b"owned")]), 1 << 20));
    assert_eq!(member, outside);
    assert!(reason.contains("absolute"), "{reason}");
    scene.assert_untouched();
}

#[test]
fn symlinks_out_of_the_target_are_refused() {
    for (links, name) in [
        (vec![symlink("passwd", "/etc/passwd")], "passwd"),
        (vec![symlink("up", "../outside")], "up"),
        (vec![symlink("deep", "a/../../outside")], "deep"),
        (
            // Lexically `d/..` is the root, but `d` is `.`, so it is the root's parent.
            vec![symlink("d", "."), symlink("e", "d/..")],
            "e",
        ),
        (vec![symlink("loop", "loop")], "loop"),
    ] {
        let scene = Scene::new();
        let (member, reason) = refused_member(scene.unpack(&archive(&links), 1 << 20));
        assert_eq!(member, name);
        assert!(reason.contains("outside"), "{reason}");
        scene.assert_untouched();
    }
}

#[test]
fn nothing_is_written_through_a_symlinked_parent() {
    let scene = Scene::new();
    let bytes = archive(&[symlink("sub", ".."), file("sub/outside", b"owned")]);
    let (member, _) = refused_member(scene.unpack(&bytes, 1 << 20));
    assert_eq!(
        member, "sub",
        "the link cannot replace the directory its member made"
    );
    scene.assert_untouched();
    let absolute = archive(&[
        symlink("sub", &scene.scratch.path().display().to_string()),
        file("sub/outside", b"owned"),
    ]);
    refused_member(scene.unpack(&absolute, 1 << 20));
    scene.assert_untouched();
}

#[test]
fn hard_links_must_name_a_file_of_the_archive() {
    let outside = Scene::new()
        .scratch
        .path()
        .join("outside")
        .display()
        .to_string();
    for (members, name) in [
        (vec![hardlink("h", "../outside")], "h"),
        (vec![hardlink("h", &outside)], "h"),
        (vec![hardlink("h", "never-sent")], "h"),
        (vec![dir("d/"), hardlink("h", "d")], "h"),
    ] {
        let scene = Scene::new();
        let (member, reason) = refused_member(scene.unpack(&archive(&members), 1 << 20));
        assert_eq!(member, name);
        assert!(reason.contains("hard link"), "{reason}");
        scene.assert_untouched();
    }
}

#[test]
fn a_sparse_tebibyte_from_gnu_tar_is_refused() {
    let scratch = tempfile::tempdir().expect("scratch");
    let image = scratch.path().join("disk.img");
    File::create(&image)
        .and_then(|file| file.set_len(1 << 40))
        .expect("a sparse file");
    let output = std::process::Command::new("tar")
        .args(["--sparse", "--format=gnu", "-cf", "-", "-C"])
        .arg(scratch.path())
        .arg("disk.img")
        .output()
        .expect("GNU tar");
    assert!(output.status.success());
    let scene = Scene::new();
    let (member, reason) = refused_member(scene.unpack(&output.stdout, 1 << 20));
    assert_eq!(member, "disk.img");
    assert!(reason.contains("sparse"), "{reason}");
    scene.assert_untouched();
}

#[test]
fn devices_and_fifos_are_refused() {
    for (kind, word) in [
        (tar::EntryType::Fifo, "FIFO"),
        (tar::EntryType::Char, "device"),
        (tar::EntryType::Block, "device"),
    ] {
        let scene = Scene::new();
        let bytes = archive(&[file("before", b"x"), member("odd", kind, "", 0o644, b"")]);
        let (member, reason) = refused_member(scene.unpack(&bytes, 1 << 20));
        assert_eq!(member, "odd");
        assert!(reason.contains(word), "{reason}");
        scene.assert_untouched();
    }
}

#[test]
fn a_huge_member_is_refused_by_its_header_before_any_byte_is_read() {
    let scene = Scene::new();
    let tebibyte = 1u64 << 40;
    let bytes = archive(&[member_of_size(
        "sparse.img",
        tar::EntryType::Regular,
        "",
        0o644,
        b"",
        tebibyte,
    )]);
    match scene.unpack(&bytes, 1 << 20) {
        Err(UnpackError::TooLarge { member, size, cap }) => {
            assert_eq!(
                (member.as_str(), size, cap),
                ("sparse.img", tebibyte, 1 << 20)
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    scene.assert_untouched();
    let many = archive(&[file("a", &[1; 600]), file("b", &[2; 600])]);
    assert!(matches!(
        scene.unpack(&many, 1000),
        Err(UnpackError::TooLarge { .. })
    ));
    scene.assert_untouched();
}

#[test]
fn a_cut_archive_is_corrupt_and_leaves_nothing() {
    let scene = Scene::new();
    let mut bytes = file("big", &[7; 5000]);
    bytes.truncate(2000);
    assert!(matches!(
        scene.unpack(&bytes, 1 << 20),
        Err(UnpackError::Corrupt(_))
    ));
    scene.assert_untouched();
}

#[test]
fn an_oversized_long_name_is_refused_before_it_is_buffered() {
    let scene = Scene::new();
    let bytes = archive(&[
        file("before", b"x"),
        member_of_size(
            "././@LongLink",
            tar::EntryType::GNULongName,
            "",
            0o644,
            b"",
            1 << 30,
        ),
    ]);
    match scene.unpack(&bytes, 1 << 40) {
        Err(UnpackError::Corrupt(message)) => {
            assert!(
                message.contains("header extension of 1073741824 bytes"),
                "{message}"
            );
        }
        other => panic!("expected the extension to be refused, got {other:?}"),
    }
    scene.assert_untouched();
}
