//! Reading a byte stream in large pieces.
//!
//! A stream's default reader hands out whatever chunks the runtime produced: behind `wrangler dev`
//! that is 4 KiB each, about 26,000 reads (each a promise round trip into JavaScript) for
//! 100 MiB, which took more time than handling the bytes. A BYOB reader with a 256 KiB buffer
//! takes everything that has arrived in one read instead: a live stream still gets each piece of
//! output as soon as it arrives ([`ByteReader::prompt`]), and a body that only needs to be read
//! through (a request body, a download's output) waits for a full buffer per read with
//! workerd's `readAtLeast` ([`ByteReader::filling`]). A read of a live stream gets one upstream
//! write, about 30 KiB, whatever the buffer: filled reads are the only way to larger pieces.

use js_sys::{ArrayBuffer, Function, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::sandbox_stub::js_message;
use crate::error::BridgeError;

/// Bytes asked for per read.
const PIECE: u32 = 256 * 1024;

/// A byte stream read with a BYOB reader.
pub struct ByteReader {
    reader: JsValue,
    /// `readAtLeast`, for a reader that fills its buffer.
    read_at_least: Option<Function>,
    read: Function,
    /// The read under way, kept here so that a caller who stops waiting for it (a `select!`
    /// whose other branch won) loses nothing: the next call waits for the same read.
    in_flight: Option<JsFuture>,
    /// The buffer the last read handed back, reused by the next.
    spare: Option<ArrayBuffer>,
}

impl ByteReader {
    /// A reader that hands out what has arrived, up to 256 KiB, without waiting for more: for
    /// output that must reach the client as it is produced.
    pub fn prompt(stream: &JsValue) -> Result<Self, JsValue> {
        Self::new(stream, false)
    }

    /// A reader that waits for 256 KiB per read (where the runtime has `readAtLeast`), unless
    /// the stream ends first: for a body that is only read through.
    pub fn filling(stream: &JsValue) -> Result<Self, JsValue> {
        Self::new(stream, true)
    }

    fn new(stream: &JsValue, filling: bool) -> Result<Self, JsValue> {
        let options = Object::new();
        Reflect::set(&options, &"mode".into(), &"byob".into())?;
        let get_reader: Function = method(stream, "getReader")?;
        let reader = get_reader.call1(stream, &options)?;
        let read_at_least = if filling {
            method(&reader, "readAtLeast").ok()
        } else {
            None
        };
        let read = method(&reader, "read")?;
        Ok(Self {
            reader,
            read_at_least,
            read,
            in_flight: None,
            spare: None,
        })
    }

    /// The next piece; `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, JsValue> {
        if self.in_flight.is_none() {
            let read = self.start_read()?;
            self.in_flight = Some(read);
        }
        let Some(read) = self.in_flight.as_mut() else {
            return Ok(None);
        };
        let result = read.await;
        self.in_flight = None;
        let result = result?;
        let value = Reflect::get(&result, &"value".into())?;
        let done = Reflect::get(&result, &"done".into())?
            .as_bool()
            .unwrap_or(true);
        let Ok(view) = value.dyn_into::<Uint8Array>() else {
            return Ok(None);
        };
        let bytes = view.to_vec();
        self.spare = Some(view.buffer());
        if done && bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    fn start_read(&mut self) -> Result<JsFuture, JsValue> {
        let buffer = match self.spare.take() {
            Some(spare) => Uint8Array::new(&spare),
            None => Uint8Array::new_with_length(PIECE),
        };
        let promise = match &self.read_at_least {
            Some(read_at_least) => {
                read_at_least.call2(&self.reader, &JsValue::from(buffer.length()), &buffer)
            }
            None => self.read.call1(&self.reader, &buffer),
        }?;
        Ok(JsFuture::from(js_sys::Promise::from(promise)))
    }
}

fn method(target: &JsValue, name: &str) -> Result<Function, JsValue> {
    Reflect::get(target, &name.into())?
        .dyn_into::<Function>()
        .map_err(|_| JsValue::from_str(&format!("the stream has no {name}()")))
}

/// The error of a request body that could not be read (the client went away mid-upload).
pub fn unreadable_body(error: &JsValue) -> BridgeError {
    BridgeError::InvalidRequest(format!(
        "the upload body could not be read: {}",
        js_message(error)
    ))
}
