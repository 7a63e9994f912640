//! `fetch`: the order of the checks of DESIGN §4, then dispatch.

use worker::{Context, Env, Request, Response, event};

use super::byte_reader::{ByteReader, unreadable_body};
use super::handlers::{self, Answer, Call};
use super::http::{self, Reply};
use super::replay_guard;
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
/// A refusal is signed too whenever a holder of a configured key signed the request (see
/// [`bridge_protocol::auth::Verifier::signer_of`]): its client can then trust the reason.
async fn serve(
    mut request: Request,
    env: &Env,
    method: &str,
    target: &RequestTarget,
) -> (Answer, Option<Authenticated>) {
    let config = match http::config(env) {
        Ok(config) => config,
        Err(error) => return (Answer::Json(Reply::error(&error.into())), None),
    };
    let head = SignedHead::of(&request);
    let refuse = |error: BridgeError| {
        let signer = config
            .verifier
            .signer_of(&head.incoming(method, target, RequestBody::Framed));
        (Answer::Json(Reply::error(&error)), signer)
    };
    let framed = head.content_sha256.as_deref() == Some(STREAMING_BODY);
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
    let authenticated = match config
        .verifier
        .verify(&head.incoming(method, target, digest), now)
    {
        Ok(authenticated) => authenticated,
        Err(error) => return refuse(error.into()),
    };
    let nonce = NonceClaim::new(
        &authenticated.nonce,
        now,
        config.verifier.replay_window_seconds(),
    );
    let route = Route::resolve(method, &target.path);
    let claimed_here = !matches!(route, Ok(ref route) if claimed_by_lease(route));
    if claimed_here && let Err(error) = replay_guard::claim(env, &nonce).await {
        return (Answer::Json(Reply::error(&error)), Some(authenticated));
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

/// The headers authentication reads, taken from the request once.
struct SignedHead {
    authorization: Option<String>,
    content_sha256: Option<String>,
    host: Option<String>,
}

impl SignedHead {
    fn of(request: &Request) -> Self {
        let header = |name: &str| request.headers().get(name).ok().flatten();
        Self {
            authorization: header("Authorization"),
            content_sha256: header(CONTENT_SHA256_HEADER),
            host: header("Host"),
        }
    }

    /// The request as the verifier sees it, with `body` read or to be read.
    fn incoming<'a>(
        &'a self,
        method: &'a str,
        target: &'a RequestTarget,
        body: RequestBody<'a>,
    ) -> IncomingRequest<'a> {
        IncomingRequest {
            authorization: self.authorization.as_deref(),
            content_sha256: self.content_sha256.as_deref(),
            method,
            host: self.host.as_deref(),
            path: &target.path,
            raw_query: &target.raw_query,
            body,
        }
    }
}
