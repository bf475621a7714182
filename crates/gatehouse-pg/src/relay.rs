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

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use gatehouse_core::model::Principal;
use gatehouse_core::now_ms;
use gatehouse_core::policy::Verdict;
use gatehouse_policy::{Engine, MaskPlan, StatementMask};
use gatehouse_store::StatementEntry;
use gatehouse_store::recorder::SessionLog;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::PgProxy;
use crate::catalog::CatalogAccess;
use crate::codec::{self, Severity};
use crate::mask::{RowMask, Session as MaskSession};
use crate::stream::{PgReader, PgStream, PgWriter, split, write_flush};

/// Upstream messages larger than this are streamed through in pieces.
const STREAM_OVER: usize = 256 * 1024;
/// A session's statement records reach the recorder at most this long
/// after they were made (sooner when a chunk fills).
const RECORD_DELAY: Duration = Duration::from_millis(500);
/// Masked rows are rewritten whole; larger ones end the session.
const MASKED_ROW_LIMIT: usize = 64 << 20;
/// Upstream messages the relay needs whole are refused past this size.
const UPSTREAM_LIMIT: usize = 1 << 30;

pub struct Ctx {
    pub proxy: Arc<PgProxy>,
    pub principal: Principal,
    pub connection: String,
    pub session_id: String,
    pub max_session: Option<Duration>,
    /// How to read the upstream's catalog (to find where result columns
    /// come from, for masking).
    pub catalog: CatalogAccess,
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
    command: Option<String>,
    error: Option<String>,
    /// Room reserved for its record; `None` when the recorder was behind.
    admission: Option<gatehouse_store::recorder::Admission>,
    /// How its results are masked; `None`: they pass untouched.
    mask: Option<StatementMask>,
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
    /// Gatehouse's own `Describe` of a portal, sent before an `Execute`
    /// whose results are masked, so that a `RowDescription` (where each
    /// column comes from, its format) precedes the rows. Its answer is
    /// used here and not passed to the client.
    Describe,
}

/// Items the client side has forwarded and the upstream side has not yet
/// seen answered. Shared without a channel: responses always arrive after
/// their item was queued, so the upstream side never waits on it.
type Pending = Arc<std::sync::Mutex<VecDeque<Item>>>;

/// More unanswered items than this means a client pipelining without
/// reading; the session is ended.
const MAX_PENDING: usize = 100_000;

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, VecDeque<Item>> {
    match p.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

pub async fn run(
    ctx: Ctx,
    client: PgStream,
    upstream: PgStream,
    leftover: BytesMut,
    mut kill: watch::Receiver<Option<String>>,
) -> String {
    let ctx = Arc::new(ctx);
    let (client_r, client_w) = split(client);
    let (up_r, up_w) = split(upstream);
    let pending: Pending = Arc::default();
    let mut c2u = tokio::spawn(client_to_upstream(
        ctx.clone(),
        client_r,
        up_w,
        pending.clone(),
    ));
    let (end_tx, end_rx) = watch::channel::<Option<String>>(None);
    let mut u2c = tokio::spawn(upstream_to_client(
        ctx.clone(),
        up_r,
        client_w,
        pending,
        leftover,
        end_rx,
    ));
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
            // Let the upstream side finish relaying what is in flight.
            let _ = end_tx.send(Some(String::new()));
            finish_upstream(&mut u2c).await;
            reason
        }
        r = &mut u2c => {
            c2u.abort();
            r.unwrap_or_else(|_| "internal error".into())
        }
        _ = &mut deadline => {
            c2u.abort();
            let _ = end_tx.send(Some("the connection's maximum session length was reached".into()));
            finish_upstream(&mut u2c).await;
            "maximum session length reached".into()
        }
        why = signalled(&mut kill) => {
            c2u.abort();
            let _ = end_tx.send(Some(why.clone()));
            finish_upstream(&mut u2c).await;
            format!("ended by Gatehouse: {why}")
        }
    };
    reason
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

/// The rule and message to refuse a statement with, if it is not allowed.
/// Statements held for review are refused for now, saying so: this version
/// cannot hold a statement until people approve it.
fn refusal(v: &Verdict) -> Option<(&str, std::borrow::Cow<'_, str>)> {
    match v {
        Verdict::Allow { .. } => None,
        Verdict::Deny { rule, message } => Some((rule, message.as_str().into())),
        Verdict::Review {
            rule,
            message,
            approvers,
            ..
        } => Some((
            rule,
            format!(
                "{message}; it needs approval by {}, and this version of Gatehouse cannot hold statements for approval, so it is refused",
                approvers.join(", ")
            )
            .into(),
        )),
    }
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

struct ClientSide {
    ctx: Arc<Ctx>,
    pending: Pending,
    /// Prepared statements and portals: name → (SQL, verdict).
    statements: HashMap<String, (Arc<str>, Arc<Verdict>)>,
    portals: HashMap<String, (Arc<str>, Arc<Verdict>)>,
    seq: i64,
    /// A `Parse` of the current batch was refused: its statement and the
    /// SQL to run at the batch's `Sync`.
    refused: Option<(Stmt, String)>,
    /// The caller's mask plan under the policy it was made from.
    plan: Option<(Arc<Engine>, Option<Arc<MaskPlan>>)>,
}

impl ClientSide {
    fn stmt(&mut self, sql: Arc<str>, verdict: Arc<Verdict>) -> Stmt {
        self.seq += 1;
        Stmt {
            seq: self.seq,
            sql,
            verdict,
            started: Instant::now(),
            started_at: now_ms(),
            rows: 0,
            command: None,
            error: None,
            admission: self.ctx.proxy.recorder.admit(),
            mask: None,
        }
    }

    fn engine(&self) -> Arc<Engine> {
        self.ctx.proxy.policy.engine()
    }

    /// How an `Execute`'s results are masked. The caller's mask plan is
    /// kept for as long as the same policy is in force (it depends only on
    /// the policy, the caller and the connection).
    fn execute_mask(&mut self, engine: &Arc<Engine>, sql: &str) -> Option<StatementMask> {
        let plan = match &self.plan {
            Some((e, plan)) if Arc::ptr_eq(e, engine) => plan.clone(),
            _ => {
                let plan = engine.mask_plan(&self.ctx.principal, &self.ctx.connection);
                self.plan = Some((engine.clone(), plan.clone()));
                plan
            }
        }?;
        Some(engine.mask_for(plan, sql))
    }

    /// The policy's decision and how the results are masked, unless the
    /// statement could not be admitted for recording: then it is refused
    /// (it would run unrecorded).
    fn decide(&self, engine: &Engine, stmt: &Stmt) -> (Verdict, Option<StatementMask>) {
        if stmt.admission.is_none() {
            return (recorder_behind(), None);
        }
        let d = engine.decide(
            &self.ctx.principal,
            &self.ctx.connection,
            &stmt.sql,
            now_ms(),
        );
        (d.verdict, d.mask)
    }

    fn check(&self, engine: &Engine, sql: &str) -> Verdict {
        engine
            .decide(&self.ctx.principal, &self.ctx.connection, sql, now_ms())
            .verdict
    }

    async fn send(&self, item: Item) -> Result<(), String> {
        let mut q = lock(&self.pending);
        if q.len() >= MAX_PENDING {
            return Err(format!(
                "the client sent more than {MAX_PENDING} requests without reading the answers"
            ));
        }
        q.push_back(item);
        Ok(())
    }

    /// Handles one framed client message, appending what goes upstream to `out`.
    async fn message(&mut self, tag: u8, msg: &[u8], out: &mut BytesMut) -> Result<(), String> {
        let body = codec::body(msg);
        let malformed = |e: codec::CodecError| format!("protocol error from the client: {e}");
        if self.refused.is_some() {
            // The rest of a batch with a refused Parse is dropped, as the
            // server drops a batch after an error; its Sync runs the refusal.
            match tag {
                b'S' => {
                    if let Some((stmt, sql)) = self.refused.take() {
                        self.send(Item::Simple(stmt)).await?;
                        query_message(out, &sql);
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
            return Ok(());
        }
        match tag {
            b'Q' => {
                let sql: Arc<str> = codec::parse_query(body).map_err(malformed)?.into();
                let engine = self.engine();
                let mut stmt = self.stmt(sql, Arc::new(Verdict::Allow { rule: None }));
                let (verdict, mask) = self.decide(&engine, &stmt);
                let verdict = Arc::new(verdict);
                stmt.verdict = verdict.clone();
                stmt.mask = mask;
                self.send(Item::Simple(stmt)).await?;
                match refusal(&verdict) {
                    None => out.extend_from_slice(msg),
                    Some((rule, message)) => query_message(out, &raise_sql(rule, &message)),
                }
            }
            b'P' => {
                let (name, sql, _) = codec::parse_parse(body).map_err(malformed)?;
                // Decided now; admitted for recording when executed.
                let verdict = Arc::new(self.check(&self.engine(), sql));
                match refusal(&verdict) {
                    None => {
                        out.extend_from_slice(msg);
                        self.statements
                            .insert(name.to_string(), (sql.into(), verdict));
                    }
                    Some((rule, message)) => {
                        let raise = raise_sql(rule, &message);
                        let stmt = self.stmt(sql.into(), verdict.clone());
                        self.refused = Some((stmt, raise));
                    }
                }
            }
            b'B' => {
                let (portal, stmt) = codec::parse_bind(body).map_err(malformed)?;
                let entry = self.statements.get(stmt).cloned().unwrap_or_else(|| {
                    (
                        Arc::from(format!("(unknown prepared statement \"{stmt}\")")),
                        Arc::new(Verdict::Allow { rule: None }),
                    )
                });
                out.extend_from_slice(msg);
                match self.portals.get_mut(portal) {
                    Some(slot) => *slot = entry,
                    None => {
                        self.portals.insert(portal.to_string(), entry);
                    }
                }
            }
            b'E' => {
                let (portal, _) = codec::parse_execute(body).map_err(malformed)?;
                let (sql, verdict) = self.portals.get(portal).cloned().unwrap_or_else(|| {
                    (
                        Arc::from("(unknown portal)"),
                        Arc::new(Verdict::Allow { rule: None }),
                    )
                });
                let mut stmt = self.stmt(sql, verdict);
                if stmt.admission.is_none() {
                    // Refuse the rest of the batch as for a refused Parse.
                    let refusal = recorder_behind();
                    if let Verdict::Deny { rule, message } = &refusal {
                        let raise = raise_sql(rule, message);
                        stmt.verdict = Arc::new(refusal.clone());
                        self.refused = Some((stmt, raise));
                    }
                    return Ok(());
                }
                let engine = self.engine();
                stmt.mask = self.execute_mask(&engine, &stmt.sql);
                if stmt.mask.is_some() {
                    self.send(Item::Describe).await?;
                    codec::describe_portal(out, portal);
                }
                self.send(Item::Exec(stmt)).await?;
                out.extend_from_slice(msg);
            }
            b'C' => {
                let (kind, name) = codec::parse_close(body).map_err(malformed)?;
                if kind == b'S' {
                    self.statements.remove(name);
                } else {
                    self.portals.remove(name);
                }
                out.extend_from_slice(msg);
            }
            b'S' => {
                self.send(Item::Sync).await?;
                out.extend_from_slice(msg);
            }
            b'F' => {
                // Fast-path function calls bypass SQL and so the policy: refused.
                let verdict = Arc::new(Verdict::Deny {
                    rule: "fast-path".into(),
                    message: "fast-path function calls are not allowed through Gatehouse; call the function in SQL".into(),
                });
                let stmt = self.stmt(Arc::from("(fast-path function call)"), verdict.clone());
                self.send(Item::Simple(stmt)).await?;
                if let Verdict::Deny { rule, message } = &*verdict {
                    query_message(out, &raise_sql(rule, message));
                }
            }
            b'p' => return Err("the client sent a password message after authentication".into()),
            _ => out.extend_from_slice(msg),
        }
        Ok(())
    }
}

async fn client_to_upstream(
    ctx: Arc<Ctx>,
    mut client: PgReader,
    mut up: PgWriter,
    pending: Pending,
) -> String {
    let limit = ctx.proxy.max_message;
    let mut side = ClientSide {
        ctx,
        pending,
        statements: HashMap::new(),
        portals: HashMap::new(),
        seq: 0,
        refused: None,
        plan: None,
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        match client.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return "client closed".into(),
            Ok(_) => {}
        }
        out.clear();
        let mut terminate = false;
        loop {
            let (tag, total) = match codec::frame(&buf, limit) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return format!("protocol error from the client: {e}"),
            };
            let msg = buf.split_to(total);
            if let Err(e) = side.message(tag, &msg, &mut out).await {
                return e;
            }
            if tag == b'X' {
                terminate = true;
                break;
            }
        }
        if !out.is_empty() && write_flush(&mut up, &out).await.is_err() {
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
}

impl UpstreamSide {
    fn finish(&mut self, mut stmt: Stmt) {
        let duration = i64::try_from(stmt.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        if stmt.command.as_deref().and_then(codec::tag_rows).is_some() && stmt.rows == 0 {
            stmt.rows = stmt
                .command
                .as_deref()
                .and_then(codec::tag_rows)
                .unwrap_or(0);
        }
        let Some(admission) = stmt.admission.take() else {
            tracing::warn!(session = %self.ctx.session_id, "a statement refused while the recorder was behind is not recorded");
            return;
        };
        // Content detectors that apply to the caller's results apply to the
        // recorded text too (literals in statements can carry the same data).
        let redacted = stmt
            .mask
            .as_ref()
            .and_then(|m| m.plan.detectors.as_ref())
            .and_then(|d| d.redact(&stmt.sql));
        self.log.push(
            admission,
            &StatementEntry {
                seq: stmt.seq,
                started_at: stmt.started_at,
                duration_us: Some(duration),
                sql: redacted.as_deref().unwrap_or(&stmt.sql),
                decision: stmt.verdict.label(),
                rule: stmt.verdict.rule(),
                command: stmt.command.as_deref(),
                rows: Some(stmt.rows),
                error: stmt.error.as_deref(),
            },
        );
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
                let command = codec::parse_command_complete(body).map(str::to_string);
                match pending.front_mut() {
                    Some(Item::Exec(_)) => {
                        if let Some(Item::Exec(mut s)) = pending.pop_front() {
                            s.command = command;
                            self.finish(s);
                        }
                    }
                    Some(Item::Simple(s)) => {
                        if let Some(n) = command.as_deref().and_then(codec::tag_rows)
                            && s.rows < n
                        {
                            s.rows = n;
                        }
                        s.command = command;
                    }
                    _ => {}
                }
            }
            b'I' | b's' => {
                if matches!(pending.front(), Some(Item::Exec(_)))
                    && let Some(Item::Exec(mut s)) = pending.pop_front()
                {
                    s.command = Some(if tag == b'I' {
                        "EMPTY".into()
                    } else {
                        "SUSPENDED".into()
                    });
                    self.finish(s);
                }
            }
            b'E' => {
                let (code, message) = codec::parse_error(body);
                let error = format!("{code}: {message}");
                match pending.front_mut() {
                    Some(Item::Simple(s)) => s.error = Some(error),
                    Some(Item::Exec(_) | Item::Describe) => {
                        // This Execute (or Gatehouse's Describe before it)
                        // failed, and the server skips the rest of the batch
                        // until Sync.
                        let mut first = true;
                        while matches!(pending.front(), Some(Item::Exec(_) | Item::Describe)) {
                            if let Some(Item::Exec(mut s)) = pending.pop_front() {
                                s.error = Some(if first {
                                    error.clone()
                                } else {
                                    "skipped: an earlier message of the batch failed".into()
                                });
                                first = false;
                                self.finish(s);
                            }
                        }
                    }
                    _ => {}
                }
            }
            b'Z' => loop {
                match pending.pop_front() {
                    Some(Item::Simple(s)) => {
                        self.finish(s);
                        break;
                    }
                    Some(Item::Sync) | None => break,
                    Some(Item::Describe) => {}
                    Some(Item::Exec(mut s)) => {
                        s.error = Some("no response before the end of the batch".into());
                        self.finish(s);
                    }
                }
            },
            _ => {}
        }
    }
}

/// What to do with one upstream message.
enum Step {
    /// Pass it to the client as it is.
    Forward,
    /// It was handled (rewritten into the output, or not for the client).
    Consumed,
    /// Where some result columns come from must be looked up first.
    Lookup(Vec<u32>),
}

impl UpstreamSide {
    /// Handles one complete upstream message `msg` (tag and length included).
    fn message(&mut self, q: &mut VecDeque<Item>, tag: u8, msg: &[u8]) -> Result<Step, String> {
        let body = codec::body(msg);
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
                    let missing = self.masking.unresolved(&fields, &mask);
                    if !missing.is_empty() {
                        return Ok(Step::Lookup(missing));
                    }
                    self.rows = self.masking.row_mask(&fields, &mask);
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
                self.observe(q, tag, body);
                if let Some(rows) = &self.rows {
                    self.masking
                        .mask_row(rows, body, &mut self.out)
                        .map_err(|e| {
                            format!(
                                "Gatehouse could not mask a result row ({e}); the session was ended"
                            )
                        })?;
                }
                Ok(Step::Consumed)
            }
            b'E' | b'N' => {
                // Messages about a statement that reads masked columns are
                // scrubbed: the server quotes values in them.
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
                self.observe(q, tag, body);
                match mask.filter(|m| m.taint) {
                    None => Ok(Step::Forward),
                    Some(m) => {
                        codec::rewrite_fields(&mut self.out, tag, body, |f, t| {
                            crate::mask::scrub_text(f, t, &m)
                        });
                        Ok(Step::Consumed)
                    }
                }
            }
            b'C' | b'I' | b's' | b'Z' => {
                self.rows = None;
                self.observe(q, tag, body);
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
    pending: Pending,
    mut buf: BytesMut,
    mut end: watch::Receiver<Option<String>>,
) -> String {
    let log = ctx.proxy.recorder.session_log(&ctx.session_id);
    let masking = MaskSession::new(&ctx.proxy.keys.get());
    let mut side = UpstreamSide {
        ctx,
        out: BytesMut::with_capacity(16 * 1024),
        log,
        masking,
        rows: None,
    };
    // Records wait at most this long before they go to the recorder.
    let idle_flush = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(idle_flush);
    let mut flush_armed = false;
    // Bytes of a large message still to stream through.
    let mut streaming: usize = 0;
    let mut first = !buf.is_empty();
    loop {
        if !first {
            tokio::select! {
                n = up.read_buf(&mut buf) => match n {
                    Ok(0) | Err(_) => {
                        let _ = flush(&mut client, &mut side.out).await;
                        return "upstream closed".into();
                    }
                    Ok(_) => {}
                },
                () = &mut idle_flush, if flush_armed => {
                    side.log.flush();
                    flush_armed = false;
                    continue;
                }
                why = signalled(&mut end) => {
                    if !why.is_empty() {
                        let mut b = BytesMut::new();
                        codec::error(&mut b, Severity::Fatal, "57P01", &format!("Gatehouse ended this session: {why}"), None);
                        side.out.extend_from_slice(&b);
                    }
                    let _ = flush(&mut client, &mut side.out).await;
                    let _ = client.shutdown().await;
                    return if why.is_empty() { "client closed".into() } else { why };
                }
            }
        }
        first = false;
        // Relay every complete message (and the available part of a large one).
        let mut lookup: Option<Vec<u32>> = None;
        {
            let mut q = lock(&pending);
            loop {
                if streaming > 0 {
                    let n = streaming.min(buf.len());
                    side.out.extend_from_slice(&buf.split_to(n));
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
                        streaming = total;
                        continue;
                    }
                    buf.reserve(total - buf.len());
                    break;
                }
                match side.message(&mut q, tag, &buf[..total]) {
                    Ok(Step::Forward) => {
                        let msg = buf.split_to(total);
                        side.out.extend_from_slice(&msg);
                    }
                    Ok(Step::Consumed) => buf.advance(total),
                    Ok(Step::Lookup(oids)) => {
                        lookup = Some(oids);
                        break;
                    }
                    Err(e) => return e,
                }
            }
        }
        if let Some(oids) = lookup {
            // Find where the columns come from, then go over the same
            // RowDescription again (no read: it is still in the buffer).
            let ctx = side.ctx.clone();
            side.masking
                .resolve(&ctx.proxy.catalog, &ctx.catalog, &oids)
                .await;
            first = true;
        }
        if !side.out.is_empty() && flush(&mut client, &mut side.out).await.is_err() {
            return "client closed".into();
        }
        if !flush_armed && !side.log.is_empty() {
            idle_flush
                .as_mut()
                .reset(tokio::time::Instant::now() + RECORD_DELAY);
            flush_armed = true;
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(w: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    let r = write_flush(w, out).await;
    out.clear();
    if out.capacity() > 4 << 20 {
        *out = BytesMut::with_capacity(16 * 1024);
    }
    r
}
