//! The driver's configuration: one table of its keys ([`FIELDS`]) from which the schema the
//! manifest publishes, the defaults `environmentValidateConfig` fills in and the settings every
//! call reads all come, validation with sentences an operator can act on, and the typed settings.
//! Unknown keys are never touched: the host stores `normalizedConfig` as it is, and keys it owns
//! (`timeoutMs`, `reuseLease`, …) must survive.

use std::fmt;

use bridge_protocol::api::{DEFAULT_REMOTE_CWD, SessionStrategy};
use bridge_protocol::auth::{KeyId, SecretKey};
use bridge_protocol::fields::{
    DEFAULT_SESSION_ID, MAX_LIFECYCLE_TIMEOUT_MS, MAX_TIMEOUT_MS, session_id, sleep_after,
};
use bridge_protocol::remote_path::RemotePath;
use reqwest::Url;
use serde_json::{Map, Value, json};

/// Key id used when the configuration names none.
pub const DEFAULT_KEY_ID: &str = "main";
/// Default command timeout (also the host's default).
pub const DEFAULT_TIMEOUT_MS: u64 = 300_000;
/// Default deadline of a call to the bridge that runs no command.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// Default cap of what one native sync brings out of a sandbox: 10 GiB.
pub const DEFAULT_SYNC_MAX_BYTES: u64 = 10 << 30;

/// What a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Text; `format` is the schema's (`uri`, `secret-ref`).
    Text {
        /// The JSON-schema format, if any.
        format: Option<&'static str>,
    },
    /// `true` or `false`.
    Flag,
    /// A whole number of milliseconds within bounds.
    Millis {
        /// Smallest value accepted.
        min: u64,
        /// Largest value accepted.
        max: u64,
    },
    /// A whole number of bytes within bounds.
    Bytes {
        /// Smallest value accepted.
        min: u64,
        /// Largest value accepted.
        max: u64,
    },
    /// One of a few words.
    Choice(&'static [&'static str]),
}

/// A key's default, as the host stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldDefault {
    /// Text.
    Text(&'static str),
    /// A flag.
    Flag(bool),
    /// Milliseconds.
    Millis(u64),
    /// Bytes.
    Bytes(u64),
}

impl FieldDefault {
    /// The JSON value.
    pub fn to_json(self) -> Value {
        match self {
            Self::Text(text) => Value::from(text),
            Self::Flag(flag) => Value::from(flag),
            Self::Millis(number) | Self::Bytes(number) => Value::from(number),
        }
    }
}

/// One key of the driver's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The key.
    pub key: &'static str,
    /// What it holds.
    pub kind: FieldKind,
    /// Whether a configuration without it is invalid.
    pub required: bool,
    /// What it is when absent.
    pub default: Option<FieldDefault>,
    /// The form's label.
    pub title: Option<&'static str>,
    /// One sentence for the operator.
    pub description: Option<&'static str>,
    /// Shown among the advanced settings only.
    pub advanced: bool,
}

impl Field {
    const fn new(key: &'static str, kind: FieldKind) -> Self {
        Self {
            key,
            kind,
            required: false,
            default: None,
            title: None,
            description: None,
            advanced: false,
        }
    }

    /// Its JSON schema.
    fn schema(&self) -> Value {
        let mut schema = Map::new();
        let kind = match self.kind {
            FieldKind::Text { format } => {
                if let Some(format) = format {
                    schema.insert("format".into(), json!(format));
                }
                "string"
            }
            FieldKind::Flag => "boolean",
            FieldKind::Millis { min, max } | FieldKind::Bytes { min, max } => {
                schema.insert("minimum".into(), json!(min));
                schema.insert("maximum".into(), json!(max));
                "integer"
            }
            FieldKind::Choice(words) => {
                schema.insert("enum".into(), json!(words));
                "string"
            }
        };
        schema.insert("type".into(), json!(kind));
        if let Some(default) = self.default {
            schema.insert("default".into(), default.to_json());
        }
        if let Some(title) = self.title {
            schema.insert("title".into(), json!(title));
        }
        if let Some(description) = self.description {
            schema.insert("description".into(), json!(description));
        }
        if self.advanced {
            schema.insert("x-paperclip-advanced".into(), json!(true));
        }
        Value::Object(schema)
    }
}

const BRIDGE_BASE_URL: Field = Field {
    required: true,
    title: Some("Bridge URL"),
    description: Some(
        "Origin of the deployed bridge Worker, e.g. https://paperclip-sandbox-bridge.example.workers.dev (https unless it runs on this machine).",
    ),
    ..Field::new(
        "bridgeBaseUrl",
        FieldKind::Text {
            format: Some("uri"),
        },
    )
};
const BRIDGE_SECRET: Field = Field {
    required: true,
    title: Some("Bridge secret"),
    description: Some(
        "The secret of keyId in the bridge's BRIDGE_HMAC_KEYS (at least 32 characters).",
    ),
    ..Field::new(
        "bridgeSecret",
        FieldKind::Text {
            format: Some("secret-ref"),
        },
    )
};
const KEY_ID: Field = Field {
    default: Some(FieldDefault::Text(DEFAULT_KEY_ID)),
    title: Some("Key id"),
    description: Some("Which BRIDGE_HMAC_KEYS entry bridgeSecret belongs to."),
    ..Field::new("keyId", FieldKind::Text { format: None })
};
const REUSE_LEASE: Field = Field {
    default: Some(FieldDefault::Flag(false)),
    description: Some("Keep one sandbox per environment across runs (requires keepAlive)."),
    ..Field::new("reuseLease", FieldKind::Flag)
};
const KEEP_ALIVE: Field = Field {
    default: Some(FieldDefault::Flag(false)),
    description: Some("Keep containers running while idle."),
    ..Field::new("keepAlive", FieldKind::Flag)
};
const SLEEP_AFTER: Field = Field {
    description: Some(
        "Idle time before a container sleeps, e.g. \"10m\" (ignored with keepAlive).",
    ),
    advanced: true,
    ..Field::new("sleepAfter", FieldKind::Text { format: None })
};
const NORMALIZE_ID: Field = Field {
    default: Some(FieldDefault::Flag(true)),
    description: Some("Kept for compatibility: sandbox ids are always lower case."),
    advanced: true,
    ..Field::new("normalizeId", FieldKind::Flag)
};
const REQUESTED_CWD: Field = Field {
    default: Some(FieldDefault::Text(DEFAULT_REMOTE_CWD)),
    description: Some("Absolute working directory of commands in the sandbox."),
    ..Field::new("requestedCwd", FieldKind::Text { format: None })
};
const SESSION_STRATEGY: Field = Field {
    default: Some(FieldDefault::Text("named")),
    advanced: true,
    ..Field::new("sessionStrategy", FieldKind::Choice(&["named", "default"]))
};
const SESSION_ID: Field = Field {
    default: Some(FieldDefault::Text(DEFAULT_SESSION_ID)),
    advanced: true,
    ..Field::new("sessionId", FieldKind::Text { format: None })
};
const TIMEOUT_MS: Field = Field {
    default: Some(FieldDefault::Millis(DEFAULT_TIMEOUT_MS)),
    description: Some("Default command timeout in milliseconds."),
    ..Field::new(
        "timeoutMs",
        FieldKind::Millis {
            min: 1_000,
            max: MAX_TIMEOUT_MS,
        },
    )
};
const BRIDGE_REQUEST_TIMEOUT_MS: Field = Field {
    default: Some(FieldDefault::Millis(DEFAULT_REQUEST_TIMEOUT_MS)),
    description: Some("Deadline of bridge calls that run no command."),
    advanced: true,
    ..Field::new(
        "bridgeRequestTimeoutMs",
        FieldKind::Millis {
            min: 1_000,
            max: MAX_LIFECYCLE_TIMEOUT_MS,
        },
    )
};
const STREAM_OUTPUT: Field = Field {
    default: Some(FieldDefault::Flag(true)),
    description: Some("Stream command output to Paperclip as it is produced."),
    ..Field::new("streamOutput", FieldKind::Flag)
};
const LOGIN_SHELL: Field = Field {
    default: Some(FieldDefault::Flag(true)),
    description: Some("Source /etc/profile and ~/.profile before each command."),
    advanced: true,
    ..Field::new("loginShell", FieldKind::Flag)
};

const NATIVE_SYNC: Field = Field {
    default: Some(FieldDefault::Flag(true)),
    description: Some(
        "Move workspaces through the bridge's file routes; off, Paperclip falls back to base64 chunks through commands.",
    ),
    advanced: true,
    ..Field::new("nativeSync", FieldKind::Flag)
};
const SYNC_MAX_BYTES: Field = Field {
    default: Some(FieldDefault::Bytes(DEFAULT_SYNC_MAX_BYTES)),
    description: Some(
        "Most bytes one native sync may bring out of the sandbox into Paperclip; a larger result fails with a clear error.",
    ),
    advanced: true,
    ..Field::new(
        "syncMaxBytes",
        FieldKind::Bytes {
            min: 1,
            max: 1 << 50,
        },
    )
};

/// Every key of the driver's configuration.
pub const FIELDS: [Field; 16] = [
    BRIDGE_BASE_URL,
    BRIDGE_SECRET,
    KEY_ID,
    REUSE_LEASE,
    KEEP_ALIVE,
    SLEEP_AFTER,
    NORMALIZE_ID,
    REQUESTED_CWD,
    SESSION_STRATEGY,
    SESSION_ID,
    TIMEOUT_MS,
    BRIDGE_REQUEST_TIMEOUT_MS,
    STREAM_OUTPUT,
    LOGIN_SHELL,
    NATIVE_SYNC,
    SYNC_MAX_BYTES,
];

/// The JSON schema of the configuration, as the manifest publishes it.
pub fn schema() -> Value {
    let properties: Map<String, Value> = FIELDS
        .iter()
        .map(|field| (field.key.to_owned(), field.schema()))
        .collect();
    let required: Vec<&str> = FIELDS
        .iter()
        .filter(|field| field.required)
        .map(|field| field.key)
        .collect();
    json!({ "type": "object", "required": required, "properties": properties })
}

/// The shared secret; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BridgeSecret(String);

impl BridgeSecret {
    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BridgeSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("BridgeSecret(<redacted>)")
    }
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    /// Origin of the bridge Worker.
    pub bridge_base_url: Url,
    /// The shared secret (resolved by the host on runtime calls).
    pub bridge_secret: BridgeSecret,
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
    /// Offer native sync to the host (off: leases say `nativeFileSyncUnsupported`).
    pub native_sync: bool,
    /// Most bytes one native sync may bring out of the sandbox.
    pub sync_max_bytes: u64,
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

/// Validates a configuration as the host stores it (secrets not yet resolved).
pub fn validate(config: &Value) -> Validation {
    let empty = Map::new();
    let map = config.as_object().unwrap_or(&empty);
    let mut normalized = map.clone();
    for field in &FIELDS {
        if let Some(default) = field.default {
            normalized
                .entry(field.key)
                .or_insert_with(|| default.to_json());
        }
    }
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

/// Why a runtime call's configuration cannot be used: every problem, as sentences.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid Cloudflare bridge configuration: {}", problems.join(" "))]
pub struct ConfigError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

impl ProviderConfig {
    /// The settings of a runtime call (secret resolved); every problem in one error.
    pub fn from_value(config: &Value) -> Result<Self, ConfigError> {
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
            _ => Err(ConfigError { problems: errors }),
        }
    }

    /// The secret as a signing key.
    pub fn secret_key(&self) -> Result<SecretKey, ConfigError> {
        SecretKey::new(self.bridge_secret.expose()).map_err(|_| ConfigError {
            problems: vec![format!(
                "bridgeSecret is too short: the bridge requires secrets of at least {} characters.",
                SecretKey::MIN_LEN
            )],
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
        let bridge_secret = self.text(&BRIDGE_SECRET).unwrap_or_default();
        if secret_resolved && !bridge_secret.is_empty() && bridge_secret.len() < SecretKey::MIN_LEN
        {
            self.errors.push(format!(
                "bridgeSecret is too short: the bridge requires secrets of at least {} characters.",
                SecretKey::MIN_LEN
            ));
        }
        let key_id = self.text(&KEY_ID).unwrap_or_default();
        let key_id = KeyId::parse(&key_id)
            .map_err(|error| self.errors.push(format!("keyId is invalid: {error}.")))
            .ok();
        let reuse_lease = self.flag(&REUSE_LEASE);
        let keep_alive = self.flag(&KEEP_ALIVE);
        if reuse_lease && !keep_alive {
            self.errors.push(
                "reuseLease requires keepAlive: a reusable sandbox must stay up between runs, so set keepAlive to true (or reuseLease to false)."
                    .to_owned(),
            );
        }
        self.flag(&NORMALIZE_ID);
        let sleep_after = self.text(&SLEEP_AFTER).and_then(|value| {
            sleep_after(&value)
                .map_err(|error| self.errors.push(format!("{error}.")))
                .ok()
        });
        let requested_cwd = self.text(&REQUESTED_CWD).unwrap_or_default();
        if let Err(error) = RemotePath::parse("requestedCwd", &requested_cwd) {
            self.errors.push(format!("{error}."));
        }
        let session_strategy = match self.text(&SESSION_STRATEGY).as_deref() {
            Some("default") => SessionStrategy::Default,
            _ => SessionStrategy::Named,
        };
        let session_id = session_id(self.text(&SESSION_ID).as_deref())
            .map_err(|error| self.errors.push(format!("{error}.")))
            .unwrap_or_default();
        let timeout_ms = self.whole(&TIMEOUT_MS);
        let bridge_request_timeout_ms = self.whole(&BRIDGE_REQUEST_TIMEOUT_MS);
        let native_sync = self.flag(&NATIVE_SYNC);
        let sync_max_bytes = self.whole(&SYNC_MAX_BYTES);
        let stream_output = self.flag(&STREAM_OUTPUT);
        let login_shell = self.flag(&LOGIN_SHELL);
        Some(ProviderConfig {
            bridge_base_url: bridge_base_url?,
            bridge_secret: BridgeSecret(bridge_secret),
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
            native_sync,
            sync_max_bytes,
        })
    }

    fn base_url(&mut self) -> Option<Url> {
        let text = self.text(&BRIDGE_BASE_URL)?;
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

    /// A text field: the trimmed value, else its default; `None` (noted when required) without
    /// either. A choice must be one of its words.
    fn text(&mut self, field: &Field) -> Option<String> {
        let key = field.key;
        let value = match self.map.get(key) {
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                if field.required {
                    self.errors.push(format!("{key} is required."));
                }
                None
            }
            Some(other) => {
                self.errors
                    .push(format!("{key} must be a string, got {other}."));
                None
            }
        };
        if let (Some(value), FieldKind::Choice(words)) = (&value, field.kind)
            && !words.contains(&value.as_str())
        {
            let words: Vec<String> = words.iter().map(|word| format!("\"{word}\"")).collect();
            self.errors.push(format!(
                "{key} must be {}, got {value:?}.",
                words.join(" or ")
            ));
            return None;
        }
        value.or_else(|| match field.default {
            Some(FieldDefault::Text(default)) => Some(default.to_owned()),
            _ => None,
        })
    }

    /// A flag, else its default (`false` without one).
    fn flag(&mut self, field: &Field) -> bool {
        let default = matches!(field.default, Some(FieldDefault::Flag(true)));
        match self.map.get(field.key) {
            None | Some(Value::Null) => default,
            Some(Value::Bool(value)) => *value,
            Some(other) => {
                self.errors
                    .push(format!("{} must be true or false, got {other}.", field.key));
                default
            }
        }
    }

    /// A whole number (milliseconds, bytes) within the field's bounds, else its default.
    fn whole(&mut self, field: &Field) -> u64 {
        let default = match field.default {
            Some(FieldDefault::Millis(default) | FieldDefault::Bytes(default)) => default,
            _ => 0,
        };
        let (min, max, unit) = match field.kind {
            FieldKind::Millis { min, max } => (min, max, "milliseconds"),
            FieldKind::Bytes { min, max } => (min, max, "bytes"),
            _ => return default,
        };
        match self.map.get(field.key) {
            None | Some(Value::Null) => default,
            Some(value) => match value.as_u64().filter(|number| (min..=max).contains(number)) {
                Some(number) => number,
                None => {
                    self.errors.push(format!(
                        "{} must be a whole number of {unit} between {min} and {max}, got {value}.",
                        field.key
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
            (
                json!({"syncMaxBytes": 0}),
                "syncMaxBytes must be a whole number of bytes between 1 and",
            ),
            (
                json!({"nativeSync": "off"}),
                "nativeSync must be true or false",
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

    /// The schema, the filled-in defaults and the typed settings come from one table; this
    /// proves they say the same: a configuration with nothing but the required keys reads as
    /// the very settings it reads as once `environmentValidateConfig` has filled in every
    /// default, and those defaults are the schema's.
    #[test]
    fn the_schema_the_defaults_and_the_settings_agree() {
        let schema = schema();
        let normalized = validate(&valid()).normalized;
        for field in &FIELDS {
            let published = &schema["properties"][field.key];
            assert!(published.is_object(), "{} is not in the schema", field.key);
            assert_eq!(
                published.get("default"),
                normalized
                    .get(field.key)
                    .filter(|_| field.default.is_some()),
                "{}: the schema's default and the filled-in one differ",
                field.key
            );
        }
        let required: Vec<&str> = FIELDS
            .iter()
            .filter(|field| field.required)
            .map(|field| field.key)
            .collect();
        assert_eq!(schema["required"], json!(required));
        let from_defaults = ProviderConfig::from_value(&valid()).expect("valid");
        let from_filled = ProviderConfig::from_value(&Value::Object(normalized)).expect("valid");
        assert_eq!(from_defaults, from_filled);
        assert_eq!(from_defaults.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(from_defaults.session_strategy, SessionStrategy::Named);
        assert!(from_defaults.login_shell && from_defaults.stream_output);
    }

    #[test]
    fn the_secret_never_appears_in_debug_output() {
        let config = ProviderConfig::from_value(&valid()).expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains(SECRET), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert_eq!(config.bridge_secret.expose(), SECRET);
    }

    #[test]
    fn runtime_settings_need_a_real_secret() {
        let config = ProviderConfig::from_value(&valid()).expect("valid");
        assert_eq!(config.key_id.as_str(), DEFAULT_KEY_ID);
        assert_eq!(config.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert!(config.secret_key().is_ok());
        let error = ProviderConfig::from_value(&with(json!({"bridgeSecret": "short"})))
            .expect_err("too short");
        assert!(
            error.to_string().contains("bridgeSecret is too short"),
            "{error}"
        );
    }
}
