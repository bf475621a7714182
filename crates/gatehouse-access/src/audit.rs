//! The one place audit events are written from. The tamper-evident hash
//! chain (see ARCHITECTURE.md) will be computed here, so every caller gets
//! it without change.

use gatehouse_core::model::{Authn, Principal};
use gatehouse_core::now_ms;
use gatehouse_store::{NewAuditEvent, Store, StoreError};

#[derive(Debug, Clone)]
pub struct Auditor {
    store: Store,
    /// When each credential was last written down as used (Unix ms).
    used: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
    /// Refused logins per source: when last written down, and how many
    /// were left out since.
    refused: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (i64, u64)>>>,
}

/// Refused logins from one source are written down at most this often
/// (the ones in between are counted in the next event).
const REFUSED_EVERY_MS: i64 = 1_000;

/// A credential's use is written down at most this often.
const USE_EVERY_MS: i64 = 60_000;

impl Auditor {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            used: Default::default(),
            refused: Default::default(),
        }
    }

    /// Writes down a refused login from `source` (a client address, or an
    /// API path), at most once a second per source: a flood of bad
    /// credentials becomes one event a second, with `suppressed` counting
    /// the refusals left out since the last one.
    pub async fn login_refused(&self, source: &str, mut detail: serde_json::Value) {
        let now = now_ms();
        let suppressed = {
            let mut refused = match self.refused.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if refused.len() > 100_000 {
                refused.clear();
            }
            let entry = refused.entry(source.to_string()).or_insert((i64::MIN, 0));
            if now.saturating_sub(entry.0) < REFUSED_EVERY_MS {
                entry.1 += 1;
                return;
            }
            let left_out = entry.1;
            *entry = (now, 0);
            left_out
        };
        if let serde_json::Value::Object(m) = &mut detail {
            m.insert("suppressed".into(), serde_json::json!(suppressed));
        }
        self.record_system("anonymous", "login.refused", source, detail)
            .await;
    }

    /// Writes down a statement Gatehouse refused (`statement.deny`): `detail`
    /// (where it was refused) with the rule and the statement's SHA-256. Its
    /// text, which may hold data, is in the session's recording, not here.
    pub async fn statement_denied(
        &self,
        who: &Principal,
        target: &str,
        rule: &str,
        sql: &str,
        mut detail: serde_json::Value,
    ) {
        use sha2::Digest;
        if let serde_json::Value::Object(m) = &mut detail {
            m.insert("rule".into(), serde_json::json!(rule));
            m.insert(
                "statement_sha256".into(),
                serde_json::json!(hex::encode(sha2::Sha256::digest(sql.as_bytes()))),
            );
        }
        self.record(who, "statement.deny", target, detail).await;
    }

    /// [`Auditor::statement_denied`] on a task of its own, so that the data
    /// path that refused the statement goes on at once.
    pub fn statement_denied_later(
        &self,
        who: &Principal,
        target: &str,
        rule: &str,
        sql: &str,
        detail: serde_json::Value,
    ) {
        let audit = self.clone();
        let (who, target, rule, sql) = (
            who.clone(),
            target.to_string(),
            rule.to_string(),
            sql.to_string(),
        );
        tokio::spawn(async move {
            audit
                .statement_denied(&who, &target, &rule, &sql, detail)
                .await;
        });
    }

    /// Writes down that `who` used their credential (`via`: http, mcp, …),
    /// at most once a minute per credential.
    pub async fn credential_used(&self, who: &Principal, via: &str) {
        let key = match &who.authn {
            Authn::Token { name } => format!("token:{name}"),
            Authn::Oidc { issuer } => format!("oidc:{issuer}:{}", who.subject),
        };
        let now = now_ms();
        {
            let mut used = match self.used.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if used.get(&key).is_some_and(|t| now - t < USE_EVERY_MS) {
                return;
            }
            if used.len() > 100_000 {
                used.clear();
            }
            used.insert(key, now);
        }
        self.record(
            who,
            "credential.use",
            &who.subject,
            serde_json::json!({"protocol": via}),
        )
        .await;
    }

    /// Appends an event; `detail` must not contain secrets.
    pub async fn try_record(
        &self,
        actor: &Principal,
        action: &str,
        target: &str,
        mut detail: serde_json::Value,
    ) -> Result<i64, StoreError> {
        if let serde_json::Value::Object(m) = &mut detail {
            let via = match &actor.authn {
                Authn::Token { name } => format!("token:{name}"),
                Authn::Oidc { issuer } => format!("oidc:{issuer}"),
            };
            m.insert("via".into(), serde_json::Value::String(via));
        }
        let ev = NewAuditEvent {
            actor: actor.subject.clone(),
            action: action.into(),
            target: target.into(),
            detail,
        };
        self.store.append_audit(&ev, now_ms()).await
    }

    /// Like [`Self::try_record`], logging a failure instead of returning it.
    pub async fn record(
        &self,
        actor: &Principal,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        if let Err(e) = self.try_record(actor, action, target, detail).await {
            tracing::error!(action, target, error = %e, "could not write an audit event");
        }
    }
}

impl Auditor {
    /// Appends an event made by Gatehouse itself or by a subject without a
    /// live principal (`actor` such as `gatehouse`), logging a failure.
    pub async fn record_system(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let ev = NewAuditEvent {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail,
        };
        if let Err(e) = self.store.append_audit(&ev, now_ms()).await {
            tracing::error!(action, target, error = %e, "could not write an audit event");
        }
    }
}

/// Signs checkpoints of the audit chain's head with an Ed25519 key derived
/// from the master key (so nobody with only the store can forge one).
pub fn signing_key(ring: &gatehouse_core::keyring::Keyring) -> ed25519_dalek::SigningKey {
    let seed = ring.derive("audit checkpoint ed25519");
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// Hex public key of [`signing_key`]: what auditors keep and check against.
pub fn public_key_hex(ring: &gatehouse_core::keyring::Keyring) -> String {
    hex::encode(signing_key(ring).verifying_key().to_bytes())
}

impl Auditor {
    /// Signs the chain's current head, unless a checkpoint already covers
    /// it. Returns the checkpoint written, if any.
    pub async fn checkpoint(
        &self,
        ring: &gatehouse_core::keyring::Keyring,
    ) -> Result<Option<gatehouse_store::Checkpoint>, StoreError> {
        use ed25519_dalek::Signer;
        let Some((event_id, head_hash)) = self.store.audit_head().await? else {
            return Ok(None);
        };
        if self
            .store
            .checkpoints()
            .await?
            .last()
            .is_some_and(|c| c.event_id >= event_id)
        {
            return Ok(None);
        }
        let ts = now_ms();
        let key = signing_key(ring);
        let sig = key.sign(&gatehouse_store::Checkpoint::message(
            event_id, &head_hash, ts,
        ));
        let c = gatehouse_store::Checkpoint {
            event_id,
            head_hash,
            ts,
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(sig.to_bytes()),
        };
        self.store.insert_checkpoint(&c).await?;
        Ok(Some(c))
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verification {
    pub ok: bool,
    /// Events read.
    pub events: i64,
    /// Checkpoints whose signature and head matched.
    pub checkpoints: usize,
    /// The first problem, naming the entry.
    pub problem: Option<String>,
    /// The entry the problem is about.
    pub entry: Option<i64>,
    /// Events after the newest valid checkpoint (protected only by the chain).
    pub unsigned_tail: i64,
}

/// Walks the whole chain and every checkpoint. `trusted` are the hex
/// public keys whose checkpoints count (the gateway's current key, plus
/// any the auditor kept from before a master-key rotation).
pub async fn verify(store: &Store, trusted: &[String]) -> Result<Verification, StoreError> {
    use std::collections::HashMap;
    // Read everything once (id, stored hash, prev, content check).
    struct Row {
        id: i64,
        prev: String,
        hash: String,
        content_ok: bool,
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut after = 0i64;
    loop {
        let batch = store.audit_chain(after, 5000).await?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            let prev = e.prev_hash.clone().unwrap_or_default();
            let hash = e.hash.clone().unwrap_or_default();
            let computed =
                gatehouse_store::chain_hash(&prev, e.ts, &e.actor, &e.action, &e.target, &e.detail);
            rows.push(Row {
                id: e.id,
                content_ok: !hash.is_empty() && computed == hash,
                prev,
                hash,
            });
        }
        after = batch.last().map_or(after, |e| e.id);
    }
    let at: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.hash.as_str(), i))
        .collect();
    let mut report = Verification {
        ok: true,
        events: i64::try_from(rows.len()).unwrap_or(i64::MAX),
        checkpoints: 0,
        problem: None,
        entry: None,
        unsigned_tail: 0,
    };
    let fail = |report: &mut Verification, entry: i64, msg: String| {
        report.ok = false;
        report.entry = Some(entry);
        report.problem = Some(msg);
    };
    for i in 0..rows.len() {
        let r = &rows[i];
        let expected = if i == 0 {
            gatehouse_store::GENESIS
        } else {
            rows[i - 1].hash.as_str()
        };
        let next_skips_me = rows
            .get(i + 1)
            .is_some_and(|n| i > 0 && n.prev == rows[i - 1].hash)
            || (i == 0
                && rows
                    .get(1)
                    .is_some_and(|n| n.prev == gatehouse_store::GENESIS));
        if !r.content_ok {
            if next_skips_me {
                fail(
                    &mut report,
                    r.id,
                    format!(
                        "entry {} was inserted: the entry after it follows the one before it",
                        r.id
                    ),
                );
            } else {
                fail(
                    &mut report,
                    r.id,
                    format!(
                        "entry {} was modified: its content does not match its hash",
                        r.id
                    ),
                );
            }
            break;
        }
        if r.prev != expected {
            let msg = match at.get(r.prev.as_str()) {
                Some(&j) if j > i => format!(
                    "entry {} is out of order: it follows entry {}, which comes after it",
                    r.id, rows[j].id
                ),
                Some(&j) if j + 1 < i => {
                    let first = rows[j + 1].id;
                    fail(
                        &mut report,
                        first,
                        format!(
                            "entry {first} was inserted: entry {} follows entry {} directly",
                            r.id, rows[j].id
                        ),
                    );
                    break;
                }
                _ if i > 0 => format!(
                    "an entry between {} and {} was deleted: entry {} follows a hash that is not in the log",
                    rows[i - 1].id,
                    r.id,
                    r.id
                ),
                _ => format!(
                    "entries before {} were deleted: the first entry does not start the chain",
                    r.id
                ),
            };
            fail(&mut report, r.id, msg);
            break;
        }
    }
    // Checkpoints: each must be signed by a trusted key over a head that is
    // still in the chain, at the same entry.
    let by_id: HashMap<i64, &str> = rows.iter().map(|r| (r.id, r.hash.as_str())).collect();
    let mut newest_signed = 0i64;
    for c in store.checkpoints().await? {
        if !report.ok {
            break;
        }
        if !trusted
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&c.public_key))
        {
            fail(
                &mut report,
                c.event_id,
                format!(
                    "the checkpoint at entry {} is signed by key {}, which is not trusted (if the master key was rotated, pass the earlier public key with --public-key)",
                    c.event_id, c.public_key
                ),
            );
            break;
        }
        let signed = checkpoint_signature_ok(&c);
        if !signed {
            fail(
                &mut report,
                c.event_id,
                format!("the checkpoint at entry {} has a bad signature", c.event_id),
            );
            break;
        }
        match by_id.get(&c.event_id) {
            None => {
                fail(
                    &mut report,
                    c.event_id,
                    format!(
                        "entry {} is missing: a signed checkpoint covers it, so the log was truncated or the entry deleted",
                        c.event_id
                    ),
                );
                break;
            }
            Some(h) if *h != c.head_hash => {
                fail(
                    &mut report,
                    c.event_id,
                    format!(
                        "the log up to entry {} was rewritten: it no longer matches the signed checkpoint",
                        c.event_id
                    ),
                );
                break;
            }
            Some(_) => {
                report.checkpoints += 1;
                newest_signed = newest_signed.max(c.event_id);
            }
        }
    }
    report.unsigned_tail =
        i64::try_from(rows.iter().filter(|r| r.id > newest_signed).count()).unwrap_or(i64::MAX);
    Ok(report)
}

fn checkpoint_signature_ok(c: &gatehouse_store::Checkpoint) -> bool {
    use ed25519_dalek::Verifier;
    let key: Option<[u8; 32]> = hex::decode(&c.public_key)
        .ok()
        .and_then(|b| b.try_into().ok());
    let sig: Option<[u8; 64]> = hex::decode(&c.signature)
        .ok()
        .and_then(|b| b.try_into().ok());
    match (key, sig) {
        (Some(k), Some(s)) => ed25519_dalek::VerifyingKey::from_bytes(&k).is_ok_and(|vk| {
            vk.verify(
                &gatehouse_store::Checkpoint::message(c.event_id, &c.head_hash, c.ts),
                &ed25519_dalek::Signature::from_bytes(&s),
            )
            .is_ok()
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn a_flood_of_refused_logins_is_a_trickle_of_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("s.db")).await.unwrap();
        let audit = Auditor::new(store.clone());
        for _ in 0..200 {
            audit
                .login_refused("203.0.113.9", serde_json::json!({"protocol": "postgres"}))
                .await;
        }
        audit
            .login_refused("198.51.100.1", serde_json::json!({"protocol": "http"}))
            .await;
        let events = store.list_audit(1000).await.unwrap();
        let from = |ip: &str| events.iter().filter(|e| e.target == ip).count();
        // One a second per source at most: 200 refusals in far less than
        // the test's run time give one or two events, not 200.
        assert!((1..=2).contains(&from("203.0.113.9")), "{events:?}");
        assert_eq!(from("198.51.100.1"), 1, "other sources are not held back");
    }
}
