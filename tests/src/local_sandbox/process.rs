//! Background processes (`/api/process/*`, `execute` with `background: true`): a record per
//! process with its status and its whole output (kept in memory, as the real container does), that
//! any number of log streams can replay and then follow live.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Serialize, Serializer};
use tokio::sync::{mpsc, watch};

use super::command::{CommandEvent, Killer, StartedCommand, StreamDecoders};
use super::errors::{ApiError, ExecTarget};
use super::ids;
use super::pipes::Stream;
use super::time::now_iso;

/// How long a kill waits for the command to report its exit before recording it as killed.
const EXIT_REPORT_WAIT: Duration = Duration::from_secs(2);

/// A process's status, as the container reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessStatus {
    /// Still running.
    Running,
    /// Exited with 0.
    Completed,
    /// Exited with another code.
    Failed,
    /// Ended by SIGTERM/SIGKILL (exit 143/137) or by a kill request.
    Killed,
    /// Its output could not be followed to the end.
    Error,
}

impl ProcessStatus {
    /// The container's `interpretExitCode`.
    fn from_exit_code(code: i32) -> Self {
        match code {
            0 => Self::Completed,
            137 | 143 => Self::Killed,
            _ => Self::Failed,
        }
    }

    /// Whether the process has ended.
    pub fn is_terminal(self) -> bool {
        self != Self::Running
    }

    /// The status as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Killed => "killed",
            Self::Error => "error",
        }
    }
}

impl Serialize for ProcessStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A process's mutable state.
#[derive(Debug, Clone)]
pub struct ProcessState {
    /// Its status.
    pub status: ProcessStatus,
    /// Its exit code once it has one.
    pub exit_code: Option<i32>,
    /// When it ended.
    pub end_time: Option<String>,
    /// Its output so far, in order, as decoded text.
    pub output: Vec<(Stream, String)>,
}

impl ProcessState {
    /// All stdout and all stderr so far.
    pub fn logs(&self) -> (String, String) {
        let collect = |wanted: Stream| {
            self.output
                .iter()
                .filter(|(stream, _)| *stream == wanted)
                .map(|(_, text)| text.as_str())
                .collect::<String>()
        };
        (collect(Stream::Stdout), collect(Stream::Stderr))
    }
}

/// Where a process stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its status.
    pub status: ProcessStatus,
    /// Its exit code once it has one.
    pub exit_code: Option<i32>,
    /// When it ended.
    pub end_time: Option<String>,
}

/// One background process.
#[derive(Debug)]
pub struct ProcessEntry {
    /// Its id.
    pub id: String,
    /// Its command text.
    pub command: String,
    /// Pid of its root process.
    pub pid: u32,
    /// When it started.
    pub start_time: String,
    target: ExecTarget,
    killer: Killer,
    state: watch::Sender<ProcessState>,
}

impl ProcessEntry {
    /// Its status so far (without copying the output).
    pub fn outcome(&self) -> Outcome {
        let state = self.state.borrow();
        Outcome {
            status: state.status,
            exit_code: state.exit_code,
            end_time: state.end_time.clone(),
        }
    }

    /// All output so far.
    pub fn logs(&self) -> (String, String) {
        self.state.borrow().logs()
    }

    /// Follows the state: replays what exists, then every change.
    pub fn subscribe(&self) -> watch::Receiver<ProcessState> {
        self.state.subscribe()
    }

    /// Kills the process tree and records the process as killed, like the container's
    /// `killProcess`; a process that already ended is `COMMAND_NOT_FOUND`.
    pub async fn kill(&self) -> Result<(), ApiError> {
        if self.state.borrow().status.is_terminal() {
            return Err(ApiError::ProcessNotRunning {
                process_id: self.id.clone(),
                target: self.target.clone(),
            });
        }
        self.killer.kill().await;
        let mut state = self.state.subscribe();
        // The exit report normally follows the kill at once; record the kill either way.
        let _ = tokio::time::timeout(
            EXIT_REPORT_WAIT,
            state.wait_for(|state| state.status.is_terminal()),
        )
        .await;
        self.state.send_modify(|state| {
            state.status = ProcessStatus::Killed;
            state.end_time.get_or_insert_with(now_iso);
        });
        Ok(())
    }
}

/// The processes of one sandbox, in start order.
#[derive(Debug, Default)]
pub struct ProcessRegistry(Mutex<Vec<Arc<ProcessEntry>>>);

impl ProcessRegistry {
    fn entries(&self) -> MutexGuard<'_, Vec<Arc<ProcessEntry>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a started command under `id` (generated if absent; an existing record with the same
    /// id is replaced, as in the container) and starts following its output.
    pub fn register(
        &self,
        id: Option<String>,
        command: String,
        target: ExecTarget,
        started: StartedCommand,
    ) -> Arc<ProcessEntry> {
        let (state, _) = watch::channel(ProcessState {
            status: ProcessStatus::Running,
            exit_code: None,
            end_time: None,
            output: Vec::new(),
        });
        let entry = Arc::new(ProcessEntry {
            id: id.unwrap_or_else(ids::process_id),
            command,
            pid: started.pid,
            start_time: now_iso(),
            target,
            killer: started.killer,
            state,
        });
        tokio::spawn(record(Arc::clone(&entry), started.events));
        let mut entries = self.entries();
        entries.retain(|existing| existing.id != entry.id);
        entries.push(Arc::clone(&entry));
        entry
    }

    /// The process with this id.
    pub fn get(&self, id: &str) -> Result<Arc<ProcessEntry>, ApiError> {
        self.entries()
            .iter()
            .find(|entry| entry.id == id)
            .cloned()
            .ok_or_else(|| ApiError::ProcessNotFound {
                process_id: id.to_owned(),
            })
    }

    /// All processes, in start order.
    pub fn list(&self) -> Vec<Arc<ProcessEntry>> {
        self.entries().clone()
    }
}

/// Appends a process's output to its record as it arrives, then its exit.
async fn record(entry: Arc<ProcessEntry>, mut events: mpsc::Receiver<CommandEvent>) {
    let mut text = StreamDecoders::default();
    let append = |stream: Stream, text: String| {
        if !text.is_empty() {
            entry
                .state
                .send_modify(|state| state.output.push((stream, text)));
        }
    };
    let mut exit = None;
    while let Some(event) = events.recv().await {
        match event {
            CommandEvent::Output(stream, bytes) => append(stream, text.decode(stream, &bytes)),
            CommandEvent::Exit(code) => exit = Some(code),
        }
    }
    for (stream, rest) in text.finish() {
        append(stream, rest);
    }
    entry.state.send_modify(|state| {
        if state.status == ProcessStatus::Running {
            state.status = exit.map_or(ProcessStatus::Error, ProcessStatus::from_exit_code);
        }
        state.exit_code = state.exit_code.or(exit);
        state.end_time.get_or_insert_with(now_iso);
    });
}

#[cfg(test)]
mod tests {
    use super::{ProcessState, ProcessStatus};
    use crate::local_sandbox::pipes::Stream;

    #[test]
    fn exit_codes_map_to_statuses_like_the_container() {
        assert_eq!(ProcessStatus::from_exit_code(0), ProcessStatus::Completed);
        assert_eq!(ProcessStatus::from_exit_code(143), ProcessStatus::Killed);
        assert_eq!(ProcessStatus::from_exit_code(137), ProcessStatus::Killed);
        assert_eq!(ProcessStatus::from_exit_code(1), ProcessStatus::Failed);
    }

    #[test]
    fn logs_split_interleaved_output_by_stream() {
        let state = ProcessState {
            status: ProcessStatus::Running,
            exit_code: None,
            end_time: None,
            output: vec![
                (Stream::Stdout, "a".into()),
                (Stream::Stderr, "x".into()),
                (Stream::Stdout, "b".into()),
            ],
        };
        assert_eq!(state.logs(), ("ab".into(), "x".into()));
    }
}
