//! Authentication end to end: every 401 reason, key rotation, replay, response signatures, and a
//! bridge that refuses to serve without its configuration. Real workerd, real Durable Objects.

mod common;

use bridge_protocol::api::{DownloadRequest, ErrorCode, HealthResponse};
use bridge_protocol::auth::{AuthRejectionReason, CONTENT_SHA256_HEADER};
use bridge_protocol::routes::Route;
use bridge_tests::client::{BridgeClient, ClientError, LIMIT, PreparedRequest, RawResponse};
use common::TestStack;
use common::leases::{acquire, run, shell};
use futures_util::future::join_all;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn signed_health(client: &BridgeClient) -> PreparedRequest {
    let route = Route::Health;
    client
        .prepare(route.method(), &route.path(), "", b"")
        .expect("signed")
}

/// Asserts that `response` is signed for `request` exactly when a holder of the key signed it:
/// the refusal of a genuine request is trustworthy, one of a forgery says nothing.
fn assert_signed_for(
    client: &BridgeClient,
    request: &PreparedRequest,
    response: &RawResponse,
    by_key_holder: bool,
) {
    let status = response.status;
    if by_key_holder {
        assert!(
            client.is_authentic(request, response),
            "the {status} refusal of a request signed with a configured key is signed for it"
        );
    } else {
        assert!(
            response.signature.is_none(),
            "the {status} refusal of a request no key holder signed is never signed"
        );
    }
}

/// Asserts a 401 with `reason`.
fn assert_rejected(response: &RawResponse, reason: AuthRejectionReason) {
    assert_eq!(
        response.status,
        401,
        "body: {}",
        String::from_utf8_lossy(&response.body)
    );
    let body = response.error_body().expect("JSON error body");
    assert_eq!(body.error, ErrorCode::Unauthorized);
    assert_eq!(
        body.details.and_then(|details| details.reason),
        Some(reason),
        "{}",
        body.message
    );
    assert!(!body.message.is_empty());
}

#[tokio::test]
async fn every_authentication_failure_has_its_reason() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();

    let accepted = signed_health(&client);
    let response = client.send(&accepted, LIMIT).await.expect("sent");
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(
        client.is_authentic(&accepted, &response),
        "response must be signed"
    );
    let health: HealthResponse = serde_json::from_slice(&response.body).expect("health body");
    assert_eq!(health.provider, "cloudflare");

    let mut unsigned = signed_health(&client);
    unsigned.set_header("Authorization", None);
    let response = client.send(&unsigned, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::MissingAuthorization);
    assert!(
        response.signature.is_none(),
        "an unauthenticated answer is never signed"
    );

    let (_, secret) = &stack.stack.keys().primary;
    let stranger = stack.client_with("nobody", secret);
    let from_stranger = signed_health(&stranger);
    let response = client.send(&from_stranger, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::UnknownKey);
    assert_signed_for(&stranger, &from_stranger, &response, false);

    for offset in [-301_i64, 301] {
        let timestamp = unix_now().saturating_add_signed(offset);
        let route = Route::Health;
        let stale = client
            .prepare_at(route.method(), &route.path(), "", b"", timestamp)
            .expect("signed");
        let response = client.send(&stale, LIMIT).await.expect("sent");
        assert_rejected(&response, AuthRejectionReason::StaleTimestamp);
        assert_signed_for(&client, &stale, &response, true);
    }

    let mut elsewhere = signed_health(&client);
    elsewhere.set_header("Host", Some("bridge.other-deployment.example"));
    let response = client.send(&elsewhere, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::HostMismatch);
    assert_signed_for(&client, &elsewhere, &response, true);

    let route = Route::Probe;
    let mut changed_body = client
        .prepare(
            route.method(),
            &route.path(),
            "",
            br#"{"requestedCwd":"/workspace/a"}"#,
        )
        .expect("signed");
    changed_body.body = br#"{"requestedCwd":"/workspace/b"}"#.to_vec();
    let response = client.send(&changed_body, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::BadBodyHash);
    assert_signed_for(&client, &changed_body, &response, true);

    let mut missing_hash = signed_health(&client);
    missing_hash.set_header(CONTENT_SHA256_HEADER, None);
    let response = client.send(&missing_hash, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::BadBodyHash);
    assert_signed_for(&client, &missing_hash, &response, false);

    let mut changed_path = signed_health(&client);
    changed_path.path = format!("{}/", Route::Health.path());
    let response = client.send(&changed_path, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::BadSignature);
    assert_signed_for(&client, &changed_path, &response, false);

    let route = Route::Health;
    let mut changed_query = client
        .prepare(route.method(), &route.path(), "verbose=1", b"")
        .expect("signed");
    changed_query.query = "verbose=2".to_owned();
    let response = client.send(&changed_query, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::BadSignature);

    let (key_id, _) = &stack.stack.keys().primary;
    let forger = stack.client_with(key_id, "this-is-not-the-secret-of-that-key-id");
    let forged = signed_health(&forger);
    let response = client.send(&forged, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::BadSignature);
    assert_signed_for(&client, &forged, &response, false);

    let mut garbled = signed_health(&client);
    garbled.set_header("Authorization", Some("Bearer some-token"));
    let response = client.send(&garbled, LIMIT).await.expect("sent");
    assert_rejected(&response, AuthRejectionReason::MalformedAuthorization);

    let once = signed_health(&client);
    let first = client.send(&once, LIMIT).await.expect("sent");
    assert_eq!(first.status, 200);
    let second = client.send(&once, LIMIT).await.expect("sent");
    assert_rejected(&second, AuthRejectionReason::ReplayedNonce);
    assert_signed_for(&client, &once, &second, true);

    // A path a URL parser would change is never signed; workerd resolves dot segments before
    // the Worker sees the path, so one sent with them is checked against the resolved path.
    let dotted = "/api/paperclip-sandbox/v1/./health";
    let refused = client
        .prepare("GET", dotted, "", b"")
        .expect_err("unsignable");
    assert!(
        refused.to_string().contains("'.' or '..' segment"),
        "{refused}"
    );
    let resolved = signed_health(&client);
    let host = stack.stack.bridge_host();
    let mut headers = vec![("Host", host)];
    headers.extend(
        resolved
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    let addr = client
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address");
    let (status, body) =
        bridge_tests::harness::http_exchange(addr, "GET", dotted, &headers).expect("exchanged");
    assert_eq!(
        status, 200,
        "signed for the resolved path, sent with a dot segment: {body}"
    );

    let (next_id, next_secret) = &stack.stack.keys().secondary;
    let rotated = stack.client_with(next_id, next_secret);
    let request = signed_health(&rotated);
    let response = rotated.send(&request, LIMIT).await.expect("sent");
    assert_eq!(response.status, 200, "every listed key is accepted");
    assert!(rotated.is_authentic(&request, &response));
    assert!(
        !client.is_authentic(&request, &response),
        "responses are signed with the request's own key"
    );

    stack.stop_and_check_for_leaks();
}

/// Execution requests have their nonce claimed by the lease object, in the step that journals
/// them; this is the race that must still have exactly one winner.
#[tokio::test]
async fn an_exec_sent_ten_times_at_once_runs_once_and_its_copies_are_refused() {
    let stack = TestStack::start(|_| {});
    let client = stack.client();
    let lease = acquire(&client, "env-replay", "run-1")
        .await
        .provider_lease_id;
    let route = Route::Exec;
    let body =
        serde_json::to_vec(&shell(&lease, "echo ran >> /workspace/replays")).expect("serialisable");
    let once = client
        .prepare(route.method(), &route.path(), "", &body)
        .expect("signed");
    let answers = join_all((0..10).map(|_| client.send(&once, LIMIT))).await;
    let mut accepted = 0;
    for answer in answers {
        let answer = answer.expect("answered");
        if answer.status == 200 {
            accepted += 1;
            assert!(client.is_authentic(&once, &answer));
        } else {
            assert_rejected(&answer, AuthRejectionReason::ReplayedNonce);
        }
    }
    assert_eq!(accepted, 1, "exactly one copy is served");
    let ran = run(&client, &shell(&lease, "wc -l < /workspace/replays")).await;
    assert_eq!(ran.stdout.trim(), "1", "the command ran once");

    let mut streamed = client
        .prepare(route.method(), &route.path(), "", &body)
        .expect("signed");
    streamed.set_header("Accept", Some("text/event-stream"));
    let first = client.send(&streamed, LIMIT).await.expect("answered");
    assert_eq!(first.status, 200);
    let second = client.send(&streamed, LIMIT).await.expect("answered");
    assert_rejected(&second, AuthRejectionReason::ReplayedNonce);

    let route = Route::Download;
    let download = serde_json::to_vec(&DownloadRequest {
        provider_lease_id: lease.clone(),
        path: "/workspace/replays".into(),
        ..DownloadRequest::default()
    })
    .expect("serialisable");
    let once = client
        .prepare(route.method(), &route.path(), "", &download)
        .expect("signed");
    assert_eq!(
        client.send(&once, LIMIT).await.expect("answered").status,
        200
    );
    let again = client.send(&once, LIMIT).await.expect("answered");
    assert_rejected(&again, AuthRejectionReason::ReplayedNonce);

    let ran = run(&client, &shell(&lease, "wc -l < /workspace/replays")).await;
    assert_eq!(ran.stdout.trim(), "2", "the streamed copy ran once too");
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn bad_requests_get_documented_error_bodies_and_the_bridge_keeps_serving() {
    let stack = TestStack::start(|options| {
        options
            .vars
            .push(("BRIDGE_MAX_BODY_BYTES".to_owned(), "4096".to_owned()));
    });
    let client = stack.client();
    let cases: [(&str, &str, Vec<u8>, u16, ErrorCode); 5] = [
        (
            "POST",
            "/api/paperclip-sandbox/v1/probe",
            b"{not json".to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            "/api/paperclip-sandbox/v1/probe",
            br#"{"timeoutMs":"soon"}"#.to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "POST",
            "/api/paperclip-sandbox/v1/probe",
            br#"{"requestedCwd":"relative/dir"}"#.to_vec(),
            400,
            ErrorCode::InvalidRequest,
        ),
        (
            "GET",
            "/api/paperclip-sandbox/v1/no-such-route",
            Vec::new(),
            404,
            ErrorCode::NotFound,
        ),
        (
            "GET",
            "/api/paperclip-sandbox/v1/probe",
            Vec::new(),
            405,
            ErrorCode::MethodNotAllowed,
        ),
    ];
    for (method, path, body, status, code) in cases {
        let request = client.prepare(method, path, "", &body).expect("signed");
        let response = client.send(&request, LIMIT).await.expect("sent");
        assert_eq!(response.status, status, "{method} {path}");
        assert!(
            client.is_authentic(&request, &response),
            "{method} {path}: signed error"
        );
        let error = response.error_body().expect("JSON error body");
        assert_eq!(error.error, code, "{method} {path}: {}", error.message);
    }

    let route = Route::Probe;
    let oversized = client
        .prepare(route.method(), &route.path(), "", &vec![b' '; 5000])
        .expect("signed");
    let response = client.send(&oversized, LIMIT).await.expect("sent");
    assert_eq!(response.status, 413);
    assert_signed_for(&client, &oversized, &response, true);
    let error = response.error_body().expect("JSON error body");
    assert_eq!(error.error, ErrorCode::BodyTooLarge);
    assert_eq!(
        error.details.and_then(|details| details.limit_bytes),
        Some(4096)
    );
    let big_stdin = serde_json::json!({"requestedCwd": "/workspace", "pad": "x".repeat(5000)});
    let refused = client
        .post::<serde_json::Value>(Route::Probe, &big_stdin)
        .await
        .expect_err("over the limit");
    assert!(
        matches!(refused, ClientError::Bridge { status: 413, .. }),
        "the client trusts the bridge's own reason: {refused:?}"
    );
    assert!(
        refused.to_string().contains("BRIDGE_MAX_BODY_BYTES"),
        "{refused}"
    );

    let health: HealthResponse = client.fetch(Route::Health).await.expect("still serving");
    assert!(health.ok);
    assert!(
        !stack.stack.bridge_log().contains("panicked"),
        "the Worker panicked:\n{}",
        stack.stack.bridge_log()
    );
    stack.stop_and_check_for_leaks();
}

async fn assert_refuses_everything_but_healthz(stack: &TestStack, missing: &str) {
    let client = stack.client();
    let response = client
        .send(&signed_health(&client), LIMIT)
        .await
        .expect("sent");
    assert_eq!(response.status, 500);
    let error = response.error_body().expect("JSON error body");
    assert_eq!(error.error, ErrorCode::BridgeMisconfigured);
    assert!(error.message.contains(missing), "{}", error.message);

    let route = Route::Probe;
    let mut unsigned = client
        .prepare(route.method(), &route.path(), "", b"{}")
        .expect("signed");
    unsigned.set_header("Authorization", None);
    let response = client.send(&unsigned, LIMIT).await.expect("sent");
    assert_eq!(response.status, 500, "no unauthenticated mode");

    let healthz = bridge_tests::http_client()
        .get(format!("{}/healthz", stack.stack.bridge_url()))
        .send()
        .await
        .expect("reachable");
    assert_eq!(healthz.status(), 200);
    assert_eq!(healthz.text().await.expect("body"), "ok");
}

#[tokio::test]
async fn a_bridge_without_pinned_host_refuses_to_serve() {
    let stack = TestStack::start(|options| options.pin_host = false);
    assert_refuses_everything_but_healthz(&stack, "BRIDGE_HOST").await;
    stack.stop_and_check_for_leaks();
}

#[tokio::test]
async fn a_bridge_without_keys_refuses_to_serve() {
    let stack = TestStack::start(|options| options.configure_keys = false);
    assert_refuses_everything_but_healthz(&stack, "BRIDGE_HMAC_KEYS").await;
    stack.stop_and_check_for_leaks();
}
