//! `POST /probe` through the real `@cloudflare/sandbox` Durable Object in workerd, whose container
//! is `local-sandbox`: the sandbox is created, `pwd` runs in it, and it is destroyed again.

mod common;

use bridge_protocol::api::{ErrorCode, ProbeRequest, ProbeResponse};
use bridge_protocol::routes::Route;
use bridge_tests::client::ClientError;
use common::{TestStack, live_sandboxes};

#[tokio::test]
async fn probe_creates_runs_pwd_in_and_destroys_a_sandbox() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let requested = "/workspace/probe dir/it's here";
    let probe: ProbeResponse = client
        .post(
            Route::Probe,
            &ProbeRequest {
                requested_cwd: Some(requested.to_owned()),
                timeout_ms: Some(30_000),
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{error}\n{}", stack.stack.bridge_log()));
    assert!(probe.ok);
    assert_eq!(probe.remote_cwd, requested);
    assert!(
        probe.sandbox_id.starts_with("pc-probe-"),
        "{}",
        probe.sandbox_id
    );
    assert!(probe.summary.contains(&probe.sandbox_id));

    assert!(
        live_sandboxes(&stack).await.is_empty(),
        "the probe sandbox must be destroyed"
    );
    let state_dir = stack.stack.work_dir().join("sandboxes");
    let leftovers: Vec<_> = std::fs::read_dir(&state_dir)
        .expect("state dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.is_dir())
        .collect();
    assert!(
        leftovers.is_empty(),
        "destroy must wipe the sandbox state: {leftovers:?}"
    );

    let default_cwd: ProbeResponse = client
        .post(Route::Probe, &ProbeRequest::default())
        .await
        .expect("probe with defaults");
    assert_eq!(default_cwd.remote_cwd, "/workspace/paperclip");
    assert_ne!(
        default_cwd.sandbox_id, probe.sandbox_id,
        "a fresh sandbox every time"
    );

    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn probe_reports_a_failing_sandbox_command_as_a_sandbox_error() {
    let stack = TestStack::start(|_| {});
    let error = stack
        .client()
        .post::<ProbeResponse>(
            Route::Probe,
            &ProbeRequest {
                requested_cwd: Some("/proc/cannot-create-this".to_owned()),
                timeout_ms: None,
            },
        )
        .await
        .expect_err("mkdir in /proc fails");
    match error {
        ClientError::Bridge { status, body } => {
            assert_eq!(status, 502);
            assert_eq!(body.error, ErrorCode::SandboxError);
            assert!(
                body.message.contains("exited with code"),
                "{}",
                body.message
            );
        }
        other => panic!("expected an API error, got {other}"),
    }
    assert!(
        live_sandboxes(&stack).await.is_empty(),
        "destroyed on failure too"
    );
    stack.stop_and_check_for_leaks();
}
