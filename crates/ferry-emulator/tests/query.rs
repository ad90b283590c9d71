//! REST query tests over real HTTP: paging with root-relative locators, batch sizes, queryAll, relationship fields, COUNT(), FIELDS(), encodings and Salesforce's query errors.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{url_encode, Org};

#[tokio::test]
async fn pages_follow_root_relative_locators_under_query_and_query_all() {
    let org = Org::demo().await;
    let soql = "SELECT Id FROM Contact ORDER BY SystemModstamp, Id";
    let (status, first) = org
        .get_raw(
            &format!("/services/data/v59.0/query?q={}", url_encode(soql)),
            Some(200),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["totalSize"], 600);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().expect("records").len(), 200);
    let next = first["nextRecordsUrl"].as_str().expect("next").to_string();
    assert!(next.starts_with("/services/data/v59.0/query/01g"), "{next}");
    assert!(next.ends_with("-200"), "{next}");

    // Some clients re-request the locator under /queryAll/ even for a plain query.
    let locator = next.rsplit('/').next().expect("locator");
    let (status, via_all) = org
        .get_raw(&format!("/services/data/v59.0/queryAll/{locator}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, second) = org.get_raw(&next, None).await;
    assert_eq!(second["records"], via_all["records"]);
    assert_eq!(second["totalSize"], 600);

    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        for r in page["records"].as_array().expect("records") {
            seen.push(r["Id"].as_str().expect("id").to_string());
        }
        match page["nextRecordsUrl"].as_str() {
            Some(n) => page = org.get_raw(n, None).await.1,
            None => break,
        }
    }
    assert_eq!(page["done"], true);
    assert!(page.get("nextRecordsUrl").is_none());
    let unique: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 600);
    assert_eq!(unique.len(), 600);
}

#[tokio::test]
async fn expired_and_unknown_locators_are_invalid() {
    let org = Org::demo().await;
    let (_, first) = org.query("SELECT Id FROM Contact").await;
    assert_eq!(first["records"].as_array().expect("records").len(), 600);
    let (_, first) = org
        .get_raw(
            &format!(
                "/services/data/v59.0/query?q={}",
                url_encode("SELECT Id FROM Contact")
            ),
            Some(200),
        )
        .await;
    let next = first["nextRecordsUrl"].as_str().expect("next").to_string();
    let (status, body) = org
        .get_raw("/services/data/v59.0/query/01gXXXXXXXXXXXX-200", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
    org.http
        .post(format!("{}/__emulator/clock", org.emulator.production_url))
        .json(&json!({"advance_secs": 16 * 60}))
        .send()
        .await
        .expect("clock");
    let (status, body) = org.get_raw(&next, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn plus_and_percent_twenty_both_mean_space() {
    let org = Org::demo().await;
    let (s1, a) = org
        .get_raw(
            "/services/data/v59.0/query?q=SELECT+COUNT()+FROM+Account",
            None,
        )
        .await;
    let (s2, b) = org
        .get_raw(
            "/services/data/v59.0/query/?q=SELECT%20COUNT()%20FROM%20Account",
            None,
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_eq!(a, json!({"totalSize": 300, "done": true, "records": []}));
    assert_eq!(a, b);
}

#[tokio::test]
async fn relationship_fields_nest_and_nulls_are_present() {
    let org = Org::demo().await;
    let (status, body) = org
        .query("SELECT Id, Name, Account.Name, Owner.Name, Birthdate FROM Contact WHERE AccountId != null LIMIT 3")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = &body["records"][0];
    assert_eq!(r["attributes"]["type"], "Contact");
    assert!(r["attributes"]["url"]
        .as_str()
        .expect("url")
        .starts_with("/services/data/v59.0/sobjects/Contact/003"));
    assert_eq!(r["Account"]["attributes"]["type"], "Account");
    assert!(r["Account"]["Name"].as_str().is_some());
    assert_eq!(r["Owner"]["Name"], "Admin User");
    assert!(r.as_object().expect("object").contains_key("Birthdate"));
    assert_eq!(r["Birthdate"], Value::Null);

    let (_, created) = {
        let resp = org
            .http
            .post(format!(
                "{}/services/data/v59.0/sobjects/Contact",
                org.instance
            ))
            .bearer_auth(&org.token)
            .json(&json!({"LastName": "Orphan"}))
            .send()
            .await
            .expect("create");
        (resp.status(), resp.json::<Value>().await.expect("json"))
    };
    let id = created["id"].as_str().expect("id");
    let (_, body) = org
        .query(&format!(
            "SELECT Account.Name FROM Contact WHERE Id = '{}'",
            &id[..15]
        ))
        .await;
    assert_eq!(
        body["totalSize"], 1,
        "15-character ids match their 18-character form: {body}"
    );
    assert_eq!(body["records"][0]["Account"], Value::Null);
}

#[tokio::test]
async fn query_all_includes_deleted_records() {
    let org = Org::demo().await;
    let (_, body) = org.query("SELECT Id FROM Lead LIMIT 1").await;
    let id = body["records"][0]["Id"].as_str().expect("id").to_string();
    let resp = org
        .http
        .delete(format!(
            "{}/services/data/v59.0/sobjects/Lead/{id}",
            org.instance
        ))
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let soql = format!("SELECT Id, IsDeleted FROM Lead WHERE Id = '{id}'");
    let (_, live) = org.query(&soql).await;
    assert_eq!(live["totalSize"], 0);
    let (status, all) = org
        .get_raw(
            &format!("/services/data/v59.0/queryAll?q={}", url_encode(&soql)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["totalSize"], 1);
    assert_eq!(all["records"][0]["IsDeleted"], true);
    let (_, count) = org.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(count["totalSize"], 299);
}

#[tokio::test]
async fn filters_order_limit_offset_and_datetime_literals() {
    let org = Org::demo().await;
    let (status, body) = org
        .query("SELECT Name, AnnualRevenue FROM Account WHERE AnnualRevenue >= 1000000 AND (Industry = 'Energy' OR Industry IN ('Banking','Retail')) AND NOT Name LIKE 'zzz%' ORDER BY AnnualRevenue DESC NULLS LAST, Name ASC LIMIT 5 OFFSET 2")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let amounts: Vec<f64> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["AnnualRevenue"].as_f64().expect("amount"))
        .collect();
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]), "{amounts:?}");
    assert!(amounts.len() <= 5);

    let (status, body) = org.query("SELECT Id, SystemModstamp FROM Contact WHERE SystemModstamp > 2000-01-01T00:00:00Z ORDER BY SystemModstamp ASC LIMIT 1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stamp = body["records"][0]["SystemModstamp"]
        .as_str()
        .expect("stamp");
    assert!(stamp.ends_with(".000+0000"), "{stamp}");
    let (status, body) = org
        .query("SELECT Id FROM Contact WHERE SystemModstamp > 2999-01-01T00:00:00.000+01:00")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalSize"], 0);
}

#[tokio::test]
async fn fields_function_needs_a_small_limit() {
    let org = Org::demo().await;
    let (status, body) = org.query("SELECT FIELDS(ALL) FROM Account").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
    assert!(body[0]["message"]
        .as_str()
        .expect("message")
        .contains("LIMIT of at most 200"));
    let (status, body) = org.query("SELECT FIELDS(ALL) FROM Account LIMIT 200").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["records"][0].get("BillingCity").is_some());
    let (status, _) = org.query("SELECT FIELDS(STANDARD) FROM Account").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bad_queries_get_salesforce_error_codes() {
    let org = Org::demo().await;
    let cases = [
        ("SELECT Foo FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("SELECT Id FROM", "MALFORMED_QUERY"),
        ("SELEC Id FROM Account", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Account WHERE Name = 'unterminated",
            "MALFORMED_QUERY",
        ),
        ("SELECT Id FROM Account OFFSET 2001", "MALFORMED_QUERY"),
        (
            "SELECT Id FROM Account WHERE CreatedDate > '2024-01-01'",
            "INVALID_FIELD",
        ),
    ];
    for (soql, code) in cases {
        let (status, body) = org.query(soql).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{soql}: {body}");
        assert_eq!(body[0]["errorCode"], code, "{soql}: {body}");
    }
    let (_, body) = org.query("SELECT Foo FROM Account").await;
    let message = body[0]["message"].as_str().expect("message");
    assert!(
        message.contains("No such column 'Foo' on entity 'Account'"),
        "{message}"
    );
    assert!(message.contains("ERROR at Row:1:Column:8"), "{message}");
    let (status, body) = org.get_raw("/services/data/v59.0/query", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
}
