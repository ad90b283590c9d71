//! Proxy retries and Salesforce limits on both databases: `Retries` under injected 503s, no blind retry of a POST, `Retry-On`, `TotalRequests` passed through and remembered, `ConcurrentPerOrgLongTxn` retried, and the per-org usage endpoint fed by `Sforce-Limit-Info`.

mod common;

use common::{Browser, Db, TestApp};
use serde_json::{json, Value};

const LIMITS: &str = "/services/data/v59.0/limits";
const ACCOUNTS: &str = "/services/data/v59.0/sobjects/Account";

/// A connected org, with a millisecond retry backoff so no test waits.
async fn connected(db: Db) -> (TestApp, String) {
    let app = TestApp::spawn(db).await;
    app.state.org_limits.set_retry_base_ms(1);
    app.create_integrations().await;
    let token = app
        .connect_session(json!({"end_user": {"id": "retried"}}))
        .await;
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    let done = browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let list: Value = app
        .api(reqwest::Method::GET, "/connections")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = list["connections"][0]["connection_id"]
        .as_str()
        .expect("id")
        .to_string();
    (app, id)
}

fn proxied(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    id: &str,
) -> reqwest::RequestBuilder {
    app.api(method, &format!("/proxy{path}"))
        .header("Connection-Id", id)
        .header("Provider-Config-Key", "salesforce")
}

async fn fault(app: &TestApp, rule: Value) {
    let resp = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&rule)
        .send()
        .await
        .expect("fault");
    assert!(resp.status().is_success(), "{}", resp.status());
}

async fn calls_to(app: &TestApp, path: &str) -> u64 {
    app.emulator_stats().await["api_requests"]["by_path"][path]
        .as_u64()
        .unwrap_or(0)
}

async fn usage(app: &TestApp, id: &str) -> Value {
    let resp = app
        .api(
            reqwest::Method::GET,
            &format!("/connections/{id}/usage?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("usage");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

async fn account_count(app: &TestApp, id: &str) -> u64 {
    let resp = proxied(
        app,
        reqwest::Method::GET,
        "/services/data/v59.0/query?q=SELECT+COUNT()+FROM+Account",
        id,
    )
    .send()
    .await
    .expect("count");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    body["totalSize"].as_u64().expect("totalSize")
}

async fn injected_503s_are_retried_to_success_within_the_retries_asked_for(db: Db) {
    let (app, id) = connected(db).await;
    fault(
        &app,
        json!({"method": "GET", "path_prefix": LIMITS, "status": 503, "count": 2}),
    )
    .await;
    let resp = proxied(&app, reqwest::Method::GET, LIMITS, &id)
        .header("Retries", "2")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(calls_to(&app, LIMITS).await, 3);

    // Without `Retries` the 503 comes straight back.
    fault(
        &app,
        json!({"method": "GET", "path_prefix": LIMITS, "status": 503, "count": 1}),
    )
    .await;
    let resp = proxied(&app, reqwest::Method::GET, LIMITS, &id)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 503);
    assert_eq!(calls_to(&app, LIMITS).await, 4);
}
on_both_databases!(
    injected_503s_are_retried_to_success_within_the_retries_asked_for,
    injected_503s_are_retried_to_success_within_the_retries_asked_for
);

async fn a_post_is_retried_only_when_retry_on_names_the_status(db: Db) {
    let (app, id) = connected(db).await;
    fault(
        &app,
        json!({"method": "POST", "path_prefix": ACCOUNTS, "status": 503, "count": 1}),
    )
    .await;
    let resp = proxied(&app, reqwest::Method::POST, ACCOUNTS, &id)
        .header("Retries", "3")
        .json(&json!({"Name": "Once only"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 503, "a POST is not retried on a 5xx alone");
    assert_eq!(calls_to(&app, ACCOUNTS).await, 1);
    assert_eq!(account_count(&app, &id).await, 0);

    fault(
        &app,
        json!({"method": "POST", "path_prefix": ACCOUNTS, "status": 503, "count": 1}),
    )
    .await;
    let resp = proxied(&app, reqwest::Method::POST, ACCOUNTS, &id)
        .header("Retries", "3")
        .header("Retry-On", "503,500")
        .json(&json!({"Name": "Retried"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 201);
    assert_eq!(calls_to(&app, ACCOUNTS).await, 3);
    assert_eq!(account_count(&app, &id).await, 1, "exactly one record made");

    let bad = proxied(&app, reqwest::Method::GET, LIMITS, &id)
        .header("Retry-On", "five")
        .send()
        .await
        .expect("get");
    assert_eq!(bad.status(), 400);
}
on_both_databases!(
    a_post_is_retried_only_when_retry_on_names_the_status,
    a_post_is_retried_only_when_retry_on_names_the_status
);

async fn total_requests_comes_back_at_once_and_marks_the_budget_spent(db: Db) {
    let (app, id) = connected(db).await;
    assert_eq!(usage(&app, &id).await["budget_spent"], false);
    let refusal = json!([{
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED"
    }]);
    fault(
        &app,
        json!({"method": "GET", "path_prefix": LIMITS, "status": 403, "body": refusal, "count": 5}),
    )
    .await;
    let resp = proxied(&app, reqwest::Method::GET, LIMITS, &id)
        .header("Retries", "3")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body, refusal, "Salesforce's body as sent");
    assert_eq!(calls_to(&app, LIMITS).await, 1, "no retry");
    let seen = usage(&app, &id).await;
    assert_eq!(seen["budget_spent"], true, "{seen}");
    assert!(seen["org_id"].is_string(), "{seen}");
}
on_both_databases!(
    total_requests_comes_back_at_once_and_marks_the_budget_spent,
    total_requests_comes_back_at_once_and_marks_the_budget_spent
);

async fn concurrent_long_transaction_refusals_are_retried_with_backoff(db: Db) {
    let (app, id) = connected(db).await;
    let refusal = json!([{
        "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED"
    }]);
    fault(
        &app,
        json!({"method": "GET", "path_prefix": LIMITS, "status": 403, "body": refusal, "count": 2}),
    )
    .await;
    let resp = proxied(&app, reqwest::Method::GET, LIMITS, &id)
        .header("Retries", "2")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(calls_to(&app, LIMITS).await, 3);
    assert_eq!(usage(&app, &id).await["budget_spent"], false);
}
on_both_databases!(
    concurrent_long_transaction_refusals_are_retried_with_backoff,
    concurrent_long_transaction_refusals_are_retried_with_backoff
);

async fn the_usage_endpoint_reflects_the_last_sforce_limit_info(db: Db) {
    let (app, id) = connected(db).await;
    let before = usage(&app, &id).await;
    assert!(before["api_usage"].is_null(), "{before}");
    let mut last = String::new();
    for _ in 0..3 {
        let resp = proxied(&app, reqwest::Method::GET, LIMITS, &id)
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 200);
        last = resp
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .expect("limit info")
            .to_string();
    }
    let (used, max) = last
        .strip_prefix("api-usage=")
        .and_then(|v| v.split_once('/'))
        .expect("api-usage=N/M");
    let seen = usage(&app, &id).await;
    assert_eq!(seen["api_usage"]["used"], used.parse::<u64>().expect("n"));
    assert_eq!(seen["api_usage"]["max"], max.parse::<u64>().expect("m"));
    assert!(seen["api_usage"]["updated_at"].as_i64().expect("when") > 0);
    assert_eq!(seen["budget_spent"], false);

    let unknown = app
        .api(
            reqwest::Method::GET,
            "/connections/nope/usage?provider_config_key=salesforce",
        )
        .send()
        .await
        .expect("usage");
    assert_eq!(unknown.status(), 404);
}
on_both_databases!(
    the_usage_endpoint_reflects_the_last_sforce_limit_info,
    the_usage_endpoint_reflects_the_last_sforce_limit_info
);
