//! Host paths as upload sources: a file's bytes, or a directory as a tar stream built on a
//! blocking thread. Either is read a piece at a time, so memory stays bounded by a few pieces.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bridge_protocol::client::BodyStream;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::exclude::Excludes;

/// Bytes per read of a source.
const PIECE: usize = 1 << 20;
/// Pieces buffered between the tar thread and the upload.
const PIECES_IN_FLIGHT: usize = 4;
/// Deepest directory a tar walk enters (a symlink loop under `followSymlinks` ends here).
const MAX_DEPTH: usize = 256;

/// A host file to upload.
pub struct FileSource {
    /// Its bytes.
    pub stream: BodyStream,
    /// Its size when opened.
    pub size: u64,
    /// Its permission bits.
    pub mode: u32,
}

/// Opens the host file at `path`.
pub async fn file_source(path: &Path) -> io::Result<FileSource> {
    let file = tokio::fs::File::open(path).await?;
    let metadata = file.metadata().await?;
    if !metadata.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut piece = vec![0; PIECE];
        match file.read(&mut piece).await {
            Ok(0) => None,
            Ok(read) => {
                piece.truncate(read);
                Some((Ok(piece), Some(file)))
            }
            Err(error) => Some((Err(error), None)),
        }
    });
    Ok(FileSource {
        stream: Box::pin(stream),
        size: metadata.len(),
        mode: metadata.permissions().mode() & 0o777,
    })
}

/// What a tar stream of a directory held, counted as it is built.
#[derive(Debug, Default)]
pub struct TarCounts {
    files: AtomicU64,
    bytes: AtomicU64,
}

impl TarCounts {
    /// Regular files archived so far.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Their bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The directory `root` as a tar stream of its content (names relative to it), leaving out what
/// `excludes` matches; with `follow_symlinks`, what links point to instead of the links.
pub fn tar_source(
    root: PathBuf,
    excludes: Excludes,
    follow_symlinks: bool,
) -> (BodyStream, Arc<TarCounts>) {
    let (sender, receiver) = mpsc::channel(PIECES_IN_FLIGHT);
    let counts = Arc::new(TarCounts::default());
    let thread_counts = Arc::clone(&counts);
    tokio::task::spawn_blocking(move || {
        let writer = PieceWriter {
            sender: sender.clone(),
            piece: Vec::with_capacity(PIECE),
        };
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(follow_symlinks);
        let walk = Walk {
            excludes: &excludes,
            follow_symlinks,
            counts: &thread_counts,
        };
        let built = walk
            .directory(&mut builder, &root, "", 0)
            .and_then(|()| builder.into_inner())
            .and_then(PieceWriter::finish);
        if let Err(error) = built {
            let message = format!("archiving {}: {error}", root.display());
            // The upload may already be gone; then nobody is left to tell.
            drop(sender.blocking_send(Err(io::Error::other(message))));
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|piece| (piece, receiver))
    });
    (Box::pin(stream), counts)
}

/// One tar walk's settings.
struct Walk<'a> {
    excludes: &'a Excludes,
    follow_symlinks: bool,
    counts: &'a TarCounts,
}

impl Walk<'_> {
    /// Appends the entries of `dir` (whose name in the archive is `prefix`), sorted by name.
    fn directory(
        &self,
        builder: &mut tar::Builder<PieceWriter>,
        dir: &Path,
        prefix: &str,
        depth: usize,
    ) -> io::Result<()> {
        if depth > MAX_DEPTH {
            return Err(io::Error::other(format!(
                "{} is more than {MAX_DEPTH} directories deep (a symlink loop?)",
                dir.display()
            )));
        }
        let mut names: Vec<_> = fs::read_dir(dir)?
            .map(|entry| entry.map(|entry| entry.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let name = name.to_string_lossy();
            let member = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if self.excludes.excludes(&member) {
                continue;
            }
            let metadata = if self.follow_symlinks {
                fs::metadata(&path)
            } else {
                fs::symlink_metadata(&path)
            };
            let metadata = match metadata {
                Ok(metadata) => metadata,
                Err(error) if self.follow_symlinks && error.kind() == io::ErrorKind::NotFound => {
                    tracing::warn!(path = %path.display(), "skipping a dangling symlink");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let kind = metadata.file_type();
            if kind.is_dir() {
                builder.append_path_with_name(&path, &member)?;
                self.directory(builder, &path, &member, depth + 1)?;
            } else if kind.is_file() || kind.is_symlink() {
                builder.append_path_with_name(&path, &member)?;
                if kind.is_file() {
                    self.counts.files.fetch_add(1, Ordering::Relaxed);
                    self.counts
                        .bytes
                        .fetch_add(metadata.len(), Ordering::Relaxed);
                }
            } else {
                tracing::warn!(path = %path.display(), "skipping a special file");
            }
        }
        Ok(())
    }
}

/// Collects tar output into pieces and hands them to the upload (blocking while it is behind).
struct PieceWriter {
    sender: mpsc::Sender<io::Result<Vec<u8>>>,
    piece: Vec<u8>,
}

impl PieceWriter {
    fn send_piece(&mut self) -> io::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.piece, Vec::with_capacity(PIECE));
        self.sender
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::other("the upload stopped reading"))
    }

    fn finish(mut self) -> io::Result<()> {
        self.send_piece()
    }
}

impl Write for PieceWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = PIECE - self.piece.len();
        let taken = bytes.len().min(room);
        self.piece.extend_from_slice(&bytes[..taken]);
        if self.piece.len() == PIECE {
            self.send_piece()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    async fn collect(mut stream: BodyStream) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        while let Some(piece) = stream.next().await {
            bytes.extend(piece?);
        }
        Ok(bytes)
    }

    #[tokio::test]
    async fn a_file_streams_whole_with_its_mode() {
        let scratch = tempfile::tempdir().expect("scratch");
        let path = scratch.path().join("blob");
        let content: Vec<u8> = (0..=255u8).cycle().take(PIECE * 2 + 5).collect();
        fs::write(&path, &content).expect("file");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).expect("mode");
        let source = file_source(&path).await.expect("opens");
        assert_eq!((source.size, source.mode), (content.len() as u64, 0o750));
        assert_eq!(collect(source.stream).await.expect("reads"), content);
        let Err(error) = file_source(scratch.path()).await else {
            panic!("a directory is not a file source");
        };
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[tokio::test]
    async fn a_directory_becomes_a_tar_of_its_content_minus_excludes() {
        let scratch = tempfile::tempdir().expect("scratch");
        let root = scratch.path().join("w");
        fs::create_dir_all(root.join("src/node_modules/x")).expect("dirs");
        fs::write(root.join("src/main.rs"), "fn main() {}\n").expect("file");
        fs::write(root.join("src/node_modules/x/i.js"), "x").expect("file");
        fs::write(root.join("big.bin"), vec![9u8; PIECE + 3]).expect("file");
        std::os::unix::fs::symlink("src/main.rs", root.join("link")).expect("symlink");
        let excludes = Excludes::new(&["node_modules".to_owned()]);
        let (stream, counts) = tar_source(root.clone(), excludes, false);
        let archive = collect(stream).await.expect("archive");
        assert_eq!((counts.files(), counts.bytes()), (2, 13 + PIECE as u64 + 3));
        let mut names = Vec::new();
        for entry in tar::Archive::new(archive.as_slice())
            .entries()
            .expect("tar")
        {
            let entry = entry.expect("entry");
            names.push((
                entry.path().expect("path").display().to_string(),
                entry.header().entry_type(),
            ));
        }
        assert_eq!(
            names,
            [
                ("big.bin".to_owned(), tar::EntryType::Regular),
                ("link".to_owned(), tar::EntryType::Symlink),
                ("src".to_owned(), tar::EntryType::Directory),
                ("src/main.rs".to_owned(), tar::EntryType::Regular),
            ]
        );
        let (followed, counts) = tar_source(root, Excludes::default(), true);
        collect(followed).await.expect("archive");
        assert_eq!(
            counts.files(),
            4,
            "the link is archived as the file it names"
        );
    }
}
