//! A live MySQL session: each command from the client is decided, relayed
//! to the upstream, and its reply relayed back (rows masked where the
//! policy says), then recorded. MySQL clients wait for each reply before
//! the next command, so one task serves both directions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatehouse_core::model::{Principal, RECORD_BYTES};
use gatehouse_core::now_ms;
use gatehouse_core::policy::Verdict;
use gatehouse_core::policy::spec::MaskMethod;
use gatehouse_policy::{
    CachedEngine, ColumnRefs, Engine, MaskPlan, ResultSources, SqlDialect, StatementMask,
    ViewReads, mask_text, scrub_message,
};
use gatehouse_store::recorder::{Admission, SessionLog};
use gatehouse_store::{ResultSample, StatementEntry};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::MysqlProxy;
use crate::codec::result::{
    BinaryType, ColumnDefinition, Value, build_binary_row, build_err, build_text_row, is_err,
    is_result_end, parse_binary_row, parse_column_count, parse_column_definition, parse_err,
    parse_ok, parse_text_row,
};
use crate::codec::stmt::{
    ExecuteContext, parse_prepare_ok, parse_send_long_data, parse_stmt_execute,
};
use crate::codec::{
    self, CLIENT_DEPRECATE_EOF, CLIENT_QUERY_ATTRIBUTES, Command, SERVER_MORE_RESULTS_EXISTS,
    parse_command,
};
use crate::stream::{MysqlStream, ReadError, read_packet};

/// What [`Session::kill`] makes of a statement.
#[derive(Debug, PartialEq, Eq)]
enum Kill {
    /// Not a KILL: sent as it is.
    Pass,
    /// Refused, with why.
    Refused(String),
    /// Sent upstream as this.
    Upstream(String),
    /// Done by Gatehouse (a statement waiting for review was refused).
    Done,
    /// Of no session here: for another replica of a shared store, by its
    /// [`gatehouse_pg::mysql_kill_hash`]; refused with the message if it
    /// cannot be passed on.
    Remote(String, String),
}

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] id` with nothing else (but a
/// final `;`): the words before the id (upper case, each followed by a
/// space) and the id.
pub(crate) fn parse_kill(sql: &str) -> Option<(String, u32)> {
    let sql = sql.trim();
    let sql = sql.strip_suffix(';').unwrap_or(sql);
    let mut words = sql.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("kill") {
        return None;
    }
    let mut how = String::new();
    let mut word = words.next()?;
    for allowed in [&["HARD", "SOFT"][..], &["CONNECTION", "QUERY"][..]] {
        if let Some(w) = allowed.iter().find(|a| a.eq_ignore_ascii_case(word)) {
            how.push_str(w);
            how.push(' ');
            word = words.next()?;
        }
    }
    if !word.bytes().all(|b| b.is_ascii_digit()) || words.next().is_some() {
        return None;
    }
    Some((how, word.parse().ok()?))
}

/// Why a statement may not run on `connection`, which is for `database`,
/// because it switches to another database (`USE other`); `USE` of the
/// connection's own database is fine. Anything else the analysis says
/// changes the database (a `USE` among other statements) is refused too.
pub fn database_switch(
    connection: &str,
    database: Option<&str>,
    sql: &str,
    a: &gatehouse_policy::Analysis,
) -> Option<String> {
    if !a.reasons.iter().any(|r| r.contains("changes database")) {
        return None;
    }
    let t = sql.trim().trim_end_matches(';').trim();
    let named = t
        .get(..4)
        .filter(|k| k.eq_ignore_ascii_case("use "))
        .map(|_| t[4..].trim().trim_matches('`'))
        .filter(|n| !n.is_empty() && !n.contains([';', ' ', '`', '/', '#', '-']));
    if named.is_some() && named == database {
        return None;
    }
    Some(format!(
        "connection \"{connection}\" is for database {}; switching databases is not allowed (connect through the Gatehouse connection for the other database)",
        database.unwrap_or("(none)")
    ))
}

/// The refusal of a statement that would take a session of the read-only
/// `connection` out of read-only mode.
pub fn read_only_refusal(connection: &str) -> Verdict {
    Verdict::Deny {
        rule: "read-only".into(),
        message: format!(
            "connection \"{connection}\" is read-only: its sessions may not leave read-only mode (tx_read_only, transaction_read_only, READ WRITE), nor run text made at run time (PREPARE … FROM a variable, EXECUTE IMMEDIATE of one)"
        ),
    }
}

/// The session a `KILL` by `principal` on `connection` ends, with how
/// (`Ok(None)`: `sql` is no KILL). Its id is the connection id Gatehouse
/// gave a client, not the upstream's: Gatehouse sends the KILL on with the
/// upstream thread of that session, if the session is the caller's own on
/// this connection. Every session of a connection logs in upstream as the
/// same user, who may end any of them, so a KILL passed on as written
/// could end another caller's statement. Other forms (`KILL USER`, `KILL
/// QUERY ID`, a KILL among other statements) are refused: `Err` says why.
pub fn kill_target(
    sessions: &gatehouse_pg::LiveSessions,
    principal: &str,
    connection: &str,
    sql: &str,
    a: &gatehouse_policy::Analysis,
) -> Result<Option<(gatehouse_pg::MysqlSession, String)>, String> {
    if !a
        .reasons
        .iter()
        .any(|r| r == gatehouse_policy::analyze_mysql::KILL_REASON)
    {
        return Ok(None);
    }
    let Some((how, id)) = parse_kill(sql) else {
        return Err(
            "Gatehouse passes on a KILL only as KILL [QUERY | CONNECTION] ID, alone, where ID is the connection id Gatehouse gave one of your sessions".into(),
        );
    };
    match sessions
        .mysql_session(id, principal)
        .filter(|s| s.connection == connection)
    {
        Some(s) => Ok(Some((s, how))),
        None => Err(format!(
            "{principal} has no session with id {id} on connection \"{connection}\" here (a KILL may end only your own sessions on the same connection, by the id Gatehouse gave them)"
        )),
    }
}

/// The KILL to send upstream for `KILL {how}` of `target`, or `None` when
/// it was a `KILL QUERY` of a statement waiting for review: that statement
/// is refused instead (nothing runs upstream yet).
pub(crate) fn upstream_kill(target: &gatehouse_pg::MysqlSession, how: &str) -> Option<String> {
    if how.ends_with("QUERY ") && target.cancelled.interrupt_hold() {
        return None;
    }
    Some(format!("KILL {how}{}", target.thread))
}

/// How long past the connection's statement timeout a statement may run
/// before Gatehouse ends it itself (the upstream's own limit, when the
/// client has not lifted it, comes first).
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// The statement a session has sent upstream and not yet had answered:
/// its number and when it went.
type Running = Arc<std::sync::Mutex<Option<(i64, Instant)>>>;

/// Largest packet relayed either way.
pub const MAX_PACKET: usize = 64 << 20;
/// Bytes of replies gathered before they are written to the client.
const FLUSH_AT: usize = 64 * 1024;
/// How long a quiet session's records wait before they go to the recorder.
const RECORD_DELAY: Duration = Duration::from_millis(500);
/// MySQL's "access denied" for a statement (ER_SPECIFIC_ACCESS_DENIED_ERROR).
pub(crate) const DENIED: u16 = 1227;

pub(crate) struct Ctx {
    pub proxy: Arc<MysqlProxy>,
    pub principal: Principal,
    pub connection: String,
    pub session_id: String,
    /// The upstream database the connection is for.
    pub database: Option<String>,
    /// The statements the upstream session was started with (the
    /// connection's statement timeout, read-only mode): run again after a
    /// `COM_RESET_CONNECTION`, which undoes them.
    pub setup: Arc<[String]>,
    /// A read-only connection: statements that would leave read-only mode
    /// are refused.
    pub read_only: bool,
    /// Capabilities in force on both sides.
    pub capabilities: u32,
    pub record_rows: usize,
    pub max_session: Option<Duration>,
    /// The connection's statement timeout. The upstream session starts with
    /// it; should the client lift it there, a statement running
    /// [`TIMEOUT_GRACE`] past it is ended by Gatehouse (a `KILL QUERY`).
    pub statement_timeout: Option<Duration>,
    /// The upstream session's connection (thread) id.
    pub upstream_thread: u32,
    /// The client's character set, for the watchdog's own upstream login.
    pub charset: u8,
    /// A `KILL` of this session while a statement waits for review.
    pub cancelled: Arc<gatehouse_pg::CancelRequests>,
    pub grants: gatehouse_pg::SessionGrants,
    /// Key for hashed masks.
    pub hash_key: Zeroizing<[u8; 32]>,
    /// Opened inside Gatehouse: its client is told what the wire does not
    /// say (which columns are masked, a refusal's rule, a review's id), and
    /// statements for review are not waited on.
    pub local: Option<tokio::sync::mpsc::UnboundedSender<LocalEvent>>,
}

/// What a local session's client learns beside the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEvent {
    /// The next result's masked columns (indexes).
    Masked(Vec<usize>),
    /// The statement was refused by this rule.
    Refused { rule: String, message: String },
    /// The statement is held for this review.
    Held { review: String, message: String },
}

type Reader<S> = BufReader<ReadHalf<MysqlStream<S>>>;
type Writer<S> = WriteHalf<MysqlStream<S>>;

/// A statement prepared on the upstream.
struct Prepared {
    sql: Arc<str>,
    /// Result columns of its last execution (for `COM_STMT_FETCH`).
    columns: Vec<ColumnDefinition>,
    /// How many parameters it has (its `COM_STMT_PREPARE_OK`).
    params: usize,
    /// The parameter types its last execution bound (an execution may
    /// leave them out to use these).
    types: Option<Vec<BinaryType>>,
    /// Parameters sent with `COM_STMT_SEND_LONG_DATA` since its last
    /// execution or reset (their values are not in the execution).
    long_data: Vec<u16>,
    /// Some of those pieces were dropped from [`LongValues`] for another
    /// statement's: its values are not all known (a review cannot be bound
    /// to them).
    long_dropped: bool,
}

/// The first bytes of the values sent with `COM_STMT_SEND_LONG_DATA` for
/// one prepared statement, for its execution's record. A session keeps
/// them for one statement at a time (at most [`RECORD_BYTES`]), so that
/// memory stays bounded whatever number of statements a client prepares;
/// drivers send a statement's long data right before executing it. Values
/// of a statement whose pieces were dropped for another's are recorded as
/// NULL, or by the pieces sent after, the record marked cut either way
/// ([`Prepared::long_dropped`]). The digest of every piece, whole, binds a
/// review to the values (they are not in the execution's packet); a
/// statement held for review whose pieces were dropped is refused.
#[derive(Default)]
struct LongValues {
    statement: u32,
    values: Vec<(u16, Vec<u8>)>,
    cut: bool,
    /// SHA-256 of each piece in turn: its parameter, length and bytes.
    digest: sha2::Sha256,
}

impl LongValues {
    /// Keeps a piece of parameter `param` of `statement`.
    fn add(&mut self, statement: u32, param: u16, data: &[u8]) {
        use sha2::Digest;
        if self.statement != statement || self.values.is_empty() {
            *self = Self {
                statement,
                ..Self::default()
            };
        }
        self.digest.update(param.to_le_bytes());
        self.digest.update((data.len() as u64).to_le_bytes());
        self.digest.update(data);
        let i = match self.values.iter().position(|(p, _)| *p == param) {
            Some(i) => i,
            None if self.values.len() < codec::MAX_PARAMS => {
                self.values.push((param, Vec::new()));
                self.values.len() - 1
            }
            None => return,
        };
        let kept: usize = self.values.iter().map(|(_, v)| v.len()).sum();
        let room = RECORD_BYTES.saturating_sub(kept);
        self.cut |= data.len() > room;
        self.values[i]
            .1
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The statement whose pieces are kept, if any.
    fn holder(&self) -> Option<u32> {
        (!self.values.is_empty()).then_some(self.statement)
    }

    /// Takes what is kept for `statement` (`None`: nothing, or another's).
    fn take(&mut self, statement: u32) -> Option<Self> {
        (self.statement == statement && !self.values.is_empty()).then(|| std::mem::take(self))
    }
}

/// What a held execution's approval is bound to besides its statement's
/// text: the execution's packet (after the statement id), the types its
/// values are read with (an execution may leave them to the statement's
/// previous one: the same bytes are then another value under other types),
/// and the digest of the values sent in pieces, which are not in the packet.
fn review_binding(
    packet: &[u8],
    types: Option<&[BinaryType]>,
    long: Option<&LongValues>,
) -> Vec<u8> {
    use sha2::Digest;
    let types = types.unwrap_or_default();
    let mut raw = Vec::with_capacity(8 + packet.len() + 2 * types.len() + 32);
    raw.extend_from_slice(&(packet.len() as u64).to_le_bytes());
    raw.extend_from_slice(packet);
    raw.extend_from_slice(&(types.len() as u64).to_le_bytes());
    for t in types {
        raw.extend_from_slice(&[t.code, u8::from(t.unsigned)]);
    }
    if let Some(l) = long {
        raw.extend_from_slice(&l.digest.clone().finalize());
    }
    raw
}

/// One statement on its way, for its record.
struct Stmt {
    seq: i64,
    sql: Arc<str>,
    started: Instant,
    started_at: i64,
    admission: Option<Admission>,
    verdict: Verdict,
    rows: i64,
    command: Option<String>,
    error: Option<String>,
    columns: Option<Vec<String>>,
    sample: ResultSample,
    truncated: bool,
    /// The values bound to its parameters, as text (a sample of one row).
    params: Option<ResultSample>,
    /// The content detectors that apply to the caller, whatever the
    /// statement's verdict: what they find in its text is redacted in its
    /// record.
    detectors: Option<Arc<gatehouse_policy::detect::Detectors>>,
}

/// How one result column is shown to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pass,
    /// Masked; text types get the masked text, others NULL.
    Mask(MaskMethod, bool),
    /// Scanned by the content detectors (text types only).
    Detect,
    /// A warning's or error's message (`SHOW WARNINGS`, `SHOW ERRORS`):
    /// quoted parts redacted, then scanned ([`scrub_message`]).
    Scrub,
}

/// How a statement is masked (the caller's plan, whether its computed
/// columns may carry masked data, what its errors show), and the
/// statement's references.
type MaskCtx = (StatementMask, Arc<Option<ColumnRefs>>);

/// How the upstream's errors about a statement are scrubbed, if the
/// statement involves masked columns ([`StatementMask::scrubs_errors`]):
/// its plan's detectors run over them, and the message is withheld whole
/// under [`StatementMask::withhold_message`] (a stored function that read
/// or was given masked data may `SIGNAL` any text).
fn scrub_plan(mask: Option<&MaskCtx>) -> Option<StatementMask> {
    mask.filter(|(m, _)| m.scrubs_errors() && m.plan.has_columns())
        .map(|(m, _)| m.clone())
}

/// Views a result's columns come from that read masked data, by
/// [`relation_name`], with the method for their columns; `Err` when they
/// could not be looked up ([`Session::masked_views`]).
type ViewMasks = Result<HashMap<String, MaskMethod>, String>;

/// `db.table` (or `table` without a database) in lower case, as the views
/// look-up takes relation names.
fn relation_name(database: &str, table: &str) -> String {
    if database.is_empty() {
        table.to_lowercase()
    } else {
        format!("{}.{}", database.to_lowercase(), table.to_lowercase())
    }
}

struct RowMask {
    actions: Vec<Action>,
    plan: Arc<MaskPlan>,
}

struct Session<S> {
    ctx: Ctx,
    client_r: Reader<S>,
    client_w: Writer<S>,
    up_r: Reader<tokio::net::TcpStream>,
    up_w: Writer<tokio::net::TcpStream>,
    out: BytesMut,
    log: SessionLog,
    seq: i64,
    prepared: HashMap<u32, Prepared>,
    long_values: LongValues,
    /// The statements SQL's `PREPARE` defined in this session, by name,
    /// with their texts: an `EXECUTE` is decided as what it runs.
    sources: ResultSources,
    /// The policy engine in force, looked at again before each command
    /// (fetched anew only when the policy's generation moves).
    engine: CachedEngine,
    /// What runs upstream, for the statement-timeout watchdog (only when the
    /// connection has a statement timeout).
    running: Option<Running>,
}

/// Runs the session until either side ends it; returns why it ended.
pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ctx: Ctx,
    client: MysqlStream<S>,
    upstream: MysqlStream<tokio::net::TcpStream>,
    mut kill: watch::Receiver<Option<String>>,
) -> String {
    let (cr, cw) = tokio::io::split(client);
    let (ur, uw) = tokio::io::split(upstream);
    let log = ctx.proxy.recorder.session_log(&ctx.session_id);
    let deadline = ctx.max_session;
    let engine = CachedEngine::new(&*ctx.proxy.policy);
    let mut s = Session {
        engine,
        ctx,
        client_r: BufReader::with_capacity(16 * 1024, cr),
        client_w: cw,
        up_r: BufReader::with_capacity(64 * 1024, ur),
        up_w: uw,
        out: BytesMut::with_capacity(FLUSH_AT * 2),
        log,
        seq: 0,
        prepared: HashMap::new(),
        long_values: LongValues::default(),
        sources: ResultSources::default(),
        running: None,
    };
    let watchdog = s.ctx.statement_timeout.map(|limit| {
        let running = s.running.insert(Running::default()).clone();
        enforce_timeout(
            s.ctx.proxy.clone(),
            s.ctx.principal.clone(),
            s.ctx.connection.clone(),
            s.ctx.upstream_thread,
            (s.ctx.capabilities, s.ctx.charset),
            running,
            limit,
        )
    });
    let remote = remote_kills(
        s.ctx.proxy.clone(),
        s.ctx.principal.clone(),
        (s.ctx.connection.clone(), s.ctx.session_id.clone()),
        s.ctx.upstream_thread,
        (s.ctx.capabilities, s.ctx.charset),
        s.ctx.cancelled.clone(),
    );
    let watchdog = async move {
        let timeout = async move {
            match watchdog {
                Some(w) => w.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            never = timeout => never,
            never = remote => never,
        }
    };
    tokio::pin!(watchdog);
    let limit = async {
        match deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit);
    // Records go to the recorder in chunks: when a chunk is full, and when
    // the session has been quiet for a moment.
    let idle_flush = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(idle_flush);
    let mut flush_armed = false;
    let reason = loop {
        if !flush_armed && !s.log.is_empty() {
            idle_flush
                .as_mut()
                .reset(tokio::time::Instant::now() + RECORD_DELAY);
            flush_armed = true;
        }
        let packet = tokio::select! {
            p = read_packet(&mut s.client_r, MAX_PACKET) => p,
            () = &mut idle_flush, if flush_armed => {
                s.log.flush();
                flush_armed = false;
                continue;
            }
            why = signalled(&mut kill) => {
                s.fatal(&format!("Gatehouse ended this session: {why}")).await;
                break format!("ended by Gatehouse: {why}");
            }
            () = &mut limit => {
                s.fatal("Gatehouse ended this session: the connection's maximum session length was reached").await;
                break "maximum session length reached".into();
            }
            never = &mut watchdog => match never {},
        };
        let packet = match packet {
            Ok(p) => p,
            Err(ReadError::Closed) => break "client closed".into(),
            Err(ReadError::Io(_)) => break "client closed".into(),
            Err(ReadError::Codec(e)) => break format!("protocol error from the client: {e}"),
        };
        if packet.seq != 0 {
            break format!(
                "protocol error from the client: a command starts with sequence id 0, not {}",
                packet.seq
            );
        }
        // A recorder behind slows the session down before it refuses
        // statements (this session's own records go first); with
        // fail-open recording they run at once.
        if !s.ctx.proxy.record_fail_open && s.ctx.proxy.recorder.is_full() {
            s.log.flush();
            s.ctx
                .proxy
                .recorder
                .wait_for_room(gatehouse_store::recorder::ROOM_WAIT)
                .await;
        }
        // A command that waits (for a review) can be ended too.
        let step = tokio::select! {
            r = s.command(&packet.payload) => r,
            why = signalled(&mut kill) => {
                s.fatal(&format!("Gatehouse ended this session: {why}")).await;
                break format!("ended by Gatehouse: {why}");
            }
            never = &mut watchdog => match never {},
        };
        if let Some(running) = &s.running {
            *running_lock(running) = None;
        }
        match step {
            Ok(true) => {}
            Ok(false) => break "client closed".into(),
            Err(e) => break e,
        }
        if !s.out.is_empty() && s.flush().await.is_err() {
            break "client closed".into();
        }
    };
    let _ = s.up_w.shutdown().await;
    reason
}

fn running_lock(r: &Running) -> std::sync::MutexGuard<'_, Option<(i64, Instant)>> {
    match r.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Ends (with `KILL QUERY` over a login of its own) the session's statement
/// once it has run [`TIMEOUT_GRACE`] past the connection's statement
/// timeout `limit`: the backstop for a client that lifted the upstream's
/// own limit (`SET SESSION max_statement_time = 0`). A statement held for
/// review is timed from when it was sent upstream.
async fn enforce_timeout(
    proxy: Arc<MysqlProxy>,
    principal: Principal,
    connection: String,
    thread: u32,
    (caps, charset): (u32, u8),
    running: Running,
    limit: Duration,
) -> std::convert::Infallible {
    let mut ended = 0;
    loop {
        let now = Instant::now();
        let current = *running_lock(&running);
        let wake = match current {
            Some((seq, since)) if seq != ended => {
                let due = since + limit + TIMEOUT_GRACE;
                if due <= now {
                    ended = seq;
                    tracing::info!(%connection, principal = %principal.subject, "ending a MySQL statement that ran past the connection's statement timeout");
                    let sql = format!("KILL QUERY {thread}");
                    if let Err(e) = crate::proxy::kill_upstream(
                        &proxy,
                        &principal,
                        &connection,
                        &sql,
                        caps,
                        charset,
                    )
                    .await
                    {
                        tracing::warn!(%connection, error = %e.message, "ending a statement past its timeout failed");
                    }
                    now + limit
                } else {
                    due
                }
            }
            _ => now + limit,
        };
        tokio::time::sleep_until(wake.into()).await;
    }
}

/// Sends upstream, over a login of its own, the `KILL`s of this session
/// (upstream `thread`) that reached another replica of a shared store
/// ([`gatehouse_pg::CancelRequests::kill_requested`]).
async fn remote_kills(
    proxy: Arc<MysqlProxy>,
    principal: Principal,
    (connection, session_id): (String, String),
    thread: u32,
    (caps, charset): (u32, u8),
    cancelled: Arc<gatehouse_pg::CancelRequests>,
) -> std::convert::Infallible {
    loop {
        let kill = cancelled.kill_requested().await;
        let sql = match kill.kind {
            gatehouse_pg::KillKind::Query => format!("KILL QUERY {thread}"),
            gatehouse_pg::KillKind::Connection => format!("KILL CONNECTION {thread}"),
        };
        // From a login without a connection: decided here, as on the
        // replica that holds the session it would have been.
        if kill.undecided {
            if let Err((rule, _)) =
                crate::proxy::kill_allowed(&proxy, &principal, &connection, &sql)
            {
                let detail = serde_json::json!({
                    "connection": connection,
                    "protocol": "mysql",
                    "control_login": true,
                    "other_replica": true,
                });
                proxy.access.audit().statement_denied_later(
                    &principal,
                    &principal.subject,
                    &rule,
                    &sql,
                    detail,
                );
                continue;
            }
            if kill.kind == gatehouse_pg::KillKind::Query && cancelled.interrupt_hold() {
                continue;
            }
        }
        tracing::info!(%connection, principal = %principal.subject, "a KILL from another replica: {sql}");
        let done =
            crate::proxy::kill_upstream(&proxy, &principal, &connection, &sql, caps, charset).await;
        if let Err(e) = &done {
            tracing::warn!(%connection, error = %e.message, "a KILL from another replica failed");
        }
        if kill.undecided {
            proxy
                .access
                .audit()
                .record(
                    &principal,
                    "statement.kill",
                    &session_id,
                    serde_json::json!({"connection": connection, "kill": sql, "ok": done.is_ok(), "other_replica": true}),
                )
                .await;
        }
    }
}

/// Resolves with the message once a watch holds `Some`; never if its sender is gone.
async fn signalled(rx: &mut watch::Receiver<Option<String>>) -> String {
    let got = match rx.wait_for(Option::is_some).await {
        Ok(v) => Some(v.clone().unwrap_or_default()),
        Err(_) => None,
    };
    match got {
        Some(why) => why,
        None => std::future::pending().await,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    async fn flush(&mut self) -> std::io::Result<()> {
        let r = self.client_w.write_all(&self.out).await;
        self.out.clear();
        r?;
        self.client_w.flush().await
    }

    /// Tells the client the session is over (an ERR as the reply to
    /// whatever it sends next, or now).
    async fn fatal(&mut self, message: &str) {
        let mut p = BytesMut::new();
        build_err(&mut p, 1927, "70100", message);
        codec::put_packet(&mut self.out, 1, &p);
        let _ = self.flush().await;
        let _ = self.client_w.shutdown().await;
    }

    /// An ERR reply from Gatehouse to the command just received.
    fn refuse(&mut self, code: u16, state: &str, message: &str) {
        let mut p = BytesMut::new();
        build_err(&mut p, code, state, message);
        codec::put_packet(&mut self.out, 1, &p);
    }

    fn engine(&self) -> &Arc<Engine> {
        self.engine.get()
    }

    /// The values a `COM_STMT_EXECUTE` (`payload`) of statement `id` binds,
    /// as its record keeps them: at most [`PARAMS_KEPT`] and
    /// [`RECORD_BYTES`] of them, as text (strings as they came, numbers,
    /// dates and times as MySQL writes them), with what `detectors` find
    /// redacted; a value sent apart with `COM_STMT_SEND_LONG_DATA` by its
    /// first bytes (see [`LongValues`]; the sample marked cut where they
    /// are not all). Notes the types it binds for the statement's next
    /// executions. `None` when it binds nothing or cannot be read
    /// (then it is not recorded; the server decides what it makes of it).
    /// `exact` gets the values kept as they are, before the detectors (for
    /// approvers).
    fn bound_params(
        &mut self,
        id: u32,
        payload: &[u8],
        long: Option<&LongValues>,
        detectors: Option<&gatehouse_policy::detect::Detectors>,
        mut exact: Option<&mut Vec<Option<String>>>,
    ) -> Option<ResultSample> {
        let query_attributes = self.ctx.capabilities & CLIENT_QUERY_ATTRIBUTES != 0;
        let p = self.prepared.get_mut(&id)?;
        let exe = parse_stmt_execute(
            payload,
            &ExecuteContext {
                param_count: p.params,
                previous_types: p.types.as_deref(),
                long_data: &p.long_data,
                query_attributes,
            },
        );
        p.long_data.clear();
        let dropped = std::mem::take(&mut p.long_dropped);
        let exe = exe.ok()?;
        if exe.types_sent {
            p.types = Some(exe.types.clone());
        }
        if exe.params.is_empty() {
            return None;
        }
        let mut sample = ResultSample::default();
        let mut text = String::new();
        sample.begin_row();
        for (i, (v, t)) in exe.params.iter().zip(&exe.types).enumerate() {
            if i == PARAMS_KEPT || sample.value_bytes() >= RECORD_BYTES {
                sample.truncated = true;
                break;
            }
            text.clear();
            match v {
                Value::Null => {
                    sample.value(None);
                    if let Some(e) = exact.as_deref_mut() {
                        e.push(None);
                    }
                    continue;
                }
                Value::Bytes(_) | Value::LongData => {
                    let b: &[u8] = match v {
                        Value::Bytes(b) => b,
                        // Sent apart: its first bytes, if this session kept them.
                        _ => match long.and_then(|l| {
                            let value = l.values.iter().find(|(p, _)| usize::from(*p) == i)?;
                            Some((l.cut, value))
                        }) {
                            Some((cut, (_, b))) => {
                                sample.truncated |= cut;
                                b
                            }
                            None => {
                                sample.truncated = true;
                                sample.value(None);
                                if let Some(e) = exact.as_deref_mut() {
                                    e.push(None);
                                }
                                continue;
                            }
                        },
                    };
                    let room = RECORD_BYTES - sample.value_bytes();
                    sample.truncated |= b.len() > room;
                    text.push_str(&String::from_utf8_lossy(&b[..b.len().min(room)]));
                }
                other => value_text(other, *t, None, &mut text),
            }
            if let Some(e) = exact.as_deref_mut() {
                e.push(Some(text.clone()));
            }
            match detectors.and_then(|d| d.redact(&text)) {
                Some(redacted) => sample.value(Some(&redacted)),
                None => sample.value(Some(&text)),
            }
        }
        sample.end_row();
        // Pieces dropped for another statement's: what is kept is not all.
        sample.truncated |= dropped;
        Some(sample)
    }

    fn stmt(&mut self, sql: Arc<str>) -> Stmt {
        self.seq += 1;
        Stmt {
            seq: self.seq,
            sql,
            started: Instant::now(),
            started_at: now_ms(),
            admission: self.ctx.proxy.recorder.admit(),
            verdict: Verdict::Allow { rule: None },
            rows: 0,
            command: None,
            error: None,
            columns: None,
            sample: ResultSample::default(),
            truncated: false,
            params: None,
            detectors: self
                .engine
                .mask_plan(&self.ctx.principal, &self.ctx.connection)
                .and_then(|p| p.detectors.clone()),
        }
    }

    /// Before `sql` is decided: asks the database which of the relations
    /// it names are views and what they read, so that a deny or review rule
    /// on a table is met through a view over it. Only where such a rule
    /// applies to the caller; if the database cannot be asked, the rules'
    /// table conditions count as met (fail closed).
    async fn look_up_views(&mut self, sql: &str) {
        self.sources.clear_views();
        let asked = self.engine.get().to_resolve(
            SqlDialect::Mysql,
            &self.ctx.principal,
            &self.ctx.connection,
            sql,
            &self.sources,
        );
        if asked.is_empty() {
            return;
        }
        let found = if asked.relations.is_empty() {
            Ok(Default::default())
        } else {
            crate::views::look_up(&self.ctx, &asked.relations).await
        };
        if let Err(e) = &found {
            tracing::warn!(session = %self.ctx.session_id, error = %e, "could not look up views");
        }
        let mut reads = ViewReads::of(found.map(crate::views::reads));
        if !asked.functions.is_empty() {
            let found = crate::views::stored_functions(&self.ctx, &asked.functions).await;
            if let Err(e) = &found {
                tracing::warn!(session = %self.ctx.session_id, error = %e, "could not look up stored functions; the results of statements calling functions are masked and masked data is not given to them");
            }
            reads = reads.with_functions(found);
        }
        self.sources.set_views(reads);
    }

    /// The policy's verdict on `sql` (with the caller's grant, if live),
    /// and the mask plan for its results.
    fn decide(&mut self, sql: &str, admitted: bool) -> (Verdict, Option<MaskCtx>) {
        if !admitted && !self.ctx.proxy.record_fail_open {
            return (
                Verdict::Deny {
                    rule: "recording".into(),
                    message: "the session recorder is behind, so Gatehouse refuses statements it could not record; try again shortly".into(),
                },
                None,
            );
        }
        let engine = self.engine.get();
        let grant = self
            .ctx
            .proxy
            .access
            .grant_for(&self.ctx.principal.subject, &self.ctx.connection);
        let d = engine.decide_in_session(
            SqlDialect::Mysql,
            &self.ctx.principal,
            &self.ctx.connection,
            sql,
            now_ms(),
            grant.as_ref().map(|(id, level)| (id.as_str(), *level)),
            &self.sources,
        );
        // Decided without an analysis, a text is parsed for what it
        // prepares only when it holds the word.
        engine.note_decided(SqlDialect::Mysql, sql, &d, &mut self.sources, || {
            gatehouse_policy::analyze_mysql::mentions(sql, b"prepare")
        });
        if engine.may_change_views(sql, &d) {
            // What views read is asked again.
            self.ctx.proxy.views.forget(&self.ctx.connection);
            self.ctx.proxy.functions.forget(&self.ctx.connection);
        }
        if let (Some((id, _)), Verdict::Allow { rule: Some(r) }) = (&grant, &d.verdict)
            && r.starts_with("grant:")
        {
            gatehouse_pg::depend_on(&self.ctx.grants, id);
        }
        if self.ctx.read_only
            && !matches!(d.verdict, Verdict::Deny { .. })
            && gatehouse_policy::analyze_mysql::lifts_read_only_mysql(sql)
        {
            return (read_only_refusal(&self.ctx.connection), None);
        }
        let mask = d.mask.map(|m| {
            let refs = engine.column_refs_in(SqlDialect::Mysql, sql);
            (m, refs)
        });
        (d.verdict, mask)
    }

    /// Holds a statement for review until it is decided; returns the
    /// verdict it runs under.
    async fn hold(&mut self, stmt: &Stmt, params: &[u8], params_text: Option<String>) -> Verdict {
        let Verdict::Review {
            rule,
            message,
            approvers,
            approvals,
            timeout_ms,
            require_reason,
        } = &stmt.verdict
        else {
            return stmt.verdict.clone();
        };
        let access = self.ctx.proxy.access.clone();
        let redact = |t: &str| stmt.detectors.as_ref().and_then(|d| d.redact(t));
        let req = gatehouse_access::HoldRequest {
            connection: &self.ctx.connection,
            principal: &self.ctx.principal,
            sql: &self
                .engine
                .get()
                .reviewed_text(SqlDialect::Mysql, &stmt.sql, &self.sources),
            params_raw: params,
            params_text,
            rule,
            approvers,
            approvals: *approvals,
            timeout_ms: *timeout_ms,
            reason: gatehouse_access::reason_in(&stmt.sql),
            session_id: Some(&self.ctx.session_id),
            redact: Some(gatehouse_access::Redactor(&redact)),
        };
        let id = match access.start_hold(&req, message, *require_reason).await {
            gatehouse_access::Started::Pending(id) => id,
            gatehouse_access::Started::Decided(v) => return v,
        };
        if let Some(local) = &self.ctx.local {
            let m = format!(
                "{message}; it is held for review {id}: once approved, send the same statement again"
            );
            let _ = local.send(LocalEvent::Held {
                review: id.clone(),
                message: m.clone(),
            });
            return Verdict::Deny {
                rule: rule.clone(),
                message: m,
            };
        }
        tracing::info!(session = %self.ctx.session_id, review = %id, "a MySQL statement waits for review");
        let deadline = now_ms().saturating_add(i64::try_from(*timeout_ms).unwrap_or(i64::MAX));
        let wait = access.wait(&id, &self.ctx.principal, deadline);
        // A KILL QUERY of this session is for this wait until it ends.
        let cancelled = self.ctx.cancelled.clone();
        let mut holding = cancelled.hold();
        tokio::select! {
            outcome = wait => gatehouse_access::review_verdict(rule, &id, outcome, *timeout_ms),
            () = holding.cancelled() => Verdict::Deny {
                rule: rule.clone(),
                message: format!("a KILL ended the statement while it waited for review {id}"),
            },
        }
    }

    /// Refuses a statement: ERR to the client, audit, record.
    fn refuse_stmt(&mut self, mut stmt: Stmt, rule: &str, message: &str) {
        if let Some(local) = &self.ctx.local {
            let _ = local.send(LocalEvent::Refused {
                rule: rule.to_string(),
                message: message.to_string(),
            });
        }
        let text = format!("Gatehouse blocked this statement (rule {rule}): {message}");
        self.refuse(DENIED, "42000", &text);
        stmt.error = Some(text);
        if rule != "recording" {
            let detail = serde_json::json!({
                "connection": self.ctx.connection,
                "session": self.ctx.session_id,
                "protocol": "mysql",
            });
            // The text as its record keeps it (see the PostgreSQL relay's
            // `audit_refusal`).
            let redacted = stmt.detectors.as_ref().and_then(|d| d.redact(&stmt.sql));
            let principal = &self.ctx.principal;
            self.ctx.proxy.access.audit().statement_denied_later(
                principal,
                &principal.subject,
                rule,
                redacted.as_deref().unwrap_or(&stmt.sql),
                detail,
            );
        }
        self.record(stmt);
    }

    fn record(&mut self, mut stmt: Stmt) {
        let Some(admission) = stmt.admission.take() else {
            return;
        };
        let duration = i64::try_from(stmt.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let redacted = stmt.detectors.as_ref().and_then(|d| d.redact(&stmt.sql));
        // An error can quote what the statement was given.
        let error = stmt.error.as_deref().map(|e| {
            stmt.detectors
                .as_ref()
                .and_then(|d| d.redact(e))
                .map_or(std::borrow::Cow::Borrowed(e), std::borrow::Cow::Owned)
        });
        self.log.push(
            admission,
            &StatementEntry {
                seq: stmt.seq,
                started_at: stmt.started_at,
                duration_us: Some(duration),
                sql: redacted.as_deref().unwrap_or(&stmt.sql),
                params: stmt.params.as_ref(),
                params_truncated: stmt.params.as_ref().is_some_and(|p| p.truncated),
                decision: stmt.verdict.label(),
                rule: stmt.verdict.rule(),
                command: stmt.command.as_deref(),
                rows: Some(stmt.rows),
                error: error.as_deref(),
                columns: stmt.columns.as_deref(),
                result: (!stmt.sample.is_empty()).then_some(&stmt.sample),
                result_truncated: stmt.truncated,
            },
        );
    }

    /// Serves one command; `Ok(false)` when the client quit.
    async fn command(&mut self, payload: &[u8]) -> Result<bool, String> {
        self.engine.refresh(&*self.ctx.proxy.policy);
        let (cmd, body) = match parse_command(payload) {
            Ok(x) => x,
            Err(_) => {
                self.refuse(1047, "08S01", "Gatehouse: unknown command");
                return Ok(true);
            }
        };
        match cmd {
            Command::Quit => Ok(false),
            Command::Query => {
                let Ok(text) = std::str::from_utf8(body) else {
                    let stmt = self.stmt(Arc::from(lossy(body)));
                    self.refuse_stmt(stmt, "unparsed", "the statement is not valid UTF-8; Gatehouse only passes statements it can read");
                    return Ok(true);
                };
                self.look_up_views(text).await;
                let mut stmt = self.stmt(Arc::from(text));
                let (verdict, mask) = self.decide(&stmt.sql.clone(), stmt.admission.is_some());
                stmt.verdict = verdict;
                if matches!(stmt.verdict, Verdict::Review { .. }) {
                    stmt.verdict = self.hold(&stmt, &[], None).await;
                }
                if let Verdict::Deny { rule, message } = &stmt.verdict {
                    let (rule, message) = (rule.clone(), message.clone());
                    self.refuse_stmt(stmt, &rule, &message);
                    return Ok(true);
                }
                // Looked up once for both checks below.
                let analysis = self.engine().analysis_in(SqlDialect::Mysql, &stmt.sql);
                if let Some(message) = database_switch(
                    &self.ctx.connection,
                    self.ctx.database.as_deref(),
                    &stmt.sql,
                    &analysis,
                ) {
                    stmt.verdict = Verdict::Deny {
                        rule: "database".into(),
                        message: message.clone(),
                    };
                    self.refuse_stmt(stmt, "database", &message);
                    return Ok(true);
                }
                match self.kill(&stmt.sql, &analysis) {
                    Kill::Pass => self.forward(payload).await?,
                    Kill::Refused(message) => {
                        stmt.verdict = Verdict::Deny {
                            rule: "kill".into(),
                            message: message.clone(),
                        };
                        self.refuse_stmt(stmt, "kill", &message);
                        return Ok(true);
                    }
                    Kill::Upstream(sql) => {
                        let mut rewritten = BytesMut::new();
                        codec::build_command(&mut rewritten, Command::Query, sql.as_bytes());
                        self.forward(&rewritten).await?;
                    }
                    Kill::Done => {
                        self.kill_answered(stmt, "");
                        return Ok(true);
                    }
                    Kill::Remote(hash, message) => {
                        let proxy = self.ctx.proxy.clone();
                        if proxy.remote_kills.forward_hash(&proxy.store, &hash).await {
                            self.kill_answered(
                                stmt,
                                "Gatehouse holds no such session here; the KILL was passed to the other replicas",
                            );
                        } else {
                            stmt.verdict = Verdict::Deny {
                                rule: "kill".into(),
                                message: message.clone(),
                            };
                            self.refuse_stmt(stmt, "kill", &message);
                        }
                        return Ok(true);
                    }
                }
                self.result_sets(&mut stmt, false, mask, None).await?;
                self.record(stmt);
                Ok(true)
            }
            Command::StmtPrepare => {
                let Ok(text) = std::str::from_utf8(body) else {
                    let stmt = self.stmt(Arc::from(lossy(body)));
                    self.refuse_stmt(stmt, "unparsed", "the statement is not valid UTF-8");
                    return Ok(true);
                };
                let sql: Arc<str> = Arc::from(text);
                // Decided now (a refused statement is not prepared) and
                // again at each execution.
                self.look_up_views(&sql).await;
                let (verdict, _) = self.decide(&sql, true);
                if let Verdict::Deny { rule, message } = &verdict {
                    let mut stmt = self.stmt(sql);
                    stmt.verdict = verdict.clone();
                    let (rule, message) = (rule.clone(), message.clone());
                    self.refuse_stmt(stmt, &rule, &message);
                    return Ok(true);
                }
                let analysis = self.engine().analysis_in(SqlDialect::Mysql, &sql);
                if self.kill(&sql, &analysis) != Kill::Pass {
                    // Its id would go upstream unchecked at each execution.
                    let mut stmt = self.stmt(sql);
                    let message = "Gatehouse does not prepare a KILL; send it as a statement, with the connection id Gatehouse gave the session";
                    stmt.verdict = Verdict::Deny {
                        rule: "kill".into(),
                        message: message.into(),
                    };
                    self.refuse_stmt(stmt, "kill", message);
                    return Ok(true);
                }
                self.forward(payload).await?;
                self.prepare_reply(sql).await?;
                Ok(true)
            }
            Command::StmtExecute => {
                let id = body
                    .get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                let Some(sql) = id
                    .and_then(|id| self.prepared.get(&id))
                    .map(|p| p.sql.clone())
                else {
                    self.refuse(1243, "HY000", "Gatehouse: unknown prepared statement");
                    return Ok(true);
                };
                let id = id.unwrap_or_default();
                self.look_up_views(&sql).await;
                let mut stmt = self.stmt(sql);
                let (verdict, mask) = self.decide(&stmt.sql.clone(), stmt.admission.is_some());
                stmt.verdict = verdict;
                let review = match &stmt.verdict {
                    Verdict::Review { rule, .. } => Some(rule.clone()),
                    _ => None,
                };
                // Values it sent in pieces are not all known: some were
                // dropped for another statement's (read before
                // `bound_params` starts the statement's next execution).
                let long_unknown = self.prepared.get(&id).is_some_and(|p| p.long_dropped);
                let long = self.long_values.take(id);
                let mut exact = review.is_some().then(Vec::new);
                stmt.params = self.bound_params(
                    id,
                    payload,
                    long.as_ref(),
                    stmt.detectors.as_deref(),
                    exact.as_mut(),
                );
                if let Some(rule) = review.as_deref()
                    && long_unknown
                {
                    // What the review would bind is not all known.
                    self.refuse_stmt(
                        stmt,
                        rule,
                        "it is held for review, and values it sent in pieces (COM_STMT_SEND_LONG_DATA) were interleaved with another statement's, so no review can be bound to them; send a statement's pieces right before executing it",
                    );
                    return Ok(true);
                }
                if review.is_some() {
                    // Part of what is approved besides the execution's
                    // packet: the types its values are read with (an
                    // execution may leave them to its statement's previous
                    // one) and the values sent in pieces.
                    let raw = review_binding(
                        &payload[5.min(payload.len())..],
                        self.prepared.get(&id).and_then(|p| p.types.as_deref()),
                        long.as_ref(),
                    );
                    // Approvers see the values as they were bound.
                    let values: Vec<Option<(bool, &[u8])>> = exact
                        .iter()
                        .flatten()
                        .map(|v| v.as_deref().map(|t| (false, t.as_bytes())))
                        .collect();
                    let shown = gatehouse_access::params_text(&values);
                    stmt.verdict = self.hold(&stmt, &raw, shown).await;
                }
                if let Verdict::Deny { rule, message } = &stmt.verdict {
                    let (rule, message) = (rule.clone(), message.clone());
                    self.refuse_stmt(stmt, &rule, &message);
                    return Ok(true);
                }
                self.forward(payload).await?;
                self.result_sets(&mut stmt, true, mask, Some(id)).await?;
                self.record(stmt);
                Ok(true)
            }
            Command::StmtFetch => {
                // Rows of an open cursor: masked with its execution's columns.
                let id = body
                    .get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or_default();
                let Some(p) = self.prepared.get(&id) else {
                    self.refuse(1243, "HY000", "Gatehouse: unknown prepared statement");
                    return Ok(true);
                };
                let (sql, columns) = (p.sql.clone(), p.columns.clone());
                self.look_up_views(&sql).await;
                let mut stmt = self.stmt(sql);
                let (verdict, mask) = self.decide(&stmt.sql.clone(), stmt.admission.is_some());
                stmt.verdict = verdict;
                if let Verdict::Deny { rule, message } = &stmt.verdict {
                    let (rule, message) = (rule.clone(), message.clone());
                    self.refuse_stmt(stmt, &rule, &message);
                    return Ok(true);
                }
                self.forward(payload).await?;
                let views = self.masked_views(&columns, mask.as_ref()).await;
                let scrub = scrub_plan(mask.as_ref());
                let rm = self.row_mask(&columns, mask, &views);
                self.rows(&mut stmt, true, &columns, rm.as_ref(), scrub.as_ref())
                    .await?;
                self.record(stmt);
                Ok(true)
            }
            Command::StmtClose => {
                if let Some(b) = body.get(..4) {
                    let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    self.prepared.remove(&id);
                    self.long_values.take(id);
                }
                self.forward(payload).await?;
                Ok(true)
            }
            Command::StmtSendLongData => {
                // Its value is recorded with the execution that uses it.
                if let Ok(d) = parse_send_long_data(payload)
                    && let Some(p) = self.prepared.get_mut(&d.statement_id)
                {
                    if !p.long_data.contains(&d.param) && p.long_data.len() < codec::MAX_PARAMS {
                        p.long_data.push(d.param);
                    }
                    if let Some(other) = self.long_values.holder()
                        && other != d.statement_id
                        && let Some(o) = self.prepared.get_mut(&other)
                    {
                        o.long_dropped = true;
                    }
                    self.long_values.add(d.statement_id, d.param, d.data);
                }
                self.forward(payload).await?;
                Ok(true)
            }
            Command::InitDb => {
                let wanted = lossy(body);
                let same = self
                    .ctx
                    .database
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(&wanted));
                if !same {
                    self.refuse(
                        1044,
                        "42000",
                        &format!(
                            "Gatehouse: connection \"{}\" is for database {}; switching to {wanted} is not allowed (connect through the Gatehouse connection for that database)",
                            self.ctx.connection,
                            self.ctx.database.as_deref().unwrap_or("(none)")
                        ),
                    );
                    return Ok(true);
                }
                self.forward(payload).await?;
                self.one_reply().await?;
                Ok(true)
            }
            Command::ResetConnection => {
                self.prepared.clear();
                self.long_values = LongValues::default();
                self.sources = ResultSources::default();
                self.forward(payload).await?;
                let reply = self.read_up().await?;
                if !is_err(&reply.payload) {
                    self.start_again().await?;
                }
                self.relay(&reply);
                Ok(true)
            }
            Command::Ping | Command::Statistics | Command::StmtReset | Command::SetOption => {
                if cmd == Command::StmtReset
                    && let Some(b) = body.get(..4)
                {
                    let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    if let Some(p) = self.prepared.get_mut(&id) {
                        p.long_data.clear();
                        p.long_dropped = false;
                    }
                    self.long_values.take(id);
                }
                self.forward(payload).await?;
                self.one_reply().await?;
                Ok(true)
            }
            Command::FieldList => {
                self.forward(payload).await?;
                // Column definitions until EOF (or an ERR).
                loop {
                    let p = self.read_up().await?;
                    let end = is_err(&p.payload) || codec::result::is_eof(&p.payload);
                    self.relay(&p);
                    if end {
                        break;
                    }
                }
                Ok(true)
            }
            Command::ChangeUser => {
                self.refuse(
                    1045,
                    "28000",
                    "Gatehouse: changing user within a session is not supported; open a new connection with the other token",
                );
                Ok(true)
            }
            other => {
                self.refuse(
                    DENIED,
                    "42000",
                    &format!("Gatehouse does not pass the {other:?} command"),
                );
                Ok(true)
            }
        }
    }

    /// What to do with a `KILL` (see [`kill_target`]).
    fn kill(&self, sql: &str, a: &gatehouse_policy::Analysis) -> Kill {
        let ctx = &self.ctx;
        match kill_target(
            &ctx.proxy.sessions,
            &ctx.principal.subject,
            &ctx.connection,
            sql,
            a,
        ) {
            Ok(None) => Kill::Pass,
            Ok(Some((target, how))) => {
                upstream_kill(&target, &how).map_or(Kill::Done, Kill::Upstream)
            }
            Err(message) => match parse_kill(sql) {
                Some((how, id))
                    if ctx.proxy.store.dialect() == gatehouse_store::Dialect::Postgres =>
                {
                    Kill::Remote(
                        gatehouse_pg::mysql_kill_hash(
                            gatehouse_pg::KillKind::of(&how),
                            id,
                            &ctx.principal.subject,
                            Some(&ctx.connection),
                        ),
                        message,
                    )
                }
                _ => Kill::Refused(message),
            },
        }
    }

    /// Answers a `KILL` Gatehouse saw to itself: OK, with `info`.
    fn kill_answered(&mut self, mut stmt: Stmt, info: &str) {
        let mut ok = BytesMut::new();
        crate::codec::result::build_ok(
            &mut ok,
            &crate::codec::result::OkPacket {
                status: codec::SERVER_STATUS_AUTOCOMMIT,
                info: info.into(),
                ..Default::default()
            },
            self.ctx.capabilities,
        );
        codec::put_packet(&mut self.out, 1, &ok);
        stmt.command = Some("KILL".into());
        self.record(stmt);
    }

    /// Runs the statements the upstream session started with again, after
    /// a `COM_RESET_CONNECTION` undid them; the session ends if one fails.
    async fn start_again(&mut self) -> Result<(), String> {
        for sql in self.ctx.setup.clone().iter() {
            let mut query = BytesMut::new();
            codec::build_command(&mut query, Command::Query, sql.as_bytes());
            self.write_up(&query).await?;
            let reply = self.read_up().await?;
            if reply.payload.first() != Some(&0x00) {
                return Err(format!(
                    "the session could not be started again after COM_RESET_CONNECTION with {sql}"
                ));
            }
        }
        Ok(())
    }

    async fn forward(&mut self, payload: &[u8]) -> Result<(), String> {
        if let Some(running) = &self.running {
            let mut running = running_lock(running);
            if running.is_none() {
                *running = Some((self.seq, Instant::now()));
            }
        }
        self.write_up(payload).await
    }

    async fn write_up(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut b = BytesMut::with_capacity(payload.len() + 4);
        codec::put_packet(&mut b, 0, payload);
        self.up_w
            .write_all(&b)
            .await
            .map_err(|_| "upstream closed".to_string())?;
        self.up_w
            .flush()
            .await
            .map_err(|_| "upstream closed".to_string())
    }

    async fn read_up(&mut self) -> Result<crate::stream::Packet, String> {
        read_packet(&mut self.up_r, MAX_PACKET)
            .await
            .map_err(|e| match e {
                ReadError::Closed | ReadError::Io(_) => "upstream closed".to_string(),
                ReadError::Codec(e) => format!("protocol error from the upstream: {e}"),
            })
    }

    /// Queues a packet for the client as the upstream sent it.
    fn relay(&mut self, p: &crate::stream::Packet) {
        codec::put_packet(&mut self.out, p.seq, &p.payload);
    }

    /// Relays the upstream's error `e` (packet `p`) about `stmt`, and
    /// notes it for the record. Under `scrub` (the statement involves
    /// masked columns) its message is scrubbed first: the server quotes
    /// values in it (`Duplicate entry 'ann@example.com1' for key
    /// 'group_key'`); or withheld whole, but for its codes, where a stored
    /// function ran with masked data.
    fn relay_err(
        &mut self,
        stmt: &mut Stmt,
        p: &crate::stream::Packet,
        mut e: codec::result::ErrPacket,
        scrub: Option<&StatementMask>,
    ) {
        let state = e.sql_state.take().unwrap_or_default();
        match scrub {
            None => self.relay(p),
            Some(m) => {
                e.message = if m.withhold_message {
                    format!(
                        "Gatehouse withheld this message (error {}, SQLSTATE {state}): the statement ran a stored function with masked data, and what it reports may show that data",
                        e.code
                    )
                } else {
                    scrub_message(&e.message, m.plan.detectors.as_deref())
                };
                let mut b = BytesMut::new();
                codec::result::build_err(&mut b, e.code, &state, &e.message);
                codec::put_packet(&mut self.out, p.seq, &b);
            }
        }
        stmt.error = Some(format!("{} ({state}): {}", e.code, e.message));
    }

    async fn maybe_flush(&mut self) -> Result<(), String> {
        if self.out.len() >= FLUSH_AT {
            self.flush()
                .await
                .map_err(|_| "client closed".to_string())?;
        }
        Ok(())
    }

    async fn one_reply(&mut self) -> Result<(), String> {
        let p = self.read_up().await?;
        self.relay(&p);
        Ok(())
    }

    /// The reply to `COM_STMT_PREPARE`: PREPARE_OK, then parameter and
    /// column definitions.
    async fn prepare_reply(&mut self, sql: Arc<str>) -> Result<(), String> {
        let p = self.read_up().await?;
        self.relay(&p);
        if is_err(&p.payload) {
            return Ok(());
        }
        let ok = parse_prepare_ok(&p.payload)
            .map_err(|e| format!("protocol error from the upstream: {e}"))?;
        let eof = self.ctx.capabilities & CLIENT_DEPRECATE_EOF == 0;
        for n in [usize::from(ok.params), usize::from(ok.columns)] {
            if n == 0 {
                continue;
            }
            for _ in 0..n + usize::from(eof) {
                let d = self.read_up().await?;
                self.relay(&d);
            }
        }
        self.prepared.insert(
            ok.statement_id,
            Prepared {
                sql,
                columns: Vec::new(),
                params: usize::from(ok.params),
                types: None,
                long_data: Vec::new(),
                long_dropped: false,
            },
        );
        Ok(())
    }

    /// The views among the tables `columns` come from that read data the
    /// caller's masks cover, by (database, view) in lower case, with the
    /// method for all their columns ([`MaskPlan::method_for_view`]): MySQL
    /// reports a view, not its tables, as a column's origin. `Err` when
    /// they cannot be looked up; then every column that comes from a table
    /// or view is masked (fail closed).
    async fn masked_views(
        &mut self,
        columns: &[ColumnDefinition],
        mask: Option<&MaskCtx>,
    ) -> ViewMasks {
        let Some((StatementMask { plan, .. }, _)) = mask.filter(|(m, _)| m.plan.has_columns())
        else {
            return Ok(HashMap::new());
        };
        let mut names: Vec<String> = columns
            .iter()
            .filter(|c| !c.org_table.is_empty())
            .map(|c| relation_name(&c.schema, &c.org_table))
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        match crate::views::look_up(&self.ctx, &names).await {
            Ok(found) => Ok(found
                .into_iter()
                .filter_map(|(name, view)| {
                    // What a stored function returns is not known: masked
                    // as a computed column would be.
                    let method = if view.calls_functions {
                        Some(MaskMethod::Redact)
                    } else {
                        plan.method_for_view(&view.refs)
                    };
                    Some((name, method?))
                })
                .collect()),
            Err(e) => {
                tracing::warn!(session = %self.ctx.session_id, error = %e, "could not look up the views results come from; their columns are masked");
                Err(e)
            }
        }
    }

    /// The mask for a result with these columns; `None` when nothing in it
    /// is masked or scanned.
    fn row_mask(
        &self,
        columns: &[ColumnDefinition],
        mask: Option<MaskCtx>,
        views: &ViewMasks,
    ) -> Option<RowMask> {
        let (StatementMask { plan, taint, .. }, refs) = mask?;
        let tables: Vec<String> = refs
            .as_ref()
            .as_ref()
            .map(|r| {
                r.relations
                    .iter()
                    .map(|(t, _)| t.rsplit('.').next().unwrap_or(t).to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default();
        // The server's own warnings and errors (`SHOW WARNINGS`, `SHOW
        // ERRORS`, however the statement was written) quote values of
        // earlier statements, which may have read masked columns.
        let diagnostics = plan.has_columns()
            && columns.len() == 3
            && columns.iter().all(|c| c.org_table.is_empty())
            && columns
                .iter()
                .zip(["Level", "Code", "Message"])
                .all(|(c, n)| c.name.eq_ignore_ascii_case(n));
        let actions: Vec<Action> = columns
            .iter()
            .map(|c| {
                let text = is_text(c);
                if diagnostics && c.name.eq_ignore_ascii_case("Message") {
                    return Action::Scrub;
                }
                let through_view = || match views {
                    _ if c.org_table.is_empty() => None,
                    Ok(views) if views.is_empty() => None,
                    Ok(views) => views.get(&relation_name(&c.schema, &c.org_table)).copied(),
                    Err(_) => Some(MaskMethod::Redact),
                };
                let method = if !plan.has_columns() {
                    None
                } else if gatehouse_policy::holds_column_samples_in(Some(&c.schema), &c.org_table) {
                    // Statistics: sample values of any column.
                    Some(MaskMethod::Redact)
                } else if let Some(m) = through_view() {
                    Some(m)
                } else if c.org_table.is_empty()
                    || !tables.iter().any(|t| t.eq_ignore_ascii_case(&c.org_table))
                {
                    // Computed, or from a derived table or view the
                    // statement does not name: masked when the statement
                    // mentions a masked column.
                    plan.method_for(&c.schema, &c.org_table, &c.org_name)
                        .or(taint.then_some(MaskMethod::Redact))
                } else {
                    plan.method_for(&c.schema, &c.org_table, &c.org_name)
                };
                match method {
                    Some(m) => Action::Mask(m, text),
                    None if text && plan.detectors.is_some() => Action::Detect,
                    None => Action::Pass,
                }
            })
            .collect();
        actions
            .iter()
            .any(|a| *a != Action::Pass)
            .then_some(RowMask { actions, plan })
    }

    /// Relays the result sets of a query or execution (several with
    /// multi-statements or procedures) and notes what they held.
    async fn result_sets(
        &mut self,
        stmt: &mut Stmt,
        binary: bool,
        mask: Option<MaskCtx>,
        prepared: Option<u32>,
    ) -> Result<(), String> {
        let caps = self.ctx.capabilities;
        // Errors about a statement that reads masked columns are scrubbed.
        let scrub = scrub_plan(mask.as_ref());
        loop {
            let p = self.read_up().await?;
            match p.payload.first() {
                Some(0x00) => {
                    let ok = parse_ok(&p.payload, caps)
                        .map_err(|e| format!("protocol error from the upstream: {e}"))?;
                    stmt.rows += i64::try_from(ok.affected_rows).unwrap_or(i64::MAX);
                    stmt.command = Some(format!("OK {} rows affected", ok.affected_rows));
                    self.relay(&p);
                    if ok.status & SERVER_MORE_RESULTS_EXISTS == 0 {
                        return Ok(());
                    }
                }
                Some(0xFF) => {
                    let e = parse_err(&p.payload)
                        .map_err(|e| format!("protocol error from the upstream: {e}"))?;
                    self.relay_err(stmt, &p, e, scrub.as_ref());
                    return Ok(());
                }
                Some(0xFB) => {
                    // LOAD DATA LOCAL: Gatehouse never offers the client's
                    // files; the server gets an empty file and replies.
                    let mut b = BytesMut::new();
                    codec::put_packet(&mut b, p.next_seq(), &[]);
                    self.up_w
                        .write_all(&b)
                        .await
                        .map_err(|_| "upstream closed".to_string())?;
                    self.up_w
                        .flush()
                        .await
                        .map_err(|_| "upstream closed".to_string())?;
                }
                _ => {
                    let (n, _) = parse_column_count(&p.payload, caps)
                        .map_err(|e| format!("protocol error from the upstream: {e}"))?;
                    self.relay(&p);
                    let mut columns = Vec::with_capacity(n.min(4096));
                    for _ in 0..n {
                        let d = self.read_up().await?;
                        columns.push(
                            parse_column_definition(&d.payload)
                                .map_err(|e| format!("protocol error from the upstream: {e}"))?,
                        );
                        self.relay(&d);
                    }
                    if caps & CLIENT_DEPRECATE_EOF == 0 {
                        let e = self.read_up().await?;
                        self.relay(&e);
                        // A cursor was opened: rows come with COM_STMT_FETCH.
                        if let Ok(eof) = codec::result::parse_eof(&e.payload)
                            && eof.status & codec::SERVER_STATUS_CURSOR_EXISTS != 0
                        {
                            if let Some(p) = prepared.and_then(|id| self.prepared.get_mut(&id)) {
                                p.columns = columns;
                            }
                            return Ok(());
                        }
                    }
                    stmt.columns = Some(columns.iter().map(|c| c.name.clone()).collect());
                    let views = self.masked_views(&columns, mask.as_ref()).await;
                    let rm = self.row_mask(&columns, mask.clone(), &views);
                    if let Some(local) = &self.ctx.local {
                        let masked = rm.as_ref().map_or_else(Vec::new, |m| {
                            m.actions
                                .iter()
                                .enumerate()
                                .filter(|(_, a)| matches!(a, Action::Mask(..)))
                                .map(|(i, _)| i)
                                .collect()
                        });
                        let _ = local.send(LocalEvent::Masked(masked));
                    }
                    let more = self
                        .rows(stmt, binary, &columns, rm.as_ref(), scrub.as_ref())
                        .await?;
                    if let Some(p) = prepared.and_then(|id| self.prepared.get_mut(&id)) {
                        p.columns = columns;
                    }
                    if !more {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Relays rows until the end of the result set, masking them; returns
    /// whether more result sets follow.
    async fn rows(
        &mut self,
        stmt: &mut Stmt,
        binary: bool,
        columns: &[ColumnDefinition],
        mask: Option<&RowMask>,
        scrub: Option<&StatementMask>,
    ) -> Result<bool, String> {
        let caps = self.ctx.capabilities;
        let types: Vec<BinaryType> = if binary {
            columns.iter().map(ColumnDefinition::binary_type).collect()
        } else {
            Vec::new()
        };
        loop {
            let p = self.read_up().await?;
            if is_err(&p.payload) {
                match parse_err(&p.payload) {
                    Ok(e) => self.relay_err(stmt, &p, e, scrub),
                    Err(_) => self.relay(&p),
                }
                return Ok(false);
            }
            if is_result_end(&p.payload, caps) {
                let status = if caps & CLIENT_DEPRECATE_EOF != 0 {
                    parse_ok(&p.payload, caps).map(|o| o.status).unwrap_or(0)
                } else {
                    codec::result::parse_eof(&p.payload)
                        .map(|e| e.status)
                        .unwrap_or(0)
                };
                stmt.command = Some(format!("SELECT {}", stmt.rows));
                self.relay(&p);
                return Ok(status & SERVER_MORE_RESULTS_EXISTS != 0);
            }
            stmt.rows += 1;
            let row = match mask {
                None => None,
                Some(m) => Some(self.mask_row(m, &p.payload, binary, &types)?),
            };
            let shown: &[u8] = row.as_deref().unwrap_or(&p.payload);
            if stmt.sample.rows() < self.ctx.record_rows && !stmt.truncated {
                let cells = cells(shown, binary, &types, columns);
                let size: usize = cells.iter().flatten().map(String::len).sum();
                if stmt.sample.value_bytes() + size > RECORD_BYTES {
                    stmt.truncated = true;
                } else {
                    stmt.sample.push_row(cells.iter().map(Option::as_deref));
                }
            } else if stmt.sample.rows() >= self.ctx.record_rows && self.ctx.record_rows > 0 {
                stmt.truncated = true;
            }
            codec::put_packet(&mut self.out, p.seq, shown);
            self.maybe_flush().await?;
        }
    }

    fn mask_row(
        &self,
        m: &RowMask,
        payload: &[u8],
        binary: bool,
        types: &[BinaryType],
    ) -> Result<Vec<u8>, String> {
        let key = &*self.ctx.hash_key;
        let masked = |action: Action, v: &[u8]| -> Option<Vec<u8>> {
            match action {
                Action::Pass => Some(v.to_vec()),
                Action::Mask(method, true) => {
                    let s = std::str::from_utf8(v).ok()?;
                    mask_text(method, s, key).map(String::into_bytes)
                }
                Action::Mask(_, false) => None,
                Action::Detect => {
                    let s = std::str::from_utf8(v).ok()?;
                    match m.plan.detectors.as_ref()?.redact(s) {
                        Some(r) => Some(r.into_bytes()),
                        None => Some(v.to_vec()),
                    }
                }
                Action::Scrub => {
                    let s = std::str::from_utf8(v).ok()?;
                    Some(scrub_message(s, m.plan.detectors.as_deref()).into_bytes())
                }
            }
        };
        let mut out = BytesMut::with_capacity(payload.len());
        if binary {
            let values = parse_binary_row(payload, types)
                .map_err(|e| format!("protocol error from the upstream: {e}"))?;
            // For each value: keep it (None), or replace it (NULL or bytes).
            let replaced: Vec<Option<Option<Vec<u8>>>> = values
                .iter()
                .zip(&m.actions)
                .map(|(v, a)| match (a, v) {
                    (Action::Pass, _) | (_, Value::Null) => None,
                    (_, Value::Bytes(b)) => Some(masked(*a, b)),
                    _ => Some(None),
                })
                .collect();
            let shown: Vec<Value<'_>> = values
                .iter()
                .zip(&replaced)
                .map(|(v, r)| match r {
                    None => *v,
                    Some(None) => Value::Null,
                    Some(Some(b)) => Value::Bytes(b),
                })
                .collect();
            build_binary_row(&mut out, types, &shown).map_err(|e| format!("masking a row: {e}"))?;
        } else {
            let values = parse_text_row(payload, m.actions.len())
                .map_err(|e| format!("protocol error from the upstream: {e}"))?;
            let owned: Vec<Option<Vec<u8>>> = values
                .iter()
                .zip(&m.actions)
                .map(|(v, a)| v.and_then(|v| masked(*a, v)))
                .collect();
            let refs: Vec<Option<&[u8]>> = owned.iter().map(|o| o.as_deref()).collect();
            build_text_row(&mut out, &refs);
        }
        Ok(out.to_vec())
    }
}

/// Whether a column holds text (masked text replaces it; other types
/// become NULL when masked).
fn is_text(c: &ColumnDefinition) -> bool {
    use crate::codec::result::FieldType as T;
    c.charset != 63
        && matches!(
            T::from_code(c.column_type),
            Some(
                T::VarChar
                    | T::VarString
                    | T::String
                    | T::TinyBlob
                    | T::MediumBlob
                    | T::LongBlob
                    | T::Blob
                    | T::Json
                    | T::Enum
                    | T::Set
            )
        )
}

/// At most this many of a statement's bound parameters are recorded.
const PARAMS_KEPT: usize = 100;

/// A binary-protocol value of type `t` that is not a string, as MySQL
/// writes it as text: numbers; a `DATE` as `2024-02-29`, a `DATETIME` or
/// `TIMESTAMP` as `2024-02-29 13:14:15` and a `TIME` as `-26:03:04` (hours
/// past a day, as MySQL counts them), with the fraction of a second in
/// `digits` digits as a result column's precision gives them (`.500` for a
/// `DATETIME(3)`, none for a `DATETIME`), or, where there is none (a bound
/// parameter; an expression whose precision the server does not say), six
/// digits when there is a fraction. NULL and long data, which have no
/// text, write nothing.
fn value_text(v: &Value<'_>, t: BinaryType, digits: Option<u8>, out: &mut String) {
    use crate::codec::result::FieldType;
    use std::fmt::Write;
    let _ = match v {
        Value::Null | Value::LongData => Ok(()),
        Value::Int(i) => write!(out, "{i}"),
        Value::UInt(u) => write!(out, "{u}"),
        Value::Float(f) => write!(out, "{f}"),
        Value::Double(d) => write!(out, "{d}"),
        Value::Bytes(b) => {
            out.push_str(&String::from_utf8_lossy(b));
            Ok(())
        }
        Value::DateTime(d) => {
            let r = write!(out, "{:04}-{:02}-{:02}", d.year, d.month, d.day);
            let date_only = matches!(
                FieldType::from_code(t.code),
                Some(FieldType::Date | FieldType::NewDate)
            );
            if !date_only {
                let _ = write!(out, " {:02}:{:02}:{:02}", d.hour, d.minute, d.second);
                fraction(out, d.micros, digits);
            }
            r
        }
        Value::Time(time) => {
            let sign = if time.negative { "-" } else { "" };
            let hours = u64::from(time.days) * 24 + u64::from(time.hours);
            let r = write!(
                out,
                "{sign}{hours:02}:{:02}:{:02}",
                time.minutes, time.seconds
            );
            fraction(out, time.micros, digits);
            r
        }
    };
}

/// A fraction of a second (`micros`) in `digits` digits, or in six when
/// there is one and `digits` is not known.
fn fraction(out: &mut String, micros: u32, digits: Option<u8>) {
    use std::fmt::Write;
    let _ = match digits {
        Some(d @ 1..=6) => {
            let d = u32::from(d);
            let shown = micros.min(999_999) / 10u32.pow(6 - d);
            write!(out, ".{shown:0w$}", w = d as usize)
        }
        Some(_) => Ok(()),
        None if micros != 0 => write!(out, ".{micros:06}"),
        None => Ok(()),
    };
}

/// The digits of a fraction of a second a result column has, if the
/// server says (0 to 6; MySQL and MariaDB send 31 or 39 for "not fixed").
fn fraction_digits(c: &ColumnDefinition) -> Option<u8> {
    (c.decimals <= 6).then_some(c.decimals)
}

/// A row's values as text, for the recording (`types` are the binary
/// types of `columns`, read in a binary row).
pub(crate) fn cells(
    payload: &[u8],
    binary: bool,
    types: &[BinaryType],
    columns: &[ColumnDefinition],
) -> Vec<Option<String>> {
    let n = columns.len();
    if binary {
        match parse_binary_row(payload, types) {
            Ok(values) => values
                .iter()
                .zip(types.iter().zip(columns))
                .map(|(v, (t, c))| match v {
                    Value::Null => None,
                    v => {
                        let mut text = String::new();
                        value_text(v, *t, fraction_digits(c), &mut text);
                        Some(text)
                    }
                })
                .collect(),
            Err(_) => vec![None; n],
        }
    } else {
        match parse_text_row(payload, n) {
            Ok(values) => values.iter().map(|v| v.map(lossy)).collect(),
            Err(_) => vec![None; n],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_kill;

    #[test]
    fn long_data_is_kept_for_one_statement_and_bounded() {
        use super::{LongValues, RECORD_BYTES};
        let mut l = LongValues::default();
        l.add(7, 0, b"abc");
        l.add(7, 0, b"def");
        l.add(7, 2, &vec![b'x'; RECORD_BYTES]);
        let kept = l.take(7).unwrap();
        assert_eq!(kept.values[0], (0, b"abcdef".to_vec()));
        assert_eq!(kept.values[1].1.len(), RECORD_BYTES - 6);
        assert!(kept.cut);
        assert!(l.take(7).is_none(), "taken once");
        // Another statement's pieces replace the first one's.
        l.add(7, 0, b"first");
        l.add(8, 1, b"second");
        assert!(l.take(7).is_none());
        let kept = l.take(8).unwrap();
        assert_eq!(kept.values, vec![(1, b"second".to_vec())]);
        assert!(!kept.cut);
    }

    /// A review of an execution is bound to its packet, the types its values
    /// are read with and its values sent in pieces.
    #[test]
    fn an_executions_review_binds_its_types_and_pieces() {
        use super::{BinaryType, LongValues, review_binding};
        let int = [BinaryType {
            code: 3,
            unsigned: false,
        }];
        let float = [BinaryType {
            code: 4,
            unsigned: false,
        }];
        let packet = [0u8, 1, 0, 0, 0, 0, 0x80, 0x3f];
        let base = review_binding(&packet, Some(&int), None);
        assert_eq!(base, review_binding(&packet, Some(&int), None));
        assert_ne!(base, review_binding(&packet, Some(&float), None));
        let mut pieces = LongValues::default();
        pieces.add(1, 0, b"alice");
        let with = review_binding(&packet, Some(&int), pieces.take(1).as_ref());
        assert_ne!(base, with);
        pieces.add(1, 0, b"mallory");
        assert_ne!(
            with,
            review_binding(&packet, Some(&int), pieces.take(1).as_ref())
        );
    }

    /// The digest binding a review covers every byte of every piece, past
    /// what the record keeps, and their order.
    #[test]
    fn long_data_digests_tell_values_apart_beyond_what_is_kept() {
        use super::{LongValues, RECORD_BYTES};
        use sha2::Digest;
        let digest = |pieces: &[(u16, &[u8])]| {
            let mut l = LongValues::default();
            for (param, data) in pieces {
                l.add(3, *param, data);
            }
            l.take(3).unwrap().digest.finalize()
        };
        let mut a = vec![b'a'; RECORD_BYTES + 10];
        let same = digest(&[(0, &a)]);
        assert_eq!(same, digest(&[(0, &a)]));
        *a.last_mut().unwrap() = b'b';
        assert_ne!(same, digest(&[(0, &a)]), "a byte past what is kept");
        assert_ne!(
            digest(&[(0, b"ab"), (1, b"c")]),
            digest(&[(0, b"a"), (1, b"bc")])
        );
        assert_ne!(
            digest(&[(0, b"x"), (1, b"y")]),
            digest(&[(1, b"x"), (0, b"y")])
        );
    }

    #[test]
    fn fractions_of_a_second_take_the_columns_precision() {
        let f = |micros, digits| {
            let mut s = String::new();
            super::fraction(&mut s, micros, digits);
            s
        };
        assert_eq!(f(500_000, Some(3)), ".500");
        assert_eq!(f(0, Some(2)), ".00");
        assert_eq!(f(1, Some(6)), ".000001");
        assert_eq!(f(999_999, Some(1)), ".9");
        assert_eq!(f(123_456, Some(0)), "");
        // Not said (a parameter, or "not fixed"): six digits if any.
        assert_eq!(f(250_000, None), ".250000");
        assert_eq!(f(0, None), "");
    }

    #[test]
    fn only_a_kill_of_one_id_is_read() {
        let kill = |s: &str| parse_kill(s).map(|(how, id)| format!("{how}{id}"));
        assert_eq!(kill("KILL 5").as_deref(), Some("5"));
        assert_eq!(kill("  kill query 42 ;").as_deref(), Some("QUERY 42"));
        assert_eq!(kill("Kill Connection 7").as_deref(), Some("CONNECTION 7"));
        assert_eq!(kill("KILL hard QUERY 7").as_deref(), Some("HARD QUERY 7"));
        assert_eq!(kill("KILL SOFT 7").as_deref(), Some("SOFT 7"));
        for refused in [
            "KILL",
            "KILL QUERY",
            "KILL USER app",
            "KILL QUERY ID 7",
            "KILL QUERY 7 8",
            "KILL QUERY -7",
            "KILL QUERY 7; KILL 8",
            "KILL /* x */ 7",
            "KILL QUERY HARD 7",
            "KILL 99999999999",
            "SELECT 1",
        ] {
            assert_eq!(kill(refused), None, "{refused}");
        }
    }
}
