//! Credential encryption with the master keyring, and key rotation.

use gatehouse_core::credential::{open, seal};
use gatehouse_core::keyring::{self, KeySource, Keyring};
use gatehouse_core::secret::Secret;
use gatehouse_store::Store;
use serde::Serialize;

use crate::StartError;
use crate::state::AppState;

const CANARY_KEY: &str = "master_key_check";
const CANARY_CONTEXT: &str = "gatehouse:key-check";

/// On a new store, records a value encrypted under the primary key; on an
/// existing one, checks that the keyring opens it, so a wrong master key
/// stops start-up instead of failing later on every connection.
pub async fn check_or_set_canary(store: &Store, ring: &Keyring) -> Result<(), StartError> {
    match store.get_meta(CANARY_KEY).await? {
        Some(sealed) => match ring.decrypt(&sealed, CANARY_CONTEXT) {
            Ok(_) => Ok(()),
            Err(_) => Err(StartError::WrongMasterKey(ring.key_ids().join(","))),
        },
        None => {
            store
                .set_meta(CANARY_KEY, &ring.encrypt(b"gatehouse", CANARY_CONTEXT))
                .await?;
            Ok(())
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RotationReport {
    pub primary_key_id: String,
    pub previous_key_ids: Vec<String>,
    pub reencrypted: usize,
    pub key_source: &'static str,
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Store(#[from] gatehouse_store::StoreError),
    #[error(transparent)]
    Keyring(#[from] keyring::KeyringError),
}

/// Re-encrypts every stored secret under a new primary key while serving.
///
/// With a key file, a new key is generated and written first (old keys kept
/// until every secret is re-encrypted, then dropped). With keys from
/// `GATEHOUSE_MASTER_KEY`, the first key of the variable is the new primary.
pub async fn rotate(state: &AppState) -> Result<RotationReport, RotateError> {
    let _guard = state.rotation.lock().await;
    let before = state.keyring();
    let previous_key_ids = before.key_ids();
    let ring = match &state.key_source {
        KeySource::File(path) => {
            let new_key = Keyring::generate_key();
            let ring = before.with_primary(&new_key)?;
            // Write new + old first so a crash mid-rotation loses nothing.
            let mut all = vec![new_key.clone()];
            all.extend(read_file_keys(path)?);
            keyring::write_key_file(path, &all.iter().collect::<Vec<_>>())?;
            state.set_keyring(ring);
            state.keyring()
        }
        KeySource::Env => before.clone(),
    };

    let mut reencrypted = 0;
    for rec in state.store.list_connections().await? {
        let name = rec.spec.name.clone();
        let mut current = rec.secret;
        while let Some(sealed) = current.take() {
            if !ring.is_stale(&sealed) {
                break;
            }
            let cred = open(&ring, &name, &sealed)?;
            let resealed = seal(&ring, &name, &cred);
            if state
                .store
                .replace_connection_secret(&name, &sealed, &resealed)
                .await?
            {
                reencrypted += 1;
                break;
            }
            // Changed underneath us: look again.
            current = state
                .store
                .get_connection(&name)
                .await?
                .and_then(|r| r.secret);
        }
    }
    state
        .store
        .set_meta(CANARY_KEY, &ring.encrypt(b"gatehouse", CANARY_CONTEXT))
        .await?;

    let (key_source, note) = match &state.key_source {
        KeySource::File(path) => {
            let primary = read_file_keys(path)?.into_iter().next();
            if let Some(k) = primary {
                keyring::write_key_file(path, &[&k])?;
            }
            state.set_keyring(ring.primary_only());
            ("file", format!("{} now holds only the new key", path.display()))
        }
        KeySource::Env => (
            "env",
            "every secret is now under the first key of GATEHOUSE_MASTER_KEY; older keys can be removed from it at the next restart".to_string(),
        ),
    };
    Ok(RotationReport {
        primary_key_id: ring.primary_id().to_string(),
        previous_key_ids,
        reencrypted,
        key_source,
        note,
    })
}

fn read_file_keys(path: &std::path::Path) -> Result<Vec<Secret>, keyring::KeyringError> {
    let text = std::fs::read_to_string(path).map_err(|source| keyring::KeyringError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::new)
        .collect())
}
