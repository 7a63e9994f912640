//! `POST /exec`: runs one argv through the container's event stream, as JSON or as SSE.
//!
//! Both modes share one driver: it follows the container's stream, enforces the bridge's own
//! timeout (killing the process group and confirming it is gone), and concludes exactly once.
//! In SSE mode chunks are forwarded as they arrive, with a heartbeat comment while the command is
//! silent, and the stream always ends with one terminal event (`complete` or `error`).
//!
//! An exec runs inside its lease's Durable Object, which journals it directly: the Worker makes
//! one call to that object and no other (DESIGN §10). Transfers run the same driver from the
//! Worker, journaling through calls to the object ([`RemoteJournal`]).

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::Fuse;
use futures_util::{FutureExt, select};
use worker::{Delay, Env, Headers, Response};

use super::byte_reader::ByteReader;
use super::http::random_hex;
use super::lease_object::{self, SandboxBinding};
use super::outlet::Outlet;
use super::sandbox_stub::{Sandbox, js_message};
use crate::error::BridgeError;
use crate::exec::{Chunk, Conclusion, EndRecord, Ending, ExecPlan, OutputTracker, Unconcluded};
use crate::lease::object::{holds_sentinel, stop_execution};
use crate::lease::protocol::{ExecutionEnded, ExecutionTicket, LeaseCommand};
use crate::replay::NonceClaim;
use crate::sandbox::{ContainerEvent, SandboxError, SandboxId};
use bridge_protocol::api::{
    CancelResponse, ExecRequest, ExecResult, ExecutionStatus, StreamFailure,
};
use bridge_protocol::api::{EXECUTION_ENV_VAR, LEASE_ENV_VAR};
use bridge_protocol::auth::{SecretKey, StreamOutcome};

use crate::script::{KillOutcome, stdin_path};
use bridge_protocol::sse::{
    MAX_EVENT_BYTES, SseDecoder, SseItem, encode_comment, encode_event, encode_line_event,
};

/// Longest silence before a heartbeat comment.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long the stream may take to end once the command was killed.
const DRAIN_AFTER_KILL_MS: u64 = 10_000;
/// How long the sentinel check after an interrupted script may take.
const SENTINEL_CHECK_MS: u64 = 3_000;
/// Bytes of events queued for a slow client before the driver waits (backpressure).
const STREAM_BUFFER_BYTES: usize = 2 * 1024 * 1024;

/// Where executions are journaled: the lease's object, the single writer of its record.
pub(super) trait Journal {
    /// Claims the request's nonce and journals the execution of `plan`.
    async fn begin(
        &self,
        plan: &ExecPlan,
        nonce: NonceClaim,
    ) -> Result<ExecutionTicket, BridgeError>;

    /// Journals how the execution of `plan` ended; a cancel that got there first wins.
    async fn end(
        &self,
        plan: &ExecPlan,
        status: ExecutionStatus,
        exit_code: Option<i32>,
        sandbox_lost: bool,
    ) -> Result<ExecutionEnded, BridgeError>;

    /// Kills the execution of `plan` and waits until it is dead.
    async fn cancel(&self, plan: &ExecPlan) -> Result<CancelResponse, BridgeError>;
}

/// The journal as the Worker reaches it: one call to the lease object per entry.
#[derive(Clone)]
pub(super) struct RemoteJournal {
    env: Env,
}

impl RemoteJournal {
    /// The lease objects of this Worker's environment.
    pub(super) fn new(env: &Env) -> Self {
        Self { env: env.clone() }
    }
}

impl Journal for RemoteJournal {
    async fn begin(
        &self,
        plan: &ExecPlan,
        nonce: NonceClaim,
    ) -> Result<ExecutionTicket, BridgeError> {
        let command = LeaseCommand::BeginExecution {
            nonce,
            execution_id: plan.execution_id.clone(),
            command: plan.argv[0].clone(),
            timeout_ms: plan.timeout_ms,
        };
        lease_object::send(&self.env, &plan.lease_id, command).await
    }

    async fn end(
        &self,
        plan: &ExecPlan,
        status: ExecutionStatus,
        exit_code: Option<i32>,
        sandbox_lost: bool,
    ) -> Result<ExecutionEnded, BridgeError> {
        let command = LeaseCommand::EndExecution {
            execution_id: plan.execution_id.clone(),
            status,
            exit_code,
            sandbox_lost,
        };
        lease_object::send(&self.env, &plan.lease_id, command).await
    }

    async fn cancel(&self, plan: &ExecPlan) -> Result<CancelResponse, BridgeError> {
        let command = LeaseCommand::Cancel {
            execution_id: plan.execution_id.clone(),
        };
        lease_object::send(&self.env, &plan.lease_id, command).await
    }
}

/// What a streamed exec's terminal event is signed with: the request's key and nonce.
pub(super) struct StreamSigner {
    /// The secret of the key that signed the request.
    pub secret: SecretKey,
    /// The request's nonce.
    pub nonce: String,
}

/// A validated execution, journaled and with its command started in the sandbox.
pub(super) struct Running<J> {
    plan: ExecPlan,
    env: Env,
    journal: J,
    output: ByteReader,
    end_record: EndRecord,
    sentinel: String,
    started_ms: u64,
}

/// Where a command's output goes while the driver follows it.
pub(super) trait OutputSink {
    /// Takes one chunk of output, in order.
    async fn chunk(&mut self, chunk: Chunk);

    /// The command has been silent for [`HEARTBEAT`].
    async fn heartbeat(&mut self);

    /// Whether nobody takes the output any more, so the command should be stopped (a download
    /// whose client went away). An exec's stream keeps its command to its timeout instead.
    fn abandoned(&self) -> bool {
        false
    }
}

/// How a command's output is read from the container's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Each piece as soon as it arrives: output a client may be watching, and a result that must
    /// not wait for pipes a background process keeps open.
    Live,
    /// In pieces of 256 KiB, each read waiting until it is full or the stream ends: output that
    /// is only passed on in bulk (a download's bytes). A read of a live stream returns one
    /// upstream write, about 30 KiB, and each read costs the runtime far more than its bytes;
    /// filled reads stream about twice as fast (`docs/performance.md`). Only for our own scripts,
    /// whose stream ends with the command.
    Bulk,
}

/// Where output goes: nowhere but the tracker's copy (JSON), or to the client (SSE).
enum Sink {
    Collect,
    Stream(Outlet),
}

impl Sink {
    /// Sends text to an SSE client; a client that went away is not an error of the command.
    async fn send(&mut self, text: String) {
        if let Self::Stream(outlet) = self
            && outlet.write(text.as_bytes()).await.is_err()
        {
            *self = Self::Collect;
        }
    }
}

impl OutputSink for Sink {
    /// Forwards a chunk as `{"data": …}` (the shape of [`bridge_protocol::api::OutputChunk`]), splicing
    /// in the still-encoded text instead of decoding and re-encoding it.
    async fn chunk(&mut self, chunk: Chunk) {
        if matches!(self, Self::Collect) {
            return;
        }
        let event = encode_line_event(
            chunk.stream.event_name(),
            Some(chunk.id),
            &["{\"data\":", chunk.data.as_json(), "}"],
        );
        self.send(event).await;
    }

    async fn heartbeat(&mut self) {
        self.send(encode_comment("keepalive")).await;
    }
}

/// Serves `POST /exec` as a JSON result.
pub(super) async fn run_to_completion<J: Journal>(
    env: &Env,
    journal: J,
    request: ExecRequest,
    nonce: NonceClaim,
    max_output_bytes: u64,
) -> Result<ExecResult, BridgeError> {
    let running = begin(env, journal, request, nonce)
        .await?
        .launch(Delivery::Live)
        .await?;
    let limit = usize::try_from(max_output_bytes).unwrap_or(usize::MAX);
    drive(running, Some(limit), &mut Sink::Collect).await
}

/// Serves `POST /exec` as an SSE stream; errors before the command starts are ordinary replies.
pub(super) async fn run_streaming<J: Journal + 'static>(
    env: &Env,
    journal: J,
    request: ExecRequest,
    nonce: NonceClaim,
    signer: StreamSigner,
) -> Result<Response, BridgeError> {
    let running = begin(env, journal, request, nonce)
        .await?
        .launch(Delivery::Live)
        .await?;
    let outlet = Outlet::new(STREAM_BUFFER_BYTES);
    let body = outlet.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let mut sink = Sink::Stream(outlet);
        let outcome = drive(running, None, &mut sink).await;
        let terminal = terminal_event(outcome, &signer);
        sink.send(terminal).await;
        if let Sink::Stream(outlet) = sink {
            outlet.close();
        }
    });
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value);
    set("Content-Type", "text/event-stream")
        .and_then(|()| set("Cache-Control", "no-store"))
        .and_then(|()| set("X-Accel-Buffering", "no"))
        .map_err(|error| BridgeError::Internal(format!("stream headers: {error}")))?;
    body.response(headers)
        .map_err(|error| BridgeError::Internal(format!("stream response: {error}")))
}

/// The one terminal event of a stream, signed over the request nonce.
fn terminal_event(outcome: Result<ExecResult, BridgeError>, signer: &StreamSigner) -> String {
    let nonce = signer.nonce.as_str();
    match outcome {
        Ok(mut result) => {
            result.signature = Some(StreamOutcome::complete(&result).sign(&signer.secret, nonce));
            let payload = serde_json::to_string(&result).unwrap_or_default();
            encode_event("complete", None, &payload)
        }
        Err(error) => {
            let body = error.to_body();
            let code = body.error.as_str();
            let failure = StreamFailure {
                error: body.error,
                message: body.message,
                signature: StreamOutcome::Error { code }.sign(&signer.secret, nonce),
            };
            let payload = serde_json::to_string(&failure).unwrap_or_else(|_| {
                format!(
                    "{{\"error\":\"{}\",\"message\":\"\",\"signature\":\"\"}}",
                    code
                )
            });
            encode_event("error", None, &payload)
        }
    }
}

/// An execution that is validated and journaled, its command not started yet.
pub(super) struct Begun<J> {
    sandbox: Sandbox,
    env: Env,
    journal: J,
    plan: ExecPlan,
    ticket: ExecutionTicket,
    end_record: EndRecord,
}

/// Validates `request`, claims its nonce and journals the execution, in one entry of `journal`;
/// the command starts with [`Begun::launch`].
pub(super) async fn begin<J: Journal>(
    env: &Env,
    journal: J,
    request: ExecRequest,
    nonce: NonceClaim,
) -> Result<Begun<J>, BridgeError> {
    let plan = ExecPlan::from_request(request, format!("x{}", random_hex::<12>()?))?;
    let end_record = EndRecord::new(&random_hex::<12>()?);
    let sandbox = Sandbox::open(env, SandboxId::parse(&plan.lease_id)?)?;
    let ticket = journal.begin(&plan, nonce).await?;
    Ok(Begun {
        sandbox,
        env: env.clone(),
        journal,
        plan,
        ticket,
        end_record,
    })
}

impl<J: Journal> Begun<J> {
    /// The validated request.
    pub(super) fn plan(&self) -> &ExecPlan {
        &self.plan
    }

    /// The lease's sandbox.
    pub(super) fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Replaces the arguments, for a command whose arguments are only known once the request's
    /// body is in (an upload's byte count); the journaled command name stays.
    pub(super) fn with_argv(mut self, argv: Vec<String>) -> Self {
        self.plan.argv = argv;
        self
    }

    /// Starts the command, its output read as `delivery` says; a failure to start is journaled.
    pub(super) async fn launch(self, delivery: Delivery) -> Result<Running<J>, BridgeError> {
        let Self {
            sandbox,
            env,
            journal,
            plan,
            ticket,
            end_record,
        } = self;
        let started_ms = super::http::unix_millis();
        match launch(&sandbox, &plan, &ticket, &end_record, delivery).await {
            Ok(output) => Ok(Running {
                plan,
                env,
                journal,
                output,
                end_record,
                sentinel: ticket.sentinel,
                started_ms,
            }),
            Err(error) => {
                if plan.stdin.is_some()
                    && let Err(cleanup) = sandbox.delete_file(&stdin_path(&plan.execution_id)).await
                {
                    worker::console_error!("removing staged stdin: {cleanup}");
                }
                journal
                    .end(&plan, ExecutionStatus::Failed, None, false)
                    .await?;
                Err(error.into())
            }
        }
    }

    /// Gives the execution up before its command started: it is journaled as failed with
    /// `error`, which is returned.
    pub(super) async fn abandon(self, error: BridgeError) -> BridgeError {
        match self
            .journal
            .end(&self.plan, ExecutionStatus::Failed, None, false)
            .await
        {
            Ok(_) => error,
            Err(journal) => {
                worker::console_error!("journaling an abandoned execution: {journal}");
                error
            }
        }
    }
}

async fn launch(
    sandbox: &Sandbox,
    plan: &ExecPlan,
    ticket: &ExecutionTicket,
    end_record: &EndRecord,
    delivery: Delivery,
) -> Result<ByteReader, SandboxError> {
    if let Some(stdin) = &plan.stdin {
        sandbox
            .write_file(&stdin_path(&plan.execution_id), stdin)
            .await?;
    }
    let script = plan.script(ticket, end_record);
    let marker = BTreeMap::from([
        (EXECUTION_ENV_VAR.to_owned(), plan.execution_id.clone()),
        (LEASE_ENV_VAR.to_owned(), plan.lease_id.clone()),
    ]);
    let stream = sandbox.exec_stream(&script, marker).await?;
    let reader = match delivery {
        Delivery::Live => ByteReader::prompt(&stream),
        Delivery::Bulk => ByteReader::filling(&stream),
    };
    reader.map_err(|error| {
        SandboxError::Protocol(format!(
            "the sandbox's output stream cannot be read: {}",
            js_message(&error)
        ))
    })
}

/// Follows the command to its end and concludes it, exactly once; `retain_limit` as in
/// [`OutputTracker::new`]. The container's stream is let go once the command's end records are
/// in, whatever the command left running on its pipes.
pub(super) async fn drive<J: Journal>(
    running: Running<J>,
    retain_limit: Option<usize>,
    sink: &mut impl OutputSink,
) -> Result<ExecResult, BridgeError> {
    let Running {
        plan,
        env,
        journal,
        mut output,
        end_record,
        sentinel,
        started_ms,
    } = running;
    let mut tracker = OutputTracker::new(retain_limit, &end_record);
    let mut decoder = SseDecoder::new();
    let mut deadline = Delay::from(Duration::from_millis(plan.timeout_ms)).fuse();
    let mut heartbeat = Delay::from(HEARTBEAT).fuse();
    let mut last_sent_ms = super::http::unix_millis();
    let mut drain_deadline = futures_util::future::Fuse::terminated();
    let mut timed_out = None;
    let mut cancelled = false;
    let ending = 'follow: loop {
        select! {
            bytes = output.next().fuse() => {
                let bytes = match bytes {
                    Ok(Some(bytes)) => bytes,
                    Err(error) => break 'follow Ending::Failed(format!("the sandbox's output stream failed: {}", js_message(&error))),
                    Ok(None) => break 'follow Ending::Failed("the sandbox's output stream ended without an exit status".into()),
                };
                let items = decoder.push(&bytes);
                if decoder.is_oversized() {
                    break 'follow Ending::Failed(format!("the sandbox sent an event larger than {MAX_EVENT_BYTES} bytes"));
                }
                for item in items {
                    let SseItem::Event(event) = item else { continue };
                    let event = match ContainerEvent::parse(&event.data) {
                        Ok(event) => event,
                        Err(error) => break 'follow Ending::Failed(format!("unreadable sandbox event: {error}")),
                    };
                    let step = tracker.on_event(event);
                    if !step.chunks.is_empty() {
                        last_sent_ms = super::http::unix_millis();
                    }
                    for chunk in step.chunks {
                        if let Some(kill) = deliver_by_deadline(sink.chunk(chunk), &mut deadline, &env, &plan).await? {
                            timed_out = Some(kill);
                            drain_deadline = drain_after_kill();
                        }
                    }
                    if let Some(ending) = step.ending {
                        break 'follow ending;
                    }
                    if sink.abandoned() && !cancelled {
                        cancelled = true;
                        journal.cancel(&plan).await?;
                        drain_deadline = drain_after_kill();
                    }
                }
            }
            () = deadline => {
                timed_out = Some(time_out(&env, &plan).await?);
                drain_deadline = drain_after_kill();
            }
            () = drain_deadline => break 'follow Ending::Exited(None),
            () = heartbeat => {
                let silent = Duration::from_millis(super::http::unix_millis().saturating_sub(last_sent_ms));
                if let Some(rest) = HEARTBEAT.checked_sub(silent).filter(|rest| !rest.is_zero()) {
                    heartbeat = Delay::from(rest).fuse();
                    continue 'follow;
                }
                if let Some(kill) = deliver_by_deadline(sink.heartbeat(), &mut deadline, &env, &plan).await? {
                    timed_out = Some(kill);
                    drain_deadline = drain_after_kill();
                }
                last_sent_ms = super::http::unix_millis();
                heartbeat = Delay::from(HEARTBEAT).fuse();
            }
        }
    };
    let duration_ms = super::http::unix_millis().saturating_sub(started_ms);
    let ending = match ending {
        Ending::Interrupted(_) | Ending::Failed(_) if timed_out.is_none() && !cancelled => {
            confirm_state_kept(&env, &plan.lease_id, &sentinel, ending).await
        }
        ending => ending,
    };
    let conclusion = match Conclusion::from_ending(ending, timed_out) {
        Ok(conclusion) => conclusion,
        Err(Unconcluded::SandboxLost) => {
            journal
                .end(&plan, ExecutionStatus::Failed, None, true)
                .await?;
            return Err(BridgeError::SandboxStateLost(plan.lease_id));
        }
        Err(Unconcluded::Failed(error)) => return fail(&env, &journal, &plan, error).await,
    };
    let ended = journal
        .end(
            &plan,
            conclusion.journal_status(),
            conclusion.exit_code,
            false,
        )
        .await?;
    let conclusion = if ended.status == ExecutionStatus::Cancelled && !conclusion.timed_out {
        Conclusion::cancelled(conclusion.exit_code)
    } else {
        conclusion
    };
    let totals = tracker.totals();
    Ok(conclusion.into_result(
        plan.execution_id,
        totals,
        tracker.into_retained(),
        duration_ms,
    ))
}

/// How long the container's stream may still take once the command was killed.
fn drain_after_kill() -> Fuse<Delay> {
    Delay::from(Duration::from_millis(DRAIN_AFTER_KILL_MS)).fuse()
}

/// Kills the command at its timeout.
async fn time_out(env: &Env, plan: &ExecPlan) -> Result<KillOutcome, BridgeError> {
    stop_execution(
        &SandboxBinding::new(env),
        &plan.lease_id,
        &plan.execution_id,
    )
    .await
}

/// Waits for `delivery` (output handed to a client, which a slow reader holds up while the
/// stream's buffer is full) and still kills the command at `deadline` meanwhile: a reader never
/// extends a command's life. Returns how the kill went, if the deadline came first.
async fn deliver_by_deadline(
    delivery: impl Future<Output = ()>,
    mut deadline: &mut Fuse<Delay>,
    env: &Env,
    plan: &ExecPlan,
) -> Result<Option<KillOutcome>, BridgeError> {
    let mut delivery = pin!(delivery.fuse());
    let mut killed = None;
    loop {
        select! {
            () = delivery => return Ok(killed),
            () = deadline => killed = Some(time_out(env, plan).await?),
        }
    }
}

/// The ending of a script that was stopped by something other than its command's end, or whose
/// stream failed: [`Ending::SandboxLost`] when the sandbox no longer holds the lease's sentinel
/// (the container died or was wiped, and the command with it), otherwise `ending` itself. A
/// check that cannot be made leaves `ending` as it is.
async fn confirm_state_kept(env: &Env, lease_id: &str, sentinel: &str, ending: Ending) -> Ending {
    let binding = SandboxBinding::new(env);
    match holds_sentinel(&binding, lease_id, sentinel, SENTINEL_CHECK_MS).await {
        Ok(false) => Ending::SandboxLost,
        Ok(true) => ending,
        Err(error) => {
            worker::console_error!("checking the sentinel after an interrupted command: {error}");
            ending
        }
    }
}

/// A command the bridge lost track of: make sure it is dead, journal it, report the error.
async fn fail(
    env: &Env,
    journal: &impl Journal,
    plan: &ExecPlan,
    error: SandboxError,
) -> Result<ExecResult, BridgeError> {
    if let Err(kill) = stop_execution(
        &SandboxBinding::new(env),
        &plan.lease_id,
        &plan.execution_id,
    )
    .await
    {
        worker::console_error!("stopping an execution after a failure: {kill}");
    }
    journal
        .end(plan, ExecutionStatus::Failed, None, false)
        .await?;
    Err(error.into())
}

/// `POST /exec/{id}/cancel`: kills the execution and answers once it is dead.
pub async fn cancel(
    env: &Env,
    lease_id: &str,
    execution_id: &str,
) -> Result<bridge_protocol::api::CancelResponse, BridgeError> {
    let execution_id = bridge_protocol::fields::execution_id(execution_id)?;
    SandboxId::parse(lease_id)?;
    lease_object::send(env, lease_id, LeaseCommand::Cancel { execution_id }).await
}
