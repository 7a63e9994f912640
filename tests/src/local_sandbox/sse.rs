//! Server-sent events exactly as the container writes them: `data: <json>\n\n` and nothing else
//! (no `event:`/`id:` lines), fed through a small bounded channel so a slow reader slows the
//! producer down instead of growing a buffer.

use std::convert::Infallible;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;

/// Events buffered between producer and HTTP body; with output chunks of at most 64 KiB this bounds
/// a stream's memory whatever the command writes.
const BUFFERED_EVENTS: usize = 8;

/// Encodes one event. The events are plain structs, so serialisation cannot fail.
pub fn frame(event: &impl Serialize) -> Bytes {
    let mut frame = b"data: ".to_vec();
    frame.extend(serde_json::to_vec(event).unwrap_or_default());
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

/// The producing side of an SSE response.
#[derive(Debug)]
pub struct EventSender(mpsc::Sender<Bytes>);

impl EventSender {
    /// Sends one event; `false` once the client has gone away.
    pub async fn send(&self, event: &impl Serialize) -> bool {
        self.0.send(frame(event)).await.is_ok()
    }
}

/// A `text/event-stream` response whose events come from `produce`, run as its own task so that it
/// finishes its cleanup even if the client disconnects.
pub fn response<F, Fut>(produce: F) -> Response
where
    F: FnOnce(EventSender) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, receiver) = mpsc::channel(BUFFERED_EVENTS);
    tokio::spawn(produce(EventSender(sender)));
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let frame = receiver.recv().await?;
        Some((Ok::<_, Infallible>(frame), receiver))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;
    use serde_json::json;

    use super::frame;

    #[test]
    fn frames_are_one_data_line_and_a_blank_line() {
        let event = json!({"type": "stdout", "data": "a\nb\r\n"});
        assert_eq!(
            frame(&event),
            Bytes::from_static(b"data: {\"data\":\"a\\nb\\r\\n\",\"type\":\"stdout\"}\n\n")
        );
    }
}
