//! `/api/read`, `/api/write`, `/api/delete`, `/api/mkdir`, `/api/exists`.

use axum::Json;

use super::extract::{ApiJson, SandboxHandle};
use crate::local_sandbox::api::{
    DirectoryCreated, FileExists, FileRead, MkdirRequest, PathDone, PathRequest, ReadRequest,
    Success, WriteRequest,
};
use crate::local_sandbox::errors::ApiError;
use crate::local_sandbox::files;

/// `POST /api/read`.
pub async fn read(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<ReadRequest>,
) -> Result<Json<Success<FileRead>>, ApiError> {
    let file = files::read(sandbox.dirs(), request.path.clone(), request.encoding).await?;
    Ok(Json(Success::new(FileRead {
        path: request.path,
        is_binary: file.encoding == "base64",
        content: file.content,
        encoding: file.encoding,
        mime_type: file.mime_type,
        size: file.size,
    })))
}

/// `POST /api/write`.
pub async fn write(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<WriteRequest>,
) -> Result<Json<Success<PathDone>>, ApiError> {
    files::write(
        sandbox.dirs(),
        request.path.clone(),
        request.content,
        request.encoding,
    )
    .await?;
    Ok(Json(Success::new(PathDone { path: request.path })))
}

/// `POST /api/delete`.
pub async fn delete(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<PathRequest>,
) -> Result<Json<Success<PathDone>>, ApiError> {
    files::delete(sandbox.dirs(), request.path.clone()).await?;
    Ok(Json(Success::new(PathDone { path: request.path })))
}

/// `POST /api/mkdir`.
pub async fn mkdir(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<MkdirRequest>,
) -> Result<Json<Success<DirectoryCreated>>, ApiError> {
    files::mkdir(sandbox.dirs(), request.path.clone(), request.recursive).await?;
    Ok(Json(Success::new(DirectoryCreated {
        path: request.path,
        recursive: request.recursive,
    })))
}

/// `POST /api/exists`.
pub async fn exists(
    SandboxHandle(sandbox): SandboxHandle,
    ApiJson(request): ApiJson<PathRequest>,
) -> Result<Json<Success<FileExists>>, ApiError> {
    let exists = files::exists(sandbox.dirs(), request.path.clone()).await?;
    Ok(Json(Success::new(FileExists {
        path: request.path,
        exists,
    })))
}
