//! A reader in front of the tar parser that follows the archive's blocks and refuses header
//! extensions (GNU long names and links, PAX records) larger than [`MAX_EXTENSION`] before they
//! are read: the `tar` crate buffers an extension whole, so an untrusted archive could otherwise
//! make the host allocate whatever size its header claims.

use std::io::{self, Read};

/// Largest extension accepted: far beyond any real path (PATH_MAX is 4 KiB).
pub const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: usize = 512;

/// Where in the archive the next byte is.
enum State {
    /// Collecting a header block (bytes so far).
    Header(usize),
    /// Inside an extension's content (kept when it is PAX, for its `size` record), then padding.
    Extension {
        remaining: u64,
        padding: u64,
        pax: Option<Vec<u8>>,
    },
    /// Inside a member's data and padding.
    Data(u64),
    /// Past the end, or past a member whose layout this guard does not follow (sparse files,
    /// which the unpacker refuses as soon as the parser reaches them).
    Unchecked,
}

/// Passes an archive through unchanged, failing on an oversized extension header.
pub struct ExtensionGuard<R> {
    inner: R,
    state: State,
    header: [u8; BLOCK],
    /// A PAX `size` for the next member.
    pax_size: Option<u64>,
}

impl<R: Read> ExtensionGuard<R> {
    /// Guards `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: State::Header(0),
            header: [0; BLOCK],
            pax_size: None,
        }
    }

    /// Follows `bytes`, which were just read and are handed on unchanged.
    fn follow(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Unchecked => return Ok(()),
                State::Header(filled) => {
                    let take = (BLOCK - *filled).min(bytes.len());
                    self.header[*filled..*filled + take].copy_from_slice(&bytes[..take]);
                    *filled += take;
                    bytes = &bytes[take..];
                    if *filled == BLOCK {
                        self.state = self.after_header()?;
                    }
                }
                State::Extension {
                    remaining,
                    padding,
                    pax,
                } => {
                    let in_content = (*remaining).min(bytes.len() as u64) as usize;
                    if let Some(pax) = pax {
                        pax.extend_from_slice(&bytes[..in_content]);
                    }
                    *remaining -= in_content as u64;
                    bytes = &bytes[in_content..];
                    let in_padding = (*padding).min(bytes.len() as u64) as usize;
                    *padding -= in_padding as u64;
                    bytes = &bytes[in_padding..];
                    if *remaining == 0 && *padding == 0 {
                        if let Some(pax) = pax.take() {
                            self.pax_size = pax_size(&pax);
                        }
                        self.state = State::Header(0);
                    }
                }
                State::Data(remaining) => {
                    let skip = (*remaining).min(bytes.len() as u64) as usize;
                    *remaining -= skip as u64;
                    bytes = &bytes[skip..];
                    if *remaining == 0 {
                        self.state = State::Header(0);
                    }
                }
            }
        }
        Ok(())
    }

    /// The state after a complete header block.
    fn after_header(&mut self) -> io::Result<State> {
        let header = &self.header;
        if header.iter().all(|&byte| byte == 0) {
            return Ok(State::Unchecked);
        }
        let size = header_size(header)
            .ok_or_else(|| io::Error::other("a tar header has an unreadable size"))?;
        match header[156] {
            kind @ (b'L' | b'K' | b'x' | b'g') => {
                if size > MAX_EXTENSION {
                    return Err(io::Error::other(format!(
                        "a tar header extension of {size} bytes (at most {MAX_EXTENSION} are accepted)"
                    )));
                }
                Ok(State::Extension {
                    remaining: size,
                    padding: padding(size),
                    pax: (kind == b'x').then(Vec::new),
                })
            }
            b'S' => Ok(State::Unchecked),
            _ => {
                let size = self.pax_size.take().unwrap_or(size);
                Ok(match size + padding(size) {
                    0 => State::Header(0),
                    total => State::Data(total),
                })
            }
        }
    }
}

impl<R: Read> Read for ExtensionGuard<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.follow(&buffer[..read])?;
        Ok(read)
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The size field: octal, or base-256 when its first byte has the high bit set.
fn header_size(header: &[u8; BLOCK]) -> Option<u64> {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x7f), |size, &byte| {
                size.checked_mul(256).map(|size| size + u64::from(byte))
            });
    }
    let digits: String = field
        .iter()
        .map(|&byte| char::from(byte))
        .filter(|character| !matches!(character, '\0' | ' '))
        .collect();
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(&digits, 8).ok()
}

/// The `size` record of PAX extension content (`<length> size=<decimal>\n` among others).
fn pax_size(content: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(content)
        .lines()
        .filter_map(|record| record.split_once(' ').map(|(_, pair)| pair))
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "size")
        .and_then(|(_, value)| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn read_through(archive: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut guard = ExtensionGuard::new(archive);
        let mut piece = [0u8; 333];
        loop {
            let read = guard.read(&mut piece)?;
            if read == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&piece[..read]);
        }
    }

    fn gnu_tar(format: &str, setup: impl FnOnce(&std::path::Path)) -> Vec<u8> {
        let scratch = tempfile::tempdir().expect("scratch");
        setup(scratch.path());
        let output = Command::new("tar")
            .args([&format!("--format={format}"), "-cf", "-", "-C"])
            .arg(scratch.path())
            .arg(".")
            .output()
            .expect("tar");
        assert!(output.status.success());
        output.stdout
    }

    #[test]
    fn real_archives_pass_unchanged_long_names_and_pax_sizes_included() {
        let long = "d".repeat(120);
        for format in ["gnu", "pax"] {
            let archive = gnu_tar(format, |root| {
                std::fs::create_dir_all(root.join(&long)).expect("dir");
                std::fs::write(root.join(&long).join("f"), vec![3u8; 70_000]).expect("file");
                std::fs::write(root.join("small"), "x").expect("file");
            });
            assert_eq!(read_through(&archive).expect(format), archive, "{format}");
        }
    }

    #[test]
    fn an_oversized_extension_is_refused_before_its_content() {
        for kind in [b'L', b'K', b'x', b'g'] {
            let mut header = [0u8; BLOCK];
            header[..4].copy_from_slice(b"name");
            header[124..136].copy_from_slice(b"00010000000\0");
            header[156] = kind;
            let error = read_through(&header).expect_err("refused");
            assert!(error.to_string().contains("2097152 bytes"), "{error}");
        }
    }

    #[test]
    fn sizes_parse_in_both_encodings() {
        let mut header = [0u8; BLOCK];
        header[124..136].copy_from_slice(b"00000001750\0");
        assert_eq!(header_size(&header), Some(1000));
        header[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(header_size(&header), Some(1 << 32));
        assert_eq!(
            pax_size(b"30 mtime=1.5\n20 size=123456789\n"),
            Some(123_456_789)
        );
        assert_eq!(pax_size(b"18 path=a/b/c\n"), None);
    }
}
