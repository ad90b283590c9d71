//! REST API tests over real HTTP: discovery, limits and errors, describe, CRUD, upsert, replication, composite, and the admin API's clock, faults, stats and migration.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{url_encode, Org};

#[tokio::test]
async fn versions_list_needs_no_session_and_labels_releases() {
    let org = Org::demo().await;
    let resp = org
        .http
        .get(format!("{}/services/data/", org.instance))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("sforce-limit-info").is_none());
    let list: Value = resp.json().await.expect("json");
    let v59 = list
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["version"] == "59.0")
        .expect("v59");
    assert_eq!(v59["label"], "Winter '24");
    assert_eq!(v59["url"], "/services/data/v59.0");
    let v66 = list
        .as_array()
        .expect("array")
        .iter()
        .find(|v| v["version"] == "66.0")
        .expect("v66");
    assert_eq!(v66["label"], "Spring '26");
    assert!(list
        .as_array()
        .expect("array")
        .iter()
        .any(|v| v["version"] == "31.0"));
}

#[tokio::test]
async fn resources_list_includes_identity_and_limit_info_header() {
    let org = Org::demo().await;
    let (status, headers, body) = org.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["query"], "/services/data/v59.0/query");
    assert!(body["identity"]
        .as_str()
        .expect("identity")
        .contains("/id/00D"));
    let limit = headers
        .get("sforce-limit-info")
        .expect("limit info")
        .to_str()
        .expect("str");
    assert!(limit.starts_with("api-usage="), "{limit}");
    assert_eq!(
        headers.get("content-type").expect("content type"),
        "application/json;charset=UTF-8"
    );
}

#[tokio::test]
async fn unknown_versions_and_bad_tokens_get_salesforce_errors() {
    let org = Org::demo().await;
    let resp = org
        .http
        .get(format!("{}/services/data/v12.0/limits", org.instance))
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");

    for auth in [None, Some("Bearer nope"), Some("Basic abc")] {
        let mut req = org.http.get(org.url("/limits"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("get");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body: Value = resp.json().await.expect("401 body is a JSON array");
        assert_eq!(
            body,
            json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        );
    }
    // The older `OAuth` scheme is accepted.
    let resp = org
        .http
        .get(org.url("/limits"))
        .header("authorization", format!("OAuth {}", org.token))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn daily_allowance_runs_out_with_request_limit_exceeded() {
    let org = Org::demo().await;
    let org_id = org.emulator.demo_org_id.clone().expect("demo org");
    org.admin(
        reqwest::Method::PATCH,
        &format!("/orgs/{org_id}"),
        json!({"api_daily_limit": 3, "api_used": 0}),
    )
    .await;
    for expected in 1..=3 {
        let (status, headers, _) = org.get("/limits").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers["sforce-limit-info"],
            format!("api-usage={expected}/3").as_str()
        );
    }
    let (status, headers, body) = org.get("/limits").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(headers["sforce-limit-info"], "api-usage=3/3");
}

#[tokio::test]
async fn api_disabled_orgs_refuse_rest_calls() {
    let org = Org::demo().await;
    org.admin(
        reqwest::Method::PATCH,
        "/orgs/Acme",
        json!({"api_disabled": true}),
    )
    .await;
    let (status, _, body) = org.get("/limits").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body[0]["errorCode"], "API_DISABLED_FOR_ORG");
}

#[tokio::test]
async fn limits_report_usage() {
    let org = Org::demo().await;
    let (status, _, body) = org.get("/limits").await;
    assert_eq!(status, StatusCode::OK);
    let max = body["DailyApiRequests"]["Max"].as_u64().expect("max");
    let remaining = body["DailyApiRequests"]["Remaining"]
        .as_u64()
        .expect("remaining");
    assert_eq!(max - remaining, 1);
    assert!(body["DailyBulkV2QueryJobs"]["Max"].as_u64().is_some());
    assert_eq!(body["PermissionSets"]["CreateCustom"]["Max"], 1000);
}

#[tokio::test]
async fn describe_global_and_object_describe_have_salesforce_shapes() {
    let org = Org::demo().await;
    let (status, _, body) = org.get("/sobjects/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["encoding"], "UTF-8");
    assert_eq!(body["maxBatchSize"], 200);
    let names: Vec<&str> = body["sobjects"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    for n in ["Account", "Contact", "Lead", "Opportunity", "Case", "User"] {
        assert!(names.contains(&n), "{n} missing");
    }
    let account = body["sobjects"]
        .as_array()
        .expect("array")
        .iter()
        .find(|o| o["name"] == "Account")
        .expect("account");
    assert_eq!(account["keyPrefix"], "001");
    assert_eq!(
        account["urls"]["rowTemplate"],
        "/services/data/v59.0/sobjects/Account/{ID}"
    );

    let (status, _, body) = org.get("/sobjects/Contact/describe").await;
    assert_eq!(status, StatusCode::OK);
    let fields = body["fields"].as_array().expect("fields");
    let account_id = fields
        .iter()
        .find(|f| f["name"] == "AccountId")
        .expect("AccountId");
    assert_eq!(account_id["type"], "reference");
    assert_eq!(account_id["referenceTo"], json!(["Account"]));
    assert_eq!(account_id["relationshipName"], "Account");
    assert_eq!(account_id["soapType"], "tns:ID");
    let last = fields
        .iter()
        .find(|f| f["name"] == "LastName")
        .expect("LastName");
    assert_eq!(last["nillable"], false);
    assert_eq!(last["createable"], true);
    let modstamp = fields
        .iter()
        .find(|f| f["name"] == "SystemModstamp")
        .expect("SystemModstamp");
    assert_eq!(modstamp["updateable"], false);
    let (_, _, lead) = org.get("/sobjects/Lead/describe").await;
    let status_field = lead["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "Status")
        .expect("Status");
    assert_eq!(status_field["type"], "picklist");
    assert!(
        status_field["picklistValues"]
            .as_array()
            .expect("values")
            .len()
            >= 3
    );

    let (status, _, body) = org.get("/sobjects/Nope__c/describe").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
    let (status, _, body) = org.get("/sobjects/Account").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["objectDescribe"]["name"], "Account");
}

#[tokio::test]
async fn create_retrieve_update_delete_follow_salesforce() {
    let org = Org::demo().await;
    let (status, body) = org
        .send(
            reqwest::Method::POST,
            "/sobjects/Account/",
            Some(json!({"Name": "Emulated Inc.", "NumberOfEmployees": 12})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["success"], true);
    assert_eq!(body["errors"], json!([]));
    let id = body["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));

    let (status, _, record) = org.get(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["attributes"]["type"], "Account");
    assert_eq!(record["Name"], "Emulated Inc.");
    assert_eq!(record["IsDeleted"], false);
    assert_eq!(record["Website"], Value::Null);
    let stamp = record["SystemModstamp"].as_str().expect("stamp");
    assert!(stamp.ends_with(".000+0000"), "{stamp}");
    // 15-character ids are accepted too.
    let (status, _, partial) = org
        .get(&format!(
            "/sobjects/Account/{}?fields=Name,Industry",
            &id[..15]
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(partial["Name"], "Emulated Inc.");
    assert!(partial.get("Website").is_none());

    let (status, body) = org
        .send(
            reqwest::Method::PATCH,
            &format!("/sobjects/Account/{id}"),
            Some(json!({"Industry": "Energy"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, _, record) = org.get(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(record["Industry"], "Energy");

    let (status, _) = org
        .send(
            reqwest::Method::DELETE,
            &format!("/sobjects/Account/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = org
        .send(
            reqwest::Method::DELETE,
            &format!("/sobjects/Account/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "ENTITY_IS_DELETED");
    let (status, _, body) = org.get(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn bad_writes_get_salesforce_error_codes() {
    let org = Org::demo().await;
    let cases = [
        (
            json!({"Industry": "Energy"}),
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
        ),
        (
            json!({"Name": "x", "Nope": 1}),
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
        ),
        (
            json!({"Name": "x", "SystemModstamp": "2024-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
        ),
        (
            json!({"Name": "x", "ParentId": "not-an-id"}),
            StatusCode::BAD_REQUEST,
            "MALFORMED_ID",
        ),
        (
            json!({"Name": "x", "NumberOfEmployees": "many"}),
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
        ),
    ];
    for (body, status, code) in cases {
        let (got, err) = org
            .send(
                reqwest::Method::POST,
                "/sobjects/Account",
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, status, "{body} → {err}");
        assert_eq!(err[0]["errorCode"], code, "{body} → {err}");
    }
    let (status, err) = org
        .send(reqwest::Method::POST, "/sobjects/Account", Some(json!([1])))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "JSON_PARSER_ERROR");
    let resp = org
        .http
        .post(org.url("/sobjects/Account"))
        .bearer_auth(&org.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: Value = resp.json().await.expect("json");
    assert_eq!(err[0]["errorCode"], "JSON_PARSER_ERROR");
    let (status, err) = org
        .send(
            reqwest::Method::PATCH,
            "/sobjects/Account/001xx",
            Some(json!({"Name": "y"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err[0]["errorCode"], "MALFORMED_ID");
    let (status, err) = org
        .send(
            reqwest::Method::POST,
            "/sobjects/Nope__c",
            Some(json!({"Name": "y"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err[0]["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn custom_objects_upsert_by_external_id_and_duplicates() {
    let org = Org::demo().await;
    org.admin(
        reqwest::Method::POST,
        "/orgs/Acme/objects",
        json!({"name": "Invoice__c", "fields": [
            {"name": "Amount__c", "type": "currency"},
            {"name": "Number__c", "type": "string", "external_id": true, "unique": true},
            {"name": "Account__c", "type": "reference", "reference_to": "Account", "relationship_name": "Account__r"}
        ]}),
    )
    .await;
    let (status, body) = org
        .send(
            reqwest::Method::PATCH,
            "/sobjects/Invoice__c/Number__c/INV-1",
            Some(json!({"Name": "First", "Amount__c": 10.5})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], true);
    let id = body["id"].as_str().expect("id").to_string();
    let (status, body) = org
        .send(
            reqwest::Method::PATCH,
            "/sobjects/Invoice__c/Number__c/INV-1",
            Some(json!({"Amount__c": 11})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(body["id"], id.as_str());
    let (_, _, record) = org.get("/sobjects/Invoice__c/Number__c/INV-1").await;
    assert_eq!(record["Amount__c"], 11.0);
    let (status, body) = org
        .send(
            reqwest::Method::POST,
            "/sobjects/Invoice__c",
            Some(json!({"Name": "Dup", "Number__c": "INV-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "DUPLICATE_VALUE");
    let (status, body) = org
        .send(
            reqwest::Method::PATCH,
            "/sobjects/Invoice__c/Name/whatever",
            Some(json!({"Amount__c": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body[0]["message"]
        .as_str()
        .expect("msg")
        .contains("external ID field does not exist"));
    let (_, _, describe) = org.get("/sobjects/Invoice__c/describe").await;
    assert_eq!(describe["custom"], true);
    let number = describe["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == "Number__c")
        .expect("field");
    assert_eq!(number["externalId"], true);
    assert_eq!(number["custom"], true);
}

#[tokio::test]
async fn updated_and_deleted_windows_follow_the_clock() {
    let org = Org::demo().await;
    org.admin(
        reqwest::Method::POST,
        "/clock",
        json!({"set": "2026-03-01T12:00:30Z", "freeze": true}),
    )
    .await;
    let (_, created) = org
        .send(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "Window"})),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_string();
    org.admin(
        reqwest::Method::POST,
        "/clock",
        json!({"advance_secs": 120}),
    )
    .await;
    let (status, _) = org
        .send(
            reqwest::Method::DELETE,
            &format!("/sobjects/Contact/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    org.admin(
        reqwest::Method::POST,
        "/clock",
        json!({"advance_secs": 600}),
    )
    .await;

    let start = "2026-03-01T12%3A00%3A00%2B00%3A00";
    let end = "2026-03-01T13%3A00%3A00%2B00%3A00";
    let (status, _, deleted) = org
        .get(&format!(
            "/sobjects/Contact/deleted/?start={start}&end={end}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["deletedRecords"][0]["id"], id.as_str());
    assert_eq!(
        deleted["deletedRecords"][0]["deletedDate"],
        "2026-03-01T12:02:30.000+0000"
    );
    assert_eq!(deleted["latestDateCovered"], "2026-03-01T12:12:00.000+0000");
    assert!(deleted["earliestDateAvailable"].as_str().is_some());

    let (_, created) = org
        .send(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "Alive"})),
        )
        .await;
    let alive = created["id"].as_str().expect("id").to_string();
    org.admin(reqwest::Method::POST, "/clock", json!({"advance_secs": 60}))
        .await;
    let (status, _, updated) = org
        .get(&format!(
            "/sobjects/Contact/updated/?start={start}&end={end}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["ids"], json!([alive]));

    let (status, _, err) = org
        .get("/sobjects/Contact/updated/?start=yesterday&end=today")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err[0]["errorCode"].as_str().is_some());
    let old = "2025-01-01T00%3A00%3A00%2B00%3A00";
    let (status, _, _) = org
        .get(&format!("/sobjects/Contact/deleted/?start={old}&end={end}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn composite_resolves_references_and_rolls_back_all_or_none() {
    let org = Org::demo().await;
    let (status, body) = org
        .send(
            reqwest::Method::POST,
            "/composite",
            Some(json!({"allOrNone": false, "compositeRequest": [
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "acct", "body": {"Name": "Parent Co"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "con", "body": {"LastName": "Kid", "AccountId": "@{acct.id}"}},
                {"method": "GET", "url": "/services/data/v59.0/sobjects/Contact/@{con.id}", "referenceId": "read"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["compositeResponse"].as_array().expect("items");
    assert_eq!(items[0]["httpStatusCode"], 201);
    assert!(items[0]["httpHeaders"]["Location"]
        .as_str()
        .expect("location")
        .contains("/sobjects/Account/001"));
    assert_eq!(items[2]["body"]["AccountId"], items[0]["body"]["id"]);

    let (status, body) = org
        .send(
            reqwest::Method::POST,
            "/composite",
            Some(json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "ok", "body": {"Name": "Rolled Back"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "bad", "body": {"Industry": "Energy"}}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["compositeResponse"].as_array().expect("items");
    assert_eq!(items[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(items[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");

    let (status, body) = org
        .send(
            reqwest::Method::POST,
            "/composite/sobjects",
            Some(json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Account"}, "Name": "One"},
                {"attributes": {"type": "Account"}}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(body[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");

    let (status, body) = org
        .send(
            reqwest::Method::POST,
            "/composite/sobjects",
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "One"},
                {"attributes": {"type": "Account"}, "Name": "Two"}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = body
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    let (status, _, fetched) = org
        .get(&format!(
            "/composite/sobjects/Account?ids={}&fields=Id,Name",
            ids.join(",")
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched[1]["Name"], "Two");
    let (status, body) = org
        .send(
            reqwest::Method::DELETE,
            &format!("/composite/sobjects?ids={}&allOrNone=false", ids.join(",")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["success"], true);
}

#[tokio::test]
async fn faults_are_injected_counted_and_cleared() {
    let org = Org::demo().await;
    org.admin(
        reqwest::Method::POST,
        "/faults",
        json!({"method": "GET", "path_prefix": "/services/data/v59.0/limits", "status": 503, "body": [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}], "count": 2}),
    )
    .await;
    for _ in 0..2 {
        let (status, _, body) = org.get("/limits").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body[0]["errorCode"], "SERVER_UNAVAILABLE");
    }
    let (status, _, _) = org.get("/limits").await;
    assert_eq!(status, StatusCode::OK);
    org.admin(
        reqwest::Method::POST,
        "/faults",
        json!({"path_prefix": "/services/data", "status": 403, "body": [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded."}]}),
    )
    .await;
    let (status, _, body) = org.get("/sobjects").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body[0]["message"],
        "ConcurrentPerOrgLongTxn Limit exceeded."
    );
    org.admin(reqwest::Method::DELETE, "/faults", json!({}))
        .await;
    let (status, _, _) = org.get("/sobjects").await;
    assert_eq!(status, StatusCode::OK);

    let stats = org.admin(reqwest::Method::GET, "/stats", json!({})).await;
    assert!(stats["api_requests"]["total"].as_u64().expect("total") >= 5);
    assert_eq!(
        stats["api_requests"]["by_path"]["/services/data/v59.0/limits"],
        3
    );
    let stats = org
        .admin(reqwest::Method::POST, "/stats/reset", json!({}))
        .await;
    assert_eq!(stats["api_requests"]["total"], 0);
}

#[tokio::test]
async fn a_fault_after_handling_applies_the_write_and_loses_the_answer() {
    let org = Org::demo().await;
    org.admin(
        reqwest::Method::POST,
        "/faults",
        json!({"method": "POST", "path_prefix": "/services/data/v59.0/sobjects/Contact", "status": 503, "body": "Service Unavailable", "count": 1, "after_handling": true}),
    )
    .await;
    let (status, _) = org
        .send(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "Lost Answer"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = org
        .get("/query?q=SELECT+Id+FROM+Contact+WHERE+LastName+=+'Lost+Answer'")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["totalSize"], 1, "the write happened: {body}");
}

#[tokio::test]
async fn migrate_moves_the_org_and_revoke_tokens_ends_sessions() {
    let org = Org::demo().await;
    let moved = org
        .admin(reqwest::Method::POST, "/orgs/Acme/migrate", json!({}))
        .await;
    assert_eq!(moved["instance_url"], org.emulator.instance2_url.as_str());
    let state = org.admin(reqwest::Method::GET, "/state", json!({})).await;
    let acme = state["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .find(|o| o["name"] == "Acme")
        .expect("acme");
    assert_eq!(acme["instance_url"], org.emulator.instance2_url.as_str());
    let resp = org
        .http
        .get(format!(
            "{}/services/data/v59.0/limits",
            org.emulator.instance2_url
        ))
        .bearer_auth(&org.token)
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), StatusCode::OK);

    org.admin(reqwest::Method::POST, "/orgs/Acme/revoke-tokens", json!({}))
        .await;
    let (status, _, _) = org.get("/limits").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn admin_state_lists_demo_orgs_apps_and_users() {
    let org = Org::demo().await;
    let state = org.admin(reqwest::Method::GET, "/state", json!({})).await;
    let orgs = state["orgs"].as_array().expect("orgs");
    let sandbox = orgs
        .iter()
        .find(|o| o["name"] == "Acme Sandbox")
        .expect("sandbox");
    assert_eq!(sandbox["sandbox"], true);
    assert_eq!(sandbox["instance_url"], org.emulator.sandbox_url.as_str());
    assert_eq!(
        sandbox["users"][0]["username"],
        "admin@acme.example.sandbox"
    );
    let app = &state["apps"][0];
    assert_eq!(app["client_id"], "ferry-demo-client");
    assert_eq!(app["access_token_ttl_secs"], 7200);

    let created = org
        .admin(
            reqwest::Method::POST,
            "/orgs",
            json!({"name": "Globex", "sandbox": false, "api_daily_limit": 50}),
        )
        .await;
    assert!(created["id"].as_str().expect("id").starts_with("00D"));
    let user = org
        .admin(
            reqwest::Method::POST,
            &format!("/orgs/{}/users", created["id"].as_str().expect("id")),
            json!({"username": "ops@globex.example", "password": "pw"}),
        )
        .await;
    assert!(user["id"].as_str().expect("id").starts_with("005"));
    let resp = org
        .http
        .post(format!("{}/__emulator/orgs", org.emulator.production_url))
        .json(&json!({"nme": "typo"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_salesforce_shape() {
    let org = Org::demo().await;
    let (status, body) = org
        .send(reqwest::Method::PUT, "/sobjects/Account", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body[0]["errorCode"], "METHOD_NOT_ALLOWED");
    let (status, _, body) = org.get("/no/such/resource").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn admin_writes_can_choose_the_system_modstamp_and_seed_shared_stamps() {
    let org = Org::demo().await;
    let created = org
        .admin(
            reqwest::Method::POST,
            "/orgs/Acme/records/Contact",
            json!({"LastName": "Late", "SystemModstamp": "2020-05-05T10:00:00Z"}),
        )
        .await;
    let id = created["id"].as_str().expect("id").to_string();
    let (_, _, record) = org.get(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(record["SystemModstamp"], "2020-05-05T10:00:00.000+0000");
    org.admin(
        reqwest::Method::PATCH,
        &format!("/orgs/Acme/records/Contact/{id}"),
        json!({"Title": "CTO", "SystemModstamp": "2020-05-05T11:00:00Z"}),
    )
    .await;
    let (_, _, record) = org.get(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(record["Title"], "CTO");
    assert_eq!(record["SystemModstamp"], "2020-05-05T11:00:00.000+0000");
    org.admin(
        reqwest::Method::DELETE,
        &format!("/orgs/Acme/records/Contact/{id}?system_modstamp=2020-05-05T12:00:00Z"),
        json!({}),
    )
    .await;
    let (status, _, _) = org.get(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let purged = org
        .admin(
            reqwest::Method::POST,
            "/orgs/Acme/recycle-bin/empty",
            json!({}),
        )
        .await;
    assert_eq!(purged["purged"], 1);

    let seeded = org
        .admin(
            reqwest::Method::POST,
            "/orgs/Acme/seed",
            json!({"counts": {"Lead": 500}, "same_systemmodstamp": true}),
        )
        .await;
    assert_eq!(seeded["created"]["Lead"], 500);
    let q = url_encode("SELECT COUNT() FROM Lead WHERE SystemModstamp = LAST_N_DAYS:0");
    let (_, counted) = org
        .get_raw(&format!("/services/data/v59.0/query?q={q}"), None)
        .await;
    assert!(
        counted["totalSize"].as_u64().expect("n") >= 500,
        "{counted}"
    );
    let resp = org
        .http
        .post(format!(
            "{}/__emulator/orgs/Acme/records/Contact",
            org.emulator.production_url
        ))
        .json(&json!({"FirstName": "No last name"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn recent_requests_keep_method_path_and_headers_and_the_in_flight_peak() {
    let org = Org::demo().await;
    let resp = org
        .http
        .get(org.url("/limits?x=1"))
        .bearer_auth(&org.token)
        .header("X-Probe", "seen")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    let recent: Value = org
        .http
        .get(format!(
            "{}/__emulator/requests?limit=1",
            org.emulator.production_url
        ))
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    assert_eq!(recent.as_array().map(Vec::len), Some(1), "{recent}");
    assert_eq!(recent[0]["method"], "GET");
    assert_eq!(recent[0]["path"], "/services/data/v59.0/limits?x=1");
    assert_eq!(recent[0]["headers"]["x-probe"], "seen");
    assert_eq!(
        recent[0]["headers"]["authorization"],
        format!("Bearer {}", org.token)
    );
    let stats: Value = org
        .http
        .get(format!("{}/__emulator/stats", org.emulator.production_url))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["in_flight_peak"], 1);
}

#[tokio::test]
async fn the_stream_and_sink_scaffolding_count_bytes() {
    let org = Org::demo().await;
    let body = org
        .http
        .get(format!(
            "{}/__emulator/stream?bytes=100000&chunk=1000",
            org.emulator.production_url
        ))
        .send()
        .await
        .expect("stream")
        .bytes()
        .await
        .expect("body");
    assert_eq!(body.len(), 100_000);
    let sunk: Value = org
        .http
        .post(format!("{}/__emulator/sink", org.emulator.production_url))
        .body(vec![b'y'; 12345])
        .send()
        .await
        .expect("sink")
        .json()
        .await
        .expect("json");
    assert_eq!(sunk["bytes"], 12345);
    let stats = &org.emulator.state.stats;
    use std::sync::atomic::Ordering;
    assert_eq!(stats.stream_produced.load(Ordering::SeqCst), 100_000);
    assert_eq!(stats.sink_received.load(Ordering::SeqCst), 12345);
}
