//! The PostgreSQL codec never panics, keeps its limits and keeps the same
//! properties the fuzz targets in `fuzz/` assert (`pg_startup`,
//! `pg_messages`): over the seed corpus files, then ~20,000 deterministic
//! pseudo-random and mutated inputs per target (an xorshift generator, so a
//! failure reproduces), so CI keeps the targets honest without a fuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::BytesMut;
use gatehouse_pg::codec::{self, Startup};

#[path = "support/message_properties.rs"]
mod message_properties;
use message_properties::{as_refs, check_messages, check_startup, run};

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

/// The committed seeds of a fuzz target (`fuzz/corpus/<target>/seed-*`).
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed"))
        })
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "too few seeds in {}", dir.display());
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Interesting bytes for mutations: NUL, tags, length bytes, UTF-8 pieces.
const BYTES: &[u8] = b"\0\x01\x03\x04\x05\x7f\x80\xc3\xff\xe2QPBECSRKZpTD";

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(m.len() + 1);
        let byte = if rng.below(2) == 0 {
            BYTES[rng.below(BYTES.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(4) {
            0 if at < m.len() => m[at] = byte,
            1 if at < m.len() => {
                m.remove(at);
            }
            2 => m.truncate(at),
            _ => m.insert(at, byte),
        }
    }
    m
}

fn random(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(64);
    (0..len)
        .map(|_| {
            if rng.below(2) == 0 {
                BYTES[rng.below(BYTES.len())]
            } else {
                rng.next() as u8
            }
        })
        .collect()
}

// === pg_startup (fuzz/fuzz_targets/pg_startup.rs) ===

#[test]
fn startup_packets_keep_their_properties() {
    let seeds = seeds("pg_startup");
    for s in &seeds {
        check_startup(s);
    }
    // Every committed seed but the protocol-2 one is accepted.
    let accepted = seeds
        .iter()
        .filter(|s| codec::parse_startup(s).is_ok())
        .count();
    assert_eq!(accepted, seeds.len() - 1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            random(&mut rng)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        check_startup(&input);
    }
}

// === pg_messages (fuzz/fuzz_targets/pg_messages.rs) ===

#[test]
fn message_streams_keep_their_properties() {
    let seeds = seeds("pg_messages");
    let mut framed = 0;
    for s in &seeds {
        check_messages(s);
        framed += run(s, 64 * 1024);
    }
    assert!(framed >= 25, "the seeds frame into {framed} messages");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in 0..20_000 {
        let input = if i % 4 == 0 {
            random(&mut rng)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        check_messages(&input);
    }
}

#[test]
fn framing_limits_hold_at_the_edges() {
    for len in [i32::MIN, -1, 0, 3] {
        let mut m = vec![b'Q'];
        m.extend_from_slice(&len.to_be_bytes());
        assert_eq!(
            codec::frame(&m, 1 << 30),
            Err(codec::CodecError::BadLength(i64::from(len)))
        );
    }
    // The largest length a header can carry is refused under any real limit
    // without allocating or overflowing.
    let m = [b'Q', 0x7f, 0xff, 0xff, 0xff];
    assert!(matches!(
        codec::header(&m, gatehouse_pg::DEFAULT_MAX_MESSAGE),
        Err(codec::CodecError::TooLarge { .. })
    ));
    assert_eq!(
        codec::header(&m, usize::MAX),
        Ok(Some((b'Q', i32::MAX as usize + 1)))
    );
    // Exactly at the limit is accepted; one over is not.
    let m = b"Q\0\0\0\x05x";
    assert_eq!(codec::frame(m, 6), Ok(Some((b'Q', 6))));
    assert!(codec::frame(m, 5).is_err());
}

#[test]
fn startup_packets_round_trip() {
    let mut rng = Rng(42);
    for _ in 0..2_000 {
        let n = rng.below(5);
        let params: Vec<(String, String)> = (0..n)
            .map(|i| {
                (
                    format!("k{i}{}", rng.below(100)),
                    format!("v{}", rng.next()),
                )
            })
            .collect();
        let refs = as_refs(&params);
        let mut b = BytesMut::new();
        codec::startup_message(&mut b, &refs);
        assert_eq!(
            codec::parse_startup(&b[4..]),
            Ok(Startup::Startup { params, minor: 0 })
        );
    }
}
