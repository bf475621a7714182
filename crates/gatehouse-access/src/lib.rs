//! Human approval and just-in-time access.
//!
//! * **Reviews of one exact command.** A statement a `review` rule holds
//!   becomes a review bound to the SHA-256 of (connection, caller,
//!   statement text, parameters). Approving it lets that exact command run
//!   once: a changed command, or the same one sent again after it ran,
//!   needs a new review. [`Access::hold`] finds or creates the review,
//!   [`Access::wait`] waits for its decision (in-process votes wake it at
//!   once; votes on other replicas are seen by polling the store).
//! * **Votes.** [`Access::vote`] checks who votes: never the requester,
//!   only members of the approver groups or of a break-glass group; a
//!   rejection needs a reason.
//! * **Just-in-time grants.** [`Access::request_access`] checks the
//!   policy's `[[access]]` entries and creates an access review; its
//!   approval creates a grant for a level and a time. Live grants are
//!   cached here ([`Access::grant_for`]) and refreshed by the server's
//!   session guard.
//! * **Notifications** to webhooks ([`notify`]) and the **audit** writer
//!   ([`audit`]).

pub mod audit;
pub mod connect;
pub mod notify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use gatehouse_core::model::Principal;
use gatehouse_core::now_ms;
use gatehouse_core::policy::spec::{Level, PolicySpec};
use gatehouse_store::reviews::{kind, new_id, state};
use gatehouse_store::{GrantRecord, Redacted, ReviewRecord, Store, StoreError, Vote, VoteError};
use serde_json::json;
use sha2::{Digest, Sha256};

pub use notify::{Notifier, Webhook, WebhookFormat};

use crate::audit::Auditor;

/// Longest statement text kept in a review (the binding covers all of it).
const MAX_STATEMENT: usize = 64 * 1024;
/// Longest parameter text kept per parameter.
const MAX_PARAM: usize = 1024;
/// How often a waiting statement looks at the store for votes cast on
/// other replicas.
const POLL: Duration = Duration::from_millis(200);

/// Why a request could not be held, voted on or granted. The messages are
/// shown to callers.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Refused(String),
    #[error("review {0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<VoteError> for AccessError {
    fn from(e: VoteError) -> Self {
        match e {
            VoteError::NotFound(id) => AccessError::NotFound(id),
            VoteError::Store(s) => AccessError::Store(s),
            other => AccessError::Conflict(other.to_string()),
        }
    }
}

/// A statement to hold for review.
#[derive(Debug, Clone)]
pub struct HoldRequest<'a> {
    pub connection: &'a str,
    pub principal: &'a Principal,
    pub sql: &'a str,
    /// Raw parameter bytes, as bound (part of the binding).
    pub params_raw: &'a [u8],
    /// The parameters as people read them.
    pub params_text: Option<String>,
    pub rule: &'a str,
    pub approvers: &'a [String],
    pub approvals: u32,
    pub timeout_ms: u64,
    pub reason: Option<String>,
    pub session_id: Option<&'a str>,
    /// What the caller's content detectors make of a text, if they find
    /// anything: the audit log and webhooks get the statement, its
    /// parameters and its reason as the recording keeps them; approvers
    /// see them exact.
    pub redact: Option<Redactor<'a>>,
}

/// A text as the caller's content detectors leave it (`None`: nothing
/// found).
#[derive(Clone, Copy)]
pub struct Redactor<'a>(pub &'a (dyn Fn(&str) -> Option<String> + Sync));

impl std::fmt::Debug for Redactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor")
    }
}

impl HoldRequest<'_> {
    /// The statement, parameters and reason as the caller's content
    /// detectors leave them, if they find anything in one of them.
    fn redacted(&self) -> Option<Redacted> {
        let redact = self.redact?.0;
        let statement = redact(self.sql);
        let params = self.params_text.as_deref().and_then(redact);
        let reason = self.reason.as_deref().and_then(redact);
        if statement.is_none() && params.is_none() && reason.is_none() {
            return None;
        }
        Some(Redacted {
            statement: truncate(statement.as_deref().unwrap_or(self.sql), MAX_STATEMENT),
            params: params.or_else(|| self.params_text.clone()),
            reason: reason.or_else(|| self.reason.clone()),
        })
    }
}

/// What became of a held statement at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// An approved review for exactly this command was waiting: it has now
    /// been used, and the statement runs.
    Approved { review: String },
    /// A review is pending (made now when `new`); wait for it.
    Pending { review: String, new: bool },
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Approved, and the approval was used for this run.
    Approved {
        by: Vec<String>,
    },
    Rejected {
        by: String,
        reason: String,
    },
    /// Nobody decided in time.
    Expired,
    /// Approved, but the approval was used by another run of the same
    /// command (it allows one run).
    UsedElsewhere,
}

/// Live grants by principal (looked up by `&str`, without allocating, on
/// every statement).
type GrantMap = HashMap<String, Vec<GrantRecord>>;

/// The review service, shared by every protocol of one process.
#[derive(Debug, Clone)]
pub struct Access {
    store: Store,
    audit: Auditor,
    notifier: Option<Arc<Notifier>>,
    /// Live grants: (principal, connection) → grants.
    grants: Arc<RwLock<GrantMap>>,
    /// Whether `grants` holds any: when it holds none (the usual case) a
    /// statement's lookup is one atomic load, not a lock shared by every
    /// session thread.
    any_grants: Arc<AtomicBool>,
    /// Woken when a vote is cast in this process.
    votes: Arc<tokio::sync::Notify>,
}

/// Hex SHA-256 over length-prefixed fields: what an approval is bound to.
pub fn binding(connection: &str, requester: &str, sql: &str, params: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        connection.as_bytes(),
        requester.as_bytes(),
        sql.as_bytes(),
        params,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The reason a caller gave in the statement: a comment `-- reason: …` or
/// `/* reason: … */`.
pub fn reason_in(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    for (open, close) in [("--", "\n"), ("/*", "*/")] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(open) {
            let start = from + i + open.len();
            let end = lower[start..].find(close).map_or(sql.len(), |e| start + e);
            let body = sql[start..end].trim();
            if body.len() > 7 && body[..7].eq_ignore_ascii_case("reason:") {
                let r = body[7..].trim();
                if !r.is_empty() {
                    return Some(r.chars().take(500).collect());
                }
            }
            from = end.min(sql.len());
            if from >= sql.len() {
                break;
            }
        }
    }
    None
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

/// Parameters as people read them: text as is, binary as hex, NULL.
pub fn params_text(params: &[Option<(bool, &[u8])>]) -> Option<String> {
    if params.is_empty() {
        return None;
    }
    let parts: Vec<String> = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let v = match p {
                None => "NULL".to_string(),
                Some((true, b)) => format!("\\x{}", hex::encode(&b[..b.len().min(MAX_PARAM / 2)])),
                Some((false, b)) => truncate(&String::from_utf8_lossy(b), MAX_PARAM),
            };
            format!("${}={v}", i + 1)
        })
        .collect();
    Some(parts.join(", "))
}

fn lock_read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn lock_write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// What a review is, for audit events and notifications (no secrets: a
/// statement's text is what the approvers must see).
pub fn review_json(r: &ReviewRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "kind": r.kind,
        "connection": r.connection,
        "requester": r.requester,
        "statement": r.statement,
        "params": r.params,
        "rule": r.rule,
        "approvers": r.approvers,
        "approvals_needed": r.approvals_needed,
        "reason": r.reason,
        "level": r.level,
        "duration_ms": r.duration_ms,
        "state": r.state,
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "decided_at": r.decided_at,
        "executed_at": r.executed_at,
        "session_id": r.session_id,
        "grant_id": r.grant_id,
        "votes": r.votes.iter().map(|v| json!({
            "approver": v.approver,
            "decision": v.decision,
            "reason": v.reason,
            "at": v.at,
            "break_glass": v.break_glass,
        })).collect::<Vec<_>>(),
    })
}

pub fn grant_json(g: &GrantRecord) -> serde_json::Value {
    json!({
        "id": g.id,
        "review_id": g.review_id,
        "connection": g.connection,
        "principal": g.principal,
        "level": g.level,
        "reason": g.reason,
        "created_at": g.created_at,
        "expires_at": g.expires_at,
        "revoked_at": g.revoked_at,
        "revoked_by": g.revoked_by,
    })
}

impl Access {
    pub fn new(store: Store, audit: Auditor, notifier: Option<Notifier>) -> Self {
        Self {
            store,
            audit,
            notifier: notifier.map(Arc::new),
            grants: Arc::default(),
            any_grants: Arc::default(),
            votes: Arc::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn audit(&self) -> &Auditor {
        &self.audit
    }

    fn notify(&self, event: &str, r: &ReviewRecord) {
        if let Some(n) = &self.notifier {
            n.send(event, r);
        }
    }

    /// Finds the review for this exact command, or creates one.
    pub async fn hold(&self, req: &HoldRequest<'_>) -> Result<Held, AccessError> {
        let now = now_ms();
        let requester = &req.principal.subject;
        let bind = binding(req.connection, requester, req.sql, req.params_raw);
        if let Some(r) = self.store.open_review_for(&bind, requester, now).await? {
            if r.state == state::APPROVED {
                if self.store.consume_review(&r.id, now).await? {
                    self.audit
                        .record(
                            req.principal,
                            "review.executed",
                            &r.id,
                            json!({"connection": r.connection, "session": req.session_id}),
                        )
                        .await;
                    return Ok(Held::Approved { review: r.id });
                }
            } else {
                return Ok(Held::Pending {
                    review: r.id,
                    new: false,
                });
            }
        }
        let timeout = i64::try_from(req.timeout_ms).unwrap_or(i64::MAX);
        let r = ReviewRecord {
            id: new_id("rv"),
            kind: kind::COMMAND.into(),
            connection: req.connection.into(),
            requester: requester.clone(),
            binding: bind,
            statement: Some(truncate(req.sql, MAX_STATEMENT)),
            params: req.params_text.clone(),
            rule: req.rule.into(),
            approvers: req.approvers.to_vec(),
            approvals_needed: i64::from(req.approvals.max(1)),
            reason: req.reason.clone(),
            level: None,
            duration_ms: None,
            state: state::PENDING.into(),
            created_at: now,
            expires_at: now.saturating_add(timeout),
            decided_at: None,
            executed_at: None,
            session_id: req.session_id.map(str::to_string),
            grant_id: None,
            redacted: req.redacted(),
            votes: Vec::new(),
        };
        self.store.insert_review(&r).await?;
        self.audit
            .record(
                req.principal,
                "review.requested",
                &r.id,
                review_json(&r.public()),
            )
            .await;
        self.notify("review.requested", &r);
        Ok(Held::Pending {
            review: r.id,
            new: true,
        })
    }

    /// Waits until review `id` is decided or `deadline` (Unix ms) passes.
    /// An approval is used (marked executed) by this wait; if another
    /// caller used it first, that counts as expired for this one.
    pub async fn wait(&self, id: &str, who: &Principal, deadline: i64) -> Outcome {
        loop {
            // Register before reading the state, so a vote in between wakes us.
            let woken = self.votes.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let now = now_ms();
            match self.store.get_review(id).await {
                Ok(Some(r)) if r.state == state::APPROVED => {
                    return match self.store.consume_review(id, now).await {
                        Ok(true) => {
                            self.audit
                                .record(
                                    who,
                                    "review.executed",
                                    id,
                                    json!({"connection": r.connection, "session": r.session_id}),
                                )
                                .await;
                            Outcome::Approved {
                                by: r
                                    .votes
                                    .iter()
                                    .filter(|v| v.decision == "approve")
                                    .map(|v| v.approver.clone())
                                    .collect(),
                            }
                        }
                        _ => Outcome::UsedElsewhere,
                    };
                }
                Ok(Some(r)) if r.state == state::REJECTED => {
                    let v = r.votes.iter().find(|v| v.decision == "reject");
                    return Outcome::Rejected {
                        by: v.map(|v| v.approver.clone()).unwrap_or_default(),
                        reason: v.and_then(|v| v.reason.clone()).unwrap_or_default(),
                    };
                }
                Ok(Some(r)) if r.state == state::PENDING && now < deadline.min(r.expires_at) => {}
                Ok(Some(_)) | Ok(None) => {
                    self.expire(now).await;
                    return Outcome::Expired;
                }
                Err(e) => {
                    // Fail closed: an undecidable wait does not run the statement.
                    tracing::warn!(review = id, error = %e, "could not read a review; still waiting");
                    if now >= deadline {
                        return Outcome::Expired;
                    }
                }
            }
            let left = Duration::from_millis(u64::try_from(deadline - now).unwrap_or(0));
            let _ = tokio::time::timeout(left.min(POLL), woken).await;
        }
    }

    /// Waits until review `id` is no longer pending or `deadline` (Unix ms)
    /// passes, without using an approval; returns the review as it is then.
    pub async fn wait_decided(
        &self,
        id: &str,
        deadline: i64,
    ) -> Result<Option<ReviewRecord>, StoreError> {
        loop {
            let woken = self.votes.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let now = now_ms();
            if now >= deadline {
                self.expire(now).await;
                return self.store.get_review(id).await;
            }
            match self.store.review_state(id).await? {
                None => return Ok(None),
                Some(s) if s != state::PENDING => return self.store.get_review(id).await,
                Some(_) => {}
            }
            let left = Duration::from_millis(u64::try_from(deadline - now).unwrap_or(0));
            let _ = tokio::time::timeout(left.min(POLL), woken).await;
        }
    }

    /// Marks reviews past their time as expired (and audits it).
    pub async fn expire(&self, now: i64) {
        match self.store.expire_reviews(now).await {
            Ok(ids) => {
                for id in ids {
                    self.audit
                        .record_system("gatehouse", "review.expired", &id, json!({}))
                        .await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not expire reviews"),
        }
    }

    /// Whether `who` may see review `r`: its requester, its approvers, the
    /// break-glass groups, or an administrator (`admin`).
    pub fn may_see(r: &ReviewRecord, who: &Principal, policy: &PolicySpec, admin: bool) -> bool {
        admin
            || r.requester == who.subject
            || who.in_any(&r.approvers)
            || who.in_any(&policy.break_glass)
    }

    /// Casts a vote on review `id`. `approve` false rejects (a reason is
    /// then required). A requester may withdraw (reject) their own request
    /// but never approve it.
    pub async fn vote(
        &self,
        id: &str,
        who: &Principal,
        approve: bool,
        reason: Option<String>,
        policy: &PolicySpec,
    ) -> Result<ReviewRecord, AccessError> {
        let now = now_ms();
        self.expire(now).await;
        let r = self
            .store
            .get_review(id)
            .await?
            .ok_or_else(|| AccessError::NotFound(id.into()))?;
        let own = r.requester == who.subject;
        let approver = who.in_any(&r.approvers);
        let glass = who.in_any(&policy.break_glass);
        let reason = reason
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        if approve {
            if own {
                return Err(AccessError::Refused(format!(
                    "you asked for review {id}, and nobody may approve their own request: ask a member of {}",
                    r.approvers.join(", ")
                )));
            }
            if !approver && !glass {
                return Err(AccessError::Refused(format!(
                    "review {id} must be approved by a member of {}; you are not one",
                    r.approvers.join(", ")
                )));
            }
        } else {
            if reason.is_none() {
                return Err(AccessError::Refused(
                    "a rejection needs a reason (--reason)".into(),
                ));
            }
            if !own && !approver && !glass {
                return Err(AccessError::Refused(format!(
                    "review {id} can be rejected by a member of {} or withdrawn by its requester; you are neither",
                    r.approvers.join(", ")
                )));
            }
        }
        let vote = Vote {
            approver: who.subject.clone(),
            decision: if approve { "approve" } else { "reject" }.into(),
            reason: reason.clone(),
            at: now,
            break_glass: approve && glass && !approver,
        };
        // An approval can be used within the review's own timeout.
        let shelf = (r.expires_at - r.created_at).max(60_000);
        let mut after = self.store.vote_review(id, &vote, now + shelf).await?;
        self.audit
            .record(
                who,
                if approve {
                    "review.approve"
                } else {
                    "review.reject"
                },
                id,
                json!({
                    "reason": reason,
                    "break_glass": vote.break_glass,
                    "state": after.state,
                    "connection": after.connection,
                    "requester": after.requester,
                }),
            )
            .await;
        if after.state == state::APPROVED && after.kind == kind::ACCESS {
            let g = self.create_grant(&after, now).await?;
            after.grant_id = Some(g.id.clone());
            self.audit
                .record(who, "grant.created", &g.id, grant_json(&g))
                .await;
        }
        if after.state != state::PENDING {
            self.notify(&format!("review.{}", after.state), &after);
        }
        self.votes.notify_waiters();
        Ok(after)
    }

    async fn create_grant(&self, r: &ReviewRecord, now: i64) -> Result<GrantRecord, AccessError> {
        let g = GrantRecord {
            id: new_id("gr"),
            review_id: r.id.clone(),
            connection: r.connection.clone(),
            principal: r.requester.clone(),
            level: r.level.clone().unwrap_or_else(|| "read".into()),
            reason: r.reason.clone(),
            created_at: now,
            expires_at: now.saturating_add(r.duration_ms.unwrap_or(0)),
            revoked_at: None,
            revoked_by: None,
        };
        let g = self.store.insert_grant(&g).await?;
        self.store.set_review_grant(&r.id, &g.id).await?;
        // Other replicas reload their grants when the epoch moves.
        self.store.bump_access_epoch().await?;
        self.refresh_grants().await?;
        Ok(g)
    }

    /// Asks for a just-in-time grant; the policy's `[[access]]` entries say
    /// who may ask for what, who approves and for how long at most.
    pub async fn request_access(
        &self,
        who: &Principal,
        connection: &str,
        level: Level,
        duration_ms: u64,
        reason: Option<String>,
        policy: &PolicySpec,
    ) -> Result<ReviewRecord, AccessError> {
        let reason = reason
            .map(|s| s.trim().chars().take(500).collect::<String>())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                AccessError::Refused("an access request needs a reason (--reason)".into())
            })?;
        let entries: Vec<_> = policy
            .access
            .iter()
            .filter(|a| a.covers_connection(connection) && who.in_any(&a.requesters))
            .collect();
        if entries.is_empty() {
            return Err(AccessError::Refused(format!(
                "the policy has no [[access]] entry letting you request access to {connection:?}"
            )));
        }
        let Some(entry) = entries.iter().find(|a| a.levels().contains(&level)) else {
            let levels: Vec<&str> = entries
                .iter()
                .flat_map(|a| a.levels())
                .map(Level::name)
                .collect();
            return Err(AccessError::Refused(format!(
                "you may request {} access to {connection:?}, not {level}",
                levels.join(" or ")
            )));
        };
        let max = entry.max_duration_ms();
        if duration_ms == 0 || duration_ms > max {
            return Err(AccessError::Refused(format!(
                "the duration must be between 1s and {} for {connection:?}",
                gatehouse_core::duration::format_duration(Duration::from_millis(max))
            )));
        }
        let now = now_ms();
        let r = ReviewRecord {
            id: new_id("rv"),
            kind: kind::ACCESS.into(),
            connection: connection.into(),
            requester: who.subject.clone(),
            binding: String::new(),
            statement: None,
            params: None,
            rule: "access".into(),
            approvers: entry.approvers.clone(),
            approvals_needed: i64::from(entry.approvals.unwrap_or(1).max(1)),
            reason: Some(reason),
            level: Some(level.name().into()),
            duration_ms: Some(i64::try_from(duration_ms).unwrap_or(i64::MAX)),
            state: state::PENDING.into(),
            created_at: now,
            expires_at: now
                .saturating_add(i64::try_from(policy.review_timeout_ms(None)).unwrap_or(i64::MAX)),
            decided_at: None,
            executed_at: None,
            session_id: None,
            grant_id: None,
            redacted: None,
            votes: Vec::new(),
        };
        self.store.insert_review(&r).await?;
        self.audit
            .record(who, "access.requested", &r.id, review_json(&r))
            .await;
        self.notify("review.requested", &r);
        Ok(r)
    }

    /// Revokes a grant (its holder, or an administrator).
    pub async fn revoke_grant(
        &self,
        id: &str,
        who: &Principal,
        admin: bool,
    ) -> Result<GrantRecord, AccessError> {
        let g = self
            .store
            .get_grant(id)
            .await?
            .ok_or_else(|| AccessError::NotFound(id.into()))?;
        if !admin && g.principal != who.subject {
            return Err(AccessError::Refused(
                "only the grant's holder or an administrator may revoke it".into(),
            ));
        }
        if !self.store.revoke_grant(id, &who.subject, now_ms()).await? {
            return Err(AccessError::Conflict(format!(
                "grant {id} is not live (expired or already revoked)"
            )));
        }
        self.refresh_grants().await?;
        self.audit
            .record(
                who,
                "grant.revoked",
                id,
                json!({"connection": g.connection, "principal": g.principal}),
            )
            .await;
        let g = self.store.get_grant(id).await?.unwrap_or(g);
        Ok(g)
    }

    /// Reloads the live grants from the store.
    pub async fn refresh_grants(&self) -> Result<(), StoreError> {
        let live = self.store.live_grants(now_ms()).await?;
        let mut map = GrantMap::new();
        for g in live {
            map.entry(g.principal.clone()).or_default().push(g);
        }
        let any = !map.is_empty();
        *lock_write(&self.grants) = map;
        self.any_grants.store(any, Ordering::Release);
        Ok(())
    }

    /// The widest live grant this subject holds on the connection now.
    pub fn grant_for(&self, subject: &str, connection: &str) -> Option<(String, Level)> {
        if !self.any_grants.load(Ordering::Acquire) {
            return None;
        }
        let map = lock_read(&self.grants);
        let held = map.get(subject)?;
        let now = now_ms();
        held.iter()
            .filter(|g| g.connection == connection && g.is_live(now))
            .filter_map(|g| Level::parse(&g.level).map(|l| (g.id.clone(), l)))
            .max_by_key(|(_, l)| *l)
    }

    /// Whether grant `id` is live now, as far as this process knows.
    pub fn grant_live(&self, id: &str) -> bool {
        let now = now_ms();
        lock_read(&self.grants)
            .values()
            .flatten()
            .any(|g| g.id == id && g.is_live(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_differ_for_any_change() {
        let a = binding("shop", "alice", "DELETE FROM t WHERE id = 1", b"");
        assert_eq!(
            a,
            binding("shop", "alice", "DELETE FROM t WHERE id = 1", b"")
        );
        assert_ne!(
            a,
            binding("shop", "alice", "DELETE FROM t WHERE id = 2", b"")
        );
        assert_ne!(a, binding("shop", "bob", "DELETE FROM t WHERE id = 1", b""));
        assert_ne!(
            a,
            binding("shop2", "alice", "DELETE FROM t WHERE id = 1", b"")
        );
        assert_ne!(
            a,
            binding("shop", "alice", "DELETE FROM t WHERE id = 1", b"\0")
        );
        // Fields are length-prefixed: moving text between them changes the hash.
        assert_ne!(binding("ab", "c", "", b""), binding("a", "bc", "", b""));
    }

    #[test]
    fn reasons_come_from_comments() {
        assert_eq!(
            reason_in("-- reason: fix order 1234\nDELETE FROM t").as_deref(),
            Some("fix order 1234")
        );
        assert_eq!(
            reason_in("DELETE FROM t /* Reason: ticket 9 */").as_deref(),
            Some("ticket 9")
        );
        assert_eq!(reason_in("DELETE FROM t -- just a comment"), None);
        assert_eq!(reason_in("DELETE FROM t -- reason:   "), None);
        assert_eq!(reason_in("DELETE FROM t"), None);
    }

    #[test]
    fn params_are_readable() {
        let p = params_text(&[Some((false, b"42")), None, Some((true, &[0xde, 0xad]))]);
        assert_eq!(p.as_deref(), Some("$1=42, $2=NULL, $3=\\xdead"));
        assert_eq!(params_text(&[]), None);
    }
}

/// How a statement for review starts, in every protocol's data path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Waiting for review `0`.
    Pending(String),
    /// Decided at once: refused (no reason given, no review could be made)
    /// or allowed (an approval for this exact statement was waiting).
    Decided(gatehouse_core::policy::Verdict),
}

impl Access {
    /// Checks the statement's reason when the rule requires one, then finds
    /// or creates its review. `message` is the rule's.
    pub async fn start_hold(
        &self,
        req: &HoldRequest<'_>,
        message: &str,
        require_reason: bool,
    ) -> Started {
        use gatehouse_core::policy::Verdict;
        let deny = |m: String| {
            Started::Decided(Verdict::Deny {
                rule: req.rule.to_string(),
                message: m,
            })
        };
        if require_reason && req.reason.is_none() {
            return deny(format!(
                "{message}; rule {} needs a reason: add the comment `-- reason: why` to the statement and send it again",
                req.rule
            ));
        }
        match self.hold(req).await {
            Ok(Held::Approved { review }) => Started::Decided(Verdict::Allow {
                rule: Some(format!("{} (approved in review {review})", req.rule)),
            }),
            Ok(Held::Pending { review, .. }) => Started::Pending(review),
            Err(e) => {
                tracing::warn!(session = ?req.session_id, error = %e, "could not create a review");
                deny(format!(
                    "{message}; Gatehouse could not create the review ({e}), so the statement is refused"
                ))
            }
        }
    }
}

/// The verdict a held statement runs under once review `id` of `rule`
/// ended with `outcome`.
pub fn review_verdict(
    rule: &str,
    id: &str,
    outcome: Outcome,
    timeout_ms: u64,
) -> gatehouse_core::policy::Verdict {
    use gatehouse_core::policy::Verdict;
    let deny = |message: String| Verdict::Deny {
        rule: rule.to_string(),
        message,
    };
    match outcome {
        Outcome::Approved { by } => Verdict::Allow {
            rule: Some(format!(
                "{rule} (review {id} approved by {})",
                by.join(", ")
            )),
        },
        Outcome::Rejected { by, reason } => {
            deny(format!("review {id} was rejected by {by}: {reason}"))
        }
        Outcome::Expired => deny(format!(
            "review {id} was not approved within {}, so the statement did not run",
            gatehouse_core::duration::format_duration(Duration::from_millis(timeout_ms))
        )),
        Outcome::UsedElsewhere => deny(format!(
            "review {id} was approved, but its approval (good for one run) was used by another run of the same statement; send it again to ask for a new review"
        )),
    }
}
