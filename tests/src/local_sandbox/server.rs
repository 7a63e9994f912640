//! Startup and shutdown: state directory, child reaper, isolation probe, listener, the
//! `LOCAL_SANDBOX_LISTENING=` announcement, and SIGTERM/SIGINT handling.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use super::cli::Args;
use super::launcher::Launcher;
use super::namespace;
use super::paths::WORKSPACE;
use super::reaper::Reaper;
use super::registry::Sandboxes;
use super::routes::{self, AppState};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The state directory cannot be created or resolved.
    #[error("cannot use state directory {path}: {source}")]
    StateDir {
        /// The directory as given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The state directory would be hidden by every sandbox's `/workspace`.
    #[error(
        "the state directory {0} is under /workspace, which every sandbox's /workspace hides; choose another"
    )]
    StateDirUnderWorkspace(PathBuf),
    /// Becoming a subreaper or watching SIGCHLD failed.
    #[error("cannot install the child reaper: {0}")]
    Reaper(io::Error),
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The HTTP server failed.
    #[error("the HTTP server failed: {0}")]
    Serve(io::Error),
}

/// Runs the server until SIGTERM or SIGINT, then kills every sandbox's processes and returns.
pub async fn run(args: Args) -> Result<(), ServerError> {
    let state_dir = prepare_state_dir(&args.state_dir)?;
    let reaper = Reaper::install().map_err(ServerError::Reaper)?;
    let isolated = match namespace::probe(&reaper, &state_dir).await {
        Ok(()) => true,
        Err(reason) => {
            tracing::warn!(
                "SANDBOX ISOLATION IS OFF: {reason}. Commands of every sandbox run on the host \
                 filesystem and see the host's /workspace and /tmp; only the file API is confined \
                 to the state directory. Run as root (CAP_SYS_ADMIN) to isolate sandboxes."
            );
            false
        }
    };
    let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signals)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: args.listen,
            source,
        })?;
    let state = Arc::new(AppState {
        sandboxes: Sandboxes::new(Arc::new(Launcher::new(reaper, state_dir.clone(), isolated))),
    });
    announce(addr);
    tracing::info!(%addr, isolation = isolated, state_dir = %state_dir.display(), "local-sandbox listening");

    // Without TCP_NODELAY, a small SSE event written right after another waits for the peer's
    // delayed ACK (~40 ms): every short command would look 40 ms slower than it is.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, routes::router(Arc::clone(&state)));
    tokio::select! {
        served = server.into_future() => served.map_err(ServerError::Serve)?,
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
    tracing::info!("killing every sandbox process before exiting");
    state.sandboxes.shut_down().await;
    Ok(())
}

/// Creates the state directory and resolves it (processes are marked with this exact path).
fn prepare_state_dir(path: &Path) -> Result<PathBuf, ServerError> {
    let failed = |source| ServerError::StateDir {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(failed)?;
    let canonical = path.canonicalize().map_err(failed)?;
    if canonical.starts_with(WORKSPACE) {
        return Err(ServerError::StateDirUnderWorkspace(canonical));
    }
    Ok(canonical)
}

/// The one line on stdout that tells a harness where the server listens.
fn announce(addr: SocketAddr) {
    let mut stdout = io::stdout().lock();
    if let Err(error) =
        writeln!(stdout, "LOCAL_SANDBOX_LISTENING={addr}").and_then(|()| stdout.flush())
    {
        tracing::warn!(%error, "could not announce the listening address on stdout");
    }
}
