//! How an execution ended, as reported to the client and the journal.

use super::output::{Ending, Retained};
use crate::sandbox::SandboxError;
use crate::script::KillOutcome;
use bridge_protocol::api::{ExecResult, ExecutionStatus};

/// Why an execution could not be concluded with a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unconcluded {
    /// The sandbox lacked the lease's sentinel: the command never ran and the lease is lost.
    SandboxLost,
    /// The bridge lost track of the command (no exit code, a container failure): it must be
    /// killed to be sure, and the execution fails with this error.
    Failed(SandboxError),
}

/// The end of an execution, after timeouts and cancels are taken into account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    /// Exit code; `None` when the bridge killed the command.
    pub exit_code: Option<i32>,
    /// The signal the bridge ended it with.
    pub signal: Option<String>,
    /// The bridge's timeout fired.
    pub timed_out: bool,
    /// A cancel ended it.
    pub cancelled: bool,
}

impl Conclusion {
    /// How an execution ends, from the container's `ending` and whether the bridge's timeout
    /// killed it. A missing exit code is a failure, never success. An interrupted script is
    /// taken at the container's word only once the caller has seen that the sandbox kept its
    /// state (otherwise the ending is [`Ending::SandboxLost`]).
    pub fn from_ending(ending: Ending, timeout: Option<KillOutcome>) -> Result<Self, Unconcluded> {
        match (ending, timeout) {
            (Ending::SandboxLost, _) => Err(Unconcluded::SandboxLost),
            (_, Some(kill)) => Ok(Self::timed_out(kill)),
            (Ending::Exited(Some(code)) | Ending::Interrupted(Some(code)), None) => {
                Ok(Self::exited(code))
            }
            (Ending::Exited(None) | Ending::Interrupted(None), None) => Err(Unconcluded::Failed(
                SandboxError::Protocol("the command ended without an exit code".into()),
            )),
            (Ending::Failed(message), None) => {
                Err(Unconcluded::Failed(SandboxError::Other(message)))
            }
        }
    }

    /// The command exited by itself.
    pub fn exited(exit_code: i32) -> Self {
        Self {
            exit_code: Some(exit_code),
            signal: None,
            timed_out: false,
            cancelled: false,
        }
    }

    /// The bridge's timeout fired and the kill script reported `kill`.
    pub fn timed_out(kill: KillOutcome) -> Self {
        Self {
            exit_code: None,
            signal: kill.signal().map(str::to_owned),
            timed_out: true,
            cancelled: false,
        }
    }

    /// A cancel got there first; `exit_code` is what the killed command's shell reported.
    pub fn cancelled(exit_code: Option<i32>) -> Self {
        let signal = match exit_code {
            Some(143) => Some("SIGTERM".to_owned()),
            Some(137) => Some("SIGKILL".to_owned()),
            _ => None,
        };
        Self {
            exit_code: None,
            signal,
            timed_out: false,
            cancelled: true,
        }
    }

    /// What the journal records.
    pub fn journal_status(&self) -> ExecutionStatus {
        if self.timed_out {
            ExecutionStatus::TimedOut
        } else if self.cancelled {
            ExecutionStatus::Cancelled
        } else {
            ExecutionStatus::Completed
        }
    }

    /// The result for the client; `retained` is empty when the output was streamed.
    pub fn into_result(
        self,
        execution_id: String,
        totals: (u64, u64),
        retained: Retained,
        duration_ms: u64,
    ) -> ExecResult {
        ExecResult {
            execution_id,
            exit_code: self.exit_code,
            signal: self.signal,
            timed_out: self.timed_out,
            cancelled: self.cancelled,
            stdout: retained.stdout,
            stderr: retained.stderr,
            duration_ms,
            stdout_bytes: totals.0,
            stderr_bytes: totals.1,
            truncated: retained.truncated,
            signature: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn killed_commands_have_no_exit_code() {
        let timed_out = Conclusion::timed_out(KillOutcome::Killed);
        assert_eq!(timed_out.exit_code, None);
        assert_eq!(timed_out.signal.as_deref(), Some("SIGKILL"));
        assert_eq!(timed_out.journal_status(), ExecutionStatus::TimedOut);
        let cancelled = Conclusion::cancelled(Some(143));
        assert_eq!(cancelled.exit_code, None);
        assert_eq!(cancelled.signal.as_deref(), Some("SIGTERM"));
        assert_eq!(cancelled.journal_status(), ExecutionStatus::Cancelled);
        assert_eq!(
            Conclusion::exited(3).journal_status(),
            ExecutionStatus::Completed
        );
    }

    #[test]
    fn endings_become_conclusions_and_a_missing_exit_code_is_a_failure() {
        assert_eq!(
            Conclusion::from_ending(Ending::Exited(Some(3)), None),
            Ok(Conclusion::exited(3))
        );
        assert_eq!(
            Conclusion::from_ending(Ending::Interrupted(Some(143)), None),
            Ok(Conclusion::exited(143)),
            "a script killed in a sandbox that kept its state"
        );
        assert!(matches!(
            Conclusion::from_ending(Ending::Exited(None), None),
            Err(Unconcluded::Failed(SandboxError::Protocol(_)))
        ));
        assert_eq!(
            Conclusion::from_ending(Ending::Exited(None), Some(KillOutcome::Terminated)),
            Ok(Conclusion::timed_out(KillOutcome::Terminated)),
            "a command the bridge killed has no exit code by design"
        );
        assert_eq!(
            Conclusion::from_ending(Ending::SandboxLost, Some(KillOutcome::Killed)),
            Err(Unconcluded::SandboxLost)
        );
        assert!(matches!(
            Conclusion::from_ending(Ending::Failed("boom".into()), None),
            Err(Unconcluded::Failed(SandboxError::Other(message))) if message == "boom"
        ));
    }

    #[test]
    fn results_carry_totals_and_the_kept_output() {
        let result = Conclusion::exited(0).into_result(
            "e1".into(),
            (10, 2),
            Retained {
                stdout: "0123".into(),
                stderr: "e".into(),
                truncated: true,
            },
            42,
        );
        assert_eq!(result.exit_code, Some(0));
        assert_eq!((result.stdout_bytes, result.stderr_bytes), (10, 2));
        assert!(result.truncated);
        assert_eq!(result.stdout, "0123");
        assert_eq!(result.duration_ms, 42);
    }
}
