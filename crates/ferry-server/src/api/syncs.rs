//! Nango's sync control API: `POST /sync/trigger`, `/sync/start`, `/sync/pause`, `GET /sync/status`, `PUT /sync/update-connection-frequency`; thin handlers over the sync store (the engine in `sync/` runs what these request).

use super::{iso_z, json_body, strict_query};
use crate::api::auth::Env;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ferry_store::{Connection, ConnectionFilter, EnvironmentId, StoreError, SyncRow, SyncTrigger};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Shortest frequency accepted (Nango's minimum).
const MIN_FREQUENCY_SECS: i64 = 30;
/// Longest frequency accepted.
const MAX_FREQUENCY_SECS: i64 = 31 * 24 * 3600;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sync/trigger", post(trigger))
        .route("/sync/start", post(start))
        .route("/sync/pause", post(pause))
        .route("/sync/status", get(status))
        .route("/sync/update-connection-frequency", put(update_frequency))
}

/// A sync named in a body: `"contacts"` or `{"name": "contacts", "variant": "base"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SyncRef {
    Name(String),
    Object {
        name: String,
        #[serde(default)]
        variant: Option<String>,
    },
}

impl SyncRef {
    /// The stored sync name: variants other than `base` are distinct syncs.
    fn stored_name(&self) -> String {
        match self {
            SyncRef::Name(name) => name.clone(),
            SyncRef::Object { name, variant } => with_variant(name, variant.as_deref()),
        }
    }
}

fn with_variant(name: &str, variant: Option<&str>) -> String {
    match variant {
        None | Some("") | Some("base") => name.to_owned(),
        Some(variant) => format!("{name}::{variant}"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerOpts {
    #[serde(default)]
    reset: Option<bool>,
    #[serde(default, rename = "emptyCache")]
    empty_cache: Option<bool>,
}

/// Most syncs one call may name (far more than a catalog holds).
pub const MAX_SYNCS_PER_CALL: usize = 200;

/// The stored names of the syncs a call names, refused past [`MAX_SYNCS_PER_CALL`].
fn sync_names(syncs: &[SyncRef]) -> Result<Vec<String>, ApiError> {
    if syncs.len() > MAX_SYNCS_PER_CALL {
        return Err(ApiError::invalid_body(
            "syncs",
            format!("at most {MAX_SYNCS_PER_CALL} syncs per call"),
        ));
    }
    Ok(syncs.iter().map(SyncRef::stored_name).collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default)]
    syncs: Vec<SyncRef>,
    #[serde(default)]
    provider_config_key: Option<String>,
    #[serde(default)]
    connection_id: Option<String>,
    #[serde(default)]
    opts: Option<TriggerOpts>,
    #[serde(default)]
    sync_mode: Option<String>,
    #[serde(default)]
    full_resync: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartPauseBody {
    #[serde(default)]
    syncs: Vec<SyncRef>,
    #[serde(default)]
    provider_config_key: Option<String>,
    #[serde(default)]
    connection_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrequencyBody {
    sync_name: String,
    #[serde(default)]
    sync_variant: Option<String>,
    provider_config_key: String,
    connection_id: String,
    frequency: Option<String>,
}

use super::header;

/// The run a trigger body asks for (`opts` and the mode fields are exclusive).
fn requested_trigger(body: &TriggerBody) -> Result<SyncTrigger, ApiError> {
    if body.opts.is_some() && (body.sync_mode.is_some() || body.full_resync.is_some()) {
        return Err(ApiError::invalid_body(
            "opts",
            "opts cannot be combined with sync_mode or full_resync",
        ));
    }
    if let Some(opts) = &body.opts {
        return Ok(if opts.empty_cache == Some(true) {
            SyncTrigger::FullRefreshAndClear
        } else if opts.reset == Some(true) {
            SyncTrigger::FullRefresh
        } else {
            SyncTrigger::Incremental
        });
    }
    match body.sync_mode.as_deref() {
        Some("incremental") => Ok(SyncTrigger::Incremental),
        Some("full_refresh") => Ok(SyncTrigger::FullRefresh),
        Some("full_refresh_and_clear_cache") | Some("full_refresh_and_clear") => {
            Ok(SyncTrigger::FullRefreshAndClear)
        }
        Some(_) => Err(ApiError::invalid_body(
            "sync_mode",
            "must be incremental, full_refresh or full_refresh_and_clear_cache",
        )),
        None if body.full_resync == Some(true) => Ok(SyncTrigger::FullRefresh),
        None => Ok(SyncTrigger::Incremental),
    }
}

/// The connections a trigger/start/pause body addresses; the body's keys win over the
/// `Provider-Config-Key` / `Connection-Id` headers.
async fn body_targets(
    state: &AppState,
    env: EnvironmentId,
    headers: &HeaderMap,
    key: Option<&str>,
    connection_id: Option<&str>,
) -> Result<Vec<Connection>, ApiError> {
    let key = key
        .or_else(|| header(headers, "provider-config-key"))
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_provider_config_key",
                "provider_config_key is required (in the body or the Provider-Config-Key header)",
            )
        })?;
    let connection_id = connection_id.or_else(|| header(headers, "connection-id"));
    target_connections(state, env, key, connection_id).await
}

/// The connections a call addresses: the named one, or every connection of the integration.
async fn target_connections(
    state: &AppState,
    env: EnvironmentId,
    key: &str,
    connection_id: Option<&str>,
) -> Result<Vec<Connection>, ApiError> {
    super::integration(state, env, key).await?;
    if let Some(id) = connection_id {
        return match state.store.get_connection(env, key, id).await? {
            Some(connection) => Ok(vec![connection]),
            None => Err(ApiError::bad_request(
                "unknown_connection",
                format!("no connection {id} for {key}"),
            )),
        };
    }
    let mut all = Vec::new();
    let page_size = 1_000;
    for page in 0.. {
        let filter = ConnectionFilter {
            integration_keys: vec![key.to_owned()],
            limit: Some(page_size),
            page: Some(page),
            ..ConnectionFilter::default()
        };
        let rows = state.store.list_connections(env, &filter).await?;
        let done = rows.len() < page_size as usize;
        all.extend(rows);
        if done {
            break;
        }
    }
    Ok(all)
}

fn no_syncs_found(names: &[String]) -> ApiError {
    if names.is_empty() {
        ApiError::bad_request("no_syncs_found", "the connection has no syncs")
    } else {
        ApiError::bad_request(
            "no_syncs_found",
            format!("no syncs named {}", names.join(", ")),
        )
    }
}

/// Applies `change` to every addressed connection: a sync name unknown to a single named
/// connection (or to all of them) is `no_syncs_found`.
async fn for_each_connection<F, Fut>(
    connections: &[Connection],
    names: &[String],
    change: F,
) -> Result<(), ApiError>
where
    F: Fn(&Connection) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<SyncRow>, StoreError>>,
{
    let mut changed = 0;
    for connection in connections {
        match change(connection).await {
            Ok(rows) => changed += rows.len(),
            Err(StoreError::NotFound { entity: "sync", .. }) if connections.len() > 1 => {}
            Err(StoreError::NotFound {
                entity: "sync",
                keys,
            }) => return Err(no_syncs_found(&keys)),
            Err(other) => return Err(other.into()),
        }
    }
    if changed == 0 {
        return Err(no_syncs_found(names));
    }
    Ok(())
}

async fn trigger(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: TriggerBody = json_body(&headers, &body)?;
    let mode = requested_trigger(&body)?;
    let connections = body_targets(
        &state,
        env.id,
        &headers,
        body.provider_config_key.as_deref(),
        body.connection_id.as_deref(),
    )
    .await?;
    let names = sync_names(&body.syncs)?;
    let now = state.clock.now_ms();
    for_each_connection(&connections, &names, |connection| {
        state
            .store
            .request_sync_run(env.id, connection.id, &names, mode, now)
    })
    .await?;
    state.sync_wakeup.notify_one();
    Ok(Json(json!({"success": true})))
}

async fn set_paused(
    state: Arc<AppState>,
    env: EnvironmentId,
    headers: HeaderMap,
    raw: Option<String>,
    body: Bytes,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: StartPauseBody = json_body(&headers, &body)?;
    let connections = body_targets(
        &state,
        env,
        &headers,
        body.provider_config_key.as_deref(),
        body.connection_id.as_deref(),
    )
    .await?;
    let names = sync_names(&body.syncs)?;
    let now = state.clock.now_ms();
    for_each_connection(&connections, &names, |connection| {
        state
            .store
            .set_syncs_paused(env, connection.id, &names, paused, now)
    })
    .await?;
    if !paused {
        state.sync_wakeup.notify_one();
    }
    Ok(Json(json!({"success": true})))
}

async fn start(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, env.id, headers, raw, body, false).await
}

async fn pause(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    set_paused(state, env.id, headers, raw, body, true).await
}

/// Nango's wording of a frequency (`every hour`, `every 30 minutes`, `every day`).
pub fn frequency_text(secs: i64) -> String {
    let (count, unit) = if secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs % 3_600 == 0 {
        (secs / 3_600, "hour")
    } else if secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    if count == 1 {
        format!("every {unit}")
    } else {
        format!("every {count} {unit}s")
    }
}

/// Parses a frequency as Nango accepts it (`every 5 minutes`, `every hour`, `1h`, `30m`,
/// `half hour`, `2 days`); seconds, or `None` if unreadable.
pub fn parse_frequency(text: &str) -> Option<i64> {
    let lowered = text.trim().to_ascii_lowercase();
    let mut text = lowered
        .strip_prefix("every")
        .unwrap_or(&lowered)
        .trim()
        .to_owned();
    if text == "half hour" {
        text = "30 minutes".into();
    } else if text == "quarter hour" {
        text = "15 minutes".into();
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let count: f64 = if number.is_empty() {
        1.0
    } else {
        number.parse().ok()?
    };
    let unit_secs: f64 = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ => return None,
    };
    let secs = (count * unit_secs).round();
    (secs.is_finite() && secs >= 1.0).then_some(secs as i64)
}

/// One sync's status in Nango's shape.
async fn status_json(
    state: &AppState,
    connection: &Connection,
    sync: &SyncRow,
) -> Result<Value, ApiError> {
    let now = state.clock.now_ms();
    let last = sync.last_run.as_ref();
    let running = last.is_some_and(|run| run.status == "RUNNING")
        && sync.lease_until.is_some_and(|until| until > now);
    let status = if running {
        "RUNNING"
    } else if sync.paused {
        "PAUSED"
    } else {
        match last.map(|run| run.status.as_str()) {
            Some("SUCCESS") => "SUCCESS",
            Some("ERROR") | Some("RUNNING") => "ERROR",
            _ => "STOPPED",
        }
    };
    let incremental = match last {
        Some(run) if run.trigger == SyncTrigger::Incremental => {
            state.store.list_sync_runs(sync.id, 2).await?.len() > 1
        }
        _ => false,
    };
    let (live, _) = state
        .store
        .count_records(connection.id, &sync.model)
        .await?;
    let (name, variant) = match sync.name.split_once("::") {
        Some((name, variant)) => (name, variant),
        None => (sync.name.as_str(), "base"),
    };
    let mut latest = Map::new();
    if let Some(run) = last {
        latest.insert(
            sync.model.clone(),
            json!({"added": run.added, "updated": run.updated, "deleted": run.deleted}),
        );
    }
    let checkpoint = match &sync.checkpoint {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        _ => Value::Null,
    };
    Ok(json!({
        "id": sync.id.to_string(),
        "connection_id": connection.connection_id,
        "name": name,
        "variant": variant,
        "type": if incremental { "INCREMENTAL" } else { "INITIAL" },
        "status": status,
        "frequency": frequency_text(sync.frequency_secs),
        "finishedAt": last.and_then(|run| run.finished_at).map(iso_z),
        "nextScheduledSyncAt": if sync.paused { None } else { sync.next_run_at.map(iso_z) },
        "latestResult": if last.is_some() { Value::Object(latest) } else { Value::Null },
        "latestExecutionStatus": last.map(|run| run.status.as_str()).unwrap_or("STOPPED"),
        "recordCount": {sync.model.clone(): live},
        "checkpoint": checkpoint,
    }))
}

async fn status(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = strict_query(
        raw.as_deref(),
        &["syncs", "provider_config_key", "connection_id"],
    )?;
    let key = q
        .get("provider_config_key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::invalid_query("provider_config_key", "Required"))?;
    let syncs = q
        .get("syncs")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid_query("syncs", "Required"))?;
    let wanted: Option<Vec<String>> = (syncs != "*").then(|| {
        syncs
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.split_once("::") {
                Some((name, variant)) => with_variant(name, Some(variant)),
                None => s.to_owned(),
            })
            .collect()
    });
    let connection_id = q.get("connection_id").filter(|c| !c.is_empty());
    let connections = target_connections(&state, env.id, key, connection_id.map(String::as_str))
        .await
        .map_err(|e| match e.code {
            "unknown_connection" => ApiError::bad_request("invalid_body", "Connection not found"),
            _ => e,
        })?;
    let mut out = Vec::new();
    for connection in &connections {
        for sync in state.store.list_syncs(env.id, connection.id).await? {
            if wanted
                .as_ref()
                .is_some_and(|names| !names.contains(&sync.name))
            {
                continue;
            }
            out.push(status_json(&state, connection, &sync).await?);
        }
    }
    Ok(Json(json!({ "syncs": out })))
}

async fn update_frequency(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: FrequencyBody = json_body(&headers, &body)?;
    let frequency = match &body.frequency {
        None => None,
        Some(text) => {
            let secs = parse_frequency(text).ok_or_else(|| {
                ApiError::invalid_body(
                    "frequency",
                    "must read like \"every 30 minutes\", \"every hour\", \"1h\" or \"2 days\"",
                )
            })?;
            if !(MIN_FREQUENCY_SECS..=MAX_FREQUENCY_SECS).contains(&secs) {
                return Err(ApiError::invalid_body(
                    "frequency",
                    "must be between 30 seconds and 31 days",
                ));
            }
            Some(secs)
        }
    };
    let connections = target_connections(
        &state,
        env.id,
        &body.provider_config_key,
        Some(&body.connection_id),
    )
    .await?;
    let connection = connections
        .first()
        .ok_or_else(|| ApiError::bad_request("unknown_connection", "no such connection"))?;
    let name = with_variant(&body.sync_name, body.sync_variant.as_deref());
    let now = state.clock.now_ms();
    let row = match frequency {
        Some(secs) => {
            state
                .store
                .set_sync_frequency(env.id, connection.id, &name, secs, now)
                .await?
        }
        None => {
            state
                .store
                .reset_sync_frequency(env.id, connection.id, &name, now)
                .await?
        }
    }
    .ok_or_else(|| ApiError::bad_request("unknown_sync", format!("no sync named {name}")))?;
    state.sync_wakeup.notify_one();
    let text = match &body.frequency {
        Some(text) => text.clone(),
        None => frequency_text(row.frequency_secs),
    };
    Ok(Json(json!({ "frequency": text })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_read_and_print_like_nango() {
        for (text, secs) in [
            ("every hour", 3_600),
            ("every 30 minutes", 1_800),
            ("every half hour", 1_800),
            ("1h", 3_600),
            ("30m", 1_800),
            ("every day", 86_400),
            ("2 days", 172_800),
            ("every 45 seconds", 45),
            ("1.5h", 5_400),
        ] {
            assert_eq!(parse_frequency(text), Some(secs), "{text}");
        }
        for bad in ["often", "every", "5 fortnights", ""] {
            assert_eq!(parse_frequency(bad), None, "{bad}");
        }
        assert_eq!(frequency_text(3_600), "every hour");
        assert_eq!(frequency_text(1_800), "every 30 minutes");
        assert_eq!(frequency_text(86_400), "every day");
        assert_eq!(frequency_text(45), "every 45 seconds");
    }
}
