//! Cancel requests between replicas. A PostgreSQL client sends its cancel
//! request on a new connection, which a load balancer may hand to another
//! replica than the one holding the session. That replica leaves the
//! request here; the holder picks it up (see `gatehouse_pg::remote_cancel`).
//! Only a hash of the cancel key is stored, never the key.

use sqlx::Row;

use crate::{Store, StoreError};

impl Store {
    /// Leaves a cancel request for the session whose cancel key hashes to
    /// `key_hash`, made at `at` (Unix ms).
    pub async fn request_cancel(&self, key_hash: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO cancel_requests (key_hash, requested_at) VALUES ($1, $2)")
            .bind(key_hash)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The cancel requests made at or after `since` (Unix ms): each key
    /// hash with the time it was requested, oldest first.
    pub async fn cancel_requests_since(
        &self,
        since: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_hash, requested_at FROM cancel_requests WHERE requested_at >= $1
             ORDER BY requested_at LIMIT 10000",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Removes the cancel requests made before `before` (Unix ms); how many.
    pub async fn prune_cancel_requests(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM cancel_requests WHERE requested_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
