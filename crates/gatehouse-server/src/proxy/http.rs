//! `ANY /proxy/{connection}/{path}`: an ordinary HTTP request to an HTTP
//! connection, authenticated with the caller's Gatehouse token
//! (`Authorization: Bearer`), forwarded with the connection's credential.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatehouse_access::connect::Refusal;
use gatehouse_core::model::ConnectionKind;
use gatehouse_core::policy::spec::Class;
use serde_json::json;

use super::{Exchange, Forward, ReqBody, Style};
use crate::api::auth::Caller;
use crate::state::AppState;

/// What a refused connection looks like to an HTTP caller.
pub fn refusal(r: Refusal, name: &str, kind: ConnectionKind) -> (StatusCode, &'static str, String) {
    match r {
        Refusal::StoreDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the state store is not answering; try again shortly".into(),
        ),
        Refusal::NotFound => (
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "there is no {kind} connection named {name:?}; `gatehouse connections list` shows the ones you may use"
            ),
        ),
        Refusal::Denied { groups } => (
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "you may not use connection {name:?}: it is open to members of {}; ask for access with `gatehouse access request {name}`",
                groups.join(", ")
            ),
        ),
        Refusal::Credential => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!(
                "the stored credential of connection {name:?} cannot be opened; an administrator must set it again"
            ),
        ),
    }
}

pub async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let Caller(principal) = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(c) => c,
        Err(e) => {
            let mut r = e.into_response();
            r.headers_mut().insert(
                super::GATEHOUSE_ERROR,
                axum::http::HeaderValue::from_static("unauthorized"),
            );
            return r;
        }
    };
    let style = Style::Http;
    let raw = parts.uri.path();
    let rest = raw.strip_prefix("/proxy/").unwrap_or_default();
    let (name, raw_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let name = name.to_string();
    let authorized = match state
        .access
        .authorize_connection(&state.keyring(), &principal, &name, ConnectionKind::Http)
        .await
    {
        Ok(a) => a,
        Err(r) => {
            let (status, code, message) = refusal(r, &name, ConnectionKind::Http);
            return style.error(status, code, &message, json!({}));
        }
    };
    let path = match gatehouse_http::path::normalize(raw_path) {
        Ok(p) => p,
        Err(m) => {
            return style.error(StatusCode::BAD_REQUEST, "bad_request", &m, json!({}));
        }
    };
    let (query, removed) = gatehouse_http::headers::strip_query(parts.uri.query());
    if !removed.is_empty() {
        tracing::info!(connection = %name, params = ?removed, "dropped credential-like query parameters");
    }
    let upstream = match state.upstreams.get(
        &authorized.record.spec,
        authorized.record.updated_at,
        authorized.credential.get("password"),
    ) {
        Ok(u) => u,
        Err(m) => {
            tracing::error!(connection = %name, error = %m, "cannot build the upstream client");
            return style.error(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                &format!("connection {name:?} is misconfigured: {m}"),
                json!({}),
            );
        }
    };
    let class = match parts.method.as_str() {
        "GET" | "HEAD" | "OPTIONS" => Class::Read,
        _ => Class::Write,
    };
    let ex = Exchange {
        principal,
        authorized,
        protocol: "http",
        client_addr: peer.to_string(),
        method: parts.method.clone(),
        path: path.clone(),
        query: query.clone(),
        aws: false,
        action: None,
        also: Vec::new(),
        class,
        headers: parts.headers.clone(),
        style,
        forward: Forward::Http {
            upstream,
            path: path.encoded,
            query,
        },
    };
    super::run(&state, ex, ReqBody::Stream(body)).await
}
