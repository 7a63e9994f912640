//! SHA-256 of frame payloads by the runtime's native digest (`js/digest.js`).
//!
//! The transfer profiles in `docs/performance.md` had the wasm `sha2` at a fifth to a quarter of
//! the Worker's thread; workerd's own digest does the same work in a fraction of that.

use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;

#[wasm_bindgen(module = "/js/digest.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = sha256)]
    fn native_sha256(bytes: &[u8]) -> Result<Vec<u8>, JsValue>;
}

/// The [`PayloadDigest`](bridge_protocol::auth::PayloadDigest) of the Worker's framed bodies.
/// Should the runtime's digest ever fail, the crate's own SHA-256 gives the same answer, slower.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    native_sha256(bytes)
        .ok()
        .and_then(|digest| <[u8; 32]>::try_from(digest).ok())
        .unwrap_or_else(|| bridge_protocol::auth::sha256(bytes))
}
