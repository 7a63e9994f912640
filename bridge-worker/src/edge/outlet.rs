//! A streamed response body that wasm writes to directly (`js/outlet.js`).
//!
//! `Response::from_stream` hands every chunk through a channel, a task wake-up and a `pull`
//! promise of `wasm-streams`, in the thread that also parses the output (`docs/performance.md`
//! has the profile). An [`Outlet`] write is one copy out of wasm memory and one `enqueue`, with
//! the queue bounded in bytes.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen_futures::JsFuture;
use worker::{Headers, Response, ResponseBody};

#[wasm_bindgen(module = "/js/outlet.js")]
extern "C" {
    /// The JavaScript side: a `ReadableStream` and its controller.
    #[wasm_bindgen(js_name = Outlet)]
    #[derive(Clone)]
    type JsOutlet;

    #[wasm_bindgen(constructor, js_class = Outlet)]
    fn new(high_water_mark: f64) -> JsOutlet;

    #[wasm_bindgen(method, getter, js_class = Outlet)]
    fn stream(this: &JsOutlet) -> worker::web_sys::ReadableStream;

    #[wasm_bindgen(method, js_class = Outlet)]
    fn write(this: &JsOutlet, bytes: &[u8]) -> bool;

    #[wasm_bindgen(method, js_class = Outlet)]
    fn room(this: &JsOutlet) -> js_sys::Promise;

    #[wasm_bindgen(method, getter, js_class = Outlet)]
    fn done(this: &JsOutlet) -> bool;

    #[wasm_bindgen(method, js_class = Outlet)]
    fn close(this: &JsOutlet);
}

/// The writing end of a response body; clones write to the same body.
#[derive(Clone)]
pub struct Outlet(JsOutlet);

/// The body takes no more writes: its reader has gone (the client disconnected), or it was
/// closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderGone;

impl Outlet {
    /// A body whose queue holds up to `high_water_bytes` before a write waits.
    pub fn new(high_water_bytes: usize) -> Self {
        Self(JsOutlet::new(high_water_bytes as f64))
    }

    /// A response with `headers` whose body is this outlet's stream.
    pub fn response(&self, headers: Headers) -> worker::Result<Response> {
        Response::from_body(ResponseBody::Stream(self.0.stream()))
            .map(|response| response.with_headers(headers))
    }

    /// Queues `bytes`, then waits while the queue is full.
    pub async fn write(&self, bytes: &[u8]) -> Result<(), ReaderGone> {
        if self.0.done() {
            return Err(ReaderGone);
        }
        if !self.0.write(bytes) {
            // `room` never rejects.
            let _ = JsFuture::from(self.0.room()).await;
        }
        if self.0.done() {
            return Err(ReaderGone);
        }
        Ok(())
    }

    /// Ends the body after what was queued.
    pub fn close(&self) {
        self.0.close();
    }
}
