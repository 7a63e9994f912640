//! Exec round trips and output streaming through the bridge on the local stack.
//!
//! Round trips: `exec true` in the two request shapes the plugin sends, interleaved with the same
//! command sent straight to local-sandbox (the container's floor). Each shape is measured twice:
//! at the Worker's own workerd socket, as a deployed Worker is reached, and through wrangler's
//! dev proxy, which only the local stack has. The Durable Object calls are counted where the
//! objects receive them (`tests/local/entry.mjs`), and the same counters time each boundary of an
//! exec for the breakdown.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bridge_protocol::api::{
    AcquireLeaseRequest, DownloadRequest, ExecRequest, ExecResult, LeaseResponse, SessionMode,
    TransferFormat, UploadTarget,
};
use bridge_protocol::routes::Route;
use bridge_tests::client::{BridgeClient, LIMIT, StreamEvent, stream_to_end};
use bridge_tests::harness::{LocalStack, workerd_rss};
use bridge_tests::local_sandbox::SESSIONLESS;
use bridge_tests::paperclip::workspace::noise;
use bridge_worker::{EndRecord, ExecPlan, ExecutionTicket, SENTINEL_PATH};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Stats, median, ms};
use crate::command::announce;

/// Round trips measured per series.
const ROUND_TRIPS: usize = 300;
/// Round trips run first and thrown away (isolate and JIT warm-up).
const WARM_UP: usize = 30;
/// Execs per shape timed boundary by boundary for the breakdown.
const BREAKDOWN_RUNS: usize = 100;
/// Size of the streaming measurement.
pub const STREAM_BYTES: usize = 64 * 1024 * 1024;
/// Streams measured; the median is reported (the first run also pays for warming workerd up).
const STREAM_RUNS: usize = 5;
/// Pieces the upload's source hands to the client, as a file read would.
const UPLOAD_PIECE: usize = 256 * 1024;
/// The line the streamed output repeats.
pub const STREAM_LINE: &str = "the-quick-brown-fox-jumps-over-the-lazy-dog\n";

/// An `exec true` request as the plugin shapes it.
pub(super) struct Shape {
    /// `agent` or `control`.
    pub(super) key: &'static str,
    request: ExecRequest,
}

/// The plugin's two shapes: an agent's command (the lease's session, a login shell, the lease's
/// directory, a timeout) and its own or the host's control commands (no session, no login shell).
pub(super) fn shapes(lease: &LeaseResponse) -> [Shape; 2] {
    let control = ExecRequest {
        provider_lease_id: lease.provider_lease_id.clone(),
        command: "true".into(),
        session: SessionMode::None,
        login_shell: Some(false),
        ..ExecRequest::default()
    };
    let agent = ExecRequest {
        session: SessionMode::Named,
        login_shell: Some(true),
        cwd: Some(lease.remote_cwd.clone()),
        timeout_ms: Some(300_000),
        ..control.clone()
    };
    [
        Shape {
            key: "agent",
            request: agent,
        },
        Shape {
            key: "control",
            request: control,
        },
    ]
}

/// Round trips, DO calls, the breakdown and streaming, as JSON.
pub async fn measure(stack: &LocalStack, client: &BridgeClient) -> Result<Value> {
    let (at_socket, lease) = socket_and_lease(stack, client, "bench").await?;
    let shapes = shapes(&lease);
    let round_trips = round_trips(stack, client, &at_socket, &lease, &shapes).await?;
    let breakdown = breakdown(stack, &at_socket, &shapes).await?;
    let streaming = streaming(stack, &at_socket, client, &lease).await?;
    let download = DownloadFile::create(&at_socket, &lease).await?;
    let downloading = transfer_rates("downloaded (a SyncOut's bytes, read in bulk)", async || {
        download.download_once(&at_socket).await
    })
    .await?;
    let upload = UploadFile::new(&lease);
    let uploading = transfer_rates(
        "uploaded (a SyncIn's bytes, every frame verified)",
        async || upload.upload_once(&at_socket).await,
    )
    .await?;
    client
        .fetch::<Value>(Route::DestroyLease(lease.provider_lease_id))
        .await?;
    Ok(json!({
        "roundTrip": round_trips,
        "breakdown": breakdown,
        "streaming": streaming,
        "download": downloading,
        "upload": uploading,
    }))
}

/// A client of the Worker's own socket, and a lease of `environment` for the measurements.
pub(super) async fn socket_and_lease(
    stack: &LocalStack,
    client: &BridgeClient,
    environment: &str,
) -> Result<(BridgeClient, LeaseResponse)> {
    let at_socket = stack
        .worker_socket_client()
        .context("cannot find the Worker's own socket behind wrangler's proxy")?;
    let lease = client
        .post(
            Route::AcquireLease,
            &AcquireLeaseRequest {
                environment_id: environment.into(),
                run_id: format!("{environment}-run"),
                ..AcquireLeaseRequest::default()
            },
        )
        .await?;
    Ok((at_socket, lease))
}

async fn round_trips(
    stack: &LocalStack,
    via_proxy: &BridgeClient,
    at_socket: &BridgeClient,
    lease: &LeaseResponse,
    shapes: &[Shape; 2],
) -> Result<Value> {
    announce(&format!(
        "bench: `true` round trips, two request shapes at workerd and through wrangler's proxy, \
         interleaved with direct local-sandbox calls of `true` and of each shape's script \
         ({ROUND_TRIPS} each)"
    ));
    let direct = DirectCall::of_true(stack).await?;
    let mut scripts = Vec::with_capacity(shapes.len());
    for shape in shapes {
        scripts.push((
            shape.key,
            DirectCall::of_bridge_script(stack, lease, shape).await?,
        ));
    }
    let http = bridge_tests::http_client();
    let healthz = |client: &BridgeClient| {
        let url = format!("{}/healthz", client.base_url());
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            anyhow::Ok(())
        }
    };
    let paths = [("socket", at_socket), ("proxy", via_proxy)];
    let mut series: Vec<(String, Vec<Duration>)> = Vec::new();
    let mut record = |name: String, index: usize, elapsed: Duration| {
        if index < WARM_UP {
            return;
        }
        match series.iter_mut().find(|(key, _)| *key == name) {
            Some((_, samples)) => samples.push(elapsed),
            None => series.push((name, vec![elapsed])),
        }
    };
    let before = profile(stack).await?;
    let mut execs = 0usize;
    for index in 0..WARM_UP + ROUND_TRIPS {
        let started = Instant::now();
        direct.run().await?;
        record("direct".into(), index, started.elapsed());
        for (key, script) in &scripts {
            let started = Instant::now();
            script.run().await?;
            record(format!("{key}/script"), index, started.elapsed());
        }
        for (path, client) in paths {
            let started = Instant::now();
            healthz(client).await?;
            record(format!("healthz/{path}"), index, started.elapsed());
            for shape in shapes {
                let started = Instant::now();
                exec_true(client, shape).await?;
                record(format!("{}/{path}", shape.key), index, started.elapsed());
                execs += 1;
            }
        }
    }
    let after = profile(stack).await?;
    let calls = |name: &str| calls_between(&before, &after, name) / execs as f64;
    let mut report = serde_json::Map::new();
    let direct = stats_of(&mut series, "direct");
    let script_p50s: Vec<(&str, Duration)> = shapes
        .iter()
        .map(|shape| {
            (
                shape.key,
                stats_of(&mut series, &format!("{}/script", shape.key)).p50,
            )
        })
        .collect();
    for (name, samples) in &mut series {
        let stats = Stats::of(samples);
        let mut entry = stats.json();
        if name != "direct" && !name.starts_with("healthz") {
            entry["overheadP50Ms"] = json!(ms(stats.p50.saturating_sub(direct.p50)));
            entry["overheadP99Ms"] = json!(ms(stats.p99.saturating_sub(direct.p99)));
        }
        let own_script = script_p50s
            .iter()
            .find(|(key, _)| name.starts_with(&format!("{key}/")) && !name.ends_with("/script"));
        if let Some((_, script_p50)) = own_script {
            entry["overScriptP50Ms"] = json!(ms(stats.p50.saturating_sub(*script_p50)));
        }
        report.insert(name.clone(), entry);
    }
    report.insert("runs".into(), json!(ROUND_TRIPS));
    report.insert(
        "durableObjectCallsPerExec".into(),
        json!({
            "leaseObject": calls("leaseObject"),
            "replayGuard": calls("replayGuard"),
            "sandbox": calls("sandbox"),
            "besidesSandbox": calls("leaseObject") + calls("replayGuard"),
        }),
    );
    Ok(Value::Object(report))
}

/// A command sent straight to local-sandbox for the bench lease's sandbox, interleaved with the
/// round trips through the bridge as their floor.
pub(super) struct DirectCall {
    http: reqwest::Client,
    url: String,
    sandbox: String,
    body: Value,
}

impl DirectCall {
    /// `true` itself: the floor that every target overhead is taken from.
    pub(super) async fn of_true(stack: &LocalStack) -> Result<Self> {
        Self::of_command(stack, "true").await
    }

    /// The script the bridge renders for `shape` in `lease`'s sandbox: what the container runs
    /// for it (the lease check, the session lock, the login profiles, the end records).
    async fn of_bridge_script(
        stack: &LocalStack,
        lease: &LeaseResponse,
        shape: &Shape,
    ) -> Result<Self> {
        let read_sentinel = Self::of_command(stack, &format!("cat {SENTINEL_PATH}")).await?;
        let ticket = ExecutionTicket {
            remote_cwd: lease.remote_cwd.clone(),
            session_id: lease.session_id.clone(),
            session_strategy: lease.session_strategy,
            sentinel: read_sentinel.run().await?.trim_end().to_owned(),
        };
        let plan = ExecPlan::from_request(shape.request.clone(), "bench-direct".into())
            .map_err(|error| anyhow::anyhow!("the bench's {} request: {error}", shape.key))?;
        let script = plan.script(&ticket, &EndRecord::new("benchdirect"));
        Self::of_command(stack, &script).await
    }

    async fn of_command(stack: &LocalStack, command: &str) -> Result<Self> {
        Ok(Self {
            http: bridge_tests::http_client(),
            url: format!("{}/api/execute", stack.local_sandbox().base_url()),
            sandbox: sandbox_id(stack).await?,
            body: json!({ "command": command, "sessionId": SESSIONLESS }),
        })
    }

    /// One call, which must exit 0; returns its stdout.
    pub(super) async fn run(&self) -> Result<String> {
        let response = self
            .http
            .post(&self.url)
            .header("X-Sandbox-Id", &self.sandbox)
            .json(&self.body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() || body["exitCode"] != 0 {
            bail!("direct local-sandbox call failed: {status} {body}");
        }
        Ok(body["stdout"].as_str().unwrap_or_default().to_owned())
    }
}

/// `shape`'s `true` once through the bridge, which must exit 0.
pub(super) async fn exec_true(client: &BridgeClient, shape: &Shape) -> Result<()> {
    let result: ExecResult = client.post(Route::Exec, &shape.request).await?;
    if result.exit_code != Some(0) {
        bail!(
            "`true` ({}) through the bridge failed: {result:?}",
            shape.key
        );
    }
    Ok(())
}

/// The statistics of series `name`.
fn stats_of(series: &mut [(String, Vec<Duration>)], name: &str) -> Stats {
    let samples = series
        .iter_mut()
        .find(|(key, _)| key == name)
        .map(|(_, samples)| samples.as_mut_slice())
        .unwrap_or_default();
    Stats::of(samples)
}

/// Where the time of one exec goes, boundary by boundary, per shape (means over
/// [`BREAKDOWN_RUNS`] execs at the Worker's socket).
async fn breakdown(
    stack: &LocalStack,
    client: &BridgeClient,
    shapes: &[Shape; 2],
) -> Result<Value> {
    announce(&format!(
        "bench: where an exec's time goes, boundary by boundary ({BREAKDOWN_RUNS} per shape)"
    ));
    let mut report = serde_json::Map::new();
    for shape in shapes {
        let before = profile(stack).await?;
        let started = Instant::now();
        for _ in 0..BREAKDOWN_RUNS {
            let _: ExecResult = client.post(Route::Exec, &shape.request).await?;
        }
        let client_ms = ms(started.elapsed()) / BREAKDOWN_RUNS as f64;
        let after = profile(stack).await?;
        let mean = |name: &str| total_ms_between(&before, &after, name) / BREAKDOWN_RUNS as f64;
        let (worker, lease, sandbox, container) = (
            mean("worker"),
            mean("leaseObject"),
            mean("sandbox"),
            mean("container"),
        );
        report.insert(
            shape.key.into(),
            json!({
                "clientMs": client_ms,
                "outsideWorkerMs": client_ms - worker,
                "workerMs": worker - lease,
                "leaseObjectMs": lease - sandbox,
                "sandboxSdkMs": sandbox - container,
                "containerUntilStreamMs": container,
            }),
        );
    }
    Ok(Value::Object(report))
}

/// 64 MiB streamed at the Worker's socket (the target) and through wrangler's proxy, with
/// workerd's memory sampled throughout.
async fn streaming(
    stack: &LocalStack,
    at_socket: &BridgeClient,
    via_proxy: &BridgeClient,
    lease: &LeaseResponse,
) -> Result<Value> {
    announce(&format!(
        "bench: {} MiB of output through the bridge as an SSE stream ({STREAM_RUNS} runs at \
         workerd, {STREAM_RUNS} through wrangler's proxy)",
        STREAM_BYTES >> 20
    ));
    let group = stack.bridge_process_group();
    let idle_rss = workerd_rss(group);
    let (stop_sampling, sampling) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(peak_rss_of_workerd(group, sampling));
    let request = stream_request(lease);
    let mut at_socket_runs = Vec::with_capacity(STREAM_RUNS);
    let mut via_proxy_runs = Vec::with_capacity(STREAM_RUNS);
    for _ in 0..STREAM_RUNS {
        at_socket_runs.push(stream_once(at_socket, &request).await?);
        via_proxy_runs.push(stream_once(via_proxy, &request).await?);
    }
    stop_sampling.send(()).ok();
    let peak_rss = sampler.await?;
    let first_run = at_socket_runs[0].0;
    let (mut rates, mut first_chunks): (Vec<f64>, Vec<f64>) = at_socket_runs.into_iter().unzip();
    let mut proxy_rates: Vec<f64> = via_proxy_runs.into_iter().map(|(rate, _)| rate).collect();
    let idle_mib = idle_rss as f64 / 1_048_576.0;
    Ok(json!({
        "bytes": STREAM_BYTES,
        "runs": STREAM_RUNS,
        "byteExact": true,
        "mibPerSecond": median(&mut rates),
        "throughProxyMibPerSecond": median(&mut proxy_rates),
        "firstRunMibPerSecond": first_run,
        "firstChunkMs": median(&mut first_chunks),
        "workerdRssIdleMiB": idle_mib,
        "workerdRssPeakMiB": peak_rss as f64 / 1_048_576.0,
        "workerdRssLimitMiB": 1.5 * idle_mib + (STREAM_BYTES >> 20) as f64,
    }))
}

/// The command whose output every stream measurement reads: [`STREAM_BYTES`] of text lines.
pub(super) fn stream_request(lease: &LeaseResponse) -> ExecRequest {
    ExecRequest {
        provider_lease_id: lease.provider_lease_id.clone(),
        command: "sh".into(),
        args: vec![
            "-c".into(),
            format!("yes {} | head -c {STREAM_BYTES}", STREAM_LINE.trim_end()),
        ],
        session: SessionMode::None,
        login_shell: Some(false),
        ..ExecRequest::default()
    }
}

/// Streams `request` once, checking every byte; returns MiB/s and the first chunk's delay in ms.
pub(super) async fn stream_once(
    client: &BridgeClient,
    request: &ExecRequest,
) -> Result<(f64, f64)> {
    let expected = expected_stream_digest();
    let mut received = 0usize;
    let mut digest = Sha256::new();
    let started = Instant::now();
    let mut first_chunk = None;
    let end = stream_to_end(client, request, LIMIT, |item| {
        if let StreamEvent::Output { data, .. } = item {
            first_chunk.get_or_insert_with(|| started.elapsed());
            received += data.len();
            digest.update(data.as_bytes());
        }
    })
    .await?;
    let elapsed = started.elapsed();
    if !matches!(end, StreamEvent::Complete(ref result) if result.exit_code == Some(0))
        || received != STREAM_BYTES
    {
        bail!("the stream did not complete: {end:?}, {received} bytes");
    }
    if digest.finalize()[..] != expected[..] {
        bail!("the streamed bytes differ from the command's output");
    }
    Ok((
        STREAM_BYTES as f64 / 1_048_576.0 / elapsed.as_secs_f64(),
        first_chunk.map_or(f64::NAN, ms),
    ))
}

/// [`STREAM_RUNS`] transfers of [`STREAM_BYTES`] at the Worker's socket, each by `once` (which
/// checks every byte and returns MiB/s), as JSON with their median.
async fn transfer_rates(what: &str, mut once: impl AsyncFnMut() -> Result<f64>) -> Result<Value> {
    announce(&format!(
        "bench: a {} MiB file {what} through the bridge ({STREAM_RUNS} runs at workerd)",
        STREAM_BYTES >> 20
    ));
    let mut rates = Vec::with_capacity(STREAM_RUNS);
    for _ in 0..STREAM_RUNS {
        rates.push(once().await?);
    }
    Ok(json!({
        "bytes": STREAM_BYTES,
        "runs": STREAM_RUNS,
        "byteExact": true,
        "mibPerSecond": median(&mut rates),
    }))
}

/// A file of random bytes in the lease's sandbox, with the SHA-256 the sandbox computed for it.
pub(super) struct DownloadFile {
    request: DownloadRequest,
    sha256: String,
}

impl DownloadFile {
    /// Writes [`STREAM_BYTES`] from `/dev/urandom` into the lease's directory.
    pub(super) async fn create(client: &BridgeClient, lease: &LeaseResponse) -> Result<Self> {
        let path = format!("{}/bench-download.bin", lease.remote_cwd);
        let result: ExecResult =
            client
                .post(
                    Route::Exec,
                    &ExecRequest {
                        provider_lease_id: lease.provider_lease_id.clone(),
                        command: "sh".into(),
                        args: vec![
                            "-c".into(),
                            format!(
                                "head -c {STREAM_BYTES} /dev/urandom > \"$1\" && sha256sum \"$1\"",
                            ),
                            "sh".into(),
                            path.clone(),
                        ],
                        session: SessionMode::None,
                        login_shell: Some(false),
                        ..ExecRequest::default()
                    },
                )
                .await?;
        let sha256 = result
            .stdout
            .split_whitespace()
            .next()
            .filter(|_| result.exit_code == Some(0))
            .with_context(|| format!("cannot create the download file: {result:?}"))?
            .to_owned();
        Ok(Self {
            request: DownloadRequest {
                provider_lease_id: lease.provider_lease_id.clone(),
                path,
                ..DownloadRequest::default()
            },
            sha256,
        })
    }

    /// Downloads the file once, checking every byte; returns MiB/s.
    pub(super) async fn download_once(&self, client: &BridgeClient) -> Result<f64> {
        let started = Instant::now();
        let mut download = client.download(&self.request, LIMIT).await?;
        let mut digest = Sha256::new();
        let mut received = 0usize;
        while let Some(chunk) = download.next_chunk().await? {
            received += chunk.len();
            digest.update(&chunk);
        }
        let elapsed = started.elapsed();
        if received != STREAM_BYTES || hex::encode(digest.finalize()) != self.sha256 {
            bail!("the downloaded bytes differ from the file ({received} bytes)");
        }
        Ok(STREAM_BYTES as f64 / 1_048_576.0 / elapsed.as_secs_f64())
    }
}

/// [`STREAM_BYTES`] of noise to upload into the lease's directory, with their SHA-256.
pub(super) struct UploadFile {
    bytes: Vec<u8>,
    sha256: String,
    target: UploadTarget,
}

impl UploadFile {
    /// The bytes, and where they go.
    pub(super) fn new(lease: &LeaseResponse) -> Self {
        let bytes = noise(STREAM_BYTES, 7);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Self {
            bytes,
            sha256,
            target: UploadTarget {
                provider_lease_id: lease.provider_lease_id.clone(),
                path: format!("{}/bench-upload.bin", lease.remote_cwd),
                format: TransferFormat::File,
                mode: None,
                timeout_ms: None,
            },
        }
    }

    /// Uploads the bytes once, then has the sandbox hash the file; returns MiB/s of the upload.
    pub(super) async fn upload_once(&self, client: &BridgeClient) -> Result<f64> {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = self
            .bytes
            .chunks(UPLOAD_PIECE)
            .map(|piece| Ok(piece.to_vec()))
            .collect();
        let started = Instant::now();
        let result = client
            .upload(
                &self.target,
                Box::pin(futures_util::stream::iter(pieces)),
                LIMIT,
            )
            .await?;
        let elapsed = started.elapsed();
        let check: ExecResult = client
            .post(
                Route::Exec,
                &ExecRequest {
                    provider_lease_id: self.target.provider_lease_id.clone(),
                    command: "sha256sum".into(),
                    args: vec![self.target.path.clone()],
                    session: SessionMode::None,
                    login_shell: Some(false),
                    ..ExecRequest::default()
                },
            )
            .await?;
        if result.bytes != STREAM_BYTES as u64
            || check.stdout.split_whitespace().next() != Some(self.sha256.as_str())
        {
            bail!(
                "the uploaded file differs from the bytes sent ({} bytes, {check:?})",
                result.bytes
            );
        }
        Ok(STREAM_BYTES as f64 / 1_048_576.0 / elapsed.as_secs_f64())
    }
}

/// SHA-256 of what the streaming command prints.
fn expected_stream_digest() -> [u8; 32] {
    let mut digest = Sha256::new();
    let mut left = STREAM_BYTES;
    while left > 0 {
        let take = left.min(STREAM_LINE.len());
        digest.update(&STREAM_LINE.as_bytes()[..take]);
        left -= take;
    }
    digest.finalize().into()
}

/// The boundary counters of the local entry (`tests/local/entry.mjs`).
async fn profile(stack: &LocalStack) -> Result<Value> {
    Ok(bridge_tests::http_client()
        .get(format!("{}/_local/profile", stack.bridge_url()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

fn calls_between(before: &Value, after: &Value, name: &str) -> f64 {
    let calls = |profile: &Value| profile[name]["calls"].as_f64().unwrap_or(0.0);
    calls(after) - calls(before)
}

fn total_ms_between(before: &Value, after: &Value, name: &str) -> f64 {
    let total = |profile: &Value| profile[name]["totalMs"].as_f64().unwrap_or(0.0);
    total(after) - total(before)
}

/// The one sandbox local-sandbox has: the bench lease's.
async fn sandbox_id(stack: &LocalStack) -> Result<String> {
    stack
        .local_sandbox()
        .sandboxes()
        .await?
        .into_iter()
        .next()
        .context("local-sandbox has no sandbox for the bench lease")
}

/// Samples workerd's memory every 20 ms until told to stop; returns the peak.
async fn peak_rss_of_workerd(group: u32, mut stop: tokio::sync::oneshot::Receiver<()>) -> u64 {
    let mut peak = 0;
    loop {
        peak = peak.max(workerd_rss(group));
        tokio::select! {
            _ = &mut stop => return peak,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}
