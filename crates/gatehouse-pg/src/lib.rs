//! Gatehouse's native PostgreSQL proxy.
//!
//! Clients (`psql`, drivers, pgbench) connect with the connection's name as
//! the database and their Gatehouse token as the password. The proxy
//! authenticates the caller, checks the connection's groups, opens its own
//! upstream session with the stored credentials, and relays the protocol,
//! passing every statement through the policy, masking results, and
//! recording it.
//!
//! Layout: `codec` (bytes ↔ messages, limits), `upstream` (connect and
//! authenticate upstream), `session` (one client from startup to relay),
//! `relay` (the two directions of a live session), `tls`, `stream`,
//! `registry` (cancel keys and live sessions).

pub mod built_in;
pub mod catalog;
pub mod codec;
pub mod local;
mod mask;
mod registry;
mod relay;
pub mod remote_cancel;
pub mod session;
pub mod stream;
pub mod tls;
pub mod upstream;
pub mod values;
pub mod workers;

use std::sync::Arc;

use gatehouse_core::keyring::SharedKeyring;
use gatehouse_identity::Authenticator;
use gatehouse_policy::PolicySource;
use gatehouse_store::Store;
use gatehouse_store::recorder::Recorder;
use tokio::net::TcpListener;

pub use registry::{
    CancelRequests, KillKind, LiveSessions, MysqlSession, NoPlace, Registered, RemoteKill,
    SessionGrants, SessionInfo, Slot, depend_on, mysql_kill_hash,
};
pub use session::{OpenError, open_local};
pub use tls::ServerTls;

/// Default largest message a client may send (CopyData included).
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// Everything a PostgreSQL session needs from the rest of Gatehouse.
#[derive(Debug)]
pub struct PgProxy {
    pub store: Store,
    pub auth: Authenticator,
    pub keys: SharedKeyring,
    pub recorder: Recorder,
    /// The policy in force (asked again for every statement).
    pub policy: Arc<dyn PolicySource>,
    /// Where result columns come from, per connection (for masking), and
    /// what views read (for rules on tables); shared by every proxy of a
    /// server, so that a definition changed through one is asked again by
    /// all.
    pub catalog: Arc<catalog::Catalog>,
    pub tls: Option<ServerTls>,
    /// Accept passwords (tokens) over plaintext from non-loopback clients.
    pub allow_plaintext_remote: bool,
    pub max_message: usize,
    pub sessions: LiveSessions,
    /// Reviews and just-in-time grants.
    pub access: gatehouse_access::Access,
    /// When the recorder is behind, run statements unrecorded (logged)
    /// instead of refusing them. Off by default: fail closed.
    pub record_fail_open: bool,
    /// Cancel requests with keys of no session here, left for the other
    /// replicas (with a shared store).
    pub remote_cancels: remote_cancel::RemoteCancels,
}

/// Accepts PostgreSQL clients on `listener` until `shutdown` resolves,
/// running their sessions on `workers`; then ends the live ones.
pub async fn serve(
    proxy: Arc<PgProxy>,
    workers: workers::Workers,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let p = proxy.clone();
    workers::accept(
        listener,
        &workers,
        shutdown,
        "PostgreSQL",
        move |tcp, peer| session::handle(p.clone(), tcp, peer),
    )
    .await;
    proxy.sessions.end_all("the gateway is shutting down");
    workers.stop();
}
