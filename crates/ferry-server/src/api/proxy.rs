//! `ANY /proxy/{path}`: the app's call forwarded to the connection's `instance_url` with its token, bodies streamed both ways, caller headers only as `Nango-Proxy-*`, one refresh-and-retry on `401 INVALID_SESSION_ID`, `Retries`/`Retry-On` with jittered backoff, Salesforce's limit errors told apart, and per-org usage (`GET /connections/{id}/usage`) and concurrency caps.

use super::auth::Env;
use crate::app::AppState;
use crate::error::ApiError;
use crate::upstream::org_of;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{any, get};
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::sync::Arc;

/// Bodies up to this size are kept so a call can be replayed after a token refresh.
const REPLAYABLE_BODY: usize = 1024 * 1024;

/// `Retries` above this are treated as this.
const MAX_RETRIES: u32 = 10;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/proxy", any(proxy))
        .route("/proxy/{*path}", any(proxy))
        .route("/connections/{id}/usage", get(usage))
}

/// Response headers that describe the hop, not the message.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The upstream request headers: `Nango-Proxy-*` with the prefix stripped, plus the body's
/// content type; never Ferry's own headers or the caller's key.
fn upstream_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in ["content-type", "accept"] {
        if let Some(v) = incoming.get(name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    for (name, value) in incoming {
        if let Some(stripped) = name.as_str().strip_prefix("nango-proxy-") {
            if stripped.eq_ignore_ascii_case("authorization") || stripped.is_empty() {
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(stripped.as_bytes()) {
                out.insert(n, value.clone());
            }
        }
    }
    out
}

enum Outbound {
    Replayable(bytes::Bytes),
    Streamed(Option<Body>),
}

async fn proxy(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let connection_id = header(headers, "connection-id").ok_or_else(|| {
        ApiError::bad_request("invalid_headers", "the Connection-Id header is required")
    })?;
    let key = header(headers, "provider-config-key").ok_or_else(|| {
        ApiError::bad_request(
            "invalid_headers",
            "the Provider-Config-Key header is required",
        )
    })?;
    if header(headers, "base-url-override").is_some() {
        return Err(ApiError::bad_request(
            "base_url_override_disabled",
            "Base-Url-Override is disabled: calls go to the connection's instance_url",
        ));
    }
    let integration = state
        .store
        .get_integration(env.id, key)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_provider_config",
                format!("there is no integration {key}"),
            )
        })?;
    let connection = state
        .store
        .get_connection(env.id, &integration.unique_key, connection_id)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_connection",
                format!("no connection {connection_id} for {key}"),
            )
        })?;
    let (mut connection, mut credentials) = state
        .credentials
        .get(&state, &integration, connection, false)
        .await
        .map_err(|e| e.into_api(None))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let rest = path_and_query
        .strip_prefix("/proxy")
        .unwrap_or(path_and_query);
    let rest = if rest.starts_with('/') || rest.is_empty() {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    let forward = upstream_headers(headers);
    let length = header(headers, "content-length").and_then(|l| l.parse::<usize>().ok());
    let chunked = headers.contains_key("transfer-encoding");
    let mut outbound = match (length, chunked) {
        (Some(n), false) if n <= REPLAYABLE_BODY => {
            Outbound::Replayable(axum::body::to_bytes(body, REPLAYABLE_BODY).await.map_err(
                |_| ApiError::bad_request("invalid_body", "the request body could not be read"),
            )?)
        }
        (None, false) => Outbound::Replayable(bytes::Bytes::new()),
        _ => Outbound::Streamed(Some(body)),
    };
    let retries = match header(headers, "retries") {
        None => 0,
        Some(v) => v.parse::<u32>().map_err(|_| {
            ApiError::bad_request("invalid_headers", "Retries must be a non-negative integer")
        })?,
    }
    .min(MAX_RETRIES);
    let retry_on = match header(headers, "retry-on") {
        None => Vec::new(),
        Some(v) => v
            .split(',')
            .map(|s| s.trim().parse::<u16>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ApiError::bad_request(
                    "invalid_headers",
                    "Retry-On must be comma-separated status codes",
                )
            })?,
    };
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    );
    let org_id = org_of(&connection);
    let limits = &state.org_limits;
    let mut attempt: u32 = 0;
    let mut refreshed = false;
    loop {
        let instance_url = connection
            .connection_config
            .get("instance_url")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        if !state.config.hosts.upstream_allowed(&instance_url) {
            return Err(ApiError::bad_request(
                "invalid_connection_config",
                "the connection's instance_url is not a host Ferry sends tokens to",
            ));
        }
        let mut req = state
            .http
            .request(parts.method.clone(), format!("{instance_url}{rest}"))
            .headers(forward.clone())
            .bearer_auth(&credentials.access_token);
        req = match &mut outbound {
            Outbound::Replayable(bytes) => req.body(bytes.clone()),
            Outbound::Streamed(body) => match body.take() {
                Some(b) => req.body(reqwest::Body::wrap_stream(b.into_data_stream())),
                None => req,
            },
        };
        // A streamed body is gone once sent: such a call is never repeated.
        let may_retry = attempt < retries && matches!(outbound, Outbound::Replayable(_));
        let permit = match &org_id {
            Some(org) => limits.acquire(org).await,
            None => None,
        };
        let upstream = match req.send().await {
            Ok(upstream) => upstream,
            Err(e) => {
                drop(permit);
                if may_retry && idempotent {
                    tokio::time::sleep(limits.backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable",
                    format!("Salesforce could not be reached: {}", e.without_url()),
                ));
            }
        };
        let status = upstream.status();
        if let (Some(org), Some(info)) = (&org_id, header(upstream.headers(), "sforce-limit-info"))
        {
            limits.record_limit_info(org, info, crate::api::now_ms());
        }
        let retryable_status =
            retry_on.contains(&status.as_u16()) || (idempotent && status.is_server_error());
        if status == StatusCode::UNAUTHORIZED
            && !refreshed
            && matches!(outbound, Outbound::Replayable(_))
        {
            let rejected_headers = upstream.headers().clone();
            let body_bytes = upstream.bytes().await.unwrap_or_default();
            drop(permit);
            if String::from_utf8_lossy(&body_bytes).contains("INVALID_SESSION_ID") {
                refreshed = true;
                let (c, k) = state
                    .credentials
                    .replace_rejected(&state, &integration, connection, &credentials.access_token)
                    .await
                    .map_err(|e| e.into_api(None))?;
                connection = c;
                credentials = k;
                continue;
            }
            return Ok(respond(
                status,
                &rejected_headers,
                Body::from(body_bytes),
                None,
            ));
        }
        if status == StatusCode::FORBIDDEN {
            // Salesforce's limit errors are small JSON bodies: read them to tell the kinds apart.
            let refused_headers = upstream.headers().clone();
            let body_bytes = upstream.bytes().await.unwrap_or_default();
            drop(permit);
            let text = String::from_utf8_lossy(&body_bytes);
            let limit_exceeded = text.contains("REQUEST_LIMIT_EXCEEDED");
            if limit_exceeded && text.contains("TotalRequests") {
                if let Some(org) = &org_id {
                    limits.mark_budget_spent(org);
                }
            } else if may_retry
                && (retry_on.contains(&403)
                    || (idempotent && limit_exceeded && text.contains("ConcurrentPerOrgLongTxn")))
            {
                tokio::time::sleep(limits.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            return Ok(respond(
                status,
                &refused_headers,
                Body::from(body_bytes),
                None,
            ));
        }
        if may_retry && retryable_status {
            drop(upstream);
            drop(permit);
            tokio::time::sleep(limits.backoff(attempt)).await;
            attempt += 1;
            continue;
        }
        if status.is_success() {
            if let Some(org) = &org_id {
                limits.record_success(org);
            }
        }
        let hint = (status == StatusCode::UNAUTHORIZED && refreshed).then_some(
            "Salesforce refused a freshly refreshed token: check the connected app's IP restrictions and session policy",
        );
        let response_headers = upstream.headers().clone();
        // The org's slot is held until the body has been passed on.
        let stream = upstream
            .bytes_stream()
            .map_err(std::io::Error::other)
            .map(move |chunk| {
                let _slot = &permit;
                chunk
            });
        return Ok(respond(
            status,
            &response_headers,
            Body::from_stream(stream),
            hint,
        ));
    }
}

/// `GET /connections/{id}/usage?provider_config_key=…`: the org's last reported API usage.
async fn usage(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = super::strict_query(raw.as_deref(), &["provider_config_key"])?;
    let key = q
        .get("provider_config_key")
        .ok_or_else(|| ApiError::invalid_query("provider_config_key", "required"))?;
    let integration = state
        .store
        .get_integration(env.id, key)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_provider_config",
                format!("there is no integration {key}"),
            )
        })?;
    let connection = state
        .store
        .get_connection(env.id, &integration.unique_key, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connection {id} for {key}")))?;
    let org_id = org_of(&connection);
    let record = org_id
        .as_deref()
        .map(|org| state.org_limits.get(org))
        .unwrap_or_default();
    Ok(Json(json!({
        "org_id": org_id,
        "api_usage": record.api_usage,
        "budget_spent": record.budget_spent,
    })))
}

fn respond(status: StatusCode, upstream: &HeaderMap, body: Body, hint: Option<&str>) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in upstream {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    if let Some(h) = hint.and_then(|h| HeaderValue::from_str(h).ok()) {
        response.headers_mut().insert("ferry-hint", h);
    }
    response
}
