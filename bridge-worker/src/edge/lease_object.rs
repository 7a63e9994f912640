//! The lease Durable Object: one per lease, the single writer of its record. Every command runs
//! under one lock, so lifecycle operations on a lease never interleave (two concurrent acquires of
//! a reusable lease get one sandbox), and an alarm reaps sandboxes whose lease was abandoned.

use std::cell::Cell;

use futures_util::lock::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use worker::{DurableObject, Env, Method, Request, RequestInit, Response, State, durable_object};

use super::http::{self, Reply};
use super::sandbox_stub::{Sandbox, with_deadline};
use crate::config::{DEFAULT_LEASE_IDLE_TTL_SECONDS, lease_idle_ttl_seconds};
use crate::error::BridgeError;
use crate::lease::protocol::{ExecutionEnded, ExecutionTicket, LeaseCommand, LeaseRequest};
use crate::lease::{AcquireDecision, AcquirePlan, LeaseRecord};
use crate::sandbox::{SandboxConfiguration, SandboxError, SandboxId, SandboxName};
use crate::script::{
    KillOutcome, kill_lease_script, kill_script, prepare_script, sentinel_check_script,
};
use bridge_protocol::api::{
    CancelResponse, ErrorBody, ExecutionStatus, LeaseState, TerminationReceipt, TerminationState,
};

/// Binding name of the lease namespace in `wrangler.toml`.
const BINDING: &str = "LEASES";
/// Storage key of the record.
const RECORD_KEY: &str = "lease";
/// Time a command gets between SIGTERM and SIGKILL.
pub const KILL_GRACE_MS: u64 = 3_000;
/// Deadline for the kill script as a whole.
pub const KILL_DEADLINE_MS: u64 = KILL_GRACE_MS + 15_000;
/// Deadline for destroying a sandbox.
const DESTROY_TIMEOUT_MS: u64 = 30_000;
/// When a reaper run fails, the next one comes this much later.
const REAPER_RETRY_MS: u64 = 60_000;
/// How long after an execution's timeout the lease object kills it itself, when the Worker that
/// drove it did not report its end (the Worker kills at the timeout and reports within seconds).
const EXECUTION_SLACK_MS: u64 = 30_000;

/// Sends `command` to the object of `lease_id` and decodes its reply.
pub async fn send<R: DeserializeOwned>(
    env: &Env,
    lease_id: &str,
    command: LeaseCommand,
) -> Result<R, BridgeError> {
    let internal = |error: worker::Error| BridgeError::Internal(format!("lease object: {error}"));
    let stub = env
        .durable_object(BINDING)
        .and_then(|namespace| namespace.get_by_name(lease_id))
        .map_err(internal)?;
    let body = serde_json::to_string(&LeaseRequest {
        lease_id: lease_id.to_owned(),
        command,
    })
    .map_err(|error| BridgeError::Internal(format!("lease object: {error}")))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request = Request::new_with_init("https://lease/", &init).map_err(internal)?;
    let mut response = stub.fetch_with_request(request).await.map_err(internal)?;
    let status = response.status_code();
    let bytes = response.bytes().await.map_err(internal)?;
    if status == 200 {
        serde_json::from_slice(&bytes)
            .map_err(|error| BridgeError::Internal(format!("lease object reply: {error}")))
    } else {
        let body: ErrorBody = serde_json::from_slice(&bytes).map_err(|error| {
            BridgeError::Internal(format!("lease object error ({status}): {error}"))
        })?;
        Err(BridgeError::Relayed { status, body })
    }
}

/// One lease.
#[durable_object]
pub struct LeaseObject {
    state: State,
    env: Env,
    serial: Mutex<()>,
    /// When the alarm is known to be set for (in this instance's lifetime); an earlier alarm
    /// re-arms itself, so a later deadline needs no storage write.
    armed_at: Cell<Option<u64>>,
}

impl DurableObject for LeaseObject {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            serial: Mutex::new(()),
            armed_at: Cell::new(None),
        }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        let reply = match request.json::<LeaseRequest>().await {
            Ok(request) => {
                let _serial = self.serial.lock().await;
                self.serve(request)
                    .await
                    .unwrap_or_else(|error| Reply::error(&error))
            }
            Err(error) => Reply::error(&BridgeError::Internal(format!(
                "malformed lease command: {error}"
            ))),
        };
        http::respond(reply, None)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let _serial = self.serial.lock().await;
        self.armed_at.set(None);
        if let Err(error) = self.reap().await {
            worker::console_error!("lease reaper: {error}; trying again in a minute");
            if let Err(error) = self.arm(now() + REAPER_RETRY_MS).await {
                worker::console_error!("lease reaper: {error}");
            }
        }
        Response::empty()
    }
}

impl LeaseObject {
    async fn serve(&self, request: LeaseRequest) -> Result<Reply, BridgeError> {
        let lease_id = request.lease_id;
        match request.command {
            LeaseCommand::Acquire { plan } => ok(&self.acquire(plan).await?),
            LeaseCommand::Resume {
                keep_alive,
                sleep_after,
                timeout_ms,
            } => ok(&self
                .resume(&lease_id, keep_alive, sleep_after, timeout_ms)
                .await?),
            LeaseCommand::Release {
                cancel_active_work,
                destroy,
            } => ok(&self.release(&lease_id, cancel_active_work, destroy).await?),
            LeaseCommand::Destroy => ok(&self.destroy(&lease_id).await?),
            LeaseCommand::Inspect => ok(&self.existing(&lease_id).await?.details()),
            LeaseCommand::BeginExecution {
                execution_id,
                command,
                timeout_ms,
            } => ok(&self
                .begin_execution(&lease_id, &execution_id, &command, timeout_ms)
                .await?),
            LeaseCommand::EndExecution {
                execution_id,
                status,
                exit_code,
                sandbox_lost,
            } => ok(&self
                .end_execution(&lease_id, &execution_id, status, exit_code, sandbox_lost)
                .await?),
            LeaseCommand::Cancel { execution_id } => {
                ok(&self.cancel(&lease_id, &execution_id).await?)
            }
        }
    }

    async fn acquire(
        &self,
        plan: AcquirePlan,
    ) -> Result<bridge_protocol::api::LeaseResponse, BridgeError> {
        let existing = self.load().await?;
        match LeaseRecord::decide_acquire(existing.as_ref(), &plan) {
            AcquireDecision::AlreadyActive => {
                let record = existing.ok_or_else(|| internal("decision without a record"))?;
                Ok(record.response(false))
            }
            AcquireDecision::Reattach => {
                let mut record = existing.ok_or_else(|| internal("decision without a record"))?;
                let sandbox = self.sandbox(&record.lease_id)?;
                if holds_sentinel(&sandbox, &record.sentinel, plan.timeout_ms).await? {
                    configure(
                        &sandbox,
                        &record.lease_id,
                        plan.settings.keep_alive,
                        plan.settings.sleep_after.clone(),
                        plan.timeout_ms,
                    )
                    .await?;
                    record.reattach(&plan, now());
                    self.save(&record).await?;
                    return Ok(record.response(true));
                }
                record.mark_lost(now());
                self.save(&record).await?;
                self.create(&plan, false).await
            }
            AcquireDecision::Create => self.create(&plan, true).await,
        }
    }

    /// Prepares a fresh sandbox state for `plan`; on failure destroys what it created, unless
    /// the sandbox belonged to a reusable lease being reattached.
    async fn create(
        &self,
        plan: &AcquirePlan,
        destroy_on_failure: bool,
    ) -> Result<bridge_protocol::api::LeaseResponse, BridgeError> {
        let mut record = LeaseRecord::acquiring(plan, random_token()?, now());
        self.save(&record).await?;
        let sandbox = self.sandbox(&plan.lease_id)?;
        let prepared = with_deadline(plan.timeout_ms, async {
            configure(
                &sandbox,
                &plan.lease_id,
                plan.settings.keep_alive,
                plan.settings.sleep_after.clone(),
                plan.timeout_ms,
            )
            .await?;
            let output = sandbox
                .run_script(&prepare_script(&plan.settings.remote_cwd, &record.sentinel))
                .await?;
            match output.exit_code {
                Some(0) => Ok(()),
                code => Err(SandboxError::Command(format!(
                    "preparing {} failed (exit code {code:?}): {}",
                    plan.settings.remote_cwd,
                    output.stderr.trim()
                ))),
            }
        })
        .await;
        match prepared {
            Ok(()) => {
                record.activate(now());
                self.save(&record).await?;
                Ok(record.response(false))
            }
            Err(error) => {
                if destroy_on_failure
                    && let Err(cleanup) = with_deadline(DESTROY_TIMEOUT_MS, sandbox.destroy()).await
                {
                    worker::console_error!("destroying a half-acquired sandbox: {cleanup}");
                }
                record.destroyed(&format!("acquire failed: {error}"), now());
                self.save(&record).await?;
                Err(error.into())
            }
        }
    }

    async fn resume(
        &self,
        lease_id: &str,
        keep_alive: Option<bool>,
        sleep_after: Option<String>,
        timeout_ms: u64,
    ) -> Result<bridge_protocol::api::LeaseResponse, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        record.check_resumable()?;
        let sandbox = self.sandbox(&record.lease_id)?;
        if !holds_sentinel(&sandbox, &record.sentinel, timeout_ms).await? {
            record.mark_lost(now());
            self.save(&record).await?;
            return Err(BridgeError::SandboxStateLost(record.lease_id));
        }
        if let Some(keep_alive) = keep_alive {
            record.settings.keep_alive = keep_alive;
        }
        if sleep_after.is_some() {
            record.settings.sleep_after = sleep_after;
        }
        configure(
            &sandbox,
            &record.lease_id,
            record.settings.keep_alive,
            record.settings.sleep_after.clone(),
            timeout_ms,
        )
        .await?;
        record.activate(now());
        self.save(&record).await?;
        Ok(record.response(true))
    }

    async fn release(
        &self,
        lease_id: &str,
        cancel_active_work: bool,
        destroy: bool,
    ) -> Result<TerminationReceipt, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        if record.state == LeaseState::Destroyed {
            return Ok(receipt(lease_id, TerminationState::Destroyed));
        }
        let sandbox = self.sandbox(lease_id)?;
        let running = record.running_executions(now());
        if !running.is_empty() {
            if !cancel_active_work {
                worker::console_log!(
                    "release of {lease_id} stops {} running execution(s)",
                    running.len()
                );
            }
            for execution_id in &running {
                record.cancel_execution(execution_id, now());
            }
            self.save(&record).await?;
            for execution_id in &running {
                stop_execution(&sandbox, execution_id).await?;
            }
        }
        let keep = record.settings.reusable && !destroy && record.state == LeaseState::Active;
        if keep || (record.state == LeaseState::Released && !destroy) {
            if cancel_active_work {
                stop_lease_processes(&sandbox, lease_id).await?;
            }
            record.keep_warm(now());
            self.save(&record).await?;
            return Ok(receipt(lease_id, TerminationState::Stopped));
        }
        with_deadline(DESTROY_TIMEOUT_MS, sandbox.destroy()).await?;
        record.destroyed("released", now());
        self.save(&record).await?;
        Ok(receipt(lease_id, TerminationState::Destroyed))
    }

    async fn destroy(&self, lease_id: &str) -> Result<TerminationReceipt, BridgeError> {
        let Some(mut record) = self.load().await? else {
            return Ok(receipt(lease_id, TerminationState::Destroyed));
        };
        if record.state != LeaseState::Destroyed {
            let sandbox = self.sandbox(lease_id)?;
            with_deadline(DESTROY_TIMEOUT_MS, sandbox.destroy()).await?;
            record.destroyed("destroyed on request", now());
            self.save(&record).await?;
        }
        Ok(receipt(lease_id, TerminationState::Destroyed))
    }

    async fn begin_execution(
        &self,
        lease_id: &str,
        execution_id: &str,
        command: &str,
        timeout_ms: u64,
    ) -> Result<ExecutionTicket, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        let now = now();
        record.begin_execution(
            execution_id,
            command,
            now.saturating_add(timeout_ms)
                .saturating_add(EXECUTION_SLACK_MS),
            now,
        )?;
        self.save(&record).await?;
        Ok(ExecutionTicket {
            remote_cwd: record.settings.remote_cwd.clone(),
            session_id: record.settings.session_id.clone(),
            session_strategy: record.settings.session_strategy,
            sentinel: record.sentinel.clone(),
        })
    }

    async fn end_execution(
        &self,
        lease_id: &str,
        execution_id: &str,
        status: ExecutionStatus,
        exit_code: Option<i32>,
        sandbox_lost: bool,
    ) -> Result<ExecutionEnded, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        let status = record
            .end_execution(execution_id, status, exit_code, now())
            .unwrap_or(status);
        if sandbox_lost {
            record.mark_lost(now());
        }
        self.save(&record).await?;
        Ok(ExecutionEnded { status })
    }

    async fn cancel(
        &self,
        lease_id: &str,
        execution_id: &str,
    ) -> Result<CancelResponse, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        let cancelled = record.cancel_execution(execution_id, now());
        if cancelled {
            self.save(&record).await?;
            stop_execution(&self.sandbox(lease_id)?, execution_id).await?;
        }
        Ok(CancelResponse {
            execution_id: execution_id.to_owned(),
            cancelled,
        })
    }

    /// The alarm: kills executions whose Worker vanished past their deadline, destroys the
    /// sandbox of a lease idle past the TTL, and re-arms for whatever comes next.
    async fn reap(&self) -> Result<(), BridgeError> {
        let Some(mut record) = self.load().await? else {
            return Ok(());
        };
        let overdue = record.overdue_executions(now());
        if !overdue.is_empty() {
            let sandbox = self.sandbox(&record.lease_id)?;
            for execution_id in &overdue {
                stop_execution(&sandbox, execution_id).await?;
                record.end_execution(execution_id, ExecutionStatus::TimedOut, None, now());
            }
        }
        let ttl_ms = self.idle_ttl_seconds() * 1000;
        if record
            .idle_deadline(ttl_ms, now())
            .is_some_and(|deadline| deadline <= now())
        {
            let sandbox = self.sandbox(&record.lease_id)?;
            with_deadline(DESTROY_TIMEOUT_MS, sandbox.destroy()).await?;
            record.destroyed(
                &format!("reaped: idle for more than {} s", ttl_ms / 1000),
                now(),
            );
        }
        self.save(&record).await
    }

    fn idle_ttl_seconds(&self) -> u64 {
        lease_idle_ttl_seconds(|name| http::var(&self.env, name))
            .unwrap_or(DEFAULT_LEASE_IDLE_TTL_SECONDS)
    }

    async fn load(&self) -> Result<Option<LeaseRecord>, BridgeError> {
        self.state
            .storage()
            .get(RECORD_KEY)
            .await
            .map_err(|error| internal(&format!("reading the lease record: {error}")))
    }

    async fn existing(&self, lease_id: &str) -> Result<LeaseRecord, BridgeError> {
        self.load()
            .await?
            .ok_or_else(|| BridgeError::LeaseNotFound(lease_id.to_owned()))
    }

    /// Persists the record and makes sure the alarm wakes the object by its next deadline.
    async fn save(&self, record: &LeaseRecord) -> Result<(), BridgeError> {
        self.state
            .storage()
            .put(RECORD_KEY, record)
            .await
            .map_err(|error| internal(&format!("writing the lease record: {error}")))?;
        match record.next_wakeup(self.idle_ttl_seconds() * 1000, now()) {
            Some(deadline) => self.arm(deadline).await,
            None => Ok(()),
        }
    }

    /// Schedules the alarm at an absolute time (an `i64` would mean an offset to workers-rs),
    /// unless it is already set for no later than that.
    async fn arm(&self, deadline_ms: u64) -> Result<(), BridgeError> {
        if self
            .armed_at
            .get()
            .is_some_and(|armed| armed <= deadline_ms)
        {
            return Ok(());
        }
        let at = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(deadline_ms as f64));
        self.state
            .storage()
            .set_alarm(worker::ScheduledTime::new(at))
            .await
            .map_err(|error| internal(&format!("arming the reaper: {error}")))?;
        self.armed_at.set(Some(deadline_ms));
        Ok(())
    }

    fn sandbox(&self, lease_id: &str) -> Result<Sandbox, BridgeError> {
        Sandbox::open(&self.env, SandboxId::parse(lease_id)?)
    }
}

fn ok(value: &impl Serialize) -> Result<Reply, BridgeError> {
    Reply::json(200, value)
}

fn receipt(lease_id: &str, state: TerminationState) -> TerminationReceipt {
    TerminationReceipt {
        provider_lease_id: lease_id.to_owned(),
        state,
    }
}

fn internal(message: &str) -> BridgeError {
    BridgeError::Internal(message.to_owned())
}

fn now() -> u64 {
    http::unix_millis()
}

/// A fresh 128-bit token, hex.
fn random_token() -> Result<String, BridgeError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| internal(&format!("no randomness: {error}")))?;
    Ok(hex::encode(bytes))
}

/// Applies name, keepAlive and sleepAfter (only acquire and resume ever call this).
async fn configure(
    sandbox: &Sandbox,
    lease_id: &str,
    keep_alive: bool,
    sleep_after: Option<String>,
    timeout_ms: u64,
) -> Result<(), SandboxError> {
    let configuration = SandboxConfiguration {
        sandbox_name: SandboxName {
            name: lease_id.to_owned(),
            normalize_id: true,
        },
        sleep_after,
        keep_alive: Some(keep_alive),
    };
    with_deadline(timeout_ms, sandbox.configure(&configuration)).await
}

/// Whether the sandbox still holds the lease's sentinel.
async fn holds_sentinel(
    sandbox: &Sandbox,
    sentinel: &str,
    timeout_ms: u64,
) -> Result<bool, SandboxError> {
    let output = with_deadline(
        timeout_ms,
        sandbox.run_script(&sentinel_check_script(sentinel)),
    )
    .await?;
    Ok(output.exit_code == Some(0))
}

/// Kills every process the lease's executions started, background ones included, and waits
/// until they are gone.
async fn stop_lease_processes(
    sandbox: &Sandbox,
    lease_id: &str,
) -> Result<KillOutcome, SandboxError> {
    kill(
        sandbox,
        &kill_lease_script(lease_id, KILL_GRACE_MS),
        &format!("the processes of lease {lease_id}"),
    )
    .await
}

/// Kills an execution's process group and waits until it is gone.
pub async fn stop_execution(
    sandbox: &Sandbox,
    execution_id: &str,
) -> Result<KillOutcome, SandboxError> {
    kill(
        sandbox,
        &kill_script(execution_id, KILL_GRACE_MS),
        &format!("execution {execution_id}"),
    )
    .await
}

/// Runs a kill script; an outcome it cannot confirm is an error naming `what`.
async fn kill(sandbox: &Sandbox, script: &str, what: &str) -> Result<KillOutcome, SandboxError> {
    let output = with_deadline(KILL_DEADLINE_MS, sandbox.run_script(script)).await?;
    match KillOutcome::from_exit_code(output.exit_code) {
        KillOutcome::Failed => Err(SandboxError::Command(format!(
            "could not confirm that {what} stopped (exit code {:?}): {}",
            output.exit_code,
            output.stderr.trim()
        ))),
        outcome => Ok(outcome),
    }
}
