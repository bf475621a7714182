//! The properties the PostgreSQL codec keeps on any input, shared by the
//! fuzz targets `pg_startup` and `pg_messages` (`fuzz/fuzz_targets/`) and
//! the CI test `codec_robustness.rs`, which runs them on the committed
//! seeds and on deterministic mutations of them:
//! `codec::parse_startup` on a client's first packet, and on a stream of
//! typed messages `codec::frame`/`header` and every message-body parser
//! (whatever the tag, as a hostile peer may mislabel), with the recording's
//! rendering of binary values (`values::render`).
#![allow(dead_code)]

use bytes::BytesMut;
use gatehouse_pg::codec::{self, Startup};
use gatehouse_pg::values::{Rendering, UserType};

/// Start-up parameters as `codec::startup_message` takes them.
pub fn as_refs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The properties of `codec::parse_startup` and the start-up settings
/// on one input (the fuzz target `pg_startup`).
pub fn check_startup(data: &[u8]) {
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
                    assert!(!matches!(
                        name.as_str(),
                        "user" | "database" | "replication" | "options"
                    ));
                }
            }
            // Rebuilding what was parsed gives the same parameters back.
            for (k, _) in &params {
                assert!(!k.is_empty() && !k.contains('\0'));
            }
            let refs = as_refs(&params);
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
    let refs = as_refs(&params);
    let mut b = BytesMut::new();
    codec::startup_message(&mut b, &refs);
    let len = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    assert_eq!(usize::try_from(len).ok(), Some(b.len()));
    assert_eq!(
        codec::parse_startup(&b[4..]),
        Ok(Startup::Startup { params, minor: 0 })
    );
}

/// Frames `data` under `limit` and runs every parser on each message;
/// the number of messages framed.
pub fn run(data: &[u8], limit: usize) -> usize {
    let mut rest = data;
    let mut messages = 0;
    loop {
        let framed = codec::frame(rest, limit);
        let header = codec::header(rest, limit);
        // `frame` is `header` plus "the whole message has arrived".
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
        let msg = &rest[..total];
        bodies(codec::body(msg));
        messages += 1;
        rest = &rest[total..];
    }
    messages
}

/// What values are rendered with: types created in the database as a
/// catalog could describe them (including a domain over itself and an
/// array of itself), and timestamptz in a zone with offsets of hours,
/// minutes and seconds (read once from the system's time zone database;
/// UTC where it has none); dates and intervals in one of four pairs of
/// `DateStyle` and `IntervalStyle`.
fn rendering(styles: usize) -> &'static Rendering {
    const STYLES: [(&str, &str); 4] = [
        ("ISO, MDY", "postgres"),
        ("Postgres, DMY", "postgres_verbose"),
        ("SQL, MDY", "sql_standard"),
        ("German, DMY", "iso_8601"),
    ];
    static WITH: [std::sync::OnceLock<Rendering>; 4] = [const { std::sync::OnceLock::new() }; 4];
    WITH[styles % 4].get_or_init(|| {
        let mut with = Rendering::default();
        with.set_parameter("TimeZone", "Europe/Paris");
        with.set_parameter("DateStyle", STYLES[styles % 4].0);
        with.set_parameter("IntervalStyle", STYLES[styles % 4].1);
        with.types = gatehouse_pg::values::UserTypes::from([
            (16_400, UserType::Text),
            (16_401, UserType::Array(16_400)),
            (16_402, UserType::Composite),
            (16_403, UserType::Domain(23)),
            (16_404, UserType::Array(16_402)),
            (16_405, UserType::Domain(16_405)),
            (16_406, UserType::Array(16_406)),
            (16_407, UserType::Domain(16_401)),
            (16_408, UserType::Opaque),
            (16_409, UserType::Hstore),
            (16_410, UserType::Array(16_409)),
        ]);
        with
    })
}

fn bodies(body: &[u8]) {
    if let Ok(sql) = codec::parse_query(body) {
        assert!(sql.len() < body.len() && !sql.contains('\0'));
    }
    if let Ok((name, sql, types)) = codec::parse_parse(body) {
        // Its declared types: as many as it counts, to the body's end.
        assert_eq!(name.len() + sql.len() + 2 + 2 + 4 * types.len(), body.len());
        assert_eq!(types.iter().count(), types.len());
    }
    if let Ok(types) = codec::parse_parameter_description(body) {
        assert_eq!(2 + 4 * types.len(), body.len());
        assert_eq!(types.iter().count(), types.len());
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
    if let Ok(formats) = codec::bind_result_formats(body) {
        // Past the parameters, so only where those parse (the names are
        // not checked as UTF-8 here; `parse_bind` checks them).
        assert!(codec::parse_bind(body).is_err() || codec::bind_params(body).is_ok());
        if let codec::ResultFormats::PerColumn(codes) = &formats {
            assert!(codes.len() % 2 == 0 && codes.len() < body.len());
        }
        for i in 0..4 {
            let _ = formats.binary(i);
        }
    }
    // The one-pass reading the data path uses agrees with the two above.
    match codec::parse_bind_formats(body) {
        Ok((portal, stmt, formats, params)) => {
            assert_eq!(codec::parse_bind(body), Ok((portal, stmt)));
            assert_eq!(codec::bind_result_formats(body), Ok(formats));
            assert_eq!(codec::bind_params(body).map(|(_, v)| v.len()), Ok(params));
        }
        Err(_) => {
            assert!(codec::parse_bind(body).is_err() || codec::bind_result_formats(body).is_err())
        }
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
    // Any body as a binary value of each type the recording renders, with
    // types created in the database as a catalog could describe them
    // (including a domain over itself and an array of itself).
    // The styles by the body's last two bits, so that all are fuzzed.
    let with = rendering(body.last().map_or(0, |b| usize::from(b & 3)));
    let mut text = String::new();
    for oid in [
        16, 17, 18, 19, 20, 21, 23, 25, 26, 114, 142, 700, 701, 705, 1042, 1043, 1082, 1083, 1114,
        1184, 1700, 2950, 3802, 1186, 1266, 869, 650, 829, 774, 1560, 1562, 1000, 1001, 1002, 1003,
        1005, 1007, 1009, 1014, 1015, 1016, 1021, 1022, 1028, 199, 143, 3807, 1115, 1182, 1183,
        1185, 1187, 1270, 1231, 2951, 1041, 651, 1040, 775, 1561, 1563, 600, 601, 602, 603, 604,
        628, 718, 3904, 3926, 3906, 3908, 3910, 3912, 1017, 1018, 1019, 1027, 629, 719, 3905, 3927,
        3907, 3909, 3911, 3913, 4451, 4536, 4532, 4533, 4534, 4535, 6150, 6157, 6151, 6152, 6153,
        6155, 2249, 2287, 16_400, 16_401, 16_402, 16_403, 16_404, 16_405, 16_406, 16_407, 16_408,
        16_409, 16_410,
    ] {
        text.clear();
        if gatehouse_pg::values::render(oid, body, with, &mut text).is_some() {
            let bound = gatehouse_pg::values::MAX_TEXT_BASE + 8 * body.len();
            assert!(text.len() <= bound, "{oid}: {} bytes of text", text.len());
        } else {
            assert!(text.is_empty());
        }
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
        // What we build from parsed values frames and parses back the same.
        let mut b = BytesMut::new();
        codec::parameter_status(&mut b, k, v);
        assert_eq!(codec::frame(&b, b.len()), Ok(Some((b'S', b.len()))));
        assert_eq!(codec::parse_parameter_status(codec::body(&b)), Ok((k, v)));
    }
}

/// A stream of messages under the handshake limit used for the password
/// message, and under a small limit chosen by the input, so that
/// `TooLarge` is reached often (the fuzz target `pg_messages`).
pub fn check_messages(data: &[u8]) {
    run(data, 64 * 1024);
    if let Some((&l, rest)) = data.split_first() {
        run(rest, 5 + usize::from(l));
    }
}
