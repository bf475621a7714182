//! The Gatehouse server: start-up, shared state and the HTTP API.
//!
//! [`start`] opens the store, loads the master keyring, bootstraps the first
//! admin token and binds the listeners; [`api::router`] is the HTTP API.
//! Everything is passed explicitly through [`AppState`] so tests can run
//! several servers in one process.

pub mod api;
pub use gatehouse_access::audit;
pub mod config;
pub mod guard;
pub mod keys;
pub mod mcp;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod siem;
pub mod state;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use gatehouse_core::keyring;
use gatehouse_core::model::Authn;
use gatehouse_core::now_ms;
use gatehouse_core::token::{generate_token, token_hash};
use gatehouse_identity::{Authenticator, OidcValidator};
use gatehouse_pg::PgProxy;
use gatehouse_store::recorder::Recorder;
use gatehouse_store::{Store, TokenRecord};
use policy::PolicyHandle;

pub use config::ServeConfig;
pub use state::AppState;

/// Why the server could not start. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] gatehouse_store::StoreError),
    #[error(transparent)]
    Keyring(#[from] keyring::KeyringError),
    #[error(
        "the master key does not open this store's secrets (store key check failed with key ids {0}); start with the key the store was created with, e.g. GATEHOUSE_MASTER_KEY=NEW,OLD"
    )]
    WrongMasterKey(String),
    #[error("OIDC configuration: {0}")]
    Oidc(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Policy(String),
    #[error("review notifications: {0}")]
    Notify(String),
    #[error("{0}")]
    Recordings(String),
    #[error("cannot start the session threads: {0}")]
    Threads(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// A started server: where it listens, and the task serving it.
#[derive(Debug)]
pub struct Running {
    pub api_addr: SocketAddr,
    /// Where PostgreSQL clients connect, when enabled.
    pub pg_addr: Option<SocketAddr>,
    /// SHA-256 of the certificate shown to PostgreSQL clients.
    pub pg_tls_fingerprint: Option<String>,
    /// Where MySQL clients connect, when enabled.
    pub mysql_addr: Option<SocketAddr>,
    /// Where AWS SDK clients connect, when enabled.
    pub aws_addr: Option<SocketAddr>,
    pub state: AppState,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// How often the audit chain's head is signed (when it moved).
pub const AUDIT_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes recordings of sessions that ended longer than `keep` ago: at
/// start, then every quarter of `keep` (between a second and an hour).
async fn prune_recordings(state: AppState, keep: std::time::Duration) {
    let every = (keep / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(3600),
    );
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = now_ms().saturating_sub(keep_ms);
        // A session with no end may still run on another replica sharing
        // a PostgreSQL store: those wait 30 more days.
        let unended = match state.store.dialect() {
            gatehouse_store::Dialect::Sqlite => before,
            gatehouse_store::Dialect::Postgres => before.saturating_sub(30 * 86_400_000),
        };
        let live = state.live.list().into_iter().map(|s| s.id).collect();
        match state.store.prune_sessions(before, unended, &live).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(sessions = n, "deleted expired session recordings");
                state
                    .audit
                    .record_system(
                        "gatehouse",
                        "recordings.expired",
                        "sessions",
                        serde_json::json!({"sessions": n, "ended_before": before}),
                    )
                    .await;
            }
            Err(e) => tracing::warn!(error = %e, "could not delete expired session recordings"),
        }
    }
}

/// Prepares state and binds the listeners; serving runs until `shutdown`.
pub async fn start(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    gatehouse_identity::install_crypto_provider();
    let data_dir = config.data_dir.clone();
    create_private_dir(&data_dir)?;

    let mut store = match &config.store_url {
        Some(url) => Store::open(url).await?,
        None => Store::open_sqlite(&data_dir.join("state.db")).await?,
    };
    if let Some(spec) = &config.recordings {
        let rs = gatehouse_store::recordings::RecordingStore::from_spec(spec)
            .map_err(StartError::Recordings)?;
        rs.check()
            .await
            .map_err(|e| StartError::Recordings(format!("--recordings: {e}")))?;
        tracing::info!(recordings = %rs.describe(), "statement records and results go to the recording store; the state store keeps an index");
        store = store.with_recordings(rs);
    }
    let (ring, source) =
        keyring::load_or_create(config.master_key.as_ref().map(|s| s.expose()), &data_dir)?;
    keys::check_or_set_canary(&store, &ring).await?;

    let oidc = match &config.oidc {
        Some(c) => {
            let v = OidcValidator::new(c.clone()).map_err(StartError::Oidc)?;
            if let Err(e) = v.warm_up().await {
                tracing::warn!(issuer = %c.issuer, error = %e, "OIDC issuer not reachable yet; JWTs will be refused until it is");
            }
            Some(v)
        }
        None => None,
    };
    let auth = Authenticator::new(store.clone(), oidc);
    let (recorder, _recorder_task) = Recorder::start(store.clone());
    let policy = PolicyHandle::load(&store)
        .await
        .map_err(StartError::Policy)?;
    policy.watch(store.clone());
    let state = AppState::new(store, ring, source, auth, recorder, policy, config.clone())
        .map_err(StartError::Notify)?;
    bootstrap_admin(&state, &data_dir).await?;
    state.access.refresh_grants().await?;
    guard::spawn(state.clone());
    for (i, sink) in config.audit_sinks.iter().enumerate() {
        tokio::spawn(siem::run(state.store.clone(), sink.clone(), i));
    }
    // Signed checkpoints of the audit chain's head, every minute it moved.
    {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + AUDIT_CHECKPOINT_EVERY,
                AUDIT_CHECKPOINT_EVERY,
            );
            loop {
                tick.tick().await;
                if let Err(e) = state.audit.checkpoint(&state.keyring()).await {
                    tracing::warn!(error = %e, "could not write an audit checkpoint");
                }
            }
        });
    }

    if let Some(keep) = config.recordings_retention {
        tokio::spawn(prune_recordings(state.clone(), keep));
    }

    // One shutdown signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // The threads proxied database sessions run on (see gatehouse_pg::workers).
    let workers = gatehouse_pg::workers::Workers::start(
        "db-session",
        config
            .session_threads
            .unwrap_or_else(gatehouse_pg::workers::Workers::default_threads),
    )
    .map_err(StartError::Threads)?;
    if state.store.dialect() == gatehouse_store::Dialect::Postgres {
        // Connections' session places (max_sessions), shared by the replicas.
        let places = state.live.share_places(state.store.clone());
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = places => {}
                () = stop => {}
            }
        });
    }
    let mut pg_addr = None;
    let mut pg_tls_fingerprint = None;
    if let Some(listen) = &config.pg_listen {
        let tls = gatehouse_pg::tls::server_tls(
            config.pg_tls_cert.as_deref(),
            config.pg_tls_key.as_deref(),
            &data_dir,
        )
        .map_err(|e| StartError::Tls(e.to_string()))?
        .for_postgres();
        pg_tls_fingerprint = Some(tls.fingerprint.clone());
        let listener = bind(listen).await?;
        pg_addr = Some(local_addr(&listener, listen)?);
        let proxy = Arc::new(PgProxy {
            store: state.store.clone(),
            auth: state.auth.clone(),
            keys: state.keys.clone(),
            recorder: state.recorder.clone(),
            policy: state.pg.policy.clone(),
            catalog: state.pg.catalog.clone(),
            tls: Some(tls),
            allow_plaintext_remote: config.pg_allow_plaintext,
            max_message: gatehouse_pg::DEFAULT_MAX_MESSAGE,
            sessions: state.live.clone(),
            access: state.access.clone(),
            record_fail_open: config.record_fail_open,
            remote_cancels: Default::default(),
        });
        tokio::spawn(gatehouse_pg::serve(
            proxy,
            workers.clone(),
            listener,
            stopped(stop_rx.clone()),
        ));
    }

    let mut mysql_addr = None;
    if let Some(listen) = &config.mysql_listen {
        let tls = gatehouse_pg::tls::server_tls(
            config.pg_tls_cert.as_deref(),
            config.pg_tls_key.as_deref(),
            &data_dir,
        )
        .map_err(|e| StartError::Tls(e.to_string()))?;
        let listener = bind(listen).await?;
        mysql_addr = Some(local_addr(&listener, listen)?);
        let proxy = Arc::new(gatehouse_mysql::MysqlProxy {
            store: state.store.clone(),
            auth: state.auth.clone(),
            keys: state.keys.clone(),
            recorder: state.recorder.clone(),
            policy: state.mysql.policy.clone(),
            tls: Some(tls.config),
            allow_plaintext_remote: config.mysql_allow_plaintext,
            sessions: state.live.clone(),
            access: state.access.clone(),
            record_fail_open: config.record_fail_open,
            remote_kills: Default::default(),
            views: state.mysql.views.clone(),
            functions: state.mysql.functions.clone(),
        });
        tokio::spawn(gatehouse_mysql::serve(
            proxy,
            workers.clone(),
            listener,
            stopped(stop_rx.clone()),
        ));
    }

    if state.store.dialect() == gatehouse_store::Dialect::Postgres
        && (pg_addr.is_some() || mysql_addr.is_some())
    {
        // Cancel requests and MySQL KILLs that reached another replica of a
        // shared store.
        let watch = gatehouse_pg::remote_cancel::watch(state.store.clone(), state.live.clone());
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = watch => {}
                () = stop => {}
            }
        });
    }

    let mut aws_addr = None;
    if let Some(listen) = &config.aws_listen {
        let listener = bind(listen).await?;
        aws_addr = Some(local_addr(&listener, listen)?);
        let app = proxy::aws::router(state.clone());
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop)
            .await
            {
                tracing::error!(error = %e, "the AWS listener failed");
            }
        });
    }

    let listener = bind(&config.api_listen).await?;
    let api_addr = local_addr(&listener, &config.api_listen)?;
    let app = api::router(state.clone());
    let api_stop = stopped(stop_rx);
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(api_stop)
        .await
    });
    Ok(Running {
        api_addr,
        pg_addr,
        pg_tls_fingerprint,
        mysql_addr,
        aws_addr,
        state,
        task,
    })
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })
}

fn local_addr(l: &tokio::net::TcpListener, addr: &str) -> Result<SocketAddr, StartError> {
    l.local_addr().map_err(|source| StartError::Bind {
        addr: addr.to_string(),
        source,
    })
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    if !path.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(path).map_err(err)?;
    }
    Ok(())
}

/// On an empty store, creates the `admin` token and writes it (only) to
/// `<data-dir>/admin.token` with mode 0600.
async fn bootstrap_admin(state: &AppState, data_dir: &Path) -> Result<(), StartError> {
    if !state
        .store
        .set_meta_if_absent("bootstrapped_at", &now_ms().to_string())
        .await?
    {
        return Ok(());
    }
    let token = generate_token();
    let rec = TokenRecord {
        name: "admin".into(),
        hash: token_hash(token.expose()),
        groups: state.config.admin_groups.clone(),
        created_at: now_ms(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        created_by: "bootstrap".into(),
    };
    state.store.insert_token(&rec).await?;
    let path = data_dir.join("admin.token");
    let write_err = |source| StartError::Write {
        path: path.display().to_string(),
        source,
    };
    {
        use std::io::Write;
        let mut f = keyring::private_file(&path).map_err(write_err)?;
        f.write_all(token.expose().as_bytes()).map_err(write_err)?;
        f.write_all(b"\n").map_err(write_err)?;
    }
    state
        .audit
        .record(
            &gatehouse_core::model::Principal {
                subject: "bootstrap".into(),
                groups: vec![],
                authn: Authn::Token {
                    name: "bootstrap".into(),
                },
                expires_at: None,
            },
            "token.create",
            "admin",
            serde_json::json!({"groups": rec.groups, "bootstrap": true}),
        )
        .await;
    tracing::info!(path = %path.display(), "created the first admin token; it is in this file (mode 0600)");
    Ok(())
}
