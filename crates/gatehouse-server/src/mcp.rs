//! The MCP server: the tools agents use to reach data through Gatehouse.
//!
//! Served at `/mcp` (streamable HTTP, behind the same bearer
//! authentication as the API) and by `gatehouse mcp` over stdio. Each tool
//! is one call of the HTTP API made with the caller's own credential: in
//! the server, the API router is called in-process; over stdio, a gateway
//! at `GATEHOUSE_URL` is called with `GATEHOUSE_TOKEN`. So MCP callers go
//! through exactly the authorization, policy, masking, reviews and
//! recording of every other caller.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use gatehouse_core::secret::Secret;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Value, json};
use tower::ServiceExt;

/// What the model is told when it connects.
pub const INSTRUCTIONS: &str = "Gatehouse is the gateway to the databases you may use; it holds their credentials, so you never need or see one. \
Start with list_connections, then describe_connection to see tables and columns. \
Every statement is checked by policy: a refusal names the rule that refused it - report it to the user and do not rephrase the statement to get around it. \
Columns marked masked come back redacted, partially hidden or hashed: never guess or reconstruct their values. \
Some statements need a person's approval: query then answers status pending_review with a review id - tell the user the id and the approve command, wait with get_review, and once approved send exactly the same statement again (it runs once). \
If you need more access than you have, request_access asks people for a time-bound grant. \
HTTP connections (kind http) are APIs: call them with http_request; Gatehouse adds their credential, and JSON fields may come back masked the same way.";

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

/// The tools, with descriptions written for the model.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "list_connections",
            "List the connections (databases and services) you may use through Gatehouse, with their kind. Use the names exactly as listed.",
            schema(json!({"type": "object", "properties": {}})),
        ),
        Tool::new(
            "describe_connection",
            "Describe a PostgreSQL connection: its tables and columns with types. Columns with \"masked\": true are masked for you by policy; their values come back redacted or hashed.",
            schema(json!({
                "type": "object",
                "properties": {"connection": {"type": "string", "description": "Connection name from list_connections"}},
                "required": ["connection"]
            })),
        ),
        Tool::new(
            "query",
            "Run one SQL statement on a connection through Gatehouse. Pass values as params ($1, $2, ...) rather than in the SQL text. \
Answers columns (name, type, masked), rows, row_count, command and truncated (more rows than the limit). \
If policy refuses the statement the result is an error naming the rule: tell the user, do not rewrite the statement to get around it. \
If the statement needs approval, the answer has status \"pending_review\" and a review_id: tell the user, call get_review to wait, and when it is approved call query again with exactly the same sql and params - it then runs once. \
Masked values (masked: true) must not be guessed or reconstructed.",
            schema(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string"},
                    "sql": {"type": "string", "description": "One SQL statement"},
                    "params": {"type": "array", "description": "Values for $1, $2, ...", "items": {}},
                    "limit": {"type": "integer", "minimum": 1, "description": "At most this many rows"}
                },
                "required": ["connection", "sql"]
            })),
        ),
        Tool::new(
            "http_request",
            "Send one HTTP request to an HTTP connection (kind http in list_connections) through Gatehouse, which adds the API's credential: never send credentials yourself. \
path is the API's path with its query, e.g. /customers?page=2. body is JSON (an object or array) or text. \
Answers the API's status, content_type and body (JSON when the API answers JSON). Fields shown as [REDACTED] or partially hidden are masked by policy: do not guess them. \
If policy refuses the request the result is an error naming the rule: tell the user, do not work around it. \
If it needs approval the answer has status \"pending_review\" and a review_id: tell the user, wait with get_review, and when approved send exactly the same request again (it runs once).",
            schema(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string", "description": "An http connection from list_connections"},
                    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]},
                    "path": {"type": "string", "description": "Starts with /; may carry a query string"},
                    "body": {"description": "JSON value, or text"},
                    "reason": {"type": "string", "description": "Why, for approvers, when a rule requires a reason"}
                },
                "required": ["connection", "method", "path"]
            })),
        ),
        Tool::new(
            "request_access",
            "Ask people for time-bound (just-in-time) access to a connection at a level: read, write, ddl or admin, for a duration such as \"30m\", with a reason. Answers a review_id; approvers decide. Use only when the user needs access they do not have.",
            schema(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string"},
                    "level": {"type": "string", "enum": ["read", "write", "ddl", "admin"]},
                    "duration": {"type": "string", "description": "e.g. 30m"},
                    "reason": {"type": "string", "description": "Why, for the approvers"}
                },
                "required": ["connection", "level", "duration", "reason"]
            })),
        ),
        Tool::new(
            "get_review",
            "Get a review (a statement or access request waiting for people), waiting up to wait_seconds (at most 60) for a decision. state is pending, approved, rejected, expired or executed (an approved statement that already ran).",
            schema(json!({
                "type": "object",
                "properties": {
                    "review_id": {"type": "string"},
                    "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 60}
                },
                "required": ["review_id"]
            })),
        ),
    ]
}

/// How tool calls reach the API.
#[derive(Debug)]
pub enum Via {
    /// This server's own API router, called in-process with the MCP
    /// request's own `Authorization` header.
    InProcess(axum::Router),
    /// A gateway over HTTP (`gatehouse mcp`, stdio).
    Remote {
        base: String,
        token: Secret,
        http: reqwest::Client,
    },
}

#[derive(Debug, Clone)]
pub struct GatehouseMcp {
    via: Arc<Via>,
}

/// One API call a tool makes.
struct Call {
    method: http::Method,
    path: String,
    body: Option<Value>,
    /// Extra request headers (the HTTP tool's reason).
    headers: Vec<(&'static str, String)>,
}

/// Most body bytes of an HTTP connection's answer given to the model.
const TOOL_BODY_LIMIT: usize = 256 * 1024;

/// An API answer: JSON when it is JSON, else the text as a JSON string.
fn answer_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| {
        let cut = &bytes[..bytes.len().min(TOOL_BODY_LIMIT)];
        let mut s = String::from_utf8_lossy(cut).into_owned();
        if bytes.len() > TOOL_BODY_LIMIT {
            s.push_str(&format!("… ({} bytes in all)", bytes.len()));
        }
        Value::String(s)
    })
}

fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn arg<'a>(args: &'a JsonObject, key: &str) -> Result<&'a str, String> {
    args.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{key} is required"))
}

/// The API call for a tool.
fn call_for(tool: &str, args: &JsonObject) -> Result<Call, String> {
    let get = |path: String| Call {
        method: http::Method::GET,
        path,
        body: None,
        headers: Vec::new(),
    };
    Ok(match tool {
        "list_connections" => get("/v1/connections".into()),
        "describe_connection" => get(format!(
            "/v1/connections/{}/schema",
            seg(arg(args, "connection")?)
        )),
        "query" => {
            let mut body = json!({
                "sql": arg(args, "sql")?,
                "params": args.get("params").cloned().unwrap_or(json!([])),
            });
            if let Some(l) = args.get("limit").and_then(Value::as_u64) {
                body["limit"] = json!(l);
            }
            Call {
                method: http::Method::POST,
                path: format!("/v1/connections/{}/query", seg(arg(args, "connection")?)),
                body: Some(body),
                headers: Vec::new(),
            }
        }
        "http_request" => {
            let method = arg(args, "method")?.to_ascii_uppercase();
            let method = http::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("method {method:?} is not an HTTP method"))?;
            let path = arg(args, "path")?;
            if !path.starts_with('/') || path.chars().any(char::is_whitespace) {
                return Err("path starts with / and has no spaces (encode them as %20)".into());
            }
            let mut headers = Vec::new();
            if let Some(r) = args.get("reason").and_then(Value::as_str) {
                headers.push(("gatehouse-reason", r.to_string()));
            }
            Call {
                method,
                path: format!("/proxy/{}{path}", seg(arg(args, "connection")?)),
                body: args.get("body").filter(|b| !b.is_null()).cloned(),
                headers,
            }
        }
        "request_access" => Call {
            method: http::Method::POST,
            path: "/v1/access/requests".into(),
            body: Some(json!({
                "connection": arg(args, "connection")?,
                "level": arg(args, "level")?,
                "duration": arg(args, "duration")?,
                "reason": arg(args, "reason")?,
            })),
            headers: Vec::new(),
        },
        "get_review" => {
            let wait = args
                .get("wait_seconds")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .min(60);
            let id = seg(arg(args, "review_id")?);
            get(if wait > 0 {
                format!("/v1/reviews/{id}?wait={wait}s")
            } else {
                format!("/v1/reviews/{id}")
            })
        }
        other => return Err(format!("no tool named {other:?}")),
    })
}

/// A tool's result from the API's answer: JSON text (and the same as
/// structured content); refusals and failures are tool errors the model
/// reads.
fn result_for(tool: &str, status: u16, body: Value, refused_by_gatehouse: bool) -> CallToolResult {
    let (is_error, value) = match (tool, status) {
        ("http_request", 202) if body["status"] == "pending_review" => (
            false,
            json!({
                "status": "pending_review",
                "review_id": body["review_id"],
                "message": body["message"],
                "approve_command": body["approve_command"],
                "next": "tell the user the review id and approve command; call get_review with wait_seconds to wait; once approved, call http_request again with exactly the same method, path and body (it runs once)",
            }),
        ),
        ("http_request", 403) if refused_by_gatehouse && body["error"]["code"] == "denied" => (
            true,
            json!({
                "error": "denied",
                "rule": body["error"]["rule"],
                "message": body["error"]["message"],
            }),
        ),
        ("http_request", _) if !refused_by_gatehouse => {
            (status >= 400, json!({"status": status, "body": body}))
        }
        (_, 200) => (false, body),
        ("query", 202) => (
            false,
            json!({
                "status": "pending_review",
                "review_id": body["review_id"],
                "message": body["message"],
                "approve_command": body["approve_command"],
                "next": "tell the user the review id and approve command; call get_review with wait_seconds to wait; once approved, call query again with exactly the same sql and params (it runs once)",
            }),
        ),
        ("request_access", 202) => (
            false,
            json!({
                "status": "pending_review",
                "review_id": body["review"]["id"],
                "review": body["review"],
                "approve_command": body["approve_command"],
            }),
        ),
        ("query", 403) if body["error"]["code"] == "denied" => (
            true,
            json!({
                "error": "denied",
                "rule": body["error"]["rule"],
                "message": body["error"]["message"],
            }),
        ),
        _ => (
            true,
            json!({
                "error": body["error"]["code"].as_str().unwrap_or("failed"),
                "status": status,
                "message": body["error"]["message"].as_str().map_or_else(|| body.to_string(), str::to_string),
            }),
        ),
    };
    let text = value.to_string();
    let mut r = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    r.structured_content = Some(value);
    r
}

impl GatehouseMcp {
    pub fn in_process(router: axum::Router) -> Self {
        Self {
            via: Arc::new(Via::InProcess(router)),
        }
    }

    pub fn remote(base: String, token: Secret) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            via: Arc::new(Via::Remote {
                base: base.trim_end_matches('/').to_string(),
                token,
                http,
            }),
        })
    }

    /// Makes the call as the MCP request's caller; returns the status, the
    /// answer, and whether the answer is Gatehouse's own refusal or error
    /// (not an HTTP connection's upstream answering).
    async fn call(&self, c: Call, parts: Option<&http::request::Parts>) -> (u16, Value, bool) {
        let own = |h: &http::HeaderMap| h.contains_key(crate::proxy::GATEHOUSE_ERROR);
        match &*self.via {
            Via::InProcess(router) => {
                let mut req = http::Request::builder().method(c.method).uri(&c.path);
                for (k, v) in &c.headers {
                    req = req.header(*k, v);
                }
                if let Some(auth) = parts.and_then(|p| p.headers.get(http::header::AUTHORIZATION)) {
                    req = req.header(http::header::AUTHORIZATION, auth);
                }
                let peer = parts
                    .and_then(|p| p.extensions.get::<ConnectInfo<SocketAddr>>())
                    .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), |c| c.0);
                let body = match c.body {
                    Some(Value::String(text)) if c.path.starts_with("/proxy/") => {
                        req = req.header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8");
                        Body::from(text)
                    }
                    Some(b) => {
                        req = req.header(http::header::CONTENT_TYPE, "application/json");
                        Body::from(b.to_string())
                    }
                    None => Body::empty(),
                };
                let mut req = match req.body(body) {
                    Ok(r) => r,
                    Err(e) => {
                        return (
                            500,
                            json!({"error": {"code": "internal", "message": e.to_string()}}),
                            true,
                        );
                    }
                };
                req.extensions_mut().insert(ConnectInfo(peer));
                let resp = match router.clone().oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                let status = resp.status().as_u16();
                let refused = own(resp.headers()) || !c.path.starts_with("/proxy/");
                let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
                    .await
                    .unwrap_or_default();
                (status, answer_value(&bytes), refused)
            }
            Via::Remote { base, token, http } => {
                let mut req = http
                    .request(c.method, format!("{base}{}", c.path))
                    .bearer_auth(token.expose());
                for (k, v) in &c.headers {
                    req = req.header(*k, v);
                }
                match &c.body {
                    Some(Value::String(text)) if c.path.starts_with("/proxy/") => {
                        req = req
                            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                            .body(text.clone());
                    }
                    Some(b) => req = req.json(b),
                    None => {}
                }
                match req.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let refused = own(resp.headers()) || !c.path.starts_with("/proxy/");
                        let bytes = resp.bytes().await.unwrap_or_default();
                        (status, answer_value(&bytes), refused)
                    }
                    Err(e) => (
                        502,
                        json!({"error": {"code": "unreachable", "message": format!("cannot reach Gatehouse at {base}: {}", e.without_url())}}),
                        true,
                    ),
                }
            }
        }
    }
}

impl ServerHandler for GatehouseMcp {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("gatehouse", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.unwrap_or_default();
        let call = call_for(&request.name, &args).map_err(|m| McpError::invalid_params(m, None))?;
        let parts = context.extensions.get::<http::request::Parts>();
        let (status, body, refused) = self.call(call, parts).await;
        Ok(result_for(&request.name, status, body, refused).into())
    }
}

/// The streamable-HTTP MCP service for `/mcp`, calling `api` in-process.
/// Stateless (no MCP session kept between requests), so any replica can
/// answer any request.
pub fn service(
    api: axum::Router<crate::state::AppState>,
    state: &crate::state::AppState,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    GatehouseMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let router = api.with_state(state.clone());
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(h) = state
        .config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
    {
        hosts.push(h);
    }
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(hosts);
    StreamableHttpService::new(
        move || Ok(GatehouseMcp::in_process(router.clone())),
        LocalSessionManager::default().into(),
        config,
    )
}
