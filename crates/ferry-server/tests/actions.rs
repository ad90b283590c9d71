//! Actions on both databases against the emulator: every pre-built action with the org's data
//! checked after each write, input refused before any upstream call, no retry of a create after a
//! 503, Salesforce's error codes kept in 424s, async runs, the API version negotiated once, and
//! `GET /scripts/config`.

mod common;
mod sync_support;

use common::{Db, TestApp};
use ferry_server::actions::worker::{run_one, Outcome};
use serde_json::{json, Value};

struct Ctx {
    app: TestApp,
    connection: String,
    sf: SfDirect,
}

/// Reads the org behind Ferry's back, with a token minted by the emulator's admin API.
struct SfDirect {
    http: reqwest::Client,
    instance: String,
    token: String,
}

impl SfDirect {
    async fn new(app: &TestApp) -> SfDirect {
        let minted: Value = app
            .http
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
        SfDirect {
            http: app.http.clone(),
            instance: minted["instance_url"].as_str().expect("url").to_string(),
            token: minted["access_token"].as_str().expect("token").to_string(),
        }
    }

    async fn query(&self, soql: &str) -> Vec<Value> {
        let resp: Value = self
            .http
            .get(format!("{}/services/data/v59.0/query", self.instance))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        resp["records"]
            .as_array()
            .unwrap_or_else(|| panic!("query failed: {resp}"))
            .clone()
    }

    async fn one(&self, soql: &str) -> Value {
        let mut rows = self.query(soql).await;
        assert_eq!(rows.len(), 1, "{soql}: {rows:?}");
        rows.remove(0)
    }
}

async fn setup(db: Db) -> Ctx {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let connection = app.connect_org("actions-user").await;
    let sf = SfDirect::new(&app).await;
    Ctx {
        app,
        connection,
        sf,
    }
}

impl Ctx {
    fn trigger_request(&self, name: &str, input: Value) -> reqwest::RequestBuilder {
        self.app
            .api(reqwest::Method::POST, "/action/trigger")
            .header("Connection-Id", &self.connection)
            .header("Provider-Config-Key", "salesforce")
            .json(&json!({"action_name": name, "input": input}))
    }

    async fn trigger(&self, name: &str, input: Value) -> (u16, Value) {
        let resp = self
            .trigger_request(name, input)
            .send()
            .await
            .expect("trigger");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    async fn ok(&self, name: &str, input: Value) -> Value {
        let (status, body) = self.trigger(name, input).await;
        assert_eq!(status, 200, "{name}: {body}");
        body
    }

    async fn admin(&self, path: &str, body: Value) {
        let resp = self
            .app
            .http
            .post(format!(
                "{}/__emulator{path}",
                self.app.emulator.production_url
            ))
            .json(&body)
            .send()
            .await
            .expect("admin");
        assert!(
            resp.status().is_success(),
            "{path}: {}",
            resp.text().await.unwrap_or_default()
        );
    }

    async fn api_requests(&self) -> u64 {
        self.app.emulator_stats().await["api_requests"]["total"]
            .as_u64()
            .expect("total")
    }
}

async fn generic_record_actions_write_to_the_org(db: Db) {
    let ctx = setup(db).await;
    let created = ctx
        .ok(
            "create-record",
            json!({"object": "Account", "fields": {"Name": "Generic Co", "Industry": "Energy"}}),
        )
        .await;
    assert_eq!(created["success"], true);
    let id = created["id"].as_str().expect("id").to_string();
    let row = ctx
        .sf
        .one(&format!(
            "SELECT Name, Industry FROM Account WHERE Id = '{id}'"
        ))
        .await;
    assert_eq!(row["Name"], "Generic Co");

    let got = ctx
        .ok(
            "get-record",
            json!({"object": "Account", "id": id, "fields": ["Name", "Industry"]}),
        )
        .await;
    assert_eq!(got["Industry"], "Energy");

    ctx.ok(
        "update-record",
        json!({"object": "Account", "id": id, "fields": {"Industry": "Banking"}}),
    )
    .await;
    let row = ctx
        .sf
        .one(&format!("SELECT Industry FROM Account WHERE Id = '{id}'"))
        .await;
    assert_eq!(row["Industry"], "Banking");

    ctx.admin(
        "/orgs/Acme/objects",
        json!({"name": "Account", "fields": [{"name": "Ext_Key__c", "type": "string", "external_id": true, "unique": true}]}),
    )
    .await;
    for (round, name) in [(0, "Upserted One"), (1, "Upserted Two")] {
        let up = ctx
            .ok(
                "upsert-record",
                json!({"object": "Account", "external_id_field": "Ext_Key__c", "external_id": "K-1", "fields": {"Name": name}}),
            )
            .await;
        assert_eq!(up["created"], round == 0, "{up}");
        let rows = ctx
            .sf
            .query("SELECT Name FROM Account WHERE Ext_Key__c = 'K-1'")
            .await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Name"], name);
    }

    ctx.ok("delete-record", json!({"object": "Account", "id": id}))
        .await;
    assert!(ctx
        .sf
        .query(&format!("SELECT Id FROM Account WHERE Id = '{id}'"))
        .await
        .is_empty());
}
on_both_databases!(
    generic_record_actions_write_to_the_org,
    generic_record_actions_write_to_the_org
);

async fn convenience_actions_speak_the_sync_models(db: Db) {
    let ctx = setup(db).await;
    let account = ctx
        .ok(
            "create-account",
            json!({"name": "Model Co", "industry": "Energy", "number_of_employees": 12}),
        )
        .await;
    let account_id = account["id"].as_str().expect("id").to_string();
    assert_eq!(account["name"], "Model Co");
    assert_eq!(account["number_of_employees"], 12);
    let row = ctx
        .sf
        .one(&format!(
            "SELECT Name, NumberOfEmployees FROM Account WHERE Id = '{account_id}'"
        ))
        .await;
    assert_eq!(row["Name"], "Model Co");
    let updated = ctx
        .ok(
            "update-account",
            json!({"id": account_id, "website": "https://model.example"}),
        )
        .await;
    assert_eq!(updated["website"], "https://model.example");
    assert_eq!(
        ctx.sf
            .one(&format!(
                "SELECT Website FROM Account WHERE Id = '{account_id}'"
            ))
            .await["Website"],
        "https://model.example"
    );

    let contact = ctx
        .ok(
            "create-contact",
            json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "account_id": account_id}),
        )
        .await;
    let contact_id = contact["id"].as_str().expect("id").to_string();
    assert_eq!(contact["account_name"], "Model Co", "{contact}");
    ctx.ok(
        "update-contact",
        json!({"id": contact_id, "title": "Countess"}),
    )
    .await;
    let row = ctx
        .sf
        .one(&format!(
            "SELECT LastName, Title FROM Contact WHERE Id = '{contact_id}'"
        ))
        .await;
    assert_eq!(row["LastName"], "Lovelace");
    assert_eq!(row["Title"], "Countess");

    let opportunity = ctx
        .ok(
            "create-opportunity",
            json!({"name": "Big Deal", "stage": "Prospecting", "close_date": "2027-01-31", "amount": 5000, "account_id": account_id}),
        )
        .await;
    let opportunity_id = opportunity["id"].as_str().expect("id").to_string();
    ctx.ok(
        "update-opportunity",
        json!({"id": opportunity_id, "stage": "Closed Won"}),
    )
    .await;
    let row = ctx
        .sf
        .one(&format!(
            "SELECT StageName, Amount FROM Opportunity WHERE Id = '{opportunity_id}'"
        ))
        .await;
    assert_eq!(row["StageName"], "Closed Won");
    assert_eq!(row["Amount"].as_f64(), Some(5000.0));

    let lead = ctx
        .ok(
            "create-lead",
            json!({"last_name": "Hopper", "company": "Navy", "email": "grace@example.com"}),
        )
        .await;
    let lead_id = lead["id"].as_str().expect("id").to_string();
    ctx.ok(
        "update-lead",
        json!({"id": lead_id, "status": "Working - Contacted"}),
    )
    .await;
    let row = ctx
        .sf
        .one(&format!(
            "SELECT Company, Status FROM Lead WHERE Id = '{lead_id}'"
        ))
        .await;
    assert_eq!(row["Company"], "Navy");
    assert_eq!(row["Status"], "Working - Contacted");

    // Unknown and read-only model fields are refused.
    let (status, body) = ctx
        .trigger(
            "create-lead",
            json!({"last_name": "X", "company": "Y", "LastName": "Z"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["message"], "input.LastName: unknown field");
    let (status, body) = ctx
        .trigger(
            "update-contact",
            json!({"id": contact_id, "account_name": "Nope"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "input.account_name: unknown field"
    );
}
on_both_databases!(
    convenience_actions_speak_the_sync_models,
    convenience_actions_speak_the_sync_models
);

async fn read_actions_and_composite_answer(db: Db) {
    let ctx = setup(db).await;
    ctx.admin("/orgs/Acme/seed", json!({"counts": {"Lead": 450}}))
        .await;
    let page = ctx
        .ok(
            "query",
            json!({"query": "SELECT Id, LastName FROM Lead", "limit": 300}),
        )
        .await;
    assert_eq!(page["records"].as_array().expect("records").len(), 300);
    assert_eq!(page["done"], false);
    assert_eq!(page["total_size"], 450);
    let all = ctx
        .ok("query", json!({"query": "SELECT Id FROM Lead"}))
        .await;
    assert_eq!(all["records"].as_array().expect("records").len(), 450);
    assert_eq!(all["done"], true);

    ctx.admin(
        "/orgs/Acme/objects",
        json!({"name": "Contact", "fields": [{"name": "Loyalty_Tier__c", "type": "string"}]}),
    )
    .await;
    let describe = ctx
        .ok("describe-object", json!({"object": "Contact"}))
        .await;
    assert_eq!(describe["name"], "Contact");
    let fields = ctx.ok("fetch-fields", json!({"object": "Contact"})).await;
    let list = fields["fields"].as_array().expect("fields");
    let custom = list
        .iter()
        .find(|f| f["name"] == "Loyalty_Tier__c")
        .expect("the custom field is listed");
    assert_eq!(custom["custom"], true);
    let last_name = list
        .iter()
        .find(|f| f["name"] == "LastName")
        .expect("LastName");
    assert_eq!(last_name["required"], true);

    let global = ctx.ok("describe-global", json!({})).await;
    assert!(global["sobjects"]
        .as_array()
        .expect("sobjects")
        .iter()
        .any(|o| o["name"] == "Opportunity"));
    let me = ctx.ok("whoami", json!({})).await;
    assert_eq!(me["username"], ferry_emulator::DEMO_USERNAME);
    assert!(me["id"].as_str().expect("id").starts_with("005"));
    let limits = ctx.ok("get-limits", json!({})).await;
    assert!(limits["DailyApiRequests"]["Max"].as_u64().is_some());

    // allOrNone: the second subrequest fails, so the first is rolled back.
    let rolled = ctx
        .ok(
            "composite",
            json!({"all_or_none": true, "requests": [
                {"method": "POST", "url": "/sobjects/Account", "reference_id": "acc", "body": {"Name": "Rolled Back Co"}},
                {"method": "POST", "url": "/sobjects/Contact", "reference_id": "con", "body": {"FirstName": "No last name", "AccountId": "@{acc.id}"}}
            ]}),
        )
        .await;
    assert_eq!(rolled["success"], false);
    assert!(ctx
        .sf
        .query("SELECT Id FROM Account WHERE Name = 'Rolled Back Co'")
        .await
        .is_empty());
    let done = ctx
        .ok(
            "composite",
            json!({"all_or_none": true, "requests": [
                {"method": "POST", "url": "/sobjects/Account", "reference_id": "acc", "body": {"Name": "Composite Co"}},
                {"method": "POST", "url": "/sobjects/Contact", "reference_id": "con", "body": {"LastName": "Composite", "AccountId": "@{acc.id}"}}
            ]}),
        )
        .await;
    assert_eq!(done["success"], true, "{done}");
    assert_eq!(done["responses"][1]["status"], 201);
    let row = ctx
        .sf
        .one("SELECT Account.Name FROM Contact WHERE LastName = 'Composite'")
        .await;
    assert_eq!(row["Account"]["Name"], "Composite Co");
}
on_both_databases!(
    read_actions_and_composite_answer,
    read_actions_and_composite_answer
);

async fn invalid_input_is_refused_before_any_upstream_call(db: Db) {
    let ctx = setup(db).await;
    let before = ctx.app.emulator_stats().await;
    let cases = [
        (
            "create-record",
            json!({"object": "Contact"}),
            "input.fields: required",
        ),
        (
            "create-record",
            json!({"object": "Contact", "fields": {}}),
            "input.fields: ",
        ),
        (
            "update-record",
            json!({"object": "Contact", "id": "../limits", "fields": {"A": 1}}),
            "input.id: ",
        ),
        (
            "get-record",
            json!({"object": "Contact/../../x", "id": "003000000000001AAA"}),
            "input.object: ",
        ),
        (
            "create-contact",
            json!({"first_name": "No last name"}),
            "input.last_name: required",
        ),
        (
            "query",
            json!({"query": "SELECT Id FROM Lead", "limit": 0}),
            "input.limit: ",
        ),
        (
            "composite",
            json!({"requests": [{"method": "POST", "url": "/../oauth2/token", "reference_id": "a"}]}),
            "input.requests.0.url: ",
        ),
    ];
    for (name, input, message) in cases {
        let (status, body) = ctx.trigger(name, input).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["code"], "invalid_action_input");
        let got = body["error"]["message"].as_str().expect("message");
        assert!(got.starts_with(message), "{name}: {got}");
    }
    let (status, body) = ctx.trigger("launch-rocket", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let after = ctx.app.emulator_stats().await;
    assert_eq!(
        before["api_requests"], after["api_requests"],
        "no call reached Salesforce"
    );
    assert_eq!(before["token_requests"], after["token_requests"]);
}
on_both_databases!(
    invalid_input_is_refused_before_any_upstream_call,
    invalid_input_is_refused_before_any_upstream_call
);

async fn a_create_that_meets_a_503_is_not_retried(db: Db) {
    let ctx = setup(db).await;
    // Negotiate the version first, so the only POST below is the create.
    ctx.ok("whoami", json!({})).await;
    // The worst case: Salesforce performs the create, then the answer is a 503.
    ctx.admin(
        "/faults",
        json!({"method": "POST", "path_prefix": "/services/data/", "status": 503, "count": 1,
               "body": "Service Unavailable", "after_handling": true}),
    )
    .await;
    let before = ctx.api_requests().await;
    let (status, body) = ctx
        .trigger("create-contact", json!({"last_name": "Only Once"}))
        .await;
    assert_eq!(status, 424, "{body}");
    assert_eq!(body["error"]["code"], "script_http_error");
    assert_eq!(body["error"]["payload"]["status"], 503);
    assert_eq!(body["error"]["payload"]["may_have_happened"], true);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("may or may not have happened"),
        "{message}"
    );
    assert!(message.contains("upsert-record"), "{message}");
    assert_eq!(
        ctx.api_requests().await - before,
        1,
        "exactly one request reached the emulator: no retry"
    );
    assert_eq!(
        ctx.sf
            .query("SELECT Id FROM Contact WHERE LastName = 'Only Once'")
            .await
            .len(),
        1,
        "one record, not two"
    );

    // The same fault on an upsert by external id: repeating it is safe and still one record.
    ctx.admin(
        "/orgs/Acme/objects",
        json!({"name": "Contact", "fields": [{"name": "Ext__c", "type": "string", "external_id": true, "unique": true}]}),
    )
    .await;
    ctx.admin(
        "/faults",
        json!({"method": "PATCH", "path_prefix": "/services/data/", "status": 503, "count": 1,
               "body": "Service Unavailable", "after_handling": true}),
    )
    .await;
    let upsert = json!({"object": "Contact", "external_id_field": "Ext__c", "external_id": "E-1",
                        "fields": {"LastName": "Upserted Once"}});
    let (status, body) = ctx.trigger("upsert-record", upsert.clone()).await;
    assert_eq!(status, 424, "{body}");
    assert_eq!(body["error"]["payload"]["may_have_happened"], false);
    let again = ctx.ok("upsert-record", upsert).await;
    assert_eq!(again["created"], false, "the first attempt had created it");
    assert_eq!(
        ctx.sf
            .query("SELECT Id FROM Contact WHERE Ext__c = 'E-1'")
            .await
            .len(),
        1
    );
}
on_both_databases!(
    a_create_that_meets_a_503_is_not_retried,
    a_create_that_meets_a_503_is_not_retried
);

async fn salesforce_errors_come_back_as_424_with_their_codes(db: Db) {
    let ctx = setup(db).await;
    let (status, body) = ctx
        .trigger(
            "create-record",
            json!({"object": "Contact", "fields": {"FirstName": "No last name"}}),
        )
        .await;
    assert_eq!(status, 424, "{body}");
    assert_eq!(body["error"]["code"], "script_http_error");
    assert_eq!(body["error"]["payload"]["status"], 400);
    assert_eq!(
        body["error"]["payload"]["errors"][0]["errorCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert!(body["error"]["message"]
        .as_str()
        .expect("message")
        .contains("REQUIRED_FIELD_MISSING"));

    ctx.admin(
        "/orgs/Acme/objects",
        json!({"name": "Contact", "fields": [{"name": "Badge__c", "type": "string", "unique": true}]}),
    )
    .await;
    ctx.ok(
        "create-record",
        json!({"object": "Contact", "fields": {"LastName": "First", "Badge__c": "B-7"}}),
    )
    .await;
    let (status, body) = ctx
        .trigger(
            "create-record",
            json!({"object": "Contact", "fields": {"LastName": "Second", "Badge__c": "B-7"}}),
        )
        .await;
    assert_eq!(status, 424, "{body}");
    assert_eq!(
        body["error"]["payload"]["errors"][0]["errorCode"],
        "DUPLICATE_VALUE"
    );
    assert_eq!(body["error"]["upstream"]["status"], 400);
    assert_eq!(
        ctx.sf
            .query("SELECT Id FROM Contact WHERE Badge__c = 'B-7'")
            .await
            .len(),
        1
    );
}
on_both_databases!(
    salesforce_errors_come_back_as_424_with_their_codes,
    salesforce_errors_come_back_as_424_with_their_codes
);

async fn async_actions_are_queued_run_by_a_worker_and_read_by_any_process(db: Db) {
    let ctx = setup(db).await;
    let resp = ctx
        .trigger_request(
            "create-lead",
            json!({"last_name": "Async", "company": "Queue Co"}),
        )
        .header("X-Async", "true")
        .send()
        .await
        .expect("trigger");
    assert_eq!(resp.status(), 202);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_string();
    let accepted: Value = resp.json().await.expect("json");
    let id = accepted["id"].as_str().expect("id").to_string();
    assert_eq!(accepted["statusUrl"], format!("/action/{id}"));
    assert_eq!(location, format!("/action/{id}"));
    // Nothing ran yet: 404 as Nango answers while an action runs.
    let pending = ctx
        .app
        .api(reqwest::Method::GET, &location)
        .send()
        .await
        .expect("get");
    assert_eq!(pending.status(), 404);
    assert!(ctx
        .sf
        .query("SELECT Id FROM Lead WHERE LastName = 'Async'")
        .await
        .is_empty());

    assert_eq!(
        run_one(&ctx.app.state, "worker-1").await.expect("step"),
        Outcome::Succeeded(id.clone())
    );
    assert_eq!(
        run_one(&ctx.app.state, "worker-1").await.expect("step"),
        Outcome::Idle
    );
    let lead = ctx
        .sf
        .one("SELECT Id, Company FROM Lead WHERE LastName = 'Async'")
        .await;
    // Nango's async_action webhook is queued with the result.
    let dev = ctx
        .app
        .state
        .store
        .list_environments()
        .await
        .expect("envs")
        .into_iter()
        .find(|e| e.name == "dev")
        .expect("dev");
    let hooks = ctx
        .app
        .state
        .store
        .list_webhooks(dev.id, 50)
        .await
        .expect("webhooks");
    let hook = hooks
        .iter()
        .find(|h| h.payload["type"] == "async_action")
        .expect("an async_action webhook");
    assert_eq!(
        hook.payload,
        json!({"from": "nango", "type": "async_action", "connectionId": ctx.connection,
               "providerConfigKey": "salesforce", "payload": {"id": id, "statusUrl": format!("/action/{id}")}})
    );
    assert_eq!(lead["Company"], "Queue Co");
    // Another process on the same database answers.
    let (peer_url, _peer) = ctx.app.spawn_peer().await;
    let done: Value = ctx
        .app
        .http
        .get(format!("{peer_url}/action/{id}"))
        .bearer_auth(&ctx.app.dev_key)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(done["id"], lead["Id"]);
    assert_eq!(done["company"], "Queue Co");

    // A failing async action keeps Salesforce's error for GET /action/{id}.
    let accepted: Value = ctx
        .trigger_request(
            "create-record",
            json!({"object": "Lead", "fields": {"LastName": "No company"}}),
        )
        .header("X-Async", "true")
        .send()
        .await
        .expect("trigger")
        .json()
        .await
        .expect("json");
    let failed_id = accepted["id"].as_str().expect("id").to_string();
    assert_eq!(
        run_one(&ctx.app.state, "worker-1").await.expect("step"),
        Outcome::Failed(failed_id.clone())
    );
    let failed = ctx
        .app
        .api(reqwest::Method::GET, &format!("/action/{failed_id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(failed.status(), 424);
    let failed: Value = failed.json().await.expect("json");
    assert_eq!(
        failed["error"]["payload"]["errors"][0]["errorCode"],
        "REQUIRED_FIELD_MISSING"
    );

    // Invalid input is refused at trigger time, not queued.
    let refused = ctx
        .trigger_request("create-lead", json!({"company": "No name"}))
        .header("X-Async", "true")
        .send()
        .await
        .expect("trigger");
    assert_eq!(refused.status(), 400);
    assert_eq!(
        run_one(&ctx.app.state, "worker-1").await.expect("step"),
        Outcome::Idle
    );
    let unknown = ctx
        .app
        .api(reqwest::Method::GET, &format!("/action/{}", uuid_like()))
        .send()
        .await
        .expect("get");
    assert_eq!(unknown.status(), 404);
}
on_both_databases!(
    async_actions_are_queued_run_by_a_worker_and_read_by_any_process,
    async_actions_are_queued_run_by_a_worker_and_read_by_any_process
);

fn uuid_like() -> &'static str {
    "0b0e7f5c-3f53-4c47-9a57-1f2b8f1d6a11"
}

async fn an_idempotent_async_action_is_retried_within_x_max_retries(db: Db) {
    let ctx = setup(db).await;
    ctx.ok("whoami", json!({})).await;
    ctx.admin(
        "/faults",
        json!({"method": "GET", "path_prefix": "/services/data/", "status": 503, "count": 1, "body": "Service Unavailable"}),
    )
    .await;
    let accepted: Value = ctx
        .trigger_request("get-limits", json!({}))
        .header("X-Async", "true")
        .header("X-Max-Retries", "1")
        .send()
        .await
        .expect("trigger")
        .json()
        .await
        .expect("json");
    let id = accepted["id"].as_str().expect("id").to_string();
    assert_eq!(
        run_one(&ctx.app.state, "w").await.expect("step"),
        Outcome::Retried(id.clone())
    );
    // Not due until the backoff has passed.
    assert_eq!(
        run_one(&ctx.app.state, "w").await.expect("step"),
        Outcome::Idle
    );
    ctx.app.state.clock.advance_ms(60_000);
    assert_eq!(
        run_one(&ctx.app.state, "w").await.expect("step"),
        Outcome::Succeeded(id.clone())
    );

    // A create is never retried, whatever X-Max-Retries says.
    ctx.admin(
        "/faults",
        json!({"method": "POST", "path_prefix": "/services/data/", "status": 503, "count": 1, "body": "Service Unavailable"}),
    )
    .await;
    let accepted: Value = ctx
        .trigger_request("create-contact", json!({"last_name": "Never Twice"}))
        .header("X-Async", "true")
        .header("X-Max-Retries", "5")
        .send()
        .await
        .expect("trigger")
        .json()
        .await
        .expect("json");
    let id = accepted["id"].as_str().expect("id").to_string();
    assert_eq!(
        run_one(&ctx.app.state, "w").await.expect("step"),
        Outcome::Failed(id)
    );
    assert!(ctx
        .sf
        .query("SELECT Id FROM Contact WHERE LastName = 'Never Twice'")
        .await
        .is_empty());
}
on_both_databases!(
    an_idempotent_async_action_is_retried_within_x_max_retries,
    an_idempotent_async_action_is_retried_within_x_max_retries
);

async fn the_api_version_is_negotiated_once_per_org(db: Db) {
    let ctx = setup(db).await;
    for _ in 0..3 {
        ctx.ok("get-limits", json!({})).await;
    }
    let stats = ctx.app.emulator_stats().await;
    let versions = stats["api_requests"]["by_path"]["/services/data"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(versions, 1, "{stats}");
}
on_both_databases!(
    the_api_version_is_negotiated_once_per_org,
    the_api_version_is_negotiated_once_per_org
);

async fn scripts_config_lists_syncs_and_actions_with_their_schemas(db: Db) {
    let ctx = setup(db).await;
    let config: Value = ctx
        .app
        .api(reqwest::Method::GET, "/scripts/config")
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    let salesforce = config
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["providerConfigKey"] == "salesforce")
        .expect("salesforce")
        .clone();
    let sync_names: Vec<&str> = salesforce["syncs"]
        .as_array()
        .expect("syncs")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(sync_names.contains(&"contacts"), "{sync_names:?}");
    let actions = salesforce["actions"].as_array().expect("actions");
    for name in [
        "create-record",
        "update-record",
        "upsert-record",
        "delete-record",
        "get-record",
        "create-contact",
        "update-contact",
        "create-account",
        "update-account",
        "create-opportunity",
        "update-opportunity",
        "create-lead",
        "update-lead",
        "query",
        "describe-object",
        "fetch-fields",
        "describe-global",
        "whoami",
        "get-limits",
        "composite",
    ] {
        let action = actions
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        assert_eq!(action["type"], "action");
        assert!(action["input"]["fields"].is_array(), "{name}");
    }
    let create_contact = actions
        .iter()
        .find(|a| a["name"] == "create-contact")
        .expect("create-contact");
    assert_eq!(create_contact["returns"][0], "Contact");
    let openai: Value = ctx
        .app
        .api(reqwest::Method::GET, "/scripts/config?format=openai")
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert!(openai["data"]
        .as_array()
        .expect("data")
        .iter()
        .any(|f| f["name"] == "query" && f["parameters"]["required"][0] == "query"));
}
on_both_databases!(
    scripts_config_lists_syncs_and_actions_with_their_schemas,
    scripts_config_lists_syncs_and_actions_with_their_schemas
);

async fn writes_show_in_the_records_at_once_and_the_next_sync_does_not_report_them(db: Db) {
    let s = sync_support::SyncApp::start(db).await;
    let first = s.run("contacts").await;
    assert_eq!(first.error, None);
    let trigger = |name: &'static str, input: Value| {
        s.app
            .api(reqwest::Method::POST, "/action/trigger")
            .header("Connection-Id", &s.connection.connection_id)
            .header("Provider-Config-Key", "salesforce")
            .json(&json!({"action_name": name, "input": input}))
            .send()
    };
    let account: Value = trigger("create-account", json!({"name": "Store Co"}))
        .await
        .expect("trigger")
        .json()
        .await
        .expect("json");
    let account_id = account["id"].as_str().expect("id").to_string();
    let contact = trigger(
        "create-contact",
        json!({"last_name": "Stored", "account_id": account_id}),
    )
    .await
    .expect("trigger");
    assert_eq!(contact.status(), 200);
    let contact: Value = contact.json().await.expect("json");
    let id = contact["id"].as_str().expect("id").to_string();

    // Visible in the records before any sync run, in the sync's model.
    let stored = s.stored("Contact").await;
    let record = stored.get(&id).expect("the created contact is stored");
    assert_eq!(record.payload, contact);
    assert_eq!(record.payload["account_name"], "Store Co");
    assert_eq!(record.last_action, ferry_store::RecordAction::Added);
    assert!(s.stored("Account").await.contains_key(&account_id));
    let listed: Value = s
        .app
        .api(reqwest::Method::GET, "/records/?model=Contact")
        .header("Connection-Id", &s.connection.connection_id)
        .header("Provider-Config-Key", "salesforce")
        .send()
        .await
        .expect("records")
        .json()
        .await
        .expect("json");
    let listed = listed["records"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /records: {listed}"))
        .iter()
        .find(|r| r["id"] == id.as_str())
        .expect("GET /records shows the created contact")
        .clone();
    assert_eq!(listed["last_name"], "Stored");
    assert_eq!(listed["_nango_metadata"]["last_action"], "ADDED");

    // The next sync run reads the same record and reports nothing.
    s.advance_secs(3600).await;
    let run = s.run("contacts").await;
    assert_eq!(run.error, None);
    assert_eq!((run.added, run.updated, run.deleted), (0, 0, 0), "{run:?}");

    // An update is stored as UPDATED at once; the sync agrees.
    let updated = trigger("update-contact", json!({"id": id, "title": "Archivist"}))
        .await
        .expect("trigger");
    assert_eq!(updated.status(), 200);
    let record = s.stored("Contact").await.remove(&id).expect("stored");
    assert_eq!(record.payload["title"], "Archivist");
    assert_eq!(record.last_action, ferry_store::RecordAction::Updated);
    s.advance_secs(3600).await;
    let run = s.run("contacts").await;
    assert_eq!((run.added, run.updated, run.deleted), (0, 0, 0), "{run:?}");

    // A generic update of a synced object writes back too.
    let generic = trigger(
        "update-record",
        json!({"object": "Contact", "id": id, "fields": {"Department": "Records"}}),
    )
    .await
    .expect("trigger");
    assert_eq!(generic.status(), 200);
    let record = s.stored("Contact").await.remove(&id).expect("stored");
    assert_eq!(record.payload["department"], "Records");

    // A delete marks it deleted at once; the sync does not report it again.
    let deleted = trigger("delete-record", json!({"object": "Contact", "id": id}))
        .await
        .expect("trigger");
    assert_eq!(deleted.status(), 200);
    let record = s.stored("Contact").await.remove(&id).expect("stored");
    assert!(record.deleted_at.is_some());
    assert_eq!(record.last_action, ferry_store::RecordAction::Deleted);
    s.advance_secs(3600).await;
    let run = s.run("contacts").await;
    assert_eq!((run.added, run.updated, run.deleted), (0, 0, 0), "{run:?}");
}
on_both_databases!(
    writes_show_in_the_records_at_once_and_the_next_sync_does_not_report_them,
    writes_show_in_the_records_at_once_and_the_next_sync_does_not_report_them
);
