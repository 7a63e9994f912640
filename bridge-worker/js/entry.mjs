// Production entry: the Rust Worker (fetch handler and its Durable Objects) built by worker-build,
// plus the Sandbox Durable Object class of @cloudflare/sandbox that runs the containers.
export * from "../build/index.js";
export { default } from "../build/index.js";
export { Sandbox } from "@cloudflare/sandbox";
