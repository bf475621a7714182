//! Recorded sessions and the statements run in them.

use serde::Serialize;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementRecord {
    pub session_id: String,
    pub seq: i64,
    pub started_at: i64,
    pub duration_us: Option<i64>,
    pub sql: String,
    pub decision: String,
    pub rule: Option<String>,
    /// The command tag, e.g. `SELECT 3`.
    pub command: Option<String>,
    pub rows: Option<i64>,
    pub error: Option<String>,
}

/// Statements per multi-row insert (10 parameters each, well under
/// SQLite's and PostgreSQL's limits).
const STATEMENT_ROWS: usize = 100;

/// What the recorder writes.
#[derive(Debug, Clone)]
pub enum RecordEvent {
    SessionStart(SessionRecord),
    Statement(StatementRecord),
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
        decision: row.try_get("decision")?,
        rule: row.try_get("rule")?,
        command: row.try_get("command")?,
        rows: row.try_get("rows")?,
        error: row.try_get("error")?,
    })
}

impl Store {
    /// Writes a batch of recorder events in one transaction. Consecutive
    /// statements are written with multi-row inserts.
    pub async fn write_records(&self, events: &[RecordEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut i = 0;
        while i < events.len() {
            match &events[i] {
                RecordEvent::SessionStart(s) => {
                    sqlx::query(
                        "INSERT INTO sessions (id, principal, authn, connection, protocol, client_addr, started_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&s.id)
                    .bind(&s.principal)
                    .bind(&s.authn)
                    .bind(&s.connection)
                    .bind(&s.protocol)
                    .bind(&s.client_addr)
                    .bind(s.started_at)
                    .execute(&mut *tx)
                    .await?;
                    i += 1;
                }
                RecordEvent::Statement(_) => {
                    let run: Vec<&StatementRecord> = events[i..]
                        .iter()
                        .map_while(|e| match e {
                            RecordEvent::Statement(st) => Some(st),
                            _ => None,
                        })
                        .take(STATEMENT_ROWS)
                        .collect();
                    i += run.len();
                    let mut sql = String::from(
                        "INSERT INTO session_statements
                         (session_id, seq, started_at, duration_us, sql, decision, rule, command, rows, error) VALUES ",
                    );
                    for r in 0..run.len() {
                        let b = r * 10;
                        if r > 0 {
                            sql.push(',');
                        }
                        sql.push_str(&format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            b + 1,
                            b + 2,
                            b + 3,
                            b + 4,
                            b + 5,
                            b + 6,
                            b + 7,
                            b + 8,
                            b + 9,
                            b + 10
                        ));
                    }
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for st in run {
                        q = q
                            .bind(&st.session_id)
                            .bind(st.seq)
                            .bind(st.started_at)
                            .bind(st.duration_us)
                            .bind(&st.sql)
                            .bind(&st.decision)
                            .bind(st.rule.clone())
                            .bind(st.command.clone())
                            .bind(st.rows)
                            .bind(st.error.clone());
                    }
                    q.execute(&mut *tx).await?;
                }
                RecordEvent::SessionEnd { id, at, reason } => {
                    sqlx::query("UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL")
                        .bind(id)
                        .bind(*at)
                        .bind(reason)
                        .execute(&mut *tx)
                        .await?;
                    i += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sessions, newest first.
    pub async fn list_sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRecord>, StoreError> {
        let grep = f.grep.as_ref().map(|g| {
            format!(
                "%{}%",
                g.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
        let rows = sqlx::query(concat!(
            "SELECT id, principal, authn, connection, protocol, client_addr, started_at, ended_at, end_reason FROM sessions s",
            " WHERE ($1 IS NULL OR principal = $1) AND ($2 IS NULL OR connection = $2) AND ($3 IS NULL OR started_at >= $3)",
            " AND ($4 IS NULL OR EXISTS (SELECT 1 FROM session_statements t WHERE t.session_id = s.id AND t.sql LIKE $4 ESCAPE '\\'))",
            " ORDER BY started_at DESC, id LIMIT $5"
        ))
        .bind(f.principal.clone())
        .bind(f.connection.clone())
        .bind(f.since)
        .bind(grep)
        .bind(if f.limit > 0 { f.limit } else { 100 })
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
        let statements = rows
            .iter()
            .map(statement_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some((session, statements)))
    }
}
