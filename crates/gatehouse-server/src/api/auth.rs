//! Request authentication: the `Authorization: Bearer …` header becomes a
//! [`Caller`]; [`Admin`] additionally requires an admin group.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use gatehouse_core::model::Principal;
use gatehouse_identity::AuthError;

use super::error::ApiError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

/// An authenticated caller in one of the admin groups.
#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("send your Gatehouse token as `Authorization: Bearer TOKEN` (set GATEHOUSE_TOKEN for the CLI)"))?
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized(
            "the Authorization header must be `Bearer TOKEN`",
        ));
    }
    Ok(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        match state.auth.authenticate(token).await {
            Ok(p) => {
                state.audit.credential_used(&p, "http").await;
                Ok(Caller(p))
            }
            Err(e) => {
                state.metrics.auth_failure();
                let source = parts
                    .extensions
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
                state
                    .audit
                    .login_refused(
                        &source,
                        serde_json::json!({"protocol": "http", "path": parts.uri.path(), "message": e.to_string()}),
                    )
                    .await;
                let status = match e {
                    AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::UNAUTHORIZED,
                };
                Err(ApiError::new(status, "unauthorized", e.to_string()))
            }
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        if p.in_any(&state.config.admin_groups) {
            Ok(Admin(p))
        } else {
            Err(ApiError::forbidden(format!(
                "this needs an admin: {} is not in any of the groups {}",
                p.subject,
                state.config.admin_groups.join(", ")
            )))
        }
    }
}

/// Guards `/mcp`: the bearer credential must authenticate; otherwise 401
/// with a `WWW-Authenticate` challenge pointing at the protected-resource
/// metadata, as MCP clients expect.
pub async fn mcp_bearer(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(_) => {
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => {
            let base = super::meta::base_url(&state, &parts.headers);
            let status = e.status;
            let mut resp = e.into_response();
            if status == StatusCode::UNAUTHORIZED
                && let Ok(v) = axum::http::HeaderValue::from_str(&format!(
                    "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource\""
                ))
            {
                resp.headers_mut()
                    .insert(axum::http::header::WWW_AUTHENTICATE, v);
            }
            resp
        }
    }
}
