//! The sync engine against the emulator's ground truth, on SQLite and Postgres: REST and Bulk initial loads, rows sharing a `SystemModstamp` and late commits inside the overlap window, soft and hard deletes, the reconciliation guard, a run killed mid-way and resumed by another owner, missing fields, custom objects from a YAML sync, and the API budget.

mod common;
mod sync_support;

use common::Db;
use ferry_server::sync::engine::{LoadMode, RunOptions};
use ferry_store::{RecordAction, SyncTrigger};
use serde_json::{json, Value};
use sync_support::SyncApp;

fn contacts(s: &SyncApp) -> ferry_server::sync::SyncDefinition {
    s.app.state.syncs.get("contacts").expect("contacts").clone()
}

async fn initial_sync_through_rest_equals_the_emulator(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Account", 50, false).await;
    s.seed("Contact", 5000, false).await;
    let report = s.run("contacts").await;
    assert_eq!(report.error, None);
    assert_eq!(report.mode, Some(LoadMode::Rest));
    assert_eq!(report.added, 5000);
    assert!(report.pages >= 3, "{report:?}");
    let truth = s.ground_truth(&contacts(&s)).await;
    assert_eq!(truth.len(), 5000);
    assert_eq!(s.live_payloads("Contact").await, truth);
    assert!(
        truth.values().any(|v| v["account_name"].is_string()),
        "parent fields are synced"
    );

    let hooks = s.sync_webhooks("contacts").await;
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook["from"], "nango");
    assert_eq!(hook["model"], "Contact");
    assert_eq!(hook["syncType"], "INITIAL");
    assert_eq!(hook["success"], true);
    assert_eq!(hook["connectionId"], s.connection.connection_id.as_str());
    assert_eq!(hook["providerConfigKey"], "salesforce");
    assert_eq!(
        hook["responseResults"],
        json!({"added": 5000, "updated": 0, "deleted": 0})
    );
    assert_eq!(hook["modifiedAfter"], "2026-01-05T00:00:00.000Z");
    assert_eq!(hook["queryTimeStamp"], hook["modifiedAfter"]);

    // Nothing changed: an incremental run re-reads the overlap window and reports nothing.
    s.advance_secs(3600).await;
    let again = s.run("contacts").await;
    assert_eq!((again.added, again.updated, again.deleted), (0, 0, 0));
    assert_eq!(
        s.sync_webhooks("contacts").await.len(),
        1,
        "no webhook without changes"
    );
    let row = s.sync_row("contacts").await;
    assert_eq!(
        row.next_run_at,
        Some(s.app.state.clock.now_ms() + 3600 * 1000)
    );
    assert_eq!(row.last_run.expect("run").status, "SUCCESS");
}
on_both_databases!(
    rest_initial_sync,
    initial_sync_through_rest_equals_the_emulator
);

async fn initial_sync_through_bulk_equals_the_emulator(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Account", 100, false).await;
    s.seed("Contact", 100_000, false).await;
    let report = s.run("contacts").await;
    assert_eq!(report.error, None);
    assert_eq!(report.mode, Some(LoadMode::Bulk));
    assert_eq!(report.added, 100_000);
    let truth = s.ground_truth(&contacts(&s)).await;
    assert_eq!(truth.len(), 100_000);
    let stored = s.live_payloads("Contact").await;
    assert_eq!(stored.len(), truth.len());
    for (id, value) in &truth {
        assert_eq!(stored.get(id), Some(value), "record {id}");
    }
    // The Bulk-loaded records hash like REST-read ones: a re-read changes nothing.
    s.advance_secs(60).await;
    let again = s.run("contacts").await;
    assert_eq!((again.added, again.updated), (0, 0), "{again:?}");
}
on_both_databases!(
    bulk_initial_sync,
    initial_sync_through_bulk_equals_the_emulator
);

async fn shared_stamps_and_late_rows_are_never_missed(db: Db) {
    let s = SyncApp::start(db).await;
    // 2,500 rows share one SystemModstamp (more than a REST page of 2,000).
    s.seed("Contact", 2500, true).await;
    s.advance_secs(100).await;
    let later = s
        .admin(
            reqwest::Method::POST,
            "/orgs/Acme/records/Contact",
            json!({"LastName": "Later"}),
        )
        .await;
    let first = s.run("contacts").await;
    assert_eq!(first.added, 2501);
    assert_eq!(s.live_payloads("Contact").await.len(), 2501);

    // The checkpoint is past the shared stamp; now rows commit late with a stamp 50 s before it.
    s.advance_secs(60).await;
    let shared: Vec<String> = s.ids("Contact", 3000).await;
    let touched: Vec<&String> = shared
        .iter()
        .filter(|id| **id != later["id"])
        .take(10)
        .collect();
    for id in &touched {
        s.admin(
            reqwest::Method::PATCH,
            &format!("/orgs/Acme/records/Contact/{id}"),
            json!({"Title": "Late", "SystemModstamp": "2026-01-05T00:00:50Z"}),
        )
        .await;
    }
    let second = s.run("contacts").await;
    assert_eq!(second.error, None);
    assert_eq!(
        (second.added, second.updated, second.deleted),
        (0, 10, 0),
        "exactly the late rows are updated; untouched re-read rows are not"
    );
    assert_eq!(
        s.live_payloads("Contact").await,
        s.ground_truth(&contacts(&s)).await
    );
    assert_eq!(s.count_action("Contact", RecordAction::Updated).await, 10);
}
on_both_databases!(shared_stamps, shared_stamps_and_late_rows_are_never_missed);

async fn soft_deletes_are_deleted_after_the_next_run(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Contact", 40, false).await;
    s.run("contacts").await;
    s.advance_secs(30).await;
    let gone = s.ids("Contact", 5).await;
    for id in &gone {
        s.admin(
            reqwest::Method::DELETE,
            &format!("/orgs/Acme/records/Contact/{id}"),
            json!({}),
        )
        .await;
    }
    s.advance_secs(120).await;
    let report = s.run("contacts").await;
    assert_eq!(report.error, None);
    assert_eq!(report.deleted, 5, "{report:?}");
    let stored = s.stored("Contact").await;
    for id in &gone {
        assert_eq!(stored[id].last_action, RecordAction::Deleted);
        assert!(stored[id].deleted_at.is_some());
    }
    assert_eq!(
        s.live_payloads("Contact").await,
        s.ground_truth(&contacts(&s)).await
    );
    let hooks = s.sync_webhooks("contacts").await;
    assert_eq!(
        hooks.last().expect("hook")["responseResults"],
        json!({"added": 0, "updated": 0, "deleted": 5})
    );
    assert_eq!(hooks.last().expect("hook")["syncType"], "INCREMENTAL");
}
on_both_databases!(soft_deletes, soft_deletes_are_deleted_after_the_next_run);

async fn hard_deletes_are_found_by_reconciliation(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Contact", 60, false).await;
    s.run("contacts").await;
    s.advance_secs(30).await;
    let gone = s.ids("Contact", 3).await;
    for id in &gone {
        s.admin(
            reqwest::Method::DELETE,
            &format!("/orgs/Acme/records/Contact/{id}"),
            json!({}),
        )
        .await;
    }
    s.admin(
        reqwest::Method::POST,
        "/orgs/Acme/recycle-bin/empty",
        json!({}),
    )
    .await;
    s.advance_secs(120).await;
    // getDeleted no longer knows them: an ordinary run misses them…
    let plain = s.run("contacts").await;
    assert_eq!(plain.deleted, 0);
    // …a full refresh reconciles ids and finds them.
    s.app
        .state
        .store
        .request_sync_run(
            s.connection.environment_id,
            s.connection.id,
            &["contacts".to_string()],
            SyncTrigger::FullRefresh,
            s.app.state.clock.now_ms(),
        )
        .await
        .expect("request");
    let full = s.run("contacts").await;
    assert_eq!(full.error, None);
    assert!(full.reconciled);
    assert_eq!(
        (full.added, full.updated, full.deleted),
        (0, 0, 3),
        "{full:?}"
    );
    assert_eq!(
        s.live_payloads("Contact").await,
        s.ground_truth(&contacts(&s)).await
    );

    // Reconciliation also runs on its own schedule.
    s.advance_secs(60).await;
    let scheduled = s
        .run_as(
            "contacts",
            "test-worker",
            &RunOptions {
                force_reconcile: true,
                ..RunOptions::default()
            },
        )
        .await;
    assert!(scheduled.reconciled);
    assert_eq!(scheduled.deleted, 0);
}
on_both_databases!(hard_deletes, hard_deletes_are_found_by_reconciliation);

async fn a_suspicious_scan_deletes_nothing_and_raises_the_alarm(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Contact", 20, false).await;
    s.run("contacts").await;
    // Everything vanishes upstream without a trace (hard-deleted): the scan comes back empty.
    s.advance_secs(30).await;
    for id in s.ids("Contact", 100).await {
        s.admin(
            reqwest::Method::DELETE,
            &format!("/orgs/Acme/records/Contact/{id}"),
            json!({}),
        )
        .await;
    }
    s.admin(
        reqwest::Method::POST,
        "/orgs/Acme/recycle-bin/empty",
        json!({}),
    )
    .await;
    s.advance_secs(120).await;
    let report = s
        .run_as(
            "contacts",
            "test-worker",
            &RunOptions {
                force_reconcile: true,
                ..RunOptions::default()
            },
        )
        .await;
    let error = report.error.clone().expect("the run fails");
    assert!(error.contains("refused"), "{error}");
    assert_eq!(report.deleted, 0);
    assert_eq!(
        s.live_payloads("Contact").await.len(),
        20,
        "nothing deleted"
    );
    let row = s.sync_row("contacts").await;
    assert_eq!(row.last_run.expect("run").status, "ERROR");
    let failure = s
        .sync_webhooks("contacts")
        .await
        .into_iter()
        .find(|w| w["success"] == false)
        .expect("a failure webhook is queued");
    assert_eq!(failure["error"]["type"], "reconciliation_refused");
    assert!(failure["startedAt"].is_string() && failure["failedAt"].is_string());
}
on_both_databases!(
    empty_scan_alarm,
    a_suspicious_scan_deletes_nothing_and_raises_the_alarm
);

async fn too_many_deletions_are_refused(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Contact", 20, false).await;
    s.run("contacts").await;
    s.advance_secs(30).await;
    for id in s.ids("Contact", 10).await {
        s.admin(
            reqwest::Method::DELETE,
            &format!("/orgs/Acme/records/Contact/{id}"),
            json!({}),
        )
        .await;
    }
    s.admin(
        reqwest::Method::POST,
        "/orgs/Acme/recycle-bin/empty",
        json!({}),
    )
    .await;
    s.advance_secs(120).await;
    let report = s
        .run_as(
            "contacts",
            "test-worker",
            &RunOptions {
                force_reconcile: true,
                ..RunOptions::default()
            },
        )
        .await;
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("more than 20%")),
        "{report:?}"
    );
    assert_eq!(s.live_payloads("Contact").await.len(), 20);
}
on_both_databases!(delete_share_guard, too_many_deletions_are_refused);

async fn a_run_killed_mid_way_resumes_without_reporting_twice(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Contact", 5000, false).await;
    // Process A dies after committing two pages (of 2,000).
    let a = s
        .run_as(
            "contacts",
            "process-a",
            &RunOptions {
                stop_after_pages: Some(2),
                ..RunOptions::default()
            },
        )
        .await;
    assert!(a.abandoned);
    assert_eq!(a.added, 4000);
    // Its lease still holds the sync…
    let now = s.app.state.clock.now_ms();
    let row = s.sync_row("contacts").await;
    assert!(s
        .app
        .state
        .store
        .claim_sync(row.id, "process-b", now, s.settings.lease_ms)
        .await
        .expect("claim")
        .is_none());
    // …until it expires; then process B resumes from the last committed checkpoint.
    s.advance_secs(s.settings.lease_ms / 1000 + 1).await;
    let b = s
        .run_as("contacts", "process-b", &RunOptions::default())
        .await;
    assert_eq!(b.error, None);
    assert_eq!(b.added, 1000, "only the rest is added");
    assert_eq!(b.updated, 0);
    assert_eq!(a.added + b.added, 5000, "no record reported ADDED twice");
    assert_eq!(
        s.live_payloads("Contact").await,
        s.ground_truth(&contacts(&s)).await
    );
    assert_eq!(s.count_action("Contact", RecordAction::Added).await, 5000);
}
on_both_databases!(
    killed_run_resumes,
    a_run_killed_mid_way_resumes_without_reporting_twice
);

async fn an_interrupted_bulk_load_restarts_without_reporting_twice(db: Db) {
    let mut s = SyncApp::start(db).await;
    s.settings.bulk_threshold = 1000;
    s.settings.bulk_page_size = 1500;
    s.seed("Contact", 6000, false).await;
    let a = s
        .run_as(
            "contacts",
            "process-a",
            &RunOptions {
                stop_after_pages: Some(2),
                ..RunOptions::default()
            },
        )
        .await;
    assert_eq!(a.mode, Some(LoadMode::Bulk));
    assert_eq!(a.added, 3000);
    s.advance_secs(s.settings.lease_ms / 1000 + 1).await;
    let b = s
        .run_as("contacts", "process-b", &RunOptions::default())
        .await;
    assert_eq!(b.mode, Some(LoadMode::Bulk), "a new job for the rest");
    assert_eq!((b.added, b.updated), (3000, 0));
    assert_eq!(
        s.live_payloads("Contact").await,
        s.ground_truth(&contacts(&s)).await
    );
}
on_both_databases!(
    bulk_resume,
    an_interrupted_bulk_load_restarts_without_reporting_twice
);

fn syncs_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("syncs.yaml");
    std::fs::write(
        &path,
        r#"
syncs:
  - name: contacts-plus
    object: Contact
    model: ContactPlus
    fields:
      email: Email
      nickname: Nickname__c
  - name: invoices
    object: Invoice__c
    fields:
      name: Name
      amount: Amount__c
      paid: Paid__c
      account_name: Account__r.Name
    filter: "Amount__c > 0"
"#,
    )
    .expect("write");
    path
}

async fn missing_fields_are_dropped_and_custom_objects_sync(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let path = syncs_file(dir.path());
    let s = SyncApp::start_with(db, |c| c.syncs_file = Some(path)).await;
    s.seed("Contact", 30, false).await;

    // Nickname__c does not exist yet: dropped with a warning, the rest syncs.
    let report = s.run("contacts-plus").await;
    assert_eq!(report.error, None);
    assert_eq!(report.added, 30);
    assert!(
        report.warnings.iter().any(|w| w.contains("Nickname__c")),
        "{:?}",
        report.warnings
    );
    let stored = s.live_payloads("ContactPlus").await;
    assert!(stored
        .values()
        .all(|v| v["email"].is_string() && v["nickname"].is_null()));
    let row = s.sync_row("contacts-plus").await;
    let last = row.last_run.expect("run");
    assert_eq!(last.status, "SUCCESS");
    assert!(last.error.unwrap_or_default().contains("Nickname__c"));

    // The field is added to the org later: the next run picks it up.
    s.admin(
        reqwest::Method::POST,
        "/orgs/Acme/objects",
        json!({"name": "Contact", "fields": [{"name": "Nickname__c", "type": "string"}]}),
    )
    .await;
    s.advance_secs(60).await;
    let id = s.ids("Contact", 1).await.remove(0);
    s.admin(
        reqwest::Method::PATCH,
        &format!("/orgs/Acme/records/Contact/{id}"),
        json!({"Nickname__c": "Ace"}),
    )
    .await;
    let report = s.run("contacts-plus").await;
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(s.live_payloads("ContactPlus").await[&id]["nickname"], "Ace");

    // A custom object with a custom parent relationship, filtered.
    s.admin(
        reqwest::Method::POST,
        "/orgs/Acme/objects",
        json!({"name": "Invoice__c", "fields": [
            {"name": "Amount__c", "type": "currency"},
            {"name": "Paid__c", "type": "boolean"},
            {"name": "Account__c", "type": "reference", "reference_to": "Account", "relationship_name": "Account__r"}
        ]}),
    )
    .await;
    let account = s
        .admin(
            reqwest::Method::POST,
            "/orgs/Acme/records/Account",
            json!({"Name": "Invoiced Inc"}),
        )
        .await;
    for (i, amount) in [120.5, 0.0, 99.0].iter().enumerate() {
        s.admin(
            reqwest::Method::POST,
            "/orgs/Acme/records/Invoice__c",
            json!({"Name": format!("INV-{i}"), "Amount__c": amount, "Paid__c": i == 2, "Account__c": account["id"]}),
        )
        .await;
    }
    let report = s.run("invoices").await;
    assert_eq!(report.error, None);
    assert_eq!(report.added, 2, "the filter leaves the zero invoice out");
    let invoices = s.live_payloads("Invoice").await;
    let def = s.app.state.syncs.get("invoices").expect("def").clone();
    let mut truth = s.ground_truth(&def).await;
    truth.retain(|_, v| v["amount"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(invoices, truth);
    assert!(invoices
        .values()
        .all(|v| v["account_name"] == "Invoiced Inc"));
    assert!(invoices.values().any(|v| v["paid"] == Value::Bool(true)));
}
on_both_databases!(
    fields_and_custom_objects,
    missing_fields_are_dropped_and_custom_objects_sync
);

async fn runs_pause_when_the_api_budget_is_nearly_spent(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Contact", 10, false).await;
    let org = ferry_server::upstream::org_of(&s.connection).expect("org");
    s.app.state.org_limits.record_limit_info(
        &org,
        "api-usage=900/1000",
        s.app.state.clock.now_ms(),
    );
    let report = s.run("contacts").await;
    assert!(report.budget_paused);
    assert!(report.error.as_deref().unwrap_or_default().contains("90%"));
    assert_eq!(report.added, 0);
    assert!(
        s.sync_webhooks("contacts").await.is_empty(),
        "a budget pause is not a failure webhook"
    );
    let row = s.sync_row("contacts").await;
    assert!(row.next_run_at.expect("scheduled") > s.app.state.clock.now_ms());
}
on_both_databases!(budget_pause, runs_pause_when_the_api_budget_is_nearly_spent);

async fn a_failing_sync_is_retried_soon_once_then_at_its_frequency(db: Db) {
    let s = SyncApp::start(db).await;
    s.seed("Contact", 5, false).await;
    s.admin(
        reqwest::Method::POST,
        "/faults",
        json!({"path_prefix": "/services/data/", "status": 503, "count": 100}),
    )
    .await;
    let first = s.run("contacts").await;
    assert!(first.error.is_some());
    let now = s.app.state.clock.now_ms();
    assert_eq!(
        s.sync_row("contacts").await.next_run_at,
        Some(now + s.settings.retry_after_error_secs * 1000)
    );
    let second = s.run("contacts").await;
    assert!(second.error.is_some());
    assert_eq!(
        s.sync_row("contacts").await.next_run_at,
        Some(now + 3600 * 1000),
        "a sync that keeps failing waits for its frequency"
    );
    let failures = s
        .sync_webhooks("contacts")
        .await
        .into_iter()
        .filter(|w| w["success"] == false)
        .count();
    assert_eq!(failures, 2, "one failure webhook per failed run");
    s.admin(reqwest::Method::DELETE, "/faults", json!({})).await;
    let third = s.run("contacts").await;
    assert_eq!((third.error, third.added), (None, 5));
}
on_both_databases!(
    failure_backoff,
    a_failing_sync_is_retried_soon_once_then_at_its_frequency
);

async fn bulk_parent_fields_keep_their_types_like_rest(db: Db) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("syncs.yaml");
    std::fs::write(
        &path,
        r#"
syncs:
  - name: contacts-sized
    object: Contact
    model: SizedContact
    fields:
      last_name: LastName
      account_employees: Account.NumberOfEmployees
      account_revenue: Account.AnnualRevenue
      account_name: Account.Name
"#,
    )
    .expect("write");
    let mut s = SyncApp::start_with(db, |c| c.syncs_file = Some(path)).await;
    s.settings.bulk_threshold = 1000;
    s.seed("Account", 20, false).await;
    s.seed("Contact", 1500, false).await;
    let first = s.run("contacts-sized").await;
    assert_eq!(first.error, None);
    assert_eq!(first.mode, Some(LoadMode::Bulk));
    let def = s
        .app
        .state
        .syncs
        .get("contacts-sized")
        .expect("def")
        .clone();
    let stored = s.live_payloads("SizedContact").await;
    assert!(
        stored.values().any(|p| p["account_employees"].is_number()),
        "a parent's number stays a number through Bulk CSV"
    );
    assert_eq!(stored, s.ground_truth(&def).await);
    // A REST re-read of the same rows is no change.
    s.advance_secs(30).await;
    let again = s.run("contacts-sized").await;
    assert_eq!(again.error, None);
    assert_eq!((again.added, again.updated), (0, 0));
}
on_both_databases!(
    bulk_parent_types,
    bulk_parent_fields_keep_their_types_like_rest
);
