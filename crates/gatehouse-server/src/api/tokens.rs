//! Service-account tokens: create (shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gatehouse_core::duration::parse_duration;
use gatehouse_core::model::validate_group;
use gatehouse_core::now_ms;
use gatehouse_core::token::{generate_token, token_hash};
use gatehouse_store::TokenRecord;
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    /// Lifetime such as `24h`; absent means no expiry.
    #[serde(default)]
    ttl: Option<String>,
}

#[derive(Serialize)]
pub struct TokenView {
    name: String,
    groups: Vec<String>,
    created_at: i64,
    created_by: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    status: &'static str,
}

impl From<TokenRecord> for TokenView {
    fn from(r: TokenRecord) -> Self {
        let status = if r.revoked_at.is_some() {
            "revoked"
        } else if !r.is_live(now_ms()) {
            "expired"
        } else {
            "active"
        };
        Self {
            name: r.name,
            groups: r.groups,
            created_at: r.created_at,
            created_by: r.created_by,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
            status,
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(req): Json<CreateToken>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    gatehouse_core::model::validate_name(&req.name).map_err(|e| {
        ApiError::bad_request(e.to_string().replace("connection name", "token name"))
    })?;
    if req.groups.is_empty() {
        return Err(ApiError::bad_request(
            "a token needs at least one group (--group NAME)",
        ));
    }
    for g in &req.groups {
        validate_group(g).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let now = now_ms();
    let expires_at = match &req.ttl {
        None => None,
        Some(t) => {
            let d = parse_duration(t).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some(now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        }
    };
    let token = generate_token();
    let rec = TokenRecord {
        name: req.name.clone(),
        hash: token_hash(token.expose()),
        groups: req.groups.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        created_by: who.subject.clone(),
    };
    state.store.insert_token(&rec).await?;
    state
        .audit
        .record(
            &who,
            "token.create",
            &req.name,
            serde_json::json!({"groups": req.groups, "expires_at": expires_at}),
        )
        .await;
    let view = TokenView::from(rec);
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    // The only time the token is ever returned.
    body["token"] = serde_json::Value::String(token.expose().to_string());
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn list(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tokens: Vec<TokenView> = state
        .store
        .list_tokens()
        .await?
        .into_iter()
        .map(TokenView::from)
        .collect();
    Ok(Json(serde_json::json!({ "tokens": tokens })))
}

pub async fn revoke(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.store.get_token(&name).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no token named {name:?} (see `gatehouse tokens list`)"
        )));
    }
    let changed = state.store.revoke_token(&name, now_ms()).await?;
    // Sessions opened with this token end now.
    let ended = state.live.end_where("its token was revoked", |s| {
        s.token.as_deref() == Some(name.as_str())
    });
    if changed {
        state
            .audit
            .record(
                &who,
                "token.revoke",
                &name,
                serde_json::json!({"sessions_ended": ended}),
            )
            .await;
    }
    Ok(Json(
        serde_json::json!({"name": name, "revoked": true, "changed": changed}),
    ))
}
