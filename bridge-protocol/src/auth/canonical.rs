//! The canonical string that both sides sign, byte for byte.

use sha2::{Digest, Sha256};

use super::SCHEME;

/// Every input of the request signature, borrowed from the request being signed or checked.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalRequest<'a> {
    /// Identifier of the shared secret used.
    pub key_id: &'a str,
    /// Unix seconds when the client signed.
    pub timestamp: u64,
    /// Client-chosen single-use value (base64url, 16–64 characters).
    pub nonce: &'a str,
    /// HTTP method; upper-cased when rendered.
    pub method: &'a str,
    /// The pinned host (with a non-default port); lower-cased when rendered.
    pub host: &'a str,
    /// Path exactly as sent on the request line (see [`check_signable_path`]).
    pub path: &'a str,
    /// Raw query string without the `?`; canonicalised when rendered.
    pub raw_query: &'a str,
    /// Lowercase hex SHA-256 of the exact body bytes.
    pub body_sha256: &'a str,
}

impl CanonicalRequest<'_> {
    /// Renders the nine lines of DESIGN §4 joined by `\n`, without a trailing newline.
    pub fn to_canonical_string(&self) -> String {
        [
            SCHEME,
            self.key_id,
            &self.timestamp.to_string(),
            self.nonce,
            &self.method.to_ascii_uppercase(),
            &self.host.to_ascii_lowercase(),
            self.path,
            &canonical_query(self.raw_query),
            self.body_sha256,
        ]
        .join("\n")
    }
}

/// A path no request may be signed with: one a URL parser would change before the bridge sees
/// it, so that the bridge would check the signature against another path than was signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the path {path:?} cannot be signed as sent: {reason}")]
pub struct UnsignablePath {
    /// The path.
    pub path: String,
    /// What about it a URL parser would change.
    pub reason: &'static str,
}

/// Checks that `path` reaches the bridge exactly as sent: it starts with `/`, holds only RFC 3986
/// path characters (`pchar`s and `/`, escapes as `%XX`), and has no `.` or `..` segment, also
/// not percent-encoded. The runtime in front of the bridge parses the URL first (WHATWG), which
/// resolves dot segments and escapes other characters: a path in this form is the one it leaves
/// alone, so "the path as sent" and "the path the bridge sees" are the same string.
pub fn check_signable_path(path: &str) -> Result<(), UnsignablePath> {
    let refuse = |reason| {
        Err(UnsignablePath {
            path: path.to_owned(),
            reason,
        })
    };
    let Some(segments) = path.strip_prefix('/') else {
        return refuse("it does not start with '/'");
    };
    let mut rest = path.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = match (byte, tail) {
            (b'%', [high, low, after @ ..])
                if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() =>
            {
                after
            }
            (b'%', _) => return refuse("it has a '%' that does not start an escape %XX"),
            _ if byte.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&byte) => tail,
            _ => return refuse("it holds a character a URL parser would escape (send it as %XX)"),
        };
    }
    let is_dot_segment = |segment: &str| {
        let unescaped = segment.to_ascii_lowercase().replace("%2e", ".");
        unescaped == "." || unescaped == ".."
    };
    if segments.split('/').any(is_dot_segment) {
        return refuse("it has a '.' or '..' segment, which a URL parser resolves away");
    }
    Ok(())
}

/// Lowercase hex SHA-256 of `bytes`; also the body hash of an empty body when given `b""`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// SHA-256 of `bytes`, computed by this crate: the [`PayloadDigest`](super::PayloadDigest) a
/// framed body uses unless its runtime supplies a faster one.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Canonical form of a raw query: pairs split at the first `=`, percent-decoded, re-encoded with
/// RFC 3986 unreserved characters kept, sorted by key then value, joined with `&`.
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                rfc3986_encode(&percent_decode(key)),
                rfc3986_encode(&percent_decode(value)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Builds a query from pairs, every byte outside RFC 3986's unreserved set escaped, in the order
/// given (the signature canonicalises the order anyway).
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                rfc3986_encode(key.as_bytes()),
                rfc3986_encode(value.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Splits a raw query into percent-decoded pairs, in order (invalid UTF-8 is replaced).
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                String::from_utf8_lossy(&percent_decode(key)).into_owned(),
                String::from_utf8_lossy(&percent_decode(value)).into_owned(),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes; a malformed escape is kept literally so that both sides agree on it.
fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex_digits| std::str::from_utf8(hex_digits).ok())
            .and_then(|hex_digits| u8::from_str_radix(hex_digits, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    decoded
}

fn rfc3986_encode(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_signable_only_in_the_form_a_url_parser_leaves_alone() {
        for path in [
            "/api/paperclip-sandbox/v1/exec",
            "/api/paperclip-sandbox/v1/leases/pc-a_b.c~d/exec/x1/cancel",
            "/a%2Fb/%2e%2e%2e/.hidden/a.b/...",
            "/",
            "/a/!$&'()*+,;=:@",
        ] {
            assert_eq!(check_signable_path(path), Ok(()), "{path}");
        }
        for (path, reason) in [
            ("/api/paperclip-sandbox/v1/./exec", "segment"),
            ("/api/paperclip-sandbox/v1/leases/../exec", "segment"),
            ("/a/%2E/b", "segment"),
            ("/a/.%2e", "segment"),
            ("/a/%2e.", "segment"),
            ("/a/..", "segment"),
            ("/a/.", "segment"),
            ("relative/path", "start"),
            ("", "start"),
            ("/a b", "escape"),
            ("/a\\b", "escape"),
            ("/ü", "escape"),
            ("/a?b", "escape"),
            ("/a#b", "escape"),
            ("/a%zz", "%XX"),
            ("/a%4", "%XX"),
        ] {
            let error = check_signable_path(path).expect_err(path);
            assert!(error.reason.contains(reason), "{path}: {error}");
        }
    }

    #[test]
    fn empty_body_hash_is_the_sha256_of_nothing() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn canonical_query_sorts_decodes_and_reencodes() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1"), "a=1&b=2");
        assert_eq!(canonical_query("a=2&a=1"), "a=1&a=2");
        assert_eq!(canonical_query("flag&x="), "flag=&x=");
        assert_eq!(canonical_query("q=a+b%20c"), "q=a%2Bb%20c");
        assert_eq!(canonical_query("k=%7e%2d"), "k=~-");
        assert_eq!(canonical_query("p=%2Fx%2fy"), "p=%2Fx%2Fy");
        assert_eq!(canonical_query("u=%C3%A9&e=é"), "e=%C3%A9&u=%C3%A9");
        assert_eq!(canonical_query("bad=%zz%4"), "bad=%25zz%254");
        assert_eq!(canonical_query("a=b=c"), "a=b%3Dc");
        assert_eq!(canonical_query("&&a=1&"), "a=1");
    }

    #[test]
    fn canonical_string_matches_the_fixed_vector() {
        let request = CanonicalRequest {
            key_id: "primary",
            timestamp: 1_767_225_600,
            nonce: "AAECAwQFBgcICQoLDA0ODw",
            method: "post",
            host: "Bridge.Example.COM",
            path: "/api/paperclip-sandbox/v1/probe",
            raw_query: "z=1&a=%41",
            body_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        };
        assert_eq!(
            request.to_canonical_string(),
            "PCB1-HMAC-SHA256\nprimary\n1767225600\nAAECAwQFBgcICQoLDA0ODw\nPOST\n\
             bridge.example.com\n/api/paperclip-sandbox/v1/probe\na=A&z=1\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn path_is_taken_verbatim() {
        let request = CanonicalRequest {
            key_id: "k",
            timestamp: 1,
            nonce: "n",
            method: "GET",
            host: "h",
            path: "/a/../b%2F%7e",
            raw_query: "",
            body_sha256: "x",
        };
        assert!(
            request
                .to_canonical_string()
                .contains("\n/a/../b%2F%7e\n\n")
        );
    }
}
