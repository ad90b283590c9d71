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

/// A key pair and self-signed certificate made with OpenSSL for this test only.
const TEST_CERT: &str = include_str!("support/jwt_test_cert.pem");
const TEST_KEY: &str = include_str!("support/jwt_test_key.pem");

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An RS256 JWT over `claims`, signed with the test key.
fn assertion(claims: Value) -> String {
    use base64::Engine;
    let body: String = TEST_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("key base64");
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("pkcs8 key");
    let signed = format!(
        "{}.{}",
        b64url(br#"{"alg":"RS256"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    format!("{signed}.{}", b64url(&signature))
}

#[tokio::test]
async fn jwt_bearer_checks_signature_issuer_audience_expiry_and_approval() {
    let org = Org::demo().await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, sub: &str, aud: &str, exp: i64| json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp});
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let good = claims(
        "ferry-demo-client",
        ferry_emulator::DEMO_USERNAME,
        "https://login.salesforce.com",
        now + 180,
    );
    let ask = |claims: Value| {
        let token = assertion(claims);
        let org = &org;
        async move { token_raw(org, &[("grant_type", grant), ("assertion", &token)]).await }
    };
    // No certificate uploaded yet.
    let (status, err) = ask(good.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error_description"], "invalid assertion");

    org.admin(
        Method::PATCH,
        "/apps/ferry-demo-client",
        json!({"jwt_certificate": TEST_CERT}),
    )
    .await;
    let (_, err) = ask(good.clone()).await;
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(
        err["error_description"],
        "user hasn't approved this consumer"
    );

    org.admin(
        Method::PATCH,
        "/apps/ferry-demo-client",
        json!({"preauthorized": true}),
    )
    .await;
    let (status, body) = ask(good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert!(body["access_token"].as_str().expect("token").contains('!'));

    let cases = [
        (
            claims(
                "nope",
                ferry_emulator::DEMO_USERNAME,
                "https://login.salesforce.com",
                now + 180,
            ),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            claims(
                "ferry-demo-client",
                ferry_emulator::DEMO_USERNAME,
                "https://test.salesforce.com",
                now + 180,
            ),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            claims(
                "ferry-demo-client",
                ferry_emulator::DEMO_USERNAME,
                "https://login.salesforce.com",
                now - 10,
            ),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            claims(
                "ferry-demo-client",
                "nobody@acme.example",
                "https://login.salesforce.com",
                now + 180,
            ),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
    ];
    for (c, error, description) in cases {
        let (status, err) = ask(c.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{c}");
        assert_eq!(err["error"], error, "{c}");
        assert_eq!(err["error_description"], description, "{c}");
    }
    // A tampered payload no longer matches its signature.
    let token = assertion(good);
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = b64url(
        json!({"iss": "ferry-demo-client", "sub": ferry_emulator::DEMO_USERNAME, "aud": "https://login.salesforce.com", "exp": now + 9999})
            .to_string()
            .as_bytes(),
    );
    let (_, err) = token_raw(
        &org,
        &[("grant_type", grant), ("assertion", &parts.join("."))],
    )
    .await;
    assert_eq!(err["error_description"], "invalid assertion");
}

async fn token_raw(org: &Org, form: &[(&str, &str)]) -> (StatusCode, Value) {
    token(org, form).await
}
