//! Shared set-up of the sync tests: a connected org with clocks frozen together, emulator admin calls, running one named sync as a given owner, and the emulator's ground truth mapped like Ferry maps it.

#![allow(dead_code)]

use crate::common::{Db, TestApp};
use ferry_salesforce::query::QueryPager;
use ferry_salesforce::transport::{latest_version, StaticTransport};
use ferry_server::sync::engine::{run_sync, RunOptions, RunReport};
use ferry_server::sync::{SyncDefinition, SyncSettings};
use ferry_store::{Connection, RecordAction, RecordQuery, StoredRecord, SyncRow};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// 2026-01-05T00:00:00Z: both clocks start here (a minute boundary, so `getDeleted` windows are exact).
pub const T0_MS: i64 = 1_767_571_200_000;

/// A Ferry with one connection to the emulator's Acme org.
pub struct SyncApp {
    pub app: TestApp,
    pub connection: Connection,
    pub settings: SyncSettings,
    pub sf: StaticTransport,
}

impl SyncApp {
    /// Ferry and the emulator on `db`, clocks frozen at [`T0_MS`], one connection.
    pub async fn start(db: Db) -> SyncApp {
        SyncApp::start_with(db, |_| {}).await
    }

    /// Like [`SyncApp::start`] with a configuration change.
    pub async fn start_with(
        db: Db,
        change: impl FnOnce(&mut ferry_server::config::Config),
    ) -> SyncApp {
        let app = TestApp::spawn_with(db, change).await;
        app.state.clock.freeze_at(T0_MS);
        let sync_app_http = reqwest::Client::new();
        let resp = sync_app_http
            .post(format!("{}/__emulator/clock", app.emulator.production_url))
            .json(&json!({"set": "2026-01-05T00:00:00Z", "freeze": true}))
            .send()
            .await
            .expect("clock");
        assert!(resp.status().is_success());
        app.create_integrations().await;
        let connection_id = app.connect_org("sync-user").await;
        let env = app
            .state
            .store
            .list_environments()
            .await
            .expect("envs")
            .into_iter()
            .find(|e| e.name == "dev")
            .expect("dev");
        let connection = app
            .state
            .store
            .get_connection(env.id, "salesforce", &connection_id)
            .await
            .expect("get")
            .expect("connection");
        let minted: Value = sync_app_http
            .post(format!(
                "{}/__emulator/orgs/Acme/tokens",
                app.emulator.production_url
            ))
            .json(&json!({}))
            .send()
            .await
            .expect("mint")
            .json()
            .await
            .expect("json");
        let sf = StaticTransport {
            http: sync_app_http,
            instance_url: minted["instance_url"].as_str().expect("url").to_string(),
            access_token: minted["access_token"].as_str().expect("token").to_string(),
        };
        let settings = app.state.config.sync.clone();
        SyncApp {
            app,
            connection,
            settings,
            sf,
        }
    }

    /// An emulator admin call; panics unless it succeeds.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .app
            .http
            .request(
                method,
                format!("{}/__emulator{path}", self.app.emulator.production_url),
            )
            .json(&body)
            .send()
            .await
            .expect("admin");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Seeds `n` records of `object`.
    pub async fn seed(&self, object: &str, n: usize, same_stamp: bool) {
        self.admin(
            reqwest::Method::POST,
            "/orgs/Acme/seed",
            json!({"counts": {object: n}, "same_systemmodstamp": same_stamp}),
        )
        .await;
    }

    /// Moves both clocks forward.
    pub async fn advance_secs(&self, secs: i64) {
        self.app.state.clock.advance_ms(secs * 1000);
        self.admin(
            reqwest::Method::POST,
            "/clock",
            json!({"advance_secs": secs}),
        )
        .await;
    }

    /// The connection's sync row `name`.
    pub async fn sync_row(&self, name: &str) -> SyncRow {
        self.app
            .state
            .store
            .get_sync(self.connection.environment_id, self.connection.id, name)
            .await
            .expect("get_sync")
            .expect("the sync exists")
    }

    /// Claims `name` as `owner` (ignoring due-ness) and runs it with the test's settings.
    pub async fn run_as(&self, name: &str, owner: &str, options: &RunOptions) -> RunReport {
        let row = self.sync_row(name).await;
        let now = self.app.state.clock.now_ms();
        let claimed = self
            .app
            .state
            .store
            .claim_sync(row.id, owner, now, self.settings.lease_ms)
            .await
            .expect("claim")
            .expect("the sync is free");
        run_sync(&self.app.state, &self.settings, &claimed, owner, options)
            .await
            .expect("the run ends")
    }

    /// Runs `name` once as the default test owner.
    pub async fn run(&self, name: &str) -> RunReport {
        self.run_as(name, "test-worker", &RunOptions::default())
            .await
    }

    /// Every stored record of `model` (deleted ones included), by external id.
    pub async fn stored(&self, model: &str) -> BTreeMap<String, StoredRecord> {
        let mut out = BTreeMap::new();
        let mut cursor = None;
        loop {
            let page = self
                .app
                .state
                .store
                .list_records(
                    self.connection.environment_id,
                    self.connection.id,
                    &RecordQuery {
                        model: model.to_string(),
                        cursor: cursor.clone(),
                        modified_after: None,
                        actions: Vec::new(),
                        ids: Vec::new(),
                        limit: 5000,
                    },
                )
                .await
                .expect("list_records");
            let Some(last) = page.last() else { break };
            cursor = Some(last.cursor.clone());
            for r in page {
                out.insert(r.external_id.clone(), r);
            }
        }
        out
    }

    /// Live stored payloads of `model`, by id.
    pub async fn live_payloads(&self, model: &str) -> BTreeMap<String, Value> {
        self.stored(model)
            .await
            .into_iter()
            .filter(|(_, r)| r.deleted_at.is_none())
            .map(|(k, r)| (k, r.payload))
            .collect()
    }

    /// The emulator's live records of `def.object`, read over REST and mapped like Ferry maps them.
    pub async fn ground_truth(&self, def: &SyncDefinition) -> BTreeMap<String, Value> {
        let version = latest_version(&self.sf).await.expect("version");
        let soql = format!(
            "SELECT {} FROM {}",
            def.soql_fields().join(", "),
            def.object
        );
        let mut pager = QueryPager::new(&self.sf, &version, &soql, false, 2000);
        let mut out = BTreeMap::new();
        while let Some(page) = pager.next_page().await.expect("page") {
            for r in page.records {
                let id = r["Id"].as_str().expect("id").to_string();
                out.insert(id, def.map_record(&r));
            }
        }
        out
    }

    /// The first `n` ids of `object` in the emulator (by Id).
    pub async fn ids(&self, object: &str, n: usize) -> Vec<String> {
        let version = latest_version(&self.sf).await.expect("version");
        let soql = format!("SELECT Id FROM {object} ORDER BY Id LIMIT {n}");
        let mut pager = QueryPager::new(&self.sf, &version, &soql, false, 2000);
        let mut out = Vec::new();
        while let Some(page) = pager.next_page().await.expect("page") {
            out.extend(
                page.records
                    .iter()
                    .map(|r| r["Id"].as_str().expect("id").to_string()),
            );
        }
        out
    }

    /// Queued webhooks of the connection's environment, oldest first.
    pub async fn webhooks(&self) -> Vec<Value> {
        let mut list = self
            .app
            .state
            .store
            .list_webhooks(self.connection.environment_id, 1000)
            .await
            .expect("webhooks");
        list.reverse();
        list.into_iter().map(|w| w.payload).collect()
    }

    /// Queued sync webhooks for `sync` only.
    pub async fn sync_webhooks(&self, sync: &str) -> Vec<Value> {
        self.webhooks()
            .await
            .into_iter()
            .filter(|w| w["type"] == "sync" && w["syncName"] == sync)
            .collect()
    }

    /// How many stored records of `model` have this last action.
    pub async fn count_action(&self, model: &str, action: RecordAction) -> usize {
        self.stored(model)
            .await
            .values()
            .filter(|r| r.last_action == action)
            .count()
    }
}
