//! The AWS listener: AWS SDKs and the CLI use it as their endpoint
//! (`--endpoint-url`) with `AWS_ACCESS_KEY_ID` set to the connection's
//! name and `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` both set to
//! the caller's Gatehouse token. The token (sent as the session token)
//! says who calls; the request's signature, checked with the token as the
//! key, proves the holder signed this exact request. The gateway then
//! decides the request by service and action and signs it again with the
//! connection's own key; the caller's signature and token never go
//! upstream.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_core::model::ConnectionKind;
use gatehouse_core::now_ms;
use gatehouse_core::policy::spec::Class;
use gatehouse_http::aws;
use gatehouse_http::path::NormalPath;
use serde_json::json;

use super::{Exchange, Forward, ReqBody, Style, aws_error};
use crate::state::AppState;

/// Request bodies are read whole to check their signature, at most this large.
pub const AWS_BODY_LIMIT: usize = 64 << 20;

/// The router of the AWS listener: every request goes to [`handle`].
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

pub async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let denied = |service: &str, status: StatusCode, code: &str, message: &str| {
        aws_error(service, &headers, status, code, message)
    };
    let Some(authz) = header("authorization") else {
        return denied(
            "s3",
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Gatehouse needs signed requests: set AWS_ACCESS_KEY_ID to the connection's name and both AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN to your Gatehouse token (presigned URLs are not supported)",
        );
    };
    let auth = match aws::parse_authorization(authz) {
        Ok(a) => a,
        Err(e) => return denied("s3", StatusCode::FORBIDDEN, e.code(), &e.to_string()),
    };
    let service = auth.service.clone();
    let Some(token) = header("x-amz-security-token") else {
        return denied(
            &service,
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "no Gatehouse token: set AWS_SESSION_TOKEN (and AWS_SECRET_ACCESS_KEY) to your Gatehouse token",
        );
    };
    let principal = match state.auth.authenticate(token).await {
        Ok(p) => p,
        Err(e) => {
            state.metrics.auth_failure();
            state
                .audit
                .login_refused(
                    &peer.ip().to_string(),
                    json!({"protocol": "aws", "connection": auth.access_key, "message": e.to_string()}),
                )
                .await;
            let status = match e {
                gatehouse_identity::AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            return denied(&service, status, "InvalidClientTokenId", &e.to_string());
        }
    };
    state.audit.credential_used(&principal, "aws").await;
    let body = match axum::body::to_bytes(body, AWS_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return denied(
                &service,
                StatusCode::PAYLOAD_TOO_LARGE,
                "EntityTooLarge",
                &format!(
                    "the request body is over the {} MiB Gatehouse accepts on its AWS listener",
                    AWS_BODY_LIMIT >> 20
                ),
            );
        }
    };
    let body_sha = gatehouse_core::sigv4::sha256_hex(&body);
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let inbound = aws::Inbound {
        method: parts.method.as_str(),
        raw_path: &raw_path,
        raw_query: raw_query.as_deref(),
        headers: &headers,
        body_sha256: Some(&body_sha),
    };
    if let Err(e) = aws::verify(&inbound, &auth, token.as_bytes(), now_ms()) {
        return denied(&service, StatusCode::FORBIDDEN, e.code(), &e.to_string());
    }
    // Operations are read from path-style URLs (`/bucket/key`); a
    // virtual-hosted request (`bucket.host/key`) would be misread, so S3
    // requests must name an IP address or localhost.
    if service == "s3" {
        let host = header("host").unwrap_or_default();
        let name = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name.parse::<std::net::IpAddr>().is_err() && !name.eq_ignore_ascii_case("localhost") {
            return denied(
                &service,
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Gatehouse takes S3 requests in path style only: use an endpoint with an IP address (e.g. --endpoint-url http://127.0.0.1:7401) or force path-style addressing",
            );
        }
    }
    let name = auth.access_key.clone();
    let authorized = match state
        .access
        .authorize_connection(&state.keyring(), &principal, &name, ConnectionKind::Aws)
        .await
    {
        Ok(a) => a,
        Err(r) => {
            let (status, _, message) = super::http::refusal(r, &name, ConnectionKind::Aws);
            return denied(&service, status, "AccessDenied", &message);
        }
    };
    let Some(settings) = authorized.record.spec.settings.aws.clone() else {
        return denied(
            &service,
            StatusCode::BAD_GATEWAY,
            "ServiceUnavailable",
            &format!("connection {name:?} has no access key configured"),
        );
    };
    let Some(secret) = authorized.credential.get("password").cloned() else {
        return denied(
            &service,
            StatusCode::BAD_GATEWAY,
            "ServiceUnavailable",
            &format!("connection {name:?} has no secret access key stored"),
        );
    };
    let upstream =
        match state
            .upstreams
            .get(&authorized.record.spec, authorized.record.updated_at, None)
        {
            Ok(u) => u,
            Err(m) => {
                return denied(
                    &service,
                    StatusCode::BAD_GATEWAY,
                    "ServiceUnavailable",
                    &format!("connection {name:?} is misconfigured: {m}"),
                );
            }
        };
    let action = aws::action(
        &service,
        parts.method.as_str(),
        &raw_path,
        raw_query.as_deref(),
        &headers,
        Some(&body),
    );
    let class = match &action {
        Some(a) if aws::is_read_action(a) => Class::Read,
        _ => Class::Write,
    };
    let full = action.as_deref().map(|a| aws::full_action(&service, a));
    let also = action
        .as_deref()
        .map(|a| aws::iam_permissions(&service, a))
        .unwrap_or_default();
    let decoded =
        gatehouse_http::path::percent_decode(&raw_path).unwrap_or_else(|| raw_path.clone());
    let payload_hash =
        header("x-amz-content-sha256").map_or_else(|| body_sha.clone(), str::to_string);
    let region = settings
        .region
        .clone()
        .unwrap_or_else(|| auth.region.clone());
    let base = gatehouse_core::sigv4::Credentials {
        access_key: settings.access_key_id.clone(),
        secret_key: secret,
        session_token: None,
    };
    let creds = match &settings.role_arn {
        None => base,
        Some(role_arn) => {
            let sts_url = settings.sts_url.clone().unwrap_or_else(|| {
                let url = &authorized.record.spec.url;
                let on_aws = url::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(|h| h.ends_with(".amazonaws.com")))
                    .unwrap_or(false);
                if on_aws {
                    format!("https://sts.{region}.amazonaws.com")
                } else {
                    url.clone()
                }
            });
            let req = gatehouse_http::sts::RoleRequest {
                sts_url: &sts_url,
                region: &region,
                role_arn,
                external_id: settings.external_id.as_deref(),
                caller: &principal.subject,
            };
            match state
                .roles
                .get(
                    &upstream.client,
                    (&name, authorized.record.updated_at),
                    &base,
                    &req,
                    now_ms(),
                )
                .await
            {
                Ok(c) => c,
                Err(m) => {
                    tracing::warn!(connection = %name, error = %m, "could not assume the connection's role");
                    return denied(
                        &service,
                        StatusCode::BAD_GATEWAY,
                        "ServiceUnavailable",
                        &format!("connection {name:?} could not assume its role: {m}"),
                    );
                }
            }
        }
    };
    let ex = Exchange {
        principal,
        protocol: "aws",
        client_addr: peer.to_string(),
        method: parts.method.clone(),
        path: NormalPath {
            decoded,
            encoded: raw_path.clone(),
        },
        query: raw_query.clone(),
        aws: true,
        action: full,
        also,
        class,
        headers: parts.headers.clone(),
        style: Style::Aws {
            service: service.clone(),
            headers: headers.clone(),
        },
        forward: Forward::Aws {
            upstream,
            creds,
            region,
            service,
            raw_path,
            raw_query,
            payload_hash,
        },
        authorized,
    };
    super::run(&state, ex, ReqBody::Read(body)).await
}
