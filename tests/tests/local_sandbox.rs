//! `local-sandbox` over HTTP, with real processes: sessions, one-shot commands, streams, process
//! trees, per-sandbox filesystems, teardown and error bodies. Every test stops its server at the
//! end and checks that no sandbox process outlived it.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use bridge_tests::harness::local_sandbox::{LocalSandboxServer, leaked_processes};
use bridge_tests::local_sandbox::{SANDBOX_ID_VAR, STATE_DIR_VAR, processes_with_env};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

const SESSIONLESS: &str = "__DISABLE_SESSION__";

/// A server on a fresh state directory, and a client for it.
struct Fixture {
    server: LocalSandboxServer,
    client: reqwest::Client,
    state: TempDir,
}

impl Fixture {
    fn start() -> Self {
        let state = tempfile::tempdir().expect("temporary state directory");
        let server =
            LocalSandboxServer::start(Path::new(env!("CARGO_BIN_EXE_local-sandbox")), state.path())
                .expect("local-sandbox starts");
        Self {
            server,
            client: bridge_tests::http_client(),
            state,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    async fn send(
        &self,
        method: Method,
        sandbox: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("X-Sandbox-Id", sandbox);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let text = response.text().await.expect("response body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{path} answered non-JSON {text:?}: {error}"));
        (status, body)
    }

    async fn post(&self, sandbox: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, sandbox, path, Some(body)).await
    }

    async fn get(&self, sandbox: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, sandbox, path, None).await
    }

    async fn delete(&self, sandbox: &str, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, sandbox, path, None).await
    }

    /// `/api/execute` that must succeed at the HTTP level; returns the result body.
    async fn exec_with(&self, sandbox: &str, body: Value) -> Value {
        let (status, result) = self.post(sandbox, "/api/execute", body).await;
        assert_eq!(status, StatusCode::OK, "{result}");
        result
    }

    async fn exec(&self, sandbox: &str, session: &str, command: &str) -> Value {
        self.exec_with(sandbox, json!({"command": command, "sessionId": session}))
            .await
    }

    /// `/api/execute/stream`, read to the end and split into events.
    async fn stream(&self, sandbox: &str, body: Value) -> Vec<Value> {
        let mut response = self
            .client
            .post(self.url("/api/execute/stream"))
            .header("X-Sandbox-Id", sandbox)
            .json(&body)
            .send()
            .await
            .expect("request reaches the server");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut raw = Vec::new();
        while let Some(chunk) = response.chunk().await.expect("stream chunk") {
            raw.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(raw).expect("SSE is UTF-8");
        text.split("\n\n")
            .filter(|frame| !frame.is_empty())
            .map(|frame| {
                let data = frame
                    .strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not an SSE data frame: {frame:?}"));
                serde_json::from_str(data).expect("event is JSON")
            })
            .collect()
    }

    /// Stops the server and checks that every sandbox process went with it.
    fn finish(mut self) {
        self.server.stop();
        assert_eq!(
            leaked_processes(self.state.path()),
            Vec::<u32>::new(),
            "processes outlived the server"
        );
    }
}

fn stdout(result: &Value) -> &str {
    result["stdout"].as_str().expect("stdout is a string")
}

/// Pids of `root` and all its descendants, from `/proc`.
fn process_tree(root: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = fs::read_dir("/proc")
        .expect("/proc is readable")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = vec![root];
    let mut index = 0;
    while let Some(&pid) = tree.get(index) {
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == pid)
                .map(|(child, _)| *child),
        );
        index += 1;
    }
    tree
}

/// Whether `pid` exists and is not a zombie.
fn is_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    exists && state != Some("Z")
}

fn assert_error_body(status: StatusCode, body: &Value, code: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["httpStatus"], status.as_u16(), "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["context"].is_object(), "{body}");
    assert!(
        body["timestamp"]
            .as_str()
            .is_some_and(|stamp| stamp.ends_with('Z')),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_state_persists_within_its_session_only() {
    let fixture = Fixture::start();
    let done = fixture
        .exec(
            "sb",
            "s1",
            "mkdir -p /workspace/x && cd /workspace/x && export A=1",
        )
        .await;
    assert_eq!(done["exitCode"], 0, "{done}");
    let same = fixture.exec("sb", "s1", "pwd; echo $A").await;
    assert_eq!(stdout(&same), "/workspace/x\n1\n");
    assert_eq!(same["sessionId"], "s1");
    let other = fixture
        .exec("sb", "s2", "pwd; echo \"A=${A:-unset}\"")
        .await;
    assert_eq!(stdout(&other), "/workspace\nA=unset\n");
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_of_one_session_run_one_at_a_time() {
    let fixture = Fixture::start();
    for session in ["s1", "s2", "s3"] {
        fixture.exec("sb", session, "true").await;
    }
    let started = Instant::now();
    tokio::join!(
        fixture.exec("sb", "s1", "sleep 1"),
        fixture.exec("sb", "s1", "sleep 1")
    );
    let serial = started.elapsed();
    assert!(
        serial >= Duration::from_secs(2),
        "one session ran two commands at once: {serial:?}"
    );

    let started = Instant::now();
    tokio::join!(
        fixture.exec("sb", "s2", "sleep 1"),
        fixture.exec("sb", "s3", "sleep 1")
    );
    let parallel = started.elapsed();
    assert!(
        parallel < Duration::from_millis(1800),
        "two sessions did not run in parallel: {parallel:?}"
    );
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn per_call_env_and_cwd_apply_to_that_command_only() {
    let fixture = Fixture::start();
    fixture
        .exec(
            "sb",
            "s1",
            "mkdir -p /workspace/a /workspace/b && cd /workspace/a",
        )
        .await;
    let scoped = fixture
        .exec_with(
            "sb",
            json!({
                "command": "pwd; echo \"$GREETING\"",
                "sessionId": "s1",
                "env": {"GREETING": "it's me"},
                "cwd": "/workspace/b"
            }),
        )
        .await;
    assert_eq!(stdout(&scoped), "/workspace/b\nit's me\n");
    let after = fixture
        .exec("sb", "s1", "pwd; echo \"${GREETING:-unset}\"")
        .await;
    assert_eq!(stdout(&after), "/workspace/a\nunset\n");

    let missing = fixture
        .exec_with(
            "sb",
            json!({"command": "pwd", "sessionId": "s1", "cwd": "/workspace/nope"}),
        )
        .await;
    assert_eq!(missing["exitCode"], 1, "{missing}");
    assert_eq!(
        missing["stderr"],
        "Failed to change directory to '/workspace/nope'\n"
    );
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn sessionless_commands_are_one_shot_in_their_own_group() {
    let fixture = Fixture::start();
    let first = fixture
        .exec(
            "sb",
            SESSIONLESS,
            "export X=1; cd /tmp; echo $$ $(cut -d' ' -f5 /proc/$$/stat)",
        )
        .await;
    let ids: Vec<&str> = stdout(&first).split_whitespace().collect();
    assert_eq!(ids.len(), 2, "{first}");
    assert_eq!(
        ids[0], ids[1],
        "the command does not lead its own process group"
    );
    let second = fixture
        .exec("sb", SESSIONLESS, "echo \"${X:-unset} $(pwd)\"")
        .await;
    assert_eq!(stdout(&second), "unset /workspace\n");
    let with_env = fixture
        .exec_with(
            "sb",
            json!({"command": "echo $Y; pwd", "sessionId": SESSIONLESS, "env": {"Y": "y"}, "cwd": "/tmp"}),
        )
        .await;
    assert_eq!(stdout(&with_env), "y\n/tmp\n");
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_timeout_is_an_error_and_the_command_keeps_running() {
    let fixture = Fixture::start();
    fixture.exec("sb", "s1", "true").await;
    let started = Instant::now();
    let (status, body) = fixture
        .post(
            "sb",
            "/api/execute",
            json!({"command": "sleep 2; echo late > /tmp/late", "sessionId": "s1", "timeoutMs": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error_body(status, &body, "COMMAND_EXECUTION_ERROR");
    assert_eq!(
        body["message"],
        "Failed to execute command 'sleep 2; echo late > /tmp/late' in session 's1': Command timeout after 300ms"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let next = fixture.exec("sb", "s1", "cat /tmp/late").await;
    assert_eq!(
        stdout(&next),
        "late\n",
        "the timed-out command was not left running"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the next command did not queue behind it"
    );
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sessionless_timeout_kills_the_group_and_returns_124() {
    let fixture = Fixture::start();
    let started = Instant::now();
    let result = fixture
        .exec_with(
            "sb",
            json!({"command": "echo started; sleep 30 & sleep 30", "sessionId": SESSIONLESS, "timeoutMs": 500}),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(result["exitCode"], 124, "{result}");
    assert_eq!(result["success"], false);
    assert_eq!(stdout(&result), "started\n");
    assert_eq!(result["stderr"], "Command timed out after 500ms");
    assert_eq!(
        leaked_processes(fixture.server.state_dir()),
        Vec::<u32>::new()
    );
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_reports_start_output_and_complete_in_order() {
    let fixture = Fixture::start();
    for session in ["s1", SESSIONLESS] {
        let events = fixture
            .stream(
                "sb",
                json!({"command": "echo one; echo two >&2; sleep 0.2; echo three; exit 3", "sessionId": session}),
            )
            .await;
        let types: Vec<&str> = events
            .iter()
            .filter_map(|event| event["type"].as_str())
            .collect();
        assert_eq!(types.first(), Some(&"start"), "{events:?}");
        assert_eq!(types.last(), Some(&"complete"), "{events:?}");
        assert!(
            types[1..types.len() - 1]
                .iter()
                .all(|kind| ["stdout", "stderr"].contains(kind))
        );
        let text = |kind: &str| -> String {
            events
                .iter()
                .filter(|event| event["type"] == kind)
                .filter_map(|event| event["data"].as_str())
                .collect()
        };
        assert_eq!(text("stdout"), "one\nthree\n");
        assert_eq!(text("stderr"), "two\n");
        assert_eq!(
            events[0]["command"],
            "echo one; echo two >&2; sleep 0.2; echo three; exit 3"
        );
        assert_eq!(
            events.last().map(|event| &event["exitCode"]),
            Some(&json!(3))
        );
    }
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_never_splits_a_multibyte_character() {
    let fixture = Fixture::start();
    let events = fixture
        .stream(
            "sb",
            json!({
                "command": r"printf 'caf\303'; sleep 0.3; printf '\251 \360\237'; sleep 0.3; printf '\246\200\n'",
                "sessionId": "s1"
            }),
        )
        .await;
    let chunks: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "stdout")
        .filter_map(|event| event["data"].as_str())
        .collect();
    assert!(
        chunks.len() >= 2,
        "output was not streamed in pieces: {chunks:?}"
    );
    assert_eq!(chunks.concat(), "caf\u{e9} \u{1f980}\n");
    assert!(
        chunks.iter().all(|chunk| !chunk.contains('\u{fffd}')),
        "{chunks:?}"
    );
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_process_kills_its_whole_tree() {
    let fixture = Fixture::start();
    let (status, started) = fixture
        .post(
            "sb",
            "/api/process/start",
            json!({
                "command": "sh -c 'trap \"\" TERM; sleep 1000' & echo ready; sleep 1000",
                "sessionId": "s1",
                "processId": "tree"
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let root = u32::try_from(started["pid"].as_u64().expect("pid")).expect("pid fits u32");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tree = process_tree(root);
    while tree.len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tree = process_tree(root);
    }
    assert!(tree.len() >= 4, "the process tree did not form: {tree:?}");

    let (status, killed) = fixture.delete("sb", "/api/process/tree").await;
    assert_eq!(status, StatusCode::OK, "{killed}");
    assert_eq!(killed["processId"], "tree");
    let survivors: Vec<u32> = tree
        .iter()
        .copied()
        .filter(|pid| is_running(*pid))
        .collect();
    assert_eq!(survivors, Vec::<u32>::new(), "tree was {tree:?}");

    let (_, info) = fixture.get("sb", "/api/process/tree").await;
    assert_eq!(info["process"]["status"], "killed", "{info}");
    let (_, logs) = fixture.get("sb", "/api/process/tree/logs").await;
    assert_eq!(logs["stdout"], "ready\n");
    let (status, again) = fixture.delete("sb", "/api/process/tree").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_body(status, &again, "COMMAND_NOT_FOUND");
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_stream_replays_then_follows_and_kill_all_stops_the_rest() {
    let fixture = Fixture::start();
    let (status, started) = fixture
        .post(
            "sb",
            "/api/process/start",
            json!({"command": "echo early; sleep 0.6; echo late >&2", "sessionId": SESSIONLESS, "processId": "p"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut response = fixture
        .client
        .get(fixture.url("/api/process/p/stream"))
        .header("X-Sandbox-Id", "sb")
        .send()
        .await
        .expect("stream");
    let mut raw = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        raw.extend_from_slice(&chunk);
    }
    let events: Vec<Value> = String::from_utf8(raw)
        .expect("UTF-8")
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).expect("JSON event"))
        .collect();
    let summary: Vec<(&str, &str)> = events
        .iter()
        .map(|event| {
            (
                event["type"].as_str().unwrap_or_default(),
                event["data"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("process_info", ""),
            ("stdout", "early\n"),
            ("stderr", "late\n"),
            ("exit", "Process completed with exit code 0"),
        ],
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|event| event["type"] == "process_info" || event["processId"] == "p")
    );

    for id in ["k1", "k2"] {
        fixture
            .post(
                "sb",
                "/api/process/start",
                json!({"command": "sleep 1000", "sessionId": "s1", "processId": id}),
            )
            .await;
    }
    let (_, running) = fixture.get("sb", "/api/process/list?status=running").await;
    assert_eq!(
        running["processes"].as_array().map(Vec::len),
        Some(2),
        "{running}"
    );
    let (status, cleaned) = fixture.delete("sb", "/api/process/kill-all").await;
    assert_eq!(status, StatusCode::OK, "{cleaned}");
    assert_eq!(cleaned["cleanedCount"], 2);
    let (_, all) = fixture.get("sb", "/api/process/list").await;
    let statuses: Vec<(&str, &str)> = all["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|process| {
            (
                process["id"].as_str().unwrap_or_default(),
                process["status"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("p", "completed"), ("k1", "killed"), ("k2", "killed")]
    );
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn created_sessions_keep_their_settings_until_deleted() {
    let fixture = Fixture::start();
    fixture
        .exec("sb", SESSIONLESS, "mkdir -p /workspace/home")
        .await;
    let (status, created) = fixture
        .post(
            "sb",
            "/api/session/create",
            json!({"id": "s", "env": {"ROLE": "agent"}, "cwd": "/workspace/home"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["success"], true);
    assert!(created["containerPlacementId"].is_null());
    let inside = fixture
        .exec(
            "sb",
            "s",
            "echo \"$ROLE $(pwd)\"; sleep 1000 > /dev/null 2>&1 &",
        )
        .await;
    assert_eq!(stdout(&inside), "agent /workspace/home\n");
    let (_, listed) = fixture.get("sb", "/api/session/list").await;
    assert_eq!(listed["data"], json!(["s"]));

    let state_dir = fixture.server.state_dir().to_string_lossy().into_owned();
    let processes = || processes_with_env(&[(STATE_DIR_VAR, &state_dir)]).len();
    assert!(processes() >= 2, "shell and its background sleep");
    let (status, deleted) = fixture
        .post("sb", "/api/session/delete", json!({"sessionId": "s"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["sessionId"], "s");
    assert_eq!(processes(), 0, "deleting the session left processes behind");
    let (_, listed) = fixture.get("sb", "/api/session/list").await;
    assert_eq!(listed["data"], json!([]));
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn sandboxes_do_not_see_each_others_files() {
    let fixture = Fixture::start();
    let info: Value = fixture
        .client
        .get(fixture.url("/_local/info"))
        .send()
        .await
        .expect("info")
        .json()
        .await
        .expect("info is JSON");
    assert_eq!(
        info["isolation"], true,
        "tests run as root, so sandboxes must be isolated: {info}"
    );

    let (status, _) = fixture
        .post(
            "a",
            "/api/write",
            json!({"path": "/workspace/only-a.txt", "content": "a"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    fixture
        .exec(
            "a",
            "s",
            "echo x > /tmp/only-a && echo y > /workspace/cmd-a",
        )
        .await;
    for (sandbox, expected) in [("a", true), ("b", false)] {
        for path in ["/workspace/only-a.txt", "/workspace/cmd-a", "/tmp/only-a"] {
            let (_, exists) = fixture
                .post(sandbox, "/api/exists", json!({"path": path}))
                .await;
            assert_eq!(exists["exists"], expected, "{sandbox} {path}");
            let test = fixture
                .exec(sandbox, SESSIONLESS, &format!("test -e {path}"))
                .await;
            assert_eq!(
                test["exitCode"],
                if expected { 0 } else { 1 },
                "{sandbox} {path}"
            );
        }
    }
    let state = fixture.server.state_dir();
    assert!(state.join("a/workspace/only-a.txt").is_file());
    assert!(state.join("a/tmp/only-a").is_file());
    assert!(
        !Path::new("/workspace/cmd-a").exists(),
        "a command wrote to the host's /workspace"
    );
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_sandbox_kills_its_processes_and_wipes_its_state() {
    let fixture = Fixture::start();
    fixture
        .exec("doomed", "s1", "sleep 1000 > /dev/null 2>&1 &")
        .await;
    for session in ["s2", SESSIONLESS] {
        let (status, body) = fixture
            .post(
                "doomed",
                "/api/process/start",
                json!({"command": "sleep 1000", "sessionId": session}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    fixture
        .post(
            "doomed",
            "/api/write",
            json!({"path": "/workspace/f", "content": "x"}),
        )
        .await;
    fixture
        .exec("kept", "s1", "sleep 1000 > /dev/null 2>&1 &")
        .await;

    let state_dir = fixture.server.state_dir().to_string_lossy().into_owned();
    let marked = |sandbox: &str| {
        processes_with_env(&[(STATE_DIR_VAR, &state_dir), (SANDBOX_ID_VAR, sandbox)])
    };
    assert!(marked("doomed").len() >= 4, "{:?}", marked("doomed"));

    let response = fixture
        .client
        .delete(fixture.url("/_local/containers/doomed"))
        .send()
        .await
        .expect("destroy");
    assert_eq!(response.status(), StatusCode::OK);
    let destroyed: Value = response.json().await.expect("JSON");
    assert_eq!(destroyed, json!({"id": "doomed", "existed": true}));
    assert_eq!(marked("doomed"), Vec::<u32>::new());
    assert!(!fixture.server.state_dir().join("doomed").exists());
    assert!(
        !marked("kept").is_empty(),
        "another sandbox's processes were killed"
    );

    let again: Value = fixture
        .client
        .delete(fixture.url("/_local/containers/doomed"))
        .send()
        .await
        .expect("destroy again")
        .json()
        .await
        .expect("JSON");
    assert_eq!(again, json!({"id": "doomed", "existed": false}));
    let fresh = fixture
        .exec("doomed", "s1", "ls -A /workspace | wc -l")
        .await;
    assert_eq!(stdout(&fresh), "0\n");
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_whose_shell_exits_answers_410_once() {
    let fixture = Fixture::start();
    fixture.exec("sb", "s1", "cd /tmp").await;
    let (status, body) = fixture
        .post(
            "sb",
            "/api/execute",
            json!({"command": "exit 7", "sessionId": "s1"}),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_error_body(status, &body, "SESSION_TERMINATED");
    assert_eq!(body["context"]["exitCode"], 7);
    let fresh = fixture.exec("sb", "s1", "pwd").await;
    assert_eq!(stdout(&fresh), "/workspace\n");
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn files_round_trip_text_and_binary() {
    let fixture = Fixture::start();
    let (status, _) = fixture
        .post(
            "sb",
            "/api/mkdir",
            json!({"path": "/workspace/d/e", "recursive": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    fixture
        .post(
            "sb",
            "/api/write",
            json!({"path": "/workspace/d/e/t.txt", "content": "h\u{e9}llo"}),
        )
        .await;
    let (_, text) = fixture
        .post("sb", "/api/read", json!({"path": "/workspace/d/e/t.txt"}))
        .await;
    assert_eq!(
        (&text["content"], &text["encoding"], &text["isBinary"]),
        (&json!("h\u{e9}llo"), &json!("utf-8"), &json!(false))
    );
    assert_eq!(text["size"], 6);

    fixture
        .post(
            "sb",
            "/api/write",
            json!({"path": "/tmp/b.bin", "content": "AAH/gA==", "encoding": "base64"}),
        )
        .await;
    let (_, binary) = fixture
        .post("sb", "/api/read", json!({"path": "/tmp/b.bin"}))
        .await;
    assert_eq!(
        (&binary["content"], &binary["encoding"], &binary["isBinary"]),
        (&json!("AAH/gA=="), &json!("base64"), &json!(true))
    );
    let bytes = fixture
        .exec("sb", SESSIONLESS, "od -An -tx1 /tmp/b.bin")
        .await;
    assert_eq!(
        stdout(&bytes).split_whitespace().collect::<Vec<_>>(),
        ["00", "01", "ff", "80"]
    );

    let (status, _) = fixture
        .post("sb", "/api/delete", json!({"path": "/tmp/b.bin"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, gone) = fixture
        .post("sb", "/api/exists", json!({"path": "/tmp/b.bin"}))
        .await;
    assert_eq!(gone["exists"], false);
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_the_container_body() {
    let fixture = Fixture::start();
    let (status, body) = fixture.get("sb", "/api/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_body(status, &body, "UNKNOWN_ERROR");
    assert_eq!(body["message"], "The requested endpoint was not found");

    let malformed = fixture
        .client
        .post(fixture.url("/api/execute"))
        .header("X-Sandbox-Id", "sb")
        .body("{not json")
        .send()
        .await
        .expect("request");
    let status = malformed.status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(
        status,
        &malformed.json().await.expect("JSON"),
        "VALIDATION_FAILED",
    );

    let (status, body) = fixture
        .post("sb", "/api/execute", json!({"sessionId": "s1"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(status, &body, "VALIDATION_FAILED");

    let (status, body) = fixture
        .post("sb", "/api/read", json!({"path": "/workspace/missing.txt"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_body(status, &body, "FILE_NOT_FOUND");
    assert_eq!(body["message"], "File not found: /workspace/missing.txt");
    assert_eq!(body["operation"], "file.read");

    for outside in ["/etc/passwd", "/workspace/../../etc/passwd"] {
        let (status, body) = fixture
            .post("sb", "/api/read", json!({"path": outside}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{outside}");
        assert_error_body(status, &body, "VALIDATION_FAILED");
    }

    let (status, body) = fixture
        .send(Method::GET, "../escape", "/api/session/list", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(status, &body, "VALIDATION_FAILED");

    fixture
        .post("sb", "/api/session/create", json!({"id": "dup"}))
        .await;
    let (status, body) = fixture
        .post("sb", "/api/session/create", json!({"id": "dup"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_body(status, &body, "SESSION_ALREADY_EXISTS");

    let (status, body) = fixture.get("sb", "/api/process/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_body(status, &body, "PROCESS_NOT_FOUND");

    let (status, body) = fixture
        .post("sb", "/api/session/delete", json!({"sessionId": "nope"}))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error_body(status, &body, "INTERNAL_ERROR");
    fixture.finish();
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_server_leaves_no_process_behind() {
    let fixture = Fixture::start();
    fixture
        .exec(
            "a",
            "s1",
            "sleep 1000 > /dev/null 2>&1 & setsid sleep 1000 > /dev/null 2>&1 &",
        )
        .await;
    fixture
        .post(
            "a",
            "/api/process/start",
            json!({"command": "sleep 1000", "sessionId": "s2"}),
        )
        .await;
    fixture
        .post(
            "b",
            "/api/process/start",
            json!({"command": "sh -c 'trap \"\" TERM; sleep 1000'", "sessionId": SESSIONLESS}),
        )
        .await;
    let running = leaked_processes(fixture.server.state_dir());
    assert!(running.len() >= 5, "{running:?}");
    fixture.finish();
}
