//! The credential a connection uses upstream, sealed with the master keyring.

use std::collections::BTreeMap;

use crate::keyring::{Keyring, KeyringError};
use crate::secret::Secret;

/// The credential of a connection, as encrypted in the store.
#[derive(Default)]
pub struct Credential {
    pub fields: BTreeMap<String, Secret>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credential {
    pub fn password(password: Secret) -> Self {
        Self {
            fields: BTreeMap::from([("password".to_string(), password)]),
        }
    }

    pub fn get(&self, field: &str) -> Option<&Secret> {
        self.fields.get(field)
    }
}

fn context(connection: &str) -> String {
    format!("gatehouse:connection:{connection}:credential")
}

pub fn seal(ring: &Keyring, connection: &str, cred: &Credential) -> String {
    let map: BTreeMap<&str, &str> = cred
        .fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&map).unwrap_or_default());
    ring.encrypt(&plain, &context(connection))
}

pub fn open(ring: &Keyring, connection: &str, sealed: &str) -> Result<Credential, KeyringError> {
    let plain = ring.decrypt(sealed, &context(connection))?;
    let map: BTreeMap<String, String> =
        serde_json::from_slice(&plain).map_err(|_| KeyringError::BadCiphertext)?;
    Ok(Credential {
        fields: map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect(),
    })
}
