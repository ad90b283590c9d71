//! Ferry-only environment settings under `/ferry/environment`: the webhook URL (checked against the webhook target policy) and the signing key the app verifies webhooks with, also as a Standard Webhooks `whsec_` secret.

use super::auth::Env;
use super::{json_body, strict_query};
use crate::app::AppState;
use crate::error::ApiError;
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
    }})
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
    webhook_url: Option<String>,
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
    let url = body.webhook_url.filter(|u| !u.is_empty());
    if let Some(u) = &url {
        crate::webhook_targets::validate_webhook_url(
            &state.config.webhook_targets,
            "webhook_url",
            u,
        )?;
    }
    state.store.set_webhook_url(env.id, url.as_deref()).await?;
    Ok(Json(view(&current(&state, env.id).await?)))
}
