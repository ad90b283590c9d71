//! `GET /records` (and `/records/`, the SDK's form): a connection's synced records of one model, keyset-paged by an opaque cursor, with Nango's filters and `_nango_metadata`; `PATCH /records/prune`: their payloads emptied up to a cursor, metadata kept.

use crate::api::auth::Env;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, patch};
use axum::{Json, Router};
use ferry_store::{RecordAction, RecordQuery, StoreError, StoredRecord};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` accepted.
const MAX_LIMIT: u32 = 10_000;
/// Most `ids` one call may name.
const MAX_IDS: usize = 100;
/// How far back `modified_after` may reach (Nango: 12 months).
const MAX_MODIFIED_AFTER_AGE_MS: i64 = 366 * 24 * 3600 * 1000;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/records", get(list))
        .route("/records/", get(list))
        .route("/records/prune", patch(prune))
}

/// Records pruned per call when `limit` is absent.
const DEFAULT_PRUNE_LIMIT: u32 = 1_000;

/// The strict body of `PATCH /records/prune`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PruneBody {
    model: String,
    #[serde(default)]
    variant: Option<String>,
    until_cursor: String,
    #[serde(default)]
    limit: Option<u32>,
}

/// The stored model key: `Model`, or `Model::variant` (`base` is no variant); else the field at
/// fault and why.
fn model_key(model: String, variant: Option<&str>) -> Result<String, (&'static str, &'static str)> {
    if !valid_model(&model) {
        return Err((
            "model",
            "must start with an uppercase letter and contain only letters, digits, _ and -",
        ));
    }
    match variant {
        None | Some("") | Some("base") => Ok(model),
        Some(v)
            if v.len() <= 255
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(format!("{model}::{v}"))
        }
        Some(_) => Err(("variant", "invalid variant")),
    }
}

/// The connection named by the `Connection-Id` / `Provider-Config-Key` headers (checked by
/// [`super::connection_headers`] first), or Nango's 400 `unknown_connection`.
async fn header_connection(
    state: &AppState,
    env: &ferry_store::Environment,
    (connection_id, key): (&str, &str),
) -> Result<ferry_store::Connection, ApiError> {
    state
        .store
        .get_connection(env.id, key, connection_id)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_connection",
                "Provided ConnectionId and ProviderConfigKey does not match a valid connection",
            )
        })
}

/// `PATCH /records/prune`: empties the payloads of the model's records up to and including
/// `until_cursor` (a record cursor from `GET /records`), `limit` at a time; `{count, has_more}`.
async fn prune(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let named = super::connection_headers(&headers)?;
    let body: PruneBody = super::json_body(&headers, &body)?;
    let model = model_key(body.model, body.variant.as_deref())
        .map_err(|(field, message)| ApiError::invalid_body(field, message))?;
    if body.until_cursor.is_empty() || body.until_cursor.len() > 1000 {
        return Err(ApiError::invalid_body(
            "until_cursor",
            "a record cursor of 1 to 1000 characters",
        ));
    }
    let limit = match body.limit {
        None => DEFAULT_PRUNE_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid_body(
                "limit",
                format!("must be an integer from 1 to {MAX_LIMIT}"),
            ))
        }
    };
    let connection = header_connection(&state, &env, named).await?;
    let (count, has_more) = state
        .store
        .prune_records(
            env.id,
            connection.id,
            &model,
            &body.until_cursor,
            limit,
            state.clock.now_ms(),
        )
        .await
        .map_err(|e| match e {
            StoreError::InvalidCursor => ApiError::invalid_body("until_cursor", "invalid cursor"),
            other => ApiError::from(other),
        })?;
    Ok(Json(json!({"count": count, "has_more": has_more})))
}

/// The validated query of a records call.
#[derive(Debug, PartialEq)]
struct RecordsParams {
    query: RecordQuery,
}

/// Whether `model` matches Nango's `^[A-Z][a-zA-Z0-9_-]+$`.
fn valid_model(model: &str) -> bool {
    let mut chars = model.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && model.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Parses an ISO datetime in UTC `Z` form (zod's `datetime()`: offsets are refused).
fn parse_iso_z(text: &str) -> Option<i64> {
    if !text.ends_with('Z') || !text.contains('T') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Validates the strict query string of `GET /records`.
fn parse_params(raw: Option<&str>, now: i64) -> Result<RecordsParams, ApiError> {
    let mut model = None;
    let mut variant = None;
    let mut modified_after = None;
    let mut limit = None;
    let mut filter = None;
    let mut cursor = None;
    let mut ids = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "model" => model = Some(value),
            "variant" => variant = Some(value),
            "modified_after" | "delta" => modified_after = Some((key.into_owned(), value)),
            "limit" => limit = Some(value),
            "filter" => filter = Some(value),
            "cursor" => cursor = Some(value),
            "ids" | "ids[]" => ids.push(value),
            other => {
                return Err(ApiError::invalid_query(
                    other,
                    "unrecognized query parameter",
                ))
            }
        }
    }
    let model = model.ok_or_else(|| ApiError::invalid_query("model", "Required"))?;
    let model = model_key(model, variant.as_deref())
        .map_err(|(field, message)| ApiError::invalid_query(field, message))?;
    let modified_after = match modified_after {
        None => None,
        Some((param, text)) => {
            let at = parse_iso_z(&text).ok_or_else(|| {
                ApiError::invalid_query(&param, "must be an ISO 8601 datetime in UTC (ending in Z)")
            })?;
            if at < now - MAX_MODIFIED_AFTER_AGE_MS {
                return Err(ApiError::invalid_query(
                    &param,
                    "must not be more than 12 months in the past",
                ));
            }
            Some(at)
        }
    };
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid_query(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let mut actions = Vec::new();
    if let Some(text) = filter.as_deref().filter(|t| !t.is_empty()) {
        for part in text.split([',', '|']) {
            let action = RecordAction::parse(part.trim()).ok_or_else(|| {
                ApiError::invalid_query("filter", "must list added, updated or deleted")
            })?;
            if !actions.contains(&action) {
                actions.push(action);
            }
        }
    }
    if let Some(cursor) = &cursor {
        if cursor.len() > 1000 {
            return Err(ApiError::invalid_query("cursor", "at most 1000 characters"));
        }
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid_query(
            "ids",
            format!("at most {MAX_IDS} ids"),
        ));
    }
    if ids.iter().any(|id| id.is_empty() || id.len() > 256) {
        return Err(ApiError::invalid_query(
            "ids",
            "each id has 1 to 256 characters",
        ));
    }
    Ok(RecordsParams {
        query: RecordQuery {
            model,
            cursor: cursor.filter(|c| !c.is_empty()),
            modified_after,
            actions,
            ids,
            limit,
        },
    })
}

/// A record timestamp the way Nango's records API prints it (Postgres JSON text: microseconds
/// and an offset).
pub fn record_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())
        .unwrap_or_default()
}

/// One record as the API returns it: the payload, `id` set to the external id, the metadata.
fn record_json(record: StoredRecord) -> Value {
    let mut object = match record.payload {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    object.insert("id".into(), Value::String(record.external_id));
    object.insert(
        "_nango_metadata".into(),
        json!({
            "first_seen_at": record_time(record.first_seen_at),
            "last_modified_at": record_time(record.updated_at),
            "last_action": record.last_action.as_str(),
            "deleted_at": record.deleted_at.map(record_time),
            "pruned_at": record.pruned_at.map(record_time),
            "cursor": record.cursor,
        }),
    );
    Value::Object(object)
}

async fn list(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let named = super::connection_headers(&headers)?;
    let mut params = parse_params(raw.as_deref(), state.clock.now_ms())?;
    let connection = header_connection(&state, &env, named).await?;
    // One more than asked tells whether another page exists.
    let limit = params.query.limit;
    params.query.limit = limit + 1;
    let mut records = state
        .store
        .list_records(env.id, connection.id, &params.query)
        .await
        .map_err(|e| match e {
            StoreError::InvalidCursor => ApiError::invalid_query("cursor", "invalid cursor"),
            other => ApiError::from(other),
        })?;
    let next_cursor = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|r| Value::String(r.cursor.clone()))
    } else {
        None
    };
    let records: Vec<Value> = records.into_iter().map(record_json).collect();
    Ok(Json(json!({
        "records": records,
        "next_cursor": next_cursor.unwrap_or(Value::Null),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    #[test]
    fn the_query_is_strict_and_defaults_like_nango() {
        let params = parse_params(Some("model=Contact"), NOW).expect("valid");
        assert_eq!(params.query.limit, 100);
        assert!(params.query.actions.is_empty());
        let params = parse_params(
            Some("model=Contact&filter=ADDED|deleted&ids=a&ids=b&limit=10000&variant=base"),
            NOW,
        )
        .expect("valid");
        assert_eq!(
            params.query.actions,
            [RecordAction::Added, RecordAction::Deleted]
        );
        assert_eq!(params.query.ids, ["a", "b"]);
        assert_eq!(params.query.model, "Contact");
        let params = parse_params(Some("model=Contact&filter=updated,added"), NOW).expect("valid");
        assert_eq!(
            params.query.actions,
            [RecordAction::Updated, RecordAction::Added]
        );
        assert_eq!(
            parse_params(Some("model=Contact&variant=eu"), NOW)
                .expect("valid")
                .query
                .model,
            "Contact::eu"
        );
        for bad in [
            "",
            "model=contact",
            "model=Contact&limit=0",
            "model=Contact&limit=10001",
            "model=Contact&filter=created",
            "model=Contact&extra=1",
            "model=Contact&modified_after=2026-05-01T00:00:00%2B02:00",
            "model=Contact&modified_after=yesterday",
            "model=Contact&modified_after=2020-01-01T00:00:00Z",
        ] {
            let err = parse_params(Some(bad), NOW).expect_err(bad);
            assert_eq!(err.code, "invalid_query_params", "{bad}");
        }
        let at = parse_params(Some("model=Contact&delta=2026-05-01T00:00:00.123Z"), NOW)
            .expect("valid")
            .query
            .modified_after;
        assert_eq!(at, Some(1_777_593_600_123));
    }

    #[test]
    fn record_times_have_microseconds_and_an_offset() {
        assert_eq!(
            record_time(1_695_050_435_941),
            "2023-09-18T15:20:35.941000+00:00"
        );
    }
}
