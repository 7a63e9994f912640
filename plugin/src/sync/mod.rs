//! Native file sync (`environmentSyncIn`, `environmentSyncOut`): the plugin reads and writes the
//! host's paths itself and moves the bytes through the bridge's `/files` routes, streamed both
//! ways. SyncIn uploads each mapping and then runs the operation's post-upload commands through
//! the same exec route as `environmentExecute`; SyncOut brings files and trees back, and every
//! tree from the (untrusted) sandbox goes through [`unpack::Unpacker`] before it reaches the host.

mod exclude;
mod pack;
mod progress;
mod unpack;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_protocol::api::{
    DownloadRequest, ExecRequest, ExecResult, SessionMode, TransferFormat, UploadTarget,
};
use bridge_protocol::client::{CallPolicy, ClientError, Download, ResponseBody};
use bridge_protocol::fields::MAX_TIMEOUT_MS;
use bridge_protocol::routes::Route;
use tokio::io::AsyncWriteExt;

use crate::client::BridgeClient;
use crate::config::ProviderConfig;
use crate::protocol::{
    PostUploadCommand, SyncFileMapping, SyncKind, SyncOperation, SyncOperationResult, SyncResult,
};
use crate::provider::EXEC_GRACE;
pub use exclude::Excludes;
use pack::{file_source, tar_source};
use progress::Progress;
pub use unpack::{UnpackError, Unpacked, Unpacker};

/// Downloaded pieces buffered between the network and the unpacking thread.
const PIECES_IN_FLIGHT: usize = 8;

/// Why a sync operation failed; the message names the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The bridge refused or failed a transfer.
    #[error("{operation}: {what}: {error}")]
    Bridge {
        /// The operation id.
        operation: String,
        /// The transfer.
        what: String,
        /// The bridge client's error.
        error: ClientError,
    },
    /// A host path could not be read or written.
    #[error("{operation}: {what}: {error}")]
    Host {
        /// The operation id.
        operation: String,
        /// The transfer.
        what: String,
        /// The OS's error.
        error: std::io::Error,
    },
    /// The sandbox sent something that is not laid down on the host.
    #[error("{operation}: {what}: {error}")]
    Refused {
        /// The operation id.
        operation: String,
        /// The transfer.
        what: String,
        /// Why.
        error: UnpackError,
    },
    /// A post-upload command did not succeed.
    #[error(
        "{operation}: post-upload command {index} ({command:?}) {outcome}; the operation stops here"
    )]
    Command {
        /// The operation id.
        operation: String,
        /// Its 1-based position.
        index: usize,
        /// The command.
        command: String,
        /// How it ended.
        outcome: String,
    },
}

/// Which way files move: `environmentSyncIn` or `environmentSyncOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host to sandbox.
    In,
    /// Sandbox to host.
    Out,
}

/// One sync call: a lease, its bridge and the environment's settings.
pub struct Sync<'a> {
    /// The bridge.
    pub client: &'a BridgeClient,
    /// The environment's settings.
    pub config: &'a ProviderConfig,
    /// The lease.
    pub lease_id: &'a str,
}

impl Sync<'_> {
    /// `environmentSyncIn`: every operation in order, fail-fast; each operation's post-upload
    /// commands run once its files are in.
    pub async fn sync_in(&self, operations: &[SyncOperation]) -> Result<SyncResult, SyncError> {
        self.each_operation(operations, Direction::In).await
    }

    /// `environmentSyncOut`: every operation in order, fail-fast, at most `syncMaxBytes` each.
    pub async fn sync_out(&self, operations: &[SyncOperation]) -> Result<SyncResult, SyncError> {
        self.each_operation(operations, Direction::Out).await
    }

    /// [`Self::sync_in`] or [`Self::sync_out`].
    pub async fn each_operation(
        &self,
        operations: &[SyncOperation],
        direction: Direction,
    ) -> Result<SyncResult, SyncError> {
        let mut results = Vec::with_capacity(operations.len());
        for operation in operations {
            let id = operation.operation_id.as_str();
            let mut result = SyncOperationResult {
                operation_id: id.to_owned(),
                ..SyncOperationResult::default()
            };
            for mapping in &operation.files {
                let (files, bytes) = match direction {
                    Direction::In => self.upload(id, mapping).await?,
                    Direction::Out => {
                        let cap = self
                            .config
                            .sync_max_bytes
                            .saturating_sub(result.bytes_transferred);
                        let unpacked = self.download(id, mapping, cap).await?;
                        (unpacked.files, unpacked.bytes)
                    }
                };
                result.files_transferred += files;
                result.bytes_transferred += bytes;
            }
            if direction == Direction::In {
                for (index, command) in operation.post_upload_commands.iter().enumerate() {
                    self.run_command(id, index + 1, command).await?;
                }
            }
            results.push(result);
        }
        Ok(SyncResult {
            operations: results,
        })
    }

    fn deadline(&self) -> (u64, Duration) {
        let timeout_ms = self.config.timeout_ms.min(MAX_TIMEOUT_MS);
        (timeout_ms, Duration::from_millis(timeout_ms) + EXEC_GRACE)
    }

    /// Uploads one mapping; returns the files and bytes it held.
    async fn upload(
        &self,
        operation: &str,
        mapping: &SyncFileMapping,
    ) -> Result<(u64, u64), SyncError> {
        let what = format!(
            "uploading {} to {}",
            mapping.source_path, mapping.target_path
        );
        let host_error = |error| SyncError::Host {
            operation: operation.to_owned(),
            what: what.clone(),
            error,
        };
        let (timeout_ms, limit) = self.deadline();
        let mut progress = Progress::new(format!("{operation} sync-in {}", mapping.target_path));
        let mut target = UploadTarget {
            provider_lease_id: self.lease_id.to_owned(),
            path: mapping.target_path.clone(),
            format: TransferFormat::File,
            mode: mapping.mode.map(|mode| mode & 0o777),
            timeout_ms: Some(timeout_ms),
        };
        let (stream, counted) = match mapping.kind {
            SyncKind::File => {
                let source = file_source(Path::new(&mapping.source_path))
                    .await
                    .map_err(host_error)?;
                target.mode = target.mode.or(Some(source.mode));
                (source.stream, Counted::File(source.size))
            }
            SyncKind::Directory => {
                target.format = TransferFormat::Tar;
                let (stream, counts) = tar_source(
                    PathBuf::from(&mapping.source_path),
                    Excludes::new(&mapping.exclude),
                    mapping.follow_symlinks,
                );
                (stream, Counted::Tree(counts))
            }
        };
        let metered = futures_util::StreamExt::inspect(stream, move |piece| {
            if let Ok(piece) = piece {
                progress.advance(piece.len());
            }
        });
        let progress_label = format!("{operation} sync-in {}", mapping.target_path);
        let uploaded = self
            .client
            .upload(&target, Box::pin(metered), limit)
            .await
            .map_err(|error| SyncError::Bridge {
                operation: operation.to_owned(),
                what: what.clone(),
                error,
            })?;
        tracing::info!(
            "{progress_label}: {} bytes laid down in {} ms",
            uploaded.bytes,
            uploaded.duration_ms
        );
        Ok(match counted {
            Counted::File(size) => (1, size),
            Counted::Tree(counts) => (counts.files(), counts.bytes()),
        })
    }

    /// Runs one post-upload command through the exec route; anything but exit code 0 stops the
    /// operation.
    async fn run_command(
        &self,
        operation: &str,
        index: usize,
        command: &PostUploadCommand,
    ) -> Result<(), SyncError> {
        let timeout_ms = command
            .timeout_ms
            .unwrap_or(self.config.timeout_ms)
            .clamp(1, MAX_TIMEOUT_MS);
        let request = ExecRequest {
            provider_lease_id: self.lease_id.to_owned(),
            command: "sh".into(),
            args: vec!["-c".into(), command.command.clone()],
            cwd: Some(command.cwd.clone().unwrap_or_else(|| "/".to_owned())),
            timeout_ms: Some(timeout_ms),
            session: SessionMode::None,
            login_shell: Some(self.config.login_shell),
            ..ExecRequest::default()
        };
        let failed = |outcome: String| SyncError::Command {
            operation: operation.to_owned(),
            index,
            command: command.command.clone(),
            outcome,
        };
        let result: ExecResult = self
            .client
            .call(
                Route::Exec,
                Some(&request),
                CallPolicy::once(Duration::from_millis(timeout_ms) + EXEC_GRACE),
            )
            .await
            .map_err(|error| failed(format!("could not run: {error}")))?;
        match result.exit_code {
            Some(0) => Ok(()),
            _ if result.timed_out => Err(failed(format!("timed out after {timeout_ms} ms"))),
            code => Err(failed(format!(
                "exited with code {}: {}",
                code.map_or_else(|| "none".to_owned(), |code| code.to_string()),
                result.stderr.trim()
            ))),
        }
    }

    /// Downloads one mapping onto the host, at most `cap` bytes.
    async fn download(
        &self,
        operation: &str,
        mapping: &SyncFileMapping,
        cap: u64,
    ) -> Result<Unpacked, SyncError> {
        let what = format!(
            "downloading {} to {}",
            mapping.source_path, mapping.target_path
        );
        let bridge_error = |error| SyncError::Bridge {
            operation: operation.to_owned(),
            what: what.clone(),
            error,
        };
        let host_error = |error| SyncError::Host {
            operation: operation.to_owned(),
            what: what.clone(),
            error,
        };
        let (timeout_ms, limit) = self.deadline();
        let request = DownloadRequest {
            provider_lease_id: self.lease_id.to_owned(),
            path: mapping.source_path.clone(),
            format: match mapping.kind {
                SyncKind::File => TransferFormat::File,
                SyncKind::Directory => TransferFormat::Tar,
            },
            exclude: match mapping.kind {
                SyncKind::File => Vec::new(),
                SyncKind::Directory => mapping.exclude.clone(),
            },
            follow_symlinks: mapping.kind == SyncKind::Directory && mapping.follow_symlinks,
            timeout_ms: Some(timeout_ms),
        };
        let mut progress = Progress::new(format!("{operation} sync-out {}", mapping.source_path));
        let target = PathBuf::from(&mapping.target_path);
        let mut download = self
            .client
            .download(&request, limit)
            .await
            .map_err(bridge_error)?;
        let unpacked = match mapping.kind {
            SyncKind::File => {
                let size =
                    write_host_file(&target, mapping.mode, cap, &mut download, &mut progress)
                        .await
                        .map_err(|failure| match failure {
                            HostWrite::Bridge(error) => bridge_error(error),
                            HostWrite::Host(error) => host_error(error),
                            HostWrite::TooLarge(size) => SyncError::Refused {
                                operation: operation.to_owned(),
                                what: what.clone(),
                                error: UnpackError::TooLarge {
                                    member: mapping.source_path.clone(),
                                    size,
                                    cap,
                                },
                            },
                        })?;
                Unpacked {
                    files: 1,
                    bytes: size,
                }
            }
            SyncKind::Directory => {
                create_directory(&target, mapping.mode)
                    .await
                    .map_err(host_error)?;
                let unpacker = Unpacker::new(&target, cap).map_err(|error| SyncError::Refused {
                    operation: operation.to_owned(),
                    what: what.clone(),
                    error,
                })?;
                let (sender, receiver) = std::sync::mpsc::sync_channel(PIECES_IN_FLIGHT);
                let unpacking = tokio::task::spawn_blocking(move || {
                    unpacker.unpack(PieceReader {
                        receiver,
                        piece: Vec::new(),
                        offset: 0,
                    })
                });
                let mut failure = None;
                loop {
                    match download.next_chunk().await {
                        Ok(Some(chunk)) => {
                            progress.advance(chunk.len());
                            if sender.send(chunk).is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            failure = Some(error);
                            break;
                        }
                    }
                }
                drop(sender);
                let unpacked = unpacking.await.map_err(|error| {
                    host_error(std::io::Error::other(format!(
                        "the unpacking thread failed: {error}"
                    )))
                })?;
                if let Some(error) = failure {
                    return Err(bridge_error(error));
                }
                unpacked.map_err(|error| SyncError::Refused {
                    operation: operation.to_owned(),
                    what: what.clone(),
                    error,
                })?
            }
        };
        progress.finish();
        Ok(unpacked)
    }
}

/// What an upload counts: a file's size, or what the tar walk found.
enum Counted {
    File(u64),
    Tree(std::sync::Arc<pack::TarCounts>),
}

/// Why a downloaded file could not be written.
enum HostWrite {
    Bridge(ClientError),
    Host(std::io::Error),
    TooLarge(u64),
}

/// Writes `download` to `target` through a temporary file beside it, renamed into place once
/// complete; nothing is left behind on failure.
async fn write_host_file(
    target: &Path,
    mode: Option<u32>,
    cap: u64,
    download: &mut Download<impl ResponseBody>,
    progress: &mut Progress,
) -> Result<u64, HostWrite> {
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(HostWrite::Host)?;
    }
    let partial = partial_path(target);
    let written = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(HostWrite::Host)?;
        let mut size = 0u64;
        while let Some(chunk) = download.next_chunk().await.map_err(HostWrite::Bridge)? {
            progress.advance(chunk.len());
            size += chunk.len() as u64;
            if size > cap {
                return Err(HostWrite::TooLarge(size));
            }
            file.write_all(&chunk).await.map_err(HostWrite::Host)?;
        }
        file.flush().await.map_err(HostWrite::Host)?;
        let mode = mode.unwrap_or(0o644) & 0o777;
        tokio::fs::set_permissions(&partial, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .await
            .map_err(HostWrite::Host)?;
        tokio::fs::rename(&partial, target)
            .await
            .map_err(HostWrite::Host)?;
        Ok(size)
    }
    .await;
    if written.is_err() {
        drop(tokio::fs::remove_file(&partial).await);
    }
    written
}

/// `<target>.paperclip-partial-<pid>`, beside the target so the rename stays on one filesystem.
fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(format!(".paperclip-partial-{}", std::process::id()));
    target.with_file_name(name)
}

/// Creates a directory target (and its parents), with `mode` when one is given.
async fn create_directory(target: &Path, mode: Option<u32>) -> std::io::Result<()> {
    tokio::fs::create_dir_all(target).await?;
    if let Some(mode) = mode {
        tokio::fs::set_permissions(
            target,
            std::os::unix::fs::PermissionsExt::from_mode(mode & 0o777),
        )
        .await?;
    }
    Ok(())
}

/// Reads the pieces a download hands over, blocking until the next one arrives.
struct PieceReader {
    receiver: std::sync::mpsc::Receiver<Vec<u8>>,
    piece: Vec<u8>,
    offset: usize,
}

impl std::io::Read for PieceReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.piece.len() {
            match self.receiver.recv() {
                Ok(piece) => {
                    self.piece = piece;
                    self.offset = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let available = &self.piece[self.offset..];
        let count = available.len().min(buffer.len());
        buffer[..count].copy_from_slice(&available[..count]);
        self.offset += count;
        Ok(count)
    }
}
