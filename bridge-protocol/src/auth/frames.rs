//! `PCB1-FRAMES`: bodies that are authenticated as they stream (docs/file-transfer.md).
//!
//! A body hash in the request signature would force the sender to read a whole upload before
//! sending its first byte, and the receiver to buffer it before trusting any. Instead the body is a
//! chain of frames, each carrying an HMAC over its payload's hash and the previous frame's tag; the
//! first frame chains from the request (or response) signature, which covers the literal
//! [`STREAMING_BODY`] in place of a hash. So every frame is verified the moment it arrives, frames
//! cannot be reordered, dropped, replayed into another request or cut off unnoticed, and memory is
//! bounded by one frame on both sides.

use super::SecretKey;
use super::canonical::sha256;

/// Value of `X-PCB-Content-SHA256` (and the canonical string's last line) for a framed body.
pub const STREAMING_BODY: &str = "STREAMING-PCB1-FRAMES";
/// `Content-Type` of a framed body.
pub const FRAMES_CONTENT_TYPE: &str = "application/vnd.pcb.frames";
/// Largest payload of one frame; a receiver refuses longer frames before reading them.
pub const MAX_FRAME_PAYLOAD: usize = 1 << 20;

/// The SHA-256 that a frame's tag covers its payload by. It is the one step of framing whose cost
/// grows with the body, so a runtime with a faster digest than this crate's [`sha256`] (the
/// Worker's native one) supplies it; any correct SHA-256 gives the same frames.
pub type PayloadDigest = fn(&[u8]) -> [u8; 32];

/// Kind byte, then the payload length as a big-endian `u32`.
const HEADER_LEN: usize = 5;
/// HMAC-SHA256 tag after each payload.
const TAG_LEN: usize = 32;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Body bytes (`D`).
    Data,
    /// The end: everything was sent (`E`, empty payload).
    End,
    /// The sender gave up; the payload is a JSON error body (`X`, responses only).
    Error,
}

impl FrameKind {
    fn byte(self) -> u8 {
        match self {
            Self::Data => b'D',
            Self::End => b'E',
            Self::Error => b'X',
        }
    }

    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'D' => Some(Self::Data),
            b'E' => Some(Self::End),
            b'X' => Some(Self::Error),
            _ => None,
        }
    }
}

/// A verified frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Body bytes.
    Data(Vec<u8>),
    /// The body is complete.
    End,
    /// The sender's error body (JSON).
    Error(Vec<u8>),
}

/// Why a framed body is refused; nothing after the first failure is trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame's tag does not chain from the previous one.
    #[error("frame {index} of the body is not authentic (bad tag)")]
    BadTag {
        /// 0-based position of the frame.
        index: u64,
    },
    /// An unknown kind byte.
    #[error("frame {index} of the body has an unknown kind byte 0x{byte:02x}")]
    UnknownKind {
        /// 0-based position of the frame.
        index: u64,
        /// The byte received.
        byte: u8,
    },
    /// A frame longer than [`MAX_FRAME_PAYLOAD`].
    #[error(
        "frame {index} of the body announces {length} bytes; at most {MAX_FRAME_PAYLOAD} are allowed"
    )]
    TooLong {
        /// 0-based position of the frame.
        index: u64,
        /// The announced length.
        length: u64,
    },
    /// An end frame with a payload.
    #[error("frame {index} of the body is an end frame with a payload")]
    EndWithPayload {
        /// 0-based position of the frame.
        index: u64,
    },
    /// Bytes after the terminal frame.
    #[error("the body goes on after its terminal frame")]
    TrailingBytes,
    /// The body ended before a terminal frame.
    #[error("the body ended before its end frame: it was cut off")]
    Truncated,
}

/// The message a frame's tag is the HMAC of: `PCB1-FRAME`, the previous tag, the kind, the
/// payload's length and its hash, as lines.
fn canonical(
    previous: &[u8; TAG_LEN],
    kind: FrameKind,
    payload: &[u8],
    digest: PayloadDigest,
) -> String {
    format!(
        "PCB1-FRAME\n{}\n{}\n{}\n{}",
        hex::encode(previous),
        char::from(kind.byte()),
        payload.len(),
        hex::encode(digest(payload))
    )
}

/// Writes a framed body: data in frames of at most [`MAX_FRAME_PAYLOAD`], then one terminal frame.
#[derive(Debug, Clone)]
pub struct FrameSealer {
    secret: SecretKey,
    previous: [u8; TAG_LEN],
    digest: PayloadDigest,
}

impl FrameSealer {
    /// `seed` is the signature the body belongs to: the request's (uploads) or the response's
    /// (downloads).
    pub fn new(secret: SecretKey, seed: [u8; TAG_LEN]) -> Self {
        Self {
            secret,
            previous: seed,
            digest: sha256,
        }
    }

    /// Hashes payloads with `digest` instead of this crate's SHA-256.
    pub fn with_digest(self, digest: PayloadDigest) -> Self {
        Self { digest, ..self }
    }

    /// Frames `data`, split as needed; empty data yields no frame.
    pub fn data(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + HEADER_LEN + TAG_LEN);
        for payload in data.chunks(MAX_FRAME_PAYLOAD) {
            self.seal_into(FrameKind::Data, payload, &mut out);
        }
        out
    }

    /// The end frame.
    pub fn end(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + TAG_LEN);
        self.seal_into(FrameKind::End, &[], &mut out);
        out
    }

    /// The error frame carrying `body` (a JSON error body, cut to [`MAX_FRAME_PAYLOAD`]).
    pub fn error(&mut self, body: &[u8]) -> Vec<u8> {
        let body = &body[..body.len().min(MAX_FRAME_PAYLOAD)];
        let mut out = Vec::with_capacity(body.len() + HEADER_LEN + TAG_LEN);
        self.seal_into(FrameKind::Error, body, &mut out);
        out
    }

    fn seal_into(&mut self, kind: FrameKind, payload: &[u8], out: &mut Vec<u8>) {
        let tag = self
            .secret
            .sign(canonical(&self.previous, kind, payload, self.digest).as_bytes());
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        out.push(kind.byte());
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&tag);
        self.previous = tag;
    }
}

/// Reads a framed body as it arrives, yielding only verified frames.
#[derive(Debug, Clone)]
pub struct FrameOpener {
    secret: SecretKey,
    previous: [u8; TAG_LEN],
    digest: PayloadDigest,
    pending: Vec<u8>,
    index: u64,
    finished: bool,
}

impl FrameOpener {
    /// `seed` as in [`FrameSealer::new`].
    pub fn new(secret: SecretKey, seed: [u8; TAG_LEN]) -> Self {
        Self {
            secret,
            previous: seed,
            digest: sha256,
            pending: Vec::new(),
            index: 0,
            finished: false,
        }
    }

    /// Hashes payloads with `digest` instead of this crate's SHA-256.
    pub fn with_digest(self, digest: PayloadDigest) -> Self {
        Self { digest, ..self }
    }

    /// Whether the terminal frame was read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Takes the next bytes of the body and returns the frames they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        if self.finished {
            return if bytes.is_empty() {
                Ok(Vec::new())
            } else {
                Err(FrameError::TrailingBytes)
            };
        }
        self.pending.extend_from_slice(bytes);
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some(header) = self.pending.get(start..start + HEADER_LEN) {
            let index = self.index;
            let kind = FrameKind::from_byte(header[0]).ok_or(FrameError::UnknownKind {
                index,
                byte: header[0],
            })?;
            let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if length > MAX_FRAME_PAYLOAD {
                return Err(FrameError::TooLong {
                    index,
                    length: length as u64,
                });
            }
            if kind == FrameKind::End && length != 0 {
                return Err(FrameError::EndWithPayload { index });
            }
            let payload_start = start + HEADER_LEN;
            let tag_start = payload_start + length;
            let Some(received) = self.pending.get(tag_start..tag_start + TAG_LEN) else {
                break;
            };
            let payload = &self.pending[payload_start..tag_start];
            let message = canonical(&self.previous, kind, payload, self.digest);
            if !self.secret.verify(message.as_bytes(), received) {
                return Err(FrameError::BadTag { index });
            }
            self.previous.copy_from_slice(received);
            self.index += 1;
            start = tag_start + TAG_LEN;
            match kind {
                FrameKind::Data => frames.push(Frame::Data(payload.to_vec())),
                FrameKind::End | FrameKind::Error => {
                    frames.push(if kind == FrameKind::End {
                        Frame::End
                    } else {
                        Frame::Error(payload.to_vec())
                    });
                    self.finished = true;
                    if start != self.pending.len() {
                        return Err(FrameError::TrailingBytes);
                    }
                    break;
                }
            }
        }
        self.pending.drain(..start);
        Ok(frames)
    }

    /// Call when the body ended: an error unless the terminal frame was read.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.finished {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests;
