//! The data clients against the emulator: REST query paging with locators, `COUNT()`, Bulk API 2.0 jobs read page by page, describe, and `getDeleted`.

use ferry_emulator::{start, EmulatorConfig, RunningEmulator};
use ferry_salesforce::transport::{latest_version, StaticTransport};
use ferry_salesforce::{bulk, data, query};
use serde_json::{json, Value};
use std::collections::BTreeSet;

struct Org {
    emulator: RunningEmulator,
    http: reqwest::Client,
    transport: StaticTransport,
}

impl Org {
    async fn new() -> Org {
        let emulator = start(EmulatorConfig {
            seed_demo_data: false,
            ..EmulatorConfig::ephemeral()
        })
        .await
        .expect("emulator");
        let http = reqwest::Client::new();
        let minted: Value = http
            .post(format!(
                "{}/__emulator/orgs/Acme/tokens",
                emulator.production_url
            ))
            .json(&json!({}))
            .send()
            .await
            .expect("mint")
            .json()
            .await
            .expect("json");
        let transport = StaticTransport {
            http: http.clone(),
            instance_url: minted["instance_url"].as_str().expect("url").to_string(),
            access_token: minted["access_token"].as_str().expect("token").to_string(),
        };
        Org {
            emulator,
            http,
            transport,
        }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(
                method,
                format!("{}/__emulator{path}", self.emulator.production_url),
            )
            .json(&body)
            .send()
            .await
            .expect("admin");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.expect("json")
    }

    async fn seed_contacts(&self, n: usize) {
        self.admin(
            reqwest::Method::POST,
            "/orgs/Acme/seed",
            json!({"counts": {"Contact": n}}),
        )
        .await;
    }
}

#[tokio::test]
async fn rest_query_pages_through_every_record_once() {
    let org = Org::new().await;
    org.seed_contacts(2500).await;
    let version = latest_version(&org.transport).await.expect("version");
    let soql = "SELECT Id, Email, Account.Name FROM Contact ORDER BY Id";
    assert_eq!(
        query::count(&org.transport, &version, "SELECT COUNT() FROM Contact")
            .await
            .expect("count"),
        2500
    );
    let mut pager = query::QueryPager::new(&org.transport, &version, soql, false, 1000);
    let mut ids = BTreeSet::new();
    let mut pages = 0;
    while let Some(page) = pager.next_page().await.expect("page") {
        assert_eq!(page.total_size, 2500);
        assert!(page.records.len() <= 1000);
        pages += 1;
        for r in page.records {
            assert!(r.get("Account").is_some(), "parents nest: {r}");
            ids.insert(r["Id"].as_str().expect("id").to_string());
        }
    }
    assert_eq!(ids.len(), 2500);
    assert_eq!(pages, 3);
    assert!(pager.next_page().await.expect("after end").is_none());
}

#[tokio::test]
async fn a_bad_query_is_a_salesforce_error() {
    let org = Org::new().await;
    let version = latest_version(&org.transport).await.expect("version");
    let mut pager = query::QueryPager::new(
        &org.transport,
        &version,
        "SELECT Nope FROM Contact",
        false,
        2000,
    );
    match pager.next_page().await {
        Err(ferry_salesforce::transport::ApiError::Salesforce(e)) => {
            assert_eq!(e.code(), "INVALID_FIELD")
        }
        other => panic!("expected INVALID_FIELD, got {other:?}"),
    }
}

#[tokio::test]
async fn bulk_results_equal_the_rest_records() {
    let org = Org::new().await;
    org.seed_contacts(1200).await;
    let version = latest_version(&org.transport).await.expect("version");
    let soql = "SELECT Id, Email, HasOptedOutOfEmail, SystemModstamp, Account.Name FROM Contact ORDER BY Id";
    let job = bulk::create_job(&org.transport, &version, soql, false)
        .await
        .expect("job");
    let mut waits = 0;
    let done = bulk::wait_for_completion(&org.transport, &version, &job.id, |_| {
        waits += 1;
        async {}
    })
    .await
    .expect("complete");
    assert_eq!(done.state, "JobComplete");
    assert!(waits >= 1);
    let describe = data::describe(&org.transport, &version, "Contact")
        .await
        .expect("describe");
    let mut pager = bulk::ResultPager::new(&org.transport, &version, &job.id, 500);
    let mut from_bulk = Vec::new();
    let mut pages = 0;
    while let Some(page) = pager.next_page().await.expect("page") {
        pages += 1;
        let kinds: Vec<bulk::ValueKind> = page
            .headers
            .iter()
            .map(|h| {
                describe
                    .field(h)
                    .map(|f| bulk::ValueKind::of_describe_type(&f.field_type))
                    .unwrap_or(bulk::ValueKind::Text)
            })
            .collect();
        for row in &page.rows {
            from_bulk.push(bulk::row_to_record(&page.headers, &kinds, row));
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(from_bulk.len(), 1200);
    let mut rest = Vec::new();
    let mut q = query::QueryPager::new(&org.transport, &version, soql, false, 2000);
    while let Some(page) = q.next_page().await.expect("page") {
        rest.extend(page.records);
    }
    for (b, r) in from_bulk.iter().zip(&rest) {
        for field in ["Id", "Email", "HasOptedOutOfEmail", "SystemModstamp"] {
            assert_eq!(b[field], r[field], "{field}");
        }
        let name = |v: &Value| v.get("Account").and_then(|a| a.get("Name")).cloned();
        assert_eq!(
            name(b).unwrap_or(Value::Null),
            name(r).unwrap_or(Value::Null)
        );
    }
}

#[tokio::test]
async fn describe_and_get_deleted() {
    let org = Org::new().await;
    org.seed_contacts(3).await;
    let version = latest_version(&org.transport).await.expect("version");
    let d = data::describe(&org.transport, &version, "Contact")
        .await
        .expect("describe");
    assert!(d.has_path("Email"));
    assert!(d.has_path("Account.Name"));
    assert!(!d.has_path("Nope__c"));
    assert_eq!(
        d.field("HasOptedOutOfEmail").map(|f| f.field_type.as_str()),
        Some("boolean")
    );

    let clock: Value = org
        .admin(reqwest::Method::POST, "/clock", json!({"freeze": true}))
        .await;
    let now = data::parse_datetime(clock["now"].as_str().expect("now")).expect("parse");
    let mut pager = query::QueryPager::new(
        &org.transport,
        &version,
        "SELECT Id FROM Contact",
        false,
        2000,
    );
    let first = pager.next_page().await.expect("page").expect("some");
    let id = first.records[0]["Id"].as_str().expect("id").to_string();
    org.admin(
        reqwest::Method::DELETE,
        &format!("/orgs/Acme/records/Contact/{id}"),
        json!({}),
    )
    .await;
    org.admin(
        reqwest::Method::POST,
        "/clock",
        json!({"advance_secs": 120}),
    )
    .await;
    let deleted = data::get_deleted(
        &org.transport,
        &version,
        "Contact",
        now - 60_000,
        now + 120_000,
    )
    .await
    .expect("deleted");
    assert_eq!(deleted.deleted_records.len(), 1);
    assert_eq!(deleted.deleted_records[0].id, id);
    assert!(deleted.latest_date_covered.is_some());
}
