//! Recorded sessions: list with filters, and one session with its statements.

use axum::Json;
use axum::extract::{Path, Query, State};
use gatehouse_store::SessionFilter;
use serde::Deserialize;

use super::auth::Admin;
use super::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    user: Option<String>,
    connection: Option<String>,
    /// Unix milliseconds.
    since: Option<i64>,
    grep: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = SessionFilter {
        principal: q.user,
        connection: q.connection,
        since: q.since,
        grep: q.grep.filter(|g| !g.is_empty()),
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    let sessions = state.store.list_sessions(&filter).await?;
    Ok(Json(serde_json::json!({ "sessions": sessions })))
}

pub async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (session, statements) = state.store.get_session(&id).await?.ok_or_else(|| {
        ApiError::not_found(format!("no session {id:?} (see `gatehouse sessions list`)"))
    })?;
    let live = state.live.list().iter().any(|s| s.id == id);
    Ok(Json(
        serde_json::json!({ "session": session, "live": live, "statements": statements }),
    ))
}
