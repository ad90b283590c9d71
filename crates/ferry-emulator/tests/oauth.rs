//! The emulator's OAuth 2.0 endpoints over real HTTP: the web-server flow driven by the `oauth2` crate, every error row of the token endpoint, the login and consent pages, introspection, revocation, userinfo and the identity URL.
#![allow(clippy::unwrap_used)]

mod oauth_common;

use base64::Engine;
use hmac::{Hmac, Mac};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use oauth_common::*;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

/// Salesforce's fields beyond RFC 6749 in a token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SalesforceFields {
    instance_url: String,
    id: String,
    signature: String,
    issued_at: String,
}

impl ExtraTokenFields for SalesforceFields {}

type SalesforceTokenResponse = StandardTokenResponse<SalesforceFields, BasicTokenType>;

type SalesforceClient<
    HasAuthUrl = EndpointNotSet,
    HasDeviceAuthUrl = EndpointNotSet,
    HasIntrospectionUrl = EndpointNotSet,
    HasRevocationUrl = EndpointNotSet,
    HasTokenUrl = EndpointNotSet,
> = Client<
    BasicErrorResponse,
    SalesforceTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    HasDeviceAuthUrl,
    HasIntrospectionUrl,
    HasRevocationUrl,
    HasTokenUrl,
>;

fn verify_signature(body: &Value, secret: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body["id"].as_str().unwrap().as_bytes());
    mac.update(body["issued_at"].as_str().unwrap().as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    body["signature"].as_str() == Some(expected.as_str())
}

async fn introspect(base: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn revoke(base: &str, token: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/revoke"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn rest_limits(instance_url: &str, access_token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{instance_url}/services/data/v59.0/limits"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn assert_error(answer: &(u16, Value), error: &str, description: &str) {
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert_eq!(
        answer.1,
        json!({"error": error, "error_description": description})
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The acceptance test
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn web_server_flow_with_the_oauth2_crate() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let client: SalesforceClient<
        EndpointSet,
        EndpointNotSet,
        EndpointNotSet,
        EndpointNotSet,
        EndpointSet,
    > = SalesforceClient::new(ClientId::new(CLIENT_ID.into()))
        .set_client_secret(ClientSecret::new(CLIENT_SECRET.into()))
        .set_auth_uri(AuthUrl::new(format!("{base}/services/oauth2/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(format!("{base}/services/oauth2/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let http = oauth2::reqwest::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Authorize with PKCE S256 and a state.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("api".into()))
        .add_scope(Scope::new("refresh_token".into()))
        .add_scope(Scope::new("id".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new();
    let login = browser.get(auth_url.as_str()).await;
    assert_eq!(login.status, 200);
    assert!(login.content_type.starts_with("text/html"));
    assert!(login.body.contains("<label for=\"username\">"));
    assert!(login.body.contains("id=\"Login\""));
    let consent = browser
        .login(
            &base,
            &login,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    assert_eq!(consent.status, 200, "{consent:?}");
    assert!(consent.body.contains("id=\"Allow\""));
    assert!(consent.body.contains("id=\"Deny\""));
    let callback = browser.decide(&base, &consent, "Allow").await;
    assert_eq!(callback.status, 302);
    let location = callback.location.clone().unwrap();
    assert!(
        location.starts_with(&format!("{CALLBACK}?code=")),
        "{location}"
    );
    assert!(
        location.contains("%3D"),
        "the code's '=' is URL-encoded: {location}"
    );
    let q = callback.redirect_query();
    assert_eq!(q.get("state"), Some(csrf.secret()));
    let code = q["code"].clone();

    // Exchange the code (oauth2 authenticates with HTTP Basic by default).
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    assert!(token.access_token().secret().contains('!'));
    assert!(token.expires_in().is_none());
    let first_refresh = token.refresh_token().unwrap().clone();
    let extra = token.extra_fields();
    assert_eq!(extra.instance_url, base);
    assert_eq!(
        extra.id,
        format!(
            "{base}/id/{}/{}",
            emu.demo_org_id.as_deref().unwrap(),
            extra.id.rsplit('/').next().unwrap()
        )
    );
    assert_eq!(extra.issued_at.len(), 13);
    let scopes: Vec<String> = token
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes, ["api", "refresh_token", "id"]);
    let (status, _) = rest_limits(&extra.instance_url, token.access_token().secret()).await;
    assert_eq!(status, 200);

    // The code is single-use.
    let reused = client
        .exchange_code(AuthorizationCode::new(code))
        .request_async(&http)
        .await;
    match reused {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant);
            assert_eq!(
                e.error_description().map(String::as_str),
                Some("expired authorization code")
            );
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }

    // Refresh without rotation: no new refresh token.
    let refreshed = client
        .exchange_refresh_token(&first_refresh)
        .request_async(&http)
        .await
        .unwrap();
    assert!(refreshed.refresh_token().is_none());
    assert_ne!(
        refreshed.access_token().secret(),
        token.access_token().secret()
    );
    let (status, _) = rest_limits(&base, refreshed.access_token().secret()).await;
    assert_eq!(status, 200);

    // Turn on rotation: every refresh returns a new token and retires the old one.
    patch_app(&emu, json!({"refresh_token_rotation": true})).await;
    let r1 = client
        .exchange_refresh_token(&first_refresh)
        .request_async(&http)
        .await
        .unwrap();
    let second_refresh = r1.refresh_token().unwrap().clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let r2 = client
        .exchange_refresh_token(&second_refresh)
        .request_async(&http)
        .await
        .unwrap();
    let newest_refresh = r2.refresh_token().unwrap().clone();
    let newest_access = r2.access_token().secret().clone();
    let (_, active) = introspect(&base, newest_refresh.secret()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "refresh_token");

    // Reusing a rotated-out token revokes the whole family.
    let reuse = client
        .exchange_refresh_token(&RefreshToken::new(first_refresh.secret().clone()))
        .request_async(&http)
        .await;
    match reuse {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant);
            assert_eq!(
                e.error_description().map(String::as_str),
                Some("expired access/refresh token")
            );
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    let newest = client
        .exchange_refresh_token(&newest_refresh)
        .request_async(&http)
        .await;
    assert!(matches!(newest, Err(RequestTokenError::ServerResponse(_))));
    let (_, dead) = introspect(&base, &newest_access).await;
    assert_eq!(dead, json!({"active": false}));
    let (status, body) = rest_limits(&base, &newest_access).await;
    assert_eq!(status, 401);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");

    // A fresh authorization: introspect, then revoke.
    let fresh = tokens(&emu, &[]).await;
    let access = fresh["access_token"].as_str().unwrap();
    let (status, info) = introspect(&base, access).await;
    assert_eq!(status, 200);
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "access_token");
    assert_eq!(info["client_id"], CLIENT_ID);
    assert_eq!(info["username"], ferry_emulator::DEMO_USERNAME);
    assert_eq!(info["sub"], fresh["id"]);
    let (status, body) = revoke(&base, fresh["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (_, info) = introspect(&base, access).await;
    assert_eq!(info, json!({"active": false}));

    let s = stats(&emu).await;
    assert_eq!(
        s["token_requests"]["authorization_code"],
        json!({"ok": 2, "failed": 1})
    );
    assert_eq!(
        s["token_requests"]["refresh_token"],
        json!({"ok": 3, "failed": 2})
    );
    assert_eq!(s["family_revocations"], 2);
    emu.shutdown();
}

// ---------------------------------------------------------------------------------------------
// 2. The token endpoint's error table
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn token_endpoint_errors() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    let form = |overrides: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
        let mut f: Vec<(&'static str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", CALLBACK.into()),
            ("client_id", CLIENT_ID.into()),
            ("client_secret", CLIENT_SECRET.into()),
        ];
        for (k, v) in overrides {
            f.retain(|(n, _)| n != k);
            if !v.is_empty() {
                f.push((k, v.to_string()));
            }
        }
        f
    };
    let send = |f: Vec<(&'static str, String)>| {
        let base = base.clone();
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(&base, &pairs).await
        }
    };
    type Row<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let rows: Vec<Row> = vec![
        (
            &[("client_id", "nope")],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            &[("client_id", "")],
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            &[("client_secret", "wrong")],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            &[("client_secret", "")],
            "invalid_client",
            "invalid client credentials",
        ),
        (
            &[("code", "aPrxUnknown==")],
            "invalid_grant",
            "invalid authorization code",
        ),
        (
            &[("redirect_uri", "http://127.0.0.1:9/other")],
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ),
        (
            &[("grant_type", "password")],
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            // The JWT bearer flow needs its assertion (tests/oauth_flows.rs covers the rest).
            &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")],
            "invalid_request",
            "missing required assertion parameter",
        ),
        (
            &[("grant_type", "")],
            "invalid_request",
            "grant_type is required",
        ),
        (
            &[("code", "")],
            "invalid_request",
            "missing required code parameter",
        ),
        (
            &[("redirect_uri", "")],
            "invalid_request",
            "missing required redirect_uri parameter",
        ),
    ];
    for (overrides, error, description) in rows {
        let answer = send(form(overrides)).await;
        assert_error(&answer, error, description);
    }
    // None of those consumed the code.
    let (status, body) = send(form(&[])).await;
    assert_eq!(status, 200, "{body}");
    // Used code.
    assert_error(
        &send(form(&[])).await,
        "invalid_grant",
        "expired authorization code",
    );

    // Refresh-token rows.
    let refresh_form = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token.to_string()),
            ("client_id", CLIENT_ID.into()),
            ("client_secret", CLIENT_SECRET.into()),
        ]
    };
    assert_error(
        &send(refresh_form("5Aep861unknown")).await,
        "invalid_grant",
        "expired access/refresh token",
    );
    assert_error(
        &send(vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", CLIENT_ID.into()),
            ("client_secret", CLIENT_SECRET.into()),
        ])
        .await,
        "invalid_request",
        "missing required refresh_token parameter",
    );
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    let (status, _) = revoke(&base, &rt).await;
    assert_eq!(status, 200);
    assert_error(
        &send(refresh_form(&rt)).await,
        "invalid_grant",
        "expired access/refresh token",
    );

    // An app with no scopes.
    let fresh = tokens(&emu, &[]).await;
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    patch_app(&emu, json!({"scopes": []})).await;
    assert_error(
        &exchange(&base, &code).await,
        "invalid_grant",
        "no valid scopes defined",
    );
    assert_error(
        &refresh(&base, fresh["refresh_token"].as_str().unwrap()).await,
        "invalid_grant",
        "no valid scopes defined",
    );

    let s = stats(&emu).await;
    assert_eq!(
        s["token_requests"]["password"],
        json!({"ok": 0, "failed": 1})
    );
    assert_eq!(s["token_requests"]["none"], json!({"ok": 0, "failed": 1}));
    emu.shutdown();
}

#[tokio::test]
async fn inactive_user_cannot_exchange_or_refresh() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let fresh = tokens(&emu, &[]).await;
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    let user_id = fresh["id"].as_str().unwrap().rsplit('/').next().unwrap();
    let org = emu.demo_org_id.clone().unwrap();
    let (status, body) = admin(
        &emu,
        Method::PATCH,
        &format!("/__emulator/orgs/{org}/records/User/{user_id}"),
        json!({"IsActive": false}),
    )
    .await;
    assert!(status < 300, "{status} {body}");
    assert_error(
        &exchange(&base, &code).await,
        "inactive_user",
        "user is inactive",
    );
    assert_error(
        &refresh(&base, fresh["refresh_token"].as_str().unwrap()).await,
        "inactive_user",
        "user is inactive",
    );
    // The login form refuses the user too, with a redirect error.
    let browser = Browser::new();
    let page = browser.get(&authorize_url(&base, &[])).await;
    let page = browser
        .login(
            &base,
            &page,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    assert_eq!(page.redirect_query()["error"], "inactive_user");
    emu.shutdown();
}

#[tokio::test]
async fn pkce_is_checked_and_can_be_required() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let verifier = "a-verifier-that-is-long-enough-0123456789-abcdefghijklmnop";
    let challenge = ferry_emulator::http::oauth::pkce_challenge(verifier);
    let pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let with_verifier = |code: &str, v: Option<&str>| {
        let mut f = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", CALLBACK.to_string()),
            ("client_id", CLIENT_ID.to_string()),
            ("client_secret", CLIENT_SECRET.to_string()),
        ];
        if let Some(v) = v {
            f.push(("code_verifier", v.to_string()));
        }
        f
    };
    let send = |f: Vec<(&'static str, String)>| {
        let base = base.clone();
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token_request(&base, &pairs).await
        }
    };
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &pkce).await;
    assert_error(
        &send(with_verifier(&code, None)).await,
        "invalid_grant",
        "invalid code verifier",
    );
    assert_error(
        &send(with_verifier(
            &code,
            Some("wrong-verifier-wrong-verifier-wrong-verifier-1234"),
        ))
        .await,
        "invalid_grant",
        "invalid code verifier",
    );
    let (status, body) = send(with_verifier(&code, Some(verifier))).await;
    assert_eq!(status, 200, "{body}");

    // A refresh ignores a code_verifier.
    let mut f = vec![
        ("grant_type", "refresh_token".to_string()),
        (
            "refresh_token",
            body["refresh_token"].as_str().unwrap().to_string(),
        ),
        ("client_id", CLIENT_ID.to_string()),
        ("client_secret", CLIENT_SECRET.to_string()),
    ];
    f.push(("code_verifier", "anything".to_string()));
    let (status, _) = send(f).await;
    assert_eq!(status, 200);

    // The `~` quirk.
    let tilde = "tilde~verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let tilde_challenge = ferry_emulator::http::oauth::pkce_challenge(tilde);
    let tilde_pkce = [("code_challenge", tilde_challenge.as_str())];
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &tilde_pkce).await;
    patch_app(&emu, json!({"reject_tilde_in_verifier": true})).await;
    assert_error(
        &send(with_verifier(&code, Some(tilde))).await,
        "invalid_grant",
        "invalid code verifier",
    );
    patch_app(&emu, json!({"reject_tilde_in_verifier": false})).await;
    let (status, _) = send(with_verifier(&code, Some(tilde))).await;
    assert_eq!(status, 200);

    // Required by the app: no challenge → redirect with invalid_request; plain method refused.
    patch_app(&emu, json!({"require_pkce": true})).await;
    let page = Browser::new().get(&authorize_url(&base, &[])).await;
    assert_eq!(page.status, 302);
    let q = page.redirect_query();
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "st-123");
    let page = Browser::new()
        .get(&authorize_url(
            &base,
            &[
                ("code_challenge", verifier),
                ("code_challenge_method", "plain"),
            ],
        ))
        .await;
    assert_eq!(page.redirect_query()["error"], "invalid_request");
    let page = Browser::new().get(&authorize_url(&base, &pkce)).await;
    assert_eq!(page.status, 200, "the login page: {page:?}");
    emu.shutdown();
}

#[tokio::test]
async fn code_expires_after_fifteen_minutes() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    freeze(&emu).await;
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    advance(&emu, 899).await;
    let still_valid = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    advance(&emu, 2).await;
    assert_error(
        &exchange(&base, &code).await,
        "invalid_grant",
        "expired authorization code",
    );
    let (status, _) = exchange(&base, &still_valid).await;
    assert_eq!(status, 200);
    emu.shutdown();
}

#[tokio::test]
async fn code_is_bound_to_its_client() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let (status, app) = admin(
        &emu,
        Method::POST,
        "/__emulator/apps",
        json!({"client_id": "other-app", "callback_urls": [CALLBACK]}),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let secret = app["client_secret"].as_str().unwrap().to_string();
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    let answer = token_request(
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("client_id", "other-app"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_error(&answer, "invalid_grant", "invalid authorization code");
    // The other app may not introspect the demo app's tokens.
    let (status, body) = exchange(&base, &code).await;
    assert_eq!(status, 200);
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/introspect"))
        .form(&[
            ("token", body["access_token"].as_str().unwrap()),
            ("client_id", "other-app"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"active": false})
    );
    emu.shutdown();
}

#[tokio::test]
async fn refresh_token_idle_expiry_uses_the_emulator_clock() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    freeze(&emu).await;
    patch_app(&emu, json!({"refresh_token_idle_ttl_secs": 3600})).await;
    let t = tokens(&emu, &[]).await;
    let rt = t["refresh_token"].as_str().unwrap();
    advance(&emu, 3000).await;
    assert_eq!(refresh(&base, rt).await.0, 200);
    advance(&emu, 3000).await;
    assert_eq!(
        refresh(&base, rt).await.0,
        200,
        "each use restarts the idle timer"
    );
    advance(&emu, 3601).await;
    let (_, info) = introspect(&base, rt).await;
    assert_eq!(info, json!({"active": false}));
    assert_error(
        &refresh(&base, rt).await,
        "invalid_grant",
        "expired access/refresh token",
    );
    emu.shutdown();
}

#[tokio::test]
async fn chunked_and_basic_authenticated_token_requests() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", CALLBACK)
        .finish();
    // A raw HTTP/1.1 request with `Transfer-Encoding: chunked` and no Content-Length.
    let answer = chunked_post(&base, "/services/oauth2/token", body.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"access_token\""), "{answer}");
    // Wrong Basic secret.
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .basic_auth(CLIENT_ID, Some("bad"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    emu.shutdown();
}

/// POSTs `body` in two chunks with Basic client auth over a raw connection; returns the raw answer.
async fn chunked_post(base: &str, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes();
    let (a, b) = body.split_at(body.len() / 2);
    for chunk in [a, b] {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&req).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

// ---------------------------------------------------------------------------------------------
// 3. The authorize endpoint, login and consent pages
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_client_and_redirect_mismatch_show_a_page_without_redirect() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let browser = Browser::new();
    let page = browser
        .get(&authorize_url(&base, &[("client_id", "unknown-client")]))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    assert!(page.content_type.starts_with("text/html"));
    assert!(
        page.body.contains("error=invalid_client_id"),
        "{}",
        page.body
    );
    assert!(page.body.contains("client identifier invalid"));

    let page = browser
        .get(&authorize_url(
            &base,
            &[("redirect_uri", "http://evil.example/cb")],
        ))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    assert!(page.body.contains("error=redirect_uri_mismatch"));
    assert!(page.body.contains("redirect_uri must match configuration"));

    // Missing redirect_uri: the same page.
    let url = format!("{base}/services/oauth2/authorize?response_type=code&client_id={CLIENT_ID}");
    let page = browser.get(&url).await;
    assert!(page.location.is_none());
    assert!(page.body.contains("redirect_uri_mismatch"));
    emu.shutdown();
}

#[tokio::test]
async fn authorize_problems_redirect_with_an_error() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let browser = Browser::new();
    let page = browser
        .get(&authorize_url(&base, &[("response_type", "token")]))
        .await;
    assert_eq!(page.status, 302);
    let q = page.redirect_query();
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(q["state"], "st-123");

    let page = browser
        .get(&authorize_url(&base, &[("scope", "api chatter_api")]))
        .await;
    assert_eq!(page.redirect_query()["error"], "invalid_scope");

    // immediate=true with no session: interaction needed.
    let page = browser
        .get(&authorize_url(&base, &[("immediate", "true")]))
        .await;
    assert_eq!(page.redirect_query()["error"], "immediate_unsuccessful");
    emu.shutdown();
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let browser = Browser::new();
    let page = browser.get(&authorize_url(&base, &[])).await;
    let page = browser
        .login(
            &base,
            &page,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    let page = browser.decide(&base, &page, "Deny").await;
    assert_eq!(page.status, 302);
    assert_eq!(
        page.location.as_deref(),
        Some(
            format!(
                "{CALLBACK}?error=access_denied&error_description=end-user+denied+authorization&state=st-123"
            )
            .as_str()
        )
    );
    emu.shutdown();
}

#[tokio::test]
async fn bad_password_shows_the_login_page_again() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let browser = Browser::new();
    let page = browser.get(&authorize_url(&base, &[])).await;
    let again = browser
        .login(&base, &page, ferry_emulator::DEMO_USERNAME, "wrong")
        .await;
    assert!(again.location.is_none());
    assert!(again.body.contains("id=\"username\""));
    assert!(again.body.contains("role=\"alert\""));
    assert!(again.body.contains("check your username and password"));
    assert_eq!(
        again.input_value("username").as_deref(),
        Some(ferry_emulator::DEMO_USERNAME)
    );
    // And the retry works from that page.
    let consent = browser
        .login(
            &base,
            &again,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    assert!(consent.body.contains("name=\"decision\""));
    emu.shutdown();
}

#[tokio::test]
async fn login_hint_prefills_the_username() {
    let emu = emulator().await;
    let page = Browser::new()
        .get(&authorize_url(
            &emu.production_url,
            &[("login_hint", "someone@acme.example")],
        ))
        .await;
    assert_eq!(
        page.input_value("username").as_deref(),
        Some("someone@acme.example")
    );
    emu.shutdown();
}

#[tokio::test]
async fn sandbox_users_log_in_only_through_the_sandbox_host() {
    let emu = emulator().await;
    let browser = Browser::new();
    let prod = emu.production_url.clone();
    let page = browser.get(&authorize_url(&prod, &[])).await;
    let refused = browser
        .login(
            &prod,
            &page,
            ferry_emulator::DEMO_SANDBOX_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    assert!(refused.location.is_none());
    assert!(refused.body.contains("sandbox"), "{}", refused.body);
    assert!(refused.body.contains("role=\"alert\""));

    let sandbox = emu.sandbox_url.clone();
    let page = browser.get(&authorize_url(&sandbox, &[])).await;
    let refused = browser
        .login(
            &sandbox,
            &page,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    assert!(refused.body.contains("production"), "{}", refused.body);

    let code = get_code(&sandbox, ferry_emulator::DEMO_SANDBOX_USERNAME, &[]).await;
    let (status, body) = exchange(&sandbox, &code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instance_url"], sandbox.as_str());
    let sandbox_org = emu.demo_sandbox_org_id.clone().unwrap();
    assert!(body["id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{sandbox}/id/{sandbox_org}/")));
    assert!(body["access_token"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}!", &sandbox_org[..15])));
    emu.shutdown();
}

#[tokio::test]
async fn sessions_approvals_and_prompt() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let browser = Browser::new();
    // First time: login and consent.
    let page = browser.get(&authorize_url(&base, &[])).await;
    let page = browser
        .login(
            &base,
            &page,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    let page = browser.decide(&base, &page, "Allow").await;
    assert!(page.redirect_query().contains_key("code"));

    // Session and approval exist: straight back with a code (immediate works too).
    let page = browser.get(&authorize_url(&base, &[])).await;
    assert!(page.redirect_query().contains_key("code"), "{page:?}");
    let page = browser
        .get(&authorize_url(&base, &[("immediate", "true")]))
        .await;
    assert!(page.redirect_query().contains_key("code"));

    // prompt=consent: the consent page again; with immediate it fails.
    let page = browser
        .get(&authorize_url(&base, &[("prompt", "consent")]))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"decision\""));
    let page = browser
        .get(&authorize_url(
            &base,
            &[("prompt", "consent"), ("immediate", "true")],
        ))
        .await;
    assert_eq!(page.redirect_query()["error"], "immediate_unsuccessful");

    // prompt=login: the login page even with a session; then straight to the code.
    let page = browser
        .get(&authorize_url(&base, &[("prompt", "login")]))
        .await;
    assert!(page.body.contains("id=\"password\""));
    let page = browser
        .login(
            &base,
            &page,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    assert!(page.redirect_query().contains_key("code"));

    // prompt="login consent": both.
    let page = browser
        .get(&authorize_url(&base, &[("prompt", "login consent")]))
        .await;
    let page = browser
        .login(
            &base,
            &page,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    assert!(page.body.contains("name=\"decision\""));

    // The production session does not log the browser in on the sandbox host.
    let page = browser.get(&authorize_url(&emu.sandbox_url, &[])).await;
    assert!(page.body.contains("id=\"username\""));

    // A new browser has no session.
    let page = Browser::new().get(&authorize_url(&base, &[])).await;
    assert!(page.body.contains("id=\"username\""));
    emu.shutdown();
}

// ---------------------------------------------------------------------------------------------
// 4. Token responses
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn token_response_shape_signature_and_scopes() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json;charset=UTF-8"
    );
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    // Field order as Salesforce sends it.
    let keys = [
        "\"access_token\"",
        "\"refresh_token\"",
        "\"signature\"",
        "\"scope\"",
        "\"id_token\"",
        "\"instance_url\"",
        "\"id\"",
        "\"token_type\"",
        "\"issued_at\"",
    ];
    let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(body.get("expires_in").is_none());
    assert_eq!(body["token_type"], "Bearer");
    let issued_at = body["issued_at"].as_str().unwrap();
    assert_eq!(issued_at.len(), 13);
    assert!(issued_at.chars().all(|c| c.is_ascii_digit()));
    assert!(verify_signature(&body, CLIENT_SECRET));
    // Omitted scope = every scope of the app.
    assert_eq!(body["scope"], "api refresh_token offline_access id openid");
    let org = emu.demo_org_id.clone().unwrap();
    assert!(body["access_token"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}!", &org[..15])));

    // A refresh: same shape without refresh_token, a new issued_at and signature.
    let (status, refreshed) = refresh(&base, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(refreshed.get("refresh_token").is_none());
    assert!(refreshed.get("expires_in").is_none());
    assert!(verify_signature(&refreshed, CLIENT_SECRET));
    assert_eq!(refreshed["id"], body["id"]);
    assert_eq!(refreshed["instance_url"], body["instance_url"]);

    // Without refresh_token/offline_access there is no refresh token.
    let t = tokens(&emu, &[("scope", "api id")]).await;
    assert!(t.get("refresh_token").is_none());
    assert!(t.get("id_token").is_none(), "id_token only with openid");
    assert_eq!(t["scope"], "api id");
    let t = tokens(&emu, &[("scope", "api offline_access")]).await;
    assert!(t["refresh_token"].is_string());
    emu.shutdown();
}

#[tokio::test]
async fn access_token_expiry_then_rest_answers_401() {
    let emu = emulator().await;
    freeze(&emu).await;
    patch_app(&emu, json!({"access_token_ttl_secs": 60})).await;
    let t = tokens(&emu, &[]).await;
    let instance = t["instance_url"].as_str().unwrap();
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(rest_limits(instance, access).await.0, 200);
    let (_, info) = introspect(instance, access).await;
    assert_eq!(
        info["exp"].as_i64().unwrap() - info["iat"].as_i64().unwrap(),
        60
    );
    assert_eq!(info["nbf"], info["iat"]);
    advance(&emu, 61).await;
    let (status, body) = rest_limits(instance, access).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    let (_, info) = introspect(instance, access).await;
    assert_eq!(info, json!({"active": false}));
    // The refresh token still works and gives a live access token.
    let (status, r) = refresh(instance, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        rest_limits(instance, r["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    emu.shutdown();
}

// ---------------------------------------------------------------------------------------------
// 5. Introspection and revocation
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn introspection() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let t = tokens(&emu, &[]).await;
    let access = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let (status, info) = introspect(&base, access).await;
    assert_eq!(status, 200);
    assert_eq!(info["active"], true);
    assert_eq!(info["scope"], t["scope"]);
    assert!(info["exp"].is_i64() && info["iat"].is_i64() && info["nbf"].is_i64());
    let (_, info) = introspect(&base, rt).await;
    assert_eq!(info["token_type"], "refresh_token");
    assert!(info.get("exp").is_none());
    let (_, info) = introspect(&base, "00Dnothing!xyz").await;
    assert_eq!(info, json!({"active": false}));

    // Body client auth works too.
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/introspect"))
        .form(&[
            ("token", access),
            ("token_type_hint", "access_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["active"], true);

    // Bad client: 401.
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/introspect"))
        .basic_auth(CLIENT_ID, Some("wrong"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client", "error_description": "invalid client credentials"})
    );

    // Not allowed for the app: 403 with an error object.
    patch_app(&emu, json!({"introspection_allowed": false})).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/introspect"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());

    // The other listeners answer too (Nango calls the instance host).
    patch_app(&emu, json!({"introspection_allowed": true})).await;
    let (_, info) = introspect(&emu.instance2_url, access).await;
    assert_eq!(info["active"], true);
    assert_eq!(stats(&emu).await["introspections"], 7);
    emu.shutdown();
}

#[tokio::test]
async fn revocation() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    // Revoking an access token kills only that token.
    let t = tokens(&emu, &[]).await;
    let access = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    let (status, body) = revoke(&base, access).await;
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(rest_limits(&base, access).await.0, 401);
    let (status, r) = refresh(&base, rt).await;
    assert_eq!(status, 200);

    // Revoking the refresh token (GET form) kills the family, access tokens included.
    let resp = reqwest::get(format!(
        "{base}/services/oauth2/revoke?token={}",
        url::form_urlencoded::byte_serialize(rt.as_bytes()).collect::<String>()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().await.unwrap(), "");
    assert_eq!(
        rest_limits(&base, r["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
    assert_error(
        &refresh(&base, rt).await,
        "invalid_grant",
        "expired access/refresh token",
    );

    // Unknown token: 400 invalid_token.
    let (status, body) = revoke(&base, "nonsense").await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "invalid_token");

    let s = stats(&emu).await;
    assert_eq!(s["revocations"], 3);
    assert_eq!(s["family_revocations"], 1);
    emu.shutdown();
}

// ---------------------------------------------------------------------------------------------
// 6. Userinfo and the identity URL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn identity_url_and_userinfo() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let t = tokens(&emu, &[]).await;
    let access = t["access_token"].as_str().unwrap();
    let id_url = t["id"].as_str().unwrap();
    let client = reqwest::Client::new();

    let resp = client.get(id_url).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ident: Value = resp.json().await.unwrap();
    for field in [
        "id",
        "asserted_user",
        "user_id",
        "organization_id",
        "username",
        "nick_name",
        "display_name",
        "email",
        "first_name",
        "last_name",
        "timezone",
        "photos",
        "urls",
        "active",
        "user_type",
        "language",
        "locale",
        "utcOffset",
        "last_modified_date",
        "is_app_installed",
    ] {
        assert!(ident.get(field).is_some(), "missing {field}: {ident}");
    }
    assert_eq!(ident["id"], id_url);
    assert_eq!(
        ident["organization_id"],
        emu.demo_org_id.clone().unwrap().as_str()
    );
    assert_eq!(ident["username"], ferry_emulator::DEMO_USERNAME);
    assert_eq!(ident["user_type"], "STANDARD");
    assert_eq!(ident["active"], true);
    assert_eq!(
        ident["urls"]["rest"],
        format!("{base}/services/data/v{{version}}/")
    );
    assert!(ident["urls"]["sobjects"]
        .as_str()
        .unwrap()
        .contains("{version}"));
    assert!(ident["urls"]["query"].is_string());
    assert!(ident["urls"]["enterprise"].is_string());

    // ?oauth_token= and version=latest.
    let resp = client
        .get(format!(
            "{id_url}?oauth_token={}&version=latest&format=json",
            url::form_urlencoded::byte_serialize(access.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let latest: Value = resp.json().await.unwrap();
    assert!(!latest["urls"]["rest"]
        .as_str()
        .unwrap()
        .contains("{version}"));

    // 15-character ids in the URL work.
    let parts: Vec<&str> = id_url.rsplitn(3, '/').collect();
    let short = format!("{base}/id/{}/{}", &parts[1][..15], &parts[0][..15]);
    let resp = client.get(&short).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // userinfo.
    let resp = client
        .get(format!("{base}/services/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["sub"], id_url);
    assert_eq!(info["preferred_username"], ferry_emulator::DEMO_USERNAME);
    for field in [
        "user_id",
        "organization_id",
        "nickname",
        "name",
        "email",
        "given_name",
        "family_name",
        "zoneinfo",
        "photos",
        "urls",
        "updated_at",
    ] {
        assert!(info.get(field).is_some(), "missing {field}: {info}");
    }

    // Bad, missing or mismatched tokens: 403 Bad_OAuth_Token.
    let other = tokens(&emu, &[]).await;
    let sandbox_code = get_code(&emu.sandbox_url, ferry_emulator::DEMO_SANDBOX_USERNAME, &[]).await;
    let (_, sandbox) = exchange(&emu.sandbox_url, &sandbox_code).await;
    let cases = vec![
        client.get(id_url).bearer_auth("00Dbogus!token"),
        client.get(id_url),
        client.get(format!("{base}/services/oauth2/userinfo")),
        client
            .get(format!("{base}/services/oauth2/userinfo"))
            .bearer_auth("nope"),
        client
            .get(id_url)
            .bearer_auth(sandbox["access_token"].as_str().unwrap()),
    ];
    for req in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403);
        assert_eq!(resp.text().await.unwrap(), "Bad_OAuth_Token");
    }
    // Revoked token: 403 too.
    revoke(&base, other["access_token"].as_str().unwrap()).await;
    let resp = client
        .get(other["id"].as_str().unwrap())
        .bearer_auth(other["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    emu.shutdown();
}

// ---------------------------------------------------------------------------------------------
// 7. Counters
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stats_count_token_requests() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let t = tokens(&emu, &[]).await;
    let rt = t["refresh_token"].as_str().unwrap();
    refresh(&base, rt).await;
    refresh(&base, rt).await;
    refresh(&base, "bogus").await;
    token_request(&base, &[("grant_type", "client_credentials")]).await;
    let s = stats(&emu).await;
    assert_eq!(s["token_requests"]["authorization_code"]["ok"], 1);
    assert_eq!(s["token_requests"]["authorization_code"]["failed"], 0);
    assert_eq!(s["token_requests"]["refresh_token"]["ok"], 2);
    assert_eq!(s["token_requests"]["refresh_token"]["failed"], 1);
    assert_eq!(s["token_requests"]["client_credentials"]["failed"], 1);
    emu.shutdown();
}

// ---------------------------------------------------------------------------------------------
// 8. OpenID Connect
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn id_token_is_an_rs256_jwt_verified_by_the_published_keys() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let t = tokens(
        &emu,
        &[("scope", "api openid refresh_token"), ("nonce", "n-0S6")],
    )
    .await;
    let jwt = t["id_token"].as_str().unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], t["id"]);
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["iss"], base.as_str());
    assert_eq!(claims["nonce"], "n-0S6");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    let jwks: Value = reqwest::get(format!("{base}/id/keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    let public = ring::signature::RsaPublicKeyComponents {
        n: b64.decode(key["n"].as_str().unwrap()).unwrap(),
        e: b64.decode(key["e"].as_str().unwrap()).unwrap(),
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    let signature = b64.decode(parts[2]).unwrap();
    public
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .unwrap();
    assert!(public
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            b"tampered",
            &signature,
        )
        .is_err());

    // A refresh with openid carries a new id_token, without nonce.
    let (_, r) = refresh(&base, t["refresh_token"].as_str().unwrap()).await;
    let claims: Value = serde_json::from_slice(
        &b64.decode(r["id_token"].as_str().unwrap().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(claims.get("nonce").is_none());
    emu.shutdown();
}

#[tokio::test]
async fn consent_without_a_session_asks_to_log_in() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let browser = Browser::new();
    let page = browser.get(&authorize_url(&base, &[])).await;
    let consent = browser
        .login(
            &base,
            &page,
            ferry_emulator::DEMO_USERNAME,
            ferry_emulator::DEMO_PASSWORD,
        )
        .await;
    // Another browser (no cookie) replays the consent form.
    let stranger = Browser::new();
    let page = stranger.decide(&base, &consent, "Allow").await;
    assert!(page.location.is_none());
    assert!(page.body.contains("id=\"username\""));
    emu.shutdown();
}

#[tokio::test]
async fn org_level_refusals_cover_the_rest_of_the_error_table() {
    let emu = emulator().await;
    let base = emu.production_url.clone();
    let org = emu.demo_org_id.clone().unwrap();
    for (flag, error, description) in [
        ("active", "inactive_org", "inactive organization"),
        (
            "login_restricted",
            "invalid_grant",
            "ip restricted or invalid login hours",
        ),
        (
            "token_rate_limited",
            "rate_limit_exceeded",
            "too many login attempts",
        ),
    ] {
        let fresh = tokens(&emu, &[]).await;
        let code = get_code(&base, ferry_emulator::DEMO_USERNAME, &[]).await;
        let value = flag != "active";
        let (status, body) = admin(
            &emu,
            Method::PATCH,
            &format!("/__emulator/orgs/{org}"),
            json!({ flag: value }),
        )
        .await;
        assert!(status < 300, "{status} {body}");
        assert_error(&exchange(&base, &code).await, error, description);
        assert_error(
            &refresh(&base, fresh["refresh_token"].as_str().unwrap()).await,
            error,
            description,
        );
        let (status, _) = admin(
            &emu,
            Method::PATCH,
            &format!("/__emulator/orgs/{org}"),
            json!({ flag: !value }),
        )
        .await;
        assert!(status < 300);
    }
    emu.shutdown();
}
