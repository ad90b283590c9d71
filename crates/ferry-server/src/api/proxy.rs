//! `ANY /proxy/{path}`: the app's call forwarded to the connection's `instance_url` with its token (resolved through the target cache: no store read on the hot path), bodies streamed both ways, every call in the operation log, timeouts as configured, `Decompress`, caller headers only as `Nango-Proxy-*` (never hop-by-hop or framing ones), one refresh-and-retry on `401 INVALID_SESSION_ID`, `Retries`/`Retry-On` with jittered backoff, Salesforce's limit errors told apart, and per-org usage (`GET /connections/{id}/usage`) and concurrency caps.

use super::auth::Env;
use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::{org_of, Target};
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use ferry_store::{Integration, NewOperation, OperationKind};
use futures::{Stream, StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

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

use super::header;

/// Whether a `Nango-Proxy-{name}` header is dropped instead of forwarded: the token is Ferry's
/// to send, and hop-by-hop and framing headers describe the caller's connection to Ferry, not the
/// request. Forwarded, they would let a caller pick the `Host` Salesforce sees, cut the body short
/// (`Content-Length`), smuggle a second request (`Transfer-Encoding`), or ask for a protocol
/// switch. `name` is lowercase (header names in a `HeaderMap` are), so this compares, never
/// allocates.
fn dropped_from_upstream(name: &str) -> bool {
    matches!(
        name,
        "" | "authorization"
            | "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
    ) || name.starts_with("proxy-")
}

/// The upstream request headers: `Nango-Proxy-*` with the prefix stripped, plus the body's
/// content type; never Ferry's own headers, the caller's key, or hop-by-hop and framing headers
/// (see [`dropped_from_upstream`]).
fn upstream_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in ["content-type", "accept"] {
        if let Some(v) = incoming.get(name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    for (name, value) in incoming {
        if let Some(stripped) = name.as_str().strip_prefix("nango-proxy-") {
            if dropped_from_upstream(stripped) {
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

/// The operation-log entry of one proxied call, filled in as the call proceeds and recorded when
/// the response body has been passed on (or dropped).
struct CallLog {
    state: Arc<AppState>,
    entry: NewOperation,
    started: Instant,
    /// Request body bytes sent upstream (counted as a streamed body is read).
    bytes_in: Arc<AtomicU64>,
}

impl CallLog {
    fn finish(mut self, bytes_out: u64, error_code: Option<&'static str>) {
        self.entry.duration_ms = self.started.elapsed().as_millis() as i64;
        self.entry.bytes_in = self.bytes_in.load(Ordering::Relaxed) as i64;
        self.entry.bytes_out = bytes_out as i64;
        if let Some(code) = error_code {
            self.entry.error_code = Some(code.to_string());
        }
        self.state.oplog.record(self.entry);
    }
}

/// A response body passed through: counts bytes, holds the org's slot until the end, and records
/// the call's log entry at its end (or when the caller goes away).
struct LoggedBody {
    inner: std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>>,
    log: Option<CallLog>,
    bytes: u64,
    /// The announced `Content-Length`: the server stops polling once it has been sent.
    expected: Option<u64>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Stream for LoggedBody {
    type Item = Result<bytes::Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                self.bytes += chunk.len() as u64;
                if self.expected == Some(self.bytes) {
                    let bytes = self.bytes;
                    if let Some(log) = self.log.take() {
                        log.finish(bytes, None);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                let bytes = self.bytes;
                if let Some(log) = self.log.take() {
                    log.finish(bytes, Some("upstream_body_failed"));
                }
            }
            Poll::Ready(None) => {
                let bytes = self.bytes;
                if let Some(log) = self.log.take() {
                    log.finish(bytes, None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.finish(self.bytes, Some("client_gone"));
        }
    }
}

async fn proxy(State(state): State<Arc<AppState>>, Env(env): Env, request: Request) -> Response {
    let path = request
        .uri()
        .path()
        .strip_prefix("/proxy")
        .unwrap_or_default();
    let path = if path.is_empty() { "/" } else { path };
    let mut log = CallLog {
        entry: NewOperation {
            environment_id: env.id,
            kind: OperationKind::Proxy,
            connection_id: None,
            integration_key: None,
            org_id: None,
            method: request.method().to_string(),
            path: path.to_string(),
            status: None,
            duration_ms: 0,
            retries: 0,
            bytes_in: 0,
            bytes_out: 0,
            error_code: None,
            started_at: state.clock.now_ms(),
        },
        started: Instant::now(),
        bytes_in: Arc::new(AtomicU64::new(0)),
        state: state.clone(),
    };
    match forward(&state, request, &mut log).await {
        Ok((status, headers, body, slot, hint)) => {
            log.entry.status = Some(i64::from(status.as_u16()));
            let expected = header(&headers, "content-length").and_then(|l| l.parse().ok());
            let body = LoggedBody {
                inner: body,
                log: Some(log),
                bytes: 0,
                expected,
                _slot: slot,
            };
            respond(status, &headers, Body::from_stream(body), hint)
        }
        Err(e) => {
            log.entry.status = Some(i64::from(e.status.as_u16()));
            log.finish(0, Some(e.code));
            e.into_response()
        }
    }
}

type Passed = (
    StatusCode,
    HeaderMap,
    std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>>,
    Option<OwnedSemaphorePermit>,
    Option<&'static str>,
);

fn buffered(
    bytes: bytes::Bytes,
) -> std::pin::Pin<Box<dyn Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>> {
    Box::pin(futures::stream::iter(
        (!bytes.is_empty()).then_some(Ok(bytes)),
    ))
}

/// Resolves the call's target (cached), then sends it, retrying as asked; returns what to pass
/// back. Fills in the log entry's connection, integration, org and retries.
async fn forward(
    state: &Arc<AppState>,
    request: Request,
    log: &mut CallLog,
) -> Result<Passed, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let (connection_id, key) = super::connection_headers(headers)?;
    log.entry.connection_id = Some(connection_id.to_string());
    log.entry.integration_key = Some(key.to_string());
    if header(headers, "base-url-override").is_some() {
        return Err(ApiError::bad_request(
            "base_url_override_disabled",
            "Base-Url-Override is disabled: calls go to the connection's instance_url",
        ));
    }
    let env_id = log.entry.environment_id;
    let mut target = match state.targets.get(state, env_id, key, connection_id) {
        Some(target) => target,
        None => resolve(state, env_id, key, connection_id).await?,
    };
    log.entry.org_id = target.org_id.as_ref().map(|o| o.org_id().to_string());
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
    let decompress = header(headers, "decompress").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let http = if decompress {
        &state.http_decompress
    } else {
        &state.http
    };
    let mut forward = upstream_headers(headers);
    if decompress {
        // The client asks for (and decodes) compressed answers itself.
        forward.remove("accept-encoding");
    }
    let length = header(headers, "content-length").and_then(|l| l.parse::<usize>().ok());
    let chunked = headers.contains_key("transfer-encoding");
    let mut outbound = match (length, chunked) {
        (Some(n), false) if n <= REPLAYABLE_BODY => {
            let bytes = axum::body::to_bytes(body, REPLAYABLE_BODY)
                .await
                .map_err(|_| {
                    ApiError::bad_request("invalid_body", "the request body could not be read")
                })?;
            log.bytes_in.store(bytes.len() as u64, Ordering::Relaxed);
            Outbound::Replayable(bytes)
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
    let limits = &state.org_limits;
    let timeout = Duration::from_millis(state.config.upstream.timeout_ms);
    let mut attempt: u32 = 0;
    let mut refreshed = false;
    loop {
        log.entry.retries = i64::from(attempt) + i64::from(refreshed);
        let org_id = target.org_id.as_deref();
        let mut req = http
            .request(parts.method.clone(), target.url_for(&rest))
            .headers(forward.clone())
            .bearer_auth(&target.credentials.access_token);
        req = match &mut outbound {
            Outbound::Replayable(bytes) => req.body(bytes.clone()),
            Outbound::Streamed(body) => match body.take() {
                Some(b) => {
                    let counter = log.bytes_in.clone();
                    let counted = b.into_data_stream().inspect(move |chunk| {
                        if let Ok(c) = chunk {
                            counter.fetch_add(c.len() as u64, Ordering::Relaxed);
                        }
                    });
                    req.body(reqwest::Body::wrap_stream(counted))
                }
                None => req,
            },
        };
        // A streamed body is gone once sent: such a call is never repeated.
        let may_retry = attempt < retries && matches!(outbound, Outbound::Replayable(_));
        let permit = match org_id {
            Some(org) => limits.acquire(org).await,
            None => None,
        };
        let failure = match tokio::time::timeout(timeout, req.send()).await {
            Ok(Ok(upstream)) => Ok(upstream),
            Ok(Err(e)) if e.is_timeout() => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "Salesforce did not accept a connection within {} ms",
                    state.config.upstream.connect_timeout_ms
                ),
            )),
            Ok(Err(e)) => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("Salesforce could not be reached: {}", e.without_url()),
            )),
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "Salesforce did not answer within {} ms",
                    timeout.as_millis()
                ),
            )),
        };
        let upstream = match failure {
            Ok(upstream) => upstream,
            Err(e) => {
                drop(permit);
                if may_retry && idempotent {
                    tokio::time::sleep(limits.backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                return Err(e);
            }
        };
        let status = upstream.status();
        let now = state.clock.now_ms();
        if let (Some(org), Some(info)) = (org_id, header(upstream.headers(), "sforce-limit-info")) {
            limits.record_limit_info(org, info, now);
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
                state.targets.invalidate(env_id, key, connection_id);
                let (c, k) = state
                    .credentials
                    .replace_rejected(
                        state,
                        &target.integration,
                        target.connection.clone(),
                        &target.credentials.access_token,
                    )
                    .await
                    .map_err(|e| e.into_api(None))?;
                target = cache(state, target.integration.clone(), c, k)?;
                continue;
            }
            return Ok((status, rejected_headers, buffered(body_bytes), None, None));
        }
        if status == StatusCode::FORBIDDEN {
            // Salesforce's limit errors are small JSON bodies: read them to tell the kinds apart.
            let refused_headers = upstream.headers().clone();
            let body_bytes = upstream.bytes().await.unwrap_or_default();
            drop(permit);
            let text = String::from_utf8_lossy(&body_bytes);
            let limit_exceeded = text.contains("REQUEST_LIMIT_EXCEEDED");
            if limit_exceeded && text.contains("TotalRequests") {
                if let Some(org) = org_id {
                    limits.mark_budget_spent(org, now);
                }
            } else if may_retry
                && (retry_on.contains(&403)
                    || (idempotent && limit_exceeded && text.contains("ConcurrentPerOrgLongTxn")))
            {
                tokio::time::sleep(limits.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            return Ok((status, refused_headers, buffered(body_bytes), None, None));
        }
        if may_retry && retryable_status {
            drop(upstream);
            drop(permit);
            tokio::time::sleep(limits.backoff(attempt)).await;
            attempt += 1;
            continue;
        }
        if status.is_success() {
            if let Some(org) = org_id {
                limits.record_success(org, now);
            }
        }
        let hint = (status == StatusCode::UNAUTHORIZED && refreshed).then_some(
            "Salesforce refused a freshly refreshed token: check the connected app's IP restrictions and session policy",
        );
        let response_headers = upstream.headers().clone();
        let stream = upstream.bytes_stream().map_err(std::io::Error::other);
        return Ok((status, response_headers, Box::pin(stream), permit, hint));
    }
}

/// Reads the integration and connection, gets a usable token, checks the `instance_url`, and
/// caches the result.
async fn resolve(
    state: &Arc<AppState>,
    env: ferry_store::EnvironmentId,
    key: &str,
    connection_id: &str,
) -> Result<Arc<Target>, ApiError> {
    let (integration, connection) =
        super::integration_and_connection(state, env, key, connection_id).await?;
    let (connection, credentials) = state
        .credentials
        .get(state, &integration, connection, false)
        .await
        .map_err(|e| e.into_api(None))?;
    cache(state, integration, connection, credentials)
}

fn cache(
    state: &AppState,
    integration: Integration,
    connection: ferry_store::Connection,
    credentials: crate::connections::Credentials,
) -> Result<Arc<Target>, ApiError> {
    let target = Target::new(state, integration, connection, credentials).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_connection_config",
            "the connection's instance_url is not a host Ferry sends tokens to",
        )
    })?;
    Ok(state.targets.put(target))
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
    let integration = super::integration(&state, env.id, key).await?;
    let connection = state
        .store
        .get_connection(env.id, &integration.unique_key, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connection {id} for {key}")))?;
    let org_id = org_of(&connection);
    let record = match org_id.as_deref() {
        // The stored record may be newer: another process made the last call.
        Some(org) => state.org_limits.load(state.store.as_ref(), org).await?,
        None => Default::default(),
    };
    Ok(Json(json!({
        "org_id": org_id.as_ref().map(|o| o.org_id()),
        "api_usage": record.api_usage,
        "budget_spent": record.budget_spent,
        "share": record.share(),
        "updated_at": (record.updated_at > 0).then(|| super::iso_z(record.updated_at)),
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
