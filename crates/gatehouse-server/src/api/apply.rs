//! `POST /v1/apply`: make the stored connections match a declaration.
//! Idempotent; `dry_run` returns the plan without writing.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::auth::Admin;
use super::connections::{ConnectionInput, plan, validate, write};
use super::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    #[serde(default)]
    connections: Vec<ConnectionInput>,
    #[serde(default)]
    dry_run: bool,
}

pub async fn apply(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(req): Json<ApplyRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut seen = std::collections::HashSet::new();
    for c in &req.connections {
        validate(c)?;
        if !seen.insert(c.name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "connection {:?} is declared twice",
                c.name
            )));
        }
    }
    let mut changes = Vec::with_capacity(req.connections.len());
    for c in &req.connections {
        let existing = state.store.get_connection(&c.name).await?;
        changes.push(plan(&state, existing.as_ref(), c)?);
    }
    if !req.dry_run {
        for (c, change) in req.connections.iter().zip(&changes) {
            write(&state, &who, c, change).await?;
        }
    }
    Ok(Json(
        serde_json::json!({"dry_run": req.dry_run, "changes": changes}),
    ))
}
