//! Cancel requests across replicas. A client sends its cancel request on a
//! connection of its own, which a load balancer may hand to another replica
//! than the one holding the session. With a shared (PostgreSQL) store, a
//! replica that does not know the key leaves its hash in the store
//! ([`RemoteCancels::forward`]); every replica watches for requests
//! ([`watch`]) and the one holding the session cancels its statement, a few
//! hundred milliseconds later than a request that reached it directly.
//!
//! A cancel request is unauthenticated (its key is the only proof), so the
//! requests a replica leaves in the store are limited to
//! [`FORWARD_PER_SECOND`]; and a request older than [`STALE_MS`] when first
//! seen is dropped, so that a late one cannot cancel a later statement.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_core::now_ms;
use gatehouse_store::{Dialect, Store};

use crate::registry::{Cancel, LiveSessions, cancel_key_hash};
use crate::{PgProxy, upstream};

/// Cancel requests one replica leaves in the store per second, at most.
pub const FORWARD_PER_SECOND: u32 = 20;
/// How often each replica looks for cancel requests.
pub const POLL: Duration = Duration::from_millis(200);
/// A request first seen later than this after it was made is dropped.
pub const STALE_MS: i64 = 10_000;
/// Requests are looked at this long (replicas' clocks may differ a little).
const WINDOW_MS: i64 = 30_000;
/// Requests older than this are removed from the store.
const KEEP_MS: i64 = 60_000;

/// The replica's side that forwards cancel requests it cannot serve.
#[derive(Debug, Default)]
pub struct RemoteCancels {
    /// (second, requests forwarded in it).
    sent: Mutex<(i64, u32)>,
}

impl RemoteCancels {
    /// Leaves a cancel request with a key no session here has in a shared
    /// store, for the replica holding the session. Nothing with a store of
    /// one replica (SQLite), or past the rate limit.
    pub async fn forward(&self, store: &Store, key: (i32, i32)) {
        self.forward_hash(store, &cancel_key_hash(key)).await;
    }

    /// The same for a request known by its hash (a MySQL `KILL`:
    /// [`crate::registry::mysql_kill_hash`]): whether it was left in the
    /// store.
    pub async fn forward_hash(&self, store: &Store, hash: &str) -> bool {
        if store.dialect() != Dialect::Postgres {
            return false;
        }
        let now = now_ms();
        if !self.admit(now) {
            return false;
        }
        match store.request_cancel(hash, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "a cancel request for another replica could not be stored");
                false
            }
        }
    }

    /// Whether a request made at `now` (Unix ms) is within the rate limit.
    fn admit(&self, now: i64) -> bool {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let second = now.div_euclid(1000);
        if sent.0 != second {
            *sent = (second, 0);
        }
        if sent.1 >= FORWARD_PER_SECOND {
            if sent.1 == FORWARD_PER_SECOND {
                tracing::warn!(
                    "more than {FORWARD_PER_SECOND} cancel requests a second with keys of no session here; the rest of this second's are dropped"
                );
            }
            sent.1 = sent.1.saturating_add(1);
            return false;
        }
        sent.1 += 1;
        true
    }
}

/// The requests a replica has seen, so that each is served once.
#[derive(Debug, Default)]
struct Seen {
    requests: HashMap<(String, i64), ()>,
    /// Whether the store has been read once (what is there then is old).
    started: bool,
}

impl Seen {
    /// Of the requests read from the store at `now`, the key hashes to
    /// serve: those not seen before, unless stale or there at start.
    fn due(&mut self, requests: Vec<(String, i64)>, now: i64) -> Vec<String> {
        let mut due = Vec::new();
        for (hash, at) in requests {
            let fresh = self.requests.insert((hash.clone(), at), ()).is_none();
            if fresh && self.started && at >= now - STALE_MS {
                due.push(hash);
            }
        }
        self.started = true;
        self.requests.retain(|(_, at), _| *at >= now - WINDOW_MS);
        due
    }
}

/// What a cancel request that reached this replica does.
pub(crate) async fn cancel(proxy: &PgProxy, key: (i32, i32)) {
    match proxy.sessions.cancel(key) {
        Cancel::Upstream(target, (pid, k)) => {
            if let Err(e) = upstream::cancel(&target, pid, k).await {
                tracing::warn!(error = %e, "forwarding a cancel request failed");
            }
        }
        Cancel::Done => {}
        Cancel::Unknown => proxy.remote_cancels.forward(&proxy.store, key).await,
    }
}

/// Serves the cancel requests other replicas left in a shared store for
/// this replica's sessions, until the task is dropped. Requests already
/// there when it starts are not served.
pub async fn watch(store: Store, sessions: LiveSessions) {
    let mut seen = Seen::default();
    let mut failing = false;
    let mut pruned_at = 0i64;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        let requests = match store.cancel_requests_since(now - WINDOW_MS).await {
            Ok(r) => {
                failing = false;
                r
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cancel requests from other replicas cannot be read");
                }
                failing = true;
                continue;
            }
        };
        for hash in seen.due(requests, now) {
            match sessions.cancel_hashed(&hash) {
                Cancel::Upstream(target, (pid, k)) => {
                    tokio::spawn(async move {
                        if let Err(e) = upstream::cancel(&target, pid, k).await {
                            tracing::warn!(error = %e, "forwarding a cancel request from another replica failed");
                        }
                    });
                }
                Cancel::Done => {}
                // A MySQL KILL, if it names a session here.
                Cancel::Unknown => {
                    sessions.kill_hashed_mysql(&hash);
                }
            }
        }
        if now - pruned_at >= KEEP_MS / 6 {
            pruned_at = now;
            if let Err(e) = store.prune_cancel_requests(now - KEEP_MS).await {
                tracing::debug!(error = %e, "old cancel requests could not be removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_requests_are_limited_per_second() {
        let r = RemoteCancels::default();
        let sent = (0..FORWARD_PER_SECOND + 5)
            .filter(|_| r.admit(5_000))
            .count();
        assert_eq!(sent, FORWARD_PER_SECOND as usize);
        assert!(!r.admit(5_999), "the same second");
        assert!(r.admit(6_000), "the next second");
    }

    #[test]
    fn each_request_is_served_once_and_late_ones_not_at_all() {
        let mut seen = Seen::default();
        let now = 100_000;
        assert!(
            seen.due(vec![("old".into(), now - 50)], now).is_empty(),
            "there before the replica looked"
        );
        let read = vec![
            ("old".into(), now - 50),
            ("a".into(), now + 150),
            ("late".into(), now - STALE_MS - 1),
        ];
        assert_eq!(seen.due(read.clone(), now + 200), vec!["a".to_string()]);
        assert!(seen.due(read, now + 400).is_empty(), "served once");
        // The same key cancelled again later is a new request.
        assert_eq!(
            seen.due(
                vec![("a".into(), now + 150), ("a".into(), now + 900)],
                now + 1_000
            ),
            vec!["a".to_string()]
        );
    }
}
