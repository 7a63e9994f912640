//! Building `sh` scripts from untrusted strings without ever re-splitting them: every value is
//! single-quoted, so an argument is one word whatever it contains.
//!
//! Everything the bridge keeps inside a sandbox lives under `/tmp/.paperclip-bridge`.

mod exec;
mod lease;
mod transfer;

pub use exec::{
    CommandScript, KillOutcome, LOST_EXIT_CODE, LOST_MARKER, MAX_COMMAND_BYTES, command_bytes,
    kill_lease_script, kill_script,
};
pub use lease::{prepare_script, sentinel_check_script};
pub use transfer::{
    DEFAULT_FILE_MODE, SOURCE_MISSING_EXIT_CODE, assemble_argv, discard_script, download_argv,
    part_path, upload_staging,
};

/// File holding the lease sentinel.
pub const SENTINEL_PATH: &str = "/tmp/.paperclip-bridge/lease";
/// Per-execution files, `<id>.stdin` and `<id>.cancel`: flat files in a directory made at
/// acquire, so running a command costs no `mkdir`.
pub const EXEC_DIR: &str = "/tmp/.paperclip-bridge/exec";
/// `flock` files of the sessions.
pub const LOCK_DIR: &str = "/tmp/.paperclip-bridge/locks";

/// Path prefix of one execution's files.
fn execution_prefix(execution_id: &str) -> String {
    format!("{EXEC_DIR}/{execution_id}")
}

/// Where an execution's stdin is staged before it starts.
pub fn stdin_path(execution_id: &str) -> String {
    format!("{}.stdin", execution_prefix(execution_id))
}

/// Quotes `text` as one `sh` word: wrapped in single quotes, each `'` written as `'\''`.
pub fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for character in text.chars() {
        if character == '\'' {
            quoted.push_str(r"'\''");
        } else {
            quoted.push(character);
        }
    }
    quoted.push('\'');
    quoted
}

/// The length of [`quote`]`(text)`, without building it.
pub fn quoted_len(text: &str) -> usize {
    text.len() + 2 + 3 * text.matches('\'').count()
}

/// The probe's script: create the directory, enter it and print where the shell is.
pub fn probe_script(cwd: &str) -> String {
    let cwd = quote(cwd);
    format!("mkdir -p -- {cwd} && cd -- {cwd} && pwd")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_every_special_character_as_literal_text() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(x) `y` \\n"), "'$(x) `y` \\n'");
    }

    #[test]
    fn probe_script_quotes_the_directory() {
        assert_eq!(
            probe_script("/workspace/a b"),
            "mkdir -p -- '/workspace/a b' && cd -- '/workspace/a b' && pwd"
        );
    }
}
