//! A session command's control directory in the sandbox's `/tmp`: the command text, the script
//! that runs it, its output FIFOs, and the control FIFO on which the session shell reports
//! `pid <n>` / `exit <n>`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;

use super::paths::{SandboxDirs, c_path};
use super::pipes::OutputPipes;
use super::scripts::ControlFiles;

/// A message a session shell reports about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlMessage {
    /// The pid of a background command's subshell.
    Pid(u32),
    /// The command's exit status.
    Exit(i32),
}

impl ControlMessage {
    fn parse(line: &str) -> Option<Self> {
        match line.trim_end().split_once(' ')? {
            ("pid", pid) => pid.parse().ok().map(Self::Pid),
            ("exit", code) => code.parse().ok().map(Self::Exit),
            _ => None,
        }
    }
}

/// The FIFO a session shell reports on. Each report is one `printf` of a short line, so it
/// arrives whole.
#[derive(Debug)]
pub struct ControlFifo {
    lines: BufReader<pipe::Receiver>,
    partial: String,
    _keepalive: pipe::Sender,
}

impl ControlFifo {
    fn open(path: &Path) -> io::Result<Self> {
        let receiver = pipe::OpenOptions::new().open_receiver(path)?;
        Ok(Self {
            lines: BufReader::new(receiver),
            partial: String::new(),
            _keepalive: pipe::OpenOptions::new().open_sender(path)?,
        })
    }

    /// The next report. Cancel-safe: a partly read line is kept for the next call.
    pub async fn next(&mut self) -> io::Result<ControlMessage> {
        loop {
            if self.lines.read_line(&mut self.partial).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if !self.partial.ends_with('\n') {
                continue;
            }
            let line = std::mem::take(&mut self.partial);
            match ControlMessage::parse(&line) {
                Some(message) => return Ok(message),
                None => tracing::warn!(line, "ignoring malformed control line"),
            }
        }
    }

    /// Waits for the `exit` report.
    pub async fn exit(&mut self) -> io::Result<i32> {
        loop {
            if let ControlMessage::Exit(code) = self.next().await? {
                return Ok(code);
            }
        }
    }
}

/// A command's directory in its sandbox's `/tmp`, removed when dropped.
#[derive(Debug)]
pub struct CommandDir(PathBuf);

impl CommandDir {
    fn create(parent: &Path) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let path = parent.join(format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(parent)?;
        std::fs::create_dir(&path)?;
        Ok(Self(path))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for CommandDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            tracing::debug!(%error, dir = %self.0.display(), "could not remove command directory");
        }
    }
}

/// Everything a session command needs: its directory with the command text and FIFOs, the
/// opened read ends, and the names the shell uses for them.
#[derive(Debug)]
pub struct CommandChannel {
    /// The directory (removed on drop).
    pub dir: CommandDir,
    /// stdout and stderr FIFOs.
    pub output: OutputPipes,
    /// The control FIFO.
    pub control: ControlFifo,
    /// The files as the shell names them.
    pub files: ControlFiles,
}

impl CommandChannel {
    /// Creates the directory, writes `command` to a file and opens the FIFOs, before the shell is
    /// told anything.
    pub fn create(dirs: &SandboxDirs, command: &str) -> io::Result<Self> {
        let dir = CommandDir::create(&dirs.control_dir())?;
        let (command_file, stdout, stderr, control) = (
            dir.file("command"),
            dir.file("stdout"),
            dir.file("stderr"),
            dir.file("control"),
        );
        std::fs::write(&command_file, command)?;
        for fifo in [&stdout, &stderr, &control] {
            // SAFETY: mkfifo only reads the NUL-terminated path.
            if unsafe { libc::mkfifo(c_path(fifo)?.as_ptr(), 0o600) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Self {
            output: OutputPipes::from_fifos(&stdout, &stderr)?,
            control: ControlFifo::open(&control)?,
            files: ControlFiles {
                command: dirs.process_view_of(&command_file),
                stdout: dirs.process_view_of(&stdout),
                stderr: dirs.process_view_of(&stderr),
                control: dirs.process_view_of(&control),
            },
            dir,
        })
    }

    /// Writes the script that runs the command and returns the shell's name for it.
    pub fn write_script(&self, dirs: &SandboxDirs, script: &str) -> io::Result<String> {
        let path = self.dir.file("script");
        std::fs::write(&path, script)?;
        Ok(dirs.process_view_of(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::ControlMessage;

    #[test]
    fn parses_control_lines() {
        assert_eq!(
            ControlMessage::parse("pid 42\n"),
            Some(ControlMessage::Pid(42))
        );
        assert_eq!(
            ControlMessage::parse("exit 130\n"),
            Some(ControlMessage::Exit(130))
        );
        assert_eq!(ControlMessage::parse("exit x\n"), None);
        assert_eq!(ControlMessage::parse("hello\n"), None);
    }
}
