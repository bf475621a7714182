//! OIDC bearer JWT validation through discovery and JWKS.
//!
//! Signature, `iss`, `aud`, `exp` and `nbf` (with a small leeway) are
//! checked; only algorithms on the allow-list are accepted, so `none` and
//! HMAC-with-a-public-key confusion are refused. The JWKS is cached and
//! fetched again when a token names a key the cache does not have (key
//! rotation), at most once per `jwks_min_refresh`.

use std::time::{Duration, Instant};

use gatehouse_core::model::{Authn, Principal};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::AuthError;

/// How to trust an OIDC issuer.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer URL, exactly as the tokens' `iss` claim says it.
    pub issuer: String,
    /// The audience tokens must be issued for (`aud`).
    pub audience: String,
    /// The claim holding the caller's groups; dots walk into objects
    /// (`realm_access.roles`).
    pub groups_claim: String,
    /// Accepted signing algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Shortest time between two JWKS fetches.
    pub jwks_min_refresh: Duration,
}

impl OidcConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            groups_claim: "groups".into(),
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::ES256,
                Algorithm::PS256,
                Algorithm::EdDSA,
            ],
            leeway: Duration::from_secs(30),
            jwks_min_refresh: Duration::from_secs(10),
        }
    }
}

/// Parses an algorithm name for the allow-list; HMAC algorithms are refused
/// since a shared secret cannot come from a public JWKS.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = name
        .trim()
        .parse()
        .map_err(|_| format!("unknown JWT algorithm {name:?}"))?;
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(format!(
            "{name} is a shared-secret algorithm and cannot be used with an OIDC issuer's JWKS"
        ));
    }
    Ok(alg)
}

#[derive(Default)]
struct Cache {
    jwks_uri: Option<String>,
    keys: Option<JwkSet>,
    fetched: Option<Instant>,
}

pub struct OidcValidator {
    config: OidcConfig,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for OidcValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcValidator")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl OidcValidator {
    pub fn new(config: OidcConfig) -> Result<Self, String> {
        let url = url::Url::parse(&config.issuer)
            .map_err(|e| format!("OIDC issuer {:?}: {e}", config.issuer))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !loopback {
            return Err(format!("OIDC issuer {} must use https", config.issuer));
        }
        if config.algorithms.is_empty() {
            return Err("the OIDC algorithm allow-list is empty".into());
        }
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            config,
            http,
            cache: Mutex::new(Cache::default()),
        })
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Fetches discovery and the JWKS now (used at start-up to fail early).
    pub async fn warm_up(&self) -> Result<(), String> {
        let mut cache = self.cache.lock().await;
        self.refresh(&mut cache).await
    }

    async fn refresh(&self, cache: &mut Cache) -> Result<(), String> {
        let jwks_uri = match &cache.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let d: Discovery = self.get_json(&url).await?;
                if d.issuer != self.config.issuer {
                    return Err(format!(
                        "the discovery document names issuer {:?}, not the configured {:?}",
                        d.issuer, self.config.issuer
                    ));
                }
                cache.jwks_uri = Some(d.jwks_uri.clone());
                d.jwks_uri
            }
        };
        let keys: JwkSet = self.get_json(&jwks_uri).await?;
        cache.keys = Some(keys);
        cache.fetched = Some(Instant::now());
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("cannot reach the OIDC issuer: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!(
                "the OIDC issuer answered {} for {url}",
                resp.status()
            ));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        if body.len() > 1 << 20 {
            return Err(format!("{url} returned more than 1 MiB"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url} is not valid: {e}"))
    }

    /// Finds the key for `kid`/`alg`, fetching the JWKS when needed.
    /// `force` asks for a fresh JWKS (a signature failed with a cached key).
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        force: bool,
    ) -> Result<Option<Jwk>, AuthError> {
        let mut cache = self.cache.lock().await;
        let stale = cache
            .fetched
            .is_none_or(|t| t.elapsed() >= self.config.jwks_min_refresh);
        let find = |cache: &Cache| {
            cache
                .keys
                .as_ref()
                .and_then(|set| select_key(set, kid, alg))
        };
        if !force && let Some(k) = find(&cache) {
            return Ok(Some(k));
        }
        if cache.keys.is_none() || stale {
            self.refresh(&mut cache)
                .await
                .map_err(AuthError::Unavailable)?;
        }
        Ok(find(&cache))
    }

    /// Validates a JWT and maps it to a principal.
    pub async fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        let header =
            decode_header(token).map_err(|_| AuthError::Invalid("malformed JWT header".into()))?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!(
                "signing algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

        let mut force = false;
        loop {
            let jwk = self
                .key_for(header.kid.as_deref(), header.alg, force)
                .await?
                .ok_or_else(|| {
                    AuthError::Invalid("it is signed by a key the issuer does not publish".into())
                })?;
            let key = DecodingKey::from_jwk(&jwk)
                .map_err(|_| AuthError::Invalid("the issuer's key is unusable".into()))?;
            match decode::<Claims>(token, &key, &validation) {
                Ok(data) => return self.principal(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    match e.kind() {
                        K::InvalidSignature if !force => force = true,
                        K::InvalidSignature => {
                            return Err(AuthError::Invalid("the signature does not verify".into()));
                        }
                        K::ExpiredSignature => return Err(AuthError::Expired),
                        K::ImmatureSignature => {
                            return Err(AuthError::Invalid("it is not valid yet (nbf)".into()));
                        }
                        K::InvalidAudience => {
                            return Err(AuthError::Invalid(
                                "it was issued for another audience".into(),
                            ));
                        }
                        K::InvalidIssuer => {
                            return Err(AuthError::Invalid(
                                "it was issued by another issuer".into(),
                            ));
                        }
                        K::MissingRequiredClaim(c) => {
                            return Err(AuthError::Invalid(format!("it lacks the {c} claim")));
                        }
                        _ => return Err(AuthError::Invalid("it could not be verified".into())),
                    }
                }
            }
        }
    }

    fn principal(&self, claims: Claims) -> Result<Principal, AuthError> {
        let root = serde_json::Value::Object(claims.rest);
        let value = self
            .config
            .groups_claim
            .split('.')
            .try_fold(&root, |v, part| v.get(part));
        let groups = match value {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => s
                .split([' ', ','])
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Principal {
            subject: claims.sub,
            groups,
            authn: Authn::Oidc {
                issuer: self.config.issuer.clone(),
            },
            expires_at: claims.exp.checked_mul(1000),
        })
    }
}

fn select_key(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    let fits = |k: &Jwk| {
        matches!(
            (&k.algorithm, alg),
            (
                P::RSA(_),
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
            ) | (
                P::RSA(_),
                Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
            ) | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
                | (P::OctetKeyPair(_), Algorithm::EdDSA)
        )
    };
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid) && fits(k))
            .cloned(),
        None => {
            let mut candidates = set.keys.iter().filter(|k| fits(k));
            let first = candidates.next()?;
            // Without a kid, only an unambiguous key is used.
            if candidates.next().is_some() {
                None
            } else {
                Some(first.clone())
            }
        }
    }
}
