//! Connect sessions: `POST /connect/sessions` and `/connect/sessions/reconnect` (secret key), `GET`/`DELETE /connect/session` (session token); the token is shown once and stored only as a hash.

use super::auth::Env;
use super::{iso_z, json_body, now_ms, strict_query};
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferry_core::ids::{ConnectionId, ProviderConfigKey};
use ferry_store::{ConnectSession, ConnectionRowId, Environment, NewConnectSession};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Connect sessions live this long.
pub const SESSION_TTL_MS: i64 = 30 * 60 * 1000;
/// The token prefix Nango's clients recognise.
pub const TOKEN_PREFIX: &str = "nango_connect_session_";

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/connect/sessions", post(create))
        .route("/connect/sessions/reconnect", post(reconnect))
        .route("/connect/session", get(current).delete(remove))
}

/// The stored form of a session token.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A request authenticated by a connect session token (`Authorization: Bearer nango_connect_session_…`).
#[derive(Debug, Clone)]
pub struct SessionAuth {
    /// The session.
    pub session: ConnectSession,
    /// Its environment.
    pub environment: Environment,
}

/// Resolves a raw session token (from a header or a query string).
pub async fn resolve_session(state: &AppState, token: &str) -> Result<SessionAuth, ApiError> {
    let valid_shape = token
        .strip_prefix(TOKEN_PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid_shape {
        return Err(ApiError::unauthorized(
            "invalid_connect_session_token_format",
            "The connect session token is malformed.",
        ));
    }
    let session = state
        .store
        .connect_session_by_token_hash(&token_hash(token), now_ms())
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized(
                "unknown_connect_session_token",
                "The connect session is unknown or has expired; create a new one.",
            )
        })?;
    let environment = state
        .environment_by_id(session.environment_id)
        .ok_or_else(|| ApiError::internal("connect session of an unknown environment"))?;
    Ok(SessionAuth {
        session,
        environment,
    })
}

impl FromRequestParts<Arc<AppState>> for SessionAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_auth_header",
                    "Authentication failed. Send the connect session token as Bearer.",
                )
            })?;
        resolve_session(state, token).await
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndUser {
    id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Organization {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationDefaults {
    #[serde(default)]
    user_scopes: Option<String>,
    #[serde(default)]
    authorization_params: Option<BTreeMap<String, String>>,
    #[serde(default)]
    connection_config: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    #[serde(default)]
    end_user: Option<EndUser>,
    #[serde(default)]
    organization: Option<Organization>,
    #[serde(default)]
    allowed_integrations: Option<Vec<String>>,
    #[serde(default)]
    integrations_config_defaults: Option<BTreeMap<String, IntegrationDefaults>>,
    #[serde(default)]
    overrides: Option<Map<String, Value>>,
    #[serde(default)]
    webhook_url_override: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
    /// Only on reconnect.
    #[serde(default)]
    connection_id: Option<String>,
    /// Only on reconnect.
    #[serde(default)]
    integration_id: Option<String>,
}

fn valid_email(s: &str) -> bool {
    let mut parts = s.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None) if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
}

fn check_tag_key(k: &str) -> bool {
    let mut chars = k.chars();
    k.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
}

/// Builds the connection tags a session gives its connections (Nango's rules; end user tags win).
fn session_tags(body: &SessionBody) -> Result<Map<String, Value>, ApiError> {
    let mut tags = Map::new();
    if let Some(t) = &body.tags {
        for (k, v) in t {
            if !check_tag_key(k) || v.is_empty() || v.len() > 255 {
                return Err(ApiError::invalid_body(&format!("tags.{k}"), "tag keys start with a letter (letters, digits, _-./, max 64); values are 1–255 characters"));
            }
            tags.insert(k.to_ascii_lowercase(), Value::String(v.clone()));
        }
    }
    if let Some(o) = &body.organization {
        tags.insert("organization_id".into(), Value::String(o.id.clone()));
        if let Some(d) = &o.display_name {
            tags.insert("organization_display_name".into(), Value::String(d.clone()));
        }
    }
    if let Some(u) = &body.end_user {
        tags.insert("end_user_id".into(), Value::String(u.id.clone()));
        if let Some(e) = &u.email {
            tags.insert("end_user_email".into(), Value::String(e.clone()));
        }
        if let Some(d) = &u.display_name {
            tags.insert("end_user_display_name".into(), Value::String(d.clone()));
        }
        for (k, v) in u.tags.iter().flatten() {
            tags.insert(k.to_ascii_lowercase(), Value::String(v.clone()));
        }
    }
    if tags.len() > 10 + 5 {
        return Err(ApiError::invalid_body("tags", "at most 10 tags"));
    }
    Ok(tags)
}

async fn validate(state: &AppState, env: &Environment, body: &SessionBody) -> Result<(), ApiError> {
    if let Some(u) = &body.end_user {
        if u.id.is_empty() || u.id.len() > 255 {
            return Err(ApiError::invalid_body(
                "end_user.id",
                "must be 1 to 255 characters",
            ));
        }
        if let Some(e) = &u.email {
            if !valid_email(e) {
                return Err(ApiError::invalid_body(
                    "end_user.email",
                    "must be a valid email address",
                ));
            }
        }
    } else if body.tags.is_none() && body.connection_id.is_none() {
        return Err(ApiError::invalid_body(
            "end_user",
            "end_user is required unless tags are given",
        ));
    }
    let known: Vec<String> = state
        .store
        .list_integrations(env.id)
        .await?
        .into_iter()
        .map(|i| i.unique_key)
        .collect();
    for (i, key) in body.allowed_integrations.iter().flatten().enumerate() {
        if !known.contains(key) {
            return Err(ApiError::invalid_body(
                &format!("allowed_integrations.{i}"),
                format!("unknown integration {key}"),
            ));
        }
    }
    for (key, defaults) in body.integrations_config_defaults.iter().flatten() {
        if !known.contains(key) {
            return Err(ApiError::invalid_body(
                &format!("integrations_config_defaults.{key}"),
                format!("unknown integration {key}"),
            ));
        }
        if let Some(Value::String(h)) = defaults
            .connection_config
            .as_ref()
            .and_then(|c| c.get("hostname"))
        {
            ferry_core::ids::SalesforceHostname::parse(h).map_err(|e| {
                ApiError::invalid_body(
                    &format!("integrations_config_defaults.{key}.connection_config.hostname"),
                    e.to_string(),
                )
            })?;
        }
        let _ = (&defaults.user_scopes, &defaults.authorization_params);
    }
    if let Some(url) = body
        .webhook_url_override
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        crate::webhook_targets::validate_webhook_url(
            &state.config.webhook_targets,
            "webhook_url_override",
            url,
        )?;
    }
    let _ = &body.overrides;
    Ok(())
}

async fn open_session(
    state: &AppState,
    env: &Environment,
    body: SessionBody,
    reconnect_connection_id: Option<ConnectionRowId>,
) -> Result<Response, ApiError> {
    let tags = session_tags(&body)?;
    let token = format!("{TOKEN_PREFIX}{}", crate::state::random_hex(32));
    let expires_at = now_ms() + SESSION_TTL_MS;
    let end_user = body.end_user.as_ref().map(|u| {
        json!({
            "id": u.id,
            "email": u.email,
            "display_name": u.display_name,
            "tags": u.tags,
            "organization": body.organization.as_ref().map(|o| json!({"id": o.id, "display_name": o.display_name})),
        })
    });
    let defaults = body.integrations_config_defaults.as_ref().map(|d| {
        Value::Object(
            d.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"user_scopes": v.user_scopes, "authorization_params": v.authorization_params, "connection_config": v.connection_config}),
                    )
                })
                .collect(),
        )
    });
    state
        .store
        .create_connect_session(
            env.id,
            &NewConnectSession {
                token_hash: token_hash(&token),
                end_user,
                organization: body
                    .organization
                    .as_ref()
                    .map(|o| json!({"id": o.id, "display_name": o.display_name})),
                allowed_integrations: body.allowed_integrations.clone(),
                integrations_config_defaults: defaults,
                tags: Value::Object(tags),
                reconnect_connection_id,
                webhook_url_override: body.webhook_url_override.clone().filter(|u| !u.is_empty()),
                expires_at,
            },
            now_ms(),
        )
        .await?;
    let link = format!("{}/connect/?session_token={token}", state.public_url);
    Ok((
        StatusCode::CREATED,
        Json(json!({"data": {"token": token, "connect_link": link, "expires_at": iso_z(expires_at)}})),
    )
        .into_response())
}

async fn create(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: SessionBody = json_body(&headers, &body)?;
    if body.connection_id.is_some() || body.integration_id.is_some() {
        return Err(ApiError::invalid_body(
            "connection_id",
            "use /connect/sessions/reconnect to reconnect a connection",
        ));
    }
    validate(&state, &env, &body).await?;
    open_session(&state, &env, body, None).await
}

async fn reconnect(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: SessionBody = json_body(&headers, &body)?;
    let connection_id = body
        .connection_id
        .as_deref()
        .ok_or_else(|| ApiError::invalid_body("connection_id", "required"))
        .and_then(|c| {
            ConnectionId::parse(c)
                .map_err(|e| ApiError::invalid_body("connection_id", e.to_string()))
        })?;
    let integration = body
        .integration_id
        .as_deref()
        .ok_or_else(|| ApiError::invalid_body("integration_id", "required"))
        .and_then(|c| {
            ProviderConfigKey::parse(c)
                .map_err(|e| ApiError::invalid_body("integration_id", e.to_string()))
        })?;
    validate(&state, &env, &body).await?;
    let connection = state
        .store
        .get_connection(env.id, integration.as_str(), connection_id.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "unknown_connection",
                format!(
                    "no connection {} for {}",
                    connection_id.as_str(),
                    integration.as_str()
                ),
            )
        })?;
    let mut body = body;
    body.allowed_integrations = Some(vec![integration.as_str().to_string()]);
    open_session(&state, &env, body, Some(connection.id)).await
}

async fn current(
    State(state): State<Arc<AppState>>,
    auth: SessionAuth,
) -> Result<Json<Value>, ApiError> {
    let s = &auth.session;
    let end_user = match &s.end_user {
        Some(Value::Object(u)) => {
            json!({"id": u.get("id"), "email": u.get("email"), "display_name": u.get("display_name"), "tags": u.get("tags")})
        }
        _ => Value::Null,
    };
    let _ = &state;
    Ok(Json(json!({"data": {
        "endUser": end_user,
        "allowed_integrations": s.allowed_integrations,
        "integrations_config_defaults": s.integrations_config_defaults,
        "overrides": null,
        "tags": s.tags,
        "isReconnecting": s.reconnect_connection_id.is_some(),
        "connectUISettings": {"showWatermark": false, "theme": {}},
    }})))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    auth: SessionAuth,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_connect_session(auth.environment.id, auth.session.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
