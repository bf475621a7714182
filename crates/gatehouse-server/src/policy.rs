//! The policy in force on this process: compiled from the store at start,
//! replaced when an admin changes it here, and reloaded when another
//! replica changes it (the store's policy version is polled).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use gatehouse_policy::Engine;
use gatehouse_store::{Store, StoreError};

/// How often replicas look for a policy changed elsewhere.
pub const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct PolicyHandle {
    inner: Arc<RwLock<(i64, Arc<Engine>)>>,
    /// Moved (under the write lock) each time another engine is installed.
    generation: Arc<AtomicU64>,
}

impl PolicyHandle {
    /// Loads and compiles the stored policy; a policy that does not compile
    /// stops start-up (it was validated when stored, so the store was edited).
    pub async fn load(store: &Store) -> Result<PolicyHandle, String> {
        let stored = store.get_policy().await.map_err(|e| e.to_string())?;
        let engine = Engine::new(stored.spec).map_err(|e| {
            format!(
                "the stored policy (version {}) is invalid: {e}",
                stored.version
            )
        })?;
        Ok(PolicyHandle {
            inner: Arc::new(RwLock::new((stored.version, Arc::new(engine)))),
            generation: Arc::default(),
        })
    }

    pub fn engine(&self) -> Arc<Engine> {
        match self.inner.read() {
            Ok(g) => g.1.clone(),
            Err(p) => p.into_inner().1.clone(),
        }
    }

    pub fn version(&self) -> i64 {
        match self.inner.read() {
            Ok(g) => g.0,
            Err(p) => p.into_inner().0,
        }
    }

    /// Installs a newer version (an older one is ignored).
    pub fn install(&self, version: i64, engine: Engine) {
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if version > g.0 {
            *g = (version, Arc::new(engine));
            self.generation.fetch_add(1, Ordering::Release);
        }
    }

    /// Reloads from the store if its version moved.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        if store.policy_version().await? == self.version() {
            return Ok(());
        }
        let stored = store.get_policy().await?;
        match Engine::new(stored.spec) {
            Ok(engine) => {
                tracing::info!(version = stored.version, "policy reloaded");
                self.install(stored.version, engine);
            }
            Err(e) => {
                tracing::error!(version = stored.version, error = %e, "the stored policy is invalid; keeping the one in force");
            }
        }
        Ok(())
    }

    /// Polls the store until the process ends.
    pub fn watch(&self, store: Store) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.refresh(&store).await {
                    tracing::warn!(error = %e, "could not check the stored policy");
                }
            }
        });
    }
}

impl gatehouse_policy::PolicySource for PolicyHandle {
    fn engine(&self) -> Arc<Engine> {
        PolicyHandle::engine(self)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
