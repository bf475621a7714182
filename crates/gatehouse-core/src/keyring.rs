//! The master keyring that encrypts connection credentials at rest.
//!
//! Ciphertexts are XChaCha20-Poly1305 with a random 192-bit nonce and
//! associated data naming what the ciphertext belongs to, so a ciphertext
//! copied onto another row does not decrypt. Each ciphertext names the key
//! it was made with (`gh1.<key id>.<base64>`), so during a rotation old and
//! new keys both decrypt while every write uses the primary (first) key.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::secret::Secret;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const FORMAT: &str = "gh1";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "the master key is not valid: each key must be 32 random bytes in base64 (make one with `gatehouse keys generate`)"
    )]
    BadKey,
    #[error("the master keyring is empty")]
    Empty,
    #[error("a stored secret is not in Gatehouse's encrypted format")]
    BadCiphertext,
    #[error(
        "a stored secret was encrypted with master key {0}, which is not in the keyring: start Gatehouse with that key too (GATEHOUSE_MASTER_KEY=NEW,OLD)"
    )]
    UnknownKey(String),
    #[error(
        "a stored secret failed authentication: wrong master key or the store was tampered with"
    )]
    Decrypt,
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// Ordered set of master keys; the first one encrypts.
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// Where the keyring came from, which decides how it can be rotated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `GATEHOUSE_MASTER_KEY`: rotation re-encrypts under its first key;
    /// the operator changes the variable.
    Env,
    /// A key file in the data directory; rotation writes a new key into it.
    File(PathBuf),
}

impl Keyring {
    /// Parses keys separated by commas, whitespace or newlines. Lines starting
    /// with `#` in a key file are comments.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            for part in line.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
                keys.push(MasterKey::from_base64(part)?);
            }
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Self { keys })
    }

    /// A new random key, base64-encoded.
    pub fn generate_key() -> Secret {
        let mut raw = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(raw.as_mut());
        Secret::new(B64.encode(raw.as_ref()))
    }

    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// Encrypts `plaintext` under the primary key, bound to `context`.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            // XChaCha20-Poly1305 encryption only fails for messages over 256 GiB.
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(24 + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!("{FORMAT}.{}.{}", key.id, B64.encode(blob))
    }

    pub fn decrypt(
        &self,
        ciphertext: &str,
        context: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let (id, blob) = split(ciphertext)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyringError::UnknownKey(id.to_string()))?;
        let blob = B64.decode(blob).map_err(|_| KeyringError::BadCiphertext)?;
        if blob.len() < 24 + 16 {
            return Err(KeyringError::BadCiphertext);
        }
        let (nonce, sealed) = blob.split_at(24);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyringError::Decrypt)
    }

    /// Whether a ciphertext was made with a key other than the primary.
    pub fn is_stale(&self, ciphertext: &str) -> bool {
        split(ciphertext)
            .map(|(id, _)| id != self.primary_id())
            .unwrap_or(true)
    }

    /// The keyring with `key` put first.
    pub fn with_primary(&self, key: &Secret) -> Result<Self, KeyringError> {
        let first = MasterKey::from_base64(key.expose())?;
        let mut keys = vec![first];
        for k in &self.keys {
            if k.id != keys[0].id {
                keys.push(k.clone_key());
            }
        }
        Ok(Self { keys })
    }

    /// A 32-byte key for `purpose`, derived from the primary master key
    /// (XChaCha20 keystream under a nonce that hashes the purpose). The
    /// same keyring gives the same key; rotating the master key changes it.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let digest = Sha256::digest(format!("gatehouse derive v1: {purpose}").as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        if let Ok(ct) = self.keys[0].cipher.encrypt(
            XNonce::from_slice(&digest[..24]),
            Payload {
                msg: &[0u8; 32],
                aad: b"",
            },
        ) {
            out.copy_from_slice(&ct[..32]);
        }
        out
    }

    /// The keyring reduced to its primary key.
    pub fn primary_only(&self) -> Self {
        Self {
            keys: vec![self.keys[0].clone_key()],
        }
    }
}

fn split(ciphertext: &str) -> Result<(&str, &str), KeyringError> {
    let mut parts = ciphertext.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(FORMAT), Some(id), Some(blob)) => Ok((id, blob)),
        _ => Err(KeyringError::BadCiphertext),
    }
}

impl MasterKey {
    fn from_base64(text: &str) -> Result<Self, KeyringError> {
        let raw = Zeroizing::new(B64.decode(text.trim()).map_err(|_| KeyringError::BadKey)?);
        if raw.len() != 32 {
            return Err(KeyringError::BadKey);
        }
        let id = hex::encode(&Sha256::digest(raw.as_slice())[..6]);
        let cipher = XChaCha20Poly1305::new_from_slice(&raw).map_err(|_| KeyringError::BadKey)?;
        Ok(Self { id, cipher })
    }

    fn clone_key(&self) -> Self {
        Self {
            id: self.id.clone(),
            cipher: self.cipher.clone(),
        }
    }
}

/// The keyring in force, shared by every task and swapped atomically when
/// keys rotate.
#[derive(Debug, Clone)]
pub struct SharedKeyring(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Keyring>>>);

impl SharedKeyring {
    pub fn new(ring: Keyring) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(ring),
        )))
    }

    pub fn get(&self) -> std::sync::Arc<Keyring> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, ring: Keyring) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = std::sync::Arc::new(ring);
    }
}

/// Loads the keyring: from `env_value` when given, else from
/// `<data_dir>/master.key`, creating that file (mode 0600) with a fresh key
/// when it does not exist.
pub fn load_or_create(
    env_value: Option<&str>,
    data_dir: &Path,
) -> Result<(Keyring, KeySource), KeyringError> {
    if let Some(v) = env_value {
        return Ok((Keyring::parse(v)?, KeySource::Env));
    }
    let path = data_dir.join("master.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((Keyring::parse(&text)?, KeySource::File(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keyring::generate_key();
            write_key_file(&path, &[&key])?;
            Ok((Keyring::parse(key.expose())?, KeySource::File(path)))
        }
        Err(source) => Err(KeyringError::Io { path, source }),
    }
}

/// Atomically replaces a key file with `keys`, first key primary, mode 0600.
pub fn write_key_file(path: &Path, keys: &[&Secret]) -> Result<(), KeyringError> {
    let io = |source| KeyringError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("key.tmp");
    let mut text =
        String::from("# Gatehouse master keys (first encrypts). Keep this file secret.\n");
    for k in keys {
        text.push_str(k.expose());
        text.push('\n');
    }
    let text = Zeroizing::new(text);
    let mut f = private_file(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Creates (truncating) a file readable only by its owner.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::parse(Keyring::generate_key().expose()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_and_context_binding() {
        let k = ring();
        let c = k.encrypt(b"s3cret", "connection:shop");
        assert!(!c.contains("s3cret"));
        assert_eq!(
            k.decrypt(&c, "connection:shop")
                .ok()
                .as_deref()
                .map(|v| v.as_slice()),
            Some(&b"s3cret"[..])
        );
        assert!(matches!(
            k.decrypt(&c, "connection:other"),
            Err(KeyringError::Decrypt)
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let k = ring();
        let c = k.encrypt(b"s3cret", "ctx");
        let mut bytes = c.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap_or_default();
        assert!(k.decrypt(&tampered, "ctx").is_err());
        assert!(matches!(
            k.decrypt("plain", "ctx"),
            Err(KeyringError::BadCiphertext)
        ));
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let old = ring();
        let c = old.encrypt(b"pw", "ctx");
        let new_key = Keyring::generate_key();
        let rotated = old.with_primary(&new_key).unwrap_or_else(|e| panic!("{e}"));
        assert!(rotated.is_stale(&c));
        assert!(rotated.decrypt(&c, "ctx").is_ok());
        let c2 = rotated.encrypt(b"pw", "ctx");
        assert!(!rotated.is_stale(&c2));
        let only_new = rotated.primary_only();
        assert!(matches!(
            only_new.decrypt(&c, "ctx"),
            Err(KeyringError::UnknownKey(_))
        ));
        assert!(only_new.decrypt(&c2, "ctx").is_ok());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            Keyring::parse("not-base64!"),
            Err(KeyringError::BadKey)
        ));
        assert!(matches!(
            Keyring::parse("c2hvcnQ="),
            Err(KeyringError::BadKey)
        ));
        assert!(matches!(
            Keyring::parse("# only a comment\n"),
            Err(KeyringError::Empty)
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (a, src) = load_or_create(None, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(src, KeySource::File(dir.path().join("master.key")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master.key"))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        let (b, _) = load_or_create(None, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.primary_id(), b.primary_id());
        let debug = format!("{a:?}");
        assert!(debug.contains(a.primary_id()));
    }
}
