//! Salesforce's error and success response shapes: REST error arrays, OAuth error objects, the JSON content type.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The content type Salesforce sends on JSON responses.
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// A JSON response with Salesforce's content type.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    json_bytes(status, bytes)
}

/// Pre-serialised JSON with Salesforce's content type.
pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    resp
}

/// A REST error: a JSON array with one `{message, errorCode}` item.
pub fn sf_error(status: StatusCode, code: &str, message: &str) -> Response {
    json(
        status,
        &serde_json::json!([{"message": message, "errorCode": code}]),
    )
}

/// A REST error naming the fields involved.
pub fn sf_error_fields(
    status: StatusCode,
    code: &str,
    message: &str,
    fields: &[String],
) -> Response {
    json(
        status,
        &serde_json::json!([{"message": message, "errorCode": code, "fields": fields}]),
    )
}

/// The 401 every REST call answers for a missing, expired or revoked token.
pub fn invalid_session() -> Response {
    sf_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

/// `404 NOT_FOUND` "The requested resource does not exist".
pub fn not_found() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// An OAuth endpoint error: the object `{error, error_description}`.
pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        &serde_json::json!({"error": error, "error_description": description}),
    )
}

/// A bad JSON body.
pub fn json_parser_error(detail: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", detail)
}

/// Parses a JSON request body, answering Salesforce's `JSON_PARSER_ERROR` when it is not JSON.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(bytes)
        .map_err(|e| json_parser_error(&format!("Unexpected character: {e}")))
}

/// An HTML page (login, consent, errors).
pub fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=UTF-8"),
    );
    resp
}

/// The array under `key` of a composite-style request body: `400 JSON_PARSER_ERROR` when it is
/// missing, `400 {code}` with `message` when it holds more than `max` items.
pub fn bounded_array<'a>(
    request: &'a serde_json::Value,
    key: &str,
    max: usize,
    code: &str,
    message: &str,
) -> Result<&'a Vec<serde_json::Value>, Response> {
    let Some(items) = request.get(key).and_then(serde_json::Value::as_array) else {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("{key} is required"),
        ));
    };
    if items.len() > max {
        return Err(sf_error(StatusCode::BAD_REQUEST, code, message));
    }
    Ok(items)
}
