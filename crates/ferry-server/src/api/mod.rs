//! The public HTTP API: Nango-compatible routes, authentication by environment secret key, strict query validation, the JSON body rules.

pub mod actions;
pub mod auth;
pub mod connect;
pub mod connect_ui;
pub mod connections;
pub mod environment;
pub mod integrations;
pub mod logs;
pub mod oauth;
pub mod pages;
pub mod providers;
pub mod proxy;
pub mod records;
pub mod syncs;

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;

/// The whole router, with each route family's limits: the API routes get the request timeout
/// and the API body limit. Routes that may refresh a token or call Salesforce (connections,
/// actions, the proxy) are bounded by the upstream timeouts instead: cutting a refresh short
/// could lose a rotated refresh token. The proxy has its own (larger) body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let limits = state.config.limits;
    let api = Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"result": "ok"})) }),
        )
        .merge(providers::routes())
        .merge(integrations::routes())
        .merge(connect::routes())
        .merge(connect_ui::routes())
        .merge(oauth::routes())
        .merge(environment::routes())
        .merge(records::routes())
        .merge(syncs::routes())
        .merge(logs::routes())
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(limits.request_timeout_ms.max(1)),
            time_limit,
        ))
        .layer(DefaultBodyLimit::max(limits.api_body_bytes));
    let upstream_bound = Router::new()
        .merge(connections::routes())
        .merge(actions::routes())
        .layer(DefaultBodyLimit::max(limits.api_body_bytes))
        // The proxy streams (or buffers up to its own small replay limit): only the streamed
        // length is capped.
        .merge(proxy::routes().layer(RequestBodyLimitLayer::new(limits.proxy_body_bytes)));
    api.merge(upstream_bound)
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}

/// Answers `503 request_timeout` when a request runs past the configured time.
async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            "the request took longer than the server allows; try again",
        )
        .into_response(),
    }
}

/// Parses a query string, refusing parameters outside `allowed` (as Nango does).
pub fn strict_query(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::invalid_query(&k, "unrecognized query parameter"));
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

/// Parses a JSON body into `T`, answering `415 invalid_content_type` for a non-JSON content type
/// and `400 invalid_body` naming the problem otherwise.
pub fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !ct.is_empty() && !ct.starts_with("application/json") {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_content_type",
                "the body must be application/json",
            ));
        }
    }
    let bytes: &[u8] = if body.is_empty() { b"{}" } else { body };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid_body(if path == "." { "" } else { &path }, e.inner().to_string())
    })
}

/// ISO 8601 with milliseconds and `Z`, from epoch milliseconds.
pub fn iso_z(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// ISO 8601 with milliseconds and `+00:00` (the connection timestamps' form).
pub fn iso_offset(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string())
        .unwrap_or_default()
}

/// Now in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A request header as trimmed, non-empty text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The `Connection-Id` and `Provider-Config-Key` headers, or Nango's `invalid_headers`.
pub fn connection_headers(headers: &HeaderMap) -> Result<(&str, &str), ApiError> {
    let connection_id = header(headers, "connection-id").ok_or_else(|| {
        ApiError::bad_request("invalid_headers", "the Connection-Id header is required")
    })?;
    let key = header(headers, "provider-config-key").ok_or_else(|| {
        ApiError::bad_request(
            "invalid_headers",
            "the Provider-Config-Key header is required",
        )
    })?;
    Ok((connection_id, key))
}

/// The integration with this key, or Nango's `unknown_provider_config`.
pub async fn integration(
    state: &AppState,
    env: ferry_store::EnvironmentId,
    key: &str,
) -> Result<ferry_store::Integration, ApiError> {
    state.store.get_integration(env, key).await?.ok_or_else(|| {
        ApiError::bad_request(
            "unknown_provider_config",
            format!("there is no integration {key}"),
        )
    })
}

/// The integration and one of its connections, or Nango's `unknown_provider_config` /
/// `unknown_connection`.
pub async fn integration_and_connection(
    state: &AppState,
    env: ferry_store::EnvironmentId,
    key: &str,
    connection_id: &str,
) -> Result<(ferry_store::Integration, ferry_store::Connection), ApiError> {
    let integration = integration(state, env, key).await?;
    let connection = state
        .store
        .get_connection(env, &integration.unique_key, connection_id)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_connection",
                format!("no connection {connection_id} for {key}"),
            )
        })?;
    Ok((integration, connection))
}
