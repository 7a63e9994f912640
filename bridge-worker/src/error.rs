//! Every way a request can fail, and the one place where a failure becomes a status and a body.

use bridge_protocol::api::{ErrorBody, ErrorCode, ErrorDetails, LeaseState};
use bridge_protocol::auth::{AuthRejection, AuthRejectionReason, FrameError};
use bridge_protocol::fields::FieldError;
use bridge_protocol::remote_path::RemotePathError;
use bridge_protocol::routes::RouteError;
use bridge_protocol::sandbox_id::SandboxIdError;

use crate::config::ConfigError;
use crate::sandbox::SandboxError;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// The deployment is not configured; nothing is served.
    #[error("the bridge is misconfigured: {0}")]
    Misconfigured(#[from] ConfigError),
    /// Authentication failed.
    #[error(transparent)]
    Unauthorized(#[from] AuthRejection),
    /// The body is larger than `BRIDGE_MAX_BODY_BYTES`.
    #[error("the request body exceeds the limit of {limit} bytes (BRIDGE_MAX_BODY_BYTES)")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// The argv, environment and working directory, as the command's script quotes them, are
    /// larger than [`crate::script::MAX_COMMAND_BYTES`]; nothing ran.
    #[error(
        "the command's arguments, environment and working directory take {size} bytes once quoted for the shell, over the limit of {limit} bytes (the sandbox starts each command as one argument string, and Linux takes at most 128 KiB in one); pass large data through stdin or a file"
    )]
    CommandTooLarge {
        /// Their size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The body or a parameter is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// No route matches.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// No lease with this id exists.
    #[error("lease {0} does not exist")]
    LeaseNotFound(String),
    /// The lease exists but cannot serve this request in its state.
    #[error("lease {lease_id} is {state:?}, not active")]
    LeaseNotActive {
        /// The lease.
        lease_id: String,
        /// Its state.
        state: LeaseState,
    },
    /// The sandbox no longer holds the lease's sentinel: its files and processes are gone.
    #[error(
        "the sandbox of lease {0} lost its state (it was restarted or wiped); acquire a new lease"
    )]
    SandboxStateLost(String),
    /// No process could receive an environment variable of this name; nothing was run.
    #[error(
        "environment variable name {0:?} is invalid: a name must not be empty and must contain neither '=' nor NUL"
    )]
    InvalidEnvKey(String),
    /// A framed upload body is not authentic or not complete; nothing of it is laid down.
    #[error("the upload body is refused: {0}")]
    BadFrame(#[from] FrameError),
    /// A download's source is missing in the sandbox or not of the requested kind.
    #[error("{0}")]
    PathNotFound(String),
    /// The sandbox failed.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// An error body produced by a Durable Object of the bridge, passed on unchanged.
    #[error("{}", body.message)]
    Relayed {
        /// Its status.
        status: u16,
        /// The body.
        body: ErrorBody,
    },
    /// A bug or an unexpected runtime failure in the bridge itself.
    #[error("internal bridge error: {0}")]
    Internal(String),
}

impl BridgeError {
    /// Wraps a JSON decoding failure of a request body.
    pub fn bad_json(error: &serde_json::Error) -> Self {
        Self::InvalidRequest(format!(
            "the request body is not valid for this route: {error}"
        ))
    }

    /// HTTP status of the error response.
    pub fn status(&self) -> u16 {
        match self {
            Self::Misconfigured(_) | Self::Internal(_) => 500,
            Self::Unauthorized(_) => 401,
            Self::BodyTooLarge { .. } => 413,
            Self::InvalidRequest(_) => 400,
            Self::BadFrame(FrameError::BadTag { .. }) => 401,
            Self::BadFrame(_) => 400,
            Self::Route(RouteError::NotFound { .. })
            | Self::LeaseNotFound(_)
            | Self::PathNotFound(_) => 404,
            Self::LeaseNotActive { .. } | Self::SandboxStateLost(_) => 409,
            Self::InvalidEnvKey(_) | Self::CommandTooLarge { .. } => 422,
            Self::Relayed { status, .. } => *status,
            Self::Route(RouteError::MethodNotAllowed { .. }) => 405,
            Self::Sandbox(SandboxError::Timeout(_)) => 504,
            Self::Sandbox(_) => 502,
        }
    }

    /// The JSON error body.
    pub fn to_body(&self) -> ErrorBody {
        let (error, details) = match self {
            Self::Misconfigured(_) => (ErrorCode::BridgeMisconfigured, None),
            Self::Unauthorized(rejection) => (
                ErrorCode::Unauthorized,
                Some(ErrorDetails {
                    reason: Some(rejection.reason()),
                    ..ErrorDetails::default()
                }),
            ),
            Self::BodyTooLarge { limit } => (
                ErrorCode::BodyTooLarge,
                Some(ErrorDetails {
                    limit_bytes: Some(*limit),
                    ..ErrorDetails::default()
                }),
            ),
            Self::CommandTooLarge { size, limit } => (
                ErrorCode::CommandTooLarge,
                Some(ErrorDetails {
                    limit_bytes: Some(*limit),
                    size_bytes: Some(*size),
                    ..ErrorDetails::default()
                }),
            ),
            Self::InvalidRequest(_) => (ErrorCode::InvalidRequest, None),
            Self::BadFrame(FrameError::BadTag { .. }) => (
                ErrorCode::Unauthorized,
                Some(ErrorDetails {
                    reason: Some(AuthRejectionReason::BadBodyHash),
                    ..ErrorDetails::default()
                }),
            ),
            Self::BadFrame(_) => (ErrorCode::InvalidRequest, None),
            Self::PathNotFound(_) => (ErrorCode::PathNotFound, None),
            Self::Route(RouteError::NotFound { .. }) => (ErrorCode::NotFound, None),
            Self::LeaseNotFound(_) => (ErrorCode::LeaseNotFound, None),
            Self::LeaseNotActive { .. } => (ErrorCode::LeaseNotActive, None),
            Self::SandboxStateLost(_) => (ErrorCode::SandboxStateLost, None),
            Self::InvalidEnvKey(_) => (ErrorCode::InvalidEnvKey, None),
            Self::Relayed { body, .. } => return body.clone(),
            Self::Route(RouteError::MethodNotAllowed { allowed, .. }) => (
                ErrorCode::MethodNotAllowed,
                Some(ErrorDetails {
                    allowed_methods: allowed.iter().map(|method| (*method).to_owned()).collect(),
                    ..ErrorDetails::default()
                }),
            ),
            Self::Sandbox(SandboxError::Timeout(_)) => (ErrorCode::SandboxTimeout, None),
            Self::Sandbox(_) => (ErrorCode::SandboxError, None),
            Self::Internal(_) => (ErrorCode::InternalError, None),
        };
        ErrorBody {
            error,
            message: self.to_string(),
            details,
        }
    }
}

impl From<FieldError> for BridgeError {
    fn from(error: FieldError) -> Self {
        Self::InvalidRequest(error.0)
    }
}

impl From<RemotePathError> for BridgeError {
    fn from(error: RemotePathError) -> Self {
        Self::InvalidRequest(error.to_string())
    }
}

impl From<SandboxIdError> for BridgeError {
    fn from(error: SandboxIdError) -> Self {
        Self::InvalidRequest(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_error_to_its_status_and_code() {
        let cases = [
            (
                BridgeError::Misconfigured(ConfigError::Missing("BRIDGE_HOST")),
                500,
                ErrorCode::BridgeMisconfigured,
            ),
            (
                BridgeError::Unauthorized(AuthRejection::BadSignature),
                401,
                ErrorCode::Unauthorized,
            ),
            (
                BridgeError::BodyTooLarge { limit: 10 },
                413,
                ErrorCode::BodyTooLarge,
            ),
            (
                BridgeError::CommandTooLarge { size: 2, limit: 1 },
                422,
                ErrorCode::CommandTooLarge,
            ),
            (
                BridgeError::InvalidRequest("x".into()),
                400,
                ErrorCode::InvalidRequest,
            ),
            (
                BridgeError::Route(RouteError::NotFound {
                    method: "GET".into(),
                    path: "/x".into(),
                }),
                404,
                ErrorCode::NotFound,
            ),
            (
                BridgeError::Sandbox(SandboxError::Timeout(5)),
                504,
                ErrorCode::SandboxTimeout,
            ),
            (
                BridgeError::Sandbox(SandboxError::Other("x".into())),
                502,
                ErrorCode::SandboxError,
            ),
            (
                BridgeError::Internal("x".into()),
                500,
                ErrorCode::InternalError,
            ),
            (
                BridgeError::BadFrame(FrameError::BadTag { index: 3 }),
                401,
                ErrorCode::Unauthorized,
            ),
            (
                BridgeError::BadFrame(FrameError::Truncated),
                400,
                ErrorCode::InvalidRequest,
            ),
            (
                BridgeError::PathNotFound("x".into()),
                404,
                ErrorCode::PathNotFound,
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.to_body().error, code, "{error}");
        }
    }

    #[test]
    fn bodies_carry_details_and_readable_messages() {
        let body = BridgeError::Unauthorized(AuthRejection::ReplayedNonce).to_body();
        assert_eq!(
            body.details.and_then(|details| details.reason),
            Some(AuthRejectionReason::ReplayedNonce)
        );
        assert!(
            body.message.contains("already received"),
            "{}",
            body.message
        );
        let body = BridgeError::Route(RouteError::MethodNotAllowed {
            method: "GET".into(),
            path: "/api/paperclip-sandbox/v1/probe".into(),
            allowed: vec!["POST"],
        })
        .to_body();
        assert_eq!(
            body.message,
            "/api/paperclip-sandbox/v1/probe does not accept GET; use POST"
        );
        assert_eq!(
            body.details.map(|details| details.allowed_methods),
            Some(vec!["POST".to_owned()])
        );
    }
}
