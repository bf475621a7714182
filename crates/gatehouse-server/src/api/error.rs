//! What API clients see when a request fails: a status and a JSON body
//! `{"error": {"code", "message"}}` whose message says what to do next.
//! Internal details are logged, never returned.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More fields of the error object (e.g. the rule that refused).
    pub extra: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    /// Adds fields (an object's) to the error object.
    pub fn with(mut self, extra: serde_json::Value) -> Self {
        self.extra = Some(extra);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// An internal failure: the detail goes to the log, the client gets a
    /// generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Gatehouse hit an internal error; the server log has the details",
        )
    }
}

impl From<gatehouse_store::StoreError> for ApiError {
    fn from(e: gatehouse_store::StoreError) -> Self {
        match e {
            gatehouse_store::StoreError::Conflict(what) => {
                Self::conflict(format!("{what} already exists"))
            }
            gatehouse_store::StoreError::Db(_) | gatehouse_store::StoreError::Open { .. } => {
                tracing::error!(error = %e, "state store failure");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the state store is not answering; try again shortly",
                )
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let (Some(serde_json::Value::Object(extra)), serde_json::Value::Object(e)) =
            (self.extra, &mut error)
        {
            for (k, v) in extra {
                if !v.is_null() {
                    e.insert(k, v);
                }
            }
        }
        let body = serde_json::json!({ "error": error });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"gatehouse\""),
            );
        }
        resp
    }
}
