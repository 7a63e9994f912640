//! The client against an in-memory transport that answers, fails or stalls on demand.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::api::{DownloadRequest, ErrorCode, ExecResult};
use crate::auth::{
    Authorization, FrameSealer, IncomingRequest, KeyRing, RequestBody, StreamOutcome, Verifier,
};
use crate::sse::encode_event;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// What the fake does with one request.
enum Answer {
    /// Status and body, signed for the request's nonce.
    Signed(u16, String),
    /// Status and body, without a signature.
    Unsigned(u16, String),
    /// A transport failure.
    Fail(TransportErrorKind),
    /// A 200 event stream: these chunks, each signed-aware (`{nonce}` is replaced), then the end.
    Stream(Vec<String>),
    /// A 200 framed body signed for the request, its bytes changed by the function (cut,
    /// corrupted) before they are sent in pieces of 7 bytes.
    Frames(Vec<FakeFrame>, fn(&mut Vec<u8>)),
}

/// One frame of a fake download.
enum FakeFrame {
    Data(&'static [u8]),
    End,
    Error(&'static str),
}

#[derive(Clone, Default)]
struct Fake {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    slept: Arc<Mutex<Vec<Duration>>>,
}

struct FakeBody(VecDeque<Vec<u8>>);

impl ResponseBody for FakeBody {
    async fn chunk(&mut self, _limit: Duration) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(self.0.pop_front())
    }
}

impl Transport for Fake {
    type Body = FakeBody;

    async fn send(
        &self,
        request: HttpRequest,
        _limit: Duration,
    ) -> Result<HttpResponse<FakeBody>, TransportError> {
        let nonce = request
            .headers
            .iter()
            .find(|(name, _)| name == "Authorization")
            .and_then(|(_, value)| Authorization::parse(value).ok())
            .map(|authorization| authorization.nonce.to_string())
            .unwrap_or_default();
        self.requests.lock().expect("lock").push(request);
        let answer = self
            .answers
            .lock()
            .expect("lock")
            .pop_front()
            .expect("an answer for every request");
        let secret = SecretKey::new(SECRET).expect("valid");
        let whole = |status: u16, body: String, signed: bool| HttpResponse {
            status,
            signature: signed
                .then(|| ResponseSignature::sign(&secret, &nonce, status, body.as_bytes())),
            content_type: Some(
                if body.starts_with('<') {
                    "text/html"
                } else {
                    "application/json"
                }
                .to_owned(),
            ),
            body: FakeBody(VecDeque::from([body.into_bytes()])),
        };
        match answer {
            Answer::Signed(status, body) => Ok(whole(status, body, true)),
            Answer::Unsigned(status, body) => Ok(whole(status, body, false)),
            Answer::Fail(kind) => Err(TransportError {
                kind,
                message: "connection reset".into(),
            }),
            Answer::Frames(frames, tamper) => {
                let seed = ResponseSignature::sign_streaming(&secret, &nonce, 200);
                let mut sealer = FrameSealer::new(secret.clone(), seed);
                let mut body = Vec::new();
                for frame in frames {
                    body.extend(match frame {
                        FakeFrame::Data(data) => sealer.data(data),
                        FakeFrame::End => sealer.end(),
                        FakeFrame::Error(json) => sealer.error(json.as_bytes()),
                    });
                }
                tamper(&mut body);
                Ok(HttpResponse {
                    status: 200,
                    signature: Some(hex::encode(seed)),
                    content_type: Some("application/octet-stream".to_owned()),
                    body: FakeBody(body.chunks(7).map(<[u8]>::to_vec).collect()),
                })
            }
            Answer::Stream(chunks) => Ok(HttpResponse {
                status: 200,
                signature: None,
                content_type: Some("text/event-stream".to_owned()),
                body: FakeBody(
                    chunks
                        .into_iter()
                        .map(|chunk| chunk.replace("{signature}", &complete_signature(&nonce)))
                        .map(String::into_bytes)
                        .collect(),
                ),
            }),
        }
    }

    async fn sleep(&self, duration: Duration) {
        self.slept.lock().expect("lock").push(duration);
    }
}

fn complete_signature(nonce: &str) -> String {
    StreamOutcome::Complete {
        exit_code: Some(0),
        timed_out: false,
        stdout_bytes: 2,
        stderr_bytes: 0,
    }
    .sign(&SecretKey::new(SECRET).expect("valid"), nonce)
}

fn fake_client(answers: Vec<Answer>) -> (BridgeClient<Fake>, Fake) {
    let fake = Fake {
        answers: Arc::new(Mutex::new(answers.into())),
        ..Fake::default()
    };
    let client = BridgeClient::new(
        fake.clone(),
        "http://127.0.0.1:8787/",
        "127.0.0.1:8787",
        KeyId::parse("main").expect("valid"),
        SecretKey::new(SECRET).expect("valid"),
    );
    (client, fake)
}

const HEALTH: &str = r#"{"ok":true,"provider":"cloudflare","bridgeVersion":"0.1.0","apiVersion":1,"capabilities":{"reuseLease":true,"namedSessions":true,"streaming":true,"cancel":true,"responseSigning":true}}"#;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    // The fake never waits, so polling to completion needs no runtime.
    let waker = std::task::Waker::noop();
    let mut context = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

#[test]
fn requests_are_signed_for_the_pinned_host_and_answers_must_be_signed_too() {
    let (client, fake) = fake_client(vec![Answer::Signed(200, HEALTH.into())]);
    let health: serde_json::Value = block_on(client.fetch(Route::Health)).expect("signed answer");
    assert_eq!(health["ok"], true);
    assert_eq!(
        fake.requests.lock().expect("lock")[0].url,
        "http://127.0.0.1:8787/api/paperclip-sandbox/v1/health"
    );
    let request = client.prepare("GET", "/health", "", b"").expect("signed");
    let keys = KeyRing::parse(&format!("main:{SECRET}")).expect("keys");
    let incoming = |host| IncomingRequest {
        authorization: request.header("authorization"),
        content_sha256: request.header(CONTENT_SHA256_HEADER),
        method: "GET",
        host: Some(host),
        path: "/health",
        raw_query: "",
        body: RequestBody::Complete(b""),
    };
    let pinned = Verifier::new(keys.clone(), "127.0.0.1:8787", 300);
    assert!(
        pinned
            .verify(&incoming("127.0.0.1:8787"), unix_now())
            .is_ok()
    );
    let elsewhere = Verifier::new(keys, "bridge.example.com", 300);
    assert!(
        elsewhere
            .verify(&incoming("bridge.example.com"), unix_now())
            .is_err(),
        "a request signed for one host is useless at another"
    );
}

#[test]
fn an_unsigned_page_or_a_forged_signature_is_never_a_result() {
    let (client, _) = fake_client(vec![
        Answer::Unsigned(200, "<html><body>Captive portal</body></html>".into()),
        Answer::Unsigned(200, HEALTH.into()),
    ]);
    for _ in 0..2 {
        let error =
            block_on(client.fetch::<serde_json::Value>(Route::Health)).expect_err("unsigned");
        assert!(
            matches!(error, ClientError::NotTheBridge { status: 200, .. }),
            "{error}"
        );
    }
}

#[test]
fn signed_errors_and_refusals_keep_what_the_bridge_said() {
    let (client, _) = fake_client(vec![
        Answer::Signed(409, r#"{"error":"sandbox_state_lost","message":"gone"}"#.into()),
        Answer::Unsigned(
            401,
            r#"{"error":"unauthorized","message":"bad signature","details":{"reason":"bad_signature"}}"#
                .into(),
        ),
    ]);
    let lost = block_on(client.fetch::<serde_json::Value>(Route::Health)).expect_err("409");
    assert_eq!(lost.code(), Some(ErrorCode::SandboxStateLost));
    let refused = block_on(client.fetch::<serde_json::Value>(Route::Health)).expect_err("401");
    assert!(
        matches!(refused, ClientError::Refused { status: 401, .. }),
        "{refused}"
    );
}

#[test]
fn only_transient_failures_of_idempotent_calls_are_retried() {
    let (client, fake) = fake_client(vec![
        Answer::Fail(TransportErrorKind::Connection),
        Answer::Unsigned(503, "<html>busy</html>".into()),
        Answer::Signed(200, HEALTH.into()),
    ]);
    let policy = CallPolicy::retried(Duration::from_secs(30));
    let health: serde_json::Value =
        block_on(client.call(Route::Health, None::<&()>, policy)).expect("third attempt");
    assert_eq!(health["ok"], true);
    assert_eq!(
        *fake.slept.lock().expect("lock"),
        [Duration::from_millis(250), Duration::from_millis(1000)]
    );

    let (client, fake) = fake_client(vec![Answer::Fail(TransportErrorKind::Connection)]);
    let once = CallPolicy::once(Duration::from_secs(30));
    let error = block_on(client.call::<serde_json::Value>(Route::Health, None::<&()>, once))
        .expect_err("not retried");
    assert!(error.is_transient());
    assert_eq!(fake.requests.lock().expect("lock").len(), 1);

    let (client, fake) = fake_client(vec![Answer::Unsigned(
        401,
        r#"{"error":"unauthorized","message":"no"}"#.into(),
    )]);
    let error = block_on(client.call::<serde_json::Value>(Route::Health, None::<&()>, policy))
        .expect_err("refused");
    assert!(!error.is_transient());
    assert_eq!(
        fake.requests.lock().expect("lock").len(),
        1,
        "a refusal is final"
    );
}

#[test]
fn retries_stop_at_the_overall_deadline() {
    let (client, fake) = fake_client(vec![
        Answer::Fail(TransportErrorKind::TimedOut),
        Answer::Fail(TransportErrorKind::TimedOut),
    ]);
    let policy = CallPolicy::retried(Duration::from_millis(600));
    let error = block_on(client.call::<serde_json::Value>(Route::Health, None::<&()>, policy))
        .expect_err("deadline");
    assert!(matches!(error, ClientError::TimedOut(_)), "{error}");
    assert_eq!(
        fake.requests.lock().expect("lock").len(),
        2,
        "the second pause (1 s) does not fit in what is left"
    );
}

#[test]
fn a_stream_ends_with_its_verified_terminal_event_or_is_truncated() {
    let complete = serde_json::to_string(&ExecResult {
        execution_id: "e1".into(),
        exit_code: Some(0),
        stdout_bytes: 2,
        signature: Some("{signature}".into()),
        ..ExecResult::default()
    })
    .expect("json");
    let stdout = encode_event("stdout", Some(1), r#"{"data":"hi"}"#);
    let (client, _) = fake_client(vec![
        Answer::Stream(vec![
            stdout.clone(),
            encode_event("complete", None, &complete),
        ]),
        Answer::Stream(vec![stdout]),
    ]);
    let request = ExecRequest::default();
    let mut stream =
        block_on(client.exec_stream(&request, Duration::from_secs(5))).expect("stream");
    let mut events = Vec::new();
    while let Some(event) = block_on(stream.next()).expect("readable") {
        events.push(event);
    }
    assert!(matches!(&events[0], StreamEvent::Output { data, .. } if data == "hi"));
    assert!(matches!(&events[1], StreamEvent::Complete(result) if result.exit_code == Some(0)));

    let mut cut = block_on(client.exec_stream(&request, Duration::from_secs(5))).expect("stream");
    assert!(matches!(
        block_on(cut.next()),
        Ok(Some(StreamEvent::Output { .. }))
    ));
    assert_eq!(block_on(cut.next()), Err(ClientError::Truncated));
}

fn download_all(answer: Answer) -> Result<Vec<u8>, ClientError> {
    let (client, _) = fake_client(vec![answer]);
    block_on(async {
        let request = DownloadRequest {
            provider_lease_id: "pc-env-1".into(),
            path: "/workspace/a".into(),
            ..DownloadRequest::default()
        };
        let mut download = client.download(&request, Duration::from_secs(5)).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = download.next_chunk().await? {
            bytes.extend(chunk);
        }
        Ok(bytes)
    })
}

#[test]
fn a_download_yields_only_verified_bytes_and_ends_exactly_once() {
    let whole = download_all(Answer::Frames(
        vec![
            FakeFrame::Data(b"hello "),
            FakeFrame::Data(b"world"),
            FakeFrame::End,
        ],
        |_| {},
    ));
    assert_eq!(whole.expect("authentic"), b"hello world");

    let cut = download_all(Answer::Frames(
        vec![FakeFrame::Data(b"hello "), FakeFrame::End],
        |body| body.truncate(body.len() - 10),
    ));
    assert!(matches!(cut, Err(ClientError::Truncated)), "{cut:?}");

    let corrupted = download_all(Answer::Frames(
        vec![FakeFrame::Data(b"hello "), FakeFrame::End],
        |body| body[6] ^= 1,
    ));
    assert!(
        matches!(corrupted, Err(ClientError::Frames(_))),
        "{corrupted:?}"
    );

    let failed = download_all(Answer::Frames(
        vec![
            FakeFrame::Data(b"part"),
            FakeFrame::Error(r#"{"error":"path_not_found","message":"/workspace/a is not a regular file in the sandbox"}"#),
        ],
        |_| {},
    ))
    .expect_err("an error frame is an error");
    assert_eq!(failed.code(), Some(ErrorCode::PathNotFound));
    assert_eq!(failed.status(), Some(404));
    assert!(failed.to_string().contains("/workspace/a"), "{failed}");
}

#[test]
fn a_download_answered_by_something_else_is_not_the_bridge() {
    let page = download_all(Answer::Unsigned(200, "<html>captive portal</html>".into()));
    assert!(
        matches!(page, Err(ClientError::NotTheBridge { .. })),
        "{page:?}"
    );
    let signed_error = download_all(Answer::Signed(
        404,
        r#"{"error":"lease_not_found","message":"lease pc-env-1 does not exist"}"#.into(),
    ));
    assert_eq!(
        signed_error.expect_err("an error").code(),
        Some(ErrorCode::LeaseNotFound)
    );
}

#[test]
fn a_path_the_bridge_would_not_see_as_sent_is_never_signed() {
    let (client, _) = fake_client(Vec::new());
    for path in ["/api/paperclip-sandbox/v1/./exec", "/api/x/../health"] {
        let error = client.prepare("POST", path, "", b"").expect_err(path);
        assert!(matches!(error, ClientError::Request(_)), "{path}: {error}");
        assert!(error.to_string().contains(path), "{error}");
        assert!(
            client.prepare_streaming("POST", path, "").is_err(),
            "{path}"
        );
    }
    assert!(
        client
            .prepare("POST", "/api/paperclip-sandbox/v1/exec", "", b"")
            .is_ok()
    );
}

#[test]
fn a_page_answering_a_stream_request_is_not_the_bridge_and_not_a_network_failure() {
    let (client, _) = fake_client(vec![Answer::Unsigned(
        200,
        "<!DOCTYPE html><html><body>Captive portal</body></html>".into(),
    )]);
    let request = ExecRequest {
        provider_lease_id: "pc-1".into(),
        command: "true".into(),
        ..ExecRequest::default()
    };
    let Err(error) = block_on(client.exec_stream(&request, Duration::from_secs(5))) else {
        panic!("a page is not a stream");
    };
    assert!(
        matches!(error, ClientError::NotTheBridge { status: 200, .. }),
        "{error}"
    );
    assert!(!error.is_transient());
}

#[test]
fn an_endless_line_fails_the_stream_instead_of_growing_memory() {
    let piece = "x".repeat(1 << 20);
    let mut chunks = vec!["event: stdout\ndata: {\"data\":\"".to_owned()];
    chunks.extend(std::iter::repeat_n(piece, 17));
    let (client, _) = fake_client(vec![Answer::Stream(chunks)]);
    let request = ExecRequest::default();
    let mut stream =
        block_on(client.exec_stream(&request, Duration::from_secs(5))).expect("stream");
    let error = block_on(stream.next()).expect_err("oversized");
    assert!(
        matches!(
            error,
            ClientError::Stream(StreamError::Oversized {
                limit: crate::sse::MAX_EVENT_BYTES
            })
        ),
        "{error}"
    );
    assert!(!error.is_transient());
}
