//! Moving bytes between a client and a sandbox (`/files/upload`, `/files/download`): the pure
//! parts: checking a download, cutting an upload into `writeFile` parts and decoding a download's base64 output as it
//! streams. The wasm glue (`edge::transfer`) moves the bytes; the scripts are in
//! `script::transfer`.

mod base64_stream;
mod download;
mod parts;

pub use base64_stream::Base64Stream;
pub use download::download_source;
pub use parts::PartSplitter;
