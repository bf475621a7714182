//! The connection registry.

use gatehouse_core::model::{ConnectionKind, ConnectionSettings, ConnectionSpec};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, is_unique_violation, json_list, to_json};

/// A stored connection. `secret` is the ciphertext of its credential, made
/// by the master keyring; it is never decrypted by the store.
#[derive(Clone)]
pub struct ConnectionRecord {
    pub spec: ConnectionSpec,
    pub secret: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for ConnectionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRecord")
            .field("spec", &self.spec)
            .field("secret", &self.secret.as_ref().map(|_| "[encrypted]"))
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

macro_rules! connection_columns {
    () => {
        "name, kind, url, groups, settings, secret, created_at, updated_at"
    };
}

fn from_row(row: &AnyRow) -> Result<ConnectionRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let settings: String = row.try_get("settings")?;
    Ok(ConnectionRecord {
        spec: ConnectionSpec {
            name: row.try_get("name")?,
            kind: ConnectionKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("connection kind {kind}")))?,
            url: row.try_get("url")?,
            groups: json_list(&row.try_get::<String, _>("groups")?)?,
            settings: serde_json::from_str::<ConnectionSettings>(&settings)
                .map_err(|e| StoreError::Corrupt(format!("connection settings: {e}")))?,
        },
        secret: row.try_get("secret")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn insert_connection(&self, rec: &ConnectionRecord) -> Result<(), StoreError> {
        let s = &rec.spec;
        sqlx::query(concat!(
            "INSERT INTO connections (",
            connection_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&s.name)
        .bind(s.kind.as_str())
        .bind(&s.url)
        .bind(to_json(&s.groups))
        .bind(to_json(&s.settings))
        .bind(rec.secret.clone())
        .bind(rec.created_at)
        .bind(rec.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("connection {:?}", s.name))
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// Replaces every field of an existing connection; false when absent.
    pub async fn update_connection(&self, rec: &ConnectionRecord) -> Result<bool, StoreError> {
        let s = &rec.spec;
        let done = sqlx::query(
            "UPDATE connections SET kind = $2, url = $3, groups = $4, settings = $5, secret = $6, updated_at = $7
             WHERE name = $1",
        )
        .bind(&s.name)
        .bind(s.kind.as_str())
        .bind(&s.url)
        .bind(to_json(&s.groups))
        .bind(to_json(&s.settings))
        .bind(rec.secret.clone())
        .bind(rec.updated_at)
        .execute(&self.pool)
        .await?;
        // Its groups may have changed: live sessions are checked again.
        self.bump_access_epoch().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Swaps a connection's ciphertext only if it is still `old` (used by key
    /// rotation, so a concurrent update is never overwritten).
    pub async fn replace_connection_secret(
        &self,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE connections SET secret = $3 WHERE name = $1 AND secret = $2")
                .bind(name)
                .bind(old)
                .bind(new)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn get_connection(&self, name: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list_connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn delete_connection(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM connections WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        self.bump_access_epoch().await?;
        Ok(done.rows_affected() == 1)
    }
}
