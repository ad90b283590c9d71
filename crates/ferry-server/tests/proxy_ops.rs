//! The proxy's operational guarantees: large bodies streamed both ways without buffering, the
//! per-org concurrency cap, no secret or Ferry control header upstream, no retry of a streamed
//! body, refused instance hosts, Nango's error codes, timeouts, the operation log and the org
//! usage record shared through the store.

mod common;

use common::{Db, TestApp};
use ferry_server::app::Application;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const ACCOUNTS: &str = "/services/data/v59.0/sobjects/Account";

/// 200 MiB.
const LARGE: u64 = 200 * 1024 * 1024;

/// The most bytes allowed between what one end produced and what the other end consumed:
/// socket buffers and a few chunks, far below the body's size. A proxy that buffered the body
/// would show the whole 200 MiB here.
const IN_FLIGHT_BOUND: u64 = 48 * 1024 * 1024;

async fn connected(db: Db) -> (TestApp, String) {
    let app = TestApp::spawn(db).await;
    app.state.org_limits.set_retry_base_ms(1);
    app.create_integrations().await;
    let id = app.connect_org("ops-user").await;
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

async fn logs(app: &TestApp, query: &str) -> Value {
    app.state
        .oplog
        .flush_all(&app.state)
        .await
        .expect("flush the operation log");
    let resp = app
        .api(reqwest::Method::GET, &format!("/ferry/logs{query}"))
        .send()
        .await
        .expect("logs");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test]
async fn a_200_mb_download_is_streamed_not_buffered() {
    let (app, id) = connected(Db::Sqlite).await;
    let produced = || {
        app.emulator
            .state
            .stats
            .stream_produced
            .load(Ordering::SeqCst)
    };
    let resp = proxied(
        &app,
        reqwest::Method::GET,
        &format!("/__emulator/stream?bytes={LARGE}&chunk=65536"),
        &id,
    )
    .send()
    .await
    .expect("proxied download");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut consumed = 0u64;
    let mut widest = 0u64;
    while let Some(chunk) = body.next().await {
        consumed += chunk.expect("chunk").len() as u64;
        // The emulator makes the next chunk only when asked: what it has made beyond what
        // reached us is what sits in buffers between us.
        let ahead = produced() - consumed;
        widest = widest.max(ahead);
        assert!(
            ahead <= IN_FLIGHT_BOUND,
            "{ahead} bytes produced but not yet delivered after {consumed}"
        );
    }
    assert_eq!(consumed, LARGE);
    assert_eq!(produced(), LARGE);
    eprintln!("download: at most {widest} bytes in flight");
}

#[tokio::test]
async fn a_200_mb_upload_is_streamed_not_buffered() {
    let (app, id) = connected(Db::Sqlite).await;
    let stats = app.emulator.state.clone();
    let chunk = bytes::Bytes::from(vec![b'u'; 65536]);
    let chunks = LARGE / chunk.len() as u64;
    let body = futures::stream::iter(0..chunks).map(move |i| {
        // Before making chunk i, what the emulator received must be close behind what was made.
        let made = i * chunk.len() as u64;
        let received = stats.stats.sink_received.load(Ordering::SeqCst);
        if made - received > IN_FLIGHT_BOUND {
            return Err(std::io::Error::other(format!(
                "{made} bytes sent but only {received} arrived upstream: the body is being buffered"
            )));
        }
        Ok::<_, std::io::Error>(chunk.clone())
    });
    let resp = proxied(&app, reqwest::Method::POST, "/__emulator/sink", &id)
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("the upload went through without buffering");
    assert_eq!(resp.status(), 200);
    let sunk: Value = resp.json().await.expect("json");
    assert_eq!(sunk["bytes"], LARGE);
    app.state.oplog.wait_recorded(1).await;
    let log = logs(&app, "?limit=1").await;
    assert_eq!(log["operations"][0]["bytes_in"], LARGE);
    assert_eq!(log["operations"][0]["path"], "/__emulator/sink");
}

#[tokio::test]
async fn concurrent_calls_to_one_org_stay_under_the_configured_cap() {
    let (app, id) = connected(Db::Sqlite).await;
    // The cap as FERRY_MAX_CONCURRENT_PER_ORG sets it.
    let (url, _peer) = peer(&app, |c| c.upstream.max_concurrent_per_org = 3).await;
    // Slow answers make the callers pile up at the gate.
    fault(&app, json!({"path_prefix": ACCOUNTS, "latency_ms": 50})).await;
    app.emulator.state.stats.reset();
    let calls = (0..12).map(|_| {
        let req = app
            .http
            .get(format!("{url}/proxy{ACCOUNTS}"))
            .bearer_auth(&app.dev_key)
            .header("Connection-Id", &id)
            .header("Provider-Config-Key", "salesforce");
        async move { req.send().await.expect("call").status() }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let peak = app
        .emulator
        .state
        .stats
        .in_flight_peak
        .load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&peak),
        "the emulator saw {peak} calls at once"
    );
}

#[tokio::test]
async fn the_upstream_request_carries_no_secret_key_and_no_ferry_header() {
    let (app, id) = connected(Db::Sqlite).await;
    let resp = proxied(
        &app,
        reqwest::Method::GET,
        "/services/data/v59.0/limits",
        &id,
    )
    .header("Retries", "2")
    .header("Retry-On", "503")
    .header("Decompress", "false")
    .header("Nango-Proxy-X-Custom", "kept")
    .header("Nango-Proxy-Authorization", "Bearer smuggled")
    .header("Base-Url-Override", "")
    .send()
    .await
    .expect("proxied");
    assert_eq!(resp.status(), 200);
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
    let request = &recent[0];
    assert_eq!(request["path"], "/services/data/v59.0/limits");
    let headers = request["headers"].as_object().expect("headers");
    for (name, value) in headers {
        let value = value.as_str().unwrap_or_default();
        assert!(
            !value.contains(&app.dev_key),
            "{name} carries the secret key"
        );
        assert!(!name.starts_with("nango-proxy-"), "{name} kept its prefix");
        assert!(
            ![
                "connection-id",
                "provider-config-key",
                "retries",
                "retry-on",
                "decompress",
                "base-url-override"
            ]
            .contains(&name.as_str()),
            "{name} is Ferry's own header"
        );
    }
    assert_eq!(headers["x-custom"], "kept");
    let auth = headers["authorization"].as_str().expect("authorization");
    let token = auth.strip_prefix("Bearer ").expect("a bearer token");
    assert!(
        app.emulator.state.session_for(token).is_some(),
        "the connection's own token, not {auth}"
    );
}

#[tokio::test]
async fn decompress_asks_for_gzip_and_the_default_passes_bodies_through() {
    let (app, id) = connected(Db::Sqlite).await;
    let last_upstream_headers = || {
        app.emulator
            .state
            .stats
            .recent
            .lock()
            .back()
            .map(|r| r.headers.clone())
            .unwrap_or_default()
    };
    let plain = proxied(&app, reqwest::Method::GET, ACCOUNTS, &id)
        .send()
        .await
        .expect("plain");
    assert_eq!(plain.status(), 200);
    assert!(
        !last_upstream_headers()
            .iter()
            .any(|(n, _)| n == "accept-encoding"),
        "by default Ferry asks for nothing and passes the body as sent"
    );
    let decompressed = proxied(&app, reqwest::Method::GET, ACCOUNTS, &id)
        .header("Decompress", "true")
        .send()
        .await
        .expect("decompressed");
    assert_eq!(decompressed.status(), 200);
    assert!(last_upstream_headers()
        .iter()
        .any(|(n, v)| n == "accept-encoding" && v.contains("gzip")));
    let body: Value = decompressed.json().await.expect("plain JSON");
    assert!(body.get("objectDescribe").is_some(), "{body}");
}

#[tokio::test]
async fn a_streamed_body_is_never_retried() {
    let (app, id) = connected(Db::Sqlite).await;
    fault(
        &app,
        json!({"path_prefix": ACCOUNTS, "method": "POST", "status": 503, "count": 1}),
    )
    .await;
    app.emulator.state.stats.reset();
    let body = futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"Name\":\"x\"}   "))),
    );
    let resp = proxied(&app, reqwest::Method::POST, ACCOUNTS, &id)
        .header("Content-Type", "application/json")
        .header("Retries", "3")
        .header("Retry-On", "503")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("proxied");
    assert_eq!(resp.status(), 503);
    assert_eq!(
        app.emulator.state.stats.api_requests.load(Ordering::SeqCst),
        1,
        "a streamed body cannot be replayed"
    );
}

#[tokio::test]
async fn unknown_connection_and_integration_get_nangos_codes() {
    let (app, id) = connected(Db::Sqlite).await;
    let resp = app
        .api(reqwest::Method::GET, &format!("/proxy{ACCOUNTS}"))
        .header("Connection-Id", &id)
        .header("Provider-Config-Key", "nope")
        .send()
        .await
        .expect("proxied");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_provider_config");
    let resp = proxied(&app, reqwest::Method::GET, ACCOUNTS, "no-such-connection")
        .send()
        .await
        .expect("proxied");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_connection");
    let resp = app
        .api(reqwest::Method::GET, &format!("/proxy{ACCOUNTS}"))
        .header("Provider-Config-Key", "salesforce")
        .send()
        .await
        .expect("proxied");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_headers");
}

async fn point_instance_url_at(app: &TestApp, id: &str, instance_url: &str) {
    let env = app.state.environment_by_key(&app.dev_key).expect("dev env");
    let connection = app
        .state
        .store
        .get_connection(env.id, "salesforce", id)
        .await
        .expect("read")
        .expect("connection");
    let mut config = connection.connection_config.clone();
    config["instance_url"] = json!(instance_url);
    app.state
        .store
        .patch_connection(
            env.id,
            "salesforce",
            id,
            &ferry_store::ConnectionPatch {
                connection_config: Some(config),
                ..Default::default()
            },
            1,
        )
        .await
        .expect("patch")
        .expect("patched");
    app.state.targets.invalidate(env.id, "salesforce", id);
}

#[tokio::test]
async fn an_instance_url_outside_the_allowed_hosts_is_refused() {
    let (app, id) = connected(Db::Sqlite).await;
    point_instance_url_at(&app, &id, "https://attacker.example.com").await;
    app.emulator.state.stats.reset();
    let resp = proxied(&app, reqwest::Method::GET, ACCOUNTS, &id)
        .send()
        .await
        .expect("proxied");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_connection_config");
    assert_eq!(
        app.emulator.state.stats.api_requests.load(Ordering::SeqCst),
        0
    );
}

/// A second Ferry on the same database and emulator, with its own upstream settings.
async fn peer(
    app: &TestApp,
    tune: impl FnOnce(&mut ferry_server::config::Config),
) -> (String, Arc<ferry_server::app::AppState>) {
    let mut config = app.config.clone();
    config.port = 0;
    tune(&mut config);
    let built = Application::build(config).await.expect("peer builds");
    let url = format!("http://{}", built.local_addr().expect("addr"));
    let state = built.state();
    tokio::spawn(built.run());
    (url, state)
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_and_an_unreachable_one_a_502() {
    let (app, id) = connected(Db::Sqlite).await;
    let (url, peer_state) = peer(&app, |c| {
        c.upstream.timeout_ms = 100;
        c.hosts.allowed_upstream_hosts.push("127.0.0.1:9".into());
    })
    .await;
    // Twenty times the timeout: the outcome does not depend on the machine's speed.
    fault(
        &app,
        json!({"path_prefix": ACCOUNTS, "latency_ms": 2000, "count": 1}),
    )
    .await;
    let call = || {
        app.http
            .get(format!("{url}/proxy{ACCOUNTS}"))
            .bearer_auth(&app.dev_key)
            .header("Connection-Id", &id)
            .header("Provider-Config-Key", "salesforce")
    };
    let resp = call().send().await.expect("proxied");
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upstream_timeout");

    // Port 9 (discard) is closed on this machine: the connection is refused.
    point_instance_url_at(&app, &id, "http://127.0.0.1:9").await;
    // The peer would see the change once its cached entry expires; do not wait for that.
    let env = app.state.environment_by_key(&app.dev_key).expect("dev env");
    peer_state.targets.invalidate(env.id, "salesforce", &id);
    let resp = call().send().await.expect("proxied");
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "upstream_unreachable");
}

async fn operation_log_records_calls_without_bodies_or_tokens(db: Db) {
    let (app, id) = connected(db).await;
    let before = app.state.oplog.recorded();
    let created = proxied(&app, reqwest::Method::POST, ACCOUNTS, &id)
        .header("Content-Type", "application/json")
        .body(r#"{"Name":"Very Secret Customer"}"#)
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let text = created.text().await.expect("body");
    let query =
        "/services/data/v59.0/query?q=SELECT+Id+FROM+Account+WHERE+Name='Very+Secret+Customer'";
    let queried = proxied(&app, reqwest::Method::GET, query, &id)
        .send()
        .await
        .expect("query");
    assert_eq!(queried.status(), 200);
    let query_bytes = queried.bytes().await.expect("body").len();
    let missing = proxied(&app, reqwest::Method::GET, ACCOUNTS, "nobody")
        .send()
        .await
        .expect("unknown");
    assert_eq!(missing.status(), 400);
    app.state.oplog.wait_recorded(before + 3).await;

    let log = logs(
        &app,
        &format!("?connection_id={id}&provider_config_key=salesforce"),
    )
    .await;
    let ops = log["operations"].as_array().expect("operations");
    assert_eq!(ops.len(), 2, "{log}");
    let (get, post) = (&ops[0], &ops[1]);
    assert_eq!(get["kind"], "proxy");
    assert_eq!(get["method"], "GET");
    assert_eq!(get["path"], "/services/data/v59.0/query");
    assert_eq!(get["status"], 200);
    assert_eq!(get["bytes_out"], query_bytes);
    assert_eq!(get["retries"], 0);
    assert_eq!(get["connection_id"], id.as_str());
    assert_eq!(get["provider_config_key"], "salesforce");
    assert!(get["org_id"].as_str().is_some_and(|o| o.starts_with("00D")));
    assert!(get["duration_ms"].as_i64().is_some_and(|d| d >= 0));
    assert_eq!(post["method"], "POST");
    assert_eq!(post["status"], 201);
    assert_eq!(post["bytes_in"], r#"{"Name":"Very Secret Customer"}"#.len());
    assert_eq!(post["bytes_out"], text.len());
    assert_eq!(post["error_code"], Value::Null);

    let everything = logs(&app, "").await;
    let dump = everything.to_string();
    assert!(
        !dump.contains("Secret Customer"),
        "a body or query leaked: {dump}"
    );
    assert!(!dump.contains(&app.dev_key));
    let token = app
        .emulator
        .state
        .stats
        .recent
        .lock()
        .iter()
        .rev()
        .find_map(|r| {
            r.headers
                .iter()
                .find(|(n, _)| n == "authorization")
                .map(|(_, v)| v.trim_start_matches("Bearer ").to_string())
        })
        .expect("the token the proxy used");
    assert!(!dump.contains(&token), "a token leaked");
    let failed = &everything["operations"][0];
    assert_eq!(failed["connection_id"], "nobody");
    assert_eq!(failed["status"], 400);
    assert_eq!(failed["error_code"], "unknown_connection");

    // Keyset pages.
    let first = logs(&app, "?limit=1").await;
    let cursor = first["next_cursor"].as_str().expect("a cursor");
    let second = logs(&app, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(second["operations"][0]["id"], ops[0]["id"]);
    assert_eq!(second["operations"][1]["id"], ops[1]["id"]);
    let bad = app
        .api(reqwest::Method::GET, "/ferry/logs?limit=0")
        .send()
        .await
        .expect("bad");
    assert_eq!(bad.status(), 400);
}
on_both_databases!(
    every_proxied_call_is_in_the_operation_log_without_bodies_or_tokens,
    operation_log_records_calls_without_bodies_or_tokens
);

async fn org_usage_is_shared_through_the_store(db: Db) {
    let (app, id) = connected(db).await;
    let resp = proxied(
        &app,
        reqwest::Method::GET,
        "/services/data/v59.0/limits",
        &id,
    )
    .send()
    .await
    .expect("proxied");
    assert_eq!(resp.status(), 200);
    let info = resp
        .headers()
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
        .expect("Sforce-Limit-Info")
        .to_string();
    let (used, max) = ferry_server::usage::parse_limit_info(&info).expect("api-usage");
    app.state.oplog.flush_all(&app.state).await.expect("flush");

    // Another process (or this one after a restart) sees it through the store.
    let (url, peer_state) = peer(&app, |_| {}).await;
    let resp = app
        .http
        .get(format!(
            "{url}/connections/{id}/usage?provider_config_key=salesforce"
        ))
        .bearer_auth(&app.dev_key)
        .send()
        .await
        .expect("usage");
    assert_eq!(resp.status(), 200);
    let usage: Value = resp.json().await.expect("json");
    assert_eq!(usage["api_usage"]["used"], used);
    assert_eq!(usage["api_usage"]["max"], max);
    assert_eq!(usage["budget_spent"], false);
    let env = app.state.environment_by_key(&app.dev_key).expect("dev").id;
    let org = ferry_server::usage::OrgKey::new(env, usage["org_id"].as_str().expect("org"));
    let share = peer_state.org_limits.usage_share(&org).expect("a share");
    assert!((share - used as f64 / max as f64).abs() < 1e-9);

    // A spent budget reaches the peer at the next flush, however soon after the last write.
    app.state
        .org_limits
        .mark_budget_spent(&org, app.state.clock.now_ms());
    app.state.oplog.flush_all(&app.state).await.expect("flush");
    let seen = peer_state
        .org_limits
        .load(peer_state.store.as_ref(), &org)
        .await
        .expect("load");
    assert!(seen.budget_spent);
    assert!(peer_state.org_limits.is_above_share(&org, 0.99));
}
on_both_databases!(
    org_usage_survives_restarts_and_is_shared_by_processes,
    org_usage_is_shared_through_the_store
);

#[tokio::test]
async fn a_deleted_connection_is_not_served_from_the_cache() {
    let (app, id) = connected(Db::Sqlite).await;
    let first = proxied(&app, reqwest::Method::GET, ACCOUNTS, &id)
        .send()
        .await
        .expect("first");
    assert_eq!(first.status(), 200);
    let deleted = app
        .api(
            reqwest::Method::DELETE,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 200);
    let after = proxied(&app, reqwest::Method::GET, ACCOUNTS, &id)
        .send()
        .await
        .expect("after");
    assert_eq!(after.status(), 400);
    let body: Value = after.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_connection");
}

async fn transport_calls_are_logged_with_their_kind(db: Db) {
    use ferry_salesforce::transport::{ApiRequest, Transport};
    let (app, id) = connected(db).await;
    let env = app.state.environment_by_key(&app.dev_key).expect("dev env");
    let integration = app
        .state
        .store
        .get_integration(env.id, "salesforce")
        .await
        .expect("read")
        .expect("integration");
    let connection = app
        .state
        .store
        .get_connection(env.id, "salesforce", &id)
        .await
        .expect("read")
        .expect("connection");
    let transport = ferry_server::upstream::ConnectionTransport::open(
        app.state.clone(),
        integration,
        connection,
    )
    .await
    .expect("transport")
    .log_as(ferry_store::OperationKind::Action);
    let before = app.state.oplog.recorded();
    let response = transport
        .send(ApiRequest::get(
            "/services/data/v59.0/query?q=SELECT+Id+FROM+Account+LIMIT+1",
        ))
        .await
        .expect("send");
    assert_eq!(response.status, 200);
    app.state.oplog.wait_recorded(before + 1).await;
    let log = logs(&app, "?kind=action").await;
    let op = &log["operations"][0];
    assert_eq!(op["kind"], "action");
    assert_eq!(op["path"], "/services/data/v59.0/query");
    assert_eq!(op["status"], 200);
    assert_eq!(op["connection_id"], id.as_str());
    assert_eq!(op["bytes_out"], response.body.len());
    let env = app.state.environment_by_key(&app.dev_key).expect("dev").id;
    let org = ferry_server::usage::OrgKey::new(env, op["org_id"].as_str().expect("org"));
    assert!(app.state.org_limits.usage_share(&org).is_some());
}
on_both_databases!(
    calls_through_connection_transport_are_logged_as_sync_or_action,
    transport_calls_are_logged_with_their_kind
);
