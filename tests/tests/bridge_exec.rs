//! Command execution end to end: byte-exact argv, env, stdin, timeouts, cancellation and
//! concurrency, through the real Sandbox SDK into local-sandbox.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bridge_protocol::api::{
    CancelRequest, CancelResponse, ErrorCode, ExecResult, SessionMode, TerminationState,
};
use bridge_protocol::routes::Route;
use bridge_tests::client::{ClientError, LIMIT, StreamEvent, stream_to_end};
use common::leases::{acquire, command, release, run, shell};
use common::{TestStack, processes_matching, wait_for_process};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn argv_env_and_stdin_arrive_byte_exact() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-exact", "run-1")
        .await
        .provider_lease_id;

    let tricky = [
        "with space",
        "quote's \"double\"",
        "$(touch /tmp/injected)",
        "`touch /tmp/injected`",
        "line\nbreak\n",
        "ünïcødé ✓ 日本",
        "",
        "*",
        "-n",
        "; rm -rf /",
    ];
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(tricky);
    let result = run(&client, &command(&lease, &argv)).await;
    let expected: String = tricky.iter().map(|word| format!("{word}\0")).collect();
    assert_eq!(result.exit_code, Some(0), "{}", result.stderr);
    assert_eq!(result.stdout, expected);
    let injected = run(&client, &shell(&lease, "test -e /tmp/injected; echo $?")).await;
    assert_eq!(injected.stdout, "1\n", "nothing was evaluated by a shell");

    let mut with_env = shell(&lease, "printf '%s|%s' \"$GREETING\" \"$EMPTY\"");
    with_env.env = BTreeMap::from([
        ("GREETING".to_owned(), "hello 'world' $(x)".to_owned()),
        ("EMPTY".to_owned(), String::new()),
    ]);
    assert_eq!(run(&client, &with_env).await.stdout, "hello 'world' $(x)|");

    // The host forwards its server's environment, where names no shell can export are common.
    let mut exotic_env = command(&lease, &["printenv", "CARGO_BIN_EXE_local-sandbox", "x.y"]);
    exotic_env.env = BTreeMap::from([
        (
            "CARGO_BIN_EXE_local-sandbox".to_owned(),
            "/bin/x y".to_owned(),
        ),
        ("x.y".to_owned(), "it's".to_owned()),
    ]);
    assert_eq!(run(&client, &exotic_env).await.stdout, "/bin/x y\nit's\n");

    let mut bad_env = shell(&lease, "touch /workspace/ran");
    bad_env.env = BTreeMap::from([("NOT=VALID".to_owned(), "x".to_owned())]);
    match client.post::<ExecResult>(Route::Exec, &bad_env).await {
        Err(ClientError::Bridge { status, body }) => {
            assert_eq!((status, body.error), (422, ErrorCode::InvalidEnvKey));
            assert!(body.message.contains("NOT=VALID"), "{}", body.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let ran = run(&client, &shell(&lease, "test -e /workspace/ran; echo $?")).await;
    assert_eq!(ran.stdout, "1\n", "nothing ran for an invalid env key");

    // A command at the bridge's size limit starts; one past what a process can be started with
    // is refused with its size, before anything runs.
    let mut at_limit = vec!["true".to_owned()];
    at_limit.extend(std::iter::repeat_n("a".repeat(1021), 99));
    at_limit.push("b".repeat(1014));
    let at_limit: Vec<&str> = at_limit.iter().map(String::as_str).collect();
    let result = run(&client, &command(&lease, &at_limit)).await;
    assert_eq!(result.exit_code, Some(0), "{}", result.stderr);
    let mut too_many = vec!["touch", "/workspace/too-large"];
    too_many.extend(std::iter::repeat_n("a", 100_000));
    match client
        .post::<ExecResult>(Route::Exec, &command(&lease, &too_many))
        .await
    {
        Err(ClientError::Bridge { status, body }) => {
            assert_eq!((status, body.error), (422, ErrorCode::CommandTooLarge));
            let details = body.details.expect("details");
            assert_eq!(details.limit_bytes, Some(102_400), "{}", body.message);
            assert_eq!(details.size_bytes, Some(400_031), "{}", body.message);
            assert!(body.message.contains("102400"), "{}", body.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let ran = run(
        &client,
        &shell(&lease, "test -e /workspace/too-large; echo $?"),
    )
    .await;
    assert_eq!(ran.stdout, "1\n", "nothing ran for a command too large");

    let mut in_dir = command(&lease, &["pwd"]);
    in_dir.cwd = Some("/tmp".into());
    assert_eq!(run(&client, &in_dir).await.stdout, "/tmp\n");

    let stdin: String = (0..5 * 1024 * 1024)
        .map(|index| char::from(b'a' + (index % 26) as u8))
        .collect::<String>()
        + "\nfin ✓";
    let mut hashed = command(&lease, &["sha256sum"]);
    hashed.stdin = Some(stdin.clone());
    hashed.execution_id = Some("stdin-5mib".into());
    let result = run(&client, &hashed).await;
    assert_eq!(result.exit_code, Some(0), "{}", result.stderr);
    assert_eq!(
        result.stdout,
        format!("{}  -\n", hex::encode(Sha256::digest(stdin.as_bytes())))
    );
    let staged = run(
        &client,
        &shell(
            &lease,
            "test -e /tmp/.paperclip-bridge/exec/stdin-5mib; echo $?",
        ),
    )
    .await;
    assert_eq!(staged.stdout, "1\n", "the staged stdin is removed");
    let no_stdin = run(&client, &command(&lease, &["wc", "-c"])).await;
    assert_eq!(no_stdin.stdout.trim(), "0", "absent stdin is empty");
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn the_bridge_timeout_kills_the_whole_tree() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-timeout", "run-1")
        .await
        .provider_lease_id;
    let mut request = shell(
        &lease,
        "echo before; sh -c 'trap \"\" TERM; exec sleep 607.1' & sleep 607.2",
    );
    request.timeout_ms = Some(2_000);
    let started = Instant::now();
    let result = run(&client, &request).await;
    let elapsed = started.elapsed();
    assert!(result.timed_out, "{result:?}");
    assert_eq!(result.exit_code, None);
    assert_eq!(
        result.signal.as_deref(),
        Some("SIGKILL"),
        "a TERM-proof child needs KILL"
    );
    assert_eq!(
        result.stdout, "before\n",
        "output up to the timeout is kept"
    );
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    assert!(elapsed >= Duration::from_secs(2), "took {elapsed:?}");
    for needle in ["607.1", "607.2"] {
        assert!(
            processes_matching(needle).is_empty(),
            "sleep {needle} survived"
        );
    }
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn cancel_and_release_stop_running_commands_before_answering() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-cancel", "run-1")
        .await
        .provider_lease_id;

    let mut long = shell(
        &lease,
        "sh -c 'trap \"\" TERM; exec sleep 608.1' & sleep 608.2",
    );
    long.execution_id = Some("long-1".into());
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.post::<ExecResult>(Route::Exec, &long).await }
    });
    wait_for_process("608.2").await;
    let cancelled: CancelResponse = client
        .post(
            Route::CancelExec("long-1".into()),
            &CancelRequest {
                provider_lease_id: lease.clone(),
            },
        )
        .await
        .expect("cancel");
    assert!(cancelled.cancelled);
    for needle in ["608.1", "608.2"] {
        assert!(
            processes_matching(needle).is_empty(),
            "{needle} alive after the cancel answer"
        );
    }
    let result = running.await.expect("task").expect("exec answers");
    assert!(result.cancelled, "{result:?}");
    assert_eq!(result.exit_code, None);
    let again: CancelResponse = client
        .post(
            Route::CancelExec("long-1".into()),
            &CancelRequest {
                provider_lease_id: lease.clone(),
            },
        )
        .await
        .expect("cancel again");
    assert!(!again.cancelled, "nothing left to cancel");

    let busy = shell(&lease, "sleep 609.1");
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.post::<ExecResult>(Route::Exec, &busy).await }
    });
    wait_for_process("609.1").await;
    let receipt = release(&client, &lease, true).await;
    assert_eq!(receipt.state, TerminationState::Destroyed);
    assert!(
        processes_matching("609.1").is_empty(),
        "alive after the receipt"
    );
    let outcome = running.await.expect("task");
    assert!(
        outcome
            .as_ref()
            .map_or(true, |result| result.exit_code.is_none()),
        "a released command does not report success: {outcome:?}"
    );
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn thirty_two_concurrent_commands_over_eight_leases_do_not_cross() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let leases: Vec<String> = futures_util::future::join_all((0..8).map(|index| {
        let client = &client;
        async move { acquire(client, "env-many", &format!("run-{index}")).await }
    }))
    .await
    .into_iter()
    .map(|lease| lease.provider_lease_id)
    .collect();
    let runs = leases.iter().enumerate().flat_map(|(lease_index, lease)| {
        (0..4).map(move |slot| (lease_index, slot, lease.clone()))
    });
    let results = futures_util::future::join_all(runs.map(|(lease_index, slot, lease)| {
        let client = client.clone();
        async move {
            let token = format!("lease{lease_index}-slot{slot}");
            let mut request = shell(
                &lease,
                "printf '%s' \"$TOKEN\" > \"mine-$TOKEN\"; sleep 0.2; cat \"mine-$TOKEN\"; echo; ls",
            );
            request.env = BTreeMap::from([("TOKEN".to_owned(), token.clone())]);
            request.session = bridge_protocol::api::SessionMode::None;
            (lease_index, token, run(&client, &request).await)
        }
    }))
    .await;
    assert_eq!(results.len(), 32);
    for (lease_index, token, result) in results {
        assert_eq!(result.exit_code, Some(0), "{token}: {}", result.stderr);
        let mut lines = result.stdout.lines();
        assert_eq!(lines.next(), Some(token.as_str()));
        for file in lines {
            assert!(
                file.starts_with(&format!("mine-lease{lease_index}-")),
                "{token} sees {file}: output crossed leases"
            );
        }
    }
    stack.stop_and_check_for_leaks();
}

/// The host starts its callback bridge with `nohup … &` on its control channel and then keeps
/// sending commands on that channel: a process a command leaves running must never hold the
/// session (nor be killed to free it), whatever the session mode.
#[tokio::test]
async fn a_background_process_never_blocks_the_next_command_in_any_session_mode() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-background", "run-1")
        .await
        .provider_lease_id;
    let control_channel = BTreeMap::from([(
        "PAPERCLIP_SANDBOX_EXEC_CHANNEL".to_owned(),
        "bridge".to_owned(),
    )]);
    let modes = [
        ("named", SessionMode::Named, BTreeMap::new()),
        ("default", SessionMode::Default, BTreeMap::new()),
        ("bridge channel", SessionMode::None, control_channel),
        ("no session", SessionMode::None, BTreeMap::new()),
    ];
    for (index, (name, session, env)) in modes.into_iter().enumerate() {
        let needle = format!("613.{index}");
        let mut starter = shell(
            &lease,
            &format!("nohup sleep {needle} >/dev/null 2>&1 </dev/null & echo started"),
        );
        starter.session = session;
        starter.env = env.clone();
        let started = run(&client, &starter).await;
        assert_eq!(
            (started.exit_code, started.stdout.as_str()),
            (Some(0), "started\n"),
            "{name}: {started:?}"
        );
        let mut next = command(&lease, &["echo", "next"]);
        next.session = session;
        next.env = env;
        next.timeout_ms = Some(10_000);
        let begun = Instant::now();
        let result = run(&client, &next).await;
        assert!(
            !result.timed_out && result.exit_code == Some(0) && result.stdout == "next\n",
            "{name}: the next command waited for the background process: {result:?}"
        );
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{name}: the next command took {:?}",
            begun.elapsed()
        );
        assert!(
            !processes_matching(&needle).is_empty(),
            "{name}: the background process was killed"
        );
    }
    release(&client, &lease, false).await;
    assert!(
        processes_matching("613.").is_empty(),
        "releasing the lease ends what its commands left running"
    );
    stack.stop_and_check_for_leaks();
}

/// A command that leaves a process running with its output pipes inherited (`server &`): the
/// container keeps reading those pipes until that process exits, but the command's result — JSON
/// or stream — arrives as soon as the command itself has exited, with exactly its own output.
#[tokio::test]
async fn a_background_process_holding_the_output_never_holds_the_result() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-held-pipes", "run-1")
        .await
        .provider_lease_id;
    let mut json = shell(
        &lease,
        "sleep 617.1 & echo started; echo on-stderr >&2; exit 3",
    );
    json.timeout_ms = Some(20_000);
    let begun = Instant::now();
    let result = run(&client, &json).await;
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "the JSON result waited {:?}",
        begun.elapsed()
    );
    assert_eq!(
        (
            result.exit_code,
            result.timed_out,
            result.stdout.as_str(),
            result.stderr.as_str()
        ),
        (Some(3), false, "started\n", "on-stderr\n"),
        "{result:?}"
    );

    let mut streamed = shell(&lease, "sleep 617.2 & printf 'streamed'");
    streamed.timeout_ms = Some(20_000);
    let begun = Instant::now();
    let mut output = Vec::new();
    let end = stream_to_end(&client, &streamed, LIMIT, |item| {
        if let StreamEvent::Output { data, .. } = item {
            output.extend_from_slice(data.as_bytes());
        }
    })
    .await
    .expect("stream");
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "the stream waited {:?}",
        begun.elapsed()
    );
    let StreamEvent::Complete(result) = end else {
        panic!("expected complete, got {end:?}");
    };
    assert_eq!((result.exit_code, result.stdout_bytes), (Some(0), 8));
    assert_eq!(output, b"streamed");
    for needle in ["617.1", "617.2"] {
        assert!(
            !processes_matching(needle).is_empty(),
            "the background process {needle} was killed"
        );
    }
    let next = run(&client, &command(&lease, &["echo", "next"])).await;
    assert_eq!(next.stdout, "next\n");
    release(&client, &lease, false).await;
    assert!(processes_matching("617.").is_empty());
    stack.stop_and_check_for_leaks();
}
