//! The OAuth 2.0 endpoints: the web-server flow (authorize, login and consent pages), the token endpoint (authorization code and refresh token grants, rotation, PKCE), introspection, revocation, userinfo and the identity URL.
//!
//! Every listener serves these routes. A production org's users log in only through the
//! production listener and a sandbox org's users only through the sandbox listener; the second
//! instance listener accepts the users of orgs migrated onto it (it plays their My Domain host).

use super::errors::{html, json, json_bytes, oauth_error};
use super::{bearer, Ctx, Listener};
use crate::ids;
use crate::org::Org;
use crate::state::{AuthCode, Data, State as EmuState};
use crate::value::{self, Value};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// How long an authorization code stays valid, in seconds.
pub const CODE_TTL_SECS: i64 = 15 * 60;

/// The OAuth routes (every listener).
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/services/oauth2/authorize", get(authorize))
        .route("/services/oauth2/authorize/login", post(login))
        .route("/services/oauth2/authorize/consent", post(consent))
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/introspect", post(introspect))
        .route("/services/oauth2/revoke", post(revoke_post).get(revoke_get))
        .route("/services/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/id/keys", get(jwks))
        .route("/id/{org}/{user}", get(identity))
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

type Params = HashMap<String, String>;

/// Parses an `application/x-www-form-urlencoded` body; the first occurrence of a name wins.
fn parse_form(bytes: &[u8]) -> Params {
    let mut out = Params::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// A non-empty parameter.
fn param<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `base64(HMAC-SHA256(key = client_secret, msg = id + issued_at))`, standard alphabet with padding.
pub fn signature(client_secret: &str, id: &str, issued_at: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(id.as_bytes());
            mac.update(issued_at.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// The S256 PKCE challenge of a verifier: `base64url(SHA-256(verifier))` without padding.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn has_refresh_scope(scopes: &[String]) -> bool {
    scopes
        .iter()
        .any(|s| s == "refresh_token" || s == "offline_access")
}

/// The identity URL of a user, under the login base the user came through.
fn identity_url(login_base: &str, org_id: &str, user_id: &str) -> String {
    format!("{login_base}/id/{org_id}/{user_id}")
}

/// Whether an org's users may log in through this listener.
fn listener_serves(listener: Listener, org: &Org) -> bool {
    match listener {
        // Production orgs keep logging in through the production host after a migration.
        Listener::Production => !org.sandbox,
        Listener::Sandbox => org.sandbox,
        Listener::Instance2 => org.instance == 1,
    }
}

/// What the emulator knows about a user, read from the org's `User` table.
#[derive(Debug, Clone, Default)]
struct UserInfo {
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    alias: String,
    active: bool,
    time_zone: String,
    language: String,
    last_modified: i64,
}

/// The org-level reasons Salesforce refuses a login or a grant, as `(error, description)`.
fn org_refusal(data: &Data, org_id: &str) -> Option<(&'static str, &'static str)> {
    let org = data.orgs.get(org_id)?;
    if !org.active {
        Some(("inactive_org", "inactive organization"))
    } else if org.login_restricted {
        Some(("invalid_grant", "ip restricted or invalid login hours"))
    } else if org.token_rate_limited {
        Some(("rate_limit_exceeded", "too many login attempts"))
    } else {
        None
    }
}

fn user_info(data: &Data, org_id: &str, user_id: &str) -> Option<UserInfo> {
    let org = data.orgs.get(org_id)?;
    let table = org.table("User")?;
    let record = table.get(user_id)?;
    let text = |name: &str| {
        table
            .schema
            .field_index(name)
            .and_then(|i| record.get(i).as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let active = table
        .schema
        .field_index("IsActive")
        .map(|i| matches!(record.get(i), Value::Bool(true)))
        .unwrap_or(true);
    let last_modified = match record.get(crate::schema::sys::LAST_MODIFIED_DATE) {
        Value::DateTime(s) => *s,
        _ => 0,
    };
    Some(UserInfo {
        username: text("Username"),
        first_name: text("FirstName"),
        last_name: text("LastName"),
        email: text("Email"),
        alias: text("Alias"),
        active: active && !record.is_deleted(),
        time_zone: text("TimeZoneSidKey"),
        language: text("LanguageLocaleKey"),
        last_modified,
    })
}

/// A fixed UTC offset in milliseconds for the few time zones the emulator creates users with.
fn utc_offset_ms(zone: &str) -> i64 {
    let hours = match zone {
        "America/Los_Angeles" => -8,
        "America/Denver" => -7,
        "America/Chicago" => -6,
        "America/New_York" => -5,
        "Europe/London" => 0,
        "Europe/Paris" | "Europe/Berlin" => 1,
        "Asia/Tokyo" => 9,
        _ => 0,
    };
    hours * 3_600_000
}

// ---------------------------------------------------------------------------------------------
// The authorize request, login and consent pages
// ---------------------------------------------------------------------------------------------

/// The parameters of `/services/oauth2/authorize` carried from page to page as hidden fields.
const AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "prompt",
    "login_hint",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "display",
    "immediate",
];

/// An authorize request that passed validation.
#[derive(Debug, Clone)]
struct Authorize {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    nonce: Option<String>,
    prompt_login: bool,
    prompt_consent: bool,
    immediate: bool,
    login_hint: String,
    /// The original parameters, to carry in hidden fields.
    params: Params,
}

impl Authorize {
    /// `302` to the redirect URI with extra query parameters and the state.
    fn redirect(&self, pairs: &[(&str, &str)]) -> Response {
        redirect_with(&self.redirect_uri, pairs, self.state.as_deref())
    }

    fn error(&self, error: &str, description: &str) -> Response {
        self.redirect(&[("error", error), ("error_description", description)])
    }

    fn hidden_fields(&self) -> String {
        AUTHORIZE_PARAMS
            .iter()
            .filter_map(|name| {
                self.params.get(*name).map(|v| {
                    format!(
                        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">\n",
                        esc(v)
                    )
                })
            })
            .collect()
    }
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let location = match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
                if let Some(s) = state {
                    q.append_pair("state", s);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    };
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    html(
        status,
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n\
             <style>body{{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}}\
             label,input,button{{display:block;margin:.4em 0}}input[type=text],input[type=password]{{width:100%}}\
             .error{{color:#b00}}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}</main>\n</body>\n</html>\n",
            title = esc(title)
        ),
    )
}

/// The page shown when Salesforce cannot redirect (unknown client, redirect URI mismatch).
fn error_page(error: &str, description: &str) -> Response {
    let encoded: String =
        percent_encoding::utf8_percent_encode(description, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    page(
        StatusCode::BAD_REQUEST,
        "Authorization error",
        &format!(
            "<p id=\"error-line\" class=\"error\" role=\"alert\">error={e}&amp;error_description={enc}</p>\n\
             <dl>\n<dt>error</dt><dd id=\"error\">{e}</dd>\n\
             <dt>error_description</dt><dd id=\"error_description\">{d}</dd>\n</dl>\n",
            e = esc(error),
            enc = esc(&encoded),
            d = esc(description),
        ),
    )
}

fn login_page(ctx: &Ctx, req: &Authorize, username: &str, error: Option<&str>) -> Response {
    let host = match ctx.listener {
        Listener::Production => "Production",
        Listener::Sandbox => "Sandbox",
        Listener::Instance2 => "My Domain",
    };
    let error_html = error
        .map(|e| {
            format!(
                "<p id=\"error\" class=\"error\" role=\"alert\">{}</p>\n",
                esc(e)
            )
        })
        .unwrap_or_default();
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(
        status,
        &format!("Log in to Salesforce ({host})"),
        &format!(
            "{error_html}<form id=\"login-form\" method=\"post\" action=\"/services/oauth2/authorize/login\">\n\
             {hidden}\
             <label for=\"username\">Username</label>\n\
             <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" autocomplete=\"username\" required>\n\
             <label for=\"password\">Password</label>\n\
             <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
             <button type=\"submit\" id=\"Login\" name=\"Login\" value=\"Log In\">Log In</button>\n\
             </form>\n",
            hidden = req.hidden_fields(),
            user = esc(username),
        ),
    )
}

fn consent_page(req: &Authorize, username: &str) -> Response {
    let scopes: String = req
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", esc(s)))
        .collect();
    page(
        StatusCode::OK,
        "Allow Access?",
        &format!(
            "<p>The app <strong id=\"client\">{client}</strong> wants to access the data of \
             <strong id=\"user\">{user}</strong>:</p>\n<ul id=\"scopes\">{scopes}</ul>\n\
             <form id=\"consent-form\" method=\"post\" action=\"/services/oauth2/authorize/consent\">\n\
             {hidden}\
             <button type=\"submit\" id=\"Allow\" name=\"decision\" value=\"Allow\">Allow</button>\n\
             <button type=\"submit\" id=\"Deny\" name=\"decision\" value=\"Deny\">Deny</button>\n\
             </form>\n",
            client = esc(&req.client_id),
            user = esc(username),
            hidden = req.hidden_fields(),
        ),
    )
}

/// Validates an authorize request. `Err` is the page or redirect to answer with.
fn validate(data: &Data, params: &Params) -> Result<Authorize, Box<Response>> {
    let Some(app) = param(params, "client_id").and_then(|c| data.apps.get(c)) else {
        return Err(Box::new(error_page(
            "invalid_client_id",
            "client identifier invalid",
        )));
    };
    let redirect_uri = param(params, "redirect_uri").unwrap_or_default();
    if !app.callback_urls.iter().any(|u| u == redirect_uri) {
        return Err(Box::new(error_page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        )));
    }
    let prompt: Vec<&str> = param(params, "prompt")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let scopes: Vec<String> = match param(params, "scope") {
        Some(s) => s.split_whitespace().map(str::to_string).collect(),
        None => app.scopes.clone(),
    };
    let req = Authorize {
        client_id: app.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        scopes: if scopes.is_empty() {
            app.scopes.clone()
        } else {
            scopes
        },
        state: params.get("state").cloned(),
        code_challenge: param(params, "code_challenge").map(str::to_string),
        nonce: param(params, "nonce").map(str::to_string),
        prompt_login: prompt.contains(&"login"),
        prompt_consent: prompt.contains(&"consent"),
        immediate: param(params, "immediate").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        login_hint: param(params, "login_hint").unwrap_or_default().to_string(),
        params: params.clone(),
    };
    match param(params, "response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(Box::new(
                req.error("unsupported_response_type", "response type not supported"),
            ))
        }
        None => {
            return Err(Box::new(
                req.error("invalid_request", "missing required response_type"),
            ))
        }
    }
    if let Some(method) = param(params, "code_challenge_method") {
        if method != "S256" {
            return Err(Box::new(req.error(
                "invalid_request",
                "invalid code_challenge_method; only S256 is supported",
            )));
        }
    }
    if app.require_pkce && req.code_challenge.is_none() {
        return Err(Box::new(
            req.error("invalid_request", "missing required code challenge"),
        ));
    }
    if let Some(bad) = req.scopes.iter().find(|s| !app.scopes.contains(s)) {
        return Err(Box::new(req.error(
            "invalid_scope",
            &format!("the requested scope is not allowed: {bad}"),
        )));
    }
    Ok(req)
}

/// The session cookie name of a listener (browsers share cookies across ports of one host).
fn cookie_name(listener: Listener) -> &'static str {
    match listener {
        Listener::Production => "ferry_sid_login",
        Listener::Sandbox => "ferry_sid_test",
        Listener::Instance2 => "ferry_sid_instance2",
    }
}

/// The logged-in (org, user) of this listener's session cookie, if any and still valid.
fn session_user(ctx: &Ctx, data: &Data, headers: &HeaderMap) -> Option<(String, String)> {
    let name = cookie_name(ctx.listener);
    let sid = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())?;
    let (org_id, user_id) = data.sessions.get(&sid)?.clone();
    let org = data.orgs.get(&org_id)?;
    (listener_serves(ctx.listener, org) && user_info(data, &org_id, &user_id)?.active)
        .then_some((org_id, user_id))
}

/// After authentication: the consent page, or straight to the code when already approved.
fn after_login(
    ctx: &Ctx,
    data: &mut Data,
    req: &Authorize,
    org_id: &str,
    user_id: &str,
) -> Response {
    let approved = data
        .approvals
        .contains(&(user_id.to_string(), req.client_id.clone()));
    if approved && !req.prompt_consent {
        return issue_code(ctx, data, req, org_id, user_id);
    }
    if req.immediate {
        return req.error("immediate_unsuccessful", "user interaction required");
    }
    let username = user_info(data, org_id, user_id)
        .map(|u| u.username)
        .unwrap_or_default();
    consent_page(req, &username)
}

fn issue_code(
    ctx: &Ctx,
    data: &mut Data,
    req: &Authorize,
    org_id: &str,
    user_id: &str,
) -> Response {
    let code = format!("aPrx{}==", EmuState::random_token(64));
    data.codes.insert(
        code.clone(),
        AuthCode {
            client_id: req.client_id.clone(),
            org_id: org_id.to_string(),
            user_id: user_id.to_string(),
            redirect_uri: req.redirect_uri.clone(),
            scopes: req.scopes.clone(),
            code_challenge: req.code_challenge.clone(),
            issued_at: ctx.state.clock.now_secs(),
            used: false,
            login_base: ctx.base_url(),
            nonce: req.nonce.clone(),
        },
    );
    req.redirect(&[("code", &code)])
}

/// `GET /services/oauth2/authorize`.
async fn authorize(
    State(ctx): State<Ctx>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let mut data = ctx.state.data.write();
    let req = match validate(&data, &params) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let session = session_user(&ctx, &data, &headers).filter(|_| !req.prompt_login);
    match session {
        Some((org_id, user_id)) => after_login(&ctx, &mut data, &req, &org_id, &user_id),
        None if req.immediate => req.error("immediate_unsuccessful", "user interaction required"),
        None => login_page(&ctx, &req, &req.login_hint, None),
    }
}

/// `POST /services/oauth2/authorize/login`: checks the credentials, starts a session.
async fn login(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let params = parse_form(&body);
    let mut data = ctx.state.data.write();
    let req = match validate(&data, &params) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let username = params.get("username").cloned().unwrap_or_default();
    let password = params.get("password").cloned().unwrap_or_default();
    let login = data
        .logins
        .get(&username.trim().to_ascii_lowercase())
        .filter(|l| l.password == password)
        .cloned();
    let Some(login) = login else {
        return login_page(
            &ctx,
            &req,
            &username,
            Some("Please check your username and password. If you still can't log in, contact your Salesforce administrator."),
        );
    };
    let Some(org) = data.orgs.get(&login.org_id) else {
        return login_page(
            &ctx,
            &req,
            &username,
            Some("Your organization is not available."),
        );
    };
    if !listener_serves(ctx.listener, org) {
        let message = if org.sandbox {
            format!(
                "This is a sandbox user: log in through the sandbox login host (test.salesforce.com, here {}).",
                ctx.state.urls.read().sandbox
            )
        } else {
            format!(
                "This is a production user: log in through the production login host (login.salesforce.com, here {}).",
                ctx.state.urls.read().production
            )
        };
        return login_page(&ctx, &req, &username, Some(&message));
    }
    if !user_info(&data, &login.org_id, &login.user_id).is_some_and(|u| u.active) {
        return req.error("inactive_user", "user is inactive");
    }
    if let Some((error, description)) = org_refusal(&data, &login.org_id) {
        return req.error(error, description);
    }
    let sid = EmuState::random_token(40);
    data.sessions
        .insert(sid.clone(), (login.org_id.clone(), login.user_id.clone()));
    let mut resp = after_login(&ctx, &mut data, &req, &login.org_id, &login.user_id);
    let cookie = format!(
        "{}={sid}; Path=/; HttpOnly; SameSite=Lax",
        cookie_name(ctx.listener)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /services/oauth2/authorize/consent`: Allow or Deny.
async fn consent(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let params = parse_form(&body);
    let mut data = ctx.state.data.write();
    let req = match validate(&data, &params) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let Some((org_id, user_id)) = session_user(&ctx, &data, &headers) else {
        return login_page(
            &ctx,
            &req,
            &req.login_hint,
            Some("Your session has expired. Please log in again."),
        );
    };
    match param(&params, "decision") {
        Some("Allow") => {
            data.approvals
                .insert((user_id.clone(), req.client_id.clone()));
            issue_code(&ctx, &mut data, &req, &org_id, &user_id)
        }
        _ => req.error("access_denied", "end-user denied authorization"),
    }
}

// ---------------------------------------------------------------------------------------------
// The token endpoint
// ---------------------------------------------------------------------------------------------

/// A token response, fields in the order Salesforce sends them.
#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    signature: String,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    instance_url: String,
    id: String,
    token_type: &'static str,
    issued_at: String,
}

/// An OAuth failure answered as HTTP 400 `{error, error_description}`.
#[derive(Debug, Clone, Copy)]
struct Fail {
    error: &'static str,
    description: &'static str,
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        oauth_error(StatusCode::BAD_REQUEST, self.error, self.description)
    }
}

fn bad_request(error: &'static str, description: &'static str) -> Fail {
    Fail { error, description }
}

/// Client credentials from `Authorization: Basic` (preferred) or the body.
fn client_credentials(headers: &HeaderMap, form: &Params) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                percent_encoding::percent_decode_str(&s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((decode(id), decode(secret)))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            param(form, "client_id").map(str::to_string),
            param(form, "client_secret").map(str::to_string),
        ),
    }
}

/// Checks the client; `Err` is the token endpoint's error answer.
fn authenticate_client(
    data: &Data,
    headers: &HeaderMap,
    form: &Params,
) -> Result<crate::state::App, Fail> {
    let (id, secret) = client_credentials(headers, form);
    let Some(app) = id.as_deref().and_then(|id| data.apps.get(id)) else {
        return Err(bad_request(
            "invalid_client_id",
            "client identifier invalid",
        ));
    };
    if secret.as_deref() != Some(app.client_secret.as_str()) {
        return Err(bad_request("invalid_client", "invalid client credentials"));
    }
    Ok(app.clone())
}

/// `POST /services/oauth2/token`.
async fn token(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let grant = param(&form, "grant_type").unwrap_or("none").to_string();
    let result = match grant.as_str() {
        "authorization_code" => code_grant(&ctx, &headers, &form),
        "refresh_token" => refresh_grant(&ctx, &headers, &form),
        "client_credentials" => client_credentials_grant(&ctx, &headers, &form),
        "password" => password_grant(&ctx, &headers, &form),
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => jwt_grant(&ctx, &form),
        "none" => Err(bad_request("invalid_request", "grant_type is required")),
        _ => Err(bad_request(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    };
    ctx.state.stats.token_request(&grant, result.is_ok());
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,no-store"),
    );
    resp
}

fn code_grant(ctx: &Ctx, headers: &HeaderMap, form: &Params) -> Result<Response, Fail> {
    let mut data = ctx.state.data.write();
    let app = authenticate_client(&data, headers, form)?;
    let code_text = param(form, "code")
        .ok_or_else(|| bad_request("invalid_request", "missing required code parameter"))?;
    let redirect_uri = param(form, "redirect_uri")
        .ok_or_else(|| bad_request("invalid_request", "missing required redirect_uri parameter"))?;
    let now = ctx.state.clock.now_secs();
    let code = data
        .codes
        .get(code_text)
        .filter(|c| c.client_id == app.client_id)
        .cloned()
        .ok_or_else(|| bad_request("invalid_grant", "invalid authorization code"))?;
    if code.used || now - code.issued_at > CODE_TTL_SECS {
        return Err(bad_request("invalid_grant", "expired authorization code"));
    }
    if code.redirect_uri != redirect_uri {
        return Err(bad_request(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    if let Some(challenge) = &code.code_challenge {
        let verifier = param(form, "code_verifier").unwrap_or_default();
        let ok = !verifier.is_empty()
            && (!app.reject_tilde_in_verifier || !verifier.contains('~'))
            && pkce_challenge(verifier) == *challenge;
        if !ok {
            return Err(bad_request("invalid_grant", "invalid code verifier"));
        }
    }
    let scopes: Vec<String> = code
        .scopes
        .iter()
        .filter(|s| app.scopes.contains(s))
        .cloned()
        .collect();
    if app.scopes.is_empty() || scopes.is_empty() {
        return Err(bad_request("invalid_grant", "no valid scopes defined"));
    }
    if !user_info(&data, &code.org_id, &code.user_id).is_some_and(|u| u.active) {
        return Err(bad_request("inactive_user", "user is inactive"));
    }
    if let Some((error, description)) = org_refusal(&data, &code.org_id) {
        return Err(bad_request(error, description));
    }
    if let Some(c) = data.codes.get_mut(code_text) {
        c.used = true;
    }
    let issued = ctx.state.issue_tokens(
        &mut data,
        &app.client_id,
        &code.org_id,
        &code.user_id,
        &scopes,
        &code.login_base,
        None,
        has_refresh_scope(&scopes),
    );
    Ok(token_response(
        ctx,
        &data,
        &app,
        &code.org_id,
        &code.user_id,
        &code.login_base,
        &scopes,
        issued,
        code.nonce.as_deref(),
    ))
}

fn refresh_grant(ctx: &Ctx, headers: &HeaderMap, form: &Params) -> Result<Response, Fail> {
    let mut data = ctx.state.data.write();
    let app = authenticate_client(&data, headers, form)?;
    let text = param(form, "refresh_token")
        .ok_or_else(|| {
            bad_request(
                "invalid_request",
                "missing required refresh_token parameter",
            )
        })?
        .to_string();
    let expired = || bad_request("invalid_grant", "expired access/refresh token");
    let now = ctx.state.clock.now_secs();
    let rt = data
        .refresh_tokens
        .get(&text)
        .filter(|t| t.client_id == app.client_id)
        .cloned()
        .ok_or_else(expired)?;
    if rt.revoked || data.revoked_families.contains(&rt.family) {
        return Err(expired());
    }
    if rt.rotated_out {
        // Reuse of a rotated-out token: the whole family dies.
        ctx.state.revoke_family(&mut data, rt.family);
        return Err(expired());
    }
    if app
        .refresh_token_idle_ttl_secs
        .is_some_and(|ttl| now - rt.last_used_at > ttl)
    {
        if let Some(t) = data.refresh_tokens.get_mut(&text) {
            t.revoked = true;
        }
        return Err(expired());
    }
    let scopes: Vec<String> = rt
        .scopes
        .iter()
        .filter(|s| app.scopes.contains(s))
        .cloned()
        .collect();
    if app.scopes.is_empty() || scopes.is_empty() {
        return Err(bad_request("invalid_grant", "no valid scopes defined"));
    }
    if !user_info(&data, &rt.org_id, &rt.user_id).is_some_and(|u| u.active) {
        return Err(bad_request("inactive_user", "user is inactive"));
    }
    if let Some((error, description)) = org_refusal(&data, &rt.org_id) {
        return Err(bad_request(error, description));
    }
    if let Some(t) = data.refresh_tokens.get_mut(&text) {
        t.last_used_at = now;
        if app.refresh_token_rotation {
            t.rotated_out = true;
        }
    }
    let issued = ctx.state.issue_tokens(
        &mut data,
        &app.client_id,
        &rt.org_id,
        &rt.user_id,
        &scopes,
        &rt.login_base,
        Some(rt.family),
        app.refresh_token_rotation,
    );
    Ok(token_response(
        ctx,
        &data,
        &app,
        &rt.org_id,
        &rt.user_id,
        &rt.login_base,
        &scopes,
        issued,
        None,
    ))
}

/// Scopes a flow without a refresh token grants: the app's, less the refresh scopes.
fn session_scopes(app: &crate::state::App) -> Vec<String> {
    app.scopes
        .iter()
        .filter(|s| !matches!(s.as_str(), "refresh_token" | "offline_access"))
        .cloned()
        .collect()
}

/// Issues an access token (never a refresh token) for a user the flow has already proven.
fn session_for_user(
    ctx: &Ctx,
    data: &mut Data,
    app: &crate::state::App,
    login: &crate::state::Login,
) -> Result<Response, Fail> {
    if !user_info(data, &login.org_id, &login.user_id).is_some_and(|u| u.active) {
        return Err(bad_request("inactive_user", "user is inactive"));
    }
    if let Some((error, description)) = org_refusal(data, &login.org_id) {
        return Err(bad_request(error, description));
    }
    let scopes = session_scopes(app);
    if scopes.is_empty() {
        return Err(bad_request("invalid_grant", "no valid scopes defined"));
    }
    let login_base = ctx.base_url();
    let issued = ctx.state.issue_tokens(
        data,
        &app.client_id,
        &login.org_id,
        &login.user_id,
        &scopes,
        &login_base,
        None,
        false,
    );
    Ok(token_response(
        ctx,
        data,
        app,
        &login.org_id,
        &login.user_id,
        &login_base,
        &scopes,
        issued,
        None,
    ))
}

/// `grant_type=client_credentials`: a session for the app's run-as user.
fn client_credentials_grant(
    ctx: &Ctx,
    headers: &HeaderMap,
    form: &Params,
) -> Result<Response, Fail> {
    let mut data = ctx.state.data.write();
    let app = authenticate_client(&data, headers, form)?;
    let login = app
        .client_credentials_user
        .as_deref()
        .and_then(|u| data.logins.get(&u.to_ascii_lowercase()))
        .cloned()
        .ok_or_else(|| bad_request("invalid_grant", "no client credentials user enabled"))?;
    session_for_user(ctx, &mut data, &app, &login)
}

/// `grant_type=password`: refused unless the app allows it, as in orgs created since 2023.
fn password_grant(ctx: &Ctx, headers: &HeaderMap, form: &Params) -> Result<Response, Fail> {
    let mut data = ctx.state.data.write();
    let app = authenticate_client(&data, headers, form)?;
    if !app.allow_username_password {
        return Err(bad_request(
            "unsupported_grant_type",
            "grant type not supported",
        ));
    }
    let username = param(form, "username").unwrap_or_default();
    let password = param(form, "password").unwrap_or_default();
    let login = data
        .logins
        .get(&username.trim().to_ascii_lowercase())
        .filter(|l| l.password == password)
        .cloned()
        .ok_or_else(|| bad_request("invalid_grant", "authentication failure"))?;
    let serves = data
        .orgs
        .get(&login.org_id)
        .is_some_and(|org| listener_serves(ctx.listener, org));
    if !serves {
        return Err(bad_request("invalid_grant", "authentication failure"));
    }
    session_for_user(ctx, &mut data, &app, &login)
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`: an RS256 assertion signed with
/// the key of the app's uploaded certificate names the app (`iss`), the user (`sub`), this
/// login host (`aud`) and an expiry (`exp`); the user must have approved the app, or the app
/// pre-authorizes its users.
fn jwt_grant(ctx: &Ctx, form: &Params) -> Result<Response, Fail> {
    use super::jwt::{self, JwtRefusal};
    let refuse = |r: JwtRefusal| {
        let (error, description) = r.words();
        bad_request(error, description)
    };
    let assertion = param(form, "assertion")
        .ok_or_else(|| bad_request("invalid_request", "missing required assertion parameter"))?;
    let assertion = jwt::parse(assertion).map_err(refuse)?;
    let claims = &assertion.claims;
    let mut data = ctx.state.data.write();
    let app = data
        .apps
        .get(&claims.iss)
        .cloned()
        .ok_or_else(|| refuse(JwtRefusal::UnknownClient))?;
    let key = app
        .jwt_certificate
        .as_deref()
        .and_then(jwt::rsa_public_key)
        .ok_or_else(|| refuse(JwtRefusal::InvalidAssertion))?;
    if !assertion.verifies_with(&key) {
        return Err(refuse(JwtRefusal::InvalidAssertion));
    }
    let login_host = match ctx.listener {
        Listener::Sandbox => "https://test.salesforce.com",
        _ => "https://login.salesforce.com",
    };
    let aud = claims.aud.trim_end_matches('/');
    if aud != login_host && aud != ctx.base_url() {
        return Err(refuse(JwtRefusal::BadAudience));
    }
    if claims.exp <= ctx.state.clock.now_secs() {
        return Err(refuse(JwtRefusal::Expired));
    }
    let login = data
        .logins
        .get(&claims.sub.to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| refuse(JwtRefusal::NotApproved))?;
    let serves = data
        .orgs
        .get(&login.org_id)
        .is_some_and(|org| listener_serves(ctx.listener, org));
    let approved = app.preauthorized
        || data
            .approvals
            .contains(&(login.user_id.clone(), app.client_id.clone()));
    if !serves || !approved {
        return Err(refuse(JwtRefusal::NotApproved));
    }
    session_for_user(ctx, &mut data, &app, &login)
}

#[allow(clippy::too_many_arguments)]
fn token_response(
    ctx: &Ctx,
    data: &Data,
    app: &crate::state::App,
    org_id: &str,
    user_id: &str,
    login_base: &str,
    scopes: &[String],
    issued: crate::state::IssuedTokens,
    nonce: Option<&str>,
) -> Response {
    let id = identity_url(login_base, org_id, user_id);
    let issued_at = issued.issued_at_ms.to_string();
    let instance_url = data
        .orgs
        .get(org_id)
        .map(|o| ctx.state.instance_url(o))
        .unwrap_or_else(|| ctx.base_url());
    let id_token = scopes
        .iter()
        .any(|s| s == "openid")
        .then(|| {
            id_token(
                login_base,
                &app.client_id,
                &id,
                &issued.access_token,
                nonce,
                issued.issued_at_ms.div_euclid(1000),
            )
        })
        .flatten();
    let body = TokenResponse {
        access_token: issued.access_token,
        refresh_token: issued.refresh_token,
        signature: signature(&app.client_secret, &id, &issued_at),
        scope: scopes.join(" "),
        id_token,
        instance_url,
        id,
        token_type: "Bearer",
        issued_at,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = json_bytes(StatusCode::OK, bytes);
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

// ---------------------------------------------------------------------------------------------
// The OpenID Connect id_token
// ---------------------------------------------------------------------------------------------

/// The key id (`kid`) of the emulator's id_token signing key, as published at `/id/keys`.
pub const ID_TOKEN_KID: &str = "ferry-emulator-1";

/// A 2048-bit RSA key (PKCS#1 DER, base64) generated with OpenSSL for the emulator only. It
/// protects nothing: it exists so id_tokens are real RS256 JWTs a client can verify.
const ID_TOKEN_KEY_DER_B64: &str = concat!(
    "MIIEowIBAAKCAQEAlXVwXLIwGAnG8lG08P+2laU3scdOIuyK2uSpvcaRxgmsxQTovpu+EOCHWHsl",
    "29ghevYbqL84dKXvMtHuhd48hNXX8aNeZufXqB+K3EtGc4BBTQzwg/wcQVvbywbjMtzC1omwHg5o",
    "ZcabEQ4ceRii7cCUWvVQDMvHlpoPNt45ACAS56liHT6pnkQRsRJLvwPPYHMmUYGpbgYhBgypigOm",
    "8uhFNq20Waotyrxq5nMrYcs9giRr8rtiWEkSQJvpNs1vlhz0tJRtVVDRG/yYMdvRhW1fyVAkTq3D",
    "kh5V8+jTratQ6O2Sc/fvqw9Ql3REXHunBjye0J2jdZZoeT+tmHcDlwIDAQABAoIBAByfdBhci7de",
    "z/oCSdvJrSb1kDf8ymsH0APhvNw6VhqOKcdFjGlMnFbRGTqJwxNaTfclgOCNVnuId8nMyJhcmkx6",
    "Q7PkLKUai4OIHujXhbODAX6HFtzAAI1H0U0NkZ9hBfNeRRtMeRPcuD/I6w0J+dH8iqzsxBrfP+cI",
    "tBc28cWjE+No5MZpDhLCnOC8gsids01v2KCQuYNlvRLZrsyVedxlzJd/pQa7CF9JVLBrbPu1hxnG",
    "F2QdpbPxjUlq0guoEpLQkvFNJtU8ne3iZBvEt+qCxE6ZKb9P23sDcuaI+1QSkrEzDG44gimpXqIY",
    "Z2YA7uTZblPUV224S6vTK3Fv86kCgYEAysC1KnwUtYctVgYGv/rgwHew/phOkcO6QQ3J1IinDohu",
    "LcnnHsF5QIKRN0DiOTxqKHsTRS63mjJEqvZzuuFOIb58S1MmEHVrg9ujZtQWHhpeLs80u5DlHinv",
    "UFaR5FbcZspHBYa2SF1sLAuexVTNoEDDngOYZ6YOriJrR35Kb9MCgYEAvLW3KnzhqEytc8hjXSgs",
    "XF+WR8deQBwLSgAo2ow83orqLAo76pSJ9OyX4FS7PZdI6nQQQCfLh/0TXrlBi47UiZtvBVTyRBrf",
    "wB2lnqYkwZwUS1J6Cwya4UYvBhBMWg3PaKp/B3Hbb/vV19hHxPEdO1acCouS7MBhiYG/bOw7hq0C",
    "gYAQNghGNVWSjhRZ5HF1uCFwQiGsuZDOps+lk+ynSaXRy6bDknkgRGfleIsT1+Q+n039npmT1oBn",
    "m81RvhLSxmDw4cIeY6+PcVP/XvhZqGt8TK9rHrYgqR0opEG2MrXHhAprTZEQKA07C/0yKFuxe25V",
    "edgqMi9lWimiUq4xMS/ScQKBgDePyT5ZRpem++r7NUZYbbdE7Zp0uOtnVmuTYHP4lnNvs0MEQF/x",
    "HC1g+9axG/AmevGM+rvo+6Quf2WEZigRBcL+YNHREQO8ZeTK1djAUlIvAkqrHgPi0jdB0taWNeTN",
    "7COFD6HBhDqUi4HhzD/QPisadRclwTyz6AP0j8giReSBAoGBAJtP4rZ/+sE5s/wQbp8PTMznmXrf",
    "8T3F1PjCkKjpuayf8oQ2iznJXZtlJIdDM/bXAVpKx9bq0JDPuiQ0P/hj7gVU3qyQTPFduxukaHay",
    "O768ftV8Ch/SrlqSVCjzoJYgKY16zc1Fmh5E0uIA/3lNNIiJcvY1UpWm8sCHolX2UViO",
);

fn signing_key() -> Option<&'static ring::rsa::KeyPair> {
    static KEY: std::sync::OnceLock<Option<ring::rsa::KeyPair>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let der = base64::engine::general_purpose::STANDARD
            .decode(ID_TOKEN_KEY_DER_B64)
            .ok()?;
        ring::rsa::KeyPair::from_der(&der).ok()
    })
    .as_ref()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs an OpenID Connect id_token: `sub` is the identity URL, `aud` the client id, `iss` the
/// login base; `at_hash` binds it to the access token.
fn id_token(
    login_base: &str,
    client_id: &str,
    identity: &str,
    access_token: &str,
    nonce: Option<&str>,
    now: i64,
) -> Option<String> {
    let key = signing_key()?;
    let digest = Sha256::digest(access_token.as_bytes());
    let mut claims = serde_json::json!({
        "at_hash": b64url(&digest[..16]),
        "sub": identity,
        "aud": client_id,
        "iss": login_base,
        "exp": now + 300,
        "iat": now,
    });
    if let (Some(n), Some(map)) = (nonce, claims.as_object_mut()) {
        map.insert("nonce".into(), serde_json::Value::from(n));
    }
    let header = format!(r#"{{"kid":"{ID_TOKEN_KID}","typ":"JWT","alg":"RS256"}}"#);
    let signing_input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(&serde_json::to_vec(&claims).ok()?)
    );
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .ok()?;
    Some(format!("{signing_input}.{}", b64url(&sig)))
}

/// `GET /id/keys`: the JSON Web Key Set that verifies id_tokens.
async fn jwks() -> Response {
    let keys: Vec<serde_json::Value> = signing_key()
        .map(|key| {
            let c: ring::rsa::PublicKeyComponents<Vec<u8>> = key.public().into();
            serde_json::json!({
                "kty": "RSA",
                "n": b64url(&c.n),
                "e": b64url(&c.e),
                "alg": "RS256",
                "use": "sig",
                "kid": ID_TOKEN_KID,
            })
        })
        .into_iter()
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "keys": keys }))
}

// ---------------------------------------------------------------------------------------------
// Introspection and revocation
// ---------------------------------------------------------------------------------------------

/// An active token's introspection answer, in the documented field order.
#[derive(Debug, Serialize)]
struct Introspection {
    active: bool,
    scope: String,
    client_id: String,
    username: String,
    sub: String,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    iat: i64,
    nbf: i64,
}

/// `POST /services/oauth2/introspect`.
async fn introspect(State(ctx): State<Ctx>, headers: HeaderMap, body: Bytes) -> Response {
    ctx.state
        .stats
        .introspections
        .fetch_add(1, Ordering::Relaxed);
    let form = parse_form(&body);
    let data = ctx.state.data.read();
    let (id, secret) = client_credentials(&headers, &form);
    let app = id
        .as_deref()
        .and_then(|id| data.apps.get(id))
        .filter(|a| secret.as_deref() == Some(a.client_secret.as_str()));
    let Some(app) = app else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid client credentials",
        );
    };
    if !app.introspection_allowed {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            "this client is not allowed to introspect tokens",
        );
    }
    let Some(token) = param(&form, "token") else {
        return bad_request("invalid_request", "missing required token parameter").into_response();
    };
    let now = ctx.state.clock.now_secs();
    let username = |org: &str, user: &str| {
        user_info(&data, org, user)
            .map(|u| u.username)
            .unwrap_or_default()
    };
    let from_access = || {
        let t = data.access_tokens.get(token)?;
        let live = !t.revoked && t.expires_at > now && !data.revoked_families.contains(&t.family);
        (live && t.client_id == app.client_id).then(|| Introspection {
            active: true,
            scope: t.scopes.join(" "),
            client_id: t.client_id.clone(),
            username: username(&t.org_id, &t.user_id),
            sub: identity_url(&t.login_base, &t.org_id, &t.user_id),
            token_type: "access_token",
            exp: Some(t.expires_at),
            iat: t.issued_at,
            nbf: t.issued_at,
        })
    };
    let from_refresh = || {
        let t = data.refresh_tokens.get(token)?;
        let idle = app
            .refresh_token_idle_ttl_secs
            .is_some_and(|ttl| now - t.last_used_at > ttl);
        let live =
            !t.revoked && !t.rotated_out && !idle && !data.revoked_families.contains(&t.family);
        (live && t.client_id == app.client_id).then(|| Introspection {
            active: true,
            scope: t.scopes.join(" "),
            client_id: t.client_id.clone(),
            username: username(&t.org_id, &t.user_id),
            sub: identity_url(&t.login_base, &t.org_id, &t.user_id),
            token_type: "refresh_token",
            exp: None,
            iat: t.issued_at,
            nbf: t.issued_at,
        })
    };
    let found = if param(&form, "token_type_hint") == Some("refresh_token") {
        from_refresh().or_else(from_access)
    } else {
        from_access().or_else(from_refresh)
    };
    match found {
        Some(i) => json_bytes(StatusCode::OK, serde_json::to_vec(&i).unwrap_or_default()),
        None => json(StatusCode::OK, &serde_json::json!({"active": false})),
    }
}

/// `POST /services/oauth2/revoke` with the form field `token`.
async fn revoke_post(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let form = parse_form(&body);
    revoke(&ctx, param(&form, "token"))
}

/// `GET /services/oauth2/revoke?token=`.
async fn revoke_get(State(ctx): State<Ctx>, Query(q): Query<Params>) -> Response {
    revoke(&ctx, param(&q, "token"))
}

fn revoke(ctx: &Ctx, token: Option<&str>) -> Response {
    ctx.state.stats.revocations.fetch_add(1, Ordering::Relaxed);
    let Some(token) = token else {
        return bad_request("invalid_token", "missing required token parameter").into_response();
    };
    let mut data = ctx.state.data.write();
    if let Some(family) = data.refresh_tokens.get_mut(token).map(|t| {
        t.revoked = true;
        t.family
    }) {
        ctx.state.revoke_family(&mut data, family);
        return StatusCode::OK.into_response();
    }
    if let Some(t) = data.access_tokens.get_mut(token) {
        t.revoked = true;
        return StatusCode::OK.into_response();
    }
    bad_request("invalid_token", "invalid token").into_response()
}

// ---------------------------------------------------------------------------------------------
// Userinfo and the identity URL
// ---------------------------------------------------------------------------------------------

fn bad_oauth_token() -> Response {
    let mut resp = (StatusCode::FORBIDDEN, "Bad_OAuth_Token").into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=UTF-8"),
    );
    resp
}

/// Everything userinfo and the identity URL report about a token's user.
struct Identity {
    id: String,
    org_id: String,
    user_id: String,
    instance_url: String,
    user: UserInfo,
}

/// Resolves the token of an identity/userinfo request (`Bearer` or `?oauth_token=`).
fn identity_for(ctx: &Ctx, headers: &HeaderMap, query: &Params) -> Option<Identity> {
    let token = bearer(headers)
        .map(str::to_string)
        .or_else(|| param(query, "oauth_token").map(str::to_string))?;
    let session = ctx.state.session_for(&token)?;
    let data = ctx.state.data.read();
    let login_base = data.access_tokens.get(&token)?.login_base.clone();
    let org = data.orgs.get(&session.org_id)?;
    let user = user_info(&data, &session.org_id, &session.user_id)?;
    Some(Identity {
        id: identity_url(&login_base, &session.org_id, &session.user_id),
        instance_url: ctx.state.instance_url(org),
        org_id: session.org_id,
        user_id: session.user_id,
        user,
    })
}

fn urls_json(ident: &Identity, query: &Params) -> serde_json::Value {
    let version = if param(query, "version") == Some("latest") {
        format!("{}.0", super::MAX_VERSION)
    } else {
        "{version}".to_string()
    };
    let base = &ident.instance_url;
    let org15 = ids::id15(&ident.org_id);
    let data = format!("{base}/services/data/v{version}");
    serde_json::json!({
        "enterprise": format!("{base}/services/Soap/c/{version}/{org15}"),
        "metadata": format!("{base}/services/Soap/m/{version}/{org15}"),
        "partner": format!("{base}/services/Soap/u/{version}/{org15}"),
        "rest": format!("{data}/"),
        "sobjects": format!("{data}/sobjects/"),
        "search": format!("{data}/search/"),
        "query": format!("{data}/query/"),
        "recent": format!("{data}/recent/"),
        "tooling_soap": format!("{base}/services/Soap/T/{version}/{org15}"),
        "tooling_rest": format!("{data}/tooling/"),
        "profile": format!("{base}/{}", ident.user_id),
        "feeds": format!("{data}/chatter/feeds"),
        "groups": format!("{data}/chatter/groups"),
        "users": format!("{data}/chatter/users"),
        "feed_items": format!("{data}/chatter/feed-items"),
        "feed_elements": format!("{data}/chatter/feed-elements"),
        "custom_domain": base,
    })
}

fn photos_json(ident: &Identity) -> serde_json::Value {
    serde_json::json!({
        "picture": format!("{}/profilephoto/005/F", ident.instance_url),
        "thumbnail": format!("{}/profilephoto/005/T", ident.instance_url),
    })
}

fn display_name(u: &UserInfo) -> String {
    format!("{} {}", u.first_name, u.last_name)
        .trim()
        .to_string()
}

fn language(u: &UserInfo) -> String {
    if u.language.is_empty() {
        "en_US".into()
    } else {
        u.language.clone()
    }
}

/// `GET /id/{orgId}/{userId}`: the identity service.
async fn identity(
    State(ctx): State<Ctx>,
    Path((org, user)): Path<(String, String)>,
    Query(query): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let Some(ident) = identity_for(&ctx, &headers, &query) else {
        return bad_oauth_token();
    };
    if ids::normalize(&org).as_deref() != Some(ident.org_id.as_str())
        || ids::normalize(&user).as_deref() != Some(ident.user_id.as_str())
    {
        return bad_oauth_token();
    }
    let u = &ident.user;
    let body = serde_json::json!({
        "id": ident.id,
        "asserted_user": true,
        "user_id": ident.user_id,
        "organization_id": ident.org_id,
        "username": u.username,
        "nick_name": u.alias,
        "display_name": display_name(u),
        "email": u.email,
        "email_verified": true,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "timezone": u.time_zone,
        "photos": photos_json(&ident),
        "addr_street": null,
        "addr_city": null,
        "addr_state": null,
        "addr_country": null,
        "addr_zip": null,
        "mobile_phone": null,
        "mobile_phone_verified": false,
        "is_lightning_login_user": false,
        "status": {"created_date": null, "body": null},
        "urls": urls_json(&ident, &query),
        "active": u.active,
        "user_type": "STANDARD",
        "language": language(u),
        "locale": language(u),
        "utcOffset": utc_offset_ms(&u.time_zone),
        "last_modified_date": value::format_datetime_json(u.last_modified),
        "is_app_installed": true,
    });
    json(StatusCode::OK, &body)
}

/// `GET /services/oauth2/userinfo`: the OpenID Connect view of the same identity.
async fn userinfo(
    State(ctx): State<Ctx>,
    Query(query): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let Some(ident) = identity_for(&ctx, &headers, &query) else {
        return bad_oauth_token();
    };
    let u = &ident.user;
    let photos = photos_json(&ident);
    let body = serde_json::json!({
        "sub": ident.id,
        "user_id": ident.user_id,
        "organization_id": ident.org_id,
        "preferred_username": u.username,
        "nickname": u.alias,
        "name": display_name(u),
        "email": u.email,
        "email_verified": true,
        "given_name": u.first_name,
        "family_name": u.last_name,
        "zoneinfo": u.time_zone,
        "photos": photos,
        "profile": format!("{}/{}", ident.instance_url, ident.user_id),
        "picture": photos["picture"],
        "address": {},
        "is_salesforce_integration_user": false,
        "urls": urls_json(&ident, &query),
        "active": u.active,
        "user_type": "STANDARD",
        "language": language(u),
        "locale": language(u),
        "utcOffset": utc_offset_ms(&u.time_zone),
        "updated_at": value::format_datetime_json(u.last_modified),
        "is_app_installed": true,
    });
    json(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_known_answer_vector() {
        assert_eq!(
            signature(
                "some consumer secret",
                "https://login.salesforce.com/id/00Dd0000000dsWLEAY/005d0000000b8kWAAQ",
                "1332093834282"
            ),
            "tDZZRHgqtJWXw1cEjyuazDNkonKuIYT2EYnJrC7zbc8="
        );
    }

    #[test]
    fn pkce_challenge_matches_an_independent_computation() {
        // Computed with Python's hashlib and base64.urlsafe_b64encode, padding stripped.
        assert_eq!(
            pkce_challenge("ferry-verifier-0123456789-abcdefghijklmnopqrstuvwxyz.ABC_xyz"),
            "BHeuK0IY9ydleUAn6NAMBdD0wm-edOVSaz2-jcJNAVo"
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
