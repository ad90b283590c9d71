//! The Nango-compatible connection API: get (plural and legacy singular paths), list with filters, delete (revoking at Salesforce first), patch, metadata replace/merge, and import.

use super::auth::Env;
use super::{json_body, now_ms, strict_query};
use crate::connections::{
    full_json, list_item_json, oauth_client, open, verify_imported_org, Credentials,
};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::ids::{ConnectionId, ProviderConfigKey};
use ferry_store::{
    ConnectionFilter, ConnectionPatch, EnvironmentId, ExistingConnection, Integration,
    MetadataMode, NewConnection, StoreError,
};

fn mode(merge: bool) -> MetadataMode {
    if merge {
        MetadataMode::Merge
    } else {
        MetadataMode::Replace
    }
}
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/connections", get(list).post(import))
        .route(
            "/connections/metadata",
            post(set_metadata).patch(update_metadata),
        )
        .route("/connections/{id}", get(one).delete(remove).patch(patch))
        .route("/connection", get(list))
        .route("/connection/{id}", get(one).delete(remove).patch(patch))
        .route(
            "/connection/{id}/metadata",
            post(legacy_set_metadata).patch(legacy_update_metadata),
        )
}

fn bool_param(q: &BTreeMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid_query(name, "must be true or false")),
    }
}

async fn integration_for(
    state: &AppState,
    env_id: EnvironmentId,
    key: Option<&String>,
) -> Result<Integration, ApiError> {
    let key = key.ok_or_else(|| ApiError::invalid_query("provider_config_key", "required"))?;
    super::integration(state, env_id, key).await
}

async fn one(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = strict_query(
        raw.as_deref(),
        &[
            "provider_config_key",
            "force_refresh",
            "refresh_token",
            "refresh_github_app_jwt_token",
        ],
    )?;
    let force_refresh = bool_param(&q, "force_refresh")?;
    let include_refresh = bool_param(&q, "refresh_token")?;
    bool_param(&q, "refresh_github_app_jwt_token")?;
    let integration = integration_for(&state, env.id, q.get("provider_config_key")).await?;
    let connection = state
        .store
        .get_connection(env.id, &integration.unique_key, &id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no connection {id} for {}", integration.unique_key))
        })?;
    let snapshot = connection.clone();
    let (connection, _) = state
        .credentials
        .get(&state, &integration, connection, force_refresh)
        .await
        .map_err(|e| {
            let shown = full_json(&state, &snapshot, &integration.unique_key, false)
                .ok()
                .map(|mut v| {
                    v["credentials"] = json!({});
                    v
                });
            e.into_api(shown)
        })?;
    state
        .store
        .touch_last_fetched(env.id, connection.id, now_ms())
        .await?;
    Ok(Json(full_json(
        &state,
        &connection,
        &integration.unique_key,
        include_refresh,
    )?))
}

async fn list(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut filter = ConnectionFilter::default();
    for (k, v) in &pairs {
        match k.as_str() {
            "connectionId" => filter.connection_id = Some(v.clone()),
            "search" => filter.search = Some(v.clone()),
            "endUserId" => filter.end_user_id = Some(v.clone()),
            "endUserOrganizationId" => filter.end_user_organization_id = Some(v.clone()),
            "integrationId" => {
                filter.integration_keys = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "limit" => {
                let n: u32 = v.parse().map_err(|_| {
                    ApiError::invalid_query("limit", "must be a number from 1 to 2000")
                })?;
                if !(1..=2000).contains(&n) {
                    return Err(ApiError::invalid_query(
                        "limit",
                        "must be a number from 1 to 2000",
                    ));
                }
                filter.limit = Some(n);
            }
            "page" => {
                filter.page = Some(
                    v.parse()
                        .map_err(|_| ApiError::invalid_query("page", "must be a whole number"))?,
                )
            }
            other => match other
                .strip_prefix("tags[")
                .and_then(|r| r.strip_suffix(']'))
            {
                Some(tag) => filter.tags.push((tag.to_ascii_lowercase(), v.clone())),
                None => {
                    return Err(ApiError::invalid_query(
                        other,
                        "unrecognized query parameter",
                    ))
                }
            },
        }
    }
    let rows = state.store.list_connections(env.id, &filter).await?;
    let connections: Vec<Value> = rows
        .iter()
        .map(|c| list_item_json(c, &c.integration_key))
        .collect();
    Ok(Json(json!({ "connections": connections })))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q = strict_query(raw.as_deref(), &["provider_config_key"])?;
    let integration = integration_for(&state, env.id, q.get("provider_config_key")).await?;
    let connection = state
        .store
        .get_connection(env.id, &integration.unique_key, &id)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_connection",
                format!("no connection {id} for {}", integration.unique_key),
            )
        })?;
    // Revoke at Salesforce first: a deleted connection must not leave a live grant behind.
    if let Ok(credentials) = open(&state, &connection) {
        let hostname = connection
            .connection_config
            .get("hostname")
            .and_then(Value::as_str)
            .and_then(|h| ferry_core::ids::SalesforceHostname::parse(h).ok());
        if let Ok(client) = oauth_client(&state, &integration, hostname.as_ref()) {
            let token = credentials
                .refresh_token
                .as_deref()
                .unwrap_or(&credentials.access_token);
            if let Err(e) = client.revoke(token).await {
                tracing::warn!(connection = %connection.connection_id, error = %e, "revoking at Salesforce failed; deleting anyway");
            }
        }
    }
    let deleted = state
        .store
        .delete_connection(env.id, &integration.unique_key, &connection.connection_id)
        .await?;
    state
        .targets
        .invalidate(env.id, &integration.unique_key, &connection.connection_id);
    Ok(Json(json!({ "success": deleted })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    webhook_url_override: Option<String>,
    #[serde(default)]
    end_user: Option<Value>,
}

async fn patch(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let q = strict_query(raw.as_deref(), &["provider_config_key"])?;
    let body: PatchBody = json_body(&headers, &body)?;
    let integration = integration_for(&state, env.id, q.get("provider_config_key")).await?;
    let connection = state
        .store
        .get_connection(env.id, &integration.unique_key, &id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no connection {id} for {}", integration.unique_key))
        })?;
    // Nango: an empty string clears the override.
    let webhook_url_override = match body.webhook_url_override {
        None => None,
        Some(url) if url.is_empty() => Some(None),
        Some(url) => {
            crate::webhook_targets::validate_webhook_url(
                &state.config.webhook_targets,
                "webhook_url_override",
                &url,
            )?;
            Some(Some(url))
        }
    };
    let tags = body.tags.map(|t| {
        Value::Object(
            t.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v)))
                .collect::<Map<_, _>>(),
        )
    });
    let end_user_id = body
        .end_user
        .as_ref()
        .map(|u| u.get("id").and_then(Value::as_str).map(str::to_string));
    state
        .store
        .patch_connection(
            env.id,
            &integration.unique_key,
            &connection.connection_id,
            &ConnectionPatch {
                tags,
                end_user: body.end_user.map(Some),
                end_user_id,
                connection_config: None,
                webhook_url_override,
            },
            now_ms(),
        )
        .await?;
    Ok(Json(json!({ "success": true })))
}

/// Most connections one metadata call may name.
pub const MAX_METADATA_CONNECTIONS: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataBody {
    connection_id: OneOrMany,
    provider_config_key: String,
    metadata: Map<String, Value>,
}

async fn metadata(
    state: &AppState,
    env_id: EnvironmentId,
    raw: Option<&str>,
    headers: &HeaderMap,
    bytes: &Bytes,
    merge: bool,
) -> Result<Value, ApiError> {
    strict_query(raw, &[])?;
    let body: MetadataBody = json_body(headers, bytes)?;
    let ids = match &body.connection_id {
        OneOrMany::One(s) => vec![s.clone()],
        OneOrMany::Many(v) if v.len() > MAX_METADATA_CONNECTIONS => {
            return Err(ApiError::invalid_body(
                "connection_id",
                format!("at most {MAX_METADATA_CONNECTIONS} connections per call"),
            ))
        }
        OneOrMany::Many(v) => v.clone(),
    };
    integration_for(state, env_id, Some(&body.provider_config_key)).await?;
    state
        .store
        .set_metadata(
            env_id,
            &body.provider_config_key,
            &ids,
            &body.metadata,
            mode(merge),
            now_ms(),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound { keys, .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_connection",
                if ids.len() > 1 {
                    format!("no connection {}; no metadata was changed", keys.join(", "))
                } else {
                    format!("no connection {}", keys.join(", "))
                },
            ),
            other => ApiError::from(other),
        })?;
    serde_json::from_slice(bytes).map_err(ApiError::internal)
}

async fn set_metadata(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let echo = metadata(&state, env.id, raw.as_deref(), &headers, &body, false).await?;
    Ok((StatusCode::CREATED, Json(echo)).into_response())
}

async fn update_metadata(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        metadata(&state, env.id, raw.as_deref(), &headers, &body, true).await?,
    ))
}

async fn legacy_metadata(
    state: &AppState,
    env_id: EnvironmentId,
    id: &str,
    raw: Option<&str>,
    headers: &HeaderMap,
    bytes: &Bytes,
    merge: bool,
) -> Result<(), ApiError> {
    let q = strict_query(raw, &["provider_config_key"])?;
    let integration = integration_for(state, env_id, q.get("provider_config_key")).await?;
    let md: Map<String, Value> = json_body(headers, bytes)?;
    state
        .store
        .set_metadata(
            env_id,
            &integration.unique_key,
            &[id.to_string()],
            &md,
            mode(merge),
            now_ms(),
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound { keys, .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_connection",
                format!("no connection {}", keys.join(", ")),
            ),
            other => ApiError::from(other),
        })
}

async fn legacy_set_metadata(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    legacy_metadata(&state, env.id, &id, raw.as_deref(), &headers, &body, false).await?;
    Ok((StatusCode::CREATED, Json(json!({"success": true}))).into_response())
}

async fn legacy_update_metadata(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    legacy_metadata(&state, env.id, &id, raw.as_deref(), &headers, &body, true).await?;
    Ok(Json(json!({"success": true})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportCredentials {
    #[serde(rename = "type")]
    kind: String,
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    raw: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    #[serde(default)]
    connection_id: Option<String>,
    provider_config_key: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    connection_config: Option<Map<String, Value>>,
    #[serde(default)]
    webhook_url_override: Option<String>,
    credentials: ImportCredentials,
    #[serde(default)]
    end_user: Option<Value>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    /// Replace an existing connection with the same `connection_id` (otherwise 409).
    #[serde(default)]
    replace: bool,
}

async fn import(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: ImportBody = json_body(&headers, &body)?;
    let key = ProviderConfigKey::parse(&body.provider_config_key)
        .map_err(|e| ApiError::invalid_body("provider_config_key", e.to_string()))?;
    let integration = integration_for(&state, env.id, Some(&key.as_str().to_string())).await?;
    if body.credentials.kind != "OAUTH2" {
        return Err(ApiError::invalid_body(
            "credentials.type",
            "Salesforce connections use OAUTH2",
        ));
    }
    let connection_id = match &body.connection_id {
        Some(c) => ConnectionId::parse(c)
            .map_err(|e| ApiError::invalid_body("connection_id", e.to_string()))?
            .as_str()
            .to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let mut config = body.connection_config.clone().unwrap_or_default();
    let instance_url = config
        .get("instance_url")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::invalid_body(
                "connection_config.instance_url",
                "required: the org's instance URL",
            )
        })?;
    if !state
        .config
        .hosts
        .upstream_allowed(&integration.provider, instance_url)
    {
        return Err(ApiError::invalid_body(
            "connection_config.instance_url",
            "not a Salesforce instance host Ferry trusts",
        ));
    }
    let expires_at = match &body.credentials.expires_at {
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    ApiError::invalid_body("credentials.expires_at", "must be an ISO 8601 datetime")
                })?
                .timestamp_millis(),
        ),
        None => None,
    };
    let mut credentials = Credentials {
        access_token: body.credentials.access_token.clone(),
        refresh_token: body.credentials.refresh_token.clone(),
        expires_at,
        obtained_at: None,
        raw: body.credentials.raw.clone().unwrap_or_else(|| json!({})),
    };
    let identity = verify_imported_org(&state, &integration, &mut config, &mut credentials).await?;
    let webhook_url_override = body.webhook_url_override.filter(|u| !u.is_empty());
    if let Some(url) = &webhook_url_override {
        crate::webhook_targets::validate_webhook_url(
            &state.config.webhook_targets,
            "webhook_url_override",
            url,
        )?;
    }
    let tags: Map<String, Value> = body
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v)))
        .collect();
    let end_user_id = body
        .end_user
        .as_ref()
        .and_then(|u| u.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let (connection, _) = state
        .store
        .upsert_connection(
            env.id,
            &NewConnection {
                integration_id: integration.id,
                connection_id,
                provider: integration.provider.clone(),
                connection_config: Value::Object(config),
                metadata: body.metadata.map(Value::Object),
                tags: Value::Object(tags),
                end_user: body.end_user,
                end_user_id,
                expires_at,
                sf_org_id: Some(identity.org_id),
                sf_user_id: Some(identity.user_id),
                reconnect: None,
                existing: if body.replace {
                    ExistingConnection::Replace
                } else {
                    ExistingConnection::Refuse
                },
                webhook_url_override,
                auth_webhook: None,
            },
            &crate::connections::sealer(&state, env.id, &credentials),
            now_ms(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate_connection",
                "a connection with this connection_id already exists; send \"replace\": true to replace it",
            ),
            other => ApiError::from(other),
        })?;
    crate::sync::scheduler::on_connection_created(&state, &connection).await;
    Ok((
        StatusCode::CREATED,
        Json(full_json(
            &state,
            &connection,
            &integration.unique_key,
            false,
        )?),
    )
        .into_response())
}
