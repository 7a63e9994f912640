//! Uploads and downloads through the bridge: framed bodies (docs/file-transfer.md) sealed and
//! opened frame by frame, so neither side ever holds a whole file.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use super::transport::{BodyStream, HttpBody, ResponseBody, Transport};
use super::{BridgeClient, ClientError, next_chunk, read_whole};
use crate::api::{DownloadRequest, ErrorBody, ErrorCode, UploadResult, UploadTarget};
use crate::auth::{
    FRAMES_CONTENT_TYPE, Frame, FrameError, FrameOpener, FrameSealer, ResponseSignature,
};
use crate::routes::Route;

impl<T: Transport> BridgeClient<T> {
    /// Uploads what `source` yields to `target` within `limit`. A failing source aborts the
    /// upload (the bridge then lays nothing down) and is reported as [`ClientError::Source`].
    pub async fn upload(
        &self,
        target: &UploadTarget,
        source: BodyStream,
        limit: Duration,
    ) -> Result<UploadResult, ClientError> {
        let deadline = Instant::now() + limit;
        let route = Route::Upload;
        let query = target.to_query();
        let (mut prepared, seed) = self.prepare_streaming(route.method(), &route.path(), &query)?;
        prepared.set_header("Content-Type", Some(FRAMES_CONTENT_TYPE));
        let failure = Arc::new(Mutex::new(None));
        let framed = Sealed {
            source,
            sealer: FrameSealer::new(self.signer.secret().clone(), seed),
            ended: false,
            failure: Arc::clone(&failure),
        };
        let sent = self
            .transmit_body(&prepared, HttpBody::Stream(Box::pin(framed)), limit)
            .await;
        let source_failure = || {
            failure
                .lock()
                .ok()
                .and_then(|mut failure| failure.take())
                .map(ClientError::Source)
        };
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Err(source_failure().unwrap_or(error)),
        };
        let raw = read_whole(response, deadline, limit).await?;
        if let Some(error) = source_failure() {
            return Err(error);
        }
        if !self.is_authentic(&prepared, &raw) || raw.status != 200 {
            return Err(self.error_of(&prepared, &raw));
        }
        serde_json::from_slice(&raw.body).map_err(|error| ClientError::NotTheBridge {
            status: raw.status,
            body_start: format!("unexpected JSON: {error}"),
        })
    }

    /// Starts a download, to be read with [`Download::next_chunk`] within `limit` in all.
    /// Failures before the first byte are ordinary (signed) answers.
    pub async fn download(
        &self,
        request: &DownloadRequest,
        limit: Duration,
    ) -> Result<Download<T::Body>, ClientError> {
        let deadline = Instant::now() + limit;
        let body = serde_json::to_vec(request)
            .map_err(|error| ClientError::Request(format!("the body does not encode: {error}")))?;
        let route = Route::Download;
        let prepared = self.prepare(route.method(), &route.path(), "", &body)?;
        let response = self.transmit(&prepared, limit).await?;
        let seed = response.signature.as_deref().and_then(|signature| {
            ResponseSignature::verify_streaming(
                self.signer.secret(),
                prepared.nonce.as_str(),
                response.status,
                signature,
            )
        });
        let Some(seed) = seed.filter(|_| response.status == 200) else {
            let raw = read_whole(response, deadline, limit).await?;
            return Err(self.error_of(&prepared, &raw));
        };
        Ok(Download {
            body: response.body,
            opener: FrameOpener::new(self.signer.secret().clone(), seed),
            pending: VecDeque::new(),
            deadline,
            limit,
            bytes: 0,
        })
    }
}

/// A download's bytes, each chunk verified before it is handed out.
#[derive(Debug)]
pub struct Download<B> {
    body: B,
    opener: FrameOpener,
    pending: VecDeque<Vec<u8>>,
    deadline: Instant,
    limit: Duration,
    bytes: u64,
}

impl<B: ResponseBody> Download<B> {
    /// The next verified bytes; `None` once the bridge's end frame arrived. An error frame is the
    /// bridge's error; a body cut before its end is [`ClientError::Truncated`].
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                self.bytes += bytes.len() as u64;
                return Ok(Some(bytes));
            }
            if self.opener.is_finished() {
                return Ok(None);
            }
            let Some(chunk) = next_chunk(&mut self.body, self.deadline, self.limit).await? else {
                return Err(frame_error(FrameError::Truncated));
            };
            for frame in self.opener.push(&chunk).map_err(frame_error)? {
                match frame {
                    Frame::Data(bytes) => self.pending.push_back(bytes),
                    Frame::End => {}
                    Frame::Error(body) => return Err(error_frame(&body)),
                }
            }
        }
    }

    /// Bytes handed out so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// A cut body is a network failure; anything else means the frames are not the bridge's.
fn frame_error(error: FrameError) -> ClientError {
    match error {
        FrameError::Truncated => ClientError::Truncated,
        other => ClientError::Frames(other),
    }
}

/// The bridge's error frame, with the status its code has as a plain answer.
fn error_frame(body: &[u8]) -> ClientError {
    let status = match serde_json::from_slice::<ErrorBody>(body).map(|body| body.error) {
        Ok(ErrorCode::PathNotFound) => 404,
        Ok(ErrorCode::SandboxTimeout) => 504,
        Ok(ErrorCode::SandboxStateLost) => 409,
        _ => 502,
    };
    ClientError::signed(status, body)
}

/// A source stream sealed into frames, ending with the end frame.
struct Sealed {
    source: BodyStream,
    sealer: FrameSealer,
    ended: bool,
    /// The source's error, kept so the caller can report it instead of the aborted request.
    failure: Arc<Mutex<Option<String>>>,
}

impl Stream for Sealed {
    type Item = Result<Vec<u8>, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.source.as_mut().poll_next(context) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) if bytes.is_empty() => {}
                Poll::Ready(Some(Ok(bytes))) => {
                    return Poll::Ready(Some(Ok(self.sealer.data(&bytes))));
                }
                Poll::Ready(Some(Err(error))) => {
                    self.ended = true;
                    if let Ok(mut failure) = self.failure.lock() {
                        *failure = Some(error.to_string());
                    }
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(Some(Ok(self.sealer.end())));
                }
            }
        }
    }
}
