//! The plugin process under a bridge that misbehaves (fault case 6 of `cargo xtask chaos`), and
//! under a real bridge whose container dies mid-command (the host side of case 1).
//!
//! The plugin binary runs as the host runs it, speaking JSON-RPC on its stdio. Every misbehaviour
//! must come back to the host as a clear error within the call's deadline, and the process must
//! go on answering other requests meanwhile.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bridge_tests::chaos::report;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot};

/// A 32-byte secret, as the plugin's configuration requires.
const SECRET: &str = "chaos-secret-chaos-secret-chaos-secret";

/// The plugin binary with its stdio as the host holds it.
struct Plugin {
    child: Child,
    stdin: ChildStdin,
    next_id: u64,
    waiting: mpsc::UnboundedSender<(u64, oneshot::Sender<Value>)>,
}

impl Plugin {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paperclip-cloudflare-bridge"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the plugin starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (waiting, mut registrations) =
            mpsc::unbounded_channel::<(u64, oneshot::Sender<Value>)>();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut callers: HashMap<u64, oneshot::Sender<Value>> = HashMap::new();
            let mut early: HashMap<u64, Value> = HashMap::new();
            loop {
                tokio::select! {
                    Some((id, caller)) = registrations.recv() => match early.remove(&id) {
                        Some(message) => { caller.send(message).ok(); }
                        None => { callers.insert(id, caller); }
                    },
                    line = lines.next_line() => {
                        let Ok(Some(line)) = line else { return };
                        let message: Value = serde_json::from_str(&line).expect("the plugin writes JSON lines");
                        let Some(id) = message["id"].as_u64() else { continue };
                        match callers.remove(&id) {
                            Some(caller) => { caller.send(message).ok(); }
                            None => { early.insert(id, message); }
                        }
                    }
                }
            }
        });
        Self {
            child,
            stdin,
            next_id: 1,
            waiting,
        }
    }

    /// Sends a request; the answer arrives on the returned channel.
    async fn send(
        &mut self,
        method: &str,
        params: Value,
        invocation: Option<&str>,
    ) -> oneshot::Receiver<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if let Some(invocation) = invocation {
            request["paperclipInvocation"] = json!({"id": invocation});
        }
        let (caller, answer) = oneshot::channel();
        self.waiting.send((id, caller)).expect("the reader runs");
        let mut line = serde_json::to_vec(&request).expect("encodes");
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .expect("the plugin reads its stdin");
        answer
    }

    /// Sends a request and waits for its answer.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let answer = self.send(method, params, None).await;
        tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .unwrap_or_else(|_| panic!("{method} unanswered within 5 s"))
            .expect("answered")
    }

    /// The process is still up and answers at once.
    async fn still_serves(&mut self) {
        let started = Instant::now();
        let health = self.call("health", json!({})).await;
        assert_eq!(health["result"]["status"], "ok", "{health}");
        let config = json!({"config": {"bridgeBaseUrl": "https://bridge.example.workers.dev", "bridgeSecret": SECRET}});
        let validated = self.call("environmentValidateConfig", config).await;
        assert_eq!(validated["result"]["ok"], true, "{validated}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(
            self.child.try_wait().expect("status").is_none(),
            "the plugin exited"
        );
    }
}

/// What a fake bridge does with every connection.
#[derive(Debug, Clone, Copy)]
enum Misbehaviour {
    /// Reads the request and never answers. (Every other case reads the whole request first,
    /// so that closing the connection is an orderly end, not a reset.)
    Stall,
    /// Starts an event stream and closes it in the middle of an event.
    CutMidEvent,
    /// Answers an event stream of random bytes.
    GarbageStream,
    /// Starts an event stream and sends one line that never ends.
    EndlessLine,
    /// Answers a 200 HTML page.
    HtmlPage,
    /// Answers a TLS handshake with plain HTTP (the URL says `https`).
    NotTls,
    /// Resets the connection once the request is in.
    Reset,
}

impl Misbehaviour {
    /// Serves every connection on a fresh loopback port; returns the base URL.
    async fn serve(self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let scheme = if matches!(self, Self::NotTls) {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                tokio::spawn(self.answer(connection));
            }
        });
        url
    }

    async fn answer(self, mut connection: TcpStream) {
        if matches!(self, Self::NotTls) {
            let mut record = [0u8; 5];
            if connection.read_exact(&mut record).await.is_err() {
                return;
            }
            let mut hello = vec![0u8; usize::from(u16::from_be_bytes([record[3], record[4]]))];
            if connection.read_exact(&mut hello).await.is_err() {
                return;
            }
            let answer =
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            connection.write_all(answer.as_bytes()).await.ok();
            return;
        }
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match connection.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let length = String::from_utf8_lossy(&head)
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if connection.read_exact(&mut body).await.is_err() {
            return;
        }
        let stream_head =
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\r\n";
        match self {
            Self::Stall => {
                let mut rest = Vec::new();
                connection.read_to_end(&mut rest).await.ok();
                std::future::pending::<()>().await;
            }
            Self::CutMidEvent => {
                let partial =
                    format!("{stream_head}event: stdout\nid: 1\ndata: {{\"data\":\"half an ev");
                connection.write_all(partial.as_bytes()).await.ok();
            }
            Self::GarbageStream => {
                let mut state = 0x9e37_79b9_7f4a_7c15_u64;
                let garbage: Vec<u8> = (0..64 * 1024)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        state as u8
                    })
                    .collect();
                connection.write_all(stream_head.as_bytes()).await.ok();
                connection.write_all(&garbage).await.ok();
            }
            Self::EndlessLine => {
                let line = format!("{stream_head}event: stdout\ndata: {{\"data\":\"");
                connection.write_all(line.as_bytes()).await.ok();
                let piece = vec![b'x'; 64 * 1024];
                while connection.write_all(&piece).await.is_ok() {}
            }
            Self::HtmlPage => {
                let page = "<!DOCTYPE html><html><body>Welcome to the captive portal</body></html>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                connection.write_all(answer.as_bytes()).await.ok();
            }
            Self::Reset => {
                connection.set_zero_linger().ok();
            }
            Self::NotTls => {}
        }
    }
}

/// `environmentExecute` params for a bridge at `url`.
fn execute_params(
    url: &str,
    lease: &str,
    script: &str,
    timeout_ms: u64,
    remote_cwd: &str,
) -> Value {
    json!({
        "config": {"bridgeBaseUrl": url, "bridgeSecret": SECRET, "keyId": "chaos", "timeoutMs": 60_000},
        "lease": {"providerLeaseId": lease, "metadata": {"remoteCwd": remote_cwd}},
        "command": "sh",
        "args": ["-c", script],
        "timeoutMs": timeout_ms,
    })
}

/// The host-facing error of an answer, which must be one.
fn error_message(answer: &Value) -> String {
    answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("an error answer, got {answer}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_misbehaviour_of_the_bridge_is_a_clear_error_in_time_and_the_plugin_keeps_serving() {
    let mut plugin = Plugin::start();
    let command_timeout_ms = 1_000;
    // The plugin's deadline for a command: its timeout plus the grace it gives the bridge.
    let call_deadline = Duration::from_millis(command_timeout_ms) + Duration::from_secs(25);
    let cases: [(Misbehaviour, bool, &[&str], Duration); 9] = [
        (
            Misbehaviour::Stall,
            true,
            &["timed out after"],
            call_deadline,
        ),
        (
            Misbehaviour::Stall,
            false,
            &["timed out after"],
            call_deadline,
        ),
        (
            Misbehaviour::CutMidEvent,
            true,
            &["cut off before its end"],
            Duration::from_secs(5),
        ),
        (
            Misbehaviour::GarbageStream,
            true,
            &["cut off before its end", "unreadable"],
            Duration::from_secs(5),
        ),
        (
            Misbehaviour::HtmlPage,
            true,
            &["does not lead to the Cloudflare bridge"],
            Duration::from_secs(5),
        ),
        (
            Misbehaviour::HtmlPage,
            false,
            &["does not lead to the Cloudflare bridge"],
            Duration::from_secs(5),
        ),
        (
            Misbehaviour::EndlessLine,
            true,
            &["larger than 16777216 bytes"],
            Duration::from_secs(5),
        ),
        (
            Misbehaviour::NotTls,
            true,
            &["temporarily unavailable"],
            Duration::from_secs(5),
        ),
        (
            Misbehaviour::Reset,
            true,
            &["temporarily unavailable"],
            Duration::from_secs(5),
        ),
    ];
    let mut pending = Vec::new();
    for (misbehaviour, streamed, expected, within) in cases {
        let url = misbehaviour.serve().await;
        let params = execute_params(&url, "pc-chaos", "true", command_timeout_ms, "/workspace");
        let invocation = streamed.then_some("invocation-1");
        let started = Instant::now();
        let answer = plugin.send("environmentExecute", params, invocation).await;
        let arrival = tokio::spawn(async move {
            let answer = tokio::time::timeout(within + Duration::from_secs(5), answer).await;
            (answer, started.elapsed())
        });
        pending.push((misbehaviour, streamed, expected, within, arrival));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    plugin.still_serves().await;
    for (misbehaviour, streamed, expected, within, arrival) in pending {
        let (answer, elapsed) = arrival.await.expect("waiter");
        let answer = answer
            .unwrap_or_else(|_| panic!("{misbehaviour:?}: no answer within {within:?}"))
            .expect("answered");
        let message = error_message(&answer);
        assert!(
            expected.iter().any(|words| message.contains(words)),
            "{misbehaviour:?} (streamed: {streamed}): {message}"
        );
        assert!(
            elapsed <= within + Duration::from_secs(2),
            "{misbehaviour:?}: {elapsed:?}"
        );
        let mode = if streamed { "stream" } else { "JSON" };
        report(
            "misbehaving bridge under the plugin",
            &format!("ms until the host got an error: {misbehaviour:?} ({mode})"),
            elapsed.as_secs_f64() * 1000.0,
        );
    }
    plugin.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_dying_mid_command_is_a_failed_command_for_the_host() {
    use bridge_tests::harness::plugin_package::workspace_binary;
    use bridge_tests::harness::{LocalStack, StackOptions};

    let scratch = tempfile::Builder::new()
        .prefix("chaos-plugin-")
        .tempdir()
        .expect("scratch");
    let local_sandbox = workspace_binary("bridge-tests", "local-sandbox").expect("binary");
    let stack = LocalStack::start(&StackOptions::new(
        local_sandbox,
        scratch.path().join("stack"),
    ))
    .unwrap_or_else(|error| panic!("{error}"));
    let (key_id, secret) = stack.keys().primary.clone();
    let config =
        json!({"bridgeBaseUrl": stack.bridge_url(), "bridgeSecret": secret, "keyId": key_id});
    let mut plugin = Plugin::start();
    let acquired = plugin
        .call(
            "environmentAcquireLease",
            json!({"config": config, "environmentId": "chaos-host", "runId": "run-1"}),
        )
        .await;
    let lease = acquired["result"]["providerLeaseId"]
        .as_str()
        .unwrap_or_else(|| panic!("{acquired}"))
        .to_owned();
    let remote_cwd = acquired["result"]["metadata"]["remoteCwd"]
        .as_str()
        .unwrap_or("/workspace")
        .to_owned();
    let mut params = execute_params(
        &stack.bridge_url(),
        &lease,
        "while :; do echo tick-503.1; sleep 0.05; done",
        60_000,
        &remote_cwd,
    );
    params["config"] = config;
    let answer = plugin
        .send("environmentExecute", params, Some("invocation-lost"))
        .await;
    let started = Instant::now();
    while bridge_tests::local_sandbox::processes_with_cmdline("tick-503.1").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sandboxes = stack
        .local_sandbox()
        .sandboxes()
        .await
        .expect("local-sandbox reachable");
    let [sandbox] = sandboxes.as_slice() else {
        panic!("exactly one sandbox: {sandboxes:?}");
    };
    let died = Instant::now();
    stack.local_sandbox().wipe(sandbox).await.expect("wiped");
    let answer = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("answered within 10 s")
        .expect("answered");
    let result = &answer["result"];
    assert_eq!(
        result["exitCode"], 1,
        "a failed command, not an RPC error: {answer}"
    );
    assert!(
        result["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("no longer usable"),
        "{answer}"
    );
    report(
        "container dies mid-stream",
        "ms until the host got the failed command",
        died.elapsed().as_secs_f64() * 1000.0,
    );
    plugin.still_serves().await;
}
