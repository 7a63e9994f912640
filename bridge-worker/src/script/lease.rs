//! Scripts of the lease lifecycle.

use super::{EXEC_DIR, LOCK_DIR, SENTINEL_PATH, quote};

/// Creates the remote working directory and the bridge's directories, and writes the lease
/// sentinel (atomically).
pub fn prepare_script(remote_cwd: &str, sentinel: &str) -> String {
    format!(
        "set -e; mkdir -p -- {cwd} {exec} {locks}; printf '%s' {sentinel} > {tmp}; mv -f -- {tmp} {path}",
        cwd = quote(remote_cwd),
        exec = quote(EXEC_DIR),
        locks = quote(LOCK_DIR),
        sentinel = quote(sentinel),
        tmp = quote(&format!("{SENTINEL_PATH}.tmp")),
        path = quote(SENTINEL_PATH),
    )
}

/// Exits 0 when the sandbox holds exactly this sentinel, 1 otherwise.
pub fn sentinel_check_script(sentinel: &str) -> String {
    format!(
        "[ \"$(cat {path} 2>/dev/null)\" = {sentinel} ]",
        path = quote(SENTINEL_PATH),
        sentinel = quote(sentinel),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_quote_their_values() {
        let script = prepare_script("/workspace/a b", "tok'en");
        assert!(
            script.contains(
                "mkdir -p -- '/workspace/a b' '/tmp/.paperclip-bridge/exec' '/tmp/.paperclip-bridge/locks'"
            ),
            "{script}"
        );
        assert!(script.contains(r"printf '%s' 'tok'\''en'"), "{script}");
        assert_eq!(
            sentinel_check_script("t"),
            r#"[ "$(cat '/tmp/.paperclip-bridge/lease' 2>/dev/null)" = 't' ]"#
        );
    }
}
