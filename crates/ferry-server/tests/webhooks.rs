//! Auth webhooks on both databases: queued with the connection, signed so `@nangohq/node` verifies them, retried on 5xx, dropped on 4xx, skipped without a URL.

mod common;

use common::{receiver, Browser, Db, TestApp};
use ferry_server::webhooks::{hmac_signature, run_one, Outcome};
use serde_json::{json, Value};

async fn auth_webhooks_are_signed_queued_and_retried(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let mut hook = receiver().await;
    let env: Value = app
        .api(reqwest::Method::PATCH, "/ferry/environment")
        .json(&json!({"webhook_url": hook.url}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    let signing_key = env["data"]["webhook_signing_key"]
        .as_str()
        .expect("key")
        .to_string();

    app.connect_org("hooked").await;
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Delivered);
    let (headers, body) = hook.requests.recv().await.expect("a webhook");
    let signature = headers
        .get("x-nango-hmac-sha256")
        .and_then(|v| v.to_str().ok())
        .expect("signature");
    assert_eq!(
        signature,
        hmac_signature(&signing_key, body.as_bytes()),
        "verifiable with the signing key"
    );
    assert!(headers.get("x-nango-signature").is_some());
    let payload: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(payload["type"], "auth");
    assert_eq!(payload["operation"], "creation");
    assert_eq!(payload["success"], true);
    assert_eq!(payload["providerConfigKey"], "salesforce");
    assert_eq!(payload["environment"], "dev");
    assert_eq!(payload["endUser"]["endUserId"], "hooked");
    let list: Value = app
        .api(reqwest::Method::GET, "/connections")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        payload["connectionId"],
        list["connections"][0]["connection_id"]
    );
    // Keys are sorted in the signed body.
    assert!(body.starts_with("{\"authMode\""), "{body}");
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Idle);

    // A reconnect is an override; a 503 is retried later, a 400 is not.
    hook.statuses.lock().expect("lock").push_back(503);
    app.connect_org("hooked").await;
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Retried);
    let (_, body) = hook.requests.recv().await.expect("a webhook");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["operation"],
        "override"
    );
    assert_eq!(
        run_one(&app.state).await.expect("step"),
        Outcome::Idle,
        "not due again yet"
    );
    let queued = app
        .state
        .store
        .list_webhooks(
            app.state.environment_by_key(&app.dev_key).expect("env").id,
            10,
        )
        .await
        .expect("list");
    assert_eq!(queued[0].status, "pending");
    assert_eq!(queued[0].last_error.as_deref(), Some("HTTP 503"));

    hook.statuses.lock().expect("lock").push_back(400);
    app.connect_org("another").await;
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Failed);
    let (_, body) = hook.requests.recv().await.expect("the refused webhook");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["endUser"]["endUserId"],
        "another"
    );

    // A failed flow sends a failure webhook.
    let token = app
        .connect_session(json!({"end_user": {"id": "denied"}}))
        .await;
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    let consent = browser
        .submit(
            &login,
            &[
                ("username", ferry_emulator::DEMO_USERNAME),
                ("password", ferry_emulator::DEMO_PASSWORD),
            ],
        )
        .await;
    let denied = browser.submit(&consent, &[("decision", "Deny")]).await;
    assert_eq!(denied.status, 400);
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Delivered);
    let (_, body) = hook.requests.recv().await.expect("a webhook");
    let payload: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(payload["success"], false);
    assert_eq!(payload["error"]["type"], "access_denied");
}
on_both_databases!(
    auth_webhooks_are_signed_queued_and_retried,
    auth_webhooks_are_signed_queued_and_retried
);

#[tokio::test]
async fn webhooks_are_skipped_when_no_url_is_configured() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_integrations().await;
    app.connect_org("nobody-listens").await;
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Skipped);
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Idle);
}
