//! The connection registry over the API. Credentials go in, never out:
//! responses say only whether a connection has one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gatehouse_core::model::{ConnectionKind, ConnectionSettings, ConnectionSpec};
use gatehouse_core::now_ms;
use gatehouse_core::secret::Secret;
use gatehouse_store::ConnectionRecord;
use serde::{Deserialize, Serialize};

use super::auth::{Admin, Caller};
use super::error::ApiError;
use crate::state::AppState;
use gatehouse_core::credential::{self as keys, Credential};

/// A connection as sent by clients, with its password in clear (over the
/// API only; it is encrypted before it is stored).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    pub name: String,
    pub kind: ConnectionKind,
    pub url: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub settings: ConnectionSettings,
    #[serde(default)]
    pub password: Option<Secret>,
}

impl ConnectionInput {
    pub fn spec(&self) -> ConnectionSpec {
        ConnectionSpec {
            name: self.name.clone(),
            kind: self.kind,
            url: self.url.clone(),
            groups: self.groups.clone(),
            settings: self.settings.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct ConnectionView {
    #[serde(flatten)]
    spec: ConnectionSpec,
    has_password: bool,
    created_at: i64,
    updated_at: i64,
}

impl From<ConnectionRecord> for ConnectionView {
    fn from(r: ConnectionRecord) -> Self {
        Self {
            has_password: r.secret.is_some(),
            spec: r.spec,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A connection as a caller who is not an administrator sees it: where
/// the upstream is (host, database user) is the gateway's business.
fn user_view(r: &ConnectionRecord) -> serde_json::Value {
    serde_json::json!({
        "name": r.spec.name,
        "kind": r.spec.kind,
        "groups": r.spec.groups,
        "settings": r.spec.settings.for_users(),
    })
}

fn view(r: ConnectionRecord, admin: bool) -> serde_json::Value {
    if admin {
        serde_json::to_value(ConnectionView::from(r)).unwrap_or_default()
    } else {
        user_view(&r)
    }
}

/// What applying an input to the stored state would change.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    pub name: String,
    pub action: &'static str,
    pub fields: Vec<&'static str>,
}

/// Compares an input with what is stored; `password` is compared by value
/// (decrypting the stored one) so re-applying the same file changes nothing.
pub fn plan(
    state: &AppState,
    existing: Option<&ConnectionRecord>,
    input: &ConnectionInput,
) -> Result<Change, ApiError> {
    let name = input.name.clone();
    let Some(old) = existing else {
        return Ok(Change {
            name,
            action: "create",
            fields: vec![],
        });
    };
    let new = input.spec();
    let mut fields = vec![];
    if old.spec.kind != new.kind {
        fields.push("kind");
    }
    if old.spec.url != new.url {
        fields.push("url");
    }
    if old.spec.groups != new.groups {
        fields.push("groups");
    }
    if old.spec.settings != new.settings {
        fields.push("settings");
    }
    let same_password = match (&old.secret, &input.password) {
        (None, None) => true,
        (Some(sealed), Some(pw)) => keys::open(&state.keyring(), &name, sealed)
            .map_err(ApiError::internal)?
            .get("password")
            .is_some_and(|p| p.ct_eq(pw)),
        _ => false,
    };
    if !same_password {
        fields.push("password");
    }
    let action = if fields.is_empty() {
        "unchanged"
    } else {
        "update"
    };
    Ok(Change {
        name,
        action,
        fields,
    })
}

/// Validates and writes an input according to `change`.
pub async fn write(
    state: &AppState,
    who: &gatehouse_core::model::Principal,
    input: &ConnectionInput,
    change: &Change,
) -> Result<(), ApiError> {
    let spec = input.spec();
    let now = now_ms();
    let secret = input.password.as_ref().map(|pw| {
        keys::seal(
            &state.keyring(),
            &spec.name,
            &Credential::password(pw.clone()),
        )
    });
    let rec = ConnectionRecord {
        spec,
        secret,
        created_at: now,
        updated_at: now,
    };
    match change.action {
        "create" => state.store.insert_connection(&rec).await?,
        "update" => {
            if !state.store.update_connection(&rec).await? {
                return Err(ApiError::conflict(format!(
                    "connection {:?} was removed meanwhile; try again",
                    rec.spec.name
                )));
            }
        }
        _ => return Ok(()),
    }
    state
        .audit
        .record(
            who,
            &format!("connection.{}", change.action),
            &rec.spec.name,
            serde_json::json!({"kind": rec.spec.kind, "url": rec.spec.url, "groups": rec.spec.groups, "fields": change.fields}),
        )
        .await;
    Ok(())
}

pub fn validate(input: &ConnectionInput) -> Result<(), ApiError> {
    input
        .spec()
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

pub async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(input): Json<ConnectionInput>,
) -> Result<(StatusCode, Json<ConnectionView>), ApiError> {
    validate(&input)?;
    if state.store.get_connection(&input.name).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "connection {:?} already exists (change it with `gatehouse apply` or remove it first)",
            input.name
        )));
    }
    let change = plan(&state, None, &input)?;
    write(&state, &who, &input, &change).await?;
    let rec = state
        .store
        .get_connection(&input.name)
        .await?
        .ok_or_else(|| ApiError::internal("connection vanished"))?;
    Ok((StatusCode::CREATED, Json(rec.into())))
}

pub async fn put(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
    Json(input): Json<ConnectionInput>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if input.name != name {
        return Err(ApiError::bad_request(
            "the name in the body differs from the one in the path",
        ));
    }
    validate(&input)?;
    let existing = state.store.get_connection(&name).await?;
    let change = plan(&state, existing.as_ref(), &input)?;
    write(&state, &who, &input, &change).await?;
    Ok(Json(serde_json::to_value(&change).unwrap_or_default()))
}

pub async fn list(
    State(state): State<AppState>,
    Caller(p): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let admin = p.in_any(&state.config.admin_groups);
    let conns: Vec<serde_json::Value> = state
        .store
        .list_connections()
        .await?
        .into_iter()
        .filter(|c| {
            admin || c.spec.allows(&p) || state.access.grant_for(&p.subject, &c.spec.name).is_some()
        })
        .map(|c| view(c, admin))
        .collect();
    Ok(Json(serde_json::json!({ "connections": conns })))
}

async fn visible(
    state: &AppState,
    p: &gatehouse_core::model::Principal,
    name: &str,
) -> Result<ConnectionRecord, ApiError> {
    let admin = p.in_any(&state.config.admin_groups);
    match state.store.get_connection(name).await? {
        Some(c)
            if admin
                || c.spec.allows(p)
                || state.access.grant_for(&p.subject, &c.spec.name).is_some() =>
        {
            Ok(c)
        }
        // Same answer whether it is absent or not allowed: names are not disclosed.
        _ => Err(ApiError::not_found(format!(
            "no connection named {name:?} that you may use (see `gatehouse connections list`)"
        ))),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Caller(p): Caller,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let admin = p.in_any(&state.config.admin_groups);
    Ok(Json(view(visible(&state, &p, &name).await?, admin)))
}

pub async fn remove(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.store.delete_connection(&name).await? {
        return Err(ApiError::not_found(format!("no connection named {name:?}")));
    }
    let ended = state
        .live
        .end_where("its connection was removed", |s| s.connection == name);
    state
        .audit
        .record(
            &who,
            "connection.remove",
            &name,
            serde_json::json!({"sessions_ended": ended}),
        )
        .await;
    Ok(Json(serde_json::json!({"name": name, "removed": true})))
}

pub async fn test(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(name): Path<String>,
) -> Result<Json<crate::upstream::TestReport>, ApiError> {
    let rec = visible(&state, &who, &name).await?;
    let cred = match &rec.secret {
        Some(sealed) => keys::open(&state.keyring(), &name, sealed).map_err(ApiError::internal)?,
        None => Credential::default(),
    };
    let report = crate::upstream::test_connection(&rec.spec, &cred).await;
    state
        .audit
        .record(
            &who,
            "connection.test",
            &name,
            serde_json::json!({"ok": report.ok}),
        )
        .await;
    Ok(Json(report))
}
