use bytes::BytesMut;
use zeroize::Zeroizing;

use super::stmt::PARAMETER_COUNT_AVAILABLE;
use super::*;

fn built(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    f(&mut b);
    b.to_vec()
}

// === framing ===

#[test]
fn framing_single_packets_and_limits() {
    let mut b = BytesMut::new();
    assert_eq!(put_packet(&mut b, 7, b"\x03SELECT 1"), 8);
    assert_eq!(&b[..4], &[9, 0, 0, 7]);
    let f = frame(&b, 100).expect("valid").expect("whole");
    assert_eq!(
        f,
        Frame {
            seq: 7,
            last_seq: 7,
            len: 13,
            payload_len: 9
        }
    );
    assert_eq!(payload(&b[..f.len]).as_ref(), b"\x03SELECT 1");
    // Incomplete header, incomplete body: wait for more.
    assert_eq!(frame(&b[..3], 100), Ok(None));
    assert_eq!(frame(&b[..12], 100), Ok(None));
    // The limit applies to the payload and is checked from the header alone.
    assert_eq!(frame(&b, 9).map(|f| f.map(|f| f.len)), Ok(Some(13)));
    assert_eq!(
        frame(&b[..4], 8),
        Err(CodecError::TooLarge { len: 9, limit: 8 })
    );
    // An empty packet is a packet.
    assert_eq!(
        frame(&[0, 0, 0, 3], 0).map(|f| f.map(|f| (f.len, f.payload_len))),
        Ok(Some((4, 0)))
    );
    // Two packets back to back: the first is framed alone.
    let mut two = BytesMut::new();
    let next = put_packet(&mut two, 0, b"ab");
    put_packet(&mut two, next, b"cde");
    assert_eq!(frame(&two, 100).map(|f| f.map(|f| f.len)), Ok(Some(6)));
}

#[test]
fn framing_joins_16_mib_pieces() {
    let big = vec![0x5a; MAX_CHUNK + 10];
    let mut b = BytesMut::new();
    assert_eq!(put_packet(&mut b, 254, &big), 0, "two pieces: 254, 255");
    assert_eq!(b.len(), big.len() + 2 * HEADER_LEN);
    let f = frame(&b, big.len()).expect("valid").expect("whole");
    assert_eq!((f.seq, f.last_seq, f.len), (254, 255, b.len()));
    assert_eq!(f.payload_len, big.len());
    assert_eq!(payload(&b[..f.len]).as_ref(), big.as_slice());
    // One byte under the joined size is over the limit.
    assert!(matches!(
        frame(&b, big.len() - 1),
        Err(CodecError::TooLarge { .. })
    ));
    // Before the second header arrives the packet is incomplete.
    assert_eq!(frame(&b[..HEADER_LEN + MAX_CHUNK], big.len()), Ok(None));
    // A continuation out of sequence is refused.
    let mut bad = b.clone();
    bad[HEADER_LEN + MAX_CHUNK + 3] = 9;
    assert_eq!(
        frame(&bad, big.len()),
        Err(CodecError::Sequence {
            expected: 255,
            got: 9
        })
    );
    // A payload of exactly MAX_CHUNK bytes ends with an empty packet.
    let exact = vec![1u8; MAX_CHUNK];
    let mut b = BytesMut::new();
    assert_eq!(put_packet(&mut b, 0, &exact), 2);
    assert_eq!(&b[b.len() - 4..], &[0, 0, 0, 1]);
    let f = frame(&b, MAX_CHUNK).expect("valid").expect("whole");
    assert_eq!((f.len, f.payload_len), (b.len(), MAX_CHUNK));
}

#[test]
fn framing_refuses_a_huge_claim_without_its_bytes() {
    // 16 MiB claimed, 4 bytes present, 1 KiB allowed: refused at once.
    assert_eq!(
        frame(&[0xff, 0xff, 0xff, 0], 1024),
        Err(CodecError::TooLarge {
            len: MAX_CHUNK,
            limit: 1024
        })
    );
}

// === primitive encodings ===

#[test]
fn length_encoded_integers_at_every_boundary() {
    for v in [
        0u64,
        1,
        250,
        251,
        252,
        0xFFFF,
        0x1_0000,
        0xFF_FFFF,
        0x100_0000,
        u64::from(u32::MAX),
        u64::MAX,
    ] {
        let b = built(|o| put_lenenc_int(o, v));
        assert_eq!(b.len(), lenenc_int_len(v), "{v}");
        let mut p = b.as_slice();
        assert_eq!(get_lenenc_int(&mut p), Ok(v));
        assert!(p.is_empty());
        for cut in 0..b.len() {
            assert!(get_lenenc_int(&mut &b[..cut]).is_err(), "{v} cut at {cut}");
        }
    }
    assert_eq!(built(|o| put_lenenc_int(o, 251)), [0xFC, 251, 0]);
    assert!(get_lenenc_int(&mut &[0xFB][..]).is_err(), "NULL marker");
    assert!(
        get_lenenc_int(&mut &[0xFF, 0, 0][..]).is_err(),
        "ERR marker"
    );
}

#[test]
fn length_encoded_and_nul_strings() {
    let b = built(|o| {
        put_lenenc_bytes(o, b"hello");
        put_lenenc_bytes(o, &[7u8; 300]);
        put_nul_bytes(o, b"wo\0rld");
    });
    let mut p = b.as_slice();
    assert_eq!(get_lenenc_bytes(&mut p), Ok(&b"hello"[..]));
    assert_eq!(get_lenenc_bytes(&mut p), Ok(&[7u8; 300][..]));
    assert_eq!(get_nul_bytes(&mut p), Ok(&b"world"[..]), "NUL dropped");
    assert!(p.is_empty());
    // A length over what is there (here 2^64 - 1) is refused, not allocated.
    let mut huge = vec![0xFE];
    huge.extend_from_slice(&u64::MAX.to_le_bytes());
    huge.extend_from_slice(b"abc");
    assert!(get_lenenc_bytes(&mut huge.as_slice()).is_err());
    assert!(get_lenenc_bytes(&mut &[5, b'a', b'b'][..]).is_err());
    assert!(get_nul_bytes(&mut &b"no terminator"[..]).is_err());
}

#[test]
fn commands() {
    for b in 0..=255u8 {
        if let Some(c) = Command::from_byte(b) {
            assert_eq!(c.byte(), b);
        }
    }
    assert_eq!(Command::from_byte(0x03), Some(Command::Query));
    assert_eq!(Command::from_byte(0x11), Some(Command::ChangeUser));
    assert_eq!(Command::from_byte(0x1f), Some(Command::ResetConnection));
    assert_eq!(Command::from_byte(0x21), None);
    let q = built(|o| build_command(o, Command::Query, b"select 1"));
    assert_eq!(parse_text_command(&q, Command::Query), Ok(&b"select 1"[..]));
    assert!(parse_text_command(&q, Command::InitDb).is_err());
    assert!(parse_command(&[]).is_err());
    assert!(parse_command(&[0x42]).is_err());
    assert_eq!(
        parse_stmt_id(&[0x19, 1, 0, 0, 0]),
        Ok((Command::StmtClose, 1))
    );
    assert_eq!(
        parse_stmt_id(&[0x1c, 2, 0, 0, 0, 10, 0, 0, 0]),
        Ok((Command::StmtFetch, 2))
    );
    assert!(parse_stmt_id(&[0x19, 1, 0, 0]).is_err());
    assert!(parse_stmt_id(&[0x03, 1, 0, 0, 0]).is_err());
    assert_eq!(
        parse_send_long_data(b"\x18\x05\0\0\0\x01\0blob"),
        Ok(SendLongData {
            statement_id: 5,
            param: 1,
            data: b"blob"
        })
    );
}

// === connection phase ===

fn mysql_greeting() -> Greeting {
    Greeting {
        server_version: "8.0.36".into(),
        connection_id: 42,
        nonce: b"abcdefgh12345678ABCD".to_vec(),
        capabilities: 0xdfff_f7ff,
        charset: 255,
        status: SERVER_STATUS_AUTOCOMMIT,
        mariadb_capabilities: 0,
        auth_plugin: Some("caching_sha2_password".into()),
    }
}

#[test]
fn greeting_round_trips() {
    let g = mysql_greeting();
    let b = built(|o| build_greeting(o, &g).expect("valid"));
    assert_eq!(parse_greeting(&b), Ok(g.clone()));
    // MariaDB: CLIENT_MYSQL clear, extended capabilities in the filler.
    let m = Greeting {
        server_version: "5.5.5-10.11.19-MariaDB".into(),
        capabilities: g.capabilities & !CLIENT_LONG_PASSWORD,
        mariadb_capabilities: 0x1d,
        auth_plugin: Some("mysql_native_password".into()),
        ..g.clone()
    };
    let b = built(|o| build_greeting(o, &m).expect("valid"));
    assert_eq!(parse_greeting(&b), Ok(m));
    // Without plugin auth or secure connection: an 8-byte scramble.
    let old = Greeting {
        nonce: b"abcdefgh".to_vec(),
        capabilities: CLIENT_PROTOCOL_41 | CLIENT_LONG_PASSWORD,
        auth_plugin: None,
        ..g.clone()
    };
    let b = built(|o| build_greeting(o, &old).expect("valid"));
    assert_eq!(parse_greeting(&b), Ok(old));
    // Nonces the format cannot carry are refused by the builder.
    for nonce in [
        b"short".to_vec(),
        vec![b'a'; 19],
        b"abc\0efgh12345678ABCD".to_vec(),
    ] {
        let g = Greeting {
            nonce,
            ..mysql_greeting()
        };
        assert!(build_greeting(&mut BytesMut::new(), &g).is_err());
    }
}

#[test]
fn greeting_parses_real_servers() {
    // Captured greetings (the seeds of the older `mysql_handshake` target).
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mysql_handshake");
    for (name, version, plugin) in [
        ("seed-mariadb", "5.5.5-10.11", "mysql_native_password"),
        ("seed-mysql8", "8.0", "caching_sha2_password"),
        ("seed-mysql57", "5.7", "mysql_native_password"),
    ] {
        let bytes = std::fs::read(dir.join(name)).expect("seed present");
        let g = parse_greeting(&bytes).expect(name);
        assert!(g.server_version.starts_with(version), "{name}: {g:?}");
        assert_eq!(g.auth_plugin.as_deref(), Some(plugin), "{name}");
        assert_eq!(g.nonce.len(), 20, "{name}");
        assert!(g.capabilities & CLIENT_PROTOCOL_41 != 0);
    }
    let err = std::fs::read(dir.join("seed-err")).expect("seed present");
    assert!(is_err(&err) && parse_greeting(&err).is_err());
    assert!(parse_err(&err).is_ok());
}

#[test]
fn greeting_truncations_are_errors() {
    let b = built(|o| build_greeting(o, &mysql_greeting()).expect("valid"));
    // Every cut before the plugin name loses a required field.
    let plugin_at = b.len() - "caching_sha2_password".len() - 1;
    for cut in 0..plugin_at {
        assert!(parse_greeting(&b[..cut]).is_err(), "cut at {cut}");
    }
    assert!(parse_greeting(&[9, b'x', 0]).is_err());
}

fn response(caps: u32, auth: &[u8]) -> HandshakeResponse {
    HandshakeResponse {
        capabilities: caps,
        max_packet: 16 << 20,
        charset: 45,
        mariadb_capabilities: 0,
        user: "bot".into(),
        auth_response: Zeroizing::new(auth.to_vec()),
        database: Some("shop".into()),
        auth_plugin: Some("mysql_native_password".into()),
        connect_attrs: vec![
            ("_client_name".into(), "libmariadb".into()),
            ("program_name".into(), "mariadb".into()),
        ],
        zstd_level: None,
    }
}

#[test]
fn handshake_response_in_each_auth_encoding() {
    let base = CLIENT_LONG_PASSWORD
        | CLIENT_PROTOCOL_41
        | CLIENT_PLUGIN_AUTH
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_CONNECT_ATTRS;
    let auth = [0x11u8; 20];
    let long_auth = [0x22u8; 300];
    for (caps, auth, auth_at) in [
        // lenenc: 300 bytes need the 0xFC form.
        (
            base | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SECURE_CONNECTION,
            &long_auth[..],
            &[0xFC, 44, 1][..],
        ),
        // 1-byte length.
        (base | CLIENT_SECURE_CONNECTION, &auth[..], &[20][..]),
        // NUL-terminated: the bytes, then a NUL.
        (base, b"password-ish".as_slice(), &b"password-ish\0"[..]),
    ] {
        let r = response(caps, auth);
        let b = built(|o| build_handshake_response(o, &r).expect("valid"));
        // Fixed part, user, then the auth response as encoded.
        assert_eq!(&b[32..36], b"bot\0");
        assert!(b[36..].starts_with(auth_at), "{caps:#x}");
        assert_eq!(
            parse_client_hello(&b),
            Ok(ClientHello::Response(Box::new(r.clone())))
        );
        // Cut inside the fixed part, the user or the auth response: an error.
        for cut in 0..36 + auth_at.len() {
            assert!(
                parse_client_hello(&b[..cut]).is_err(),
                "{caps:#x} cut {cut}"
            );
        }
    }
    // A NUL cannot be NUL-terminated, nor 256 bytes in a 1-byte length.
    assert!(build_handshake_response(&mut BytesMut::new(), &response(base, b"a\0b")).is_err());
    assert!(
        build_handshake_response(
            &mut BytesMut::new(),
            &response(base | CLIENT_SECURE_CONNECTION, &[1; 256])
        )
        .is_err()
    );
}

#[test]
fn handshake_response_optional_parts() {
    let caps = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
    let mut r = response(caps, b"");
    r.database = None;
    r.auth_plugin = None;
    r.connect_attrs.clear();
    r.mariadb_capabilities = 0x1c;
    let b = built(|o| build_handshake_response(o, &r).expect("valid"));
    assert_eq!(b.len(), 32 + 4 + 1, "only the fixed part, user and length");
    assert_eq!(
        parse_client_hello(&b),
        Ok(ClientHello::Response(Box::new(r.clone())))
    );
    // Flags set but the parts empty: they come back as None / empty.
    let all = caps
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_PLUGIN_AUTH
        | CLIENT_CONNECT_ATTRS
        | CLIENT_ZSTD_COMPRESSION_ALGORITHM
        | CLIENT_LONG_PASSWORD;
    let mut r2 = r.clone();
    r2.capabilities = all;
    r2.mariadb_capabilities = 0;
    r2.zstd_level = Some(7);
    let b = built(|o| build_handshake_response(o, &r2).expect("valid"));
    assert_eq!(
        parse_client_hello(&b),
        Ok(ClientHello::Response(Box::new(r2)))
    );
    // A user name that is not UTF-8 is refused.
    let mut bad = built(|o| build_handshake_response(o, &r).expect("valid"));
    bad[32] = 0xff;
    assert!(parse_client_hello(&bad).is_err());
    // Attributes whose block overruns the packet are refused.
    let mut r3 = response(caps | CLIENT_CONNECT_ATTRS | CLIENT_PLUGIN_AUTH, b"x");
    r3.database = None;
    let mut b = built(|o| build_handshake_response(o, &r3).expect("valid"));
    b.truncate(b.len() - 1);
    assert!(parse_client_hello(&b).is_err());
    // The response before 4.1 is not supported.
    let mut pre41 = built(|o| build_handshake_response(o, &r).expect("valid"));
    pre41[1] &= !((CLIENT_PROTOCOL_41 >> 8) as u8);
    assert_eq!(
        parse_client_hello(&pre41),
        Err(CodecError::Unsupported("pre-4.1 handshake response"))
    );
}

#[test]
fn handshake_response_debug_hides_the_auth_response() {
    let r = response(CLIENT_PROTOCOL_41, b"hunter2-token");
    let shown = format!("{r:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("13 bytes redacted") && shown.contains("bot"));
}

#[test]
fn ssl_request_is_told_apart() {
    let s = SslRequest {
        capabilities: CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH,
        max_packet: 1 << 24,
        charset: 45,
        mariadb_capabilities: 0,
    };
    let b = built(|o| build_ssl_request(o, &s));
    assert_eq!(b.len(), SSL_REQUEST_LEN);
    let want = SslRequest {
        capabilities: s.capabilities | CLIENT_SSL | CLIENT_PROTOCOL_41,
        ..s
    };
    assert_eq!(parse_client_hello(&b), Ok(ClientHello::Ssl(want)));
    // 32 bytes without CLIENT_SSL are a truncated response.
    let mut no_ssl = b.clone();
    no_ssl[1] &= !((CLIENT_SSL >> 8) as u8);
    assert!(parse_client_hello(&no_ssl).is_err());
    for cut in 0..32 {
        assert!(parse_client_hello(&b[..cut]).is_err());
    }
}

#[test]
fn auth_switch_and_more_data() {
    let a = AuthSwitchRequest {
        plugin: "mysql_clear_password".into(),
        data: b"abcdefghijklmnopqrst\0".to_vec(),
    };
    let b = built(|o| build_auth_switch_request(o, &a));
    assert_eq!(b[0], 0xFE);
    let parsed = parse_auth_switch_request(&b).expect("valid");
    assert_eq!(parsed, a);
    assert_eq!(parsed.nonce(), b"abcdefghijklmnopqrst");
    assert_eq!(
        parse_auth_switch_request(&[0xFE]),
        Err(CodecError::Unsupported("switch to mysql_old_password"))
    );
    assert!(parse_auth_switch_request(b"\xFEno-nul").is_err());
    assert!(parse_auth_switch_request(b"\x00x\0").is_err());
    let m = built(|o| build_auth_more_data(o, &[4]));
    assert_eq!(m, [1, 4]);
    assert_eq!(parse_auth_more_data(&m), Ok(&[4u8][..]));
    assert!(parse_auth_more_data(&[2, 4]).is_err());
    assert!(parse_auth_more_data(&[]).is_err());
}

// === OK, ERR, EOF ===

#[test]
fn ok_packets_for_each_capability_set() {
    let ok = OkPacket {
        header: 0,
        affected_rows: 300,
        last_insert_id: 1 << 40,
        status: SERVER_STATUS_AUTOCOMMIT | SERVER_MORE_RESULTS_EXISTS,
        warnings: 2,
        info: "Rows matched: 1  Changed: 1  Warnings: 0".into(),
        session_state: Vec::new(),
    };
    let p41 = CLIENT_PROTOCOL_41;
    for caps in [
        p41,
        p41 | CLIENT_SESSION_TRACK,
        p41 | CLIENT_DEPRECATE_EOF,
        CLIENT_TRANSACTIONS,
    ] {
        let mut want = ok.clone();
        if caps & p41 == 0 {
            want.warnings = 0;
        }
        let b = built(|o| build_ok(o, &want, caps));
        assert_eq!(parse_ok(&b, caps), Ok(want), "{caps:#x}");
    }
    // Session state, and the 0xFE header of an OK that ends a result set.
    let tracked = OkPacket {
        header: 0xFE,
        status: SERVER_SESSION_STATE_CHANGED,
        session_state: b"\x01\x05\x04test".to_vec(),
        ..OkPacket::default()
    };
    let caps = p41 | CLIENT_SESSION_TRACK | CLIENT_DEPRECATE_EOF;
    let b = built(|o| build_ok(o, &tracked, caps));
    assert!(is_result_end(&b, caps));
    assert_eq!(parse_ok(&b, caps), Ok(tracked));
    // MariaDB's minimal OK (7 bytes) under session tracking: no info.
    assert_eq!(
        parse_ok(&[0, 0, 0, 2, 0, 0, 0], p41 | CLIENT_SESSION_TRACK).map(|o| o.status),
        Ok(2)
    );
    for cut in 0..7 {
        assert!(parse_ok(&[0, 0, 0, 2, 0, 0, 0][..cut], p41).is_err());
    }
    assert!(parse_ok(&[0xFF, 0, 0], p41).is_err());
}

#[test]
fn err_and_eof_packets() {
    let b = built(|o| build_err(o, 1045, "28000", "Access denied: token expired"));
    assert_eq!(
        parse_err(&b),
        Ok(ErrPacket {
            code: 1045,
            sql_state: Some("28000".into()),
            message: "Access denied: token expired".into()
        })
    );
    assert!(is_err(&b));
    // A bad SQLSTATE becomes HY000 rather than a broken packet.
    let b = built(|o| build_err(o, 1105, "bad", "x"));
    assert_eq!(parse_err(&b).map(|e| e.sql_state), Ok(Some("HY000".into())));
    // Pre-4.1 form: no '#'.
    assert_eq!(
        parse_err(b"\xff\x15\x04denied").map(|e| (e.sql_state, e.message)),
        Ok((None, "denied".into()))
    );
    assert!(parse_err(&[0xFF, 1]).is_err());
    let eof = EofPacket {
        warnings: 1,
        status: SERVER_STATUS_AUTOCOMMIT,
    };
    let b = built(|o| build_eof(o, &eof));
    assert!(is_eof(&b) && is_result_end(&b, 0));
    assert_eq!(parse_eof(&b), Ok(eof));
    assert!(parse_eof(&b[..4]).is_err());
    // A row starting 0xFE (a value of 16 MiB or more) is not an end.
    let mut row = vec![0xFE];
    row.extend_from_slice(&[0; 8]);
    assert!(!is_eof(&row) && !is_result_end(&row, 0));
}

// === result sets ===

fn column(name: &str, t: FieldType, flags: u16) -> ColumnDefinition {
    ColumnDefinition {
        catalog: "def".into(),
        schema: "shop".into(),
        table: "o".into(),
        org_table: "orders".into(),
        name: name.into(),
        org_name: format!("{name}_col"),
        charset: 45,
        length: 11,
        column_type: t.code(),
        flags,
        decimals: 0,
        default_value: None,
    }
}

#[test]
fn column_definitions_and_counts() {
    let c = column(
        "id",
        FieldType::LongLong,
        column_flags::UNSIGNED | column_flags::NOT_NULL,
    );
    let b = built(|o| build_column_definition(o, &c));
    assert_eq!(parse_column_definition(&b), Ok(c.clone()));
    assert_eq!(c.binary_type(), BinaryType::new(FieldType::LongLong, true));
    // COM_FIELD_LIST replies carry a default value.
    let d = ColumnDefinition {
        default_value: Some(b"42".to_vec()),
        ..c.clone()
    };
    let b2 = built(|o| build_column_definition(o, &d));
    assert_eq!(parse_column_definition(&b2), Ok(d));
    for cut in 0..b.len() {
        assert!(parse_column_definition(&b[..cut]).is_err(), "cut {cut}");
    }
    let mut trailing = b.clone();
    trailing.push(0x05);
    assert!(parse_column_definition(&trailing).is_err());
    let n = built(|o| build_column_count(o, 3, true, 0));
    assert_eq!(parse_column_count(&n, 0), Ok((3, true)));
    let n = built(|o| build_column_count(o, 3, false, CLIENT_OPTIONAL_RESULTSET_METADATA));
    assert_eq!(
        parse_column_count(&n, CLIENT_OPTIONAL_RESULTSET_METADATA),
        Ok((3, false))
    );
    assert!(parse_column_count(&[0], 0).is_err(), "no columns");
    assert!(
        parse_column_count(&[0xFC, 0x01, 0x10], 0).is_err(),
        "over MAX_COLUMNS"
    );
}

#[test]
fn text_rows() {
    let long = vec![b'x'; 70_000];
    let values: Vec<Option<&[u8]>> = vec![Some(b"1"), None, Some(b""), Some(&long)];
    let b = built(|o| build_text_row(o, &values));
    assert_eq!(parse_text_row(&b, 4), Ok(values));
    assert!(parse_text_row(&b, 3).is_err(), "trailing value");
    assert!(parse_text_row(&b, 5).is_err(), "missing value");
    for cut in 0..b.len().min(64) {
        assert!(parse_text_row(&b[..cut], 4).is_err());
    }
    // A column count larger than the packet can hold is refused before allocating.
    assert!(parse_text_row(&[0xFB], usize::MAX).is_err());
}

/// One value of every type code, with the type it is encoded as.
fn every_type() -> Vec<(BinaryType, Value<'static>)> {
    use FieldType as F;
    let dt = DateTime {
        year: 2026,
        month: 11,
        day: 29,
        hour: 13,
        minute: 4,
        second: 59,
        micros: 123_456,
    };
    let date = DateTime {
        year: 2026,
        month: 2,
        day: 3,
        ..DateTime::default()
    };
    let no_micros = DateTime { micros: 0, ..dt };
    let t = Time {
        negative: true,
        days: 3,
        hours: 4,
        minutes: 5,
        seconds: 6,
        micros: 7,
    };
    let s = |t| BinaryType::new(t, false);
    let u = |t| BinaryType::new(t, true);
    vec![
        (s(F::Tiny), Value::Int(-128)),
        (u(F::Tiny), Value::UInt(255)),
        (s(F::Short), Value::Int(-32768)),
        (u(F::Short), Value::UInt(65535)),
        (u(F::Year), Value::UInt(2026)),
        (s(F::Int24), Value::Int(-8_388_608)),
        (s(F::Long), Value::Int(i64::from(i32::MIN))),
        (u(F::Long), Value::UInt(u64::from(u32::MAX))),
        (s(F::LongLong), Value::Int(i64::MIN)),
        (u(F::LongLong), Value::UInt(u64::MAX)),
        (s(F::Float), Value::Float(1.5)),
        (s(F::Double), Value::Double(-2.25e300)),
        (s(F::Date), Value::DateTime(date)),
        (s(F::NewDate), Value::DateTime(date)),
        (s(F::DateTime), Value::DateTime(dt)),
        (s(F::DateTime2), Value::DateTime(no_micros)),
        (s(F::Timestamp), Value::DateTime(DateTime::default())),
        (s(F::Timestamp2), Value::DateTime(dt)),
        (s(F::Time), Value::Time(t)),
        (
            s(F::Time2),
            Value::Time(Time {
                micros: 0,
                negative: false,
                ..t
            }),
        ),
        (s(F::Time), Value::Time(Time::default())),
        (s(F::Decimal), Value::Bytes(b"12.50")),
        (s(F::NewDecimal), Value::Bytes(b"-0.001")),
        (s(F::VarChar), Value::Bytes(b"varchar")),
        (s(F::Bit), Value::Bytes(&[0b101])),
        (s(F::Vector), Value::Bytes(&[0, 0, 128, 63])),
        (s(F::Json), Value::Bytes(br#"{"a":1}"#)),
        (s(F::Enum), Value::Bytes(b"red")),
        (s(F::Set), Value::Bytes(b"a,b")),
        (s(F::TinyBlob), Value::Bytes(b"")),
        (s(F::MediumBlob), Value::Bytes(&[0; 300])),
        (s(F::LongBlob), Value::Bytes(&[1; 70_000])),
        (s(F::Blob), Value::Bytes(b"\x00\xff")),
        (s(F::VarString), Value::Bytes("ünïcode".as_bytes())),
        (s(F::String), Value::Bytes(b"char")),
        (s(F::Geometry), Value::Bytes(&[1, 2, 3, 4])),
        (s(F::Null), Value::Null),
    ]
}

#[test]
fn binary_values_of_every_type_round_trip() {
    for (t, v) in every_type() {
        let mut b = BytesMut::new();
        if v != Value::Null {
            put_binary_value(&mut b, t, &v).expect("encodable");
        }
        let mut p: &[u8] = &b;
        assert_eq!(get_binary_value(&mut p, t), Ok(v), "{t:?}");
        assert!(p.is_empty(), "{t:?} left bytes");
    }
    // The documented lengths of dates and times.
    let len = |t: FieldType, v: Value<'_>| {
        built(|o| put_binary_value(o, BinaryType::new(t, false), &v).expect("encodable"))[0]
    };
    let mut dt = DateTime::default();
    assert_eq!(len(FieldType::DateTime, Value::DateTime(dt)), 0);
    dt.year = 1;
    assert_eq!(len(FieldType::DateTime, Value::DateTime(dt)), 4);
    dt.second = 1;
    assert_eq!(len(FieldType::DateTime, Value::DateTime(dt)), 7);
    dt.micros = 1;
    assert_eq!(len(FieldType::DateTime, Value::DateTime(dt)), 11);
    let mut t = Time::default();
    assert_eq!(len(FieldType::Time, Value::Time(t)), 0);
    t.negative = true;
    assert_eq!(len(FieldType::Time, Value::Time(t)), 8);
    t.micros = 1;
    assert_eq!(len(FieldType::Time, Value::Time(t)), 12);
    // Only those lengths are accepted, and the sign byte is 0 or 1.
    let dt_t = BinaryType::new(FieldType::DateTime, false);
    for n in [1u8, 5, 8, 12] {
        let mut b = vec![n];
        b.resize(1 + usize::from(n), 0);
        assert!(get_binary_value(&mut b.as_slice(), dt_t).is_err(), "{n}");
    }
    let time_t = BinaryType::new(FieldType::Time, false);
    assert!(get_binary_value(&mut &[8u8, 2, 0, 0, 0, 0, 0, 0, 0][..], time_t).is_err());
    // Integers are read little-endian and sign-extended from their width.
    let short = BinaryType::new(FieldType::Short, false);
    assert_eq!(
        get_binary_value(&mut &[0xfe, 0xff][..], short),
        Ok(Value::Int(-2))
    );
    let ushort = BinaryType::new(FieldType::Short, true);
    assert_eq!(
        get_binary_value(&mut &[0xfe, 0xff][..], ushort),
        Ok(Value::UInt(65534))
    );
    // Values that do not fit, or do not match, are refused by the builder.
    let tiny = BinaryType::new(FieldType::Tiny, false);
    for v in [Value::Int(128), Value::UInt(1), Value::Bytes(b"1")] {
        assert!(
            put_binary_value(&mut BytesMut::new(), tiny, &v).is_err(),
            "{v:?}"
        );
    }
    let utiny = BinaryType::new(FieldType::Tiny, true);
    assert!(put_binary_value(&mut BytesMut::new(), utiny, &Value::UInt(256)).is_err());
    // Unknown type codes cannot be decoded.
    let unknown = BinaryType {
        code: 100,
        unsigned: false,
    };
    assert!(get_binary_value(&mut &[1u8, 2, 3][..], unknown).is_err());
}

#[test]
fn binary_rows() {
    let (types, values): (Vec<_>, Vec<_>) = every_type().into_iter().unzip();
    let b = built(|o| build_binary_row(o, &types, &values).expect("encodable"));
    assert_eq!(
        parse_binary_row(&b, &types).as_deref(),
        Ok(values.as_slice())
    );
    // The NULL bitmap starts at bit 2: NULL in columns 0 and 6 of 7.
    let cols = vec![BinaryType::new(FieldType::Long, false); 7];
    let mut vals = vec![Value::Int(5); 7];
    vals[0] = Value::Null;
    vals[6] = Value::Null;
    let b = built(|o| build_binary_row(o, &cols, &vals).expect("encodable"));
    assert_eq!(&b[..3], &[0x00, 0b0000_0100, 0b0000_0001]);
    assert_eq!(b.len(), 3 + 5 * 4);
    assert_eq!(parse_binary_row(&b, &cols), Ok(vals));
    for cut in 0..b.len() {
        assert!(parse_binary_row(&b[..cut], &cols).is_err(), "cut {cut}");
    }
    let mut trailing = b.clone();
    trailing.push(0);
    assert!(parse_binary_row(&trailing, &cols).is_err());
    assert!(
        parse_binary_row(&[0xFE, 0, 0], &cols[..1]).is_err(),
        "header"
    );
    assert!(build_binary_row(&mut BytesMut::new(), &cols, &[Value::Int(1)]).is_err());
}

// === prepared statements ===

#[test]
fn prepare_ok() {
    let ok = PrepareOk {
        statement_id: 9,
        columns: 2,
        params: 3,
        warnings: 1,
        metadata_follows: None,
    };
    let b = built(|o| build_prepare_ok(o, &ok));
    assert_eq!(b.len(), 12);
    assert_eq!(parse_prepare_ok(&b), Ok(ok));
    let with_meta = PrepareOk {
        metadata_follows: Some(1),
        ..ok
    };
    let b = built(|o| build_prepare_ok(o, &with_meta));
    assert_eq!(parse_prepare_ok(&b), Ok(with_meta));
    for cut in 0..10 {
        assert!(parse_prepare_ok(&b[..cut]).is_err());
    }
    assert!(parse_prepare_ok(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
}

fn execute(types_sent: bool, names: bool) -> StmtExecute<'static> {
    let (types, params): (Vec<_>, Vec<_>) = every_type().into_iter().unzip();
    let n = types.len();
    StmtExecute {
        statement_id: 77,
        flags: 0,
        iterations: 1,
        types_sent,
        names: if names {
            (0..n)
                .map(|i| if i == 1 { &b"trace_id"[..] } else { b"" })
                .collect()
        } else {
            Vec::new()
        },
        types,
        params,
    }
}

#[test]
fn stmt_execute_with_types_sent() {
    let exe = execute(true, false);
    let b = built(|o| build_stmt_execute(o, &exe, false).expect("encodable"));
    let ctx = ExecuteContext {
        param_count: exe.params.len(),
        ..ExecuteContext::default()
    };
    assert_eq!(parse_stmt_execute(&b, &ctx), Ok(exe.clone()));
    // Wrong parameter count from the prepare: the bytes don't line up.
    for n in [exe.params.len() - 1, exe.params.len() + 1] {
        let ctx = ExecuteContext {
            param_count: n,
            ..ExecuteContext::default()
        };
        assert!(parse_stmt_execute(&b, &ctx).is_err(), "{n}");
    }
    for cut in 0..b.len().min(200) {
        assert!(parse_stmt_execute(&b[..cut], &ctx).is_err(), "cut {cut}");
    }
}

#[test]
fn stmt_execute_with_previous_types_and_long_data() {
    let mut exe = execute(false, false);
    exe.params[3] = Value::LongData;
    exe.params[4] = Value::Null;
    let b = built(|o| build_stmt_execute(o, &exe, false).expect("encodable"));
    let types = exe.types.clone();
    let ctx = ExecuteContext {
        param_count: types.len(),
        previous_types: Some(&types),
        long_data: &[3],
        query_attributes: false,
    };
    assert_eq!(parse_stmt_execute(&b, &ctx), Ok(exe.clone()));
    // Without the previous types the values cannot be read.
    let no_types = ExecuteContext {
        previous_types: None,
        ..ctx
    };
    assert!(parse_stmt_execute(&b, &no_types).is_err());
    // Without knowing about the long data the bytes don't line up.
    let no_long = ExecuteContext {
        long_data: &[],
        ..ctx
    };
    assert!(parse_stmt_execute(&b, &no_long).is_err());
}

#[test]
fn stmt_execute_with_query_attributes() {
    let exe = execute(true, true);
    let b = built(|o| build_stmt_execute(o, &exe, true).expect("encodable"));
    // The statement had 30 parameters; the rest are attributes.
    let ctx = ExecuteContext {
        param_count: 30,
        query_attributes: true,
        ..ExecuteContext::default()
    };
    assert_eq!(parse_stmt_execute(&b, &ctx), Ok(exe.clone()));
    // Fewer values than the statement's parameters: refused.
    let ctx_more = ExecuteContext {
        param_count: exe.params.len() + 1,
        ..ctx
    };
    assert!(parse_stmt_execute(&b, &ctx_more).is_err());
    // No parameters: nothing after the iteration count, unless the
    // client says a count follows.
    let bare = StmtExecute {
        statement_id: 1,
        flags: 0,
        iterations: 1,
        types_sent: false,
        types: Vec::new(),
        names: Vec::new(),
        params: Vec::new(),
    };
    let b = built(|o| build_stmt_execute(o, &bare, true).expect("encodable"));
    assert_eq!(b.len(), 10);
    let ctx0 = ExecuteContext {
        query_attributes: true,
        ..ExecuteContext::default()
    };
    assert_eq!(parse_stmt_execute(&b, &ctx0), Ok(bare.clone()));
    let counted = StmtExecute {
        flags: PARAMETER_COUNT_AVAILABLE,
        ..bare
    };
    let b = built(|o| build_stmt_execute(o, &counted, true).expect("encodable"));
    assert_eq!(b.len(), 11);
    assert_eq!(parse_stmt_execute(&b, &ctx0), Ok(counted));
    // A parameter count the packet cannot hold is refused before allocating.
    let mut huge = b[..10].to_vec();
    huge.push(0xFE);
    huge.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(parse_stmt_execute(&huge, &ctx0).is_err());
}
