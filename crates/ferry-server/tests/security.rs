//! Attacks on the connect flow, the vault and the shared per-org state, tried over real HTTP as
//! a hostile end user, a holder of another environment's key or someone with a database copy;
//! each test shows the attack no longer works.

mod common;

use common::{Browser, Db, TestApp};
use reqwest::header::LOCATION;
use reqwest::Method;
use serde_json::{json, Value};

/// The end user's own client starts a flow and keeps the authorize link (no redirect followed).
async fn authorize_link(app: &TestApp, end_user: &str, extra_query: &str) -> reqwest::Response {
    let token = app
        .connect_session(json!({"end_user": {"id": end_user}}))
        .await;
    app.http
        .get(format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}{extra_query}",
            app.url
        ))
        .send()
        .await
        .expect("connect")
}

async fn connections_of(app: &TestApp, end_user: &str) -> Vec<Value> {
    let list: Value = app
        .api(Method::GET, &format!("/connections?endUserId={end_user}"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list["connections"].as_array().cloned().unwrap_or_default()
}

async fn a_sign_in_finished_in_another_browser_stores_nothing(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let env = app
        .state
        .environment_by_key(&app.dev_key)
        .expect("dev environment");
    let started = authorize_link(&app, "attacker", "").await;
    assert!(started.status().is_redirection(), "{}", started.status());
    let link = started
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("authorize link")
        .to_string();
    // The victim (an admin of another org) opens the forwarded link in their own browser,
    // which never talked to Ferry, and signs in and approves at Salesforce.
    let mut victim = Browser::new();
    let login = victim.get(&link).await;
    let done = victim
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    assert_eq!(done.status, 400, "{}", done.body);
    assert!(done.body.contains("different browser"), "{}", done.body);
    assert!(connections_of(&app, "attacker").await.is_empty());
    let webhooks = app
        .state
        .store
        .list_webhooks(env.id, 10)
        .await
        .expect("webhooks");
    assert!(webhooks.is_empty(), "no webhook: {webhooks:?}");
    // The same flow finished in the browser that started it still connects.
    let token = app
        .connect_session(json!({"end_user": {"id": "owner"}}))
        .await;
    let done = app.sign_in(&token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(connections_of(&app, "owner").await.len(), 1);
}
on_both_databases!(
    a_sign_in_finished_in_another_browser_stores_nothing,
    a_sign_in_finished_in_another_browser_stores_nothing
);

async fn the_link_cannot_drop_consent_or_widen_scopes(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    for query in [
        "&authorization_params%5Bprompt%5D=undefined",
        "&authorization_params%5Bprompt%5D=none",
        "&user_scope=full",
        "&authorization_params%5Bscope%5D=full",
    ] {
        let resp = authorize_link(&app, "u", query).await;
        assert_eq!(resp.status(), 400, "{query}");
        let page = resp.text().await.expect("page");
        assert!(page.contains("invalid_query_params"), "{query}: {page}");
    }
    let resp = authorize_link(
        &app,
        "u",
        "&authorization_params%5Blogin_hint%5D=ada%40acme.example",
    )
    .await;
    let link = url::Url::parse(
        resp.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("authorize link"),
    )
    .expect("url");
    let params: std::collections::HashMap<String, String> =
        link.query_pairs().into_owned().collect();
    assert_eq!(params["prompt"], "consent");
    assert_eq!(params["scope"], "api refresh_token");
    assert_eq!(params["login_hint"], "ada@acme.example");
    let cookie = resp
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("flow cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Secure"), "plain http in tests");
}
on_both_databases!(
    the_link_cannot_drop_consent_or_widen_scopes,
    the_link_cannot_drop_consent_or_widen_scopes
);

/// `POST /connections` with an environment's key; the status and the body.
async fn import(app: &TestApp, key: &str, body: Value) -> (u16, Value) {
    let resp = app
        .http
        .post(format!("{}/connections", app.url))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("import");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Fresh tokens for an emulator org (by name or id).
async fn mint(app: &TestApp, org: &str) -> Value {
    app.http
        .post(format!(
            "{}/__emulator/orgs/{org}/tokens",
            app.emulator.production_url
        ))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json")
}

fn import_body(connection_id: &str, minted: &Value, config: Value) -> Value {
    let mut config = config;
    config["instance_url"] = minted["instance_url"].clone();
    json!({
        "connection_id": connection_id,
        "provider_config_key": "salesforce",
        "connection_config": config,
        "credentials": {"type": "OAUTH2", "access_token": minted["access_token"], "refresh_token": minted["refresh_token"]},
    })
}

async fn usage(app: &TestApp, key: &str, connection_id: &str) -> Value {
    app.http
        .get(format!(
            "{}/connections/{connection_id}/usage?provider_config_key=salesforce",
            app.url
        ))
        .bearer_auth(key)
        .send()
        .await
        .expect("usage")
        .json()
        .await
        .expect("json")
}

/// Makes the next proxied `/limits` call through `connection_id` answer `TotalRequests`.
async fn spend_budget_through(app: &TestApp, key: &str, connection_id: &str) {
    let refusal = json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]);
    let resp = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"method": "GET", "path_prefix": "/services/data/v59.0/limits", "status": 403, "body": refusal, "count": 1}))
        .send()
        .await
        .expect("fault");
    assert!(resp.status().is_success());
    let resp = proxy_limits(app, key, connection_id).await;
    assert_eq!(resp, 403);
}

async fn proxy_limits(app: &TestApp, key: &str, connection_id: &str) -> u16 {
    app.http
        .get(format!("{}/proxy/services/data/v59.0/limits", app.url))
        .bearer_auth(key)
        .header("Connection-Id", connection_id)
        .header("Provider-Config-Key", "salesforce")
        .send()
        .await
        .expect("proxy")
        .status()
        .as_u16()
}

async fn an_imported_token_cannot_claim_another_orgs_identity(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let resp = app
        .http
        .post(format!("{}/integrations", app.url))
        .bearer_auth(&app.prod_key)
        .json(&json!({"provider": "salesforce", "unique_key": "salesforce", "credentials": {"type": "OAUTH2", "client_id": "ferry-demo-client", "client_secret": "ferry-demo-secret", "scopes": "api,refresh_token"}}))
        .send()
        .await
        .expect("prod integration");
    assert_eq!(resp.status(), 200);
    // Production: the real org's connection.
    let acme = mint(&app, "Acme").await;
    let acme_org = acme["org_id"].as_str().expect("org id").to_string();
    let (status, body) = import(
        &app,
        &app.prod_key,
        import_body("prod-acme", &acme, json!({})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["connection_config"]["org_id"], acme_org.as_str());
    // The dev key holder brings a token of their own org and files it under the prod org's id.
    let created: Value = app
        .http
        .post(format!("{}/__emulator/orgs", app.emulator.production_url))
        .json(&json!({"name": "Globex"}))
        .send()
        .await
        .expect("org")
        .json()
        .await
        .expect("json");
    let globex = mint(&app, created["id"].as_str().expect("globex id")).await;
    let (status, body) = import(
        &app,
        &app.dev_key,
        import_body("attacker", &globex, json!({"org_id": acme_org})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["errors"][0]["path"],
        json!(["connection_config", "org_id"])
    );
    // Without the false claim the import works, filed under the org Salesforce names.
    let (status, body) = import(
        &app,
        &app.dev_key,
        import_body("attacker", &globex, json!({})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["connection_config"]["org_id"], globex["org_id"]);
    spend_budget_through(&app, &app.dev_key, "attacker").await;
    assert_eq!(
        usage(&app, &app.dev_key, "attacker").await["budget_spent"],
        true
    );
    // Even a genuine token of the prod org used from `dev` spends only dev's view of it.
    let (status, body) = import(
        &app,
        &app.dev_key,
        import_body("dev-acme", &mint(&app, "Acme").await, json!({})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    spend_budget_through(&app, &app.dev_key, "dev-acme").await;
    let prod = usage(&app, &app.prod_key, "prod-acme").await;
    assert_eq!(prod["budget_spent"], false, "{prod}");
    assert_eq!(prod["org_id"], acme_org.as_str());
    assert_eq!(proxy_limits(&app, &app.prod_key, "prod-acme").await, 200);
}
on_both_databases!(
    an_imported_token_cannot_claim_another_orgs_identity,
    an_imported_token_cannot_claim_another_orgs_identity
);

async fn imports_and_reconnects_never_mix_connections(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let acme = mint(&app, "Acme").await;
    let (status, _) = import(&app, &app.dev_key, import_body("c1", &acme, json!({}))).await;
    assert_eq!(status, 201);
    let (status, body) = import(&app, &app.dev_key, import_body("c1", &acme, json!({}))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "duplicate_connection");
    let mut replace = import_body("c1", &mint(&app, "Acme").await, json!({}));
    replace["replace"] = json!(true);
    let (status, body) = import(&app, &app.dev_key, replace).await;
    assert_eq!(status, 201, "{body}");
    // Replacing with another org's credentials is refused: records of two orgs never mix.
    let created: Value = app
        .http
        .post(format!("{}/__emulator/orgs", app.emulator.production_url))
        .json(&json!({"name": "Initech"}))
        .send()
        .await
        .expect("org")
        .json()
        .await
        .expect("json");
    let other = mint(&app, created["id"].as_str().expect("id")).await;
    let mut replace = import_body("c1", &other, json!({}));
    replace["replace"] = json!(true);
    let (status, body) = import(&app, &app.dev_key, replace).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "org_mismatch");
}
on_both_databases!(
    imports_and_reconnects_never_mix_connections,
    imports_and_reconnects_never_mix_connections
);

async fn sealed_values_are_bound_to_their_rows(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let first = app.connect_org("user-1").await;
    let second = app.connect_org("user-2").await;
    let read = |id: String| {
        let app = &app;
        async move {
            app.api(
                Method::GET,
                &format!("/connections/{id}?provider_config_key=salesforce"),
            )
            .send()
            .await
            .expect("get")
        }
    };
    let token_of = |v: &Value| {
        v["credentials"]["access_token"]
            .as_str()
            .map(str::to_string)
    };
    let one: Value = read(first.clone()).await.json().await.expect("json");
    let two: Value = read(second.clone()).await.json().await.expect("json");
    let (one_token, two_token) = (token_of(&one).expect("t1"), token_of(&two).expect("t2"));
    // Someone with write access to the database swaps the two credential blobs.
    let store = &app.state.store;
    let blobs: Vec<_> = store
        .list_ciphertexts()
        .await
        .expect("list")
        .into_iter()
        .filter(|(t, _, _)| matches!(t, ferry_store::CipherRef::ConnectionCredentials(_)))
        .collect();
    assert_eq!(blobs.len(), 2);
    let (a, b) = (&blobs[0], &blobs[1]);
    assert!(store
        .replace_ciphertext(&a.0, &a.2, &b.2)
        .await
        .expect("swap a"));
    assert!(store
        .replace_ciphertext(&b.0, &b.2, &a.2)
        .await
        .expect("swap b"));
    for id in [first, second] {
        let resp = read(id).await;
        assert_eq!(resp.status(), 500);
        let body = resp.text().await.expect("body");
        assert!(
            !body.contains(&one_token) && !body.contains(&two_token),
            "{body}"
        );
    }
}
on_both_databases!(
    sealed_values_are_bound_to_their_rows,
    sealed_values_are_bound_to_their_rows
);

async fn the_database_holds_no_secret_key_in_a_recoverable_form(db: Db) {
    let app = TestApp::spawn(db).await;
    let envs = app.state.store.list_environments().await.expect("envs");
    for env in &envs {
        for key in [&app.dev_key, &app.prod_key] {
            assert!(!env.secret_key_hash.contains(key.as_str()));
            let sealed = env.secret_key_sealed.as_deref().expect("sealed");
            assert!(!String::from_utf8_lossy(sealed).contains(key.as_str()));
        }
        assert!(env.secret_key_hash.starts_with("sha256:"));
    }
    if let Some(path) = &app.sqlite_path {
        let mut bytes = std::fs::read(path).expect("database file");
        if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
            bytes.extend(wal);
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&app.dev_key) && !text.contains(&app.prod_key));
    }
    // A sealed key copied onto the other environment's row does not open there.
    let (dev, prod) = (&envs[0], &envs[1]);
    let mut moved = prod.clone();
    moved.secret_key_sealed = dev.secret_key_sealed.clone();
    assert!(ferry_server::sealing::open_secret_key(&app.state.vault, &moved).is_none());
    // The keys still work, and a wrong one is refused.
    let ok = app
        .api(Method::GET, "/connections")
        .send()
        .await
        .expect("list");
    assert_eq!(ok.status(), 200);
    let wrong = app
        .http
        .get(format!("{}/connections", app.url))
        .bearer_auth(uuid_like())
        .send()
        .await
        .expect("list");
    assert_eq!(wrong.status(), 401);
}
on_both_databases!(
    the_database_holds_no_secret_key_in_a_recoverable_form,
    the_database_holds_no_secret_key_in_a_recoverable_form
);

fn uuid_like() -> &'static str {
    "3f0e5a8c-1b2d-4c6e-8f9a-0b1c2d3e4f50"
}

async fn values_sealed_by_an_earlier_version_are_converted_at_start(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("user-1").await;
    let store = &app.state.store;
    let vault = &app.state.vault;
    // Roll the rows back to what an earlier Ferry wrote: a plaintext secret key, and
    // credentials sealed with a constant associated data.
    let dev = store
        .list_environments()
        .await
        .expect("envs")
        .into_iter()
        .find(|e| e.name == "dev")
        .expect("dev");
    assert!(store
        .seal_secret_key(
            dev.id,
            &dev.secret_key_hash,
            "6a1f3c2e-9b7d-4e5f-8a0b-1c2d3e4f5a6b",
            b""
        )
        .await
        .expect("legacy key"));
    let (target, env, blob) = store
        .list_ciphertexts()
        .await
        .expect("list")
        .into_iter()
        .find(|(t, _, _)| matches!(t, ferry_store::CipherRef::ConnectionCredentials(_)))
        .expect("credentials");
    let plain = vault
        .decrypt(&blob, &ferry_server::sealing::aad(&target, env))
        .expect("bound");
    let legacy = vault
        .encrypt(plain.expose_secret(), b"connection-credentials")
        .expect("legacy seal");
    assert!(store
        .replace_ciphertext(&target, &blob, &legacy)
        .await
        .expect("legacy"));
    store
        .set_meta(ferry_server::sealing::BOUND_MARK, "0")
        .await
        .expect("unmark");
    // A process of this version starts on that database.
    let (peer, _) = app.spawn_peer().await;
    let resp = app
        .http
        .get(format!(
            "{peer}/connections/{id}?provider_config_key=salesforce"
        ))
        .bearer_auth("6a1f3c2e-9b7d-4e5f-8a0b-1c2d3e4f5a6b")
        .send()
        .await
        .expect("get");
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let converted = store
        .list_environments()
        .await
        .expect("envs")
        .into_iter()
        .find(|e| e.name == "dev")
        .expect("dev");
    assert!(converted.secret_key_hash.starts_with("sha256:"));
    assert_eq!(
        ferry_server::sealing::open_secret_key(vault, &converted)
            .expect("sealed")
            .expose_secret(),
        "6a1f3c2e-9b7d-4e5f-8a0b-1c2d3e4f5a6b"
    );
    let (_, _, rebound) = store
        .list_ciphertexts()
        .await
        .expect("list")
        .into_iter()
        .find(|(t, _, _)| t == &target)
        .expect("credentials");
    assert!(vault
        .decrypt(&rebound, &ferry_server::sealing::aad(&target, env))
        .is_ok());
}
on_both_databases!(
    values_sealed_by_an_earlier_version_are_converted_at_start,
    values_sealed_by_an_earlier_version_are_converted_at_start
);

/// Reads from a raw socket until the server closes it; panics if it stays open for long.
async fn closed_by_server(mut socket: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let closing = async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), closing)
        .await
        .expect("the server closes the idle socket");
}

async fn idle_sockets_cannot_exhaust_the_server(db: Db) {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn_with(db, |c| {
        c.limits.header_timeout_ms = 1000;
        c.limits.ws_max = 5;
        c.limits.ws_unclaimed_ms = 300;
        c.limits.max_connections = 64;
        c.limits.api_body_bytes = 4096;
        c.limits.proxy_body_bytes = 8192;
        c.limits.request_timeout_ms = 300;
    })
    .await;
    app.create_integrations().await;
    let addr = app.url.trim_start_matches("http://").to_string();
    // Slow clients: half a request each, then nothing.
    let mut slow = Vec::new();
    for _ in 0..30 {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.expect("tcp");
        socket
            .write_all(b"GET /health HTTP/1.1\r\nHost: ferry\r\n")
            .await
            .expect("half a request");
        slow.push(socket);
    }
    // Anonymous WebSockets up to the cap; one more is refused.
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
            .await
            .expect("websocket");
        sockets.push(ws);
    }
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503)
        }
        other => panic!("a sixth socket is refused, got {other:?}"),
    }
    // The server keeps answering meanwhile.
    let health = app
        .http
        .get(format!("{}/health", app.url))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    // The slow clients and the unclaimed sockets are closed by the server.
    for socket in slow {
        closed_by_server(socket).await;
    }
    for mut ws in sockets {
        let ending = async {
            while let Some(frame) = ws.next().await {
                match frame {
                    Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), ending)
            .await
            .expect("the unclaimed socket is closed");
    }
    let (_again, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .expect("room for a socket again");
    // Bodies past the route family's limit are refused.
    // A client that does not reuse connections: the short header timeout closes idle ones.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let big = json!({"end_user": {"id": "x".repeat(5000)}});
    let resp = fresh
        .post(format!("{}/connect/sessions", app.url))
        .bearer_auth(&app.dev_key)
        .json(&big)
        .send()
        .await
        .expect("big body");
    assert_eq!(resp.status(), 413);
    let resp = fresh
        .post(format!(
            "{}/proxy/services/data/v59.0/sobjects/Account",
            app.url
        ))
        .bearer_auth(&app.dev_key)
        .header("Connection-Id", "none")
        .header("Provider-Config-Key", "salesforce")
        .body(vec![b'x'; 9000])
        .send()
        .await
        .expect("big proxy body");
    assert_eq!(resp.status(), 413);
    // An API request held up past the request timeout answers 503 (here: the OAuth callback
    // while Salesforce's token endpoint is slow).
    let token = app
        .connect_session(json!({"end_user": {"id": "slow"}}))
        .await;
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .await;
    let fault = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"method": "POST", "path_prefix": "/services/oauth2/token", "latency_ms": 3000, "count": 1}))
        .send()
        .await
        .expect("fault");
    assert!(fault.status().is_success());
    let done = browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    assert_eq!(done.status, 503, "{}", done.body);
    assert!(done.body.contains("request_timeout"), "{}", done.body);
}
on_both_databases!(
    idle_sockets_cannot_exhaust_the_server,
    idle_sockets_cannot_exhaust_the_server
);

async fn abandoned_flows_are_purged_and_lists_are_bounded(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let token = app
        .connect_session(json!({"end_user": {"id": "idle"}}))
        .await;
    let started = app
        .http
        .get(format!(
            "{}/oauth/connect/salesforce?connect_session_token={token}",
            app.url
        ))
        .send()
        .await
        .expect("start");
    assert!(started.status().is_redirection());
    let nothing = ferry_server::purge::run_one(&app.state)
        .await
        .expect("purge");
    assert_eq!(
        nothing,
        ferry_server::purge::Purged::default(),
        "nothing expired yet"
    );
    app.state.clock.advance_ms(2 * 60 * 60 * 1000);
    let purged = ferry_server::purge::run_one(&app.state)
        .await
        .expect("purge");
    assert_eq!(purged.connect_sessions, 1);
    assert_eq!(purged.oauth_states, 1);
    // Long lists are refused with a 400 naming the field, not a database error.
    let ids: Vec<String> = (0..1001).map(|i| format!("c{i}")).collect();
    let resp = app
        .api(Method::POST, "/connections/metadata")
        .json(&json!({"connection_id": ids, "provider_config_key": "salesforce", "metadata": {"a": 1}}))
        .send()
        .await
        .expect("metadata");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["errors"][0]["path"], json!(["connection_id"]));
    let syncs: Vec<String> = (0..201).map(|i| format!("s{i}")).collect();
    let resp = app
        .api(Method::POST, "/sync/trigger")
        .json(&json!({"syncs": syncs, "provider_config_key": "salesforce", "connection_id": "c1"}))
        .send()
        .await
        .expect("trigger");
    assert_eq!(resp.status(), 400);
}
on_both_databases!(
    abandoned_flows_are_purged_and_lists_are_bounded,
    abandoned_flows_are_purged_and_lists_are_bounded
);

async fn a_reconnect_without_tags_keeps_the_connections_tags(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let token = app
        .connect_session(json!({"end_user": {"id": "u1"}, "tags": {"plan": "gold"}}))
        .await;
    let done = app.sign_in(&token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let connection = connections_of(&app, "u1").await.remove(0);
    let id = connection["connection_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(connection["tags"]["plan"], "gold");
    let resp = app
        .api(Method::POST, "/connect/sessions/reconnect")
        .json(&json!({"connection_id": id, "integration_id": "salesforce"}))
        .send()
        .await
        .expect("reconnect session");
    assert_eq!(resp.status(), 201);
    let session: Value = resp.json().await.expect("json");
    let token = session["data"]["token"].as_str().expect("token");
    let done = app.sign_in(&token).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let after = connections_of(&app, "u1").await.remove(0);
    assert_eq!(after["connection_id"], id.as_str());
    assert_eq!(after["tags"]["plan"], "gold", "{after}");
}
on_both_databases!(
    a_reconnect_without_tags_keeps_the_connections_tags,
    a_reconnect_without_tags_keeps_the_connections_tags
);

fn header_of(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn pages_talk_only_to_the_apps_origins(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let connect_page = |app: &TestApp, token: String| {
        let url = format!("{}/connect?session_token={token}", app.url);
        let http = app.http.clone();
        async move { http.get(url).send().await.expect("connect ui") }
    };
    // Safe by default: no framing, messages only to Ferry's own origin, no referrer.
    let token = app.connect_session(json!({"end_user": {"id": "u"}})).await;
    let page = connect_page(&app, token).await;
    let csp = header_of(&page, "content-security-policy");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'nonce-"), "{csp}");
    assert_eq!(header_of(&page, "referrer-policy"), "no-referrer");
    let html = page.text().await.expect("html");
    assert!(!html.contains("\"*\""), "no wildcard target: {html}");
    assert!(html.contains(&format!("\"{}\"", app.url)), "{html}");
    // Origins are checked when configured.
    let bad = app
        .api(Method::PATCH, "/ferry/environment")
        .json(&json!({"allowed_origins": ["https://app.example.com/path"]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(bad.status(), 400);
    let ok = app
        .api(Method::PATCH, "/ferry/environment")
        .json(&json!({"allowed_origins": ["https://app.example.com"]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(ok.status(), 200);
    let shown: Value = ok.json().await.expect("json");
    assert_eq!(
        shown["data"]["allowed_origins"],
        json!(["https://app.example.com"])
    );
    let token = app.connect_session(json!({"end_user": {"id": "u"}})).await;
    let page = connect_page(&app, token.clone()).await;
    let csp = header_of(&page, "content-security-policy");
    assert!(
        csp.contains("frame-ancestors https://app.example.com"),
        "{csp}"
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("\"https://app.example.com\""), "{html}");
    assert!(!html.contains("\"*\""), "{html}");
    // The OAuth callback page posts its outcome to the same targets.
    let done = app.sign_in(&token).await;
    assert_eq!(done.status, 200);
    assert!(
        done.body.contains("\"https://app.example.com\""),
        "{}",
        done.body
    );
    assert!(!done.body.contains("postMessage(message, \"*\")"));
    // An instance URL on a site domain is not a Salesforce API instance.
    let (status, body) = import(
        &app,
        &app.dev_key,
        json!({"provider_config_key": "salesforce", "connection_config": {"instance_url": "https://acme.my.site.com"}, "credentials": {"type": "OAUTH2", "access_token": "x"}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
on_both_databases!(
    pages_talk_only_to_the_apps_origins,
    pages_talk_only_to_the_apps_origins
);
