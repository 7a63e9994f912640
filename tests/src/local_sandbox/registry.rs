//! All sandboxes of the server, created lazily on first use and destroyed on request. Each id has
//! its own slot lock, so destroying one sandbox never holds up requests for another, while a
//! request for a sandbox being destroyed waits and then gets a fresh one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Mutex as AsyncMutex;

use super::errors::ApiError;
use super::ids::SandboxId;
use super::launcher::Launcher;
use super::proctree::terminate;
use super::sandbox::Sandbox;

type Slot = Arc<AsyncMutex<Option<Arc<Sandbox>>>>;

/// The server's sandboxes.
#[derive(Debug)]
pub struct Sandboxes {
    launcher: Arc<Launcher>,
    slots: Mutex<HashMap<SandboxId, Slot>>,
}

impl Sandboxes {
    /// No sandboxes yet; they will be started with `launcher`.
    pub fn new(launcher: Arc<Launcher>) -> Self {
        Self {
            launcher,
            slots: Mutex::default(),
        }
    }

    /// Whether sandbox processes run in private mount namespaces.
    pub fn isolated(&self) -> bool {
        self.launcher.isolated()
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.launcher.state_dir()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<SandboxId, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, id: &SandboxId) -> Slot {
        Arc::clone(self.slots().entry(id.clone()).or_default())
    }

    /// Sandbox `id`, created (with its directories) if it is not live.
    pub async fn get(&self, id: &SandboxId) -> Result<Arc<Sandbox>, ApiError> {
        let slot = self.slot(id);
        let mut sandbox = slot.lock().await;
        if let Some(sandbox) = sandbox.as_ref() {
            return Ok(Arc::clone(sandbox));
        }
        let created = Sandbox::create(id.clone(), Arc::clone(&self.launcher)).map_err(|error| {
            ApiError::Internal(format!("Failed to create sandbox '{id}': {error}"))
        })?;
        tracing::info!(sandbox = %id, "sandbox started");
        Ok(Arc::clone(sandbox.insert(Arc::new(created))))
    }

    /// Ids of the live sandboxes, sorted (one being created or destroyed right now counts).
    pub fn live(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .slots()
            .iter()
            .filter(|(_, slot)| slot.try_lock().map_or(true, |sandbox| sandbox.is_some()))
            .map(|(id, _)| id.to_string())
            .collect();
        ids.sort();
        ids
    }

    /// Kills every process of sandbox `id` and removes its state directory; returns whether it had
    /// any state (live, or on disk from an earlier server). Idempotent.
    pub async fn destroy(&self, id: &SandboxId) -> Result<bool, ApiError> {
        let slot = self.slot(id);
        let mut live = slot.lock().await;
        let root = self.state_dir().join(id.as_str());
        let existed = live.is_some() || root.exists();
        match live.take() {
            Some(sandbox) => sandbox.shut_down().await,
            None => {
                terminate(&self.launcher.processes_of(Some(id)), |_| {}).await;
            }
        }
        match std::fs::remove_dir_all(&root) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(ApiError::Internal(format!(
                    "Failed to remove the state of sandbox '{id}': {error}"
                )));
            }
        }
        tracing::info!(sandbox = %id, existed, "sandbox destroyed");
        Ok(existed)
    }

    /// Kills the processes of every sandbox (server shutdown); state directories stay.
    pub async fn shut_down(&self) {
        terminate(&self.launcher.processes_of(None), |_| {}).await;
    }
}
