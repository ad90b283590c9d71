//! The edges an attacker pushes on, on both databases over real HTTP: proxy callers cannot set hop-by-hop or framing headers, webhooks never go to internal addresses (literal or resolved) unless allow-listed and honour a connection's `webhook_url_override`, and every webhook carries a Standard Webhooks signature an independent verifier accepts and a changed timestamp breaks.

mod common;

use base64::Engine;
use common::{receiver, Db, TestApp};
use ferry_server::webhook_targets::WebhookTargetPolicy;
use ferry_server::webhooks::{hmac_signature, run_one, Outcome};
use ferry_store::DeliveryOutcome;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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

/// The headers of the last request the emulator's Salesforce endpoints received.
async fn last_upstream_request(app: &TestApp) -> Value {
    let recent: Value = app
        .http
        .get(format!(
            "{}/__emulator/requests?limit=1",
            app.emulator.production_url
        ))
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    recent[0].clone()
}

async fn proxy_callers_cannot_set_hop_by_hop_or_framing_headers(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("hygiene").await;
    let connection: Value = app
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
    let instance = url::Url::parse(
        connection["connection_config"]["instance_url"]
            .as_str()
            .expect("instance_url"),
    )
    .expect("url");
    let emulator_host = format!(
        "{}:{}",
        instance.host_str().expect("host"),
        instance.port_or_known_default().expect("port")
    );
    let injected = [
        ("host", "evil.example.com"),
        ("content-length", "5"),
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "X-Checksum"),
        ("upgrade", "h2c"),
        ("expect", "100-continue"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("proxy-connection", "keep-alive"),
    ];
    for (name, value) in injected {
        let account = format!("Hygiene {name}");
        let created = proxied(
            &app,
            reqwest::Method::POST,
            "/services/data/v59.0/sobjects/Account",
            &id,
        )
        .header(format!("Nango-Proxy-{name}"), value)
        .json(&json!({ "Name": account }))
        .send()
        .await
        .expect("create");
        assert_eq!(
            created.status(),
            201,
            "Nango-Proxy-{name}: {}",
            created.text().await.unwrap_or_default()
        );
        let seen = last_upstream_request(&app).await;
        assert_eq!(seen["method"], "POST", "{name}: {seen}");
        let headers = &seen["headers"];
        assert_eq!(headers["host"], emulator_host.as_str(), "{name}: {seen}");
        if name != "host" && name != "content-length" {
            assert_ne!(
                headers[name].as_str(),
                Some(value),
                "Nango-Proxy-{name} reached Salesforce: {seen}"
            );
        }
        assert_eq!(
            headers["content-length"],
            json!({ "Name": account }).to_string().len().to_string(),
            "{name}: the body's own length: {seen}"
        );
        // The whole body arrived: the record has the full name.
        let record: Value = created.json().await.expect("json");
        let fetched: Value = proxied(
            &app,
            reqwest::Method::GET,
            &format!(
                "/services/data/v59.0/sobjects/Account/{}?fields=Name",
                record["id"].as_str().expect("id")
            ),
            &id,
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
        assert_eq!(fetched["Name"], account.as_str());
    }
    // Ordinary headers still pass, prefix stripped.
    let limits = proxied(
        &app,
        reqwest::Method::GET,
        "/services/data/v59.0/limits",
        &id,
    )
    .header("Nango-Proxy-X-Trace", "t-1")
    .send()
    .await
    .expect("limits");
    assert_eq!(limits.status(), 200);
    assert_eq!(
        last_upstream_request(&app).await["headers"]["x-trace"],
        "t-1"
    );
}
on_both_databases!(
    proxy_callers_cannot_set_hop_by_hop_or_framing_headers,
    proxy_callers_cannot_set_hop_by_hop_or_framing_headers
);

async fn patch_environment(app: &TestApp, webhook_url: &str) -> reqwest::Response {
    app.api(reqwest::Method::PATCH, "/ferry/environment")
        .json(&json!({ "webhook_url": webhook_url }))
        .send()
        .await
        .expect("patch")
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

async fn webhooks_never_reach_internal_addresses_and_follow_the_connection_override(db: Db) {
    // Default policy: nothing internal is allow-listed.
    let strict = TestApp::spawn_with(db, |c| {
        c.webhook_targets = WebhookTargetPolicy::default();
    })
    .await;
    strict.create_integrations().await;
    for internal in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://172.16.1.1/hook",
        "http://192.168.1.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "http://2130706433/hook",
    ] {
        assert_eq!(
            error_code(patch_environment(&strict, internal).await).await,
            (400, "invalid_body".to_string()),
            "{internal} must be refused"
        );
    }
    let session = strict
        .api(reqwest::Method::POST, "/connect/sessions")
        .json(&json!({"end_user": {"id": "u"}, "webhook_url_override": "http://192.168.0.1/hook"}))
        .send()
        .await
        .expect("session");
    assert_eq!(error_code(session).await, (400, "invalid_body".to_string()));

    // A host name is accepted, then refused at connect time on what it resolves to.
    let mut hook = receiver().await;
    let rebinding = format!("http://localhost:{}/hook", hook.port);
    assert_eq!(patch_environment(&strict, &rebinding).await.status(), 200);
    strict.connect_org("rebound").await;
    assert_eq!(run_one(&strict.state).await.expect("step"), Outcome::Failed);
    assert!(
        hook.requests.try_recv().is_err(),
        "nothing reached the loopback receiver"
    );
    let env_id = strict
        .state
        .environment_by_key(&strict.dev_key)
        .expect("env")
        .id;
    let deliveries = strict
        .state
        .store
        .list_webhooks(env_id, 10)
        .await
        .expect("list");
    assert_eq!(deliveries[0].status, "failed");
    let reason = deliveries[0].last_error.clone().unwrap_or_default();
    assert!(
        reason.starts_with("refused:") && reason.contains("localhost"),
        "{reason}"
    );
    assert_eq!(
        run_one(&strict.state).await.expect("step"),
        Outcome::Idle,
        "a refused delivery is not retried"
    );
    // A literal address stored before the check existed is refused before sending.
    strict
        .state
        .store
        .set_webhook_url(env_id, Some(&hook.url))
        .await
        .expect("stored directly");
    strict.connect_org("stored-earlier").await;
    assert_eq!(run_one(&strict.state).await.expect("step"), Outcome::Failed);
    assert!(hook.requests.try_recv().is_err(), "nothing was sent");
    let reason = strict
        .state
        .store
        .list_webhooks(env_id, 10)
        .await
        .expect("list")
        .into_iter()
        .find(|d| d.payload["endUser"]["endUserId"] == "stored-earlier")
        .and_then(|d| d.last_error)
        .unwrap_or_default();
    assert!(
        reason.starts_with("refused:") && reason.contains("127.0.0.1"),
        "{reason}"
    );

    // The test harness allows loopback: the override replaces the environment's URL.
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let mut env_hook = receiver().await;
    let mut override_hook = receiver().await;
    assert_eq!(patch_environment(&app, &env_hook.url).await.status(), 200);
    let id = app
        .connect_org_with(
            "overridden",
            json!({ "webhook_url_override": override_hook.url }),
        )
        .await;
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Delivered);
    let (_, body) = override_hook.requests.recv().await.expect("a webhook");
    let payload: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(payload["operation"], "creation");
    assert_eq!(payload["connectionId"], id.as_str());
    assert!(env_hook.requests.try_recv().is_err(), "not sent to both");
    let connection_path = format!("/connections/{id}?provider_config_key=salesforce");
    let shown: Value = app
        .api(reqwest::Method::GET, &connection_path)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["webhook_url_override"], override_hook.url.as_str());

    // Even with loopback allowed, the metadata address is refused on PATCH.
    let refused = app
        .api(reqwest::Method::PATCH, &connection_path)
        .json(&json!({"webhook_url_override": "http://169.254.169.254/latest/meta-data/"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(error_code(refused).await, (400, "invalid_body".to_string()));
    // An empty string clears it; the next webhook goes to the environment's URL.
    let cleared = app
        .api(reqwest::Method::PATCH, &connection_path)
        .json(&json!({"webhook_url_override": ""}))
        .send()
        .await
        .expect("patch");
    assert_eq!(cleared.status(), 200);
    let shown: Value = app
        .api(reqwest::Method::GET, &connection_path)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["webhook_url_override"], Value::Null);
    app.connect_org("overridden").await;
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Delivered);
    let (_, body) = env_hook.requests.recv().await.expect("a webhook");
    let payload: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(payload["operation"], "override");
    assert_eq!(payload["connectionId"], id.as_str());
    assert!(override_hook.requests.try_recv().is_err());
}
on_both_databases!(
    webhooks_never_reach_internal_addresses_and_follow_the_connection_override,
    webhooks_never_reach_internal_addresses_and_follow_the_connection_override
);

/// HMAC-SHA256 written out from SHA-256 (RFC 2104), independent of the server's `hmac` crate.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// A Standard Webhooks verifier as a receiver writes one: the key from the `whsec_` secret, the
/// signed content `{id}.{timestamp}.{body}`, any `v1,` signature matching, and a timestamp
/// within five minutes of now.
fn verify(secret: &str, id: &str, timestamp: &str, body: &str, signatures: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| b64.decode(k).ok())
    else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    if (now - ts).abs() > 300 {
        return false;
    }
    let expected = b64.encode(hmac_sha256(
        &key,
        format!("{id}.{timestamp}.{body}").as_bytes(),
    ));
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

fn header<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

async fn webhooks_carry_a_standard_signature_that_resists_replay(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let mut hook = receiver().await;
    let env: Value = patch_environment(&app, &hook.url)
        .await
        .json()
        .await
        .expect("json");
    let signing_key = env["data"]["webhook_signing_key"]
        .as_str()
        .expect("key")
        .to_string();
    let secret = env["data"]["webhook_standard_secret"]
        .as_str()
        .expect("a whsec_ secret")
        .to_string();

    // The first attempt fails; the retry carries the same webhook-id.
    hook.statuses.lock().expect("lock").push_back(503);
    app.connect_org("signed").await;
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Retried);
    let (first, _) = hook.requests.recv().await.expect("first attempt");
    let env_id = app.state.environment_by_key(&app.dev_key).expect("env").id;
    let queued = app
        .state
        .store
        .list_webhooks(env_id, 10)
        .await
        .expect("list");
    // Make the retry due now instead of waiting out the backoff.
    app.state
        .store
        .finish_webhook(
            queued[0].id,
            &DeliveryOutcome::Retry {
                next_attempt_at: 0,
                error: "HTTP 503".into(),
                status: Some(503),
            },
            0,
        )
        .await
        .expect("due");
    assert_eq!(run_one(&app.state).await.expect("step"), Outcome::Delivered);
    let (headers, body) = hook.requests.recv().await.expect("the retry");

    let id = header(&headers, "webhook-id");
    assert!(id.starts_with("msg_"), "{id}");
    assert_eq!(header(&first, "webhook-id"), id, "stable across retries");
    let timestamp = header(&headers, "webhook-timestamp");
    let signature = header(&headers, "webhook-signature");
    assert!(
        verify(&secret, id, timestamp, &body, signature),
        "an independent verifier accepts {signature}"
    );
    // Nango's signature is still there for the Nango SDKs.
    assert_eq!(
        header(&headers, "x-nango-hmac-sha256"),
        hmac_signature(&signing_key, body.as_bytes())
    );

    // A replay with a changed timestamp, a changed body, or another id fails.
    let ts: i64 = timestamp.parse().expect("unix seconds");
    assert!(!verify(
        &secret,
        id,
        &(ts + 1).to_string(),
        &body,
        signature
    ));
    assert!(!verify(
        &secret,
        id,
        &(ts - 3600).to_string(),
        &body,
        signature
    ));
    assert!(!verify(
        &secret,
        id,
        timestamp,
        &body.replace("signed", "forged"),
        signature
    ));
    assert!(!verify(&secret, "msg_other", timestamp, &body, signature));
    // A stale timestamp fails even when the signature over it is genuine.
    let stale = (ts - 3600).to_string();
    let resigned = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
            signing_key.as_bytes(),
            format!("{id}.{stale}.{body}").as_bytes()
        ))
    );
    assert!(!verify(&secret, id, &stale, &body, &resigned));
}
on_both_databases!(
    webhooks_carry_a_standard_signature_that_resists_replay,
    webhooks_carry_a_standard_signature_that_resists_replay
);
