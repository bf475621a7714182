//! The upstream side of an HTTP connection: an HTTP client that presents
//! the connection's credential (a header, or a TLS client certificate),
//! built once per version of the connection and kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use gatehouse_core::model::{ConnectionSpec, HttpAuth};
use gatehouse_core::secret::Secret;
use reqwest::header::{HeaderName, HeaderValue};

/// A client for one connection, with its credential.
pub struct Upstream {
    pub client: reqwest::Client,
    base: url::Url,
    /// The credential header, marked sensitive.
    credential: Option<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base.as_str())
            .field(
                "credential",
                &self.credential.as_ref().map(|(n, _)| n.as_str()),
            )
            .finish_non_exhaustive()
    }
}

fn sensitive(v: &str) -> Result<HeaderValue, String> {
    let mut h = HeaderValue::from_str(v)
        .map_err(|_| "the stored credential is not valid in an HTTP header".to_string())?;
    h.set_sensitive(true);
    Ok(h)
}

impl Upstream {
    /// Builds the client for `spec` (an http or aws connection) with its
    /// secret. Errors never contain the secret.
    pub fn new(spec: &ConnectionSpec, secret: Option<&Secret>) -> Result<Upstream, String> {
        let base = url::Url::parse(&spec.url).map_err(|e| format!("the url is not valid: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy();
        if let Some(pem) = &spec.settings.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("ca_pem is not a PEM certificate bundle: {e}"))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let need = |what: &str| {
            secret.ok_or_else(|| format!("the connection has no stored secret ({what})"))
        };
        let credential = match &spec.settings.http_auth {
            None => None,
            Some(HttpAuth::Bearer) => Some((
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", need("bearer token")?.expose()))?,
            )),
            Some(HttpAuth::Basic { username }) => {
                let raw = zeroize::Zeroizing::new(format!(
                    "{username}:{}",
                    need("basic-auth password")?.expose()
                ));
                Some((
                    reqwest::header::AUTHORIZATION,
                    sensitive(&format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
                    ))?,
                ))
            }
            Some(HttpAuth::Header { name }) => Some((
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a header name"))?,
                sensitive(need("header value")?.expose())?,
            )),
            Some(HttpAuth::ClientCert) => {
                let pem = need("client certificate and key")?;
                let id = reqwest::Identity::from_pem(pem.expose().as_bytes()).map_err(|_| {
                    "the stored client certificate is not a PEM certificate chain followed by its private key".to_string()
                })?;
                builder = builder.identity(id);
                None
            }
        };
        let client = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Upstream {
            client,
            base,
            credential,
        })
    }

    /// The upstream URL for a normalised, encoded path and a query: the
    /// connection's base path, then the request's.
    pub fn url(&self, encoded_path: &str, query: Option<&str>) -> String {
        let mut u = self.base.as_str().trim_end_matches('/').to_string();
        u.push_str(encoded_path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            u.push('?');
            u.push_str(q);
        }
        u
    }

    /// `host[:port]` of the upstream, as its Host header will be.
    pub fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    /// The header carrying the credential, if it is one.
    pub fn credential_header(&self) -> Option<(&HeaderName, &HeaderValue)> {
        self.credential.as_ref().map(|(n, v)| (n, v))
    }
}

/// Clients by connection, rebuilt when the connection changes.
#[derive(Debug, Default)]
pub struct UpstreamCache {
    map: Mutex<HashMap<String, (i64, Arc<Upstream>)>>,
}

impl UpstreamCache {
    /// The client for `spec` as last updated at `updated_at`.
    pub fn get(
        &self,
        spec: &ConnectionSpec,
        updated_at: i64,
        secret: Option<&Secret>,
    ) -> Result<Arc<Upstream>, String> {
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some((at, u)) = map.get(&spec.name)
            && *at == updated_at
        {
            return Ok(u.clone());
        }
        let u = Arc::new(Upstream::new(spec, secret)?);
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(spec.name.clone(), (updated_at, u.clone()));
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_core::model::{ConnectionKind, ConnectionSettings};

    fn spec(url: &str, auth: Option<HttpAuth>) -> ConnectionSpec {
        // reqwest's TLS needs a process-wide crypto provider, as the server installs.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ConnectionSpec {
            name: "crm".into(),
            kind: ConnectionKind::Http,
            url: url.into(),
            groups: vec![],
            settings: ConnectionSettings {
                http_auth: auth,
                ..Default::default()
            },
        }
    }

    #[test]
    fn urls_keep_the_base_path() {
        let u = Upstream::new(&spec("http://127.0.0.1:9000/api/", None), None).unwrap();
        assert_eq!(
            u.url("/customers/1", Some("a=b")),
            "http://127.0.0.1:9000/api/customers/1?a=b"
        );
        assert_eq!(u.host(), "127.0.0.1:9000");
        let u = Upstream::new(&spec("http://crm.internal", None), None).unwrap();
        assert_eq!(u.url("/", None), "http://crm.internal/");
    }

    #[test]
    fn credentials_are_sensitive_and_hidden() {
        let secret = Secret::new("s3cr3t-token");
        let u = Upstream::new(&spec("http://h", Some(HttpAuth::Bearer)), Some(&secret)).unwrap();
        let (name, value) = u.credential_header().unwrap();
        assert_eq!(name, reqwest::header::AUTHORIZATION);
        assert!(value.is_sensitive());
        assert!(!format!("{u:?}").contains("s3cr3t"));
        let u = Upstream::new(
            &spec(
                "http://h",
                Some(HttpAuth::Basic {
                    username: "svc".into(),
                }),
            ),
            Some(&secret),
        )
        .unwrap();
        assert_eq!(
            u.credential_header().unwrap().1.to_str().unwrap(),
            "Basic c3ZjOnMzY3IzdC10b2tlbg=="
        );
        let err = Upstream::new(&spec("http://h", Some(HttpAuth::Bearer)), None).unwrap_err();
        assert!(err.contains("no stored secret"), "{err}");
        let err = Upstream::new(&spec("http://h", Some(HttpAuth::ClientCert)), Some(&secret))
            .unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
