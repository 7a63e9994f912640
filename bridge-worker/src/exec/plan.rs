//! Validating an exec request before anything runs.

use bridge_protocol::api::{ExecRequest, SessionMode, SessionStrategy};
use bridge_protocol::fields::{EXEC_CHANNEL_VAR, command_timeout, execution_id};
use bridge_protocol::remote_path::RemotePath;

use super::EndRecord;
use crate::error::BridgeError;
use crate::lease::protocol::ExecutionTicket;
use crate::script::{CommandScript, MAX_COMMAND_BYTES, command_bytes};

/// A validated execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlan {
    /// The lease.
    pub lease_id: String,
    /// The execution id (client's or generated).
    pub execution_id: String,
    /// `command` followed by `args`.
    pub argv: Vec<String>,
    /// Working directory, when the request names one.
    pub cwd: Option<RemotePath>,
    /// Environment with validated keys, the channel marker removed.
    pub env: Vec<(String, String)>,
    /// Text for stdin.
    pub stdin: Option<String>,
    /// The bridge's deadline.
    pub timeout_ms: u64,
    /// The session, after the channel marker is taken into account.
    pub session: SessionMode,
    /// Source the login profiles first.
    pub login_shell: bool,
}

impl ExecPlan {
    /// Validates `request`; `generated_id` is used when the request carries no execution id.
    /// An invalid env key is a 422 and nothing runs.
    pub fn from_request(request: ExecRequest, generated_id: String) -> Result<Self, BridgeError> {
        if request.provider_lease_id.is_empty() {
            return Err(BridgeError::InvalidRequest(
                "providerLeaseId is required".into(),
            ));
        }
        let execution_id = match request.execution_id {
            Some(id) => execution_id(&id)?,
            None => generated_id,
        };
        if request.command.is_empty() {
            return Err(BridgeError::InvalidRequest(
                "command must not be empty".into(),
            ));
        }
        let argv: Vec<String> = std::iter::once(request.command)
            .chain(request.args)
            .collect();
        if let Some(index) = argv.iter().position(|word| word.contains('\0')) {
            return Err(BridgeError::InvalidRequest(format!(
                "argv[{index}] contains a NUL character, which no process can receive"
            )));
        }
        let mut session = request.session;
        let mut env = Vec::with_capacity(request.env.len());
        for (key, value) in request.env {
            if !is_env_name(&key) {
                return Err(BridgeError::InvalidEnvKey(key));
            }
            if key == EXEC_CHANNEL_VAR && value == "bridge" {
                session = SessionMode::Bridge;
                continue;
            }
            if value.contains('\0') {
                return Err(BridgeError::InvalidRequest(format!(
                    "the value of {key} contains a NUL character"
                )));
            }
            env.push((key, value));
        }
        if argv[0].contains('=')
            && let Some((name, _)) = env.iter().find(|(name, _)| !is_shell_identifier(name))
        {
            return Err(BridgeError::InvalidRequest(format!(
                "the command {:?} contains '=', which env(1) would take for a variable, and {name:?} is not a shell identifier, so only env(1) can pass it",
                argv[0]
            )));
        }
        let timeout_ms = command_timeout(request.timeout_ms)?;
        let cwd = request
            .cwd
            .map(|cwd| RemotePath::parse("cwd", &cwd))
            .transpose()?;
        let size = command_bytes(&argv, &env, cwd.as_ref().map(RemotePath::as_str));
        if size > MAX_COMMAND_BYTES {
            return Err(BridgeError::CommandTooLarge {
                size: size as u64,
                limit: MAX_COMMAND_BYTES as u64,
            });
        }
        Ok(Self {
            lease_id: request.provider_lease_id,
            execution_id,
            argv,
            cwd,
            env,
            stdin: request.stdin,
            timeout_ms,
            session,
            login_shell: request.login_shell.unwrap_or(true),
        })
    }

    /// The script that runs this command in the sandbox of the lease `ticket` admitted it to.
    pub fn script(&self, ticket: &ExecutionTicket, end_record: &EndRecord) -> String {
        CommandScript {
            execution_id: &self.execution_id,
            sentinel: &ticket.sentinel,
            session_lock: self
                .session_lock(&ticket.session_id, ticket.session_strategy)
                .as_deref(),
            cwd: self
                .cwd
                .as_ref()
                .map_or(ticket.remote_cwd.as_str(), |cwd| cwd.as_str()),
            env: &self.env,
            argv: &self.argv,
            staged_stdin: self.stdin.is_some(),
            login_shell: self.login_shell,
            end_record,
        }
        .render()
    }

    /// The `flock` name serialising this command, or `None` when it runs at once.
    pub fn session_lock(&self, session_id: &str, strategy: SessionStrategy) -> Option<String> {
        match (self.session, strategy) {
            (SessionMode::None, _) => None,
            (SessionMode::Bridge, _) => Some(format!("{session_id}-bridge")),
            (SessionMode::Default, _) | (SessionMode::Named, SessionStrategy::Default) => {
                Some("default".to_owned())
            }
            (SessionMode::Named, SessionStrategy::Named) => Some(session_id.to_owned()),
        }
    }
}

/// A name a process can receive in its environment: not empty, without `=` or NUL. Hosts pass
/// their own environment on (Paperclip forwards its server's, where a name such as
/// `CARGO_BIN_EXE_local-sandbox` is ordinary), so more than shell identifiers must get through.
pub fn is_env_name(key: &str) -> bool {
    !key.is_empty() && !key.contains(['=', '\0'])
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`: a name the shell can `export`; other names reach the command
/// through env(1).
pub fn is_shell_identifier(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bridge_protocol::fields::DEFAULT_TIMEOUT_MS;

    use super::*;

    fn request() -> ExecRequest {
        ExecRequest {
            provider_lease_id: "pc-lease".into(),
            command: "echo".into(),
            args: vec!["a b".into()],
            ..ExecRequest::default()
        }
    }

    #[test]
    fn builds_the_argv_and_fills_defaults() {
        let plan = ExecPlan::from_request(request(), "gen".into()).expect("valid");
        assert_eq!(plan.argv, ["echo", "a b"]);
        assert_eq!(plan.execution_id, "gen");
        assert_eq!(plan.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(plan.session, SessionMode::Named);
        assert_eq!(plan.cwd, None);
    }

    #[test]
    fn env_names_without_equals_or_nul_are_accepted() {
        for key in ["1ABC", "A-B", "A B", "É", "CARGO_BIN_EXE_local-sandbox"] {
            let request = ExecRequest {
                env: BTreeMap::from([(key.to_owned(), "v".to_owned())]),
                ..request()
            };
            let plan = ExecPlan::from_request(request, "gen".into()).expect(key);
            assert_eq!(plan.env, [(key.to_owned(), "v".to_owned())]);
            assert!(!is_shell_identifier(key), "{key}");
        }
        assert!(is_shell_identifier("_PATH_2"));
    }

    #[test]
    fn a_command_with_equals_cannot_take_names_only_env_can_pass() {
        let request = ExecRequest {
            command: "./a=b".into(),
            env: BTreeMap::from([("A-B".to_owned(), "v".to_owned())]),
            ..request()
        };
        let error = ExecPlan::from_request(request.clone(), "gen".into()).expect_err("ambiguous");
        assert_eq!(error.status(), 400);
        assert!(error.to_string().contains("./a=b"), "{error}");
        let with_identifiers = ExecRequest {
            env: BTreeMap::from([("A_B".to_owned(), "v".to_owned())]),
            ..request
        };
        assert!(ExecPlan::from_request(with_identifiers, "gen".into()).is_ok());
    }

    #[test]
    fn a_command_no_process_could_be_started_with_is_refused_with_its_size() {
        let many_args = ExecRequest {
            args: vec!["a".to_owned(); 100_000],
            ..request()
        };
        let error = ExecPlan::from_request(many_args, "gen".into()).expect_err("too large");
        assert_eq!(error.status(), 422);
        let body = error.to_body();
        assert_eq!(body.error, bridge_protocol::api::ErrorCode::CommandTooLarge);
        let details = body.details.expect("details");
        assert_eq!(details.size_bytes, Some(400_007));
        assert_eq!(details.limit_bytes, Some(MAX_COMMAND_BYTES as u64));
        assert!(body.message.contains("400007 bytes"), "{}", body.message);
        let env = ExecRequest {
            env: BTreeMap::from([("BIG".to_owned(), "v".repeat(MAX_COMMAND_BYTES))]),
            ..request()
        };
        assert_eq!(
            ExecPlan::from_request(env, "gen".into())
                .expect_err("too large")
                .status(),
            422
        );
    }

    #[test]
    fn invalid_env_names_are_422() {
        for key in ["", "A=B", "A\0B"] {
            let request = ExecRequest {
                env: BTreeMap::from([(key.to_owned(), "v".to_owned())]),
                ..request()
            };
            let error = ExecPlan::from_request(request, "gen".into()).expect_err(key);
            assert_eq!(error.status(), 422, "{key:?}");
        }
    }

    #[test]
    fn the_channel_marker_selects_the_bridge_session_and_is_stripped() {
        let request = ExecRequest {
            env: BTreeMap::from([
                (EXEC_CHANNEL_VAR.to_owned(), "bridge".to_owned()),
                ("KEEP".to_owned(), "1".to_owned()),
            ]),
            session: SessionMode::None,
            ..request()
        };
        let plan = ExecPlan::from_request(request, "gen".into()).expect("valid");
        assert_eq!(plan.session, SessionMode::Bridge);
        assert_eq!(plan.env, [("KEEP".to_owned(), "1".to_owned())]);
        assert_eq!(
            plan.session_lock("paperclip", SessionStrategy::Named)
                .as_deref(),
            Some("paperclip-bridge")
        );
    }

    #[test]
    fn session_locks() {
        let mut plan = ExecPlan::from_request(request(), "gen".into()).expect("valid");
        assert_eq!(
            plan.session_lock("s", SessionStrategy::Named).as_deref(),
            Some("s")
        );
        assert_eq!(
            plan.session_lock("s", SessionStrategy::Default).as_deref(),
            Some("default")
        );
        plan.session = SessionMode::None;
        assert_eq!(plan.session_lock("s", SessionStrategy::Named), None);
    }

    #[test]
    fn rejects_what_cannot_run() {
        let cases = [
            ExecRequest {
                command: String::new(),
                ..request()
            },
            ExecRequest {
                provider_lease_id: String::new(),
                ..request()
            },
            ExecRequest {
                args: vec!["a\0b".into()],
                ..request()
            },
            ExecRequest {
                execution_id: Some("../x".into()),
                ..request()
            },
            ExecRequest {
                cwd: Some("relative".into()),
                ..request()
            },
            ExecRequest {
                timeout_ms: Some(0),
                ..request()
            },
        ];
        for request in cases {
            let error = ExecPlan::from_request(request.clone(), "gen".into()).expect_err("invalid");
            assert_eq!(error.status(), 400, "{request:?}: {error}");
        }
    }
}
