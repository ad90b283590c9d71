//! `/integrations`: create, list, read (optionally with credentials), update and delete integrations in Nango's shapes; client secrets are stored encrypted.

use super::auth::Env;
use super::{iso_z, json_body, now_ms, strict_query};
use crate::error::ApiError;
use crate::providers::provider;
use crate::sealing;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use ferry_core::ids::ProviderConfigKey;
use ferry_core::secret::SecretString;
use ferry_store::{
    CipherRef, EnvironmentId, Integration, IntegrationId, IntegrationPatch, NewIntegration,
    StoreError,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The integration routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/integrations", get(list).post(create))
        .route("/integrations/{key}", get(one).patch(update).delete(remove))
}

/// Seals a client secret for the integration row `id` of `environment` (bound to that row).
pub fn seal_client_secret(
    state: &AppState,
    environment: EnvironmentId,
    id: IntegrationId,
    secret: &str,
) -> Result<Vec<u8>, ApiError> {
    state
        .vault
        .encrypt(
            secret.as_bytes(),
            &sealing::aad(&CipherRef::IntegrationClientSecret(id), environment),
        )
        .map_err(ApiError::internal)
}

/// Opens an integration's client secret, if it has one.
pub fn open_client_secret(
    state: &AppState,
    integration: &Integration,
) -> Result<Option<SecretString>, ApiError> {
    integration
        .client_secret
        .as_ref()
        .map(|blob| {
            state.vault.decrypt_string(
                blob,
                &sealing::aad(
                    &CipherRef::IntegrationClientSecret(integration.id),
                    integration.environment_id,
                ),
            )
        })
        .transpose()
        .map_err(ApiError::internal)
}

fn integration_json(
    state: &AppState,
    i: &Integration,
    with_credentials: bool,
) -> Result<Value, ApiError> {
    let mut v = json!({
        "unique_key": i.unique_key,
        "provider": i.provider,
        "display_name": i.display_name,
        "logo": format!("{}/images/template-logos/{}.svg", state.public_url, i.provider),
        "forward_webhooks": true,
        "created_at": iso_z(i.created_at),
        "updated_at": iso_z(i.updated_at),
    });
    if with_credentials {
        let secret = open_client_secret(state, i)?;
        if let Some(map) = v.as_object_mut() {
            map.insert(
                "credentials".into(),
                json!({
                    "type": "OAUTH2",
                    "client_id": i.client_id,
                    "client_secret": secret.as_ref().map(|s| s.expose_secret().to_string()),
                    "scopes": i.scopes,
                    "webhook_secret": null,
                }),
            );
        }
    }
    Ok(v)
}

async fn list(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let all = state.store.list_integrations(env.id).await?;
    let data = all
        .iter()
        .map(|i| integration_json(&state, i, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "data": data })))
}

async fn one(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = strict_query(raw.as_deref(), &["include"])?;
    let include = query.get("include").map(String::as_str).unwrap_or_default();
    if !include.is_empty()
        && !include
            .split(',')
            .all(|p| p == "credentials" || p == "webhook")
    {
        return Err(ApiError::invalid_query(
            "include",
            "must be credentials or webhook",
        ));
    }
    let integration = state
        .store
        .get_integration(env.id, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown integration: {key}")))?;
    let data = integration_json(
        &state,
        &integration,
        include.split(',').any(|p| p == "credentials"),
    )?;
    Ok(Json(json!({ "data": data })))
}

/// OAuth credentials of an integration as the API takes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsBody {
    #[serde(rename = "type")]
    kind: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    scopes: Option<String>,
    #[serde(default)]
    webhook_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    provider: String,
    unique_key: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    credentials: Option<CredentialsBody>,
    #[serde(default)]
    forward_webhooks: Option<bool>,
}

fn check_credentials(c: &CredentialsBody) -> Result<(), ApiError> {
    if c.kind != "OAUTH2" {
        return Err(ApiError::invalid_body(
            "credentials.type",
            "Salesforce integrations use OAUTH2",
        ));
    }
    if c.client_id.trim().is_empty() {
        return Err(ApiError::invalid_body(
            "credentials.client_id",
            "must not be empty",
        ));
    }
    if c.client_secret.trim().is_empty() {
        return Err(ApiError::invalid_body(
            "credentials.client_secret",
            "must not be empty",
        ));
    }
    let _ = &c.webhook_secret;
    Ok(())
}

async fn create(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: CreateBody = json_body(&headers, &body)?;
    let p = provider(&body.provider).ok_or_else(|| {
        ApiError::invalid_body(
            "provider",
            format!(
                "unknown provider {}; Ferry ships salesforce and salesforce-sandbox",
                body.provider
            ),
        )
    })?;
    let key = ProviderConfigKey::parse(&body.unique_key)
        .map_err(|e| ApiError::invalid_body("unique_key", e.to_string()))?;
    let Some(credentials) = body.credentials else {
        return Err(ApiError::invalid_body(
            "credentials",
            "an OAUTH2 client_id and client_secret are required",
        ));
    };
    check_credentials(&credentials)?;
    let _ = body.forward_webhooks;
    let seal = |id: i64| {
        seal_client_secret(
            &state,
            env.id,
            IntegrationId(id),
            &credentials.client_secret,
        )
        .map_err(|e| e.message)
    };
    let created = state
        .store
        .create_integration(
            env.id,
            &NewIntegration {
                unique_key: key.as_str().to_string(),
                provider: p.name.to_string(),
                display_name: body
                    .display_name
                    .unwrap_or_else(|| p.display_name.to_string()),
                client_id: Some(credentials.client_id.clone()),
                scopes: credentials.scopes.clone(),
            },
            Some(&seal),
            now_ms(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::bad_request(
                "duplicate_integration",
                format!("an integration {} already exists", key.as_str()),
            ),
            other => ApiError::from(other),
        })?;
    Ok(Json(
        json!({ "data": integration_json(&state, &created, false)? }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    unique_key: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    credentials: Option<CredentialsBody>,
    #[serde(default)]
    forward_webhooks: Option<bool>,
}

async fn update(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    let body: UpdateBody = json_body(&headers, &body)?;
    let new_key = match &body.unique_key {
        Some(k) => Some(
            ProviderConfigKey::parse(k)
                .map_err(|e| ApiError::invalid_body("unique_key", e.to_string()))?,
        ),
        None => None,
    };
    if let Some(c) = &body.credentials {
        check_credentials(c)?;
    }
    let _ = body.forward_webhooks;
    let secret = match &body.credentials {
        Some(c) => {
            let current = super::integration(&state, env.id, &key).await?;
            Some(seal_client_secret(
                &state,
                env.id,
                current.id,
                &c.client_secret,
            )?)
        }
        None => None,
    };
    let patch = IntegrationPatch {
        unique_key: new_key.map(|k| k.as_str().to_string()),
        provider: None,
        display_name: body.display_name,
        client_id: body.credentials.as_ref().map(|c| Some(c.client_id.clone())),
        client_secret: secret.map(Some),
        scopes: body.credentials.as_ref().map(|c| c.scopes.clone()),
    };
    let updated = state
        .store
        .update_integration(env.id, &key, &patch, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::bad_request(
                "duplicate_integration",
                "an integration with that unique_key already exists",
            ),
            StoreError::NotFound { .. } => {
                ApiError::not_found(format!("unknown integration: {key}"))
            }
            other => ApiError::from(other),
        })?;
    Ok(Json(
        json!({ "data": integration_json(&state, &updated, false)? }),
    ))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    strict_query(raw.as_deref(), &[])?;
    if state.store.delete_integration(env.id, &key).await? {
        Ok(Json(json!({ "success": true })))
    } else {
        Err(ApiError::not_found(format!("unknown integration: {key}")))
    }
}
