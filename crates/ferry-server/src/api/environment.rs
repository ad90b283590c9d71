//! Ferry-only environment settings under `/ferry/environment`: the webhook URL (checked against the webhook target policy) and the signing key the app verifies webhooks with, also as a Standard Webhooks `whsec_` secret.

use super::auth::Env;
use super::{json_body, strict_query};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/ferry/environment", get(show).patch(update))
}

async fn current(
    state: &AppState,
    id: ferry_store::EnvironmentId,
) -> Result<ferry_store::Environment, ApiError> {
    state
        .store
        .list_environments()
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::internal("authenticated environment vanished"))
}

fn view(env: &ferry_store::Environment) -> Value {
    json!({"data": {
        "name": env.name,
        "webhook_url": env.webhook_url,
        "webhook_signing_key": env.webhook_signing_key,
        // The same key in the form Standard Webhooks libraries take (`webhook-signature`).
        "webhook_standard_secret": crate::webhooks::standard_secret(&env.webhook_signing_key),
        "allowed_origins": env.allowed_origins,
    }})
}

/// A field that is present (even as `null`) deserializes to `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Most allowed origins an environment may list.
pub const MAX_ALLOWED_ORIGINS: usize = 50;

/// Checks and normalises allowed origins: each `scheme://host[:port]` (http or https, nothing
/// after the host), or `*` alone (any origin, Nango's behaviour).
fn allowed_origins(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_ALLOWED_ORIGINS {
        return Err(ApiError::invalid_body(
            "allowed_origins",
            format!("at most {MAX_ALLOWED_ORIGINS} origins"),
        ));
    }
    if raw.iter().any(|o| o == "*") {
        return if raw.len() == 1 {
            Ok(vec!["*".to_string()])
        } else {
            Err(ApiError::invalid_body(
                "allowed_origins",
                "`*` stands alone: it already allows every origin",
            ))
        };
    }
    let mut out = Vec::new();
    for origin in raw {
        let parsed = url::Url::parse(origin).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
                && !origin.trim_end_matches('/').ends_with(':')
        });
        let Some(parsed) = parsed else {
            return Err(ApiError::invalid_body(
                "allowed_origins",
                format!("{origin} is not an origin (scheme://host[:port], nothing after it)"),
            ));
        };
        let normal = parsed.origin().ascii_serialization();
        if !out.contains(&normal) {
            out.push(normal);
        }
    }
    Ok(out)
}

async fn show(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    Ok(Json(view(&current(&state, env.id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    /// Sets (or with `null` / `""` clears) the webhook URL when present.
    #[serde(default, deserialize_with = "present")]
    webhook_url: Option<Option<String>>,
    /// Replaces the allowed app origins when present (`[]` clears them).
    #[serde(default)]
    allowed_origins: Option<Vec<String>>,
}

async fn update(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: Update = json_body(&headers, &body)?;
    let url = body.webhook_url.map(|u| u.filter(|u| !u.is_empty()));
    if let Some(Some(u)) = &url {
        crate::webhook_targets::validate_webhook_url(
            &state.config.webhook_targets,
            "webhook_url",
            u,
        )?;
    }
    let origins = body
        .allowed_origins
        .as_deref()
        .map(allowed_origins)
        .transpose()?;
    if let Some(url) = &url {
        state.store.set_webhook_url(env.id, url.as_deref()).await?;
    }
    if let Some(origins) = origins {
        state.store.set_allowed_origins(env.id, &origins).await?;
    }
    Ok(Json(view(&current(&state, env.id).await?)))
}
