//! A live session: two tasks, client→upstream and upstream→client.
//!
//! The client side frames every message (up to the size limit), passes
//! statements (`Query`, `Parse`) to the policy engine in force and tells the
//! upstream side, in order, what it forwarded (`Item`s). The upstream side
//! relays responses and ties them to those items (rows, command tag, error,
//! duration) for the recording.
//!
//! A refused statement never reaches the upstream as written: a `DO` block
//! that raises Gatehouse's error (SQLSTATE 42501, naming the rule) runs in
//! its place. A refused simple `Query` is replaced by it; a refused `Parse`
//! and the rest of its batch are dropped and the batch's `Sync` is replaced
//! by it, so the client sees exactly what it would for a failed Parse: the
//! earlier results of the batch, the error, then ReadyForQuery. The upstream
//! aborts an open transaction as PostgreSQL would, so client and server
//! never disagree about the session's state.
//! Large upstream messages (big rows, COPY data) are streamed through
//! without being held whole.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

// Statement and portal names are looked up on every execution: a fast
// hasher (randomly seeded per process) rather than SipHash.
use foldhash::HashMap;

use bytes::{Buf, BytesMut};
use gatehouse_core::model::{Principal, RECORD_BYTES};
use gatehouse_core::now_ms;
use gatehouse_core::policy::Verdict;
use gatehouse_policy::analyze::in_word;
use gatehouse_policy::{
    CachedEngine, Engine, MaskPlan, ResultSources, SignalTarget, SqlDialect, StatementMask,
    ViewReads,
};
use gatehouse_store::ResultSample;
use gatehouse_store::recorder::{ColumnNames, Record, SessionLog};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::PgProxy;
use crate::catalog::CatalogAccess;
use crate::codec::{self, ResultFormats, Severity};
use crate::mask::{RowMask, Session as MaskSession};
use crate::stream::{PgReader, PgStream, PgWriter, split};
use crate::values::{Rendering, UserType};

/// Upstream messages larger than this are streamed through in pieces.
const STREAM_OVER: usize = 256 * 1024;
/// A session's statement records reach the recorder at most this long
/// after they were made (sooner when a chunk fills).
const RECORD_DELAY: Duration = Duration::from_millis(500);
/// Of a result value recorded as hex (one that is not text, or whose text
/// could not be written), at most this many bytes are kept.
const HEX_BYTES: usize = 256;
/// Masked rows are rewritten whole; larger ones end the session.
const MASKED_ROW_LIMIT: usize = 64 << 20;
/// Upstream messages the relay needs whole are refused past this size.
const UPSTREAM_LIMIT: usize = 1 << 30;
/// How long past the connection's statement timeout Gatehouse lets a
/// statement run before it cancels it itself (the upstream's own
/// `statement_timeout` fires first unless the client changed it).
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

pub struct Ctx {
    pub proxy: Arc<PgProxy>,
    pub principal: Principal,
    pub connection: String,
    pub session_id: String,
    pub max_session: Option<Duration>,
    /// The connection's statement timeout. The upstream session starts with
    /// it; should the client lift it (`SET statement_timeout = 0`), Gatehouse
    /// cancels a statement that runs [`TIMEOUT_GRACE`] past it itself.
    pub statement_timeout: Option<Duration>,
    /// The upstream session's cancel key.
    pub upstream_key: (i32, i32),
    /// How to read the upstream's catalog (to find where result columns
    /// come from, for masking).
    pub catalog: CatalogAccess,
    /// Result rows kept per statement in the recording (0: none).
    pub record_rows: usize,
    /// How binary values are written as text for the recording, with the
    /// upstream session's settings at its start (`TimeZone`, `DateStyle`,
    /// `IntervalStyle`; later changes come as `ParameterStatus`).
    pub rendering: Rendering,
    /// The just-in-time grants this session depends on.
    pub grants: crate::registry::SessionGrants,
    /// The client's cancel requests.
    pub cancelled: Arc<crate::registry::CancelRequests>,
    /// A session opened inside Gatehouse (query API, MCP): a statement for
    /// review is not waited on (the caller gets the review id at once and
    /// sends the statement again once it is approved), and which result
    /// columns are masked is announced (see [`crate::local`]).
    pub local: bool,
    /// The connection is read-only: the upstream session starts with
    /// `default_transaction_read_only` on, statements that would lift it
    /// are refused, and should the server report it off the session ends.
    pub read_only: bool,
}

/// What the session's two directions share.
#[derive(Clone)]
struct Shared {
    /// What the upstream is to answer, in order.
    pending: Pending,
    /// Notices and the session's end, for the upstream side to pass on.
    signals: Arc<Signals>,
    gates: Arc<Gates>,
}

/// A setting the client asked for at start-up, recorded as the `SET`
/// statement it amounts to, ahead of the session's own statements (it took
/// effect before any of them).
#[derive(Debug)]
pub struct StartupSetting {
    pub sql: String,
    pub verdict: Verdict,
    /// Why it was not applied as asked (the connection sets it itself).
    pub not_applied: Option<String>,
    /// Its room in the recorder, taken before the session started.
    pub admission: gatehouse_store::recorder::Admission,
}

/// A statement held for review, and what to send when it is decided.
struct Hold {
    stmt: Stmt,
    /// The client's message (`Query` or `Execute`).
    msg: BytesMut,
    /// For an `Execute`: its portal.
    portal: Option<String>,
    /// Bound parameters: raw (for the binding) and as text.
    params: Option<Arc<Params>>,
}

/// A portal's bound parameters, kept only for statements held for review.
#[derive(Debug)]
struct Params {
    raw: Vec<u8>,
    text: Option<String>,
}

/// At most this many of a statement's bound parameters are recorded (and
/// at most [`RECORD_BYTES`] of their values in all).
const PARAMS_KEPT: usize = 100;

/// A portal's parameters as bound, kept for the recording: each value's
/// format and its first bytes, copied when the `Bind` passes (its buffer is
/// reused) and written as text when the statement is recorded
/// ([`UpstreamSide::finish`], which knows the session's settings).
#[derive(Debug)]
struct Bound {
    /// For each value kept, a kind byte (`Bound::NULL`, `Bound::TEXT` or
    /// `Bound::BINARY`, with `Bound::CUT` when only its first bytes were
    /// kept); for a value that is not NULL, then its length as kept (4
    /// bytes, little-endian) and those bytes.
    data: Vec<u8>,
    /// How many values were bound (kept or not).
    count: usize,
    /// Bytes of values that may still be kept.
    room: usize,
    /// More values or bytes were bound than kept.
    truncated: bool,
    /// Some value kept is in binary.
    binary: bool,
}

impl Bound {
    const NULL: u8 = 0;
    const TEXT: u8 = 1;
    const BINARY: u8 = 2;
    const CUT: u8 = 0x80;

    /// Keeps at most [`PARAMS_KEPT`] values and `room` bytes of them.
    fn new(room: usize) -> Self {
        Self {
            data: Vec::new(),
            count: 0,
            room,
            truncated: false,
            binary: false,
        }
    }

    fn push(&mut self, v: codec::BoundValue<'_>) {
        self.count += 1;
        if self.count > PARAMS_KEPT {
            self.truncated = true;
            return;
        }
        let Some((binary, v)) = v else {
            self.data.push(Self::NULL);
            return;
        };
        let kept = v.len().min(self.room);
        self.room -= kept;
        let cut = kept < v.len();
        self.truncated |= cut;
        if self.data.capacity() == 0 {
            // Room for a few short values at once.
            self.data.reserve(64.max(5 + kept));
        }
        self.binary |= binary;
        let kind = if binary { Self::BINARY } else { Self::TEXT };
        self.data.push(kind | if cut { Self::CUT } else { 0 });
        // `kept` is at most the room given, RECORD_BYTES.
        self.data
            .extend_from_slice(&u32::try_from(kept).unwrap_or(0).to_le_bytes());
        self.data.extend_from_slice(&v[..kept]);
    }

    /// Each value kept, in order: `None` for NULL, else whether it is in
    /// binary, whether it is whole, and its bytes.
    fn values(&self) -> impl Iterator<Item = Option<(bool, bool, &[u8])>> {
        let mut p = self.data.as_slice();
        std::iter::from_fn(move || {
            let (&kind, rest) = p.split_first()?;
            p = rest;
            if kind == Self::NULL {
                return Some(None);
            }
            let len = p.get(..4)?;
            let len = usize::try_from(u32::from_le_bytes([len[0], len[1], len[2], len[3]])).ok()?;
            let v = p.get(4..4 + len)?;
            p = &p[4 + len..];
            Some(Some((
                kind & !Self::CUT == Self::BINARY,
                kind & Self::CUT == 0,
                v,
            )))
        })
    }
}

/// A statement as it runs.
#[derive(Debug)]
struct Stmt {
    seq: i64,
    sql: Arc<str>,
    verdict: Arc<Verdict>,
    started: Instant,
    started_at: i64,
    rows: i64,
    error: Option<String>,
    /// Room reserved for its record; `None` when the recorder was behind.
    admission: Option<gatehouse_store::recorder::Admission>,
    /// How its results are masked; `None`: they pass untouched.
    mask: Option<StatementMask>,
    /// Its result's columns, for the recording (its first rows are kept
    /// by the upstream side, see [`UpstreamSide::sample`]), from a
    /// `RowDescription` in its response.
    columns: Option<Arc<Columns>>,
    /// The columns of its prepared statement, once the server described
    /// it: for an `Execute` whose response has no `RowDescription`.
    described: Option<Described>,
    /// The format of its result columns (text for a simple query).
    formats: ResultFormats,
    /// The values bound to its parameters, for the recording.
    bound: Option<Arc<Bound>>,
    /// The content detectors that apply to the caller, whatever the
    /// statement's verdict: what they find in its text and parameters is
    /// redacted in its record.
    detectors: Option<Arc<gatehouse_policy::detect::Detectors>>,
    /// It may start COPY FROM STDIN ([`may_copy`]): the client side waits
    /// for its outcome ([`Gates`]).
    copy: bool,
    /// It may change definitions ([`ClientSide::note_definitions`]).
    changes_definitions: bool,
}

impl Stmt {
    /// Its result's columns as far as known: from its response's
    /// `RowDescription`, else from its statement's description.
    fn result_columns(&self) -> Option<&Arc<Columns>> {
        self.columns
            .as_ref()
            .or_else(|| self.described.as_ref().and_then(|d| d.columns.get()))
    }

    /// The type of its parameter `i` (from 0), as far as known.
    fn param_type(&self, i: usize) -> Option<u32> {
        self.described.as_ref()?.param_type(i)
    }
}

/// A result's columns, for the recording: their names, and their types
/// (to write values that came in binary as text, see [`crate::values`]).
#[derive(Debug)]
struct Columns {
    names: Box<[String]>,
    types: Box<[u32]>,
}

impl ColumnNames for Columns {
    fn names(&self) -> &[String] {
        &self.names
    }
}

/// What is known of a prepared statement's parameters and columns: the
/// types its `Parse` declared, and what the server answered to the client's
/// `Describe` of it, set when the answer passes; one per `Parse`.
#[derive(Debug, Default)]
struct Description {
    /// Parameter types as the `Parse` declared them (0: not declared).
    declared: Box<[u32]>,
    /// Parameter types as the server described them.
    params: std::sync::OnceLock<Box<[u32]>>,
    columns: std::sync::OnceLock<Arc<Columns>>,
}

impl Description {
    /// The type of parameter `i` (from 0), as far as known: as the server
    /// described it, else as the `Parse` declared it.
    fn param_type(&self, i: usize) -> Option<u32> {
        let described = self.params.get().and_then(|p| p.get(i)).copied();
        described
            .or_else(|| self.declared.get(i).copied())
            .filter(|&t| t != 0)
    }
}

type Described = Arc<Description>;

/// What a held portal's approval is bound to besides its text: its `Bind`'s
/// parameters as sent (formats and bytes, self-delimiting), then each
/// parameter's type as far as known (0: not known), since the same bytes
/// are another value under another type (`3f800000` is 1065353216 as an
/// `int4` and 1.0 as a `float4`).
fn review_binding(raw: &[u8], params: usize, described: Option<&Description>) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 4 * params);
    out.extend_from_slice(raw);
    for i in 0..params {
        let t = described.and_then(|d| d.param_type(i)).unwrap_or(0);
        out.extend_from_slice(&t.to_be_bytes());
    }
    out
}

/// A held portal's parameters as its reviewers read them
/// ([`gatehouse_access::params_text`]): values bound in binary are written
/// as text by their type where it is known (text types as they are, built-in
/// ones with the session's start-up settings), else as `\x` and hex.
fn review_params(
    values: &[codec::BoundValue<'_>],
    described: Option<&Description>,
    rendering: &crate::values::Rendering,
) -> Option<String> {
    let mut scratch = String::new();
    let rendered: Vec<Option<String>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (true, v) = (*v)? else { return None };
            let t = described.and_then(|d| d.param_type(i));
            param_text(true, true, v, t, rendering, &mut scratch).map(str::to_string)
        })
        .collect();
    let shown: Vec<codec::BoundValue<'_>> = values
        .iter()
        .zip(&rendered)
        .map(|(v, r)| match r {
            Some(text) => Some((false, text.as_bytes())),
            None => *v,
        })
        .collect();
    gatehouse_access::params_text(&shown)
}

/// A bound value as text, when it can be written so: one sent as text, or
/// in binary of a text type, as its UTF-8 (of one cut short, its valid
/// beginning); another binary value of a known type, whole, as PostgreSQL
/// writes it (into `scratch`). `None`: it is shown as hex.
fn param_text<'a>(
    binary: bool,
    whole: bool,
    v: &'a [u8],
    t: Option<u32>,
    rendering: &crate::values::Rendering,
    scratch: &'a mut String,
) -> Option<&'a str> {
    if !binary || t.is_some_and(crate::values::binary_is_text) {
        return match std::str::from_utf8(v) {
            Ok(t) => Some(t),
            // Cut inside a character.
            Err(e) if !whole => std::str::from_utf8(&v[..e.valid_up_to()]).ok(),
            Err(_) => None,
        };
    }
    scratch.clear();
    crate::values::render(t.filter(|_| whole)?, v, rendering, scratch)?;
    Some(scratch.as_str())
}

/// What the client side forwarded, in order; the upstream side consumes
/// these as responses arrive.
#[derive(Debug)]
enum Item {
    /// A simple `Query`: done at ReadyForQuery.
    Simple(Stmt),
    /// An `Execute`: done at CommandComplete, EmptyQuery, PortalSuspended or error.
    Exec(Stmt),
    /// A `Sync` (or `FunctionCall`): done at ReadyForQuery.
    Sync,
    /// An answer (by tag) to a message Gatehouse sent in the client's
    /// batch, not passed to the client.
    Swallow(u8),
    /// Gatehouse's own `Describe` of a portal, sent before an `Execute`
    /// whose results are masked, so that a `RowDescription` (where each
    /// column comes from, its format) precedes the rows. Its answer is
    /// used here and not passed to the client.
    Describe,
    /// The client's `Describe` of a prepared statement: its answer (passed
    /// on) tells the statement's columns, kept for its executions.
    DescribeStmt(Described),
    /// The client's `Close`: its CloseComplete is passed on (tracked so
    /// that it is not taken for a probe's).
    Close,
    /// Gatehouse's probe before a Query inside a batch (see [`Gates`]):
    /// a `Close` of no statement, its CloseComplete not passed on.
    Probe,
}

/// Items the client side has forwarded and the upstream side has not yet
/// seen answered. Shared without a channel: responses always arrive after
/// their item was queued, so the upstream side never waits on it.
type Pending = Arc<std::sync::Mutex<VecDeque<Item>>>;

/// More unanswered items than this means a client pipelining without
/// reading; the session is ended.
const MAX_PENDING: usize = 100_000;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How the reasons for ending a session begin when the client broke the
/// protocol (the client is told, with SQLSTATE 08P01).
const CLIENT_PROTOCOL_ERROR: &str = "protocol error from the client";

/// What the upstream side hears besides the upstream: notices for the
/// client (a statement held for review) and the end of the session. One
/// flag and one waker, so that looking for them costs one atomic load per
/// wake-up of the data path, not a poll of a channel and a watch. The
/// waker is kept when it is woken (signals are rare), so the upstream side
/// registers once.
#[derive(Default)]
struct Signals {
    raised: AtomicBool,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
    notices: std::sync::Mutex<Vec<BytesMut>>,
    /// Why the session ends (empty: the client went, relay what is in
    /// flight); the first reason given stands.
    end: std::sync::Mutex<Option<String>>,
}

impl Signals {
    /// A NOTICE (SQLSTATE 01000) for the client, with an optional hint.
    fn notice(&self, message: &str, hint: Option<&str>) {
        let mut n = BytesMut::new();
        codec::error(&mut n, Severity::Notice, "01000", message, hint);
        lock(&self.notices).push(n);
        self.raise();
    }

    fn end(&self, why: String) {
        lock(&self.end).get_or_insert(why);
        self.raise();
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::Release);
        if let Some(w) = &*lock(&self.waker) {
            w.wake_by_ref();
        }
    }

    /// Whether anything was raised since the last look (one load when
    /// nothing was).
    fn take(&self) -> bool {
        self.raised.load(Ordering::Acquire) && self.raised.swap(false, Ordering::AcqRel)
    }

    /// Has the task of `cx` woken by every later raise (look again with
    /// [`Signals::take`] after registering, for one just before).
    fn register(&self, cx: &std::task::Context<'_>) {
        let mut w = lock(&self.waker);
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
    }
}

/// Where the session stands with COPY FROM STDIN. In copy-in mode the
/// server ignores Sync and Flush (so a Sync then gets no ReadyForQuery) and
/// ends the connection on any message other than CopyData, CopyDone and
/// CopyFail; whether a statement starts copy-in mode is known only from
/// its response. So after a statement that may start it, the client side
/// waits ([`Gate::settled`]) until the upstream side has seen either
/// CopyInResponse or the statement's end; in copy-in mode it does not send
/// the client's Syncs on at all, so that none is answered or awaited. Were
/// a Sync awaited that the server ignores, every later response would be
/// taken for the statement before it: recorded under it, and masked by its
/// plan.
///
/// The probe gate is for a Query (or FunctionCall) that comes inside an
/// extended-query batch (after Parse, Bind, … with no Sync since, as
/// asyncpg sends one after preparing with Flush). Had a message of the
/// batch failed, the server would discard the Query unanswered, and its
/// answer could not be told from the Sync's. So Gatehouse first sends a
/// Close of a statement that does not exist (answered with CloseComplete,
/// never an error) and a Flush, and waits: CloseComplete means nothing
/// failed and the Query runs; an error first means the server is skipping
/// to Sync, and the Query is dropped as the server would drop it.
#[derive(Default)]
struct Gates {
    copy: Gate,
    probe: Gate,
    /// A statement that may change definitions ran in the transaction
    /// still open upstream: Gatehouse's catalog look-ups, on connections of
    /// their own, do not see what it changed until it commits, so until
    /// the upstream is idle again they count as failed (fail closed).
    uncommitted_definitions: AtomicBool,
}

/// A state one side of the relay sets and the other waits on.
#[derive(Default)]
struct Gate {
    state: AtomicU8,
    changed: tokio::sync::Notify,
}

/// No probe out.
const PROBE_NONE: u8 = 0;
/// A probe is out, unanswered.
const PROBE_OUT: u8 = 1;
/// It was answered: the batch had no error.
const PROBE_RUN: u8 = 2;
/// The server skipped it: a message before it failed.
const PROBE_SKIPPED: u8 = 3;

/// No COPY FROM STDIN under way.
const COPY_NONE: u8 = 0;
/// A statement that may start one is running (or a COPY's data has ended
/// and the rest of its query may start another).
const COPY_PENDING: u8 = 1;
/// The server is in copy-in mode.
const COPY_IN: u8 = 2;

impl Gate {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.changed.notify_one();
    }

    /// From `from` to `to`, unless the other side moved it meanwhile.
    fn swap(&self, from: u8, to: u8) -> bool {
        let moved = self
            .state
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved {
            self.changed.notify_one();
        }
        moved
    }

    /// Returns once the state is no longer `waiting`.
    async fn settled(&self, waiting: u8) {
        while self.state() == waiting {
            self.changed.notified().await;
        }
    }
}

/// Whether `sql` may start COPY FROM STDIN: it has the word COPY in it (a
/// keyword cannot be quoted or split, so a COPY statement always has it;
/// other words that merely contain it, such as `copy_count`, do not count).
fn may_copy(sql: &str) -> bool {
    let b = sql.as_bytes();
    // Found by its last letter, rarer in SQL than its first (most queries
    // have no y at all, and many a c).
    memchr::memchr2_iter(b'y', b'Y', b).any(|i| {
        i >= 3
            && b[i - 3..i].eq_ignore_ascii_case(b"cop")
            && (i == 3 || !in_word(b[i - 4]))
            && b.get(i + 1).is_none_or(|&c| !in_word(c))
    })
}

/// Whether `sql` may hold SQL's PREPARE, which only begins a statement
/// (as [`gatehouse_policy::analyze::may_begin_with`] tells, with the word
/// a constant here: this runs for every simple query).
fn may_prepare(sql: &str) -> bool {
    use gatehouse_policy::analyze::{begins_with_comment, begins_with_word, statement_starts};
    statement_starts(sql)
        .any(|rest| begins_with_comment(rest) || begins_with_word(rest, b"prepare"))
}

pub async fn run(
    ctx: Ctx,
    client: PgStream,
    upstream: PgStream,
    leftover: BytesMut,
    startup: Vec<StartupSetting>,
    mut kill: watch::Receiver<Option<String>>,
) -> String {
    let ctx = Arc::new(ctx);
    // The session's own statements are numbered after its start-up settings.
    let first_seq = i64::try_from(startup.len()).unwrap_or(i64::MAX);
    let (client_r, client_w) = split(client);
    let (up_r, up_w) = split(upstream);
    let pending: Pending = Arc::default();
    let gates = Arc::new(Gates::default());
    // Notices from the client side (a statement held for review) go to the
    // client through the upstream side, between whole messages; the end of
    // the session reaches the upstream side the same way.
    let signals = Arc::new(Signals::default());
    let watchdog = ctx
        .statement_timeout
        .map(|limit| enforce_timeout(ctx.clone(), pending.clone(), signals.clone(), limit));
    // Set once the client has sent Terminate: the upstream closing after
    // that is the client's doing, whichever side notices first.
    let terminated = Arc::new(AtomicBool::new(false));
    let shared = Shared {
        pending,
        signals: signals.clone(),
        gates,
    };
    let mut c2u = tokio::spawn(client_to_upstream(
        ctx.clone(),
        client_r,
        up_w,
        shared.clone(),
        terminated.clone(),
        first_seq,
    ));
    let mut u2c = tokio::spawn(upstream_to_client(
        ctx.clone(),
        up_r,
        client_w,
        shared,
        leftover,
        startup,
    ));
    let watchdog = async move {
        match watchdog {
            Some(w) => w.await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(watchdog);
    let deadline = async {
        match ctx.max_session {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let reason = tokio::select! {
        r = &mut c2u => {
            let reason = r.unwrap_or_else(|_| "internal error".into());
            if reason.starts_with(CLIENT_PROTOCOL_ERROR) {
                // The client is told what it did wrong.
                signals.end(reason.clone());
            } else {
                // Let the upstream side finish relaying what is in flight.
                signals.end(String::new());
            }
            finish_upstream(&mut u2c).await;
            reason
        }
        r = &mut u2c => {
            c2u.abort();
            if terminated.load(Ordering::Acquire) {
                "client closed".into()
            } else {
                r.unwrap_or_else(|_| "internal error".into())
            }
        }
        _ = &mut deadline => {
            c2u.abort();
            signals.end("the connection's maximum session length was reached".into());
            finish_upstream(&mut u2c).await;
            "maximum session length reached".into()
        }
        never = &mut watchdog => match never {},
        why = signalled(&mut kill) => {
            c2u.abort();
            signals.end(why.clone());
            finish_upstream(&mut u2c).await;
            format!("ended by Gatehouse: {why}")
        }
    };
    reason
}

/// Cancels upstream a statement that has run [`TIMEOUT_GRACE`] past the
/// connection's statement timeout `limit`: the backstop for a client that
/// lifted the upstream's own `statement_timeout`. It looks at the oldest
/// statement not yet answered (the one running), and sleeps until that
/// one's time is up, or for `limit` when none runs (a statement starting
/// meanwhile is up later than that).
async fn enforce_timeout(
    ctx: Arc<Ctx>,
    pending: Pending,
    signals: Arc<Signals>,
    limit: Duration,
) -> std::convert::Infallible {
    let mut cancelled = 0;
    loop {
        let running = lock(&pending).iter().find_map(|i| match i {
            Item::Simple(s) | Item::Exec(s) => Some((s.seq, s.started)),
            _ => None,
        });
        let now = Instant::now();
        let wake = match running {
            Some((seq, started)) if seq != cancelled => {
                let due = started + limit + TIMEOUT_GRACE;
                if due <= now {
                    cancelled = seq;
                    let target = ctx.catalog.target.clone();
                    let (pid, key) = ctx.upstream_key;
                    tracing::info!(session = %ctx.session_id, connection = %ctx.connection, "cancelling a statement that ran past the connection's statement timeout");
                    signals.notice(
                        &format!(
                            "Gatehouse cancels this statement: it ran past the statement timeout of connection \"{}\" ({} ms)",
                            ctx.connection,
                            limit.as_millis()
                        ),
                        None,
                    );
                    if let Err(e) = crate::upstream::cancel(&target, pid, key).await {
                        tracing::warn!(session = %ctx.session_id, error = %e, "cancelling a statement past its timeout failed");
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

/// Gives the upstream side a moment to relay what is in flight, then stops
/// it and waits until it is gone (so its last records are handed over).
async fn finish_upstream(u2c: &mut tokio::task::JoinHandle<String>) {
    if tokio::time::timeout(Duration::from_secs(5), &mut *u2c)
        .await
        .is_err()
    {
        u2c.abort();
        let _ = u2c.await;
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

fn recorder_behind() -> Verdict {
    Verdict::Deny {
        rule: "recording".into(),
        message: "the session recorder is behind, so Gatehouse refuses statements until it catches up (they would run unrecorded)".into(),
    }
}

/// The statement sent upstream in place of a refused one: it raises
/// Gatehouse's error there. The message goes in a dollar-quoted literal
/// whose random tag does not occur in it, so it cannot break out.
fn raise_sql(rule: &str, message: &str) -> String {
    let text = format!("Gatehouse refused this statement: {message}");
    let detail = format!("rule: {rule}");
    let tag = loop {
        let t = format!("gh{:08x}", rand::random::<u32>());
        if !text.contains(&t) && !detail.contains(&t) {
            break t;
        }
    };
    format!(
        "DO $o{tag}$ BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = ${tag}${text}${tag}$, DETAIL = ${tag}${detail}${tag}$; END $o{tag}$"
    )
}

/// The rule and message to refuse a statement with, if it is denied
/// (statements for review are held, not refused, until decided).
fn refusal(v: &Verdict) -> Option<(&str, &str)> {
    match v {
        Verdict::Allow { .. } | Verdict::Review { .. } => None,
        Verdict::Deny { rule, message } => Some((rule, message)),
    }
}

fn in_words(ms: u64) -> String {
    gatehouse_core::duration::format_duration(Duration::from_millis(ms))
}

fn query_message(out: &mut BytesMut, sql: &str) {
    out.extend_from_slice(b"Q");
    out.extend_from_slice(
        &i32::try_from(sql.len() + 5)
            .unwrap_or(i32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(sql.as_bytes());
    out.extend_from_slice(b"\0");
}

/// A bound portal.
#[derive(Clone)]
struct Portal {
    sql: Arc<str>,
    /// Decided under the policy of `generation` (decided again at Execute
    /// if the policy changed since).
    verdict: Arc<Verdict>,
    generation: u64,
    /// Its parameters, kept only if it may be held for review.
    params: Option<Arc<Params>>,
    /// Its `Bind` carried parameters (whether or not they were kept).
    has_params: bool,
    /// Its parameters for the recording.
    bound: Option<Arc<Bound>>,
    /// The format of its result columns and its statement's description
    /// (for the recording).
    formats: ResultFormats,
    described: Option<Described>,
    /// It may start COPY FROM STDIN.
    copy: bool,
    /// The process ids its backend signals name, as bound (`None` for one
    /// that is not a number): checked when it runs.
    signal_pids: Option<Arc<[Option<i32>]>>,
}

impl Portal {
    /// A portal of a statement Gatehouse has no text for (a name the
    /// server will refuse), decided as allowed under `generation`.
    fn unknown(sql: Arc<str>, verdict: Arc<Verdict>, generation: u64) -> Self {
        Self {
            sql,
            verdict,
            generation,
            params: None,
            has_params: false,
            bound: None,
            formats: ResultFormats::Text,
            described: None,
            copy: false,
            signal_pids: None,
        }
    }
}

/// A session's portals. Nearly every driver binds the unnamed portal
/// before each execution: it has a slot of its own, with no hashing.
#[derive(Default)]
struct Portals {
    unnamed: Option<Portal>,
    named: HashMap<String, Portal>,
}

impl Portals {
    fn get(&self, name: &str) -> Option<&Portal> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// Binds `name` (replacing a portal of that name, as the server does).
    fn set(&mut self, name: &str, portal: Portal) {
        if name.is_empty() {
            self.unnamed = Some(portal);
        } else if let Some(slot) = self.named.get_mut(name) {
            *slot = portal;
        } else {
            self.named.insert(name.to_string(), portal);
        }
    }

    fn close(&mut self, name: &str) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }
}

struct ClientSide {
    ctx: Arc<Ctx>,
    pending: Pending,
    /// Prepared statements by the client's name.
    statements: HashMap<String, Prepared>,
    /// Portals: name → (SQL, verdict, parameters if held for review).
    portals: Portals,
    /// Notices for the client (sent through the upstream side).
    signals: Arc<Signals>,
    seq: i64,
    /// A `Parse` of the current batch was refused: its statement and the
    /// SQL to run at the batch's `Sync`.
    refused: Option<(Stmt, String)>,
    /// The policy engine in force, looked at again before each batch of
    /// messages read together (and after a hold), and the caller's mask
    /// plan under it.
    engine: CachedEngine,
    /// `Allow` with no rule, the common verdict, shared rather than
    /// allocated per statement.
    allow: Arc<Verdict>,
    /// Statements' wall-clock start times.
    clock: WallClock,
    /// COPY FROM STDIN and probes, shared with the upstream side. After a
    /// message that set the COPY gate pending, the client's next messages
    /// wait for the statement's outcome; after one that sent a probe, that
    /// message is handled again once the probe is answered.
    gates: Arc<Gates>,
    /// Extended-query messages were sent since the last Sync.
    in_batch: bool,
    /// The server is skipping to Sync after an error in the batch (a
    /// probe told): what comes until Sync is dropped here too.
    skipping: bool,
    /// The message being handled is decided with what the catalog says of
    /// views and functions (deny or review rules on tables, or column
    /// masks, apply: [`ClientSide::views_matter`]).
    looks_up: bool,
    /// The session's prepared statements and cursors, for masking what an
    /// `EXECUTE` or `FETCH` returns as its query's results.
    sources: ResultSources,
}

/// A prepared statement as the client named it.
struct Prepared {
    sql: Arc<str>,
    /// Decided at Parse, under the policy of `generation`.
    verdict: Arc<Verdict>,
    generation: u64,
    described: Described,
    /// It may start COPY FROM STDIN.
    copy: bool,
    /// What its calls of `pg_cancel_backend` and `pg_terminate_backend`
    /// name, if it has any (checked again at Bind and Execute).
    signals: Option<Arc<[SignalTarget]>>,
    /// Its name upstream. A named statement goes there under a fresh,
    /// unguessable name of Gatehouse's ([`upstream_name`]), so that the
    /// name Gatehouse binds always holds the text Gatehouse decided: the
    /// server keeps the first text of a name it already has (a Parse of it
    /// again is refused there, and so is one after SQL's PREPARE took the
    /// name), and a Parse it rejects leaves an older statement in place.
    /// Had Gatehouse taken the client's later text for the name, a DELETE
    /// under review could run as the SELECT named after it.
    upstream: Box<str>,
}

/// Appends the client's message `msg`, which names a prepared statement
/// (`len` bytes at offset `at` of its body), as it goes upstream: under the
/// statement's name there when Gatehouse renamed it, else as it is (the
/// unnamed statement, or one Gatehouse does not know).
fn as_upstream(out: &mut BytesMut, msg: &[u8], at: usize, len: usize, upstream: Option<&str>) {
    match upstream {
        Some(name) if !name.is_empty() => {
            codec::with_name(out, msg[0], codec::body(msg), at, len, name);
        }
        _ => out.extend_from_slice(msg),
    }
}

/// A fresh name for a statement upstream: 128 random bits, so that no
/// client can take it first (with SQL's PREPARE) to have its own text run
/// under it.
fn upstream_name() -> Box<str> {
    format!("gh_{:032x}", rand::random::<u128>()).into()
}

/// Wall-clock milliseconds of instants of the monotonic clock, which a
/// statement's timing reads anyway: the wall clock itself is read once a
/// second, not per statement, so a statement costs one clock read at its
/// start instead of two. Within that second the two clocks move together
/// (slewing changes their rate by under a thousandth); a step of the wall
/// clock shows from the next second on.
struct WallClock {
    base: Instant,
    base_ms: i64,
}

impl WallClock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            base_ms: now_ms(),
        }
    }

    /// The wall-clock time of `t`, a recent instant.
    fn at(&mut self, t: Instant) -> i64 {
        let since = t.saturating_duration_since(self.base);
        if since >= Duration::from_secs(1) {
            self.base = t;
            self.base_ms = now_ms();
            return self.base_ms;
        }
        // Under a second: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        let ms = since.as_millis() as i64;
        self.base_ms + ms
    }
}

impl ClientSide {
    fn stmt(&mut self, sql: Arc<str>, verdict: Arc<Verdict>) -> Stmt {
        self.seq += 1;
        let started = Instant::now();
        Stmt {
            seq: self.seq,
            sql,
            verdict,
            started,
            started_at: self.clock.at(started),
            rows: 0,
            error: None,
            admission: self.ctx.proxy.recorder.admit(),
            detectors: self.mask_plan().and_then(|p| p.detectors.clone()),
            mask: None,
            columns: None,
            described: None,
            formats: ResultFormats::Text,
            bound: None,
            copy: false,
            changes_definitions: false,
        }
    }

    /// A verdict to keep with a statement.
    fn shared(&self, v: Verdict) -> Arc<Verdict> {
        match v {
            Verdict::Allow { rule: None } => self.allow.clone(),
            v => Arc::new(v),
        }
    }

    /// How an `Execute`'s results are masked. The caller's mask plan is
    /// kept for as long as the same policy is in force (it depends only on
    /// the policy, the caller and the connection).
    fn execute_mask(&mut self, sql: &Arc<str>) -> Option<StatementMask> {
        let plan = self.mask_plan()?;
        let engine = self.engine.get();
        let mut mask = engine.mask_for(plan, sql);
        engine.follow_sources(sql, &mut mask, &mut self.sources);
        Some(mask)
    }

    /// The caller's mask plan under the policy in force, if it has one.
    fn mask_plan(&mut self) -> Option<Arc<MaskPlan>> {
        self.engine
            .mask_plan(&self.ctx.principal, &self.ctx.connection)
    }

    /// The policy's decision and how the results are masked, unless the
    /// statement could not be admitted for recording: then it is refused
    /// (it would run unrecorded).
    fn decide(&mut self, stmt: &Stmt) -> (Verdict, Option<StatementMask>) {
        if stmt.admission.is_none() && !self.ctx.proxy.record_fail_open {
            return (recorder_behind(), None);
        }
        let (d, _) = self.decision(&stmt.sql, false);
        (d.verdict, d.mask)
    }

    /// The verdict on a statement of the extended protocol (a `Parse`'s
    /// text), and the process ids its calls of `pg_cancel_backend` and
    /// `pg_terminate_backend` name if it has any: they are looked at again
    /// when it is bound and when it runs ([`ClientSide::signal_pids`]).
    fn check(&mut self, sql: &str) -> (Verdict, Option<Arc<[SignalTarget]>>) {
        let (d, signals) = self.decision(sql, true);
        (d.verdict, signals)
    }

    /// Whether `pid` is the backend of one of the caller's own sessions on
    /// this connection.
    fn owns_backend(&self, pid: i32) -> bool {
        let ctx = &self.ctx;
        ctx.proxy
            .sessions
            .is_pg_backend_of(&ctx.principal.subject, &ctx.connection, pid)
    }

    /// Whether every process id a statement's backend signals name (as
    /// bound: `None` for one that is not a number) is the backend of one of
    /// the caller's own sessions.
    fn owns_all(&self, pids: &[Option<i32>]) -> bool {
        pids.iter().all(|p| p.is_some_and(|p| self.owns_backend(p)))
    }

    /// The process ids a bound statement's backend signals name (`None`
    /// where the parameter named is missing, NULL or not a number).
    fn signal_pids(
        targets: &[SignalTarget],
        values: &[codec::BoundValue<'_>],
    ) -> Arc<[Option<i32>]> {
        targets
            .iter()
            .map(|t| match *t {
                SignalTarget::Pid(pid) => Some(pid),
                SignalTarget::Param(n) => values
                    .get(usize::from(n) - 1)
                    .copied()
                    .flatten()
                    .and_then(|(binary, v)| codec::int_value(binary, v)),
                SignalTarget::Computed => None,
            })
            .collect()
    }

    /// The policy's decision, with the caller's just-in-time grant on this
    /// connection if one is live; a statement that runs because of a grant
    /// makes the session depend on it (it ends when the grant does). What
    /// SQL's `EXECUTE` runs is decided as the text that prepared it, and
    /// the texts SQL's `PREPARE` defines are noted for that (unless refused).
    ///
    /// `bound` is for a statement of the extended protocol: a backend signal
    /// naming a bound parameter is then allowed here and checked when the
    /// statement is bound, as are literal ones again; their targets are
    /// returned for that.
    fn decision(
        &mut self,
        sql: &str,
        bound: bool,
    ) -> (gatehouse_policy::Decision, Option<Arc<[SignalTarget]>>) {
        let engine = self.engine.get();
        let mut d = if engine.allows_everything() {
            // No grant or clock can change that.
            gatehouse_policy::Decision {
                verdict: Verdict::Allow { rule: None },
                analysis: None,
                mask: None,
            }
        } else {
            let grant = self
                .ctx
                .proxy
                .access
                .grant_for(&self.ctx.principal.subject, &self.ctx.connection);
            let grant = grant.as_ref().map(|(id, level)| (id.as_str(), *level));
            let d = engine.decide_in_session(
                SqlDialect::Postgres,
                &self.ctx.principal,
                &self.ctx.connection,
                sql,
                now_ms(),
                grant,
                &self.sources,
            );
            if let (Some((id, _)), Verdict::Allow { rule: Some(r) }) = (grant, &d.verdict)
                && r.starts_with("grant:")
            {
                crate::registry::depend_on(&self.ctx.grants, id);
            }
            d
        };
        if engine.may_change_views(sql, &d) {
            // What views read is asked again.
            self.ctx.proxy.catalog.forget_views(&self.ctx.connection);
        }
        // What SQL's PREPARE defines is noted (decided without an analysis:
        // when a statement of the text begins with the word).
        engine.note_decided(SqlDialect::Postgres, sql, &d, &mut self.sources, || {
            may_prepare(sql)
        });
        let mut signals = None;
        if !matches!(d.verdict, Verdict::Deny { .. }) {
            match crate::built_in::check(
                engine,
                d.analysis.as_ref(),
                sql,
                &self.ctx.connection,
                self.ctx.read_only,
                bound,
                |pid| self.owns_backend(pid),
            ) {
                Ok(s) => signals = s,
                Err(refusal) => d.verdict = refusal,
            }
        }
        (d, signals)
    }

    /// The text the policy decides on this message now, if it decides
    /// one: a query's, a `Parse`'s, and a statement's or portal's that is
    /// decided again at `Bind` or `Execute` (see [`ClientSide::message`]).
    fn text_to_decide(&self, tag: u8, body: &[u8]) -> Option<Arc<str>> {
        let generation = self.engine.generation();
        match tag {
            b'Q' => codec::parse_query(body).ok().map(Arc::from),
            b'P' => codec::parse_parse(body)
                .ok()
                .map(|(_, sql, _)| Arc::from(sql)),
            b'B' => {
                let (_, name, _, _) = codec::parse_bind_formats(body).ok()?;
                let p = self.statements.get(name)?;
                (p.generation != generation).then(|| p.sql.clone())
            }
            b'E' => {
                let (name, _) = codec::parse_execute(body).ok()?;
                let p = self.portals.get(name)?;
                (p.generation != generation || matches!(*p.verdict, Verdict::Review { .. }))
                    .then(|| p.sql.clone())
            }
            _ => None,
        }
    }

    /// Whether views are looked up before this message
    /// ([`ClientSide::look_up_views`]); what was looked up for the last
    /// one is forgotten. (Apart, so that the messages of a session no such
    /// rule applies to do not each make a future.)
    #[inline]
    fn views_matter(&mut self, tag: u8) -> bool {
        self.looks_up = self.views_matter_now(tag);
        self.looks_up
    }

    fn views_matter_now(&mut self, tag: u8) -> bool {
        if !matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'F') {
            // No statement is decided on this message.
            return false;
        }
        self.sources.clear_views();
        if tag == b'F' || self.skipping || self.gates.copy.state() == COPY_IN {
            return false;
        }
        // Where a deny or review rule on tables applies, or column masks
        // do (the caller's plan as kept for the policy in force).
        let (rules, masks) = {
            let engine = self.engine.get();
            (
                engine.table_rules_apply(&self.ctx.principal, &self.ctx.connection),
                !engine.spec().masks.is_empty(),
            )
        };
        rules || (masks && self.mask_plan().is_some_and(|p| p.has_columns()))
    }

    /// Before a message whose statement is decided: asks the catalog which
    /// of the relations it names are views and what they read, so that a
    /// deny or review rule on a table is met through a view over it. Only
    /// where such a rule applies to the caller; if the catalog cannot be
    /// asked, the rules' table conditions count as met (fail closed).
    async fn look_up_views(&mut self, tag: u8, msg: &[u8]) {
        let (engine, ctx) = (self.engine.get().clone(), self.ctx.clone());
        let body = codec::body(msg);
        // An Execute whose portal is not decided again is still masked as
        // what its statement names and calls leads to (under column masks;
        // for rules alone there is nothing to decide).
        let Some(sql) = self.text_to_decide(tag, body).or_else(|| {
            if tag != b'E' || !self.mask_plan().is_some_and(|p| p.has_columns()) {
                return None;
            }
            let (name, _) = codec::parse_execute(body).ok()?;
            Some(self.portals.get(name)?.sql.clone())
        }) else {
            return;
        };
        let asked = engine.to_resolve(
            SqlDialect::Postgres,
            &ctx.principal,
            &ctx.connection,
            &sql,
            &self.sources,
        );
        if asked.is_empty() {
            return;
        }
        let uncommitted = self
            .gates
            .uncommitted_definitions
            .load(Ordering::Acquire)
            .then(|| {
                "definitions changed in this session's open transaction cannot be seen until it commits".to_string()
            });
        let found = if let Some(why) = &uncommitted {
            Err(why.clone())
        } else if asked.relations.is_empty() {
            Ok(Default::default())
        } else {
            ctx.proxy
                .catalog
                .views(&ctx.catalog, &asked.relations)
                .await
        };
        if let Err(e) = &found {
            tracing::warn!(session = %ctx.session_id, error = %e, "could not look up views in the catalog");
        }
        let mut reads = ViewReads::of(found);
        if !asked.functions.is_empty() {
            let found = match uncommitted {
                Some(why) => Err(why),
                None => {
                    ctx.proxy
                        .catalog
                        .functions(&ctx.catalog, &asked.functions)
                        .await
                }
            };
            if let Err(e) = &found {
                tracing::warn!(session = %ctx.session_id, error = %e, "could not look up functions in the catalog; computed columns are masked and statements reading masked columns refused");
            }
            reads = reads.with_functions(found);
        }
        self.sources.set_views(reads);
    }

    /// Holds a statement for review: finds or creates the review, tells
    /// the client (a NOTICE naming the review and how to approve it), and
    /// waits for the decision. Client input that arrives meanwhile is kept
    /// in `buf` for later. Returns the verdict the statement runs under.
    async fn hold(
        &mut self,
        h: &Hold,
        client: &mut PgReader,
        buf: &mut BytesMut,
        limit: usize,
    ) -> Result<Verdict, String> {
        let Verdict::Review {
            rule,
            message,
            approvers,
            approvals,
            timeout_ms,
            require_reason,
        } = &*h.stmt.verdict
        else {
            return Ok((*h.stmt.verdict).clone());
        };
        let deny = |m: String| Verdict::Deny {
            rule: rule.clone(),
            message: m,
        };
        // What SQL's EXECUTE runs is part of what is reviewed (and of
        // what an approval is bound to).
        let statement =
            self.engine
                .get()
                .reviewed_text(SqlDialect::Postgres, &h.stmt.sql, &self.sources);
        let access = &self.ctx.proxy.access;
        let redact = |t: &str| h.stmt.detectors.as_ref().and_then(|d| d.redact(t));
        let req = gatehouse_access::HoldRequest {
            connection: &self.ctx.connection,
            principal: &self.ctx.principal,
            sql: &statement,
            params_raw: h.params.as_ref().map_or(&[][..], |p| &p.raw[..]),
            params_text: h.params.as_ref().and_then(|p| p.text.clone()),
            rule,
            approvers,
            approvals: *approvals,
            timeout_ms: *timeout_ms,
            reason: gatehouse_access::reason_in(&h.stmt.sql),
            session_id: Some(&self.ctx.session_id),
            redact: Some(gatehouse_access::Redactor(&redact)),
        };
        let id = match access.start_hold(&req, message, *require_reason).await {
            gatehouse_access::Started::Pending(id) => id,
            gatehouse_access::Started::Decided(v) => return Ok(v),
        };
        if self.ctx.local {
            self.signals.notice(crate::local::HELD, Some(&id));
            return Ok(deny(format!(
                "{message}; it is held for review {id}: once approved, send the same statement again"
            )));
        }
        self.signals.notice(
            &format!(
                "Gatehouse is holding this statement for review {id}: {message}. Waiting up to {} for the decision.",
                in_words(*timeout_ms)
            ),
            Some(&format!(
                "approve with: gatehouse reviews approve {id}   reject with: gatehouse reviews reject {id} --reason \"…\""
            )),
        );
        let deadline = now_ms().saturating_add(i64::try_from(*timeout_ms).unwrap_or(i64::MAX));
        let wait = access.wait(&id, &self.ctx.principal, deadline);
        tokio::pin!(wait);
        // Cancel requests are for this wait until it ends (however it ends).
        let cancelled = self.ctx.cancelled.clone();
        let mut holding = cancelled.hold();
        let outcome = loop {
            tokio::select! {
                o = &mut wait => break o,
                () = holding.cancelled() => {
                    return Ok(deny(format!(
                        "the client cancelled the statement while it waited for review {id}"
                    )));
                }
                n = client.read_buf(buf) => match n {
                    Ok(0) | Err(_) => {
                        return Err(format!("client closed while a statement waited for review {id}"));
                    }
                    Ok(_) if buf.len() > limit.saturating_mul(2) => {
                        return Err(format!(
                            "the client sent more than {} bytes while a statement waited for review {id}",
                            limit.saturating_mul(2)
                        ));
                    }
                    Ok(_) => {}
                },
            }
        };
        Ok(gatehouse_access::review_verdict(
            rule,
            &id,
            outcome,
            *timeout_ms,
        ))
    }

    /// Puts a refusal in the audit trail: who, where, which rule, and the
    /// SHA-256 of the statement's text as its record keeps it (the text,
    /// which may hold data, is in the session's recording, not in the
    /// audit log). The caller's content detectors redact the text first,
    /// as they do the recorded one: a hash of the text as sent would let
    /// whoever reads the audit log confirm a guessed value (an email
    /// address) that the recording withholds.
    fn audit_refusal(&mut self, sql: &str, rule: &str) {
        if rule == "recording" {
            // The recorder is behind: auditing each refusal would add load.
            return;
        }
        let redacted = self
            .mask_plan()
            .and_then(|p| p.detectors.as_ref().and_then(|d| d.redact(sql)));
        let sql = redacted.as_deref().unwrap_or(sql);
        let detail = serde_json::json!({
            "connection": self.ctx.connection,
            "session": self.ctx.session_id,
        });
        self.ctx.proxy.access.audit().statement_denied_later(
            &self.ctx.principal,
            &self.ctx.session_id,
            rule,
            sql,
            detail,
        );
    }

    /// Sends a held statement on under the verdict it got.
    async fn release(
        &mut self,
        mut h: Hold,
        verdict: Verdict,
        out: &mut BytesMut,
    ) -> Result<(), String> {
        // A review can take long: the backends a statement signals are
        // looked at again as it is released.
        let verdict = if refusal(&verdict).is_none() && !self.signals_own(&h) {
            crate::built_in::backend_signal_refusal()
        } else {
            verdict
        };
        let refused = refusal(&verdict).map(|(rule, message)| {
            self.audit_refusal(&h.stmt.sql, rule);
            raise_sql(rule, message)
        });
        h.stmt.verdict = Arc::new(verdict);
        // It runs from now: its duration and its statement timeout leave
        // out the wait for the review.
        h.stmt.started = Instant::now();
        match (h.portal, refused) {
            (None, None) => self.query(h.stmt, &h.msg, out)?,
            (None, Some(raise)) => {
                self.send(Item::Simple(h.stmt))?;
                query_message(out, &raise);
            }
            (Some(portal), None) => self.execute(h.stmt, &portal, &h.msg, out)?,
            (Some(_), Some(raise)) => self.refused = Some((h.stmt, raise)),
        }
        Ok(())
    }

    /// Whether every backend a held statement signals (if any) is still
    /// the backend of one of the caller's own sessions.
    fn signals_own(&mut self, h: &Hold) -> bool {
        match &h.portal {
            Some(portal) => self
                .portals
                .get(portal)
                .and_then(|p| p.signal_pids.clone())
                .is_none_or(|pids| self.owns_all(&pids)),
            None => {
                !gatehouse_policy::analyze::may_name_backend_signal(&h.stmt.sql)
                    || crate::built_in::signals_allowed(
                        &self.engine.get().analysis(&h.stmt.sql).backend_signals,
                        false,
                        |pid| self.owns_backend(pid),
                    )
            }
        }
    }

    /// Forwards an allowed `Execute`, asking for the portal's description
    /// first when its rows are masked.
    fn execute(
        &mut self,
        mut stmt: Stmt,
        portal: &str,
        msg: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), String> {
        self.note_definitions(&mut stmt);
        stmt.mask = self.execute_mask(&stmt.sql);
        if !portal.is_empty()
            && let Some(mask) = &mut stmt.mask
        {
            // A named portal may be a cursor SQL's DECLARE opened since
            // (Gatehouse's entry for the name outlives the transaction
            // that ended the portal it bound).
            self.engine.get().follow_portal(portal, mask, &self.sources);
        }
        // A result asked in binary whose columns Gatehouse has not seen
        // described is described for the recording too (the answer is not
        // passed on): without the column types, binary values could be
        // recorded only as hex.
        let undescribed = self.ctx.record_rows > 0
            && !matches!(stmt.formats, ResultFormats::Text)
            && stmt.result_columns().is_none();
        if stmt.mask.is_some() || undescribed {
            self.send(Item::Describe)?;
            codec::describe_portal(out, portal);
        }
        let copy = stmt.copy;
        self.send(Item::Exec(stmt))?;
        out.extend_from_slice(msg);
        if copy {
            // Its outcome is awaited before the client's next message (as
            // for a statement that may change definitions), and the server
            // holds an Execute's response until Sync or Flush.
            codec::empty_message(out, b'H');
            self.await_copy();
        }
        Ok(())
    }

    /// Forwards an allowed simple `Query`.
    fn query(&mut self, mut stmt: Stmt, msg: &[u8], out: &mut BytesMut) -> Result<(), String> {
        stmt.copy = may_copy(&stmt.sql);
        self.note_definitions(&mut stmt);
        let copy = stmt.copy;
        self.send(Item::Simple(stmt))?;
        out.extend_from_slice(msg);
        if copy {
            self.await_copy();
        }
        Ok(())
    }

    /// Marks `stmt`, about to be sent, if it may change what the catalog says of
    /// views or functions (DDL, or code that may run some), where the
    /// decisions use it: then the client's next messages wait for its
    /// outcome, as after a COPY (the `copy` gate), and are decided with
    /// what the catalog says after it. A pipelined `CREATE FUNCTION f …`
    /// and `SELECT f()` would otherwise have the second decided before `f`
    /// exists.
    fn note_definitions(&self, stmt: &mut Stmt) {
        if self.looks_up && Engine::may_change_definitions(&stmt.sql) {
            stmt.copy = true;
            stmt.changes_definitions = true;
        }
    }

    /// Has the client's next message wait until the upstream side knows
    /// whether the statement just sent started COPY FROM STDIN.
    fn await_copy(&mut self) {
        self.gates.copy.set(COPY_PENDING);
    }

    /// A client message in copy-in mode: CopyData and Flush go on, Sync is
    /// dropped (the server would ignore it), CopyDone and CopyFail end the
    /// mode (and the rest of the statement may start another COPY).
    fn copy_message(&mut self, tag: u8, msg: &[u8], out: &mut BytesMut) -> Result<(), String> {
        match tag {
            b'd' | b'H' | b'X' => out.extend_from_slice(msg),
            b'S' => {}
            b'c' | b'f' => {
                out.extend_from_slice(msg);
                // Unless the COPY failed meanwhile (the server has then
                // left copy-in mode and drops these).
                if self.gates.copy.swap(COPY_IN, COPY_PENDING) {
                    codec::empty_message(out, b'H');
                }
            }
            _ => {
                return Err(format!(
                    "{CLIENT_PROTOCOL_ERROR}: a message of type '{}' came during COPY FROM STDIN, where only CopyData, CopyDone, CopyFail, Flush and Sync may",
                    char::from(tag).escape_default()
                ));
            }
        }
        Ok(())
    }

    fn send(&self, item: Item) -> Result<(), String> {
        let mut q = lock(&self.pending);
        if q.len() >= MAX_PENDING {
            return Err(format!(
                "the client sent more than {MAX_PENDING} requests without reading the answers"
            ));
        }
        q.push_back(item);
        Ok(())
    }

    /// Handles one framed client message, appending what goes upstream to
    /// `out`; a statement held for review is returned instead.
    fn message(&mut self, tag: u8, msg: &[u8], out: &mut BytesMut) -> Result<Option<Hold>, String> {
        if self.gates.copy.state() == COPY_IN {
            self.copy_message(tag, msg, out)?;
            return Ok(None);
        }
        if self.skipping {
            // As the server does after an error in a batch.
            match tag {
                b'S' => {
                    self.skipping = false;
                    self.in_batch = false;
                    self.send(Item::Sync)?;
                    out.extend_from_slice(msg);
                }
                b'X' => out.extend_from_slice(msg),
                _ => {}
            }
            return Ok(None);
        }
        let body = codec::body(msg);
        let malformed = |e: codec::CodecError| format!("{CLIENT_PROTOCOL_ERROR}: {e}");
        if self.refused.is_some() {
            // The rest of a batch with a refused Parse is dropped, as the
            // server drops a batch after an error; its Sync runs the refusal.
            match tag {
                b'S' => {
                    self.in_batch = false;
                    if let Some((stmt, sql)) = self.refused.take() {
                        // The refusal runs as the batch's last statement, in
                        // the extended protocol: if the upstream is already
                        // skipping to Sync after an error of its own, it
                        // skips this too (the client has that error); if
                        // not, the raised error aborts the batch as a failed
                        // statement would. Its ParseComplete and BindComplete
                        // are not for the client.
                        self.send(Item::Swallow(b'1'))?;
                        self.send(Item::Swallow(b'2'))?;
                        self.send(Item::Exec(stmt))?;
                        codec::parse_message(out, &sql);
                        codec::bind_text(out, &[]);
                        codec::execute_message(out, 0);
                        self.send(Item::Sync)?;
                        out.extend_from_slice(msg);
                    }
                }
                b'H' => {
                    return Err(
                        "Gatehouse refused a statement of this batch and the client waited on Flush for it; the session was ended"
                            .into(),
                    );
                }
                b'X' => out.extend_from_slice(msg),
                _ => {}
            }
            return Ok(None);
        }
        match tag {
            // After an error in a batch the server discards what comes
            // until Sync, a Query too, and answers none of it: its answer
            // could not be told from the Sync's.
            b'Q' | b'F' if self.in_batch => {
                // Asked first whether the batch failed (see Gates); this
                // message is handled again after the answer.
                self.send(Item::Probe)?;
                codec::close_statement(out, &upstream_name());
                codec::empty_message(out, b'H');
                self.gates.probe.set(PROBE_OUT);
                return Ok(None);
            }
            b'P' | b'B' | b'D' | b'E' | b'C' => self.in_batch = true,
            b'S' => self.in_batch = false,
            _ => {}
        }
        match tag {
            b'Q' => {
                let sql: Arc<str> = codec::parse_query(body).map_err(malformed)?.into();
                let mut stmt = self.stmt(sql, self.allow.clone());
                let (verdict, mask) = self.decide(&stmt);
                let verdict = self.shared(verdict);
                stmt.verdict = verdict.clone();
                stmt.mask = mask;
                if let Some(mask) = &mut stmt.mask {
                    self.engine
                        .get()
                        .follow_sources(&stmt.sql, mask, &mut self.sources);
                }
                if matches!(*verdict, Verdict::Review { .. }) {
                    return Ok(Some(Hold {
                        stmt,
                        msg: BytesMut::from(msg),
                        portal: None,
                        params: None,
                    }));
                }
                let text = stmt.sql.clone();
                match refusal(&verdict) {
                    None => self.query(stmt, msg, out)?,
                    Some((rule, message)) => {
                        self.send(Item::Simple(stmt))?;
                        self.audit_refusal(&text, rule);
                        query_message(out, &raise_sql(rule, message))
                    }
                }
            }
            b'P' => {
                let (name, sql, types) = codec::parse_parse(body).map_err(malformed)?;
                // Decided now; admitted for recording when executed.
                let (verdict, signals) = self.check(sql);
                let verdict = self.shared(verdict);
                match refusal(&verdict) {
                    None => {
                        let upstream: Box<str> = if name.is_empty() {
                            out.extend_from_slice(msg);
                            "".into()
                        } else {
                            let upstream = upstream_name();
                            codec::with_name(out, tag, body, 0, name.len(), &upstream);
                            upstream
                        };
                        let sql: Arc<str> = sql.into();
                        let prepared = Prepared {
                            copy: may_copy(&sql),
                            signals,
                            sql,
                            verdict,
                            generation: self.engine.generation(),
                            described: Arc::new(Description {
                                declared: types.iter().collect(),
                                ..Description::default()
                            }),
                            upstream,
                        };
                        self.statements.insert(name.to_string(), prepared);
                    }
                    Some((rule, message)) => {
                        self.audit_refusal(sql, rule);
                        let raise = raise_sql(rule, message);
                        let stmt = self.stmt(sql.into(), verdict.clone());
                        self.refused = Some((stmt, raise));
                    }
                }
            }
            b'B' => {
                // The parameters are kept for the recording as they are read.
                let mut bound = Bound::new(RECORD_BYTES);
                let (portal, stmt, formats) =
                    codec::parse_bind_values(body, |v| bound.push(v)).map_err(malformed)?;
                let nparams = bound.count;
                let bound = (nparams > 0).then(|| Arc::new(bound));
                let generation = self.engine.generation();
                let mut known = self.statements.get(stmt);
                if let Some(p) = known
                    && p.generation != generation
                {
                    // Decided at Parse under a policy no longer in force.
                    let sql = p.sql.clone();
                    let (verdict, signals) = self.check(&sql);
                    let verdict = self.shared(verdict);
                    if let Some(p) = self.statements.get_mut(stmt) {
                        p.verdict = verdict;
                        p.generation = generation;
                        p.signals = signals;
                    }
                    known = self.statements.get(stmt);
                }
                let mut entry = match known {
                    Some(p) => Portal {
                        sql: p.sql.clone(),
                        verdict: p.verdict.clone(),
                        generation: p.generation,
                        params: None,
                        has_params: nparams > 0,
                        bound,
                        formats: ResultFormats::Text,
                        described: Some(p.described.clone()),
                        copy: p.copy,
                        signal_pids: None,
                    },
                    None => Portal {
                        has_params: nparams > 0,
                        bound,
                        ..Portal::unknown(
                            Arc::from(format!("(unknown prepared statement \"{stmt}\")")),
                            self.allow.clone(),
                            generation,
                        )
                    },
                };
                // Parameters matter only to a statement held for review and
                // to one that signals backends.
                let signals = known.and_then(|p| p.signals.clone());
                if matches!(*entry.verdict, Verdict::Review { .. }) || signals.is_some() {
                    let (raw, values) = codec::bind_params(body).map_err(malformed)?;
                    if let Some(targets) = &signals {
                        entry.signal_pids = Some(Self::signal_pids(targets, &values));
                    }
                    if matches!(*entry.verdict, Verdict::Review { .. }) {
                        entry.params = Some(Arc::new(Params {
                            raw: review_binding(raw, nparams, entry.described.as_deref()),
                            text: review_params(
                                &values,
                                entry.described.as_deref(),
                                &self.ctx.rendering,
                            ),
                        }));
                    }
                }
                entry.formats = formats;
                let at = portal.len() + 1;
                as_upstream(out, msg, at, stmt.len(), known.map(|p| &*p.upstream));
                if !portal.is_empty() && self.mask_plan().is_some() {
                    // SQL's FETCH can read it too (a name not kept is
                    // masked as unknown should a mask apply later).
                    self.sources.define(&format!("cursor:{portal}"), &entry.sql);
                }
                self.portals.set(portal, entry);
            }
            b'E' => {
                let (portal, _) = codec::parse_execute(body).map_err(malformed)?;
                let Portal {
                    sql,
                    verdict,
                    generation,
                    params,
                    has_params,
                    bound,
                    formats,
                    described,
                    copy,
                    signal_pids,
                } = self.portals.get(portal).cloned().unwrap_or_else(|| {
                    Portal::unknown(
                        Arc::from("(unknown portal)"),
                        self.allow.clone(),
                        self.engine.generation(),
                    )
                });
                // Decided at Parse; decided again if the policy changed
                // since, and a statement for review is looked at again (a
                // just-in-time grant may cover it by now).
                let verdict = if matches!(*verdict, Verdict::Review { .. })
                    || generation != self.engine.generation()
                {
                    match self.check(&sql).0 {
                        // Its parameters were not kept (it was bound as a
                        // statement that runs): a review without them would
                        // approve values nobody saw. Refused, to be bound again.
                        Verdict::Review { rule, .. } if params.is_none() && has_params => {
                            Arc::new(Verdict::Deny {
                                message: format!(
                                    "the policy changed after this statement's parameters were bound, and rule {rule} now holds it for review; bind and execute it again, so that the review shows its parameters"
                                ),
                                rule,
                            })
                        }
                        v => Arc::new(v),
                    }
                } else {
                    verdict
                };
                // The backends it names are looked at as it runs: a pid
                // that was the caller's own when the statement was prepared
                // may since be another caller's.
                let verdict = match &signal_pids {
                    Some(pids)
                        if !matches!(*verdict, Verdict::Deny { .. }) && !self.owns_all(pids) =>
                    {
                        Arc::new(crate::built_in::backend_signal_refusal())
                    }
                    _ => verdict,
                };
                let mut stmt = self.stmt(sql, verdict);
                stmt.formats = formats;
                stmt.described = described;
                stmt.bound = bound;
                stmt.copy = copy;
                if stmt.admission.is_none() && !self.ctx.proxy.record_fail_open {
                    // Refuse the rest of the batch as for a refused Parse.
                    let refusal = recorder_behind();
                    if let Verdict::Deny { rule, message } = &refusal {
                        let raise = raise_sql(rule, message);
                        stmt.verdict = Arc::new(refusal.clone());
                        self.refused = Some((stmt, raise));
                    }
                    return Ok(None);
                }
                match &*stmt.verdict {
                    Verdict::Review { .. } => {
                        return Ok(Some(Hold {
                            stmt,
                            msg: BytesMut::from(msg),
                            portal: Some(portal.to_string()),
                            params,
                        }));
                    }
                    Verdict::Deny { rule, message } => {
                        self.audit_refusal(&stmt.sql, rule);
                        let raise = raise_sql(rule, message);
                        self.refused = Some((stmt, raise));
                    }
                    Verdict::Allow { .. } => self.execute(stmt, portal, msg, out)?,
                }
            }
            b'D' => {
                let (kind, name) = codec::parse_describe(body).map_err(malformed)?;
                let known = if kind == b'S' {
                    self.statements.get(name)
                } else {
                    None
                };
                if let Some(p) = known {
                    self.send(Item::DescribeStmt(p.described.clone()))?;
                }
                as_upstream(out, msg, 1, name.len(), known.map(|p| &*p.upstream));
            }
            b'C' => {
                let (kind, name) = codec::parse_close(body).map_err(malformed)?;
                self.send(Item::Close)?;
                let closed = if kind == b'S' {
                    self.statements.remove(name)
                } else {
                    self.portals.close(name);
                    None
                };
                as_upstream(
                    out,
                    msg,
                    1,
                    name.len(),
                    closed.as_ref().map(|p| &*p.upstream),
                );
            }
            b'S' => {
                self.send(Item::Sync)?;
                out.extend_from_slice(msg);
            }
            b'F' => {
                // Fast-path function calls bypass SQL and so the policy: refused.
                let verdict = Arc::new(Verdict::Deny {
                    rule: "fast-path".into(),
                    message: "fast-path function calls are not allowed through Gatehouse; call the function in SQL".into(),
                });
                let stmt = self.stmt(Arc::from("(fast-path function call)"), verdict.clone());
                self.send(Item::Simple(stmt))?;
                if let Verdict::Deny { rule, message } = &*verdict {
                    query_message(out, &raise_sql(rule, message));
                }
            }
            b'p' => return Err("the client sent a password message after authentication".into()),
            _ => out.extend_from_slice(msg),
        }
        Ok(None)
    }
}

async fn client_to_upstream(
    ctx: Arc<Ctx>,
    mut client: PgReader,
    mut up: PgWriter,
    shared: Shared,
    terminated: Arc<AtomicBool>,
    first_seq: i64,
) -> String {
    let Shared {
        pending,
        signals,
        gates,
    } = shared;
    let limit = ctx.proxy.max_message;
    let engine = CachedEngine::new(&*ctx.proxy.policy);
    let mut side = ClientSide {
        ctx,
        pending,
        statements: HashMap::default(),
        portals: Portals::default(),
        signals,
        seq: first_seq,
        refused: None,
        engine,
        allow: Arc::new(Verdict::Allow { rule: None }),
        clock: WallClock::new(),
        gates,
        in_batch: false,
        skipping: false,
        looks_up: false,
        sources: ResultSources::default(),
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        match client.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return "client closed".into(),
            Ok(_) => {}
        }
        // A recorder behind slows the session down before it refuses
        // statements (the upstream side keeps sending this session's
        // records meanwhile); with fail-open recording they run at once.
        if !side.ctx.proxy.record_fail_open && side.ctx.proxy.recorder.is_full() {
            side.ctx
                .proxy
                .recorder
                .wait_for_room(gatehouse_store::recorder::ROOM_WAIT)
                .await;
        }
        out.clear();
        // The policy in force is looked at once per read (a batch of
        // messages that came together), and again after a hold.
        side.engine.refresh(&*side.ctx.proxy.policy);
        let mut terminate = false;
        loop {
            let (tag, total) = match codec::frame(&buf, limit) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return format!("{CLIENT_PROTOCOL_ERROR}: {e}"),
            };
            if side.views_matter(tag) {
                side.look_up_views(tag, &buf[..total]).await;
            }
            // Looked at in place (no handle split off the buffer per message).
            let handled = side.message(tag, &buf[..total], &mut out);
            if side.gates.probe.state() == PROBE_OUT {
                // Not consumed: handled again once the probe is answered.
                if !out.is_empty() && flush(&mut up, &mut out).await.is_err() {
                    return "upstream closed".into();
                }
                side.gates.probe.settled(PROBE_OUT).await;
                if side.gates.probe.state() == PROBE_SKIPPED {
                    side.skipping = true;
                } else {
                    side.in_batch = false;
                }
                side.gates.probe.set(PROBE_NONE);
                continue;
            }
            buf.advance(total);
            match handled {
                Err(e) => return e,
                Ok(None) => {}
                Ok(Some(hold)) => {
                    // What came before goes now; the rest waits with it.
                    if !out.is_empty() && flush(&mut up, &mut out).await.is_err() {
                        return "upstream closed".into();
                    }
                    let verdict = match side.hold(&hold, &mut client, &mut buf, limit).await {
                        Ok(v) => v,
                        Err(e) => return e,
                    };
                    if let Err(e) = side.release(hold, verdict, &mut out).await {
                        return e;
                    }
                    side.engine.refresh(&*side.ctx.proxy.policy);
                }
            }
            if side.gates.copy.state() == COPY_PENDING {
                // The rest waits until the upstream side knows whether the
                // statement just sent started COPY FROM STDIN.
                if !out.is_empty() && flush(&mut up, &mut out).await.is_err() {
                    return "upstream closed".into();
                }
                side.gates.copy.settled(COPY_PENDING).await;
            }
            if tag == b'X' {
                terminated.store(true, Ordering::Release);
                terminate = true;
                break;
            }
        }
        if !out.is_empty() && up.send(&out).await.is_err() {
            return "upstream closed".into();
        }
        if terminate {
            let _ = up.shutdown().await;
            return "client closed".into();
        }
        if buf.capacity() > 4 * limit.max(1 << 20) && buf.is_empty() {
            buf = BytesMut::with_capacity(16 * 1024);
        }
    }
}

struct UpstreamSide {
    ctx: Arc<Ctx>,
    out: BytesMut,
    /// This session's statement records, sent to the recorder in chunks.
    log: SessionLog,
    /// Masking state: resolved relations, the key for hashed values.
    masking: MaskSession,
    /// How the rows of the current result are masked, if they are.
    rows: Option<RowMask>,
    /// The last `RowDescription` recorded and its columns: drivers
    /// describe the same statement before every execution, so the columns
    /// are made once, not per statement.
    described: Option<(Vec<u8>, Arc<Columns>)>,
    /// Room to write a binary value as text (for [`capture`]).
    scratch: String,
    /// What recording binary values as text depends on: the types
    /// created in the database that this session's results had, as the
    /// catalog describes them, and the session's settings.
    rendering: Rendering,
    /// The statement (by number) whose columns' types were last looked at
    /// ([`UpstreamSide::types_due`]).
    types_checked: i64,
    /// The first rows of the result of the statement at the front of the
    /// queue (the one receiving rows), for its record; reused from
    /// statement to statement.
    sample: ResultSample,
    /// The values bound to the parameters of the statement being recorded
    /// (reused, like `sample`).
    params: ResultSample,
    /// The command tag of the simple query at the front of the queue, if
    /// one came (reused, like `sample`).
    command: String,
    has_command: bool,
    /// COPY FROM STDIN and probes, shared with the client side.
    gates: Arc<Gates>,
}

/// Keeps a result row (the DataRow body `row`, as the client receives it)
/// in `sample` while the statement at the front of the queue has fewer
/// than `limit` rows recorded. Text columns are kept as sent; binary ones
/// as PostgreSQL would write them as text when their type is known and
/// rendered by [`crate::values`], otherwise (and text that is not UTF-8)
/// as `\x` and hex. `scratch` is room for that rendering.
fn capture(
    sample: &mut ResultSample,
    scratch: &mut String,
    limit: usize,
    q: &VecDeque<Item>,
    row: Option<&[u8]>,
    rendering: &Rendering,
) {
    let Some(Item::Simple(stmt) | Item::Exec(stmt)) = q.front() else {
        return;
    };
    if limit == 0 {
        return;
    }
    let Some(row) = row else {
        // Streamed through in pieces: too large to record.
        sample.truncated = true;
        return;
    };
    if sample.rows() >= limit || sample.value_bytes() >= RECORD_BYTES {
        sample.truncated = true;
        return;
    }
    sample.begin_row();
    let mut column = 0;
    let columns = stmt.result_columns();
    let read = codec::visit_data_row(row, |v| {
        match v {
            None => sample.value(None),
            Some(v) if stmt.formats.binary(column) => {
                scratch.clear();
                // Rendered up to the sample's size in bytes, and kept while
                // its text is at most four times that (a numeric of few
                // digits and a large exponent is short in binary).
                let rendered = columns
                    .and_then(|c| c.types.get(column))
                    .filter(|_| v.len() <= RECORD_BYTES)
                    .and_then(|&t| crate::values::render(t, v, rendering, scratch));
                match rendered {
                    Some(()) if scratch.len() <= 4 * RECORD_BYTES => sample.value(Some(scratch)),
                    _ => value_hex(sample, v),
                }
            }
            Some(v) => match std::str::from_utf8(v) {
                Ok(t) => sample.value(Some(t)),
                Err(_) => value_hex(sample, v),
            },
        }
        column += 1;
    });
    match read {
        Ok(()) => sample.end_row(),
        Err(_) => sample.abandon_row(),
    }
    if scratch.capacity() > 4 * RECORD_BYTES {
        // Not kept for the rest of the session after a long value.
        *scratch = String::new();
    }
}

/// A value recorded as `\x` and hex: at most its first [`HEX_BYTES`] bytes,
/// the sample marked truncated when it had more.
fn value_hex(sample: &mut ResultSample, v: &[u8]) {
    if v.len() > HEX_BYTES {
        sample.truncated = true;
    }
    sample.value_hex(v, HEX_BYTES);
}

/// The names and types of a `RowDescription` body's columns.
fn columns_of(body: &[u8]) -> Option<Columns> {
    let fields = codec::parse_row_description(body).ok()?;
    let types = fields.iter().map(|f| f.type_oid).collect();
    let names = fields.into_iter().map(|f| f.name).collect();
    Some(Columns { names, types })
}

impl UpstreamSide {
    /// The columns of a `RowDescription` body, for the recording.
    fn columns(&mut self, body: &[u8]) -> Option<Arc<Columns>> {
        if let Some((last, columns)) = &self.described
            && last.as_slice() == body
        {
            return Some(columns.clone());
        }
        let columns = Arc::new(columns_of(body)?);
        // Kept only while small: a wide result is described anew each time.
        if body.len() <= 4096 {
            self.described = Some((body.to_vec(), columns.clone()));
        }
        Some(columns)
    }

    /// At a row: the types to look up first, if the statement receiving
    /// it has binary columns of types created in the database that this
    /// session does not know yet (looked at once per statement; a simple
    /// query's results are text).
    #[inline]
    fn types_due(&mut self, q: &VecDeque<Item>) -> Option<Vec<u32>> {
        if self.ctx.record_rows == 0 {
            return None;
        }
        let Some(Item::Exec(stmt)) = q.front() else {
            return None;
        };
        if matches!(stmt.formats, ResultFormats::Text) || stmt.seq == self.types_checked {
            return None;
        }
        self.types_checked = stmt.seq;
        let missing = self.unknown_types(stmt);
        (!missing.is_empty()).then_some(missing)
    }

    /// The types of the binary columns of `stmt` (receiving rows) that
    /// are created in the database and not yet known to this session:
    /// looked at once per statement, at its first row (only statements
    /// with binary results: a simple query's are text).
    #[inline(never)]
    fn unknown_types(&self, stmt: &Stmt) -> Vec<u32> {
        let Some(columns) = stmt.result_columns() else {
            return Vec::new();
        };
        self.not_known(
            (columns.types.iter().enumerate())
                .filter(|&(i, _)| stmt.formats.binary(i))
                .map(|(_, t)| *t),
        )
    }

    /// When a statement is done (before it is recorded): the types to
    /// look up first, if it bound values in binary whose types are created
    /// in the database and not known to this session. Types the server
    /// described were looked up when it described them; this is for those
    /// only the statement's `Parse` declared (looked at only when some
    /// value came in binary; once looked up, a type is known, or kept as
    /// not rendered, for the rest of the session).
    fn param_types_due(&self, q: &VecDeque<Item>) -> Option<Vec<u32>> {
        let Some(Item::Exec(stmt)) = q.front() else {
            return None;
        };
        let bound = stmt.bound.as_ref()?;
        if !bound.binary
            || stmt
                .described
                .as_ref()
                .is_some_and(|d| d.params.get().is_some())
        {
            return None;
        }
        let missing = self.not_known(
            (bound.values().enumerate())
                .filter(|(_, v)| v.is_some_and(|(binary, ..)| binary))
                .filter_map(|(i, _)| stmt.param_type(i)),
        );
        (!missing.is_empty()).then_some(missing)
    }

    /// Those of `types` that are created in the database and not yet
    /// known to this session, each once.
    fn not_known(&self, types: impl Iterator<Item = u32>) -> Vec<u32> {
        let mut missing: Vec<u32> = types
            .filter(|t| crate::values::needs_catalog(*t) && !self.rendering.types.contains_key(t))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Learns the types `oids` (and what they are made of) from the
    /// catalog. Types it cannot tell (or all of them, if the catalog
    /// cannot be read) are kept as not rendered: their values are recorded
    /// as hex, and not looked up again in this session.
    async fn learn_types(&mut self, oids: &[u32]) {
        // Bounded: a session that meets very many types starts over.
        if self.rendering.types.len() > 10_000 {
            self.rendering.types.clear();
        }
        let ctx = self.ctx.clone();
        match ctx.proxy.catalog.types(&ctx.catalog, oids).await {
            Ok(found) => self.rendering.types.extend(found),
            Err(e) => {
                tracing::warn!(connection = %ctx.catalog.connection, error = %e, "cannot read the upstream catalog; binary values of types created in the database are recorded as hex");
            }
        }
        for o in oids {
            self.rendering.types.entry(*o).or_insert(UserType::Opaque);
        }
    }

    /// Records a statement that is done, with its command tag.
    fn finish(&mut self, mut stmt: Stmt, command: Option<&str>) {
        if stmt.changes_definitions {
            // Before the client side goes on (see `Gates`): what the
            // catalog said is asked again (the statement's own `Bind` and
            // `Execute` may have asked before it ran).
            self.ctx.proxy.catalog.forget_views(&self.ctx.connection);
            self.gates
                .uncommitted_definitions
                .store(true, Ordering::Release);
        }
        if stmt.copy {
            // Whatever COPY it started is over.
            self.gates.copy.set(COPY_NONE);
        }
        let duration = i64::try_from(stmt.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        if stmt.rows == 0
            && let Some(n) = command.and_then(codec::tag_rows)
        {
            stmt.rows = n;
        }
        let Some(admission) = stmt.admission.take() else {
            self.sample.clear();
            tracing::warn!(session = %self.ctx.session_id, "a statement refused while the recorder was behind is not recorded");
            return;
        };
        // Content detectors that apply to the caller's results apply to the
        // recorded text too (literals in statements can carry the same data).
        let detectors = stmt.detectors.take();
        let redacted = detectors.as_ref().and_then(|d| d.redact(&stmt.sql));
        let stmt_bound = stmt.bound.is_some();
        if let Some(bound) = &stmt.bound {
            self.params_as_text(&stmt, bound, detectors.as_deref());
        }
        let columns = stmt
            .result_columns()
            .map(|c| c.clone() as Arc<dyn ColumnNames>);
        // The record's JSON is written by the recorder's writer, off this
        // thread.
        self.log.push_record(
            admission,
            Record {
                seq: stmt.seq,
                started_at: stmt.started_at,
                duration_us: duration,
                sql: redacted.map_or(stmt.sql, Arc::from),
                verdict: stmt.verdict,
                rows: stmt.rows,
                // An error can quote what the statement was given.
                error: stmt
                    .error
                    .map(|e| detectors.as_ref().and_then(|d| d.redact(&e)).unwrap_or(e)),
                columns,
            },
            command,
            &self.sample,
            stmt_bound.then_some(&self.params),
        );
        self.sample.clear();
        self.params.clear();
    }

    /// The values bound to `stmt`'s parameters as its record keeps them,
    /// into `self.params`: text as it came, binary values written as
    /// PostgreSQL writes them where their type is known ([`crate::values`];
    /// else `\x` and hex), with what `detectors` find redacted.
    fn params_as_text(
        &mut self,
        stmt: &Stmt,
        bound: &Bound,
        detectors: Option<&gatehouse_policy::detect::Detectors>,
    ) {
        let sample = &mut self.params;
        sample.begin_row();
        for (i, v) in bound.values().enumerate() {
            let Some((binary, whole, v)) = v else {
                sample.value(None);
                continue;
            };
            let t = if binary { stmt.param_type(i) } else { None };
            match param_text(binary, whole, v, t, &self.rendering, &mut self.scratch) {
                Some(t) => match detectors.and_then(|d| d.redact(t)) {
                    Some(redacted) => sample.value(Some(&redacted)),
                    None => sample.value(Some(t)),
                },
                None => {
                    sample.truncated |= v.len() > HEX_BYTES;
                    sample.value_hex(v, HEX_BYTES);
                }
            }
        }
        sample.end_row();
        sample.truncated |= bound.truncated;
        if self.scratch.capacity() > 4 * RECORD_BYTES {
            self.scratch = String::new();
        }
    }

    /// Notes the effect of one upstream message (`body` is complete unless
    /// the message is being streamed, in which case it is empty).
    fn observe(&mut self, pending: &mut VecDeque<Item>, tag: u8, body: &[u8]) {
        match tag {
            b'D' => {
                if let Some(Item::Simple(s) | Item::Exec(s)) = pending.front_mut() {
                    s.rows += 1
                }
            }
            b'C' => {
                let command = codec::parse_command_complete(body);
                match pending.front_mut() {
                    Some(Item::Exec(_)) => {
                        if let Some(Item::Exec(s)) = pending.pop_front() {
                            self.finish(s, command);
                        }
                    }
                    Some(Item::Simple(s)) => {
                        if let Some(n) = command.and_then(codec::tag_rows)
                            && s.rows < n
                        {
                            s.rows = n;
                        }
                        // A query of several statements is recorded with
                        // the last one's tag.
                        self.command.clear();
                        self.has_command = command.is_some();
                        self.command.push_str(command.unwrap_or_default());
                    }
                    _ => {}
                }
            }
            b'I' | b's' => {
                if matches!(pending.front(), Some(Item::Exec(_)))
                    && let Some(Item::Exec(s)) = pending.pop_front()
                {
                    self.finish(s, Some(if tag == b'I' { "EMPTY" } else { "SUSPENDED" }));
                }
            }
            b'E' => {
                let (code, message) = codec::parse_error(body);
                let error = format!("{code}: {message}");
                match pending.front_mut() {
                    Some(Item::Simple(s)) => s.error = Some(error),
                    Some(
                        Item::Exec(_)
                        | Item::Describe
                        | Item::DescribeStmt(_)
                        | Item::Close
                        | Item::Probe,
                    ) => {
                        // This Execute (or a message before it) failed, and
                        // the server skips the rest of the batch until Sync.
                        let mut first = true;
                        while matches!(
                            pending.front(),
                            Some(
                                Item::Exec(_)
                                    | Item::Describe
                                    | Item::DescribeStmt(_)
                                    | Item::Close
                                    | Item::Probe
                            )
                        ) {
                            if matches!(pending.front(), Some(Item::Probe)) {
                                self.gates.probe.set(PROBE_SKIPPED);
                            }
                            if let Some(Item::Exec(mut s)) = pending.pop_front() {
                                s.error = Some(if first {
                                    error.clone()
                                } else {
                                    "skipped: an earlier message of the batch failed".into()
                                });
                                first = false;
                                self.finish(s, None);
                            }
                        }
                    }
                    _ => {}
                }
            }
            b'Z' => {
                self.ready(pending);
                if body.first() == Some(&b'I')
                    && self.gates.uncommitted_definitions.load(Ordering::Acquire)
                {
                    // No transaction open: what it changed is committed
                    // (or rolled back).
                    self.gates
                        .uncommitted_definitions
                        .store(false, Ordering::Release);
                }
            }
            _ => {}
        }
    }

    /// At `ReadyForQuery`: the statements of the batch it ends are done.
    fn ready(&mut self, pending: &mut VecDeque<Item>) {
        loop {
            match pending.pop_front() {
                Some(Item::Simple(s)) => {
                    let command = std::mem::take(&mut self.command);
                    let has = std::mem::take(&mut self.has_command);
                    self.finish(s, has.then_some(command.as_str()));
                    self.command = command;
                    break;
                }
                Some(Item::Sync) | None => break,
                Some(Item::Describe | Item::DescribeStmt(_) | Item::Swallow(_) | Item::Close) => {}
                Some(Item::Probe) => self.gates.probe.set(PROBE_SKIPPED),
                Some(Item::Exec(mut s)) => {
                    s.error = Some("no response before the end of the batch".into());
                    self.finish(s, None);
                }
            }
        }
    }
}

/// Why the upstream side woke.
enum Wake {
    Signal,
    Flush,
    Read(std::io::Result<usize>),
}

/// What to do with one upstream message.
enum Step {
    /// Pass it to the client as it is.
    Forward,
    /// It was handled (rewritten into the output, or not for the client).
    Consumed,
    /// Something must be looked up in the upstream's catalog first.
    Lookup(Lookup),
    /// The session ends once what is for the client so far (a FATAL error
    /// saying why last) has gone to it; the reason.
    End(String),
}

/// What the upstream side looks up in the catalog before it goes on.
enum Lookup {
    /// Where some result columns come from (tables by OID), for masking.
    Tables(Vec<u32>),
    /// Types created in the database, to record binary values of them as
    /// text.
    Types(Vec<u32>),
}

impl UpstreamSide {
    /// Handles one complete upstream message `msg` (tag and length included).
    fn message(&mut self, q: &mut VecDeque<Item>, tag: u8, msg: &[u8]) -> Result<Step, String> {
        let body = codec::body(msg);
        if matches!(q.front(), Some(Item::Swallow(t)) if *t == tag) {
            q.pop_front();
            return Ok(Step::Consumed);
        }
        if tag == b'3' {
            match q.front() {
                Some(Item::Probe) => {
                    q.pop_front();
                    self.gates.probe.set(PROBE_RUN);
                    return Ok(Step::Consumed);
                }
                Some(Item::Close) => {
                    q.pop_front();
                }
                _ => {}
            }
            return Ok(Step::Forward);
        }
        if matches!(tag, b'C' | b'I' | b's' | b'E')
            && let Some(missing) = self.param_types_due(q)
        {
            return Ok(Step::Lookup(Lookup::Types(missing)));
        }
        if let Some(Item::DescribeStmt(described)) = q.front()
            && tag == b't'
        {
            // Its parameters' types, for the recording of their values:
            // types created in the database are looked up first (once per
            // session), as a binary result's are, so that an enum, a
            // domain or a row bound in binary is recorded as text.
            if let Ok(types) = codec::parse_parameter_description(body) {
                let missing = self.not_known(types.iter());
                if !missing.is_empty() {
                    return Ok(Step::Lookup(Lookup::Types(missing)));
                }
                let _ = described.params.set(types.iter().collect());
            }
            return Ok(Step::Forward);
        }
        if let Some(Item::DescribeStmt(described)) = q.front()
            && matches!(tag, b'T' | b'n')
        {
            // The answer to the client's Describe of a prepared statement
            // (after its ParameterDescription): passed on, and its columns
            // kept for the statement's executions.
            if tag == b'T'
                && let Some(columns) = columns_of(body)
            {
                let _ = described.columns.set(Arc::new(columns));
            }
            q.pop_front();
            return Ok(Step::Forward);
        }
        match tag {
            b'T' => {
                let ours = matches!(q.front(), Some(Item::Describe));
                let mask = match (ours, q.front(), q.get(1)) {
                    (true, _, Some(Item::Exec(s))) => s.mask.clone(),
                    (false, Some(Item::Simple(s) | Item::Exec(s)), _) => s.mask.clone(),
                    _ => None,
                };
                self.rows = None;
                if let Some(mask) = mask {
                    let fields = codec::parse_row_description(body)
                        .map_err(|e| format!("protocol error from the upstream: {e}"))?;
                    self.masking.keep_up(self.ctx.proxy.catalog.changes());
                    let missing = self.masking.unresolved(&fields, &mask);
                    if !missing.is_empty() {
                        return Ok(Step::Lookup(Lookup::Tables(missing)));
                    }
                    self.rows = self.masking.row_mask(&fields, &mask);
                    if self.ctx.local
                        && !ours
                        && let Some(rows) = &self.rows
                    {
                        crate::local::announce_masked(&mut self.out, &rows.masked_columns());
                    }
                }
                if self.ctx.record_rows > 0 {
                    let target = match (ours, q.front_mut()) {
                        (true, _) => match q.get_mut(1) {
                            Some(Item::Exec(s)) => Some(s),
                            _ => None,
                        },
                        (false, Some(Item::Simple(s) | Item::Exec(s))) => Some(s),
                        _ => None,
                    };
                    if let Some(s) = target {
                        s.columns = self.columns(body);
                    }
                }
                if ours {
                    q.pop_front();
                    return Ok(Step::Consumed);
                }
                self.observe(q, tag, body);
                Ok(Step::Forward)
            }
            b'n' if matches!(q.front(), Some(Item::Describe)) => {
                // NoData for Gatehouse's Describe: the statement returns no rows.
                q.pop_front();
                self.rows = None;
                Ok(Step::Consumed)
            }
            b'D' if self.rows.is_some() => {
                if let Some(missing) = self.types_due(q) {
                    return Ok(Step::Lookup(Lookup::Types(missing)));
                }
                self.observe(q, tag, body);
                if let Some(rows) = &self.rows {
                    let at = self.out.len();
                    self.masking
                        .mask_row(rows, body, &mut self.out)
                        .map_err(|e| {
                            format!(
                                "Gatehouse could not mask a result row ({e}); the session was ended"
                            )
                        })?;
                    // Recorded as the client sees it: masked.
                    capture(
                        &mut self.sample,
                        &mut self.scratch,
                        self.ctx.record_rows,
                        q,
                        self.out.get(at + 5..),
                        &self.rendering,
                    );
                }
                Ok(Step::Consumed)
            }
            b'E' | b'N' => {
                // Messages about a statement that involves masked columns
                // are scrubbed (values in them), and recorded as the client
                // gets them.
                let mask = match q.front() {
                    Some(Item::Simple(s) | Item::Exec(s)) => s.mask.clone(),
                    Some(Item::Describe) => match q.get(1) {
                        Some(Item::Exec(s)) => s.mask.clone(),
                        _ => None,
                    },
                    _ => None,
                };
                if tag == b'E' {
                    self.rows = None;
                }
                match mask.filter(StatementMask::scrubs_errors) {
                    None => {
                        self.observe(q, tag, body);
                        Ok(Step::Forward)
                    }
                    Some(m) => {
                        let fields = codec::fields(body);
                        let code = fields
                            .iter()
                            .find(|(f, _)| *f == b'C')
                            .map_or("", |(_, c)| c);
                        let at = self.out.len();
                        codec::rewrite_fields(&mut self.out, tag, body, |f, t| {
                            crate::mask::scrub_field(f, t, &m, code)
                        });
                        let scrubbed = self.out[at + 5..].to_vec();
                        self.observe(q, tag, &scrubbed);
                        Ok(Step::Consumed)
                    }
                }
            }
            b'S' => {
                if let Ok((name, value)) = codec::parse_parameter_status(body) {
                    // SET TimeZone, DateStyle or IntervalStyle: binary
                    // dates, times and intervals are recorded as they now
                    // come in text.
                    self.rendering.set_parameter(name, value);
                    // The server reports this one (PostgreSQL 14 on): should
                    // a read-only connection's session have left read-only
                    // mode in a way Gatehouse did not see (in a DO block,
                    // say), it ends before its next statement can write.
                    if self.ctx.read_only
                        && name == "default_transaction_read_only"
                        && value != "on"
                    {
                        let why = format!(
                            "connection \"{}\" is read-only, and the session left read-only mode (default_transaction_read_only is now {value})",
                            self.ctx.connection
                        );
                        codec::error(
                            &mut self.out,
                            Severity::Fatal,
                            "57P01",
                            &format!("Gatehouse ended this session: {why}"),
                            None,
                        );
                        return Ok(Step::End(why));
                    }
                }
                self.observe(q, tag, body);
                Ok(Step::Forward)
            }
            b'G' => {
                // COPY FROM STDIN has started; the client side waits for
                // this (see Gates). One it did not see coming leaves
                // Gatehouse unable to tell which Syncs will be answered.
                if !self.gates.copy.swap(COPY_PENDING, COPY_IN) {
                    return Err(
                        "the server started a COPY FROM STDIN that Gatehouse did not expect; the session was ended"
                            .into(),
                    );
                }
                Ok(Step::Forward)
            }
            b'C' | b'I' | b's' | b'Z' => {
                self.rows = None;
                self.observe(q, tag, body);
                Ok(Step::Forward)
            }
            b'D' => {
                if let Some(missing) = self.types_due(q) {
                    return Ok(Step::Lookup(Lookup::Types(missing)));
                }
                self.observe(q, tag, body);
                capture(
                    &mut self.sample,
                    &mut self.scratch,
                    self.ctx.record_rows,
                    q,
                    Some(body),
                    &self.rendering,
                );
                Ok(Step::Forward)
            }
            _ => {
                self.observe(q, tag, body);
                Ok(Step::Forward)
            }
        }
    }
}

async fn upstream_to_client(
    ctx: Arc<Ctx>,
    mut up: PgReader,
    mut client: PgWriter,
    shared: Shared,
    mut buf: BytesMut,
    startup: Vec<StartupSetting>,
) -> String {
    let Shared {
        pending,
        signals,
        gates,
    } = shared;
    let mut log = ctx.proxy.recorder.session_log(&ctx.session_id);
    let at = now_ms();
    for (seq, s) in (1..).zip(startup) {
        log.push_record(
            s.admission,
            Record {
                seq,
                started_at: at,
                duration_us: 0,
                sql: s.sql.into(),
                verdict: Arc::new(s.verdict),
                rows: 0,
                error: s.not_applied,
                columns: None,
            },
            Some("SET"),
            &ResultSample::default(),
            None,
        );
    }
    let masking = MaskSession::new(&ctx.proxy.keys.get());
    let rendering = ctx.rendering.clone();
    let mut side = UpstreamSide {
        ctx,
        out: BytesMut::with_capacity(16 * 1024),
        log,
        masking,
        rows: None,
        described: None,
        scratch: String::new(),
        rendering,
        types_checked: -1,
        sample: ResultSample::default(),
        params: ResultSample::default(),
        command: String::new(),
        has_command: false,
        gates,
    };
    // Records wait at most this long before they go to the recorder.
    let idle_flush = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(idle_flush);
    let mut flush_armed = false;
    // Whether the task is registered with the flush timer since it was
    // armed (it stays registered until it fires) and with the signals
    // (once: their waker is kept).
    let mut flush_registered = false;
    let mut signals_registered = false;
    // Bytes of a large message still to stream through.
    let mut streaming: usize = 0;
    let mut first = !buf.is_empty();
    // Notices waiting for a message boundary.
    let mut held: Vec<BytesMut> = Vec::new();
    loop {
        if !first {
            // The signals first, so that the end of the session is seen
            // at once even while the upstream streams without pause. Under
            // load the upstream is readable at nearly every wake-up: then
            // the signals cost one load and the timer nothing. Before the
            // task waits, it registers with what it is not yet registered
            // with, and looks again.
            let woke = std::future::poll_fn(|cx| {
                if signals.take() {
                    return Poll::Ready(Wake::Signal);
                }
                if let Poll::Ready(r) =
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut up), cx, &mut buf)
                {
                    return Poll::Ready(Wake::Read(r));
                }
                if flush_armed {
                    let due = if flush_registered {
                        idle_flush.is_elapsed()
                    } else {
                        flush_registered = true;
                        idle_flush.as_mut().poll(cx).is_ready()
                    };
                    if due {
                        return Poll::Ready(Wake::Flush);
                    }
                }
                if !signals_registered {
                    signals.register(cx);
                    signals_registered = true;
                    if signals.take() {
                        return Poll::Ready(Wake::Signal);
                    }
                }
                Poll::Pending
            })
            .await;
            match woke {
                Wake::Signal => {
                    held.append(&mut lock(&signals.notices));
                    let end = lock(&signals.end).take();
                    if let Some(why) = end {
                        if !why.is_empty() {
                            let code = if why.starts_with(CLIENT_PROTOCOL_ERROR) {
                                "08P01"
                            } else {
                                "57P01"
                            };
                            codec::error(
                                &mut side.out,
                                Severity::Fatal,
                                code,
                                &format!("Gatehouse ended this session: {why}"),
                                None,
                            );
                        }
                        let _ = flush(&mut client, &mut side.out).await;
                        let _ = client.shutdown().await;
                        return if why.is_empty() {
                            "client closed".into()
                        } else {
                            why
                        };
                    }
                    first = true;
                    continue;
                }
                Wake::Flush => {
                    side.log.flush();
                    flush_armed = false;
                    continue;
                }
                Wake::Read(Ok(0) | Err(_)) => {
                    let _ = flush(&mut client, &mut side.out).await;
                    return "upstream closed".into();
                }
                Wake::Read(Ok(_)) => {}
            }
        }
        first = false;
        // Relay every complete message (and the available part of a large one).
        let mut lookup: Option<Lookup> = None;
        let mut ending: Option<String> = None;
        {
            let mut q = lock(&pending);
            loop {
                if streaming > 0 {
                    let n = streaming.min(buf.len());
                    side.out.extend_from_slice(&buf[..n]);
                    buf.advance(n);
                    streaming -= n;
                    if streaming > 0 {
                        break;
                    }
                    continue;
                }
                let (tag, total) = match codec::header(&buf, UPSTREAM_LIMIT) {
                    Ok(Some(h)) => h,
                    Ok(None) => break,
                    Err(e) => return format!("protocol error from the upstream: {e}"),
                };
                if buf.len() < total {
                    if side.rows.is_some() && tag == b'D' {
                        // A masked row is rewritten whole: it must fit.
                        if total > MASKED_ROW_LIMIT {
                            return format!(
                                "a result row of {total} bytes is over the {MASKED_ROW_LIMIT}-byte limit for rows Gatehouse masks; the session was ended"
                            );
                        }
                    } else if total > STREAM_OVER && matches!(tag, b'D' | b'd') {
                        side.observe(&mut q, tag, &[]);
                        if tag == b'D' {
                            capture(
                                &mut side.sample,
                                &mut side.scratch,
                                side.ctx.record_rows,
                                &q,
                                None,
                                &side.rendering,
                            );
                        }
                        streaming = total;
                        continue;
                    }
                    buf.reserve(total - buf.len());
                    break;
                }
                match side.message(&mut q, tag, &buf[..total]) {
                    Ok(Step::Forward) => {
                        side.out.extend_from_slice(&buf[..total]);
                        buf.advance(total);
                    }
                    Ok(Step::Consumed) => buf.advance(total),
                    Ok(Step::Lookup(what)) => {
                        lookup = Some(what);
                        break;
                    }
                    Ok(Step::End(why)) => {
                        ending = Some(why);
                        break;
                    }
                    Err(e) => return e,
                }
            }
        }
        if let Some(why) = ending.take() {
            let _ = flush(&mut client, &mut side.out).await;
            let _ = client.shutdown().await;
            return why;
        }
        if let Some(what) = lookup {
            // Look it up, then go over the same message again (no read: it
            // is still in the buffer).
            match what {
                Lookup::Tables(oids) => {
                    let ctx = side.ctx.clone();
                    side.masking
                        .resolve(&ctx.proxy.catalog, &ctx.catalog, &oids)
                        .await;
                }
                Lookup::Types(oids) => side.learn_types(&oids).await,
            }
            first = true;
        }
        if streaming == 0 {
            for n in held.drain(..) {
                side.out.extend_from_slice(&n);
            }
        }
        if !side.out.is_empty() && flush(&mut client, &mut side.out).await.is_err() {
            return "client closed".into();
        }
        if !flush_armed && !side.log.is_empty() {
            idle_flush
                .as_mut()
                .reset(tokio::time::Instant::now() + RECORD_DELAY);
            flush_armed = true;
            flush_registered = false;
        }
    }
}

async fn flush(w: &mut PgWriter, out: &mut BytesMut) -> std::io::Result<()> {
    let r = w.send(out).await;
    out.clear();
    if out.capacity() > 4 << 20 {
        *out = BytesMut::with_capacity(16 * 1024);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_start_times_follow_the_monotonic_clock_within_a_second() {
        let base = Instant::now();
        let mut clock = WallClock {
            base,
            base_ms: 1_000,
        };
        assert_eq!(clock.at(base), 1_000);
        assert_eq!(clock.at(base + Duration::from_millis(250)), 1_250);
        assert_eq!(clock.at(base + Duration::from_millis(999)), 1_999);
        // An instant before the base (not expected) reads as the base.
        let mut later = WallClock {
            base: base + Duration::from_millis(5),
            base_ms: 1_000,
        };
        assert_eq!(later.at(base), 1_000);
        // A second on, the wall clock is read again and becomes the base.
        let next = base + Duration::from_secs(1);
        let before = now_ms();
        let at = clock.at(next);
        assert!(at >= before && at <= now_ms(), "{at} is the wall clock now");
        assert_eq!(clock.base, next);
        assert_eq!(clock.at(next + Duration::from_millis(10)), at + 10);
    }

    #[test]
    fn bound_values_are_kept_up_to_the_limits_and_read_back() {
        let mut b = Bound::new(10);
        let values: [codec::BoundValue<'_>; 4] = [
            None,
            Some((false, b"abc".as_slice())),
            Some((true, b"\x00\x01".as_slice())),
            Some((false, b"0123456789".as_slice())),
        ];
        for v in values {
            b.push(v);
        }
        let read: Vec<_> = b.values().collect();
        assert_eq!(
            read,
            [
                None,
                Some((false, true, b"abc".as_slice())),
                Some((true, true, b"\x00\x01".as_slice())),
                // What was left of the 10 bytes.
                Some((false, false, b"01234".as_slice())),
            ]
        );
        assert!(b.truncated && b.room == 0);
        // Past the count kept, values are left out and the record says so.
        let mut b = Bound::new(RECORD_BYTES);
        for _ in 0..PARAMS_KEPT + 1 {
            b.push(Some((false, b"1".as_slice())));
        }
        assert_eq!(b.values().count(), PARAMS_KEPT);
        assert_eq!(b.count, PARAMS_KEPT + 1);
        assert!(b.truncated);
    }

    fn portal(sql: &str) -> Portal {
        Portal::unknown(Arc::from(sql), Arc::new(Verdict::Allow { rule: None }), 0)
    }

    #[test]
    fn copy_is_looked_for_as_a_word_in_any_case() {
        for sql in [
            "COPY t FROM STDIN",
            "copy t from stdin",
            "  /* x */ CoPy t FROM STDIN",
            "SELECT 1; COPY t FROM STDIN",
            "COPY(SELECT 1) TO STDOUT",
            "COPY\"t\" FROM STDIN",
            "copy",
            "SELECT 1;\ncopy t FROM STDIN",
            "(copy)",
        ] {
            assert!(may_copy(sql), "{sql}");
        }
        for sql in [
            "SELECT copy_count FROM t",
            "SELECT * FROM copyright",
            "SELECT xcopy, copy1, copy$ FROM t",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
            "SELECT 'cop' || 'y'",
            "SELECT écopy FROM t",
            "",
            "y",
            "opy",
            "SELECT happy, copying, copyy FROM t",
        ] {
            assert!(!may_copy(sql), "{sql}");
        }
    }

    #[test]
    fn prepare_is_looked_for_where_a_statement_begins() {
        for sql in [
            "PREPARE p AS SELECT 1",
            "prepare p as select 1",
            "SELECT 1;Prepare p AS SELECT 2",
            "/**/PREPARE\tp AS SELECT 1",
            "-- note\nPREPARE p AS SELECT 1",
            "prepare",
            "  \n prepare(int) p",
            "SELECT ';prepare'",
        ] {
            assert!(may_prepare(sql), "{sql}");
        }
        for sql in [
            "SELECT prepared FROM t",
            "SELECT prepare FROM t",
            "preparex p AS SELECT 1",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
            "SELECT 1; SELECT 2;",
            "",
            ";",
            "p",
            "prepar",
        ] {
            assert!(!may_prepare(sql), "{sql}");
        }
    }

    fn sql_of(p: &Portals, name: &str) -> Option<String> {
        p.get(name).map(|p| p.sql.to_string())
    }

    #[test]
    fn the_unnamed_portal_and_named_ones_are_bound_and_closed_apart() {
        let mut p = Portals::default();
        assert_eq!(sql_of(&p, ""), None);
        p.set("", portal("select 1"));
        p.set("c1", portal("select 2"));
        assert_eq!(sql_of(&p, "").as_deref(), Some("select 1"));
        assert_eq!(sql_of(&p, "c1").as_deref(), Some("select 2"));
        // Binding a portal again replaces it, as the server does.
        p.set("", portal("select 3"));
        p.set("c1", portal("select 4"));
        assert_eq!(sql_of(&p, "").as_deref(), Some("select 3"));
        assert_eq!(sql_of(&p, "c1").as_deref(), Some("select 4"));
        // Closing one leaves the other.
        p.close("");
        assert_eq!(sql_of(&p, ""), None);
        assert_eq!(sql_of(&p, "c1").as_deref(), Some("select 4"));
        p.set("", portal("select 5"));
        p.close("c1");
        assert_eq!(sql_of(&p, "c1"), None);
        assert_eq!(sql_of(&p, "").as_deref(), Some("select 5"));
    }
}
