//! Reading a request body in large pieces.
//!
//! A body's default reader hands out whatever chunks the runtime produced: behind `wrangler dev`
//! that is 4 KiB each, about 26,000 reads (each a promise round trip into JavaScript) for
//! 100 MiB, which took more time than verifying and storing the bytes. A BYOB reader with
//! workerd's `readAtLeast` fills a 256 KiB buffer per read instead.

use js_sys::{Function, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::sandbox_stub::js_message;
use crate::error::BridgeError;

/// Bytes requested per read.
const PIECE: u32 = 256 * 1024;

/// A request body read with a BYOB reader.
pub struct BodyReader {
    reader: JsValue,
    read_at_least: Option<Function>,
    read: Function,
}

impl BodyReader {
    /// A reader of `stream` (the request's body).
    pub fn new(stream: &JsValue) -> Result<Self, BridgeError> {
        let options = Object::new();
        Reflect::set(&options, &"mode".into(), &"byob".into()).map_err(js_error)?;
        let get_reader: Function = method(stream, "getReader")?;
        let reader = get_reader.call1(stream, &options).map_err(js_error)?;
        let read_at_least = method(&reader, "readAtLeast").ok();
        let read = method(&reader, "read")?;
        Ok(Self {
            reader,
            read_at_least,
            read,
        })
    }

    /// The next piece (at least [`PIECE`] bytes unless the body ends first); `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, BridgeError> {
        let buffer = Uint8Array::new_with_length(PIECE);
        let promise = match &self.read_at_least {
            Some(read_at_least) => {
                read_at_least.call2(&self.reader, &JsValue::from(PIECE), &buffer)
            }
            None => self.read.call1(&self.reader, &buffer),
        }
        .map_err(js_error)?;
        let result = JsFuture::from(js_sys::Promise::from(promise))
            .await
            .map_err(js_error)?;
        let value = Reflect::get(&result, &"value".into()).map_err(js_error)?;
        let done = Reflect::get(&result, &"done".into())
            .map_err(js_error)?
            .as_bool()
            .unwrap_or(true);
        let bytes = value
            .dyn_into::<Uint8Array>()
            .map(|view| view.to_vec())
            .unwrap_or_default();
        if done && bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(bytes))
    }
}

fn method(target: &JsValue, name: &str) -> Result<Function, BridgeError> {
    Reflect::get(target, &name.into())
        .map_err(js_error)?
        .dyn_into::<Function>()
        .map_err(|_| BridgeError::Internal(format!("the body stream has no {name}()")))
}

fn js_error(error: JsValue) -> BridgeError {
    BridgeError::InvalidRequest(format!(
        "the upload body could not be read: {}",
        js_message(&error)
    ))
}
