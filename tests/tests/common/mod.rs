//! What every end-to-end test needs: a local stack in a temporary directory, and clients for it.

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
        BridgeClient::new(
            &self.stack.bridge_url(),
            self.stack.bridge_host(),
            key_id,
            secret,
        )
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
