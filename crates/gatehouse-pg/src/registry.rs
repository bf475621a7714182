//! Live sessions: their cancel keys (ours, mapped to the upstream's) and a
//! handle to end each one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gatehouse_store::{SessionPlace, Store};
use tokio::sync::{mpsc, watch};

use crate::upstream::Target;

/// What the registry knows of a live session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub principal: String,
    pub connection: String,
    /// The token name, when the caller used an API token.
    pub token: Option<String>,
    /// The caller's groups when the session started.
    pub groups: Vec<String>,
    /// When the caller's credential stops being valid (Unix ms), if it expires.
    pub expires_at: Option<i64>,
    /// When the session started (Unix ms).
    pub started_at: i64,
    /// Just-in-time grants the session depends on (it was opened through
    /// one, or one of its statements ran because of one).
    pub grants: Vec<String>,
}

/// The grants a live session depends on, shared with its relay.
pub type SessionGrants = Arc<Mutex<Vec<String>>>;

/// What a live session's relay needs from the registry.
#[derive(Debug)]
pub struct Registered {
    pub key: (i32, i32),
    pub kill: watch::Receiver<Option<String>>,
    pub grants: SessionGrants,
    /// The client's cancel requests for this session.
    pub cancelled: Arc<CancelRequests>,
}

impl CancelRequests {
    /// Marks a statement of the session as waiting for review until the
    /// returned guard is dropped (however the wait ends). Its
    /// `Holding::cancelled` resolves when a cancel request (or a MySQL
    /// `KILL QUERY`) comes meanwhile.
    pub fn hold(&self) -> Holding<'_> {
        let mut notified = Box::pin(self.notify.notified());
        // Registered before the flag is set, so that no request is lost.
        notified.as_mut().enable();
        self.holding
            .store(true, std::sync::atomic::Ordering::Release);
        Holding {
            requests: self,
            notified,
        }
    }

    /// Refuses the statement waiting for review, if one does: whether one did.
    pub fn interrupt_hold(&self) -> bool {
        if self.holding.load(std::sync::atomic::Ordering::Acquire) {
            self.notify.notify_waiters();
            return true;
        }
        false
    }

    /// Asks the session's task to send a `KILL` upstream (one that
    /// reached another replica); a request not yet taken is replaced.
    pub fn request_kill(&self, kill: RemoteKill) {
        *self.remote_kill.lock().unwrap_or_else(|p| p.into_inner()) = Some(kill);
        self.remote_notify.notify_one();
    }

    /// The next `KILL` asked for with [`Self::request_kill`].
    pub async fn kill_requested(&self) -> RemoteKill {
        loop {
            self.remote_notify.notified().await;
            let taken = self
                .remote_kill
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(kind) = taken {
                return kind;
            }
        }
    }
}

/// A statement waiting for review, as [`CancelRequests::hold`] marks it.
pub struct Holding<'a> {
    requests: &'a CancelRequests,
    notified: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
}

impl Holding<'_> {
    /// Resolves when a cancel request for the waiting statement comes.
    pub async fn cancelled(&mut self) {
        self.notified.as_mut().await;
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.requests
            .holding
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

impl std::fmt::Debug for Holding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holding").finish_non_exhaustive()
    }
}

/// A client's cancel requests for one session. While a statement of the
/// session waits for review, a cancel request is for it (it is then
/// refused) and does not go to the upstream, where it would cancel
/// whatever runs next: the refusal itself, say. Otherwise it goes there.
#[derive(Debug, Default)]
pub struct CancelRequests {
    /// Woken by a cancel request while a statement waits for review.
    pub notify: tokio::sync::Notify,
    /// A statement waits for review (set only once its waiter is
    /// registered with `notify`, so that no cancel request is lost).
    pub holding: std::sync::atomic::AtomicBool,
    /// A MySQL `KILL` that reached another replica, for this session's
    /// task to send upstream ([`CancelRequests::kill_requested`]).
    remote_kill: std::sync::Mutex<Option<RemoteKill>>,
    remote_notify: tokio::sync::Notify,
}

/// A MySQL `KILL` that reached another replica, for the session's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteKill {
    pub kind: KillKind,
    /// It came from a login without a connection (the command line
    /// client's Ctrl+C), so the policy on the session's connection has not
    /// decided it yet.
    pub undecided: bool,
}

/// What a MySQL `KILL` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillKind {
    /// `KILL QUERY`: the statement running.
    Query,
    /// `KILL [CONNECTION]`: the session.
    Connection,
}

impl KillKind {
    /// Of a `KILL` written with `how` (`""`, `"QUERY "`, `"HARD CONNECTION "`, …).
    pub fn of(how: &str) -> Self {
        if how.contains("QUERY") {
            Self::Query
        } else {
            Self::Connection
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Self::Query => b"query",
            Self::Connection => b"connection",
        }
    }
}

/// What replicas share of a MySQL `KILL` of the session a client got
/// connection id `id` for, sent by `principal` in a session on
/// `connection` (`None`: from a login without a connection): its SHA-256
/// (hex) under a label of its own. Only that caller's session with that id
/// (on that connection) has the same hash, so a request another replica
/// leaves can end nobody else's.
pub fn mysql_kill_hash(
    kind: KillKind,
    id: u32,
    principal: &str,
    connection: Option<&str>,
) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"gatehouse mysql kill\0");
    h.update(kind.label());
    h.update(b"\0");
    h.update(id.to_be_bytes());
    h.update(principal.as_bytes());
    match connection {
        Some(c) => {
            h.update(b"\0on\0");
            h.update(c.as_bytes());
        }
        None => h.update(b"\0control"),
    }
    hex::encode(h.finalize())
}

#[derive(Debug)]
struct Entry {
    info: SessionInfo,
    /// [`cancel_key_hash`] of the session's cancel key, for cancel
    /// requests that reached another replica.
    key_hash: String,
    /// Where a PostgreSQL cancel request goes (none for other protocols).
    upstream: Option<Target>,
    upstream_key: (i32, i32),
    kill: watch::Sender<Option<String>>,
    grants: SessionGrants,
    cancelled: Arc<CancelRequests>,
    /// A MySQL session: the connection id its client got from Gatehouse
    /// (what the client names in `KILL`); the upstream's is `upstream_key.0`.
    mysql_id: Option<u32>,
    /// The [`mysql_kill_hash`]es of the KILLs another replica may pass on
    /// for it, made once (looking a request up hashes nothing).
    mysql_kills: Vec<(String, RemoteKill)>,
}

/// What to do with a cancel request.
#[derive(Debug)]
pub(crate) enum Cancel {
    /// Send a cancel request to this upstream with its key.
    Upstream(Target, (i32, i32)),
    /// Nothing more to do.
    Done,
    /// No session here has that key.
    Unknown,
}

/// What replicas share of a cancel key: its SHA-256 (hex), under a label of
/// its own. The key itself (31 + 32 random bits) never leaves the process
/// that handed it out.
pub fn cancel_key_hash((pid, secret): (i32, i32)) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"gatehouse cancel key\0");
    h.update(pid.to_be_bytes());
    h.update(secret.to_be_bytes());
    hex::encode(h.finalize())
}

/// A live MySQL session, as a `KILL` names it.
#[derive(Debug, Clone)]
pub struct MysqlSession {
    /// Gatehouse's session id.
    pub id: String,
    pub connection: String,
    /// Its upstream connection (thread) id.
    pub thread: u32,
    /// A KILL while a statement waits for review is for that statement.
    pub cancelled: Arc<CancelRequests>,
}

/// Adds a grant to the ones a session depends on.
pub fn depend_on(grants: &SessionGrants, id: &str) {
    let mut g = lock(grants);
    if !g.iter().any(|x| x == id) {
        g.push(id.to_string());
    }
}

/// Cancel keys and kill switches of the sessions on this process.
#[derive(Debug, Clone, Default)]
pub struct LiveSessions {
    inner: Arc<Mutex<HashMap<(i32, i32), Entry>>>,
    /// Sessions open (or opening) per connection, against its `max_sessions`.
    slots: Arc<Mutex<HashMap<String, u64>>>,
    /// With a store shared by replicas: the places all replicas share.
    shared: Arc<OnceLock<SharedPlaces>>,
}

/// Why a session gets no place among its connection's sessions: what each
/// protocol tells the client, in its own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPlace {
    /// The connection has its `max_sessions` open.
    #[error(
        "Gatehouse: connection \"{connection}\" has {open} sessions open, its limit (max_sessions); try again when one ends"
    )]
    Full { connection: String, open: u64 },
    /// Replicas share the places through the store, and it did not answer
    /// (the session is refused rather than let past the limit).
    #[error(
        "Gatehouse cannot count the sessions of connection \"{connection}\" across replicas: the state store is not answering; try again shortly"
    )]
    StoreDown { connection: String },
}

/// One of a connection's session places, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Mutex<HashMap<String, u64>>>,
    connection: String,
    /// Its row in a shared store, and where to send it back.
    shared: Option<(SessionPlace, mpsc::UnboundedSender<SessionPlace>)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut slots = lock(&self.slots);
            if let Some(n) = slots.get_mut(&self.connection) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    slots.remove(&self.connection);
                }
            }
        }
        if let Some((place, back)) = self.shared.take() {
            // Given back by the replica's keeper (see
            // `LiveSessions::share_places`); should that have stopped, the
            // row expires.
            let _ = back.send(place);
        }
    }
}

/// How long a replica's shared session places last without being renewed
/// (a replica that stopped without giving them back frees them after this).
pub const PLACE_TTL: Duration = Duration::from_secs(30);
/// How often a replica renews its places.
const PLACE_RENEWAL: Duration = Duration::from_secs(10);

/// Session places kept in a store shared by replicas.
#[derive(Debug, Clone)]
struct SharedPlaces {
    store: Store,
    /// This replica, as its rows name it (random per process).
    replica: Arc<str>,
    give_back: mpsc::UnboundedSender<SessionPlace>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl LiveSessions {
    /// Registers a session under a fresh random cancel key, returned with
    /// the receiver that tells the session to end.
    pub fn register(
        &self,
        info: SessionInfo,
        upstream: Option<Target>,
        upstream_key: (i32, i32),
    ) -> Registered {
        let (tx, rx) = watch::channel(None);
        let grants: SessionGrants = Arc::new(Mutex::new(info.grants.clone()));
        let cancelled = Arc::new(CancelRequests::default());
        let mut map = lock(&self.inner);
        loop {
            let key = (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>());
            if let std::collections::hash_map::Entry::Vacant(v) = map.entry(key) {
                v.insert(Entry {
                    info,
                    key_hash: cancel_key_hash(key),
                    upstream,
                    upstream_key,
                    kill: tx,
                    grants: grants.clone(),
                    cancelled: cancelled.clone(),
                    mysql_id: None,
                    mysql_kills: Vec::new(),
                });
                return Registered {
                    key,
                    kill: rx,
                    grants,
                    cancelled,
                };
            }
        }
    }

    /// Registers a MySQL session whose client was given connection id
    /// `client_id`, on upstream connection (thread) `upstream_thread`.
    pub fn register_mysql(
        &self,
        info: SessionInfo,
        client_id: u32,
        upstream_thread: u32,
    ) -> Registered {
        let reg = self.register(info, None, (i32::try_from(upstream_thread).unwrap_or(0), 0));
        if let Some(e) = lock(&self.inner).get_mut(&reg.key) {
            // 0: a session opened inside Gatehouse, which no client names.
            e.mysql_id = (client_id != 0).then_some(client_id);
            if client_id != 0 {
                for kind in [KillKind::Query, KillKind::Connection] {
                    for on in [Some(e.info.connection.as_str()), None] {
                        let hash = mysql_kill_hash(kind, client_id, &e.info.principal, on);
                        let undecided = on.is_none();
                        e.mysql_kills.push((hash, RemoteKill { kind, undecided }));
                    }
                }
            }
        }
        reg
    }

    /// The MySQL session whose client has connection id `client_id`, if it
    /// is a session of `principal`: what a `KILL` from that principal may
    /// end. `None` for anyone else's session, as for no session at all.
    pub fn mysql_session(&self, client_id: u32, principal: &str) -> Option<MysqlSession> {
        lock(&self.inner)
            .values()
            .find(|e| e.mysql_id == Some(client_id) && e.info.principal == principal)
            .and_then(|e| {
                Some(MysqlSession {
                    id: e.info.id.clone(),
                    connection: e.info.connection.clone(),
                    thread: u32::try_from(e.upstream_key.0).ok()?,
                    cancelled: e.cancelled.clone(),
                })
            })
    }

    /// Whether upstream backend `pid` is that of a PostgreSQL session of
    /// `principal` on `connection` here: what its `pg_cancel_backend` and
    /// `pg_terminate_backend` may name.
    pub fn is_pg_backend_of(&self, principal: &str, connection: &str, pid: i32) -> bool {
        lock(&self.inner).values().any(|e| {
            e.upstream.is_some()
                && e.upstream_key.0 == pid
                && e.info.principal == principal
                && e.info.connection == connection
        })
    }

    /// Takes one of connection `connection`'s session places before its
    /// upstream session is opened: refused when `max` sessions of it are
    /// open (or opening) on this process already, or, with places shared
    /// through the store, on all replicas together.
    pub async fn take_slot(&self, connection: &str, max: Option<u64>) -> Result<Slot, NoPlace> {
        let mut slot = {
            let mut slots = lock(&self.slots);
            let open = slots.get(connection).copied().unwrap_or(0);
            if max.is_some_and(|m| open >= m) {
                return Err(NoPlace::Full {
                    connection: connection.to_string(),
                    open,
                });
            }
            slots.insert(connection.to_string(), open + 1);
            Slot {
                slots: self.slots.clone(),
                connection: connection.to_string(),
                shared: None,
            }
        };
        if let (Some(max), Some(shared)) = (max, self.shared.get()) {
            let holder = hex::encode(rand::random::<[u8; 12]>());
            let now = gatehouse_core::now_ms();
            let taken = shared
                .store
                .take_session_place(
                    connection,
                    max,
                    &holder,
                    &shared.replica,
                    now,
                    now + millis(PLACE_TTL),
                )
                .await;
            match taken {
                Ok(Ok(place)) => slot.shared = Some((place, shared.give_back.clone())),
                Ok(Err(open)) => {
                    return Err(NoPlace::Full {
                        connection: connection.to_string(),
                        open,
                    });
                }
                Err(e) => {
                    tracing::warn!(connection, error = %e, "could not take a session place in the store");
                    return Err(NoPlace::StoreDown {
                        connection: connection.to_string(),
                    });
                }
            }
        }
        Ok(slot)
    }

    /// Shares the connections' session places with the other replicas of
    /// `store` from now on (their `max_sessions` then count every
    /// replica's sessions). Returns what keeps this replica's places: it
    /// gives back those of ended sessions and renews the others, and runs
    /// until dropped. Called once, at start.
    pub fn share_places(&self, store: Store) -> impl std::future::Future<Output = ()> + use<> {
        let (give_back, mut returned) = mpsc::unbounded_channel::<SessionPlace>();
        let replica: Arc<str> = hex::encode(rand::random::<[u8; 12]>()).into();
        let shared = SharedPlaces {
            store: store.clone(),
            replica: replica.clone(),
            give_back,
        };
        let _ = self.shared.set(shared);
        async move {
            let mut renew = tokio::time::interval(PLACE_RENEWAL);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    place = returned.recv() => {
                        let Some(place) = place else { return };
                        if let Err(e) = store.give_back_session_place(&place).await {
                            tracing::warn!(connection = %place.connection, error = %e, "could not give a session place back; it expires");
                        }
                    }
                    _ = renew.tick() => {
                        let until = gatehouse_core::now_ms() + millis(PLACE_TTL);
                        if let Err(e) = store.renew_session_places(&replica, until).await {
                            tracing::warn!(error = %e, "could not renew this replica's session places");
                        }
                    }
                }
            }
        }
    }

    pub fn unregister(&self, key: (i32, i32)) {
        lock(&self.inner).remove(&key);
    }

    /// What a cancel request with `key` does: go to the upstream (with
    /// the upstream's key), or nothing more when a statement of that
    /// session waits for review (it is woken instead) or the session has
    /// no PostgreSQL upstream; [`Cancel::Unknown`] when no session here
    /// has that key.
    pub(crate) fn cancel(&self, key: (i32, i32)) -> Cancel {
        lock(&self.inner)
            .get(&key)
            .map_or(Cancel::Unknown, Self::cancel_entry)
    }

    /// The same for a cancel request another replica received, known by
    /// the hash of its key ([`cancel_key_hash`]).
    pub(crate) fn cancel_hashed(&self, key_hash: &str) -> Cancel {
        lock(&self.inner)
            .values()
            .find(|e| e.key_hash == key_hash)
            .map_or(Cancel::Unknown, Self::cancel_entry)
    }

    /// What a MySQL `KILL` another replica received does here, known by
    /// its [`mysql_kill_hash`]: a `KILL QUERY` of a statement waiting for
    /// review refuses that statement; otherwise the session's task is
    /// asked to send the KILL upstream. Whether a session here matched.
    pub(crate) fn kill_hashed_mysql(&self, hash: &str) -> bool {
        let inner = lock(&self.inner);
        for e in inner.values() {
            let Some((_, kill)) = e.mysql_kills.iter().find(|(h, _)| h == hash) else {
                continue;
            };
            // A KILL QUERY of a statement waiting for review refuses it,
            // once the policy allowed the KILL: an undecided one goes to
            // the session's task first.
            if kill.undecided || !(kill.kind == KillKind::Query && e.cancelled.interrupt_hold()) {
                e.cancelled.request_kill(*kill);
            }
            return true;
        }
        false
    }

    fn cancel_entry(e: &Entry) -> Cancel {
        if e.cancelled.interrupt_hold() {
            return Cancel::Done;
        }
        match &e.upstream {
            Some(t) => Cancel::Upstream(t.clone(), e.upstream_key),
            None => Cancel::Done,
        }
    }

    fn snapshot(e: &Entry) -> SessionInfo {
        let mut info = e.info.clone();
        info.grants = lock(&e.grants).clone();
        info
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        lock(&self.inner).values().map(Self::snapshot).collect()
    }

    /// Ends every session for which `pred` holds, telling the client why.
    /// Returns how many were told.
    pub fn end_where(&self, reason: &str, pred: impl Fn(&SessionInfo) -> bool) -> usize {
        let map = lock(&self.inner);
        let mut n = 0;
        for e in map.values().filter(|e| pred(&Self::snapshot(e))) {
            let _ = e.kill.send(Some(reason.to_string()));
            n += 1;
        }
        n
    }

    pub fn end_all(&self, reason: &str) -> usize {
        self.end_where(reason, |_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> SessionInfo {
        SessionInfo {
            id: "s1".into(),
            principal: "bot".into(),
            connection: "shop".into(),
            token: None,
            groups: Vec::new(),
            expires_at: None,
            started_at: 0,
            grants: Vec::new(),
        }
    }

    #[test]
    fn a_cancel_is_found_by_its_key_or_the_key_s_hash_only() {
        let live = LiveSessions::default();
        let reg = live.register(info(), None, (7, 8));
        let hash = cancel_key_hash(reg.key);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&reg.key.1.to_string()));
        assert!(matches!(live.cancel(reg.key), Cancel::Done));
        assert!(matches!(live.cancel_hashed(&hash), Cancel::Done));
        let other = (reg.key.0, reg.key.1.wrapping_add(1));
        assert!(matches!(live.cancel(other), Cancel::Unknown));
        assert!(matches!(
            live.cancel_hashed(&cancel_key_hash(other)),
            Cancel::Unknown
        ));
        live.unregister(reg.key);
        assert!(matches!(live.cancel_hashed(&hash), Cancel::Unknown));
    }

    #[tokio::test]
    async fn a_mysql_kill_from_another_replica_matches_only_the_caller_s_own_session() {
        let live = LiveSessions::default();
        let reg = live.register_mysql(info(), 4242, 99);
        let cancelled = live
            .mysql_session(4242, "bot")
            .expect("the session")
            .cancelled;
        // Another caller, connection, id or kind: a hash of nothing here.
        for (kind, id, who, conn) in [
            (KillKind::Query, 4242, "mallory", "shop"),
            (KillKind::Query, 4242, "bot", "hr"),
            (KillKind::Query, 4243, "bot", "shop"),
        ] {
            assert!(!live.kill_hashed_mysql(&mysql_kill_hash(kind, id, who, Some(conn))));
        }
        let on_shop = |kind| mysql_kill_hash(kind, 4242, "bot", Some("shop"));
        assert!(live.kill_hashed_mysql(&on_shop(KillKind::Query)));
        let decided = |kind| RemoteKill {
            kind,
            undecided: false,
        };
        assert_eq!(cancelled.kill_requested().await, decided(KillKind::Query));
        assert!(live.kill_hashed_mysql(&on_shop(KillKind::Connection)));
        assert_eq!(
            cancelled.kill_requested().await,
            decided(KillKind::Connection)
        );
        // From a login without a connection: for the session to decide.
        assert!(live.kill_hashed_mysql(&mysql_kill_hash(KillKind::Query, 4242, "bot", None)));
        assert_eq!(
            cancelled.kill_requested().await,
            RemoteKill {
                kind: KillKind::Query,
                undecided: true
            }
        );
        // A KILL QUERY while a statement waits for review refuses it; no
        // KILL goes upstream.
        let mut held = cancelled.hold();
        assert!(live.kill_hashed_mysql(&on_shop(KillKind::Query)));
        tokio::time::timeout(std::time::Duration::from_secs(10), held.cancelled())
            .await
            .expect("the held statement was told");
        let nothing =
            tokio::time::timeout(std::time::Duration::ZERO, cancelled.kill_requested()).await;
        assert!(nothing.is_err(), "a KILL was asked for: {nothing:?}");
        live.unregister(reg.key);
        assert!(!live.kill_hashed_mysql(&on_shop(KillKind::Query)));
    }

    #[tokio::test]
    async fn a_connection_s_session_places_are_limited_and_given_back() {
        let live = LiveSessions::default();
        let a = live.take_slot("shop", Some(2)).await.expect("first");
        let b = live.take_slot("shop", Some(2)).await.expect("second");
        assert_eq!(
            live.take_slot("shop", Some(2)).await.err(),
            Some(NoPlace::Full {
                connection: "shop".into(),
                open: 2
            })
        );
        assert!(
            live.take_slot("crm", Some(1)).await.is_ok(),
            "per connection"
        );
        drop(a);
        let c = live
            .take_slot("shop", Some(2))
            .await
            .expect("a place came free");
        assert!(live.take_slot("shop", None).await.is_ok(), "no limit");
        drop((b, c));
        assert!(lock(&live.slots).is_empty());
    }

    /// Two replicas' registries on one store share its places: the limit
    /// counts both, and a place given back comes free for the other
    /// (renewal and expiry: the store's own test).
    #[tokio::test]
    async fn replicas_of_a_store_share_the_session_places() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(&dir.path().join("state.db"))
            .await
            .expect("store");
        let (a, b) = (LiveSessions::default(), LiveSessions::default());
        let keep_a = tokio::spawn(a.share_places(store.clone()));
        let keep_b = tokio::spawn(b.share_places(store.clone()));
        let first = a.take_slot("shop", Some(2)).await.expect("first, on A");
        let _second = b.take_slot("shop", Some(2)).await.expect("second, on B");
        assert_eq!(
            a.take_slot("shop", Some(2)).await.err(),
            Some(NoPlace::Full {
                connection: "shop".into(),
                open: 2
            }),
            "A's own count is 1: the store's counts B's too"
        );
        drop(first);
        // Given back by A's keeper, in the background.
        let mut tries = 0;
        let third = loop {
            match b.take_slot("shop", Some(2)).await {
                Ok(s) => break s,
                Err(NoPlace::Full { .. }) if tries < 10_000 => {
                    tries += 1;
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("the place A gave back never came free: {e}"),
            }
        };
        drop(third);
        keep_a.abort();
        keep_b.abort();
    }

    #[test]
    fn a_cancel_while_a_statement_waits_for_review_wakes_the_wait() {
        let live = LiveSessions::default();
        let reg = live.register(info(), None, (7, 8));
        let mut holding = reg.cancelled.hold();
        assert!(matches!(
            live.cancel_hashed(&cancel_key_hash(reg.key)),
            Cancel::Done
        ));
        {
            let woken = holding.cancelled();
            tokio::pin!(woken);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(std::future::Future::poll(woken.as_mut(), &mut cx).is_ready());
        }
        drop(holding);
        // Once the wait is over, a cancel request goes upstream again (here
        // there is none: the session has no PostgreSQL upstream).
        assert!(!reg.cancelled.interrupt_hold());
    }
}
