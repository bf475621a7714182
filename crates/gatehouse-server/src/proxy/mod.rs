//! The HTTP and AWS proxies' data path: one request, decided, held for
//! review, forwarded with the connection's credential, its response masked
//! and the exchange recorded. [`http`] takes requests at
//! `/proxy/{connection}/{path}`; [`aws`] takes AWS SDK requests on their
//! own listener and re-signs them.

pub mod aws;
pub mod http;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use gatehouse_access::connect::Authorized;
use gatehouse_access::{HoldRequest, Redactor, Started};
use gatehouse_core::model::{Authn, DEFAULT_RECORD_ROWS, Principal, RECORD_BYTES};
use gatehouse_core::now_ms;
use gatehouse_core::policy::Verdict;
use gatehouse_core::policy::spec::Class;
use gatehouse_http::Upstream;
use gatehouse_http::path::NormalPath;
use gatehouse_pg::SessionInfo;
use gatehouse_policy::{HttpBody, HttpRequest};
use gatehouse_store::{RecordEvent, ResultSample, SessionRecord, StatementEntry};
use serde_json::json;

use crate::state::AppState;

/// Request bodies read whole (to check rules on them, or to bind a review
/// to them) are at most this large.
pub const READ_LIMIT: usize = 8 << 20;
/// Responses masked are read whole, at most this large; a larger one is
/// refused (its masks could not be applied).
pub const MASK_LIMIT: usize = 16 << 20;
/// Request body bytes shown in a recording or a review.
const SHOWN_BODY: usize = 4096;

/// A response header marking Gatehouse's own refusals and errors on the
/// proxy routes, so clients (the MCP tool) can tell them from the
/// upstream's answers.
pub const GATEHOUSE_ERROR: &str = "gatehouse-error";

/// How refusals are shown to the caller.
#[derive(Debug, Clone)]
pub enum Style {
    /// `{"error": {"code", "message", …}}`, and `202` for held requests.
    Http,
    /// The AWS error format the SDK of this service parses.
    Aws {
        service: String,
        headers: Vec<(String, String)>,
    },
}

impl Style {
    pub fn error(
        &self,
        status: StatusCode,
        code: &'static str,
        message: &str,
        extra: serde_json::Value,
    ) -> Response {
        match self {
            Style::Http => {
                let mut err = json!({"code": code, "message": message});
                if let (Some(o), serde_json::Value::Object(x)) = (err.as_object_mut(), extra) {
                    o.extend(x);
                }
                let mut r = (status, axum::Json(json!({ "error": err }))).into_response();
                r.headers_mut()
                    .insert(GATEHOUSE_ERROR, HeaderValue::from_static(code));
                r
            }
            Style::Aws { service, headers } => {
                let aws_code = match code {
                    "denied" | "forbidden" => "AccessDenied",
                    "pending_review" => "GatehouseReviewPending",
                    "unauthorized" => "InvalidClientTokenId",
                    "not_found" => "AccessDenied",
                    "bad_gateway" => "ServiceUnavailable",
                    "too_large" => "EntityTooLarge",
                    "bad_request" => "InvalidRequest",
                    "store_unavailable" | "recorder_behind" => "ServiceUnavailable",
                    _ => "InternalFailure",
                };
                aws_error(service, headers, status, aws_code, message)
            }
        }
    }
}

/// An AWS-format error response.
pub fn aws_error(
    service: &str,
    headers: &[(String, String)],
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    let request_id = gatehouse_store::reviews::new_id("req");
    let (content_type, body, extra) =
        gatehouse_http::aws::error_body(service, headers, code, message, &request_id);
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(k, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amz-request-id", v);
    }
    resp
}

/// A request body: still streaming from the caller, or read whole.
#[derive(Debug)]
pub enum ReqBody {
    Stream(Body),
    Read(Bytes),
}

impl ReqBody {
    /// Reads the body whole; `Err` when it is over `limit`.
    pub async fn read(self, limit: usize) -> Result<Bytes, String> {
        match self {
            ReqBody::Read(b) => Ok(b),
            ReqBody::Stream(b) => axum::body::to_bytes(b, limit).await.map_err(|_| {
                format!(
                    "the request body is over the {} MiB Gatehouse reads to check rules or bind a review, or it did not arrive whole",
                    limit >> 20
                )
            }),
        }
    }
}

/// How the request reaches the upstream.
#[derive(Debug)]
pub enum Forward {
    /// An HTTP connection: the credential header (or client certificate).
    Http {
        upstream: Arc<Upstream>,
        /// Normalised, encoded path and the query left after credential
        /// parameters were removed.
        path: String,
        query: Option<String>,
    },
    /// An AWS connection: the request re-signed with the connection's key.
    Aws {
        upstream: Arc<Upstream>,
        creds: gatehouse_core::sigv4::Credentials,
        region: String,
        service: String,
        raw_path: String,
        raw_query: Option<String>,
        /// The payload hash the caller signed (`UNSIGNED-PAYLOAD`, a hex hash…).
        payload_hash: String,
    },
}

/// One request, ready for its decision.
#[derive(Debug)]
pub struct Exchange {
    pub principal: Principal,
    pub authorized: Authorized,
    pub protocol: &'static str,
    pub client_addr: String,
    pub method: axum::http::Method,
    pub path: NormalPath,
    pub query: Option<String>,
    pub aws: bool,
    pub action: Option<String>,
    /// IAM permissions the AWS operation needs, also matched by rules.
    pub also: Vec<String>,
    pub class: Class,
    pub headers: HeaderMap,
    pub style: Style,
    pub forward: Forward,
}

/// The reason a caller gives for a request held for review.
const REASON_HEADER: &str = "gatehouse-reason";

fn shown_body(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let cut = &body[..body.len().min(SHOWN_BODY)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if body.len() > SHOWN_BODY {
        s.push_str(&format!("… ({} bytes)", body.len()));
    }
    Some(s)
}

/// A recorded exchange: its session, started on creation, ended on drop.
struct Recording {
    state: AppState,
    /// Room reserved for the exchange's record (taken when it is written).
    admission: Option<gatehouse_store::recorder::Admission>,
    id: String,
    started_at: i64,
    text: String,
    record_rows: u64,
    registered: Option<(i32, i32)>,
    end: &'static str,
}

impl Recording {
    fn start(state: &AppState, ex: &Exchange, text: String) -> Result<Self, String> {
        // Nothing runs unrecorded unless the operator chose so.
        let admission = state.recorder.admit();
        if admission.is_none() && !state.config.record_fail_open {
            return Err("the session recorder is behind".into());
        }
        let id = gatehouse_store::reviews::new_id("s");
        let authn = match &ex.principal.authn {
            Authn::Token { name } => format!("token:{name}"),
            Authn::Oidc { issuer } => format!("oidc:{issuer}"),
        };
        let started_at = now_ms();
        state
            .recorder
            .record(RecordEvent::SessionStart(SessionRecord {
                id: id.clone(),
                principal: ex.principal.subject.clone(),
                authn,
                connection: ex.authorized.record.spec.name.clone(),
                protocol: ex.protocol.into(),
                client_addr: ex.client_addr.clone(),
                started_at,
                ended_at: None,
                end_reason: None,
            }))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            state: state.clone(),
            admission,
            id,
            started_at,
            text,
            record_rows: ex
                .authorized
                .record
                .spec
                .settings
                .record_rows
                .unwrap_or(DEFAULT_RECORD_ROWS),
            registered: None,
            end: "request done",
        })
    }

    /// Records the request's outcome.
    fn statement(
        &mut self,
        verdict: &Verdict,
        status: Option<u16>,
        error: Option<&str>,
        body: Option<&[u8]>,
    ) {
        let Some(admission) = self
            .admission
            .take()
            .or_else(|| self.state.recorder.admit())
        else {
            tracing::error!(session = %self.id, "the recorder is behind; an HTTP exchange ran unrecorded (--when-recorder-behind run)");
            return;
        };
        let (decision, rule) = match verdict {
            Verdict::Allow { rule } => ("allow", rule.clone()),
            Verdict::Deny { rule, .. } => ("deny", Some(rule.clone())),
            Verdict::Review { rule, .. } => ("review", Some(rule.clone())),
        };
        let command = status.map(|s| format!("HTTP {s}"));
        let columns = vec!["response".to_string()];
        let (result, truncated) = match body {
            Some(b) if self.record_rows > 0 => {
                let cut = &b[..b.len().min(RECORD_BYTES)];
                let mut sample = ResultSample::default();
                sample.push_row([Some(String::from_utf8_lossy(cut).as_ref())]);
                (Some(sample), b.len() > RECORD_BYTES)
            }
            _ => (None, false),
        };
        let mut log = self.state.recorder.session_log(&self.id);
        log.push(
            admission,
            &StatementEntry {
                seq: 1,
                started_at: self.started_at,
                duration_us: Some((now_ms() - self.started_at).saturating_mul(1000)),
                sql: &self.text,
                decision,
                rule: rule.as_deref(),
                command: command.as_deref(),
                rows: None,
                error,
                columns: result.as_ref().map(|_| columns.as_slice()),
                result: result.as_ref(),
                result_truncated: truncated,
                ..StatementEntry::default()
            },
        );
        log.flush();
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(key) = self.registered {
            self.state.live.unregister(key);
        }
        let _ = self.state.recorder.record(RecordEvent::SessionEnd {
            id: self.id.clone(),
            at: now_ms(),
            reason: self.end.into(),
        });
    }
}

/// Decides, holds, forwards, masks and records one request.
pub async fn run(state: &AppState, ex: Exchange, mut body: ReqBody) -> Response {
    let engine = state.policy.engine();
    let conn = ex.authorized.record.spec.name.clone();
    let grant = state.access.grant_for(&ex.principal.subject, &conn);
    let grant_ref = grant.as_ref().map(|(id, level)| (id.as_str(), *level));
    let needs_body = engine.http_needs_body(&ex.principal, &conn);
    let mut body_bytes: Option<Bytes> = match &body {
        ReqBody::Read(b) => Some(b.clone()),
        ReqBody::Stream(_) => None,
    };
    if needs_body && body_bytes.is_none() {
        let taken = std::mem::replace(&mut body, ReqBody::Read(Bytes::new()));
        match taken.read(READ_LIMIT).await {
            Ok(b) => {
                body_bytes = Some(b.clone());
                body = ReqBody::Read(b);
            }
            Err(m) => {
                return ex
                    .style
                    .error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &m, json!({}));
            }
        }
    }
    let method = ex.method.as_str().to_ascii_uppercase();
    let decide = |body: Option<&Bytes>| {
        let doc = body
            .filter(|b| !b.is_empty())
            .map(|b| serde_json::from_slice::<serde_json::Value>(b));
        let http_body = match &doc {
            None if body.is_some() => HttpBody::Empty,
            None => HttpBody::Unreadable,
            Some(Ok(v)) => HttpBody::Json(v),
            Some(Err(_)) => HttpBody::Unreadable,
        };
        let req = HttpRequest {
            method: &method,
            path: &ex.path.decoded,
            query: ex.query.as_deref(),
            aws: ex.aws,
            action: ex.action.as_deref(),
            also: &ex.also,
            class: ex.class,
            body: http_body,
        };
        (
            engine.decide_http(&ex.principal, &conn, &req, now_ms(), grant_ref),
            req.text(),
        )
    };
    let (mut decision, text) = decide(body_bytes.as_ref());
    // A review binds the exact request, body included.
    if matches!(decision.verdict, Verdict::Review { .. }) && body_bytes.is_none() {
        let taken = std::mem::replace(&mut body, ReqBody::Read(Bytes::new()));
        match taken.read(READ_LIMIT).await {
            Ok(b) => {
                body_bytes = Some(b.clone());
                body = ReqBody::Read(b);
            }
            Err(m) => {
                return ex
                    .style
                    .error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &m, json!({}));
            }
        }
        decision = decide(body_bytes.as_ref()).0;
    }
    let shown = body_bytes.as_deref().and_then(shown_body);
    let recorded_text = match &shown {
        Some(b) => format!("{text}\n\n{b}"),
        None => text.clone(),
    };
    // The caller's content detectors apply to what is recorded, held for
    // review and audited of the request, as to the answer.
    let detectors = engine
        .mask_plan(&ex.principal, &conn)
        .and_then(|p| p.detectors.clone());
    let redact = move |t: &str| detectors.as_ref().and_then(|d| d.redact(t));
    let recorded_text = redact(&recorded_text).unwrap_or(recorded_text);
    let mut rec = match Recording::start(state, &ex, recorded_text) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot record an HTTP exchange");
            return ex.style.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "recorder_behind",
                "Gatehouse cannot record this request right now, so it does not run; try again shortly",
                json!({}),
            );
        }
    };
    let mut verdict = decision.verdict.clone();
    if let Verdict::Review {
        rule,
        message,
        approvers,
        approvals,
        timeout_ms,
        require_reason,
    } = &decision.verdict
    {
        let reason = ex
            .headers
            .get(REASON_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| r.chars().take(1000).collect::<String>());
        if *require_reason && reason.is_none() {
            let m = format!(
                "{message}; rule {rule} needs a reason: send the header `Gatehouse-Reason: why` with the request"
            );
            let v = Verdict::Deny {
                rule: rule.clone(),
                message: m.clone(),
            };
            rec.statement(&v, None, Some(&m), None);
            return ex.style.error(
                StatusCode::FORBIDDEN,
                "denied",
                &format!("Gatehouse refused this request: {m}"),
                json!({"rule": rule}),
            );
        }
        let body = body_bytes.clone().unwrap_or_default();
        let hold = HoldRequest {
            connection: &conn,
            principal: &ex.principal,
            sql: &text,
            params_raw: &body,
            params_text: shown.clone(),
            rule,
            approvers,
            approvals: *approvals,
            timeout_ms: *timeout_ms,
            reason,
            session_id: Some(&rec.id),
            redact: Some(Redactor(&redact)),
        };
        match state.access.start_hold(&hold, message, false).await {
            Started::Pending(review) => {
                rec.statement(
                    &decision.verdict,
                    None,
                    Some(&format!("held for review {review}")),
                    None,
                );
                rec.end = "held for review";
                return match &ex.style {
                    Style::Http => {
                        let mut r = (
                            StatusCode::ACCEPTED,
                            axum::Json(crate::api::query::held_json(
                                &review,
                                message,
                                "once approved, send the same request (same method, path, query and body) again: it runs once",
                            )),
                        )
                            .into_response();
                        r.headers_mut()
                            .insert(GATEHOUSE_ERROR, HeaderValue::from_static("pending_review"));
                        r
                    }
                    style => style.error(
                        StatusCode::FORBIDDEN,
                        "pending_review",
                        &format!(
                            "Gatehouse is holding this request for review {review} ({message}); approve it with `gatehouse reviews approve {review}`, then send the same request again: it runs once"
                        ),
                        json!({}),
                    ),
                };
            }
            Started::Decided(v) => verdict = v,
        }
    }
    if let Verdict::Deny { rule, message } = &verdict {
        rec.statement(&verdict, None, Some(message), None);
        return ex.style.error(
            StatusCode::FORBIDDEN,
            "denied",
            &format!("Gatehouse refused this request: {message}"),
            json!({"rule": rule}),
        );
    }
    // Runs: registered as a live session, so revoking access ends it.
    let token = match &ex.principal.authn {
        Authn::Token { name } => Some(name.clone()),
        Authn::Oidc { .. } => None,
    };
    let mut grants: Vec<String> = ex.authorized.via_grant.iter().cloned().collect();
    if let Verdict::Allow { rule: Some(r) } = &verdict
        && let Some(id) = r.strip_prefix("grant:")
    {
        grants.push(id.to_string());
    }
    let reg = state.live.register(
        SessionInfo {
            id: rec.id.clone(),
            principal: ex.principal.subject.clone(),
            connection: conn.clone(),
            token,
            groups: ex.principal.groups.clone(),
            expires_at: ex.principal.expires_at,
            started_at: rec.started_at,
            grants,
        },
        None,
        (0, 0),
    );
    rec.registered = Some(reg.key);
    let timeout = ex
        .authorized
        .record
        .spec
        .settings
        .statement_timeout_ms
        .map(std::time::Duration::from_millis);
    let sent = send(&ex, body, decision.mask.is_some(), timeout).await;
    let resp = match sent {
        Ok(r) => r,
        Err(m) => {
            rec.statement(&verdict, None, Some(&m), None);
            rec.end = "upstream failed";
            return ex
                .style
                .error(StatusCode::BAD_GATEWAY, "bad_gateway", &m, json!({}));
        }
    };
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if gatehouse_http::headers::forward_response_header(k.as_str()) {
            out_headers.append(k.clone(), v.clone());
        }
    }
    let Some(mask) = decision.mask.clone() else {
        // Nothing to mask: the body streams through, and stops if the
        // caller's access ends meanwhile.
        rec.statement(&verdict, Some(status.as_u16()), None, None);
        let kill = reg.kill;
        let upstream = resp.bytes_stream();
        let stream = futures_util::stream::unfold((upstream, Some(rec)), move |(mut up, rec)| {
            let mut kill = kill.clone();
            async move {
                let rec = rec?;
                tokio::select! {
                    item = up.next() => match item {
                        Some(Ok(b)) => Some((Ok::<Bytes, std::io::Error>(b), (up, Some(rec)))),
                        Some(Err(e)) => {
                            let mut rec = rec;
                            rec.end = "upstream failed";
                            Some((Err(std::io::Error::other(e.to_string())), (up, None)))
                        }
                        None => None,
                    },
                    _ = kill.wait_for(Option::is_some) => {
                        let mut rec = rec;
                        rec.end = "access ended";
                        Some((Err(std::io::Error::other("access ended")), (up, None)))
                    }
                }
            }
        });
        let mut r = Response::new(Body::from_stream(stream));
        *r.status_mut() = status;
        *r.headers_mut() = out_headers;
        return r;
    };
    // Masks apply: the response is read whole (up to a limit), masked,
    // and only then returned.
    let encoded = out_headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
    if encoded {
        let m = "the upstream answered with a compressed body although Gatehouse asked for none; masks apply to this caller, so the response is withheld";
        rec.statement(&verdict, Some(status.as_u16()), Some(m), None);
        return ex
            .style
            .error(StatusCode::BAD_GATEWAY, "bad_gateway", m, json!({}));
    }
    let body = match read_limited(resp, MASK_LIMIT).await {
        Ok(b) => b,
        Err(m) => {
            rec.statement(&verdict, Some(status.as_u16()), Some(&m), None);
            return ex
                .style
                .error(StatusCode::BAD_GATEWAY, "bad_gateway", &m, json!({}));
        }
    };
    let hash_key = state.keys.get().derive("mask-hash");
    let masked: Vec<u8> = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut doc) => {
            if mask.plan.mask_json(&mut doc, &*hash_key) > 0 {
                serde_json::to_vec(&doc).unwrap_or_default()
            } else {
                body.to_vec()
            }
        }
        Err(_) => match (std::str::from_utf8(&body), &mask.plan.detectors) {
            (Ok(text), Some(d)) => d
                .redact(text)
                .map_or_else(|| body.to_vec(), String::into_bytes),
            _ => body.to_vec(),
        },
    };
    rec.statement(&verdict, Some(status.as_u16()), None, Some(&masked));
    out_headers.remove(axum::http::header::CONTENT_LENGTH);
    out_headers.remove(axum::http::header::ETAG);
    out_headers.remove("content-md5");
    let mut r = Response::new(Body::from(masked));
    *r.status_mut() = status;
    *r.headers_mut() = out_headers;
    r
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Result<Bytes, String> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(format!(
            "the response is over the {} MiB Gatehouse reads to apply masks, so it is withheld",
            limit >> 20
        ));
    }
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| format!("the upstream's response broke off: {e}"))?;
        if out.len() + chunk.len() > limit {
            return Err(format!(
                "the response is over the {} MiB Gatehouse reads to apply masks, so it is withheld",
                limit >> 20
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// Sends the request upstream.
async fn send(
    ex: &Exchange,
    body: ReqBody,
    masks: bool,
    timeout: Option<std::time::Duration>,
) -> Result<reqwest::Response, String> {
    let method = reqwest::Method::from_bytes(ex.method.as_str().as_bytes())
        .map_err(|_| "the request method is not valid".to_string())?;
    let (upstream, url, mut headers) = match &ex.forward {
        Forward::Http {
            upstream,
            path,
            query,
        } => {
            let mut h = reqwest::header::HeaderMap::new();
            let custom = match &ex.authorized.record.spec.settings.http_auth {
                Some(gatehouse_core::model::HttpAuth::Header { name }) => Some(name.as_str()),
                _ => None,
            };
            for (k, v) in &ex.headers {
                if gatehouse_http::headers::forward_request_header(k.as_str(), custom) {
                    h.append(k.clone(), v.clone());
                }
            }
            if let Some((k, v)) = upstream.credential_header() {
                h.insert(k.clone(), v.clone());
            }
            (upstream.clone(), upstream.url(path, query.as_deref()), h)
        }
        Forward::Aws {
            upstream,
            creds,
            region,
            service,
            raw_path,
            raw_query,
            payload_hash,
        } => {
            let pairs: Vec<(String, String)> = ex
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let fwd = gatehouse_http::aws::forwardable(&pairs);
            let signed = gatehouse_http::aws::resign(
                ex.method.as_str(),
                &upstream.host(),
                raw_path,
                raw_query.as_deref(),
                &fwd,
                payload_hash,
                creds,
                region,
                service,
                now_ms(),
            );
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in fwd.iter().chain(signed.iter()) {
                if let (Ok(k), Ok(v)) = (
                    reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                    reqwest::header::HeaderValue::from_str(v),
                ) {
                    h.append(k, v);
                }
            }
            let path = if raw_path.is_empty() { "/" } else { raw_path };
            let url = upstream.url(path, raw_query.as_deref());
            (upstream.clone(), url, h)
        }
    };
    if masks {
        headers.insert(
            reqwest::header::ACCEPT_ENCODING,
            reqwest::header::HeaderValue::from_static("identity"),
        );
    }
    let mut req = upstream.client.request(method, &url).headers(headers);
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    let body = match body {
        ReqBody::Read(b) => reqwest::Body::from(b),
        ReqBody::Stream(b) => {
            // A streamed body keeps the length the caller announced, so
            // upstreams that refuse chunked uploads still get one.
            if let Some(n) = ex.headers.get(axum::http::header::CONTENT_LENGTH) {
                req = req.header(reqwest::header::CONTENT_LENGTH, n.clone());
            }
            reqwest::Body::wrap_stream(b.into_data_stream())
        }
    };
    req = req.body(body);
    req.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "did not answer in time".to_string()
        } else if e.is_connect() {
            "is unreachable".to_string()
        } else {
            "failed".to_string()
        };
        format!(
            "the upstream of connection {} {what}: {}",
            ex.authorized.record.spec.name,
            error_chain(&e)
        )
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Compile-time check: the data path's future can move between threads
/// (axum handlers need it), whatever the exchange holds.
#[allow(dead_code)]
fn _send_check(state: AppState, ex: Exchange) {
    fn is_send<T: Send>(_: T) {}
    is_send(run(&state, ex, ReqBody::Read(Bytes::new())));
}
