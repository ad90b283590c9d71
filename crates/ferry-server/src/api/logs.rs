//! `GET /ferry/logs`: the environment's operation log (proxied calls, and syncs' and actions'
//! calls), newest first, with a keyset cursor; never bodies or tokens.

use super::auth::Env;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use ferry_store::{OperationId, OperationKind, OperationQuery};
use serde_json::{json, Value};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/ferry/logs", get(list))
}

/// `?connection_id=&provider_config_key=&kind=proxy|sync|action&limit=1..1000&cursor=`:
/// `{"operations": [...], "next_cursor": "…" | null}`.
async fn list(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = super::strict_query(
        raw.as_deref(),
        &[
            "connection_id",
            "provider_config_key",
            "kind",
            "limit",
            "cursor",
        ],
    )?;
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::invalid_query("limit", "must be between 1 and 1000"))?,
    };
    let before = q
        .get("cursor")
        .map(|c| {
            c.parse::<i64>()
                .map(OperationId)
                .map_err(|_| ApiError::invalid_query("cursor", "not a cursor this API returned"))
        })
        .transpose()?;
    let kind = q
        .get("kind")
        .map(|k| {
            OperationKind::parse(k)
                .ok_or_else(|| ApiError::invalid_query("kind", "must be proxy, sync or action"))
        })
        .transpose()?;
    let operations = state
        .store
        .list_operations(
            env.id,
            &OperationQuery {
                connection_id: q.get("connection_id").cloned(),
                integration_key: q.get("provider_config_key").cloned(),
                kind,
                before,
                limit,
            },
        )
        .await?;
    let next_cursor = (operations.len() == limit as usize)
        .then(|| operations.last().map(|o| o.id.0.to_string()))
        .flatten();
    let operations: Vec<Value> = operations
        .iter()
        .map(|o| {
            let e = &o.entry;
            json!({
                "id": o.id.0,
                "kind": e.kind,
                "connection_id": e.connection_id,
                "provider_config_key": e.integration_key,
                "org_id": e.org_id,
                "method": e.method,
                "path": e.path,
                "status": e.status,
                "duration_ms": e.duration_ms,
                "retries": e.retries,
                "bytes_in": e.bytes_in,
                "bytes_out": e.bytes_out,
                "error_code": e.error_code,
                "started_at": super::iso_z(e.started_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "operations": operations,
        "next_cursor": next_cursor,
        "dropped": state.oplog.dropped(),
    })))
}
