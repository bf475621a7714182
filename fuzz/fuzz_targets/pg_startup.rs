//! `codec::parse_startup`: the first packet of a client connection (startup,
//! SSLRequest, GSSENCRequest, CancelRequest), as `session::read_startup`
//! hands it over: the body after the 4-byte length, the whole packet at most
//! `MAX_STARTUP` bytes; and the start-up settings read from its parameters
//! and `options` (`session::read_startup_settings`).
#![no_main]
use bytes::BytesMut;
use gatehouse_pg::codec::{self, Startup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The session refuses lengths outside 8..=MAX_STARTUP before parsing.
    if data.len() + 4 > codec::MAX_STARTUP {
        return;
    }
    match codec::parse_startup(data) {
        Ok(Startup::Ssl | Startup::GssEnc) => assert_eq!(data.len(), 4),
        Ok(Startup::Cancel { .. }) => assert_eq!(data.len(), 12),
        Ok(Startup::Startup { params, .. }) => {
            // The settings passed on to the upstream have setting names only
            // (what the policy reads as `SET name TO …` cannot be more).
            if let Ok(settings) = gatehouse_pg::session::read_startup_settings(&params) {
                for (name, _) in &settings {
                    assert!(!name.is_empty() && name.len() <= 63);
                    assert!(name.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'_'
                        || b == b'.'));
                    assert!(!matches!(name.as_str(), "user" | "database" | "replication" | "options"));
                }
            }
            // Rebuilding what was parsed gives the same parameters back.
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

    // The other direction: parameters made from the input, built with
    // `startup_message`, parse back unchanged.
    let text = String::from_utf8_lossy(data).replace('\0', "");
    let mut params = Vec::new();
    let mut parts = text.split('\u{1}');
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if k.is_empty() {
            break; // an empty name ends the list on the wire
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
});
