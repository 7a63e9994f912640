//! `fetch`: the order of the checks of DESIGN §4, then dispatch.

use worker::{Context, Env, Request, Response, event};

use super::byte_reader::{ByteReader, unreadable_body};
use super::handlers::{self, Answer, Call};
use super::http::{self, Reply};
use super::replay_guard;
use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::replay::NonceClaim;
use bridge_protocol::api::HEALTHZ_PATH;
use bridge_protocol::auth::{
    Authenticated, CONTENT_SHA256_HEADER, IncomingRequest, RequestBody, STREAMING_BODY,
};
use bridge_protocol::routes::{RequestTarget, Route};

#[event(fetch)]
async fn fetch(request: Request, env: Env, _context: Context) -> worker::Result<Response> {
    let target = RequestTarget::from_url(&request.inner().url());
    let method = request.inner().method();
    if method == "GET" && target.path == HEALTHZ_PATH {
        return Response::ok("ok");
    }
    match serve(request, &env, &method, &target).await {
        (Answer::Json(reply), authenticated) => http::respond(reply, authenticated.as_ref()),
        (Answer::Stream(response), _) => Ok(response),
    }
}

/// Runs every check and the handler; the authentication is returned so the reply can be signed.
async fn serve(
    mut request: Request,
    env: &Env,
    method: &str,
    target: &RequestTarget,
) -> (Answer, Option<Authenticated>) {
    let refuse = |error: BridgeError| (Answer::Json(Reply::error(&error)), None);
    let config = match BridgeConfig::from_lookup(|name| http::var(env, name)) {
        Ok(config) => config,
        Err(error) => return refuse(error.into()),
    };
    let framed = request
        .headers()
        .get(CONTENT_SHA256_HEADER)
        .ok()
        .flatten()
        .is_some_and(|digest| digest == STREAMING_BODY);
    let body = if framed {
        Vec::new()
    } else {
        match http::read_body(&mut request, config.max_body_bytes).await {
            Ok(body) => body,
            Err(error) => return refuse(error),
        }
    };
    let digest = if framed {
        RequestBody::Framed
    } else {
        RequestBody::Complete(&body)
    };
    let now = http::unix_now();
    let authenticated = match authenticate(&request, &config, method, target, digest, now) {
        Ok(authenticated) => authenticated,
        Err(error) => return refuse(error),
    };
    let nonce = NonceClaim::new(
        &authenticated.nonce,
        now,
        config.verifier.replay_window_seconds(),
    );
    let route = Route::resolve(method, &target.path);
    let claimed_here = !matches!(route, Ok(ref route) if claimed_by_lease(route));
    if claimed_here && let Err(error) = replay_guard::claim(env, &nonce).await {
        return refuse(error);
    }
    let framed = match request.inner().body().filter(|_| framed) {
        Some(stream) => match ByteReader::filling(&stream) {
            Ok(reader) => Some(reader),
            Err(error) => {
                let error = unreadable_body(&error);
                return (Answer::Json(Reply::error(&error)), Some(authenticated));
            }
        },
        None if framed => {
            let error = BridgeError::InvalidRequest("a framed upload needs a body".into());
            return (Answer::Json(Reply::error(&error)), Some(authenticated));
        }
        None => None,
    };
    let wants_stream = request
        .headers()
        .get("Accept")
        .ok()
        .flatten()
        .is_some_and(|accept| accept.contains("text/event-stream"));
    let answer = match route {
        Ok(route) => {
            let call = Call {
                env,
                body: &body,
                raw_query: &target.raw_query,
                framed,
                wants_stream,
                authenticated: &authenticated,
                nonce,
            };
            handlers::handle(route, call)
                .await
                .unwrap_or_else(|error| Answer::Json(Reply::error(&error)))
        }
        Err(error) => Answer::Json(Reply::error(&error.into())),
    };
    (answer, Some(authenticated))
}

/// Whether the lease object claims the route's nonce itself, in the call that journals the
/// execution (see `crate::replay`); every other route's nonce is claimed before it is served.
fn claimed_by_lease(route: &Route) -> bool {
    matches!(route, Route::Exec | Route::Upload | Route::Download)
}

/// Checks the signature, clock and pinned host (not yet the nonce).
fn authenticate(
    request: &Request,
    config: &BridgeConfig,
    method: &str,
    target: &RequestTarget,
    body: RequestBody<'_>,
    now: u64,
) -> Result<Authenticated, BridgeError> {
    let header = |name: &str| request.headers().get(name).ok().flatten();
    let authorization = header("Authorization");
    let content_sha256 = header(CONTENT_SHA256_HEADER);
    let host = header("Host");
    Ok(config.verifier.verify(
        &IncomingRequest {
            authorization: authorization.as_deref(),
            content_sha256: content_sha256.as_deref(),
            method,
            host: host.as_deref(),
            path: &target.path,
            raw_query: &target.raw_query,
            body,
        },
        now,
    )?)
}
