#!/bin/sh
# A stand-in for the Codex CLI as the `codex_local` adapter runs it in a sandbox
# (`<command> exec --json … -`, the prompt on stdin): prints Codex-style JSONL events and ends the
# turn, so a heartbeat run goes through the whole host machinery without any model.
#
# Set through the agent's env (values must not contain `"` or `\`):
#   FAKE_CODEX_MESSAGE  the agent's final message (default: "hello from the fake agent")
#   FAKE_CODEX_SLEEP    seconds to work between the first events and the message (default: 0)
#   FAKE_CODEX_EXIT     exit code; non-zero ends the turn as failed (default: 0)
#   FAKE_CODEX_WORK     a shell command run in the agent's working directory after the sleep,
#                       its output on stderr; if it fails, the turn fails with its exit code
# The message ends with what the run could observe: its run id, the run id that this sandbox saw
# last (state kept under /workspace/.fake-codex, so a reused sandbox shows the previous run) and
# the size of the prompt.
prompt_bytes=$(wc -c | tr -d ' ')
state=/workspace/.fake-codex
mkdir -p "$state"
previous=$(cat "$state/last-run" 2>/dev/null || echo none)
printf '%s\n' "${PAPERCLIP_RUN_ID:-unknown}" > "$state/last-run"

echo '{"type":"thread.started","thread_id":"fake-thread"}'
echo '{"type":"turn.started"}'
echo '{"type":"item.completed","item":{"id":"item_progress","type":"reasoning","text":"fake agent at work"}}'
sleep "${FAKE_CODEX_SLEEP:-0}"

code=${FAKE_CODEX_EXIT:-0}
if [ -n "${FAKE_CODEX_WORK:-}" ]; then
  sh -c "$FAKE_CODEX_WORK" >&2 || code=$?
fi
details="run ${PAPERCLIP_RUN_ID:-unknown}; previous run ${previous}; prompt ${prompt_bytes} bytes"
if [ "$code" -ne 0 ]; then
  printf '{"type":"turn.failed","error":{"message":"fake agent failed with exit code %s"}}\n' "$code"
  exit "$code"
fi
printf '{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"%s [%s]"}}\n' \
  "${FAKE_CODEX_MESSAGE:-hello from the fake agent}" "$details"
echo '{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":1}}'
