//! `POST /v1/apply`: make the stored connections, and the policy when the
//! declaration has one, match a declaration. Idempotent; `dry_run` returns
//! the plan without writing.

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
    /// Replaces the whole policy when present.
    #[serde(default)]
    policy: Option<gatehouse_core::policy::spec::PolicySpec>,
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
    if let Some(p) = &req.policy {
        gatehouse_policy::Engine::new(p.clone())
            .map_err(|e| ApiError::bad_request(format!("policy: {e}")))?;
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
    let policy = match req.policy {
        None => "not declared",
        Some(p) if req.dry_run => {
            if state.store.get_policy().await?.spec == p {
                "unchanged"
            } else {
                "replace"
            }
        }
        Some(p) => match super::policy::replace(&state, &who, p).await? {
            Some(_) => "replaced",
            None => "unchanged",
        },
    };
    Ok(Json(
        serde_json::json!({"dry_run": req.dry_run, "changes": changes, "policy": policy}),
    ))
}
