//! Checking a download request before anything runs.

use bridge_protocol::api::{DownloadRequest, TransferFormat};
use bridge_protocol::remote_path::RemotePath;

use crate::error::BridgeError;

/// Most `exclude` patterns one download may carry (the host sends a few dozen).
pub const MAX_EXCLUDES: usize = 1024;
/// Longest `exclude` pattern.
pub const MAX_EXCLUDE_LEN: usize = 4096;

/// The source path of a valid `request`; a bad field is a 400 naming it.
pub fn download_source(request: &DownloadRequest) -> Result<RemotePath, BridgeError> {
    if request.provider_lease_id.is_empty() {
        return Err(BridgeError::InvalidRequest(
            "providerLeaseId is required".into(),
        ));
    }
    let source = RemotePath::parse("path", &request.path)?;
    if request.format == TransferFormat::File
        && (!request.exclude.is_empty() || request.follow_symlinks)
    {
        return Err(BridgeError::InvalidRequest(
            "exclude and followSymlinks apply to tar downloads only".into(),
        ));
    }
    if request.exclude.len() > MAX_EXCLUDES {
        return Err(BridgeError::InvalidRequest(format!(
            "at most {MAX_EXCLUDES} exclude patterns are accepted, got {}",
            request.exclude.len()
        )));
    }
    for (index, pattern) in request.exclude.iter().enumerate() {
        if pattern.is_empty() || pattern.len() > MAX_EXCLUDE_LEN || pattern.contains(['\0', '\n']) {
            return Err(BridgeError::InvalidRequest(format!(
                "exclude[{index}] must be 1–{MAX_EXCLUDE_LEN} bytes without NUL or newline"
            )));
        }
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> DownloadRequest {
        DownloadRequest {
            provider_lease_id: "pc-env-1".into(),
            path: path.into(),
            format: TransferFormat::Tar,
            ..DownloadRequest::default()
        }
    }

    #[test]
    fn accepts_a_plain_request() {
        let source = download_source(&DownloadRequest {
            exclude: vec!["node_modules".into(), "*/dist/*".into()],
            ..request("/workspace/run")
        })
        .expect("valid");
        assert_eq!(source.as_str(), "/workspace/run");
    }

    #[test]
    fn refuses_each_bad_field_with_its_name() {
        let cases = [
            (request("relative"), "absolute"),
            (
                DownloadRequest {
                    provider_lease_id: String::new(),
                    ..request("/w")
                },
                "providerLeaseId",
            ),
            (
                DownloadRequest {
                    exclude: vec!["a\nb".into()],
                    ..request("/w")
                },
                "exclude[0]",
            ),
            (
                DownloadRequest {
                    exclude: vec!["x".into(); MAX_EXCLUDES + 1],
                    ..request("/w")
                },
                "at most 1024",
            ),
            (
                DownloadRequest {
                    format: TransferFormat::File,
                    follow_symlinks: true,
                    ..request("/w")
                },
                "tar downloads only",
            ),
        ];
        for (request, needle) in cases {
            let error = download_source(&request).expect_err(needle);
            assert!(error.to_string().contains(needle), "{error}");
        }
    }
}
