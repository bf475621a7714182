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

impl Store {
    pub async fn append_audit(&self, ev: &NewAuditEvent, ts: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO audit_events (ts, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(ts)
        .bind(&ev.actor)
        .bind(&ev.action)
        .bind(&ev.target)
        .bind(ev.detail.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
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
