//! Reviews (a statement or an access request waiting for people to
//! approve it), their votes, and the just-in-time grants approved access
//! requests create.
//!
//! Every state change is one conditional `UPDATE`, so replicas sharing a
//! PostgreSQL store never both win: a review is approved once, executed
//! once, a grant revoked once.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, json_list, to_json};

/// A review's states. `pending` → `approved` → `executed`; or `rejected`;
/// or `expired` (nobody decided in time, or an approval was not used in time).
pub mod state {
    pub const PENDING: &str = "pending";
    pub const APPROVED: &str = "approved";
    pub const REJECTED: &str = "rejected";
    pub const EXPIRED: &str = "expired";
    pub const EXECUTED: &str = "executed";
}

/// What is reviewed.
pub mod kind {
    /// One exact statement (with its parameters).
    pub const COMMAND: &str = "command";
    /// A just-in-time access grant.
    pub const ACCESS: &str = "access";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRecord {
    pub id: String,
    pub kind: String,
    pub connection: String,
    /// The subject who asked.
    pub requester: String,
    /// Hex SHA-256 of (connection, requester, statement, parameters) for a
    /// command; empty for access requests.
    pub binding: String,
    /// The statement as the caller sent it (commands).
    pub statement: Option<String>,
    /// Its parameters as text, when it had any.
    pub params: Option<String>,
    /// The rule that asked for review, or `access` for access requests.
    pub rule: String,
    pub approvers: Vec<String>,
    pub approvals_needed: i64,
    pub reason: Option<String>,
    /// For access requests: the level and how long the grant lasts.
    pub level: Option<String>,
    pub duration_ms: Option<i64>,
    pub state: String,
    pub created_at: i64,
    /// Pending: when the request expires. Approved: when the approval can
    /// no longer be used.
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    pub executed_at: Option<i64>,
    /// The session the statement was held in, if any.
    pub session_id: Option<String>,
    /// The grant an approved access request created.
    pub grant_id: Option<String>,
    /// The statement, parameters and reason as the requester's content
    /// detectors leave them, if they found anything: what the audit log and
    /// webhooks get ([`ReviewRecord::public`]). Approvers see the exact
    /// text.
    pub redacted: Option<Redacted>,
    pub votes: Vec<Vote>,
}

/// See [`ReviewRecord::redacted`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Redacted {
    pub statement: String,
    pub params: Option<String>,
    pub reason: Option<String>,
}

impl ReviewRecord {
    /// The review as it may leave the gateway: with what the requester's
    /// content detectors found redacted.
    pub fn public(&self) -> std::borrow::Cow<'_, ReviewRecord> {
        match &self.redacted {
            None => std::borrow::Cow::Borrowed(self),
            Some(r) => std::borrow::Cow::Owned(ReviewRecord {
                statement: Some(r.statement.clone()),
                params: r.params.clone(),
                reason: r.reason.clone(),
                ..self.clone()
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub approver: String,
    /// `approve` or `reject`.
    pub decision: String,
    pub reason: Option<String>,
    pub at: i64,
    /// Approved as a member of a break-glass group.
    pub break_glass: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: String,
    pub review_id: String,
    pub connection: String,
    pub principal: String,
    pub level: String,
    pub reason: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

impl GrantRecord {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Why a vote was not counted.
#[derive(Debug, thiserror::Error)]
pub enum VoteError {
    #[error("review {0} does not exist")]
    NotFound(String),
    #[error("review {id} is {state}, not pending")]
    NotPending { id: String, state: String },
    #[error("{0} has already voted on this review")]
    AlreadyVoted(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

macro_rules! review_columns {
    () => {
        "id, kind, connection, requester, binding, statement, params, rule, approvers, approvals_needed, reason, level, duration_ms, state, created_at, expires_at, decided_at, executed_at, session_id, grant_id, redacted"
    };
}

macro_rules! grant_columns {
    () => {
        "id, review_id, connection, principal, level, reason, created_at, expires_at, revoked_at, revoked_by"
    };
}

fn review_from_row(row: &AnyRow) -> Result<ReviewRecord, StoreError> {
    Ok(ReviewRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        connection: row.try_get("connection")?,
        requester: row.try_get("requester")?,
        binding: row.try_get("binding")?,
        statement: row.try_get("statement")?,
        params: row.try_get("params")?,
        rule: row.try_get("rule")?,
        approvers: json_list(&row.try_get::<String, _>("approvers")?)?,
        approvals_needed: row.try_get("approvals_needed")?,
        reason: row.try_get("reason")?,
        level: row.try_get("level")?,
        duration_ms: row.try_get("duration_ms")?,
        state: row.try_get("state")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        decided_at: row.try_get("decided_at")?,
        executed_at: row.try_get("executed_at")?,
        session_id: row.try_get("session_id")?,
        grant_id: row.try_get("grant_id")?,
        redacted: match row.try_get::<Option<String>, _>("redacted")? {
            Some(j) => {
                Some(serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            }
            None => None,
        },
        votes: Vec::new(),
    })
}

fn grant_from_row(row: &AnyRow) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        id: row.try_get("id")?,
        review_id: row.try_get("review_id")?,
        connection: row.try_get("connection")?,
        principal: row.try_get("principal")?,
        level: row.try_get("level")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

/// A fresh identifier such as `rv_k3j9x2m4q8w1`: a prefix and 12 random
/// characters from an alphabet without look-alikes.
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    let mut s = String::with_capacity(prefix.len() + 13);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..12 {
        let i = rand::random::<u32>() as usize % ALPHABET.len();
        s.push(char::from(ALPHABET[i]));
    }
    s
}

impl Store {
    pub async fn insert_review(&self, r: &ReviewRecord) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO reviews (",
            review_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        ))
        .bind(&r.id)
        .bind(&r.kind)
        .bind(&r.connection)
        .bind(&r.requester)
        .bind(&r.binding)
        .bind(&r.statement)
        .bind(&r.params)
        .bind(&r.rule)
        .bind(to_json(&r.approvers))
        .bind(r.approvals_needed)
        .bind(&r.reason)
        .bind(&r.level)
        .bind(r.duration_ms)
        .bind(&r.state)
        .bind(r.created_at)
        .bind(r.expires_at)
        .bind(r.decided_at)
        .bind(r.executed_at)
        .bind(&r.session_id)
        .bind(&r.grant_id)
        .bind(r.redacted.as_ref().map(to_json))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One review with its votes.
    pub async fn get_review(&self, id: &str) -> Result<Option<ReviewRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            review_columns!(),
            " FROM reviews WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut r = review_from_row(&row)?;
        r.votes = self.votes(id).await?;
        Ok(Some(r))
    }

    /// Only a review's state (cheap, for waiting on a decision).
    pub async fn review_state(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT state FROM reviews WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    async fn votes(&self, id: &str) -> Result<Vec<Vote>, StoreError> {
        let rows = sqlx::query(
            "SELECT approver, decision, reason, at, break_glass FROM review_votes WHERE review_id = $1 ORDER BY at, approver",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Vote {
                    approver: row.try_get("approver")?,
                    decision: row.try_get("decision")?,
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                    break_glass: row.try_get::<i64, _>("break_glass")? != 0,
                })
            })
            .collect()
    }

    /// Reviews, newest first; only pending ones when `pending`.
    pub async fn list_reviews(
        &self,
        pending: bool,
        limit: i64,
    ) -> Result<Vec<ReviewRecord>, StoreError> {
        let sql = if pending {
            concat!(
                "SELECT ",
                review_columns!(),
                " FROM reviews WHERE state = 'pending' ORDER BY created_at DESC, id LIMIT $1"
            )
        } else {
            concat!(
                "SELECT ",
                review_columns!(),
                " FROM reviews ORDER BY created_at DESC, id LIMIT $1"
            )
        };
        let rows = sqlx::query(sql).bind(limit).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut r = review_from_row(row)?;
            r.votes = self.votes(&r.id).await?;
            out.push(r);
        }
        Ok(out)
    }

    /// The newest review of this binding by this requester that is still
    /// pending or approved and unused, and not past its time.
    pub async fn open_review_for(
        &self,
        binding: &str,
        requester: &str,
        now: i64,
    ) -> Result<Option<ReviewRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            review_columns!(),
            " FROM reviews WHERE binding = $1 AND requester = $2 AND state IN ('pending', 'approved') AND expires_at > $3 ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(binding)
        .bind(requester)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(review_from_row).transpose()
    }

    /// Counts a vote. An approval that reaches `approvals_needed` distinct
    /// approvers (or comes from a break-glass member) approves the review,
    /// after which its approval can be used until `approved_until`; a
    /// rejection rejects it at once. Returns the review as it now is.
    pub async fn vote_review(
        &self,
        id: &str,
        vote: &Vote,
        approved_until: i64,
    ) -> Result<ReviewRecord, VoteError> {
        let mut tx = self.begin_write().await.map_err(StoreError::from)?;
        let row = sqlx::query("SELECT state, approvals_needed FROM reviews WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .ok_or_else(|| VoteError::NotFound(id.to_string()))?;
        let st: String = row.try_get(0).map_err(StoreError::from)?;
        let needed: i64 = row.try_get(1).map_err(StoreError::from)?;
        if st != state::PENDING {
            return Err(VoteError::NotPending {
                id: id.to_string(),
                state: st,
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO review_votes (review_id, approver, decision, reason, at, break_glass) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (review_id, approver) DO NOTHING",
        )
        .bind(id)
        .bind(&vote.approver)
        .bind(&vote.decision)
        .bind(&vote.reason)
        .bind(vote.at)
        .bind(i64::from(vote.break_glass))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if inserted.rows_affected() == 0 {
            return Err(VoteError::AlreadyVoted(vote.approver.clone()));
        }
        if vote.decision == "reject" {
            sqlx::query(
                "UPDATE reviews SET state = 'rejected', decided_at = $2 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(vote.at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        } else {
            let row = sqlx::query(
                "SELECT COUNT(*), COALESCE(MAX(break_glass), 0) FROM review_votes WHERE review_id = $1 AND decision = 'approve'",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            let approvals: i64 = row.try_get(0).map_err(StoreError::from)?;
            let glass: i64 = row.try_get(1).map_err(StoreError::from)?;
            if approvals >= needed || glass != 0 {
                sqlx::query(
                    "UPDATE reviews SET state = 'approved', decided_at = $2, expires_at = $3 WHERE id = $1 AND state = 'pending'",
                )
                .bind(id)
                .bind(vote.at)
                .bind(approved_until)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        self.get_review(id)
            .await?
            .ok_or_else(|| VoteError::NotFound(id.to_string()))
    }

    /// Uses an approved review: true once, for the caller that won.
    pub async fn consume_review(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE reviews SET state = 'executed', executed_at = $2 WHERE id = $1 AND state = 'approved' AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks pending reviews, and approvals not used, that are past their
    /// time as expired; returns their ids.
    pub async fn expire_reviews(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "UPDATE reviews SET state = 'expired', decided_at = COALESCE(decided_at, $1) WHERE state IN ('pending', 'approved') AND expires_at <= $1 RETURNING id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// Records the grant an approved access request created.
    pub async fn set_review_grant(&self, id: &str, grant: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE reviews SET grant_id = $2 WHERE id = $1")
            .bind(id)
            .bind(grant)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates the grant of an approved access request, once: a second
    /// call for the same review returns the first grant.
    pub async fn insert_grant(&self, g: &GrantRecord) -> Result<GrantRecord, StoreError> {
        sqlx::query(concat!(
            "INSERT INTO grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (review_id) DO NOTHING"
        ))
        .bind(&g.id)
        .bind(&g.review_id)
        .bind(&g.connection)
        .bind(&g.principal)
        .bind(&g.level)
        .bind(&g.reason)
        .bind(g.created_at)
        .bind(g.expires_at)
        .bind(g.revoked_at)
        .bind(&g.revoked_by)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE review_id = $1"
        ))
        .bind(&g.review_id)
        .fetch_one(&self.pool)
        .await?;
        grant_from_row(&row)
    }

    pub async fn get_grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_from_row).transpose()
    }

    /// Grants live at `now`, soonest to expire first.
    pub async fn live_grants(&self, now: i64) -> Result<Vec<GrantRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY expires_at, id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Revokes a live grant; false when it does not exist or is not live.
    pub async fn revoke_grant(&self, id: &str, by: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE grants SET revoked_at = $2, revoked_by = $3 WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .bind(by)
        .execute(&self.pool)
        .await?;
        self.bump_access_epoch().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A counter every replica watches: it moves whenever access may have
    /// been taken away (a token revoked, a connection changed or removed, a
    /// grant revoked), so live sessions are checked again at once.
    pub async fn access_epoch(&self) -> Result<i64, StoreError> {
        Ok(self
            .get_meta("access_epoch")
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    pub async fn bump_access_epoch(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gh_meta (key, value) VALUES ('access_epoch', '1') ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(gh_meta.value AS BIGINT) + 1 AS TEXT)",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
