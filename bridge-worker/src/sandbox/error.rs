//! Errors thrown by the `Sandbox` Durable Object, as they arrive over RPC.
//!
//! RPC keeps only the message, prefixed with the original class name (`"CommandError: …"`), so the
//! class is recovered from that prefix.

/// A failed call into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The container could not be started (capacity, image, still starting after the SDK's retries).
    #[error("the sandbox container is unavailable: {0}")]
    Unavailable(String),
    /// The command could not be run or its shell died.
    #[error("the sandbox could not run the command: {0}")]
    Command(String),
    /// The bridge's own deadline passed first.
    #[error("the sandbox did not answer within {0} ms")]
    Timeout(u64),
    /// The sandbox answered something the bridge cannot interpret.
    #[error("the sandbox answered unexpectedly: {0}")]
    Protocol(String),
    /// Any other failure reported by the Durable Object or the runtime.
    #[error("the sandbox failed: {0}")]
    Other(String),
}

impl SandboxError {
    /// Classifies the message of an error that crossed the RPC boundary.
    pub fn from_rpc_message(message: &str) -> Self {
        let (class, detail) = message
            .split_once(": ")
            .filter(|(class, _)| is_class_name(class))
            .unwrap_or(("", message));
        let detail = detail.to_owned();
        match class {
            "ContainerUnavailableError" => Self::Unavailable(detail),
            "SandboxError" if mentions_start(&detail) => Self::Unavailable(detail),
            "CommandError" | "SessionTerminatedError" | "SessionDestroyedError" => {
                Self::Command(detail)
            }
            _ => Self::Other(message.to_owned()),
        }
    }
}

fn is_class_name(candidate: &str) -> bool {
    candidate.ends_with("Error") && candidate.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

fn mentions_start(detail: &str) -> bool {
    let lower = detail.to_ascii_lowercase();
    lower.contains("container is starting") || lower.contains("failed to start")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_class_from_the_message_prefix() {
        assert_eq!(
            SandboxError::from_rpc_message(
                "CommandError: Failed to execute command 'x' in session 's': Command timeout after 200ms"
            ),
            SandboxError::Command(
                "Failed to execute command 'x' in session 's': Command timeout after 200ms".into()
            )
        );
        assert_eq!(
            SandboxError::from_rpc_message(
                "SandboxError: Container is starting. Please retry in a moment."
            ),
            SandboxError::Unavailable("Container is starting. Please retry in a moment.".into())
        );
        assert_eq!(
            SandboxError::from_rpc_message("ContainerUnavailableError: no capacity"),
            SandboxError::Unavailable("no capacity".into())
        );
        assert_eq!(
            SandboxError::from_rpc_message("SandboxError: HTTP error! status: 500"),
            SandboxError::Other("SandboxError: HTTP error! status: 500".into())
        );
        assert_eq!(
            SandboxError::from_rpc_message("Network connection lost."),
            SandboxError::Other("Network connection lost.".into())
        );
        assert_eq!(
            SandboxError::from_rpc_message("weird thing: happened"),
            SandboxError::Other("weird thing: happened".into())
        );
    }
}
