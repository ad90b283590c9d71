//! `GET /records` on both databases: the cursor pages through everything once and in order, Nango's filters and metadata, strict validation and its error codes, and a deleted connection's records going with it.

mod common;

use common::{Db, TestApp};
use ferry_store::{
    ConnectionRowId, EnvironmentId, NewSync, PageCommit, RecordWrite, SyncId, SyncRunId,
    SyncTrigger,
};
use serde_json::{json, Value};
use std::collections::HashSet;

/// Test syncs are held by this worker for an hour so no scheduler ever runs them.
const OWNER: &str = "records-test";
const LEASE_MS: i64 = 3_600_000;

struct Fixture {
    app: TestApp,
    connection_id: String,
    env: EnvironmentId,
    connection: ConnectionRowId,
    sync: SyncId,
    run: SyncRunId,
}

async fn fixture(db: Db) -> Fixture {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let connection_id = app.connect_org("records-user").await;
    let env = app.state.environment_by_key(&app.dev_key).expect("env").id;
    let connection = app
        .state
        .store
        .get_connection(env, "salesforce", &connection_id)
        .await
        .expect("lookup")
        .expect("connection")
        .id;
    let now = app.state.clock.now_ms();
    let rows = app
        .state
        .store
        .ensure_syncs(
            env,
            connection,
            &[NewSync {
                name: "test-widgets".into(),
                model: "Widget".into(),
                frequency_secs: 3600,
                auto_start: false,
            }],
            now,
        )
        .await
        .expect("ensure");
    let sync = rows
        .iter()
        .find(|s| s.name == "test-widgets")
        .expect("sync")
        .id;
    app.state
        .store
        .claim_sync(sync, OWNER, now, LEASE_MS)
        .await
        .expect("claim")
        .expect("free");
    let run = app
        .state
        .store
        .start_sync_run(sync, OWNER, SyncTrigger::Incremental, now)
        .await
        .expect("start");
    Fixture {
        app,
        connection_id,
        env,
        connection,
        sync,
        run,
    }
}

impl Fixture {
    async fn commit(&self, upserts: &[RecordWrite], deletes: &[String]) {
        self.app
            .state
            .store
            .commit_page(&PageCommit {
                sync: self.sync,
                run: self.run,
                lease_owner: OWNER,
                upserts,
                deletes,
                checkpoint: None,
                now: self.app.state.clock.now_ms(),
            })
            .await
            .expect("commit");
    }

    fn records(&self, query: &str) -> reqwest::RequestBuilder {
        self.app
            .api(reqwest::Method::GET, &format!("/records/?{query}"))
            .header("Connection-Id", &self.connection_id)
            .header("Provider-Config-Key", "salesforce")
    }

    async fn ok(&self, query: &str) -> Value {
        let resp = self.records(query).send().await.expect("records");
        assert_eq!(resp.status(), 200, "{query}");
        resp.json().await.expect("json")
    }

    async fn error(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        let resp = request.send().await.expect("records");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("json");
        (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// Every record through `next_cursor`, `limit` at a time.
    async fn page_through(&self, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("{query}&cursor={c}"),
                None => query.to_owned(),
            };
            let page = self.ok(&q).await;
            all.extend(page["records"].as_array().expect("records").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return all,
            }
        }
    }
}

fn widget(id: &str, version: u32) -> RecordWrite {
    RecordWrite {
        external_id: id.to_owned(),
        payload: json!({"id": "ignored", "name": format!("{id} v{version}"), "size": version}),
        hash: format!("{id}:{version}"),
        payload_text: None,
    }
}

fn ids(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect()
}

async fn paging_with_the_cursor_returns_every_record_once_in_order(db: Db) {
    let f = fixture(db).await;
    for page in 0..3 {
        let writes: Vec<RecordWrite> = (0..40)
            .map(|i| widget(&format!("w{page}{i:02}"), 1))
            .collect();
        f.commit(&writes, &[]).await;
    }
    let updates: Vec<RecordWrite> = (0..5).map(|i| widget(&format!("w0{i:02}"), 2)).collect();
    let deletes: Vec<String> = (5..8).map(|i| format!("w0{i:02}")).collect();
    f.commit(&updates, &deletes).await;

    let all = f.page_through("model=Widget&limit=7").await;
    assert_eq!(all.len(), 120);
    let unique: HashSet<&str> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), 120, "each record once");
    let modified: Vec<&str> = all
        .iter()
        .map(|r| {
            r["_nango_metadata"]["last_modified_at"]
                .as_str()
                .expect("ts")
        })
        .collect();
    let mut sorted = modified.clone();
    sorted.sort();
    assert_eq!(modified, sorted, "ascending last_modified_at");
    let tail = &ids(&all)[112..];
    assert!(
        tail.iter().all(|id| id.starts_with("w0")),
        "the last changes come last: {tail:?}"
    );

    // One page holding everything ends with a null cursor; a full page that is the last one too.
    let one = f.ok("model=Widget&limit=120").await;
    assert_eq!(one["records"].as_array().map(Vec::len), Some(120));
    assert_eq!(one["next_cursor"], Value::Null);
    let first = f.ok("model=Widget&limit=119").await;
    assert!(first["next_cursor"].is_string());
    assert_eq!(
        first["next_cursor"],
        first["records"][118]["_nango_metadata"]["cursor"]
    );

    // The SDK's path has a trailing slash; the plain path works too.
    let plain = f
        .app
        .api(reqwest::Method::GET, "/records?model=Widget&limit=1")
        .header("Connection-Id", &f.connection_id)
        .header("Provider-Config-Key", "salesforce")
        .send()
        .await
        .expect("records");
    assert_eq!(plain.status(), 200);
    let default_limit = f.ok("model=Widget").await;
    assert_eq!(default_limit["records"].as_array().map(Vec::len), Some(100));
}

async fn records_carry_nango_metadata_and_the_filters_select_by_last_action(db: Db) {
    let f = fixture(db).await;
    let writes: Vec<RecordWrite> = (0..10).map(|i| widget(&format!("r{i}"), 1)).collect();
    f.commit(&writes, &[]).await;
    f.app.state.clock.advance_ms(60_000);
    let since = ferry_server::api::iso_z(f.app.state.clock.now_ms());
    f.commit(&[widget("r1", 2), widget("r2", 2)], &["r3".into()])
        .await;

    let added = f.ok("model=Widget&filter=added").await;
    assert_eq!(added["records"].as_array().map(Vec::len), Some(7));
    let updated = f.ok("model=Widget&filter=UPDATED").await;
    assert_eq!(
        ids(updated["records"].as_array().expect("records")),
        ["r1", "r2"]
    );
    let changed = f.ok("model=Widget&filter=updated,deleted").await;
    assert_eq!(changed["records"].as_array().map(Vec::len), Some(3));
    let piped = f.ok("model=Widget&filter=added|deleted").await;
    assert_eq!(piped["records"].as_array().map(Vec::len), Some(8));
    let recent = f.ok(&format!("model=Widget&modified_after={since}")).await;
    assert_eq!(
        ids(recent["records"].as_array().expect("records")),
        ["r1", "r2", "r3"]
    );
    let picked = f.ok("model=Widget&ids=r4&ids=r9&ids=nope").await;
    assert_eq!(
        ids(picked["records"].as_array().expect("records")),
        ["r4", "r9"]
    );

    let deleted = &changed["records"][2];
    assert_eq!(deleted["id"], "r3");
    let meta = &deleted["_nango_metadata"];
    assert_eq!(meta["last_action"], "DELETED");
    assert!(meta["deleted_at"].is_string());
    assert_eq!(meta["pruned_at"], Value::Null);
    let r1 = &updated["records"][0];
    assert_eq!(
        r1["id"], "r1",
        "the external id overwrites the payload's id"
    );
    assert_eq!(r1["name"], "r1 v2");
    assert_eq!(r1["size"], 2);
    let meta = &r1["_nango_metadata"];
    assert_eq!(meta["last_action"], "UPDATED");
    assert_eq!(meta["deleted_at"], Value::Null);
    let first_seen = meta["first_seen_at"].as_str().expect("first seen");
    let modified = meta["last_modified_at"].as_str().expect("modified");
    assert!(first_seen < modified);
    for ts in [first_seen, modified] {
        // Postgres JSON text: microseconds and an offset.
        assert_eq!(ts.len(), "2023-09-18T15:20:35.941305+00:00".len(), "{ts}");
        assert!(ts.ends_with("+00:00"), "{ts}");
    }
    assert!(meta["cursor"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(f.ok("model=Gadget").await["records"]
        .as_array()
        .is_some_and(Vec::is_empty));
}

async fn bad_calls_get_nango_error_codes(db: Db) {
    let f = fixture(db).await;
    f.commit(&[widget("a", 1)], &[]).await;
    let no_connection = f
        .app
        .api(reqwest::Method::GET, "/records/?model=Widget")
        .header("Provider-Config-Key", "salesforce");
    assert_eq!(
        f.error(no_connection).await,
        (400, "invalid_headers".into())
    );
    let no_key = f
        .app
        .api(reqwest::Method::GET, "/records/?model=Widget")
        .header("Connection-Id", &f.connection_id);
    assert_eq!(f.error(no_key).await, (400, "invalid_headers".into()));
    let unknown = f
        .app
        .api(reqwest::Method::GET, "/records/?model=Widget")
        .header("Connection-Id", "nope")
        .header("Provider-Config-Key", "salesforce");
    assert_eq!(f.error(unknown).await, (400, "unknown_connection".into()));
    let wrong_integration = f
        .app
        .api(reqwest::Method::GET, "/records/?model=Widget")
        .header("Connection-Id", &f.connection_id)
        .header("Provider-Config-Key", "salesforce-sandbox");
    assert_eq!(
        f.error(wrong_integration).await,
        (400, "unknown_connection".into())
    );
    for query in [
        "",
        "model=widget",
        "model=Widget&limit=0",
        "model=Widget&limit=10001",
        "model=Widget&filter=created",
        "model=Widget&cursor=not-a-cursor",
        "model=Widget&modified_after=2026-01-01T00:00:00%2B01:00",
        "model=Widget&unknown=1",
    ] {
        assert_eq!(
            f.error(f.records(query)).await,
            (400, "invalid_query_params".into()),
            "{query}"
        );
    }
    let no_auth = f
        .app
        .http
        .get(format!("{}/records/?model=Widget", f.app.url))
        .send()
        .await
        .expect("records");
    assert_eq!(no_auth.status(), 401);
}

async fn a_deleted_connection_takes_its_records_and_syncs_with_it(db: Db) {
    let f = fixture(db).await;
    let writes: Vec<RecordWrite> = (0..5).map(|i| widget(&format!("d{i}"), 1)).collect();
    f.commit(&writes, &[]).await;
    let resp = f
        .app
        .api(
            reqwest::Method::DELETE,
            &format!(
                "/connections/{}?provider_config_key=salesforce",
                f.connection_id
            ),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 200);
    let store = &f.app.state.store;
    assert_eq!(
        store
            .count_records(f.connection, "Widget")
            .await
            .expect("count"),
        (0, 0)
    );
    assert!(store
        .list_syncs(f.env, f.connection)
        .await
        .expect("syncs")
        .is_empty());
    assert_eq!(
        f.error(f.records("model=Widget")).await,
        (400, "unknown_connection".into())
    );
}

on_both_databases!(
    cursor_paging,
    paging_with_the_cursor_returns_every_record_once_in_order
);
on_both_databases!(
    metadata_and_filters,
    records_carry_nango_metadata_and_the_filters_select_by_last_action
);
on_both_databases!(error_codes, bad_calls_get_nango_error_codes);
on_both_databases!(
    prune,
    pruning_empties_payloads_up_to_the_cursor_and_keeps_the_metadata
);
on_both_databases!(
    deleted_connection,
    a_deleted_connection_takes_its_records_and_syncs_with_it
);

async fn pruning_empties_payloads_up_to_the_cursor_and_keeps_the_metadata(db: Db) {
    let f = fixture(db).await;
    let writes: Vec<RecordWrite> = (0..10).map(|i| widget(&format!("r{i}"), 1)).collect();
    f.commit(&writes, &[]).await;
    let page = f.ok("model=Widget&limit=4").await;
    let until = page["records"][3]["_nango_metadata"]["cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let prune = |body: Value| {
        f.app
            .api(reqwest::Method::PATCH, "/records/prune")
            .header("Connection-Id", &f.connection_id)
            .header("Provider-Config-Key", "salesforce")
            .json(&body)
    };
    let resp = prune(json!({"model": "Widget", "until_cursor": until, "limit": 3}))
        .send()
        .await
        .expect("prune");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"count": 3, "has_more": true})
    );
    let resp = prune(json!({"model": "Widget", "variant": "base", "until_cursor": until}))
        .send()
        .await
        .expect("prune");
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"count": 1, "has_more": false})
    );
    let all = f.ok("model=Widget").await;
    let records = all["records"].as_array().expect("records");
    assert_eq!(records.len(), 10, "pruned records stay listed");
    for (i, r) in records.iter().enumerate() {
        let meta = &r["_nango_metadata"];
        if i < 4 {
            let keys: Vec<&String> = r.as_object().expect("object").keys().collect();
            assert_eq!(keys, ["id", "_nango_metadata"], "only id and metadata: {r}");
            assert!(meta["pruned_at"].is_string(), "{r}");
        } else {
            assert!(r["name"].is_string(), "{r}");
            assert!(meta["pruned_at"].is_null(), "{r}");
        }
        assert_eq!(meta["last_action"], "ADDED");
    }
    for (body, code) in [
        (json!({"model": "Widget"}), "invalid_body"),
        (
            json!({"model": "widget", "until_cursor": until}),
            "invalid_body",
        ),
        (
            json!({"model": "Widget", "until_cursor": until, "limit": 0}),
            "invalid_body",
        ),
        (
            json!({"model": "Widget", "until_cursor": until, "extra": 1}),
            "invalid_body",
        ),
        (
            json!({"model": "Widget", "until_cursor": "bm90LWEtY3Vyc29y"}),
            "invalid_body",
        ),
    ] {
        assert_eq!(
            f.error(prune(body.clone())).await,
            (400, code.into()),
            "{body}"
        );
    }
    let unknown = f
        .app
        .api(reqwest::Method::PATCH, "/records/prune")
        .header("Connection-Id", "nobody")
        .header("Provider-Config-Key", "salesforce")
        .json(&json!({"model": "Widget", "until_cursor": until}));
    assert_eq!(f.error(unknown).await, (400, "unknown_connection".into()));
}
