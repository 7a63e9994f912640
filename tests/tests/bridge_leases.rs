//! Leases end to end through the real Sandbox SDK: lifecycle, reuse, lost sandboxes, the reaper,
//! and bad input.

mod common;

use std::time::{Duration, Instant};

use bridge_protocol::api::{
    ErrorCode, ExecResult, LeaseDetails, LeaseResponse, LeaseState, ResumeLeaseRequest,
    TerminationReceipt, TerminationState,
};
use bridge_protocol::routes::Route;
use bridge_tests::client::{ClientError, LIMIT};
use common::leases::{acquire, acquire_reusable, release, run, shell};
use common::{TestStack, live_sandboxes, wipe_the_only_sandbox};

async fn inspect(stack: &TestStack, lease: &str) -> LeaseDetails {
    stack
        .client()
        .fetch(Route::InspectLease(lease.into()))
        .await
        .unwrap_or_else(|error| panic!("inspect: {error}"))
}

fn api_error(error: ClientError) -> (u16, ErrorCode, String) {
    match error {
        ClientError::Bridge { status, body } => (status, body.error, body.message),
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn a_lease_lives_runs_and_is_destroyed() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-life", "run-1").await;
    assert_eq!(lease.state, LeaseState::Active);
    assert!(lease.provider_lease_id.starts_with("pc-run-1-"));
    assert_eq!(live_sandboxes(&stack).await.len(), 1);

    let again = acquire(&client, "env-life", "run-1").await;
    assert_eq!(again, lease, "a repeated acquire returns the same lease");

    let result = run(&client, &shell(&lease.provider_lease_id, "echo hello; pwd")).await;
    assert_eq!(result.exit_code, Some(0));
    assert_eq!(result.stdout, format!("hello\n{}\n", lease.remote_cwd));

    let receipt = release(&client, &lease.provider_lease_id, false).await;
    assert_eq!(receipt.state, TerminationState::Destroyed);
    assert!(
        live_sandboxes(&stack).await.is_empty(),
        "the sandbox state is gone"
    );
    let details = inspect(&stack, &lease.provider_lease_id).await;
    assert_eq!(details.state, LeaseState::Destroyed);
    assert_eq!(details.executions.len(), 1);

    for _ in 0..2 {
        let receipt: TerminationReceipt = client
            .fetch(Route::DestroyLease(lease.provider_lease_id.clone()))
            .await
            .expect("destroy is idempotent");
        assert_eq!(receipt.state, TerminationState::Destroyed);
    }
    let error = client
        .post::<ExecResult>(Route::Exec, &shell(&lease.provider_lease_id, "true"))
        .await
        .expect_err("a destroyed lease runs nothing");
    let (status, code, _) = api_error(error);
    assert_eq!((status, code), (409, ErrorCode::LeaseNotActive));
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn a_reusable_lease_is_shared_kept_warm_and_resumed() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let (first, second) = tokio::join!(
        acquire_reusable(&client, "env-reuse", "run-a"),
        acquire_reusable(&client, "env-reuse", "run-b"),
    );
    assert_eq!(first.provider_lease_id, "pc-env-env-reuse");
    assert_eq!(first.provider_lease_id, second.provider_lease_id);
    assert_eq!(
        live_sandboxes(&stack).await.len(),
        1,
        "one sandbox for both"
    );
    let lease = first.provider_lease_id;

    let written = run(&client, &shell(&lease, "echo kept > state.txt")).await;
    assert_eq!(written.exit_code, Some(0));
    let receipt = release(&client, &lease, false).await;
    assert_eq!(receipt.state, TerminationState::Stopped);
    assert_eq!(inspect(&stack, &lease).await.state, LeaseState::Released);

    let resumed: LeaseResponse = client
        .post(
            Route::ResumeLease,
            &ResumeLeaseRequest {
                provider_lease_id: lease.clone(),
                ..ResumeLeaseRequest::default()
            },
        )
        .await
        .expect("resume");
    assert!(resumed.resumed);
    assert_eq!(resumed.state, LeaseState::Active);
    let read = run(&client, &shell(&lease, "cat state.txt")).await;
    assert_eq!(read.stdout, "kept\n", "files survive a warm release");

    let next_run = acquire_reusable(&client, "env-reuse", "run-c").await;
    assert!(next_run.resumed, "a later run reattaches");
    assert_eq!(
        run(&client, &shell(&lease, "cat state.txt")).await.stdout,
        "kept\n"
    );

    let _: TerminationReceipt = client
        .fetch(Route::DestroyLease(lease.clone()))
        .await
        .expect("destroy");
    let error = client
        .post::<LeaseResponse>(
            Route::ResumeLease,
            &ResumeLeaseRequest {
                provider_lease_id: lease.clone(),
                ..ResumeLeaseRequest::default()
            },
        )
        .await
        .expect_err("a destroyed lease cannot be resumed");
    let (status, _, _) = api_error(error);
    assert_eq!(status, 409);
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn a_sandbox_wiped_behind_the_bridge_is_reported_lost() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire_reusable(&client, "env-lost", "run-1")
        .await
        .provider_lease_id;
    wipe_the_only_sandbox(&stack).await;

    let error = client
        .post::<ExecResult>(
            Route::Exec,
            &shell(&lease, "touch /workspace/should-not-exist"),
        )
        .await
        .expect_err("exec on a lost sandbox fails");
    let (status, code, message) = api_error(error);
    assert_eq!((status, code), (409, ErrorCode::SandboxStateLost));
    assert!(message.contains("lost its state"), "{message}");

    let error = client
        .post::<LeaseResponse>(
            Route::ResumeLease,
            &ResumeLeaseRequest {
                provider_lease_id: lease.clone(),
                ..ResumeLeaseRequest::default()
            },
        )
        .await
        .expect_err("resume of a lost sandbox fails");
    let (status, code, _) = api_error(error);
    assert_eq!((status, code), (409, ErrorCode::SandboxStateLost));
    assert_eq!(inspect(&stack, &lease).await.state, LeaseState::Lost);

    let fresh = acquire_reusable(&client, "env-lost", "run-2").await;
    assert_eq!(
        fresh.state,
        LeaseState::Active,
        "acquire recreates a lost reusable lease"
    );
    let check = run(
        &client,
        &shell(&lease, "test -e /workspace/should-not-exist; echo $?"),
    )
    .await;
    assert_eq!(
        check.stdout, "1\n",
        "nothing ran while the sandbox was lost"
    );
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn the_reaper_destroys_abandoned_leases() {
    let stack = TestStack::start(|options| {
        options
            .vars
            .push(("BRIDGE_LEASE_IDLE_TTL_SECONDS".into(), "3".into()));
    });
    let client = stack.client();
    let lease = acquire(&client, "env-reap", "run-1")
        .await
        .provider_lease_id;
    assert_eq!(live_sandboxes(&stack).await.len(), 1);
    let started = Instant::now();
    loop {
        let details = inspect(&stack, &lease).await;
        if details.state == LeaseState::Destroyed {
            let reason = details.end_reason.unwrap_or_default();
            assert!(reason.contains("reaped"), "{reason}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not reaped after 20 s: {details:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "reaped before the TTL"
    );
    assert!(
        live_sandboxes(&stack).await.is_empty(),
        "the sandbox was destroyed"
    );
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn bad_lease_and_exec_requests_get_documented_errors() {
    let stack = TestStack::start(|options| {
        options
            .vars
            .push(("BRIDGE_MAX_BODY_BYTES".into(), "65536".into()));
    });
    let client = stack.client();
    let lease = acquire(&client, "env-bad", "run-1").await.provider_lease_id;
    let cases: Vec<(&str, String, Vec<u8>, u16, ErrorCode)> = vec![
        (
            "POST",
            Route::AcquireLease.path(),
            b"{".to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            Route::AcquireLease.path(),
            br#"{"environmentId":1,"runId":"r"}"#.to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            Route::AcquireLease.path(),
            br#"{"runId":"r"}"#.to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            Route::AcquireLease.path(),
            br#"{"environmentId":"e","runId":"r","reuseLease":true}"#.to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            Route::Exec.path(),
            br#"{"command":"true"}"#.to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            Route::Exec.path(),
            format!(r#"{{"providerLeaseId":"{lease}","command":"true","args":"not-a-list"}}"#)
                .into_bytes(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            Route::Exec.path(),
            br#"{"providerLeaseId":"pc-no-such-lease","command":"true"}"#.to_vec(),
            404,
            ErrorCode::LeaseNotFound,
        ),
        (
            "POST",
            Route::Exec.path(),
            br#"{"providerLeaseId":"Not A Lease","command":"true"}"#.to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            Route::ResumeLease.path(),
            br#"{"providerLeaseId":"pc-no-such-lease"}"#.to_vec(),
            404,
            ErrorCode::LeaseNotFound,
        ),
        (
            "GET",
            Route::InspectLease("pc-no-such-lease".into()).path(),
            Vec::new(),
            404,
            ErrorCode::LeaseNotFound,
        ),
        (
            "GET",
            format!("{}/extra", Route::InspectLease(lease.clone()).path()),
            Vec::new(),
            404,
            ErrorCode::NotFound,
        ),
        (
            "POST",
            Route::Exec.path(),
            vec![b' '; 70_000],
            413,
            ErrorCode::BodyTooLarge,
        ),
    ];
    for (method, path, body, status, code) in cases {
        let request = client.prepare(method, &path, "", &body).expect("signed");
        let response = client.send(&request, LIMIT).await.expect("sent");
        let error = response.error_body().unwrap_or_else(|| {
            panic!(
                "{method} {path}: not an error body: {}",
                String::from_utf8_lossy(&response.body)
            )
        });
        assert_eq!(
            (response.status, error.error),
            (status, code),
            "{method} {path}: {}",
            error.message
        );
    }
    let result = run(&client, &shell(&lease, "echo still serving")).await;
    assert_eq!(result.stdout, "still serving\n");
    let log = stack.stack.bridge_log();
    assert!(!log.contains("panicked"), "the Worker panicked:\n{log}");
    stack.stop_and_check_for_leaks();
}
