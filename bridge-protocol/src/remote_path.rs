//! Paths inside a sandbox, as clients send them.

use std::fmt;

/// Why a path cannot be used inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemotePathError {
    /// Relative paths depend on a shell's state; the bridge never guesses.
    #[error("{field} must be an absolute path starting with '/', got {value:?}")]
    NotAbsolute {
        /// Which request field.
        field: &'static str,
        /// What was sent.
        value: String,
    },
    /// Control characters (NUL, newline, …) break shells and logs.
    #[error("{field} must not contain control characters")]
    ControlCharacter {
        /// Which request field.
        field: &'static str,
    },
    /// Longer than the kernel's path limit.
    #[error("{field} is longer than {max} bytes", max = RemotePath::MAX_LEN)]
    TooLong {
        /// Which request field.
        field: &'static str,
    },
}

/// An absolute path without control characters, safe to quote into a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePath(String);

impl RemotePath {
    /// Longest path accepted (Linux `PATH_MAX`).
    pub const MAX_LEN: usize = 4096;

    /// Validates `value` sent in the request field `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, RemotePathError> {
        if !value.starts_with('/') {
            return Err(RemotePathError::NotAbsolute {
                field,
                value: value.to_owned(),
            });
        }
        if value.chars().any(char::is_control) {
            return Err(RemotePathError::ControlCharacter { field });
        }
        if value.len() > Self::MAX_LEN {
            return Err(RemotePathError::TooLong { field });
        }
        Ok(Self(value.to_owned()))
    }

    /// A client's `requestedCwd`, or the default working directory when it names none.
    pub fn requested_cwd(value: Option<&str>) -> Result<Self, RemotePathError> {
        Self::parse(
            "requestedCwd",
            value.unwrap_or(crate::api::DEFAULT_REMOTE_CWD),
        )
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_absolute_paths_and_rejects_the_rest() {
        assert_eq!(
            RemotePath::parse("cwd", "/workspace/a b").map(|path| path.to_string()),
            Ok("/workspace/a b".to_owned())
        );
        assert!(matches!(
            RemotePath::parse("cwd", "workspace"),
            Err(RemotePathError::NotAbsolute { field: "cwd", .. })
        ));
        assert!(matches!(
            RemotePath::parse("cwd", ""),
            Err(RemotePathError::NotAbsolute { .. })
        ));
        assert_eq!(
            RemotePath::parse("cwd", "/a\nb"),
            Err(RemotePathError::ControlCharacter { field: "cwd" })
        );
        assert_eq!(
            RemotePath::parse("cwd", &format!("/{}", "a".repeat(4096))),
            Err(RemotePathError::TooLong { field: "cwd" })
        );
    }
}
