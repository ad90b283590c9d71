//! The port every Salesforce data call goes through: a [`Transport`] sends one request to an org
//! (the server's implementation adds the connection's token, refresh on `401`, the per-org cap and
//! usage record), plus Salesforce's error body parsing and API version negotiation shared by the
//! REST, query and Bulk clients.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API version used when the org's list of versions cannot be read.
pub const FALLBACK_API_VERSION: &str = "v62.0";

/// One request to an org; `path` starts at the instance root (`/services/data/…`) and carries
/// its query string.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path and query below the instance URL.
    pub path: String,
    /// Extra request headers (the transport adds `Authorization`).
    pub headers: Vec<(String, String)>,
    /// The body, sent as is.
    pub body: Option<bytes::Bytes>,
}

impl ApiRequest {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        ApiRequest {
            method: reqwest::Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A request with a JSON body.
    pub fn json(method: reqwest::Method, path: impl Into<String>, body: &Value) -> Self {
        ApiRequest {
            method,
            path: path.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(bytes::Bytes::from(body.to_string())),
        }
    }

    /// Whether repeating the request cannot create a second effect.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            reqwest::Method::GET
                | reqwest::Method::HEAD
                | reqwest::Method::PUT
                | reqwest::Method::DELETE
        )
    }
}

/// The org's answer, body read in full (callers page large results).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes.
    pub body: bytes::Bytes,
}

impl ApiResponse {
    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when empty).
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Malformed(e.to_string()))
    }

    /// The body as JSON if the status is 2xx, else the Salesforce error it carries.
    pub fn into_json(self) -> Result<Value, ApiError> {
        if self.is_success() {
            self.json()
        } else {
            Err(ApiError::Salesforce(SalesforceErrors::from_response(&self)))
        }
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One entry of Salesforce's error array (`[{"errorCode","message","fields"}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SalesforceErrorItem {
    /// e.g. `INVALID_FIELD`, `REQUIRED_FIELD_MISSING`, `REQUEST_LIMIT_EXCEEDED`.
    pub error_code: String,
    /// Salesforce's message, intact.
    pub message: String,
    /// Fields the error is about, when given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// A non-2xx answer from Salesforce with its parsed errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SalesforceErrors {
    /// HTTP status.
    pub status: u16,
    /// The errors in Salesforce's order (one synthetic `UNKNOWN` entry if the body was not the
    /// usual array).
    pub errors: Vec<SalesforceErrorItem>,
}

impl SalesforceErrors {
    /// Parses a failed response's body: the REST error array, a single object, or OAuth's
    /// `{"error","error_description"}`.
    pub fn from_response(response: &ApiResponse) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
        let errors = match parsed {
            Some(Value::Array(items)) => items
                .into_iter()
                .filter_map(|item| serde_json::from_value::<SalesforceErrorItem>(item).ok())
                .collect(),
            Some(Value::Object(map)) => {
                if let Ok(item) =
                    serde_json::from_value::<SalesforceErrorItem>(Value::Object(map.clone()))
                {
                    vec![item]
                } else {
                    let code = map
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("UNKNOWN");
                    let message = map
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    vec![SalesforceErrorItem {
                        error_code: code.to_string(),
                        message: message.to_string(),
                        fields: Vec::new(),
                    }]
                }
            }
            _ => Vec::new(),
        };
        let errors = if errors.is_empty() {
            vec![SalesforceErrorItem {
                error_code: "UNKNOWN".into(),
                message: String::from_utf8_lossy(&response.body)
                    .chars()
                    .take(500)
                    .collect(),
                fields: Vec::new(),
            }]
        } else {
            errors
        };
        SalesforceErrors {
            status: response.status,
            errors,
        }
    }

    /// The first error's code.
    pub fn code(&self) -> &str {
        self.errors
            .first()
            .map(|e| e.error_code.as_str())
            .unwrap_or("UNKNOWN")
    }

    /// Whether any error has this code.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.error_code == code)
    }
}

impl std::fmt::Display for SalesforceErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Salesforce answered {}", self.status)?;
        for e in &self.errors {
            write!(f, ": {} {}", e.error_code, e.message)?;
        }
        Ok(())
    }
}

/// Why a data call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Salesforce answered with an error status.
    #[error("{0}")]
    Salesforce(SalesforceErrors),
    /// The org could not be reached, or the call timed out.
    #[error("Salesforce could not be reached: {0}")]
    Unreachable(String),
    /// The connection cannot be used (needs a reconnect, refresh failed, host not allowed…).
    #[error("the connection cannot be used: {0}")]
    Connection(String),
    /// The org's daily API budget is spent; nothing was sent.
    #[error("the org's API budget is spent")]
    BudgetSpent,
    /// The answer was not what the API documents.
    #[error("unexpected answer from Salesforce: {0}")]
    Malformed(String),
}

/// Sends requests to one org.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` once (apart from the token refresh-and-retry on `401 INVALID_SESSION_ID`,
    /// which implementations do themselves) and returns the answer, whatever its status.
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, ApiError>;
}

/// A transport with a fixed instance URL and access token: for tests, benchmarks and tools.
#[derive(Debug, Clone)]
pub struct StaticTransport {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// `https://…my.salesforce.com`, no trailing slash.
    pub instance_url: String,
    /// The bearer token.
    pub access_token: String,
}

#[async_trait::async_trait]
impl Transport for StaticTransport {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut req = self
            .http
            .request(
                request.method,
                format!("{}{}", self.instance_url, request.path),
            )
            .bearer_auth(&self.access_token);
        for (name, value) in &request.headers {
            req = req.header(name, value);
        }
        if let Some(body) = request.body {
            req = req.body(body);
        }
        let response = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| ApiError::Unreachable(e.without_url().to_string()))?;
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }
}

/// The org's newest REST API version (`GET /services/data`), e.g. `v62.0`.
pub async fn latest_version(transport: &dyn Transport) -> Result<String, ApiError> {
    let versions = transport
        .send(ApiRequest::get("/services/data"))
        .await?
        .into_json()?;
    versions
        .as_array()
        .and_then(|list| {
            list.iter()
                .filter_map(|v| v.get("version").and_then(Value::as_str))
                .max_by(|a, b| {
                    let num = |s: &str| s.parse::<f64>().unwrap_or(0.0);
                    num(a).total_cmp(&num(b))
                })
        })
        .map(|v| format!("v{v}"))
        .ok_or_else(|| ApiError::Malformed("no API versions listed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn parses_the_rest_error_array() {
        let e = SalesforceErrors::from_response(&response(
            400,
            r#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]"#,
        ));
        assert_eq!(e.code(), "REQUIRED_FIELD_MISSING");
        assert_eq!(e.errors[0].fields, vec!["LastName"]);
    }

    #[test]
    fn keeps_an_unexpected_body_as_unknown() {
        let e = SalesforceErrors::from_response(&response(503, "Service Unavailable"));
        assert_eq!(e.code(), "UNKNOWN");
        assert_eq!(e.errors[0].message, "Service Unavailable");
    }
}
