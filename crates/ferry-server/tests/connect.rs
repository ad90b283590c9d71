//! The connect flow end to end over real HTTP on both databases: connect session, Salesforce login and consent in the emulator, the callback, the connection API; and the security properties around it.

mod common;

use common::{Browser, Db, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn connect_acme(app: &TestApp, end_user: &str) -> (String, Value) {
    let token = app
        .connect_session(json!({"end_user": {"id": end_user, "email": "user@example.com", "display_name": "User"}, "allowed_integrations": ["salesforce"]}))
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
    assert!(
        done.body.contains("nango_oauth_callback_success"),
        "{}",
        done.body
    );
    let list: Value = app
        .api(Method::GET, &format!("/connections?endUserId={end_user}"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = list["connections"][0]["connection_id"]
        .as_str()
        .expect("a connection")
        .to_string();
    let full: Value = app
        .api(Method::GET, &format!("/connections/{id}?provider_config_key=salesforce&force_refresh=false&refresh_token=false&refresh_github_app_jwt_token=false"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    (id, full)
}

async fn oauth_flow_creates_a_working_connection(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let (id, full) = connect_acme(&app, "user-1").await;
    assert_eq!(
        full["connection_config"]["instance_url"],
        app.emulator.production_url.as_str()
    );
    assert_eq!(full["provider_config_key"], "salesforce");
    assert_eq!(full["tags"]["end_user_id"], "user-1");
    assert!(
        full["credentials"].get("refresh_token").is_none(),
        "refresh tokens are stripped unless asked"
    );
    assert!(full["credentials"]["raw"].get("refresh_token").is_none());
    let access = full["credentials"]["access_token"]
        .as_str()
        .expect("access token");
    let limits = app
        .http
        .get(format!(
            "{}/services/data/v59.0/limits",
            app.emulator.production_url
        ))
        .bearer_auth(access)
        .send()
        .await
        .expect("limits");
    assert_eq!(limits.status(), 200);

    // Reconnecting the same org and user for the same end user updates the connection.
    let (again, _) = connect_acme(&app, "user-1").await;
    assert_eq!(again, id);
    let list: Value = app
        .api(Method::GET, "/connections")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["connections"].as_array().expect("array").len(), 1);

    let with_refresh: Value = app
        .api(
            Method::GET,
            &format!("/connections/{id}?provider_config_key=salesforce&refresh_token=true"),
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(with_refresh["credentials"]["refresh_token"]
        .as_str()
        .is_some());

    // Delete revokes at Salesforce first.
    let resp = app
        .api(
            Method::DELETE,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 200);
    let limits = app
        .http
        .get(format!(
            "{}/services/data/v59.0/limits",
            app.emulator.production_url
        ))
        .bearer_auth(
            with_refresh["credentials"]["access_token"]
                .as_str()
                .expect("token"),
        )
        .send()
        .await
        .expect("limits");
    assert_eq!(limits.status(), 401);
    let resp = app
        .api(
            Method::DELETE,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_connection");
}
on_both_databases!(
    oauth_flow_creates_a_working_connection,
    oauth_flow_creates_a_working_connection
);

async fn sandbox_and_my_domain_work_and_lightning_hosts_are_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let token = app
        .connect_session(json!({"end_user": {"id": "sbx"}}))
        .await;
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce-sandbox?connect_session_token={token}",
            app.url
        ))
        .await;
    let done = browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_SANDBOX_USERNAME)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let list: Value = app
        .api(Method::GET, "/connections?endUserId=sbx")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["connections"][0]["provider_config_key"],
        "salesforce-sandbox"
    );

    let mut browser = Browser::new();
    let login = browser
        .get(&format!("{}/oauth/connect/salesforce?connect_session_token={token}&params%5Bhostname%5D=acme.my.salesforce.com", app.url))
        .await;
    let done = browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);

    let mut browser = Browser::new();
    let refused = browser
        .get(&format!("{}/oauth/connect/salesforce?connect_session_token={token}&params%5Bhostname%5D=acme.lightning.force.com", app.url))
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("Lightning"), "{}", refused.body);
}
on_both_databases!(
    sandbox_and_my_domain_work_and_lightning_hosts_are_refused,
    sandbox_and_my_domain_work_and_lightning_hosts_are_refused
);

async fn reused_and_forged_states_are_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let token = app.connect_session(json!({"end_user": {"id": "u"}})).await;
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
    assert_eq!(done.status, 200);
    // Replaying the callback URL (same code and state) is refused: the state was single-use.
    let replay = browser.get(&done.url).await;
    assert_eq!(replay.status, 400);
    assert!(
        replay.body.contains("already used or has expired"),
        "{}",
        replay.body
    );
    let forged = browser
        .get(&format!(
            "{}/oauth/callback?code=abc&state=not-a-state",
            app.url
        ))
        .await;
    assert_eq!(forged.status, 400);
}
on_both_databases!(
    reused_and_forged_states_are_refused,
    reused_and_forged_states_are_refused
);

async fn a_code_presented_with_another_flows_verifier_fails_cleanly(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let token = app.connect_session(json!({"end_user": {"id": "u"}})).await;
    // Flow A gets a code; flow B's state (with its own PKCE verifier) is used to redeem it.
    let mut a = Browser::new();
    let login_a = a
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    let consent = a
        .submit(
            &login_a,
            &[
                ("username", ferry_emulator::DEMO_USERNAME),
                ("password", ferry_emulator::DEMO_PASSWORD),
            ],
        )
        .await;
    let mut b = Browser::new();
    let login_b = b
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    let state_b = common::form_fields(&login_b.body)
        .into_iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v)
        .expect("state b");
    let allowed = a.submit_no_follow(&consent, &[("decision", "Allow")]).await;
    let code = url::Url::parse(&allowed)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    // Presented from flow B's own browser, so only the verifier stands in the way.
    let page = b
        .get(&format!(
            "{}/oauth/callback?code={}&state={state_b}",
            app.url,
            urlencode(&code)
        ))
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("invalid_grant") || page.body.contains("code verifier"),
        "{}",
        page.body
    );
    let list: Value = app
        .api(Method::GET, "/connections")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["connections"].as_array().expect("array").len(), 0);
}
on_both_databases!(
    a_code_presented_with_another_flows_verifier_fails_cleanly,
    a_code_presented_with_another_flows_verifier_fails_cleanly
);

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn keys_and_session_tokens_are_scoped(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let (id, _) = connect_acme(&app, "u-dev").await;
    // The prod key sees nothing of dev.
    let resp = app
        .http
        .get(format!(
            "{}/connections/{id}?provider_config_key=salesforce",
            app.url
        ))
        .bearer_auth(&app.prod_key)
        .send()
        .await
        .expect("get");
    assert_eq!(
        resp.status(),
        400,
        "the prod environment has no salesforce integration"
    );
    let list: Value = app
        .http
        .get(format!("{}/connections", app.url))
        .bearer_auth(&app.prod_key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["connections"], json!([]));
    // A connect session token cannot call secret-key routes.
    let token = app.connect_session(json!({"end_user": {"id": "x"}})).await;
    let resp = app
        .http
        .get(format!("{}/connections", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), 403);
    for (auth, code) in [
        (None, "missing_auth_header"),
        (Some("Token x"), "malformed_auth_header"),
        (Some("Bearer nope"), "invalid_secret_key_format"),
        (
            Some("Bearer 3f1c2b1e-8a4d-4c7e-9f0a-1b2c3d4e5f60"),
            "unknown_account",
        ),
    ] {
        let mut req = app.http.get(format!("{}/connections", app.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("list");
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"]["code"], code);
    }
}
on_both_databases!(
    keys_and_session_tokens_are_scoped,
    keys_and_session_tokens_are_scoped
);

#[tokio::test]
async fn the_database_file_holds_no_plaintext_tokens_or_secrets() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_integrations().await;
    let (id, _) = connect_acme(&app, "u").await;
    let full: Value = app
        .api(
            Method::GET,
            &format!("/connections/{id}?provider_config_key=salesforce&refresh_token=true"),
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let access = full["credentials"]["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let refresh = full["credentials"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    // Checkpoint the WAL so every write is in the main file, then read all files' bytes.
    let path = app.sqlite_path.clone().expect("sqlite");
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(&access), "access token in the database file");
    assert!(!contains(&refresh), "refresh token in the database file");
    assert!(
        !contains("ferry-demo-secret"),
        "client secret in the database file"
    );
    // The opaque part alone (after the org id prefix) must not be there either.
    assert!(!contains(access.split('!').nth(1).expect("opaque")));
}

async fn metadata_replace_merge_and_errors(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let (id, _) = connect_acme(&app, "m").await;
    let resp = app
        .api(Method::POST, "/connections/metadata")
        .json(&json!({"connection_id": id, "provider_config_key": "salesforce", "metadata": {"a": 1, "b": 2}}))
        .send()
        .await
        .expect("set");
    assert_eq!(resp.status(), 201);
    let echo: Value = resp.json().await.expect("json");
    assert_eq!(echo["metadata"]["a"], 1);
    let resp = app
        .api(Method::PATCH, "/connections/metadata")
        .json(&json!({"connection_id": [id], "provider_config_key": "salesforce", "metadata": {"b": 3, "c": 4}}))
        .send()
        .await
        .expect("update");
    assert_eq!(resp.status(), 200);
    let full: Value = app
        .api(
            Method::GET,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(full["metadata"], json!({"a": 1, "b": 3, "c": 4}));
    let resp = app
        .api(Method::POST, "/connections/metadata")
        .json(&json!({"connection_id": [id, "missing"], "provider_config_key": "salesforce", "metadata": {"z": 1}}))
        .send()
        .await
        .expect("set");
    assert_eq!(resp.status(), 404);
    let full: Value = app
        .api(
            Method::GET,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        full["metadata"],
        json!({"a": 1, "b": 3, "c": 4}),
        "all or nothing"
    );
    let resp = app
        .api(
            Method::GET,
            &format!("/connections/{id}?provider_config_key=salesforce&bogus=1"),
        )
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_query_params");
    let resp = app
        .api(
            Method::GET,
            "/connections/nope?provider_config_key=salesforce",
        )
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404);
}
on_both_databases!(
    metadata_replace_merge_and_errors,
    metadata_replace_merge_and_errors
);
