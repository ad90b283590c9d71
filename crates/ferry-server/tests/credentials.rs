//! The token lifecycle on both databases (and two Ferry processes on Postgres): learned expiry without introspection on reads, one refresh for many concurrent callers, rotation without family revocations, classified failures, instance moves, and a dead lease holder.

mod common;

use common::{Db, TestApp};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

fn refreshes(stats: &Value) -> (u64, u64) {
    let r = &stats["token_requests"]["refresh_token"];
    (
        r["ok"].as_u64().unwrap_or(0),
        r["failed"].as_u64().unwrap_or(0),
    )
}

async fn get(app_url: &str, key: &str, id: &str, extra: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!(
            "{app_url}/connections/{id}?provider_config_key=salesforce{extra}"
        ))
        .bearer_auth(key)
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn reads_use_the_learned_expiry_without_introspecting(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("lifecycle").await;
    let after_connect = app.emulator_stats().await;
    assert_eq!(
        after_connect["introspections"], 1,
        "one introspection learns the expiry"
    );
    let (_, full) = get(&app.url, &app.dev_key, &id, "").await;
    let expires = full["credentials"]["expires_at"]
        .as_str()
        .expect("expires_at learned");
    let expires = chrono::DateTime::parse_from_rfc3339(expires)
        .expect("iso")
        .timestamp();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (expires - now - 7200).abs() < 120,
        "about two hours away: {expires} vs {now}"
    );
    for _ in 0..100 {
        let (status, _) = get(&app.url, &app.dev_key, &id, "").await;
        assert_eq!(status, 200);
    }
    let stats = app.emulator_stats().await;
    assert_eq!(
        stats["introspections"], 1,
        "no introspection on the request path"
    );
    assert_eq!(refreshes(&stats), (0, 0));
}
on_both_databases!(
    reads_use_the_learned_expiry_without_introspecting,
    reads_use_the_learned_expiry_without_introspecting
);

async fn many_concurrent_callers_share_one_refresh_under_rotation(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    // Rotation on and 2-second tokens. The emulator's clock and both Ferry processes' clocks
    // stand still at one instant and move together, 3 s per period: each period starts with
    // an expired token, and then 200 callers arrive at once, half on each process.
    app.app_policy(json!({"refresh_token_rotation": true, "access_token_ttl_secs": 2}))
        .await;
    let start = chrono::Utc::now().timestamp();
    let frozen = app
        .http
        .post(format!("{}/__emulator/clock", app.emulator.production_url))
        .json(&json!({"set": chrono::DateTime::from_timestamp(start, 0).expect("time").to_rfc3339(), "freeze": true}))
        .send()
        .await
        .expect("clock");
    assert!(frozen.status().is_success());
    app.state.clock.freeze_at(start * 1000);
    let id = app.connect_org("lifecycle").await;
    let (peer_url, peer) = app.spawn_peer().await;
    peer.clock.freeze_at(start * 1000);
    for period in 1..=10u64 {
        let advanced = app
            .http
            .post(format!("{}/__emulator/clock", app.emulator.production_url))
            .json(&json!({"advance_secs": 3}))
            .send()
            .await
            .expect("clock");
        assert!(advanced.status().is_success());
        app.state.clock.advance_ms(3_000);
        peer.clock.advance_ms(3_000);
        let calls = (0..200).map(|n| {
            let url = if n % 2 == 0 {
                app.url.clone()
            } else {
                peer_url.clone()
            };
            let key = app.dev_key.clone();
            let id = id.clone();
            async move { get(&url, &key, &id, "").await }
        });
        let results = join_all(calls).await;
        assert!(
            results.iter().all(|(s, _)| *s == 200),
            "every call succeeds: {:?}",
            results.iter().find(|(s, _)| *s != 200)
        );
        let tokens: std::collections::BTreeSet<&str> = results
            .iter()
            .filter_map(|(_, v)| v["credentials"]["access_token"].as_str())
            .collect();
        assert_eq!(
            tokens.len(),
            1,
            "all callers of one period see the same token"
        );
        let stats = app.emulator_stats().await;
        assert_eq!(
            refreshes(&stats),
            (period, 0),
            "exactly one refresh per period"
        );
        assert_eq!(stats["family_revocations"], 0);
    }
}

on_both_databases!(
    many_concurrent_callers_share_one_refresh_under_rotation,
    many_concurrent_callers_share_one_refresh_under_rotation
);

async fn a_revoked_grant_marks_the_connection_once_and_stops_trying(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("lifecycle").await;
    let revoke = app
        .http
        .post(format!(
            "{}/__emulator/orgs/Acme/revoke-tokens",
            app.emulator.production_url
        ))
        .send()
        .await
        .expect("revoke");
    assert!(revoke.status().is_success());
    let (status, err) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_credentials");
    assert_eq!(
        err["error"]["payload"]["connection"]["credentials"],
        json!({})
    );
    let before = refreshes(&app.emulator_stats().await);
    for _ in 0..50 {
        let (status, err) = get(&app.url, &app.dev_key, &id, "").await;
        assert_eq!(status, 424, "{err}");
    }
    // A thousand calls through the proxy afterwards: refused by Ferry, no token endpoint call.
    let calls = (0..1000).map(|_| {
        app.api(Method::GET, "/proxy/services/data/v59.0/limits")
            .header("Connection-Id", &id)
            .header("Provider-Config-Key", "salesforce")
            .send()
    });
    for resp in join_all(calls).await {
        assert_eq!(resp.expect("proxy").status(), 424);
    }
    assert_eq!(
        refreshes(&app.emulator_stats().await),
        before,
        "no token calls for a dead grant"
    );
    let list: Value = app
        .api(Method::GET, "/connections")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["connections"][0]["errors"][0]["type"], "auth");
    let env = app.state.environment_by_key(&app.dev_key).expect("env");
    let hooks = app
        .state
        .store
        .list_webhooks(env.id, 10)
        .await
        .expect("hooks");
    let failures: Vec<_> = hooks
        .iter()
        .filter(|h| h.payload["operation"] == "refresh")
        .collect();
    assert_eq!(failures.len(), 1, "exactly one webhook");
    assert_eq!(failures[0].payload["success"], false);
    assert_eq!(failures[0].payload["error"]["type"], "invalid_grant");
}
on_both_databases!(
    a_revoked_grant_marks_the_connection_once_and_stops_trying,
    a_revoked_grant_marks_the_connection_once_and_stops_trying
);

async fn outages_are_transient_and_recovery_is_announced(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("lifecycle").await;
    let fault = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"method": "POST", "path_prefix": "/services/oauth2/token", "status": 503, "body": "down", "count": 1}))
        .send()
        .await
        .expect("fault");
    assert!(fault.status().is_success());
    let (status, err) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 424, "{err}");
    let (status, _) = get(&app.url, &app.dev_key, &id, "").await;
    assert_eq!(
        status, 200,
        "a short outage does not break reads of a valid token"
    );
    let (status, _) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 200);
    let env = app.state.environment_by_key(&app.dev_key).expect("env");
    let hooks = app
        .state
        .store
        .list_webhooks(env.id, 10)
        .await
        .expect("hooks");
    let refresh_hooks: Vec<_> = hooks
        .iter()
        .filter(|h| h.payload["operation"] == "refresh")
        .collect();
    assert_eq!(
        refresh_hooks.len(),
        1,
        "no alarm for the outage, one recovery"
    );
    assert_eq!(refresh_hooks[0].payload["success"], true);
}
on_both_databases!(
    outages_are_transient_and_recovery_is_announced,
    outages_are_transient_and_recovery_is_announced
);

async fn instance_url_follows_an_org_move(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("lifecycle").await;
    let moved: Value = app
        .http
        .post(format!(
            "{}/__emulator/orgs/Acme/migrate",
            app.emulator.production_url
        ))
        .send()
        .await
        .expect("migrate")
        .json()
        .await
        .expect("json");
    let (status, full) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(
        full["connection_config"]["instance_url"],
        moved["instance_url"]
    );
    assert_eq!(
        full["connection_config"]["instance_url"],
        app.emulator.instance2_url.as_str()
    );
}
on_both_databases!(
    instance_url_follows_an_org_move,
    instance_url_follows_an_org_move
);

async fn a_lease_left_by_a_dead_process_lapses_and_another_refreshes(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("lifecycle").await;
    let env = app.state.environment_by_key(&app.dev_key).expect("env");
    let connection = app
        .state
        .store
        .get_connection(env.id, "salesforce", &id)
        .await
        .expect("get")
        .expect("exists");
    // A process that took the lease and died: it holds it for 300 ms.
    let now = chrono::Utc::now().timestamp_millis();
    let fence = app
        .state
        .store
        .acquire_refresh_lease(connection.id, "dead-process", now, 300)
        .await
        .expect("lease");
    assert!(fence.is_some());
    let (status, full) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(refreshes(&app.emulator_stats().await), (1, 0));
    // The dead process's late write (stale fence) cannot overwrite the newer credentials.
    let stale = app
        .state
        .store
        .update_credentials(
            connection.id,
            b"stale",
            None,
            None,
            fence,
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        .expect("write");
    assert!(!stale);
}
on_both_databases!(
    a_lease_left_by_a_dead_process_lapses_and_another_refreshes,
    a_lease_left_by_a_dead_process_lapses_and_another_refreshes
);

async fn during_an_outage_a_still_valid_token_keeps_working_and_the_endpoint_is_not_hammered(
    db: Db,
) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    app.app_policy(json!({"access_token_ttl_secs": 10})).await;
    let id = app.connect_org("outage").await;
    let (_, before) = get(&app.url, &app.dev_key, &id, "").await;
    let token = before["credentials"]["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    // Eight seconds on: inside the refresh margin, not yet expired.
    app.http
        .post(format!("{}/__emulator/clock", app.emulator.production_url))
        .json(&json!({"advance_secs": 8}))
        .send()
        .await
        .expect("clock");
    app.state.clock.advance_ms(8_000);
    app.http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"method": "POST", "path_prefix": "/services/oauth2/token", "status": 503, "body": "down"}))
        .send()
        .await
        .expect("fault");
    for _ in 0..20 {
        let (status, full) = get(&app.url, &app.dev_key, &id, "").await;
        assert_eq!(status, 200, "{full}");
        assert_eq!(full["credentials"]["access_token"], token.as_str());
    }
    let token_calls = |stats: &Value| {
        stats["api_requests"]["by_path"]["/services/oauth2/token"]
            .as_u64()
            .unwrap_or(0)
    };
    let stats = app.emulator_stats().await;
    let during = token_calls(&stats);
    // The connect's code exchange was one call; the outage adds exactly one attempt.
    assert_eq!(during, 2, "one attempt, then backoff: {stats}");
    let list: Value = app
        .api(Method::GET, "/connections")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["connections"][0]["errors"][0]["transient"], true,
        "visible, but not needs_reauth"
    );
    // The outage ends; after the backoff the next call refreshes and recovery is announced.
    app.http
        .delete(format!("{}/__emulator/faults", app.emulator.production_url))
        .send()
        .await
        .expect("clear");
    app.state.clock.advance_ms(1_500);
    let (status, full) = get(&app.url, &app.dev_key, &id, "").await;
    assert_eq!(status, 200, "{full}");
    assert_ne!(full["credentials"]["access_token"], token.as_str());
    let stats = app.emulator_stats().await;
    assert_eq!(token_calls(&stats), 3);
    assert_eq!(refreshes(&stats), (1, 0));
    let env = app.state.environment_by_key(&app.dev_key).expect("env");
    let hooks = app
        .state
        .store
        .list_webhooks(env.id, 10)
        .await
        .expect("hooks");
    let refresh_hooks: Vec<_> = hooks
        .iter()
        .filter(|h| h.payload["operation"] == "refresh")
        .collect();
    assert_eq!(refresh_hooks.len(), 1);
    assert_eq!(refresh_hooks[0].payload["success"], true);
}
on_both_databases!(
    during_an_outage_a_still_valid_token_keeps_working_and_the_endpoint_is_not_hammered,
    during_an_outage_a_still_valid_token_keeps_working_and_the_endpoint_is_not_hammered
);

async fn the_background_refresher_renews_expiring_and_idle_connections(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("background").await;
    let pass = ferry_server::refresher::run_one(&app.state)
        .await
        .expect("pass");
    assert_eq!(
        (pass.checked, pass.refreshed),
        (1, 0),
        "a fresh token is left alone"
    );
    // Thirteen hours later the two-hour token has expired and the connection is idle.
    app.http
        .post(format!("{}/__emulator/clock", app.emulator.production_url))
        .json(&json!({"advance_secs": 13 * 3_600}))
        .send()
        .await
        .expect("clock");
    app.state.clock.advance_ms(13 * 3_600_000);
    let pass = ferry_server::refresher::run_one(&app.state)
        .await
        .expect("pass");
    assert_eq!(pass.refreshed, 1);
    assert_eq!(refreshes(&app.emulator_stats().await), (1, 0));
    let (_, full) = get(&app.url, &app.dev_key, &id, "").await;
    assert!(full["credentials"]["access_token"].as_str().is_some());
    let pass = ferry_server::refresher::run_one(&app.state)
        .await
        .expect("pass");
    assert_eq!(pass.refreshed, 0, "nothing left to do");
}
on_both_databases!(
    the_background_refresher_renews_expiring_and_idle_connections,
    the_background_refresher_renews_expiring_and_idle_connections
);

async fn a_refresh_already_being_processed_is_waited_out(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("busy").await;
    let fault = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"method": "POST", "path_prefix": "/services/oauth2/token", "status": 400,
            "body": {"error": "invalid_grant", "error_description": "token request is already being processed"}, "count": 1}))
        .send()
        .await
        .expect("fault");
    assert!(fault.status().is_success());
    let (status, full) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(full["errors"], json!([]), "not needs_reauth");
    assert_eq!(refreshes(&app.emulator_stats().await), (1, 0));
}
on_both_databases!(
    a_refresh_already_being_processed_is_waited_out,
    a_refresh_already_being_processed_is_waited_out
);

async fn a_refresh_that_names_another_org_is_refused(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("swapped").await;
    let other = format!(
        "{}/id/00D5g0000009ZZZEAA/0055g0000009ZZZAAA",
        app.emulator.production_url
    );
    let issued_at = "1700000000000";
    let body = json!({
        "access_token": "00D5g0000009ZZZ!forged",
        "signature": ferry_salesforce::oauth::sign("ferry-demo-secret", &other, issued_at),
        "scope": "api refresh_token",
        "instance_url": app.emulator.production_url,
        "id": other,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    let fault = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"method": "POST", "path_prefix": "/services/oauth2/token", "status": 200, "body": body, "count": 1}))
        .send()
        .await
        .expect("fault");
    assert!(fault.status().is_success());
    let (status, err) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("different org"),
        "{err}"
    );
    let (_, still) = get(&app.url, &app.dev_key, &id, "").await;
    assert_ne!(
        still["credentials"]["access_token"],
        "00D5g0000009ZZZ!forged"
    );
}
on_both_databases!(
    a_refresh_that_names_another_org_is_refused,
    a_refresh_that_names_another_org_is_refused
);

async fn a_refresh_whose_caller_gives_up_still_commits_the_rotated_token(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    app.app_policy(json!({"refresh_token_rotation": true}))
        .await;
    let id = app.connect_org("impatient").await;
    // Salesforce rotates the refresh token at once but answers only 1.5 s later; the caller
    // gives up after 200 ms.
    let fault = app
        .http
        .post(format!("{}/__emulator/faults", app.emulator.production_url))
        .json(&json!({"method": "POST", "path_prefix": "/services/oauth2/token", "answer_delay_ms": 1500, "count": 1}))
        .send()
        .await
        .expect("fault");
    assert!(fault.status().is_success());
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(200))
        .build()
        .expect("client");
    let gave_up = impatient
        .get(format!(
            "{}/connections/{id}?provider_config_key=salesforce&force_refresh=true",
            app.url
        ))
        .bearer_auth(&app.dev_key)
        .send()
        .await;
    assert!(gave_up.is_err(), "the caller gave up");
    // The next forced refresh waits for the one under way (its lease) or uses the rotated
    // token it committed; either way the token family survives.
    let (status, body) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&app.url, &app.dev_key, &id, "&force_refresh=true").await;
    assert_eq!(status, 200, "{body}");
    let stats = app.emulator_stats().await;
    assert_eq!(stats["family_revocations"], 0, "{stats}");
    assert_eq!(refreshes(&stats).1, 0, "no refused refresh: {stats}");
}
on_both_databases!(
    a_refresh_whose_caller_gives_up_still_commits_the_rotated_token,
    a_refresh_whose_caller_gives_up_still_commits_the_rotated_token
);
