//! The OAuth flows without a browser over real HTTP: client credentials with a run-as user, and username-password (refused unless the app allows it).

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::Org;

async fn token(org: &Org, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = org
        .http
        .post(format!(
            "{}/services/oauth2/token",
            org.emulator.production_url
        ))
        .form(form)
        .send()
        .await
        .expect("token");
    let status = resp.status();
    (status, resp.json().await.expect("json"))
}

const CLIENT: (&str, &str) = ("client_id", "ferry-demo-client");
const SECRET: (&str, &str) = ("client_secret", "ferry-demo-secret");

#[tokio::test]
async fn client_credentials_needs_a_run_as_user_and_gives_no_refresh_token() {
    let org = Org::demo().await;
    let (status, err) = token(
        &org,
        &[("grant_type", "client_credentials"), CLIENT, SECRET],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(
        err["error_description"],
        "no client credentials user enabled"
    );

    org.admin(
        Method::PATCH,
        "/apps/ferry-demo-client",
        json!({"client_credentials_user": ferry_emulator::DEMO_USERNAME}),
    )
    .await;
    let (status, body) = token(
        &org,
        &[("grant_type", "client_credentials"), CLIENT, SECRET],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("expires_in").is_none());
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().expect("token");
    let resp = org
        .http
        .get(format!(
            "{}/services/data/v59.0/limits",
            body["instance_url"].as_str().expect("instance")
        ))
        .bearer_auth(access)
        .send()
        .await
        .expect("limits");
    assert_eq!(resp.status(), StatusCode::OK);

    let (status, err) = token(
        &org,
        &[
            ("grant_type", "client_credentials"),
            CLIENT,
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_client");
    // Clearing the run-as user turns the flow off again.
    org.admin(
        Method::PATCH,
        "/apps/ferry-demo-client",
        json!({"client_credentials_user": null}),
    )
    .await;
    let (status, _) = token(
        &org,
        &[("grant_type", "client_credentials"), CLIENT, SECRET],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn username_password_is_refused_until_the_app_allows_it() {
    let org = Org::demo().await;
    let form = [
        ("grant_type", "password"),
        CLIENT,
        SECRET,
        ("username", ferry_emulator::DEMO_USERNAME),
        ("password", ferry_emulator::DEMO_PASSWORD),
    ];
    let (status, err) = token(&org, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "unsupported_grant_type");

    org.admin(
        Method::PATCH,
        "/apps/ferry-demo-client",
        json!({"allow_username_password": true}),
    )
    .await;
    let (status, body) = token(&org, &form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].as_str().expect("token").contains('!'));
    assert!(body.get("refresh_token").is_none());

    let (status, err) = token(
        &org,
        &[
            ("grant_type", "password"),
            CLIENT,
            SECRET,
            ("username", ferry_emulator::DEMO_USERNAME),
            ("password", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(err["error_description"], "authentication failure");
    // A sandbox user cannot log in through the production host.
    let (status, _) = token(
        &org,
        &[
            ("grant_type", "password"),
            CLIENT,
            SECRET,
            ("username", ferry_emulator::DEMO_SANDBOX_USERNAME),
            ("password", ferry_emulator::DEMO_PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
