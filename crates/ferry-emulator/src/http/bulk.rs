//! Bulk API 2.0 query jobs under `/services/data/vXX.X/jobs/query`: create, status, abort, delete, list, and paged CSV results with `Sforce-Locator`.
//!
//! Processing model (deterministic, no timers):
//! - `POST` parses the SOQL, refuses what Bulk API 2.0 refuses, and runs the query at once,
//!   keeping a snapshot of the matching rows (indices into the object's table; values are read
//!   when a page is served). The job starts in `UploadComplete`.
//! - Each `GET /jobs/query/{id}` moves the job one step: the first shows `InProgress`, the next
//!   and every later one `JobComplete`. Clients that poll until `JobComplete` therefore need
//!   exactly two status calls; nothing depends on wall-clock time.
//! - Results are served only once the job is `JobComplete`, a page at a time: each page is
//!   rendered from its slice of the snapshot, starts with the header row, and carries
//!   `Sforce-NumberOfRecords` and `Sforce-Locator` (base64 of the next offset, or `null`).

use super::errors::{self, json, not_found, sf_error};
use super::{ApiVersion, Ctx};
use crate::ids;
use crate::schema::FieldType;
use crate::soql::{self, ResultSet};
use crate::state::{BulkJob, Session, State as Shared};
use crate::value;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use serde_json::{Map, Value as J};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Page size when the client sends no `maxRecords`.
pub const DEFAULT_PAGE_SIZE: usize = 50_000;

/// The `INVALIDJOB` error code Bulk API 2.0 uses for bad job requests.
const INVALID_JOB: &str = "INVALIDJOB";

/// The bulk query routes (behind the session gate).
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route(
            "/services/data/{version}/jobs/query",
            get(list_jobs).post(create_job),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}",
            get(job_status).patch(abort_job).delete(delete_job),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}/results",
            get(job_results),
        )
}

fn invalid_job(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, INVALID_JOB, message)
}

/// A refused request (always a 400), turned into a REST error array when answered.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn invalid_job(message: impl Into<String>) -> Self {
        Refusal {
            code: INVALID_JOB,
            message: message.into(),
        }
    }

    fn response(self) -> Response {
        sf_error(StatusCode::BAD_REQUEST, self.code, &self.message)
    }
}

/// The column delimiters Bulk API 2.0 accepts, with the byte each one stands for.
const DELIMITERS: [(&str, u8); 6] = [
    ("COMMA", b','),
    ("TAB", b'\t'),
    ("PIPE", b'|'),
    ("SEMICOLON", b';'),
    ("CARET", b'^'),
    ("BACKQUOTE", b'`'),
];

fn delimiter_byte(name: &str) -> u8 {
    DELIMITERS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(b',', |(_, b)| *b)
}

/// A validated create-job request.
#[derive(Debug)]
struct JobSpec {
    operation: String,
    query: String,
    column_delimiter: String,
    line_ending: String,
}

/// Reads an optional string property, refusing any other JSON type.
fn opt_str<'a>(body: &'a Map<String, J>, key: &str) -> Result<Option<&'a str>, Refusal> {
    match body.get(key) {
        None | Some(J::Null) => Ok(None),
        Some(J::String(s)) => Ok(Some(s)),
        Some(other) => Err(Refusal::invalid_job(format!(
            "Invalid value for {key}: {other}; expected a string"
        ))),
    }
}

impl JobSpec {
    fn from_body(bytes: &[u8]) -> Result<JobSpec, Refusal> {
        let parser_error = |message: String| Refusal {
            code: "JSON_PARSER_ERROR",
            message,
        };
        let body: J = serde_json::from_slice(bytes)
            .map_err(|e| parser_error(format!("Unexpected character: {e}")))?;
        let J::Object(body) = body else {
            return Err(parser_error(
                "Expected a JSON object describing the job".into(),
            ));
        };
        let operation = match opt_str(&body, "operation")? {
            None => return Err(Refusal::invalid_job("Missing required field: operation")),
            Some(op @ ("query" | "queryAll")) => op.to_string(),
            Some(op) => {
                return Err(Refusal::invalid_job(format!(
                    "Invalid operation: {op}. A query job's operation must be query or queryAll"
                )))
            }
        };
        let query = match opt_str(&body, "query")? {
            Some(q) if !q.trim().is_empty() => q.to_string(),
            _ => return Err(Refusal::invalid_job("Missing required field: query")),
        };
        match opt_str(&body, "contentType")? {
            None | Some("CSV") => {}
            Some(other) => {
                return Err(Refusal::invalid_job(format!(
                    "Invalid contentType: {other}. Only CSV is supported"
                )))
            }
        }
        let column_delimiter = match opt_str(&body, "columnDelimiter")? {
            None => "COMMA".to_string(),
            Some(d) if DELIMITERS.iter().any(|(n, _)| *n == d) => d.to_string(),
            Some(d) => {
                return Err(Refusal::invalid_job(format!(
                    "Invalid columnDelimiter: {d}. Use one of COMMA, TAB, PIPE, SEMICOLON, CARET, BACKQUOTE"
                )))
            }
        };
        let line_ending = match opt_str(&body, "lineEnding")? {
            None => "LF".to_string(),
            Some(l @ ("LF" | "CRLF")) => l.to_string(),
            Some(l) => {
                return Err(Refusal::invalid_job(format!(
                    "Invalid lineEnding: {l}. Use LF or CRLF"
                )))
            }
        };
        Ok(JobSpec {
            operation,
            query,
            column_delimiter,
            line_ending,
        })
    }
}

/// Why Bulk API 2.0 refuses a parsed query, if it does.
fn bulk_refusal(query: &soql::Query) -> Option<&'static str> {
    if query.has_aggregates() {
        Some("Aggregate queries (COUNT(), aggregate functions and GROUP BY) are not supported by Bulk API 2.0 query jobs")
    } else if query.has_offset() {
        Some("OFFSET is not supported by Bulk API 2.0 query jobs")
    } else if query.has_subqueries() {
        Some("Parent-to-child subqueries are not supported by Bulk API 2.0 query jobs")
    } else if query.has_typeof() {
        Some("TYPEOF is not supported by Bulk API 2.0 query jobs")
    } else {
        None
    }
}

fn soql_error(e: soql::SoqlError) -> Response {
    sf_error(StatusCode::BAD_REQUEST, e.code, &e.message)
}

fn internal_error() -> Response {
    sf_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN_EXCEPTION",
        "An unexpected error occurred. Please include this ErrorId if you contact support",
    )
}

fn limit_exceeded() -> Response {
    sf_error(
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
        "DailyBulkV2QueryJobs Limit exceeded.",
    )
}

/// Which shape of the job description to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    /// Create and abort responses.
    Basic,
    /// An entry of the job list (adds `jobType`).
    Listed,
    /// `GET /jobs/query/{id}` (adds the counters).
    Full,
}

fn job_json(job: &BulkJob, view: View) -> J {
    let mut m = Map::new();
    let mut put = |k: &str, v: J| {
        m.insert(k.to_string(), v);
    };
    let stamp = value::format_datetime_json(job.created_at);
    put("id", J::String(job.id.clone()));
    put("operation", J::String(job.operation.clone()));
    put("object", J::String(job.object.clone()));
    put("createdById", J::String(job.user_id.clone()));
    put("createdDate", J::String(stamp.clone()));
    put("systemModstamp", J::String(stamp));
    put("state", J::String(job.state.clone()));
    put("concurrencyMode", J::String("Parallel".into()));
    put("contentType", J::String("CSV".into()));
    let version = job
        .api_version
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(J::Null, J::Number);
    put("apiVersion", version);
    if view != View::Basic {
        put("jobType", J::String("V2Query".into()));
    }
    put("lineEnding", J::String(job.line_ending.clone()));
    put("columnDelimiter", J::String(job.column_delimiter.clone()));
    if view == View::Full {
        let processed = match (&job.result, job.state.as_str()) {
            (Some(rs), "JobComplete") => rs.rows.len(),
            _ => 0,
        };
        put("numberRecordsProcessed", J::from(processed));
        put("retries", J::from(0));
        put("totalProcessingTime", J::from(0));
        put("isPkChunkingSupported", J::Bool(true));
        if job.state == "Failed" {
            put(
                "errorMessage",
                J::String(job.error_message.clone().unwrap_or_default()),
            );
        }
    }
    J::Object(m)
}

/// Why running a new job's query failed.
#[derive(Debug)]
enum RunFailure {
    NoOrg,
    Limit,
    Query(soql::SoqlError),
}

async fn create_job(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> Response {
    let spec = match JobSpec::from_body(&body) {
        Ok(s) => s,
        Err(r) => return r.response(),
    };
    let parsed = match soql::parse(&spec.query) {
        Ok(q) => q,
        Err(e) => return soql_error(e),
    };
    if let Some(reason) = bulk_refusal(&parsed) {
        return sf_error(StatusCode::BAD_REQUEST, "API_ERROR", reason);
    }
    let now = ctx.state.clock.now_secs();
    // Run the query (off the async workers: it may scan a large table) under the read lock;
    // take the write lock only to count and store the job.
    let state = ctx.state.clone();
    let org_id = session.org_id.clone();
    let opts = soql::ExecOptions {
        include_deleted: spec.operation == "queryAll",
        now,
        api_version: v.number(),
    };
    let ran = tokio::task::spawn_blocking(move || {
        let data = state.data.read();
        let Some(org) = data.orgs.get(&org_id) else {
            return Err(RunFailure::NoOrg);
        };
        if org.bulk_used >= org.bulk_daily_limit {
            return Err(RunFailure::Limit);
        }
        soql::execute(&parsed, org, &opts)
            .map(Arc::new)
            .map_err(RunFailure::Query)
    })
    .await;
    let result = match ran {
        Ok(Ok(rs))
            if rs
                .columns
                .iter()
                .any(|c| c.field_type == FieldType::Address) =>
        {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "API_ERROR",
                "Selecting compound data not supported in Bulk Query",
            )
        }
        Ok(Ok(rs)) => rs,
        Ok(Err(RunFailure::NoOrg)) => return errors::invalid_session(),
        Ok(Err(RunFailure::Limit)) => return limit_exceeded(),
        Ok(Err(RunFailure::Query(e))) => return soql_error(e),
        Err(_) => return internal_error(),
    };
    let mut data = ctx.state.data.write();
    let data = &mut *data;
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    if org.bulk_used >= org.bulk_daily_limit {
        return limit_exceeded();
    }
    org.bulk_used += 1;
    data.next_job_seq += 1;
    let id = ids::make_id("750", &org.pod, data.next_job_seq);
    let job = BulkJob {
        id: id.clone(),
        org_id: session.org_id.clone(),
        user_id: session.user_id.clone(),
        operation: spec.operation,
        object: result.object.clone(),
        query: spec.query,
        created_at: now,
        state: "UploadComplete".into(),
        api_version: v.0.clone(),
        column_delimiter: spec.column_delimiter,
        line_ending: spec.line_ending,
        result: Some(result),
        error_message: None,
    };
    let body = job_json(&job, View::Basic);
    data.jobs.insert(id, job);
    json(StatusCode::OK, &body)
}

/// The job with this id (15 or 18 characters) when it belongs to the session's org.
fn job_key(data: &crate::state::Data, session: &Session, id: &str) -> Option<String> {
    let id = ids::normalize(id)?;
    data.jobs
        .get(&id)
        .filter(|j| j.org_id == session.org_id)
        .map(|_| id)
}

async fn job_status(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let mut data = ctx.state.data.write();
    let Some(key) = job_key(&data, &session, &id) else {
        return not_found();
    };
    let Some(job) = data.jobs.get_mut(&key) else {
        return not_found();
    };
    // One step per status call: UploadComplete → InProgress → JobComplete.
    match job.state.as_str() {
        "UploadComplete" => job.state = "InProgress".into(),
        "InProgress" => job.state = "JobComplete".into(),
        _ => {}
    }
    json(StatusCode::OK, &job_json(job, View::Full))
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "JobComplete" | "Failed" | "Aborted")
}

async fn abort_job(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body: J = match errors::parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut data = ctx.state.data.write();
    let Some(key) = job_key(&data, &session, &id) else {
        return not_found();
    };
    let Some(job) = data.jobs.get_mut(&key) else {
        return not_found();
    };
    match body.get("state") {
        Some(J::String(s)) if s == "Aborted" => {}
        Some(J::String(s)) => {
            return invalid_job(&format!(
                "Invalid state: {s}. A query job can only be set to Aborted"
            ))
        }
        _ => return invalid_job("Missing required field: state"),
    }
    if is_terminal(&job.state) {
        return invalid_job(&format!(
            "Cannot abort the job: it is already in state {}",
            job.state
        ));
    }
    job.state = "Aborted".into();
    job.result = None;
    json(StatusCode::OK, &job_json(job, View::Basic))
}

async fn delete_job(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let mut data = ctx.state.data.write();
    let Some(key) = job_key(&data, &session, &id) else {
        return not_found();
    };
    if data.jobs.get(&key).is_some_and(|j| j.state == "InProgress") {
        return invalid_job(
            "Cannot delete a job that is in progress; abort it or wait for it to complete",
        );
    }
    data.jobs.remove(&key);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_jobs(State(ctx): State<Ctx>, Extension(session): Extension<Session>) -> Response {
    let data = ctx.state.data.read();
    let records: Vec<J> = data
        .jobs
        .values()
        .filter(|j| j.org_id == session.org_id)
        .map(|j| job_json(j, View::Listed))
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({"done": true, "records": records, "nextRecordsUrl": null}),
    )
}

/// Encodes a result offset as an opaque locator (base64 of the decimal offset).
fn encode_locator(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(offset.to_string())
}

/// Decodes a locator, accepting it with or without base64 padding.
fn decode_locator(locator: &str) -> Option<usize> {
    let trimmed = locator.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// `locator` and `maxRecords` of a results request.
fn page_params(raw: Option<&str>) -> Result<(usize, Option<String>), Refusal> {
    let mut max = DEFAULT_PAGE_SIZE;
    let mut locator = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "maxRecords" => {
                max = v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        Refusal::invalid_job(format!(
                            "Invalid maxRecords: {v}. It must be a positive integer"
                        ))
                    })?;
            }
            "locator" if !v.is_empty() => locator = Some(v.into_owned()),
            _ => {}
        }
    }
    Ok((max, locator))
}

/// Renders rows `[offset, end)` of a job's snapshot as one CSV page (header row included).
fn render_page(
    state: &Shared,
    org_id: &str,
    result: &ResultSet,
    range: std::ops::Range<usize>,
    delimiter: u8,
    crlf: bool,
) -> Option<String> {
    let data = state.data.read();
    let org = data.orgs.get(org_id)?;
    let rows = result.rows.get(range)?;
    Some(soql::render_csv(result, org, rows, delimiter, crlf))
}

async fn job_results(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (max, locator) = match page_params(raw.as_deref()) {
        Ok(p) => p,
        Err(r) => return r.response(),
    };
    let (result, delimiter, crlf) = {
        let data = ctx.state.data.read();
        let Some(job) = job_key(&data, &session, &id).and_then(|k| data.jobs.get(&k)) else {
            return not_found();
        };
        if job.api_version != v.0 {
            return sf_error(
                StatusCode::CONFLICT,
                INVALID_JOB,
                &format!(
                    "The job was created with API version {}; request its results with that version",
                    job.api_version
                ),
            );
        }
        let result = match (&job.result, job.state.as_str()) {
            (Some(rs), "JobComplete") => rs.clone(),
            _ => {
                return invalid_job(&format!(
                    "Results are not available: the job is in state {}",
                    job.state
                ))
            }
        };
        (
            result,
            delimiter_byte(&job.column_delimiter),
            job.line_ending == "CRLF",
        )
    };
    let total = result.rows.len();
    let offset = match locator.as_deref() {
        None => 0,
        Some(l) => match decode_locator(l).filter(|o| *o <= total) {
            Some(o) => o,
            None => {
                return sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_QUERY_LOCATOR",
                    &format!("Invalid locator: {l}"),
                )
            }
        },
    };
    let end = offset.saturating_add(max).min(total);
    let state = ctx.state.clone();
    let org_id = session.org_id.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        render_page(&state, &org_id, &result, offset..end, delimiter, crlf)
    })
    .await;
    let csv = match rendered {
        Ok(Some(csv)) => csv,
        Ok(None) => return errors::invalid_session(),
        Err(_) => return internal_error(),
    };
    let served = end - offset;
    ctx.state
        .stats
        .records_served
        .fetch_add(served as u64, Ordering::Relaxed);
    let next = if end < total {
        encode_locator(end)
    } else {
        "null".to_string()
    };
    let mut resp = (StatusCode::OK, csv).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    headers.insert("sforce-numberofrecords", HeaderValue::from(served));
    if let Ok(value) = HeaderValue::from_str(&next) {
        headers.insert("sforce-locator", value);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip_and_look_like_the_docs() {
        assert_eq!(encode_locator(10000), "MTAwMDA");
        assert_eq!(decode_locator("MTAwMDA"), Some(10000));
        assert_eq!(decode_locator("MTAwMDA="), Some(10000));
        for n in [0, 1, 99, 50_000, 999_999, 123_456_789] {
            let l = encode_locator(n);
            assert!(l.bytes().all(|b| b.is_ascii_alphanumeric()), "{l}");
            assert_eq!(decode_locator(&l), Some(n));
        }
        assert_eq!(decode_locator("not a locator!"), None);
        assert_eq!(decode_locator("null"), None);
    }

    #[test]
    fn delimiters_map_to_bytes() {
        assert_eq!(delimiter_byte("TAB"), b'\t');
        assert_eq!(delimiter_byte("BACKQUOTE"), b'`');
        assert_eq!(delimiter_byte("COMMA"), b',');
    }
}
