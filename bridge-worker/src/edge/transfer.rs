//! `POST /files/upload` and `POST /files/download`: framed bodies in and out of a sandbox, with
//! memory bounded by one part (uploads) or a few events (downloads) whatever the size.
//!
//! Both are journaled executions of the lease, so a lost lease is refused before any byte moves, a
//! release with `cancelActiveWork` stops them, and the bridge's own deadline kills what they run.

use std::collections::VecDeque;

use worker::{Env, Headers, Response};

use super::byte_reader::{ByteReader, unreadable_body};
use super::digest;
use super::exec::{self, Delivery, OutputSink, RemoteJournal};
use super::http::random_hex;
use super::outlet::Outlet;
use super::sandbox_stub::{PendingWrite, Sandbox, with_deadline};
use crate::error::BridgeError;
use crate::exec::Chunk;
use crate::replay::NonceClaim;
use crate::sandbox::SandboxError;
use crate::script::{
    DEFAULT_FILE_MODE, SOURCE_MISSING_EXIT_CODE, assemble_argv, discard_script, download_argv,
    part_path, upload_staging,
};
use crate::transfer::{Base64Stream, PartSplitter, download_source};
use bridge_protocol::api::{
    DownloadRequest, ExecRequest, ExecResult, OutputStream, SessionMode, UploadResult, UploadTarget,
};
use bridge_protocol::auth::{
    Authenticated, FRAMES_CONTENT_TYPE, Frame, FrameOpener, FrameSealer, RESPONSE_SIGNATURE_HEADER,
    ResponseSignature,
};
use bridge_protocol::fields::command_timeout;
use bridge_protocol::remote_path::RemotePath;

/// Error output of a transfer's script kept for its error message.
const KEPT_STDERR: usize = 4096;
/// Part writes an upload keeps under way at once. Each costs the container a round trip and a
/// decode, which overlap; the Worker holds each part's encoding until the `Sandbox` object has it.
const WRITES_IN_FLIGHT: usize = 3;
/// Longest wait for the part writes still under way when an upload fails, before its staging
/// directory is removed.
const SETTLE_WRITES_MS: u64 = 30_000;
/// Bytes of frames queued for a slow client before the driver waits (backpressure).
const FRAME_BUFFER_BYTES: usize = 2 * 1024 * 1024;

/// Serves an upload: the framed `body` is staged in parts, then laid down at the target.
pub async fn upload(
    env: &Env,
    raw_query: &str,
    body: ByteReader,
    nonce: NonceClaim,
    authenticated: &Authenticated,
) -> Result<UploadResult, BridgeError> {
    let target = UploadTarget::from_query(raw_query)?;
    let path = RemotePath::parse("path", &target.path)?;
    let timeout_ms = command_timeout(target.timeout_ms)?;
    let mode = target.mode.unwrap_or(DEFAULT_FILE_MODE);
    let started_ms = super::http::unix_millis();
    let execution_id = random_id('u')?;
    let staging = upload_staging(&path, &execution_id);
    let argv = |bytes| assemble_argv(target.format, &staging, &path, mode, bytes);
    let begun = exec::begin(
        env,
        RemoteJournal::new(env),
        internal_request(
            target.provider_lease_id.clone(),
            execution_id,
            argv(0),
            timeout_ms,
        ),
        nonce,
    )
    .await?;
    let opener = FrameOpener::new(authenticated.secret.clone(), authenticated.signature)
        .with_digest(digest::sha256);
    let mut in_flight = VecDeque::with_capacity(WRITES_IN_FLIGHT);
    let received = with_deadline_bridge(
        timeout_ms,
        receive_parts(begun.sandbox(), &staging, body, opener, &mut in_flight),
    )
    .await;
    let bytes = match received {
        Ok(bytes) => bytes,
        Err(error) => {
            settle(in_flight).await;
            if let Err(cleanup) = begun.sandbox().run_script(&discard_script(&staging)).await {
                worker::console_error!("discarding an abandoned upload: {cleanup}");
            }
            return Err(begun.abandon(error).await);
        }
    };
    let execution_id = begun.plan().execution_id.clone();
    let running = begun.with_argv(argv(bytes)).launch(Delivery::Live).await?;
    let result = exec::drive(running, Some(KEPT_STDERR), &mut Discard).await?;
    check_exit(
        &result,
        &format!("laying the upload down at {}", path.as_str()),
    )?;
    Ok(UploadResult {
        execution_id,
        bytes,
        duration_ms: super::http::unix_millis().saturating_sub(started_ms),
    })
}

/// Reads the framed body, writing each full part as it completes; returns the bytes received.
/// Up to [`WRITES_IN_FLIGHT`] writes run while the next part is read and encoded, so the
/// sandbox's I/O, the round trips to it and the Worker's verifying overlap; memory stays at that
/// many parts and one encoding. Once this returns, no write is under way; cut short by the
/// deadline, it leaves the writes it started in `in_flight` for [`settle`].
async fn receive_parts(
    sandbox: &Sandbox,
    staging: &str,
    body: ByteReader,
    opener: FrameOpener,
    in_flight: &mut VecDeque<PendingWrite>,
) -> Result<u64, BridgeError> {
    let received = receive_into(sandbox, staging, body, opener, in_flight).await;
    let mut written = Ok(());
    while let Some(pending) = in_flight.pop_front() {
        let finished = pending.finish().await.map_err(BridgeError::from);
        written = written.and(finished);
    }
    let (index, part, total) = received?;
    written?;
    if let Some(part) = part {
        sandbox
            .start_write_base64(&part_path(staging, index), &encode(&part))?
            .finish()
            .await?;
    }
    Ok(total)
}

/// Waits, within [`SETTLE_WRITES_MS`], for the writes a failed upload left under way, so that
/// none lands in its staging directory after that is removed (a write creates its parents).
async fn settle(in_flight: VecDeque<PendingWrite>) {
    let writes = async {
        for pending in in_flight {
            if let Err(error) = pending.finish().await {
                worker::console_error!("a part write of an abandoned upload failed: {error}");
            }
        }
        Ok(())
    };
    if let Err(error) = with_deadline(SETTLE_WRITES_MS, writes).await {
        worker::console_error!("part writes of an abandoned upload did not settle: {error}");
    }
}

/// The loop of [`receive_parts`]: returns the last part's index and bytes (if any) and the total.
async fn receive_into(
    sandbox: &Sandbox,
    staging: &str,
    mut body: ByteReader,
    mut opener: FrameOpener,
    in_flight: &mut VecDeque<PendingWrite>,
) -> Result<(u32, Option<Vec<u8>>, u64), BridgeError> {
    let mut splitter = PartSplitter::default();
    while let Some(bytes) = body.next().await.map_err(|error| unreadable_body(&error))? {
        for frame in opener.push(&bytes)? {
            match frame {
                Frame::Data(data) => {
                    for (index, part) in splitter.push(&data) {
                        let encoded = encode(&part);
                        if in_flight.len() == WRITES_IN_FLIGHT
                            && let Some(oldest) = in_flight.pop_front()
                        {
                            oldest.finish().await?;
                        }
                        in_flight.push_back(
                            sandbox.start_write_base64(&part_path(staging, index), &encoded)?,
                        );
                    }
                }
                Frame::End => {}
                Frame::Error(_) => {
                    return Err(BridgeError::InvalidRequest(
                        "an upload body must not carry an error frame".into(),
                    ));
                }
            }
        }
    }
    opener.finish()?;
    let total = splitter.total();
    Ok(match splitter.finish() {
        Some((index, part)) => (index, Some(part), total),
        None => (0, None, total),
    })
}

fn encode(part: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(part)
}

/// Serves a download: the script's base64 output is decoded and sent as frames, chained from the
/// response signature, ending in one terminal frame.
pub async fn download(
    env: &Env,
    request: DownloadRequest,
    nonce: NonceClaim,
    authenticated: &Authenticated,
) -> Result<Response, BridgeError> {
    let source = download_source(&request)?;
    let timeout_ms = command_timeout(request.timeout_ms)?;
    let argv = download_argv(&request, &source);
    let running = exec::begin(
        env,
        RemoteJournal::new(env),
        internal_request(
            request.provider_lease_id.clone(),
            random_id('d')?,
            argv,
            timeout_ms,
        ),
        nonce,
    )
    .await?
    .launch(Delivery::Bulk)
    .await?;
    let seed =
        ResponseSignature::sign_streaming(&authenticated.secret, authenticated.nonce.as_str(), 200);
    let outlet = Outlet::new(FRAME_BUFFER_BYTES);
    let body = outlet.clone();
    let mut sink = FrameSink {
        outlet: Some(outlet),
        sealer: FrameSealer::new(authenticated.secret.clone(), seed).with_digest(digest::sha256),
        base64: Base64Stream::default(),
        broken: None,
    };
    wasm_bindgen_futures::spawn_local(async move {
        let outcome = exec::drive(running, Some(KEPT_STDERR), &mut sink).await;
        let terminal = sink.terminal(outcome, &source);
        sink.send(terminal).await;
        if let Some(outlet) = sink.outlet {
            outlet.close();
        }
    });
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value);
    set("Content-Type", FRAMES_CONTENT_TYPE)
        .and_then(|()| set("Cache-Control", "no-store"))
        .and_then(|()| set(RESPONSE_SIGNATURE_HEADER, &hex::encode(seed)))
        .map_err(|error| BridgeError::Internal(format!("download headers: {error}")))?;
    body.response(headers)
        .map_err(|error| BridgeError::Internal(format!("download response: {error}")))
}

/// Turns the download script's stdout into data frames.
struct FrameSink {
    /// `None` once the client went away.
    outlet: Option<Outlet>,
    sealer: FrameSealer,
    base64: Base64Stream,
    /// Set when the output stopped being base64; nothing more is forwarded.
    broken: Option<BridgeError>,
}

impl FrameSink {
    async fn send(&mut self, frame: Vec<u8>) {
        if let Some(outlet) = &self.outlet
            && outlet.write(&frame).await.is_err()
        {
            self.outlet = None;
        }
    }

    /// The terminal frame: the end when the script succeeded and every byte decoded, else an
    /// error frame with the error body.
    fn terminal(
        &mut self,
        outcome: Result<ExecResult, BridgeError>,
        source: &RemotePath,
    ) -> Vec<u8> {
        let concluded = outcome.and_then(|result| {
            if let Some(broken) = self.broken.take() {
                return Err(broken);
            }
            if result.exit_code == Some(SOURCE_MISSING_EXIT_CODE) {
                return Err(BridgeError::PathNotFound(script_message(&result)));
            }
            check_exit(
                &result,
                &format!("reading {} in the sandbox", source.as_str()),
            )?;
            self.base64
                .finish()
                .map_err(|error| SandboxError::Protocol(error.to_string()).into())
        });
        match concluded {
            Ok(()) => self.sealer.end(),
            Err(error) => {
                let body = serde_json::to_vec(&error.to_body()).unwrap_or_default();
                self.sealer.error(&body)
            }
        }
    }
}

impl OutputSink for FrameSink {
    async fn chunk(&mut self, chunk: Chunk) {
        if chunk.stream != OutputStream::Stdout || self.broken.is_some() {
            return;
        }
        let inner = chunk.data.inner();
        let decoded = if inner.contains('\\') {
            self.base64.push(&chunk.data.decode())
        } else {
            self.base64.push(inner)
        };
        match decoded {
            Ok(bytes) if bytes.is_empty() => {}
            Ok(bytes) => {
                let frames = self.sealer.data(&bytes);
                self.send(frames).await;
            }
            Err(error) => self.broken = Some(SandboxError::Protocol(error.to_string()).into()),
        }
    }

    async fn heartbeat(&mut self) {}

    fn abandoned(&self) -> bool {
        self.outlet.is_none()
    }
}

/// A sink that keeps nothing beyond the tracker's bounded copy.
struct Discard;

impl OutputSink for Discard {
    async fn chunk(&mut self, _chunk: Chunk) {}

    async fn heartbeat(&mut self) {}
}

/// The execution behind a transfer: sessionless (it runs beside the agent), from `/`, without
/// login profiles (what an agent put there must not change how its files are read).
fn internal_request(
    lease_id: String,
    execution_id: String,
    argv: Vec<String>,
    timeout_ms: u64,
) -> ExecRequest {
    let mut argv = argv.into_iter();
    ExecRequest {
        provider_lease_id: lease_id,
        execution_id: Some(execution_id),
        command: argv.next().unwrap_or_default(),
        args: argv.collect(),
        cwd: Some("/".to_owned()),
        timeout_ms: Some(timeout_ms),
        session: SessionMode::None,
        login_shell: Some(false),
        ..ExecRequest::default()
    }
}

/// A transfer's script must have exited 0; otherwise its last words are the error.
fn check_exit(result: &ExecResult, what: &str) -> Result<(), BridgeError> {
    match result.exit_code {
        Some(0) => Ok(()),
        _ if result.timed_out => Err(SandboxError::Timeout(result.duration_ms).into()),
        Some(code) => Err(SandboxError::Command(format!(
            "{what} failed (exit code {code}): {}",
            script_message(result)
        ))
        .into()),
        None => Err(SandboxError::Command(format!("{what} was stopped before it ended")).into()),
    }
}

/// The script's error output, trimmed, for a message.
fn script_message(result: &ExecResult) -> String {
    let message = result.stderr.trim();
    let message = message
        .strip_prefix("paperclip-bridge: ")
        .unwrap_or(message);
    if message.is_empty() {
        "no error output".to_owned()
    } else {
        message.to_owned()
    }
}

/// An execution id for a transfer (`prefix` tells uploads from downloads in the journal).
fn random_id(prefix: char) -> Result<String, BridgeError> {
    Ok(format!("{prefix}{}", random_hex::<12>()?))
}

/// [`with_deadline`] for work whose errors are the bridge's own.
async fn with_deadline_bridge<T>(
    timeout_ms: u64,
    work: impl std::future::Future<Output = Result<T, BridgeError>>,
) -> Result<T, BridgeError> {
    match with_deadline(timeout_ms, async { Ok(work.await) }).await {
        Ok(result) => result,
        Err(timeout) => Err(timeout.into()),
    }
}
