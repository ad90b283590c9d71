//! `GET /providers` and `GET /providers/{name}`: the built-in Salesforce providers in Nango's catalogue shape.

use super::auth::Env;
use super::strict_query;
use crate::error::ApiError;
use crate::providers::{provider, PROVIDERS};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// The provider routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/providers", get(list))
        .route("/providers/{name}", get(one))
}

async fn list(
    State(state): State<Arc<AppState>>,
    _env: Env,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = strict_query(raw.as_deref(), &["search"])?;
    let search = query
        .get("search")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let data: Vec<Value> = PROVIDERS
        .iter()
        .filter(|p| {
            search.is_empty()
                || p.name.contains(&search)
                || p.display_name.to_ascii_lowercase().contains(&search)
        })
        .map(|p| p.to_json(&state.public_url))
        .collect();
    Ok(Json(json!({ "data": data })))
}

async fn one(
    State(state): State<Arc<AppState>>,
    _env: Env,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let p =
        provider(&name).ok_or_else(|| ApiError::not_found(format!("unknown provider: {name}")))?;
    Ok(Json(json!({ "data": p.to_json(&state.public_url) })))
}
