//! The codec on real traffic: a session of mysql-connector-python with
//! MariaDB 10.11 (login, a text query of several types, an error, and a
//! prepared statement executed in the binary protocol), recorded in both
//! directions as the `mysql_packets` fuzz seeds. The replies are read the
//! way a client reads them: per command, with what earlier packets said.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gatehouse_mysql::codec::{
    self, BinaryType, CLIENT_DEPRECATE_EOF, ClientHello, ColumnDefinition, Command, ExecuteContext,
    FieldType, Value,
};

fn seed(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/mysql_packets")
        .join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The fuzz input starts with a limit byte and a context byte.
    bytes[2..].to_vec()
}

/// Every packet of a recorded stream, as payloads.
fn packets(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let f = codec::frame(stream, 1 << 20)
            .expect("valid framing")
            .expect("whole packets");
        out.push(codec::payload(&stream[..f.len]).into_owned());
        stream = &stream[f.len..];
    }
    out
}

struct Replies {
    packets: std::vec::IntoIter<Vec<u8>>,
    caps: u32,
}

impl Replies {
    fn next(&mut self) -> Vec<u8> {
        self.packets.next().expect("a reply")
    }

    fn columns(&mut self, n: usize) -> Vec<ColumnDefinition> {
        let cols: Vec<_> = (0..n)
            .map(|_| codec::parse_column_definition(&self.next()).expect("column definition"))
            .collect();
        if self.caps & CLIENT_DEPRECATE_EOF == 0 {
            codec::parse_eof(&self.next()).expect("EOF after columns");
        }
        cols
    }

    fn rows_end(&mut self, p: &[u8]) -> bool {
        if !codec::is_result_end(p, self.caps) {
            return false;
        }
        if self.caps & CLIENT_DEPRECATE_EOF != 0 {
            codec::parse_ok(p, self.caps).expect("OK ends rows");
        } else {
            codec::parse_eof(p).expect("EOF ends rows");
        }
        true
    }
}

#[test]
fn a_recorded_session_parses_packet_by_packet() {
    let client = packets(&seed("seed-real-client-to-mariadb"));
    let server = packets(&seed("seed-real-mariadb-to-client"));

    let greeting = codec::parse_greeting(&server[0]).expect("greeting");
    assert!(greeting.server_version.contains("MariaDB"));
    assert_eq!(greeting.nonce.len(), 20);
    let Ok(ClientHello::Response(login)) = codec::parse_client_hello(&client[0]) else {
        panic!("a handshake response");
    };
    assert_eq!(login.user, "gh_mysql_test");
    assert_eq!(login.database.as_deref(), Some("test"));
    assert_eq!(login.auth_plugin.as_deref(), Some("mysql_native_password"));
    assert_eq!(login.auth_response.len(), 20);
    assert!(login.connect_attrs.iter().any(|(k, _)| k == "_client_name"));
    let caps = login.capabilities & greeting.capabilities;
    codec::parse_ok(&server[1], caps).expect("login OK");

    let mut server = server;
    let replies_left = server.split_off(2);
    let mut replies = Replies {
        packets: replies_left.into_iter(),
        caps,
    };
    let (mut text_rows, mut binary_rows, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut prepared: Option<(u32, usize, Vec<BinaryType>)> = None;
    for cmd in &client[1..] {
        let (command, body) = codec::parse_command(cmd).expect("command");
        match command {
            Command::Query => {
                let p = replies.next();
                if codec::is_err(&p) {
                    errors.push(codec::parse_err(&p).expect("ERR"));
                    continue;
                }
                if p[0] == 0 {
                    codec::parse_ok(&p, caps).expect("OK");
                    continue;
                }
                let (n, _) = codec::parse_column_count(&p, caps).expect("column count");
                let cols = replies.columns(n);
                loop {
                    let p = replies.next();
                    if replies.rows_end(&p) {
                        break;
                    }
                    let row = codec::parse_text_row(&p, cols.len()).expect("text row");
                    text_rows.push((
                        cols.clone(),
                        row.iter()
                            .map(|v| v.map(<[u8]>::to_vec))
                            .collect::<Vec<_>>(),
                    ));
                }
            }
            Command::StmtPrepare => {
                assert!(body.starts_with(b"SELECT ?"));
                let ok = codec::parse_prepare_ok(&replies.next()).expect("prepare OK");
                let params = replies.columns(usize::from(ok.params));
                assert_eq!(params.len(), 3);
                let cols = replies.columns(usize::from(ok.columns));
                let types = cols.iter().map(ColumnDefinition::binary_type).collect();
                prepared = Some((ok.statement_id, usize::from(ok.params), types));
            }
            Command::StmtExecute => {
                let (id, param_count, _) = prepared.clone().expect("prepared first");
                let ctx = ExecuteContext {
                    param_count,
                    ..ExecuteContext::default()
                };
                let exe = codec::parse_stmt_execute(cmd, &ctx).expect("COM_STMT_EXECUTE");
                assert_eq!(exe.statement_id, id);
                assert!(exe.types_sent);
                // The connector binds a small Python int ≥ 0 as an unsigned TINY.
                assert_eq!(exe.types[0], BinaryType::new(FieldType::Tiny, true));
                assert_eq!(exe.params[0], Value::UInt(1));
                assert_eq!(exe.params[1], Value::Bytes(b"abc"));
                assert_eq!(exe.params[2], Value::Null);
                let (n, _) = codec::parse_column_count(&replies.next(), caps).expect("count");
                let cols = replies.columns(n);
                let types: Vec<BinaryType> =
                    cols.iter().map(ColumnDefinition::binary_type).collect();
                loop {
                    let p = replies.next();
                    if replies.rows_end(&p) {
                        break;
                    }
                    let row = codec::parse_binary_row(&p, &types).expect("binary row");
                    binary_rows.push((cols.clone(), format!("{row:?}")));
                }
            }
            Command::Ping => {
                codec::parse_ok(&replies.next(), caps).expect("OK to a ping");
            }
            Command::StmtReset => {
                assert_eq!(
                    codec::parse_stmt_id(cmd).map(|(_, id)| Some(id)),
                    Ok(prepared.as_ref().map(|p| p.0))
                );
                codec::parse_ok(&replies.next(), caps).expect("OK to a reset");
            }
            Command::StmtClose | Command::Quit => {}
            other => panic!("unexpected command {other:?}"),
        }
    }
    assert!(replies.packets.next().is_none(), "every reply was read");

    // The text query: 7 columns, one row, NULL in the second.
    let (cols, row) = text_rows
        .iter()
        .find(|(c, _)| c.len() == 7)
        .expect("the typed query");
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["one", "n", "s", "dt", "t", "d", "f"]);
    assert_eq!(row[0].as_deref(), Some(&b"1"[..]));
    assert_eq!(row[1], None);
    assert_eq!(row[3].as_deref(), Some(&b"2026-11-29 13:04:59.123456"[..]));
    assert_eq!(row[4].as_deref(), Some(&b"-38:04:05"[..]));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, 1146);
    assert_eq!(errors[0].sql_state.as_deref(), Some("42S02"));

    // The prepared statement's binary row, value by value.
    assert_eq!(binary_rows.len(), 1);
    let (cols, row) = &binary_rows[0];
    assert_eq!(cols[3].column_type, FieldType::Date.code());
    // MariaDB types `CAST(7 AS UNSIGNED)` as INT UNSIGNED (LONG).
    assert_eq!(
        cols[7].binary_type(),
        BinaryType::new(FieldType::Long, true)
    );
    let expected = [
        "UInt(1)",
        "Bytes([97, 98, 99])",
        "Null",
        "DateTime(DateTime { year: 2026, month: 2, day: 3, hour: 0, minute: 0, second: 0, micros: 0 })",
        "DateTime(DateTime { year: 2026, month: 11, day: 29, hour: 13, minute: 4, second: 59, micros: 123456 })",
        // -38:04:05.5
        "Time(Time { negative: true, days: 1, hours: 14, minutes: 4, seconds: 5, micros: 500000 })",
        "Bytes([50, 46, 50, 53])",
        "UInt(7)",
        "Double(1.5e300)",
    ];
    assert_eq!(*row, format!("[{}]", expected.join(", ")));
}
