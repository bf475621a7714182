//! The HTTP API under `/v1`, plus `/healthz`, `/readyz` and `/metrics`.
//! The OpenAPI document (`openapi.json` beside this file) describes every
//! route in [`ROUTES`]; a test keeps the two in step.

mod apply;
pub mod auth;
mod connections;
pub mod error;
mod meta;
mod policy;
pub mod query;
mod reviews;
mod sessions;
mod tokens;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// Every route, as (method, path) in OpenAPI's path syntax.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("get", "/v1/whoami"),
    ("get", "/.well-known/oauth-protected-resource"),
    ("post", "/mcp"),
    ("get", "/v1/tokens"),
    ("post", "/v1/tokens"),
    ("delete", "/v1/tokens/{name}"),
    ("get", "/v1/connections"),
    ("post", "/v1/connections"),
    ("get", "/v1/connections/{name}"),
    ("put", "/v1/connections/{name}"),
    ("delete", "/v1/connections/{name}"),
    ("post", "/v1/connections/{name}/test"),
    ("post", "/v1/connections/{name}/query"),
    ("get", "/v1/connections/{name}/schema"),
    ("post", "/v1/apply"),
    ("get", "/v1/policy"),
    ("put", "/v1/policy"),
    ("post", "/v1/policy/test"),
    ("post", "/v1/keys/rotate"),
    ("get", "/v1/audit"),
    ("get", "/v1/audit/verify"),
    ("get", "/v1/audit/export"),
    ("get", "/v1/audit/public-key"),
    ("post", "/v1/audit/checkpoint"),
    ("get", "/v1/sessions"),
    ("get", "/v1/sessions/{id}"),
    ("get", "/v1/reviews"),
    ("get", "/v1/reviews/{id}"),
    ("post", "/v1/reviews/{id}/approve"),
    ("post", "/v1/reviews/{id}/reject"),
    ("post", "/v1/access/requests"),
    ("get", "/v1/access/grants"),
    ("delete", "/v1/access/grants/{id}"),
    ("get", "/proxy/{connection}/{path}"),
    ("post", "/proxy/{connection}/{path}"),
    ("put", "/proxy/{connection}/{path}"),
    ("patch", "/proxy/{connection}/{path}"),
    ("delete", "/proxy/{connection}/{path}"),
    ("head", "/proxy/{connection}/{path}"),
    ("options", "/proxy/{connection}/{path}"),
];

pub const OPENAPI: &str = include_str!("openapi.json");

/// The API, with the MCP server at `/mcp` (whose tools call the API).
pub fn router(state: AppState) -> Router {
    let api = api_router(state.clone());
    let mcp = crate::mcp::service(api.clone(), &state);
    api.route(
        "/.well-known/oauth-protected-resource",
        get(meta::protected_resource),
    )
    .route(
        "/.well-known/oauth-protected-resource/mcp",
        get(meta::protected_resource),
    )
    .with_state(state.clone())
    .nest_service(
        "/mcp",
        tower::ServiceBuilder::new()
            .layer(middleware::from_fn_with_state(state, auth::mcp_bearer))
            .service(mcp),
    )
}

fn api_router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(meta::metrics))
        .route("/v1/openapi.json", get(meta::openapi))
        .route("/v1/whoami", get(meta::whoami))
        .route("/v1/audit", get(meta::audit))
        .route("/v1/audit/verify", get(meta::audit_verify))
        .route("/v1/audit/export", get(meta::audit_export))
        .route("/v1/audit/public-key", get(meta::audit_public_key))
        .route("/v1/audit/checkpoint", post(meta::audit_checkpoint))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{name}", axum::routing::delete(tokens::revoke))
        .route(
            "/v1/connections",
            get(connections::list).post(connections::create),
        )
        .route(
            "/v1/connections/{name}",
            get(connections::show)
                .put(connections::put)
                .delete(connections::remove),
        )
        .route("/v1/connections/{name}/test", post(connections::test))
        .route("/v1/connections/{name}/query", post(query::query))
        .route("/v1/connections/{name}/schema", get(query::schema))
        .route("/v1/apply", post(apply::apply))
        .route("/v1/policy", get(policy::get).put(policy::put))
        .route("/v1/policy/test", post(policy::test))
        .route("/v1/sessions", get(sessions::list))
        .route("/v1/sessions/{id}", get(sessions::show))
        .route("/v1/keys/rotate", post(meta::rotate_keys))
        .route("/v1/reviews", get(reviews::list))
        .route("/v1/reviews/{id}", get(reviews::show))
        .route("/v1/reviews/{id}/approve", post(reviews::approve))
        .route("/v1/reviews/{id}/reject", post(reviews::reject))
        .route("/v1/access/requests", post(reviews::request))
        .route("/v1/access/grants", get(reviews::grants))
        .route(
            "/proxy/{connection}",
            axum::routing::any(crate::proxy::http::handle),
        )
        .route(
            "/proxy/{connection}/",
            axum::routing::any(crate::proxy::http::handle),
        )
        .route(
            "/proxy/{connection}/{*path}",
            axum::routing::any(crate::proxy::http::handle),
        )
        .route(
            "/v1/access/grants/{id}",
            axum::routing::delete(reviews::revoke),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    state
        .metrics
        .http_request(&method, &route, resp.status().as_u16());
    resp
}
