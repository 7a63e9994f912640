//! What a lease's Durable Object does, written against the two things it needs — calls into the
//! lease's sandbox ([`SandboxCalls`]) and its own storage, alarm and clock ([`LeaseStorage`]) — so
//! the sequencing rules are unit-tested natively with fakes that fail on demand:
//!
//! - acquire is idempotent; a reusable lease whose sandbox still holds the sentinel is reattached,
//!   one that lost it is recreated; a failure half-way destroys what a fresh acquire created;
//! - resume checks the sentinel first and marks the lease lost without it;
//! - release records the cancellation of running commands before it kills them (a later call
//!   observing the lease sees them cancelled), keeps a reusable lease warm or destroys any other,
//!   and with `cancelActiveWork` on a lease it keeps warm kills everything the lease's commands
//!   left running;
//! - destroy is idempotent;
//! - the alarm kills commands whose Worker vanished past their deadline and destroys the sandbox
//!   of a lease idle past its TTL.
//!
//! The Durable Object (`edge::lease_object`) serialises calls, moves bytes, and runs execs through
//! `edge::exec`, journaling them with the methods here.

use std::future::Future;

use bridge_protocol::api::{
    CancelResponse, ExecutionStatus, LeaseResponse, LeaseState, TerminationReceipt,
    TerminationState,
};
use bridge_protocol::auth::AuthRejection;

use super::protocol::{ExecutionEnded, ExecutionTicket, LeaseCommand, LeaseRequest};
use super::record::{AcquireDecision, LeaseRecord};
use super::settings::AcquirePlan;
use crate::error::BridgeError;
use crate::replay::NonceClaim;
use crate::sandbox::{ExecOutput, SandboxConfiguration, SandboxError, SandboxName};
use crate::script::{
    KillOutcome, kill_lease_script, kill_script, prepare_script, sentinel_check_script,
};

/// Time a command gets between SIGTERM and SIGKILL.
pub const KILL_GRACE_MS: u64 = 3_000;
/// Deadline for the kill script as a whole.
pub const KILL_DEADLINE_MS: u64 = KILL_GRACE_MS + 15_000;
/// Deadline for destroying a sandbox.
pub const DESTROY_TIMEOUT_MS: u64 = 30_000;
/// How long after an execution's timeout the alarm kills it, when its driver did not report its
/// end (the driver died with its invocation: a deploy, a restart). A live driver kills at the
/// timeout itself and may still be draining the stream then; the alarm only repeats a kill under
/// way, and the journal keeps whichever end came first, both of them a timeout.
pub const EXECUTION_SLACK_MS: u64 = 5_000;

/// The calls a lease object makes into the sandbox of lease `lease_id`; each call gives up with
/// [`SandboxError::Timeout`] after `timeout_ms`.
pub trait SandboxCalls {
    /// Applies the sandbox's name, keepAlive and sleepAfter.
    fn configure(
        &self,
        lease_id: &str,
        configuration: &SandboxConfiguration,
        timeout_ms: u64,
    ) -> impl Future<Output = Result<(), BridgeError>>;

    /// Runs a bridge script sessionless and returns its output.
    fn run_script(
        &self,
        lease_id: &str,
        script: &str,
        timeout_ms: u64,
    ) -> impl Future<Output = Result<ExecOutput, BridgeError>>;

    /// Stops the container and forgets its filesystem.
    fn destroy(
        &self,
        lease_id: &str,
        timeout_ms: u64,
    ) -> impl Future<Output = Result<(), BridgeError>>;
}

/// A lease object's record storage, alarm and clock.
pub trait LeaseStorage {
    /// The record, if the lease was ever acquired.
    fn load(&self) -> impl Future<Output = Result<Option<LeaseRecord>, BridgeError>>;

    /// Replaces the record.
    fn store(&self, record: &LeaseRecord) -> impl Future<Output = Result<(), BridgeError>>;

    /// Remembers a request nonce; `false` if it was already remembered (a replay).
    fn claim_nonce(&self, claim: &NonceClaim) -> impl Future<Output = Result<bool, BridgeError>>;

    /// Makes the object's alarm fire no later than `deadline_ms`.
    fn wake_by(&self, deadline_ms: u64) -> impl Future<Output = Result<(), BridgeError>>;

    /// The time, in Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// One lease object's logic.
#[derive(Debug)]
pub struct LeaseObjectLogic<S, B> {
    storage: S,
    sandbox: B,
    idle_ttl_ms: u64,
}

impl<S: LeaseStorage, B: SandboxCalls> LeaseObjectLogic<S, B> {
    /// The logic over `storage` and `sandbox`; a lease idle for `idle_ttl_ms` is reaped.
    pub fn new(storage: S, sandbox: B, idle_ttl_ms: u64) -> Self {
        Self {
            storage,
            sandbox,
            idle_ttl_ms,
        }
    }

    /// Carries out one command; the reply is the command's reply type, encoded as JSON once.
    pub async fn handle(&self, request: LeaseRequest) -> Result<Vec<u8>, BridgeError> {
        let lease_id = request.lease_id;
        match request.command {
            LeaseCommand::Acquire { plan } => json(&self.acquire(plan).await?),
            LeaseCommand::Resume {
                keep_alive,
                sleep_after,
                timeout_ms,
            } => json(
                &self
                    .resume(&lease_id, keep_alive, sleep_after, timeout_ms)
                    .await?,
            ),
            LeaseCommand::Release {
                cancel_active_work,
                destroy,
            } => json(&self.release(&lease_id, cancel_active_work, destroy).await?),
            LeaseCommand::Destroy => json(&self.destroy(&lease_id).await?),
            LeaseCommand::Inspect => json(&self.existing(&lease_id).await?.details()),
            LeaseCommand::BeginExecution {
                nonce,
                execution_id,
                command,
                timeout_ms,
            } => json(
                &self
                    .begin_execution(&lease_id, &nonce, &execution_id, &command, timeout_ms)
                    .await?,
            ),
            LeaseCommand::EndExecution {
                execution_id,
                status,
                exit_code,
                sandbox_lost,
            } => json(
                &self
                    .end_execution(&lease_id, &execution_id, status, exit_code, sandbox_lost)
                    .await?,
            ),
            LeaseCommand::Cancel { execution_id } => {
                json(&self.cancel(&lease_id, &execution_id).await?)
            }
        }
    }

    /// Creates, reattaches or returns the lease.
    pub async fn acquire(&self, plan: AcquirePlan) -> Result<LeaseResponse, BridgeError> {
        let existing = self.storage.load().await?;
        match LeaseRecord::decide_acquire(existing.as_ref(), &plan) {
            AcquireDecision::AlreadyActive => {
                let record = existing.ok_or_else(|| internal("decision without a record"))?;
                Ok(record.response(false))
            }
            AcquireDecision::Reattach => {
                let mut record = existing.ok_or_else(|| internal("decision without a record"))?;
                if self
                    .holds_sentinel(&record.lease_id, &record.sentinel, plan.timeout_ms)
                    .await?
                {
                    self.configure(
                        &record.lease_id,
                        plan.settings.keep_alive,
                        plan.settings.sleep_after.clone(),
                        plan.timeout_ms,
                    )
                    .await?;
                    record.reattach(&plan, self.now());
                    self.save(&record).await?;
                    return Ok(record.response(true));
                }
                record.mark_lost(self.now());
                self.save(&record).await?;
                self.create(&plan, false).await
            }
            AcquireDecision::Create => self.create(&plan, true).await,
        }
    }

    /// Prepares a fresh sandbox state for `plan`, within its deadline; on failure destroys what
    /// it created, unless the sandbox belonged to a reusable lease being recreated.
    async fn create(
        &self,
        plan: &AcquirePlan,
        destroy_on_failure: bool,
    ) -> Result<LeaseResponse, BridgeError> {
        let mut record = LeaseRecord::acquiring(plan, random_token()?, self.now());
        self.save(&record).await?;
        let deadline = self.now().saturating_add(plan.timeout_ms);
        let prepared = async {
            self.configure(
                &plan.lease_id,
                plan.settings.keep_alive,
                plan.settings.sleep_after.clone(),
                plan.timeout_ms,
            )
            .await?;
            let output = self
                .sandbox
                .run_script(
                    &plan.lease_id,
                    &prepare_script(&plan.settings.remote_cwd, &record.sentinel),
                    deadline.saturating_sub(self.now()).max(1),
                )
                .await?;
            match output.exit_code {
                Some(0) => Ok(()),
                code => Err(BridgeError::from(SandboxError::Command(format!(
                    "preparing {} failed (exit code {code:?}): {}",
                    plan.settings.remote_cwd,
                    output.stderr.trim()
                )))),
            }
        }
        .await;
        match prepared {
            Ok(()) => {
                record.activate(self.now());
                self.save(&record).await?;
                Ok(record.response(false))
            }
            Err(error) => {
                if destroy_on_failure
                    && let Err(cleanup) = self
                        .sandbox
                        .destroy(&plan.lease_id, DESTROY_TIMEOUT_MS)
                        .await
                {
                    log_failure(&format!("destroying a half-acquired sandbox: {cleanup}"));
                }
                record.destroyed(&format!("acquire failed: {error}"), self.now());
                self.save(&record).await?;
                Err(error)
            }
        }
    }

    /// Reattaches after checking the sentinel.
    pub async fn resume(
        &self,
        lease_id: &str,
        keep_alive: Option<bool>,
        sleep_after: Option<String>,
        timeout_ms: u64,
    ) -> Result<LeaseResponse, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        record.check_resumable()?;
        if !self
            .holds_sentinel(&record.lease_id, &record.sentinel, timeout_ms)
            .await?
        {
            record.mark_lost(self.now());
            self.save(&record).await?;
            return Err(BridgeError::SandboxStateLost(record.lease_id));
        }
        if let Some(keep_alive) = keep_alive {
            record.settings.keep_alive = keep_alive;
        }
        if sleep_after.is_some() {
            record.settings.sleep_after = sleep_after;
        }
        self.configure(
            &record.lease_id,
            record.settings.keep_alive,
            record.settings.sleep_after.clone(),
            timeout_ms,
        )
        .await?;
        record.activate(self.now());
        self.save(&record).await?;
        Ok(record.response(true))
    }

    /// Ends the run's use of the lease, once its commands are confirmed dead.
    pub async fn release(
        &self,
        lease_id: &str,
        cancel_active_work: bool,
        destroy: bool,
    ) -> Result<TerminationReceipt, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        if record.state == LeaseState::Destroyed {
            return Ok(receipt(lease_id, TerminationState::Destroyed));
        }
        let running = record.running_executions(self.now());
        if !running.is_empty() {
            if !cancel_active_work {
                log_failure(&format!(
                    "release of {lease_id} stops {} running execution(s)",
                    running.len()
                ));
            }
            for execution_id in &running {
                record.cancel_execution(execution_id, self.now());
            }
            self.save(&record).await?;
            for execution_id in &running {
                stop_execution(&self.sandbox, lease_id, execution_id).await?;
            }
        }
        let keep = record.settings.reusable && !destroy && record.state == LeaseState::Active;
        if keep || (record.state == LeaseState::Released && !destroy) {
            if cancel_active_work {
                stop_lease_processes(&self.sandbox, lease_id).await?;
            }
            record.keep_warm(self.now());
            self.save(&record).await?;
            return Ok(receipt(lease_id, TerminationState::Stopped));
        }
        self.sandbox.destroy(lease_id, DESTROY_TIMEOUT_MS).await?;
        record.destroyed("released", self.now());
        self.save(&record).await?;
        Ok(receipt(lease_id, TerminationState::Destroyed))
    }

    /// Destroys the sandbox; idempotent.
    pub async fn destroy(&self, lease_id: &str) -> Result<TerminationReceipt, BridgeError> {
        let Some(mut record) = self.storage.load().await? else {
            return Ok(receipt(lease_id, TerminationState::Destroyed));
        };
        if record.state != LeaseState::Destroyed {
            self.sandbox.destroy(lease_id, DESTROY_TIMEOUT_MS).await?;
            record.destroyed("destroyed on request", self.now());
            self.save(&record).await?;
        }
        Ok(receipt(lease_id, TerminationState::Destroyed))
    }

    /// Claims the request's nonce, journals an execution and returns what running it needs. The
    /// nonce is claimed once the lease is known, so a replay can never start a second command.
    pub async fn begin_execution(
        &self,
        lease_id: &str,
        nonce: &NonceClaim,
        execution_id: &str,
        command: &str,
        timeout_ms: u64,
    ) -> Result<ExecutionTicket, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        if !self.storage.claim_nonce(nonce).await? {
            return Err(AuthRejection::ReplayedNonce.into());
        }
        let now = self.now();
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

    /// Journals how an execution ended; a cancel that got there first wins.
    pub async fn end_execution(
        &self,
        lease_id: &str,
        execution_id: &str,
        status: ExecutionStatus,
        exit_code: Option<i32>,
        sandbox_lost: bool,
    ) -> Result<ExecutionEnded, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        let status = record
            .end_execution(execution_id, status, exit_code, self.now())
            .unwrap_or(status);
        if sandbox_lost {
            record.mark_lost(self.now());
        }
        self.save(&record).await?;
        Ok(ExecutionEnded { status })
    }

    /// Kills a running execution and answers once it is dead.
    pub async fn cancel(
        &self,
        lease_id: &str,
        execution_id: &str,
    ) -> Result<CancelResponse, BridgeError> {
        let mut record = self.existing(lease_id).await?;
        let cancelled = record.cancel_execution(execution_id, self.now());
        if cancelled {
            self.save(&record).await?;
            stop_execution(&self.sandbox, lease_id, execution_id).await?;
        }
        Ok(CancelResponse {
            execution_id: execution_id.to_owned(),
            cancelled,
        })
    }

    /// The alarm: kills executions whose Worker vanished past their deadline, destroys the
    /// sandbox of a lease idle past the TTL, and re-arms for whatever comes next.
    pub async fn reap(&self) -> Result<(), BridgeError> {
        let Some(mut record) = self.storage.load().await? else {
            return Ok(());
        };
        let overdue = record.overdue_executions(self.now());
        for execution_id in &overdue {
            stop_execution(&self.sandbox, &record.lease_id, execution_id).await?;
            record.end_execution(execution_id, ExecutionStatus::TimedOut, None, self.now());
        }
        if record
            .idle_deadline(self.idle_ttl_ms, self.now())
            .is_some_and(|deadline| deadline <= self.now())
        {
            self.sandbox
                .destroy(&record.lease_id, DESTROY_TIMEOUT_MS)
                .await?;
            record.destroyed(
                &format!("reaped: idle for more than {} s", self.idle_ttl_ms / 1000),
                self.now(),
            );
        }
        self.save(&record).await
    }

    async fn existing(&self, lease_id: &str) -> Result<LeaseRecord, BridgeError> {
        self.storage
            .load()
            .await?
            .ok_or_else(|| BridgeError::LeaseNotFound(lease_id.to_owned()))
    }

    /// Persists the record and makes sure the alarm wakes the object by its next deadline.
    async fn save(&self, record: &LeaseRecord) -> Result<(), BridgeError> {
        self.storage.store(record).await?;
        match record.next_wakeup(self.idle_ttl_ms, self.now()) {
            Some(deadline) => self.storage.wake_by(deadline).await,
            None => Ok(()),
        }
    }

    /// Applies name, keepAlive and sleepAfter (only acquire and resume ever call this).
    async fn configure(
        &self,
        lease_id: &str,
        keep_alive: bool,
        sleep_after: Option<String>,
        timeout_ms: u64,
    ) -> Result<(), BridgeError> {
        let configuration = SandboxConfiguration {
            sandbox_name: SandboxName {
                name: lease_id.to_owned(),
                normalize_id: true,
            },
            sleep_after,
            keep_alive: Some(keep_alive),
        };
        self.sandbox
            .configure(lease_id, &configuration, timeout_ms)
            .await
    }

    /// Whether the sandbox still holds the lease's sentinel.
    async fn holds_sentinel(
        &self,
        lease_id: &str,
        sentinel: &str,
        timeout_ms: u64,
    ) -> Result<bool, BridgeError> {
        holds_sentinel(&self.sandbox, lease_id, sentinel, timeout_ms).await
    }

    fn now(&self) -> u64 {
        self.storage.now_ms()
    }
}

/// Whether the lease's sandbox still holds its sentinel, i.e. kept its files and processes.
pub async fn holds_sentinel(
    sandbox: &impl SandboxCalls,
    lease_id: &str,
    sentinel: &str,
    timeout_ms: u64,
) -> Result<bool, BridgeError> {
    let output = sandbox
        .run_script(lease_id, &sentinel_check_script(sentinel), timeout_ms)
        .await?;
    Ok(output.exit_code == Some(0))
}

/// Kills an execution's process group and waits until it is gone.
pub async fn stop_execution(
    sandbox: &impl SandboxCalls,
    lease_id: &str,
    execution_id: &str,
) -> Result<KillOutcome, BridgeError> {
    kill(
        sandbox,
        lease_id,
        &kill_script(execution_id, KILL_GRACE_MS),
        &format!("execution {execution_id}"),
    )
    .await
}

/// Kills every process the lease's executions started, background ones included, and waits
/// until they are gone.
async fn stop_lease_processes(
    sandbox: &impl SandboxCalls,
    lease_id: &str,
) -> Result<KillOutcome, BridgeError> {
    kill(
        sandbox,
        lease_id,
        &kill_lease_script(lease_id, KILL_GRACE_MS),
        &format!("the processes of lease {lease_id}"),
    )
    .await
}

/// Runs a kill script; an outcome it cannot confirm is an error naming `what`.
async fn kill(
    sandbox: &impl SandboxCalls,
    lease_id: &str,
    script: &str,
    what: &str,
) -> Result<KillOutcome, BridgeError> {
    let output = sandbox
        .run_script(lease_id, script, KILL_DEADLINE_MS)
        .await?;
    match KillOutcome::from_exit_code(output.exit_code) {
        KillOutcome::Failed => Err(SandboxError::Command(format!(
            "could not confirm that {what} stopped (exit code {:?}): {}",
            output.exit_code,
            output.stderr.trim()
        ))
        .into()),
        outcome => Ok(outcome),
    }
}

fn json(value: &impl serde::Serialize) -> Result<Vec<u8>, BridgeError> {
    serde_json::to_vec(value).map_err(|error| internal(&format!("encoding a reply: {error}")))
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

/// A fresh 128-bit token, hex.
fn random_token() -> Result<String, BridgeError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| internal(&format!("no randomness: {error}")))?;
    Ok(hex::encode(bytes))
}

/// Reports something that does not fail the call: the Workers log in production, stderr in
/// native tests.
fn log_failure(message: &str) {
    #[cfg(target_arch = "wasm32")]
    worker::console_error!("{message}");
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{message}");
}

#[cfg(test)]
mod tests;
