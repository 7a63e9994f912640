//! Lease routes: acquire, resume, release, destroy, inspect.

use serde::{Deserialize, Serialize};

/// How a command's session is chosen for a lease by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStrategy {
    /// Commands run in the lease's named session (`sessionId`).
    #[default]
    Named,
    /// Commands run in the sandbox's default session.
    Default,
}

/// Which reusable sandbox a reusable lease maps onto.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReuseScope {
    /// One sandbox per environment.
    #[default]
    Environment,
    /// One sandbox per environment and issue.
    Issue,
}

/// `POST /leases/acquire`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcquireLeaseRequest {
    /// The Paperclip environment.
    pub environment_id: String,
    /// The run the lease is for; a repeated `(environmentId, runId)` returns the same lease.
    pub run_id: String,
    /// The issue, when the run works on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_id: Option<String>,
    /// Keep the sandbox across runs and reattach to it (requires `keepAlive`).
    #[serde(default)]
    pub reuse_lease: bool,
    /// What a reusable sandbox is shared by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_scope: Option<ReuseScope>,
    /// Keep the container running while idle.
    #[serde(default)]
    pub keep_alive: bool,
    /// Idle time before the container sleeps, e.g. `"10m"` (ignored with `keepAlive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_after: Option<String>,
    /// Working directory to create; defaults to [`super::DEFAULT_REMOTE_CWD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_cwd: Option<String>,
    /// Default session policy of the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_strategy: Option<SessionStrategy>,
    /// Name of the lease's session; defaults to `paperclip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Deadline for the acquisition in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `POST /leases/resume`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeLeaseRequest {
    /// The lease to reattach.
    pub provider_lease_id: String,
    /// New keepAlive policy (only resume and acquire may change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<bool>,
    /// New sleepAfter policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_after: Option<String>,
    /// Deadline for the resumption in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `POST /leases/release`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseLeaseRequest {
    /// The lease to release.
    pub provider_lease_id: String,
    /// Stop running commands first; the receipt then proves they are dead.
    #[serde(default)]
    pub cancel_active_work: bool,
    /// Destroy even a reusable lease instead of keeping it warm.
    #[serde(default)]
    pub destroy: bool,
}

/// State of a lease, as its Durable Object records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// The sandbox is being prepared.
    Acquiring,
    /// The lease can run commands.
    Active,
    /// A reusable lease kept warm between runs; resume reactivates it.
    Released,
    /// The sandbox is gone for good.
    Destroyed,
    /// The sandbox lost its state behind the bridge's back.
    Lost,
}

/// A lease as clients see it after acquire or resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseResponse {
    /// The lease (and sandbox) id.
    pub provider_lease_id: String,
    /// Default working directory of commands.
    pub remote_cwd: String,
    /// The session commands run in by default.
    pub session_id: String,
    /// The lease's session policy.
    pub session_strategy: SessionStrategy,
    /// Whether the container stays up while idle.
    pub keep_alive: bool,
    /// Idle time before the container sleeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_after: Option<String>,
    /// Whether the lease survives release.
    pub reusable: bool,
    /// `true` when an existing sandbox was reattached rather than created.
    pub resumed: bool,
    /// Current state (always `active` after acquire or resume).
    pub state: LeaseState,
}

/// What a terminated lease became, in Paperclip's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationState {
    /// Work stopped; a reusable sandbox stays warm.
    Stopped,
    /// The sandbox is destroyed.
    Destroyed,
}

/// Proof that a lease's work ended: only sent once termination is confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminationReceipt {
    /// The lease.
    pub provider_lease_id: String,
    /// What it became.
    pub state: TerminationState,
}

/// One entry of a lease's execution journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    /// The execution id.
    pub execution_id: String,
    /// The command (argv[0]); arguments and environment are never recorded.
    pub command: String,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// Unix milliseconds at start.
    pub started_at: u64,
    /// Unix milliseconds at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    /// Exit code, when the command exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// Status of a journaled execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Still running.
    Running,
    /// Exited on its own.
    Completed,
    /// Killed by the bridge's timeout.
    TimedOut,
    /// Killed by a cancel request or a release with `cancelActiveWork`.
    Cancelled,
    /// The bridge could not run it or lost track of it.
    Failed,
}

/// `GET /leases/{id}`: the lease record, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseDetails {
    /// The lease id.
    pub provider_lease_id: String,
    /// The state.
    pub state: LeaseState,
    /// The Paperclip environment.
    pub environment_id: String,
    /// The run that acquired (or last resumed) it.
    pub run_id: String,
    /// The issue, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_id: Option<String>,
    /// Default working directory.
    pub remote_cwd: String,
    /// Default session.
    pub session_id: String,
    /// Whether it survives release.
    pub reusable: bool,
    /// Whether the container stays up while idle.
    pub keep_alive: bool,
    /// Idle time before the container sleeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep_after: Option<String>,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds of the last acquire, resume, release or execution.
    pub last_activity_at: u64,
    /// Why it ended, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// Most recent executions, newest last.
    pub executions: Vec<ExecutionRecord>,
}
