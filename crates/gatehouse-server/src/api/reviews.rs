//! Reviews (list, show and wait, approve, reject) and just-in-time access
//! (request, list grants, revoke).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use gatehouse_access::{AccessError, grant_json, review_json};
use gatehouse_core::model::Principal;
use gatehouse_core::now_ms;
use gatehouse_core::policy::spec::Level;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use crate::state::AppState;

/// Longest a `GET /v1/reviews/{id}?wait=` long poll holds the request.
const MAX_WAIT_MS: i64 = 120_000;

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Refused(m) => ApiError::forbidden(m),
            AccessError::NotFound(id) => {
                ApiError::not_found(format!("no review {id:?} (see `gatehouse reviews list`)"))
            }
            AccessError::Conflict(m) => ApiError::conflict(m),
            AccessError::Store(s) => s.into(),
        }
    }
}

fn is_admin(state: &AppState, p: &Principal) -> bool {
    p.in_any(&state.config.admin_groups)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pending: Option<bool>,
    limit: Option<i64>,
}

/// The reviews the caller may see: their own requests, the ones they may
/// approve, all of them for administrators and break-glass members.
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.access.expire(now_ms()).await;
    let policy = state.policy.engine();
    let admin = is_admin(&state, &who);
    let reviews: Vec<_> = state
        .store
        .list_reviews(
            q.pending.unwrap_or(false),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?
        .iter()
        .filter(|r| gatehouse_access::Access::may_see(r, &who, policy.spec(), admin))
        .map(review_json)
        .collect();
    Ok(Json(serde_json::json!({ "reviews": reviews })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    /// Wait up to this long (`30s`) for a pending review to be decided.
    wait: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let policy = state.policy.engine();
    let admin = is_admin(&state, &who);
    let not_found =
        || ApiError::not_found(format!("no review {id:?} (see `gatehouse reviews list`)"));
    let r = state.store.get_review(&id).await?.ok_or_else(not_found)?;
    if !gatehouse_access::Access::may_see(&r, &who, policy.spec(), admin) {
        return Err(not_found());
    }
    let r = match q.wait.as_deref() {
        None => r,
        Some(w) => {
            let d = gatehouse_core::duration::parse_duration(w).map_err(|_| {
                ApiError::bad_request(format!("wait {w:?} is not a duration such as \"30s\""))
            })?;
            let ms = i64::try_from(d.as_millis())
                .unwrap_or(i64::MAX)
                .min(MAX_WAIT_MS);
            state
                .access
                .wait_decided(&id, now_ms().saturating_add(ms))
                .await?
                .ok_or_else(not_found)?
        }
    };
    Ok(Json(serde_json::json!({ "review": review_json(&r) })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    reason: Option<String>,
}

async fn vote(
    state: &AppState,
    who: &Principal,
    id: &str,
    approve: bool,
    reason: Option<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let policy = state.policy.engine();
    let r = state
        .access
        .vote(id, who, approve, reason, policy.spec())
        .await?;
    Ok(Json(serde_json::json!({ "review": review_json(&r) })))
}

pub async fn approve(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Option<Json<VoteBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    vote(&state, &who, &id, true, body.reason).await
}

pub async fn reject(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Option<Json<VoteBody>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    vote(&state, &who, &id, false, body.reason).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    connection: String,
    level: String,
    /// How long, e.g. `30m`.
    duration: String,
    reason: Option<String>,
}

/// Asks for a just-in-time grant: `202` with the review that decides it.
pub async fn request(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(body): Json<AccessRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let level = Level::parse(&body.level).ok_or_else(|| {
        ApiError::bad_request(format!(
            "level {:?} is not one of read, write, ddl, admin",
            body.level
        ))
    })?;
    let d = gatehouse_core::duration::parse_duration(&body.duration).map_err(|_| {
        ApiError::bad_request(format!(
            "duration {:?} is not a duration such as \"30m\"",
            body.duration
        ))
    })?;
    let visible = state
        .store
        .get_connection(&body.connection)
        .await?
        .is_some();
    if !visible {
        return Err(ApiError::not_found(format!(
            "no connection named {:?}",
            body.connection
        )));
    }
    let policy = state.policy.engine();
    let r = state
        .access
        .request_access(
            &who,
            &body.connection,
            level,
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            body.reason,
            policy.spec(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "review": review_json(&r),
            "approve_command": format!("gatehouse reviews approve {}", r.id),
        })),
    ))
}

/// Live grants: all of them for administrators, the caller's own otherwise.
pub async fn grants(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let admin = is_admin(&state, &who);
    let grants: Vec<_> = state
        .store
        .live_grants(now_ms())
        .await?
        .iter()
        .filter(|g| admin || g.principal == who.subject)
        .map(grant_json)
        .collect();
    Ok(Json(serde_json::json!({ "grants": grants })))
}

pub async fn revoke(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let admin = is_admin(&state, &who);
    let g = state
        .access
        .revoke_grant(&id, &who, admin)
        .await
        .map_err(|e| match e {
            AccessError::NotFound(_) => {
                ApiError::not_found(format!("no grant {id:?} (see `gatehouse access list`)"))
            }
            other => other.into(),
        })?;
    // Its sessions here end now; other replicas' guards see the epoch move.
    let ended = state
        .live
        .end_where(&format!("its access grant {id} was revoked"), |s| {
            s.grants.iter().any(|x| x == &id)
        });
    Ok(Json(
        serde_json::json!({ "grant": grant_json(&g), "sessions_ended": ended }),
    ))
}
