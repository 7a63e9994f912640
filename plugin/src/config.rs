//! The driver's configuration: validation with sentences an operator can act on, defaults, and
//! the typed settings every call works with. Unknown keys are never touched: the host stores
//! `normalizedConfig` as it is, and keys it owns (`timeoutMs`, `reuseLease`, …) must survive.

use bridge_protocol::api::{DEFAULT_REMOTE_CWD, SessionStrategy};
use bridge_protocol::auth::{KeyId, SecretKey};
use bridge_protocol::fields::MAX_TIMEOUT_MS;
use bridge_protocol::fields::{DEFAULT_SESSION_ID, session_id, sleep_after};
use bridge_protocol::remote_path::RemotePath;
use reqwest::Url;
use serde_json::{Map, Value};

/// Key id used when the configuration names none.
pub const DEFAULT_KEY_ID: &str = "main";
/// Default command timeout (also the host's default).
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Default deadline of a call to the bridge that runs no command.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// Validated settings.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Origin of the bridge Worker.
    pub bridge_base_url: Url,
    /// The shared secret (resolved by the host on runtime calls).
    pub bridge_secret: String,
    /// Which of the bridge's keys the secret is.
    pub key_id: KeyId,
    /// Keep one sandbox per environment across runs.
    pub reuse_lease: bool,
    /// Keep containers up while idle.
    pub keep_alive: bool,
    /// Idle time before a container sleeps.
    pub sleep_after: Option<String>,
    /// Default working directory of commands.
    pub requested_cwd: String,
    /// Default session policy.
    pub session_strategy: SessionStrategy,
    /// Session name.
    pub session_id: String,
    /// Default command timeout.
    pub timeout_ms: u64,
    /// Deadline of calls that run no command.
    pub bridge_request_timeout_ms: u64,
    /// Stream command output to the host as it is produced.
    pub stream_output: bool,
    /// Source login profiles before commands.
    pub login_shell: bool,
}

/// The outcome of `environmentValidateConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Sentences describing what must change.
    pub errors: Vec<String>,
    /// Sentences describing what may surprise.
    pub warnings: Vec<String>,
    /// The input with every default filled in and unknown keys untouched.
    pub normalized: Map<String, Value>,
}

/// Defaults of the optional keys, as the host will store them.
fn defaults() -> [(&'static str, Value); 10] {
    [
        ("keyId", Value::from(DEFAULT_KEY_ID)),
        ("reuseLease", Value::from(false)),
        ("keepAlive", Value::from(false)),
        ("normalizeId", Value::from(true)),
        ("requestedCwd", Value::from(DEFAULT_REMOTE_CWD)),
        ("sessionStrategy", Value::from("named")),
        ("sessionId", Value::from(DEFAULT_SESSION_ID)),
        ("timeoutMs", Value::from(DEFAULT_TIMEOUT_MS)),
        (
            "bridgeRequestTimeoutMs",
            Value::from(DEFAULT_REQUEST_TIMEOUT_MS),
        ),
        ("streamOutput", Value::from(true)),
    ]
}

/// Validates a configuration as the host stores it (secrets not yet resolved).
pub fn validate(config: &Value) -> Validation {
    let empty = Map::new();
    let map = config.as_object().unwrap_or(&empty);
    let mut normalized = map.clone();
    for (key, value) in defaults() {
        normalized.entry(key).or_insert(value);
    }
    normalized.entry("loginShell").or_insert(Value::from(true));
    let mut errors = Vec::new();
    if !config.is_object() {
        errors.push("The configuration must be an object.".to_owned());
    }
    let reader = Reader {
        map,
        errors: &mut errors,
    };
    let settings = reader.settings(false);
    let mut warnings = Vec::new();
    if let Some(settings) = &settings {
        if settings.sleep_after.is_some() && settings.keep_alive {
            warnings.push(
                "sleepAfter has no effect while keepAlive is on: containers stay up until their lease is destroyed."
                    .to_owned(),
            );
        }
        if settings.bridge_base_url.scheme() == "http" {
            warnings.push(
                "bridgeBaseUrl uses plain http, which is only acceptable for a local bridge."
                    .to_owned(),
            );
        }
    }
    Validation {
        errors,
        warnings,
        normalized,
    }
}

impl ProviderConfig {
    /// The settings of a runtime call (secret resolved); every problem in one message.
    pub fn from_value(config: &Value) -> Result<Self, String> {
        let empty = Map::new();
        let map = config.as_object().unwrap_or(&empty);
        let mut errors = Vec::new();
        let settings = Reader {
            map,
            errors: &mut errors,
        }
        .settings(true);
        match settings {
            Some(settings) if errors.is_empty() => Ok(settings),
            _ => Err(format!(
                "Invalid Cloudflare bridge configuration: {}",
                errors.join(" ")
            )),
        }
    }

    /// The secret as a signing key.
    pub fn secret_key(&self) -> Result<SecretKey, String> {
        SecretKey::new(&self.bridge_secret).map_err(|_| {
            format!(
                "bridgeSecret is too short: the bridge requires secrets of at least {} characters.",
                SecretKey::MIN_LEN
            )
        })
    }
}

/// Reads fields out of the configuration object, collecting a sentence per problem.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    errors: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn settings(mut self, secret_resolved: bool) -> Option<ProviderConfig> {
        let bridge_base_url = self.base_url();
        let bridge_secret = self.string("bridgeSecret", true).unwrap_or_default();
        if secret_resolved && !bridge_secret.is_empty() && bridge_secret.len() < SecretKey::MIN_LEN
        {
            self.errors.push(format!(
                "bridgeSecret is too short: the bridge requires secrets of at least {} characters.",
                SecretKey::MIN_LEN
            ));
        }
        let key_id = self
            .string("keyId", false)
            .unwrap_or_else(|| DEFAULT_KEY_ID.to_owned());
        let key_id = KeyId::parse(&key_id)
            .map_err(|error| self.errors.push(format!("keyId is invalid: {error}.")))
            .ok();
        let reuse_lease = self.boolean("reuseLease", false);
        let keep_alive = self.boolean("keepAlive", false);
        if reuse_lease && !keep_alive {
            self.errors.push(
                "reuseLease requires keepAlive: a reusable sandbox must stay up between runs, so set keepAlive to true (or reuseLease to false)."
                    .to_owned(),
            );
        }
        self.boolean("normalizeId", true);
        let sleep_after = self.string("sleepAfter", false).and_then(|value| {
            sleep_after(&value)
                .map_err(|error| self.errors.push(format!("{error}.")))
                .ok()
        });
        let requested_cwd = self
            .string("requestedCwd", false)
            .unwrap_or_else(|| DEFAULT_REMOTE_CWD.to_owned());
        if let Err(error) = RemotePath::parse("requestedCwd", &requested_cwd) {
            self.errors.push(format!("{error}."));
        }
        let session_strategy = match self.string("sessionStrategy", false).as_deref() {
            None | Some("named") => SessionStrategy::Named,
            Some("default") => SessionStrategy::Default,
            Some(other) => {
                self.errors.push(format!(
                    "sessionStrategy must be \"named\" or \"default\", got {other:?}."
                ));
                SessionStrategy::Named
            }
        };
        let session_id = session_id(self.string("sessionId", false).as_deref())
            .map_err(|error| self.errors.push(format!("{error}.")))
            .unwrap_or_default();
        let timeout_ms = self.number("timeoutMs", DEFAULT_TIMEOUT_MS, 1_000, MAX_TIMEOUT_MS);
        let bridge_request_timeout_ms = self.number(
            "bridgeRequestTimeoutMs",
            DEFAULT_REQUEST_TIMEOUT_MS,
            1_000,
            600_000,
        );
        let stream_output = self.boolean("streamOutput", true);
        let login_shell = self.boolean("loginShell", true);
        Some(ProviderConfig {
            bridge_base_url: bridge_base_url?,
            bridge_secret,
            key_id: key_id?,
            reuse_lease,
            keep_alive,
            sleep_after,
            requested_cwd,
            session_strategy,
            session_id,
            timeout_ms,
            bridge_request_timeout_ms,
            stream_output,
            login_shell,
        })
    }

    fn base_url(&mut self) -> Option<Url> {
        let text = self.string("bridgeBaseUrl", true)?;
        let url = match Url::parse(&text) {
            Ok(url) => url,
            Err(error) => {
                self.errors.push(format!(
                    "bridgeBaseUrl is not a URL ({error}); use the bridge's address, e.g. https://paperclip-sandbox-bridge.example.workers.dev."
                ));
                return None;
            }
        };
        let loopback = matches!(url.host(), Some(url::Host::Domain("localhost")))
            || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
        let problem = match url.scheme() {
            "https" => None,
            "http" if loopback => None,
            "http" => {
                Some("must use https (plain http is only accepted for a bridge on this machine)")
            }
            _ => Some("must be an https URL"),
        }
        .or_else(|| {
            (!url.username().is_empty() || url.password().is_some())
                .then_some("must not contain credentials; the secret goes in bridgeSecret")
        })
        .or_else(|| {
            (url.path() != "/" || url.query().is_some() || url.fragment().is_some())
                .then_some("must be the bridge's origin only, without a path, query or fragment")
        });
        match problem {
            Some(problem) => {
                self.errors
                    .push(format!("bridgeBaseUrl {problem} (got {text})."));
                None
            }
            None => Some(url),
        }
    }

    fn string(&mut self, key: &str, required: bool) -> Option<String> {
        match self.map.get(key) {
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                if required {
                    self.errors.push(format!("{key} is required."));
                }
                None
            }
            Some(other) => {
                self.errors
                    .push(format!("{key} must be a string, got {other}."));
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.map.get(key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(value)) => *value,
            Some(other) => {
                self.errors
                    .push(format!("{key} must be true or false, got {other}."));
                default
            }
        }
    }

    fn number(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        match self.map.get(key) {
            None | Some(Value::Null) => default,
            Some(value) => match value.as_u64().filter(|number| (min..=max).contains(number)) {
                Some(number) => number,
                None => {
                    self.errors.push(format!(
                        "{key} must be a whole number of milliseconds between {min} and {max}, got {value}."
                    ));
                    default
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn valid() -> Value {
        json!({"bridgeBaseUrl": "https://bridge.example.workers.dev", "bridgeSecret": SECRET})
    }

    fn with(changes: Value) -> Value {
        let mut config = valid();
        for (key, value) in changes.as_object().expect("object") {
            config[key] = value.clone();
        }
        config
    }

    #[test]
    fn fills_defaults_and_keeps_unknown_keys_and_secret_refs() {
        let input = with(json!({
            "bridgeSecret": {"type": "secret_ref", "secretId": "4f6c"},
            "archiveOnRelease": true,
            "timeoutMs": 60000
        }));
        let validation = validate(&input);
        assert!(
            validation
                .errors
                .iter()
                .any(|error| error.contains("bridgeSecret"))
        );
        let validation = validate(&with(json!({"archiveOnRelease": true, "timeoutMs": 60000})));
        assert_eq!(validation.errors, Vec::<String>::new());
        let normalized = Value::Object(validation.normalized);
        assert_eq!(normalized["archiveOnRelease"], true);
        assert_eq!(normalized["timeoutMs"], 60000);
        assert_eq!(normalized["keyId"], DEFAULT_KEY_ID);
        assert_eq!(normalized["requestedCwd"], DEFAULT_REMOTE_CWD);
        assert_eq!(
            normalized["bridgeSecret"], SECRET,
            "secrets are left as they are"
        );
    }

    #[test]
    fn rejects_bad_settings_with_actionable_sentences() {
        let cases = [
            (
                json!({"bridgeBaseUrl": "http://bridge.example.com"}),
                "must use https",
            ),
            (json!({"bridgeBaseUrl": "not a url"}), "is not a URL"),
            (
                json!({"bridgeBaseUrl": "https://bridge.example.com/api"}),
                "origin only",
            ),
            (
                json!({"bridgeBaseUrl": "https://user:pw@bridge.example.com"}),
                "credentials",
            ),
            (json!({"bridgeBaseUrl": null}), "bridgeBaseUrl is required"),
            (json!({"reuseLease": true}), "reuseLease requires keepAlive"),
            (
                json!({"requestedCwd": "workspace"}),
                "requestedCwd must be an absolute path",
            ),
            (json!({"timeoutMs": 0}), "timeoutMs must be a whole number"),
            (
                json!({"timeoutMs": "soon"}),
                "timeoutMs must be a whole number",
            ),
            (
                json!({"bridgeRequestTimeoutMs": 99_999_999}),
                "bridgeRequestTimeoutMs",
            ),
            (
                json!({"sessionStrategy": "per-run"}),
                "sessionStrategy must be",
            ),
            (json!({"sessionId": "a b"}), "sessionId must be"),
            (json!({"keyId": "bad/id"}), "keyId is invalid"),
            (
                json!({"sleepAfter": "forever"}),
                "sleepAfter must be a duration",
            ),
            (
                json!({"keepAlive": "yes"}),
                "keepAlive must be true or false",
            ),
        ];
        for (change, expected) in cases {
            let validation = validate(&with(change.clone()));
            assert!(
                validation
                    .errors
                    .iter()
                    .any(|error| error.contains(expected)),
                "{change}: {:?}",
                validation.errors
            );
        }
        assert!(!validate(&json!("text")).errors.is_empty());
    }

    #[test]
    fn loopback_bridges_may_use_http() {
        for url in [
            "http://127.0.0.1:8787",
            "http://localhost:8787",
            "http://[::1]:9",
        ] {
            let validation = validate(&with(json!({"bridgeBaseUrl": url})));
            assert_eq!(validation.errors, Vec::<String>::new(), "{url}");
            assert_eq!(validation.warnings.len(), 1, "{url}");
        }
    }

    #[test]
    fn runtime_settings_need_a_real_secret() {
        let config = ProviderConfig::from_value(&valid()).expect("valid");
        assert_eq!(config.key_id.as_str(), DEFAULT_KEY_ID);
        assert_eq!(config.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert!(config.secret_key().is_ok());
        let error = ProviderConfig::from_value(&with(json!({"bridgeSecret": "short"})))
            .expect_err("too short");
        assert!(error.contains("bridgeSecret is too short"), "{error}");
    }
}
