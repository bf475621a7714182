//! Live sessions: their cancel keys (ours, mapped to the upstream's) and a
//! handle to end each one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

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
}

#[derive(Debug)]
struct Entry {
    info: SessionInfo,
    /// Where a PostgreSQL cancel request goes (none for other protocols).
    upstream: Option<Target>,
    upstream_key: (i32, i32),
    kill: watch::Sender<Option<String>>,
    grants: SessionGrants,
    cancelled: Arc<CancelRequests>,
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
                    upstream,
                    upstream_key,
                    kill: tx,
                    grants: grants.clone(),
                    cancelled: cancelled.clone(),
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

    pub fn unregister(&self, key: (i32, i32)) {
        lock(&self.inner).remove(&key);
    }

    /// Where a cancel request with one of our cancel keys goes: the
    /// upstream target and key, or nowhere when a statement of that session
    /// waits for review (it is woken instead).
    pub(crate) fn cancel_target(&self, key: (i32, i32)) -> Option<(Target, (i32, i32))> {
        lock(&self.inner).get(&key).and_then(|e| {
            if e.cancelled
                .holding
                .load(std::sync::atomic::Ordering::Acquire)
            {
                e.cancelled.notify.notify_waiters();
                return None;
            }
            Some((e.upstream.clone()?, e.upstream_key))
        })
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
