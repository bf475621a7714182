//! Audit events. Every admin change lands here; the hash chain that makes
//! the log tamper-evident is built on this table (see ARCHITECTURE.md).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

/// An event to append. `detail` must never hold a secret.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: serde_json::Value,
}

fn from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditEvent {
        id: row.try_get("id")?,
        ts: row.try_get("ts")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
    })
}

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChainedEvent {
    pub id: i64,
    pub ts: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The detail exactly as stored (the hash covers these bytes).
    pub detail: String,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// A signed statement of the chain's head at one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub event_id: i64,
    pub head_hash: String,
    pub ts: i64,
    /// Hex Ed25519 public key that signed it.
    pub public_key: String,
    /// Hex Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed: a domain tag, the event id, the head hash, the time.
    pub fn message(event_id: i64, head_hash: &str, ts: i64) -> Vec<u8> {
        format!("gatehouse audit checkpoint v1\n{event_id}\n{head_hash}\n{ts}").into_bytes()
    }
}

/// Hex SHA-256 of an event's canonical encoding: a version tag, then the
/// previous hash, the time, actor, action, target and detail, each
/// length-prefixed (so no field's bytes can be moved into another's).
pub fn chain_hash(
    prev: &str,
    ts: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"gatehouse audit v1");
    let ts = ts.to_string();
    for part in [prev, ts.as_str(), actor, action, target, detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

fn chained_from_row(row: &AnyRow) -> Result<ChainedEvent, StoreError> {
    Ok(ChainedEvent {
        id: row.try_get("id")?,
        ts: row.try_get("ts")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl Store {
    /// Appends an event to the chain: its `prev_hash` is the newest event's
    /// hash. Appends are serialised (a lock in this process, and an
    /// advisory lock on PostgreSQL for other replicas).
    pub async fn append_audit(&self, ev: &NewAuditEvent, ts: i64) -> Result<i64, StoreError> {
        let _one_at_a_time = self.audit_lock.lock().await;
        let mut tx = self.begin_write().await?;
        if self.dialect == crate::Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(740018)")
                .execute(&mut *tx)
                .await?;
        }
        let prev: Option<Option<String>> =
            sqlx::query("SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let prev = prev.flatten().unwrap_or_else(|| GENESIS.to_string());
        let detail = ev.detail.to_string();
        let hash = chain_hash(&prev, ts, &ev.actor, &ev.action, &ev.target, &detail);
        let row = sqlx::query(
            "INSERT INTO audit_events (ts, actor, action, target, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(ts)
        .bind(&ev.actor)
        .bind(&ev.action)
        .bind(&ev.target)
        .bind(&detail)
        .bind(&prev)
        .bind(&hash)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        tx.commit().await?;
        Ok(id)
    }

    /// Chains the events written before the chain existed, once (the
    /// store remembers that it did; later events without a hash are then
    /// tampering, not history).
    pub(crate) async fn seal_audit_chain(&self) -> Result<(), StoreError> {
        if self.get_meta("audit_chain").await?.is_some() {
            return Ok(());
        }
        let _one_at_a_time = self.audit_lock.lock().await;
        let mut tx = self.begin_write().await?;
        if self.dialect == crate::Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(740018)")
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("SELECT value FROM gh_meta WHERE key = 'audit_chain'")
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_none() {
            let rows = sqlx::query(
                "SELECT id, ts, actor, action, target, detail, prev_hash, hash FROM audit_events ORDER BY id",
            )
            .fetch_all(&mut *tx)
            .await?;
            let mut prev = GENESIS.to_string();
            for row in &rows {
                let e = chained_from_row(row)?;
                let hash = chain_hash(&prev, e.ts, &e.actor, &e.action, &e.target, &e.detail);
                sqlx::query("UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE id = $1")
                    .bind(e.id)
                    .bind(&prev)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
                prev = hash;
            }
            sqlx::query("INSERT INTO gh_meta (key, value) VALUES ('audit_chain', 'v1')")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events with their chain fields, in id order, after `after_id`.
    pub async fn audit_chain(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ChainedEvent>, StoreError> {
        self.audit_since(i64::MIN, after_id, limit).await
    }

    /// Events since `since_ms`, in id order, after `after_id`.
    pub async fn audit_since(
        &self,
        since_ms: i64,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ChainedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ts, actor, action, target, detail, prev_hash, hash FROM audit_events WHERE ts >= $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(since_ms)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(chained_from_row).collect()
    }

    /// The newest event's id and hash.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((
                r.try_get(0)?,
                r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
            )),
            None => None,
        })
    }

    pub async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (event_id, head_hash, ts, public_key, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(c.event_id)
        .bind(&c.head_hash)
        .bind(c.ts)
        .bind(&c.public_key)
        .bind(&c.signature)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT event_id, head_hash, ts, public_key, signature FROM audit_checkpoints ORDER BY event_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    event_id: r.try_get(0)?,
                    head_hash: r.try_get(1)?,
                    ts: r.try_get(2)?,
                    public_key: r.try_get(3)?,
                    signature: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// The newest `limit` events, newest first.
    pub async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query("SELECT id, ts, actor, action, target, detail FROM audit_events ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }
}
