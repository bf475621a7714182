//! Gatehouse as the MySQL server towards a client, for authentication
//! only: greet, switch to TLS when the client asks, read its login, and
//! obtain its password in clear (the caller's access token, which a
//! database client sends as its password). What happens next (check the
//! token, answer OK or ERR) is the caller's.
//!
//! A password reaches a server in clear through two exchanges:
//!
//! - `caching_sha2_password` full authentication: after the client's
//!   fast-path scramble the server sends AuthMoreData 0x04 ("perform full
//!   authentication") and a client on TLS answers with its password,
//!   NUL-terminated. Every current client library does this over TLS; over
//!   plain TCP they ask for the server's RSA key instead (0x02), which
//!   Gatehouse refuses.
//! - an AuthSwitchRequest to `mysql_clear_password`: the client answers
//!   with its password, NUL-terminated. Some clients do it only when told
//!   to (node `mysql2`: `enableCleartextPlugin`), some only over TLS
//!   (mysql-connector-python).
//!
//! With [`PasswordExchange::Auto`] the greeting announces
//! `caching_sha2_password`; a client on TLS that answers with it gets full
//! authentication, any other client gets the switch to
//! `mysql_clear_password`. The password is accepted over plain TCP only
//! when `allow_plaintext_password` says so (loopback, tests).

use std::time::Duration;

use bytes::BytesMut;
use gatehouse_core::secret::Secret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroize;

use crate::codec::{
    self, AuthSwitchRequest, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF,
    CLIENT_FOUND_ROWS, CLIENT_IGNORE_SIGPIPE, CLIENT_IGNORE_SPACE, CLIENT_INTERACTIVE,
    CLIENT_LONG_FLAG, CLIENT_LONG_PASSWORD, CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS,
    CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41,
    CLIENT_PS_MULTI_RESULTS, CLIENT_SECURE_CONNECTION, CLIENT_SSL, CLIENT_TRANSACTIONS,
    ClientHello, CodecError, Greeting, HandshakeResponse, OkPacket, SERVER_STATUS_AUTOCOMMIT,
};
use crate::scramble::{
    CACHING_SHA2_PASSWORD, CLEAR_PASSWORD, NATIVE_PASSWORD, PERFORM_FULL_AUTHENTICATION,
    REQUEST_PUBLIC_KEY,
};
use crate::stream::{MysqlStream, Packet, ReadError, read_packet, write_packet};

pub const DEFAULT_SERVER_VERSION: &str = "8.0.36-Gatehouse";

/// What the greeting offers by default (`CLIENT_SSL` is added when TLS is
/// configured). Not offered: compression, `LOAD DATA LOCAL`, session
/// tracking, query attributes, optional metadata.
pub const DEFAULT_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_IGNORE_SPACE
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_IGNORE_SIGPIPE
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_DEPRECATE_EOF;

/// MySQL's error for a login refused (and its SQLSTATE).
pub const ER_ACCESS_DENIED: u16 = 1045;
/// MySQL's error for a connection that must use TLS.
pub const ER_SECURE_TRANSPORT_REQUIRED: u16 = 3159;
/// MySQL's error for a packet it cannot make sense of.
pub const ER_HANDSHAKE_ERROR: u16 = 1043;

/// Which exchange obtains the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordExchange {
    /// `caching_sha2_password` full authentication for a client on TLS
    /// that answers the greeting with that plugin; `mysql_clear_password`
    /// for every other client.
    Auto,
    /// Always switch to `mysql_clear_password`.
    ClearPassword,
    /// Always `caching_sha2_password` full authentication (switching to it
    /// if the client answered with another plugin).
    CachingSha2,
}

/// How the password was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordMethod {
    /// The client answered an AuthSwitchRequest to `mysql_clear_password`.
    ClearPasswordSwitch,
    /// The client's login already used `mysql_clear_password`.
    ClearPasswordInResponse,
    /// `caching_sha2_password` full authentication.
    CachingSha2Full,
    /// The client's scramble was empty: it has no password.
    Empty,
}

#[derive(Clone)]
pub struct HandshakeConfig {
    pub server_version: String,
    pub connection_id: u32,
    /// Capabilities offered (`CLIENT_SSL` follows `tls`; 4.1 protocol,
    /// secure connection and plugin auth are always offered).
    pub capabilities: u32,
    /// Offer TLS with this certificate.
    pub tls: Option<TlsAcceptor>,
    /// Accept a password over plain TCP. Otherwise a client that does not
    /// switch to TLS is refused with MySQL error 3159 before it sends one.
    pub allow_plaintext_password: bool,
    pub exchange: PasswordExchange,
    /// Limit on each packet the client sends during the handshake.
    pub max_payload: usize,
    /// Limit on the whole handshake.
    pub timeout: Duration,
}

impl HandshakeConfig {
    /// Defaults: TLS as given, passwords only over TLS, `Auto`, 64 KiB
    /// packets, 10 seconds.
    pub fn new(tls: Option<TlsAcceptor>) -> Self {
        Self {
            server_version: DEFAULT_SERVER_VERSION.to_string(),
            connection_id: 1,
            capabilities: DEFAULT_CAPABILITIES,
            tls,
            allow_plaintext_password: false,
            exchange: PasswordExchange::Auto,
            max_payload: 64 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("server_version", &self.server_version)
            .field("connection_id", &self.connection_id)
            .field("capabilities", &format_args!("{:#x}", self.capabilities))
            .field("tls", &self.tls.is_some())
            .field("allow_plaintext_password", &self.allow_plaintext_password)
            .field("exchange", &self.exchange)
            .field("max_payload", &self.max_payload)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the client closed the connection during the handshake")]
    Closed,
    #[error(
        "the client closed the connection instead of answering the {0} request (it does not send its password that way; see gatehouse_mysql::handshake)"
    )]
    ClientRefused(&'static str),
    #[error("I/O error during the handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client sent a malformed handshake: {0}")]
    Protocol(#[from] CodecError),
    #[error("TLS with the client failed: {0}")]
    Tls(String),
    #[error(
        "the client did not switch to TLS, which Gatehouse requires before it takes a password"
    )]
    TlsRequired,
    #[error(
        "the client asked for the server's RSA public key (caching_sha2_password without TLS); Gatehouse takes passwords only over TLS"
    )]
    PublicKeyRequested,
    #[error("the client does not support pluggable authentication (CLIENT_PLUGIN_AUTH)")]
    ClientTooOld,
    #[error("the client's password is not valid UTF-8")]
    PasswordNotUtf8,
    #[error("the client did not finish the handshake in time")]
    Timeout,
}

impl From<ReadError> for HandshakeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => Self::Closed,
            ReadError::Io(e) => Self::Io(e),
            ReadError::Codec(e) => Self::Protocol(e),
        }
    }
}

/// A client whose login has been read and whose password is known, before
/// Gatehouse answers it (with [`ClientLogin::send_ok`] or
/// [`ClientLogin::deny`]).
#[derive(Debug)]
pub struct ClientLogin<S = TcpStream> {
    pub user: String,
    pub password: Secret,
    pub database: Option<String>,
    /// The client's capability flags, as it sent them.
    pub capabilities: u32,
    /// The capability flags Gatehouse offered.
    pub server_capabilities: u32,
    pub mariadb_capabilities: u32,
    /// The client's collation id.
    pub charset: u8,
    pub max_packet: u32,
    pub connect_attrs: Vec<(String, String)>,
    /// The plugin the client's login answered with.
    pub client_plugin: Option<String>,
    pub method: PasswordMethod,
    /// The sequence id of Gatehouse's next packet (the OK or ERR that ends
    /// the login).
    pub seq: u8,
    pub stream: MysqlStream<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientLogin<S> {
    /// The capabilities in force: offered and asked for.
    pub fn negotiated(&self) -> u32 {
        self.capabilities & self.server_capabilities
    }

    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// Ends the login successfully.
    pub async fn send_ok(&mut self) -> std::io::Result<()> {
        let caps = self.negotiated();
        self.seq = send_ok(&mut self.stream, self.seq, caps, SERVER_STATUS_AUTOCOMMIT).await?;
        Ok(())
    }

    /// Refuses the login: MySQL error 1045 (SQLSTATE 28000), `Access
    /// denied for user '<user>': <reason>`. `reason` must not hold the
    /// credential.
    pub async fn deny(&mut self, reason: &str) -> std::io::Result<()> {
        let message = format!("Access denied for user '{}': {reason}", self.user);
        self.seq = send_err(
            &mut self.stream,
            self.seq,
            ER_ACCESS_DENIED,
            "28000",
            &message,
        )
        .await?;
        Ok(())
    }
}

/// Writes an OK packet; returns the next sequence id.
pub async fn send_ok<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    seq: u8,
    capabilities: u32,
    status: u16,
) -> std::io::Result<u8> {
    let mut out = BytesMut::new();
    let ok = OkPacket {
        status,
        ..OkPacket::default()
    };
    codec::build_ok(&mut out, &ok, capabilities);
    write_packet(w, seq, &out).await
}

/// Writes an ERR packet; returns the next sequence id.
pub async fn send_err<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    seq: u8,
    code: u16,
    sql_state: &str,
    message: &str,
) -> std::io::Result<u8> {
    let mut out = BytesMut::new();
    codec::build_err(&mut out, code, sql_state, message);
    write_packet(w, seq, &out).await
}

/// A 20-byte nonce as MySQL makes them: 7-bit, no NUL and no '$'.
fn new_nonce() -> Vec<u8> {
    rand::random::<[u8; 20]>()
        .iter()
        .map(|b| match b & 0x7f {
            0 | b'$' => (b & 0x7f) + 1,
            c => c,
        })
        .collect()
}

/// Reads the client's next packet, which must carry sequence id `seq`.
async fn read_expected<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    seq: u8,
    limit: usize,
) -> Result<Packet, HandshakeError> {
    let pkt = read_packet(r, limit).await?;
    if pkt.seq != seq {
        return Err(CodecError::Sequence {
            expected: seq,
            got: pkt.seq,
        }
        .into());
    }
    Ok(pkt)
}

/// Takes a password answered in clear: NUL-terminated (one trailing NUL
/// dropped), UTF-8.
fn take_password(bytes: &[u8]) -> Result<Secret, HandshakeError> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    match String::from_utf8(bytes.to_vec()) {
        Ok(s) => Ok(Secret::new(s)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(HandshakeError::PasswordNotUtf8)
        }
    }
}

/// Runs the handshake on a freshly accepted connection, within
/// `config.timeout`. On an error the client has been sent an ERR when the
/// connection still allowed it.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    config: &HandshakeConfig,
) -> Result<ClientLogin<S>, HandshakeError> {
    tokio::time::timeout(config.timeout, accept_inner(io, config))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

async fn accept_inner<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    config: &HandshakeConfig,
) -> Result<ClientLogin<S>, HandshakeError> {
    let nonce = new_nonce();
    let caps = greet(&mut io, config, &nonce).await?;
    let (mut stream, mut seq, response) = read_login(io, config).await?;
    if !stream.is_tls() && !config.allow_plaintext_password {
        let _ = send_err(
            &mut stream,
            seq,
            ER_SECURE_TRANSPORT_REQUIRED,
            "HY000",
            "Gatehouse requires TLS for MySQL connections: connect with TLS (e.g. --ssl, ssl_mode=REQUIRED)",
        )
        .await;
        return Err(HandshakeError::TlsRequired);
    }
    if response.capabilities & CLIENT_PLUGIN_AUTH == 0 {
        let _ = send_err(
            &mut stream,
            seq,
            ER_HANDSHAKE_ERROR,
            "08S01",
            "Gatehouse needs a client with pluggable authentication (CLIENT_PLUGIN_AUTH)",
        )
        .await;
        return Err(HandshakeError::ClientTooOld);
    }

    let (password, method) =
        obtain_password(&mut stream, &mut seq, &response, &nonce, config).await?;
    let HandshakeResponse {
        capabilities,
        max_packet,
        charset,
        mariadb_capabilities,
        user,
        database,
        auth_plugin,
        connect_attrs,
        ..
    } = *response;
    Ok(ClientLogin {
        user,
        password,
        database,
        capabilities,
        server_capabilities: caps,
        mariadb_capabilities,
        charset,
        max_packet,
        connect_attrs,
        client_plugin: auth_plugin,
        method,
        seq,
        stream,
    })
}

/// Sends the greeting (sequence id 0); returns the capabilities offered.
async fn greet<S: AsyncWrite + Unpin>(
    io: &mut S,
    config: &HandshakeConfig,
    nonce: &[u8],
) -> Result<u32, HandshakeError> {
    let mut caps =
        config.capabilities | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
    if config.tls.is_some() {
        caps |= CLIENT_SSL;
    } else {
        caps &= !CLIENT_SSL;
    }
    let first_plugin = match config.exchange {
        PasswordExchange::ClearPassword => NATIVE_PASSWORD,
        PasswordExchange::Auto | PasswordExchange::CachingSha2 => CACHING_SHA2_PASSWORD,
    };
    let greeting = Greeting {
        server_version: config.server_version.clone(),
        connection_id: config.connection_id,
        nonce: nonce.to_vec(),
        capabilities: caps,
        charset: codec::UTF8MB4_GENERAL_CI,
        status: SERVER_STATUS_AUTOCOMMIT,
        mariadb_capabilities: 0,
        auth_plugin: Some(first_plugin.to_string()),
    };
    let mut out = BytesMut::new();
    codec::build_greeting(&mut out, &greeting)?;
    write_packet(io, 0, &out).await?;
    Ok(caps)
}

/// Reads the client's answer to the greeting, switching to TLS first when
/// it sends an SSLRequest; returns the stream, the sequence id of
/// Gatehouse's next packet, and the client's login.
async fn read_login<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    config: &HandshakeConfig,
) -> Result<(MysqlStream<S>, u8, Box<HandshakeResponse>), HandshakeError> {
    let limit = config.max_payload;
    let first = read_expected(&mut io, 1, limit).await?;
    let (mut stream, pkt) = match codec::parse_client_hello(&first.payload) {
        Ok(ClientHello::Response(r)) => return Ok((MysqlStream::Plain(io), first.next_seq(), r)),
        Ok(ClientHello::Ssl(_)) => {
            let Some(acceptor) = &config.tls else {
                // CLIENT_SSL was not offered.
                return Err(CodecError::Malformed("SSLRequest (TLS not offered)").into());
            };
            let tls = acceptor
                .accept(io)
                .await
                .map_err(|e| HandshakeError::Tls(e.to_string()))?;
            let mut stream = MysqlStream::Server(Box::new(tls));
            let pkt = read_expected(&mut stream, first.next_seq(), limit).await?;
            (stream, pkt)
        }
        Err(e) => {
            refuse(&mut io, first.next_seq(), &e).await;
            return Err(e.into());
        }
    };
    let e = match codec::parse_client_hello(&pkt.payload) {
        Ok(ClientHello::Response(r)) => return Ok((stream, pkt.next_seq(), r)),
        Ok(ClientHello::Ssl(_)) => {
            CodecError::Malformed("handshake response (a second SSLRequest)")
        }
        Err(e) => e,
    };
    refuse(&mut stream, pkt.next_seq(), &e).await;
    Err(e.into())
}

/// Sends an ERR for a malformed packet (best effort: the connection is
/// being dropped anyway).
async fn refuse<W: AsyncWrite + Unpin + ?Sized>(w: &mut W, seq: u8, e: &CodecError) {
    let _ = send_err(
        w,
        seq,
        ER_HANDSHAKE_ERROR,
        "08S01",
        &format!("Bad handshake: {e}"),
    )
    .await;
}

/// Sends `request` (an AuthSwitchRequest or AuthMoreData payload) and
/// reads the client's answer; a client that hangs up instead refuses the
/// exchange named `what`.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut MysqlStream<S>,
    seq: &mut u8,
    request: &[u8],
    what: &'static str,
    limit: usize,
) -> Result<Packet, HandshakeError> {
    let next = write_packet(stream, *seq, request).await?;
    let pkt = match read_expected(stream, next, limit).await {
        Err(HandshakeError::Closed) => return Err(HandshakeError::ClientRefused(what)),
        other => other?,
    };
    *seq = pkt.next_seq();
    Ok(pkt)
}

async fn obtain_password<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut MysqlStream<S>,
    seq: &mut u8,
    response: &HandshakeResponse,
    nonce: &[u8],
    config: &HandshakeConfig,
) -> Result<(Secret, PasswordMethod), HandshakeError> {
    let plugin = response.auth_plugin.as_deref();
    if plugin == Some(CLEAR_PASSWORD) && !response.auth_response.is_empty() {
        let pw = take_password(&response.auth_response)?;
        return Ok((pw, PasswordMethod::ClearPasswordInResponse));
    }
    let hashing = matches!(plugin, Some(NATIVE_PASSWORD | CACHING_SHA2_PASSWORD));
    if hashing && response.auth_response.is_empty() {
        // Both scrambles of an empty password are empty.
        return Ok((Secret::default(), PasswordMethod::Empty));
    }
    let full_auth = match config.exchange {
        PasswordExchange::CachingSha2 => true,
        PasswordExchange::ClearPassword => false,
        PasswordExchange::Auto => stream.is_tls() && plugin == Some(CACHING_SHA2_PASSWORD),
    };
    let limit = config.max_payload;
    let mut data = nonce.to_vec();
    data.push(0);
    let mut out = BytesMut::new();
    if !full_auth {
        let switch = AuthSwitchRequest {
            plugin: CLEAR_PASSWORD.to_string(),
            data,
        };
        codec::build_auth_switch_request(&mut out, &switch);
        let answer = ask(stream, seq, &out, CLEAR_PASSWORD, limit).await?;
        let pw = take_password(&answer.payload)?;
        return Ok((pw, PasswordMethod::ClearPasswordSwitch));
    }
    if plugin != Some(CACHING_SHA2_PASSWORD) {
        let switch = AuthSwitchRequest {
            plugin: CACHING_SHA2_PASSWORD.to_string(),
            data,
        };
        codec::build_auth_switch_request(&mut out, &switch);
        let scramble = ask(stream, seq, &out, CACHING_SHA2_PASSWORD, limit).await?;
        if scramble.payload.is_empty() {
            return Ok((Secret::default(), PasswordMethod::Empty));
        }
        out.clear();
    }
    codec::build_auth_more_data(&mut out, &[PERFORM_FULL_AUTHENTICATION]);
    let answer = ask(stream, seq, &out, CACHING_SHA2_PASSWORD, limit).await?;
    if answer.payload.as_slice() == [REQUEST_PUBLIC_KEY] {
        let _ = send_err(
            stream,
            *seq,
            ER_SECURE_TRANSPORT_REQUIRED,
            "HY000",
            "Gatehouse takes the password only over TLS: connect with TLS (e.g. --ssl, ssl_mode=REQUIRED)",
        )
        .await;
        return Err(HandshakeError::PublicKeyRequested);
    }
    let pw = take_password(&answer.payload)?;
    Ok((pw, PasswordMethod::CachingSha2Full))
}
