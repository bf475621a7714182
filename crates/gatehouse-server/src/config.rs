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
    /// Address for MySQL clients, e.g. `127.0.0.1:7306`; `None` disables it.
    /// It shows the same certificate as the PostgreSQL listener.
    pub mysql_listen: Option<String>,
    /// Accept tokens over unencrypted MySQL connections from non-loopback clients.
    pub mysql_allow_plaintext: bool,
    /// Address for AWS SDK clients, e.g. `127.0.0.1:7401`; `None` disables it.
    pub aws_listen: Option<String>,
    /// Threads that run PostgreSQL and MySQL sessions; `None`: one per CPU,
    /// `Some(0)`: the main runtime.
    pub session_threads: Option<usize>,
    /// The API's address as people reach it, for links in notifications;
    /// default `http://<api_listen>`.
    pub public_url: Option<String>,
    /// Slack-compatible incoming webhooks told about reviews (secret URLs).
    pub notify_slack: Vec<Secret>,
    /// Generic JSON webhooks told about reviews, signed with `notify_secret`.
    pub notify_webhooks: Vec<Secret>,
    pub notify_secret: Option<Secret>,
    /// Where the audit log is streamed (syslog over TCP, HTTP).
    pub audit_sinks: Vec<crate::siem::Sink>,
    /// Run statements unrecorded when the recorder is behind (default:
    /// refuse them).
    pub record_fail_open: bool,
    /// Where statement records with their results go instead of the store:
    /// `s3://bucket/prefix` or a directory.
    pub recordings: Option<String>,
    /// Recordings of sessions that ended longer ago than this are deleted.
    pub recordings_retention: Option<std::time::Duration>,
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
            mysql_listen: None,
            mysql_allow_plaintext: false,
            aws_listen: None,
            session_threads: None,
            public_url: None,
            notify_slack: Vec::new(),
            notify_webhooks: Vec::new(),
            notify_secret: None,
            audit_sinks: Vec::new(),
            record_fail_open: false,
            recordings: None,
            recordings_retention: None,
        }
    }

    /// The review notifier, if any webhook is configured.
    pub fn notifier(&self) -> Result<Option<gatehouse_access::Notifier>, String> {
        use gatehouse_access::{Notifier, Webhook, WebhookFormat};
        let hooks: Vec<Webhook> = self
            .notify_slack
            .iter()
            .map(|u| Webhook {
                url: u.clone(),
                format: WebhookFormat::Slack,
            })
            .chain(self.notify_webhooks.iter().map(|u| Webhook {
                url: u.clone(),
                format: WebhookFormat::Json,
            }))
            .collect();
        if hooks.is_empty() {
            return Ok(None);
        }
        let public = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.api_listen));
        Notifier::new(hooks, self.notify_secret.clone(), public).map(Some)
    }
}
