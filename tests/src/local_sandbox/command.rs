//! A command as the rest of the server sees it, whichever way it runs (session shell or one-shot
//! `bash -c`): what to run, its JSON result, or, for streams and processes, a running command that
//! yields output events and can be killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::errors::{ApiError, ExecTarget, SESSIONLESS};
use super::pipes::{Collector, OutputSink, Stream};
use super::proctree::{Targets, Termination, terminate};
use super::scripts::{EnvVars, Invocation};
use super::utf8::Utf8Decoder;

/// The session used when a request names none.
const DEFAULT_SESSION: &str = "default";
/// Output events buffered between a running command and its consumer.
const BUFFERED_EVENTS: usize = 8;

/// Where a request's command runs, from its `sessionId` (absent or empty: the `default` session).
pub fn target(session_id: Option<&str>) -> Result<ExecTarget, ApiError> {
    match session_id {
        None | Some("") => Ok(ExecTarget::Session(DEFAULT_SESSION.to_owned())),
        Some(SESSIONLESS) => Ok(ExecTarget::Sessionless),
        Some(id) if id.trim().is_empty() => Err(ApiError::validation(
            "sessionId",
            "sessionId must not be empty or whitespace",
        )),
        Some(id) => Ok(ExecTarget::Session(id.to_owned())),
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// The shell command text.
    pub command: String,
    /// Variables for this command only.
    pub env: EnvVars,
    /// Directory for this command only.
    pub cwd: Option<String>,
    /// Give up waiting after this long (foreground and one-shot commands only).
    pub timeout: Option<Duration>,
}

impl CommandSpec {
    /// The per-call settings the shell scripts need.
    pub fn invocation(&self) -> Invocation<'_> {
        Invocation {
            env: &self.env,
            cwd: self.cwd.as_deref(),
        }
    }
}

/// The result of a command that ran to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status (128 + signal if killed).
    pub exit_code: i32,
    /// Standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

impl ExecOutput {
    /// Decodes collected output.
    pub fn new(exit_code: i32, output: Collector) -> Self {
        Self {
            exit_code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// What a running command reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandEvent {
    /// A chunk of output.
    Output(Stream, Vec<u8>),
    /// The command ended; always the last event.
    Exit(i32),
}

/// Decodes both output streams of a command into text, each on its own so that a character split
/// across chunks of one stream is reassembled.
#[derive(Debug, Default)]
pub struct StreamDecoders {
    stdout: Utf8Decoder,
    stderr: Utf8Decoder,
}

impl StreamDecoders {
    /// The complete characters of `bytes` (after what was held back for `stream`).
    pub fn decode(&mut self, stream: Stream, bytes: &[u8]) -> String {
        match stream {
            Stream::Stdout => self.stdout.decode(bytes),
            Stream::Stderr => self.stderr.decode(bytes),
        }
    }

    /// What is still held back at end of output, per stream.
    pub fn finish(&mut self) -> [(Stream, String); 2] {
        [
            (Stream::Stdout, self.stdout.finish()),
            (Stream::Stderr, self.stderr.finish()),
        ]
    }
}

/// Forwards output into a running command's event channel; output nobody reads any more is dropped
/// so the command never blocks on a vanished client.
#[derive(Debug)]
pub struct EventSink(mpsc::Sender<CommandEvent>);

impl EventSink {
    /// A sink and the receiver its events go to.
    pub fn channel() -> (Self, mpsc::Receiver<CommandEvent>) {
        let (sender, receiver) = mpsc::channel(BUFFERED_EVENTS);
        (Self(sender), receiver)
    }

    /// Reports the exit status.
    pub async fn exit(self, code: i32) {
        // A consumer that went away does not need the exit status.
        let _ = self.0.send(CommandEvent::Exit(code)).await;
    }
}

impl OutputSink for EventSink {
    async fn write(&mut self, stream: Stream, bytes: Vec<u8>) {
        // A consumer that went away does not need the output.
        let _ = self.0.send(CommandEvent::Output(stream, bytes)).await;
    }
}

/// A command started in the background (a stream or a process).
#[derive(Debug)]
pub struct StartedCommand {
    /// Pid of the command's root process.
    pub pid: u32,
    /// Its output, then its exit status.
    pub events: mpsc::Receiver<CommandEvent>,
    /// Kills its whole process tree.
    pub killer: Killer,
}

/// Kills one command's process tree and remembers the last signal it sent, which is the best
/// guess at the exit status of a session subshell that dies without reporting one.
#[derive(Debug, Clone)]
pub struct Killer {
    targets: Targets,
    last_signal: Arc<AtomicI32>,
}

impl Killer {
    /// A killer for `targets`.
    pub fn new(targets: Targets) -> Self {
        Self {
            targets,
            last_signal: Arc::default(),
        }
    }

    /// SIGTERM, 5 s grace, then SIGKILL; returns once every process is gone.
    pub async fn kill(&self) -> Termination {
        terminate(&self.targets, |signal| {
            self.last_signal.store(signal, Ordering::Relaxed);
        })
        .await
    }

    /// Exit status for a command whose root vanished without reporting one: 128 + the last
    /// signal this killer sent, or + SIGKILL if it sent none (something else killed it).
    pub fn vanished_code(&self) -> i32 {
        match self.last_signal.load(Ordering::Relaxed) {
            0 => 128 + libc::SIGKILL,
            signal => 128 + signal,
        }
    }
}

/// Resolves after `timeout`, or never.
pub async fn deadline(timeout: Option<Duration>) {
    match timeout {
        Some(timeout) => tokio::time::sleep(timeout).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::target;
    use crate::local_sandbox::errors::ExecTarget;

    #[test]
    fn resolves_the_session_id() {
        assert_eq!(
            target(None).ok(),
            Some(ExecTarget::Session("default".into()))
        );
        assert_eq!(
            target(Some("")).ok(),
            Some(ExecTarget::Session("default".into()))
        );
        assert_eq!(
            target(Some("__DISABLE_SESSION__")).ok(),
            Some(ExecTarget::Sessionless)
        );
        assert_eq!(
            target(Some("s1")).ok(),
            Some(ExecTarget::Session("s1".into()))
        );
        assert!(target(Some("  ")).is_err());
    }
}
