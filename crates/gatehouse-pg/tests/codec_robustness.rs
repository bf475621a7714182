//! The PostgreSQL codec never panics and keeps its limits on arbitrary
//! input: seed messages, then many pseudo-random and mutated byte strings
//! (a deterministic xorshift generator, so failures reproduce). The
//! coverage-guided fuzz targets in `fuzz/` run the same checks for longer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use gatehouse_pg::codec;

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

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = BytesMut::new();
    codec::startup_message(
        &mut b,
        &[
            ("user", "bot"),
            ("database", "shop"),
            ("application_name", "psql"),
        ],
    );
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    codec::ssl_request(&mut b);
    out.push(b.to_vec());
    let mut b = BytesMut::new();
    codec::cancel_request(&mut b, 1, 2);
    out.push(b.to_vec());
    out.push(b"Q\0\0\0\x0dSELECT 1;\0".to_vec());
    out.push(b"P\0\0\0\x16s1\0SELECT $1\0\0\x01\0\0\0\x17".to_vec());
    out.push(b"B\0\0\0\x0cp\0s1\0\0\0\0\0".to_vec());
    out.push(b"E\0\0\0\x09\0\0\0\0\0".to_vec());
    out.push(b"C\0\0\0\x07Sx\0".to_vec());
    out.push(b"S\0\0\0\x04".to_vec());
    let mut b = BytesMut::new();
    codec::error(&mut b, codec::Severity::Error, "42501", "no", Some("hint"));
    out.push(b.to_vec());
    out
}

/// Every parser on one input; none may panic, and framing keeps its limit.
fn check(input: &[u8]) {
    const LIMIT: usize = 4096;
    let _ = codec::parse_startup(input);
    if let Ok(Some((_, total))) = codec::frame(input, LIMIT) {
        assert!((5..=LIMIT).contains(&total) && total <= input.len());
    }
    if let Ok(Some((_, total))) = codec::header(input, LIMIT) {
        assert!((5..=LIMIT).contains(&total));
    }
    let body = codec::body(input);
    for b in [input, body] {
        let _ = codec::parse_query(b);
        let _ = codec::parse_parse(b);
        let _ = codec::parse_bind(b);
        let _ = codec::parse_execute(b);
        let _ = codec::parse_close(b);
        let _ = codec::parse_command_complete(b).map(codec::tag_rows);
        let _ = codec::parse_error(b);
        let _ = codec::parse_auth(b);
        let _ = codec::parse_backend_key(b);
        let _ = codec::parse_parameter_status(b);
    }
}

#[test]
fn parsers_survive_random_and_mutated_input() {
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for s in &seeds {
        check(s);
    }
    for i in 0..40_000 {
        let input = if i % 2 == 0 {
            let len = rng.below(64);
            (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>()
        } else {
            let mut m = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                match rng.below(3) {
                    0 if !m.is_empty() => {
                        let at = rng.below(m.len());
                        m[at] = rng.next() as u8;
                    }
                    1 if !m.is_empty() => m.truncate(rng.below(m.len())),
                    _ => m.push(rng.next() as u8),
                }
            }
            m
        };
        check(&input);
    }
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
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut b = BytesMut::new();
        codec::startup_message(&mut b, &refs);
        assert_eq!(
            codec::parse_startup(&b[4..]),
            Ok(codec::Startup::Startup { params })
        );
    }
}
