//! `upstream::login` against scripted servers, for what the local MariaDB
//! cannot show: `caching_sha2_password` (MySQL 8's default), auth switches
//! in both directions, full authentication without TLS, plugins Gatehouse
//! does not speak, and a server that echoes the password.
//!
//! The script checks each scramble as a server does: from the stored
//! double hash it recovers the password's hash and hashes it again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

use bytes::BytesMut;
use gatehouse_core::secret::Secret;
use gatehouse_mysql::codec::{
    self, AuthSwitchRequest, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS,
    CLIENT_MULTI_STATEMENTS, CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_PS_MULTI_RESULTS,
    CLIENT_SECURE_CONNECTION, CLIENT_SSL, CLIENT_TRANSACTIONS, ClientHello, Greeting,
    HandshakeResponse, OkPacket,
};
use gatehouse_mysql::stream::{read_packet, write_packet};
use gatehouse_mysql::upstream::{self, ConnectOptions, Upstream, UpstreamError};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::DuplexStream;

const PASSWORD: &str = "Stored-Cred3ntial";
const NONCE1: &[u8; 20] = b"N1n1N1n1N1n1N1n1N1n1";
const NONCE2: &[u8; 20] = b"N2n2N2n2N2n2N2n2N2n2";

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Checks a `caching_sha2_password` scramble as MySQL does.
fn sha2_ok(scramble: &[u8], nonce: &[u8]) -> bool {
    let stored = Sha256::digest(Sha256::digest(PASSWORD.as_bytes()));
    let mask = Sha256::new()
        .chain_update(stored)
        .chain_update(nonce)
        .finalize();
    scramble.len() == 32 && Sha256::digest(xor(scramble, &mask)) == stored
}

/// Checks a `mysql_native_password` scramble as MySQL does.
fn native_ok(scramble: &[u8], nonce: &[u8]) -> bool {
    let stored = Sha1::digest(Sha1::digest(PASSWORD.as_bytes()));
    let mask = Sha1::new()
        .chain_update(nonce)
        .chain_update(stored)
        .finalize();
    scramble.len() == 20 && Sha1::digest(xor(scramble, &mask)) == stored
}

struct Script {
    io: DuplexStream,
    seq: u8,
}

impl Script {
    async fn greet(&mut self, plugin: Option<&str>, caps: u32) {
        let g = Greeting {
            server_version: "8.0.36".into(),
            connection_id: 99,
            nonce: NONCE1.to_vec(),
            capabilities: caps,
            charset: 255,
            status: 2,
            mariadb_capabilities: 0,
            auth_plugin: plugin.map(str::to_string),
        };
        let mut out = BytesMut::new();
        codec::build_greeting(&mut out, &g).unwrap();
        self.seq = write_packet(&mut self.io, 0, &out).await.unwrap();
    }

    async fn read(&mut self) -> Option<Vec<u8>> {
        let p = read_packet(&mut self.io, 1 << 16).await.ok()?;
        assert_eq!(p.seq, self.seq, "client packets in sequence");
        self.seq = p.next_seq();
        Some(p.payload.to_vec())
    }

    async fn response(&mut self) -> HandshakeResponse {
        match codec::parse_client_hello(&self.read().await.unwrap()).unwrap() {
            ClientHello::Response(r) => *r,
            ClientHello::Ssl(_) => panic!("no TLS in these scripts"),
        }
    }

    async fn send(&mut self, payload: &[u8]) {
        self.seq = write_packet(&mut self.io, self.seq, payload).await.unwrap();
    }

    async fn switch(&mut self, plugin: &str, nonce: &[u8]) {
        let mut data = nonce.to_vec();
        data.push(0);
        let mut out = BytesMut::new();
        codec::build_auth_switch_request(
            &mut out,
            &AuthSwitchRequest {
                plugin: plugin.into(),
                data,
            },
        );
        self.send(&out).await;
    }

    async fn ok(&mut self) {
        let mut out = BytesMut::new();
        codec::build_ok(
            &mut out,
            &OkPacket {
                status: 2,
                ..OkPacket::default()
            },
            CLIENT_PROTOCOL_41,
        );
        self.send(&out).await;
    }

    async fn err(&mut self, code: u16, message: &str) {
        let mut out = BytesMut::new();
        codec::build_err(&mut out, code, "28000", message);
        self.send(&out).await;
    }
}

const SERVER_CAPS: u32 = 0xdfff_f7ff & !CLIENT_SSL;

/// Runs `script` as the server and `upstream::login` as the client.
async fn scripted<F, Fut>(
    options: ConnectOptions,
    script: F,
) -> Result<Upstream<DuplexStream>, UpstreamError>
where
    F: FnOnce(Script) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(script(Script { io: a, seq: 0 }));
    let result = upstream::login(b, "app", &Secret::new(PASSWORD), None, &options).await;
    server.await.expect("the script's checks");
    result
}

fn with_db(extra: u32) -> ConnectOptions {
    ConnectOptions {
        database: Some("shop".into()),
        capabilities: ConnectOptions::default().capabilities | extra,
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn caching_sha2_fast_path_and_the_capabilities_sent() {
    for extra in [0, CLIENT_DEPRECATE_EOF] {
        let up = scripted(with_db(extra), move |mut s| async move {
            s.greet(Some("caching_sha2_password"), SERVER_CAPS).await;
            let r = s.response().await;
            assert_eq!(r.user, "app");
            assert_eq!(r.database.as_deref(), Some("shop"));
            assert_eq!(r.auth_plugin.as_deref(), Some("caching_sha2_password"));
            assert!(sha2_ok(&r.auth_response, NONCE1), "fast-path scramble");
            let required = CLIENT_PROTOCOL_41
                | CLIENT_SECURE_CONNECTION
                | CLIENT_PLUGIN_AUTH
                | CLIENT_TRANSACTIONS
                | CLIENT_MULTI_STATEMENTS
                | CLIENT_MULTI_RESULTS
                | CLIENT_PS_MULTI_RESULTS
                | CLIENT_CONNECT_WITH_DB;
            assert_eq!(r.capabilities & required, required);
            assert_eq!(r.capabilities & CLIENT_DEPRECATE_EOF, extra);
            assert_eq!(r.capabilities & CLIENT_SSL, 0);
            s.send(&[0x01, 0x03]).await; // fast auth success
            s.ok().await;
        })
        .await
        .expect("login");
        assert_eq!(up.auth_plugin, "caching_sha2_password");
        assert_eq!(
            (up.connection_id, up.server_version.as_str()),
            (99, "8.0.36")
        );
        assert_eq!(up.capabilities & CLIENT_DEPRECATE_EOF, extra);
        assert_eq!(up.seq, 4);
    }
    // No database: no CLIENT_CONNECT_WITH_DB.
    scripted(ConnectOptions::default(), |mut s| async move {
        s.greet(Some("caching_sha2_password"), SERVER_CAPS).await;
        let r = s.response().await;
        assert_eq!(r.capabilities & CLIENT_CONNECT_WITH_DB, 0);
        assert_eq!(r.database, None);
        s.ok().await;
    })
    .await
    .expect("login");
}

#[tokio::test]
async fn switches_between_native_and_caching_sha2() {
    let up = scripted(with_db(0), |mut s| async move {
        s.greet(Some("mysql_native_password"), SERVER_CAPS).await;
        let r = s.response().await;
        assert!(native_ok(&r.auth_response, NONCE1));
        s.switch("caching_sha2_password", NONCE2).await;
        let scramble = s.read().await.unwrap();
        assert!(sha2_ok(&scramble, NONCE2), "scrambled with the new nonce");
        s.send(&[0x01, 0x03]).await;
        s.ok().await;
    })
    .await
    .expect("login");
    assert_eq!(up.auth_plugin, "caching_sha2_password");

    let up = scripted(with_db(0), |mut s| async move {
        s.greet(Some("caching_sha2_password"), SERVER_CAPS).await;
        s.response().await;
        s.switch("mysql_native_password", NONCE2).await;
        let scramble = s.read().await.unwrap();
        assert!(native_ok(&scramble, NONCE2));
        s.ok().await;
    })
    .await
    .expect("login");
    assert_eq!(up.auth_plugin, "mysql_native_password");

    // A server whose default plugin we don't speak: answer natively.
    scripted(with_db(0), |mut s| async move {
        s.greet(Some("sha256_password"), SERVER_CAPS).await;
        let r = s.response().await;
        assert_eq!(r.auth_plugin.as_deref(), Some("mysql_native_password"));
        assert!(native_ok(&r.auth_response, NONCE1));
        s.ok().await;
    })
    .await
    .expect("login");
}

#[tokio::test]
async fn full_authentication_without_tls_sends_no_password() {
    let e = scripted(with_db(0), |mut s| async move {
        s.greet(Some("caching_sha2_password"), SERVER_CAPS).await;
        s.response().await;
        s.send(&[0x01, 0x04]).await; // perform full authentication
        // The client hangs up without sending anything.
        assert_eq!(s.read().await, None);
    })
    .await
    .expect_err("refused");
    assert!(matches!(e, UpstreamError::FullAuthNeedsTls), "{e}");
    assert!(e.to_string().contains("only over TLS"), "{e}");

    let e = scripted(with_db(0), |mut s| async move {
        s.greet(Some("mysql_native_password"), SERVER_CAPS).await;
        s.response().await;
        s.switch("mysql_clear_password", NONCE2).await;
        assert_eq!(s.read().await, None);
    })
    .await
    .expect_err("refused");
    assert!(matches!(e, UpstreamError::ClearNeedsTls), "{e}");
}

#[tokio::test]
async fn refusals_and_unsupported_servers() {
    // A server that echoes the password in its error: blanked.
    let e = scripted(with_db(0), |mut s| async move {
        s.greet(Some("mysql_native_password"), SERVER_CAPS).await;
        s.response().await;
        s.err(1045, &format!("Access denied (you sent {PASSWORD})"))
            .await;
    })
    .await
    .expect_err("refused");
    assert_eq!(e.code(), Some(1045));
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains(PASSWORD) && shown.contains("[redacted]"),
        "{shown}"
    );

    let e = scripted(with_db(0), |mut s| async move {
        s.greet(Some("mysql_native_password"), SERVER_CAPS).await;
        s.response().await;
        s.switch("client_ed25519", NONCE2).await;
        assert_eq!(s.read().await, None);
    })
    .await
    .expect_err("unsupported");
    assert!(
        matches!(&e, UpstreamError::UnsupportedAuth(p) if p == "client_ed25519"),
        "{e}"
    );

    // An ERR instead of a greeting (e.g. too many connections).
    let e = scripted(with_db(0), |mut s| async move {
        s.seq = 0;
        s.err(1040, "Too many connections").await;
    })
    .await
    .expect_err("refused");
    assert_eq!(e.code(), Some(1040));

    // No pluggable authentication.
    let e = scripted(with_db(0), |mut s| async move {
        s.greet(None, SERVER_CAPS & !CLIENT_PLUGIN_AUTH).await;
        assert_eq!(s.read().await, None);
    })
    .await
    .expect_err("unsupported");
    assert!(matches!(e, UpstreamError::Unsupported(_)), "{e}");

    // A second switch is a protocol error.
    let e = scripted(with_db(0), |mut s| async move {
        s.greet(Some("mysql_native_password"), SERVER_CAPS).await;
        s.response().await;
        s.switch("mysql_native_password", NONCE2).await;
        s.read().await.unwrap();
        s.switch("mysql_native_password", NONCE1).await;
        assert_eq!(s.read().await, None);
    })
    .await
    .expect_err("refused");
    assert!(matches!(e, UpstreamError::Protocol(_)), "{e}");
}
