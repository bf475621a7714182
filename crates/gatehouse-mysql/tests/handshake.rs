//! `handshake::accept` in process: against Gatehouse's own upstream client
//! (`upstream::login`) over an in-memory pipe, with and without TLS, and
//! against a hand-driven client for the exchanges no library takes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::BytesMut;
use gatehouse_core::secret::Secret;
use gatehouse_mysql::codec::{
    self, CLIENT_CONNECT_WITH_DB, CLIENT_PLUGIN_AUTH, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION,
    CLIENT_SSL, ClientHello, HandshakeResponse,
};
use gatehouse_mysql::handshake::{
    self, ClientLogin, HandshakeConfig, HandshakeError, PasswordExchange, PasswordMethod,
};
use gatehouse_mysql::scramble;
use gatehouse_mysql::stream::{read_packet, write_packet};
use gatehouse_mysql::upstream::{self, ConnectOptions, Upstream, UpstreamError, UpstreamTls};
use tokio::io::{AsyncWriteExt, DuplexStream};
use zeroize::Zeroizing;

const TOKEN: &str = "ghp_tok-3f9a1c";

fn config(
    tls: bool,
    exchange: PasswordExchange,
    plaintext: bool,
) -> (HandshakeConfig, Option<UpstreamTls>) {
    let t = common::tls();
    let mut c = HandshakeConfig::new(tls.then(|| t.acceptor.clone()));
    c.exchange = exchange;
    c.allow_plaintext_password = plaintext;
    let client_tls = tls.then(|| UpstreamTls {
        connector: t.connector.clone(),
        server_name: t.server_name.clone(),
        required: true,
    });
    (c, client_tls)
}

fn options() -> ConnectOptions {
    ConnectOptions {
        database: Some("shop".into()),
        connect_attrs: vec![("program_name".into(), "handshake-test".into())],
        ..ConnectOptions::default()
    }
}

/// Runs the handshake on one end of a pipe and `upstream::login` on the
/// other; the server answers OK, or denies with `deny`.
async fn pair(
    config: HandshakeConfig,
    client_tls: Option<UpstreamTls>,
    password: &str,
    deny: Option<&'static str>,
) -> (
    Result<ClientLogin<DuplexStream>, HandshakeError>,
    Result<Upstream<DuplexStream>, UpstreamError>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut login = handshake::accept(a, &config).await?;
        match deny {
            None => login.send_ok().await?,
            Some(reason) => login.deny(reason).await?,
        }
        Ok(login)
    });
    let client = upstream::login(
        b,
        "bot",
        &Secret::new(password),
        client_tls.as_ref(),
        &options(),
    )
    .await;
    let server = server.await.expect("server task");
    (server, client)
}

#[tokio::test]
async fn tls_and_caching_sha2_full_authentication() {
    let (c, t) = config(true, PasswordExchange::Auto, false);
    let (server, client) = pair(c, t, TOKEN, None).await;
    let login = server.expect("handshake");
    assert_eq!(login.password.expose(), TOKEN);
    assert_eq!(login.method, PasswordMethod::CachingSha2Full);
    assert_eq!(login.user, "bot");
    assert_eq!(login.database.as_deref(), Some("shop"));
    assert_eq!(
        login.client_plugin.as_deref(),
        Some("caching_sha2_password")
    );
    assert!(login.is_tls());
    assert!(login.capabilities & CLIENT_SSL != 0);
    assert!(
        login
            .connect_attrs
            .contains(&("program_name".into(), "handshake-test".into()))
    );
    let up = client.expect("client logged in");
    assert!(up.stream.is_tls());
    assert_eq!(up.auth_plugin, "caching_sha2_password");
    assert_eq!(up.server_version, handshake::DEFAULT_SERVER_VERSION);
    // Nothing shows the password.
    assert!(!format!("{login:?}").contains(TOKEN));
}

#[tokio::test]
async fn tls_and_a_switch_to_mysql_clear_password() {
    let (c, t) = config(true, PasswordExchange::ClearPassword, false);
    let (server, client) = pair(c, t, TOKEN, None).await;
    let login = server.expect("handshake");
    assert_eq!(login.password.expose(), TOKEN);
    assert_eq!(login.method, PasswordMethod::ClearPasswordSwitch);
    assert_eq!(
        login.client_plugin.as_deref(),
        Some("mysql_native_password")
    );
    assert_eq!(client.expect("client").auth_plugin, "mysql_clear_password");
}

#[tokio::test]
async fn a_denied_login_reaches_the_client_as_1045_without_the_token() {
    let (c, t) = config(true, PasswordExchange::Auto, false);
    let (server, client) = pair(c, t, TOKEN, Some("the token has expired")).await;
    assert!(server.is_ok());
    let e = client.expect_err("denied");
    assert_eq!(e.code(), Some(1045));
    let shown = e.to_string();
    assert!(
        shown.contains("Access denied for user 'bot': the token has expired"),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN));
}

#[tokio::test]
async fn an_empty_password_needs_no_exchange() {
    let (c, t) = config(true, PasswordExchange::Auto, false);
    let (server, client) = pair(c, t, "", None).await;
    let login = server.expect("handshake");
    assert!(login.password.is_empty());
    assert_eq!(login.method, PasswordMethod::Empty);
    assert!(client.is_ok());
}

#[tokio::test]
async fn plain_tcp_is_refused_unless_allowed() {
    let (c, t) = config(false, PasswordExchange::Auto, false);
    let (server, client) = pair(c, t, TOKEN, None).await;
    assert!(
        matches!(server, Err(HandshakeError::TlsRequired)),
        "{server:?}"
    );
    let e = client.expect_err("refused");
    assert_eq!(
        e.code(),
        Some(handshake::ER_SECURE_TRANSPORT_REQUIRED),
        "{e}"
    );
    assert!(e.to_string().contains("requires TLS"), "{e}");
    // TLS offered but the client stays in plain TCP: the same.
    let (c, _) = config(true, PasswordExchange::Auto, false);
    let (server, client) = pair(c, None, TOKEN, None).await;
    assert!(
        matches!(server, Err(HandshakeError::TlsRequired)),
        "{server:?}"
    );
    assert_eq!(client.expect_err("refused").code(), Some(3159));
}

#[tokio::test]
async fn gatehouse_own_client_sends_no_password_in_clear_without_tls() {
    // Allowed in plain TCP, Gatehouse's server asks for the clear password;
    // Gatehouse's client refuses and hangs up.
    let (c, t) = config(false, PasswordExchange::Auto, true);
    let (server, client) = pair(c, t, TOKEN, None).await;
    assert!(
        matches!(client, Err(UpstreamError::ClearNeedsTls)),
        "{client:?}"
    );
    assert!(
        matches!(
            server,
            Err(HandshakeError::ClientRefused("mysql_clear_password"))
        ),
        "{server:?}"
    );
    let (c, t) = config(false, PasswordExchange::CachingSha2, true);
    let (server, client) = pair(c, t, TOKEN, None).await;
    assert!(
        matches!(client, Err(UpstreamError::FullAuthNeedsTls)),
        "{client:?}"
    );
    assert!(
        matches!(server, Err(HandshakeError::ClientRefused(_))),
        "{server:?}"
    );
}

// === a hand-driven client ===

/// Reads the greeting and sends a HandshakeResponse answering with `plugin`.
async fn hand_login(io: &mut DuplexStream, plugin: &str, auth: &[u8]) -> u8 {
    let hello = read_packet(io, 1 << 16).await.expect("greeting");
    let g = codec::parse_greeting(&hello.payload).expect("greeting parses");
    assert_eq!(g.nonce.len(), 20);
    assert!(!g.nonce.contains(&0) && !g.nonce.contains(&b'$'));
    let r = HandshakeResponse {
        capabilities: CLIENT_PROTOCOL_41
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH
            | CLIENT_CONNECT_WITH_DB,
        max_packet: 1 << 24,
        charset: 45,
        mariadb_capabilities: 0,
        user: "hand".into(),
        auth_response: Zeroizing::new(auth.to_vec()),
        database: None,
        auth_plugin: Some(plugin.into()),
        connect_attrs: Vec::new(),
        zstd_level: None,
    };
    let mut out = BytesMut::new();
    codec::build_handshake_response(&mut out, &r).expect("builds");
    write_packet(io, 1, &out).await.expect("write")
}

fn plain_config(exchange: PasswordExchange) -> HandshakeConfig {
    let mut c = HandshakeConfig::new(None);
    c.exchange = exchange;
    c.allow_plaintext_password = true;
    c
}

#[tokio::test]
async fn a_client_answering_natively_is_switched_to_caching_sha2() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::CachingSha2);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    let mut seq = hand_login(&mut b, "mysql_native_password", &[1; 20]).await;
    let switch = read_packet(&mut b, 1 << 16).await.expect("switch");
    assert_eq!(switch.seq, seq);
    let req = codec::parse_auth_switch_request(&switch.payload).expect("switch parses");
    assert_eq!(req.plugin, "caching_sha2_password");
    let scramble = scramble::caching_sha2(TOKEN.as_bytes(), req.nonce());
    seq = write_packet(&mut b, switch.next_seq(), &scramble)
        .await
        .expect("write");
    let more = read_packet(&mut b, 1 << 16).await.expect("more data");
    assert_eq!(more.seq, seq);
    assert_eq!(codec::parse_auth_more_data(&more.payload), Ok(&[4u8][..]));
    let pw = format!("{TOKEN}\0");
    write_packet(&mut b, more.next_seq(), pw.as_bytes())
        .await
        .expect("write");
    let login = server.await.expect("task").expect("handshake");
    assert_eq!(login.password.expose(), TOKEN);
    assert_eq!(login.method, PasswordMethod::CachingSha2Full);
    assert_eq!(login.seq, more.next_seq().wrapping_add(1));
}

#[tokio::test]
async fn a_public_key_request_is_refused_with_an_err() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::CachingSha2);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    hand_login(&mut b, "caching_sha2_password", &[1; 32]).await;
    let more = read_packet(&mut b, 1 << 16).await.expect("more data");
    assert_eq!(codec::parse_auth_more_data(&more.payload), Ok(&[4u8][..]));
    write_packet(&mut b, more.next_seq(), &[2])
        .await
        .expect("write");
    let err = read_packet(&mut b, 1 << 16).await.expect("err");
    let e = codec::parse_err(&err.payload).expect("an ERR");
    assert_eq!(e.code, 3159);
    assert!(e.message.contains("only over TLS"), "{}", e.message);
    assert!(matches!(
        server.await.expect("task"),
        Err(HandshakeError::PublicKeyRequested)
    ));
}

#[tokio::test]
async fn a_client_that_logs_in_with_mysql_clear_password_needs_no_switch() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::Auto);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    let pw = format!("{TOKEN}\0");
    hand_login(&mut b, "mysql_clear_password", pw.as_bytes()).await;
    let login = server.await.expect("task").expect("handshake");
    assert_eq!(login.password.expose(), TOKEN);
    assert_eq!(login.method, PasswordMethod::ClearPasswordInResponse);
    assert_eq!(login.seq, 2);
}

#[tokio::test]
async fn a_password_that_is_not_utf8_is_refused() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::ClearPassword);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    hand_login(&mut b, "mysql_native_password", &[1; 20]).await;
    let switch = read_packet(&mut b, 1 << 16).await.expect("switch");
    write_packet(&mut b, switch.next_seq(), b"\xff\xfe\0")
        .await
        .expect("write");
    assert!(matches!(
        server.await.expect("task"),
        Err(HandshakeError::PasswordNotUtf8)
    ));
}

#[tokio::test]
async fn oversized_malformed_and_out_of_order_packets_are_refused() {
    // A header claiming 1 MiB, over the 64 KiB limit: refused from the header.
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::Auto);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    read_packet(&mut b, 1 << 16).await.expect("greeting");
    b.write_all(&[0, 0, 0x10, 1]).await.expect("write");
    let e = server.await.expect("task").expect_err("too large");
    assert!(
        matches!(
            e,
            HandshakeError::Protocol(codec::CodecError::TooLarge { .. })
        ),
        "{e}"
    );

    // A malformed response: the client is told, then dropped.
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::Auto);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    read_packet(&mut b, 1 << 16).await.expect("greeting");
    write_packet(&mut b, 1, &[0xff; 40]).await.expect("write");
    let err = read_packet(&mut b, 1 << 16).await.expect("an answer");
    assert_eq!(codec::parse_err(&err.payload).map(|e| e.code), Ok(1043));
    assert!(matches!(
        server.await.expect("task"),
        Err(HandshakeError::Protocol(_))
    ));

    // The response with sequence id 5 instead of 1.
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::Auto);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    read_packet(&mut b, 1 << 16).await.expect("greeting");
    write_packet(&mut b, 5, &[0; 40]).await.expect("write");
    assert!(matches!(
        server.await.expect("task"),
        Err(HandshakeError::Protocol(codec::CodecError::Sequence {
            expected: 1,
            got: 5
        }))
    ));
}

#[tokio::test]
async fn an_ssl_request_without_tls_offered_is_refused() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let c = plain_config(PasswordExchange::Auto);
    let server = tokio::spawn(async move { handshake::accept(a, &c).await });
    let hello = read_packet(&mut b, 1 << 16).await.expect("greeting");
    let g = codec::parse_greeting(&hello.payload).expect("parses");
    assert_eq!(g.capabilities & CLIENT_SSL, 0, "TLS not offered");
    let mut out = BytesMut::new();
    codec::build_ssl_request(
        &mut out,
        &codec::SslRequest {
            capabilities: CLIENT_PROTOCOL_41,
            max_packet: 0,
            charset: 45,
            mariadb_capabilities: 0,
        },
    );
    assert!(matches!(
        codec::parse_client_hello(&out),
        Ok(ClientHello::Ssl(_))
    ));
    write_packet(&mut b, 1, &out).await.expect("write");
    assert!(matches!(
        server.await.expect("task"),
        Err(HandshakeError::Protocol(_))
    ));
}

#[tokio::test]
async fn a_silent_client_times_out() {
    let (a, _b) = tokio::io::duplex(1 << 16);
    let mut c = plain_config(PasswordExchange::Auto);
    c.timeout = Duration::from_millis(100);
    let e = handshake::accept(a, &c).await.expect_err("timeout");
    assert!(matches!(e, HandshakeError::Timeout), "{e}");
}
