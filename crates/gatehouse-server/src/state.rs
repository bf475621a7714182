//! State shared by every request handler.

use std::sync::{Arc, RwLock};

use gatehouse_core::keyring::{KeySource, Keyring};
use gatehouse_identity::Authenticator;
use gatehouse_store::Store;

use crate::audit::Auditor;
use crate::config::ServeConfig;
use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub auth: Authenticator,
    pub audit: Auditor,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServeConfig>,
    pub key_source: KeySource,
    keyring: Arc<RwLock<Arc<Keyring>>>,
    /// Serialises key rotations.
    pub rotation: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    pub fn new(
        store: Store,
        ring: Keyring,
        key_source: KeySource,
        auth: Authenticator,
        config: ServeConfig,
    ) -> Self {
        Self {
            audit: Auditor::new(store.clone()),
            store,
            auth,
            metrics: Arc::new(Metrics::default()),
            config: Arc::new(config),
            key_source,
            keyring: Arc::new(RwLock::new(Arc::new(ring))),
            rotation: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The keyring in force now.
    pub fn keyring(&self) -> Arc<Keyring> {
        match self.keyring.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn set_keyring(&self, ring: Keyring) {
        let mut g = match self.keyring.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(ring);
    }
}
