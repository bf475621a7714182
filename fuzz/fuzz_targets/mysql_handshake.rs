//! `parse_handshake`: the MySQL server's initial handshake packet, as the
//! connection test reads it (a body of at most 64 KiB, `MAX_PACKET`).
//!
//! `upstream::mysql` is private to gatehouse-server, so its file is compiled
//! here on its own (it uses only gatehouse-core and crates.io crates).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/gatehouse-server/src/upstream/mysql.rs"]
mod mysql;

const MAX_PACKET: usize = 64 * 1024;
const DEFAULT_PLUGIN: &[u8] = b"mysql_native_password";

/// A protocol-10 handshake body with all capabilities set.
fn build(version: &[u8], scramble: &[u8; 20], plugin: &[u8]) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(version);
    p.push(0);
    p.extend_from_slice(&[1, 0, 0, 0]);
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&[0xff, 0xff, 45, 2, 0, 0xff, 0xff, 21]);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(plugin);
    p.push(0);
    p
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_PACKET {
        return;
    }
    if let Ok(h) = mysql::parse_handshake(data) {
        assert_eq!(data[0], 10);
        assert!(h.scramble.len() >= 8 && h.scramble.len() <= data.len());
        assert!(h.plugin == DEFAULT_PLUGIN || h.plugin.len() < data.len());
    }

    // Round trip: a packet built from parts of the input parses back to them.
    if data.len() >= 20 {
        let scramble: [u8; 20] = data[..20].try_into().unwrap_or([0; 20]);
        let rest = &data[20..];
        let mid = rest.len() / 2;
        let version: Vec<u8> = rest[..mid].iter().copied().filter(|b| *b != 0).collect();
        let plugin: Vec<u8> = rest[mid..].iter().copied().filter(|b| *b != 0).collect();
        let h = mysql::parse_handshake(&build(&version, &scramble, &plugin));
        assert_eq!(
            h,
            Ok(mysql::Handshake {
                version: String::from_utf8_lossy(&version).into_owned(),
                scramble: scramble.to_vec(),
                plugin,
            })
        );
    }
});
