//! Messages from the Worker to a lease's Durable Object. Each command has one reply type; errors
//! travel as the API's error body with its status, so they reach the client unchanged.

use serde::{Deserialize, Serialize};

use super::settings::AcquirePlan;
use crate::replay::NonceClaim;
use bridge_protocol::api::{ExecRequest, ExecutionStatus, SessionStrategy};

/// A command addressed to the object of lease `lease_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRequest {
    /// The lease (the object cannot learn its own name).
    pub lease_id: String,
    /// What to do.
    pub command: LeaseCommand,
}

/// A request to a lease object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum LeaseCommand {
    /// Create, reattach or return the lease. Reply: `LeaseResponse`.
    Acquire {
        /// The validated request.
        plan: AcquirePlan,
    },
    /// Reattach after checking the sentinel. Reply: `LeaseResponse`.
    #[serde(rename_all = "camelCase")]
    Resume {
        /// New keepAlive policy.
        keep_alive: Option<bool>,
        /// New sleepAfter policy.
        sleep_after: Option<String>,
        /// Deadline in milliseconds.
        timeout_ms: u64,
    },
    /// End the run's use. Reply: `TerminationReceipt`.
    #[serde(rename_all = "camelCase")]
    Release {
        /// Stop running commands first.
        cancel_active_work: bool,
        /// Destroy even a reusable lease.
        destroy: bool,
    },
    /// Destroy the sandbox; idempotent. Reply: `TerminationReceipt`.
    Destroy,
    /// The record for operators. Reply: `LeaseDetails`.
    Inspect,
    /// Claim the request's nonce, journal an execution and get what running it needs. Reply:
    /// [`ExecutionTicket`]; a nonce seen before is `unauthorized` (`replayed_nonce`).
    #[serde(rename_all = "camelCase")]
    BeginExecution {
        /// The nonce of the request that asks for the execution.
        nonce: NonceClaim,
        /// The execution id.
        execution_id: String,
        /// argv[0], for the journal.
        command: String,
        /// The bridge's timeout for it.
        timeout_ms: u64,
    },
    /// Journal how an execution ended. Reply: [`ExecutionEnded`].
    #[serde(rename_all = "camelCase")]
    EndExecution {
        /// The execution id.
        execution_id: String,
        /// How it ended, as the Worker saw it.
        status: ExecutionStatus,
        /// Its exit code, if any.
        exit_code: Option<i32>,
        /// The sandbox did not hold the lease's sentinel: mark the lease lost.
        sandbox_lost: bool,
    },
    /// Kill a running execution and wait until it is dead. Reply: `CancelResponse`.
    #[serde(rename_all = "camelCase")]
    Cancel {
        /// The execution id.
        execution_id: String,
    },
}

/// An exec the lease object runs itself, journaling it without any further call: with it, an exec
/// costs the Worker one Durable Object call (DESIGN §10). Its reply is the exec's answer: a JSON
/// result or error body for the Worker to sign, or the SSE stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOrder {
    /// The request as the client sent it.
    pub request: ExecRequest,
    /// Its nonce, claimed in the same step that journals the execution.
    pub nonce: NonceClaim,
    /// For an SSE answer, the key whose secret signs the terminal event; `None` for JSON.
    pub stream_key: Option<String>,
}

/// What the Worker needs to run a command on a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionTicket {
    /// Default working directory.
    pub remote_cwd: String,
    /// The lease's session name.
    pub session_id: String,
    /// The lease's session policy.
    pub session_strategy: SessionStrategy,
    /// The sentinel the sandbox must hold.
    pub sentinel: String,
}

/// The journal's final word on an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionEnded {
    /// `cancelled` when a cancel got there first, else what the Worker reported.
    pub status: ExecutionStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_tagged_json() {
        let command = LeaseCommand::Cancel {
            execution_id: "e1".into(),
        };
        let json = serde_json::to_string(&command).expect("serialisable");
        assert_eq!(json, r#"{"op":"cancel","executionId":"e1"}"#);
        assert_eq!(
            serde_json::from_str::<LeaseCommand>(&json).expect("parses"),
            command
        );
        assert_eq!(
            serde_json::to_string(&LeaseCommand::Destroy).expect("serialisable"),
            r#"{"op":"destroy"}"#
        );
    }
}
