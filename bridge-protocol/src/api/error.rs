//! The error body every failed request gets.

use serde::{Deserialize, Serialize};

use crate::auth::AuthRejectionReason;

/// snake_case error codes; the HTTP status alone never tells a client enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body or a parameter is malformed.
    InvalidRequest,
    /// 401: authentication failed; `details.reason` says why.
    Unauthorized,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 404: no lease with that id.
    LeaseNotFound,
    /// 404: a path to download is missing in the sandbox, or not of the requested kind.
    PathNotFound,
    /// 409: the lease is not active (destroyed, released, being acquired).
    LeaseNotActive,
    /// 409: the sandbox lost the lease's state; acquire anew.
    SandboxStateLost,
    /// 422: an environment variable name is invalid; nothing ran.
    InvalidEnvKey,
    /// 413: the body exceeds the configured limit.
    BodyTooLarge,
    /// 422: the argv and environment are more than a process can be started with; nothing ran.
    CommandTooLarge,
    /// 500: the bridge's own configuration is incomplete or invalid.
    BridgeMisconfigured,
    /// 502: the sandbox or its container failed.
    SandboxError,
    /// 504: the sandbox did not answer within the bridge's deadline.
    SandboxTimeout,
    /// 500: a bug in the bridge.
    InternalError,
    /// A code this client version does not know yet.
    #[serde(other)]
    Unrecognized,
}

impl ErrorCode {
    /// The code as it is on the wire (`sandbox_state_lost`); also what stream signatures cover.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::LeaseNotFound => "lease_not_found",
            Self::PathNotFound => "path_not_found",
            Self::LeaseNotActive => "lease_not_active",
            Self::SandboxStateLost => "sandbox_state_lost",
            Self::InvalidEnvKey => "invalid_env_key",
            Self::BodyTooLarge => "body_too_large",
            Self::CommandTooLarge => "command_too_large",
            Self::BridgeMisconfigured => "bridge_misconfigured",
            Self::SandboxError => "sandbox_error",
            Self::SandboxTimeout => "sandbox_timeout",
            Self::InternalError => "internal_error",
            Self::Unrecognized => "unrecognized",
        }
    }
}

/// Structured context of an error, for programs; the message is for people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    /// Why authentication failed (401 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<AuthRejectionReason>,
    /// The limit that was exceeded (`body_too_large`, `command_too_large`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// How large the refused part of the request was (`command_too_large`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Methods the route accepts (405 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_methods: Vec<String>,
}

/// `{ "error": <code>, "message": <sentence>, "details"?: {…} }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Machine-readable code.
    pub error: ErrorCode,
    /// A sentence an operator can act on.
    pub message: String,
    /// Structured context, when there is any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_codes_as_snake_case_and_omits_empty_details() {
        let body = ErrorBody {
            error: ErrorCode::BridgeMisconfigured,
            message: "BRIDGE_HOST is not set".into(),
            details: None,
        };
        assert_eq!(
            serde_json::to_string(&body).expect("serialisable"),
            r#"{"error":"bridge_misconfigured","message":"BRIDGE_HOST is not set"}"#
        );
        let body = ErrorBody {
            error: ErrorCode::Unauthorized,
            message: "m".into(),
            details: Some(ErrorDetails {
                reason: Some(AuthRejectionReason::ReplayedNonce),
                ..ErrorDetails::default()
            }),
        };
        assert_eq!(
            serde_json::to_string(&body).expect("serialisable"),
            r#"{"error":"unauthorized","message":"m","details":{"reason":"replayed_nonce"}}"#
        );
    }

    #[test]
    fn as_str_is_the_wire_name_of_every_code() {
        let every = [
            ErrorCode::InvalidRequest,
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::LeaseNotFound,
            ErrorCode::PathNotFound,
            ErrorCode::LeaseNotActive,
            ErrorCode::SandboxStateLost,
            ErrorCode::InvalidEnvKey,
            ErrorCode::BodyTooLarge,
            ErrorCode::BridgeMisconfigured,
            ErrorCode::SandboxError,
            ErrorCode::SandboxTimeout,
            ErrorCode::InternalError,
            ErrorCode::Unrecognized,
        ];
        for code in every {
            assert_eq!(
                serde_json::to_value(code).expect("serialisable"),
                code.as_str(),
                "{code:?}"
            );
        }
    }

    #[test]
    fn unknown_codes_from_newer_bridges_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"brand_new","message":"m"}"#).expect("parses");
        assert_eq!(body.error, ErrorCode::Unrecognized);
    }
}
