//! The PostgreSQL codec never panics, keeps its limits and keeps the same
//! properties the fuzz targets in `fuzz/` assert (`pg_startup`,
//! `pg_messages`): over the seed corpus files, then ~20,000 deterministic
//! pseudo-random and mutated inputs per target (an xorshift generator, so a
//! failure reproduces), so CI keeps the targets honest without a fuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::BytesMut;
use gatehouse_pg::codec::{self, Startup};

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

fn check_startup(data: &[u8]) {
    if data.len() + 4 > codec::MAX_STARTUP {
        return;
    }
    match codec::parse_startup(data) {
        Ok(Startup::Ssl | Startup::GssEnc) => assert_eq!(data.len(), 4),
        Ok(Startup::Cancel { .. }) => assert_eq!(data.len(), 12),
        Ok(Startup::Startup { params, .. }) => {
            for (k, _) in &params {
                assert!(!k.is_empty() && !k.contains('\0'));
            }
            let refs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut b = BytesMut::new();
            codec::startup_message(&mut b, &refs);
            assert!(b.len() <= data.len() + 4);
            assert_eq!(
                codec::parse_startup(&b[4..]),
                Ok(Startup::Startup { params, minor: 0 })
            );
        }
        Err(_) => {}
    }

    let text = String::from_utf8_lossy(data).replace('\0', "");
    let mut params = Vec::new();
    let mut parts = text.split('\u{1}');
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() {
            break;
        }
        params.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut b = BytesMut::new();
    codec::startup_message(&mut b, &refs);
    let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!(usize::try_from(len).ok(), Some(b.len()));
    assert_eq!(
        codec::parse_startup(&b[4..]),
        Ok(Startup::Startup { params, minor: 0 })
    );
}

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

fn run(data: &[u8], limit: usize) -> usize {
    let mut rest = data;
    let mut messages = 0;
    loop {
        let framed = codec::frame(rest, limit);
        let header = codec::header(rest, limit);
        match (&framed, &header) {
            (Ok(Some(f)), Ok(Some(h))) => assert_eq!(f, h),
            (Ok(None), Ok(Some((_, total)))) => assert!(*total > rest.len()),
            (Ok(None), Ok(None)) => assert!(rest.len() < 5),
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("frame {framed:?} and header {header:?} disagree"),
        }
        let Ok(Some((_, total))) = framed else { break };
        assert!((5..=limit).contains(&total), "{total} outside 5..={limit}");
        assert!(total <= rest.len());
        bodies(codec::body(&rest[..total]));
        messages += 1;
        rest = &rest[total..];
    }
    messages
}

fn bodies(body: &[u8]) {
    if let Ok(sql) = codec::parse_query(body) {
        assert!(sql.len() < body.len() && !sql.contains('\0'));
    }
    if let Ok((name, sql, n)) = codec::parse_parse(body) {
        assert!(n >= 0);
        assert_eq!(name.len() + sql.len() + 2 + 2 + 4 * n as usize, body.len());
        // Its declared types: as many as it counts.
        assert_eq!(codec::parse_types(body).map(|t| t.len()), Ok(n as usize));
    } else {
        assert!(codec::parse_types(body).is_err());
    }
    if let Ok(types) = codec::parse_parameter_description(body) {
        assert_eq!(2 + 4 * types.len(), body.len());
    }
    // The values the data path keeps for the recording are those an
    // approval shows.
    let mut seen = Vec::new();
    if codec::parse_bind_values(body, |v| seen.push(v)).is_ok() {
        assert_eq!(codec::bind_params(body).map(|(_, v)| v), Ok(seen));
    }
    if let Ok((portal, stmt)) = codec::parse_bind(body) {
        assert!(portal.len() + stmt.len() + 2 <= body.len());
    }
    for (code, text) in codec::fields(body) {
        assert!(code != 0 && text.len() < body.len() && !text.contains('\0'));
    }
    if let Ok((raw, values)) = codec::bind_params(body) {
        assert!(codec::parse_bind(body).is_ok() && raw.len() <= body.len());
        let bytes: usize = values.iter().flatten().map(|(_, v)| v.len()).sum();
        assert!(bytes + 4 * values.len() <= raw.len());
    }
    if let Ok((portal, _)) = codec::parse_execute(body) {
        assert!(portal.len() + 5 <= body.len());
    }
    if let Ok((kind, _)) = codec::parse_close(body) {
        assert!(kind == b'S' || kind == b'P');
    }
    if let Ok((kind, name)) = codec::parse_describe(body) {
        assert!((kind == b'S' || kind == b'P') && name.len() + 2 <= body.len());
    }
    if let Some(tag) = codec::parse_command_complete(body) {
        let _ = codec::tag_rows(tag);
    }
    let (code, message) = codec::parse_error(body);
    assert!(code.len() + message.len() <= body.len());
    if let Ok((_, data)) = codec::parse_auth(body) {
        assert_eq!(data.len() + 4, body.len());
    }
    if let Ok((pid, key)) = codec::parse_backend_key(body) {
        assert!(body.len() >= 8);
        let mut b = BytesMut::new();
        codec::backend_key_data(&mut b, pid, key);
        assert_eq!(codec::parse_backend_key(codec::body(&b)), Ok((pid, key)));
    }
    if let Ok((k, v)) = codec::parse_parameter_status(body) {
        let mut b = BytesMut::new();
        codec::parameter_status(&mut b, k, v);
        assert_eq!(codec::frame(&b, b.len()), Ok(Some((b'S', b.len()))));
        assert_eq!(codec::parse_parameter_status(codec::body(&b)), Ok((k, v)));
    }
}

fn check_messages(data: &[u8]) {
    run(data, 64 * 1024);
    if let Some((&l, rest)) = data.split_first() {
        run(rest, 5 + usize::from(l));
    }
}

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
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut b = BytesMut::new();
        codec::startup_message(&mut b, &refs);
        assert_eq!(
            codec::parse_startup(&b[4..]),
            Ok(Startup::Startup { params, minor: 0 })
        );
    }
}
