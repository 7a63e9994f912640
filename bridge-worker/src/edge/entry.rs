//! `fetch`: the order of the checks of DESIGN §4, then dispatch.

use worker::{Context, Env, Request, Response, event};

use super::handlers;
use super::http::{self, Reply};
use super::replay_guard;
use crate::api::HEALTHZ_PATH;
use crate::auth::{Authenticated, IncomingRequest};
use crate::config::BridgeConfig;
use crate::error::BridgeError;
use crate::routes::{RequestTarget, Route};

#[event(fetch)]
async fn fetch(request: Request, env: Env, _context: Context) -> worker::Result<Response> {
    let target = RequestTarget::from_url(&request.inner().url());
    let method = request.inner().method();
    if method == "GET" && target.path == HEALTHZ_PATH {
        return Response::ok("ok");
    }
    let (reply, authenticated) = serve(request, &env, &method, &target).await;
    http::respond(reply, authenticated.as_ref())
}

/// Runs every check and the handler; the authentication is returned so the reply can be signed.
async fn serve(
    mut request: Request,
    env: &Env,
    method: &str,
    target: &RequestTarget,
) -> (Reply, Option<Authenticated>) {
    let config = match BridgeConfig::from_lookup(|name| http::var(env, name)) {
        Ok(config) => config,
        Err(error) => return (Reply::error(&error.into()), None),
    };
    let body = match http::read_body(&mut request, config.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return (Reply::error(&error), None),
    };
    let authenticated = match authenticate(&request, env, &config, method, target, &body).await {
        Ok(authenticated) => authenticated,
        Err(error) => return (Reply::error(&error), None),
    };
    let reply = match Route::resolve(method, &target.path) {
        Ok(route) => handlers::handle(route, env, &body)
            .await
            .unwrap_or_else(|error| Reply::error(&error)),
        Err(error) => Reply::error(&error),
    };
    (reply, Some(authenticated))
}

async fn authenticate(
    request: &Request,
    env: &Env,
    config: &BridgeConfig,
    method: &str,
    target: &RequestTarget,
    body: &[u8],
) -> Result<Authenticated, BridgeError> {
    let header = |name: &str| request.headers().get(name).ok().flatten();
    let authorization = header("Authorization");
    let content_sha256 = header(crate::auth::CONTENT_SHA256_HEADER);
    let host = header("Host");
    let now = http::unix_now();
    let authenticated = config.verifier.verify(
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
    )?;
    let remember_until = now + config.verifier.replay_window_seconds();
    replay_guard::claim(env, &authenticated.nonce, remember_until, now).await?;
    Ok(authenticated)
}
