//! The sync scheduler on both databases: a new connection gets every catalog sync (auto-start ones due at once), `run_one` runs each due sync once and schedules the next run, paused syncs wait, and the sync webhook goes out signed.

mod common;
mod sync_support;

use common::Db;
use ferry_server::sync::scheduler::{run_one, run_one_as};
use serde_json::{json, Value};
use sync_support::SyncApp;

async fn a_new_connection_gets_its_syncs_and_run_one_runs_them(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Account", 5, false).await;
    s.seed("Contact", 7, false).await;
    let rows = s
        .app
        .state
        .store
        .list_syncs(s.connection.environment_id, s.connection.id)
        .await
        .expect("list");
    let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "accounts",
            "cases",
            "contacts",
            "leads",
            "opportunities",
            "users"
        ]
    );
    assert!(rows.iter().all(|r| !r.paused && r.next_run_at.is_some()));

    let mut ran = 0;
    while run_one(&s.app.state).await.expect("step") {
        ran += 1;
        assert!(ran <= 6, "each due sync runs once");
    }
    assert_eq!(ran, 6);
    let now = s.app.state.clock.now_ms();
    for row in s
        .app
        .state
        .store
        .list_syncs(s.connection.environment_id, s.connection.id)
        .await
        .expect("list")
    {
        assert_eq!(row.next_run_at, Some(now + 3600 * 1000), "{}", row.name);
        assert_eq!(row.last_run.expect("ran").status, "SUCCESS", "{}", row.name);
    }
    assert_eq!(s.live_payloads("Contact").await.len(), 7);
    assert_eq!(s.live_payloads("Account").await.len(), 5);

    // Nothing is due until the frequency has passed; a paused sync waits even then.
    assert!(!run_one(&s.app.state).await.expect("idle"));
    s.app
        .state
        .store
        .set_syncs_paused(
            s.connection.environment_id,
            s.connection.id,
            &["contacts".to_string()],
            true,
            now,
        )
        .await
        .expect("pause");
    s.advance_secs(3601).await;
    let mut names = Vec::new();
    while let Some((row, _)) = run_one_as(&s.app.state, "w", &Default::default())
        .await
        .expect("step")
    {
        names.push(row.name);
    }
    assert_eq!(names.len(), 5);
    assert!(!names.contains(&"contacts".to_string()));
}
on_both_databases!(
    auto_start,
    a_new_connection_gets_its_syncs_and_run_one_runs_them
);

async fn the_sync_webhook_is_delivered_signed(db: Db) {
    let s = SyncApp::start(db).await;
    // A receiver for the environment's webhook URL.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(axum::http::HeaderMap, String)>();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let env: Value = s
        .app
        .api(reqwest::Method::PATCH, "/ferry/environment")
        .json(&json!({"webhook_url": url}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    let key = env["data"]["webhook_signing_key"]
        .as_str()
        .expect("key")
        .to_string();
    // Drain the connection's auth webhook first.
    while ferry_server::webhooks::run_one(&s.app.state)
        .await
        .expect("step")
        != ferry_server::webhooks::Outcome::Idle
    {}
    while rx.try_recv().is_ok() {}

    s.seed("Contact", 3, false).await;
    s.run("contacts").await;
    assert_eq!(
        ferry_server::webhooks::run_one(&s.app.state)
            .await
            .expect("deliver"),
        ferry_server::webhooks::Outcome::Delivered
    );
    let (headers, body) = rx.recv().await.expect("a webhook");
    assert_eq!(
        headers
            .get("x-nango-hmac-sha256")
            .and_then(|v| v.to_str().ok()),
        Some(ferry_server::webhooks::hmac_signature(&key, body.as_bytes()).as_str())
    );
    let payload: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(payload["type"], "sync");
    assert_eq!(payload["syncName"], "contacts");
    assert_eq!(payload["model"], "Contact");
    assert_eq!(payload["syncVariant"], "base");
    assert_eq!(
        payload["responseResults"],
        json!({"added": 3, "updated": 0, "deleted": 0})
    );
}
on_both_databases!(sync_webhook, the_sync_webhook_is_delivered_signed);
