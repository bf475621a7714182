//! Health, readiness, metrics, the OpenAPI document, whoami, audit, keys.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::auth::{Admin, Caller};
use super::error::ApiError;
use crate::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: state store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({"status": "unavailable", "reason": "the state store is not answering"}),
                ),
            )
        }
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&state.recorder.stats()),
    )
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI)
}

pub async fn whoami(State(state): State<AppState>, Caller(p): Caller) -> Json<serde_json::Value> {
    let admin = p.in_any(&state.config.admin_groups);
    Json(serde_json::json!({
        "subject": p.subject,
        "groups": p.groups,
        "authn": p.authn,
        "expires_at": p.expires_at,
        "admin": admin,
    }))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn audit(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let events = state.store.list_audit(limit).await?;
    Ok(Json(serde_json::json!({ "events": events })))
}

pub async fn rotate_keys(
    State(state): State<AppState>,
    Admin(who): Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let report = crate::keys::rotate(&state).await.map_err(|e| match e {
        crate::keys::RotateError::Store(s) => ApiError::from(s),
        crate::keys::RotateError::Keyring(k) => ApiError::internal(k),
    })?;
    state
        .audit
        .record(
            &who,
            "keys.rotate",
            &report.primary_key_id,
            serde_json::json!({"previous": report.previous_key_ids, "reencrypted": report.reencrypted}),
        )
        .await;
    Ok(Json(serde_json::to_value(&report).unwrap_or_default()))
}

/// Where this server is reached: the configured public URL, or the scheme
/// and `Host` the request came with.
pub(crate) fn base_url(state: &AppState, headers: &axum::http::HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .map_or_else(|| state.config.api_listen.clone(), str::to_string);
    format!("http://{host}")
}

/// OAuth 2.0 protected-resource metadata (RFC 9728) for the MCP endpoint:
/// bearer tokens in the header, issued by the configured OIDC issuer (or
/// Gatehouse API tokens).
pub async fn protected_resource(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Json<serde_json::Value> {
    let base = base_url(&state, &headers);
    let issuers: Vec<String> = state.config.oidc.iter().map(|o| o.issuer.clone()).collect();
    Json(serde_json::json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
        "resource_name": "Gatehouse",
    }))
}

/// The Ed25519 public key audit checkpoints are signed with (not secret:
/// auditors keep a copy outside Gatehouse and verify against it).
pub async fn audit_public_key(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "algorithm": "ed25519",
        "public_key": gatehouse_access::audit::public_key_hex(&state.keyring()),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// More trusted public keys (hex, comma-separated), e.g. from before a
    /// master-key rotation.
    public_key: Option<String>,
}

/// Walks the audit chain and its checkpoints.
pub async fn audit_verify(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut trusted = vec![gatehouse_access::audit::public_key_hex(&state.keyring())];
    trusted.extend(
        q.public_key
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string),
    );
    let report = gatehouse_access::audit::verify(&state.store, &trusted).await?;
    Ok(Json(serde_json::to_value(&report).unwrap_or_default()))
}

/// Signs a checkpoint of the chain's head now.
pub async fn audit_checkpoint(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c = state.audit.checkpoint(&state.keyring()).await?;
    Ok(Json(serde_json::json!({ "checkpoint": c })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Unix milliseconds.
    since: Option<i64>,
    /// Only `jsonl`.
    format: Option<String>,
}

/// Audit events as JSON lines, oldest first, with their chain hashes.
pub async fn audit_export(
    State(state): State<AppState>,
    Admin(_): Admin,
    Query(q): Query<ExportQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if q.format.as_deref().is_some_and(|f| f != "jsonl") {
        return Err(ApiError::bad_request("format must be jsonl"));
    }
    let since = q.since.unwrap_or(0);
    let mut out = String::new();
    let mut after = 0i64;
    loop {
        let batch = state.store.audit_since(since, after, 5000).await?;
        if batch.is_empty() {
            break;
        }
        for e in &batch {
            let detail: serde_json::Value = serde_json::from_str(&e.detail)
                .unwrap_or(serde_json::Value::String(e.detail.clone()));
            out.push_str(
                &serde_json::json!({
                    "id": e.id, "ts": e.ts, "actor": e.actor, "action": e.action,
                    "target": e.target, "detail": detail,
                    "prev_hash": e.prev_hash, "hash": e.hash,
                })
                .to_string(),
            );
            out.push('\n');
        }
        after = batch.last().map_or(after, |e| e.id);
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        out,
    )
        .into_response())
}
