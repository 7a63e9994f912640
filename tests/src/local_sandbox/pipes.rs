//! A running command's output pipes (FIFOs for session commands, anonymous pipes for one-shot
//! ones), read by the server.
//!
//! Output is forwarded as it is produced, in chunks of at most 64 KiB. A sessionless command's
//! pipes are read to their end, as the real container does ([`OutputPipes::forward_to_end`]). A
//! session command's FIFOs are drained of what is buffered once its exit is known, without
//! waiting for end-of-file, and then read and discarded in the background until every writer is
//! gone, so a child it backgrounded never dies of SIGPIPE.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::pin::pin;
use std::process::{ChildStderr, ChildStdout};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

/// Largest chunk read from a pipe at once.
const CHUNK: usize = 64 * 1024;

/// Which of a command's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Where forwarded output goes.
pub trait OutputSink {
    /// Accepts one chunk; may wait (backpressure).
    fn write(&mut self, stream: Stream, bytes: Vec<u8>) -> impl Future<Output = ()> + Send;
}

/// Collects a command's whole output, for JSON results.
#[derive(Debug, Default)]
pub struct Collector {
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
}

impl OutputSink for Collector {
    async fn write(&mut self, stream: Stream, bytes: Vec<u8>) {
        match stream {
            Stream::Stdout => self.stdout.extend(bytes),
            Stream::Stderr => self.stderr.extend(bytes),
        }
    }
}

/// One non-blocking `read(2)` on the pipe, whatever the reactor believes about its readiness.
fn read_now(receiver: &pipe::Receiver, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the descriptor is open for the lifetime of `receiver`, and `buffer` is valid for
    // writes of `buffer.len()` bytes.
    let read = unsafe {
        libc::read(
            receiver.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
        )
    };
    usize::try_from(read).map_err(|_| io::Error::last_os_error())
}

/// Drops output nobody wants any more.
struct Discard;

impl OutputSink for Discard {
    async fn write(&mut self, _stream: Stream, _bytes: Vec<u8>) {}
}

/// The read end of one output pipe.
#[derive(Debug)]
struct PipeReader {
    stream: Stream,
    receiver: pipe::Receiver,
    /// For FIFOs, a write end held by the server so the reader sees no end-of-file before the
    /// command has opened its end; released once the command is done.
    keepalive: Option<pipe::Sender>,
    open: bool,
    buffer: Box<[u8]>,
}

impl PipeReader {
    fn new(stream: Stream, receiver: pipe::Receiver, keepalive: Option<pipe::Sender>) -> Self {
        Self {
            stream,
            receiver,
            keepalive,
            open: true,
            buffer: vec![0; CHUNK].into_boxed_slice(),
        }
    }

    fn fifo(stream: Stream, path: &Path) -> io::Result<Self> {
        let receiver = pipe::OpenOptions::new().open_receiver(path)?;
        let keepalive = pipe::OpenOptions::new().open_sender(path)?;
        Ok(Self::new(stream, receiver, Some(keepalive)))
    }

    fn anonymous(stream: Stream, fd: OwnedFd) -> io::Result<Self> {
        Ok(Self::new(stream, pipe::Receiver::from_owned_fd(fd)?, None))
    }

    /// Turns the result of a read into a chunk, closing the reader on end-of-file or error.
    fn accept(&mut self, read: io::Result<usize>) -> Option<(Stream, Vec<u8>)> {
        match read {
            Ok(length) if length > 0 => Some((self.stream, self.buffer.get(..length)?.to_vec())),
            Ok(_) => {
                self.open = false;
                None
            }
            Err(error) => {
                tracing::debug!(%error, "output pipe failed");
                self.open = false;
                None
            }
        }
    }
}

/// A command's stdout and stderr.
#[derive(Debug)]
pub struct OutputPipes {
    stdout: PipeReader,
    stderr: PipeReader,
}

impl OutputPipes {
    /// The anonymous pipes of a directly spawned child.
    pub fn from_child(stdout: ChildStdout, stderr: ChildStderr) -> io::Result<Self> {
        Ok(Self {
            stdout: PipeReader::anonymous(Stream::Stdout, stdout.into())?,
            stderr: PipeReader::anonymous(Stream::Stderr, stderr.into())?,
        })
    }

    /// The FIFOs of a session command (opened before the shell opens its ends).
    pub fn from_fifos(stdout: &Path, stderr: &Path) -> io::Result<Self> {
        Ok(Self {
            stdout: PipeReader::fifo(Stream::Stdout, stdout)?,
            stderr: PipeReader::fifo(Stream::Stderr, stderr)?,
        })
    }

    fn is_open(&self) -> bool {
        self.stdout.open || self.stderr.open
    }

    /// The next chunk from whichever pipe has one; `None` when a pipe just closed. Cancel-safe:
    /// nothing is consumed unless it is returned.
    async fn next_chunk(&mut self) -> Option<(Stream, Vec<u8>)> {
        let Self { stdout, stderr } = self;
        tokio::select! {
            read = stdout.receiver.read(&mut stdout.buffer), if stdout.open => stdout.accept(read),
            read = stderr.receiver.read(&mut stderr.buffer), if stderr.open => stderr.accept(read),
            else => None,
        }
    }

    /// Forwards output to `sink` until `until` resolves, and returns its value.
    pub async fn forward_until<S: OutputSink, F: Future>(
        &mut self,
        sink: &mut S,
        until: F,
    ) -> F::Output {
        let mut until = pin!(until);
        loop {
            tokio::select! {
                chunk = self.next_chunk(), if self.is_open() => {
                    if let Some((stream, bytes)) = chunk {
                        sink.write(stream, bytes).await;
                    }
                }
                value = &mut until => return value,
            }
        }
    }

    /// Forwards everything until every writer has closed both pipes. This is how the real
    /// container ends a sessionless command: after its exit it reads the pipes to their end, so a
    /// process the command left running with the pipes inherited holds the result until it exits
    /// too.
    pub async fn forward_to_end<S: OutputSink>(&mut self, sink: &mut S) {
        while self.is_open() {
            if let Some((stream, bytes)) = self.next_chunk().await {
                sink.write(stream, bytes).await;
            }
        }
    }

    /// Forwards what is already buffered in the pipes, without waiting for more.
    ///
    /// This reads with a plain non-blocking `read(2)`: tokio's `try_read` answers `WouldBlock`
    /// whenever the reactor has not yet seen the pipe become readable, which, right after a
    /// command exits, would silently drop its last output.
    pub async fn drain_ready<S: OutputSink>(&mut self, sink: &mut S) {
        for reader in [&mut self.stdout, &mut self.stderr] {
            while reader.open {
                let read = read_now(&reader.receiver, &mut reader.buffer);
                if read
                    .as_ref()
                    .is_err_and(|error| error.kind() == io::ErrorKind::WouldBlock)
                {
                    break;
                }
                if let Some((stream, bytes)) = reader.accept(read) {
                    sink.write(stream, bytes).await;
                }
            }
        }
    }

    /// Hands the pipes to a background task: it keeps discarding output until `after` resolves
    /// (the command is really done), then until every writer has closed, and finally drops
    /// `keep` (e.g. the directory holding the FIFOs).
    pub fn retire<K: Send + 'static>(
        mut self,
        after: impl Future<Output = ()> + Send + 'static,
        keep: K,
    ) {
        tokio::spawn(async move {
            self.forward_until(&mut Discard, after).await;
            self.stdout.keepalive = None;
            self.stderr.keepalive = None;
            while self.is_open() {
                self.next_chunk().await;
            }
            drop(keep);
        });
    }
}
