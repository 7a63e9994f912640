//! The lease record kept by a lease's Durable Object, and every transition it may make.
//!
//! `acquiring → active → released | destroyed | lost`; `released` (a warm reusable lease) and
//! `lost` go back to `active` through acquire or resume. All of it is pure, so every rule is
//! unit-tested here and the Durable Object only stores what these methods decide.

use serde::{Deserialize, Serialize};

use super::settings::{AcquirePlan, LeaseSettings};
use crate::error::BridgeError;
use bridge_protocol::api::{
    ExecutionRecord, ExecutionStatus, LeaseDetails, LeaseResponse, LeaseState,
};

/// Executions kept in the journal; older finished ones are dropped first.
pub const JOURNAL_LEN: usize = 32;

/// A journal entry with the bookkeeping clients do not see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// What clients see.
    pub record: ExecutionRecord,
    /// Unix milliseconds after which a still-`running` entry is considered abandoned.
    pub deadline_at: u64,
}

/// What to do with an acquire, given the record that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcquireDecision {
    /// The same run asked again while the lease is active: answer with it unchanged.
    AlreadyActive,
    /// A reusable sandbox exists: check it still holds the sentinel, then reactivate.
    Reattach,
    /// Prepare a new sandbox (first acquire, or the old one is gone).
    Create,
}

/// The lease record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// Lease and sandbox id.
    pub lease_id: String,
    /// Where it stands.
    pub state: LeaseState,
    /// What it was acquired with.
    pub settings: LeaseSettings,
    /// Random token written into the sandbox; its absence means the sandbox lost its state.
    pub sentinel: String,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds of the last lifecycle operation or execution.
    pub last_activity_at: u64,
    /// Why the lease ended, once it did.
    pub end_reason: Option<String>,
    /// Recent executions, oldest first.
    pub journal: Vec<JournalEntry>,
}

impl LeaseRecord {
    /// A lease being prepared.
    pub fn acquiring(plan: &AcquirePlan, sentinel: String, now: u64) -> Self {
        Self {
            lease_id: plan.lease_id.clone(),
            state: LeaseState::Acquiring,
            settings: plan.settings.clone(),
            sentinel,
            created_at: now,
            last_activity_at: now,
            end_reason: None,
            journal: Vec::new(),
        }
    }

    /// Decides how to serve an acquire for `plan` when `existing` is stored.
    pub fn decide_acquire(existing: Option<&Self>, plan: &AcquirePlan) -> AcquireDecision {
        let Some(record) = existing else {
            return AcquireDecision::Create;
        };
        match record.state {
            LeaseState::Active if record.settings.run_id == plan.settings.run_id => {
                AcquireDecision::AlreadyActive
            }
            LeaseState::Active | LeaseState::Released if record.settings.reusable => {
                AcquireDecision::Reattach
            }
            _ => AcquireDecision::Create,
        }
    }

    /// The sandbox is ready: the lease may run commands.
    pub fn activate(&mut self, now: u64) {
        self.state = LeaseState::Active;
        self.end_reason = None;
        self.touch(now);
    }

    /// Records the run (and policies) of a reattachment.
    pub fn reattach(&mut self, plan: &AcquirePlan, now: u64) {
        self.settings.run_id = plan.settings.run_id.clone();
        self.settings.issue_id = plan.settings.issue_id.clone();
        self.settings.keep_alive = plan.settings.keep_alive;
        self.settings.sleep_after = plan.settings.sleep_after.clone();
        self.activate(now);
    }

    /// Fails unless the lease can be resumed (it must have been active or warm).
    pub fn check_resumable(&self) -> Result<(), BridgeError> {
        match self.state {
            LeaseState::Active | LeaseState::Released => Ok(()),
            LeaseState::Lost => Err(BridgeError::SandboxStateLost(self.lease_id.clone())),
            LeaseState::Acquiring | LeaseState::Destroyed => Err(BridgeError::LeaseNotActive {
                lease_id: self.lease_id.clone(),
                state: self.state,
            }),
        }
    }

    /// The sandbox no longer holds the sentinel.
    pub fn mark_lost(&mut self, now: u64) {
        self.end(
            LeaseState::Lost,
            "the sandbox lost its state (sentinel missing)",
            now,
        );
    }

    /// A reusable lease kept warm after its run.
    pub fn keep_warm(&mut self, now: u64) {
        self.state = LeaseState::Released;
        self.touch(now);
    }

    /// The sandbox was destroyed for `reason`.
    pub fn destroyed(&mut self, reason: &str, now: u64) {
        self.end(LeaseState::Destroyed, reason, now);
    }

    /// Records the start of an execution; only an active lease runs commands.
    pub fn begin_execution(
        &mut self,
        execution_id: &str,
        command: &str,
        deadline_at: u64,
        now: u64,
    ) -> Result<(), BridgeError> {
        match self.state {
            LeaseState::Active => {}
            LeaseState::Lost => return Err(BridgeError::SandboxStateLost(self.lease_id.clone())),
            state => {
                return Err(BridgeError::LeaseNotActive {
                    lease_id: self.lease_id.clone(),
                    state,
                });
            }
        }
        if self.journal.iter().any(|entry| {
            entry.record.execution_id == execution_id
                && entry.record.status == ExecutionStatus::Running
        }) {
            return Err(BridgeError::InvalidRequest(format!(
                "execution {execution_id} is already running on this lease"
            )));
        }
        self.journal.push(JournalEntry {
            record: ExecutionRecord {
                execution_id: execution_id.to_owned(),
                command: command.to_owned(),
                status: ExecutionStatus::Running,
                started_at: now,
                ended_at: None,
                exit_code: None,
            },
            deadline_at,
        });
        self.trim_journal();
        self.touch(now);
        Ok(())
    }

    /// Records how an execution ended; a cancel recorded earlier wins over a later report.
    pub fn end_execution(
        &mut self,
        execution_id: &str,
        status: ExecutionStatus,
        exit_code: Option<i32>,
        now: u64,
    ) -> Option<ExecutionStatus> {
        let entry = self
            .journal
            .iter_mut()
            .rev()
            .find(|entry| entry.record.execution_id == execution_id)?;
        if entry.record.status == ExecutionStatus::Running {
            entry.record.status = status;
            entry.record.exit_code = exit_code;
            entry.record.ended_at = Some(now);
        }
        let final_status = entry.record.status;
        self.touch(now);
        Some(final_status)
    }

    /// Marks a running execution cancelled; `false` when it is not running.
    pub fn cancel_execution(&mut self, execution_id: &str, now: u64) -> bool {
        let Some(entry) = self.journal.iter_mut().rev().find(|entry| {
            entry.record.execution_id == execution_id
                && entry.record.status == ExecutionStatus::Running
        }) else {
            return false;
        };
        entry.record.status = ExecutionStatus::Cancelled;
        entry.record.ended_at = Some(now);
        self.touch(now);
        true
    }

    /// Ids of executions still running (and not past their deadline).
    pub fn running_executions(&self, now: u64) -> Vec<String> {
        self.journal
            .iter()
            .filter(|entry| {
                entry.record.status == ExecutionStatus::Running && entry.deadline_at > now
            })
            .map(|entry| entry.record.execution_id.clone())
            .collect()
    }

    /// When the lease counts as abandoned if nothing happens, or `None` if it cannot be.
    pub fn idle_deadline(&self, idle_ttl_ms: u64, now: u64) -> Option<u64> {
        if !matches!(self.state, LeaseState::Active | LeaseState::Released) {
            return None;
        }
        let busy_until = self
            .journal
            .iter()
            .filter(|entry| entry.record.status == ExecutionStatus::Running)
            .map(|entry| entry.deadline_at)
            .filter(|deadline| *deadline > now)
            .max()
            .unwrap_or(0);
        Some(self.last_activity_at.max(busy_until) + idle_ttl_ms)
    }

    /// Executions still `running` past their deadline: the Worker that drove them is gone
    /// (cancelled invocation, restart), so the lease object must kill them itself.
    pub fn overdue_executions(&self, now: u64) -> Vec<String> {
        self.journal
            .iter()
            .filter(|entry| {
                entry.record.status == ExecutionStatus::Running && entry.deadline_at <= now
            })
            .map(|entry| entry.record.execution_id.clone())
            .collect()
    }

    /// When the lease object must wake up next: the earliest deadline of a running execution,
    /// or the idle deadline, whichever comes first.
    pub fn next_wakeup(&self, idle_ttl_ms: u64, now: u64) -> Option<u64> {
        let idle = self.idle_deadline(idle_ttl_ms, now);
        let overdue_check = self
            .journal
            .iter()
            .filter(|entry| entry.record.status == ExecutionStatus::Running)
            .map(|entry| entry.deadline_at)
            .min();
        match (idle, overdue_check) {
            (Some(idle), Some(deadline)) => Some(idle.min(deadline)),
            (idle, deadline) => idle.or(deadline),
        }
    }

    /// The lease as acquire and resume answer it.
    pub fn response(&self, resumed: bool) -> LeaseResponse {
        LeaseResponse {
            provider_lease_id: self.lease_id.clone(),
            remote_cwd: self.settings.remote_cwd.clone(),
            session_id: self.settings.session_id.clone(),
            session_strategy: self.settings.session_strategy,
            keep_alive: self.settings.keep_alive,
            sleep_after: self.settings.sleep_after.clone(),
            reusable: self.settings.reusable,
            resumed,
            state: self.state,
        }
    }

    /// The record for operators.
    pub fn details(&self) -> LeaseDetails {
        LeaseDetails {
            provider_lease_id: self.lease_id.clone(),
            state: self.state,
            environment_id: self.settings.environment_id.clone(),
            run_id: self.settings.run_id.clone(),
            issue_id: self.settings.issue_id.clone(),
            remote_cwd: self.settings.remote_cwd.clone(),
            session_id: self.settings.session_id.clone(),
            reusable: self.settings.reusable,
            keep_alive: self.settings.keep_alive,
            sleep_after: self.settings.sleep_after.clone(),
            created_at: self.created_at,
            last_activity_at: self.last_activity_at,
            end_reason: self.end_reason.clone(),
            executions: self
                .journal
                .iter()
                .map(|entry| entry.record.clone())
                .collect(),
        }
    }

    fn end(&mut self, state: LeaseState, reason: &str, now: u64) {
        self.state = state;
        self.end_reason = Some(reason.to_owned());
        for entry in &mut self.journal {
            if entry.record.status == ExecutionStatus::Running {
                entry.record.status = ExecutionStatus::Failed;
                entry.record.ended_at = Some(now);
            }
        }
        self.touch(now);
    }

    fn touch(&mut self, now: u64) {
        self.last_activity_at = self.last_activity_at.max(now);
    }

    /// Drops the oldest finished entries beyond [`JOURNAL_LEN`].
    fn trim_journal(&mut self) {
        while self.journal.len() > JOURNAL_LEN {
            match self
                .journal
                .iter()
                .position(|entry| entry.record.status != ExecutionStatus::Running)
            {
                Some(index) => {
                    self.journal.remove(index);
                }
                None => break,
            }
        }
    }
}

/// A lease record as it sits in storage. Records are stored as JSON text: one string is cheap to
/// hand to storage, where the object form costs a JavaScript property write per field of every
/// journal entry, twice per exec. Bridges before this one stored the object form, and a lease
/// object upgraded in place still reads it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StoredRecord {
    /// The JSON text of a record.
    Json(String),
    /// A record stored as an object by an earlier bridge.
    Object(Box<LeaseRecord>),
}

impl StoredRecord {
    /// The text a record is stored as.
    pub fn encode(record: &LeaseRecord) -> Result<String, serde_json::Error> {
        serde_json::to_string(record)
    }

    /// The record, whichever form it was stored in.
    pub fn into_record(self) -> Result<LeaseRecord, serde_json::Error> {
        match self {
            Self::Json(text) => serde_json::from_str(&text),
            Self::Object(record) => Ok(*record),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_protocol::api::{AcquireLeaseRequest, SessionStrategy};

    fn plan(run_id: &str, reusable: bool) -> AcquirePlan {
        AcquirePlan::from_request(&AcquireLeaseRequest {
            environment_id: "env".into(),
            run_id: run_id.into(),
            reuse_lease: reusable,
            keep_alive: reusable,
            ..AcquireLeaseRequest::default()
        })
        .expect("valid")
    }

    fn active(run_id: &str, reusable: bool) -> LeaseRecord {
        let mut record = LeaseRecord::acquiring(&plan(run_id, reusable), "s".into(), 1_000);
        record.activate(1_000);
        record
    }

    fn busy_record() -> LeaseRecord {
        let mut record = active("r1", true);
        record
            .begin_execution("e1", "true", 10_000, 1_100)
            .expect("active");
        record.end_reason = Some("a reason".into());
        record
    }

    #[test]
    fn a_stored_record_reads_back_from_its_text() {
        let record = busy_record();
        let text = StoredRecord::encode(&record).expect("encodes");
        let stored: StoredRecord =
            serde_json::from_value(serde_json::Value::String(text)).expect("a string");
        assert!(matches!(stored, StoredRecord::Json(_)));
        assert_eq!(stored.into_record().expect("decodes"), record);
    }

    #[test]
    fn a_record_stored_as_an_object_by_an_earlier_bridge_still_reads() {
        let record = busy_record();
        let object = serde_json::to_value(&record).expect("encodes");
        let stored: StoredRecord = serde_json::from_value(object).expect("an object");
        assert!(matches!(stored, StoredRecord::Object(_)));
        assert_eq!(stored.into_record().expect("decodes"), record);
    }

    #[test]
    fn stored_text_that_is_not_a_record_is_an_error() {
        let stored: StoredRecord =
            serde_json::from_value(serde_json::Value::String("{\"leaseId\":1}".into()))
                .expect("a string");
        assert!(stored.into_record().is_err());
    }

    #[test]
    fn acquire_decisions() {
        let one_run = plan("r1", false);
        assert_eq!(
            LeaseRecord::decide_acquire(None, &one_run),
            AcquireDecision::Create
        );
        let record = active("r1", false);
        assert_eq!(
            LeaseRecord::decide_acquire(Some(&record), &one_run),
            AcquireDecision::AlreadyActive
        );
        let mut destroyed = record.clone();
        destroyed.destroyed("released", 2_000);
        assert_eq!(
            LeaseRecord::decide_acquire(Some(&destroyed), &one_run),
            AcquireDecision::Create
        );

        let mut warm = active("r1", true);
        warm.keep_warm(2_000);
        assert_eq!(
            LeaseRecord::decide_acquire(Some(&warm), &plan("r2", true)),
            AcquireDecision::Reattach
        );
        let busy = active("r1", true);
        assert_eq!(
            LeaseRecord::decide_acquire(Some(&busy), &plan("r2", true)),
            AcquireDecision::Reattach
        );
        let mut lost = active("r1", true);
        lost.mark_lost(2_000);
        assert_eq!(
            LeaseRecord::decide_acquire(Some(&lost), &plan("r2", true)),
            AcquireDecision::Create
        );
        let mut half_done = LeaseRecord::acquiring(&one_run, "s".into(), 1_000);
        assert_eq!(
            LeaseRecord::decide_acquire(Some(&half_done), &one_run),
            AcquireDecision::Create
        );
        half_done.activate(1_500);
        assert_eq!(half_done.response(false).state, LeaseState::Active);
    }

    #[test]
    fn only_active_leases_run_commands() {
        let mut record = active("r1", false);
        record
            .begin_execution("e1", "true", 10_000, 1_100)
            .expect("active");
        assert!(matches!(
            record.begin_execution("e1", "true", 10_000, 1_200),
            Err(BridgeError::InvalidRequest(_))
        ));
        record.destroyed("released", 1_300);
        assert!(matches!(
            record.begin_execution("e2", "true", 10_000, 1_400),
            Err(BridgeError::LeaseNotActive {
                state: LeaseState::Destroyed,
                ..
            })
        ));
        assert_eq!(
            record.details().executions[0].status,
            ExecutionStatus::Failed,
            "ending a lease ends its executions"
        );
        let mut lost = active("r1", false);
        lost.mark_lost(1_100);
        assert!(matches!(
            lost.begin_execution("e3", "true", 10_000, 1_200),
            Err(BridgeError::SandboxStateLost(_))
        ));
        assert!(matches!(
            lost.check_resumable(),
            Err(BridgeError::SandboxStateLost(_))
        ));
    }

    #[test]
    fn journal_records_outcomes_and_a_cancel_wins() {
        let mut record = active("r1", false);
        record
            .begin_execution("e1", "sleep", 60_000, 1_100)
            .expect("active");
        record
            .begin_execution("e2", "true", 60_000, 1_100)
            .expect("active");
        assert_eq!(record.running_executions(1_200), ["e1", "e2"]);
        assert!(record.cancel_execution("e1", 1_300));
        assert!(!record.cancel_execution("e1", 1_300), "already ended");
        assert_eq!(
            record.end_execution("e1", ExecutionStatus::Completed, Some(143), 1_400),
            Some(ExecutionStatus::Cancelled)
        );
        assert_eq!(
            record.end_execution("e2", ExecutionStatus::Completed, Some(0), 1_500),
            Some(ExecutionStatus::Completed)
        );
        assert_eq!(
            record.end_execution("nope", ExecutionStatus::Completed, None, 1_500),
            None
        );
        assert!(record.running_executions(1_600).is_empty());
        assert_eq!(record.last_activity_at, 1_500);
    }

    #[test]
    fn journal_is_bounded_but_keeps_running_entries() {
        let mut record = active("r1", false);
        record
            .begin_execution("long", "sleep", u64::MAX, 1_000)
            .expect("active");
        for index in 0..100 {
            let id = format!("e{index}");
            record
                .begin_execution(&id, "true", 5_000, 1_000)
                .expect("active");
            record.end_execution(&id, ExecutionStatus::Completed, Some(0), 1_001);
        }
        assert_eq!(record.journal.len(), JOURNAL_LEN);
        assert_eq!(record.journal[0].record.execution_id, "long");
        assert_eq!(record.journal[JOURNAL_LEN - 1].record.execution_id, "e99");
    }

    #[test]
    fn idle_deadline_counts_running_commands_as_activity() {
        let mut record = active("r1", false);
        assert_eq!(record.idle_deadline(3_000, 1_000), Some(4_000));
        record
            .begin_execution("e1", "sleep", 50_000, 2_000)
            .expect("active");
        assert_eq!(record.idle_deadline(3_000, 2_000), Some(53_000));
        assert_eq!(
            record.idle_deadline(3_000, 60_000),
            Some(5_000),
            "a command past its deadline was abandoned"
        );
        record.destroyed("reaped", 60_000);
        assert_eq!(record.idle_deadline(3_000, 60_000), None);
    }

    #[test]
    fn executions_past_their_deadline_are_overdue_and_wake_the_object() {
        let mut record = active("r1", false);
        record
            .begin_execution("quick", "true", 5_000, 1_000)
            .expect("active");
        record
            .begin_execution("slow", "sleep", 9_000, 1_000)
            .expect("active");
        assert_eq!(record.next_wakeup(60_000, 1_000), Some(5_000));
        assert!(record.overdue_executions(4_999).is_empty());
        assert_eq!(record.overdue_executions(5_000), ["quick"]);
        record.end_execution("quick", ExecutionStatus::TimedOut, None, 5_100);
        assert_eq!(record.next_wakeup(60_000, 5_100), Some(9_000));
        record.end_execution("slow", ExecutionStatus::Completed, Some(0), 6_000);
        assert_eq!(
            record.next_wakeup(60_000, 6_000),
            Some(66_000),
            "only the idle deadline is left"
        );
        record.destroyed("done", 7_000);
        assert_eq!(record.next_wakeup(60_000, 7_000), None);
    }

    #[test]
    fn reattach_takes_the_new_run_and_policies() {
        let mut record = active("r1", true);
        record.keep_warm(2_000);
        let mut next = plan("r2", true);
        next.settings.sleep_after = Some("5m".into());
        record.reattach(&next, 3_000);
        assert_eq!(record.state, LeaseState::Active);
        assert_eq!(record.settings.run_id, "r2");
        assert_eq!(record.settings.sleep_after.as_deref(), Some("5m"));
        assert_eq!(record.settings.session_strategy, SessionStrategy::Named);
        assert!(record.response(true).resumed);
    }
}
