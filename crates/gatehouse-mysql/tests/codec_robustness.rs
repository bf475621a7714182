//! The `mysql_packets` fuzz target's properties (framing limits, no panic,
//! parse → build → parse round trips) on its committed seeds, on every
//! truncation of them, and on 20,000 deterministic mutations (a small
//! xorshift generator, so a failure reproduces). `fuzz/` runs the
//! coverage-guided version for longer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/packet_properties.rs"]
mod packet_properties;

fn seeds() -> Vec<Vec<u8>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mysql_packets");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed"))
        })
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 6, "seeds in {}", dir.display());
    seeds
}

#[test]
fn seeds_and_their_truncations() {
    for s in seeds() {
        for cut in 0..=s.len() {
            packet_properties::check(&s[..cut]);
        }
        // The same packets under every context byte.
        for ctx in 0..=255u8 {
            let mut m = s.clone();
            if m.len() > 1 {
                m[1] = ctx;
            }
            packet_properties::check(&m);
        }
    }
}

#[test]
fn mutated_seeds() {
    let seeds = seeds();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000u64 {
        let mut m = if i % 8 == 0 {
            (0..next() % 128).map(|_| next() as u8).collect()
        } else {
            seeds[(next() % seeds.len() as u64) as usize].clone()
        };
        for _ in 0..=next() % 6 {
            if m.is_empty() {
                break;
            }
            let at = (next() % m.len() as u64) as usize;
            match next() % 4 {
                0 => m[at] = next() as u8,
                1 => m.truncate(at.max(2)),
                2 => m.insert(at, next() as u8),
                _ => m[at] ^= 1 << (next() % 8),
            }
        }
        packet_properties::check(&m);
    }
}
