//! Nango's sync control API on both databases: status in Nango's shape through a run's life, start and pause, trigger modes (body, headers, all connections) and frequency changes, with Nango's error codes.

mod common;

use common::{Db, TestApp};
use ferry_store::{
    ConnectionRowId, EnvironmentId, NewSync, PageCommit, RecordWrite, SyncId, SyncRow, SyncTrigger,
};
use futures::FutureExt;
use serde_json::{json, Value};

/// Test syncs are held by this worker for an hour so no scheduler ever runs them.
const OWNER: &str = "sync-api-test";
const LEASE_MS: i64 = 3_600_000;

struct Fixture {
    app: TestApp,
    connection_id: String,
    env: EnvironmentId,
    connection: ConnectionRowId,
}

/// A connection with two test syncs: `test-widgets` (paused, hourly) and `test-gadgets`
/// (started, daily), both leased by [`OWNER`].
async fn fixture(db: Db) -> Fixture {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let connection_id = app.connect_org("sync-user").await;
    let env = app.state.environment_by_key(&app.dev_key).expect("env").id;
    let connection = app
        .state
        .store
        .get_connection(env, "salesforce", &connection_id)
        .await
        .expect("lookup")
        .expect("connection")
        .id;
    let f = Fixture {
        app,
        connection_id,
        env,
        connection,
    };
    f.add_syncs(connection).await;
    f
}

impl Fixture {
    async fn add_syncs(&self, connection: ConnectionRowId) {
        let now = self.app.state.clock.now_ms();
        let rows = self
            .app
            .state
            .store
            .ensure_syncs(
                self.env,
                connection,
                &[
                    NewSync {
                        name: "test-widgets".into(),
                        model: "Widget".into(),
                        frequency_secs: 3600,
                        auto_start: false,
                    },
                    NewSync {
                        name: "test-gadgets".into(),
                        model: "Gadget".into(),
                        frequency_secs: 86_400,
                        auto_start: true,
                    },
                ],
                now,
            )
            .await
            .expect("ensure");
        for row in rows.iter().filter(|r| r.name.starts_with("test-")) {
            self.app
                .state
                .store
                .claim_sync(row.id, OWNER, now, LEASE_MS)
                .await
                .expect("claim")
                .expect("free");
        }
    }

    async fn sync(&self, name: &str) -> SyncRow {
        self.app
            .state
            .store
            .get_sync(self.env, self.connection, name)
            .await
            .expect("get")
            .expect("sync")
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.app.api(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.expect("call");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    async fn status(&self, syncs: &str) -> Vec<Value> {
        let (code, body) = self
            .call(
                reqwest::Method::GET,
                &format!(
                    "/sync/status?syncs={syncs}&provider_config_key=salesforce&connection_id={}",
                    self.connection_id
                ),
                None,
            )
            .await;
        assert_eq!(code, 200, "{body}");
        body["syncs"].as_array().expect("syncs").clone()
    }

    async fn status_of(&self, name: &str) -> Value {
        let all = self.status(name).await;
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    }

    /// Runs `name` to the end through the store, committing `writes`.
    async fn run(&self, name: &str, trigger: SyncTrigger, writes: &[RecordWrite]) {
        let sync: SyncId = self.sync(name).await.id;
        let store = &self.app.state.store;
        let now = self.app.state.clock.now_ms();
        store
            .claim_sync(sync, OWNER, now, LEASE_MS)
            .await
            .expect("claim")
            .or(Some(self.sync(name).await))
            .expect("held");
        let run = store
            .start_sync_run(sync, OWNER, trigger, now)
            .await
            .expect("start");
        let checkpoint = json!({"modstamp": "2026-01-01T00:00:00.000Z"});
        store
            .commit_page(&PageCommit {
                sync,
                run,
                lease_owner: OWNER,
                upserts: writes,
                deletes: &[],
                checkpoint: Some(&checkpoint),
                now,
            })
            .await
            .expect("commit");
        store
            .finish_sync_run(
                sync,
                run,
                OWNER,
                true,
                None,
                Some(now + 3_600_000),
                &[],
                now + 1,
            )
            .await
            .expect("finish");
        // Hold it again so nothing else runs it.
        store
            .claim_sync(sync, OWNER, now + 1, LEASE_MS)
            .await
            .expect("claim")
            .expect("free after finishing");
    }

    fn woken(&self) -> bool {
        self.app
            .state
            .sync_wakeup
            .notified()
            .now_or_never()
            .is_some()
    }
}

fn gadget(id: &str) -> RecordWrite {
    RecordWrite {
        external_id: id.into(),
        payload: json!({"id": id}),
        hash: id.into(),
        payload_text: None,
    }
}

async fn status_follows_a_sync_through_its_runs_in_nangos_shape(db: Db) {
    let f = fixture(db).await;
    let both = f.status("test-widgets,test-gadgets").await;
    assert_eq!(both.len(), 2);
    let widgets = f.status_of("test-widgets").await;
    assert_eq!(widgets["name"], "test-widgets");
    assert_eq!(widgets["variant"], "base");
    assert_eq!(widgets["connection_id"], f.connection_id.as_str());
    assert_eq!(widgets["status"], "PAUSED");
    assert_eq!(widgets["type"], "INITIAL");
    assert_eq!(widgets["frequency"], "every hour");
    assert_eq!(widgets["finishedAt"], Value::Null);
    assert_eq!(widgets["nextScheduledSyncAt"], Value::Null);
    assert_eq!(widgets["latestResult"], Value::Null);
    assert_eq!(widgets["recordCount"], json!({"Widget": 0}));
    assert_eq!(widgets["checkpoint"], Value::Null);
    assert!(widgets["id"].is_string());

    let gadgets = f.status_of("test-gadgets").await;
    assert_eq!(gadgets["status"], "STOPPED", "started but never run");
    assert_eq!(gadgets["frequency"], "every day");
    assert!(gadgets["nextScheduledSyncAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    f.run(
        "test-gadgets",
        SyncTrigger::Incremental,
        &[gadget("g1"), gadget("g2")],
    )
    .await;
    let gadgets = f.status_of("test-gadgets").await;
    assert_eq!(gadgets["status"], "SUCCESS");
    assert_eq!(
        gadgets["type"], "INITIAL",
        "the first run is the initial one"
    );
    assert_eq!(gadgets["latestExecutionStatus"], "SUCCESS");
    assert_eq!(
        gadgets["latestResult"],
        json!({"Gadget": {"added": 2, "updated": 0, "deleted": 0}})
    );
    assert_eq!(gadgets["recordCount"], json!({"Gadget": 2}));
    assert_eq!(
        gadgets["checkpoint"],
        json!({"modstamp": "2026-01-01T00:00:00.000Z"})
    );
    assert!(gadgets["finishedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    f.run("test-gadgets", SyncTrigger::Incremental, &[gadget("g3")])
        .await;
    let gadgets = f.status_of("test-gadgets").await;
    assert_eq!(gadgets["type"], "INCREMENTAL");
    assert_eq!(gadgets["recordCount"], json!({"Gadget": 3}));

    // A run in progress shows as RUNNING.
    let sync = f.sync("test-gadgets").await.id;
    f.app
        .state
        .store
        .start_sync_run(
            sync,
            OWNER,
            SyncTrigger::Incremental,
            f.app.state.clock.now_ms(),
        )
        .await
        .expect("start");
    assert_eq!(f.status_of("test-gadgets").await["status"], "RUNNING");

    let everything = f.status("*").await;
    assert!(everything.len() >= 2);
    assert!(f.status("nope").await.is_empty());
    let (code, body) = f
        .call(
            reqwest::Method::GET,
            "/sync/status?syncs=*&provider_config_key=salesforce&connection_id=nope",
            None,
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (code, body) = f
        .call(
            reqwest::Method::GET,
            "/sync/status?provider_config_key=salesforce",
            None,
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("invalid_query_params"))
    );
    let (code, body) = f
        .call(
            reqwest::Method::GET,
            "/sync/status?syncs=*&provider_config_key=nope",
            None,
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("unknown_provider_config"))
    );
}

async fn start_and_pause_change_what_the_scheduler_may_run(db: Db) {
    let f = fixture(db).await;
    let body = |syncs: Value| json!({"syncs": syncs, "provider_config_key": "salesforce", "connection_id": f.connection_id});
    let (code, resp) = f
        .call(
            reqwest::Method::POST,
            "/sync/start",
            Some(body(json!(["test-widgets"]))),
        )
        .await;
    assert_eq!((code, resp), (200, json!({"success": true})));
    assert!(f.woken(), "starting wakes the scheduler");
    let widgets = f.sync("test-widgets").await;
    assert!(!widgets.paused);
    assert!(widgets.next_run_at.is_some());
    assert_eq!(f.status_of("test-widgets").await["status"], "STOPPED");

    let (code, _) = f
        .call(
            reqwest::Method::POST,
            "/sync/pause",
            Some(body(
                json!([{"name": "test-widgets", "variant": "base"}, "test-gadgets"]),
            )),
        )
        .await;
    assert_eq!(code, 200);
    assert!(f.sync("test-widgets").await.paused);
    assert!(f.sync("test-gadgets").await.paused);
    assert_eq!(f.status_of("test-gadgets").await["status"], "PAUSED");

    let (code, resp) = f
        .call(
            reqwest::Method::POST,
            "/sync/start",
            Some(body(json!(["test-widgets", "nope"]))),
        )
        .await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("no_syncs_found"))
    );
    assert!(f.sync("test-widgets").await.paused, "all or nothing");
    let (code, resp) = f
        .call(
            reqwest::Method::POST,
            "/sync/pause",
            Some(json!({"syncs": ["test-widgets"], "provider_config_key": "salesforce", "connection_id": "nope"})),
        )
        .await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("unknown_connection"))
    );
    let (code, resp) = f
        .call(
            reqwest::Method::POST,
            "/sync/pause",
            Some(json!({"syncs": ["test-widgets"], "provider_config_key": "nope"})),
        )
        .await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("unknown_provider_config"))
    );
    let (code, resp) = f
        .call(
            reqwest::Method::POST,
            "/sync/pause",
            Some(
                json!({"syncs": ["test-widgets"], "provider_config_key": "salesforce", "extra": 1}),
            ),
        )
        .await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
}

async fn trigger_requests_the_asked_mode_and_wakes_the_scheduler(db: Db) {
    let f = fixture(db).await;
    let (code, resp) = f
        .call(
            reqwest::Method::POST,
            "/sync/trigger",
            Some(json!({"syncs": ["test-widgets"], "provider_config_key": "salesforce", "connection_id": f.connection_id, "sync_mode": "full_refresh_and_clear_cache"})),
        )
        .await;
    assert_eq!((code, resp), (200, json!({"success": true})));
    assert!(f.woken());
    let widgets = f.sync("test-widgets").await;
    assert_eq!(widgets.pending, Some(SyncTrigger::FullRefreshAndClear));
    assert!(widgets.paused, "a trigger does not unpause");

    // Keys from the headers; the legacy boolean.
    let resp = f
        .app
        .api(reqwest::Method::POST, "/sync/trigger")
        .header("Provider-Config-Key", "salesforce")
        .header("Connection-Id", &f.connection_id)
        .json(&json!({"syncs": [{"name": "test-gadgets"}], "full_resync": true}))
        .send()
        .await
        .expect("trigger");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        f.sync("test-gadgets").await.pending,
        Some(SyncTrigger::FullRefresh)
    );

    let trigger = |body: Value| f.call(reqwest::Method::POST, "/sync/trigger", Some(body));
    let (code, resp) = trigger(json!({"syncs": ["test-gadgets"], "provider_config_key": "salesforce", "connection_id": f.connection_id, "opts": {"reset": true}, "sync_mode": "incremental"})).await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (code, resp) =
        trigger(json!({"syncs": ["test-gadgets"], "connection_id": f.connection_id})).await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("missing_provider_config_key"))
    );
    let (code, resp) = trigger(json!({"syncs": ["nope"], "provider_config_key": "salesforce", "connection_id": f.connection_id})).await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("no_syncs_found"))
    );
    let (code, resp) = trigger(json!({"syncs": ["test-gadgets"], "provider_config_key": "salesforce", "connection_id": "nope"})).await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("unknown_connection"))
    );
    let (code, resp) = trigger(json!({"syncs": ["test-gadgets"], "provider_config_key": "nope", "connection_id": f.connection_id})).await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("unknown_provider_config"))
    );
    let (code, resp) = f
        .call(
            reqwest::Method::POST,
            "/sync/trigger?x=1",
            Some(json!({"syncs": [], "provider_config_key": "salesforce"})),
        )
        .await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("invalid_query_params"))
    );

    // Without a connection id: every connection of the integration; `opts.emptyCache` clears.
    let other_id = f.app.connect_org("sync-user-2").await;
    let other = f
        .app
        .state
        .store
        .get_connection(f.env, "salesforce", &other_id)
        .await
        .expect("lookup")
        .expect("connection")
        .id;
    f.add_syncs(other).await;
    let (code, _) = trigger(json!({"syncs": ["test-widgets"], "provider_config_key": "salesforce", "opts": {"emptyCache": true}})).await;
    assert_eq!(code, 200);
    let other_widgets = f
        .app
        .state
        .store
        .get_sync(f.env, other, "test-widgets")
        .await
        .expect("get")
        .expect("sync");
    assert_eq!(
        other_widgets.pending,
        Some(SyncTrigger::FullRefreshAndClear)
    );
}

async fn the_frequency_of_one_connections_sync_can_be_changed_and_reverted(db: Db) {
    let f = fixture(db).await;
    let body = |frequency: Value| json!({"sync_name": "test-widgets", "provider_config_key": "salesforce", "connection_id": f.connection_id, "frequency": frequency});
    let (code, resp) = f
        .call(
            reqwest::Method::PUT,
            "/sync/update-connection-frequency",
            Some(body(json!("every 30 minutes"))),
        )
        .await;
    assert_eq!(
        (code, resp),
        (200, json!({"frequency": "every 30 minutes"}))
    );
    assert_eq!(f.sync("test-widgets").await.frequency_secs, 1800);
    assert_eq!(
        f.status_of("test-widgets").await["frequency"],
        "every 30 minutes"
    );

    let (code, resp) = f
        .call(
            reqwest::Method::PUT,
            "/sync/update-connection-frequency",
            Some(body(Value::Null)),
        )
        .await;
    assert_eq!((code, resp), (200, json!({"frequency": "every hour"})));
    assert_eq!(f.sync("test-widgets").await.frequency_secs, 3600);

    for bad in [json!("10s"), json!("whenever"), json!(5)] {
        let (code, resp) = f
            .call(
                reqwest::Method::PUT,
                "/sync/update-connection-frequency",
                Some(body(bad.clone())),
            )
            .await;
        assert_eq!(
            (code, resp["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{bad}"
        );
    }
    let (code, resp) = f
        .call(
            reqwest::Method::PUT,
            "/sync/update-connection-frequency",
            Some(json!({"sync_name": "nope", "provider_config_key": "salesforce", "connection_id": f.connection_id, "frequency": "1h"})),
        )
        .await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("unknown_sync"))
    );
    let (code, resp) = f
        .call(
            reqwest::Method::PUT,
            "/sync/update-connection-frequency",
            Some(json!({"sync_name": "test-widgets", "provider_config_key": "salesforce", "connection_id": "nope", "frequency": "1h"})),
        )
        .await;
    assert_eq!(
        (code, resp["error"]["code"].as_str()),
        (400, Some("unknown_connection"))
    );
}

on_both_databases!(
    status,
    status_follows_a_sync_through_its_runs_in_nangos_shape
);
on_both_databases!(
    start_pause,
    start_and_pause_change_what_the_scheduler_may_run
);
on_both_databases!(
    trigger,
    trigger_requests_the_asked_mode_and_wakes_the_scheduler
);
on_both_databases!(
    frequency,
    the_frequency_of_one_connections_sync_can_be_changed_and_reverted
);
