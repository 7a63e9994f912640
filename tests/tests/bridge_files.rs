//! `/files/upload` and `/files/download` end to end: any bytes in and out exactly, directories as
//! tar streams, and framed bodies that are tampered with, cut off or aimed at nothing refused
//! without leaving anything behind.

mod common;

use std::process::Command;

use bridge_protocol::api::{
    DownloadRequest, ErrorCode, TransferFormat, UploadResult, UploadTarget,
};
use bridge_protocol::auth::{FRAMES_CONTENT_TYPE, FrameSealer, SecretKey};
use bridge_protocol::client::BodyStream;
use bridge_protocol::routes::Route;
use bridge_tests::client::{BridgeClient, ClientError, LIMIT};
use bridge_tests::paperclip::workspace::noise;
use common::TestStack;
use common::leases::{acquire, run, shell};
use futures_util::StreamExt as _;
use sha2::{Digest, Sha256};

/// `bytes` as a source stream in pieces of `piece` bytes.
fn source(bytes: &[u8], piece: usize) -> BodyStream {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = bytes
        .chunks(piece)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    Box::pin(futures_util::stream::iter(pieces))
}

async fn upload(
    client: &BridgeClient,
    lease: &str,
    path: &str,
    format: TransferFormat,
    bytes: &[u8],
) -> Result<UploadResult, ClientError> {
    let target = UploadTarget {
        provider_lease_id: lease.into(),
        path: path.into(),
        format,
        mode: Some(0o640),
        timeout_ms: None,
    };
    client.upload(&target, source(bytes, 300_000), LIMIT).await
}

async fn download(
    client: &BridgeClient,
    request: &DownloadRequest,
) -> Result<Vec<u8>, ClientError> {
    let mut download = client.download(request, LIMIT).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = download.next_chunk().await? {
        bytes.extend(chunk);
    }
    assert_eq!(download.bytes(), bytes.len() as u64);
    Ok(bytes)
}

fn file_request(lease: &str, path: &str) -> DownloadRequest {
    DownloadRequest {
        provider_lease_id: lease.into(),
        path: path.into(),
        ..DownloadRequest::default()
    }
}

/// What the sandbox says about `path`: `<sha256> <mode>`.
async fn sandbox_digest(client: &BridgeClient, lease: &str, path: &str) -> String {
    let result = run(
        client,
        &shell(
            lease,
            &format!("printf '%s %s' \"$(sha256sum < '{path}' | cut -d' ' -f1)\" \"$(stat -c %a '{path}')\""),
        ),
    )
    .await;
    assert_eq!(result.exit_code, Some(0), "{}", result.stderr);
    result.stdout
}

#[tokio::test]
async fn any_bytes_go_in_and_come_out_exactly() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-files", "run-1")
        .await
        .provider_lease_id;
    let sizes = [0, 1, 4 * 1024 * 1024 + 1, 20 * 1024 * 1024 + 7];
    for (index, size) in sizes.into_iter().enumerate() {
        let bytes = noise(size, index as u64 + 1);
        let path = format!("/workspace/in/deeper/blob-{index}");
        let uploaded = upload(&client, &lease, &path, TransferFormat::File, &bytes)
            .await
            .unwrap_or_else(|error| panic!("upload of {size} bytes: {error}"));
        assert_eq!(uploaded.bytes, size as u64);
        let expected = format!("{} 640", hex::encode(Sha256::digest(&bytes)));
        assert_eq!(sandbox_digest(&client, &lease, &path).await, expected);
        let back = download(&client, &file_request(&lease, &path))
            .await
            .unwrap_or_else(|error| panic!("download of {size} bytes: {error}"));
        assert!(back == bytes, "{size} bytes came back different");
    }
    let listing = run(&client, &shell(&lease, "ls -A /workspace/in/deeper")).await;
    assert_eq!(
        listing.stdout.lines().collect::<Vec<_>>(),
        ["blob-0", "blob-1", "blob-2", "blob-3"],
        "no staging directory is left behind"
    );
    stack.stop_and_check_for_leaks();
}

/// A tar stream of a small tree made by the system's tar.
fn sample_archive() -> Vec<u8> {
    let tree = tempfile::tempdir().expect("scratch");
    let root = tree.path();
    std::fs::create_dir_all(root.join("src/node_modules/pkg")).expect("dirs");
    std::fs::write(root.join("src/main.rs"), "fn main() {}\n").expect("file");
    std::fs::write(root.join("src/node_modules/pkg/index.js"), "x").expect("file");
    std::fs::write(root.join("data.bin"), noise(300_000, 9)).expect("file");
    std::os::unix::fs::symlink("src/main.rs", root.join("link")).expect("symlink");
    let output = Command::new("tar")
        .args(["-cf", "-", "-C"])
        .arg(root)
        .args(["data.bin", "link", "src"])
        .output()
        .expect("tar");
    assert!(output.status.success());
    output.stdout
}

/// The sorted member names of a tar stream.
fn members(archive: &[u8]) -> Vec<String> {
    let scratch = tempfile::tempdir().expect("scratch");
    let file = scratch.path().join("a.tar");
    std::fs::write(&file, archive).expect("archive");
    let output = Command::new("tar")
        .arg("-tf")
        .arg(&file)
        .output()
        .expect("tar");
    assert!(output.status.success());
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim_end_matches('/').to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_directory_goes_in_and_comes_out_as_a_tar_stream() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-files", "run-2")
        .await
        .provider_lease_id;
    let setup = run(&client, &shell(&lease, "mkdir -p /workspace/tree/stale")).await;
    assert_eq!(setup.exit_code, Some(0));
    let archive = sample_archive();
    upload(
        &client,
        &lease,
        "/workspace/tree",
        TransferFormat::Tar,
        &archive,
    )
    .await
    .expect("tar upload");
    let tree = run(
        &client,
        &shell(
            &lease,
            "cd /workspace/tree && find . | sort && readlink link && sha256sum < data.bin",
        ),
    )
    .await;
    let expected_hash = hex::encode(Sha256::digest(noise(300_000, 9)));
    assert_eq!(
        tree.stdout,
        format!(
            ".\n./data.bin\n./link\n./src\n./src/main.rs\n./src/node_modules\n./src/node_modules/pkg\n./src/node_modules/pkg/index.js\nsrc/main.rs\n{expected_hash}  -\n"
        ),
        "the old tree is replaced by the archive's"
    );
    let back = download(
        &client,
        &DownloadRequest {
            provider_lease_id: lease.clone(),
            path: "/workspace/tree".into(),
            format: TransferFormat::Tar,
            exclude: vec!["node_modules".into()],
            ..DownloadRequest::default()
        },
    )
    .await
    .expect("tar download");
    assert_eq!(members(&back), ["data.bin", "link", "src", "src/main.rs"]);
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn bad_transfers_are_refused_and_leave_nothing_behind() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-files", "run-3")
        .await
        .provider_lease_id;
    let target = UploadTarget {
        provider_lease_id: lease.clone(),
        path: "/workspace/refused".into(),
        ..UploadTarget::default()
    };
    let route = Route::Upload;
    let secret = SecretKey::new(&stack.stack.keys().primary.1).expect("secret");
    let framed = |tamper: &dyn Fn(&mut Vec<u8>)| {
        let (mut prepared, seed) = client
            .prepare_streaming(route.method(), &route.path(), &target.to_query())
            .expect("signed");
        let mut sealer = FrameSealer::new(secret.clone(), seed);
        let mut body = sealer.data(&noise(5000, 3));
        body.extend(sealer.end());
        tamper(&mut body);
        prepared.body = body;
        prepared.set_header("Content-Type", Some(FRAMES_CONTENT_TYPE));
        prepared
    };
    let flipped = framed(&|body| body[100] ^= 1);
    let answer = client.send(&flipped, LIMIT).await.expect("answered");
    assert_eq!(answer.status, 401, "{:?}", answer.error_body());
    assert!(client.is_authentic(&flipped, &answer));
    let cut = framed(&|body| body.truncate(body.len() - 37));
    let answer = client.send(&cut, LIMIT).await.expect("answered");
    assert_eq!(answer.status, 400);
    let message = answer.error_body().expect("error body").message;
    assert!(message.contains("cut off"), "{message}");
    let intact = framed(&|_| {});
    let mut relabelled = intact.clone();
    relabelled.path = Route::Exec.path();
    let answer = client.send(&relabelled, LIMIT).await.expect("answered");
    assert_eq!(answer.status, 401, "the signature covers the route");

    let leftovers = run(&client, &shell(&lease, "ls -A /workspace")).await;
    assert!(
        !leftovers.stdout.contains("refused") && !leftovers.stdout.contains("paperclip-upload"),
        "nothing is laid down and nothing staged is left: {:?}",
        leftovers.stdout
    );

    let failing: BodyStream = Box::pin(futures_util::stream::iter(vec![
        Ok(vec![1u8; 1000]),
        Err(std::io::Error::other("the disk went away")),
    ]));
    let error = client
        .upload(&target, failing, LIMIT)
        .await
        .expect_err("a failing source fails the upload");
    assert!(
        matches!(&error, ClientError::Source(message) if message.contains("disk went away")),
        "{error}"
    );

    let missing = download(&client, &file_request(&lease, "/workspace/nothing-here"))
        .await
        .expect_err("nothing to download");
    assert_eq!(missing.code(), Some(ErrorCode::PathNotFound), "{missing}");
    assert!(
        missing.to_string().contains("/workspace/nothing-here"),
        "{missing}"
    );

    let unknown = upload(
        &client,
        "pc-env-nobody",
        "/workspace/x",
        TransferFormat::File,
        b"x",
    )
    .await
    .expect_err("no such lease");
    assert_eq!(unknown.code(), Some(ErrorCode::LeaseNotFound), "{unknown}");
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn an_upload_that_outlives_its_deadline_times_out_and_leaves_nothing_behind() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-files", "run-4")
        .await
        .provider_lease_id;
    let target = UploadTarget {
        provider_lease_id: lease.clone(),
        path: "/workspace/late".into(),
        timeout_ms: Some(4_000),
        ..UploadTarget::default()
    };
    // More than the parts the bridge keeps under way, then a sender that never finishes.
    let stalled: BodyStream =
        Box::pin(source(&noise(13 << 20, 4), 1 << 20).chain(futures_util::stream::pending()));
    let error = client
        .upload(&target, stalled, LIMIT)
        .await
        .expect_err("the bridge's deadline ends the upload");
    assert_eq!(error.code(), Some(ErrorCode::SandboxTimeout), "{error}");

    let leftovers = run(&client, &shell(&lease, "ls -A /workspace")).await;
    assert_eq!(leftovers.exit_code, Some(0), "the lease still works");
    assert!(
        !leftovers.stdout.contains("late") && !leftovers.stdout.contains("paperclip-upload"),
        "nothing is laid down and nothing staged is left: {:?}",
        leftovers.stdout
    );
    stack.stop_and_check_for_leaks();
}
