//! `environmentSyncOut` against a hostile sandbox on the local stack: what an agent can make with
//! real files (symlinks out of the target, directly and as a parent, a FIFO, a 1 TiB sparse file,
//! hard links) goes through the bridge's real tar and the plugin's checks; each refusal names the
//! member and leaves nothing on the host, and legitimate trees come back exactly. Names with `..`
//! or absolute names cannot come out of GNU tar; the unit tests of `sync::unpack` build those
//! archives byte by byte.

use std::fs;
use std::path::{Path, PathBuf};

use bridge_protocol::api::{AcquireLeaseRequest, ExecRequest, ExecResult, LeaseResponse};
use bridge_protocol::routes::Route;
use bridge_tests::client::BridgeClient;
use bridge_tests::harness::plugin_package::workspace_binary;
use bridge_tests::harness::{LocalStack, StackOptions};
use paperclip_cloudflare_bridge::config::ProviderConfig;
use paperclip_cloudflare_bridge::protocol::{SyncFileMapping, SyncKind, SyncOperation};
use paperclip_cloudflare_bridge::sync::{Sync, SyncError};
use serde_json::json;

/// The cap of these tests: 1 MiB.
const CAP: u64 = 1 << 20;

struct Bench {
    stack: LocalStack,
    bridge: BridgeClient,
    lease: String,
    config: ProviderConfig,
    client: paperclip_cloudflare_bridge::client::BridgeClient,
    scratch: tempfile::TempDir,
}

impl Bench {
    async fn start() -> Self {
        let scratch = tempfile::Builder::new()
            .prefix("hostile-sandbox-")
            .tempdir()
            .expect("scratch");
        let local_sandbox = workspace_binary("bridge-tests", "local-sandbox").expect("binary");
        let stack = LocalStack::start(&StackOptions::new(
            local_sandbox,
            scratch.path().join("stack"),
        ))
        .unwrap_or_else(|error| panic!("{error}"));
        let bridge = stack.client().expect("client");
        let lease: LeaseResponse = bridge
            .post(
                Route::AcquireLease,
                &AcquireLeaseRequest {
                    environment_id: "hostile".into(),
                    run_id: "hostile-1".into(),
                    ..AcquireLeaseRequest::default()
                },
            )
            .await
            .expect("lease");
        let (key_id, secret) = &stack.keys().primary;
        let config = ProviderConfig::from_value(&json!({
            "bridgeBaseUrl": stack.bridge_url(),
            "bridgeSecret": secret,
            "keyId": key_id,
            "syncMaxBytes": CAP,
            "timeoutMs": 15_000,
        }))
        .expect("config");
        let client = paperclip_cloudflare_bridge::client::bridge_client(
            bridge_tests::http_client(),
            &config.bridge_base_url,
            config.key_id.clone(),
            config.secret_key().expect("secret"),
        );
        Self {
            stack,
            bridge,
            lease: lease.provider_lease_id,
            config,
            client,
            scratch,
        }
    }

    /// Runs `script` in the sandbox; it must succeed. Returns its stdout.
    async fn sandbox(&self, script: &str) -> String {
        let result: ExecResult = self
            .bridge
            .post(
                Route::Exec,
                &ExecRequest {
                    provider_lease_id: self.lease.clone(),
                    command: "sh".into(),
                    args: vec!["-c".into(), script.into()],
                    ..ExecRequest::default()
                },
            )
            .await
            .expect("exec");
        assert_eq!(result.exit_code, Some(0), "{script}: {}", result.stderr);
        result.stdout
    }

    /// A fresh host scene: `<name>/target` (empty) beside `<name>/outside`.
    fn scene(&self, name: &str) -> PathBuf {
        let scene = self.scratch.path().join(name);
        fs::create_dir_all(scene.join("target")).expect("target");
        fs::write(scene.join("outside"), "untouched").expect("outside");
        scene
    }

    /// SyncOut of sandbox `source` into `scene/target`.
    async fn sync_out(&self, source: &str, scene: &Path, kind: SyncKind) -> Result<u64, SyncError> {
        let target = match kind {
            SyncKind::Directory => scene.join("target"),
            SyncKind::File => scene.join("target/file"),
        };
        let operation = SyncOperation {
            operation_id: "hostile".into(),
            files: vec![SyncFileMapping {
                source_path: source.into(),
                target_path: target.display().to_string(),
                kind,
                mode: None,
                exclude: Vec::new(),
                follow_symlinks: false,
            }],
            post_upload_commands: Vec::new(),
        };
        let sync = Sync {
            client: &self.client,
            config: &self.config,
            lease_id: &self.lease,
        };
        sync.sync_out(&[operation])
            .await
            .map(|result| result.operations[0].bytes_transferred)
    }
}

/// Everything under `scene`, relative and sorted.
fn listing(scene: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![scene.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            out.push(
                path.strip_prefix(scene)
                    .expect("inside")
                    .display()
                    .to_string(),
            );
            if fs::symlink_metadata(&path).expect("meta").is_dir() {
                pending.push(path);
            }
        }
    }
    out.sort();
    out
}

fn assert_refused(outcome: Result<u64, SyncError>, scene: &Path, needles: &[&str]) {
    let error = outcome
        .expect_err("the sandbox's tree must be refused")
        .to_string();
    for needle in needles {
        assert!(error.contains(needle), "{needle:?} missing from: {error}");
    }
    assert_eq!(listing(scene), ["outside", "target"], "{error}");
    assert_eq!(
        fs::read_to_string(scene.join("outside")).expect("outside"),
        "untouched"
    );
}

#[tokio::test]
async fn a_hostile_sandbox_writes_nothing_outside_the_target() {
    let bench = Bench::start().await;
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "direct-link",
            "ln -s /etc/passwd passwd",
            &["passwd", "absolute path"],
        ),
        (
            "parent-link",
            "mkdir sub && ln -s .. up && echo x > sub/a",
            &["up", "outside the target"],
        ),
        ("fifo", "echo x > before && mkfifo pipe", &["pipe", "FIFO"]),
        (
            "sparse",
            "truncate -s 1T disk.img",
            &["disk.img", "sync cap"],
        ),
    ];
    for (name, make, needles) in cases {
        let source = format!("/workspace/{name}");
        bench
            .sandbox(&format!("mkdir -p {source} && cd {source} && {make}"))
            .await;
        let scene = bench.scene(name);
        let outcome = bench.sync_out(&source, &scene, SyncKind::Directory).await;
        assert_refused(outcome, &scene, needles);
    }

    let scene = bench.scene("big-file");
    bench
        .sandbox("head -c 2000000 /dev/urandom > /workspace/big.bin")
        .await;
    let outcome = bench
        .sync_out("/workspace/big.bin", &scene, SyncKind::File)
        .await;
    assert_refused(outcome, &scene, &["big.bin", "sync cap"]);

    let scene = bench.scene("legitimate");
    bench
        .sandbox(
            "mkdir -p /workspace/fine/src && cd /workspace/fine && printf 'fn main() {}' > src/main.rs \
             && head -c 100000 /dev/urandom > data.bin && ln data.bin same.bin && ln -s src/main.rs link \
             && sha256sum data.bin src/main.rs",
        )
        .await;
    let in_sandbox = bench
        .sandbox("cd /workspace/fine && sha256sum data.bin src/main.rs")
        .await;
    let bytes = bench
        .sync_out("/workspace/fine", &scene, SyncKind::Directory)
        .await
        .expect("a legitimate tree is accepted");
    let root = scene.join("target");
    assert_eq!(bytes, 100_000 * 2 + 12, "the hard link comes as a copy");
    assert_eq!(
        fs::read(root.join("data.bin")).expect("file"),
        fs::read(root.join("same.bin")).expect("copy")
    );
    assert_eq!(
        fs::read_to_string(root.join("src/main.rs")).expect("file"),
        "fn main() {}"
    );
    assert_eq!(
        fs::read_link(root.join("link")).expect("link"),
        Path::new("src/main.rs")
    );
    let on_host = std::process::Command::new("sha256sum")
        .args(["data.bin", "src/main.rs"])
        .current_dir(&root)
        .output()
        .expect("sha256sum");
    assert_eq!(
        String::from_utf8_lossy(&on_host.stdout),
        in_sandbox,
        "byte-exact"
    );
    bench.stack_stop();
}

impl Bench {
    fn stack_stop(mut self) {
        self.stack.stop();
    }
}
