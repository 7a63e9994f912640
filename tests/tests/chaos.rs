//! Faults on the local stack (`cargo xtask chaos` runs these at full scale and reports their
//! numbers; `cargo test` runs them scaled down): the container dying mid-stream, workerd
//! restarting mid-command, a client that goes away or reads slowly, and load. Each case checks
//! what the client saw (exactly one terminal outcome, never a success for an unfinished
//! command), what was left behind (no process of the execution, the journal's last word), and
//! that the bridge serves the next request.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bridge_protocol::api::{
    ErrorCode, ExecRequest, ExecResult, ExecutionRecord, ExecutionStatus, LeaseDetails, LeaseState,
    SessionMode, StreamFailure,
};
use bridge_protocol::auth::{SecretKey, StreamOutcome};
use bridge_protocol::client::CallPolicy;
use bridge_protocol::routes::Route;
use bridge_protocol::sse::{SseDecoder, SseItem};
use bridge_tests::chaos::{full_scale, report};
use bridge_tests::client::{BridgeClient, ClientError, StreamEvent, stream_to_end};
use common::leases::{acquire, run, shell};
use common::{TestStack, processes_matching, wait_for_process, wipe_the_only_sandbox};

/// An execution's event stream read as the bytes the bridge sent, so that a case can count
/// every terminal event (the client stops at the first) and check each one's signature.
struct RawStream {
    response: reqwest::Response,
    decoder: SseDecoder,
    pending: VecDeque<SseItem>,
    nonce: String,
    secret: SecretKey,
}

/// What a stream carried once its body ended.
#[derive(Debug)]
struct StreamEnd {
    /// `complete` and `error` events, each with its signature verified.
    terminals: Vec<Terminal>,
    /// How the body ended: `Err` when it was cut by the network.
    body: Result<(), String>,
}

/// A terminal event.
#[derive(Debug)]
enum Terminal {
    Complete(ExecResult),
    Error(StreamFailure),
}

impl RawStream {
    async fn open(stack: &TestStack, request: &ExecRequest) -> Self {
        let client = stack.client();
        let body = serde_json::to_vec(request).expect("encodes");
        let path = Route::Exec.path();
        let prepared = client.prepare("POST", &path, "", &body).expect("signed");
        let mut http = bridge_tests::http_client()
            .post(format!("{}{path}", client.base_url()))
            .header("Accept", "text/event-stream")
            .body(body);
        for (name, value) in &prepared.headers {
            http = http.header(name, value);
        }
        let response = http.send().await.expect("the stream starts");
        assert_eq!(response.status(), 200, "a stream, not an error answer");
        let (_, secret) = &stack.stack.keys().primary;
        Self {
            response,
            decoder: SseDecoder::new(),
            pending: VecDeque::new(),
            nonce: prepared.nonce.as_str().to_owned(),
            secret: SecretKey::new(secret).expect("secret"),
        }
    }

    /// The next item; `Ok(None)` at the end of the body.
    async fn next(&mut self) -> Result<Option<SseItem>, String> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Ok(Some(item));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.pending.extend(self.decoder.push(&bytes)),
                Ok(None) => return Ok(None),
                Err(error) => return Err(error.to_string()),
            }
        }
    }

    /// Waits for the first output event.
    async fn first_output(&mut self) {
        loop {
            match self.next().await {
                Ok(Some(SseItem::Event(event)))
                    if matches!(event.event.as_deref(), Some("stdout" | "stderr")) =>
                {
                    return;
                }
                Ok(Some(SseItem::Comment(_))) => {}
                other => panic!("expected output first, got {other:?}"),
            }
        }
    }

    /// Reads the body to its end.
    async fn follow_to_end(mut self) -> StreamEnd {
        let mut terminals = Vec::new();
        loop {
            let event = match self.next().await {
                Ok(Some(SseItem::Event(event))) => event,
                Ok(Some(SseItem::Comment(_))) => continue,
                Ok(None) => {
                    return StreamEnd {
                        terminals,
                        body: Ok(()),
                    };
                }
                Err(error) => {
                    return StreamEnd {
                        terminals,
                        body: Err(error),
                    };
                }
            };
            match event.event.as_deref() {
                Some("complete") => {
                    let result: ExecResult = serde_json::from_str(&event.data).expect("result");
                    let signature = result.signature.clone().unwrap_or_default();
                    assert!(
                        StreamOutcome::complete(&result).verify(
                            &self.secret,
                            &self.nonce,
                            &signature
                        ),
                        "the complete event is signed for the request"
                    );
                    terminals.push(Terminal::Complete(result));
                }
                Some("error") => {
                    let failure: StreamFailure =
                        serde_json::from_str(&event.data).expect("failure");
                    let outcome = StreamOutcome::Error {
                        code: failure.error.as_str(),
                    };
                    assert!(
                        outcome.verify(&self.secret, &self.nonce, &failure.signature),
                        "the error event is signed for the request"
                    );
                    terminals.push(Terminal::Error(failure));
                }
                _ => {}
            }
        }
    }
}

/// Waits until no process carries `needle` in its command line.
async fn wait_until_gone(needle: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    while !processes_matching(needle).is_empty() {
        assert!(
            started.elapsed() < limit,
            "{needle}: still running after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// The lease's journal once no execution in it is running any more (the end of a killed command
/// is journaled once its stream has drained).
async fn settled_journal(client: &BridgeClient, lease: &str) -> Vec<ExecutionRecord> {
    let started = Instant::now();
    loop {
        let details: LeaseDetails = client
            .fetch(Route::InspectLease(lease.to_owned()))
            .await
            .expect("inspect");
        if details
            .executions
            .iter()
            .all(|execution| execution.status != ExecutionStatus::Running)
        {
            return details.executions;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "executions still running: {:?}",
            details.executions
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The bridge serves a new lease and a command on it.
async fn serves_the_next_request(client: &BridgeClient, name: &str) {
    let lease = acquire(client, &format!("{name}-after"), "run-after")
        .await
        .provider_lease_id;
    let result = run(client, &shell(&lease, "echo still-serving")).await;
    assert_eq!(result.stdout, "still-serving\n", "{}", result.stderr);
}

#[tokio::test]
async fn the_container_dying_mid_stream_ends_it_with_one_signed_sandbox_state_lost() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "chaos-lost", "run-1")
        .await
        .provider_lease_id;
    let ticking = shell(&lease, "while :; do echo tick-502.7; sleep 0.05; done");
    let mut stream = RawStream::open(&stack, &ticking).await;
    stream.first_output().await;
    let died = Instant::now();
    wipe_the_only_sandbox(&stack).await;
    let end = stream.follow_to_end().await;
    let to_terminal = died.elapsed();
    end.body
        .expect("the stream ends cleanly after its terminal event");
    let [Terminal::Error(failure)] = end.terminals.as_slice() else {
        panic!("exactly one terminal event, an error: {:?}", end.terminals);
    };
    assert_eq!(
        failure.error,
        ErrorCode::SandboxStateLost,
        "{}",
        failure.message
    );
    report(
        "container dies mid-stream",
        "ms to the terminal event",
        to_terminal.as_secs_f64() * 1000.0,
    );
    assert!(to_terminal < Duration::from_secs(5), "{to_terminal:?}");
    assert!(processes_matching("tick-502.7").is_empty());
    let details: LeaseDetails = client
        .fetch(Route::InspectLease(lease.clone()))
        .await
        .expect("inspect");
    assert_eq!(details.state, LeaseState::Lost);
    assert_eq!(
        details.executions.last().map(|execution| execution.status),
        Some(ExecutionStatus::Failed),
        "the journal's last word: {:?}",
        details.executions
    );
    match client
        .post::<ExecResult>(Route::Exec, &shell(&lease, "true"))
        .await
    {
        Err(ClientError::Bridge { status, body }) => {
            assert_eq!((status, body.error), (409, ErrorCode::SandboxStateLost));
        }
        other => panic!("the lost lease refuses commands: {other:?}"),
    }
    serves_the_next_request(&client, "chaos-lost").await;
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn workerd_restarting_mid_command_is_a_transport_failure_and_the_deadline_still_kills() {
    let mut stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "chaos-restart", "run-1")
        .await
        .provider_lease_id;
    let mut quiet = shell(&lease, "sleep 611.2");
    quiet.timeout_ms = Some(3_000);
    quiet.session = SessionMode::None;
    let json = tokio::spawn({
        let client = client.clone();
        async move { client.post::<ExecResult>(Route::Exec, &quiet).await }
    });
    let mut ticking = shell(&lease, "while :; do echo tick; sleep 0.1; done; : 611.3");
    ticking.timeout_ms = Some(3_000);
    ticking.session = SessionMode::None;
    let mut stream = RawStream::open(&stack, &ticking).await;
    stream.first_output().await;
    wait_for_process("611.2").await;
    let restarted = Instant::now();
    stack
        .stack
        .restart_bridge()
        .unwrap_or_else(|error| panic!("restart: {error}"));
    let answer = json.await.expect("task");
    assert!(
        matches!(
            answer,
            Err(ClientError::Network(_) | ClientError::Truncated)
        ),
        "a JSON call cut by the restart is a transport failure, never a result: {answer:?}"
    );
    let end = stream.follow_to_end().await;
    assert!(
        end.terminals.is_empty(),
        "a stream cut by the restart has no terminal event: {end:?}"
    );
    for needle in ["611.2", "611.3"] {
        // The deadline (3 s), the alarm's slack (5 s) and workerd's own start.
        wait_until_gone(needle, Duration::from_secs(20)).await;
        report(
            "workerd restarts mid-command",
            &format!("ms from the restart until {needle} was killed"),
            restarted.elapsed().as_secs_f64() * 1000.0,
        );
    }
    let client = stack.client();
    let journal = settled_journal(&client, &lease).await;
    assert!(
        journal
            .iter()
            .all(|execution| execution.status == ExecutionStatus::TimedOut),
        "the journal's last word on both is their deadline: {journal:?}"
    );
    let again = run(&client, &shell(&lease, "echo same-lease")).await;
    assert_eq!(again.stdout, "same-lease\n", "{}", again.stderr);
    serves_the_next_request(&client, "chaos-restart").await;
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn a_client_gone_mid_stream_leaves_the_command_to_its_timeout_and_its_output_nowhere() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "chaos-gone", "run-1")
        .await
        .provider_lease_id;
    let mebibytes = if full_scale() { 1024 } else { 128 };
    let timeout_ms = if full_scale() { 60_000 } else { 20_000 };
    let mut writer = shell(
        &lease,
        &format!("echo ready; sleep 1; head -c {mebibytes}M /dev/zero | tr '\\0' x; sleep 611.4"),
    );
    writer.timeout_ms = Some(timeout_ms);
    let group = stack.stack.bridge_process_group();
    let idle = bridge_tests::harness::workerd_rss(group);
    let mut stream = RawStream::open(&stack, &writer).await;
    let started = Instant::now();
    stream.first_output().await;
    drop(stream);
    let mut peak = idle;
    while processes_matching("611.4").is_empty() {
        peak = peak.max(bridge_tests::harness::workerd_rss(group));
        assert!(
            started.elapsed() < Duration::from_millis(timeout_ms),
            "the output was not consumed before the timeout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written = started.elapsed();
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    report("client disconnects", "workerd idle RSS (MiB)", mib(idle));
    report(
        "client disconnects",
        &format!("workerd peak RSS while {mebibytes} MiB were written (MiB)"),
        mib(peak),
    );
    assert!(
        mib(peak) <= mib(idle) * 1.5 + 64.0,
        "output piled up: {} MiB at peak over {} idle",
        mib(peak),
        mib(idle)
    );
    assert!(
        !processes_matching("611.4").is_empty(),
        "the disconnect did not kill the command ({written:?} in)"
    );
    let gone = wait_until_gone("611.4", Duration::from_millis(timeout_ms + 30_000)).await;
    let killed_at = written + gone;
    report(
        "client disconnects",
        "ms from the start until the timeout killed it",
        killed_at.as_secs_f64() * 1000.0,
    );
    assert!(
        killed_at + Duration::from_secs(1) >= Duration::from_millis(timeout_ms),
        "killed before its timeout: {killed_at:?}"
    );
    let journal = settled_journal(&client, &lease).await;
    assert_eq!(
        journal.last().map(|execution| execution.status),
        Some(ExecutionStatus::TimedOut),
        "{journal:?}"
    );
    serves_the_next_request(&client, "chaos-gone").await;
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn a_slow_reader_holds_the_command_back_without_the_worker_buffering_its_output() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "chaos-slow", "run-1")
        .await
        .provider_lease_id;
    let timeout_ms: u64 = if full_scale() { 30_000 } else { 12_000 };
    let mut fast = shell(&lease, "head -c 536870912 /dev/zero | tr '\\0' y; : 611.5");
    fast.timeout_ms = Some(timeout_ms);
    let group = stack.stack.bridge_process_group();
    let idle = bridge_tests::harness::workerd_rss(group);
    let mut stream = RawStream::open(&stack, &fast).await;
    let started = Instant::now();
    let mut peak = idle;
    let mut read = 0usize;
    while started.elapsed() + Duration::from_secs(2) < Duration::from_millis(timeout_ms) {
        let chunk = stream
            .response
            .chunk()
            .await
            .expect("readable")
            .expect("not ended");
        read += chunk.len();
        peak = peak.max(bridge_tests::harness::workerd_rss(group));
        let owed = Duration::from_secs_f64(read as f64 / 1024.0);
        tokio::time::sleep(
            owed.saturating_sub(started.elapsed())
                .min(Duration::from_secs(1)),
        )
        .await;
    }
    assert!(
        !processes_matching("536870912").is_empty(),
        "nothing but its timeout may stop the command ({read} bytes read)"
    );
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    report("slow client", "workerd idle RSS (MiB)", mib(idle));
    report(
        "slow client",
        "workerd peak RSS at 1 KiB/s (MiB)",
        mib(peak),
    );
    assert!(
        mib(peak) <= mib(idle) * 1.5 + 64.0,
        "the Worker buffered a slow reader's output: {} MiB at peak over {} idle",
        mib(peak),
        mib(idle)
    );
    wait_until_gone("536870912", Duration::from_secs(30)).await;
    report(
        "slow client",
        "ms past the timeout until the command was gone",
        started
            .elapsed()
            .saturating_sub(Duration::from_millis(timeout_ms))
            .as_secs_f64()
            * 1000.0,
    );
    let end = stream.follow_to_end().await;
    end.body.expect("the stream ends cleanly");
    let [Terminal::Complete(result)] = end.terminals.as_slice() else {
        panic!("exactly one terminal event: {:?}", end.terminals);
    };
    assert!(result.timed_out, "{result:?}");
    let journal = settled_journal(&client, &lease).await;
    assert_eq!(
        journal.last().map(|execution| execution.status),
        Some(ExecutionStatus::TimedOut),
        "{journal:?}"
    );
    serves_the_next_request(&client, "chaos-slow").await;
    stack.stop_and_check_for_leaks();
}

/// How long one command of the load may take: on two cores, 512 of them at once share the
/// machine, so a large output takes a minute or more (the p99 says how long).
const LOAD_LIMIT: Duration = Duration::from_secs(300);

/// Outputs up to this size are reported apart: their time is the bridge's, not the bytes'.
const SMALL_OUTPUT: u64 = 16 * 1024;

/// One command of the load: `yes <marker> | head -c <size>`, as JSON or as a stream.
struct LoadCommand {
    lease: String,
    marker: String,
    size: u64,
    streamed: bool,
}

impl LoadCommand {
    /// Runs it and checks that its output is its own, whole: every line its marker, the last
    /// one cut at the size.
    async fn run(&self, client: &BridgeClient) -> Result<Duration, String> {
        let mut request = shell(
            &self.lease,
            &format!("yes {} | head -c {}", self.marker, self.size),
        );
        request.session = SessionMode::None;
        let started = Instant::now();
        let stdout = if self.streamed {
            let mut stdout = String::new();
            let terminal = stream_to_end(client, &request, LOAD_LIMIT, |event| {
                if let StreamEvent::Output { data, .. } = event {
                    stdout.push_str(data);
                }
            })
            .await
            .map_err(|error| format!("stream: {error}"))?;
            match terminal {
                StreamEvent::Complete(result) if result.exit_code == Some(0) => stdout,
                other => return Err(format!("stream ended with {other:?}")),
            }
        } else {
            let result = client
                .call::<ExecResult>(Route::Exec, Some(&request), CallPolicy::once(LOAD_LIMIT))
                .await
                .map_err(|error| format!("exec: {error}"))?;
            if result.exit_code != Some(0) {
                return Err(format!("exit {:?}: {}", result.exit_code, result.stderr));
            }
            result.stdout
        };
        let elapsed = started.elapsed();
        if stdout.len() as u64 != self.size {
            return Err(format!(
                "{}: {} bytes instead of {}",
                self.marker,
                stdout.len(),
                self.size
            ));
        }
        let line = format!("{}\n", self.marker);
        let (bytes, line) = (stdout.as_bytes(), line.as_bytes());
        let whole = bytes.len() / line.len() * line.len();
        let own = bytes[..whole].chunks(line.len()).all(|chunk| chunk == line)
            && line.starts_with(&bytes[whole..]);
        if own {
            Ok(elapsed)
        } else {
            Err(format!(
                "cross-talk: {} got output not its own",
                self.marker
            ))
        }
    }
}

/// A draw from xorshift64, for sizes that differ per command yet repeat per run.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_leases_under_mixed_load_see_no_error_and_only_their_own_output() {
    let (leases, per_lease, duration, largest) = if full_scale() {
        (64, 8, Duration::from_secs(60), 8u64 << 20)
    } else {
        (8, 4, Duration::from_secs(10), 1u64 << 20)
    };
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let mut lease_ids = Vec::new();
    for index in 0..leases {
        let lease = acquire(&client, &format!("chaos-load-{index}"), "run-1").await;
        lease_ids.push(lease.provider_lease_id);
    }
    let started = Instant::now();
    let stop_at = started + duration;
    let workers = lease_ids
        .iter()
        .enumerate()
        .flat_map(|(lease_index, lease)| {
            (0..per_lease).map(move |worker| (lease_index, worker, lease.clone()))
        });
    let tasks: Vec<_> = workers
        .map(|(lease_index, worker, lease)| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut state = (lease_index as u64 + 1) * 7919 + worker as u64 * 104_729 + 1;
                let mut outcomes = Vec::new();
                let mut count = 0;
                while Instant::now() < stop_at {
                    let span = (largest as f64 / 1024.0).ln();
                    let fraction = (next_random(&mut state) % 10_000) as f64 / 10_000.0;
                    let command = LoadCommand {
                        lease: lease.clone(),
                        marker: format!("m{lease_index}-{worker}-{count}"),
                        size: (1024.0 * (span * fraction).exp()) as u64,
                        streamed: (count + worker) % 2 == 0,
                    };
                    outcomes.push((command.size, command.run(&client).await));
                    count += 1;
                }
                outcomes
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut small = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        for (size, outcome) in task.await.expect("worker") {
            match outcome {
                Ok(latency) if size <= SMALL_OUTPUT => {
                    small.push(latency);
                    latencies.push(latency);
                }
                Ok(latency) => latencies.push(latency),
                Err(error) => errors.push(error),
            }
        }
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    small.sort_unstable();
    let quantile = |sorted: &[Duration], q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |latency| latency.as_secs_f64() * 1000.0)
    };
    let case = format!("load ({leases} leases x {per_lease} concurrent execs)");
    report(&case, "commands run", latencies.len() as f64);
    report(&case, "errors", errors.len() as f64);
    report(&case, "wall time (s)", wall.as_secs_f64());
    report(&case, "p50 (ms)", quantile(&latencies, 0.5));
    report(&case, "p99 (ms)", quantile(&latencies, 0.99));
    report(&case, "commands of at most 16 KiB", small.len() as f64);
    report(&case, "p50 of those (ms)", quantile(&small, 0.5));
    report(&case, "p99 of those (ms)", quantile(&small, 0.99));
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert!(
        latencies.len() >= leases * per_lease,
        "every worker ran at least one command"
    );
    assert!(
        wall < duration + Duration::from_secs(120),
        "the load stopped by itself: {wall:?}"
    );
    serves_the_next_request(&client, "chaos-load").await;
    stack.stop_and_check_for_leaks();
}
