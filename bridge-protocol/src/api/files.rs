//! `POST /files/upload` and `POST /files/download`: bytes between a client and a lease's sandbox,
//! as framed bodies (docs/file-transfer.md).

use serde::{Deserialize, Serialize};

use crate::auth::{decode_query, encode_query};
use crate::fields::FieldError;

/// What the bytes of a transfer are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferFormat {
    /// The content of one regular file.
    #[default]
    File,
    /// A tar stream of a directory's content (members relative to it).
    Tar,
}

impl TransferFormat {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Tar => "tar",
        }
    }
}

/// Where an upload goes; sent as the query of `POST /files/upload`, whose body is the framed
/// bytes. `File` writes `path` atomically; `Tar` replaces directory `path` with the archive's tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadTarget {
    /// The lease whose sandbox receives the bytes.
    pub provider_lease_id: String,
    /// Absolute sandbox path of the file or directory.
    pub path: String,
    /// How the bytes are laid down.
    pub format: TransferFormat,
    /// Permission bits of the file (`File` only); `0644` when absent.
    pub mode: Option<u32>,
    /// The bridge's deadline for the whole upload in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl UploadTarget {
    /// The query string (without `?`), in a fixed order.
    pub fn to_query(&self) -> String {
        let mut pairs = vec![
            ("lease", self.provider_lease_id.clone()),
            ("path", self.path.clone()),
            ("format", self.format.as_str().to_owned()),
        ];
        if let Some(mode) = self.mode {
            pairs.push(("mode", format!("{mode:o}")));
        }
        if let Some(timeout_ms) = self.timeout_ms {
            pairs.push(("timeoutMs", timeout_ms.to_string()));
        }
        encode_query(&pairs)
    }

    /// Parses a raw query; unknown, repeated or malformed parameters are errors.
    pub fn from_query(raw: &str) -> Result<Self, FieldError> {
        let mut target = Self::default();
        let mut seen = Vec::new();
        for (key, value) in decode_query(raw) {
            if seen.contains(&key) {
                return Err(FieldError(format!("query parameter {key:?} is repeated")));
            }
            match key.as_str() {
                "lease" => target.provider_lease_id = value,
                "path" => target.path = value,
                "format" => {
                    target.format = match value.as_str() {
                        "file" => TransferFormat::File,
                        "tar" => TransferFormat::Tar,
                        _ => {
                            return Err(FieldError(format!(
                                "format must be \"file\" or \"tar\", got {value:?}"
                            )));
                        }
                    }
                }
                "mode" => {
                    let mode = u32::from_str_radix(&value, 8)
                        .ok()
                        .filter(|mode| *mode <= 0o777)
                        .ok_or_else(|| {
                            FieldError(format!(
                                "mode must be octal permission bits from 0 to 777, got {value:?}"
                            ))
                        })?;
                    target.mode = Some(mode);
                }
                "timeoutMs" => {
                    let timeout = value.parse().map_err(|_| {
                        FieldError(format!("timeoutMs must be a whole number, got {value:?}"))
                    })?;
                    target.timeout_ms = Some(timeout);
                }
                _ => {
                    return Err(FieldError(format!(
                        "unknown query parameter {key:?}; expected lease, path, format, mode, timeoutMs"
                    )));
                }
            }
            seen.push(key);
        }
        if target.provider_lease_id.is_empty() {
            return Err(FieldError("query parameter lease is required".into()));
        }
        if target.path.is_empty() {
            return Err(FieldError("query parameter path is required".into()));
        }
        Ok(target)
    }
}

/// The answer to an upload, once the bytes are in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadResult {
    /// The journal's id for the upload.
    pub execution_id: String,
    /// Body bytes received and laid down.
    pub bytes: u64,
    /// Wall time measured by the bridge.
    pub duration_ms: u64,
}

/// `POST /files/download`: what to read from the sandbox. The answer is a framed body of the
/// file's bytes or of a tar stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadRequest {
    /// The lease whose sandbox is read.
    pub provider_lease_id: String,
    /// Absolute sandbox path of the file or directory.
    pub path: String,
    /// `File`: the file's bytes; `Tar`: the directory's content as a tar stream.
    #[serde(default)]
    pub format: TransferFormat,
    /// GNU tar `--exclude` patterns (`Tar` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Archive what symlinks point to instead of the links (`Tar` only).
    #[serde(default)]
    pub follow_symlinks: bool,
    /// The bridge's deadline for the whole download in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_target_survives_its_query() {
        let target = UploadTarget {
            provider_lease_id: "pc-env-1".into(),
            path: "/workspace/a b/ü&=%.tar".into(),
            format: TransferFormat::Tar,
            mode: Some(0o755),
            timeout_ms: Some(60_000),
        };
        let query = target.to_query();
        assert_eq!(
            query,
            "lease=pc-env-1&path=%2Fworkspace%2Fa%20b%2F%C3%BC%26%3D%25.tar&format=tar&mode=755&timeoutMs=60000"
        );
        assert_eq!(UploadTarget::from_query(&query), Ok(target));
    }

    #[test]
    fn a_bad_upload_query_names_its_fault() {
        for (query, needle) in [
            ("path=%2Fa", "lease is required"),
            ("lease=x", "path is required"),
            ("lease=x&path=%2Fa&format=zip", "format must be"),
            ("lease=x&path=%2Fa&mode=999", "mode must be octal"),
            ("lease=x&path=%2Fa&mode=4755", "mode must be octal"),
            ("lease=x&path=%2Fa&lease=y", "repeated"),
            ("lease=x&path=%2Fa&owner=root", "unknown query parameter"),
            ("lease=x&path=%2Fa&timeoutMs=soon", "whole number"),
        ] {
            let error = UploadTarget::from_query(query).expect_err(query);
            assert!(error.0.contains(needle), "{query}: {error}");
        }
    }
}
