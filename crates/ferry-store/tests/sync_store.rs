//! Conformance of the sync and record ports on both backends: leases, page commits and their
//! counting rule, the keyset records listing, cascades and webhooks queued with the run's end.

use std::collections::HashSet;
use std::sync::Arc;

use ferry_store::testing::TestPostgres;
use ferry_store::{
    connect, ConnectionRowId, EnvironmentId, NewConnection, NewIntegration, NewSync, PageCommit,
    PageOutcome, RecordAction, RecordQuery, RecordWrite, Store, StoreError, SyncId, SyncRunId,
    SyncTrigger,
};
use serde_json::{json, Value};

/// A migrated store on a fresh SQLite file or PostgreSQL database; both go away on drop.
struct Db {
    store: Arc<dyn Store>,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<TestPostgres>,
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("ferry.db").display()
        );
        let store = connect(&url).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        Self {
            store,
            _sqlite: Some(dir),
            _postgres: None,
        }
    }

    async fn postgres() -> Self {
        let db = TestPostgres::create().await.expect("create test database");
        let store = connect(&db.url).await.expect("open postgres");
        store.migrate().await.expect("migrate postgres");
        Self {
            store,
            _sqlite: None,
            _postgres: Some(db),
        }
    }
}

/// Instantiates each listed test once per backend.
macro_rules! on_both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = super::Db::sqlite().await;
                    super::$test(db.store.clone()).await;
                    db.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = super::Db::postgres().await;
                    super::$test(db.store.clone()).await;
                    db.store.close().await;
                }
            )*
        }
    };
}

on_both!(
    ensuring_syncs_twice_keeps_the_first_rows_and_new_ones_start_paused_unless_auto_started,
    a_due_sync_is_held_by_one_worker_even_when_many_claim_at_once,
    a_worker_whose_lease_was_taken_over_can_neither_commit_nor_finish,
    a_page_counts_added_updated_unchanged_resurrected_and_deleted_records,
    paging_with_the_cursor_returns_every_record_once_in_order_and_filters_apply,
    a_write_after_a_reader_passed_the_same_millisecond_is_still_seen,
    full_refresh_resets_the_checkpoint_and_full_refresh_and_clear_deletes_the_records,
    deleting_the_connection_removes_its_syncs_runs_and_records,
    finishing_a_run_releases_the_lease_schedules_the_next_and_queues_webhooks,
    pause_start_trigger_and_frequency_change_the_schedule,
    written_back_records_follow_the_hash_rule,
    live_ids_are_listed_in_byte_order_for_reconciliation,
    a_page_of_nine_thousand_records_and_unknown_deletes_commits_whole,
    pruning_empties_payloads_up_to_the_cursor_in_batches_and_a_change_restores_one,
);

const NOW: i64 = 1_700_000_000_000;
const LEASE: i64 = 60_000;

/// An environment with one Salesforce connection.
async fn connection(store: &Arc<dyn Store>, env_name: &str) -> (EnvironmentId, ConnectionRowId) {
    let env = store
        .ensure_environment(env_name, &format!("secret-{env_name}"), "sign", NOW)
        .await
        .expect("environment");
    let integration = store
        .create_integration(
            env.id,
            &NewIntegration {
                unique_key: "sf".into(),
                provider: "salesforce".into(),
                display_name: "Salesforce".into(),
                client_id: None,
                scopes: None,
            },
            None,
            NOW,
        )
        .await
        .expect("integration");
    let (connection, _) = store
        .upsert_connection(
            env.id,
            &NewConnection {
                integration_id: integration.id,
                connection_id: "c1".into(),
                provider: "salesforce".into(),
                connection_config: json!({}),
                metadata: None,
                tags: json!({}),
                end_user: None,
                end_user_id: None,
                expires_at: None,
                sf_org_id: None,
                sf_user_id: None,
                reconnect: None,
                existing: Default::default(),
                webhook_url_override: None,
                auth_webhook: None,
            },
            &|_| Ok(b"creds".to_vec()),
            NOW,
        )
        .await
        .expect("connection");
    (env.id, connection.id)
}

fn contacts(auto_start: bool) -> Vec<NewSync> {
    vec![
        NewSync {
            name: "contacts".into(),
            model: "Contact".into(),
            frequency_secs: 3600,
            auto_start,
        },
        NewSync {
            name: "accounts".into(),
            model: "Account".into(),
            frequency_secs: 86_400,
            auto_start: false,
        },
    ]
}

fn record(id: &str, version: u32) -> RecordWrite {
    let payload = json!({"id": id, "name": format!("{id} v{version}")});
    RecordWrite {
        external_id: id.to_owned(),
        hash: format!("{id}-{version}"),
        payload,
        payload_text: None,
    }
}

/// A connection with a claimed `contacts` sync and a running incremental run.
async fn running(store: &Arc<dyn Store>) -> (EnvironmentId, ConnectionRowId, SyncId, SyncRunId) {
    let (env, conn) = connection(store, "dev").await;
    let syncs = store
        .ensure_syncs(env, conn, &contacts(true), NOW)
        .await
        .expect("ensure");
    let sync = syncs
        .iter()
        .find(|s| s.name == "contacts")
        .expect("contacts")
        .id;
    store
        .claim_sync(sync, "w1", NOW, LEASE)
        .await
        .expect("claim")
        .expect("free");
    let run = store
        .start_sync_run(sync, "w1", SyncTrigger::Incremental, NOW)
        .await
        .expect("start");
    (env, conn, sync, run)
}

fn page<'a>(
    sync: SyncId,
    run: SyncRunId,
    upserts: &'a [RecordWrite],
    deletes: &'a [String],
    now: i64,
) -> PageCommit<'a> {
    PageCommit {
        sync,
        run,
        lease_owner: "w1",
        upserts,
        deletes,
        checkpoint: None,
        now,
    }
}

fn all(model: &str, limit: u32) -> RecordQuery {
    RecordQuery {
        model: model.into(),
        limit,
        ..RecordQuery::default()
    }
}

/// Every record of a model through the cursor, `limit` at a time.
async fn page_through(
    store: &Arc<dyn Store>,
    env: EnvironmentId,
    conn: ConnectionRowId,
    mut query: RecordQuery,
) -> Vec<ferry_store::StoredRecord> {
    let mut seen = Vec::new();
    loop {
        let page = store.list_records(env, conn, &query).await.expect("list");
        let Some(last) = page.last() else {
            return seen;
        };
        query.cursor = Some(last.cursor.clone());
        let full = page.len() == query.limit as usize;
        seen.extend(page);
        if !full {
            return seen;
        }
    }
}

// ---------------------------------------------------------------------------------------------

async fn ensuring_syncs_twice_keeps_the_first_rows_and_new_ones_start_paused_unless_auto_started(
    store: Arc<dyn Store>,
) {
    let (env, conn) = connection(&store, "dev").await;
    let first = store
        .ensure_syncs(env, conn, &contacts(true), NOW)
        .await
        .expect("ensure");
    let names: Vec<&str> = first.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["accounts", "contacts"]);
    let contacts_row = &first[1];
    assert!(!contacts_row.paused);
    assert_eq!(contacts_row.next_run_at, Some(NOW));
    assert_eq!(contacts_row.model, "Contact");
    assert_eq!(contacts_row.connection_row_id, conn);
    assert!(first[0].paused);
    assert_eq!(first[0].next_run_at, None);
    assert!(contacts_row.last_run.is_none());

    let mut changed = contacts(false);
    changed[0].frequency_secs = 60;
    changed.push(NewSync {
        name: "leads".into(),
        model: "Lead".into(),
        frequency_secs: 60,
        auto_start: true,
    });
    let second = store
        .ensure_syncs(env, conn, &changed, NOW + 5)
        .await
        .expect("again");
    assert_eq!(second.len(), 3);
    assert_eq!(second[..2], first[..], "existing rows are untouched");
    assert_eq!(
        store
            .get_sync(env, conn, "leads")
            .await
            .expect("get")
            .map(|s| s.paused),
        Some(false)
    );
    assert_eq!(store.list_syncs(env, conn).await.expect("list"), second);

    let (other_env, _) = connection(&store, "prod").await;
    assert!(matches!(
        store
            .ensure_syncs(other_env, conn, &contacts(true), NOW)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store
        .list_syncs(other_env, conn)
        .await
        .expect("list")
        .is_empty());
    assert!(store
        .get_sync(other_env, conn, "contacts")
        .await
        .expect("get")
        .is_none());
}

async fn a_due_sync_is_held_by_one_worker_even_when_many_claim_at_once(store: Arc<dyn Store>) {
    let (env, conn) = connection(&store, "dev").await;
    store
        .ensure_syncs(env, conn, &contacts(true), NOW)
        .await
        .expect("ensure");
    assert!(
        store
            .claim_due_sync("early", NOW - 1, LEASE)
            .await
            .expect("claim")
            .is_none(),
        "not due yet"
    );

    let mut claimers = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            store
                .claim_due_sync(&format!("w{i}"), NOW, LEASE)
                .await
                .expect("claim")
        }));
    }
    let mut winners = Vec::new();
    for claimer in claimers {
        if let Some(row) = claimer.await.expect("join") {
            winners.push(row);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "only `contacts` is due and one worker holds it"
    );
    let held = &winners[0];
    assert_eq!(held.name, "contacts");
    assert_eq!(held.lease_until, Some(NOW + LEASE));
    let owner = held.lease_owner.clone().expect("owner");

    assert!(store
        .claim_sync(held.id, "cli", NOW + 1, LEASE)
        .await
        .expect("claim")
        .is_none());
    assert!(store
        .renew_sync_lease(held.id, &owner, NOW + 30_000, LEASE)
        .await
        .expect("renew"));
    assert!(!store
        .renew_sync_lease(held.id, "cli", NOW + 30_000, LEASE)
        .await
        .expect("renew"));
    assert!(
        store
            .claim_due_sync("late", NOW + LEASE + 1, LEASE)
            .await
            .expect("claim")
            .is_none(),
        "the renewed lease still holds"
    );
    let taken = store
        .claim_due_sync("late", NOW + 30_000 + LEASE, LEASE)
        .await
        .expect("claim")
        .expect("expired lease");
    assert_eq!(taken.lease_owner.as_deref(), Some("late"));

    // A paused sync is claimable by id (`ferry sync run`) but never as due.
    let accounts = store
        .get_sync(env, conn, "accounts")
        .await
        .expect("get")
        .expect("row");
    let mut requested = store
        .request_sync_run(
            env,
            conn,
            &["accounts".into()],
            SyncTrigger::Incremental,
            NOW,
        )
        .await
        .expect("request");
    assert_eq!(requested.remove(0).pending, Some(SyncTrigger::Incremental));
    assert!(store
        .claim_due_sync("w", NOW + 30_000 + LEASE + 1, LEASE)
        .await
        .expect("claim")
        .is_none());
    assert!(store
        .claim_sync(accounts.id, "cli", NOW, LEASE)
        .await
        .expect("claim")
        .is_some());

    // Many syncs, many concurrent claimers: each sync goes to exactly one of them.
    for i in 0..20 {
        store
            .ensure_syncs(
                env,
                conn,
                &[NewSync {
                    name: format!("s{i}"),
                    model: format!("M{i}"),
                    frequency_secs: 60,
                    auto_start: true,
                }],
                NOW,
            )
            .await
            .expect("ensure");
    }
    let at = NOW + 100 * LEASE;
    let mut claimers = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(row) = store
                .claim_due_sync(&format!("p{i}"), at, LEASE)
                .await
                .expect("claim")
            {
                mine.push(row.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("join"));
    }
    let unique: HashSet<SyncId> = claimed.iter().copied().collect();
    assert_eq!(unique.len(), claimed.len(), "no sync claimed twice");
    assert_eq!(unique.len(), 21, "20 new syncs and contacts");
}

async fn a_worker_whose_lease_was_taken_over_can_neither_commit_nor_finish(store: Arc<dyn Store>) {
    let (env, conn, sync, stale_run) = running(&store).await;
    let before = [record("a", 1)];
    store
        .commit_page(&page(sync, stale_run, &before, &[], NOW + 1))
        .await
        .expect("holder commits");

    // w1 stalls; its lease expires and w2 takes over.
    store
        .claim_sync(sync, "w2", NOW + LEASE, LEASE)
        .await
        .expect("claim")
        .expect("expired");
    let run = store
        .start_sync_run(sync, "w2", SyncTrigger::Incremental, NOW + LEASE)
        .await
        .expect("start");
    let stale = [record("a", 2), record("b", 1)];
    let checkpoint = json!({"stale": true});
    let mut late = page(sync, stale_run, &stale, &[], NOW + LEASE + 1);
    late.checkpoint = Some(&checkpoint);
    assert!(matches!(
        store.commit_page(&late).await,
        Err(StoreError::LeaseLost)
    ));
    // Even with the new run id the old owner is refused.
    late.run = run;
    assert!(matches!(
        store.commit_page(&late).await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        store
            .finish_sync_run(
                sync,
                stale_run,
                "w1",
                true,
                None,
                None,
                &[json!({"x": 1})],
                NOW
            )
            .await,
        Err(StoreError::LeaseLost)
    ));
    assert!(matches!(
        store
            .start_sync_run(sync, "w1", SyncTrigger::Incremental, NOW)
            .await,
        Err(StoreError::LeaseLost)
    ));

    let records = page_through(&store, env, conn, all("Contact", 10)).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].hash, "a-1",
        "nothing of the refused page was written"
    );
    let row = store
        .get_sync(env, conn, "contacts")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.checkpoint, None);
    assert_eq!(row.lease_owner.as_deref(), Some("w2"));
    let runs = store.list_sync_runs(sync, 10).await.expect("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, run);
    assert_eq!(runs[0].status, "RUNNING");
    assert_eq!(runs[1].status, "ERROR", "the abandoned run is closed");
    assert_eq!(runs[1].added, 1);
    assert!(store
        .list_webhooks(env, 10)
        .await
        .expect("webhooks")
        .is_empty());

    // The new holder's own run id works; the superseded run id does not, even for it.
    let mut stale_by_new_owner = page(sync, stale_run, &stale, &[], NOW + LEASE + 2);
    stale_by_new_owner.lease_owner = "w2";
    assert!(matches!(
        store.commit_page(&stale_by_new_owner).await,
        Err(StoreError::LeaseLost)
    ));
    stale_by_new_owner.run = run;
    let outcome = store
        .commit_page(&stale_by_new_owner)
        .await
        .expect("commit");
    assert_eq!(
        outcome,
        PageOutcome {
            added: 1,
            updated: 1,
            deleted: 0
        }
    );
}

async fn a_page_counts_added_updated_unchanged_resurrected_and_deleted_records(
    store: Arc<dyn Store>,
) {
    let (env, conn, sync, run) = running(&store).await;
    let first = [
        record("a", 1),
        record("b", 1),
        record("c", 1),
        record("d", 1),
    ];
    let checkpoint = json!({"modstamp": "2024-01-01T00:00:00Z", "id": "d"});
    let mut commit = page(sync, run, &first, &[], NOW + 1);
    commit.checkpoint = Some(&checkpoint);
    assert_eq!(
        store.commit_page(&commit).await.expect("commit"),
        PageOutcome {
            added: 4,
            updated: 0,
            deleted: 0
        }
    );
    let row = store
        .get_sync(env, conn, "contacts")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.checkpoint, Some(checkpoint));

    // b unchanged, c changed, d deleted (and deleting a missing id or a deleted one is no-op),
    // e new but written twice in the page: the later write wins and counts once.
    let second = [
        record("b", 1),
        record("c", 2),
        record("e", 1),
        record("e", 2),
    ];
    let deletes = vec!["d".to_owned(), "zz".to_owned()];
    assert_eq!(
        store
            .commit_page(&page(sync, run, &second, &deletes, NOW + 2))
            .await
            .expect("commit"),
        PageOutcome {
            added: 1,
            updated: 1,
            deleted: 1
        }
    );
    assert_eq!(
        store
            .commit_page(&page(sync, run, &[], &deletes, NOW + 3))
            .await
            .expect("commit"),
        PageOutcome::default()
    );
    // d comes back with its old content: resurrected, so UPDATED.
    let third = [record("d", 1), record("a", 1)];
    assert_eq!(
        store
            .commit_page(&page(sync, run, &third, &[], NOW + 4))
            .await
            .expect("commit"),
        PageOutcome {
            added: 0,
            updated: 1,
            deleted: 0
        }
    );
    let records = page_through(&store, env, conn, all("Contact", 100)).await;
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r.external_id == id)
            .expect("record")
    };
    assert_eq!(by_id("a").last_action, RecordAction::Added);
    assert_eq!(by_id("a").updated_at, NOW + 1);
    assert_eq!(by_id("b").last_action, RecordAction::Added);
    assert_eq!(by_id("c").last_action, RecordAction::Updated);
    assert_eq!(by_id("c").first_seen_at, NOW + 1);
    assert_eq!(by_id("c").updated_at, NOW + 2);
    assert_eq!(by_id("c").payload, json!({"id": "c", "name": "c v2"}));
    assert_eq!(by_id("e").hash, "e-2");
    assert_eq!(by_id("e").last_action, RecordAction::Added);
    let d = by_id("d");
    assert_eq!(d.last_action, RecordAction::Updated);
    assert_eq!(d.deleted_at, None);
    assert_eq!(d.updated_at, NOW + 4);
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (5, 0)
    );

    let gone = vec!["a".to_owned()];
    store
        .commit_page(&page(sync, run, &[], &gone, NOW + 5))
        .await
        .expect("commit");
    let a = store
        .list_records(
            env,
            conn,
            &RecordQuery {
                ids: vec!["a".into()],
                ..all("Contact", 10)
            },
        )
        .await
        .expect("list")
        .remove(0);
    assert_eq!(a.last_action, RecordAction::Deleted);
    assert_eq!(a.deleted_at, Some(NOW + 5));
    assert_eq!(a.updated_at, NOW + 5);
    assert_eq!(
        a.payload,
        json!({"id": "a", "name": "a v1"}),
        "the last payload is kept"
    );
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (4, 1)
    );

    let runs = store.list_sync_runs(sync, 10).await.expect("runs");
    assert_eq!(
        (runs[0].added, runs[0].updated, runs[0].deleted),
        (5, 2, 2),
        "run counters add up every page"
    );
    assert_eq!(runs[0].trigger, SyncTrigger::Incremental);
    assert_eq!(
        store.count_records(conn, "Account").await.expect("count"),
        (0, 0)
    );
}

async fn paging_with_the_cursor_returns_every_record_once_in_order_and_filters_apply(
    store: Arc<dyn Store>,
) {
    let (env, conn, sync, run) = running(&store).await;
    // 5 pages of 50 committed in the same millisecond: stamps still order them.
    for p in 0..5 {
        let writes: Vec<RecordWrite> = (0..50)
            .map(|i| record(&format!("r{p:02}{i:03}"), 1))
            .collect();
        store
            .commit_page(&page(sync, run, &writes, &[], NOW + 10))
            .await
            .expect("commit");
    }
    let updates: Vec<RecordWrite> = (0..10).map(|i| record(&format!("r00{i:03}"), 2)).collect();
    let deletes: Vec<String> = (10..15).map(|i| format!("r00{i:03}")).collect();
    store
        .commit_page(&page(sync, run, &updates, &deletes, NOW + 20))
        .await
        .expect("commit");

    let everything = page_through(&store, env, conn, all("Contact", 7)).await;
    assert_eq!(everything.len(), 250);
    let unique: HashSet<&str> = everything.iter().map(|r| r.external_id.as_str()).collect();
    assert_eq!(unique.len(), 250, "each record once");
    let keys: Vec<(i64, &str)> = everything
        .iter()
        .map(|r| (r.updated_at, r.cursor.as_str()))
        .collect();
    assert!(
        everything
            .windows(2)
            .all(|w| w[0].updated_at <= w[1].updated_at),
        "ascending updated_at: {keys:?}"
    );
    assert_eq!(
        everything.last().expect("last").updated_at,
        everything[249].updated_at
    );
    let tail: Vec<&str> = everything[235..]
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert!(
        tail.iter().all(|id| id.starts_with("r00")),
        "the last writes come last: {tail:?}"
    );

    let only = |actions: Vec<RecordAction>| RecordQuery {
        actions,
        ..all("Contact", 1000)
    };
    let added = store
        .list_records(env, conn, &only(vec![RecordAction::Added]))
        .await
        .expect("list");
    assert_eq!(added.len(), 235);
    let updated = store
        .list_records(env, conn, &only(vec![RecordAction::Updated]))
        .await
        .expect("list");
    assert_eq!(updated.len(), 10);
    let deleted = store
        .list_records(env, conn, &only(vec![RecordAction::Deleted]))
        .await
        .expect("list");
    assert_eq!(deleted.len(), 5);
    assert!(deleted.iter().all(|r| r.deleted_at.is_some()));
    let changed = store
        .list_records(
            env,
            conn,
            &only(vec![RecordAction::Updated, RecordAction::Deleted]),
        )
        .await
        .expect("list");
    assert_eq!(changed.len(), 15);

    let recent = store
        .list_records(
            env,
            conn,
            &RecordQuery {
                modified_after: Some(NOW + 20),
                ..all("Contact", 1000)
            },
        )
        .await
        .expect("list");
    assert_eq!(recent.len(), 15, "modified_after is inclusive");
    let picked = store
        .list_records(
            env,
            conn,
            &RecordQuery {
                ids: vec!["r01001".into(), "r04049".into(), "nope".into()],
                ..all("Contact", 1000)
            },
        )
        .await
        .expect("list");
    let picked: Vec<&str> = picked.iter().map(|r| r.external_id.as_str()).collect();
    assert_eq!(picked, ["r01001", "r04049"]);

    let paged_filtered = page_through(
        &store,
        env,
        conn,
        RecordQuery {
            actions: vec![RecordAction::Added],
            ..all("Contact", 4)
        },
    )
    .await;
    assert_eq!(paged_filtered.len(), 235);

    assert!(matches!(
        store
            .list_records(
                env,
                conn,
                &RecordQuery {
                    cursor: Some("garbage!".into()),
                    ..all("Contact", 10)
                }
            )
            .await,
        Err(StoreError::InvalidCursor)
    ));
    assert!(store
        .list_records(env, conn, &all("Account", 10))
        .await
        .expect("list")
        .is_empty());
    let (other_env, _) = connection(&store, "prod").await;
    assert!(
        store
            .list_records(other_env, conn, &all("Contact", 10))
            .await
            .expect("list")
            .is_empty(),
        "another environment sees nothing"
    );
}

async fn a_write_after_a_reader_passed_the_same_millisecond_is_still_seen(store: Arc<dyn Store>) {
    let (env, conn, sync, run) = running(&store).await;
    let first: Vec<RecordWrite> = (0..3).map(|i| record(&format!("x{i}"), 1)).collect();
    store
        .commit_page(&page(sync, run, &first, &[], NOW))
        .await
        .expect("commit");
    let read = store
        .list_records(env, conn, &all("Contact", 100))
        .await
        .expect("list");
    let cursor = read.last().expect("last").cursor.clone();
    // Same clock reading: x0 (the oldest row id) changes after the reader passed it.
    let again = [record("x0", 2)];
    store
        .commit_page(&page(sync, run, &again, &[], NOW))
        .await
        .expect("commit");
    store
        .write_back_record(env, conn, "Contact", &record("x1", 2), NOW)
        .await
        .expect("write back");
    let next = store
        .list_records(
            env,
            conn,
            &RecordQuery {
                cursor: Some(cursor),
                ..all("Contact", 100)
            },
        )
        .await
        .expect("list");
    let ids: Vec<&str> = next.iter().map(|r| r.external_id.as_str()).collect();
    assert_eq!(ids, ["x0", "x1"]);
    assert!(next[0].updated_at > NOW && next[1].updated_at > next[0].updated_at);
}

async fn full_refresh_resets_the_checkpoint_and_full_refresh_and_clear_deletes_the_records(
    store: Arc<dyn Store>,
) {
    let (env, conn, sync, run) = running(&store).await;
    let writes = [record("a", 1), record("b", 1)];
    let checkpoint = json!({"at": 1});
    let mut commit = page(sync, run, &writes, &[], NOW + 1);
    commit.checkpoint = Some(&checkpoint);
    store.commit_page(&commit).await.expect("commit");
    // Another model of the same connection is untouched by the clear.
    store
        .write_back_record(env, conn, "Account", &record("acc", 1), NOW)
        .await
        .expect("write back");

    let refresh = store
        .start_sync_run(sync, "w1", SyncTrigger::FullRefresh, NOW + 2)
        .await
        .expect("start");
    let row = store
        .get_sync(env, conn, "contacts")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.checkpoint, None);
    assert_eq!(row.last_run.as_ref().map(|r| r.id), Some(refresh));
    assert_eq!(
        row.last_run.as_ref().map(|r| r.trigger),
        Some(SyncTrigger::FullRefresh)
    );
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (2, 0)
    );

    store
        .request_sync_run(
            env,
            conn,
            &["contacts".into()],
            SyncTrigger::FullRefreshAndClear,
            NOW,
        )
        .await
        .expect("request");
    store
        .start_sync_run(sync, "w1", SyncTrigger::FullRefreshAndClear, NOW + 3)
        .await
        .expect("start");
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (0, 0)
    );
    assert_eq!(
        store.count_records(conn, "Account").await.expect("count"),
        (1, 0)
    );
    let row = store
        .get_sync(env, conn, "contacts")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.pending, None, "starting a run clears the request");
    assert!(store
        .list_records(env, conn, &all("Contact", 10))
        .await
        .expect("list")
        .is_empty());
}

async fn deleting_the_connection_removes_its_syncs_runs_and_records(store: Arc<dyn Store>) {
    let (env, conn, sync, run) = running(&store).await;
    let writes: Vec<RecordWrite> = (0..10).map(|i| record(&format!("r{i}"), 1)).collect();
    store
        .commit_page(&page(sync, run, &writes, &[], NOW + 1))
        .await
        .expect("commit");
    assert!(store
        .delete_connection(env, "sf", "c1")
        .await
        .expect("delete"));

    assert!(store.list_syncs(env, conn).await.expect("list").is_empty());
    assert!(store
        .list_sync_runs(sync, 10)
        .await
        .expect("runs")
        .is_empty());
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (0, 0)
    );
    assert!(store
        .claim_due_sync("w", NOW + 10 * LEASE, LEASE)
        .await
        .expect("claim")
        .is_none());
    assert!(matches!(
        store
            .commit_page(&page(sync, run, &writes, &[], NOW + 2))
            .await,
        Err(StoreError::LeaseLost)
    ));
}

async fn finishing_a_run_releases_the_lease_schedules_the_next_and_queues_webhooks(
    store: Arc<dyn Store>,
) {
    let (env, conn, sync, run) = running(&store).await;
    let writes = [record("a", 1)];
    store
        .commit_page(&page(sync, run, &writes, &[], NOW + 1))
        .await
        .expect("commit");
    let hooks = [
        json!({"type": "sync", "model": "Contact", "responseResults": {"added": 1}}),
        json!({"type": "sync", "model": "Other"}),
    ];
    store
        .finish_sync_run(
            sync,
            run,
            "w1",
            true,
            None,
            Some(NOW + 3_600_000),
            &hooks,
            NOW + 2,
        )
        .await
        .expect("finish");
    let row = store
        .get_sync(env, conn, "contacts")
        .await
        .expect("get")
        .expect("row");
    assert_eq!(row.lease_owner, None);
    assert_eq!(row.lease_until, None);
    assert_eq!(row.next_run_at, Some(NOW + 3_600_000));
    let last = row.last_run.expect("last run");
    assert_eq!(last.status, "SUCCESS");
    assert_eq!(last.finished_at, Some(NOW + 2));
    assert_eq!(last.added, 1);
    let queued = store.list_webhooks(env, 10).await.expect("webhooks");
    let payloads: Vec<&Value> = queued.iter().rev().map(|d| &d.payload).collect();
    assert_eq!(payloads, hooks.iter().collect::<Vec<_>>());
    assert!(queued
        .iter()
        .all(|d| d.status == "pending" && d.next_attempt_at == NOW + 2));

    // Finishing twice is refused and queues nothing more.
    assert!(matches!(
        store
            .finish_sync_run(sync, run, "w1", true, None, None, &hooks, NOW + 3)
            .await,
        Err(StoreError::LeaseLost)
    ));
    // A failed run records its error; the lease is free for the next claim.
    store
        .claim_sync(sync, "w1", NOW + 4, LEASE)
        .await
        .expect("claim")
        .expect("free");
    let failing = store
        .start_sync_run(sync, "w1", SyncTrigger::Incremental, NOW + 4)
        .await
        .expect("start");
    // A run superseded under the same lease cannot be finished either.
    assert!(matches!(
        store
            .finish_sync_run(sync, run, "w1", true, None, None, &hooks, NOW + 5)
            .await,
        Err(StoreError::LeaseLost)
    ));
    store
        .finish_sync_run(
            sync,
            failing,
            "w1",
            false,
            Some("INVALID_FIELD"),
            Some(NOW + 60_000),
            &[],
            NOW + 5,
        )
        .await
        .expect("finish");
    let runs = store.list_sync_runs(sync, 1).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "ERROR");
    assert_eq!(runs[0].error.as_deref(), Some("INVALID_FIELD"));
    assert_eq!(
        store.list_webhooks(env, 10).await.expect("webhooks").len(),
        2
    );
}

async fn pause_start_trigger_and_frequency_change_the_schedule(store: Arc<dyn Store>) {
    let (env, conn) = connection(&store, "dev").await;
    store
        .ensure_syncs(env, conn, &contacts(false), NOW)
        .await
        .expect("ensure");

    let started = store
        .set_syncs_paused(env, conn, &["contacts".into()], false, NOW + 1)
        .await
        .expect("start");
    assert_eq!(started.len(), 1);
    assert!(!started[0].paused);
    assert_eq!(
        started[0].next_run_at,
        Some(NOW + 1),
        "a never-scheduled sync is due now"
    );
    assert!(matches!(
        store.set_syncs_paused(env, conn, &["contacts".into(), "nope".into()], true, NOW).await,
        Err(StoreError::NotFound { entity: "sync", keys }) if keys == ["nope"]
    ));
    assert!(
        !store
            .get_sync(env, conn, "contacts")
            .await
            .expect("get")
            .expect("row")
            .paused,
        "all or nothing"
    );
    let paused_all = store
        .set_syncs_paused(env, conn, &[], true, NOW + 2)
        .await
        .expect("pause");
    assert_eq!(paused_all.len(), 2);
    assert!(paused_all.iter().all(|s| s.paused));
    assert!(store
        .claim_due_sync("w", NOW + 10, LEASE)
        .await
        .expect("claim")
        .is_none());

    // Requests are not downgraded while pending; they do not unpause.
    store
        .request_sync_run(
            env,
            conn,
            &["contacts".into()],
            SyncTrigger::FullRefresh,
            NOW,
        )
        .await
        .expect("request");
    let rows = store
        .request_sync_run(env, conn, &[], SyncTrigger::Incremental, NOW)
        .await
        .expect("request");
    let pending: Vec<(&str, Option<SyncTrigger>, bool)> = rows
        .iter()
        .map(|s| (s.name.as_str(), s.pending, s.paused))
        .collect();
    assert_eq!(
        pending,
        [
            ("accounts", Some(SyncTrigger::Incremental), true),
            ("contacts", Some(SyncTrigger::FullRefresh), true)
        ]
    );
    assert!(matches!(
        store
            .request_sync_run(env, conn, &["nope".into()], SyncTrigger::Incremental, NOW)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .set_syncs_paused(env, conn, &["contacts".into()], false, NOW + 3)
        .await
        .expect("start");
    let claimed = store
        .claim_due_sync("w", NOW + 3, LEASE)
        .await
        .expect("claim")
        .expect("requested run is due");
    assert_eq!(claimed.name, "contacts");
    assert_eq!(claimed.pending, Some(SyncTrigger::FullRefresh));

    let faster = store
        .set_sync_frequency(env, conn, "accounts", 60, NOW + 4)
        .await
        .expect("frequency")
        .expect("row");
    assert_eq!(faster.frequency_secs, 60);
    assert_eq!(
        faster.next_run_at, None,
        "a paused, never-scheduled sync stays unscheduled"
    );
    let contacts_row = store
        .set_sync_frequency(env, conn, "contacts", 86_400, NOW + 4)
        .await
        .expect("frequency")
        .expect("row");
    assert_eq!(
        contacts_row.next_run_at,
        Some(NOW + 1),
        "an earlier run is kept"
    );
    store
        .finish_sync_run(
            claimed.id,
            store
                .start_sync_run(claimed.id, "w", SyncTrigger::FullRefresh, NOW + 5)
                .await
                .expect("start"),
            "w",
            true,
            None,
            Some(NOW + 86_400_000),
            &[],
            NOW + 6,
        )
        .await
        .expect("finish");
    let sooner = store
        .set_sync_frequency(env, conn, "contacts", 60, NOW + 7)
        .await
        .expect("frequency")
        .expect("row");
    assert_eq!(
        sooner.next_run_at,
        Some(NOW + 7 + 60_000),
        "a later run is brought forward"
    );
    let reset = store
        .reset_sync_frequency(env, conn, "contacts", NOW + 8)
        .await
        .expect("reset")
        .expect("row");
    assert_eq!(
        reset.frequency_secs, 3600,
        "back to the frequency it was created with"
    );
    assert_eq!(reset.next_run_at, Some(NOW + 7 + 60_000));
    assert!(store
        .reset_sync_frequency(env, conn, "nope", NOW)
        .await
        .expect("reset")
        .is_none());
    assert!(store
        .set_sync_frequency(env, conn, "nope", 60, NOW)
        .await
        .expect("frequency")
        .is_none());
}

async fn written_back_records_follow_the_hash_rule(store: Arc<dyn Store>) {
    let (env, conn) = connection(&store, "dev").await;
    let write = |v| record("003A", v);
    assert_eq!(
        store
            .write_back_record(env, conn, "Contact", &write(1), NOW)
            .await
            .expect("write"),
        Some(RecordAction::Added)
    );
    assert_eq!(
        store
            .write_back_record(env, conn, "Contact", &write(1), NOW + 1)
            .await
            .expect("write"),
        None
    );
    assert_eq!(
        store
            .write_back_record(env, conn, "Contact", &write(2), NOW + 2)
            .await
            .expect("write"),
        Some(RecordAction::Updated)
    );
    assert!(store
        .delete_back_record(env, conn, "Contact", "003A", NOW + 3)
        .await
        .expect("delete"));
    assert!(!store
        .delete_back_record(env, conn, "Contact", "003A", NOW + 4)
        .await
        .expect("delete"));
    assert!(!store
        .delete_back_record(env, conn, "Contact", "nope", NOW + 4)
        .await
        .expect("delete"));
    assert_eq!(
        store
            .write_back_record(env, conn, "Contact", &write(2), NOW + 5)
            .await
            .expect("write"),
        Some(RecordAction::Updated),
        "resurrected"
    );
    let (other_env, _) = connection(&store, "prod").await;
    assert!(matches!(
        store
            .write_back_record(other_env, conn, "Contact", &write(3), NOW)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!store
        .delete_back_record(other_env, conn, "Contact", "003A", NOW)
        .await
        .expect("delete"));
    let stored = store
        .list_records(env, conn, &all("Contact", 10))
        .await
        .expect("list");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].hash, "003A-2");
    assert_eq!(stored[0].first_seen_at, NOW);
    assert_eq!(stored[0].updated_at, NOW + 5);
}

async fn live_ids_are_listed_in_byte_order_for_reconciliation(store: Arc<dyn Store>) {
    let (env, conn, sync, run) = running(&store).await;
    let ids = ["001b", "001B", "001a", "001A", "001_", "0019"];
    let writes: Vec<RecordWrite> = ids.iter().map(|id| record(id, 1)).collect();
    store
        .commit_page(&page(sync, run, &writes, &["001a".into()], NOW))
        .await
        .expect("commit");
    let first = store
        .live_record_ids(conn, "Contact", None, 3)
        .await
        .expect("ids");
    assert_eq!(first, ["0019", "001A", "001B"]);
    let rest = store
        .live_record_ids(conn, "Contact", Some("001B"), 10)
        .await
        .expect("ids");
    assert_eq!(rest, ["001_", "001b"]);
    assert!(store
        .live_record_ids(conn, "Account", None, 10)
        .await
        .expect("ids")
        .is_empty());
    let _ = env;
}

/// Throughput of `commit_page` with 2,000-record pages (not a pass/fail test; prints figures):
/// `cargo test -p ferry-store --release --test sync_store -- --ignored --nocapture commit_page_throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn commit_page_throughput() {
    for (name, db) in [
        ("sqlite", Db::sqlite().await),
        ("postgres", Db::postgres().await),
    ] {
        let store = db.store.clone();
        let (_, _, sync, run) = running(&store).await;
        const PAGES: usize = 100;
        const PAGE: usize = 2_000;
        let pages: Vec<Vec<RecordWrite>> = (0..PAGES)
            .map(|p| {
                (0..PAGE)
                    .map(|i| {
                        let id = format!("003{:015}", p * PAGE + i);
                        RecordWrite {
                            payload: json!({"id": id, "first_name": "Ada", "last_name": format!("L{i}"),
                                "email": format!("{id}@example.com"), "phone": "+1 555 0100",
                                "title": "Engineer", "department": "R&D", "account_id": "001000000000000AAA",
                                "account_name": "Acme", "owner_id": "005000000000000AAA",
                                "last_modified_date": "2026-01-01T00:00:00.000+0000"}),
                            hash: format!("h{p}-{i}"),
                            external_id: id,
                            payload_text: None,
                        }
                    })
                    .collect()
            })
            .collect();
        for (label, mutate) in [("added", false), ("unchanged", false), ("updated", true)] {
            let started = std::time::Instant::now();
            let mut counted = PageOutcome::default();
            for (p, records) in pages.iter().enumerate() {
                let changed: Vec<RecordWrite>;
                let upserts = if mutate {
                    changed = records
                        .iter()
                        .map(|r| RecordWrite {
                            hash: format!("{}x", r.hash),
                            ..r.clone()
                        })
                        .collect();
                    &changed[..]
                } else {
                    &records[..]
                };
                let outcome = store
                    .commit_page(&page(sync, run, upserts, &[], NOW + p as i64))
                    .await
                    .expect("commit");
                counted.added += outcome.added;
                counted.updated += outcome.updated;
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "{name}: {label}: {} records in {elapsed:.2}s = {:.0} records/s ({counted:?})",
                PAGES * PAGE,
                (PAGES * PAGE) as f64 / elapsed
            );
        }
        store.close().await;
    }
}

async fn a_page_of_nine_thousand_records_and_unknown_deletes_commits_whole(store: Arc<dyn Store>) {
    let (env, conn, sync, run) = running(&store).await;
    let writes: Vec<RecordWrite> = (0..9_000)
        .map(|i| record(&format!("big{i:05}"), 1))
        .collect();
    // Ids never stored are ignored (more of them than one statement's bound values).
    let unknown: Vec<String> = (0..9_000).map(|i| format!("none{i:05}")).collect();
    let outcome = store
        .commit_page(&page(sync, run, &writes, &unknown, NOW))
        .await
        .expect("commit");
    assert_eq!(
        outcome,
        PageOutcome {
            added: 9_000,
            updated: 0,
            deleted: 0
        }
    );
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (9_000, 0)
    );
    let known: Vec<String> = (0..9_000)
        .step_by(2)
        .map(|i| format!("big{i:05}"))
        .collect();
    let outcome = store
        .commit_page(&page(sync, run, &writes, &known, NOW + 1))
        .await
        .expect("commit");
    assert_eq!(outcome.deleted, 4_500);
    assert_eq!(
        outcome.added + outcome.updated,
        0,
        "re-read unchanged records are not updates"
    );
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (4_500, 4_500)
    );
    let listed = store
        .list_records(env, conn, &all("Contact", 10_000))
        .await
        .expect("list");
    assert_eq!(listed.len(), 9_000);
    // A third of the records changed; the deleted ones come back: every chunk of the page's
    // statements is classified (9,000 = 17 × 512 + 128 + 8).
    let mixed: Vec<RecordWrite> = (0..9_000)
        .map(|i| record(&format!("big{i:05}"), if i % 3 == 0 { 2 } else { 1 }))
        .collect();
    let outcome = store
        .commit_page(&page(sync, run, &mixed, &[], NOW + 2))
        .await
        .expect("commit");
    assert_eq!(
        outcome,
        PageOutcome {
            added: 0,
            updated: 3_000 + 3_000,
            deleted: 0
        },
        "3,000 changed, plus the 3,000 deleted ones whose hash is unchanged"
    );
    assert_eq!(
        store.count_records(conn, "Contact").await.expect("count"),
        (9_000, 0)
    );
    let changed = store
        .list_records(env, conn, &all("Contact", 10_000))
        .await
        .expect("list")
        .into_iter()
        .filter(|r| {
            r.payload["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(" v2"))
        })
        .count();
    assert_eq!(changed, 3_000);
}

async fn pruning_empties_payloads_up_to_the_cursor_in_batches_and_a_change_restores_one(
    store: Arc<dyn Store>,
) {
    let (env, conn, sync, run) = running(&store).await;
    let writes: Vec<RecordWrite> = (0..10).map(|i| record(&format!("p{i}"), 1)).collect();
    store
        .commit_page(&page(sync, run, &writes, &[], NOW))
        .await
        .expect("commit");
    let listed = store
        .list_records(env, conn, &all("Contact", 100))
        .await
        .expect("list");
    let until = listed[5].cursor.clone();
    let prune = |limit| {
        let store = store.clone();
        let until = until.clone();
        async move {
            store
                .prune_records(env, conn, "Contact", &until, limit, NOW + 50)
                .await
                .expect("prune")
        }
    };
    assert_eq!(prune(4).await, (4, true), "a batch, more to go");
    assert_eq!(prune(100).await, (2, false), "the rest up to the cursor");
    assert_eq!(prune(100).await, (0, false), "nothing left to prune");
    let listed = store
        .list_records(env, conn, &all("Contact", 100))
        .await
        .expect("list");
    for (i, r) in listed.iter().enumerate() {
        if i <= 5 {
            assert_eq!(r.payload, json!({}), "{}", r.external_id);
            assert_eq!(r.pruned_at, Some(NOW + 50));
        } else {
            assert_eq!(r.payload["name"], json!(format!("{} v1", r.external_id)));
            assert_eq!(r.pruned_at, None);
        }
        assert_eq!(r.last_action, RecordAction::Added, "metadata kept");
        assert_eq!(r.updated_at, listed[0].updated_at, "metadata kept");
    }
    // A changed record gets its payload back; one re-read unchanged stays pruned.
    let changed = [
        record(&listed[0].external_id, 2),
        record(&listed[1].external_id, 1),
    ];
    let outcome = store
        .commit_page(&page(sync, run, &changed, &[], NOW + 100))
        .await
        .expect("commit");
    assert_eq!(outcome.updated, 1);
    let by_id = |id: &str| {
        let store = store.clone();
        let id = id.to_string();
        async move {
            let mut query = all("Contact", 10);
            query.ids = vec![id];
            store
                .list_records(env, conn, &query)
                .await
                .expect("list")
                .remove(0)
        }
    };
    let restored = by_id(&listed[0].external_id).await;
    assert_eq!(restored.pruned_at, None);
    assert_eq!(
        restored.payload["name"],
        json!(format!("{} v2", restored.external_id))
    );
    assert_eq!(
        by_id(&listed[1].external_id).await.pruned_at,
        Some(NOW + 50)
    );
    assert!(matches!(
        store
            .prune_records(env, conn, "Contact", "not-a-cursor", 10, NOW)
            .await,
        Err(StoreError::InvalidCursor)
    ));
    let (other_env, _) = connection(&store, "prod").await;
    assert!(matches!(
        store
            .prune_records(other_env, conn, "Contact", &until, 10, NOW)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}
