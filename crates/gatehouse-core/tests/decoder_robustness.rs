//! The declarative-file parser, the keyring's ciphertext and key parsing and
//! the duration parser never panic on arbitrary input and keep the same
//! properties the fuzz targets in `fuzz/` assert (`decl_file`,
//! `keyring_ciphertext`, `duration`): over the seed corpus files, then
//! ~20,000 deterministic pseudo-random and mutated inputs per decoder (an
//! xorshift generator, so a failure reproduces), so CI keeps the targets
//! honest without running a fuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use gatehouse_core::decl::{self, SecretSource};
use gatehouse_core::duration::{format_duration, parse_duration};
use gatehouse_core::keyring::Keyring;

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
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// The committed seeds of a fuzz target (`fuzz/corpus/<target>/seed-*`).
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed"))
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "too few seeds in {}", dir.display());
    out
}

/// Byte-level edits: overwrite with a byte from `alphabet` (which includes
/// multi-byte UTF-8 pieces), delete, insert, duplicate or truncate.
fn mutate(rng: &mut Rng, seed: &[u8], alphabet: &[&[u8]]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(m.len() + 1);
        match rng.below(5) {
            0 if at < m.len() => m[at] = rng.pick(alphabet)[0],
            1 if at < m.len() => {
                m.remove(at);
            }
            2 if at < m.len() => {
                let end = (at + rng.below(16)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
            3 => m.truncate(at),
            _ => {
                let piece = rng.pick(alphabet);
                m.splice(at..at, piece.iter().copied());
            }
        }
    }
    m
}

fn random(rng: &mut Rng, max: usize, alphabet: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(max) {
        out.extend_from_slice(rng.pick(alphabet));
    }
    out
}

fn ascii(chars: &'static [u8]) -> Vec<&'static [u8]> {
    chars.chunks(1).collect()
}

// === decl_file ===

struct Fixed;

impl SecretSource for Fixed {
    fn env(&self, name: &str) -> Option<String> {
        (name != "UNSET").then(|| "pw-env".into())
    }
    fn file(&self, _: &Path) -> std::io::Result<String> {
        Ok("pw-file\n".into())
    }
}

/// What `fuzz/fuzz_targets/decl_file.rs` asserts.
fn check_decl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    match decl::parse(text, &Fixed) {
        Ok(d) => {
            let mut names: Vec<&str> = Vec::new();
            for c in &d.connections {
                assert!(c.spec.validate().is_ok(), "{:?}", c.spec);
                assert!(!names.contains(&c.spec.name.as_str()), "{text}");
                names.push(&c.spec.name);
                assert!((1..=lines).contains(&c.line));
                if let Some(p) = &c.password {
                    assert!(["pw-env", "pw-file"].contains(&p.expose()));
                }
            }
        }
        Err(e) => assert!((1..=lines + 1).contains(&e.line), "{e} in {text:?}"),
    }
}

const TOML_ALPHABET: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b"\"",
    b"'",
    b".",
    b",",
    b" ",
    b"\n",
    b"\r\n",
    b"#",
    b"\\",
    b"a",
    b"e",
    b"n",
    b"s",
    b"0",
    b"9",
    b":",
    b"/",
    b"@",
    b"_",
    b"-",
    b"\t",
    "é".as_bytes(),
    "☕".as_bytes(),
    "\u{10348}".as_bytes(),
    b"\xff",
    b"[[connections]]\n",
    b"name = ",
    b"kind = \"mysql\"",
    b"url = \"postgres://h/db\"",
    b"password = { env = \"UNSET\" }",
    b"password = { file = \"p\" }",
    b"groups = [\"g\"]",
    b"statement_timeout = \"1h\"",
    b"max_session = ",
    b"row_limit = 1",
];

#[test]
fn declarative_files_keep_their_properties() {
    let seeds = seeds("decl_file");
    for (path, s) in &seeds {
        check_decl(s);
        let text = std::str::from_utf8(s).unwrap();
        if path.ends_with("seed-documented") || path.ends_with("seed-two") {
            assert!(decl::parse(text, &Fixed).is_ok(), "{}", path.display());
        }
    }
    let mut rng = Rng(7);
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            random(&mut rng, 64, TOML_ALPHABET)
        } else {
            let (_, s) = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s, TOML_ALPHABET)
        };
        check_decl(&input);
    }
}

#[test]
fn declarative_files_have_a_size_limit_and_linear_line_numbers() {
    // Over the limit: refused before parsing (line 0: not a place in the file).
    let big = " ".repeat(decl::MAX_FILE + 1);
    let e = decl::parse(&big, &Fixed).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.message.contains("limit"), "{e}");
    assert!(decl::parse(&" ".repeat(decl::MAX_FILE), &Fixed).is_ok());

    // Many connections: each one's line is right, and the duplicate is found
    // (line numbers used to rescan the file per connection, which made a
    // 1.5 MB file take 14 s).
    let one = |i: usize| {
        format!(
            "[[connections]]\nname = \"c{i}\"\nkind = \"postgres\"\nurl = \"postgres://h/db\"\n"
        )
    };
    let text: String = (0..2_000).map(one).collect();
    let d = decl::parse(&text, &Fixed).unwrap();
    assert_eq!(d.connections.len(), 2_000);
    for (i, c) in d.connections.iter().enumerate() {
        assert_eq!(c.line, 4 * i + 1);
    }
    let e = decl::parse(&format!("{text}{}", one(1_234)), &Fixed).unwrap_err();
    assert_eq!(e.line, 4 * 2_000 + 2, "{e}");
    assert!(e.message.contains("declared twice"), "{e}");
}

// === keyring_ciphertext ===

/// The fuzz target's fixed key (32 zero bytes); the seed ciphertexts were
/// sealed with it for context `connection:shop`.
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const CONTEXT: &str = "connection:shop";

/// What `fuzz/fuzz_targets/keyring_ciphertext.rs` asserts.
fn check_keyring(ring: &Keyring, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(plain) = ring.decrypt(text, CONTEXT) {
        assert!(plain.is_empty() || plain.as_slice() == b"s3cret", "{text}");
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
        let c = k.encrypt(b"x", "ctx");
        assert!(c.starts_with(&format!("gh1.{}.", k.primary_id())));
        assert_eq!(
            k.decrypt(&c, "ctx").ok().as_deref().map(Vec::as_slice),
            Some(&b"x"[..])
        );
    }
}

const B64_ALPHABET: &[&[u8]] = &[
    b"A",
    b"Q",
    b"g",
    b"w",
    b"z",
    b"0",
    b"9",
    b"+",
    b"/",
    b"=",
    b".",
    b",",
    b" ",
    b"\n",
    b"#",
    b"-",
    b"_",
    b"gh1.",
    b"66687aadf862.",
    "é".as_bytes(),
    b"\xff",
];

#[test]
fn ciphertexts_and_keys_keep_their_properties() {
    let ring = Keyring::parse(KEY).unwrap();
    assert_eq!(ring.primary_id(), "66687aadf862");
    let seeds = seeds("keyring_ciphertext");
    for (path, s) in &seeds {
        check_keyring(&ring, s);
        let text = std::str::from_utf8(s).unwrap();
        let opened = ring.decrypt(text, CONTEXT);
        if path.ends_with("seed-ct") {
            assert_eq!(opened.unwrap().as_slice(), b"s3cret");
        } else if path.ends_with("seed-ct-empty") {
            assert!(opened.unwrap().is_empty());
        } else {
            assert!(opened.is_err(), "{}", path.display());
        }
    }
    let mut rng = Rng(99);
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            random(&mut rng, 80, B64_ALPHABET)
        } else {
            let (_, s) = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s, B64_ALPHABET)
        };
        check_keyring(&ring, &input);
    }
}

// === duration ===

/// What `fuzz/fuzz_targets/duration.rs` asserts.
fn check_duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        assert_eq!(d.subsec_nanos() % 1_000_000, 0);
        assert!(d.as_millis() <= u128::from(u64::MAX));
        let f = format_duration(d);
        assert_eq!(parse_duration(&f), Ok(d), "{text:?} -> {f:?}");
    }
}

#[test]
fn durations_keep_their_properties() {
    let seeds = seeds("duration");
    for (path, s) in &seeds {
        check_duration(s);
        let ok = parse_duration(std::str::from_utf8(s).unwrap()).is_ok();
        assert_eq!(ok, !path.ends_with("seed-overflow"), "{}", path.display());
    }
    let alphabet = ascii(b"0123456789smhdw  \t.-+x");
    let mut with_unicode = alphabet.clone();
    with_unicode.extend(["µ".as_bytes(), "\u{a0}".as_bytes(), "٣".as_bytes()]);
    let mut rng = Rng(3);
    for i in 0..20_000 {
        let input = if i % 2 == 0 {
            random(&mut rng, 24, &alphabet)
        } else {
            let (_, s) = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, s, &with_unicode)
        };
        check_duration(&input);
    }
}
