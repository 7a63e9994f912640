//! The route table of the API, shared by the Worker's dispatcher and the clients.

use crate::api::BASE_PATH;
use crate::error::BridgeError;

/// An API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`.
    Health,
    /// `POST /probe`.
    Probe,
}

impl Route {
    const ALL: [Route; 2] = [Route::Health, Route::Probe];

    /// The HTTP method the route accepts.
    pub fn method(self) -> &'static str {
        match self {
            Self::Health => "GET",
            Self::Probe => "POST",
        }
    }

    /// The route's path below [`BASE_PATH`].
    fn suffix(self) -> &'static str {
        match self {
            Self::Health => "/health",
            Self::Probe => "/probe",
        }
    }

    /// The full request path.
    pub fn path(self) -> String {
        format!("{BASE_PATH}{}", self.suffix())
    }

    /// Finds the route for a request, or the 404/405 error to answer.
    pub fn resolve(method: &str, path: &str) -> Result<Self, BridgeError> {
        let suffix = path.strip_prefix(BASE_PATH).unwrap_or_default();
        let candidates: Vec<Route> = Self::ALL
            .into_iter()
            .filter(|route| !suffix.is_empty() && route.suffix() == suffix)
            .collect();
        if let Some(route) = candidates
            .iter()
            .find(|route| route.method().eq_ignore_ascii_case(method))
        {
            return Ok(*route);
        }
        if candidates.is_empty() {
            return Err(BridgeError::NotFound {
                method: method.to_owned(),
                path: path.to_owned(),
            });
        }
        Err(BridgeError::MethodNotAllowed {
            method: method.to_owned(),
            path: path.to_owned(),
            allowed: candidates.iter().map(|route| route.method()).collect(),
        })
    }
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
    fn resolves_known_routes() {
        for route in Route::ALL {
            assert_eq!(Route::resolve(route.method(), &route.path()), Ok(route));
        }
        assert_eq!(
            Route::resolve("GET", "/api/paperclip-sandbox/v1/health"),
            Ok(Route::Health)
        );
    }

    #[test]
    fn answers_404_and_405() {
        assert!(matches!(
            Route::resolve("GET", "/api/paperclip-sandbox/v1/nope"),
            Err(BridgeError::NotFound { .. })
        ));
        assert!(matches!(
            Route::resolve("GET", "/health"),
            Err(BridgeError::NotFound { .. })
        ));
        assert!(matches!(
            Route::resolve("GET", "/api/paperclip-sandbox/v1"),
            Err(BridgeError::NotFound { .. })
        ));
        assert_eq!(
            Route::resolve("GET", "/api/paperclip-sandbox/v1/probe"),
            Err(BridgeError::MethodNotAllowed {
                method: "GET".into(),
                path: "/api/paperclip-sandbox/v1/probe".into(),
                allowed: vec!["POST"],
            })
        );
    }
}
