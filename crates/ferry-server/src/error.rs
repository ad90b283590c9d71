//! The one error type at the HTTP edge: a stable `code`, a safe message, Nango's `{"error":{…}}` envelope; 5xx causes are logged once and never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer of the public API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code (`unknown_connection`, `invalid_body`, …).
    pub code: &'static str,
    /// A message a person can act on; never contains secrets or internal error text.
    pub message: String,
    /// Validation issues (`{code, message, path}`) for `invalid_*` errors.
    pub errors: Vec<serde_json::Value>,
    /// Extra structured data (`payload`).
    pub payload: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            payload: None,
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 with an authentication code.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400 `invalid_body` naming the field at `path`.
    pub fn invalid_body(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            errors: vec![
                json!({"code": "custom", "message": message, "path": path.split('.').filter(|p| !p.is_empty()).collect::<Vec<_>>()}),
            ],
            ..Self::bad_request("invalid_body", format!("{path}: {message}"))
        }
    }

    /// 400 `invalid_query_params` naming the parameter.
    pub fn invalid_query(param: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError {
            errors: vec![json!({"code": "custom", "message": message, "path": [param]})],
            ..Self::bad_request("invalid_query_params", format!("{param}: {message}"))
        }
    }

    /// 500 `server_error`: the cause is logged here, once, and the client sees an opaque message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "An internal error occurred; it has been logged.",
        )
    }

    /// Attaches a payload.
    pub fn with_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = Some(payload);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(map) = error.as_object_mut() {
            if !self.errors.is_empty() {
                map.insert("errors".into(), serde_json::Value::Array(self.errors));
            }
            if let Some(p) = self.payload {
                map.insert("payload".into(), p);
            }
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

impl From<ferry_store::StoreError> for ApiError {
    fn from(e: ferry_store::StoreError) -> Self {
        match e {
            ferry_store::StoreError::OrgMismatch { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "org_mismatch",
                "these credentials belong to another Salesforce org than the connection; \
                 records of two orgs never mix: create a new connection instead",
            ),
            other => ApiError::internal(other),
        }
    }
}
