//! Who is calling: a Gatehouse API token (service account) or a JWT from a
//! configured OIDC issuer. [`Authenticator::authenticate`] turns the bearer
//! credential a client presented into a [`Principal`] or a refusal.

pub mod oidc;

use std::sync::Arc;

use gatehouse_core::model::{Authn, Principal};
use gatehouse_core::now_ms;
use gatehouse_core::token::{looks_like_api_token, token_hash};
use gatehouse_store::Store;

pub use oidc::{OidcConfig, OidcValidator};

/// Makes ring the process's TLS crypto provider (idempotent). Every HTTPS
/// client in Gatehouse is built after this has run.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why a credential was refused. The messages are safe to show the caller:
/// they never contain the credential.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("no credential was presented: send a Gatehouse token or an OIDC token")]
    Missing,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token has expired: ask for a new one")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the credential cannot be checked right now ({0}); try again later")]
    Unavailable(String),
}

/// Checks credentials against the token store and the OIDC issuer.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    oidc: Option<Arc<OidcValidator>>,
    /// When this process last wrote each token's `last_used_at`: the store
    /// keeps it to the minute, so a token is written at most once a minute
    /// (a write per request would queue behind the recorder's writes).
    touched: Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

/// How often a token's last use is written, at most.
const TOUCH_EVERY_MS: i64 = 60_000;

impl Authenticator {
    pub fn new(store: Store, oidc: Option<OidcValidator>) -> Self {
        Self {
            store,
            oidc: oidc.map(Arc::new),
            touched: Arc::default(),
        }
    }

    pub fn oidc(&self) -> Option<&OidcValidator> {
        self.oidc.as_deref()
    }

    /// Authenticates a bearer credential (API token or JWT).
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, AuthError> {
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(AuthError::Missing);
        }
        if looks_like_api_token(credential) {
            return self.api_token(credential).await;
        }
        if credential.split('.').count() == 3 {
            return match &self.oidc {
                Some(v) => v.validate(credential).await,
                None => Err(AuthError::Invalid(
                    "it looks like a JWT, but no OIDC issuer is configured on this gateway".into(),
                )),
            };
        }
        Err(AuthError::Invalid(
            "it is neither a Gatehouse token nor a JWT".into(),
        ))
    }

    async fn api_token(&self, token: &str) -> Result<Principal, AuthError> {
        let rec = self
            .store
            .find_token_by_hash(&token_hash(token))
            .await
            .map_err(|_| AuthError::Unavailable("the state store is not answering".into()))?
            .ok_or_else(|| AuthError::Invalid("unknown token".into()))?;
        let now = now_ms();
        if rec.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if !rec.is_live(now) {
            return Err(AuthError::Expired);
        }
        let due = {
            let mut touched = match self.touched.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if touched
                .get(&rec.name)
                .is_some_and(|t| now - t < TOUCH_EVERY_MS)
            {
                false
            } else {
                if touched.len() > 100_000 {
                    touched.clear();
                }
                touched.insert(rec.name.clone(), now);
                true
            }
        };
        if due && let Err(e) = self.store.touch_token(&rec.name, now).await {
            tracing::warn!(token = %rec.name, error = %e, "could not record token use");
        }
        Ok(Principal {
            subject: rec.name.clone(),
            groups: rec.groups,
            authn: Authn::Token { name: rec.name },
            expires_at: rec.expires_at,
        })
    }
}
