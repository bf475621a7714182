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
}

#[derive(Debug)]
struct Entry {
    info: SessionInfo,
    upstream: Target,
    upstream_key: (i32, i32),
    kill: watch::Sender<Option<String>>,
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
    pub(crate) fn register(
        &self,
        info: SessionInfo,
        upstream: Target,
        upstream_key: (i32, i32),
    ) -> ((i32, i32), watch::Receiver<Option<String>>) {
        let (tx, rx) = watch::channel(None);
        let mut map = lock(&self.inner);
        loop {
            let key = (rand::random::<i32>() & 0x7fff_ffff, rand::random::<i32>());
            if let std::collections::hash_map::Entry::Vacant(v) = map.entry(key) {
                v.insert(Entry {
                    info,
                    upstream,
                    upstream_key,
                    kill: tx,
                });
                return (key, rx);
            }
        }
    }

    pub(crate) fn unregister(&self, key: (i32, i32)) {
        lock(&self.inner).remove(&key);
    }

    /// The upstream target and key for one of our cancel keys.
    pub(crate) fn cancel_target(&self, key: (i32, i32)) -> Option<(Target, (i32, i32))> {
        lock(&self.inner)
            .get(&key)
            .map(|e| (e.upstream.clone(), e.upstream_key))
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        lock(&self.inner).values().map(|e| e.info.clone()).collect()
    }

    /// Ends every session for which `pred` holds, telling the client why.
    /// Returns how many were told.
    pub fn end_where(&self, reason: &str, pred: impl Fn(&SessionInfo) -> bool) -> usize {
        let map = lock(&self.inner);
        let mut n = 0;
        for e in map.values().filter(|e| pred(&e.info)) {
            let _ = e.kill.send(Some(reason.to_string()));
            n += 1;
        }
        n
    }

    pub fn end_all(&self, reason: &str) -> usize {
        self.end_where(reason, |_| true)
    }
}
