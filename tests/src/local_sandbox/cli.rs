//! Command-line arguments of the `local-sandbox` binary.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One-line usage, printed with every argument error.
pub const USAGE: &str = "usage: local-sandbox --listen 127.0.0.1:<port> --state-dir <dir>";

/// Validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Loopback address to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Directory holding one subdirectory per sandbox.
    pub state_dir: PathBuf,
}

/// Why the arguments were refused (or help was asked for).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    /// `-h` / `--help`.
    #[error("{USAGE}")]
    Help,
    /// An option without its value.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// A required option was not given.
    #[error("{0} is required")]
    Missing(&'static str),
    /// Anything unrecognised.
    #[error("unexpected argument {0:?}")]
    Unexpected(OsString),
    /// `--listen` is not `ip:port`.
    #[error("--listen {0:?} is not an ip:port address")]
    BadListen(String),
    /// `--listen` is reachable from other machines.
    #[error(
        "refusing to listen on {0}: local-sandbox runs arbitrary commands for anyone who can reach it, so it only listens on loopback addresses"
    )]
    NotLoopback(SocketAddr),
}

/// Parses the arguments after the program name; `--opt value` and `--opt=value` both work.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, CliError> {
    let mut listen = None;
    let mut state_dir = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value)),
            _ => (text.to_string(), None),
        };
        let mut value = |option: &'static str| -> Result<OsString, CliError> {
            inline
                .map(OsString::from)
                .or_else(|| args.next())
                .ok_or(CliError::MissingValue(option))
        };
        match name.as_str() {
            "-h" | "--help" => return Err(CliError::Help),
            "--listen" => {
                let raw = value("--listen")?.to_string_lossy().into_owned();
                let addr: SocketAddr = raw.parse().map_err(|_| CliError::BadListen(raw))?;
                if !addr.ip().is_loopback() {
                    return Err(CliError::NotLoopback(addr));
                }
                listen = Some(addr);
            }
            "--state-dir" => state_dir = Some(PathBuf::from(value("--state-dir")?)),
            _ => return Err(CliError::Unexpected(arg.clone())),
        }
    }
    Ok(Args {
        listen: listen.ok_or(CliError::Missing("--listen"))?,
        state_dir: state_dir.ok_or(CliError::Missing("--state-dir"))?,
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::PathBuf;

    use super::{Args, CliError, parse};

    fn run(args: &[&str]) -> Result<Args, CliError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn accepts_both_option_forms() {
        let expected = Args {
            listen: "127.0.0.1:0".parse().expect("valid address"),
            state_dir: PathBuf::from("/s"),
        };
        assert_eq!(
            run(&["--listen", "127.0.0.1:0", "--state-dir", "/s"]),
            Ok(expected.clone())
        );
        assert_eq!(
            run(&["--state-dir=/s", "--listen=127.0.0.1:0"]),
            Ok(expected)
        );
        assert!(run(&["--listen", "[::1]:8080", "--state-dir", "/s"]).is_ok());
    }

    #[test]
    fn refuses_non_loopback_and_malformed_input() {
        assert!(matches!(
            run(&["--listen", "0.0.0.0:1", "--state-dir", "/s"]),
            Err(CliError::NotLoopback(_))
        ));
        assert_eq!(
            run(&["--listen", "localhost", "--state-dir", "/s"]),
            Err(CliError::BadListen("localhost".into()))
        );
        assert_eq!(run(&["--listen"]), Err(CliError::MissingValue("--listen")));
        assert_eq!(
            run(&["--listen", "127.0.0.1:0"]),
            Err(CliError::Missing("--state-dir"))
        );
        assert_eq!(
            run(&["--verbose"]),
            Err(CliError::Unexpected("--verbose".into()))
        );
        assert_eq!(run(&["-h"]), Err(CliError::Help));
    }
}
