//! File operations on a sandbox's `/workspace` and `/tmp`, done by the server directly on the
//! state directories. Paths never reach outside `<state>/<id>`: they are normalised lexically and
//! checked against symlinks first. Results and errors follow the container's `file-service.ts`.

use std::fs;
use std::io;
use std::path::Path;

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::errors::{ApiError, FileOperation};
use super::paths::{PathError, SandboxDirs};

/// Largest file `read` returns, encoded (the container's `MAX_ENCODED_FILE_SIZE`).
pub const MAX_ENCODED_FILE_SIZE: u64 = 32 * 1024 * 1024;

/// Lenient like Node's `Buffer.from(…, "base64")`: padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// MIME types that are text although not `text/*` (the container's `TEXT_MIME_TYPES`, the ones
/// [`mime_type`] can produce).
const TEXT_MIME_TYPES: [&str; 7] = [
    "application/javascript",
    "application/json",
    "application/toml",
    "application/x-sh",
    "application/xml",
    "application/yaml",
    "inode/x-empty",
];

/// A file's content, encoded for JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    /// Text, or base64 for binary content.
    pub content: String,
    /// `"utf-8"` or `"base64"`.
    pub encoding: &'static str,
    /// MIME type, from the extension or the content.
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
}

fn invalid_path(error: PathError) -> ApiError {
    ApiError::validation("path", error.to_string())
}

fn failure(path: &str, operation: FileOperation, what: &str, error: &io::Error) -> ApiError {
    if error.kind() == io::ErrorKind::NotFound {
        return ApiError::FileNotFound {
            path: path.to_owned(),
            operation,
        };
    }
    ApiError::FileSystem {
        path: path.to_owned(),
        operation,
        message: format!("Failed to {what} '{path}': {error}"),
        stderr: error.to_string(),
    }
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::Internal(format!("file operation failed: {error}")))?
}

/// `/api/read`: `encoding` `"base64"` or `"utf-8"` forces one; otherwise binary content comes back
/// as base64 and text as UTF-8.
pub async fn read(
    dirs: &SandboxDirs,
    path: String,
    encoding: Option<String>,
) -> Result<FileContent, ApiError> {
    let host = dirs.contained_host_path(&path).map_err(invalid_path)?;
    blocking(move || {
        let operation = FileOperation::Read;
        let metadata =
            fs::metadata(&host).map_err(|error| failure(&path, operation, "read file", &error))?;
        if metadata.is_dir() {
            return Err(ApiError::IsDirectory {
                message: format!("Cannot read directory '{path}' as a file"),
                path,
                operation,
            });
        }
        if metadata.len() > MAX_ENCODED_FILE_SIZE {
            return Err(ApiError::FileTooLarge {
                path,
                size: metadata.len(),
                max_size: MAX_ENCODED_FILE_SIZE,
            });
        }
        let bytes =
            fs::read(&host).map_err(|error| failure(&path, operation, "read file", &error))?;
        let mime_type = mime_type(&host, &bytes);
        let base64 = match encoding.as_deref() {
            Some("base64") => true,
            Some("utf-8" | "utf8") => false,
            _ => is_binary(mime_type),
        };
        Ok(FileContent {
            content: if base64 {
                BASE64.encode(&bytes)
            } else {
                String::from_utf8_lossy(&bytes).into_owned()
            },
            encoding: if base64 { "base64" } else { "utf-8" },
            mime_type: mime_type.to_owned(),
            size: metadata.len(),
        })
    })
    .await
}

/// `/api/write`: creates missing parent directories; `encoding` `"base64"` decodes `content`.
pub async fn write(
    dirs: &SandboxDirs,
    path: String,
    content: String,
    encoding: Option<String>,
) -> Result<(), ApiError> {
    let host = dirs.contained_host_path(&path).map_err(invalid_path)?;
    let bytes = if encoding.as_deref() == Some("base64") {
        let valid = content
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='));
        let invalid = || {
            ApiError::validation(
                "content",
                format!(
                    "Invalid base64 content for '{path}': must contain only A-Z, a-z, 0-9, +, /, ="
                ),
            )
        };
        if !valid {
            return Err(invalid());
        }
        BASE64.decode(&content).map_err(|_| invalid())?
    } else {
        content.into_bytes()
    };
    blocking(move || {
        let write = || -> io::Result<()> {
            if let Some(parent) = host.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(&host, bytes)
        };
        write().map_err(|error| failure(&path, FileOperation::Write, "write file", &error))
    })
    .await
}

/// `/api/delete`: files only.
pub async fn delete(dirs: &SandboxDirs, path: String) -> Result<(), ApiError> {
    let host = dirs.contained_host_path(&path).map_err(invalid_path)?;
    blocking(move || {
        let operation = FileOperation::Delete;
        let metadata = fs::metadata(&host).map_err(|error| failure(&path, operation, "delete file", &error))?;
        if metadata.is_dir() {
            return Err(ApiError::IsDirectory {
                message: format!(
                    "Cannot delete directory with deleteFile() at '{path}'. Use exec('rm -rf <path>') instead."
                ),
                path,
                operation,
            });
        }
        fs::remove_file(&host).map_err(|error| failure(&path, operation, "delete file", &error))
    })
    .await
}

/// `/api/mkdir`.
pub async fn mkdir(dirs: &SandboxDirs, path: String, recursive: bool) -> Result<(), ApiError> {
    let host = dirs.contained_host_path(&path).map_err(invalid_path)?;
    blocking(move || {
        let created = if recursive {
            fs::create_dir_all(&host)
        } else {
            fs::create_dir(&host)
        };
        created.map_err(|error| ApiError::FileSystem {
            message: "mkdir operation failed with exit code 1".to_owned(),
            stderr: format!("mkdir: cannot create directory '{path}': {error}"),
            path,
            operation: FileOperation::Mkdir,
        })
    })
    .await
}

/// `/api/exists` (follows symlinks, like `test -e`).
pub async fn exists(dirs: &SandboxDirs, path: String) -> Result<bool, ApiError> {
    let host = dirs.contained_host_path(&path).map_err(invalid_path)?;
    blocking(move || Ok(host.exists())).await
}

/// MIME type from the extension, else from the content (what the container gets from Bun and
/// `file --mime-type`, for common cases).
fn mime_type(path: &Path, bytes: &[u8]) -> &'static str {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    let by_extension = match extension.as_deref() {
        Some("txt" | "log") => Some("text/plain"),
        Some("md") => Some("text/markdown"),
        Some("html" | "htm") => Some("text/html"),
        Some("css") => Some("text/css"),
        Some("csv") => Some("text/csv"),
        Some("js" | "mjs" | "cjs") => Some("application/javascript"),
        Some("json") => Some("application/json"),
        Some("xml") => Some("application/xml"),
        Some("yaml" | "yml") => Some("application/yaml"),
        Some("toml") => Some("application/toml"),
        Some("sh") => Some("application/x-sh"),
        Some("svg") => Some("image/svg+xml"),
        Some("png") => Some("image/png"),
        Some("jpg" | "jpeg") => Some("image/jpeg"),
        Some("gif") => Some("image/gif"),
        Some("webp") => Some("image/webp"),
        Some("pdf") => Some("application/pdf"),
        Some("zip") => Some("application/zip"),
        Some("gz") => Some("application/gzip"),
        Some("tar") => Some("application/x-tar"),
        Some("wasm") => Some("application/wasm"),
        _ => None,
    };
    by_extension.unwrap_or(if bytes.is_empty() {
        "inode/x-empty"
    } else if !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
        "text/plain"
    } else {
        "application/octet-stream"
    })
}

/// The container's `isBinaryMimeType`.
fn is_binary(mime_type: &str) -> bool {
    let subtype = mime_type.split('/').nth(1).unwrap_or_default();
    !(mime_type.starts_with("text/")
        || TEXT_MIME_TYPES.contains(&mime_type)
        || subtype.ends_with("+json")
        || subtype.ends_with("+xml"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{is_binary, mime_type};

    #[test]
    fn detects_text_and_binary_content() {
        assert_eq!(mime_type(Path::new("a.json"), b"{}"), "application/json");
        assert_eq!(mime_type(Path::new("noext"), b"hello\n"), "text/plain");
        assert_eq!(mime_type(Path::new("noext"), b""), "inode/x-empty");
        assert_eq!(
            mime_type(Path::new("blob"), b"\x00\x01"),
            "application/octet-stream"
        );
        assert_eq!(mime_type(Path::new("PIC.PNG"), b"\x89PNG"), "image/png");
        assert!(!is_binary("text/plain"));
        assert!(!is_binary("image/svg+xml"));
        assert!(!is_binary("application/json"));
        assert!(is_binary("image/png"));
        assert!(is_binary("application/octet-stream"));
    }
}
