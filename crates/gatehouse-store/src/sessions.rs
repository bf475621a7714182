//! Recorded sessions and the statements run in them.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub id: String,
    pub principal: String,
    /// How the principal authenticated: `token:NAME` or `oidc:ISSUER`.
    pub authn: String,
    pub connection: String,
    pub protocol: String,
    pub client_addr: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

/// One statement as it ran. `sql` is the text the client sent; parameters
/// are not recorded here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRecord {
    /// Not stored in the chunk (the chunk row names its session).
    #[serde(default, skip_serializing)]
    pub session_id: String,
    pub seq: i64,
    pub started_at: i64,
    pub duration_us: Option<i64>,
    pub sql: String,
    /// The values bound to its parameters (`$1`, `$2`, …) when it ran
    /// through the extended protocol, as text (binary values rendered as
    /// PostgreSQL writes them where their type is known, else `\x` and
    /// hex), `None` for NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Option<String>>>,
    /// More parameters or bytes were bound than were recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub params_truncated: bool,
    pub decision: String,
    pub rule: Option<String>,
    /// The command tag, e.g. `SELECT 3`.
    pub command: Option<String>,
    pub rows: Option<i64>,
    pub error: Option<String>,
    /// The result's column names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// The first rows of the result as the caller saw them (masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Vec<Vec<Option<String>>>>,
    /// More rows or bytes came than were recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub result_truncated: bool,
}

/// A statement record as the data path writes it, borrowing its strings.
/// Serialises to the same JSON line a [`StatementRecord`] reads back.
#[derive(Debug, Default, Serialize)]
pub struct StatementEntry<'a> {
    pub seq: i64,
    pub started_at: i64,
    pub duration_us: Option<i64>,
    pub sql: &'a str,
    /// Its bound parameters: a sample of one row.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "first_row")]
    pub params: Option<&'a ResultSample>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub params_truncated: bool,
    pub decision: &'a str,
    /// Left out when `None` (most statements), as `error` is: readers
    /// take a missing field for `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    pub command: Option<&'a str>,
    pub rows: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a ResultSample>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub result_truncated: bool,
}

impl StatementEntry<'_> {
    /// Appends this entry as one JSON object (no newline): the same bytes
    /// `serde_json::to_writer` writes, without its per-byte escaping loop
    /// for the common case of strings that need no escaping. The data path
    /// writes one per statement, so this is on every statement's path.
    pub fn write_json(&self, out: &mut String) {
        self.write_json_with(out, self.result.map(ResultJson::Sample));
    }

    /// [`StatementEntry::write_json`] with the result given apart, as a
    /// sample or as the JSON a sample wrote earlier (`self.result` unused).
    pub(crate) fn write_json_with(&self, out: &mut String, result: Option<ResultJson<'_>>) {
        self.write_json_given(out, result, Written::default());
    }

    /// [`StatementEntry::write_json_with`], with the JSON of some fields
    /// written already (`written`: the same bytes their values would give).
    pub(crate) fn write_json_given(
        &self,
        out: &mut String,
        result: Option<ResultJson<'_>>,
        written: Written<'_>,
    ) {
        out.push_str("{\"seq\":");
        json_int(out, self.seq);
        out.push_str(",\"started_at\":");
        json_int(out, self.started_at);
        out.push_str(",\"duration_us\":");
        json_opt_int(out, self.duration_us);
        out.push_str(",\"sql\":");
        match written.sql {
            Some(json) => out.push_str(json),
            None => json_str(out, self.sql),
        }
        match (written.params, self.params) {
            (Some(json), _) => {
                out.push_str(",\"params\":");
                out.push_str(json);
            }
            (None, Some(params)) => {
                out.push_str(",\"params\":");
                params.write_row_json(out);
            }
            (None, None) => {}
        }
        if self.params_truncated {
            out.push_str(",\"params_truncated\":true");
        }
        // The three labels need no escaping.
        match self.decision {
            "allow" => out.push_str(",\"decision\":\"allow\""),
            "deny" => out.push_str(",\"decision\":\"deny\""),
            "review" => out.push_str(",\"decision\":\"review\""),
            other => {
                out.push_str(",\"decision\":");
                json_str(out, other);
            }
        }
        if let Some(rule) = self.rule {
            out.push_str(",\"rule\":");
            json_str(out, rule);
        }
        out.push_str(",\"command\":");
        json_opt_str(out, self.command);
        out.push_str(",\"rows\":");
        json_opt_int(out, self.rows);
        if let Some(error) = self.error {
            out.push_str(",\"error\":");
            json_str(out, error);
        }
        if let Some(columns) = self.columns {
            out.push_str(",\"columns\":");
            match written.columns {
                Some(json) => out.push_str(json),
                None => json_columns(out, columns),
            }
        }
        match result {
            Some(ResultJson::Sample(rows)) => {
                out.push_str(",\"result\":");
                rows.write_json(out);
            }
            Some(ResultJson::Written(json)) => {
                out.push_str(",\"result\":");
                out.push_str(json);
            }
            None => {}
        }
        if self.result_truncated {
            out.push_str(",\"result_truncated\":true");
        }
        out.push('}');
    }
}

/// The JSON of an entry's statement text and of its column names, when
/// written already: a chunk's records mostly repeat their session's
/// statements, whose text is then escaped once and copied.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Written<'a> {
    pub sql: Option<&'a str>,
    pub params: Option<&'a str>,
    pub columns: Option<&'a str>,
}

/// Column names as a JSON list.
pub(crate) fn json_columns(out: &mut String, columns: &[String]) {
    json_list(out, columns, |out, c| json_str(out, c));
}

/// A record's result rows as JSON: a sample, or what a sample wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ResultJson<'a> {
    Sample(&'a ResultSample),
    Written(&'a str),
}

/// The first rows of a statement's result as its record keeps them,
/// rendered as JSON while they arrive. The PostgreSQL relay keeps one per
/// session and reuses it, so recording rows allocates nothing per row or
/// value there.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResultSample {
    /// The rows, each a JSON array, separated by commas (no outer brackets).
    json: String,
    rows: usize,
    /// Bytes of the values kept (as sent, before escaping).
    value_bytes: usize,
    /// Where the row being written started in `json`.
    row_start: usize,
    /// The row being written has no value yet.
    row_empty: bool,
    /// More rows or bytes came than were kept.
    pub truncated: bool,
}

impl ResultSample {
    /// Rows kept.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of the values kept.
    pub fn value_bytes(&self) -> usize {
        self.value_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Empties it for the next statement, keeping its memory (up to a
    /// bound: a sample of very large rows does not pin that much).
    pub fn clear(&mut self) {
        self.json.clear();
        if self.json.capacity() > 1 << 20 {
            self.json = String::new();
        }
        self.rows = 0;
        self.value_bytes = 0;
        self.truncated = false;
    }

    /// Starts a row; its values follow, then [`ResultSample::end_row`] (or
    /// [`ResultSample::abandon_row`]).
    pub fn begin_row(&mut self) {
        self.row_start = self.json.len();
        if self.rows > 0 {
            self.json.push(',');
        }
        self.json.push('[');
        self.row_empty = true;
    }

    fn separate(&mut self) {
        if !self.row_empty {
            self.json.push(',');
        }
        self.row_empty = false;
    }

    /// A value of the row: text, or `None` for SQL NULL.
    pub fn value(&mut self, v: Option<&str>) {
        self.separate();
        self.value_bytes += v.map_or(0, str::len);
        json_opt_str(&mut self.json, v);
    }

    /// A value that is not text, kept as `\x` and the hex of at most its
    /// first `max` bytes.
    pub fn value_hex(&mut self, v: &[u8], max: usize) {
        self.separate();
        let v = &v[..v.len().min(max)];
        self.value_bytes += v.len();
        self.json.reserve(2 * v.len() + 5);
        // The string `\x…`, its backslash escaped.
        self.json.push_str("\"\\\\x");
        for b in v {
            self.json.push(char::from(HEX[usize::from(b >> 4)]));
            self.json.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        self.json.push('"');
    }

    pub fn end_row(&mut self) {
        self.json.push(']');
        self.rows += 1;
    }

    /// Drops the row being written (a row that turned out malformed).
    pub fn abandon_row(&mut self) {
        self.json.truncate(self.row_start);
    }

    /// Adds a whole row.
    pub fn push_row<'v>(&mut self, values: impl IntoIterator<Item = Option<&'v str>>) {
        self.begin_row();
        for v in values {
            self.value(v);
        }
        self.end_row();
    }

    /// The rows as a JSON array of arrays of strings or nulls.
    pub fn write_json(&self, out: &mut String) {
        out.reserve(self.json.len() + 2);
        out.push('[');
        out.push_str(&self.json);
        out.push(']');
    }

    /// A sample of one row (a statement's parameters) as one JSON array
    /// (an empty one if it has no row).
    pub fn write_row_json(&self, out: &mut String) {
        match self.rows {
            1 => out.push_str(&self.json),
            _ => out.push_str("[]"),
        }
    }

    /// The rows, read back.
    pub fn to_rows(&self) -> Vec<Vec<Option<String>>> {
        let mut json = String::new();
        self.write_json(&mut json);
        serde_json::from_str(&json).unwrap_or_default()
    }
}

/// A sample of one row as that row (see [`ResultSample::write_row_json`]).
fn first_row<S: serde::Serializer>(v: &Option<&ResultSample>, s: S) -> Result<S::Ok, S::Error> {
    let row = v
        .filter(|v| v.rows == 1)
        .and_then(|v| v.to_rows().into_iter().next())
        .unwrap_or_default();
    row.serialize(s)
}

impl Serialize for ResultSample {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_rows().serialize(s)
    }
}

/// A JSON array of `items`, each written by `item`.
fn json_list<T>(out: &mut String, items: &[T], item: impl Fn(&mut String, &T)) {
    out.push('[');
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item(out, v);
    }
    out.push(']');
}

fn json_int(out: &mut String, v: i64) {
    out.push_str(itoa::Buffer::new().format(v));
}

fn json_opt_int(out: &mut String, v: Option<i64>) {
    match v {
        Some(v) => json_int(out, v),
        None => out.push_str("null"),
    }
}

fn json_opt_str(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) => json_str(out, v),
        None => out.push_str("null"),
    }
}

/// Hex digits, for `\u00XX` escapes and binary values.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes of `v` from the start that need no escaping in JSON (none is a
/// control character, a quote or a backslash). Whole 16-byte blocks are
/// checked without an early exit inside, so the compiler checks each with
/// a few vector instructions; the block with the first such byte, and the
/// tail, byte by byte.
fn plain_prefix(v: &[u8]) -> usize {
    let bad = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let (blocks, _) = v.as_chunks::<16>();
    let mut i = 0;
    for block in blocks {
        if block.iter().fold(false, |any, &b| any | bad(b)) {
            break;
        }
        i += 16;
    }
    i + v[i..].iter().position(|&b| bad(b)).unwrap_or(v.len() - i)
}

/// A JSON string, escaped as serde_json escapes it: quote, backslash and
/// control characters only (the common case, no escape, is one copy).
pub(crate) fn json_str(out: &mut String, v: &str) {
    out.reserve(v.len() + 2);
    out.push('"');
    let mut rest = v;
    loop {
        let n = plain_prefix(rest.as_bytes());
        // `n` is at a byte below 0x80 (or the end), so a char boundary.
        let (plain, tail) = rest.split_at(n);
        out.push_str(plain);
        let mut chars = tail.chars();
        let Some(c) = chars.next() else { break };
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        rest = chars.as_str();
    }
    out.push('"');
}

/// Consecutive statements of one session, as JSON lines: the unit the
/// recorder writes (one row per chunk, not per statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChunk {
    pub session_id: std::sync::Arc<str>,
    /// Chunk number within the session, from 1.
    pub chunk: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Statements in `data`.
    pub statements: usize,
    /// One JSON object per line ([`StatementRecord`] without `session_id`).
    pub data: String,
}

/// What the recorder writes.
#[derive(Debug, Clone)]
pub enum RecordEvent {
    SessionStart(SessionRecord),
    Statements(SessionChunk),
    SessionEnd { id: String, at: i64, reason: String },
}

/// Filters for [`Store::list_sessions`].
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub principal: Option<String>,
    pub connection: Option<String>,
    pub since: Option<i64>,
    pub grep: Option<String>,
    pub limit: i64,
}

fn session_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        principal: row.try_get("principal")?,
        authn: row.try_get("authn")?,
        connection: row.try_get("connection")?,
        protocol: row.try_get("protocol")?,
        client_addr: row.try_get("client_addr")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
    })
}

fn statement_from_row(row: &AnyRow) -> Result<StatementRecord, StoreError> {
    Ok(StatementRecord {
        session_id: row.try_get("session_id")?,
        seq: row.try_get("seq")?,
        started_at: row.try_get("started_at")?,
        duration_us: row.try_get("duration_us")?,
        sql: row.try_get("sql")?,
        params: None,
        params_truncated: false,
        decision: row.try_get("decision")?,
        rule: row.try_get("rule")?,
        command: row.try_get("command")?,
        rows: row.try_get("rows")?,
        error: row.try_get("error")?,
        columns: None,
        result: None,
        result_truncated: false,
    })
}

/// How many chunks one INSERT writes: the largest of these that the
/// chunks waiting fill (7 parameters each, well within SQLite's and
/// PostgreSQL's limits).
const CHUNKS_PER_INSERT: [usize; 4] = [64, 16, 4, 1];

impl Store {
    /// Writes a batch of recorder events in one transaction. With a
    /// recording store, each chunk goes there first and the transaction
    /// writes its index row.
    pub async fn write_records(&self, events: &[RecordEvent]) -> Result<(), StoreError> {
        let mut placed: Vec<Option<(String, String)>> = vec![None; events.len()];
        if let Some(rs) = &self.recordings {
            for (i, ev) in events.iter().enumerate() {
                if let RecordEvent::Statements(c) = ev {
                    let location = rs
                        .put(&c.session_id, c.chunk, c.data.as_bytes())
                        .await
                        .map_err(StoreError::Recordings)?;
                    placed[i] = Some((location, index_lines(&c.data)));
                }
            }
        }
        // On SQLite the recorder's own connection writes, through sqlx's
        // native driver: `Any` would copy each chunk twice more on its way in.
        if let Some(pool) = &self.sqlite_writer {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            write_events::<sqlx::Sqlite>(&mut tx, events, &placed).await?;
            tx.commit().await?;
        } else {
            let mut tx = self.begin_write().await?;
            write_events::<sqlx::Any>(&mut tx, events, &placed).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Sessions, newest first.
    pub async fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        let like = |g: &str| {
            format!(
                "%{}%",
                g.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        };
        // Legacy rows hold the text as sent; chunks hold it JSON-escaped, so
        // the needle is escaped the same way to match it there.
        let grep = f.grep.as_deref().map(like);
        let grep_json = f.grep.as_deref().map(|g| {
            let quoted = serde_json::to_string(g).unwrap_or_default();
            like(quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or(""))
        });
        let rows = sqlx::query(concat!(
            "SELECT id, principal, authn, connection, protocol, client_addr, started_at, ended_at, end_reason FROM sessions s",
            " WHERE ($1 IS NULL OR principal = $1) AND ($2 IS NULL OR connection = $2) AND ($3 IS NULL OR started_at >= $3)",
            " AND ($4 IS NULL OR EXISTS (SELECT 1 FROM session_statements t WHERE t.session_id = s.id AND t.sql LIKE $4 ESCAPE '\\')",
            "      OR EXISTS (SELECT 1 FROM session_chunks c WHERE c.session_id = s.id AND c.data LIKE $6 ESCAPE '\\'))",
            " ORDER BY started_at DESC, id LIMIT $5"
        ))
        .bind(f.principal.clone())
        .bind(f.connection.clone())
        .bind(f.since)
        .bind(grep)
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .bind(grep_json)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    pub async fn get_session(
        &self,
        id: &str,
    ) -> Result<Option<(SessionRecord, Vec<StatementRecord>)>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, principal, authn, connection, protocol, client_addr, started_at, ended_at, end_reason FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let session = session_from_row(&row)?;
        let rows = sqlx::query(
            "SELECT session_id, seq, started_at, duration_us, sql, decision, rule, command, rows, error
             FROM session_statements WHERE session_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut statements = rows
            .iter()
            .map(statement_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let chunks = sqlx::query(
            "SELECT chunk, data, location FROM session_chunks WHERE session_id = $1 ORDER BY chunk",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for row in &chunks {
            let chunk: i64 = row.try_get("chunk")?;
            let mut data: String = row.try_get("data")?;
            let location: Option<String> = row.try_get("location")?;
            if let Some(location) = location {
                // The full records (with results) are outside the store; if
                // they cannot be read, the index still tells what ran.
                match &self.recordings {
                    Some(rs) => match rs.get(&location).await {
                        Ok(full) => data = full,
                        Err(e) => {
                            tracing::warn!(session = %id, chunk, error = %e, "recorded results are not readable; showing the index only");
                        }
                    },
                    None => {
                        tracing::warn!(session = %id, chunk, %location, "this chunk was recorded outside the store, but no --recordings location is set; showing the index only");
                    }
                }
            }
            for line in data.lines().filter(|l| !l.is_empty()) {
                let mut st: StatementRecord = serde_json::from_str(line).map_err(|e| {
                    StoreError::Corrupt(format!(
                        "session {id}, recording chunk {chunk}: unreadable statement record: {e}"
                    ))
                })?;
                st.session_id = id.to_string();
                statements.push(st);
            }
        }
        statements.sort_by_key(|s| s.seq);
        Ok(Some((session, statements)))
    }
}

/// The index kept in the store for a chunk stored elsewhere: each record
/// without its result.
fn index_lines(data: &str) -> String {
    let mut out = String::with_capacity(data.len() / 2);
    for line in data.lines().filter(|l| !l.is_empty()) {
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
            Ok(mut m) => {
                m.remove("columns");
                m.remove("result");
                m.remove("result_truncated");
                out.push_str(&serde_json::Value::Object(m).to_string());
            }
            Err(_) => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Store {
    /// Deletes the recordings of sessions that ended before `before_ms`,
    /// with their chunks in the recording store, and of sessions with no
    /// end that started before `unended_before_ms` and are not in `live`
    /// (their server stopped without ending them; with replicas, another
    /// may still run them, so the caller gives those a wider margin).
    /// Returns how many sessions went. A session whose files cannot be
    /// deleted stays, to be tried again.
    pub async fn prune_sessions(
        &self,
        before_ms: i64,
        unended_before_ms: i64,
        live: &std::collections::HashSet<String>,
    ) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM sessions WHERE ended_at < $1 OR (ended_at IS NULL AND started_at < $2)
             ORDER BY started_at LIMIT 1000",
        )
        .bind(before_ms)
        .bind(unended_before_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut gone = 0;
        for row in &rows {
            let id: String = row.try_get("id")?;
            if live.contains(&id) {
                continue;
            }
            if let Some(rs) = &self.recordings {
                let locations: Vec<String> = sqlx::query(
                    "SELECT location FROM session_chunks WHERE session_id = $1 AND location IS NOT NULL",
                )
                .bind(&id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("location"))
                .collect::<Result<_, _>>()?;
                if let Err(e) = rs.delete(&id, &locations).await {
                    tracing::warn!(session = %id, error = %e, "could not delete an expired recording; will try again");
                    continue;
                }
            }
            let mut tx = self.begin_write().await?;
            for table in [
                "DELETE FROM session_chunks WHERE session_id = $1",
                "DELETE FROM session_statements WHERE session_id = $1",
                "DELETE FROM sessions WHERE id = $1",
            ] {
                sqlx::query(table).bind(&id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            gone += 1;
        }
        Ok(gone)
    }
}

/// Writes recorder events in the open transaction `tx`, on either driver.
async fn write_events<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    events: &[RecordEvent],
    placed: &[Option<(String, String)>],
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<&'t str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut i = 0;
    while i < events.len() {
        match &events[i] {
            RecordEvent::SessionStart(s) => {
                sqlx::query(
                    "INSERT INTO sessions (id, principal, authn, connection, protocol, client_addr, started_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(s.id.as_str())
                .bind(s.principal.as_str())
                .bind(s.authn.as_str())
                .bind(s.connection.as_str())
                .bind(s.protocol.as_str())
                .bind(s.client_addr.as_str())
                .bind(s.started_at)
                .execute(&mut **tx)
                .await?;
                i += 1;
            }
            RecordEvent::Statements(_) => {
                // Consecutive chunks go in one INSERT (one round trip
                // to the store's connection, not one each), of one of
                // a few sizes so that its prepared form is reused.
                let run = events[i..]
                    .iter()
                    .take_while(|e| matches!(e, RecordEvent::Statements(_)))
                    .count();
                let size = CHUNKS_PER_INSERT
                    .into_iter()
                    .find(|&n| n <= run)
                    .unwrap_or(1);
                let mut rows = Vec::with_capacity(size);
                while rows.len() < size
                    && let Some(RecordEvent::Statements(c)) = events.get(i)
                {
                    rows.push((c, placed[i].as_ref()));
                    i += 1;
                }
                let mut sql = String::from(
                    "INSERT INTO session_chunks (session_id, chunk, first_seq, last_seq, data, location, bytes) VALUES ",
                );
                for n in 0..rows.len() {
                    let p = n * 7;
                    if n > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4,
                        p + 5,
                        p + 6,
                        p + 7
                    ));
                }
                // Only placeholders are added to the text, never data.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (c, placed) in rows {
                    let (location, data) = match placed {
                        Some((l, index)) => (Some(l.as_str()), index.as_str()),
                        None => (None, c.data.as_str()),
                    };
                    q = q
                        .bind(&*c.session_id)
                        .bind(c.chunk)
                        .bind(c.first_seq)
                        .bind(c.last_seq)
                        .bind(data)
                        .bind(location)
                        .bind(i64::try_from(c.data.len()).unwrap_or(i64::MAX));
                }
                q.execute(&mut **tx).await?;
            }
            RecordEvent::SessionEnd { id, at, reason } => {
                sqlx::query("UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL")
                    .bind(id.as_str())
                    .bind(*at)
                    .bind(reason.as_str())
                    .execute(&mut **tx)
                    .await?;
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written JSON must be byte for byte what serde_json writes,
    /// so that readers (and old chunks) see one format.
    #[test]
    fn json_strings_match_serde_json_wherever_the_escapes_fall() {
        // Escapes and multi-byte characters at every offset of the
        // 16-byte blocks the scan reads, in texts of every length up to
        // beyond two blocks.
        let specials = [
            "\"", "\\", "\n", "\u{1}", "\u{1f}", "é", "✓", "🦀", "\u{7f}", " ", "~", "!", "#", "[",
            "]", "\u{80}", "\u{a2}", "\u{dc}",
        ];
        for len in 0..40 {
            for at in 0..=len {
                for sp in specials {
                    let text: String = (0..len)
                        .map(|i| if i == at { sp } else { "a" })
                        .collect::<String>()
                        + if at == len { sp } else { "" };
                    let mut ours = String::new();
                    json_str(&mut ours, &text);
                    assert_eq!(ours, serde_json::to_string(&text).unwrap(), "{text:?}");
                }
            }
        }
        // Two at once, in every order and at every distance, in texts up
        // to past one block: an escape must not hide or invent the next.
        for a in specials {
            for b in specials {
                for len in 0..20 {
                    for i in 0..len {
                        for j in i..len {
                            let text: String = (0..len)
                                .map(|k| match k {
                                    _ if k == i => a,
                                    _ if k == j => b,
                                    _ => "a",
                                })
                                .collect();
                            let mut ours = String::new();
                            json_str(&mut ours, &text);
                            assert_eq!(ours, serde_json::to_string(&text).unwrap(), "{text:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn write_json_matches_serde_json() {
        let texts = [
            "",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
            "say \"hi\"",
            "back\\slash",
            "line\nbreak\ttab\r\u{8}\u{c}",
            "nul \u{0} and unit \u{1f} and del \u{7f}",
            "ünïcödé ✓ 🦀",
            "</script>",
        ];
        let columns: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        let rows: Vec<Vec<Option<String>>> = vec![
            texts.iter().map(|t| Some(t.to_string())).collect(),
            vec![None, Some(String::new())],
            vec![],
            vec![Some("\\x00ff7f".to_string())],
        ];
        let mut sample = ResultSample::default();
        for row in &rows[..3] {
            sample.push_row(row.iter().map(Option::as_deref));
        }
        // A row given up half-way leaves no trace.
        sample.begin_row();
        sample.value(Some("half"));
        sample.abandon_row();
        sample.begin_row();
        sample.value_hex(&[0x00, 0xff, 0x7f, 0x01], 3);
        sample.end_row();
        assert_eq!(sample.rows(), 4);
        assert_eq!(sample.to_rows(), rows);
        let empty = ResultSample::default();
        let mut params = ResultSample::default();
        params.push_row([Some("42"), None, Some("a \"quoted\"\n€")]);
        for (i, text) in texts.iter().enumerate() {
            let entries = [
                StatementEntry {
                    seq: i as i64,
                    started_at: -1,
                    sql: text,
                    decision: ["allow", "deny", "review"][i % 3],
                    ..Default::default()
                },
                StatementEntry {
                    seq: i64::MAX,
                    started_at: i64::MIN,
                    duration_us: Some(0),
                    sql: text,
                    params: Some(&params),
                    params_truncated: true,
                    decision: text,
                    rule: Some(text),
                    command: Some(text),
                    rows: Some(-3),
                    error: Some(text),
                    columns: Some(&columns),
                    result: Some(&sample),
                    result_truncated: true,
                },
                StatementEntry {
                    columns: Some(&[]),
                    result: Some(&empty),
                    params: Some(&empty),
                    ..Default::default()
                },
            ];
            for e in entries {
                let mut ours = String::new();
                e.write_json(&mut ours);
                let theirs = serde_json::to_string(&e).unwrap();
                assert_eq!(ours, theirs);
                let back: StatementRecord = serde_json::from_str(&ours).unwrap();
                assert_eq!(back.sql, e.sql);
                assert_eq!(back.error.as_deref(), e.error);
                assert_eq!(back.result, e.result.map(ResultSample::to_rows));
                assert_eq!(
                    back.params,
                    e.params
                        .map(|p| p.to_rows().into_iter().next().unwrap_or_default())
                );
                assert_eq!(back.params_truncated, e.params_truncated);
            }
        }
    }
}
