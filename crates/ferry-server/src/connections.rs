//! Connection operations shared by the API, the OAuth callback and (later) workers: credentials sealed in the vault, the Nango `ConnectionFull` shape, creation from a token response, revoke-then-delete.

use crate::api::{iso_offset, iso_z, now_ms};
use crate::error::ApiError;
use crate::providers::{provider, HostMap};
use crate::sealing;
use crate::state::AppState;
use ferry_core::ids::SalesforceHostname;
use ferry_salesforce::oauth::{OAuthClient, TokenResponse};
use ferry_store::{
    CipherRef, Connection, ConnectionRowId, EnvironmentId, Integration, NewConnection,
};
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

/// Seals credentials for the connection row `id` of `environment` (bound to that row).
pub fn seal(
    state: &AppState,
    environment: EnvironmentId,
    id: ConnectionRowId,
    credentials: &Credentials,
) -> Result<Vec<u8>, ApiError> {
    let bytes = serde_json::to_vec(credentials).map_err(ApiError::internal)?;
    state
        .vault
        .encrypt(
            &bytes,
            &sealing::aad(&CipherRef::ConnectionCredentials(id), environment),
        )
        .map_err(ApiError::internal)
}

/// The store's sealer for credentials of a row it is about to write.
pub fn sealer<'a>(
    state: &'a AppState,
    environment: EnvironmentId,
    credentials: &'a Credentials,
) -> impl Fn(i64) -> Result<Vec<u8>, String> + Send + Sync + 'a {
    move |id| seal(state, environment, ConnectionRowId(id), credentials).map_err(|e| e.message)
}

/// Opens a connection's credentials.
pub fn open(state: &AppState, connection: &Connection) -> Result<Credentials, ApiError> {
    let plain = state
        .vault
        .decrypt(
            &connection.credentials,
            &sealing::aad(
                &CipherRef::ConnectionCredentials(connection.id),
                connection.environment_id,
            ),
        )
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
    let secret = match crate::api::integrations::open_client_secret(state, integration)? {
        Some(secret) => secret,
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
    provider_name: &str,
    token: &TokenResponse,
) -> Result<ferry_salesforce::oauth::Identity, String> {
    if token.scope.is_some() && !token.has_scope("api") && !token.has_scope("full") {
        return Err(
            "Salesforce did not grant the `api` scope; add it to the connected app's OAuth scopes"
                .into(),
        );
    }
    if !hosts.upstream_allowed(provider_name, &token.instance_url) {
        return Err(format!(
            "the token response names an instance URL Ferry does not trust: {}",
            token.instance_url
        ));
    }
    token.identity().map_err(|e| e.to_string())
}

/// Asks Salesforce which org and user imported credentials belong to (never trusting the
/// caller's `connection_config.org_id`): `userinfo` with the access token, or, when that token
/// is no longer accepted, one refresh whose signed answer names them. A refresh replaces the
/// access token (and a rotated refresh token) in `credentials` and the `instance_url` in
/// `config`. A claimed `org_id` that is not the verified one is refused; the verified ids are
/// written into `config`.
pub async fn verify_imported_org(
    state: &AppState,
    integration: &Integration,
    config: &mut Map<String, Value>,
    credentials: &mut Credentials,
) -> Result<ferry_salesforce::oauth::Identity, ApiError> {
    use ferry_salesforce::oauth::OAuthError;
    let instance_url = config
        .get("instance_url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let refused = |e: &OAuthError| {
        matches!(
            e,
            OAuthError::Rejected {
                status: 401 | 403,
                ..
            } | OAuthError::Status { status: 401 | 403 }
        )
    };
    let identity = match ferry_salesforce::oauth::userinfo(
        &state.http,
        &instance_url,
        &credentials.access_token,
    )
    .await
    {
        Ok(identity) => identity,
        Err(e) if refused(&e) => {
            let Some(refresh_token) = credentials.refresh_token.clone() else {
                return Err(ApiError::invalid_body(
                    "credentials.access_token",
                    "Salesforce does not accept this access token, and there is no refresh token to get a new one",
                ));
            };
            let hostname = config
                .get("hostname")
                .and_then(Value::as_str)
                .and_then(|h| SalesforceHostname::parse(h).ok());
            let client = oauth_client(state, integration, hostname.as_ref())?;
            let token = client.refresh(&refresh_token).await.map_err(|e| {
                ApiError::invalid_body(
                    "credentials.refresh_token",
                    format!("Salesforce refused the refresh token ({e})"),
                )
            })?;
            let identity = check_token_response(&state.config.hosts, &integration.provider, &token)
                .map_err(|m| ApiError::invalid_body("credentials", m))?;
            credentials.access_token = token.access_token.clone();
            if let Some(rotated) = &token.refresh_token {
                credentials.refresh_token = Some(rotated.clone());
            }
            credentials.raw = token.raw.clone();
            credentials.obtained_at = Some(state.clock.now_ms());
            credentials.expires_at = None;
            config.insert("instance_url".into(), Value::String(token.instance_url));
            identity
        }
        Err(OAuthError::Network(_)) => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "Salesforce could not be reached to verify the credentials' org; try again",
            ))
        }
        Err(e) => {
            return Err(ApiError::invalid_body(
                "credentials.access_token",
                format!("Salesforce did not confirm whose token this is ({e})"),
            ))
        }
    };
    if let Some(claimed) = config.get("org_id").and_then(Value::as_str) {
        let short = |id: &str| id.get(..15).unwrap_or(id).to_string();
        if short(claimed) != short(&identity.org_id) {
            return Err(ApiError::invalid_body(
                "connection_config.org_id",
                "these credentials belong to another Salesforce org; Ferry takes the org from Salesforce",
            ));
        }
    }
    config.insert("org_id".into(), Value::String(identity.org_id.clone()));
    config.insert("user_id".into(), Value::String(identity.user_id.clone()));
    Ok(identity)
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
    let environment = state
        .environment_by_id(new.integration.environment_id)
        .map(|e| e.name)
        .unwrap_or_default();
    let no_tags = json!({});
    let auth_webhook = crate::webhooks::auth_payload(
        &environment,
        &new.integration.unique_key,
        &new.integration.provider,
        if new.tags.is_null() {
            &no_tags
        } else {
            &new.tags
        },
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
                expires_at: None,
                sf_org_id: Some(new.identity.org_id),
                sf_user_id: Some(new.identity.user_id),
                reconnect: new.reconnect,
                existing: ferry_store::ExistingConnection::Update,
                webhook_url_override: new.webhook_url_override,
                auth_webhook: Some(auth_webhook),
            },
            &sealer(state, new.integration.environment_id, &credentials),
            now_ms(),
        )
        .await?;
    state.webhook_wakeup.notify_one();
    crate::sync::scheduler::on_connection_created(state, &connection).await;
    Ok((connection, created))
}
