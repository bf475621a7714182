//! The MySQL proxy: accepts clients, authenticates their token (sent as
//! the password), authorizes the connection, logs in upstream with the
//! stored credential, and hands over to the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::keyring::SharedKeyring;
use gatehouse_core::model::{Authn, ConnectionKind, Principal};
use gatehouse_core::now_ms;
use gatehouse_identity::Authenticator;
use gatehouse_pg::tls::SslMode;
use gatehouse_pg::{LiveSessions, SessionInfo};
use gatehouse_policy::PolicySource;
use gatehouse_store::recorder::Recorder;
use gatehouse_store::{RecordEvent, SessionRecord, Store};
use tokio::net::{TcpListener, TcpStream};

use crate::codec::{
    CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS, CLIENT_PROTOCOL_41, CLIENT_PS_MULTI_RESULTS,
    Command, SERVER_STATUS_AUTOCOMMIT,
};
use crate::handshake::{self, HandshakeConfig, PasswordExchange};
use crate::relay;
use crate::stream::MysqlStream;
use crate::upstream::{self, ConnectOptions, Target, UpstreamTls};

/// Everything a MySQL session needs from the rest of Gatehouse.
#[derive(Debug)]
pub struct MysqlProxy {
    pub store: Store,
    pub auth: Authenticator,
    pub keys: SharedKeyring,
    pub recorder: Recorder,
    pub policy: Arc<dyn PolicySource>,
    /// The certificate shown to clients (TLS is offered when set).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Accept tokens over plain TCP from non-loopback clients.
    pub allow_plaintext_remote: bool,
    pub sessions: LiveSessions,
    pub access: gatehouse_access::Access,
    pub record_fail_open: bool,
    /// `KILL`s of sessions another replica of a shared store holds, left
    /// there for it (rate-limited).
    pub remote_kills: gatehouse_pg::remote_cancel::RemoteCancels,
    /// What the views that statements name read, per connection (shared by
    /// the proxies of one server: a statement that may replace a view
    /// through either makes both ask again).
    pub views: Arc<gatehouse_policy::ViewCache<Arc<crate::views::ViewInfo>>>,
    /// Which function names are stored functions, per connection (shared
    /// and forgotten with `views`).
    pub functions: Arc<gatehouse_policy::ViewCache<()>>,
}

/// Accepts MySQL clients on `listener` until `shutdown` resolves.
pub async fn serve(
    proxy: Arc<MysqlProxy>,
    workers: gatehouse_pg::workers::Workers,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    gatehouse_pg::workers::accept(listener, &workers, shutdown, "MySQL", move |tcp, peer| {
        handle(proxy.clone(), tcp, peer)
    })
    .await;
    workers.stop();
}

/// Capabilities whose difference between the client and the upstream
/// would change the shape of replies.
const SHAPE: u32 =
    CLIENT_PROTOCOL_41 | CLIENT_DEPRECATE_EOF | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS;

/// The server version clients are greeted with.
pub const GREETING_VERSION: &str = "5.7.99-Gatehouse";

/// A refused login, shown as a MySQL error.
pub(crate) struct Refusal {
    pub code: u16,
    pub state: &'static str,
    pub message: String,
}

fn refuse(code: u16, state: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        state,
        message: message.into(),
    }
}

async fn handle(proxy: Arc<MysqlProxy>, tcp: TcpStream, peer: SocketAddr) {
    let mut config = HandshakeConfig::new(proxy.tls.clone().map(tokio_rustls::TlsAcceptor::from));
    // Never 0, which stands for sessions opened inside Gatehouse.
    config.connection_id = (rand::random::<u32>() & 0x7fff_ffff).max(1);
    // The greeting comes before the client names its connection, so the
    // upstream's version is not known yet. A 5.7 version keeps drivers
    // from choosing MySQL 8-only collations (utf8mb4_0900_ai_ci), which
    // MariaDB upstreams do not have.
    config.server_version = GREETING_VERSION.to_string();
    config.exchange = PasswordExchange::Auto;
    config.allow_plaintext_password = proxy.allow_plaintext_remote
        || peer.ip().is_loopback()
        || peer.ip().to_canonical().is_loopback();
    let mut login = match handshake::accept(tcp, &config).await {
        Ok(l) => l,
        Err(e) => {
            tracing::info!(client = %peer, error = %e, "a MySQL client's handshake failed");
            return;
        }
    };
    if login.database.as_deref().is_none_or(str::is_empty) {
        control(&proxy, login, peer).await;
        return;
    }
    let started = tokio::time::timeout(LOGIN_TIMEOUT, start(&proxy, &login)).await;
    let ready = match started {
        Ok(Ok(r)) => r,
        Ok(Err(r)) => {
            refuse_login(&proxy, &mut login, peer, &r).await;
            return;
        }
        Err(_) => return,
    };
    let how = How {
        protocol: "mysql",
        client_addr: peer.to_string(),
        caps: login.negotiated(),
        seq: login.seq,
        local: None,
        connection_id: config.connection_id,
        charset: login.charset,
    };
    run(proxy, login.stream, ready, how).await;
}

pub(crate) struct Ready {
    pub session_id: String,
    principal: Principal,
    connection: String,
    database: Option<String>,
    upstream: upstream::Upstream,
    /// What the upstream session was started with (see [`relay::Ctx`]).
    setup: Arc<[String]>,
    read_only: bool,
    max_session: Option<Duration>,
    /// The connection's statement timeout (enforced by a watchdog too).
    statement_timeout: Option<Duration>,
    record_rows: usize,
    via_grant: Option<String>,
    /// Its place among the connection's sessions, given back when it ends.
    slot: gatehouse_pg::Slot,
}

/// Logs in to the server a `mysql://` connection URL names, with the
/// stored `password`, asking for `caps`; returns the session and the
/// URL's database. Errors carry the MySQL client error code to show
/// (2003 unreachable or refused, 2026 TLS setup) and never the password.
pub async fn open_upstream(
    url: &str,
    password: Option<&gatehouse_core::secret::Secret>,
    caps: u32,
    charset: u8,
) -> Result<(upstream::Upstream, Option<String>), (u16, String)> {
    let (target, database, mode) = target(url).map_err(|e| (2003, e))?;
    let tls = match mode {
        SslMode::Disable => None,
        mode => {
            let config =
                gatehouse_pg::tls::client_config(mode, None).map_err(|e| (2026, e.to_string()))?;
            let server_name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(|e| (2026, format!("TLS server name: {e}")))?;
            Some(UpstreamTls {
                connector: tokio_rustls::TlsConnector::from(config),
                server_name,
                required: mode != SslMode::Prefer,
            })
        }
    };
    let options = ConnectOptions {
        database: database.clone(),
        capabilities: caps,
        charset,
        connect_attrs: vec![("program_name".into(), "gatehouse".into())],
        max_payload: relay::MAX_PACKET,
        ..ConnectOptions::default()
    };
    let empty = gatehouse_core::secret::Secret::default();
    let up = upstream::connect(&target, password.unwrap_or(&empty), tls.as_ref(), &options)
        .await
        .map_err(|e| (2003, e.to_string()))?;
    Ok((up, database))
}

/// The database a `mysql://` connection URL names, if it names one.
pub fn url_database(url: &str) -> Option<String> {
    target(url).ok().and_then(|(_, database, _)| database)
}

/// Where a `mysql://user@host:port/db?sslmode=…` connection URL points.
fn target(url: &str) -> Result<(Target, Option<String>, SslMode), String> {
    let u = url::Url::parse(url).map_err(|e| format!("the connection URL is not valid: {e}"))?;
    let host = u
        .host_str()
        .ok_or("the connection URL has no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let db = u.path().trim_start_matches('/');
    let mut mode = SslMode::Prefer;
    for (k, v) in u.query_pairs() {
        if k == "sslmode" || k == "ssl-mode" {
            mode = SslMode::parse(&v.to_ascii_lowercase()).ok_or_else(|| {
                format!("sslmode={v} is not supported: use disable, prefer, require or verify-full")
            })?;
        }
    }
    Ok((
        Target {
            host,
            port: u.port().unwrap_or(3306),
            user: percent(u.username()),
        },
        (!db.is_empty()).then(|| percent(db)),
        mode,
    ))
}

fn percent(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// How long checking a login's token (and opening its upstream session)
/// may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Ends a login with refusal `r`, audited (`login.refused`) when the
/// caller's token or access was at fault.
async fn refuse_login(
    proxy: &MysqlProxy,
    login: &mut handshake::ClientLogin,
    peer: SocketAddr,
    r: &Refusal,
) {
    if matches!(r.code, 1045 | 1044 | 1049) {
        proxy
            .access
            .audit()
            .login_refused(
                &peer.ip().to_string(),
                serde_json::json!({"protocol": "mysql", "client": peer.to_string(), "code": r.code, "message": r.message}),
            )
            .await;
    }
    let _ = handshake::send_err(&mut login.stream, login.seq, r.code, r.state, &r.message).await;
}

const NO_DATABASE: &str = "Gatehouse: name the connection as the database (e.g. `mysql -D shop`); see `gatehouse connections list`";

/// A login that names no connection (no database). It opens no upstream
/// session: once the caller's token is checked, the one thing it runs is
/// `KILL [QUERY | CONNECTION] ID` of one of the caller's own sessions, which
/// is how the `mysql` command line client cancels a statement on Ctrl+C (a
/// second login with no database). Gatehouse sends that KILL, if the
/// policy allows it on the session's connection, over a fresh upstream
/// login of that connection, with the session's upstream thread id. Any
/// other command is answered with 1046, saying to name a connection.
async fn control(proxy: &MysqlProxy, mut login: handshake::ClientLogin, peer: SocketAddr) {
    let principal = match tokio::time::timeout(LOGIN_TIMEOUT, authenticate(proxy, &login)).await {
        Ok(Ok(p)) => p,
        Ok(Err(r)) => {
            refuse_login(proxy, &mut login, peer, &r).await;
            return;
        }
        Err(_) => return,
    };
    let caps = login.negotiated();
    if handshake::send_ok(&mut login.stream, login.seq, caps, SERVER_STATUS_AUTOCOMMIT)
        .await
        .is_err()
    {
        return;
    }
    let mut stream = login.stream;
    loop {
        let packet = match tokio::time::timeout(
            Duration::from_secs(60),
            crate::stream::read_packet(&mut stream, 1 << 16),
        )
        .await
        {
            Ok(Ok(p)) => p,
            _ => return,
        };
        let seq = packet.last_seq.wrapping_add(1);
        let reply = match crate::codec::parse_command(&packet.payload) {
            Ok((Command::Quit, _)) => return,
            Ok((Command::Ping, _)) => Ok(()),
            Ok((Command::Query, text)) => match std::str::from_utf8(text)
                .ok()
                .and_then(relay::parse_kill)
            {
                Some((how, id)) => control_kill(proxy, &principal, &how, id, caps, login.charset)
                    .await
                    .inspect(|()| {
                        tracing::info!(principal = %principal.subject, client = %peer, id, "KILL from a login without a connection");
                    }),
                None => Err(refuse(1046, "3D000", NO_DATABASE)),
            },
            _ => Err(refuse(1046, "3D000", NO_DATABASE)),
        };
        let sent = match reply {
            Ok(()) => handshake::send_ok(&mut stream, seq, caps, SERVER_STATUS_AUTOCOMMIT).await,
            Err(r) => handshake::send_err(&mut stream, seq, r.code, r.state, &r.message).await,
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Runs `KILL {how}ID` for the caller's session with client id `id` (see
/// [`control`]).
async fn control_kill(
    proxy: &MysqlProxy,
    principal: &Principal,
    how: &str,
    id: u32,
    caps: u32,
    charset: u8,
) -> Result<(), Refusal> {
    let sql = format!("KILL {how}{id}");
    // A refusal is audited as any refused statement is (this login has no
    // session of its own: the target is the caller).
    let refused = |rule: &str, message: String, connection: Option<&str>| {
        let detail = serde_json::json!({
            "connection": connection,
            "protocol": "mysql",
            "control_login": true,
        });
        proxy.access.audit().statement_denied_later(
            principal,
            &principal.subject,
            rule,
            &sql,
            detail,
        );
        refuse(
            relay::DENIED,
            "42000",
            format!("Gatehouse blocked this statement (rule {rule}): {message}"),
        )
    };
    let Some(target) = proxy.sessions.mysql_session(id, &principal.subject) else {
        // Another replica of a shared store may hold it: it decides there.
        let hash = gatehouse_pg::mysql_kill_hash(
            gatehouse_pg::KillKind::of(how),
            id,
            &principal.subject,
            None,
        );
        if proxy.remote_kills.forward_hash(&proxy.store, &hash).await {
            tracing::info!(principal = %principal.subject, id, "a KILL of no session here, passed to the other replicas");
            return Ok(());
        }
        return Err(refused(
            "kill",
            format!(
                "{} has no session with id {id} here (a KILL may end only your own sessions, by the id Gatehouse gave them)",
                principal.subject
            ),
            None,
        ));
    };
    if let Err((rule, message)) = kill_allowed(proxy, principal, &target.connection, &sql) {
        return Err(refused(&rule, message, Some(&target.connection)));
    }
    let done = match relay::upstream_kill(&target, how) {
        // A statement waiting for review was refused instead.
        None => Ok(()),
        Some(sql) => kill_upstream(proxy, principal, &target.connection, &sql, caps, charset).await,
    };
    proxy
        .access
        .audit()
        .record(
            principal,
            "statement.kill",
            &target.id,
            serde_json::json!({"connection": target.connection, "kill": how.trim(), "ok": done.is_ok()}),
        )
        .await;
    done
}

/// Whether the policy in force lets `principal` run `sql` (a KILL) on
/// `connection`: `Err` with the rule and message that refuse it (a review
/// too: a KILL is not held).
pub(crate) fn kill_allowed(
    proxy: &MysqlProxy,
    principal: &Principal,
    connection: &str,
    sql: &str,
) -> Result<(), (String, String)> {
    let engine = proxy.policy.engine();
    let grant = proxy.access.grant_for(&principal.subject, connection);
    let d = engine.decide_with_grant_in(
        gatehouse_policy::SqlDialect::Mysql,
        principal,
        connection,
        sql,
        now_ms(),
        grant.as_ref().map(|(id, level)| (id.as_str(), *level)),
    );
    match d.verdict {
        gatehouse_core::policy::Verdict::Allow { .. } => Ok(()),
        gatehouse_core::policy::Verdict::Deny { rule, message }
        | gatehouse_core::policy::Verdict::Review { rule, message, .. } => Err((rule, message)),
    }
}

/// A fresh upstream login of `connection`, as `principal` may use it, for
/// Gatehouse's own statements beside a session (a `KILL`, a look-up of
/// views).
pub(crate) async fn side_login(
    proxy: &MysqlProxy,
    principal: &Principal,
    connection: &str,
    caps: u32,
    charset: u8,
) -> Result<upstream::Upstream, Refusal> {
    let authorized = proxy
        .access
        .authorize_connection(
            &proxy.keys.get(),
            principal,
            connection,
            ConnectionKind::Mysql,
        )
        .await
        .map_err(|_| {
            refuse(
                relay::DENIED,
                "42000",
                format!(
                    "Gatehouse blocked this statement: {} may not use connection \"{connection}\"",
                    principal.subject
                ),
            )
        })?;
    let rec = authorized.record;
    let (up, _) = open_upstream(
        &rec.spec.url,
        authorized.credential.get("password"),
        caps,
        charset,
    )
    .await
    .map_err(|(code, e)| {
        refuse(
            code,
            "HY000",
            format!("Gatehouse could not open connection \"{connection}\": {e}"),
        )
    })?;
    Ok(up)
}

/// Runs `sql` (a KILL) over a fresh upstream login of `connection`, as
/// `principal` may use it.
pub(crate) async fn kill_upstream(
    proxy: &MysqlProxy,
    principal: &Principal,
    connection: &str,
    sql: &str,
    caps: u32,
    charset: u8,
) -> Result<(), Refusal> {
    let mut up = side_login(proxy, principal, connection, caps, charset).await?;
    up.query(sql).await.map(|_| ()).map_err(|e| {
        refuse(
            1094,
            "HY000",
            format!("Gatehouse: {sql} on connection \"{connection}\" failed: {e}"),
        )
    })
}

async fn authenticate(
    proxy: &MysqlProxy,
    login: &handshake::ClientLogin,
) -> Result<Principal, Refusal> {
    proxy
        .auth
        .authenticate(login.password.expose())
        .await
        .map_err(|e| {
            let code = if matches!(e, gatehouse_identity::AuthError::Unavailable(_)) {
                2013
            } else {
                1045
            };
            refuse(
                code,
                "28000",
                format!(
                    "Access denied: Gatehouse: {e} (use a Gatehouse token or an OIDC token as the password)"
                ),
            )
        })
}

async fn start(proxy: &MysqlProxy, login: &handshake::ClientLogin) -> Result<Ready, Refusal> {
    let principal = authenticate(proxy, login).await?;
    let Some(name) = login.database.clone().filter(|d| !d.is_empty()) else {
        return Err(refuse(1046, "3D000", NO_DATABASE));
    };
    connect(proxy, principal, &name, login.negotiated(), login.charset).await
}

/// Authorizes `principal` on connection `name` and logs in upstream with
/// the stored credential, asking for the client's capabilities `caps`.
pub(crate) async fn connect(
    proxy: &MysqlProxy,
    principal: Principal,
    name: &str,
    caps: u32,
    charset: u8,
) -> Result<Ready, Refusal> {
    use gatehouse_access::connect::Refusal as R;
    let gatehouse_access::connect::Authorized {
        record: rec,
        credential: cred,
        via_grant,
    } = proxy
        .access
        .authorize_connection(&proxy.keys.get(), &principal, name, ConnectionKind::Mysql)
        .await
        .map_err(|r| match r {
            R::StoreDown => refuse(
                2013,
                "HY000",
                "Gatehouse's state store is not answering; try again shortly",
            ),
            R::NotFound => refuse(
                1049,
                "42000",
                format!(
                    "Gatehouse has no MySQL connection named \"{name}\" (the database name selects the connection: see `gatehouse connections list`)"
                ),
            ),
            R::Denied { groups } => refuse(
                1044,
                "42000",
                format!(
                    "Access denied: {} may not use connection \"{name}\" (it is open to the groups: {})",
                    principal.subject,
                    groups.join(", ")
                ),
            ),
            R::Credential => refuse(
                1045,
                "28000",
                "Gatehouse cannot open the stored credential of this connection; an administrator must check the master key",
            ),
        })?;
    // A place among the connection's sessions, before its upstream session
    // (1040: the server's own "Too many connections").
    let slot = proxy
        .sessions
        .take_slot(&rec.spec.name, rec.spec.settings.max_sessions)
        .await
        .map_err(|no| match no {
            gatehouse_pg::NoPlace::Full { .. } => refuse(1040, "08004", no.to_string()),
            gatehouse_pg::NoPlace::StoreDown { .. } => refuse(1105, "HY000", no.to_string()),
        })?;
    let (mut up, database) = open_upstream(&rec.spec.url, cred.get("password"), caps, charset)
        .await
        .map_err(|(code, e)| {
            refuse(
                code,
                "HY000",
                format!("Gatehouse could not open connection \"{name}\": {e}"),
            )
        })?;
    if (up.capabilities ^ caps) & SHAPE != 0 {
        return Err(refuse(
            2003,
            "HY000",
            format!(
                "connection \"{name}\": the database server and this client disagree on protocol features Gatehouse relays as is (capabilities {:#x} vs {:#x})",
                up.capabilities & SHAPE,
                caps & SHAPE
            ),
        ));
    }
    // What the upstream session starts with, and starts with again after a
    // COM_RESET_CONNECTION.
    let mut setup = Vec::new();
    if let Some(ms) = rec.spec.settings.statement_timeout_ms {
        setup.push(statement_timeout_sql(&up.server_version, ms));
    }
    let read_only = rec.spec.settings.read_only == Some(true);
    if read_only {
        setup.push(READ_ONLY_SQL.to_string());
    }
    for sql in &setup {
        up.query(sql).await.map_err(|e| {
            refuse(
                2013,
                "HY000",
                format!(
                    "Gatehouse could not start a session of connection \"{name}\" with {sql}: {e}"
                ),
            )
        })?;
    }
    Ok(Ready {
        session_id: new_session_id(),
        principal,
        connection: rec.spec.name,
        database,
        upstream: up,
        setup: setup.into(),
        read_only,
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
    })
}

/// What a read-only connection's upstream sessions start with: every
/// transaction after it is read-only (MySQL's and MariaDB's own refusal,
/// 1792, of any write), unless the session changes it, which the relay
/// refuses.
const READ_ONLY_SQL: &str = "SET SESSION TRANSACTION READ ONLY";

/// The statement that sets a connection's statement timeout of `ms` on the
/// upstream session: MariaDB's `max_statement_time` (seconds, every
/// statement), or MySQL's `max_execution_time` (milliseconds, `SELECT`s).
fn statement_timeout_sql(server_version: &str, ms: u64) -> String {
    if server_version.to_ascii_lowercase().contains("mariadb") {
        format!(
            "SET SESSION max_statement_time = {}.{:03}",
            ms / 1000,
            ms % 1000
        )
    } else {
        format!("SET SESSION max_execution_time = {ms}")
    }
}

fn new_session_id() -> String {
    let mut b = [0u8; 12];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    format!("my_{}", hex::encode(b))
}

/// How a session was opened, for its recording and its relay.
pub(crate) struct How {
    pub protocol: &'static str,
    pub client_addr: String,
    /// Capabilities in force with the client.
    pub caps: u32,
    /// Sequence id of the OK that ends the login.
    pub seq: u8,
    /// Opened inside Gatehouse (query API, MCP): events for its client.
    pub local: Option<tokio::sync::mpsc::UnboundedSender<relay::LocalEvent>>,
    /// The connection id the client was given in Gatehouse's greeting (0
    /// for sessions opened inside Gatehouse).
    pub connection_id: u32,
    /// The client's character set (collation id).
    pub charset: u8,
}

pub(crate) async fn run<S>(
    proxy: Arc<MysqlProxy>,
    mut client: MysqlStream<S>,
    ready: Ready,
    how: How,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Ready {
        session_id,
        principal,
        connection,
        database,
        upstream,
        setup,
        read_only,
        max_session,
        statement_timeout,
        record_rows,
        via_grant,
        slot: _slot,
    } = ready;
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
        .register_mysql(info, how.connection_id, upstream.connection_id);
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
        let _ = handshake::send_err(
            &mut client,
            how.seq,
            1927,
            "HY000",
            &format!("Gatehouse: {e}"),
        )
        .await;
        proxy.sessions.unregister(reg.key);
        return;
    }
    // Logins by database clients are audit events (the API's and MCP's
    // sessions are recorded but not audited one by one).
    let audit = proxy.access.audit().clone();
    let audited = how.local.is_none();
    if audited {
        audit.credential_used(&principal, "mysql").await;
        audit
            .record(
                &principal,
                "session.start",
                &session_id,
                serde_json::json!({"connection": connection, "protocol": how.protocol, "client": how.client_addr}),
            )
            .await;
    }
    let ok = handshake::send_ok(
        &mut client,
        how.seq,
        how.caps,
        crate::codec::SERVER_STATUS_AUTOCOMMIT,
    )
    .await;
    let reason = if ok.is_err() {
        "client closed".to_string()
    } else {
        let ctx = relay::Ctx {
            proxy: proxy.clone(),
            principal: principal.clone(),
            connection,
            session_id: session_id.clone(),
            database,
            setup,
            read_only,
            capabilities: how.caps,
            record_rows,
            max_session,
            statement_timeout,
            upstream_thread: upstream.connection_id,
            charset: how.charset,
            cancelled: reg.cancelled,
            grants: reg.grants,
            hash_key: proxy.keys.get().derive("mask-hash"),
            local: how.local,
        };
        relay::run(ctx, client, upstream.stream, reg.kill).await
    };
    proxy.sessions.unregister(reg.key);
    if audited {
        audit
            .record(
                &principal,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_is_set_in_each_server_s_own_terms() {
        assert_eq!(
            statement_timeout_sql("10.11.19-MariaDB-0+deb12u1", 1500),
            "SET SESSION max_statement_time = 1.500"
        );
        assert_eq!(
            statement_timeout_sql("5.5.5-10.11.19-MariaDB", 300),
            "SET SESSION max_statement_time = 0.300"
        );
        assert_eq!(
            statement_timeout_sql("8.0.36", 300),
            "SET SESSION max_execution_time = 300"
        );
    }

    #[test]
    fn connection_urls_name_the_target_database_and_tls() {
        let (t, db, mode) =
            target("mysql://app%40x@db.internal:3307/shop?sslmode=require").unwrap();
        assert_eq!(t.host, "db.internal");
        assert_eq!(t.port, 3307);
        assert_eq!(t.user, "app@x");
        assert_eq!(db.as_deref(), Some("shop"));
        assert_eq!(mode, SslMode::Require);
        assert!(target("mysql://u@h/db?sslmode=bogus").is_err());
        let (t, db, _) = target("mariadb://root@127.0.0.1/").unwrap();
        assert_eq!((t.port, db), (3306, None));
    }
}
