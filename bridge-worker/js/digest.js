// SHA-256 by workerd itself: its native digest runs several times as fast as one compiled into
// the Worker's wasm, and every byte of an upload or download is hashed once (a frame's tag covers
// its payload's SHA-256). `node:crypto` has the only synchronous digest the runtime offers; it is
// reached through `process.getBuiltinModule` (nodejs_compat) because worker-build's bundler
// cannot resolve a `node:` import.
let createHash = null;

// The SHA-256 of `bytes` (a view of wasm memory, read before this returns). Throws if the
// runtime has no `node:crypto`; the caller then hashes in wasm.
export function sha256(bytes) {
  createHash ??= globalThis.process.getBuiltinModule("node:crypto").createHash;
  return createHash("sha256").update(bytes).digest();
}
