//! Service-account API tokens. Only the SHA-256 of a token is stored.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, is_unique_violation, json_list, to_json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub name: String,
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub created_by: String,
}

impl TokenRecord {
    /// Whether the token may be used at `now` (Unix ms).
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

macro_rules! token_columns {
    () => {
        "name, hash, groups, created_at, expires_at, revoked_at, last_used_at, created_by"
    };
}

fn from_row(row: &AnyRow) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        groups: json_list(&row.try_get::<String, _>("groups")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        created_by: row.try_get("created_by")?,
    })
}

impl Store {
    pub async fn insert_token(&self, rec: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO tokens (",
            token_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(&rec.name)
        .bind(&rec.hash)
        .bind(to_json(&rec.groups))
        .bind(rec.created_at)
        .bind(rec.expires_at)
        .bind(rec.revoked_at)
        .bind(rec.last_used_at)
        .bind(&rec.created_by)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("token {:?}", rec.name))
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    pub async fn find_token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn get_token(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Marks a token revoked; false when it does not exist or already was.
    pub async fn revoke_token(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
                .bind(name)
                .bind(at)
                .execute(&self.pool)
                .await?;
        self.bump_access_epoch().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records use of a token, at most once a minute per token.
    pub async fn touch_token(&self, name: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tokens SET last_used_at = $2 WHERE name = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(name)
        .bind(at)
        .bind(at - 60_000)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
