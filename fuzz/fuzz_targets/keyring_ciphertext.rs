//! `Keyring::decrypt`'s parsing of a stored ciphertext
//! (`gh1.<key id>.<base64>`) under a fixed key, and `Keyring::parse` (key
//! text from `GATEHOUSE_MASTER_KEY` or `master.key`). Neither may panic.
#![no_main]
use std::sync::OnceLock;

use gatehouse_core::keyring::Keyring;
use libfuzzer_sys::fuzz_target;

/// The fixed key: 32 zero bytes (id `66687aadf862`). The seed ciphertexts in
/// corpus/keyring_ciphertext/ were sealed with it, plaintext `s3cret` (or
/// empty, `seed-ct-empty`), context `connection:shop`.
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const CONTEXT: &str = "connection:shop";

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::parse(KEY).unwrap_or_else(|e| panic!("{e}")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ring = ring();
    // Only a genuine ciphertext opens: whatever decrypts is a seed's secret.
    if let Ok(plain) = ring.decrypt(text, CONTEXT) {
        assert!(
            plain.is_empty() || plain.as_slice() == b"s3cret",
            "{plain:?}"
        );
    }
    assert!(ring.decrypt(text, "connection:other").is_err());
    let _ = ring.is_stale(text);

    if let Ok(k) = Keyring::parse(text) {
        let ids = k.key_ids();
        assert!(!ids.is_empty());
        assert!(
            ids.iter()
                .all(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
        // A parsed keyring seals and opens.
        let c = k.encrypt(b"x", "ctx");
        assert!(c.starts_with(&format!("gh1.{}.", k.primary_id())));
        assert_eq!(
            k.decrypt(&c, "ctx").ok().as_deref().map(Vec::as_slice),
            Some(&b"x"[..])
        );
    }
});
