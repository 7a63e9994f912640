//! Streaming execution end to end: chunks as they are produced, heartbeats while silent, large
//! output byte-exact, and exactly one signed terminal event.

mod common;

use std::time::{Duration, Instant};

use bridge_protocol::api::ErrorCode;
use bridge_tests::client::{LIMIT, StreamEvent, stream_to_end};
use common::leases::{acquire, acquire_reusable, shell};
use common::{TestStack, wipe_the_only_sandbox};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn output_arrives_as_it_is_produced() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-stream", "run-1")
        .await
        .provider_lease_id;
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let mut received = 0u64;
    let end = stream_to_end(
        &client,
        &shell(
            &lease,
            "for i in $(seq 1 20); do echo line-$i; sleep 0.1; done; echo done >&2",
        ),
        LIMIT,
        |item| {
            if let StreamEvent::Output { id, data, .. } = item {
                received += data.len() as u64;
                arrivals.push((*id, started.elapsed()));
            }
        },
    )
    .await
    .expect("stream");
    let StreamEvent::Complete(result) = end else {
        panic!("expected complete, got {end:?}");
    };
    assert_eq!(result.exit_code, Some(0));
    assert!(arrivals.len() >= 10, "only {} events", arrivals.len());
    assert!(
        arrivals.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "ids increase"
    );
    let spread = arrivals.last().expect("events").1 - arrivals[0].1;
    assert!(
        spread >= Duration::from_millis(1500),
        "events were buffered: {spread:?}"
    );
    assert_eq!(result.stdout_bytes + result.stderr_bytes, received);
    assert_eq!(result.stderr_bytes, 5);
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn silence_is_filled_with_heartbeats() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-quiet", "run-1")
        .await
        .provider_lease_id;
    let mut heartbeats = 0;
    let end = stream_to_end(
        &client,
        &shell(&lease, "sleep 40; echo awake"),
        LIMIT,
        |item| {
            if *item == StreamEvent::Heartbeat {
                heartbeats += 1;
            }
        },
    )
    .await
    .expect("stream");
    assert!(
        matches!(end, StreamEvent::Complete(ref result) if result.exit_code == Some(0)),
        "{end:?}"
    );
    assert!(heartbeats >= 2, "{heartbeats} heartbeats in 40 s");
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn a_hundred_mebibytes_stream_byte_exact() {
    const SIZE: usize = 100 * 1024 * 1024;
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-bulk", "run-1")
        .await
        .provider_lease_id;
    let line = "the quick brown fox jumps over the lazy dog 0123456789 ✓\n";
    let expected: String = line.repeat(SIZE / line.len() + 1)[..SIZE].to_owned();
    let expected_hash = hex::encode(Sha256::digest(expected.as_bytes()));
    drop(expected);
    let mut hasher = Sha256::new();
    let mut received = 0usize;
    let started = Instant::now();
    let end = stream_to_end(
        &client,
        &shell(
            &lease,
            &format!("yes '{}' | head -c {SIZE}", line.trim_end()),
        ),
        LIMIT,
        |item| {
            if let StreamEvent::Output { data, .. } = item {
                received += data.len();
                hasher.update(data.as_bytes());
            }
        },
    )
    .await
    .expect("stream");
    let elapsed = started.elapsed();
    let StreamEvent::Complete(result) = end else {
        panic!("expected complete, got {end:?}");
    };
    assert_eq!(received, SIZE);
    assert_eq!(result.stdout_bytes as usize, SIZE);
    assert_eq!(hex::encode(hasher.finalize()), expected_hash);
    eprintln!(
        "100 MiB streamed in {elapsed:?} ({:.0} MiB/s)",
        100.0 / elapsed.as_secs_f64()
    );
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn a_failure_is_one_signed_error_event() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire_reusable(&client, "env-stream-lost", "run-1")
        .await
        .provider_lease_id;
    wipe_the_only_sandbox(&stack).await;
    let mut outputs = 0;
    let end = stream_to_end(&client, &shell(&lease, "echo never"), LIMIT, |item| {
        if matches!(item, StreamEvent::Output { .. }) {
            outputs += 1;
        }
    })
    .await
    .expect("a verified terminal event");
    match end {
        StreamEvent::Failed(failure) => assert_eq!(failure.error, ErrorCode::SandboxStateLost),
        other => panic!("expected an error event, got {other:?}"),
    }
    assert_eq!(outputs, 0, "the command did not run");
    stack.stop_and_check_for_leaks();
}
