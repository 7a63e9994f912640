//! JSON-RPC 2.0 messages as the Paperclip host frames them (one object per line).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Error codes of the host protocol.
pub mod codes {
    /// Invalid JSON; answered with `id: null`.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Malformed parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A handler failed; the message is shown to operators.
    pub const WORKER_ERROR: i64 = -32002;
    /// A known optional method this plugin does not implement.
    pub const METHOD_NOT_IMPLEMENTED: i64 = -32004;
}

/// The `paperclipInvocation` envelope extension of a host request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Invocation {
    /// Echoed as `paperclipInvocationId` on notifications about this request.
    pub id: String,
}

/// A request (or, without `id`, a notification) from the host.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingMessage {
    /// Must be `"2.0"`.
    pub jsonrpc: Option<String>,
    /// Opaque request id; absent for notifications.
    pub id: Option<Value>,
    /// Method name.
    pub method: Option<String>,
    /// Parameters (an object for every method of this protocol).
    #[serde(default)]
    pub params: Value,
    /// Invocation context, when the host has one.
    pub paperclip_invocation: Option<Invocation>,
}

/// An error object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcError {
    /// One of [`codes`].
    pub code: i64,
    /// A sentence for operators.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A line the plugin writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OutgoingMessage {
    /// A successful response (`result` is always present, `null` for void methods).
    Result {
        /// Always `"2.0"`.
        jsonrpc: &'static str,
        /// The request's id, verbatim.
        id: Value,
        /// The result.
        result: Value,
    },
    /// A failed response.
    Error {
        /// Always `"2.0"`.
        jsonrpc: &'static str,
        /// The request's id, or `null` when it could not be read.
        id: Value,
        /// The error.
        error: RpcError,
    },
    /// A notification to the host.
    #[serde(rename_all = "camelCase")]
    Notification {
        /// Always `"2.0"`.
        jsonrpc: &'static str,
        /// Method name.
        method: &'static str,
        /// Parameters.
        params: Value,
        /// The invocation it belongs to.
        paperclip_invocation_id: String,
    },
}

impl OutgoingMessage {
    /// The response to request `id`.
    pub fn response(id: Value, outcome: Result<Value, RpcError>) -> Self {
        match outcome {
            Ok(result) => Self::Result {
                jsonrpc: "2.0",
                id,
                result,
            },
            Err(error) => Self::Error {
                jsonrpc: "2.0",
                id,
                error,
            },
        }
    }

    /// One JSON line (with its newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|error| {
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{{\"code\":{},\"message\":\"cannot encode a message: {error}\"}}}}",
                codes::WORKER_ERROR
            )
            .into_bytes()
        });
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn void_results_are_an_explicit_null() {
        let line = OutgoingMessage::response(json!(7), Ok(Value::Null)).to_line();
        assert_eq!(line, b"{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":null}\n");
    }

    #[test]
    fn notifications_carry_the_invocation_id() {
        let line = OutgoingMessage::Notification {
            jsonrpc: "2.0",
            method: "execute.log",
            params: json!({"stream": "stdout", "chunk": "x"}),
            paperclip_invocation_id: "inv-1".into(),
        }
        .to_line();
        let value: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(value["paperclipInvocationId"], "inv-1");
        assert!(value.get("id").is_none());
    }
}
