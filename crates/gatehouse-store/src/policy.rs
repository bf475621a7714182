//! The policy (rules, masks, detectors), stored as one versioned document.
//! Every replica reloads it when the version moves.

use gatehouse_core::policy::spec::PolicySpec;
use serde::Serialize;
use sqlx::Row;

use crate::{Store, StoreError};

/// The stored policy and who changed it last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPolicy {
    pub spec: PolicySpec,
    /// Starts at 0 (no policy ever stored) and grows with every change.
    pub version: i64,
    pub updated_at: Option<i64>,
    pub updated_by: Option<String>,
}

impl Store {
    /// The current policy; an empty one at version 0 if none was ever stored.
    pub async fn get_policy(&self) -> Result<StoredPolicy, StoreError> {
        let row =
            sqlx::query("SELECT doc, version, updated_at, updated_by FROM policy WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(StoredPolicy {
                spec: PolicySpec::default(),
                version: 0,
                updated_at: None,
                updated_by: None,
            });
        };
        let doc: String = row.try_get("doc")?;
        let spec: PolicySpec = serde_json::from_str(&doc)
            .map_err(|e| StoreError::Corrupt(format!("stored policy: {e}")))?;
        Ok(StoredPolicy {
            spec,
            version: row.try_get("version")?,
            updated_at: row.try_get("updated_at")?,
            updated_by: row.try_get("updated_by")?,
        })
    }

    /// The current version only (cheap; replicas poll it).
    pub async fn policy_version(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT version FROM policy WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .unwrap_or(0))
    }

    /// Replaces the policy; returns the new version. The caller validates.
    pub async fn put_policy(
        &self,
        spec: &PolicySpec,
        who: &str,
        at: i64,
    ) -> Result<i64, StoreError> {
        let doc =
            serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(format!("policy: {e}")))?;
        let row = sqlx::query(
            "INSERT INTO policy (id, doc, version, updated_at, updated_by) VALUES (1, $1, 1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, version = policy.version + 1,
               updated_at = excluded.updated_at, updated_by = excluded.updated_by
             RETURNING version",
        )
        .bind(doc)
        .bind(at)
        .bind(who)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }
}
