//! Opening Gatehouse's own session to the upstream PostgreSQL with the
//! stored credentials: TLS per `sslmode`, startup, and SCRAM-SHA-256, md5 or
//! cleartext authentication.

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use gatehouse_core::secret::Secret;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::{self, CodecError};
use crate::stream::{PgStream, write_flush};
use crate::tls::{SslMode, client_config};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit on any single message during the upstream handshake.
const HANDSHAKE_LIMIT: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the database at {0} could not be reached: {1}")]
    Unreachable(String, String),
    #[error("the database at {0} refused TLS, which the connection's sslmode requires")]
    NoTls(String),
    #[error("TLS to the database failed: {0}")]
    Tls(String),
    #[error("the database refused Gatehouse's stored credentials: {0}")]
    AuthFailed(String),
    #[error("the database asked for {0} authentication, which Gatehouse does not support")]
    UnsupportedAuth(String),
    #[error("the database rejected the session: {0}")]
    Rejected(String),
    #[error("the database sent a malformed reply: {0}")]
    Protocol(#[from] CodecError),
    #[error("the connection url is not usable: {0}")]
    BadUrl(String),
    #[error("the database closed the connection during start-up")]
    Closed,
}

/// Where and as whom to connect, from a connection's url.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub sslmode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl Target {
    pub fn from_url(raw: &str) -> Result<Self, UpstreamError> {
        let url = url::Url::parse(raw).map_err(|e| UpstreamError::BadUrl(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| UpstreamError::BadUrl("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = decode(url.username());
        let user = if user.is_empty() {
            "postgres".to_string()
        } else {
            user
        };
        let database = decode(url.path().trim_start_matches('/'));
        let mut sslmode = SslMode::Prefer;
        let mut root_cert = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => sslmode = SslMode::parse(&v).ok_or_else(|| {
                    UpstreamError::BadUrl(format!(
                        "sslmode={v} is not supported: use disable, prefer, require or verify-full"
                    ))
                })?,
                "sslrootcert" => root_cert = Some(PathBuf::from(v.as_ref())),
                _ => {}
            }
        }
        Ok(Self {
            database: if database.is_empty() {
                user.clone()
            } else {
                database
            },
            host,
            port: url.port().unwrap_or(5432),
            user,
            sslmode,
            root_cert,
        })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// An authenticated upstream session, ready for queries.
#[derive(Debug)]
pub struct Upstream {
    pub stream: PgStream,
    /// ParameterStatus messages the upstream sent, in order.
    pub params: Vec<(String, String)>,
    /// The upstream's cancel key.
    pub pid: i32,
    pub key: i32,
    /// Bytes read past the first ReadyForQuery (normally none).
    pub leftover: BytesMut,
}

/// Opens a TCP (and, per `sslmode`, TLS) stream to the target.
pub async fn open_stream(t: &Target) -> Result<PgStream, UpstreamError> {
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((t.host.as_str(), t.port)),
    )
    .await
    .map_err(|_| UpstreamError::Unreachable(t.addr(), "timed out".into()))?
    .map_err(|e| UpstreamError::Unreachable(t.addr(), e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    if t.sslmode == SslMode::Disable {
        return Ok(PgStream::Plain(tcp));
    }
    let mut tcp = tcp;
    let mut req = BytesMut::new();
    codec::ssl_request(&mut req);
    tcp.write_all(&req)
        .await
        .map_err(|e| UpstreamError::Unreachable(t.addr(), e.to_string()))?;
    let answer = tcp.read_u8().await.map_err(|_| UpstreamError::Closed)?;
    match answer {
        b'S' => {
            let config = client_config(t.sslmode, t.root_cert.as_deref())
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            let name = rustls::pki_types::ServerName::try_from(t.host.clone())
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            Ok(PgStream::Client(Box::new(tls)))
        }
        b'N' if t.sslmode == SslMode::Prefer => Ok(PgStream::Plain(tcp)),
        b'N' => Err(UpstreamError::NoTls(t.addr())),
        _ => Err(UpstreamError::Protocol(CodecError::Malformed(
            "SSL response",
        ))),
    }
}

async fn read_msg(s: &mut PgStream, buf: &mut BytesMut) -> Result<(u8, BytesMut), UpstreamError> {
    loop {
        if let Some((tag, total)) = codec::frame(buf, HANDSHAKE_LIMIT)? {
            let mut msg = buf.split_to(total);
            msg.advance(5);
            return Ok((tag, msg));
        }
        if s.read_buf(buf).await.map_err(|_| UpstreamError::Closed)? == 0 {
            return Err(UpstreamError::Closed);
        }
    }
}

/// Connects, authenticates with `password`, and waits for ReadyForQuery.
pub async fn connect(
    t: &Target,
    password: Option<&Secret>,
    extra: &[(&str, &str)],
) -> Result<Upstream, UpstreamError> {
    let mut s = open_stream(t).await?;
    let mut out = BytesMut::new();
    let mut params: Vec<(&str, &str)> = vec![("user", &t.user), ("database", &t.database)];
    params.extend_from_slice(extra);
    codec::startup_message(&mut out, &params);
    write_flush(&mut s, &out)
        .await
        .map_err(|_| UpstreamError::Closed)?;
    let pw = password.map(|p| p.expose().as_bytes()).unwrap_or_default();
    let mut buf = BytesMut::with_capacity(8192);
    let mut scram: Option<ScramSha256> = None;
    let mut server_params = Vec::new();
    let mut cancel = (0, 0);
    loop {
        let (tag, body) = read_msg(&mut s, &mut buf).await?;
        out.clear();
        match tag {
            b'R' => {
                let (code, data) = codec::parse_auth(&body)?;
                match code {
                    0 => {}
                    3 => {
                        let mut p = pw.to_vec();
                        p.push(0);
                        codec::password(&mut out, &p);
                    }
                    5 => {
                        let salt: [u8; 4] = data
                            .try_into()
                            .map_err(|_| CodecError::Malformed("md5 salt"))?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            t.user.as_bytes(),
                            pw,
                            salt,
                        );
                        let mut p = hash.into_bytes();
                        p.push(0);
                        codec::password(&mut out, &p);
                    }
                    10 => {
                        let mut mechs = Vec::new();
                        let mut p = data;
                        while let Some(m) = codec::cstr(&mut p) {
                            if m.is_empty() {
                                break;
                            }
                            mechs.push(m.to_string());
                        }
                        if !mechs.iter().any(|m| m == SCRAM_SHA_256) {
                            return Err(UpstreamError::UnsupportedAuth(mechs.join(", ")));
                        }
                        let sc = ScramSha256::new(pw, ChannelBinding::unsupported());
                        codec::sasl_initial_response(&mut out, SCRAM_SHA_256, sc.message());
                        scram = Some(sc);
                    }
                    11 => {
                        let sc = scram
                            .as_mut()
                            .ok_or(CodecError::Malformed("SASLContinue"))?;
                        sc.update(data)
                            .map_err(|e| UpstreamError::AuthFailed(e.to_string()))?;
                        codec::password(&mut out, sc.message());
                    }
                    12 => {
                        let sc = scram.as_mut().ok_or(CodecError::Malformed("SASLFinal"))?;
                        sc.finish(data).map_err(|_| {
                            UpstreamError::AuthFailed(
                                "the server's SCRAM proof did not verify".into(),
                            )
                        })?;
                    }
                    other => return Err(UpstreamError::UnsupportedAuth(format!("method {other}"))),
                }
                if !out.is_empty() {
                    write_flush(&mut s, &out)
                        .await
                        .map_err(|_| UpstreamError::Closed)?;
                }
            }
            b'E' => {
                let (code, message) = codec::parse_error(&body);
                return Err(if code.starts_with("28") {
                    UpstreamError::AuthFailed(message)
                } else {
                    UpstreamError::Rejected(format!("{message} ({code})"))
                });
            }
            b'S' => {
                let (k, v) = codec::parse_parameter_status(&body)?;
                server_params.push((k.to_string(), v.to_string()));
            }
            b'K' => cancel = codec::parse_backend_key(&body)?,
            b'N' | b'v' => {}
            b'Z' => {
                return Ok(Upstream {
                    stream: s,
                    params: server_params,
                    pid: cancel.0,
                    key: cancel.1,
                    leftover: buf,
                });
            }
            _ => {
                return Err(UpstreamError::Protocol(CodecError::Malformed(
                    "start-up reply",
                )));
            }
        }
    }
}

/// Sends a cancel request for the upstream session `(pid, key)`.
pub async fn cancel(t: &Target, pid: i32, key: i32) -> Result<(), UpstreamError> {
    let mut s = open_stream(t).await?;
    let mut out = BytesMut::new();
    codec::cancel_request(&mut out, pid, key);
    write_flush(&mut s, &out)
        .await
        .map_err(|_| UpstreamError::Closed)?;
    let _ = s.shutdown().await;
    Ok(())
}
