//! The browser side of connecting an org: `GET /oauth/connect/{integration}` (state + PKCE, redirect to Salesforce's authorize page), `GET /oauth/callback` (code exchange, checks, the connection), the WebSocket at `/`, and the callback page that tells the opener.

use super::connect::resolve_session;
use super::now_ms;
use crate::app::AppState;
use crate::connections::{
    check_token_response, oauth_client, store_oauth_connection, NewOAuthConnection,
};
use crate::error::ApiError;
use crate::providers::provider;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use ferry_core::ids::SalesforceHostname;
use ferry_store::{EnvironmentId, Integration, IntegrationId, OAuthState};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long an OAuth `state` stays usable.
pub const STATE_TTL_MS: i64 = 10 * 60 * 1000;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(websocket))
        .route("/oauth/connect/{key}", get(connect))
        .route("/oauth/callback", get(callback))
}

async fn websocket(
    State(state): State<Arc<AppState>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(ws) => ws.on_upgrade(move |socket| async move { state.ws.serve(socket).await }),
        Err(_) => Redirect::to("/connect/").into_response(),
    }
}

/// The AAD binding a PKCE verifier ciphertext to its OAuth state.
pub fn verifier_aad(state: &str) -> Vec<u8> {
    format!("oauth-state:{state}:pkce-verifier").into_bytes()
}

/// An integration by row id, within an environment.
async fn integration_by_id(
    state: &AppState,
    env: EnvironmentId,
    id: IntegrationId,
) -> Result<Option<Integration>, ApiError> {
    Ok(state
        .store
        .list_integrations(env)
        .await?
        .into_iter()
        .find(|i| i.id == id))
}

/// An OAuth flow failure shown to a person: an error type, a message, and the opener told.
#[derive(Debug)]
struct FlowError {
    status: StatusCode,
    error_type: String,
    message: String,
}

impl FlowError {
    fn new(error_type: &str, message: impl Into<String>) -> Self {
        FlowError {
            status: StatusCode::BAD_REQUEST,
            error_type: error_type.to_string(),
            message: message.into(),
        }
    }
}

impl From<ApiError> for FlowError {
    fn from(e: ApiError) -> Self {
        FlowError {
            status: e.status,
            error_type: e.code.to_string(),
            message: e.message,
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page the OAuth popup lands on: posts the outcome to the opener and a BroadcastChannel,
/// closes itself on acknowledgement (or shortly after success).
fn callback_page(outcome: Result<(&str, &str), &FlowError>) -> Response {
    let (status, message, title, detail) = match outcome {
        Ok((key, connection_id)) => (
            StatusCode::OK,
            json!({"type": "nango_oauth_callback_success", "providerConfigKey": key, "connectionId": connection_id}),
            "Connected".to_string(),
            "Your Salesforce org is connected. You can close this window.".to_string(),
        ),
        Err(e) => (
            e.status,
            json!({"type": "nango_oauth_callback_error", "payload": {"message": e.message, "errorType": e.error_type}}),
            "Connection failed".to_string(),
            e.message.clone(),
        ),
    };
    let success = status == StatusCode::OK;
    // `</` cannot end the script early: the JSON is embedded with `<` escaped.
    let message_js = message.to_string().replace('<', "\\u003c");
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2937}}h1{{font-size:1.4rem}}</style>
</head><body>
<main><h1 data-testid="{testid}">{title}</h1><p>{detail}</p></main>
<script>
(function () {{
  var message = {message_js};
  try {{ if (window.opener) {{ window.opener.postMessage(message, "*"); }} }} catch (e) {{}}
  try {{ var channel = new BroadcastChannel("nango-oauth-callback"); channel.postMessage(message); }} catch (e) {{}}
  window.addEventListener("message", function (event) {{
    if (event.data && event.data.type === "nango_oauth_callback_ack") {{ window.close(); }}
  }});
  {autoclose}
}})();
</script>
</body></html>"#,
        title = escape(&title),
        detail = escape(&detail),
        testid = if success {
            "oauth-success"
        } else {
            "oauth-error"
        },
        autoclose = if success {
            "setTimeout(function () { window.close(); }, 500);"
        } else {
            ""
        },
    );
    let mut resp = (status, Html(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn pkce_pair() -> (String, String) {
    // 32 random bytes, base64url without padding: 43 characters from the unreserved set (no `~`,
    // which Salesforce refuses).
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Reads `params[x]=…` and `authorization_params[x]=…` style keys.
fn bracket_params(query: &[(String, String)], prefix: &str) -> BTreeMap<String, String> {
    query
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('['))
                .and_then(|rest| rest.strip_suffix(']'))
                .map(|name| (name.to_string(), v.clone()))
        })
        .collect()
}

async fn connect(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    match start_flow(&state, &key, raw.as_deref()).await {
        Ok((url, oauth_state)) => {
            let mut resp = Redirect::to(&url).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "oauth2-{oauth_state}=1; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"
            )) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => callback_page(Err(&e)),
    }
}

async fn start_flow(
    state: &AppState,
    key: &str,
    raw: Option<&str>,
) -> Result<(String, String), FlowError> {
    let query: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    if get("connection_id").is_some() {
        return Err(FlowError::new(
            "invalid_query_params",
            "connection_id cannot be set with a connect session; use a reconnect session",
        ));
    }
    let token = get("connect_session_token").ok_or_else(|| {
        FlowError::new(
            "missing_connect_session_token",
            "open this page from a connect session (connect_session_token is missing)",
        )
    })?;
    let auth = resolve_session(state, &token).await?;
    let session = &auth.session;
    if let Some(allowed) = &session.allowed_integrations {
        if !allowed.iter().any(|a| a == key) {
            return Err(FlowError::new(
                "integration_not_allowed",
                format!("this connect session does not allow the integration {key}"),
            ));
        }
    }
    let integration = state
        .store
        .get_integration(auth.environment.id, key)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| {
            FlowError::new(
                "unknown_provider_config",
                format!("there is no integration {key}"),
            )
        })?;
    let p = provider(&integration.provider)
        .ok_or_else(|| FlowError::new("unknown_provider", "unknown provider"))?;
    let defaults = session
        .integrations_config_defaults
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
        .unwrap_or(Value::Null);
    let params = bracket_params(&query, "params");
    let hostname_raw = params
        .get("hostname")
        .cloned()
        .or_else(|| {
            defaults
                .pointer("/connection_config/hostname")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|h| !h.is_empty());
    let hostname = match hostname_raw {
        Some(h) => Some(
            SalesforceHostname::parse(&h)
                .map_err(|e| FlowError::new("invalid_connection_config", e.to_string()))?,
        ),
        None => None,
    };
    let client = oauth_client(state, &integration, hostname.as_ref())?;
    let oauth_state = uuid::Uuid::new_v4().to_string();
    let (verifier, challenge) = pkce_pair();
    let mut config = Map::new();
    if let Some(h) = &hostname {
        config.insert("hostname".into(), Value::String(h.as_str().to_string()));
    }
    state
        .store
        .create_oauth_state(&OAuthState {
            state: oauth_state.clone(),
            environment_id: auth.environment.id,
            integration_id: integration.id,
            connect_session_id: Some(session.id),
            connection_id: None,
            pkce_verifier: state
                .vault
                .encrypt(verifier.as_bytes(), &verifier_aad(&oauth_state))
                .map_err(ApiError::internal)?,
            ws_client_id: get("ws_client_id"),
            // The flow's context: the connection config so far and what the session gives the connection.
            connection_config: json!({
                "connection_config": Value::Object(config),
                "tags": session.tags,
                "end_user": session.end_user,
                "reconnect": session.reconnect_connection_id.map(|r| r.0),
                "webhook_url_override": session.webhook_url_override,
            }),
            expires_at: now_ms() + STATE_TTL_MS,
            created_at: now_ms(),
        })
        .await
        .map_err(ApiError::from)?;
    let scopes = get("user_scope")
        .or_else(|| {
            defaults
                .get("user_scopes")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| integration.scopes.clone())
        .unwrap_or_else(|| p.default_scopes.join(","));
    let scopes = scopes
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut extra: BTreeMap<String, String> = p
        .authorization_params
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    if let Some(Value::Object(m)) = defaults.get("authorization_params") {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                extra.insert(k.clone(), s.to_string());
            }
        }
    }
    for (k, v) in bracket_params(&query, "authorization_params") {
        if v == "undefined" {
            extra.remove(&k);
        } else {
            extra.insert(k, v);
        }
    }
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let redirect_uri = format!("{}/oauth/callback", state.public_url);
    Ok((
        client.authorize_url(&redirect_uri, &scopes, &oauth_state, &challenge, &extra),
        oauth_state,
    ))
}

async fn callback(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let Some(oauth_state) = query.get("state").filter(|s| !s.is_empty()) else {
        return callback_page(Err(&FlowError::new(
            "invalid_state",
            "the callback has no state; start the connection again",
        )));
    };
    let taken = match state.store.take_oauth_state(oauth_state, now_ms()).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return callback_page(Err(&FlowError::new(
                "invalid_state",
                "this sign-in link was already used or has expired; start the connection again",
            )))
        }
        Err(e) => return callback_page(Err(&FlowError::from(ApiError::from(e)))),
    };
    let integration_key = integration_by_id(&state, taken.environment_id, taken.integration_id)
        .await
        .ok()
        .flatten()
        .map(|i| i.unique_key)
        .unwrap_or_default();
    let outcome = finish_flow(&state, &taken, &query).await;
    if let Some(ws_id) = &taken.ws_client_id {
        let frame = match &outcome {
            Ok(connection_id) => {
                json!({"message_type": "success", "provider_config_key": integration_key, "connection_id": connection_id, "is_pending": false})
            }
            Err(e) => {
                json!({"message_type": "error", "provider_config_key": integration_key, "connection_id": Value::Null, "error_type": e.error_type, "error_desc": e.message})
            }
        };
        state.ws.publish(ws_id, &frame);
    }
    match &outcome {
        Ok(connection_id) => callback_page(Ok((&integration_key, connection_id))),
        Err(e) => {
            tracing::info!(error_type = %e.error_type, "oauth flow failed");
            if let Some(env) = state.environment_by_id(taken.environment_id) {
                let context = &taken.connection_config;
                let mut payload = crate::webhooks::auth_payload(
                    &env.name,
                    &integration_key,
                    "salesforce",
                    context.get("tags").unwrap_or(&Value::Null),
                    context.get("end_user"),
                );
                if let Some(map) = payload.as_object_mut() {
                    map.insert("operation".into(), json!("creation"));
                    map.insert("success".into(), json!(false));
                    map.insert("connectionId".into(), Value::Null);
                    map.insert(
                        "error".into(),
                        json!({"type": e.error_type, "description": e.message}),
                    );
                }
                match state
                    .store
                    .enqueue_webhook(env.id, &payload, now_ms())
                    .await
                {
                    Ok(_) => state.webhook_wakeup.notify_one(),
                    Err(err) => tracing::error!(error = %err, "queueing the auth failure webhook"),
                }
            }
            callback_page(Err(e))
        }
    }
}

/// Exchanges the code and stores the connection; returns its connection id.
async fn finish_flow(
    state: &AppState,
    taken: &OAuthState,
    query: &BTreeMap<String, String>,
) -> Result<String, FlowError> {
    let integration = integration_by_id(state, taken.environment_id, taken.integration_id)
        .await?
        .ok_or_else(|| {
            FlowError::new(
                "unknown_provider_config",
                "the integration was deleted during the flow",
            )
        })?;
    if let Some(error) = query.get("error") {
        let description = query.get("error_description").cloned().unwrap_or_default();
        let hint = match error.as_str() {
            "access_denied" => "The Salesforce user denied access.".to_string(),
            "invalid_client_id" => "Salesforce does not know this client id. A new or edited connected app takes about 10 minutes to work; a developer user whose password has special characters is also known to cause this.".to_string(),
            "redirect_uri_mismatch" => format!("The connected app's callback URL must be exactly {}/oauth/callback.", state.public_url),
            _ => description.clone(),
        };
        return Err(FlowError::new(error, hint));
    }
    let code = query
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| FlowError::new("missing_code", "Salesforce sent no authorization code"))?;
    let verifier = state
        .vault
        .decrypt_string(&taken.pkce_verifier, &verifier_aad(&taken.state))
        .map_err(ApiError::internal)?;
    let context = &taken.connection_config;
    let hostname = context
        .pointer("/connection_config/hostname")
        .and_then(Value::as_str)
        .and_then(|h| SalesforceHostname::parse(h).ok());
    let client = oauth_client(state, &integration, hostname.as_ref())?;
    let redirect_uri = format!("{}/oauth/callback", state.public_url);
    let token = client
        .exchange_code(code, &redirect_uri, verifier.expose_secret())
        .await
        .map_err(|e| match e.code() {
            Some("invalid_client_id") => FlowError::new("invalid_client_id", "Salesforce does not know this client id. A new or edited connected app takes about 10 minutes to work; a developer user whose password has special characters is also known to cause this."),
            Some("redirect_uri_mismatch") => FlowError::new("redirect_uri_mismatch", format!("The connected app's callback URL must be exactly {redirect_uri}.")),
            Some(code) => FlowError::new(code, e.to_string()),
            None => FlowError::new("token_exchange_failed", e.to_string()),
        })?;
    let identity = check_token_response(&state.config.hosts, &token)
        .map_err(|m| FlowError::new("invalid_token_response", m))?;
    let expires_at = crate::credentials::learn_expiry(state, &client, &token.access_token).await;
    let tags = context.get("tags").cloned().unwrap_or_else(|| json!({}));
    let end_user = context.get("end_user").cloned().unwrap_or(Value::Null);
    let reconnect = context
        .get("reconnect")
        .and_then(Value::as_i64)
        .map(ferry_store::ConnectionRowId);
    let (connection, _created) = store_oauth_connection(
        state,
        NewOAuthConnection {
            integration: &integration,
            token,
            identity,
            hostname: hostname.map(|h| h.as_str().to_string()),
            tags,
            end_user,
            reconnect,
            expires_at: Some(expires_at),
            webhook_url_override: context
                .get("webhook_url_override")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
    )
    .await?;
    Ok(connection.connection_id)
}
