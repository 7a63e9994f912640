//! The script that runs one argv, and the one that kills it.
//!
//! The command runs in a session of its own (`setsid`), whose id it records in its control
//! directory, so a timeout or a cancel can kill the whole process tree from another, sessionless
//! exec (the SDK's own session timeout leaves commands running). Commands of one session name are
//! serialised with `flock`, and the lease sentinel is checked first, so a sandbox that lost its
//! state is reported instead of running the command somewhere unexpected.

use super::{LOCK_DIR, SENTINEL_PATH, execution_prefix, quote};

/// Exit code of the script when the sandbox lacks the lease sentinel; the command did not run.
pub const LOST_EXIT_CODE: i32 = 86;
/// The stderr line accompanying [`LOST_EXIT_CODE`].
pub const LOST_MARKER: &str =
    "paperclip-bridge: the lease sentinel is missing; the command did not run";

/// Everything needed to run one argv.
#[derive(Debug, Clone, Copy)]
pub struct CommandScript<'a> {
    /// Names the control directory.
    pub execution_id: &'a str,
    /// What the sandbox must hold in its sentinel file.
    pub sentinel: &'a str,
    /// Session to serialise with, if any.
    pub session_lock: Option<&'a str>,
    /// Working directory.
    pub cwd: &'a str,
    /// Environment additions; keys already validated as shell identifiers.
    pub env: &'a [(String, String)],
    /// The argv, `command` first.
    pub argv: &'a [String],
    /// Whether stdin was staged at [`super::stdin_path`].
    pub staged_stdin: bool,
    /// Source `/etc/profile` and `~/.profile` first (quietly), for the PATH images expect.
    pub login_shell: bool,
}

impl CommandScript<'_> {
    /// Renders the script for a sessionless exec. Only `setsid` and the final `rm` cost a
    /// process besides the command itself; everything else is shell builtins.
    pub fn render(&self) -> String {
        let mut inner =
            String::from("echo \"$$\" > \"$1.pgid\"\n[ -e \"$1.cancel\" ] && exit 143\n");
        if self.login_shell {
            inner.push_str(
                "for p in /etc/profile \"$HOME/.profile\"; do [ -r \"$p\" ] && . \"$p\"; done \
                 >/dev/null 2>&1 </dev/null\n",
            );
        }
        inner.push_str(&format!("cd -- {} || exit 1\n", quote(self.cwd)));
        for (key, value) in self.env {
            inner.push_str(&format!("export {key}={}\n", quote(value)));
        }
        inner.push_str("exec");
        for word in self.argv {
            inner.push(' ');
            inner.push_str(&quote(word));
        }
        inner.push_str(if self.staged_stdin {
            " < \"$1.stdin\""
        } else {
            " < /dev/null"
        });
        let lock = self.session_lock.map_or_else(String::new, |name| {
            format!("flock {} ", quote(&format!("{LOCK_DIR}/{name}.lock")))
        });
        format!(
            "c={prefix}\n\
             s=; read -r s 2>/dev/null < {sentinel_path}\n\
             [ \"$s\" = {sentinel} ] || {{ printf '%s\\n' {marker} >&2; exit {LOST_EXIT_CODE}; }}\n\
             {lock}setsid -w sh -c {inner} paperclip-exec \"$c\"\n\
             r=$?\n\
             rm -f -- \"$c.pgid\" \"$c.stdin\" \"$c.cancel\"\n\
             exit \"$r\"",
            prefix = quote(&execution_prefix(self.execution_id)),
            sentinel_path = quote(SENTINEL_PATH),
            sentinel = quote(self.sentinel),
            marker = quote(LOST_MARKER),
            inner = quote(&inner),
        )
    }
}

/// What the kill script found and did, from its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// Nothing was running (it had not started, or had ended).
    NotRunning,
    /// The process group ended after SIGTERM.
    Terminated,
    /// The group needed SIGKILL.
    Killed,
    /// Something survived SIGKILL, or the script itself failed.
    Failed,
}

impl KillOutcome {
    /// Interprets the exit code of [`kill_script`].
    pub fn from_exit_code(code: Option<i32>) -> Self {
        match code {
            Some(0) => Self::NotRunning,
            Some(10) => Self::Terminated,
            Some(11) => Self::Killed,
            _ => Self::Failed,
        }
    }

    /// The signal that ended the command, for the result.
    pub fn signal(self) -> Option<&'static str> {
        match self {
            Self::Terminated => Some("SIGTERM"),
            Self::Killed => Some("SIGKILL"),
            Self::NotRunning | Self::Failed => None,
        }
    }
}

/// Marks the execution cancelled, then TERMs its process group, waits up to `grace_ms`, KILLs
/// what is left, and returns only once no process of the group is alive (zombies do not count).
pub fn kill_script(execution_id: &str, grace_ms: u64) -> String {
    format!(
        "c={prefix}\n\
         : > \"$c.cancel\" || exit 3\n\
         p=; read -r p 2>/dev/null < \"$c.pgid\"\n\
         [ -n \"$p\" ] || exit 0\n\
         alive() {{ for s in /proc/[0-9]*/stat; do read -r l < \"$s\" 2>/dev/null || continue; \
         set -- ${{l##*\") \"}}; [ \"$3\" = \"$p\" ] && [ \"$1\" != Z ] && return 0; done; return 1; }}\n\
         alive || exit 0\n\
         kill -TERM -- \"-$p\" 2>/dev/null\n\
         i=0; while alive; do [ \"$i\" -ge {ticks} ] && break; sleep 0.1; i=$((i+1)); done\n\
         alive || exit 10\n\
         kill -KILL -- \"-$p\" 2>/dev/null\n\
         i=0; while alive; do [ \"$i\" -ge 50 ] && exit 12; sleep 0.1; i=$((i+1)); done\n\
         exit 11",
        prefix = quote(&execution_prefix(execution_id)),
        ticks = grace_ms.div_ceil(100),
    )
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn every_argv_element_is_one_quoted_word() {
        let argv = [
            "printf".to_owned(),
            "%s\\0".to_owned(),
            "a b".to_owned(),
            "it's".to_owned(),
        ];
        let env = [("GREETING".to_owned(), "hello 'world'".to_owned())];
        let script = CommandScript {
            execution_id: "e1",
            sentinel: "s",
            session_lock: Some("paperclip"),
            cwd: "/workspace/x",
            env: &env,
            argv: &argv,
            staged_stdin: true,
            login_shell: false,
        }
        .render();
        assert!(
            script.starts_with("c='/tmp/.paperclip-bridge/exec/e1'\n"),
            "{script}"
        );
        assert!(
            script.contains("flock '/tmp/.paperclip-bridge/locks/paperclip.lock' setsid -w sh -c")
        );
        assert!(!script.contains("/etc/profile"));
    }

    /// Runs the inner part of a rendered script through a real `sh`, as the sandbox would.
    fn run_inner(argv: &[String], env: &[(String, String)]) -> Vec<u8> {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pcb-script-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let script = CommandScript {
            execution_id: "unused",
            sentinel: "unused",
            session_lock: None,
            cwd: dir.to_str().expect("utf-8 temp dir"),
            env,
            argv,
            staged_stdin: false,
            login_shell: false,
        }
        .render();
        let inner_start = script.find("sh -c ").expect("inner script") + "sh -c ".len();
        let inner_end = script.find(" paperclip-exec").expect("inner end");
        let inner = format!(
            "sh -c {} paperclip-exec {}",
            &script[inner_start..inner_end],
            dir.display()
        );
        let output = Command::new("sh")
            .arg("-c")
            .arg(inner)
            .output()
            .expect("sh runs");
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    #[test]
    fn a_real_shell_receives_the_argv_unchanged() {
        let tricky = [
            "with space",
            "quote's \"double\"",
            "$(echo injected)",
            "`echo injected`",
            "line\nbreak",
            "ünïcødé ✓",
            "",
            "*",
            "--",
        ];
        let mut argv = vec!["printf".to_owned(), "%s\\0".to_owned()];
        argv.extend(tricky.iter().map(|word| (*word).to_owned()));
        let output = run_inner(&argv, &[]);
        let expected: Vec<u8> = tricky
            .iter()
            .flat_map(|word| word.bytes().chain(std::iter::once(0)))
            .collect();
        assert_eq!(output, expected);
    }

    #[test]
    fn a_real_shell_sees_the_environment_values_unchanged() {
        let env = [("VALUE".to_owned(), "a 'b' $(c) \n d".to_owned())];
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            "printf %s \"$VALUE\"".to_owned(),
        ];
        assert_eq!(run_inner(&argv, &env), env[0].1.as_bytes());
    }

    #[test]
    fn kill_outcomes_follow_the_exit_codes() {
        assert_eq!(
            KillOutcome::from_exit_code(Some(0)),
            KillOutcome::NotRunning
        );
        assert_eq!(
            KillOutcome::from_exit_code(Some(10)).signal(),
            Some("SIGTERM")
        );
        assert_eq!(
            KillOutcome::from_exit_code(Some(11)).signal(),
            Some("SIGKILL")
        );
        assert_eq!(KillOutcome::from_exit_code(Some(12)), KillOutcome::Failed);
        assert_eq!(KillOutcome::from_exit_code(None), KillOutcome::Failed);
        assert!(kill_script("e1", 5_000).contains("-ge 50 ] && break"));
    }
}
