//! State shared by every request handler.

use std::sync::Arc;

use gatehouse_core::keyring::{KeySource, Keyring, SharedKeyring};
use gatehouse_identity::Authenticator;
use gatehouse_pg::LiveSessions;
use gatehouse_store::Store;
use gatehouse_store::recorder::Recorder;

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::policy::PolicyHandle;
use gatehouse_access::audit::Auditor;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub auth: Authenticator,
    pub audit: Auditor,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// The policy in force.
    pub policy: PolicyHandle,
    /// Live protocol sessions on this process (cancel keys, kill switches).
    pub live: LiveSessions,
    pub config: Arc<ServeConfig>,
    pub key_source: KeySource,
    pub keys: SharedKeyring,
    /// Serialises key rotations.
    pub rotation: Arc<tokio::sync::Mutex<()>>,
    /// Reviews and just-in-time grants.
    pub access: gatehouse_access::Access,
    /// The PostgreSQL proxy the query API and MCP open sessions through
    /// (the same policy, masking, reviews and recording as `psql`'s).
    pub pg: Arc<gatehouse_pg::PgProxy>,
    /// The MySQL proxy, likewise (its listener, when enabled, serves
    /// through the same one, with the TLS certificate added).
    pub mysql: Arc<gatehouse_mysql::MysqlProxy>,
    /// HTTP clients of HTTP and AWS connections, with their credentials.
    pub upstreams: Arc<gatehouse_http::UpstreamCache>,
    /// Temporary credentials of AWS connections that assume a role.
    pub roles: Arc<gatehouse_http::sts::RoleCache>,
}

impl AppState {
    pub fn new(
        store: Store,
        ring: Keyring,
        key_source: KeySource,
        auth: Authenticator,
        recorder: Recorder,
        policy: PolicyHandle,
        config: ServeConfig,
    ) -> Result<Self, String> {
        let audit = Auditor::new(store.clone());
        let notifier = config.notifier()?;
        let access = gatehouse_access::Access::new(store.clone(), audit.clone(), notifier);
        let keys = SharedKeyring::new(ring);
        let live = LiveSessions::default();
        let pg = Arc::new(gatehouse_pg::PgProxy {
            store: store.clone(),
            auth: auth.clone(),
            keys: keys.clone(),
            recorder: recorder.clone(),
            policy: Arc::new(policy.clone()),
            catalog: Default::default(),
            tls: None,
            allow_plaintext_remote: false,
            max_message: gatehouse_pg::DEFAULT_MAX_MESSAGE,
            sessions: live.clone(),
            access: access.clone(),
            record_fail_open: config.record_fail_open,
            remote_cancels: Default::default(),
        });
        let mysql = Arc::new(gatehouse_mysql::MysqlProxy {
            store: store.clone(),
            auth: auth.clone(),
            keys: keys.clone(),
            recorder: recorder.clone(),
            policy: pg.policy.clone(),
            tls: None,
            allow_plaintext_remote: false,
            sessions: live.clone(),
            access: access.clone(),
            record_fail_open: config.record_fail_open,
            remote_kills: Default::default(),
            views: Default::default(),
            functions: Default::default(),
        });
        Ok(Self {
            access,
            pg,
            mysql,
            upstreams: Arc::default(),
            roles: Arc::default(),
            audit,
            store,
            auth,
            metrics: Arc::new(Metrics::default()),
            recorder,
            policy,
            live,
            config: Arc::new(config),
            key_source,
            keys,
            rotation: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The keyring in force now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keys.get()
    }

    pub(crate) fn set_keyring(&self, ring: Keyring) {
        self.keys.set(ring);
    }
}
