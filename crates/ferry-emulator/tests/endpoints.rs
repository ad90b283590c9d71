//! The REST endpoints around records over real HTTP: `composite/batch`, `composite/tree`, SOSL `search` and `parameterizedSearch`, `recent`, and quick actions.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{url_encode, Org};

async fn search(org: &Org, sosl: &str) -> (StatusCode, Value) {
    org.get_raw(
        &format!("/services/data/v59.0/search?q={}", url_encode(sosl)),
        None,
    )
    .await
}

#[tokio::test]
async fn batch_runs_subrequests_independently_and_can_halt_on_error() {
    let org = Org::demo().await;
    let (status, body) = org
        .send(
            Method::POST,
            "/composite/batch",
            Some(json!({"batchRequests": [
                {"method": "POST", "url": "v59.0/sobjects/Account", "richInput": {"Name": "Batched"}},
                {"method": "GET", "url": "v59.0/sobjects/Account/001000000000000AAA"},
                {"method": "GET", "url": "v59.0/query?q=SELECT+COUNT()+FROM+Account+WHERE+Name='Batched'"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["hasErrors"], true);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results[0]["statusCode"], 201);
    assert_eq!(results[0]["result"]["success"], true);
    assert_eq!(results[1]["statusCode"], 404);
    assert_eq!(
        results[2]["result"]["totalSize"], 1,
        "the failure did not undo the create"
    );

    let (_, body) = org
        .send(
            Method::POST,
            "/composite/batch",
            Some(json!({"haltOnError": true, "batchRequests": [
                {"method": "POST", "url": "v59.0/sobjects/Contact", "richInput": {"FirstName": "NoLast"}},
                {"method": "GET", "url": "v59.0/limits"},
            ]})),
        )
        .await;
    assert_eq!(body["results"][0]["statusCode"], 400);
    assert_eq!(body["results"][1]["statusCode"], 412);
    assert_eq!(
        body["results"][1]["result"][0]["errorCode"],
        "BATCH_PROCESSING_HALTED"
    );
}

#[tokio::test]
async fn tree_creates_parents_and_children_or_nothing() {
    let org = Org::demo().await;
    let (status, body) = org
        .send(
            Method::POST,
            "/composite/tree/Account",
            Some(json!({"records": [{
                "attributes": {"type": "Account", "referenceId": "acc"},
                "Name": "Tree Root",
                "Contacts": {"records": [
                    {"attributes": {"type": "Contact", "referenceId": "c1"}, "LastName": "Leaf"},
                    {"attributes": {"type": "Contact", "referenceId": "c2"}, "LastName": "Twig"},
                ]},
            }]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["hasErrors"], false);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["referenceId"], "acc");
    let account = results[0]["id"].as_str().expect("id");
    let (_, contacts) = org
        .query(&format!(
            "SELECT LastName FROM Contact WHERE AccountId = '{account}' ORDER BY LastName"
        ))
        .await;
    assert_eq!(contacts["totalSize"], 2);
    assert_eq!(contacts["records"][0]["LastName"], "Leaf");

    let (status, body) = org
        .send(
            Method::POST,
            "/composite/tree/Account",
            Some(json!({"records": [{
                "attributes": {"type": "Account", "referenceId": "ok"},
                "Name": "Never Kept",
                "Contacts": {"records": [{"attributes": {"type": "Contact", "referenceId": "bad"}, "FirstName": "NoLast"}]},
            }]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["hasErrors"], true);
    assert_eq!(body["results"][0]["referenceId"], "bad");
    assert_eq!(
        body["results"][0]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let (_, kept) = org
        .query("SELECT COUNT() FROM Account WHERE Name = 'Never Kept'")
        .await;
    assert_eq!(kept["totalSize"], 0);
}

#[tokio::test]
async fn sosl_finds_records_by_term_and_shapes_them_by_returning() {
    let org = Org::demo().await;
    for name in ["Zyxwv Alpha", "Zyxwv Beta", "Unrelated"] {
        org.send(
            Method::POST,
            "/sobjects/Account",
            Some(json!({"Name": name, "Industry": "Energy"})),
        )
        .await;
    }
    org.send(
        Method::POST,
        "/sobjects/Contact",
        Some(json!({"LastName": "Person", "Email": "someone@zyxwv.example"})),
    )
    .await;
    let (status, body) = search(
        &org,
        "FIND {zyxwv} IN ALL FIELDS RETURNING Account(Id, Name WHERE Industry = 'Energy' ORDER BY Name DESC), Contact(Id, Email)",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hits = body["searchRecords"].as_array().expect("hits");
    assert_eq!(hits.len(), 3, "{body}");
    assert_eq!(hits[0]["Name"], "Zyxwv Beta");
    assert_eq!(hits[0]["attributes"]["type"], "Account");
    assert_eq!(hits[2]["attributes"]["type"], "Contact");

    let (_, body) = search(
        &org,
        "FIND {zyxwv} IN NAME FIELDS RETURNING Account(Name LIMIT 1), Contact",
    )
    .await;
    assert_eq!(body["searchRecords"].as_array().expect("hits").len(), 1);

    let (status, body) = search(&org, "FIND zyxwv").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "MALFORMED_SEARCH");

    let (status, body) = org
        .get_raw(
            "/services/data/v59.0/parameterizedSearch?q=zyxwv&sobject=Account&Account.fields=Id,Name&Account.limit=5",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["searchRecords"].as_array().expect("hits").len(), 2);
    assert!(body["searchRecords"][0]["Name"].is_string());
}

#[tokio::test]
async fn recent_items_and_quick_actions_answer_in_salesforce_shapes() {
    let org = Org::demo().await;
    let (_, created) = org
        .send(
            Method::POST,
            "/sobjects/Account",
            Some(json!({"Name": "Most Recent"})),
        )
        .await;
    let (status, _, recent) = org.get("/recent?limit=3").await;
    assert_eq!(status, StatusCode::OK);
    let list = recent.as_array().expect("list");
    assert!(list.len() <= 3);
    assert!(list.iter().any(|r| r["Id"] == created["id"]), "{recent}");
    assert!(list[0]["attributes"]["type"].is_string());

    let (status, _, actions) = org.get("/quickActions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(actions
        .as_array()
        .expect("actions")
        .iter()
        .any(|a| a["name"] == "NewTask" && a["targetSobjectType"] == "Task"));
    let (status, _, described) = org.get("/quickActions/NewTask/describe").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(described["type"], "Create");
    let (_, _, defaults) = org.get("/quickActions/LogACall/defaultValues").await;
    assert_eq!(defaults["Status"], "Completed");
    let (status, _, _) = org.get("/sobjects/Account/quickActions").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = org.get("/quickActions/Nope/describe").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tooling_queries_describe_objects_fields_and_custom_fields() {
    let org = Org::demo().await;
    org.admin(
        Method::POST,
        "/orgs/Acme/objects",
        json!({"name": "Account", "fields": [{"name": "Tier__c", "type": "picklist"}]}),
    )
    .await;
    let tooling = |soql: &str| format!("/services/data/v59.0/tooling/query?q={}", url_encode(soql));
    let (status, body) = org
        .get_raw(
            &tooling("SELECT QualifiedApiName, DataType, IsNillable FROM FieldDefinition WHERE EntityDefinition.QualifiedApiName = 'Account' AND QualifiedApiName IN ('Name', 'BillingCity', 'ParentId')  ORDER BY QualifiedApiName"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entityTypeName"], "FieldDefinition");
    assert_eq!(body["size"], 3);
    let records = body["records"].as_array().expect("records");
    assert_eq!(records[0]["QualifiedApiName"], "BillingCity");
    assert_eq!(records[0]["DataType"], "Text(40)");
    assert_eq!(records[2]["DataType"], "Lookup(Account)");
    assert_eq!(records[1]["IsNillable"], false);
    assert!(records[0]["attributes"]["url"]
        .as_str()
        .expect("url")
        .starts_with("/services/data/v59.0/tooling/sobjects/FieldDefinition/"));

    let (_, custom) = org
        .get_raw(
            &tooling("SELECT DeveloperName, TableEnumOrId FROM CustomField WHERE TableEnumOrId = 'Account'"),
            None,
        )
        .await;
    assert_eq!(custom["totalSize"], 1, "{custom}");
    assert_eq!(custom["records"][0]["DeveloperName"], "Tier");

    let (_, entity) = org
        .get_raw(
            &tooling("SELECT KeyPrefix, PluralLabel FROM EntityDefinition WHERE QualifiedApiName = 'Contact'"),
            None,
        )
        .await;
    assert_eq!(entity["records"][0]["KeyPrefix"], "003");
    let (status, rules) = org
        .get_raw(
            &tooling("SELECT Id, ValidationName, Active, ErrorMessage FROM ValidationRule WHERE EntityDefinition.QualifiedApiName = 'Account'"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rules["totalSize"], 0);
    let (status, err) = org
        .get_raw(&tooling("SELECT Nope FROM FieldDefinition"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "INVALID_FIELD");
}

#[tokio::test]
async fn graphs_commit_or_roll_back_one_by_one() {
    let org = Org::demo().await;
    let (status, body) = org
        .send(
            Method::POST,
            "/composite/graph",
            Some(json!({"graphs": [
                {"graphId": "good", "compositeRequest": [
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "acc", "body": {"Name": "Graph Kept"}},
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "con", "body": {"LastName": "Node", "AccountId": "@{acc.id}"}},
                ]},
                {"graphId": "bad", "compositeRequest": [
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "acc2", "body": {"Name": "Graph Dropped"}},
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "con2", "body": {"FirstName": "NoLast"}},
                ]},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let graphs = body["graphs"].as_array().expect("graphs");
    assert_eq!(graphs[0]["graphId"], "good");
    assert_eq!(graphs[0]["isSuccessful"], true);
    assert_eq!(
        graphs[0]["graphResponse"]["compositeResponse"][1]["httpStatusCode"],
        201
    );
    assert_eq!(graphs[1]["isSuccessful"], false);
    assert_eq!(
        graphs[1]["graphResponse"]["compositeResponse"][0]["body"][0]["errorCode"],
        "PROCESSING_HALTED"
    );
    let (_, kept) = org
        .query("SELECT COUNT() FROM Account WHERE Name = 'Graph Kept'")
        .await;
    assert_eq!(kept["totalSize"], 1);
    let (_, dropped) = org
        .query("SELECT COUNT() FROM Account WHERE Name = 'Graph Dropped'")
        .await;
    assert_eq!(dropped["totalSize"], 0);
}
