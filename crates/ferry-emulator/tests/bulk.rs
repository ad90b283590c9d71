//! Bulk API 2.0 query jobs over real HTTP: lifecycle, paged CSV results with locators, queryAll, delimiters and line endings, abort/delete/list, limits and errors.

use anyhow::{anyhow, ensure, Context, Result};
use ferry_emulator::{start, EmulatorConfig, RunningEmulator};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value as J};
use std::collections::HashSet;

/// A running emulator with a minted token for the demo org "Acme".
struct Env {
    emu: RunningEmulator,
    http: reqwest::Client,
    token: String,
    instance: String,
}

/// One page of results.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    content_type: String,
    count: Option<String>,
    locator: Option<String>,
    body: String,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.emu.shutdown();
    }
}

impl Env {
    async fn start() -> Result<Env> {
        let emu = start(EmulatorConfig::ephemeral()).await?;
        let http = reqwest::Client::new();
        let mut env = Env {
            emu,
            http,
            token: String::new(),
            instance: String::new(),
        };
        let minted = env
            .admin(Method::POST, "/__emulator/orgs/Acme/tokens", json!({}))
            .await?;
        env.token = str_of(&minted, "access_token")?;
        env.instance = str_of(&minted, "instance_url")?;
        Ok(env)
    }

    /// Calls the admin API and returns its JSON answer (failing on a non-2xx status).
    async fn admin(&self, method: Method, path: &str, body: J) -> Result<J> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.emu.production_url))
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let body: J = resp.json().await?;
        ensure!(status.is_success(), "admin {path}: {status} {body}");
        Ok(body)
    }

    fn url(&self, version: &str, path: &str) -> String {
        format!("{}/services/data/v{version}/{path}", self.instance)
    }

    /// An authenticated JSON call; returns the status and the body (`null` when empty).
    async fn call(
        &self,
        method: Method,
        version: &str,
        path: &str,
        body: Option<J>,
    ) -> Result<(StatusCode, J)> {
        let mut req = self
            .http
            .request(method, self.url(version, path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            J::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?
        };
        Ok((status, body))
    }

    async fn create(&self, body: J) -> Result<(StatusCode, J)> {
        self.call(Method::POST, "59.0", "jobs/query", Some(body))
            .await
    }

    /// Creates a job that must succeed; returns its id.
    async fn create_ok(&self, body: J) -> Result<String> {
        let (status, job) = self.create(body).await?;
        ensure!(status == StatusCode::OK, "create: {status} {job}");
        str_of(&job, "id")
    }

    async fn status(&self, id: &str) -> Result<(StatusCode, J)> {
        self.call(Method::GET, "59.0", &format!("jobs/query/{id}"), None)
            .await
    }

    /// Polls the status until `JobComplete`, checking the documented progression.
    async fn complete(&self, id: &str) -> Result<J> {
        let (status, first) = self.status(id).await?;
        ensure!(status == StatusCode::OK, "status: {status} {first}");
        ensure!(first["state"] == "InProgress", "first poll: {first}");
        let (_, second) = self.status(id).await?;
        ensure!(second["state"] == "JobComplete", "second poll: {second}");
        Ok(second)
    }

    /// Creates a job, completes it and returns its id.
    async fn run(&self, body: J) -> Result<String> {
        let id = self.create_ok(body).await?;
        self.complete(&id).await?;
        Ok(id)
    }

    /// `GET …/results` with a raw query string (e.g. `maxRecords=10&locator=…`).
    async fn page(&self, version: &str, id: &str, query: &str) -> Result<Page> {
        let mut url = self.url(version, &format!("jobs/query/{id}/results"));
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let resp = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .header("Accept", "text/csv")
            .send()
            .await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Page {
            status: resp.status(),
            content_type: header("content-type").unwrap_or_default(),
            count: header("sforce-numberofrecords"),
            locator: header("sforce-locator"),
            body: resp.text().await?,
        })
    }

    /// Follows locators until `null`, as the JavaScript client does; `encode` URL-encodes
    /// the locator as the Python client does.
    async fn all_pages(&self, id: &str, max: Option<usize>, encode: bool) -> Result<Vec<Page>> {
        let mut pages = Vec::new();
        let mut locator: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if let Some(m) = max {
                query.push(format!("maxRecords={m}"));
            }
            if let Some(l) = &locator {
                let l = if encode { form_encode(l) } else { l.clone() };
                query.push(format!("locator={l}"));
            }
            let page = self.page("59.0", id, &query.join("&")).await?;
            ensure!(page.status == StatusCode::OK, "results: {page:?}");
            let next = page
                .locator
                .clone()
                .ok_or_else(|| anyhow!("no Sforce-Locator header"))?;
            ensure!(page.count.is_some(), "no Sforce-NumberOfRecords header");
            pages.push(page);
            ensure!(pages.len() < 1000, "locators never reach null");
            if next == "null" {
                return Ok(pages);
            }
            locator = Some(next);
        }
    }

    /// `totalSize` of a REST query.
    async fn rest_count(&self, soql: &str, all: bool) -> Result<u64> {
        let resource = if all { "queryAll" } else { "query" };
        let resp = self
            .http
            .get(self.url("59.0", resource))
            .query(&[("q", soql)])
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = resp.status();
        let body: J = resp.json().await?;
        ensure!(status == StatusCode::OK, "REST query: {status} {body}");
        body["totalSize"]
            .as_u64()
            .ok_or_else(|| anyhow!("no totalSize: {body}"))
    }

    async fn records_served(&self) -> Result<u64> {
        let stats = self
            .http
            .get(format!("{}/__emulator/stats", self.emu.production_url))
            .send()
            .await?
            .json::<J>()
            .await?;
        stats["records_served"]
            .as_u64()
            .ok_or_else(|| anyhow!("no records_served: {stats}"))
    }

    /// Creates an Account through REST; returns its id.
    async fn create_account(&self, fields: J) -> Result<String> {
        let (status, body) = self
            .call(Method::POST, "59.0", "sobjects/Account", Some(fields))
            .await?;
        ensure!(status == StatusCode::CREATED, "create: {status} {body}");
        str_of(&body, "id")
    }
}

fn str_of(v: &J, key: &str) -> Result<String> {
    v[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no string {key} in {v}"))
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Parses a CSV page into rows (the header row first).
fn parse_csv(body: &str, delimiter: u8) -> Result<Vec<Vec<String>>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(body.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        rows.push(record?.iter().map(str::to_string).collect());
    }
    Ok(rows)
}

fn assert_error(status: StatusCode, body: &J, want_status: StatusCode, code: &str) -> Result<()> {
    ensure!(
        status == want_status,
        "want {want_status}, got {status} {body}"
    );
    let item = &body[0];
    ensure!(
        body.as_array().is_some_and(|a| a.len() == 1),
        "error body must be a one-item array: {body}"
    );
    ensure!(item["errorCode"] == code, "want {code}: {body}");
    ensure!(item["message"].is_string(), "no message: {body}");
    Ok(())
}

fn keys(v: &J) -> HashSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const BASIC_FIELDS: &[&str] = &[
    "id",
    "operation",
    "object",
    "createdById",
    "createdDate",
    "systemModstamp",
    "state",
    "concurrencyMode",
    "contentType",
    "apiVersion",
    "lineEnding",
    "columnDelimiter",
];

fn is_json_datetime(s: &str) -> bool {
    s.len() == 28 && s.ends_with(".000+0000") && s.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn full_lifecycle_pages_until_null_locator() -> Result<()> {
    let env = Env::start().await?;
    let soql = "SELECT Id, Name, CreatedDate FROM Account";
    let (status, job) = env
        .create(json!({"operation": "query", "query": soql}))
        .await?;
    ensure!(status == StatusCode::OK, "{status} {job}");
    ensure!(keys(&job) == set(BASIC_FIELDS), "create fields: {job}");
    let id = str_of(&job, "id")?;
    ensure!(id.len() == 18 && id.starts_with("750"), "job id {id}");
    ensure!(job["operation"] == "query");
    ensure!(job["object"] == "Account");
    ensure!(job["state"] == "UploadComplete");
    ensure!(job["concurrencyMode"] == "Parallel");
    ensure!(job["contentType"] == "CSV");
    ensure!(job["lineEnding"] == "LF" && job["columnDelimiter"] == "COMMA");
    ensure!(job["apiVersion"].is_number() && job["apiVersion"].as_f64() == Some(59.0));
    ensure!(serde_json::to_string(&job["apiVersion"])? == "59.0");
    ensure!(str_of(&job, "createdById")?.starts_with("005"));
    ensure!(is_json_datetime(&str_of(&job, "createdDate")?), "{job}");
    ensure!(is_json_datetime(&str_of(&job, "systemModstamp")?), "{job}");

    // Results before completion are refused.
    let early = env.page("59.0", &id, "").await?;
    ensure!(early.status == StatusCode::BAD_REQUEST, "{early:?}");

    let (_, first) = env.status(&id).await?;
    let mut full = set(BASIC_FIELDS);
    full.extend(set(&[
        "jobType",
        "numberRecordsProcessed",
        "retries",
        "totalProcessingTime",
        "isPkChunkingSupported",
    ]));
    ensure!(keys(&first) == full, "status fields: {first}");
    ensure!(first["state"] == "InProgress" && first["jobType"] == "V2Query");
    let (_, done) = env.status(&id).await?;
    ensure!(done["state"] == "JobComplete", "{done}");
    let expected = env.rest_count("SELECT COUNT() FROM Account", false).await?;
    ensure!(
        expected > 250,
        "the demo org has seeded accounts: {expected}"
    );
    ensure!(
        done["numberRecordsProcessed"].as_u64() == Some(expected),
        "{done}"
    );
    // Further polls stay complete.
    let (_, again) = env.status(&id).await?;
    ensure!(again["state"] == "JobComplete");

    let served_before = env.records_served().await?;
    let pages = env.all_pages(&id, Some(100), false).await?;
    ensure!(
        pages.len() as u64 == expected.div_ceil(100),
        "{} pages",
        pages.len()
    );
    let mut ids = HashSet::new();
    for (i, page) in pages.iter().enumerate() {
        ensure!(page.content_type.starts_with("text/csv"), "{page:?}");
        ensure!(
            page.body.starts_with("\"Id\",\"Name\",\"CreatedDate\"\n"),
            "page {i} lacks the header row: {:?}",
            &page.body[..page.body.len().min(80)]
        );
        let rows = parse_csv(&page.body, b',')?;
        let n = rows.len() - 1;
        ensure!(
            page.count.as_deref() == Some(n.to_string().as_str()),
            "{page:?}"
        );
        let last = i + 1 == pages.len();
        ensure!((page.locator.as_deref() == Some("null")) == last);
        if !last {
            ensure!(n == 100);
        }
        for row in &rows[1..] {
            ensure!(row.len() == 3);
            ensure!(row[0].starts_with("001") && row[0].len() == 18, "{row:?}");
            ensure!(row[2].ends_with(".000Z") && row[2].len() == 24, "{row:?}");
            ensure!(ids.insert(row[0].clone()), "duplicate row {row:?}");
        }
    }
    ensure!(ids.len() as u64 == expected);
    ensure!(env.records_served().await? - served_before == expected);

    // Same result with URL-encoded locators and the default page size.
    let encoded = env.all_pages(&id, Some(120), true).await?;
    let total: usize = encoded
        .iter()
        .map(|p| parse_csv(&p.body, b',').map(|r| r.len() - 1))
        .sum::<Result<usize>>()?;
    ensure!(total as u64 == expected);
    let whole = env.all_pages(&id, None, false).await?;
    ensure!(whole.len() == 1 && whole[0].count == Some(expected.to_string()));
    Ok(())
}

#[tokio::test]
async fn locators_are_opaque_base64_and_validated() -> Result<()> {
    let env = Env::start().await?;
    let id = env
        .run(json!({"operation": "query", "query": "SELECT Id FROM Account ORDER BY Id"}))
        .await?;
    let first = env.page("59.0", &id, "maxRecords=10").await?;
    ensure!(first.locator.as_deref() == Some("MTA"), "{first:?}"); // base64("10")
    let second = env.page("59.0", &id, "maxRecords=10&locator=MTA").await?;
    let padded = env
        .page("59.0", &id, "maxRecords=10&locator=MTA%3D")
        .await?;
    ensure!(second.status == StatusCode::OK && second.body == padded.body);
    ensure!(second.locator.as_deref() == Some("MjA"), "{second:?}");
    let rows1 = parse_csv(&first.body, b',')?;
    let rows2 = parse_csv(&second.body, b',')?;
    ensure!(rows1[0] == rows2[0] && rows1[0] == vec!["Id".to_string()]);
    ensure!(rows1[10] < rows2[1], "pages follow the ORDER BY");
    for bad in [
        "locator=garbage!",
        "locator=OTk5OTk5",
        "maxRecords=0",
        "maxRecords=x",
    ] {
        let page = env.page("59.0", &id, bad).await?;
        ensure!(page.status == StatusCode::BAD_REQUEST, "{bad}: {page:?}");
        let body: J = serde_json::from_str(&page.body)?;
        ensure!(body[0]["errorCode"].is_string(), "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn query_all_includes_deleted_records() -> Result<()> {
    let env = Env::start().await?;
    let victim = env.create_account(json!({"Name": "Doomed Co"})).await?;
    let (status, _) = env
        .call(
            Method::DELETE,
            "59.0",
            &format!("sobjects/Account/{victim}"),
            None,
        )
        .await?;
    ensure!(status == StatusCode::NO_CONTENT, "delete: {status}");
    let soql = "SELECT Id, Name, IsDeleted FROM Account";
    let live = env.rest_count("SELECT COUNT() FROM Account", false).await?;
    let all = env.rest_count("SELECT COUNT() FROM Account", true).await?;
    ensure!(all == live + 1, "live {live}, all {all}");

    let mut seen = Vec::new();
    for operation in ["query", "queryAll"] {
        let id = env
            .run(json!({"operation": operation, "query": soql}))
            .await?;
        let (_, info) = env.status(&id).await?;
        ensure!(info["operation"] == operation);
        let pages = env.all_pages(&id, None, false).await?;
        let rows: Vec<Vec<String>> = pages
            .iter()
            .map(|p| parse_csv(&p.body, b','))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flat_map(|rows| rows.into_iter().skip(1))
            .collect();
        let deleted: Vec<&Vec<String>> = rows.iter().filter(|r| r[0] == victim).collect();
        seen.push((rows.len() as u64, deleted.len()));
        if operation == "queryAll" {
            ensure!(deleted.len() == 1 && deleted[0][2] == "true", "{deleted:?}");
            ensure!(rows
                .iter()
                .filter(|r| r[0] != victim)
                .all(|r| r[2] == "false"));
        }
    }
    ensure!(seen == vec![(live, 0), (all, 1)], "{seen:?}");
    Ok(())
}

#[tokio::test]
async fn delimiters_line_endings_nulls_and_quoting() -> Result<()> {
    let env = Env::start().await?;
    let id = env
        .create_account(json!({"Name": "Quote \"Q\", Pipe | Tab\tCo"}))
        .await?;
    let soql = format!(
        "SELECT Id, Name, Phone, IsDeleted, CreatedDate, Owner.Name FROM Account WHERE Id = '{id}'"
    );
    for (name, byte) in [
        ("COMMA", b','),
        ("TAB", b'\t'),
        ("PIPE", b'|'),
        ("SEMICOLON", b';'),
        ("CARET", b'^'),
        ("BACKQUOTE", b'`'),
    ] {
        for ending in ["LF", "CRLF"] {
            let job = env
                .run(json!({
                    "operation": "query",
                    "query": soql,
                    "contentType": "CSV",
                    "columnDelimiter": name,
                    "lineEnding": ending,
                }))
                .await?;
            let (_, info) = env.status(&job).await?;
            ensure!(info["columnDelimiter"] == name && info["lineEnding"] == ending);
            let page = env.page("59.0", &job, "").await?;
            ensure!(page.status == StatusCode::OK, "{page:?}");
            let d = char::from(byte);
            let nl = if ending == "CRLF" { "\r\n" } else { "\n" };
            let header = format!(
                "\"Id\"{d}\"Name\"{d}\"Phone\"{d}\"IsDeleted\"{d}\"CreatedDate\"{d}\"Owner.Name\"{nl}"
            );
            ensure!(
                page.body.starts_with(&header),
                "{name}/{ending}: {:?}",
                page.body
            );
            ensure!(page.body.ends_with(nl));
            let lines = page.body.matches(nl).count();
            ensure!(lines == 2, "{name}/{ending}: {:?}", page.body);
            if ending == "LF" {
                ensure!(!page.body.contains('\r'));
            }
            let rows = parse_csv(&page.body, byte)?;
            ensure!(rows.len() == 2, "{rows:?}");
            let row = &rows[1];
            ensure!(row[0] == id);
            ensure!(row[1] == "Quote \"Q\", Pipe | Tab\tCo", "{row:?}");
            ensure!(row[2].is_empty(), "null is empty: {row:?}");
            ensure!(row[3] == "false");
            ensure!(row[4].ends_with(".000Z") && row[4].contains('T'), "{row:?}");
            ensure!(row[5] == "Admin User", "{row:?}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn abort_delete_and_list() -> Result<()> {
    let env = Env::start().await?;
    let a = env
        .create_ok(json!({"operation": "query", "query": "SELECT Id FROM Account"}))
        .await?;
    let b = env
        .create_ok(json!({"operation": "queryAll", "query": "SELECT Id FROM Contact"}))
        .await?;

    let (status, list) = env.call(Method::GET, "59.0", "jobs/query", None).await?;
    ensure!(status == StatusCode::OK, "{list}");
    ensure!(
        list["done"] == true && list["nextRecordsUrl"].is_null(),
        "{list}"
    );
    let listed: Vec<String> = list["records"]
        .as_array()
        .ok_or_else(|| anyhow!("no records: {list}"))?
        .iter()
        .map(|j| str_of(j, "id"))
        .collect::<Result<_>>()?;
    ensure!(listed == vec![a.clone(), b.clone()], "{listed:?}");
    ensure!(list["records"][1]["object"] == "Contact");
    ensure!(list["records"][1]["jobType"] == "V2Query");

    // Abort a job that has not completed.
    let (status, aborted) = env
        .call(
            Method::PATCH,
            "59.0",
            &format!("jobs/query/{a}"),
            Some(json!({"state": "Aborted"})),
        )
        .await?;
    ensure!(
        status == StatusCode::OK && aborted["state"] == "Aborted",
        "{aborted}"
    );
    let (_, info) = env.status(&a).await?;
    ensure!(info["state"] == "Aborted", "abort is final: {info}");
    let page = env.page("59.0", &a, "").await?;
    ensure!(page.status == StatusCode::BAD_REQUEST, "{page:?}");
    // Aborting again, or asking for another state, is refused.
    for (job, body) in [
        (&a, json!({"state": "Aborted"})),
        (&a, json!({"state": "JobComplete"})),
        (&b, json!({"state": "JobComplete"})),
        (&b, json!({})),
    ] {
        let (status, err) = env
            .call(
                Method::PATCH,
                "59.0",
                &format!("jobs/query/{job}"),
                Some(body),
            )
            .await?;
        assert_error(status, &err, StatusCode::BAD_REQUEST, "INVALIDJOB")?;
    }

    // A job in progress cannot be deleted; a complete one can.
    let c = env
        .create_ok(json!({"operation": "query", "query": "SELECT Id FROM Lead"}))
        .await?;
    let (_, info) = env.status(&c).await?;
    ensure!(info["state"] == "InProgress");
    let (status, err) = env
        .call(Method::DELETE, "59.0", &format!("jobs/query/{c}"), None)
        .await?;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "INVALIDJOB")?;
    let (_, info) = env.status(&c).await?;
    ensure!(info["state"] == "JobComplete");
    for id in [&a, &c] {
        let (status, body) = env
            .call(Method::DELETE, "59.0", &format!("jobs/query/{id}"), None)
            .await?;
        ensure!(
            status == StatusCode::NO_CONTENT && body.is_null(),
            "{status} {body}"
        );
        let (status, body) = env.status(id).await?;
        assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND")?;
    }
    let (_, list) = env.call(Method::GET, "59.0", "jobs/query", None).await?;
    ensure!(
        list["records"].as_array().map(Vec::len) == Some(1),
        "{list}"
    );
    ensure!(list["records"][0]["id"] == b.as_str());
    Ok(())
}

#[tokio::test]
async fn unknown_jobs_are_404_and_jobs_are_private_to_their_org() -> Result<()> {
    let mut env = Env::start().await?;
    let unknown = "750000000000000AAA";
    let want =
        json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]);
    for (method, path) in [
        (Method::GET, format!("jobs/query/{unknown}")),
        (Method::GET, format!("jobs/query/{unknown}/results")),
        (Method::GET, "jobs/query/not-an-id".to_string()),
        (Method::DELETE, format!("jobs/query/{unknown}")),
    ] {
        let (status, body) = env.call(method.clone(), "59.0", &path, None).await?;
        ensure!(status == StatusCode::NOT_FOUND, "{method} {path}: {status}");
        ensure!(body == want, "{body}");
    }
    let (status, body) = env
        .call(
            Method::PATCH,
            "59.0",
            &format!("jobs/query/{unknown}"),
            Some(json!({"state": "Aborted"})),
        )
        .await?;
    ensure!(
        status == StatusCode::NOT_FOUND && body == want,
        "{status} {body}"
    );

    // The 15-character form of a job id works too.
    let id = env
        .create_ok(json!({"operation": "query", "query": "SELECT Id FROM Account"}))
        .await?;
    let (status, info) = env.status(&id[..15]).await?;
    ensure!(
        status == StatusCode::OK && info["id"] == id.as_str(),
        "{info}"
    );

    // Another org does not see it.
    let minted = env
        .admin(
            Method::POST,
            "/__emulator/orgs/Acme%20Sandbox/tokens",
            json!({}),
        )
        .await?;
    env.token = str_of(&minted, "access_token")?;
    env.instance = str_of(&minted, "instance_url")?;
    let (status, body) = env.status(&id).await?;
    ensure!(
        status == StatusCode::NOT_FOUND && body == want,
        "{status} {body}"
    );
    let (_, list) = env.call(Method::GET, "59.0", "jobs/query", None).await?;
    ensure!(list["records"] == json!([]), "{list}");
    Ok(())
}

#[tokio::test]
async fn daily_job_allowance() -> Result<()> {
    let env = Env::start().await?;
    env.admin(
        Method::PATCH,
        "/__emulator/orgs/Acme",
        json!({"bulk_daily_limit": 2}),
    )
    .await?;
    let body = json!({"operation": "query", "query": "SELECT Id FROM Account"});
    env.create_ok(body.clone()).await?;
    // A refused query does not use the allowance.
    let (status, _) = env
        .create(json!({"operation": "query", "query": "SELECT Nope FROM Account"}))
        .await?;
    ensure!(status == StatusCode::BAD_REQUEST);
    env.create_ok(body.clone()).await?;
    let (status, err) = env.create(body).await?;
    assert_error(
        status,
        &err,
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
    )?;
    let (_, limits) = env.call(Method::GET, "59.0", "limits", None).await?;
    ensure!(
        limits["DailyBulkV2QueryJobs"] == json!({"Max": 2, "Remaining": 0}),
        "{limits}"
    );
    let (_, list) = env.call(Method::GET, "59.0", "jobs/query", None).await?;
    ensure!(
        list["records"].as_array().map(Vec::len) == Some(2),
        "{list}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_requests_and_queries_are_refused_at_create() -> Result<()> {
    let env = Env::start().await?;
    let q = "SELECT Id FROM Account";
    let cases: Vec<(J, &str)> = vec![
        (json!({"query": q}), "INVALIDJOB"),
        (json!({"operation": "insert", "query": q}), "INVALIDJOB"),
        (json!({"operation": "query"}), "INVALIDJOB"),
        (json!({"operation": "query", "query": ""}), "INVALIDJOB"),
        (json!({"operation": "query", "query": 42}), "INVALIDJOB"),
        (
            json!({"operation": "query", "query": q, "contentType": "JSON"}),
            "INVALIDJOB",
        ),
        (
            json!({"operation": "query", "query": q, "columnDelimiter": "SPACE"}),
            "INVALIDJOB",
        ),
        (
            json!({"operation": "query", "query": q, "lineEnding": "CR"}),
            "INVALIDJOB",
        ),
        (
            json!({"operation": "query", "query": "SELEC Id FROM Account"}),
            "MALFORMED_QUERY",
        ),
        (
            json!({"operation": "query", "query": "SELECT Id FROM"}),
            "MALFORMED_QUERY",
        ),
        (
            json!({"operation": "query", "query": "SELECT Nope FROM Account"}),
            "INVALID_FIELD",
        ),
        (
            json!({"operation": "query", "query": "SELECT Id FROM Nope__c"}),
            "INVALID_TYPE",
        ),
        (
            json!({"operation": "query", "query": "SELECT Id FROM Account LIMIT 10 OFFSET 5"}),
            "API_ERROR",
        ),
        (
            json!({"operation": "query", "query": "SELECT COUNT() FROM Account"}),
            "API_ERROR",
        ),
        (
            json!({"operation": "query", "query": "SELECT Id, (SELECT Id FROM Contacts) FROM Account"}),
            "API_ERROR",
        ),
        (
            json!({"operation": "query", "query": "SELECT Id, BillingAddress FROM Account"}),
            "API_ERROR",
        ),
        (json!([1, 2]), "JSON_PARSER_ERROR"),
    ];
    for (body, code) in cases {
        let (status, err) = env.create(body.clone()).await?;
        assert_error(status, &err, StatusCode::BAD_REQUEST, code)
            .with_context(|| format!("body {body}"))?;
    }
    // Not JSON at all.
    let resp = env
        .http
        .post(env.url("59.0", "jobs/query"))
        .bearer_auth(&env.token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await?;
    let status = resp.status();
    let err: J = resp.json().await?;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR")?;
    // Nothing was created and no allowance was used.
    let (_, list) = env.call(Method::GET, "59.0", "jobs/query", None).await?;
    ensure!(list["records"] == json!([]), "{list}");
    let (_, limits) = env.call(Method::GET, "59.0", "limits", None).await?;
    let bulk = &limits["DailyBulkV2QueryJobs"];
    ensure!(bulk["Max"] == bulk["Remaining"], "{limits}");
    // Without a token the gate answers 401.
    let resp = env
        .http
        .post(env.url("59.0", "jobs/query"))
        .json(&json!({"operation": "query", "query": q}))
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn results_need_the_creating_api_version() -> Result<()> {
    let env = Env::start().await?;
    let id = env
        .run(json!({"operation": "query", "query": "SELECT Id FROM Account LIMIT 5"}))
        .await?;
    let (status, info) = env
        .call(Method::GET, "60.0", &format!("jobs/query/{id}"), None)
        .await?;
    ensure!(status == StatusCode::OK && info["apiVersion"].as_f64() == Some(59.0));
    let other = env.page("60.0", &id, "").await?;
    ensure!(other.status == StatusCode::CONFLICT, "{other:?}");
    let err: J = serde_json::from_str(&other.body)?;
    ensure!(err[0]["errorCode"].is_string(), "{err}");
    let same = env.page("59.0", &id, "").await?;
    ensure!(same.status == StatusCode::OK && same.count.as_deref() == Some("5"));
    ensure!(same.locator.as_deref() == Some("null"));

    // A job created with another version reports it as a number.
    let (status, job) = env
        .call(
            Method::POST,
            "52.0",
            "jobs/query",
            Some(json!({"operation": "query", "query": "SELECT Id FROM Account"})),
        )
        .await?;
    ensure!(status == StatusCode::OK && serde_json::to_string(&job["apiVersion"])? == "52.0");
    Ok(())
}

#[tokio::test]
async fn empty_result_has_header_and_null_locator() -> Result<()> {
    let env = Env::start().await?;
    let id = env
        .run(json!({"operation": "query", "query": "SELECT Id, Name FROM Account WHERE Name = 'no such account'"}))
        .await?;
    let (_, info) = env.status(&id).await?;
    ensure!(info["numberRecordsProcessed"] == 0);
    let page = env.page("59.0", &id, "").await?;
    ensure!(page.status == StatusCode::OK, "{page:?}");
    ensure!(page.body == "\"Id\",\"Name\"\n", "{:?}", page.body);
    ensure!(page.count.as_deref() == Some("0") && page.locator.as_deref() == Some("null"));
    Ok(())
}

#[tokio::test]
async fn large_job_uses_the_default_page_size() -> Result<()> {
    let env = Env::start().await?;
    env.admin(
        Method::POST,
        "/__emulator/orgs/Acme/seed",
        json!({"counts": {"Account": 50_000}}),
    )
    .await?;
    let expected = env.rest_count("SELECT COUNT() FROM Account", false).await?;
    ensure!(expected > 50_000);
    let id = env
        .run(json!({"operation": "query", "query": "SELECT Id FROM Account"}))
        .await?;
    let pages = env.all_pages(&id, None, false).await?;
    let counts: Vec<String> = pages.iter().filter_map(|p| p.count.clone()).collect();
    ensure!(
        counts == vec!["50000".to_string(), (expected - 50_000).to_string()],
        "{counts:?}"
    );
    ensure!(
        pages[0].locator.as_deref() == Some("NTAwMDA"),
        "base64 of 50000"
    );
    for page in &pages {
        ensure!(page.body.starts_with("\"Id\"\n"));
    }
    Ok(())
}

#[tokio::test]
async fn a_rest_count_matches_bulk_for_a_filtered_query() -> Result<()> {
    let env = Env::start().await?;
    let filter = "FROM Contact WHERE LastName LIKE 'S%' OR Email = null";
    let expected = env
        .rest_count(&format!("SELECT COUNT() {filter}"), false)
        .await?;
    let id = env
        .run(json!({"operation": "query", "query": format!("SELECT Id, LastName, Account.Name {filter}")}))
        .await?;
    let pages = env.all_pages(&id, Some(37), true).await?;
    let mut total = 0u64;
    for page in &pages {
        let rows = parse_csv(&page.body, b',')?;
        ensure!(
            rows[0] == vec!["Id", "LastName", "Account.Name"],
            "{:?}",
            rows[0]
        );
        total += rows.len() as u64 - 1;
    }
    ensure!(total == expected, "bulk {total}, REST {expected}");
    ensure!(expected > 0, "the demo data should have matching contacts");
    Ok(())
}
