//! What every protocol does before it opens an upstream session: find the
//! connection, check that the caller may use it (its groups, or a live
//! just-in-time grant), and open the stored credential. Each protocol shows
//! a [`Refusal`] in its own error format.

use gatehouse_core::credential::{self, Credential};
use gatehouse_core::keyring::Keyring;
use gatehouse_core::model::{ConnectionKind, Principal};
use gatehouse_store::ConnectionRecord;

use crate::Access;

/// A connection the caller may use, with its credential opened.
#[derive(Debug)]
pub struct Authorized {
    pub record: ConnectionRecord,
    pub credential: Credential,
    /// The grant the caller uses it through, when its groups do not open it.
    pub via_grant: Option<String>,
}

/// Why the caller may not use the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The store did not answer.
    StoreDown,
    /// No connection of this kind by that name (one of another kind, or one
    /// the caller may not see, is reported the same way).
    NotFound,
    /// It exists, but neither the caller's groups nor a grant open it.
    Denied { groups: Vec<String> },
    /// The stored credential does not open under the master key.
    Credential,
}

impl Access {
    /// Authorizes `principal` on connection `name` of `kind` and opens its
    /// credential with `keys`.
    pub async fn authorize_connection(
        &self,
        keys: &Keyring,
        principal: &Principal,
        name: &str,
        kind: ConnectionKind,
    ) -> Result<Authorized, Refusal> {
        let record = self
            .store
            .get_connection(name)
            .await
            .map_err(|_| Refusal::StoreDown)?
            .filter(|r| r.spec.kind == kind)
            .ok_or(Refusal::NotFound)?;
        let via_grant = if record.spec.allows(principal) {
            None
        } else {
            let grant = self
                .grant_for(&principal.subject, &record.spec.name)
                .map(|(id, _)| id);
            if grant.is_none() {
                return Err(Refusal::Denied {
                    groups: record.spec.groups.clone(),
                });
            }
            grant
        };
        let credential = open_credential(keys, &record)?;
        Ok(Authorized {
            record,
            credential,
            via_grant,
        })
    }
}

/// The connection's stored credential, opened with `keys` (none stored:
/// an empty one). Whether the caller may use the connection is not asked.
pub fn open_credential(keys: &Keyring, record: &ConnectionRecord) -> Result<Credential, Refusal> {
    match &record.secret {
        Some(sealed) => credential::open(keys, &record.spec.name, sealed).map_err(|e| {
            tracing::error!(connection = %record.spec.name, error = %e, "cannot open a stored credential");
            Refusal::Credential
        }),
        None => Ok(Credential::default()),
    }
}
