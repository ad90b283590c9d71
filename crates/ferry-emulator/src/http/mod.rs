//! The emulator's HTTP surface: one router per listener, fault injection, request counting, and the REST session gate.

pub mod admin;
pub mod batch;
pub mod bulk;
pub mod composite;
pub mod errors;
pub mod jwt;
pub mod oauth;
pub mod rest;
pub mod search;
pub mod tooling;

use crate::state::{Session, State};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Plays `login.salesforce.com` and production orgs' instances; serves the admin API.
    Production,
    /// Plays `test.salesforce.com` and sandbox orgs' instances.
    Sandbox,
    /// A second instance host, where migrated orgs live.
    Instance2,
}

/// Per-listener handler context.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Shared state.
    pub state: Arc<State>,
    /// The listener this router serves.
    pub listener: Listener,
}

impl Ctx {
    /// This listener's base URL (the login host it plays).
    pub fn base_url(&self) -> String {
        let urls = self.state.urls.read();
        match self.listener {
            Listener::Production => urls.production.clone(),
            Listener::Sandbox => urls.sandbox.clone(),
            Listener::Instance2 => urls.instance2.clone(),
        }
    }
}

/// The API version of a `/services/data/vXX.X/…` request, e.g. `59.0`.
#[derive(Debug, Clone)]
pub struct ApiVersion(pub String);

impl ApiVersion {
    /// As a number.
    pub fn number(&self) -> f32 {
        self.0.parse().unwrap_or(0.0)
    }
}

/// Lowest and highest API versions served.
pub const MIN_VERSION: u32 = 31;
/// Highest API version served.
pub const MAX_VERSION: u32 = 67;

/// Builds the router of one listener.
pub fn router(ctx: Ctx) -> Router {
    let data = Router::new()
        .merge(rest::routes())
        .merge(bulk::routes())
        .route_layer(middleware::from_fn_with_state(ctx.clone(), data_gate));
    let mut app = Router::new()
        .merge(oauth::routes())
        .merge(rest::public_routes())
        .merge(data)
        .fallback(|| async { errors::not_found() })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            errors::sf_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                &format!("HTTP Method '{method}' not allowed."),
            )
        });
    app = app.layer(middleware::from_fn_with_state(
        ctx.clone(),
        faults_and_stats,
    ));
    if ctx.listener == Listener::Production {
        app = app.merge(admin::routes());
    }
    // A bug must never surface as a dropped connection or a Rust message: answer as Salesforce
    // does for an internal failure.
    app.layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
        errors::sf_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 0000000000-00000 (0)",
        )
    }))
    .with_state(ctx)
}

/// Counts requests and applies fault-injection rules to every Salesforce endpoint.
async fn faults_and_stats(AxState(ctx): AxState<Ctx>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__emulator") {
        return next.run(req).await;
    }
    ctx.state.stats.api_request(&path);
    ctx.state
        .stats
        .record_request(crate::state::RecordedRequest {
            method: req.method().to_string(),
            path: req
                .uri()
                .path_and_query()
                .map_or(path.clone(), |p| p.to_string()),
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        });
    let _in_flight = ctx.state.stats.start_request();
    let fault = {
        let mut rules = ctx.state.faults.lock();
        let method = req.method().as_str();
        let hit = rules.iter().position(|r| {
            r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
                && r.count.is_none_or(|c| c > 0)
                && r.probability.is_none_or(|p| rand::random::<f64>() < p)
        });
        hit.map(|i| {
            let rule = rules[i].clone();
            if let Some(c) = rules[i].count.as_mut() {
                *c -= 1;
            }
            rule
        })
    };
    let Some(rule) = fault else {
        return next.run(req).await;
    };
    if let Some(ms) = rule.latency_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(ms) = rule.answer_delay_ms {
        // The request takes effect now; its answer leaves later.
        let response = next.run(req).await;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return if rule.status.is_some() {
            fault_response(&rule)
        } else {
            response
        };
    }
    if rule.after_handling {
        // The request takes effect; only its answer is replaced.
        let _ = next.run(req).await;
        return fault_response(&rule);
    }
    match rule.status {
        Some(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match rule.body {
                Some(serde_json::Value::String(text)) => (status, text).into_response(),
                Some(body) => errors::json(status, &body),
                None => status.into_response(),
            }
        }
        None => next.run(req).await,
    }
}

/// The answer a fault rule gives (its status and body; 500 when it has no status).
fn fault_response(rule: &crate::state::FaultRule) -> Response {
    let status = rule
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match &rule.body {
        Some(serde_json::Value::String(text)) => (status, text.clone()).into_response(),
        Some(body) => errors::json(status, body),
        None => status.into_response(),
    }
}

/// Extracts the bearer token from `Authorization: Bearer …` or the older `OAuth …` scheme.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Guards `/services/data/vXX.X/…`: checks the version and the token, enforces the org's
/// daily allowance and `API_DISABLED_FOR_ORG`, and adds `Sforce-Limit-Info` to the answer.
async fn data_gate(AxState(ctx): AxState<Ctx>, mut req: Request, next: Next) -> Response {
    let Some(version) = version_of(req.uri().path()) else {
        return errors::not_found();
    };
    let Some(session) = bearer(req.headers()).and_then(|t| ctx.state.session_for(t)) else {
        return errors::invalid_session();
    };
    let usage = {
        let mut data = ctx.state.data.write();
        let Some(org) = data.orgs.get_mut(&session.org_id) else {
            return errors::invalid_session();
        };
        if org.api_disabled {
            return errors::sf_error(
                StatusCode::FORBIDDEN,
                "API_DISABLED_FOR_ORG",
                "API is not enabled for this Organization or Partner",
            );
        }
        if org.api_used >= org.api_daily_limit {
            let mut resp = errors::sf_error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            );
            add_limit_info(&mut resp, org.api_used, org.api_daily_limit);
            return resp;
        }
        org.api_used += 1;
        (org.api_used, org.api_daily_limit)
    };
    req.extensions_mut().insert(ApiVersion(version));
    req.extensions_mut().insert::<Session>(session);
    let mut resp = next.run(req).await;
    add_limit_info(&mut resp, usage.0, usage.1);
    resp
}

fn add_limit_info(resp: &mut Response, used: u64, max: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
}

/// The version in `/services/data/vXX.X/…`, when it is one the emulator serves.
pub fn version_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/services/data/v")?;
    let version = rest.split('/').next()?;
    let (major, minor) = version.split_once('.')?;
    let major: u32 = major.parse().ok()?;
    (minor == "0" && (MIN_VERSION..=MAX_VERSION).contains(&major)).then(|| version.to_string())
}

/// The release label of an API version (`59.0` → `Winter '24`).
pub fn version_label(major: u32) -> String {
    // v59 = Winter '24; three releases a year: Winter, Spring, Summer.
    let offset = major as i64 - 59;
    let season_index = offset.rem_euclid(3);
    let year = 24 + offset.div_euclid(3);
    let season = ["Winter", "Spring", "Summer"][season_index as usize];
    format!("{season} '{year:02}")
}
