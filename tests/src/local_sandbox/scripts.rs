//! The bash scripts the server has a session shell source for each command. Pure string
//! building: the command itself is never pasted into a script, only sourced from its own file,
//! so its syntax errors stay contained and its `cd`/`export` behave as typed at a prompt.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Quotes `value` as one single-quoted shell word.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A variable name the shell accepts, the rule the real container enforces.
fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// A variable name that is not a valid shell identifier.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Invalid environment variable name: {0}")]
pub struct InvalidEnvName(pub String);

/// Environment variables with validated names, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvVars(Vec<(String, String)>);

impl EnvVars {
    /// Validates names; `null` values are dropped, as the real container skips `undefined`.
    pub fn parse(vars: BTreeMap<String, Option<String>>) -> Result<Self, InvalidEnvName> {
        vars.into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, value)))
            .map(|(name, value)| {
                if is_valid_name(&name) {
                    Ok((name, value))
                } else {
                    Err(InvalidEnvName(name))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The `(name, value)` pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// `NAME='value' ` assignments that scope the variables to the command they prefix.
    fn assignments(&self) -> String {
        self.0.iter().fold(String::new(), |mut out, (name, value)| {
            let _ = write!(out, "{name}={} ", quote(value));
            out
        })
    }
}

/// Files of one command's control directory, as the shell names them.
#[derive(Debug)]
pub struct ControlFiles {
    /// The command text, sourced as is.
    pub command: String,
    /// FIFO for the command's stdout.
    pub stdout: String,
    /// FIFO for the command's stderr.
    pub stderr: String,
    /// FIFO on which the script reports `pid <n>` and `exit <n>` lines.
    pub control: String,
}

/// A command's per-call settings.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// Variables for this command only.
    pub env: &'a EnvVars,
    /// Directory to run in; the shell's own directory is restored afterwards.
    pub cwd: Option<&'a str>,
}

/// Script for a foreground command: it runs in the session shell itself, so `cd`, `export` and
/// function definitions persist; per-call env and cwd apply to this command only (the real
/// container's `cd` there and back). Reports `exit <status>` on the control FIFO.
pub fn foreground(files: &ControlFiles, invocation: Invocation<'_>) -> String {
    let run = format!(
        "{}. {}\n__ls_status=$?",
        invocation.env.assignments(),
        quote(&files.command)
    );
    let body = match invocation.cwd {
        None => run,
        Some(cwd) => format!(
            "__ls_previous_dir=$PWD\n\
             if cd -- {cwd} 2>/dev/null; then\n\
             {run}\n\
             cd -- \"$__ls_previous_dir\" 2>/dev/null\n\
             else\n\
             {fail}\n\
             fi",
            cwd = quote(cwd),
            fail = cd_failure(cwd),
        ),
    };
    format!(
        "__ls_status=1\n\
         {{\n{body}\n}} </dev/null >{stdout} 2>{stderr}\n\
         printf 'exit %d\\n' \"$__ls_status\" >{control}\n",
        stdout = quote(&files.stdout),
        stderr = quote(&files.stderr),
        control = quote(&files.control),
    )
}

/// Script for a background command (streams and processes): it runs in a subshell of the session
/// shell, which reports the subshell's `pid <n>` at once and the subshell reports `exit <status>`
/// when the command ends. Nothing it does changes the session shell.
pub fn background(files: &ControlFiles, invocation: Invocation<'_>) -> String {
    let enter = invocation.cwd.map_or_else(String::new, |cwd| {
        format!(
            "cd -- {} 2>/dev/null || {{ {}; exit 1; }}\n",
            quote(cwd),
            cd_failure(cwd)
        )
    });
    format!(
        "{{\n\
         (\n{enter}{env}. {command}\n)\n\
         printf 'exit %d\\n' \"$?\" >{control}\n\
         }} </dev/null >{stdout} 2>{stderr} &\n\
         printf 'pid %d\\n' \"$!\" >{control}\n",
        env = invocation.env.assignments(),
        command = quote(&files.command),
        stdout = quote(&files.stdout),
        stderr = quote(&files.stderr),
        control = quote(&files.control),
    )
}

/// The line that makes the session shell run a script file.
pub fn source_line(script: &str) -> String {
    format!(". {}\n", quote(script))
}

/// The real container's message when a per-call `cwd` cannot be entered, on stderr.
fn cd_failure(cwd: &str) -> String {
    let message = format!("Failed to change directory to '{cwd}'");
    format!("printf '%s\\n' {} >&2", quote(&message))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{ControlFiles, EnvVars, InvalidEnvName, Invocation, background, foreground, quote};

    fn files() -> ControlFiles {
        ControlFiles {
            command: "/tmp/c/cmd".into(),
            stdout: "/tmp/c/out".into(),
            stderr: "/tmp/c/err".into(),
            control: "/tmp/c/ctl".into(),
        }
    }

    fn env(pairs: &[(&str, Option<&str>)]) -> Result<EnvVars, InvalidEnvName> {
        EnvVars::parse(
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.map(str::to_owned)))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn env_names_are_validated_and_nulls_dropped() {
        let vars = env(&[("B", Some("2")), ("_a1", Some("x")), ("GONE", None)]);
        let expected = vec![("B".to_owned(), "2".to_owned()), ("_a1".into(), "x".into())];
        assert_eq!(vars.map(|vars| vars.pairs().to_vec()), Ok(expected));
        for bad in ["1A", "A-B", "", "A B"] {
            assert_eq!(
                env(&[(bad, Some("x"))]),
                Err(InvalidEnvName(bad.to_owned()))
            );
        }
    }

    #[test]
    fn foreground_scopes_env_and_cwd_to_the_command() {
        let vars = env(&[("GREETING", Some("it's me"))]).unwrap_or_default();
        let script = foreground(
            &files(),
            Invocation {
                env: &vars,
                cwd: Some("/workspace/x y"),
            },
        );
        assert!(script.contains(r"GREETING='it'\''s me' . '/tmp/c/cmd'"));
        assert!(script.contains("if cd -- '/workspace/x y' 2>/dev/null; then"));
        assert!(script.contains("cd -- \"$__ls_previous_dir\""));
        assert!(script.contains("} </dev/null >'/tmp/c/out' 2>'/tmp/c/err'"));
        assert!(script.ends_with("printf 'exit %d\\n' \"$__ls_status\" >'/tmp/c/ctl'\n"));
    }

    #[test]
    fn background_runs_in_a_subshell_and_reports_pid_then_exit() {
        let script = background(
            &files(),
            Invocation {
                env: &EnvVars::default(),
                cwd: None,
            },
        );
        assert!(script.starts_with("{\n(\n. '/tmp/c/cmd'\n)\n"));
        assert!(script.contains("} </dev/null >'/tmp/c/out' 2>'/tmp/c/err' &\n"));
        assert!(script.ends_with("printf 'pid %d\\n' \"$!\" >'/tmp/c/ctl'\n"));
    }
}
