//! The properties the `mysql_packets` fuzz target checks, shared with the
//! CI test `tests/codec_robustness.rs` (this file is compiled into both).
//!
//! Input: a limit byte, a context byte (parameter count and flags for
//! `COM_STMT_EXECUTE`, column count and types for rows, capabilities for
//! OK packets), then packets. Each framed payload goes through every
//! parser (whatever it is, as a hostile peer may send anything), and so
//! does the raw input. What parses is rebuilt and must parse back the same;
//! nothing may panic.

use bytes::BytesMut;
use gatehouse_mysql::codec::{self, BinaryType, ClientHello, ExecuteContext, FieldType};

/// Types rows and parameters are read with, picked by the context byte.
const TYPES: [FieldType; 16] = [
    FieldType::Tiny,
    FieldType::Short,
    FieldType::Long,
    FieldType::LongLong,
    FieldType::Float,
    FieldType::Double,
    FieldType::Date,
    FieldType::DateTime,
    FieldType::Time,
    FieldType::VarString,
    FieldType::NewDecimal,
    FieldType::Json,
    FieldType::Int24,
    FieldType::Year,
    FieldType::Null,
    FieldType::Blob,
];

fn built(f: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
    let mut b = BytesMut::new();
    f(&mut b);
    b.to_vec()
}

/// Frames `data` under `limit` and runs every parser on each payload.
fn run(data: &[u8], limit: usize, ctx: u8) {
    let mut rest = data;
    while let Ok(Some(framed)) = codec::frame(rest, limit) {
        assert!(framed.len <= rest.len() && framed.len >= codec::HEADER_LEN);
        assert!(
            framed.payload_len <= limit,
            "{} > {limit}",
            framed.payload_len
        );
        let payload = codec::payload(&rest[..framed.len]);
        assert_eq!(payload.len(), framed.payload_len);
        parsers(&payload, ctx);
        rest = &rest[framed.len..];
    }
}

fn parsers(p: &[u8], ctx: u8) {
    connection_phase(p);
    replies(p, ctx);
    rows(p, ctx);
    statements(p, ctx);
    let _ = codec::parse_command(p);
    let mut q = p;
    if let Ok(v) = codec::get_lenenc_int(&mut q) {
        let b = built(|o| codec::put_lenenc_int(o, v));
        assert_eq!(codec::get_lenenc_int(&mut b.as_slice()), Ok(v));
        assert!(q.len() < p.len());
    }
    let mut q = p;
    if let Ok(s) = codec::get_lenenc_bytes(&mut q) {
        assert!(s.len() < p.len() && q.len() + s.len() < p.len());
    }
}

fn connection_phase(p: &[u8]) {
    if let Ok(g) = codec::parse_greeting(p) {
        assert!(g.nonce.len() >= 8 && g.nonce.len() <= p.len());
        let mut b = BytesMut::new();
        if codec::build_greeting(&mut b, &g).is_ok() {
            assert_eq!(codec::parse_greeting(&b), Ok(g));
        }
    }
    match codec::parse_client_hello(p) {
        Ok(ClientHello::Ssl(s)) => {
            assert_eq!(p.len(), codec::SSL_REQUEST_LEN);
            let b = built(|o| codec::build_ssl_request(o, &s));
            assert_eq!(codec::parse_client_hello(&b), Ok(ClientHello::Ssl(s)));
        }
        Ok(ClientHello::Response(r)) => {
            assert!(r.auth_response.len() <= p.len());
            // Whatever parsed can be written in the same encodings.
            let b = built(|o| codec::build_handshake_response(o, &r).expect("rebuilds"));
            assert_eq!(codec::parse_client_hello(&b), Ok(ClientHello::Response(r)));
        }
        Err(_) => {}
    }
    if let Ok(a) = codec::parse_auth_switch_request(p) {
        let b = built(|o| codec::build_auth_switch_request(o, &a));
        assert_eq!(codec::parse_auth_switch_request(&b), Ok(a));
    }
    if let Ok(d) = codec::parse_auth_more_data(p) {
        assert_eq!(d.len() + 1, p.len());
    }
}

fn replies(p: &[u8], ctx: u8) {
    let caps = [
        0,
        codec::CLIENT_PROTOCOL_41,
        codec::CLIENT_TRANSACTIONS,
        codec::CLIENT_PROTOCOL_41 | codec::CLIENT_SESSION_TRACK | codec::CLIENT_DEPRECATE_EOF,
    ][usize::from(ctx >> 6)];
    if let Ok(ok) = codec::parse_ok(p, caps) {
        let b = built(|o| codec::build_ok(o, &ok, caps));
        assert_eq!(codec::parse_ok(&b, caps), Ok(ok));
    }
    if let Ok(e) = codec::parse_err(p) {
        let state = e.sql_state.clone().unwrap_or_default();
        let b = built(|o| codec::build_err(o, e.code, &state, &e.message));
        let back = codec::parse_err(&b).expect("rebuilt ERR parses");
        assert_eq!(back.code, e.code);
        if state.len() == 5 && state.bytes().all(|c| c.is_ascii_alphanumeric()) {
            assert_eq!(back, e);
        }
    }
    if let Ok(eof) = codec::parse_eof(p) {
        assert!(codec::is_eof(p) && codec::is_result_end(p, 0));
        assert_eq!(built(|o| codec::build_eof(o, &eof)), p);
    }
    if let Ok((n, meta)) = codec::parse_column_count(p, caps) {
        assert!((1..=codec::MAX_COLUMNS).contains(&n));
        let b = built(|o| codec::build_column_count(o, n, meta, caps));
        assert_eq!(codec::parse_column_count(&b, caps), Ok((n, meta)));
    }
    if let Ok(c) = codec::parse_column_definition(p) {
        let b = built(|o| codec::build_column_definition(o, &c));
        assert_eq!(codec::parse_column_definition(&b), Ok(c));
    }
}

fn types(ctx: u8, n: usize) -> Vec<BinaryType> {
    (0..n)
        .map(|i| {
            let k = usize::from(ctx).wrapping_add(i * 7);
            BinaryType::new(TYPES[k % TYPES.len()], k & 16 != 0)
        })
        .collect()
}

fn rows(p: &[u8], ctx: u8) {
    let n = usize::from(ctx & 7) + 1;
    if let Ok(values) = codec::parse_text_row(p, n) {
        assert_eq!(values.len(), n);
        let bytes: usize = values.iter().flatten().map(|v| v.len()).sum();
        assert!(bytes + n <= p.len());
        let b = built(|o| codec::build_text_row(o, &values));
        assert_eq!(codec::parse_text_row(&b, n), Ok(values));
    }
    let cols = types(ctx, n);
    if let Ok(values) = codec::parse_binary_row(p, &cols) {
        assert_eq!(values.len(), n);
        // Compared as bytes: a NaN is not equal to itself.
        let b = built(|o| codec::build_binary_row(o, &cols, &values).expect("rebuilds"));
        let back = codec::parse_binary_row(&b, &cols).expect("rebuilt row parses");
        let b2 = built(|o| codec::build_binary_row(o, &cols, &back).expect("rebuilds"));
        assert_eq!(b, b2);
        assert!(
            b.len() <= p.len(),
            "dates and times take their shortest form"
        );
    }
}

fn statements(p: &[u8], ctx: u8) {
    if let Ok(ok) = codec::parse_prepare_ok(p) {
        let b = built(|o| codec::build_prepare_ok(o, &ok));
        assert_eq!(codec::parse_prepare_ok(&b), Ok(ok));
    }
    let n = usize::from(ctx & 3);
    let previous = types(ctx, n);
    let long_data = [1u16];
    let ctx = ExecuteContext {
        param_count: n,
        previous_types: (ctx & 4 != 0).then_some(previous.as_slice()),
        long_data: if ctx & 8 != 0 { &long_data } else { &[] },
        query_attributes: ctx & 32 != 0,
    };
    if let Ok(exe) = codec::parse_stmt_execute(p, &ctx) {
        assert!(exe.params.len() >= n && exe.params.len() == exe.types.len());
        let b =
            built(|o| codec::build_stmt_execute(o, &exe, ctx.query_attributes).expect("rebuilds"));
        // With the types it was read with (they may have come from the packet).
        let rebuilt_ctx = ExecuteContext {
            previous_types: Some(&exe.types),
            ..ctx
        };
        let back = codec::parse_stmt_execute(&b, &rebuilt_ctx).expect("rebuilt execute parses");
        let b2 =
            built(|o| codec::build_stmt_execute(o, &back, ctx.query_attributes).expect("rebuilds"));
        assert_eq!(b, b2);
    }
    let _ = codec::parse_stmt_id(p);
    if let Ok(d) = codec::parse_send_long_data(p) {
        assert_eq!(d.data.len() + 7, p.len());
    }
}

/// Checks one input (see the module docs for its layout).
pub fn check(data: &[u8]) {
    let Some((&l, rest)) = data.split_first() else {
        return;
    };
    let Some((&ctx, rest)) = rest.split_first() else {
        return;
    };
    // A small limit chosen by the input, so `TooLarge` is reached often,
    // and the 64 KiB handshake limit.
    run(rest, usize::from(l) * 4, ctx);
    run(rest, 64 * 1024, ctx);
    parsers(rest, ctx);
}
