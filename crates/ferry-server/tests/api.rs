//! The rest of the Nango-compatible surface on both databases: providers, integrations, connect sessions (including reconnect), importing a connection, expired states, and the sandbox hint.

mod common;

use common::{Browser, Db, TestApp};
use ferry_store::OAuthState;
use reqwest::Method;
use serde_json::{json, Value};

async fn body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn providers_and_integrations_follow_nango_shapes(db: Db) {
    let app = TestApp::spawn(db).await;
    let (status, providers) = body(
        app.api(Method::GET, "/providers")
            .send()
            .await
            .expect("providers"),
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, vec!["salesforce", "salesforce-sandbox"]);
    let (status, sf) = body(
        app.api(Method::GET, "/providers/salesforce")
            .send()
            .await
            .expect("provider"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sf["data"]["auth_mode"], "OAUTH2");
    assert_eq!(
        sf["data"]["proxy"]["base_url"],
        "${connectionConfig.instance_url}"
    );
    assert_eq!(
        sf["data"]["default_scopes"],
        json!(["api", "refresh_token"])
    );
    let (status, _) = body(
        app.api(Method::GET, "/providers/hubspot")
            .send()
            .await
            .expect("provider"),
    )
    .await;
    assert_eq!(status, 404);

    app.create_integrations().await;
    let (status, err) = body(
        app.api(Method::POST, "/integrations")
            .json(&json!({"provider": "salesforce", "unique_key": "salesforce", "credentials": {"type": "OAUTH2", "client_id": "a", "client_secret": "b"}}))
            .send()
            .await
            .expect("duplicate"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "duplicate_integration");
    let (status, err) = body(
        app.api(Method::POST, "/integrations")
            .json(&json!({"provider": "hubspot", "unique_key": "h", "credentials": {"type": "OAUTH2", "client_id": "a", "client_secret": "b"}}))
            .send()
            .await
            .expect("bad provider"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "invalid_body");
    assert_eq!(err["error"]["errors"][0]["path"], json!(["provider"]));
    let (status, err) = body(
        app.api(Method::POST, "/integrations")
            .json(&json!({"provider": "salesforce", "unique_key": "x", "credentials": {"type": "OAUTH2", "client_id": "a"}}))
            .send()
            .await
            .expect("missing secret"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("client_secret"),
        "{err}"
    );
    let resp = app
        .api(Method::POST, "/integrations")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("content type");
    assert_eq!(resp.status(), 415);

    let (status, renamed) = body(
        app.api(Method::PATCH, "/integrations/salesforce-sandbox")
            .json(&json!({"unique_key": "sf-sandbox", "display_name": "Sandbox orgs"}))
            .send()
            .await
            .expect("patch"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(renamed["data"]["unique_key"], "sf-sandbox");
    let (status, with_creds) = body(
        app.api(Method::GET, "/integrations/sf-sandbox?include=credentials")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        with_creds["data"]["credentials"]["client_secret"],
        "ferry-demo-secret"
    );
    let (status, list) = body(
        app.api(Method::GET, "/integrations")
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        list["data"][0].get("credentials").is_none(),
        "credentials only on request"
    );
    let (status, _) = body(
        app.api(Method::DELETE, "/integrations/sf-sandbox")
            .send()
            .await
            .expect("delete"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = body(
        app.api(Method::GET, "/integrations/sf-sandbox")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 404);
    // The prod environment sees none of it.
    let resp = app
        .http
        .get(format!("{}/integrations", app.url))
        .bearer_auth(&app.prod_key)
        .send()
        .await
        .expect("prod");
    assert_eq!(body(resp).await.1["data"], json!([]));
}
on_both_databases!(
    providers_and_integrations_follow_nango_shapes,
    providers_and_integrations_follow_nango_shapes
);

async fn connect_sessions_can_be_read_deleted_and_reconnect(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let (status, err) = body(
        app.api(Method::POST, "/connect/sessions")
            .json(&json!({"allowed_integrations": ["salesforce"]}))
            .send()
            .await
            .expect("no user"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "invalid_body");
    let (status, err) = body(
        app.api(Method::POST, "/connect/sessions")
            .json(&json!({"end_user": {"id": "u"}, "allowed_integrations": ["nope"]}))
            .send()
            .await
            .expect("unknown integration"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["errors"][0]["path"],
        json!(["allowed_integrations", "0"])
    );

    let resp = app
        .api(Method::POST, "/connect/sessions")
        .json(&json!({"end_user": {"id": "u1", "email": "u1@example.com"}, "organization": {"id": "org-9"}, "allowed_integrations": ["salesforce"]}))
        .send()
        .await
        .expect("session");
    let (status, created) = body(resp).await;
    assert_eq!(status, 201);
    let token = created["data"]["token"]
        .as_str()
        .expect("token")
        .to_string();
    assert!(token.starts_with("nango_connect_session_") && token.len() == 22 + 64);
    assert_eq!(
        created["data"]["connect_link"],
        format!("{}/connect/?session_token={token}", app.url).as_str()
    );
    let (status, session) = body(
        app.http
            .get(format!("{}/connect/session", app.url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(session["data"]["endUser"]["id"], "u1");
    assert_eq!(
        session["data"]["allowed_integrations"],
        json!(["salesforce"])
    );
    assert_eq!(session["data"]["tags"]["organization_id"], "org-9");

    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    let (_, list) = body(
        app.api(Method::GET, "/connections?endUserId=u1")
            .send()
            .await
            .expect("list"),
    )
    .await;
    let id = list["connections"][0]["connection_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(list["connections"][0]["tags"]["organization_id"], "org-9");
    // A session only allows its integrations.
    let refused = Browser::new()
        .get(&format!(
            "{}/oauth/connect/salesforce-sandbox?connect_session_token={token}",
            app.url
        ))
        .await;
    assert_eq!(refused.status, 400);

    // Reconnect: a session bound to the connection; the flow updates it in place.
    let (status, re) = body(
        app.api(Method::POST, "/connect/sessions/reconnect")
            .json(&json!({"connection_id": id, "integration_id": "salesforce", "end_user": {"id": "u1"}}))
            .send()
            .await
            .expect("reconnect"),
    )
    .await;
    assert_eq!(status, 201, "{re}");
    let re_token = re["data"]["token"].as_str().expect("token").to_string();
    let (_, re_session) = body(
        app.http
            .get(format!("{}/connect/session", app.url))
            .bearer_auth(&re_token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(re_session["data"]["isReconnecting"], true);
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={re_token}",
            app.url
        ))
        .await;
    let done = browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    assert_eq!(done.status, 200);
    let (_, list) = body(
        app.api(Method::GET, "/connections")
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(list["connections"].as_array().expect("array").len(), 1);
    assert_eq!(list["connections"][0]["connection_id"], id.as_str());
    let (status, _) = body(
        app.api(Method::POST, "/connect/sessions/reconnect")
            .json(&json!({"connection_id": "missing", "integration_id": "salesforce"}))
            .send()
            .await
            .expect("reconnect"),
    )
    .await;
    assert_eq!(status, 400);

    let resp = app
        .http
        .delete(format!("{}/connect/session", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 204);
    let resp = app
        .http
        .get(format!("{}/connect/session", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 401);
}
on_both_databases!(
    connect_sessions_can_be_read_deleted_and_reconnect,
    connect_sessions_can_be_read_deleted_and_reconnect
);

async fn an_expired_state_is_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let env = app.state.environment_by_key(&app.dev_key).expect("env");
    let integration = app
        .state
        .store
        .get_integration(env.id, "salesforce")
        .await
        .expect("get")
        .expect("exists");
    let now = chrono::Utc::now().timestamp_millis();
    app.state
        .store
        .create_oauth_state(&OAuthState {
            state: "expired-state".into(),
            environment_id: env.id,
            integration_id: integration.id,
            connect_session_id: None,
            connection_id: None,
            pkce_verifier: app
                .state
                .vault
                .encrypt(
                    b"v",
                    &ferry_server::sealing::aad(
                        &ferry_store::CipherRef::OAuthStatePkceVerifier("expired-state".into()),
                        env.id,
                    ),
                )
                .expect("seal"),
            ws_client_id: None,
            connection_config: json!({}),
            expires_at: now - 1,
            created_at: now - 600_001,
        })
        .await
        .expect("state");
    let page = Browser::new()
        .get(&format!(
            "{}/oauth/callback?code=abc&state=expired-state",
            app.url
        ))
        .await;
    assert_eq!(page.status, 400);
    assert!(
        page.body.contains("already used or has expired"),
        "{}",
        page.body
    );
}
on_both_databases!(an_expired_state_is_refused, an_expired_state_is_refused);

async fn imported_connections_are_served_and_checked(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let minted: Value = app
        .http
        .post(format!(
            "{}/__emulator/orgs/Acme/tokens",
            app.emulator.production_url
        ))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    let (status, full) = body(
        app.api(Method::POST, "/connections")
            .json(&json!({
                "connection_id": "imported-1",
                "provider_config_key": "salesforce",
                "connection_config": {"instance_url": minted["instance_url"]},
                "credentials": {"type": "OAUTH2", "access_token": minted["access_token"], "refresh_token": minted["refresh_token"]},
                "metadata": {"source": "import"}
            }))
            .send()
            .await
            .expect("import"),
    )
    .await;
    assert_eq!(status, 201, "{full}");
    assert_eq!(full["connection_id"], "imported-1");
    assert_eq!(full["metadata"]["source"], "import");
    assert!(full["credentials"].get("refresh_token").is_none());
    let (status, refreshed) = body(
        app.api(
            Method::GET,
            "/connections/imported-1?provider_config_key=salesforce&force_refresh=true",
        )
        .send()
        .await
        .expect("refresh"),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(
        refreshed["credentials"]["access_token"], minted["access_token"],
        "force_refresh got a new token"
    );
    let (status, err) = body(
        app.api(Method::POST, "/connections")
            .json(&json!({
                "provider_config_key": "salesforce",
                "connection_config": {"instance_url": "https://evil.example.com"},
                "credentials": {"type": "OAUTH2", "access_token": "x"}
            }))
            .send()
            .await
            .expect("import"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err["error"]["errors"][0]["path"],
        json!(["connection_config", "instance_url"])
    );
}
on_both_databases!(
    imported_connections_are_served_and_checked,
    imported_connections_are_served_and_checked
);

#[tokio::test]
async fn a_sandbox_user_on_the_production_integration_is_stopped_with_a_hint() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_integrations().await;
    let token = app
        .connect_session(json!({"end_user": {"id": "sbx"}}))
        .await;
    // The Connect UI says which integration a sandbox org needs before anyone logs in.
    let ui = Browser::new()
        .get(&format!("{}/connect/?session_token={token}", app.url))
        .await;
    assert_eq!(ui.status, 200);
    assert!(
        ui.body
            .contains("A sandbox org needs the Salesforce (Sandbox) integration"),
        "{}",
        ui.body
    );
    // And the login itself fails, pointing at the sandbox host.
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    let refused = browser
        .submit(
            &login,
            &[
                ("username", ferry_emulator::DEMO_SANDBOX_USERNAME),
                ("password", ferry_emulator::DEMO_PASSWORD),
            ],
        )
        .await;
    assert!(refused.body.contains("sandbox"), "{}", refused.body);
    assert!(
        !refused.body.contains("Allow"),
        "no consent for a sandbox user on the production host"
    );
    let (_, list) = body(
        app.api(Method::GET, "/connections")
            .send()
            .await
            .expect("list"),
    )
    .await;
    assert_eq!(list["connections"], json!([]));
}
