//! The route table of the API, shared by the Worker's dispatcher and the clients.

use crate::api::BASE_PATH;

/// Why a request matches no route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such route.
    #[error("there is no route {method} {path}")]
    NotFound {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The route exists, but not with this method.
    #[error("{path} does not accept {method}; use {}", allowed.join(" or "))]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// Methods the route accepts.
        allowed: Vec<&'static str>,
    },
}

/// An API route, with its path parameter where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `POST /probe`.
    Probe,
    /// `POST /leases/acquire`.
    AcquireLease,
    /// `POST /leases/resume`.
    ResumeLease,
    /// `POST /leases/release`.
    ReleaseLease,
    /// `GET /leases/{id}`.
    InspectLease(String),
    /// `DELETE /leases/{id}`.
    DestroyLease(String),
    /// `POST /exec`.
    Exec,
    /// `POST /exec/{executionId}/cancel`.
    CancelExec(String),
    /// `POST /files/upload`: a framed body into the sandbox.
    Upload,
    /// `POST /files/download`: a framed answer out of the sandbox.
    Download,
}

/// A path pattern below [`BASE_PATH`]: literal segments, `None` for the one parameter.
type Pattern = &'static [Option<&'static str>];

/// One row of the route table: method, pattern, constructor from the parameter.
type RouteRow = (&'static str, Pattern, fn(String) -> Route);

/// Every route.
const TABLE: [RouteRow; 11] = [
    ("GET", &[Some("health")], |_| Route::Health),
    ("POST", &[Some("probe")], |_| Route::Probe),
    ("POST", &[Some("leases"), Some("acquire")], |_| {
        Route::AcquireLease
    }),
    ("POST", &[Some("leases"), Some("resume")], |_| {
        Route::ResumeLease
    }),
    ("POST", &[Some("leases"), Some("release")], |_| {
        Route::ReleaseLease
    }),
    ("GET", &[Some("leases"), None], Route::InspectLease),
    ("DELETE", &[Some("leases"), None], Route::DestroyLease),
    ("POST", &[Some("exec")], |_| Route::Exec),
    (
        "POST",
        &[Some("exec"), None, Some("cancel")],
        Route::CancelExec,
    ),
    ("POST", &[Some("files"), Some("upload")], |_| Route::Upload),
    ("POST", &[Some("files"), Some("download")], |_| {
        Route::Download
    }),
];

impl Route {
    /// The HTTP method the route accepts.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Health | Self::InspectLease(_) => "GET",
            Self::DestroyLease(_) => "DELETE",
            Self::Probe
            | Self::AcquireLease
            | Self::ResumeLease
            | Self::ReleaseLease
            | Self::Exec
            | Self::CancelExec(_)
            | Self::Upload
            | Self::Download => "POST",
        }
    }

    /// The full request path. Parameters are inserted as they are: lease and execution ids are
    /// restricted to URL-safe characters.
    pub fn path(&self) -> String {
        let suffix = match self {
            Self::Health => "/health".to_owned(),
            Self::Probe => "/probe".to_owned(),
            Self::AcquireLease => "/leases/acquire".to_owned(),
            Self::ResumeLease => "/leases/resume".to_owned(),
            Self::ReleaseLease => "/leases/release".to_owned(),
            Self::InspectLease(id) | Self::DestroyLease(id) => format!("/leases/{id}"),
            Self::Exec => "/exec".to_owned(),
            Self::CancelExec(id) => format!("/exec/{id}/cancel"),
            Self::Upload => "/files/upload".to_owned(),
            Self::Download => "/files/download".to_owned(),
        };
        format!("{BASE_PATH}{suffix}")
    }

    /// Finds the route for a request, or the 404/405 error to answer.
    pub fn resolve(method: &str, path: &str) -> Result<Self, RouteError> {
        let segments: Vec<&str> = match path.strip_prefix(BASE_PATH) {
            Some(rest) if rest.starts_with('/') => rest[1..].split('/').collect(),
            _ => Vec::new(),
        };
        let mut allowed = Vec::new();
        for (route_method, pattern, build) in TABLE {
            let Some(parameter) = match_pattern(pattern, &segments) else {
                continue;
            };
            if route_method.eq_ignore_ascii_case(method) {
                return Ok(build(parameter));
            }
            allowed.push(route_method);
        }
        if allowed.is_empty() {
            return Err(RouteError::NotFound {
                method: method.to_owned(),
                path: path.to_owned(),
            });
        }
        Err(RouteError::MethodNotAllowed {
            method: method.to_owned(),
            path: path.to_owned(),
            allowed,
        })
    }
}

/// Matches `segments` against `pattern`; returns the parameter (empty when there is none).
fn match_pattern(pattern: Pattern, segments: &[&str]) -> Option<String> {
    if pattern.len() != segments.len() {
        return None;
    }
    let mut parameter = String::new();
    for (expected, segment) in pattern.iter().zip(segments) {
        match expected {
            Some(literal) if literal == segment => {}
            None if !segment.is_empty() => parameter = (*segment).to_owned(),
            _ => return None,
        }
    }
    Some(parameter)
}

/// Path and raw query of a request URL, exactly as received, for signing and routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    /// Path, starting with `/`.
    pub path: String,
    /// Query without the `?`; empty when absent.
    pub raw_query: String,
}

impl RequestTarget {
    /// Splits an absolute URL (`scheme://authority/path?query#fragment`) without normalising it.
    pub fn from_url(url: &str) -> Self {
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let target = after_scheme
            .find('/')
            .map_or("/", |start| &after_scheme[start..]);
        let target = target.split_once('#').map_or(target, |(before, _)| before);
        let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        Self {
            path: path.to_owned(),
            raw_query: raw_query.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls_without_normalising() {
        let target = RequestTarget::from_url("http://127.0.0.1:8787/a/../b%2f?x=1&y#frag");
        assert_eq!(target.path, "/a/../b%2f");
        assert_eq!(target.raw_query, "x=1&y");
        let target = RequestTarget::from_url("https://bridge.example");
        assert_eq!(target.path, "/");
        assert_eq!(target.raw_query, "");
        let target = RequestTarget::from_url("https://bridge.example/p?");
        assert_eq!(
            (target.path.as_str(), target.raw_query.as_str()),
            ("/p", "")
        );
    }

    #[test]
    fn resolves_every_route_from_its_own_path() {
        let routes = [
            Route::Health,
            Route::Probe,
            Route::AcquireLease,
            Route::ResumeLease,
            Route::ReleaseLease,
            Route::InspectLease("pc-env-1".into()),
            Route::DestroyLease("pc-env-1".into()),
            Route::Exec,
            Route::CancelExec("exec-1".into()),
            Route::Upload,
            Route::Download,
        ];
        for route in routes {
            assert_eq!(Route::resolve(route.method(), &route.path()), Ok(route));
        }
        assert_eq!(
            Route::resolve("GET", "/api/paperclip-sandbox/v1/health"),
            Ok(Route::Health)
        );
    }

    #[test]
    fn answers_404_and_405() {
        for path in [
            "/api/paperclip-sandbox/v1/nope",
            "/health",
            "/api/paperclip-sandbox/v1",
            "/api/paperclip-sandbox/v1/",
            "/api/paperclip-sandbox/v1/leases/",
            "/api/paperclip-sandbox/v1/leases/a/b",
            "/api/paperclip-sandbox/v1/exec/x/cancel/more",
            "/api/paperclip-sandbox/v1health",
        ] {
            assert!(
                matches!(
                    Route::resolve("GET", path),
                    Err(RouteError::NotFound { .. })
                ),
                "{path}"
            );
        }
        assert_eq!(
            Route::resolve("GET", "/api/paperclip-sandbox/v1/probe"),
            Err(RouteError::MethodNotAllowed {
                method: "GET".into(),
                path: "/api/paperclip-sandbox/v1/probe".into(),
                allowed: vec!["POST"],
            })
        );
        assert!(matches!(
            Route::resolve("PUT", "/api/paperclip-sandbox/v1/leases/x"),
            Err(RouteError::MethodNotAllowed { allowed, .. }) if allowed == ["GET", "DELETE"]
        ));
    }
}
