// Paperclip forks this file with Node; the plugin itself is the native binary next to it. Where
// Node has process.execve (>= 22.15), the binary replaces this process: same pid and stdio, exit
// code and signals for free, and no idle Node process. Elsewhere it is spawned with inherited
// stdio, and its exit code and signals are mirrored. Nothing is ever written to stdout here.
import { spawn } from "node:child_process";
import { chmodSync } from "node:fs";
import { fileURLToPath } from "node:url";

const binary = fileURLToPath(
  new URL(`../bin/${process.platform}-${process.arch}/paperclip-cloudflare-bridge`, import.meta.url),
);

try {
  // npm does not always keep the executable bit of packed files.
  chmodSync(binary, 0o755);
} catch (error) {
  process.stderr.write(`paperclip-cloudflare-bridge: cannot use ${binary}: ${error.message}\n`);
  process.exit(1);
}

if (typeof process.execve === "function" && process.env.PAPERCLIP_CLOUDFLARE_BRIDGE_SPAWN !== "1") {
  process.execve(binary, [binary], process.env);
} else {
  const child = spawn(binary, [], { stdio: "inherit" });
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, forward);
  child.on("error", (error) => {
    process.stderr.write(`paperclip-cloudflare-bridge: cannot start ${binary}: ${error.message}\n`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      for (const name of ["SIGTERM", "SIGINT", "SIGHUP"]) process.removeAllListeners(name);
      process.kill(process.pid, signal);
    } else {
      process.exit(code ?? 1);
    }
  });
}
