// Local-stack entry (wrangler.toml [env.local]): the same Rust Worker as production, with the
// unmodified Sandbox Durable Object of @cloudflare/sandbox. Only its container is different: there
// is no Docker here, so the object gets a stand-in `ctx.container` whose port 3000 is the
// `local-sandbox` server named by the LOCAL_SANDBOX_URL var. Never deployed.
//
// It also counts, for `cargo xtask bench`, every call each Durable Object class receives and how
// long the calls take at each boundary (`GET /_local/profile`): DO calls per exec are measured
// where the objects receive them, not estimated. The classes are the bridge's own, subclassed
// only to count.
import { Sandbox as SdkSandbox } from "@cloudflare/sandbox";
import Bridge, {
  LeaseObject as BridgeLeaseObject,
  ReplayGuard as BridgeReplayGuard,
} from "../../bridge-worker/build/index.js";

export * from "../../bridge-worker/build/index.js";

const PROFILE_PATH = "/_local/profile";

// Per boundary: how many calls, and their summed duration in milliseconds (workerd's clock
// advances across I/O, which is all these spans contain).
const spans = {};

async function timed(name, call) {
  const started = performance.now();
  try {
    return await call();
  } finally {
    const span = (spans[name] ??= { calls: 0, totalMs: 0 });
    span.calls += 1;
    span.totalMs += performance.now() - started;
  }
}

export default class extends Bridge {
  async fetch(request) {
    if (new URL(request.url).pathname === PROFILE_PATH) {
      return Response.json(spans);
    }
    return timed("worker", () => super.fetch(request));
  }
}

export class LeaseObject extends BridgeLeaseObject {
  fetch(request) {
    return timed("leaseObject", () => super.fetch(request));
  }
}

export class ReplayGuard extends BridgeReplayGuard {
  fetch(request) {
    return timed("replayGuard", () => super.fetch(request));
  }
}

export class Sandbox extends SdkSandbox {
  constructor(ctx, env) {
    // `ctx.container` is a writable lazy property; it must be set before the Container
    // constructor runs, which refuses to start without one.
    if (ctx.container === undefined) {
      ctx.container = localContainer(requireUrl(env.LOCAL_SANDBOX_URL), ctx.id.toString());
    }
    super(ctx, env);
  }
}

// The RPC methods the bridge calls (the SDK never calls them on itself), each counted and timed.
for (const name of [
  "configure",
  "execWithSessionToken",
  "execStreamWithSessionToken",
  "writeFile",
  "deleteFile",
  "destroy",
]) {
  Sandbox.prototype[name] = function (...args) {
    return timed("sandbox", () => SdkSandbox.prototype[name].apply(this, args));
  };
}

function requireUrl(value) {
  if (typeof value !== "string" || !/^http:\/\/127\.0\.0\.1:\d+$/.test(value)) {
    throw new Error(
      `LOCAL_SANDBOX_URL must be http://127.0.0.1:<port> of a running local-sandbox, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

// The members of workerd's container handle that @cloudflare/containers uses. A container's life
// maps onto local-sandbox's per-sandbox state: stopping or destroying it kills the sandbox's
// processes and wipes its filesystem, as a real container restart would.
function localContainer(baseUrl, sandboxId) {
  const containerUrl = `${baseUrl}/_local/containers/${sandboxId}`;
  let running = false;
  let exited = null;
  let monitor = null;

  const stop = async () => {
    const response = await fetch(containerUrl, { method: "DELETE" });
    if (!response.ok) {
      throw new Error(`local-sandbox could not stop ${sandboxId}: HTTP ${response.status}`);
    }
    running = false;
    exited?.();
  };

  return {
    get running() {
      return running;
    },
    start() {
      running = true;
      monitor = new Promise((resolve) => {
        exited = resolve;
      });
    },
    monitor() {
      return monitor ?? Promise.resolve();
    },
    signal() {
      stop().catch((error) => console.error(error.message));
    },
    async destroy() {
      await stop();
    },
    getTcpPort() {
      return {
        fetch(url, init) {
          const target = new URL(url);
          return timed("container", () =>
            fetch(`${baseUrl}${target.pathname}${target.search}`, init),
          );
        },
      };
    },
  };
}
