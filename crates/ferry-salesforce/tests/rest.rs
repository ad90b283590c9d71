//! The REST client against the emulator over real HTTP: version negotiation, CRUD, upsert by external id, describe, limits, userinfo, composite, bounded query paging and Salesforce's errors.

use ferry_salesforce::rest::RestClient;
use ferry_salesforce::transport::{ApiError, StaticTransport};
use serde_json::{json, Value};

struct Org {
    _emulator: ferry_emulator::RunningEmulator,
    admin: String,
    http: reqwest::Client,
    transport: StaticTransport,
}

async fn demo_org() -> Org {
    let emulator = ferry_emulator::start(ferry_emulator::EmulatorConfig {
        seed_demo_data: false,
        ..ferry_emulator::EmulatorConfig::ephemeral()
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
    Org {
        admin: emulator.production_url.clone(),
        transport: StaticTransport {
            http: http.clone(),
            instance_url: minted["instance_url"].as_str().expect("url").to_string(),
            access_token: minted["access_token"].as_str().expect("token").to_string(),
        },
        http,
        _emulator: emulator,
    }
}

#[tokio::test]
async fn crud_round_trip_at_the_negotiated_version() {
    let org = demo_org().await;
    let rest = RestClient::negotiate(&org.transport)
        .await
        .expect("version");
    assert!(rest.version().starts_with('v'));
    let id = rest
        .create(
            "Contact",
            &json!({"LastName": "Lovelace", "Email": "ada@example.com"}),
        )
        .await
        .expect("create");
    rest.update("Contact", &id, &json!({"Title": "Countess"}))
        .await
        .expect("update");
    let got = rest
        .get("Contact", &id, Some(&["LastName".into(), "Title".into()]))
        .await
        .expect("get");
    assert_eq!(got["LastName"], "Lovelace");
    assert_eq!(got["Title"], "Countess");
    rest.delete("Contact", &id).await.expect("delete");
    match rest.get("Contact", &id, None).await {
        Err(ApiError::Salesforce(e)) => assert_eq!(e.status, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn upsert_by_external_id_creates_then_updates() {
    let org = demo_org().await;
    let resp = org
        .http
        .post(format!("{}/__emulator/orgs/Acme/objects", org.admin))
        .json(&json!({"name": "Contact", "fields": [{"name": "Ext_Id__c", "type": "string", "external_id": true, "unique": true}]}))
        .send()
        .await
        .expect("define");
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let rest = RestClient::negotiate(&org.transport)
        .await
        .expect("version");
    let first = rest
        .upsert("Contact", "Ext_Id__c", "a/1 x", &json!({"LastName": "One"}))
        .await
        .expect("upsert");
    assert!(first.created);
    let id = first.id.clone().expect("id");
    let second = rest
        .upsert("Contact", "Ext_Id__c", "a/1 x", &json!({"LastName": "Two"}))
        .await
        .expect("upsert again");
    assert!(!second.created);
    let got = rest.get("Contact", &id, None).await.expect("get");
    assert_eq!(got["LastName"], "Two");
}

#[tokio::test]
async fn describe_limits_userinfo_and_composite() {
    let org = demo_org().await;
    let rest = RestClient::negotiate(&org.transport)
        .await
        .expect("version");
    let describe = rest.describe("Account").await.expect("describe");
    assert_eq!(describe["name"], "Account");
    assert!(describe["fields"].as_array().expect("fields").len() > 5);
    let global = rest.describe_global().await.expect("global");
    assert!(global["sobjects"]
        .as_array()
        .expect("sobjects")
        .iter()
        .any(|o| o["name"] == "Lead"));
    let limits = rest.limits().await.expect("limits");
    assert!(limits["DailyApiRequests"]["Max"].as_u64().is_some());
    let me = rest.userinfo().await.expect("userinfo");
    assert_eq!(me["preferred_username"], ferry_emulator::DEMO_USERNAME);
    let composite = rest
        .composite(
            true,
            &[
                json!({"method": "POST", "url": format!("/services/data/{}/sobjects/Account", rest.version()), "referenceId": "acc", "body": {"Name": "Composite Co"}}),
                json!({"method": "POST", "url": format!("/services/data/{}/sobjects/Contact", rest.version()), "referenceId": "con", "body": {"LastName": "C", "AccountId": "@{acc.id}"}}),
            ],
        )
        .await
        .expect("composite");
    let items = composite["compositeResponse"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["httpStatusCode"], 201);
}

#[tokio::test]
async fn query_follows_next_records_url_up_to_the_limit() {
    let org = demo_org().await;
    let resp = org
        .http
        .post(format!("{}/__emulator/orgs/Acme/seed", org.admin))
        .json(&json!({"counts": {"Lead": 450}}))
        .send()
        .await
        .expect("seed");
    assert!(resp.status().is_success());
    let rest = RestClient::negotiate(&org.transport)
        .await
        .expect("version");
    let some = rest
        .query("SELECT Id, LastName FROM Lead", 300)
        .await
        .expect("query");
    assert_eq!(some.records.len(), 300);
    assert!(!some.done);
    assert_eq!(some.total_size, 450);
    let all = rest
        .query("SELECT Id FROM Lead", 10_000)
        .await
        .expect("query all");
    assert_eq!(all.records.len(), 450);
    assert!(all.done);
}

#[tokio::test]
async fn salesforce_errors_keep_their_codes() {
    let org = demo_org().await;
    let rest = RestClient::negotiate(&org.transport)
        .await
        .expect("version");
    match rest
        .create("Contact", &json!({"FirstName": "No last name"}))
        .await
    {
        Err(ApiError::Salesforce(e)) => {
            assert_eq!(e.status, 400);
            assert_eq!(e.code(), "REQUIRED_FIELD_MISSING");
        }
        other => panic!("expected REQUIRED_FIELD_MISSING, got {other:?}"),
    }
    match rest.query("SELECT Nope FROM Contact", 10).await {
        Err(ApiError::Salesforce(e)) => assert_eq!(e.code(), "INVALID_FIELD"),
        other => panic!("expected INVALID_FIELD, got {other:?}"),
    }
}
