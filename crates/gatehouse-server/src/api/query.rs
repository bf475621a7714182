//! The query API: `POST /v1/connections/{name}/query` runs one statement
//! through the same path as a PostgreSQL client's (policy, masking,
//! reviews, recording) and answers JSON; `GET /v1/connections/{name}/schema`
//! lists tables and columns, saying which are masked for the caller.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_core::model::{ConnectionKind, Principal};
use gatehouse_pg::local::{Answer, Failure};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use crate::state::AppState;

/// Rows returned when neither the connection nor the request says.
pub const DEFAULT_ROW_LIMIT: u64 = 1000;
/// Most rows a request may ask for.
pub const MAX_ROW_LIMIT: u64 = 100_000;
/// Statement time when neither the connection nor the request says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Values returned per request, at most (bytes of row data).
pub const MAX_RESULT_BYTES: usize = 32 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
    /// At most this many rows (lower than the connection's limit).
    pub limit: Option<u64>,
    /// At most this long, e.g. `5s` (lower than the connection's timeout).
    pub timeout: Option<String>,
}

/// What a query produced, as the HTTP API and MCP return it.
#[derive(Debug)]
pub enum Outcome {
    Rows { answer: Answer, session_id: String },
    Refused { rule: String, message: String },
    Held { review: String, message: String },
}

/// A parameter as the text PostgreSQL parses: strings as they are,
/// numbers and booleans as written, objects and arrays as JSON.
fn param_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A text value as JSON by its type: numbers and booleans as such, json
/// as JSON, everything else (numeric, dates, masked values) as strings.
fn json_value(type_oid: u32, text: Option<&str>, masked: bool) -> Value {
    let Some(t) = text else { return Value::Null };
    if masked {
        return Value::String(t.to_string());
    }
    match type_oid {
        16 => Value::Bool(t == "t"),
        20 | 21 | 23 | 26 => t
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(t.into())),
        700 | 701 => t
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(t.into())),
        114 | 3802 => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.into())),
        _ => Value::String(t.into()),
    }
}

/// PostgreSQL type names for the common type OIDs.
fn type_name(oid: u32) -> String {
    let n = match oid {
        16 => "bool",
        17 => "bytea",
        18 => "char",
        19 => "name",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        25 => "text",
        26 => "oid",
        114 => "json",
        700 => "float4",
        701 => "float8",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1700 => "numeric",
        2950 => "uuid",
        3802 => "jsonb",
        _ => return format!("oid:{oid}"),
    };
    n.to_string()
}

/// The answer as JSON: columns with types and masked flags, rows.
pub fn answer_json(answer: &Answer, session_id: &str) -> Value {
    let columns: Vec<Value> = answer
        .columns
        .iter()
        .map(|c| json!({"name": c.name, "type": type_name(c.type_oid), "masked": c.masked}))
        .collect();
    let rows: Vec<Value> = answer
        .rows
        .iter()
        .map(|r| {
            Value::Array(
                r.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let (oid, masked) = answer
                            .columns
                            .get(i)
                            .map_or((25, false), |c| (c.type_oid, c.masked));
                        json_value(oid, v.as_deref(), masked)
                    })
                    .collect(),
            )
        })
        .collect();
    json!({
        "columns": columns,
        "rows": rows,
        "row_count": answer.rows.len(),
        "command": answer.command,
        "truncated": answer.truncated,
        "notices": answer.notices,
        "session_id": session_id,
    })
}

fn duration(text: &str) -> Result<Duration, ApiError> {
    gatehouse_core::duration::parse_duration(text).map_err(|_| {
        ApiError::bad_request(format!("timeout {text:?} is not a duration such as \"5s\""))
    })
}

/// Runs one statement for `who` on connection `name`.
pub async fn run(
    state: &AppState,
    who: &Principal,
    name: &str,
    req: &QueryRequest,
    protocol: &'static str,
    client_addr: String,
) -> Result<Outcome, ApiError> {
    let rec = state.store.get_connection(name).await?;
    let mysql = rec
        .as_ref()
        .is_some_and(|r| r.spec.kind == ConnectionKind::Mysql);
    let settings = match &rec {
        Some(r)
            if matches!(
                r.spec.kind,
                ConnectionKind::Postgres | ConnectionKind::Mysql
            ) =>
        {
            r.spec.settings.clone()
        }
        Some(r) => {
            return Err(ApiError::bad_request(format!(
                "connection {name:?} is a {} connection; the query API serves PostgreSQL and MySQL connections",
                r.spec.kind
            )));
        }
        None => Default::default(),
    };
    let cap = settings
        .row_limit
        .unwrap_or(DEFAULT_ROW_LIMIT)
        .min(MAX_ROW_LIMIT);
    let limit = req.limit.map_or(cap, |l| l.min(cap));
    let cap_time = settings
        .statement_timeout_ms
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let timeout = match &req.timeout {
        Some(t) => duration(t)?.min(cap_time),
        None => cap_time,
    };
    let open_failed = |e: gatehouse_pg::OpenError| match e.code {
        "3D000" => ApiError::not_found(format!(
            "no database connection named {name:?} (see `gatehouse connections list`)"
        )),
        "42501" => ApiError::forbidden(e.message),
        "53300" => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_sessions",
            e.message,
        ),
        "53000" => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recorder_behind",
            e.message,
        ),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "upstream_unavailable", e.message),
    };
    let params: Vec<Option<String>> = req.params.iter().map(param_text).collect();
    let max_rows = u32::try_from(limit).unwrap_or(u32::MAX);
    // Both local clients answer the same calls; one statement, then close.
    macro_rules! one_statement {
        ($open:expr) => {{
            let mut client = $open.await.map_err(open_failed)?;
            let result = client
                .query_within(timeout, &req.sql, &params, max_rows, MAX_RESULT_BYTES)
                .await;
            let session_id = client.session_id.clone();
            client.close().await;
            (result, session_id)
        }};
    }
    let (result, session_id) = if mysql {
        one_statement!(gatehouse_mysql::open_local(
            state.mysql.clone(),
            who.clone(),
            name,
            protocol,
            client_addr
        ))
    } else {
        one_statement!(gatehouse_pg::open_local(
            state.pg.clone(),
            who.clone(),
            name,
            protocol,
            client_addr
        ))
    };
    match result {
        Ok(answer) => Ok(Outcome::Rows { answer, session_id }),
        Err(Failure::Refused { rule, message }) => Ok(Outcome::Refused { rule, message }),
        Err(Failure::Held { review, message }) => Ok(Outcome::Held { review, message }),
        Err(Failure::Sql {
            code,
            message,
            detail,
            hint,
        }) => Err(
            ApiError::new(StatusCode::BAD_REQUEST, "query_failed", message)
                .with(json!({"sqlstate": code, "detail": detail, "hint": hint})),
        ),
        Err(Failure::Closed(m)) if m.contains("was cancelled") => {
            Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", m))
        }
        Err(Failure::Closed(m)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "session_ended",
            format!("{m}; see the session {session_id} in `gatehouse sessions show`"),
        )),
    }
}

/// The `202` body for a held statement (or HTTP request); `then` says what
/// to send again once it is approved.
pub fn held_json(review: &str, message: &str, then: &str) -> Value {
    json!({
        "status": "pending_review",
        "review_id": review,
        "message": message,
        "wait_url": format!("/v1/reviews/{review}?wait=30s"),
        "approve_command": format!("gatehouse reviews approve {review}"),
        "then": then,
    })
}

pub async fn query(
    State(state): State<AppState>,
    Caller(who): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    Json(req): Json<QueryRequest>,
) -> Result<Response, ApiError> {
    let out = run(&state, &who, &name, &req, "http", peer.to_string()).await?;
    Ok(match out {
        Outcome::Rows { answer, session_id } => {
            Json(answer_json(&answer, &session_id)).into_response()
        }
        Outcome::Refused { rule, message } => ApiError::new(
            StatusCode::FORBIDDEN,
            "denied",
            format!("Gatehouse refused this statement: {message}"),
        )
        .with(json!({"rule": rule}))
        .into_response(),
        Outcome::Held { review, message } => (
            StatusCode::ACCEPTED,
            Json(held_json(
                &review,
                &message,
                "once approved, send the same statement (same sql and params) again: it runs once",
            )),
        )
            .into_response(),
    })
}

/// Lists the connection's tables and columns (those its upstream user can
/// see), with `masked` set for columns masked for the caller.
pub async fn describe(
    state: &AppState,
    who: &Principal,
    name: &str,
    protocol: &'static str,
    client_addr: String,
) -> Result<Value, ApiError> {
    const COLUMNS: &str = "SELECT c.table_schema, c.table_name, c.column_name, c.data_type \
        FROM information_schema.columns c \
        WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') \
        ORDER BY c.table_schema, c.table_name, c.ordinal_position";
    // MySQL: the connection's own database (the others are not reachable through it).
    const MYSQL_COLUMNS: &str = "SELECT c.table_schema, c.table_name, c.column_name, c.data_type \
        FROM information_schema.columns c \
        WHERE c.table_schema = DATABASE() \
        ORDER BY c.table_schema, c.table_name, c.ordinal_position";
    let mysql = state
        .store
        .get_connection(name)
        .await?
        .is_some_and(|r| r.spec.kind == ConnectionKind::Mysql);
    let req = QueryRequest {
        sql: if mysql { MYSQL_COLUMNS } else { COLUMNS }.into(),
        params: Vec::new(),
        limit: Some(MAX_ROW_LIMIT),
        timeout: None,
    };
    let answer = match run(state, who, name, &req, protocol, client_addr).await? {
        Outcome::Rows { answer, .. } => answer,
        Outcome::Refused { rule, message } => {
            return Err(ApiError::forbidden(format!(
                "reading the schema was refused by rule {rule}: {message}"
            )));
        }
        Outcome::Held { review, .. } => {
            return Err(ApiError::forbidden(format!(
                "reading the schema is held for review {review}"
            )));
        }
    };
    let plan = state.policy.engine().mask_plan(who, name);
    let mut tables: Vec<Value> = Vec::new();
    for row in &answer.rows {
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (schema, table, column, ty) = (get(0), get(1), get(2), get(3));
        let masked = plan
            .as_ref()
            .is_some_and(|p| p.method_for(&schema, &table, &column).is_some());
        let col = json!({"name": column, "type": ty, "masked": masked});
        match tables.last_mut() {
            Some(t) if t["schema"] == schema.as_str() && t["name"] == table.as_str() => {
                if let Some(cols) = t["columns"].as_array_mut() {
                    cols.push(col);
                }
            }
            _ => tables.push(json!({"schema": schema, "name": table, "columns": [col]})),
        }
    }
    Ok(json!({"connection": name, "tables": tables, "truncated": answer.truncated}))
}

pub async fn schema(
    State(state): State<AppState>,
    Caller(who): Caller,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    describe(&state, &who, &name, "http", peer.to_string())
        .await
        .map(Json)
}
