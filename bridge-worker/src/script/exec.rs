//! The script that runs one argv, and the one that kills it.
//!
//! A sessionless exec starts the script as the leader of its own process group, with
//! [`EXECUTION_ENV_VAR`]` = <execution id>` in its initial environment. The script checks the
//! lease sentinel (a sandbox that lost its state is reported instead of running the command
//! somewhere unexpected), runs the command and, the moment it exits, writes the execution's end
//! record to stdout and stderr ([`EndRecord`]): the container keeps its stream open until every
//! process holding the command's pipes has gone, which a process left in the background may never
//! do. Commands of one session name are serialised with `flock` on a descriptor that only the
//! script's shell holds, and the command gets it closed, so a process it leaves running (the
//! host's `nohup … &`) never holds the session either. The kill script finds every process
//! carrying the marker in its environment, kills their process groups (TERM, grace, KILL) and
//! waits until none is alive: this reaches the whole tree, including children that started
//! sessions of their own, without any per-execution file to create or clean up (the SDK's own
//! session timeout leaves commands running, so it is never relied on).

use bridge_protocol::api::{EXECUTION_ENV_VAR, LEASE_ENV_VAR};

use super::{LOCK_DIR, SENTINEL_PATH, execution_prefix, quote, quoted_len};
use crate::exec::{EndRecord, is_shell_identifier};

/// Exit code of the script when the sandbox lacks the lease sentinel; the command did not run.
pub const LOST_EXIT_CODE: i32 = 86;
/// The stderr line accompanying [`LOST_EXIT_CODE`].
pub const LOST_MARKER: &str =
    "paperclip-bridge: the lease sentinel is missing; the command did not run";

/// Longest script the container can start: it runs `bash -c <script>`, and Linux takes at most
/// 128 KiB in one argument string (`MAX_ARG_STRLEN`, its terminating NUL included).
const MAX_SCRIPT_BYTES: usize = 128 * 1024 - 1;

/// Room kept in a script for its fixed lines and the longest lease working directory (4096
/// bytes, 16 KiB once quoted if each is a quote).
const SCRIPT_OWN_BYTES: usize = 28 * 1024 - 1;

/// Most bytes a request's own part of its script may take ([`command_bytes`]), so that a
/// command within it always starts: 100 KiB.
pub const MAX_COMMAND_BYTES: usize = MAX_SCRIPT_BYTES - SCRIPT_OWN_BYTES;

/// The bytes that `argv`, `env` and `cwd` take in a rendered [`CommandScript`], or a little more
/// (each variable is counted in whichever of its two forms is longer).
pub fn command_bytes(argv: &[String], env: &[(String, String)], cwd: Option<&str>) -> usize {
    let words: usize = argv.iter().map(|word| quoted_len(word) + 1).sum();
    let variables: usize = env
        .iter()
        .map(|(key, value)| quoted_len(key) + quoted_len(value) + "export =\nenv ".len())
        .sum();
    words + variables + cwd.map_or(0, quoted_len)
}

/// Everything needed to run one argv.
#[derive(Debug, Clone, Copy)]
pub struct CommandScript<'a> {
    /// Names the execution's files (staged stdin, cancel marker).
    pub execution_id: &'a str,
    /// What the sandbox must hold in its sentinel file.
    pub sentinel: &'a str,
    /// Session to serialise with, if any.
    pub session_lock: Option<&'a str>,
    /// Working directory.
    pub cwd: &'a str,
    /// Environment additions, names already validated: shell identifiers are exported, other
    /// names are handed to the command by env(1) (no shell can export them).
    pub env: &'a [(String, String)],
    /// The argv, `command` first.
    pub argv: &'a [String],
    /// Whether stdin was staged at [`super::stdin_path`].
    pub staged_stdin: bool,
    /// Source `/etc/profile` and `~/.profile` first (quietly), for the PATH images expect.
    pub login_shell: bool,
    /// Written to stdout and stderr once the command has exited.
    pub end_record: &'a EndRecord,
}

impl CommandScript<'_> {
    /// Renders the script for a sessionless exec whose environment carries the marker.
    pub fn render(&self) -> String {
        let mut script = format!(
            "c={prefix}\n\
             s=; read -r s 2>/dev/null < {sentinel_path}\n\
             [ \"$s\" = {sentinel} ] || {{ printf '%s\\n' {marker} >&2; exit {LOST_EXIT_CODE}; }}\n\
             [ -e \"$c.cancel\" ] && {{ rm -f -- \"$c.cancel\" \"$c.stdin\"; exit 143; }}\n",
            prefix = quote(&execution_prefix(self.execution_id)),
            sentinel_path = quote(SENTINEL_PATH),
            sentinel = quote(self.sentinel),
            marker = quote(LOST_MARKER),
        );
        if self.login_shell {
            script.push_str(
                "for p in /etc/profile \"$HOME/.profile\"; do [ -r \"$p\" ] && . \"$p\"; done \
                 >/dev/null 2>&1 </dev/null\n",
            );
        }
        script.push_str(&format!("cd -- {} || exit 1\n", quote(self.cwd)));
        let mut passed_by_env = Vec::new();
        for (key, value) in self.env {
            if is_shell_identifier(key) {
                script.push_str(&format!("export {key}={}\n", quote(value)));
            } else {
                passed_by_env.push(format!("{key}={value}"));
            }
        }
        let mut argv = Vec::with_capacity(self.argv.len() + passed_by_env.len() + 1);
        if !passed_by_env.is_empty() {
            argv.push("env".to_owned());
            argv.append(&mut passed_by_env);
        }
        argv.extend(self.argv.iter().cloned());
        if self.staged_stdin {
            script.push_str("exec < \"$c.stdin\"; rm -f -- \"$c.stdin\"\n");
        } else {
            script.push_str("exec < /dev/null\n");
        }
        let command = argv.iter().map(|word| quote(word)).collect::<Vec<_>>();
        let mut command = command.join(" ");
        if let Some(name) = self.session_lock {
            // The lock lives on descriptor 9 of this shell only: the command gets it closed, so
            // a process it leaves in the background can never hold the session.
            script.push_str(&format!(
                "exec 9>> {} && flock 9 || exit 1\n",
                quote(&format!("{LOCK_DIR}/{name}.lock"))
            ));
            command.push_str(" 9>&-");
        }
        // The shell outlives the command to write the end records the moment it exits: the
        // container's stream may stay open far longer, held by what the command left running.
        let record = quote(&self.end_record.printf_format());
        script.push_str(&format!(
            "{command}\ns=$?\nprintf {record} \"$s\"; printf {record} \"$s\" >&2\nexit \"$s\""
        ));
        script
    }
}

/// What the kill script found and did, from its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// Nothing was running (it had not started, or had ended).
    NotRunning,
    /// Every process ended after SIGTERM.
    Terminated,
    /// Something needed SIGKILL.
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

/// Marks the execution cancelled (a script that has not started yet will not run the command),
/// then signals every process carrying the execution's marker, and its process group: TERM, up to
/// `grace_ms`, then KILL. Returns only once none of them is alive (zombies do not count). Written
/// for any POSIX `sh` (dash's `kill` takes no `--`); needs `grep -z` (GNU or BusyBox).
pub fn kill_script(execution_id: &str, grace_ms: u64) -> String {
    format!(
        "c={prefix}\n\
         : > \"$c.cancel\" || exit 3\n\
         {kill}",
        prefix = quote(&execution_prefix(execution_id)),
        kill = kill_marked(
            &format!("{EXECUTION_ENV_VAR}={execution_id}"),
            "rm -f -- \"$c.cancel\"\n",
            grace_ms
        ),
    )
}

/// Like [`kill_script`] for every process any execution of the lease started, those it left
/// running in the background included: a stop that keeps the sandbox must leave none of its
/// work behind. Exit codes as for [`kill_script`].
pub fn kill_lease_script(lease_id: &str, grace_ms: u64) -> String {
    kill_marked(&format!("{LEASE_ENV_VAR}={lease_id}"), "", grace_ms)
}

/// Signals every process whose environment holds `marker` (and its process group): TERM, up to
/// `grace_ms`, then KILL; `before_signals` runs once something was found.
fn kill_marked(marker: &str, before_signals: &str, grace_ms: u64) -> String {
    format!(
        "procs() {{ grep -lzxF -- {marker} /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3; }}\n\
         hit() {{ for p in $(procs); do kill -\"$1\" \"-$p\" 2>/dev/null; kill -\"$1\" \"$p\" 2>/dev/null; done; }}\n\
         [ -n \"$(procs)\" ] || exit 0\n\
         {before_signals}\
         hit TERM\n\
         i=0; while [ -n \"$(procs)\" ]; do [ \"$i\" -ge {ticks} ] && break; sleep 0.1; i=$((i+1)); done\n\
         [ -n \"$(procs)\" ] || exit 10\n\
         hit KILL\n\
         i=0; while [ -n \"$(procs)\" ]; do [ \"$i\" -ge 50 ] && exit 12; sleep 0.1; i=$((i+1)); done\n\
         exit 11",
        marker = quote(marker),
        ticks = grace_ms.div_ceil(100),
    )
}

/// These run the scripts in a real `sh` with real processes, so they exist only on Unix hosts.
#[cfg(all(test, unix))]
mod tests {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::script::{EXEC_DIR, stdin_path};

    /// A scratch directory standing in for the sandbox's `/tmp/.paperclip-bridge`.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            static RUNS: AtomicUsize = AtomicUsize::new(0);
            let run = RUNS.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("pcb-script-{}-{run}", std::process::id()));
            std::fs::create_dir_all(dir.join("exec")).expect("scratch dir");
            std::fs::write(dir.join("lease"), "tok").expect("sentinel");
            Self(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        /// The script with the sandbox paths moved into the scratch directory.
        fn localise(&self, script: &str) -> String {
            script.replace("/tmp/.paperclip-bridge", &self.0.display().to_string())
        }

        fn command(&self, script: &str, execution_id: &str) -> Command {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(self.localise(script))
                .env(EXECUTION_ENV_VAR, execution_id)
                .process_group(0);
            command
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    fn script<'a>(
        argv: &'a [String],
        env: &'a [(String, String)],
        cwd: &'a str,
    ) -> CommandScript<'a> {
        CommandScript {
            execution_id: "e1",
            sentinel: "tok",
            session_lock: None,
            cwd,
            env,
            argv,
            staged_stdin: false,
            login_shell: false,
            end_record: &END,
        }
    }

    static END: std::sync::LazyLock<EndRecord> =
        std::sync::LazyLock::new(|| EndRecord::new("t3st"));

    /// Runs the script; returns its output with the end records checked and cut off.
    fn run(scratch: &Scratch, script: &CommandScript<'_>) -> Output {
        let mut output = scratch
            .command(&script.render(), script.execution_id)
            .output()
            .expect("sh runs");
        if let Some(code) = output.status.code()
            && code != LOST_EXIT_CODE
            && code != 143
        {
            let record = format!("pcb-end-t3st:{code};").into_bytes();
            for stream in [&mut output.stdout, &mut output.stderr] {
                assert!(
                    stream.ends_with(&record),
                    "no end record: {}",
                    String::from_utf8_lossy(stream)
                );
                stream.truncate(stream.len() - record.len());
            }
        }
        output
    }

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| (*word).to_owned()).collect()
    }

    /// An argv and its environment.
    type ArgvAndEnv = (Vec<String>, Vec<(String, String)>);

    /// Requests at the size limit, each in another shape: many words, one word of quotes,
    /// variables only a shell can export, variables only env(1) can pass.
    fn commands_at_the_limit() -> Vec<ArgvAndEnv> {
        let fill = |size: usize, unit: &str| unit.repeat(size / unit.len());
        let mut shapes = vec![
            (vec!["a".to_owned(); MAX_COMMAND_BYTES / 4], Vec::new()),
            (vec![fill(MAX_COMMAND_BYTES / 4 - 1, "'")], Vec::new()),
        ];
        for key in ["NAME", "A-NAME"] {
            let env = (0..MAX_COMMAND_BYTES / 160)
                .map(|index| (format!("{key}{index}"), fill(40, "v'")))
                .collect::<Vec<_>>();
            shapes.push((vec!["true".to_owned()], env));
        }
        shapes
            .into_iter()
            .map(|(mut argv, env)| {
                let size = command_bytes(&argv, &env, None);
                assert!(size <= MAX_COMMAND_BYTES, "{size}");
                let room = MAX_COMMAND_BYTES - size;
                if room >= 3 {
                    argv.push("x".repeat(room - 3));
                }
                (argv, env)
            })
            .collect()
    }

    #[test]
    fn a_command_within_the_limit_always_makes_a_script_the_container_can_start() {
        let longest_cwd = "'".repeat(bridge_protocol::remote_path::RemotePath::MAX_LEN - 1);
        let longest_cwd = format!("/{longest_cwd}");
        let id = "e".repeat(64);
        let lock = format!("{}-bridge", "s".repeat(64));
        for (argv, env) in commands_at_the_limit() {
            let measured = command_bytes(&argv, &env, None);
            assert!(measured <= MAX_COMMAND_BYTES && measured + 3 > MAX_COMMAND_BYTES);
            let rendered = CommandScript {
                execution_id: &id,
                sentinel: &"t".repeat(64),
                session_lock: Some(&lock),
                staged_stdin: true,
                login_shell: true,
                ..script(&argv, &env, &longest_cwd)
            }
            .render();
            let without_cwd = CommandScript {
                cwd: "/",
                ..script(&argv, &env, "/")
            }
            .render();
            assert!(
                rendered.len() <= MAX_SCRIPT_BYTES,
                "{} bytes with {} of command",
                rendered.len(),
                measured
            );
            assert!(
                without_cwd.len().saturating_sub(measured) <= 1024,
                "command_bytes undercounts: {} of script for {measured}",
                without_cwd.len()
            );
        }
    }

    #[test]
    fn linux_starts_a_script_of_the_longest_length_and_refuses_a_longer_one() {
        let padding = |length: usize| format!("true {}", "x".repeat(length - 5));
        let longest = Command::new("bash")
            .arg("-c")
            .arg(padding(MAX_SCRIPT_BYTES))
            .status()
            .expect("bash starts a script of MAX_SCRIPT_BYTES");
        assert!(longest.success());
        let error = Command::new("bash")
            .arg("-c")
            .arg(padding(MAX_SCRIPT_BYTES + 1))
            .status()
            .expect_err("one byte more is over MAX_ARG_STRLEN");
        assert_eq!(error.raw_os_error(), Some(7), "E2BIG: {error}");
    }

    #[test]
    fn the_command_runs_behind_its_session_lock_without_inheriting_it() {
        let argv = words(&["printf", "%s", "it's"]);
        let rendered = CommandScript {
            session_lock: Some("paperclip"),
            staged_stdin: true,
            login_shell: true,
            ..script(&argv, &[], "/workspace/x")
        }
        .render();
        assert!(
            rendered.starts_with("c='/tmp/.paperclip-bridge/exec/e1'\n"),
            "{rendered}"
        );
        assert!(
            rendered.ends_with(
                "exec 9>> '/tmp/.paperclip-bridge/locks/paperclip.lock' && flock 9 || exit 1\n\
                 'printf' '%s' 'it'\\''s' 9>&-\n\
                 s=$?\n\
                 printf 'pcb-end-t3st:%d;' \"$s\"; printf 'pcb-end-t3st:%d;' \"$s\" >&2\n\
                 exit \"$s\""
            ),
            "{rendered}"
        );
        assert!(rendered.contains("/etc/profile"));
        assert!(rendered.contains("exec < \"$c.stdin\"; rm -f -- \"$c.stdin\""));
    }

    #[test]
    fn a_real_shell_receives_argv_and_env_unchanged() {
        let scratch = Scratch::new();
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
        let mut argv = words(&["printf", "%s\\0"]);
        argv.extend(tricky.iter().map(|word| (*word).to_owned()));
        let cwd = scratch.path().display().to_string();
        let output = run(&scratch, &script(&argv, &[], &cwd));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let expected: Vec<u8> = tricky
            .iter()
            .flat_map(|word| word.bytes().chain(std::iter::once(0)))
            .collect();
        assert_eq!(output.stdout, expected);

        let env = [("VALUE".to_owned(), "a 'b' $(c) \n d".to_owned())];
        let argv = words(&["sh", "-c", "printf %s \"$VALUE\"; pwd"]);
        let output = run(&scratch, &script(&argv, &env, &cwd));
        assert_eq!(output.stdout, format!("{}{cwd}\n", env[0].1).into_bytes());
    }

    #[test]
    fn names_no_shell_can_export_reach_the_command_through_env() {
        let scratch = Scratch::new();
        let cwd = scratch.path().display().to_string();
        let env = [
            ("x.y-z".to_owned(), "dotted 'value'".to_owned()),
            ("PLAIN".to_owned(), "plain".to_owned()),
        ];
        let argv = words(&["printenv", "x.y-z", "PLAIN"]);
        let output = run(&scratch, &script(&argv, &env, &cwd));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "dotted 'value'\nplain\n"
        );
        let rendered = CommandScript {
            session_lock: Some("s"),
            ..script(&argv, &env, &cwd)
        }
        .render();
        assert!(
            rendered.contains(
                "\n'env' 'x.y-z=dotted '\\''value'\\''' 'printenv' 'x.y-z' 'PLAIN' 9>&-\n"
            ),
            "{rendered}"
        );
    }

    #[test]
    fn staged_stdin_is_read_and_removed() {
        let scratch = Scratch::new();
        let stdin = scratch.localise(&stdin_path("e1"));
        std::fs::write(&stdin, "from stdin").expect("staged");
        let argv = words(&["cat"]);
        let cwd = scratch.path().display().to_string();
        let output = run(
            &scratch,
            &CommandScript {
                staged_stdin: true,
                ..script(&argv, &[], &cwd)
            },
        );
        assert_eq!(output.stdout, b"from stdin");
        assert!(!Path::new(&stdin).exists(), "the staged stdin is removed");
        let output = run(&scratch, &script(&argv, &[], &cwd));
        assert!(output.stdout.is_empty(), "no stdin is empty stdin");
    }

    #[test]
    fn nothing_runs_without_the_sentinel_or_after_a_cancel() {
        let scratch = Scratch::new();
        let marker = scratch.path().join("ran");
        let argv = words(&["touch", marker.to_str().expect("utf-8")]);
        let cwd = scratch.path().display().to_string();
        std::fs::write(scratch.path().join("lease"), "other").expect("sentinel");
        let output = run(&scratch, &script(&argv, &[], &cwd));
        assert_eq!(output.status.code(), Some(LOST_EXIT_CODE));
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            format!("{LOST_MARKER}\n")
        );
        std::fs::write(scratch.path().join("lease"), "tok").expect("sentinel");
        let cancel = scratch.localise(&format!("{EXEC_DIR}/e1.cancel"));
        std::fs::write(&cancel, "").expect("cancel marker");
        let output = run(&scratch, &script(&argv, &[], &cwd));
        assert_eq!(output.status.code(), Some(143));
        assert!(!marker.exists(), "a cancelled command does not start");
        assert!(!Path::new(&cancel).exists(), "the marker is consumed");
    }

    #[test]
    fn the_kill_script_ends_the_whole_tree_and_waits() {
        let scratch = Scratch::new();
        let argv = words(&[
            "sh",
            "-c",
            "sh -c 'trap \"\" TERM; exec sleep 30' & setsid sleep 30 & sleep 30",
        ]);
        let cwd = scratch.path().display().to_string();
        let execution_id = format!("kill-test-{}", std::process::id());
        let mut child = scratch
            .command(
                &CommandScript {
                    execution_id: &execution_id,
                    ..script(&argv, &[], &cwd)
                }
                .render(),
                &execution_id,
            )
            .spawn()
            .expect("started");
        std::thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        let output = Command::new("sh")
            .arg("-c")
            .arg(scratch.localise(&kill_script(&execution_id, 300)))
            .output()
            .expect("kill script runs");
        assert_eq!(
            KillOutcome::from_exit_code(output.status.code()),
            KillOutcome::Killed,
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        child.wait().expect("reaped");
        let again = Command::new("sh")
            .arg("-c")
            .arg(scratch.localise(&kill_script(&execution_id, 300)))
            .output()
            .expect("kill script runs");
        assert_eq!(
            KillOutcome::from_exit_code(again.status.code()),
            KillOutcome::NotRunning
        );
    }

    /// Starts a command of session `s` and returns it without waiting.
    fn spawn_in_session(scratch: &Scratch, execution_id: &str, argv: &[String]) -> Child {
        let cwd = scratch.path().display().to_string();
        let rendered = CommandScript {
            execution_id,
            session_lock: Some("s"),
            ..script(argv, &[], &cwd)
        }
        .render();
        scratch
            .command(&rendered, execution_id)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("started")
    }

    /// Waits up to `limit` for `child`; kills it when it is still running then.
    fn finishes_within(child: &mut Child, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if child.try_wait().expect("waitable").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().ok();
        child.wait().ok();
        false
    }

    /// Whether `pid` runs (exists and is not a zombie).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    }

    #[test]
    fn a_background_process_never_holds_the_session() {
        let scratch = Scratch::new();
        std::fs::create_dir_all(scratch.path().join("locks")).expect("lock dir");
        let starter = words(&[
            "sh",
            "-c",
            "nohup sleep 30 >/dev/null 2>&1 </dev/null & echo $!",
        ]);
        let mut first = spawn_in_session(&scratch, "bg-1", &starter);
        assert!(finishes_within(&mut first, Duration::from_secs(5)));
        let mut pid = String::new();
        first
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut pid)
            .expect("pid printed");
        let background: u32 = pid
            .split_once('\n')
            .and_then(|(pid, _)| pid.parse().ok())
            .expect("a pid");
        assert!(alive(background), "the background process runs on");

        let mut next = spawn_in_session(&scratch, "bg-2", &words(&["true"]));
        let finished = finishes_within(&mut next, Duration::from_secs(5));
        let still_alive = alive(background);
        Command::new("kill")
            .args(["-KILL", &background.to_string()])
            .status()
            .expect("kill runs");
        assert!(
            finished,
            "the next command of the session waited for the background process"
        );
        assert!(still_alive, "nothing killed the background process");
    }

    /// The container reads a command's pipes to their end, which a background child that
    /// inherited them delays for its whole life; the end records come as soon as the command
    /// itself is done.
    #[test]
    fn the_end_records_do_not_wait_for_what_holds_the_pipes() {
        let scratch = Scratch::new();
        let cwd = scratch.path().display().to_string();
        let argv = words(&["sh", "-c", "sleep 30 & echo $!"]);
        let started = Instant::now();
        let mut child = scratch
            .command(&script(&argv, &[], &cwd).render(), "held-pipes")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("started");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut seen = Vec::new();
        let mut buffer = [0u8; 256];
        while !seen.ends_with(b"pcb-end-t3st:0;") {
            let read = stdout.read(&mut buffer).expect("readable");
            assert!(read > 0, "stdout ended without the record");
            seen.extend_from_slice(&buffer[..read]);
        }
        let elapsed = started.elapsed();
        let text = String::from_utf8_lossy(&seen).into_owned();
        let background = text.lines().next().unwrap_or_default().to_owned();
        Command::new("kill")
            .args(["-KILL", &background])
            .status()
            .expect("kill runs");
        child.wait().expect("reaped");
        assert!(
            elapsed < Duration::from_secs(5),
            "the record took {elapsed:?}: {text}"
        );
    }

    #[test]
    fn commands_of_one_session_still_wait_for_each_other() {
        let scratch = Scratch::new();
        std::fs::create_dir_all(scratch.path().join("locks")).expect("lock dir");
        let started = Instant::now();
        let mut first = spawn_in_session(&scratch, "serial-1", &words(&["sleep", "1"]));
        std::thread::sleep(Duration::from_millis(200));
        let mut second = spawn_in_session(&scratch, "serial-2", &words(&["true"]));
        assert!(finishes_within(&mut second, Duration::from_secs(5)));
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "the second command ran while the first held the session"
        );
        assert!(finishes_within(&mut first, Duration::from_secs(5)));
    }

    #[test]
    fn the_lease_kill_script_ends_what_the_leases_commands_left_and_nothing_else() {
        let lease = format!("lease-kill-{}", std::process::id());
        let spawn = |lease: &str| {
            Command::new("sh")
                .arg("-c")
                .arg("setsid sleep 30 & exec sleep 30")
                .env(LEASE_ENV_VAR, lease)
                .process_group(0)
                .spawn()
                .expect("started")
        };
        let mut ours = spawn(&lease);
        let mut theirs = spawn(&format!("{lease}-other"));
        std::thread::sleep(Duration::from_millis(300));
        let output = Command::new("sh")
            .arg("-c")
            .arg(kill_lease_script(&lease, 300))
            .output()
            .expect("kill script runs");
        let outcome = KillOutcome::from_exit_code(output.status.code());
        let other_alive = theirs.try_wait().expect("waitable").is_none();
        theirs.kill().ok();
        theirs.wait().ok();
        ours.wait().expect("reaped");
        assert_eq!(outcome, KillOutcome::Terminated, "{output:?}");
        assert!(other_alive, "another lease's process was killed");
        let again = Command::new("sh")
            .arg("-c")
            .arg(kill_lease_script(&lease, 300))
            .status()
            .expect("kill script runs");
        assert_eq!(
            KillOutcome::from_exit_code(again.code()),
            KillOutcome::NotRunning,
            "the detached child is gone too"
        );
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
    }
}
