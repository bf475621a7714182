//! The declarative-file parser, the keyring's ciphertext and key parsing and
//! the duration parser never panic on arbitrary input (deterministic
//! pseudo-random and mutated inputs; `fuzz/` runs the same for longer).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use gatehouse_core::decl::{self, SecretSource};
use gatehouse_core::duration::parse_duration;
use gatehouse_core::keyring::Keyring;

struct Fixed;

impl SecretSource for Fixed {
    fn env(&self, _: &str) -> Option<String> {
        Some("pw".into())
    }
    fn file(&self, _: &Path) -> std::io::Result<String> {
        Ok("pw".into())
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEED: &str = "[[connections]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"postgres://app@127.0.0.1:5432/shop\"\npassword = { env = \"SHOP_DB_PASSWORD\" }\ngroups = [\"analysts\", \"agents\"]\nstatement_timeout = \"30s\"\nrow_limit = 10\n";
const ALPHABET: &[u8] = b"[]{}=\"., \n#abcdefghijklmnopqrstuvwxyz0123456789:/@_-";

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(6) {
        match rng.below(3) {
            0 if !m.is_empty() => {
                let at = rng.below(m.len());
                m[at] = ALPHABET[rng.below(ALPHABET.len())];
            }
            1 if !m.is_empty() => {
                let at = rng.below(m.len());
                m.remove(at);
            }
            _ => {
                let at = rng.below(m.len() + 1);
                m.insert(at, ALPHABET[rng.below(ALPHABET.len())]);
            }
        }
    }
    m
}

#[test]
fn declarative_files_never_panic_and_errors_name_a_line() {
    let mut rng = Rng(7);
    assert!(decl::parse(SEED, &Fixed).is_ok());
    let lines = SEED.lines().count() + 8;
    for _ in 0..5_000 {
        let m = mutate(&mut rng, SEED.as_bytes());
        let text = String::from_utf8_lossy(&m);
        if let Err(e) = decl::parse(&text, &Fixed) {
            assert!(
                e.line <= text.lines().count().max(1) + 1 && e.line <= lines + 8,
                "{e}"
            );
        }
    }
}

#[test]
fn ciphertexts_keys_and_durations_never_panic() {
    let ring = Keyring::parse(Keyring::generate_key().expose()).unwrap();
    let good = ring.encrypt(b"secret", "ctx");
    let mut rng = Rng(99);
    for _ in 0..20_000 {
        let m = mutate(&mut rng, good.as_bytes());
        let text = String::from_utf8_lossy(&m);
        if text != good {
            // Any change to a sealed value must fail to open, never panic.
            assert!(ring.decrypt(&text, "ctx").is_err() || text.trim() == good);
        }
        let _ = Keyring::parse(&text);
        let _ = parse_duration(&text[..text.len().min(12)]);
    }
}
