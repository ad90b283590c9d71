//! The browser side of connecting an org: `GET /oauth/connect/{integration}` (state + PKCE, redirect to Salesforce's authorize page), `GET /oauth/callback` (code exchange, checks, the connection), the WebSocket at `/`, and the callback page that tells the opener.

use super::connect::resolve_session;
use super::now_ms;
use super::pages::{self, Origins};
use crate::connections::{
    check_token_response, oauth_client, store_oauth_connection, NewOAuthConnection,
};
use crate::error::ApiError;
use crate::providers::provider;
use crate::state::AppState;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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
    let limits = state.config.limits;
    match upgrade {
        Ok(_) if state.ws.len() >= limits.ws_max => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_websockets",
            "the server holds as many WebSockets as it allows; try again shortly",
        )
        .into_response(),
        Ok(ws) => {
            let socket_limits = crate::ws::SocketLimits {
                unclaimed: std::time::Duration::from_millis(limits.ws_unclaimed_ms),
                idle: std::time::Duration::from_millis(limits.ws_idle_ms),
            };
            ws.max_message_size(64 * 1024)
                .on_upgrade(
                    move |socket| async move { state.ws.serve(socket, socket_limits).await },
                )
        }
        Err(_) => Redirect::to("/connect/").into_response(),
    }
}

/// The AAD binding a PKCE verifier ciphertext to its OAuth state and environment.
fn verifier_aad(environment: EnvironmentId, state: &str) -> Vec<u8> {
    crate::sealing::aad(
        &ferry_store::CipherRef::OAuthStatePkceVerifier(state.to_string()),
        environment,
    )
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

/// The page the OAuth popup lands on: posts the outcome to the opener (only at the
/// environment's allowed origins and Ferry's own) and a BroadcastChannel, closes itself on
/// acknowledgement (or shortly after success).
fn callback_page(outcome: Result<(&str, &str), &FlowError>, origins: &Origins) -> Response {
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
    let nonce = pages::nonce();
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{nonce}">body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2937}}h1{{font-size:1.4rem}}</style>
</head><body>
<main><h1 data-testid="{testid}">{title}</h1><p>{detail}</p></main>
<script nonce="{nonce}">
(function () {{
  var message = {message_js};
  var targets = {targets};
  targets.forEach(function (origin) {{
    try {{ if (window.opener) {{ window.opener.postMessage(message, origin); }} }} catch (e) {{}}
  }});
  try {{ var channel = new BroadcastChannel("nango-oauth-callback"); channel.postMessage(message); }} catch (e) {{}}
  window.addEventListener("message", function (event) {{
    if (targets.indexOf("*") < 0 && targets.indexOf(event.origin) < 0) {{ return; }}
    if (event.data && event.data.type === "nango_oauth_callback_ack") {{ window.close(); }}
  }});
  {autoclose}
}})();
</script>
</body></html>"#,
        title = pages::escape(&title),
        detail = pages::escape(&detail),
        targets = origins.targets_js(),
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
    pages::secure(&mut resp, &nonce, origins);
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
        Ok(flow) => {
            let mut resp = Redirect::to(&flow.authorize_url).into_response();
            let cookie = flow_cookie(
                &state.public_url,
                &flow.state,
                &flow.browser_secret,
                STATE_TTL_MS / 1000,
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => callback_page(Err(&e), &Origins::of(&state, None).await),
    }
}

/// The name of the cookie binding one flow to the browser that started it.
fn flow_cookie_name(oauth_state: &str) -> String {
    format!("ferry_oauth_{oauth_state}")
}

/// The `Set-Cookie` value of a flow's browser binding (`max_age_secs = 0` clears it): HttpOnly,
/// SameSite=Lax (sent on Salesforce's top-level redirect back to the callback), `Secure` when
/// Ferry is served over https.
fn flow_cookie(public_url: &str, oauth_state: &str, value: &str, max_age_secs: i64) -> String {
    let secure = if public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Max-Age={max_age_secs}; Path=/oauth; HttpOnly; SameSite=Lax{secure}",
        flow_cookie_name(oauth_state)
    )
}

/// Removes a finished flow's cookie from the browser.
fn clear_flow_cookie(state: &AppState, page: &mut Response, oauth_state: &str) {
    if let Ok(v) = HeaderValue::from_str(&flow_cookie(&state.public_url, oauth_state, "", 0)) {
        page.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The stored form of a flow's browser secret (the cookie holds the secret itself).
fn browser_binding(secret: &str) -> String {
    hex_lower(&Sha256::digest(secret.as_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the request carries the cookie of the browser that started the flow `taken`
/// (compared in constant time).
fn browser_matches(headers: &HeaderMap, taken: &OAuthState) -> bool {
    let Some(expected) = taken
        .connection_config
        .get("browser_binding")
        .and_then(Value::as_str)
    else {
        return false;
    };
    let name = flow_cookie_name(&taken.state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .any(|(_, v)| {
            let actual = browser_binding(v.trim());
            ferry_core::secret::constant_time_eq(actual.as_bytes(), expected.as_bytes())
        })
}

/// A started flow: where to send the browser, and what binds the flow to it.
struct StartedFlow {
    authorize_url: String,
    state: String,
    browser_secret: String,
}

/// Authorization parameters an end user may add to the authorize URL (everything else, and
/// `prompt` and the scopes in particular, is decided by the integration and the app's server).
const END_USER_AUTHORIZATION_PARAMS: &[&str] = &["login_hint", "display"];

async fn start_flow(
    state: &AppState,
    key: &str,
    raw: Option<&str>,
) -> Result<StartedFlow, FlowError> {
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
    let browser_secret = crate::state::random_hex(32);
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
                .encrypt(
                    verifier.as_bytes(),
                    &verifier_aad(auth.environment.id, &oauth_state),
                )
                .map_err(ApiError::internal)?,
            ws_client_id: get("ws_client_id"),
            // The flow's context: the connection config so far and what the session gives the connection.
            connection_config: json!({
                "connection_config": Value::Object(config),
                "tags": session.tags,
                "end_user": session.end_user,
                "reconnect": session.reconnect_connection_id.map(|r| r.0),
                "browser_binding": browser_binding(&browser_secret),
                "webhook_url_override": session.webhook_url_override,
            }),
            expires_at: now_ms() + STATE_TTL_MS,
            created_at: now_ms(),
        })
        .await
        .map_err(ApiError::from)?;
    if get("user_scope").is_some() {
        return Err(FlowError::new(
            "invalid_query_params",
            "scopes are set by the integration (or the app's connect session), not by the link",
        ));
    }
    // Scopes come from the app's server (session defaults) or the integration, never the link.
    let scopes = defaults
        .get("user_scopes")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| integration.scopes.clone())
        .unwrap_or_else(|| p.default_scopes.join(","));
    let scopes = scopes
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut extra: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in bracket_params(&query, "authorization_params") {
        if !END_USER_AUTHORIZATION_PARAMS.contains(&k.as_str()) {
            return Err(FlowError::new(
                "invalid_query_params",
                format!(
                    "authorization_params[{k}] cannot be set from the link; allowed: {}",
                    END_USER_AUTHORIZATION_PARAMS.join(", ")
                ),
            ));
        }
        if v != "undefined" {
            extra.insert(k, v);
        }
    }
    // The app's server may set any parameter through the session's defaults; the provider's
    // own (`prompt=consent`) always win.
    if let Some(Value::Object(m)) = defaults.get("authorization_params") {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                extra.insert(k.clone(), s.to_string());
            }
        }
    }
    for (k, v) in p.authorization_params {
        extra.insert((*k).to_string(), (*v).to_string());
    }
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some(ws_client_id) = get("ws_client_id") {
        // A valid connect session started a flow for this socket: it may wait for the outcome.
        state.ws.claim(&ws_client_id);
    }
    let redirect_uri = format!("{}/oauth/callback", state.public_url);
    Ok(StartedFlow {
        authorize_url: client.authorize_url(
            &redirect_uri,
            &scopes,
            &oauth_state,
            &challenge,
            &extra,
        ),
        state: oauth_state,
        browser_secret,
    })
}

async fn callback(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let nowhere = Origins::of(&state, None).await;
    let Some(oauth_state) = query.get("state").filter(|s| !s.is_empty()) else {
        return callback_page(
            Err(&FlowError::new(
                "invalid_state",
                "the callback has no state; start the connection again",
            )),
            &nowhere,
        );
    };
    let taken =
        match state.store.take_oauth_state(oauth_state, now_ms()).await {
            Ok(Some(s)) => s,
            Ok(None) => return callback_page(
                Err(&FlowError::new(
                    "invalid_state",
                    "this sign-in link was already used or has expired; start the connection again",
                )),
                &nowhere,
            ),
            Err(e) => return callback_page(Err(&FlowError::from(ApiError::from(e))), &nowhere),
        };
    let origins = Origins::of(&state, Some(taken.environment_id)).await;
    if !browser_matches(&headers, &taken) {
        // Another browser than the one that started the flow (a forwarded sign-in link): the
        // code is not exchanged, nothing is stored, and the flow's owner is not told of a
        // connection that was never theirs.
        tracing::warn!("oauth callback without the flow's browser cookie refused");
        let mut page = callback_page(
            Err(&FlowError::new(
                "invalid_browser",
                format!(
                    "this sign-in was finished in a different browser than the one that started \
                     it (or the connect link was opened at another address than {}); open the \
                     connect link again in this browser",
                    state.public_url
                ),
            )),
            &nowhere,
        );
        clear_flow_cookie(&state, &mut page, &taken.state);
        return page;
    }
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
        Ok(connection_id) => {
            let mut page = callback_page(Ok((&integration_key, connection_id)), &origins);
            clear_flow_cookie(&state, &mut page, &taken.state);
            page
        }
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
            let mut page = callback_page(Err(e), &origins);
            clear_flow_cookie(&state, &mut page, &taken.state);
            page
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
        .decrypt_string(
            &taken.pkce_verifier,
            &verifier_aad(taken.environment_id, &taken.state),
        )
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
    let identity = check_token_response(&state.config.hosts, &integration.provider, &token)
        .map_err(|m| FlowError::new("invalid_token_response", m))?;
    let expires_at = crate::credentials::learn_expiry(state, &client, &token.access_token).await;
    let end_user = context.get("end_user").cloned().unwrap_or(Value::Null);
    let reconnect = context
        .get("reconnect")
        .and_then(Value::as_i64)
        .map(ferry_store::ConnectionRowId);
    // A session without tags keeps the connection's tags (null = keep; a new row gets `{}`).
    let tags = match context.get("tags") {
        Some(Value::Object(t)) if !t.is_empty() => Value::Object(t.clone()),
        _ => Value::Null,
    };
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
