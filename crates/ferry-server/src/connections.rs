//! Connection operations shared by the API, the OAuth callback and (later) workers: credentials sealed in the vault, the Nango `ConnectionFull` shape, creation from a token response, revoke-then-delete.

use crate::api::{iso_offset, iso_z, now_ms};
use crate::app::AppState;
use crate::error::ApiError;
use crate::providers::{provider, HostMap};
use ferry_core::ids::SalesforceHostname;
use ferry_salesforce::oauth::{OAuthClient, TokenResponse};
use ferry_store::{Connection, Integration, NewConnection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// OAuth credentials of a connection, as sealed in the vault.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Current access token.
    pub access_token: String,
    /// Refresh token, when granted.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Learned expiry (epoch ms), when known.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// When this access token was obtained (epoch ms), to judge its lifetime.
    #[serde(default)]
    pub obtained_at: Option<i64>,
    /// The token response as received (secrets included; only ever stored sealed).
    #[serde(default)]
    pub raw: Value,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The AAD naming what a credentials ciphertext is.
pub const CREDENTIALS_AAD: &[u8] = b"connection-credentials";

/// Seals credentials for storage.
pub fn seal(state: &AppState, credentials: &Credentials) -> Result<Vec<u8>, ApiError> {
    let bytes = serde_json::to_vec(credentials).map_err(ApiError::internal)?;
    state
        .vault
        .encrypt(&bytes, CREDENTIALS_AAD)
        .map_err(ApiError::internal)
}

/// Opens a connection's credentials.
pub fn open(state: &AppState, connection: &Connection) -> Result<Credentials, ApiError> {
    let plain = state
        .vault
        .decrypt(&connection.credentials, CREDENTIALS_AAD)
        .map_err(ApiError::internal)?;
    serde_json::from_slice(plain.expose_secret()).map_err(ApiError::internal)
}

/// Removes every key named like "refresh_token" (compared without non-letters, lowercased), recursively.
pub fn strip_refresh_tokens(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| {
                let letters: String = k
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .collect::<String>()
                    .to_ascii_lowercase();
                letters != "refreshtoken"
            });
            for v in map.values_mut() {
                strip_refresh_tokens(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_refresh_tokens),
        _ => {}
    }
}

/// The end user object of the API, from the stored JSON.
fn end_user_json(connection: &Connection) -> Value {
    match &connection.end_user {
        Some(Value::Object(u)) if u.get("id").is_some_and(|i| !i.is_null()) => json!({
            "id": u.get("id"),
            "display_name": u.get("display_name").cloned().unwrap_or(Value::Null),
            "email": u.get("email").cloned().unwrap_or(Value::Null),
            "tags": u.get("tags").cloned().unwrap_or(Value::Null),
            "organization": u.get("organization").cloned().unwrap_or(Value::Null),
        }),
        _ => Value::Null,
    }
}

/// Errors shown on a connection (`[{type, log_id}]`).
fn errors_json(connection: &Connection) -> Value {
    Value::Array(connection.errors.clone())
}

/// `ConnectionFull`, as `GET /connections/{id}` returns it.
pub fn full_json(
    state: &AppState,
    connection: &Connection,
    integration_key: &str,
    include_refresh_token: bool,
) -> Result<Value, ApiError> {
    let credentials = open(state, connection)?;
    let mut creds = json!({
        "type": "OAUTH2",
        "access_token": credentials.access_token,
        "raw": credentials.raw,
    });
    if let Some(map) = creds.as_object_mut() {
        if let Some(rt) = &credentials.refresh_token {
            map.insert("refresh_token".into(), Value::String(rt.clone()));
        }
        if let Some(e) = credentials.expires_at {
            map.insert("expires_at".into(), Value::String(iso_z(e)));
        }
    }
    let mut config = connection.connection_config.clone();
    if !include_refresh_token {
        strip_refresh_tokens(&mut creds);
        strip_refresh_tokens(&mut config);
    }
    Ok(json!({
        "id": connection.id,
        "connection_id": connection.connection_id,
        "provider_config_key": integration_key,
        "provider": connection.provider,
        "errors": errors_json(connection),
        "end_user": end_user_json(connection),
        "tags": connection.tags,
        "metadata": connection.metadata,
        "connection_config": config,
        "webhook_url_override": connection.webhook_url_override,
        "created_at": iso_offset(connection.created_at),
        "updated_at": iso_offset(connection.updated_at),
        "last_fetched_at": connection.last_fetched_at.map(iso_offset),
        "credentials": creds,
    }))
}

/// The list item shape of `GET /connections`.
pub fn list_item_json(connection: &Connection, integration_key: &str) -> Value {
    json!({
        "id": connection.id,
        "connection_id": connection.connection_id,
        "provider_config_key": integration_key,
        "provider": connection.provider,
        "errors": errors_json(connection),
        "end_user": end_user_json(connection),
        "tags": connection.tags,
        "metadata": connection.metadata,
        "created": iso_offset(connection.created_at),
    })
}

/// The OAuth client for an integration and an optional My Domain host.
pub fn oauth_client(
    state: &AppState,
    integration: &Integration,
    hostname: Option<&SalesforceHostname>,
) -> Result<OAuthClient, ApiError> {
    let p = provider(&integration.provider)
        .ok_or_else(|| ApiError::internal(format!("unknown provider {}", integration.provider)))?;
    let secret = match &integration.client_secret {
        Some(blob) => state
            .vault
            .decrypt_string(blob, crate::api::integrations::CLIENT_SECRET_AAD)
            .map_err(ApiError::internal)?,
        None => {
            return Err(ApiError::bad_request(
                "missing_client_secret",
                "the integration has no client secret",
            ))
        }
    };
    let base = state.config.hosts.login_base(p, hostname);
    let client_id = integration.client_id.as_deref().unwrap_or_default();
    Ok(OAuthClient::new(
        state.http.clone(),
        &base,
        client_id,
        secret.expose_secret(),
    ))
}

/// Checks a token response before it becomes a connection: the `api` scope, an allowed
/// `instance_url`, org and user ids.
pub fn check_token_response(
    hosts: &HostMap,
    token: &TokenResponse,
) -> Result<ferry_salesforce::oauth::Identity, String> {
    if token.scope.is_some() && !token.has_scope("api") && !token.has_scope("full") {
        return Err(
            "Salesforce did not grant the `api` scope; add it to the connected app's OAuth scopes"
                .into(),
        );
    }
    if !hosts.upstream_allowed(&token.instance_url) {
        return Err(format!(
            "the token response names an instance URL Ferry does not trust: {}",
            token.instance_url
        ));
    }
    token.identity().map_err(|e| e.to_string())
}

/// What a finished OAuth flow creates or updates.
pub struct NewOAuthConnection<'a> {
    /// The integration.
    pub integration: &'a Integration,
    /// The token response.
    pub token: TokenResponse,
    /// Its identity.
    pub identity: ferry_salesforce::oauth::Identity,
    /// My Domain host used, if any.
    pub hostname: Option<String>,
    /// Tags from the connect session.
    pub tags: Value,
    /// End user from the connect session.
    pub end_user: Value,
    /// The connection to reconnect, if the session was a reconnect session.
    pub reconnect: Option<ferry_store::ConnectionRowId>,
    /// When the access token expires, as learned by introspection.
    pub expires_at: Option<i64>,
    /// The connect session's webhook URL override (`None` keeps a reconnected connection's).
    pub webhook_url_override: Option<String>,
}

/// Creates the connection (or updates the one for the same org, user and end user).
pub async fn store_oauth_connection(
    state: &AppState,
    new: NewOAuthConnection<'_>,
) -> Result<(Connection, bool), ApiError> {
    let mut config = Map::new();
    config.insert(
        "instance_url".into(),
        Value::String(new.token.instance_url.clone()),
    );
    if let Some(h) = &new.hostname {
        config.insert("hostname".into(), Value::String(h.clone()));
    }
    config.insert("org_id".into(), Value::String(new.identity.org_id.clone()));
    config.insert(
        "user_id".into(),
        Value::String(new.identity.user_id.clone()),
    );
    let credentials = Credentials {
        access_token: new.token.access_token.clone(),
        refresh_token: new.token.refresh_token.clone(),
        expires_at: new.expires_at,
        obtained_at: Some(state.clock.now_ms()),
        raw: new.token.raw.clone(),
    };
    let sealed = seal(state, &credentials)?;
    let environment = state
        .environment_by_id(new.integration.environment_id)
        .map(|e| e.name)
        .unwrap_or_default();
    let auth_webhook = crate::webhooks::auth_payload(
        &environment,
        &new.integration.unique_key,
        &new.integration.provider,
        &new.tags,
        Some(&new.end_user),
    );
    let end_user_id = new
        .end_user
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (connection, created) = state
        .store
        .upsert_connection(
            new.integration.environment_id,
            &NewConnection {
                integration_id: new.integration.id,
                connection_id: uuid::Uuid::new_v4().to_string(),
                provider: new.integration.provider.clone(),
                connection_config: Value::Object(config),
                metadata: None,
                tags: new.tags,
                end_user: if new.end_user.is_null() {
                    None
                } else {
                    Some(new.end_user)
                },
                end_user_id,
                credentials: sealed,
                expires_at: None,
                sf_org_id: Some(new.identity.org_id),
                sf_user_id: Some(new.identity.user_id),
                reconnect: new.reconnect,
                webhook_url_override: new.webhook_url_override,
                auth_webhook: Some(auth_webhook),
            },
            now_ms(),
        )
        .await?;
    state.webhook_wakeup.notify_one();
    crate::sync::scheduler::on_connection_created(state, &connection).await;
    Ok((connection, created))
}
