//! Gatehouse logging in to a real MySQL/MariaDB server with the stored
//! credential: TLS through SSLRequest when asked, then
//! `mysql_native_password` or `caching_sha2_password` (fast path, or full
//! authentication over TLS only), following one auth switch between them.
//! A refusal names the server's error code and message, never the password.

use std::time::Duration;

use bytes::BytesMut;
use gatehouse_core::secret::Secret;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

use crate::codec::{
    self, CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS, CLIENT_CONNECT_ATTRS, CLIENT_CONNECT_WITH_DB,
    CLIENT_DEPRECATE_EOF, CLIENT_FOUND_ROWS, CLIENT_IGNORE_SIGPIPE, CLIENT_IGNORE_SPACE,
    CLIENT_INTERACTIVE, CLIENT_LOCAL_FILES, CLIENT_LONG_FLAG, CLIENT_LONG_PASSWORD,
    CLIENT_MULTI_RESULTS, CLIENT_MULTI_STATEMENTS, CLIENT_NO_SCHEMA, CLIENT_ODBC,
    CLIENT_OPTIONAL_RESULTSET_METADATA, CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
    CLIENT_PROTOCOL_41, CLIENT_PS_MULTI_RESULTS, CLIENT_QUERY_ATTRIBUTES, CLIENT_SECURE_CONNECTION,
    CLIENT_SESSION_TRACK, CLIENT_SSL, CLIENT_TRANSACTIONS, CodecError, ColumnDefinition, Command,
    ErrPacket, HandshakeResponse, OkPacket, SERVER_MORE_RESULTS_EXISTS, SslRequest,
};
use crate::scramble::{
    CACHING_SHA2_PASSWORD, CLEAR_PASSWORD, FAST_AUTH_SUCCESS, NATIVE_PASSWORD,
    PERFORM_FULL_AUTHENTICATION, caching_sha2, native_password,
};
use crate::stream::{MysqlStream, Packet, ReadError, read_packet, write_packet};

/// Limit on each packet of the connection phase.
pub const HANDSHAKE_LIMIT: usize = 64 * 1024;

/// Capabilities Gatehouse always asks for (when the server has them):
/// the 4.1 protocol with pluggable authentication, transactions, and
/// multiple statements and results (stored procedures need them).
pub const REQUIRED_CAPABILITIES: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_PROTOCOL_41
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH
    | CLIENT_TRANSACTIONS;

/// Capabilities a caller may ask for on top of the required ones (the
/// proxy passes what its client asked for); each is used only if the
/// server has it. `CLIENT_SSL` and `CLIENT_CONNECT_WITH_DB` follow the
/// `tls` and `database` arguments instead; compression is not supported.
pub const OPTIONAL_CAPABILITIES: u32 = CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_NO_SCHEMA
    | CLIENT_ODBC
    | CLIENT_LOCAL_FILES
    | CLIENT_IGNORE_SPACE
    | CLIENT_INTERACTIVE
    | CLIENT_IGNORE_SIGPIPE
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
    | CLIENT_SESSION_TRACK
    | CLIENT_DEPRECATE_EOF
    | CLIENT_OPTIONAL_RESULTSET_METADATA
    | CLIENT_QUERY_ATTRIBUTES;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the MySQL server at {addr} could not be reached: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("the MySQL server at {0} did not finish the login in time")]
    Timeout(String),
    #[error(
        "the MySQL server does not offer TLS (no CLIENT_SSL in its greeting), which this connection requires"
    )]
    NoTls,
    #[error("TLS to the MySQL server failed: {0}")]
    Tls(String),
    #[error(
        "the MySQL server refused the login: {message} (MySQL error {code}, SQLSTATE {sql_state})"
    )]
    Refused {
        code: u16,
        sql_state: String,
        message: String,
    },
    #[error(
        "the MySQL server asks for caching_sha2_password full authentication (the account is not in its cache), which sends the password itself; Gatehouse does that only over TLS: enable TLS for this connection"
    )]
    FullAuthNeedsTls,
    #[error(
        "the MySQL server asks for the password in clear (mysql_clear_password); Gatehouse sends it only over TLS: enable TLS for this connection"
    )]
    ClearNeedsTls,
    #[error(
        "the MySQL server asks for the {0} authentication plugin, which Gatehouse does not support"
    )]
    UnsupportedAuth(String),
    #[error("the MySQL server is not supported: {0}")]
    Unsupported(&'static str),
    #[error(
        "the MySQL server failed the statement: {message} (MySQL error {code}, SQLSTATE {sql_state})"
    )]
    Server {
        code: u16,
        sql_state: String,
        message: String,
    },
    #[error("the MySQL server sent a malformed reply: {0}")]
    Protocol(#[from] CodecError),
    #[error("the MySQL server closed the connection")]
    Closed,
    #[error("I/O error talking to the MySQL server: {0}")]
    Io(#[from] std::io::Error),
}

impl UpstreamError {
    /// The MySQL error code, for errors that came as an ERR packet.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Refused { code, .. } | Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<ReadError> for UpstreamError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed => Self::Closed,
            ReadError::Io(e) => Self::Io(e),
            ReadError::Codec(e) => Self::Protocol(e),
        }
    }
}

/// Where and as whom to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl Target {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// TLS towards the upstream.
#[derive(Clone)]
pub struct UpstreamTls {
    pub connector: TlsConnector,
    /// The name the server's certificate must carry.
    pub server_name: ServerName<'static>,
    /// Fail when the server does not offer TLS (otherwise continue in
    /// plain TCP, where full authentication is refused).
    pub required: bool,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// How to log in, besides the target and the password.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The default database (`CLIENT_CONNECT_WITH_DB`).
    pub database: Option<String>,
    /// Capabilities wanted on top of `REQUIRED_CAPABILITIES`; only those in
    /// `OPTIONAL_CAPABILITIES` and offered by the server are used.
    pub capabilities: u32,
    /// The connection's collation id.
    pub charset: u8,
    /// The largest packet Gatehouse will accept from the server.
    pub max_packet: u32,
    /// Connection attributes (`CLIENT_CONNECT_ATTRS`), e.g. `program_name`.
    pub connect_attrs: Vec<(String, String)>,
    /// Limit on each packet read after login (`Upstream::read`).
    pub max_payload: usize,
    /// Limit on the whole connect-and-login.
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            database: None,
            capabilities: CLIENT_LONG_FLAG
                | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
                | CLIENT_MULTI_STATEMENTS
                | CLIENT_MULTI_RESULTS
                | CLIENT_PS_MULTI_RESULTS,
            charset: codec::UTF8MB4_GENERAL_CI,
            max_packet: 1 << 30,
            connect_attrs: Vec::new(),
            max_payload: 16 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// An authenticated session on the upstream, between commands.
#[derive(Debug)]
pub struct Upstream<S = TcpStream> {
    pub stream: MysqlStream<S>,
    pub server_version: String,
    pub connection_id: u32,
    pub server_capabilities: u32,
    /// The capabilities in force: those Gatehouse sent in its response.
    pub capabilities: u32,
    /// Server status flags from the OK that ended the login (or the last reply).
    pub status: u16,
    /// The plugin that authenticated the session.
    pub auth_plugin: &'static str,
    /// The sequence id after the last packet of the login; a command
    /// starts again at 0.
    pub seq: u8,
    max_payload: usize,
}

/// Connects to `target` and logs in as its user with `password`.
pub async fn connect(
    target: &Target,
    password: &Secret,
    tls: Option<&UpstreamTls>,
    options: &ConnectOptions,
) -> Result<Upstream, UpstreamError> {
    let addr = target.addr();
    let run = async {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| UpstreamError::Unreachable {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        login(tcp, &target.user, password, tls, options).await
    };
    tokio::time::timeout(options.timeout, run)
        .await
        .map_err(|_| UpstreamError::Timeout(addr.clone()))?
}

/// The capabilities to send, given the server's.
fn negotiate(server: u32, options: &ConnectOptions, tls: bool) -> u32 {
    let mut caps = REQUIRED_CAPABILITIES | (options.capabilities & OPTIONAL_CAPABILITIES);
    if options.database.as_deref().is_some_and(|d| !d.is_empty()) {
        caps |= CLIENT_CONNECT_WITH_DB;
    }
    if !options.connect_attrs.is_empty() {
        caps |= CLIENT_CONNECT_ATTRS;
    }
    if tls {
        caps |= CLIENT_SSL;
    }
    caps & server
}

/// The ERR of a refused login, with the password blanked should a server
/// ever echo it.
fn refused(e: ErrPacket, password: &Secret) -> UpstreamError {
    let mut message = e.message;
    let pw = password.expose();
    if !pw.is_empty() && message.contains(pw) {
        message = message.replace(pw, "[redacted]");
    }
    UpstreamError::Refused {
        code: e.code,
        sql_state: e.sql_state.unwrap_or_else(|| "HY000".into()),
        message,
    }
}

fn with_nul(password: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(Vec::with_capacity(password.len() + 1));
    v.extend_from_slice(password);
    v.push(0);
    v
}

/// Logs in over an open stream (TCP, or anything else in tests).
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    user: &str,
    password: &Secret,
    tls: Option<&UpstreamTls>,
    options: &ConnectOptions,
) -> Result<Upstream<S>, UpstreamError> {
    let (greeting, seq) = read_greeting(&mut io, password).await?;
    let tls = match tls {
        Some(t) if greeting.capabilities & CLIENT_SSL != 0 => Some(t),
        Some(t) if t.required => return Err(UpstreamError::NoTls),
        _ => None,
    };
    let caps = negotiate(greeting.capabilities, options, tls.is_some());
    let (mut stream, seq) = open_tls(io, tls, caps, options, seq).await?;

    let pw = password.expose().as_bytes();
    let (plugin, auth) = match greeting.auth_plugin.as_deref() {
        Some(CACHING_SHA2_PASSWORD) => (CACHING_SHA2_PASSWORD, caching_sha2(pw, &greeting.nonce)),
        // The server's default may be a plugin we don't speak; answer with
        // ours and let the server switch.
        _ => (NATIVE_PASSWORD, native_password(pw, &greeting.nonce)),
    };
    let response = HandshakeResponse {
        capabilities: caps,
        max_packet: options.max_packet,
        charset: options.charset,
        mariadb_capabilities: 0,
        user: user.to_string(),
        auth_response: auth,
        database: options.database.clone().filter(|d| !d.is_empty()),
        auth_plugin: Some(plugin.to_string()),
        connect_attrs: options.connect_attrs.clone(),
        zstd_level: None,
    };
    let mut out = BytesMut::new();
    codec::build_handshake_response(&mut out, &response)?;
    let seq = write_packet(&mut stream, seq, &out).await?;
    zeroize::Zeroize::zeroize(&mut out[..]);

    let done = authenticate(&mut stream, seq, plugin, password, caps).await?;
    Ok(Upstream {
        stream,
        server_version: greeting.server_version,
        connection_id: greeting.connection_id,
        server_capabilities: greeting.capabilities,
        capabilities: caps,
        status: done.status,
        auth_plugin: done.plugin,
        seq: done.seq,
        max_payload: options.max_payload,
    })
}

/// Reads the server's greeting (or the ERR of a server refusing the
/// connection); returns it with the sequence id of the client's answer.
async fn read_greeting<S: AsyncRead + Unpin>(
    io: &mut S,
    password: &Secret,
) -> Result<(codec::Greeting, u8), UpstreamError> {
    let hello = read_packet(io, HANDSHAKE_LIMIT).await?;
    if codec::is_err(&hello.payload) {
        return Err(refused(codec::parse_err(&hello.payload)?, password));
    }
    let greeting = codec::parse_greeting(&hello.payload)?;
    let needed = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
    if greeting.capabilities & needed != needed {
        return Err(UpstreamError::Unsupported(
            "it lacks the 4.1 protocol with pluggable authentication (MySQL 5.5.7+ or MariaDB)",
        ));
    }
    Ok((greeting, hello.next_seq()))
}

/// Sends the SSLRequest and runs the TLS handshake when `tls` is given.
async fn open_tls<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    tls: Option<&UpstreamTls>,
    caps: u32,
    options: &ConnectOptions,
    seq: u8,
) -> Result<(MysqlStream<S>, u8), UpstreamError> {
    let Some(t) = tls else {
        return Ok((MysqlStream::Plain(io), seq));
    };
    let mut req = BytesMut::new();
    codec::build_ssl_request(
        &mut req,
        &SslRequest {
            capabilities: caps,
            max_packet: options.max_packet,
            charset: options.charset,
            mariadb_capabilities: 0,
        },
    );
    let seq = write_packet(&mut io, seq, &req).await?;
    let s = t
        .connector
        .connect(t.server_name.clone(), io)
        .await
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    Ok((MysqlStream::Client(Box::new(s)), seq))
}

/// How the authentication exchange ended.
struct Authenticated {
    plugin: &'static str,
    status: u16,
    seq: u8,
}

/// After the HandshakeResponse: follows at most one auth switch and the
/// `caching_sha2_password` replies until the server's OK or ERR.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut MysqlStream<S>,
    mut seq: u8,
    mut plugin: &'static str,
    password: &Secret,
    caps: u32,
) -> Result<Authenticated, UpstreamError> {
    let pw = password.expose().as_bytes();
    let mut switched = false;
    // At most: switch, more data, full auth, OK.
    for _ in 0..4 {
        let pkt = read_packet(stream, HANDSHAKE_LIMIT).await?;
        if pkt.seq != seq {
            return Err(CodecError::Sequence {
                expected: seq,
                got: pkt.seq,
            }
            .into());
        }
        seq = pkt.next_seq();
        let reply: Zeroizing<Vec<u8>> = match pkt.payload.first() {
            Some(0x00) => {
                let ok = codec::parse_ok(&pkt.payload, caps)?;
                return Ok(Authenticated {
                    plugin,
                    status: ok.status,
                    seq,
                });
            }
            Some(0xFF) => return Err(refused(codec::parse_err(&pkt.payload)?, password)),
            Some(0xFE) if !switched => {
                switched = true;
                let switch = codec::parse_auth_switch_request(&pkt.payload)?;
                let (next, reply) = switch_reply(&switch, pw, stream.is_tls())?;
                plugin = next;
                reply
            }
            Some(0x01) if plugin == CACHING_SHA2_PASSWORD => {
                match codec::parse_auth_more_data(&pkt.payload)? {
                    [FAST_AUTH_SUCCESS] => continue,
                    [PERFORM_FULL_AUTHENTICATION] if stream.is_tls() => with_nul(pw),
                    [PERFORM_FULL_AUTHENTICATION] => return Err(UpstreamError::FullAuthNeedsTls),
                    _ => return Err(CodecError::Malformed("caching_sha2_password reply").into()),
                }
            }
            _ => return Err(CodecError::Malformed("authentication reply").into()),
        };
        seq = write_packet(stream, seq, &reply).await?;
    }
    Err(CodecError::Malformed("authentication (too many exchanges)").into())
}

/// The plugin switched to and the answer to its request.
fn switch_reply(
    switch: &codec::AuthSwitchRequest,
    pw: &[u8],
    tls: bool,
) -> Result<(&'static str, Zeroizing<Vec<u8>>), UpstreamError> {
    match switch.plugin.as_str() {
        NATIVE_PASSWORD => Ok((NATIVE_PASSWORD, native_password(pw, switch.nonce()))),
        CACHING_SHA2_PASSWORD => Ok((CACHING_SHA2_PASSWORD, caching_sha2(pw, switch.nonce()))),
        CLEAR_PASSWORD if tls => Ok((CLEAR_PASSWORD, with_nul(pw))),
        CLEAR_PASSWORD => Err(UpstreamError::ClearNeedsTls),
        other => Err(UpstreamError::UnsupportedAuth(other.to_string())),
    }
}

/// One result of a text-protocol query: its columns and rows (none for a
/// statement without a result set), and the OK that ended it (absent when
/// an EOF packet did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<ColumnDefinition>,
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
    pub ok: Option<OkPacket>,
}

/// Most bytes `Upstream::query` holds for one call (it is meant for the
/// small side queries Gatehouse makes itself, not for relaying).
pub const QUERY_RESULT_LIMIT: usize = 16 << 20;

impl<S: AsyncRead + AsyncWrite + Unpin> Upstream<S> {
    /// Sends a command packet (sequence id 0).
    pub async fn command(&mut self, payload: &[u8]) -> Result<(), UpstreamError> {
        self.seq = write_packet(&mut self.stream, 0, payload).await?;
        Ok(())
    }

    /// Reads the next packet of a reply.
    pub async fn read(&mut self) -> Result<Packet, UpstreamError> {
        let pkt = read_packet(&mut self.stream, self.max_payload).await?;
        self.seq = pkt.next_seq();
        Ok(pkt)
    }

    fn server_error(payload: &[u8]) -> UpstreamError {
        match codec::parse_err(payload) {
            Ok(e) => UpstreamError::Server {
                code: e.code,
                sql_state: e.sql_state.unwrap_or_else(|| "HY000".into()),
                message: e.message,
            },
            Err(e) => e.into(),
        }
    }

    /// Runs `sql` with `COM_QUERY` and reads every result it produces in
    /// the text protocol (at most `QUERY_RESULT_LIMIT` bytes in all).
    pub async fn query(&mut self, sql: &str) -> Result<Vec<QueryResult>, UpstreamError> {
        let mut out = BytesMut::new();
        codec::build_command(&mut out, Command::Query, sql.as_bytes());
        self.command(&out).await?;
        let caps = self.capabilities;
        let mut results = Vec::new();
        let mut held = 0usize;
        loop {
            let first = self.read().await?;
            held += first.payload.len();
            let mut result = QueryResult::default();
            let status = match first.payload.first() {
                Some(0xFF) => return Err(Self::server_error(&first.payload)),
                Some(0x00) => {
                    let ok = codec::parse_ok(&first.payload, caps)?;
                    let status = ok.status;
                    result.ok = Some(ok);
                    status
                }
                Some(0xFB) => {
                    return Err(UpstreamError::Unsupported(
                        "LOAD DATA LOCAL INFILE in a side query",
                    ));
                }
                _ => {
                    let (n, metadata) = codec::parse_column_count(&first.payload, caps)?;
                    if metadata {
                        for _ in 0..n {
                            let p = self.read().await?;
                            held += p.payload.len();
                            result
                                .columns
                                .push(codec::parse_column_definition(&p.payload)?);
                        }
                        if caps & CLIENT_DEPRECATE_EOF == 0 {
                            codec::parse_eof(&self.read().await?.payload)?;
                        }
                    }
                    loop {
                        let p = self.read().await?;
                        held += p.payload.len();
                        if held > QUERY_RESULT_LIMIT {
                            return Err(CodecError::TooLarge {
                                len: held,
                                limit: QUERY_RESULT_LIMIT,
                            }
                            .into());
                        }
                        if codec::is_err(&p.payload) {
                            return Err(Self::server_error(&p.payload));
                        }
                        if codec::is_result_end(&p.payload, caps) {
                            if caps & CLIENT_DEPRECATE_EOF != 0 {
                                let ok = codec::parse_ok(&p.payload, caps)?;
                                let status = ok.status;
                                result.ok = Some(ok);
                                break status;
                            }
                            break codec::parse_eof(&p.payload)?.status;
                        }
                        let row = codec::parse_text_row(&p.payload, n)?;
                        result
                            .rows
                            .push(row.into_iter().map(|v| v.map(<[u8]>::to_vec)).collect());
                    }
                }
            };
            self.status = status;
            results.push(result);
            if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                return Ok(results);
            }
        }
    }

    /// Sends `COM_QUIT` and closes the stream.
    pub async fn quit(mut self) -> Result<(), UpstreamError> {
        self.command(&[Command::Quit.byte()]).await?;
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}
