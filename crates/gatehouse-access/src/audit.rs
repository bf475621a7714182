//! The one place audit events are written from. The tamper-evident hash
//! chain (see ARCHITECTURE.md) will be computed here, so every caller gets
//! it without change.

use gatehouse_core::model::{Authn, Principal};
use gatehouse_core::now_ms;
use gatehouse_store::{NewAuditEvent, Store, StoreError};

#[derive(Debug, Clone)]
pub struct Auditor {
    store: Store,
}

impl Auditor {
    pub fn new(store: Store) -> Self {
        Self { store }
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
