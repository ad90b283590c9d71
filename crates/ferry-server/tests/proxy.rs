//! The proxy on both databases: calls reach the connection's instance with its token, `Sforce-Limit-Info` comes back, no introspection on the hot path, and a `401 INVALID_SESSION_ID` costs exactly one refresh and one retry.

mod common;

use common::{Db, TestApp};
use futures::future::join_all;
use serde_json::{json, Value};

fn proxied(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    id: &str,
) -> reqwest::RequestBuilder {
    app.api(method, &format!("/proxy{path}"))
        .header("Connection-Id", id)
        .header("Provider-Config-Key", "salesforce")
        .header("Base-Url-Override", "")
}

async fn proxied_calls_reach_salesforce_without_extra_upstream_calls(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("proxied").await;
    let created = proxied(
        &app,
        reqwest::Method::POST,
        "/services/data/v59.0/sobjects/Account",
        &id,
    )
    .json(&json!({"Name": "Through Ferry"}))
    .send()
    .await
    .expect("create");
    assert_eq!(created.status(), 201);
    assert!(created.headers().get("sforce-limit-info").is_some());
    let created: Value = created.json().await.expect("json");
    let account = created["id"].as_str().expect("id");
    let before = app.emulator_stats().await;
    let calls = (0..1000).map(|_| async {
        proxied(
            &app,
            reqwest::Method::GET,
            &format!("/services/data/v59.0/sobjects/Account/{account}?fields=Name"),
            &id,
        )
        .send()
        .await
        .expect("get")
    });
    for resp in join_all(calls).await {
        assert_eq!(resp.status(), 200);
        let limit = resp
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .expect("limit info")
            .to_string();
        assert!(limit.starts_with("api-usage="), "{limit}");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["Name"], "Through Ferry");
    }
    let after = app.emulator_stats().await;
    assert_eq!(
        after["introspections"], before["introspections"],
        "no introspection on the hot path"
    );
    assert_eq!(
        after["token_requests"], before["token_requests"],
        "no token calls"
    );
    assert_eq!(
        after["api_requests"]["total"].as_u64().expect("n")
            - before["api_requests"]["total"].as_u64().expect("n"),
        1000,
        "one upstream call per proxied call"
    );

    // Upstream errors come back as-is; a query string passes unchanged.
    let bad = proxied(
        &app,
        reqwest::Method::GET,
        "/services/data/v59.0/query?q=SELECT+Foo+FROM+Account",
        &id,
    )
    .send()
    .await
    .expect("query");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD");
    let refused = app
        .api(reqwest::Method::GET, "/proxy/services/data/v59.0/limits")
        .header("Connection-Id", &id)
        .header("Provider-Config-Key", "salesforce")
        .header("Base-Url-Override", "https://evil.example.com")
        .send()
        .await
        .expect("override");
    assert_eq!(refused.status(), 400);
}
on_both_databases!(
    proxied_calls_reach_salesforce_without_extra_upstream_calls,
    proxied_calls_reach_salesforce_without_extra_upstream_calls
);

async fn an_invalid_session_costs_one_refresh_and_one_retry(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("proxied").await;
    let full: Value = app
        .api(
            reqwest::Method::GET,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    // Salesforce ends the session (the access token alone is revoked).
    let revoked = app
        .http
        .post(format!(
            "{}/services/oauth2/revoke",
            app.emulator.production_url
        ))
        .form(&[(
            "token",
            full["credentials"]["access_token"].as_str().expect("token"),
        )])
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let calls = (0..20).map(|_| async {
        proxied(
            &app,
            reqwest::Method::GET,
            "/services/data/v59.0/limits",
            &id,
        )
        .send()
        .await
        .expect("get")
    });
    for resp in join_all(calls).await {
        assert_eq!(resp.status(), 200);
    }
    let stats = app.emulator_stats().await;
    assert_eq!(
        stats["token_requests"]["refresh_token"]["ok"], 1,
        "one refresh for twenty rejected calls"
    );
}
on_both_databases!(
    an_invalid_session_costs_one_refresh_and_one_retry,
    an_invalid_session_costs_one_refresh_and_one_retry
);

async fn a_401_right_after_a_fresh_token_is_reported_with_a_hint_not_looped(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("ip-restricted").await;
    let fault = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"path_prefix": "/services/data/v59.0/limits", "status": 401,
            "body": [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], "count": 5}))
        .send()
        .await
        .expect("fault");
    assert!(fault.status().is_success());
    let resp = proxied(
        &app,
        reqwest::Method::GET,
        "/services/data/v59.0/limits",
        &id,
    )
    .send()
    .await
    .expect("get");
    assert_eq!(resp.status(), 401);
    let hint = resp
        .headers()
        .get("ferry-hint")
        .and_then(|v| v.to_str().ok())
        .expect("a hint")
        .to_string();
    assert!(hint.contains("IP restrictions"), "{hint}");
    let stats = app.emulator_stats().await;
    assert_eq!(
        stats["token_requests"]["refresh_token"]["ok"], 1,
        "one refresh, then no loop"
    );
    assert_eq!(
        stats["api_requests"]["by_path"]["/services/data/v59.0/limits"], 2,
        "the call and one retry"
    );
}
on_both_databases!(
    a_401_right_after_a_fresh_token_is_reported_with_a_hint_not_looped,
    a_401_right_after_a_fresh_token_is_reported_with_a_hint_not_looped
);
