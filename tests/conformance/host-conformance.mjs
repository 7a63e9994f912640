// Host conformance: the real Paperclip worker manager (@paperclipai/server 2026.916.1) forks the
// plugin package's worker shim, which hands over to the native binary, and every item of the
// protocol's conformance checklist is exercised against a running bridge.
//
// Run by `cargo test` (plugin/tests/host_conformance.rs) with Node 24 and these variables:
//   PAPERCLIP_HOST_MODULES   node_modules of the installed Paperclip server (tests/host)
//   PACKAGE_DIR   the installed plugin package (package.json, dist/, bin/)
//   BRIDGE_URL, BRIDGE_KEY_ID, BRIDGE_SECRET   the local stack's bridge
//   ROUND_TRIPS   optional: measure this many execute round trips through the manager
//   STREAM_BYTES  optional: measure streaming this many bytes into the manager's execute.log sink
// It prints one line `CONFORMANCE_RESULT {json}` and exits non-zero when any check failed.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

// The host's own modules, from the Paperclip server `cargo xtask setup` installs.
const hostModule = (path) => import(pathToFileURL(`${env("PAPERCLIP_HOST_MODULES")}/${path}`).href);
const { pluginManifestV1Schema } = await hostModule("@paperclipai/shared/dist/index.js");
const { createPluginWorkerManager } = await hostModule(
  "@paperclipai/server/dist/services/plugin-worker-manager.js",
);
const packageDir = env("PACKAGE_DIR");
const bridge = { url: env("BRIDGE_URL"), keyId: env("BRIDGE_KEY_ID"), secret: env("BRIDGE_SECRET") };
const roundTrips = Number(process.env.ROUND_TRIPS ?? "0");
const streamBytes = Number(process.env.STREAM_BYTES ?? "0");

const packageJson = JSON.parse(await readFile(`${packageDir}/package.json`, "utf8"));
const manifest = (await import(pathToFileURL(`${packageDir}/${packageJson.paperclipPlugin.manifest}`).href)).default;
const entrypointPath = `${packageDir}/${manifest.entrypoints.worker}`;
const driverKey = manifest.environmentDrivers[0].driverKey;
const pluginId = manifest.id;

const results = [];
const measurements = {};
async function check(name, body) {
  const started = performance.now();
  try {
    await body();
    results.push({ name, ok: true, ms: Math.round(performance.now() - started) });
  } catch (error) {
    results.push({ name, ok: false, error: error?.stack ?? String(error) });
  }
}
function assert(condition, message) {
  if (!condition) throw new Error(message);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const config = {
  bridgeBaseUrl: bridge.url,
  bridgeSecret: bridge.secret,
  keyId: bridge.keyId,
  timeoutMs: 60_000,
  archiveOnRelease: true,
};
const base = { driverKey, companyId: "company-conformance", environmentId: "env-conformance", config };

const events = [];
const manager = createPluginWorkerManager({ onWorkerEvent: (event) => events.push(event) });
const call = (method, params, timeoutMs, sink) => manager.call(pluginId, method, params, timeoutMs, sink);

let lease;
await check("manifest passes pluginManifestV1Schema", async () => {
  const parsed = pluginManifestV1Schema.safeParse(manifest);
  assert(parsed.success, JSON.stringify(parsed.error?.issues));
  assert(manifest.environmentDrivers[0].kind === "sandbox_provider", "kind");
});

await check("initialize answers with supportedMethods", async () => {
  const started = performance.now();
  const handle = await manager.startWorker(pluginId, {
    entrypointPath,
    manifest,
    config: {},
    instanceInfo: { instanceId: "conformance", hostVersion: "0.0.0" },
    apiVersion: 1,
    hostHandlers: {},
    autoRestart: true,
  });
  measurements.managerStartToReadyMs = Math.round(performance.now() - started);
  for (const method of [
    "environmentValidateConfig", "environmentProbe", "environmentAcquireLease", "environmentResumeLease",
    "environmentReleaseLease", "environmentDestroyLease", "environmentRealizeWorkspace", "environmentExecute",
  ]) {
    assert(handle.supportedMethods.includes(method), `${method} not advertised`);
  }
});

await check("validateConfig accepts a valid config, keeps unknown keys and the secret", async () => {
  const result = await call("environmentValidateConfig", { driverKey, config });
  assert(result.ok === true, JSON.stringify(result));
  assert(result.normalizedConfig.archiveOnRelease === true, "unknown key dropped");
  assert(result.normalizedConfig.bridgeSecret === bridge.secret, "secret changed");
  assert(result.normalizedConfig.streamOutput === true, "defaults not filled");
});

await check("validateConfig explains what is wrong", async () => {
  const result = await call("environmentValidateConfig", {
    driverKey,
    config: { ...config, bridgeBaseUrl: "http://bridge.example.com", reuseLease: true },
  });
  assert(result.ok === false, "accepted a bad config");
  assert(result.errors.some((error) => error.includes("https")), JSON.stringify(result.errors));
  assert(result.errors.some((error) => error.includes("reuseLease requires keepAlive")), JSON.stringify(result.errors));
});

await check("probe creates, uses and destroys a sandbox", async () => {
  const result = await call("environmentProbe", base, 120_000);
  assert(result.ok === true, JSON.stringify(result));
  assert(result.metadata.remoteCwd === "/workspace/paperclip", JSON.stringify(result));
});

await check("acquire returns remoteCwd and no host-owned keys", async () => {
  lease = await call("environmentAcquireLease", { ...base, runId: crypto.randomUUID() }, 150_000);
  assert(typeof lease.providerLeaseId === "string" && lease.providerLeaseId.length > 0, JSON.stringify(lease));
  assert(lease.metadata.remoteCwd === "/workspace/paperclip", JSON.stringify(lease));
  assert(!("provider" in lease.metadata) || lease.metadata.provider === driverKey, "provider key");
  for (const key of ["driver", "pluginId", "pluginKey", "sandboxProviderPlugin", "executionWorkspaceMode", "agentId",
    "sandboxLeaseAcquisition", "nativeHarnessBackup", "nativeWorkspaceSync", "reusableSandboxLease"]) {
    assert(!(key in lease.metadata), `host key ${key} in metadata`);
  }
});

const leaseConfig = () => ({ ...config, ...lease.metadata });
const execute = (params, sink) =>
  call("environmentExecute", { ...base, config: leaseConfig(), lease, ...params }, undefined, sink);

await check("realize returns the workspace cwd", async () => {
  const result = await call("environmentRealizeWorkspace", {
    ...base, config: leaseConfig(), lease, workspace: { localPath: "/tmp/host-worktree", remotePath: lease.metadata.remoteCwd },
  });
  assert(result.cwd === lease.metadata.remoteCwd, JSON.stringify(result));
});

await check("execute streams execute.log chunks in order before the response", async () => {
  const chunks = [];
  let answered = false;
  const result = await execute(
    { command: "sh", args: ["-c", "for i in 1 2 3 4; do echo line-$i; sleep 0.2; done; echo warn >&2"] },
    (stream, chunk) => {
      assert(!answered, "a chunk arrived after the response");
      chunks.push({ stream, chunk });
    },
  );
  answered = true;
  const stdoutChunks = chunks.filter((entry) => entry.stream === "stdout");
  assert(stdoutChunks.length >= 3, `only ${stdoutChunks.length} stdout chunks`);
  assert(stdoutChunks.map((entry) => entry.chunk).join("") === "line-1\nline-2\nline-3\nline-4\n", "chunks out of order");
  assert(result.stdout === "line-1\nline-2\nline-3\nline-4\n", JSON.stringify(result));
  assert(result.stderr === "warn\n" && result.exitCode === 0 && result.timedOut === false, JSON.stringify(result));
});

await check("execute honours argv, stdin, env and cwd", async () => {
  const argv = await execute({ command: "printf", args: ["%s|", "a b", "it's", "$(nope)", ""] });
  assert(argv.stdout === "a b|it's|$(nope)||", JSON.stringify(argv));
  const stdin = await execute({ command: "cat", stdin: "from the host\n" });
  assert(stdin.stdout === "from the host\n", JSON.stringify(stdin));
  const noStdin = await execute({ command: "wc", args: ["-c"], stdin: null });
  assert(noStdin.stdout.trim() === "0", JSON.stringify(noStdin));
  const withEnv = await execute({ command: "sh", args: ["-c", "printf %s \"$GREETING\""], env: { GREETING: "hi there" } });
  assert(withEnv.stdout === "hi there", JSON.stringify(withEnv));
  const inCwd = await execute({ command: "pwd", cwd: "/tmp" });
  assert(inCwd.stdout === "/tmp\n", JSON.stringify(inCwd));
  const defaultCwd = await execute({ command: "pwd" });
  assert(defaultCwd.stdout === `${lease.metadata.remoteCwd}\n`, JSON.stringify(defaultCwd));
  const failing = await execute({ command: "sh", args: ["-c", "exit 7"] });
  assert(failing.exitCode === 7, JSON.stringify(failing));
});

await check("execute enforces timeoutMs (timedOut, exitCode null)", async () => {
  const started = performance.now();
  const result = await execute({ command: "sleep", args: ["30"], timeoutMs: 1_500 });
  assert(result.timedOut === true && result.exitCode === null, JSON.stringify(result));
  assert(performance.now() - started < 10_000, "took too long");
});

await check("the bridge control channel runs unstreamed and without the marker", async () => {
  const chunks = [];
  const result = await execute(
    {
      command: "sh",
      args: ["-c", "printf %s \"${PAPERCLIP_SANDBOX_EXEC_CHANNEL:-stripped}\""],
      env: { PAPERCLIP_SANDBOX_EXEC_CHANNEL: "bridge" },
      bypassSession: true,
    },
    (stream, chunk) => chunks.push(chunk),
  );
  assert(result.stdout === "stripped", JSON.stringify(result));
  assert(chunks.length === 0, "control output was streamed");
});

await check("a slow execute does not block a concurrent fast call", async () => {
  const slow = execute({ command: "sleep", args: ["3"], bypassSession: true });
  await sleep(200);
  const started = performance.now();
  const fast = await execute({ command: "true", bypassSession: true });
  const fastMs = performance.now() - started;
  assert(fast.exitCode === 0 && fastMs < 2_500, `fast call took ${Math.round(fastMs)} ms`);
  const validation = await call("environmentValidateConfig", { driverKey, config });
  assert(validation.ok, "validate during a slow execute");
  assert((await slow).exitCode === 0, "slow call failed");
});

if (roundTrips > 0) {
  await check(`${roundTrips} execute round trips through the worker manager`, async () => {
    const samples = [];
    for (let index = 0; index < roundTrips + 10; index += 1) {
      const started = performance.now();
      const result = await execute({ command: "true", bypassSession: true });
      if (index >= 10) samples.push(performance.now() - started);
      assert(result.exitCode === 0, JSON.stringify(result));
    }
    samples.sort((a, b) => a - b);
    const at = (quantile) => samples[Math.round((samples.length - 1) * quantile)];
    measurements.executeRoundTripMs = { p50: at(0.5), p90: at(0.9), p99: at(0.99), runs: samples.length };
  });
}

if (streamBytes > 0) {
  await check(`${streamBytes} bytes streamed into the host's execute.log, byte-exact`, async () => {
    const line = "the-quick-brown-fox-jumps-over-the-lazy-dog\n";
    const expected = createHash("sha256")
      .update(line.repeat(Math.ceil(streamBytes / line.length)).slice(0, streamBytes))
      .digest("hex");
    const rates = [];
    for (let run = 0; run < 3; run += 1) {
      const hash = createHash("sha256");
      let bytes = 0;
      const started = performance.now();
      const result = await execute(
        { command: "sh", args: ["-c", `yes ${line.trim()} | head -c ${streamBytes}`] },
        (stream, chunk) => {
          if (stream !== "stdout") return;
          hash.update(chunk);
          bytes += Buffer.byteLength(chunk);
        },
      );
      const seconds = (performance.now() - started) / 1000;
      assert(result.exitCode === 0, `exit ${result.exitCode}: ${result.stderr}`);
      assert(bytes === streamBytes, `${bytes} of ${streamBytes} bytes reached the sink`);
      assert(hash.digest("hex") === expected, "the streamed bytes differ from the output");
      rates.push(streamBytes / 1_048_576 / seconds);
    }
    rates.sort((a, b) => a - b);
    measurements.executeLogStream = { bytes: streamBytes, runs: rates.length, mibPerSecond: rates[1] };
  });
}

await check("release answers a termination receipt", async () => {
  const receipt = await call("environmentReleaseLease", {
    ...base, config: leaseConfig(), providerLeaseId: lease.providerLeaseId, cancelActiveWork: true,
  });
  assert(receipt.providerLeaseId === lease.providerLeaseId && receipt.state === "destroyed", JSON.stringify(receipt));
});

await check("destroy twice answers a receipt both times; a null lease is a no-op", async () => {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const receipt = await call("environmentDestroyLease", { ...base, providerLeaseId: lease.providerLeaseId });
    assert(receipt.state === "destroyed", JSON.stringify(receipt));
  }
  assert((await call("environmentDestroyLease", { ...base, providerLeaseId: null })) === null, "null lease");
});

await check("resume of a destroyed lease reports it gone", async () => {
  const result = await call("environmentResumeLease", { ...base, providerLeaseId: lease.providerLeaseId });
  assert(result.providerLeaseId === null && result.metadata.expired === true, JSON.stringify(result));
});

await check("a lost lease is a failed command, not an RPC error", async () => {
  const result = await execute({ command: "true" });
  assert(result.exitCode === 1 && result.stderr.length > 0, JSON.stringify(result));
});

await check("unknown methods get -32601, unimplemented ones -32004", async () => {
  const codeOf = async (method) => {
    try {
      await call(method, {});
      return "answered";
    } catch (error) {
      return error.code;
    }
  };
  assert((await codeOf("noSuchMethod")) === -32601, "unknown method");
  assert((await codeOf("runJob")) === -32004, "unimplemented method");
});

await check("a killed binary is restarted by the host", async () => {
  const handle = manager.getWorker(pluginId);
  const pid = handle.diagnostics().pid;
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + 15_000;
  while (!(handle.status === "running" && handle.diagnostics().pid !== pid)) {
    assert(Date.now() < deadline, `not restarted: ${JSON.stringify(handle.diagnostics())}`);
    await sleep(100);
  }
  assert(events.some((event) => event.type === "plugin.worker.crashed" && event.willRestart), JSON.stringify(events));
  assert((await call("environmentValidateConfig", { driverKey, config })).ok, "restarted worker does not answer");
});

await check("shutdown stops the worker promptly", async () => {
  const started = performance.now();
  await manager.stopWorker(pluginId);
  const elapsed = performance.now() - started;
  assert(elapsed < 5_000, `stop took ${Math.round(elapsed)} ms (the host escalates to SIGTERM after 10 s)`);
});

// The same shim outside the manager: exit codes, EOF, and start-up time.
async function rawWorker(extraEnv = {}) {
  const child = spawn(process.execPath, [entrypointPath], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { PATH: process.env.PATH, ...extraEnv },
  });
  const lines = createInterface({ input: child.stdout });
  const responses = [];
  lines.on("line", (line) => responses.push(JSON.parse(line)));
  const exited = once(child, "exit");
  const waitFor = async (id) => {
    const deadline = Date.now() + 10_000;
    while (!responses.some((response) => response.id === id)) {
      assert(Date.now() < deadline, `no response ${id}`);
      await sleep(1);
    }
    return responses.find((response) => response.id === id);
  };
  const send = (message) => child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);
  return { child, exited, waitFor, send };
}

await check("shutdown answers null and exits 0; only JSON on stdout", async () => {
  for (const shimEnv of [{}, { PAPERCLIP_CLOUDFLARE_BRIDGE_SPAWN: "1" }]) {
    const worker = await rawWorker(shimEnv);
    const started = performance.now();
    worker.send({ id: 1, method: "initialize", params: { manifest, config: {}, apiVersion: 1 } });
    const init = await worker.waitFor(1);
    const initializeMs = performance.now() - started;
    assert(init.result?.ok === true, JSON.stringify(init));
    worker.send({ id: 2, method: "shutdown", params: {} });
    assert((await worker.waitFor(2)).result === null, "shutdown result");
    const [code, signal] = await worker.exited;
    assert(code === 0 && signal === null, `exit ${code} ${signal} (${JSON.stringify(shimEnv)})`);
    const mode = shimEnv.PAPERCLIP_CLOUDFLARE_BRIDGE_SPAWN ? "spawnedShim" : "execveShim";
    measurements[`${mode}ForkToInitializeMs`] = Math.round(initializeMs);
  }
});

await check("end of input exits the worker", async () => {
  const worker = await rawWorker();
  worker.child.stdin.end();
  const timer = sleep(5_000).then(() => "timeout");
  const outcome = await Promise.race([worker.exited, timer]);
  assert(outcome !== "timeout", "still running 5 s after EOF");
});

const failed = results.filter((result) => !result.ok);
console.log(`CONFORMANCE_RESULT ${JSON.stringify({ results, measurements })}`);
process.exit(failed.length === 0 ? 0 : 1);
