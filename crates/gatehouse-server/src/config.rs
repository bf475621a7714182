//! How the server is started (flags and environment; see `gatehouse serve --help`).

use std::path::PathBuf;

use gatehouse_core::secret::Secret;
use gatehouse_identity::OidcConfig;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the SQLite store, the key file and the first admin token live.
    pub data_dir: PathBuf,
    /// Address of the HTTP API, e.g. `127.0.0.1:7400`.
    pub api_listen: String,
    /// A `postgres://` URL to keep state in PostgreSQL instead of SQLite.
    pub store_url: Option<String>,
    /// Master keys from the environment (`GATEHOUSE_MASTER_KEY`), first encrypts.
    pub master_key: Option<Secret>,
    /// Trusted OIDC issuer, if any.
    pub oidc: Option<OidcConfig>,
    /// Members of these groups may administer Gatehouse.
    pub admin_groups: Vec<String>,
    /// Address for PostgreSQL clients, e.g. `127.0.0.1:7432`; `None` disables it.
    pub pg_listen: Option<String>,
    /// PEM certificate and key shown to PostgreSQL clients; self-signed when absent.
    pub pg_tls_cert: Option<PathBuf>,
    pub pg_tls_key: Option<PathBuf>,
    /// Accept tokens over unencrypted connections from non-loopback clients.
    pub pg_allow_plaintext: bool,
}

impl ServeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            api_listen: "127.0.0.1:7400".into(),
            store_url: None,
            master_key: None,
            oidc: None,
            admin_groups: vec!["admin".into()],
            pg_listen: Some("127.0.0.1:7432".into()),
            pg_tls_cert: None,
            pg_tls_key: None,
            pg_allow_plaintext: false,
        }
    }
}
