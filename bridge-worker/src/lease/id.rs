//! Lease ids: deterministic, so a repeated acquire lands on the same Durable Object, and valid
//! sandbox ids, so the lease id can name the sandbox too.

use sha2::{Digest, Sha256};

use crate::sandbox::{SandboxId, SandboxIdError};
use bridge_protocol::api::ReuseScope;

/// Longest readable part taken from a run or environment id.
const READABLE_LEN: usize = 40;

/// `pc-<runId>-<8 hex>`: one lease per `(environmentId, runId)`.
pub fn per_run(environment_id: &str, run_id: &str) -> Result<SandboxId, SandboxIdError> {
    let digest = digest_hex(&["run", environment_id, run_id], 8);
    SandboxId::parse(&format!("pc-{}-{digest}", slug(run_id, READABLE_LEN)))
}

/// `pc-env-<environmentId>` (or its digest when it is not a clean id), optionally per issue.
pub fn reusable(
    environment_id: &str,
    scope: ReuseScope,
    issue_id: Option<&str>,
) -> Result<SandboxId, SandboxIdError> {
    let environment = slug(environment_id, usize::MAX);
    let environment = if environment == environment_id && environment.len() <= READABLE_LEN {
        environment
    } else {
        digest_hex(&["env", environment_id], 16)
    };
    match (scope, issue_id) {
        (ReuseScope::Issue, Some(issue)) => SandboxId::parse(&format!(
            "pc-env-{}-iss-{}",
            digest_hex(&["env", environment_id], 12),
            digest_hex(&["issue", issue], 12)
        )),
        _ => SandboxId::parse(&format!("pc-env-{environment}")),
    }
}

/// Lower-case alphanumerics and single hyphens, at most `max` characters, never empty.
fn slug(text: &str, max: usize) -> String {
    let mut slug = String::new();
    for character in text.chars().flat_map(char::to_lowercase) {
        if character.is_ascii_lowercase() || character.is_ascii_digit() {
            slug.push(character);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= max {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "x".to_owned()
    } else {
        slug.to_owned()
    }
}

/// The first `len` hex digits of SHA-256 over the NUL-separated `parts`.
fn digest_hex(parts: &[&str], len: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut digest = hex::encode(hasher.finalize());
    digest.truncate(len);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "6F9619FF-8B86-D011-B42D-00C04FC964FF";

    #[test]
    fn per_run_ids_are_deterministic_readable_and_distinct() {
        let id = per_run("env-1", RUN).expect("valid");
        assert_eq!(id, per_run("env-1", RUN).expect("valid"));
        assert!(
            id.as_str()
                .starts_with("pc-6f9619ff-8b86-d011-b42d-00c04fc964ff-"),
            "{id}"
        );
        assert_eq!(id.as_str().len(), "pc-".len() + 36 + 1 + 8);
        assert_ne!(id, per_run("env-2", RUN).expect("valid"));
        assert_ne!(id, per_run("env-1", "another-run").expect("valid"));
    }

    #[test]
    fn odd_input_still_yields_valid_ids() {
        for run in ["", "---", "Ünïcödé run/№ 5", &"r".repeat(300), "a b\nc"] {
            let id = per_run("env", run).expect("valid");
            assert!(SandboxId::parse(id.as_str()).is_ok(), "{id}");
        }
    }

    #[test]
    fn reusable_ids_follow_the_environment_and_optionally_the_issue() {
        let env = "0d3a8f52-5bb8-4f8a-9e0e-6b1a0c2d9f10";
        assert_eq!(
            reusable(env, ReuseScope::Environment, Some("i1"))
                .expect("valid")
                .as_str(),
            format!("pc-env-{env}")
        );
        let odd = reusable("My Env", ReuseScope::Environment, None).expect("valid");
        assert!(
            odd.as_str().starts_with("pc-env-") && odd.as_str().len() == 23,
            "{odd}"
        );
        let per_issue = reusable(env, ReuseScope::Issue, Some("issue-7")).expect("valid");
        assert_ne!(
            per_issue,
            reusable(env, ReuseScope::Issue, Some("issue-8")).expect("valid")
        );
        assert_eq!(
            reusable(env, ReuseScope::Issue, None)
                .expect("valid")
                .as_str(),
            format!("pc-env-{env}"),
            "issue scope without an issue falls back to the environment"
        );
    }
}
