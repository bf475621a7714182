//! The session guard: ends live sessions the moment their access ends.
//!
//! Several times a second it checks every live session on this process
//! against what it depends on: the caller's credential (an API token not
//! revoked or expired, an OIDC token not past `exp`), the connection (still
//! there and still open to the caller's groups, or reached through a live
//! grant), and the just-in-time grants the session used. Changes made on
//! any replica move the store's access epoch; seeing it move, the guard
//! reloads tokens, connections and grants at once (and every two seconds
//! regardless). Expiry needs no store at all: it is a time. Reviews past
//! their time are marked expired here too.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gatehouse_core::model::ConnectionSpec;
use gatehouse_core::now_ms;
use gatehouse_pg::SessionInfo;

use crate::state::AppState;

/// How often live sessions are checked.
const TICK: Duration = Duration::from_millis(250);
/// Tokens, connections and grants are reloaded at least this often.
const FULL_EVERY_MS: i64 = 2_000;
/// Reviews past their time are marked expired this often.
const EXPIRE_EVERY_MS: i64 = 1_000;

/// What the guard knows of tokens and connections.
#[derive(Default)]
struct Known {
    /// Token name → live.
    tokens: HashMap<String, bool>,
    connections: HashMap<String, ConnectionSpec>,
    /// Token expiry times (Unix ms), for tokens that expire.
    token_expiry: HashMap<String, i64>,
    /// When this was read from the store (Unix ms).
    loaded_at: i64,
}

/// What the guard concludes about one session.
enum Verdict {
    Keep,
    End(String),
    /// It names a token or connection newer than what the guard knows:
    /// reload before deciding.
    Newer,
}

/// Starts the guard, restarting it should it ever fail (a guard that stopped
/// would leave sessions open after their access ended).
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let run = tokio::spawn(guard(state.clone()));
            if let Err(e) = run.await {
                tracing::error!(error = %e, "the session guard failed; restarting it");
            }
        }
    })
}

async fn guard(state: AppState) {
    {
        let mut known = Known::default();
        let mut epoch = None;
        let mut last_full = 0i64;
        let mut last_expire = 0i64;
        let mut ended: HashSet<String> = HashSet::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = now_ms();
            let current = state.store.access_epoch().await.ok();
            if current != epoch || now.saturating_sub(last_full) >= FULL_EVERY_MS {
                match reload(&state, now).await {
                    Ok(k) => {
                        known = k;
                        epoch = current;
                        last_full = now;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the session guard could not reload access state; checking against what it last knew")
                    }
                }
            }
            if now.saturating_sub(last_expire) >= EXPIRE_EVERY_MS {
                state.access.expire(now).await;
                last_expire = now;
            }
            let live = state.live.list();
            ended.retain(|id| live.iter().any(|s| &s.id == id));
            for s in live {
                if ended.contains(&s.id) {
                    continue;
                }
                let reason = match check(&state, &known, &s, now) {
                    Verdict::Keep => continue,
                    Verdict::Newer => {
                        last_full = 0;
                        continue;
                    }
                    Verdict::End(reason) => reason,
                };
                {
                    state.live.end_where(&reason, |x| x.id == s.id);
                    state
                        .audit
                        .record_system(
                            "gatehouse",
                            "session.ended",
                            &s.id,
                            serde_json::json!({
                                "reason": reason,
                                "principal": s.principal,
                                "connection": s.connection,
                            }),
                        )
                        .await;
                    ended.insert(s.id);
                }
            }
        }
    }
}

async fn reload(state: &AppState, now: i64) -> Result<Known, gatehouse_store::StoreError> {
    state.access.refresh_grants().await?;
    let mut k = Known {
        loaded_at: now,
        ..Known::default()
    };
    for t in state.store.list_tokens().await? {
        if let Some(e) = t.expires_at {
            k.token_expiry.insert(t.name.clone(), e);
        }
        k.tokens.insert(t.name.clone(), t.is_live(now));
    }
    for c in state.store.list_connections().await? {
        k.connections.insert(c.spec.name.clone(), c.spec);
    }
    Ok(k)
}

/// Whether session `s` must end now, and why.
fn check(state: &AppState, k: &Known, s: &SessionInfo, now: i64) -> Verdict {
    // Tokens and connections made after the last reload are not known yet;
    // missing from a reload made after the session started, they are gone.
    let stale = k.loaded_at <= s.started_at;
    if s.expires_at.is_some_and(|e| e <= now) {
        return Verdict::End("the caller's credential expired".into());
    }
    if let Some(t) = &s.token {
        match k.tokens.get(t) {
            None if stale => return Verdict::Newer,
            Some(true) if k.token_expiry.get(t).is_none_or(|e| now < *e) => {}
            _ => return Verdict::End("its token was revoked or expired".into()),
        }
    }
    for g in &s.grants {
        if !state.access.grant_live(g) {
            return Verdict::End(format!("its access grant {g} ended"));
        }
    }
    match k.connections.get(&s.connection) {
        None if stale => Verdict::Newer,
        None => Verdict::End("its connection was removed".into()),
        Some(spec) => {
            let by_group = spec.groups.iter().any(|g| s.groups.contains(g));
            let by_grant = state
                .access
                .grant_for(&s.principal, &s.connection)
                .is_some();
            if by_group || by_grant {
                Verdict::Keep
            } else if stale {
                Verdict::Newer
            } else {
                Verdict::End("the caller may no longer use its connection".into())
            }
        }
    }
}
