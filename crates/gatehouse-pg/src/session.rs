//! One client, from its first packet to the end: negotiate TLS, read the
//! startup packet, authenticate the token, authorize the connection, open
//! the upstream session, then hand over to the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use gatehouse_core::model::{Authn, ConnectionKind, Principal};
use gatehouse_core::now_ms;
use gatehouse_core::policy::Verdict;
use gatehouse_store::{RecordEvent, SessionRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::PgProxy;
use crate::codec::{self, Severity, Startup};
use crate::registry::SessionInfo;
use crate::relay;
use crate::stream::{PgStream, write_flush};
use crate::upstream::{self, Target, UpstreamError};

/// The client has this long to finish start-up and authentication.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Client parameters passed on to the upstream session.
/// Settings drivers send at every start-up (libpq, pgjdbc, tokio-postgres,
/// node-postgres, asyncpg) that only say how values are read and written:
/// passed on without asking the policy, as before start-up settings were
/// decided (so that a policy whose default is `deny` does not refuse every
/// connection), and not recorded as statements of the session.
const FORMAT_SETTINGS: &[&str] = &[
    "client_encoding",
    "datestyle",
    "timezone",
    "intervalstyle",
    "extra_float_digits",
];

/// Whether a start-up setting passes without asking the policy: the
/// [`FORMAT_SETTINGS`], and `search_path`, which drivers also send (it is
/// recorded, as it decides which tables statements reach).
fn driver_setting(name: &str) -> bool {
    FORMAT_SETTINGS.contains(&name) || name == "search_path"
}

/// Start-up parameters of the protocol itself, never settings of the
/// upstream session (whatever their case, or in `options`).
const PROTOCOL_PARAMS: &[&str] = &["user", "database", "replication", "options"];

/// The settings a client asked for at start-up, for the upstream session:
/// each start-up parameter but [`PROTOCOL_PARAMS`], `application_name`
/// and the protocol's extensions (`_pq_.…`), and each `-c name=value` or `--name=value` switch of
/// `options` (PGOPTIONS), which is split as the server splits it: at
/// whitespace, a backslash taking the next character as it is. Names are
/// setting names (letters, digits, `_`, `.`; `-` read as `_`).
fn startup_settings(params: &[(String, String)]) -> Result<Vec<(String, String)>, Refusal> {
    let bad = |what: String| {
        refuse("22023", format!("Gatehouse does not pass on {what}"))
            .hint("start-up settings are -c name=value (or --name=value) in options, or parameters of their own")
    };
    let mut settings = Vec::new();
    let mut add = |name: &str, value: &str| -> Result<(), Refusal> {
        let name = name.replace('-', "_");
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        let name = name.to_ascii_lowercase();
        if !ok || PROTOCOL_PARAMS.contains(&name.as_str()) {
            return Err(bad(format!("the start-up setting {name:?}")));
        }
        settings.push((name, value.to_string()));
        Ok(())
    };
    for (k, v) in params {
        // Gatehouse sets application_name itself.
        let own = PROTOCOL_PARAMS.contains(&k.as_str()) || k == "application_name";
        if own || k.starts_with("_pq_.") {
            continue;
        }
        add(k, v)?;
    }
    if let Some((_, options)) = params.iter().find(|(k, _)| k == "options") {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut chars = options.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => word.extend(chars.next()),
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        let mut words = words.into_iter();
        while let Some(w) = words.next() {
            let setting = if w == "-c" {
                words.next().unwrap_or_default()
            } else if let Some(rest) = w.strip_prefix("-c").or_else(|| w.strip_prefix("--")) {
                rest.to_string()
            } else {
                return Err(bad(format!("the start-up option {w:?}")));
            };
            let Some((name, value)) = setting.split_once('=') else {
                return Err(bad(format!("the start-up option {setting:?} (no value)")));
            };
            add(name, value)?;
        }
    }
    Ok(settings)
}

/// The start-up settings of `params` as [`startup_settings`] reads them,
/// or why they are refused: for the `pg_startup` fuzz target.
#[doc(hidden)]
pub fn read_startup_settings(params: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    startup_settings(params).map_err(|r| r.message)
}

/// `SET name TO 'value'`: how the policy sees a start-up setting. The
/// parts of a custom setting's name (`app.user`) are quoted: they may be
/// words SQL reserves, which would not parse (and be refused) unquoted.
/// Names are ASCII letters, digits, `_` and `.` ([`startup_settings`]).
fn set_statement(name: &str, value: &str) -> String {
    let value = value.replace('\'', "''");
    if name.contains('.') {
        let parts: Vec<String> = name.split('.').map(|p| format!("\"{p}\"")).collect();
        format!("SET {} TO '{value}'", parts.join("."))
    } else {
        format!("SET {name} TO '{value}'")
    }
}

/// A failure shown to the client as a FATAL error with a SQLSTATE.
struct Refusal {
    code: &'static str,
    message: String,
    hint: Option<String>,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        hint: None,
    }
}

impl Refusal {
    fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
}

pub async fn handle(proxy: Arc<PgProxy>, tcp: TcpStream, peer: SocketAddr) {
    let started = tokio::time::timeout(STARTUP_TIMEOUT, async {
        let (mut stream, params) = match negotiate(&proxy, PgStream::Plain(tcp), peer).await {
            Some(x) => x,
            None => return None,
        };
        let r = match params {
            Ok(params) => start(&proxy, &mut stream, peer, &params).await,
            Err(r) => Err(r),
        };
        Some((stream, r))
    })
    .await;
    let (mut stream, result) = match started {
        Ok(Some(x)) => x,
        Ok(None) | Err(_) => return,
    };
    let ready = match result {
        Ok(Some(ready)) => ready,
        Ok(None) => return,
        Err(r) => {
            if matches!(r.code, "28P01" | "28000" | "42501" | "3D000") {
                // Refused logins are audit events (the message never holds
                // the credential).
                proxy
                    .access
                    .audit()
                    .login_refused(
                        &peer.ip().to_string(),
                        serde_json::json!({"protocol": "postgres", "client": peer.to_string(), "code": r.code, "message": r.message}),
                    )
                    .await;
            }
            let mut out = BytesMut::new();
            codec::error(
                &mut out,
                Severity::Fatal,
                r.code,
                &r.message,
                r.hint.as_deref(),
            );
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let how = How {
        protocol: "postgres",
        client_addr: peer.to_string(),
        local: false,
    };
    run(proxy, stream, ready, how).await;
}

/// How a session was opened, for its recording and its relay.
struct How {
    protocol: &'static str,
    client_addr: String,
    /// Opened inside Gatehouse (query API, MCP): statements for review are
    /// not waited on, and masked columns are announced.
    local: bool,
}

/// Why a session opened inside Gatehouse could not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    /// SQLSTATE: 3D000 unknown connection, 42501 no access, 08006 upstream
    /// unreachable, …
    pub code: &'static str,
    pub message: String,
}

/// Opens a session for `principal` on `connection` inside Gatehouse: the
/// same authorization, upstream login, policy, masking, reviews and
/// recording as a PostgreSQL client's, over an in-memory pipe. Returns
/// the client end, past start-up.
pub async fn open_local(
    proxy: Arc<PgProxy>,
    principal: Principal,
    connection: &str,
    protocol: &'static str,
    client_addr: String,
) -> Result<crate::local::Client, OpenError> {
    let ready = connect(&proxy, principal, connection, &[])
        .await
        .map_err(|r| OpenError {
            code: r.code,
            message: r.message,
        })?;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let how = How {
        protocol,
        client_addr,
        local: true,
    };
    tokio::spawn(run(proxy.clone(), PgStream::Local(theirs), ready, how));
    crate::local::Client::start(proxy, ours)
        .await
        .map_err(|message| OpenError {
            code: "08006",
            message,
        })
}

/// What start-up produced: who, where to, and the upstream session.
struct Ready {
    principal: Principal,
    connection: String,
    upstream: upstream::Upstream,
    /// The stored password, for the catalog lookups masking needs.
    password: Option<gatehouse_core::secret::Secret>,
    target: Target,
    max_session: Option<Duration>,
    statement_timeout: Option<Duration>,
    /// Result rows kept per statement in the recording.
    record_rows: usize,
    /// The just-in-time grant that opened the connection to the caller.
    via_grant: Option<String>,
    /// Its place among the connection's sessions, given back when it ends.
    slot: crate::registry::Slot,
    /// The start-up settings to record: each as its `SET` statement, its
    /// verdict, and why it was not applied (if it was not).
    startup: Vec<(String, Verdict, Option<String>)>,
    /// The connection is read-only.
    read_only: bool,
}

async fn read_startup(stream: &mut PgStream) -> Result<Option<Startup>, Refusal> {
    let len = match stream.read_i32().await {
        Ok(l) => l,
        Err(_) => return Ok(None),
    };
    let len = usize::try_from(len).unwrap_or(0);
    if !(8..=codec::MAX_STARTUP).contains(&len) {
        return Err(refuse("08P01", "invalid start-up packet length"));
    }
    let mut body = vec![0u8; len - 4];
    if stream.read_exact(&mut body).await.is_err() {
        return Ok(None);
    }
    codec::parse_startup(&body)
        .map(Some)
        .map_err(|e| refuse("08P01", format!("invalid start-up packet: {e}")))
}

/// The first byte of a TLS handshake record. A client that starts TLS at
/// once (libpq 17's `sslnegotiation=direct`) sends it where a start-up
/// packet's length would be, which could not begin with it (that length
/// would be over 369 MB).
const TLS_HANDSHAKE: u8 = 0x16;

/// Answers SSL and GSS requests and cancel requests until the startup
/// packet arrives. `None` when the client went away (or only cancelled).
async fn negotiate(
    proxy: &PgProxy,
    mut stream: PgStream,
    peer: SocketAddr,
) -> Option<(PgStream, Result<Vec<(String, String)>, Refusal>)> {
    if let PgStream::Plain(tcp) = &stream {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await.ok()? == 1 && first[0] == TLS_HANDSHAKE {
            // Direct TLS: no SSLRequest, so no 'S' either. Without a
            // certificate there is nothing to answer it with.
            let tls = proxy.tls.as_ref()?;
            stream = accept_tls(tls, stream, peer).await?;
            // As PostgreSQL requires: the client must have asked for the
            // protocol by ALPN, so that no other protocol's TLS client is
            // taken for a PostgreSQL one.
            if stream.alpn_protocol() != Some(crate::tls::ALPN_POSTGRESQL) {
                return Some((
                    stream,
                    Err(refuse(
                        "08P01",
                        "Gatehouse: a direct TLS connection must negotiate the ALPN protocol \"postgresql\"",
                    )
                    .hint("use a PostgreSQL 17 or later client with sslnegotiation=direct, or sslnegotiation=postgres")),
                ));
            }
        }
    }
    loop {
        let packet = match read_startup(&mut stream).await {
            Ok(Some(p)) => p,
            Ok(None) => return None,
            Err(r) => return Some((stream, Err(r))),
        };
        match packet {
            Startup::Ssl => {
                let tls = proxy.tls.as_ref().filter(|_| !stream.is_tls());
                let answer = if tls.is_some() { b'S' } else { b'N' };
                stream.write_all(&[answer]).await.ok()?;
                if let Some(tls) = tls {
                    stream = accept_tls(tls, stream, peer).await?;
                }
            }
            Startup::GssEnc => stream.write_all(b"N").await.ok()?,
            Startup::Cancel { pid, key } => {
                crate::remote_cancel::cancel(proxy, (pid, key)).await;
                // Close as PostgreSQL does: over TLS, with a close_notify. libpq 17's
                // cancel (PQcancelCreate, psycopg's cancel_safe) reads until the server
                // closes and takes a TLS EOF without close_notify as a failed cancel.
                let _ = stream.shutdown().await;
                return None;
            }
            Startup::Startup { params, minor } => {
                // Protocol options (`_pq_.…`) are the protocol's, not
                // settings (`startup_settings` skips them), and none is
                // known here. A later minor version (libpq 18's 3.2) or an
                // option is answered, as PostgreSQL does, with the version
                // spoken (3.0) and the options not known; the client goes
                // on in 3.0.
                let options: Vec<&str> = params
                    .iter()
                    .filter(|(k, _)| k.starts_with("_pq_."))
                    .map(|(k, _)| k.as_str())
                    .collect();
                if minor > 0 || !options.is_empty() {
                    let mut out = BytesMut::new();
                    codec::negotiate_protocol_version(&mut out, &options);
                    stream.write_all(&out).await.ok()?;
                }
                return Some((stream, Ok(params)));
            }
        }
    }
}

/// TLS on a plain client stream (`None` when the handshake failed).
async fn accept_tls(
    tls: &crate::tls::ServerTls,
    stream: PgStream,
    peer: SocketAddr,
) -> Option<PgStream> {
    let PgStream::Plain(tcp) = stream else {
        return Some(stream);
    };
    match tokio_rustls::TlsAcceptor::from(tls.config.clone())
        .accept(tcp)
        .await
    {
        Ok(t) => Some(PgStream::Server(Box::new(t))),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "TLS handshake with a client failed");
            None
        }
    }
}

async fn start(
    proxy: &PgProxy,
    stream: &mut PgStream,
    peer: SocketAddr,
    params: &[(String, String)],
) -> Result<Option<Ready>, Refusal> {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let user = param("user").unwrap_or_default().to_string();
    let database = param("database")
        .filter(|d| !d.is_empty())
        .unwrap_or(&user)
        .to_string();
    if param("replication").is_some_and(|r| r != "false" && r != "0") {
        return Err(refuse(
            "0A000",
            "replication connections are not supported through Gatehouse",
        ));
    }
    if !plaintext_ok(stream.is_tls(), peer.ip(), proxy.allow_plaintext_remote) {
        return Err(
            refuse("28000", "Gatehouse requires TLS from non-local clients")
                .hint("connect with sslmode=require (or verify-full with Gatehouse's certificate)"),
        );
    }

    // Authenticate: the password is the caller's Gatehouse token.
    let mut out = BytesMut::new();
    codec::auth_request(&mut out, 3, &[]);
    if write_flush(stream, &out).await.is_err() {
        return Ok(None);
    }
    let mut buf = BytesMut::with_capacity(1024);
    let token = loop {
        match codec::frame(&buf, 64 * 1024) {
            Ok(Some((b'p', total))) => {
                let mut msg = buf.split_to(total);
                msg.advance(5);
                let mut p = &msg[..];
                let t = codec::cstr(&mut p)
                    .ok_or_else(|| refuse("08P01", "malformed password message"))?;
                break gatehouse_core::secret::Secret::new(t);
            }
            Ok(Some(_)) => return Err(refuse("08P01", "expected a password message")),
            Ok(None) => {}
            Err(e) => return Err(refuse("08P01", format!("invalid password message: {e}"))),
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    };
    let principal = proxy.auth.authenticate(token.expose()).await.map_err(|e| {
        let code = if matches!(e, gatehouse_identity::AuthError::Unavailable(_)) {
            "08006"
        } else {
            "28P01"
        };
        refuse(code, format!("Gatehouse: {e}")).hint(
            "use a Gatehouse token (gatehouse tokens create) or an OIDC token as the password",
        )
    })?;

    connect(proxy, principal, &database, params).await.map(Some)
}

/// Authorizes `principal` on connection `database` and opens the upstream
/// session with the stored credential.
async fn connect(
    proxy: &PgProxy,
    principal: Principal,
    database: &str,
    params: &[(String, String)],
) -> Result<Ready, Refusal> {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let database = database.to_string();
    let not_found = || {
        refuse(
            "3D000",
            format!("Gatehouse has no PostgreSQL connection named \"{database}\""),
        )
        .hint("the database name selects the connection: see `gatehouse connections list`")
    };
    use gatehouse_access::connect::Refusal as R;
    let gatehouse_access::connect::Authorized {
        record: rec,
        credential: cred,
        via_grant,
    } = proxy
        .access
        .authorize_connection(
            &proxy.keys.get(),
            &principal,
            &database,
            ConnectionKind::Postgres,
        )
        .await
        .map_err(|r| match r {
            R::StoreDown => refuse(
                "08006",
                "Gatehouse's state store is not answering; try again shortly",
            ),
            R::NotFound => not_found(),
            R::Denied { groups } => refuse(
                "42501",
                format!(
                    "{} may not use connection \"{database}\"",
                    principal.subject
                ),
            )
            .hint(format!("it is open to the groups: {}", groups.join(", "))),
            R::Credential => refuse(
                "XX000",
                "Gatehouse cannot open the stored credential of this connection; an administrator must check the master key",
            ),
        })?;

    // A place among the connection's sessions, before its upstream session.
    let slot = proxy
        .sessions
        .take_slot(&rec.spec.name, rec.spec.settings.max_sessions)
        .await
        .map_err(|no| match no {
            crate::NoPlace::Full { .. } => refuse("53300", no.to_string())
                .hint("an administrator can raise the connection's max_sessions"),
            crate::NoPlace::StoreDown { .. } => refuse("08006", no.to_string()),
        })?;

    // The client's start-up settings pass the policy as the SET statements
    // they amount to, like any statement (a rule refusing `SET role` refuses
    // `-c role=…` in PGOPTIONS too), and are recorded as such.
    let mut settings = startup_settings(params)?;
    let mut recorded = Vec::new();
    let timeout = rec.spec.settings.statement_timeout_ms;
    let read_only = rec.spec.settings.read_only == Some(true);
    let engine = proxy.policy.engine();
    let decide = !engine.allows_everything();
    let grant = if decide && !settings.is_empty() {
        proxy.access.grant_for(&principal.subject, &rec.spec.name)
    } else {
        None
    };
    let grant = grant.as_ref().map(|(id, level)| (id.as_str(), *level));
    // A setting's value may hold data (`-c app.user_email=…`): the
    // caller's content detectors redact it in the recording and in the
    // audit log's hash, as they do a statement's.
    let detectors = if decide && !settings.is_empty() {
        engine
            .mask_plan(&principal, &rec.spec.name)
            .and_then(|p| p.detectors.clone())
    } else {
        None
    };
    let as_recorded = |sql: &str| {
        detectors
            .as_ref()
            .and_then(|d| d.redact(sql))
            .unwrap_or_else(|| sql.to_string())
    };
    for (name, value) in &settings {
        let sql = set_statement(name, value);
        let verdict = if !decide || driver_setting(name) {
            Verdict::Allow { rule: None }
        } else {
            engine
                .decide_with_grant(&principal, &rec.spec.name, &sql, now_ms(), grant)
                .verdict
        };
        match verdict {
            Verdict::Allow { .. } => {}
            Verdict::Deny { rule, message } => {
                tracing::info!(principal = %principal.subject, connection = %rec.spec.name, %rule, setting = %name, "a start-up setting was refused");
                audit_refused_setting(proxy, &principal, &rec.spec.name, &as_recorded(&sql), &rule)
                    .await;
                return Err(refuse(
                    "42501",
                    format!("Gatehouse refused the start-up setting {name}: {message}"),
                )
                .hint(format!("rule: {rule}")));
            }
            Verdict::Review { rule, .. } => {
                audit_refused_setting(proxy, &principal, &rec.spec.name, &as_recorded(&sql), &rule)
                    .await;
                return Err(refuse(
                    "42501",
                    format!("the start-up setting {name} needs a review (rule {rule})"),
                )
                .hint(
                    "connect without it and SET it in the session, where it can be held for review",
                ));
            }
        }
        // What drivers set at every start-up to read values (encoding,
        // date and time formats) is not worth a record each session.
        if !FORMAT_SETTINGS.contains(&name.as_str()) {
            let not_applied = if name.eq_ignore_ascii_case("statement_timeout") {
                timeout.map(|ms| {
                    format!(
                        "not applied: connection \"{}\" sets statement_timeout itself ({ms} ms)",
                        rec.spec.name
                    )
                })
            } else if read_only && gatehouse_policy::analyze::is_read_only_setting(name) {
                Some(format!(
                    "not applied: connection \"{}\" is read-only",
                    rec.spec.name
                ))
            } else {
                None
            };
            recorded.push((as_recorded(&sql), verdict, not_applied));
        }
    }
    // The connection's statement timeout is a limit the client does not set.
    if let Some(ms) = timeout {
        settings.retain(|(name, _)| !name.eq_ignore_ascii_case("statement_timeout"));
        settings.push(("statement_timeout".into(), ms.to_string()));
    }
    // A read-only connection's sessions start in read-only mode, which the
    // database enforces; the client's own setting of it is not applied.
    if read_only {
        settings.retain(|(name, _)| !gatehouse_policy::analyze::is_read_only_setting(name));
        settings.push(("default_transaction_read_only".into(), "on".into()));
    }

    // Open the upstream session with the stored credentials.
    let target = Target::from_url(&rec.spec.url).map_err(|e| refuse("08006", e.to_string()))?;
    let app_name = param("application_name").unwrap_or("gatehouse");
    let mut extra_ref: Vec<(&str, &str)> = vec![("application_name", app_name)];
    extra_ref.extend(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let up = upstream::connect(&target, cred.get("password"), &extra_ref)
        .await
        .map_err(|e| {
            let code = match e {
                UpstreamError::Unreachable(..) | UpstreamError::Closed => "08006",
                _ => "08004",
            };
            refuse(
                code,
                format!("Gatehouse could not open connection \"{database}\": {e}"),
            )
        })?;
    Ok(Ready {
        principal,
        connection: rec.spec.name,
        upstream: up,
        password: cred.get("password").cloned(),
        target,
        max_session: rec.spec.settings.max_session_secs.map(Duration::from_secs),
        statement_timeout: rec
            .spec
            .settings
            .statement_timeout_ms
            .map(Duration::from_millis),
        record_rows: usize::try_from(
            rec.spec
                .settings
                .record_rows
                .unwrap_or(gatehouse_core::model::DEFAULT_RECORD_ROWS),
        )
        .unwrap_or(usize::MAX),
        via_grant,
        slot,
        startup: recorded,
        read_only,
    })
}

/// Audits a start-up setting the policy refused, as a refused statement is
/// (the statement's hash, not its text).
async fn audit_refused_setting(
    proxy: &PgProxy,
    principal: &Principal,
    connection: &str,
    sql: &str,
    rule: &str,
) {
    let detail = serde_json::json!({"connection": connection, "start_up_setting": true});
    proxy
        .access
        .audit()
        .statement_denied(principal, connection, rule, sql, detail)
        .await;
}

async fn run(proxy: Arc<PgProxy>, mut client: PgStream, ready: Ready, how: How) {
    let Ready {
        principal,
        connection,
        mut upstream,
        password,
        target,
        max_session,
        statement_timeout,
        record_rows,
        via_grant,
        slot: _slot,
        startup,
        read_only,
    } = ready;
    let catalog = crate::catalog::CatalogAccess {
        connection: connection.clone(),
        target: target.clone(),
        password,
    };
    let session_id = new_session_id();
    let token = match &principal.authn {
        Authn::Token { name } => Some(name.clone()),
        Authn::Oidc { .. } => None,
    };
    let info = SessionInfo {
        id: session_id.clone(),
        principal: principal.subject.clone(),
        connection: connection.clone(),
        token,
        groups: principal.groups.clone(),
        expires_at: principal.expires_at,
        started_at: now_ms(),
        grants: via_grant.into_iter().collect(),
    };
    let reg = proxy
        .sessions
        .register(info, Some(target), (upstream.pid, upstream.key));
    let key = reg.key;

    let mut out = BytesMut::new();
    codec::auth_request(&mut out, 0, &[]);
    for (k, v) in &upstream.params {
        codec::parameter_status(&mut out, k, v);
    }
    codec::backend_key_data(&mut out, key.0, key.1);
    if how.local {
        codec::parameter_status(&mut out, crate::local::SESSION_PARAM, &session_id);
    }
    codec::ready_for_query(&mut out, b'I');
    let authn = match &principal.authn {
        Authn::Token { name } => format!("token:{name}"),
        Authn::Oidc { issuer } => format!("oidc:{issuer}"),
    };
    let recorded = proxy
        .recorder
        .record(RecordEvent::SessionStart(SessionRecord {
            id: session_id.clone(),
            principal: principal.subject.clone(),
            authn,
            connection: connection.clone(),
            protocol: how.protocol.into(),
            client_addr: how.client_addr.clone(),
            started_at: now_ms(),
            ended_at: None,
            end_reason: None,
        }));
    if let Err(e) = recorded {
        // Fail closed: a session that cannot be recorded does not start.
        let mut out = BytesMut::new();
        codec::error(
            &mut out,
            Severity::Fatal,
            "53000",
            &format!("Gatehouse: {e}"),
            None,
        );
        let _ = write_flush(&mut client, &out).await;
        proxy.sessions.unregister(key);
        return;
    }
    // Room for the start-up settings' records, or the session does not
    // start (fail closed, as for its statements).
    let mut settings = Vec::with_capacity(startup.len());
    for (sql, verdict, not_applied) in startup {
        let admission = proxy.recorder.admit();
        match admission {
            Some(admission) => settings.push(relay::StartupSetting {
                sql,
                verdict,
                not_applied,
                admission,
            }),
            None if proxy.record_fail_open => {}
            None => {
                let mut out = BytesMut::new();
                codec::error(
                    &mut out,
                    Severity::Fatal,
                    "53400",
                    "Gatehouse: the session recorder is behind, so the session's start-up settings cannot be recorded; try again shortly",
                    None,
                );
                let _ = write_flush(&mut client, &out).await;
                proxy.sessions.unregister(key);
                let _ = proxy.recorder.record(RecordEvent::SessionEnd {
                    id: session_id,
                    at: now_ms(),
                    reason: "the session recorder is behind".into(),
                });
                return;
            }
        }
    }
    // Logins by database clients are audit events (the API's and MCP's
    // sessions are recorded but not audited one by one).
    let audited = (!how.local).then(|| (proxy.access.audit().clone(), principal.clone()));
    if let Some((audit, who)) = &audited {
        audit.credential_used(who, "postgres").await;
        audit
            .record(
                who,
                "session.start",
                &session_id,
                serde_json::json!({"connection": connection, "protocol": how.protocol, "client": how.client_addr}),
            )
            .await;
    }
    let reason = if write_flush(&mut client, &out).await.is_err() {
        "client closed".to_string()
    } else {
        let leftover = std::mem::take(&mut upstream.leftover);
        let ctx = relay::Ctx {
            proxy: proxy.clone(),
            principal,
            connection,
            session_id: session_id.clone(),
            max_session,
            statement_timeout,
            upstream_key: (upstream.pid, upstream.key),
            catalog,
            grants: reg.grants,
            cancelled: reg.cancelled,
            local: how.local,
            read_only,
            record_rows,
            rendering: {
                let mut r = crate::values::Rendering::default();
                for (name, value) in &upstream.params {
                    r.set_parameter(name, value);
                }
                r
            },
        };
        relay::run(ctx, client, upstream.stream, leftover, settings, reg.kill).await
    };
    proxy.sessions.unregister(key);
    if let Some((audit, who)) = &audited {
        audit
            .record(
                who,
                "session.end",
                &session_id,
                serde_json::json!({"reason": reason}),
            )
            .await;
    }
    let _ = proxy.recorder.record(RecordEvent::SessionEnd {
        id: session_id,
        at: now_ms(),
        reason,
    });
}

/// Whether the token may be sent over this connection: always over TLS, in
/// clear only from loopback unless explicitly allowed.
fn plaintext_ok(tls: bool, peer: std::net::IpAddr, allow_remote: bool) -> bool {
    tls || allow_remote || peer.is_loopback() || peer.to_canonical().is_loopback()
}

fn new_session_id() -> String {
    let mut b = [0u8; 12];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    format!("pg_{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::{plaintext_ok, set_statement, startup_settings};

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn start_up_settings_come_from_parameters_and_options() {
        let got = startup_settings(&params(&[
            ("user", "bot"),
            ("database", "shop"),
            ("application_name", "app"),
            ("client_encoding", "UTF8"),
            ("_pq_.compression", "on"),
            ("jit", "off"),
            (
                "options",
                "-c search_path=a\\ b,public  -cstatement_timeout=5s --lock-timeout=1s -c app.note=it\\'s",
            ),
        ]))
        .map_err(|r| r.message)
        .expect("settings");
        let want: Vec<(String, String)> = params(&[
            ("client_encoding", "UTF8"),
            ("jit", "off"),
            ("search_path", "a b,public"),
            ("statement_timeout", "5s"),
            ("lock_timeout", "1s"),
            ("app.note", "it's"),
        ]);
        assert_eq!(got, want);
        assert_eq!(
            set_statement("app.note", "it's"),
            "SET \"app\".\"note\" TO 'it''s'"
        );
        // A reserved word as a part parses, quoted.
        assert_eq!(
            set_statement("myapp.user", "x"),
            "SET \"myapp\".\"user\" TO 'x'"
        );
        assert_eq!(set_statement("search_path", "a"), "SET search_path TO 'a'");
    }

    #[test]
    fn other_start_up_switches_and_odd_names_are_refused() {
        for options in ["-B 100", "-c novalue", "-c bad\"name=1", "--x;drop=1"] {
            let r = startup_settings(&params(&[("options", options)]));
            assert!(
                r.as_ref().is_err_and(|r| r.code == "22023"),
                "{options}: {:?}",
                r.map_err(|r| r.message)
            );
        }
        assert!(startup_settings(&params(&[("a b", "1")])).is_err());
        assert!(startup_settings(&params(&[("User", "postgres")])).is_err());
        assert!(startup_settings(&params(&[("options", "-c user=postgres")])).is_err());
    }

    #[test]
    fn tokens_travel_in_clear_only_on_loopback_unless_allowed() {
        let remote: std::net::IpAddr = "10.1.2.3"
            .parse()
            .unwrap_or(std::net::IpAddr::from([10, 1, 2, 3]));
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap_or(remote);
        assert!(plaintext_ok(
            false,
            std::net::IpAddr::from([127, 0, 0, 1]),
            false
        ));
        assert!(plaintext_ok(false, mapped, false));
        assert!(!plaintext_ok(false, remote, false));
        assert!(plaintext_ok(true, remote, false));
        assert!(plaintext_ok(false, remote, true));
    }
}
