//! What every end-to-end test needs: a local stack in a temporary directory, and clients for it.
//! Every test binary compiles this module and uses part of it, hence the `dead_code` allowances.

use std::path::PathBuf;

use bridge_tests::client::BridgeClient;
use bridge_tests::harness::local_sandbox::leaked_processes;
use bridge_tests::harness::{LocalStack, StackOptions};

/// A local stack whose files disappear with it.
pub struct TestStack {
    pub stack: LocalStack,
    state_dir: PathBuf,
    _work_dir: tempfile::TempDir,
}

impl TestStack {
    /// Starts a stack; `configure` adjusts the options first.
    pub fn start(configure: impl FnOnce(&mut StackOptions)) -> Self {
        let work_dir = tempfile::Builder::new()
            .prefix("bridge-e2e-")
            .tempdir()
            .expect("temporary directory");
        let mut options = StackOptions::new(env!("CARGO_BIN_EXE_local-sandbox"), work_dir.path());
        configure(&mut options);
        let stack = LocalStack::start(&options).unwrap_or_else(|error| panic!("{error}"));
        Self {
            state_dir: work_dir.path().join("sandboxes"),
            stack,
            _work_dir: work_dir,
        }
    }

    /// A client using the primary key.
    pub fn client(&self) -> BridgeClient {
        let (key_id, secret) = &self.stack.keys().primary;
        self.client_with(key_id, secret)
    }

    /// A client using any key id and secret.
    pub fn client_with(&self, key_id: &str, secret: &str) -> BridgeClient {
        self.stack
            .client_with(key_id, secret)
            .expect("valid client")
    }

    /// Stops everything and checks that no sandbox process outlived the stack.
    pub fn stop_and_check_for_leaks(mut self) {
        self.stack.stop();
        let leaked = leaked_processes(&self.state_dir);
        assert!(
            leaked.is_empty(),
            "processes outlived the stack: {leaked:?}"
        );
    }
}

/// Helpers for tests that drive leases and executions.
#[allow(dead_code)]
pub mod leases {
    use bridge_protocol::api::{
        AcquireLeaseRequest, ExecRequest, ExecResult, LeaseResponse, ReleaseLeaseRequest,
        TerminationReceipt,
    };
    use bridge_protocol::routes::Route;
    use bridge_tests::client::BridgeClient;

    /// Acquires a per-run lease.
    pub async fn acquire(client: &BridgeClient, environment: &str, run: &str) -> LeaseResponse {
        acquire_with(client, environment, run, false).await
    }

    /// Acquires a reusable (keep-alive) lease.
    pub async fn acquire_reusable(
        client: &BridgeClient,
        environment: &str,
        run: &str,
    ) -> LeaseResponse {
        acquire_with(client, environment, run, true).await
    }

    async fn acquire_with(
        client: &BridgeClient,
        environment: &str,
        run: &str,
        reusable: bool,
    ) -> LeaseResponse {
        client
            .post(
                Route::AcquireLease,
                &AcquireLeaseRequest {
                    environment_id: environment.into(),
                    run_id: run.into(),
                    reuse_lease: reusable,
                    keep_alive: reusable,
                    ..AcquireLeaseRequest::default()
                },
            )
            .await
            .unwrap_or_else(|error| panic!("acquire: {error}"))
    }

    /// An exec request for `argv` on `lease`.
    pub fn command(lease: &str, argv: &[&str]) -> ExecRequest {
        ExecRequest {
            provider_lease_id: lease.into(),
            command: argv[0].into(),
            args: argv[1..].iter().map(|word| (*word).to_owned()).collect(),
            ..ExecRequest::default()
        }
    }

    /// `sh -c script` on `lease`.
    pub fn shell(lease: &str, script: &str) -> ExecRequest {
        command(lease, &["sh", "-c", script])
    }

    /// Runs `request` as JSON and returns its result.
    pub async fn run(client: &BridgeClient, request: &ExecRequest) -> ExecResult {
        client
            .post(Route::Exec, request)
            .await
            .unwrap_or_else(|error| panic!("exec {:?}: {error}", request.command))
    }

    /// Releases `lease`.
    pub async fn release(
        client: &BridgeClient,
        lease: &str,
        cancel_active_work: bool,
    ) -> TerminationReceipt {
        client
            .post(
                Route::ReleaseLease,
                &ReleaseLeaseRequest {
                    provider_lease_id: lease.into(),
                    cancel_active_work,
                    destroy: false,
                },
            )
            .await
            .unwrap_or_else(|error| panic!("release: {error}"))
    }
}

/// The ids of live processes whose command line contains `needle` (host-wide).
#[allow(dead_code)]
pub fn processes_matching(needle: &str) -> Vec<u32> {
    bridge_tests::local_sandbox::processes_with_cmdline(needle)
}

/// Waits until a process with `needle` in its command line runs.
#[allow(dead_code)]
pub async fn wait_for_process(needle: &str) {
    let started = std::time::Instant::now();
    while processes_matching(needle).is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{needle} never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sandbox ids local-sandbox currently has state for.
#[allow(dead_code)]
pub async fn live_sandboxes(stack: &TestStack) -> Vec<String> {
    stack
        .stack
        .local_sandbox()
        .sandboxes()
        .await
        .expect("local-sandbox reachable")
}

/// Wipes the stack's only sandbox behind the bridge's back, as a container restart would.
#[allow(dead_code)]
pub async fn wipe_the_only_sandbox(stack: &TestStack) {
    let sandboxes = live_sandboxes(stack).await;
    assert_eq!(
        sandboxes.len(),
        1,
        "expected exactly one sandbox: {sandboxes:?}"
    );
    stack
        .stack
        .local_sandbox()
        .wipe(&sandboxes[0])
        .await
        .expect("local-sandbox wipes the sandbox");
}
