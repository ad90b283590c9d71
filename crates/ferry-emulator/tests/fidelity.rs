//! Salesforce fidelity over real HTTP: Location headers, upsert keys, error-body shapes, sObject Collections upsert, composite reads, parent-to-child subqueries, standard objects and their fields, compound addresses, profiles and limits.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::Org;

async fn create(org: &Org, object: &str, body: Value) -> String {
    let (status, created) = org
        .send(Method::POST, &format!("/sobjects/{object}"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().expect("id").to_string()
}

fn field<'a>(describe: &'a Value, name: &str) -> &'a Value {
    describe["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing from describe"))
}

#[tokio::test]
async fn create_and_upsert_answer_with_the_record_path_in_location() {
    let org = Org::demo().await;
    let resp = org
        .http
        .post(org.url("/sobjects/account"))
        .bearer_auth(&org.token)
        .json(&json!({"Name": "Located Ltd"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"]
        .to_str()
        .expect("text")
        .to_string();
    let body: Value = resp.json().await.expect("json");
    let id = body["id"].as_str().expect("id");
    assert_eq!(
        location,
        format!("/services/data/v59.0/sobjects/Account/{id}")
    );

    let resp = org
        .http
        .patch(org.url(&format!("/sobjects/Account/Id/{id}")))
        .bearer_auth(&org.token)
        .json(&json!({"Phone": "555-0100"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["location"], location.as_str());
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["created"], false);
}

#[tokio::test]
async fn contacts_upsert_by_email_because_it_is_an_id_lookup_field() {
    let org = Org::demo().await;
    let (_, _, describe) = org.get("/sobjects/Contact/describe").await;
    assert_eq!(field(&describe, "Email")["idLookup"], true);
    assert_eq!(field(&describe, "Email")["externalId"], false);

    let path = "/sobjects/Contact/Email/ada%40upsert.example";
    let (status, first) = org
        .send(Method::PATCH, path, Some(json!({"LastName": "Lovelace"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["created"], true);
    let (status, second) = org
        .send(Method::PATCH, path, Some(json!({"Title": "Analyst"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["created"], false);
    assert_eq!(second["id"], first["id"]);
    let (_, _, record) = org
        .get(&format!(
            "/sobjects/Contact/{}",
            first["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(record["Email"], "ada@upsert.example");
    assert_eq!(record["Title"], "Analyst");

    // updateOnly never creates.
    let (status, body) = org
        .send(
            Method::PATCH,
            "/sobjects/Contact/Email/nobody%40upsert.example?updateOnly=true",
            Some(json!({"LastName": "Nobody"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A field that is neither an external id nor an idLookup field is refused.
    let (status, body) = org
        .send(
            Method::PATCH,
            "/sobjects/Contact/Title/x",
            Some(json!({"LastName": "X"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn error_bodies_carry_fields_only_where_salesforce_sends_them() {
    let org = Org::demo().await;
    let (status, err) = org
        .send(
            Method::POST,
            "/sobjects/Account",
            Some(json!({"Nope__c": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "INVALID_FIELD");
    assert!(err[0].get("fields").is_none(), "{err}");

    let (status, err) = org
        .send(
            Method::POST,
            "/sobjects/Contact",
            Some(json!({"FirstName": "No"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["fields"], json!(["LastName"]));

    let id = create(&org, "Account", json!({"Name": "Soon gone"})).await;
    let bad = format!("{}ZZZ", &id[..15]);
    let (status, err) = org
        .send(
            Method::PATCH,
            &format!("/sobjects/Account/{bad}"),
            Some(json!({"Name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "MALFORMED_ID");
    assert_eq!(err[0]["fields"], json!(["Id"]));
    assert!(err[0]["message"].as_str().expect("message").ends_with(&bad));

    let path = format!("/sobjects/Account/{id}");
    assert_eq!(
        org.send(Method::DELETE, &path, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, err) = org.send(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err[0]["errorCode"], "ENTITY_IS_DELETED");
    assert_eq!(err[0]["fields"], json!([]));
}

#[tokio::test]
async fn collection_upsert_creates_updates_and_refuses_records_without_attributes() {
    let org = Org::demo().await;
    let existing = create(&org, "Account", json!({"Name": "Before"})).await;
    let (status, items) = org
        .send(
            Method::PATCH,
            "/composite/sobjects/Account/Id",
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Id": existing, "Name": "After"},
                {"attributes": {"type": "Account"}, "Name": "Brand new"},
                {"Name": "No attributes"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{items}");
    assert_eq!(items[0]["success"], true);
    assert_eq!(items[0]["created"], false);
    assert_eq!(items[0]["id"], existing.as_str());
    assert_eq!(items[1]["success"], true);
    assert_eq!(items[1]["created"], true);
    assert_eq!(items[2]["success"], false);
    assert_eq!(items[2]["created"], false);
    assert!(items[2].get("id").is_none(), "{items}");
    assert_eq!(items[2]["errors"][0]["statusCode"], "JSON_PARSER_ERROR");
    let (_, _, record) = org.get(&format!("/sobjects/Account/{existing}")).await;
    assert_eq!(record["Name"], "After");

    // By an idLookup field, with allOrNone undoing the good item when one fails.
    let (status, items) = org
        .send(
            Method::PATCH,
            "/composite/sobjects/Contact/Email",
            Some(json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Contact"}, "Email": "grace@coll.example", "LastName": "Hopper"},
                {"attributes": {"type": "Contact"}, "Email": "nolast@coll.example"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items[0]["success"], false);
    assert_eq!(
        items[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        items[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let (_, found) = org
        .query("SELECT Id FROM Contact WHERE Email = 'grace@coll.example'")
        .await;
    assert_eq!(found["totalSize"], 0);

    let (status, err) = org
        .send(
            Method::PATCH,
            "/composite/sobjects/Account/Website",
            Some(json!({"records": []})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
}

#[tokio::test]
async fn collection_update_of_an_unknown_id_is_a_cross_reference_error() {
    let org = Org::demo().await;
    let id = create(&org, "Account", json!({"Name": "Known"})).await;
    let unknown = "001xx000003DHP0AAO";
    let (status, items) = org
        .send(
            Method::PATCH,
            "/composite/sobjects",
            Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "id": unknown, "Name": "Ghost"},
                {"attributes": {"type": "Account"}, "id": id, "Name": "Renamed"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items[0]["success"], false);
    assert!(items[0].get("id").is_none(), "{items}");
    assert_eq!(
        items[0]["errors"][0]["statusCode"],
        "INVALID_CROSS_REFERENCE_KEY"
    );
    assert_eq!(items[0]["errors"][0]["fields"], json!([]));
    assert_eq!(items[1]["success"], true);
    assert_eq!(items[1]["id"], id.as_str());
}

#[tokio::test]
async fn composite_runs_describe_basic_info_and_query_subrequests() {
    let org = Org::demo().await;
    let (status, body) = org
        .send(
            Method::POST,
            "/composite",
            Some(json!({"compositeRequest": [
                {"method": "GET", "url": "/services/data/v59.0/sobjects/Account/describe", "referenceId": "d"},
                {"method": "GET", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "info"},
                {"method": "GET", "url": "/services/data/v59.0/query?q=SELECT+Id,+Name+FROM+Account+LIMIT+3", "referenceId": "q"},
                {"method": "GET", "url": "/services/data/v59.0/query?q=SELECT+Nope+FROM+Account", "referenceId": "bad"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["compositeResponse"].as_array().expect("responses");
    assert_eq!(items[0]["httpStatusCode"], 200);
    assert_eq!(items[0]["body"]["name"], "Account");
    assert!(items[0]["body"]["fields"].as_array().expect("fields").len() > 60);
    assert_eq!(items[1]["body"]["objectDescribe"]["name"], "Contact");
    assert_eq!(items[2]["httpStatusCode"], 200);
    assert_eq!(items[2]["body"]["totalSize"], 3);
    assert_eq!(
        items[2]["body"]["records"][0]["attributes"]["type"],
        "Account"
    );
    assert_eq!(items[3]["httpStatusCode"], 400);
    assert_eq!(items[3]["body"][0]["errorCode"], "INVALID_FIELD");
}

#[tokio::test]
async fn parent_to_child_subqueries_nest_children_under_the_relationship_name() {
    let org = Org::demo().await;
    let parent = create(&org, "Account", json!({"Name": "Family Co"})).await;
    let lonely = create(&org, "Account", json!({"Name": "Lonely Co"})).await;
    for (first, last) in [("Zoe", "Zed"), ("Amy", "Able"), ("Max", "Mid")] {
        create(
            &org,
            "Contact",
            json!({"FirstName": first, "LastName": last, "AccountId": parent}),
        )
        .await;
    }
    let (status, body) = org
        .query(&format!(
            "SELECT Account.Name, (SELECT Contact.FirstName, LastName FROM Account.Contacts WHERE LastName != 'Mid' ORDER BY LastName LIMIT 5) FROM Account WHERE Id IN ('{parent}', '{lonely}') ORDER BY Name"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let records = body["records"].as_array().expect("records");
    assert_eq!(records[0]["Name"], "Family Co");
    let contacts = &records[0]["Contacts"];
    assert_eq!(contacts["totalSize"], 2);
    assert_eq!(contacts["done"], true);
    assert_eq!(contacts["records"][0]["FirstName"], "Amy");
    assert_eq!(contacts["records"][0]["attributes"]["type"], "Contact");
    assert_eq!(contacts["records"][1]["LastName"], "Zed");
    assert_eq!(records[1]["Name"], "Lonely Co");
    assert_eq!(records[1]["Contacts"], Value::Null);

    let (status, err) = org
        .query("SELECT Name, (SELECT Id FROM Nephews) FROM Account")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "INVALID_TYPE");
    let (status, err) = org
        .query("SELECT Name, (SELECT Id, (SELECT Id FROM Cases) FROM Contacts) FROM Account")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "MALFORMED_QUERY");
}

#[tokio::test]
async fn standard_objects_describe_their_documented_fields() {
    let org = Org::demo().await;
    let (status, _, account) = org.get("/sobjects/Account/describe").await;
    assert_eq!(status, StatusCode::OK);
    assert!(account["fields"].as_array().expect("fields").len() >= 60);
    let address = field(&account, "BillingAddress");
    assert_eq!(address["type"], "address");
    assert_eq!(address["createable"], false);
    assert_eq!(
        field(&account, "BillingCity")["compoundFieldName"],
        "BillingAddress"
    );
    assert_eq!(field(&account, "BillingCity")["length"], 40);
    assert_eq!(
        field(&account, "ShippingGeocodeAccuracy")["type"],
        "picklist"
    );
    assert_eq!(
        field(&account, "MasterRecordId")["relationshipName"],
        "MasterRecord"
    );
    assert_eq!(field(&account, "Id")["extraTypeInfo"], Value::Null);
    assert_eq!(
        field(&account, "BillingStreet")["extraTypeInfo"],
        "plaintextarea"
    );
    for key in [
        "supportedScopes",
        "namedLayoutInfos",
        "actionOverrides",
        "sobjectDescribeOption",
    ] {
        assert!(account.get(key).is_some(), "{key}");
    }
    let children = account["childRelationships"].as_array().expect("children");
    for (child, name) in [
        ("Contact", "Contacts"),
        ("Opportunity", "Opportunities"),
        ("Case", "Cases"),
        ("Account", "ChildAccounts"),
    ] {
        assert!(
            children
                .iter()
                .any(|c| c["childSObject"] == child && c["relationshipName"] == name),
            "{child}.{name}"
        );
    }

    let (_, _, contact) = org.get("/sobjects/Contact/describe").await;
    for name in [
        "MobilePhone",
        "MailingStreet",
        "MailingState",
        "MailingPostalCode",
        "MailingAddress",
        "OtherAddress",
        "ReportsToId",
    ] {
        field(&contact, name);
    }
    assert_eq!(field(&contact, "FirstName")["compoundFieldName"], "Name");
    let (_, _, case) = org.get("/sobjects/Case/describe").await;
    assert_eq!(field(&case, "Reason")["type"], "picklist");
    assert_eq!(field(&case, "Type")["type"], "picklist");
    assert_eq!(field(&case, "ClosedDate")["type"], "datetime");
    assert_eq!(field(&case, "IsEscalated")["nillable"], false);
    assert_eq!(field(&case, "CaseNumber")["autoNumber"], true);
    let (_, _, user) = org.get("/sobjects/User/describe").await;
    assert_eq!(field(&user, "ProfileId")["referenceTo"], json!(["Profile"]));
    assert_eq!(field(&user, "ProfileId")["relationshipName"], "Profile");
    let (_, _, task) = org.get("/sobjects/Task/describe").await;
    assert_eq!(
        field(&task, "WhoId")["referenceTo"],
        json!(["Contact", "Lead"])
    );
    assert_eq!(field(&task, "WhoId")["polymorphicForeignKey"], true);

    let (_, _, global) = org.get("/sobjects").await;
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .expect("sobjects")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    for n in [
        "Profile",
        "UserRole",
        "RecordType",
        "Task",
        "Event",
        "Campaign",
        "CampaignMember",
        "Product2",
        "Pricebook2",
        "PricebookEntry",
        "OpportunityLineItem",
        "OpportunityContactRole",
        "CaseComment",
        "Contract",
        "Order",
        "Note",
        "Group",
        "ContentDocument",
        "ContentVersion",
        "ContentDocumentLink",
        "Knowledge__kav",
    ] {
        assert!(names.contains(&n), "{n} missing from describe global");
    }
    let entry = global["sobjects"]
        .as_array()
        .expect("sobjects")
        .iter()
        .find(|o| o["name"] == "Account")
        .expect("Account");
    for key in [
        "associateEntityType",
        "associateParentEntity",
        "deepCloneable",
        "isInterface",
    ] {
        assert!(entry.get(key).is_some(), "{key}");
    }
}

#[tokio::test]
async fn records_assemble_compound_addresses_and_default_checkboxes_to_false() {
    let org = Org::demo().await;
    let id = create(
        &org,
        "Account",
        json!({"Name": "Addressed", "BillingCity": "Austin", "BillingStateCode": "TX", "BillingPostalCode": "78767"}),
    )
    .await;
    let (_, _, record) = org.get(&format!("/sobjects/Account/{id}")).await;
    assert_eq!(record["BillingAddress"]["city"], "Austin");
    assert_eq!(record["BillingAddress"]["stateCode"], "TX");
    assert_eq!(record["BillingAddress"]["postalCode"], "78767");
    assert_eq!(record["BillingAddress"]["street"], Value::Null);
    assert_eq!(record["ShippingAddress"], Value::Null);
    let (_, rows) = org
        .query(&format!(
            "SELECT BillingAddress, BillingCity FROM Account WHERE Id = '{id}'"
        ))
        .await;
    assert_eq!(rows["records"][0]["BillingAddress"]["city"], "Austin");

    let (status, err) = org
        .send(
            Method::POST,
            "/sobjects/Account",
            Some(json!({"Name": "x", "BillingAddress": {"city": "Austin"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "INVALID_FIELD_FOR_INSERT_UPDATE");

    let contact = create(&org, "Contact", json!({"LastName": "Checkbox"})).await;
    let (_, _, record) = org.get(&format!("/sobjects/Contact/{contact}")).await;
    assert_eq!(record["DoNotCall"], false);
    assert_eq!(record["HasOptedOutOfEmail"], false);
    // Unset checkboxes filter, select and count as false, never as null.
    let (_, rows) = org
        .query(&format!(
            "SELECT DoNotCall FROM Contact WHERE Id = '{contact}' AND DoNotCall = false"
        ))
        .await;
    assert_eq!(rows["totalSize"], 1, "{rows}");
    assert_eq!(rows["records"][0]["DoNotCall"], false);
    let (_, none) = org
        .query(&format!(
            "SELECT Id FROM Contact WHERE Id = '{contact}' AND DoNotCall = null"
        ))
        .await;
    assert_eq!(none["totalSize"], 0);
}

#[tokio::test]
async fn closing_a_case_stamps_closed_date_and_reopening_clears_it() {
    let org = Org::demo().await;
    let id = create(
        &org,
        "Case",
        json!({"Subject": "Broken", "Reason": "Breakdown"}),
    )
    .await;
    let (_, _, open) = org.get(&format!("/sobjects/Case/{id}")).await;
    assert_eq!(open["ClosedDate"], Value::Null);
    assert_eq!(open["IsEscalated"], false);
    let path = format!("/sobjects/Case/{id}");
    org.send(Method::PATCH, &path, Some(json!({"Status": "Closed"})))
        .await;
    let (_, _, closed) = org.get(&path).await;
    assert_eq!(closed["IsClosed"], true);
    assert!(closed["ClosedDate"]
        .as_str()
        .expect("closed date")
        .ends_with("+0000"));
    org.send(Method::PATCH, &path, Some(json!({"Status": "Working"})))
        .await;
    let (_, _, reopened) = org.get(&path).await;
    assert_eq!(reopened["ClosedDate"], Value::Null);
}

#[tokio::test]
async fn users_have_profiles_reachable_through_soql_and_retrieve() {
    let org = Org::demo().await;
    let (status, body) = org
        .query("SELECT Id, Username, ProfileId, Profile.Name, UserType, LocaleSidKey, EmailEncodingKey, UserRoleId, ManagerId FROM User ORDER BY CreatedDate LIMIT 1")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin = &body["records"][0];
    assert_eq!(admin["Profile"]["Name"], "System Administrator");
    assert_eq!(admin["UserType"], "Standard");
    assert_eq!(admin["EmailEncodingKey"], "UTF-8");
    let profile = admin["ProfileId"].as_str().expect("profile id");
    assert!(
        profile.starts_with("00e") && profile.len() == 18,
        "{profile}"
    );
    let user = admin["Id"].as_str().expect("id");
    let (status, _, by_key) = org.get(&format!("/sobjects/User/Id/{user}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_key["ProfileId"], profile);
    let (_, profiles) = org.query("SELECT Name FROM Profile ORDER BY Name").await;
    assert!(profiles["totalSize"].as_u64().expect("count") >= 3);
}

#[tokio::test]
async fn nango_template_sync_queries_find_every_field() {
    let org = Org::demo().await;
    for soql in [
        "SELECT Id, FirstName, LastName, Email, Phone, MobilePhone, Title, Department, AccountId, MailingStreet, MailingCity, MailingState, MailingPostalCode, MailingCountry, CreatedDate, SystemModstamp FROM Contact ORDER BY SystemModstamp ASC",
        "SELECT Id, CaseNumber, Subject, Description, Status, Priority, Origin, Reason, Type, OwnerId, AccountId, ContactId, CreatedDate, LastModifiedDate, SystemModstamp, ClosedDate, IsClosed, IsEscalated FROM Case ORDER BY SystemModstamp ASC",
        "SELECT Id, Name, AccountNumber, Industry, Type, BillingCity, BillingState, BillingCountry, Phone, Website, CreatedDate, LastModifiedDate, SystemModstamp FROM Account ORDER BY SystemModstamp ASC",
        "SELECT Id, Name, Amount, StageName, CloseDate, OwnerId, Description, NextStep, ForecastCategoryName, SystemModstamp FROM Opportunity",
        "SELECT Id, FirstName, LastName, Company, Email, Street, State, PostalCode, MobilePhone, Rating, ConvertedDate FROM Lead",
        "SELECT Id, Subject, Status, Priority, WhoId, WhatId, ActivityDate FROM Task",
    ] {
        let (status, body) = org.query(soql).await;
        assert_eq!(status, StatusCode::OK, "{soql}: {body}");
    }
    let (_, cases) = org
        .query("SELECT CaseNumber, IsClosed, ClosedDate FROM Case WHERE IsClosed = true LIMIT 5")
        .await;
    for case in cases["records"].as_array().expect("records") {
        assert!(case["ClosedDate"].is_string(), "{case}");
    }
}

#[tokio::test]
async fn limits_report_the_allowances_clients_read() {
    let org = Org::demo().await;
    let (status, _, limits) = org.get("/limits").await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        "DailyApiRequests",
        "DailyAsyncApexExecutions",
        "DailyBulkApiBatches",
        "DailyBulkV2QueryJobs",
        "DailyStreamingApiEvents",
        "DailyWorkflowEmails",
        "HourlyTimeBasedWorkflow",
        "MassEmail",
        "SingleEmail",
        "ConcurrentSyncReportRuns",
        "StreamingApiConcurrentClients",
        "PermissionSets",
    ] {
        assert!(limits[name]["Max"].is_u64(), "{name}");
        assert!(limits[name]["Remaining"].is_u64(), "{name}");
    }
}

#[tokio::test]
async fn the_demo_org_seeds_activities_and_sales_records_linked_to_their_parents() {
    let org = Org::demo().await;
    for (soql, at_least) in [
        ("SELECT COUNT() FROM Task WHERE WhoId != null AND WhatId != null", 100),
        ("SELECT COUNT() FROM Event WHERE StartDateTime != null", 50),
        ("SELECT COUNT() FROM OpportunityLineItem WHERE OpportunityId != null AND PricebookEntryId != null", 100),
        ("SELECT COUNT() FROM OpportunityContactRole", 100),
        ("SELECT COUNT() FROM CaseComment WHERE ParentId != null", 50),
        ("SELECT COUNT() FROM Contract WHERE AccountId != null", 10),
        ("SELECT COUNT() FROM CampaignMember WHERE CampaignId != null", 10),
    ] {
        let (status, body) = org.query(soql).await;
        assert_eq!(status, StatusCode::OK, "{soql}: {body}");
        assert!(body["totalSize"].as_u64().expect("count") >= at_least, "{soql}: {body}");
    }
    // Children are reachable from their parents, and prices add up.
    let (status, body) = org
        .query("SELECT Name, (SELECT Quantity, UnitPrice, TotalPrice FROM OpportunityLineItems) FROM Opportunity WHERE Id IN (SELECT OpportunityId FROM OpportunityLineItem) LIMIT 5")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = &body["records"][0]["OpportunityLineItems"]["records"][0];
    let total = first["Quantity"].as_f64().expect("q") * first["UnitPrice"].as_f64().expect("p");
    assert_eq!(first["TotalPrice"].as_f64(), Some(total));
    let (_, tasks) = org
        .query("SELECT Who.Name, What.Name, Status FROM Task WHERE IsClosed = true LIMIT 3")
        .await;
    for task in tasks["records"].as_array().expect("records") {
        assert_eq!(task["Status"], "Completed");
        assert!(task["Who"]["Name"].is_string(), "{task}");
    }
}

#[tokio::test]
async fn typeof_picks_the_parent_fields_by_the_parents_type() {
    let org = Org::demo().await;
    let (_, opps) = org.query("SELECT Id FROM Opportunity LIMIT 1").await;
    let opportunity = opps["records"][0]["Id"].as_str().expect("opportunity");
    let task = create(
        &org,
        "Task",
        json!({"Subject": "Chase", "WhatId": opportunity}),
    )
    .await;
    let lonely = create(&org, "Task", json!({"Subject": "Nothing attached"})).await;
    let soql = format!(
        "SELECT Id, TYPEOF What WHEN Account THEN Name, Industry WHEN Opportunity THEN Amount, StageName ELSE Name END FROM Task WHERE Id IN ('{task}', '{lonely}') ORDER BY Subject"
    );
    let (status, body) = org.query(&soql).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let chase = &body["records"][0];
    assert_eq!(chase["What"]["attributes"]["type"], "Opportunity");
    assert!(chase["What"].get("StageName").is_some(), "{chase}");
    assert!(chase["What"].get("Industry").is_none(), "{chase}");
    assert_eq!(body["records"][1]["What"], Value::Null);

    let (_, accounts) = org
        .query("SELECT TYPEOF What WHEN Account THEN Industry ELSE Name END FROM Task WHERE WhatId != null LIMIT 5")
        .await;
    for record in accounts["records"].as_array().expect("records") {
        assert_eq!(record["What"]["attributes"]["type"], "Account", "{record}");
        assert!(record["What"].get("Industry").is_some());
    }
    let (status, err) = org
        .query("SELECT TYPEOF What WHEN Nope THEN Name END FROM Task")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "MALFORMED_QUERY");
    let (status, err) = org
        .query("SELECT TYPEOF What WHEN Account THEN Nope END FROM Task")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err[0]["errorCode"], "INVALID_FIELD");
}
