//! Bulk API 2.0 query jobs: create, poll until complete (the caller supplies the wait between polls), and read the CSV results a page at a time (`locator` + `maxRecords`), parsed with the `csv` crate so memory stays one page; CSV rows turn back into REST-shaped JSON with the object's field types.

use crate::transport::{ApiError, ApiRequest, Transport};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::future::Future;

/// A query job as Salesforce describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkJob {
    /// The job id (`750…`).
    pub id: String,
    /// `UploadComplete`, `InProgress`, `JobComplete`, `Failed` or `Aborted`.
    pub state: String,
    /// Why the job failed, when it did.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Rows processed so far.
    #[serde(default)]
    pub number_records_processed: Option<u64>,
}

impl BulkJob {
    /// Whether the job will not change state any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state.as_str(), "JobComplete" | "Failed" | "Aborted")
    }
}

fn jobs_path(version: &str) -> String {
    format!("/services/data/{version}/jobs/query")
}

/// Creates a query job (`all` = `queryAll`, deleted rows included).
pub async fn create_job(
    transport: &dyn Transport,
    version: &str,
    soql: &str,
    all: bool,
) -> Result<BulkJob, ApiError> {
    let body = serde_json::json!({
        "operation": if all { "queryAll" } else { "query" },
        "query": soql,
        "contentType": "CSV",
        "columnDelimiter": "COMMA",
        "lineEnding": "LF",
    });
    let value = transport
        .send(ApiRequest::json(
            reqwest::Method::POST,
            jobs_path(version),
            &body,
        ))
        .await?
        .into_json()?;
    serde_json::from_value(value).map_err(|e| ApiError::Malformed(format!("bulk job: {e}")))
}

/// The job's current state.
pub async fn job_status(
    transport: &dyn Transport,
    version: &str,
    id: &str,
) -> Result<BulkJob, ApiError> {
    let value = transport
        .send(ApiRequest::get(format!("{}/{id}", jobs_path(version))))
        .await?
        .into_json()?;
    serde_json::from_value(value).map_err(|e| ApiError::Malformed(format!("bulk job: {e}")))
}

/// Polls the job until it is `JobComplete`; `wait(n)` is awaited before poll `n` (from 1) so
/// callers choose the pacing (a real backoff, or none against the emulator). A `Failed` or
/// `Aborted` job is an error carrying Salesforce's message.
pub async fn wait_for_completion<W, F>(
    transport: &dyn Transport,
    version: &str,
    id: &str,
    mut wait: W,
) -> Result<BulkJob, ApiError>
where
    W: FnMut(u32) -> F,
    F: Future<Output = ()>,
{
    let mut polls = 0u32;
    loop {
        let job = job_status(transport, version, id).await?;
        match job.state.as_str() {
            "JobComplete" => return Ok(job),
            "Failed" | "Aborted" => {
                return Err(ApiError::Malformed(format!(
                    "bulk query job {id} ended {}: {}",
                    job.state,
                    job.error_message.unwrap_or_default()
                )))
            }
            _ => {}
        }
        polls += 1;
        wait(polls).await;
    }
}

/// Aborts a job that is not finished (best effort: errors are returned, not retried).
pub async fn abort_job(transport: &dyn Transport, version: &str, id: &str) -> Result<(), ApiError> {
    transport
        .send(ApiRequest::json(
            reqwest::Method::PATCH,
            format!("{}/{id}", jobs_path(version)),
            &serde_json::json!({"state": "Aborted"}),
        ))
        .await?
        .into_json()
        .map(|_| ())
}

/// Deletes a finished job and its results.
pub async fn delete_job(
    transport: &dyn Transport,
    version: &str,
    id: &str,
) -> Result<(), ApiError> {
    let mut request = ApiRequest::get(format!("{}/{id}", jobs_path(version)));
    request.method = reqwest::Method::DELETE;
    transport.send(request).await?.into_json().map(|_| ())
}

/// One page of CSV results.
#[derive(Debug, Clone)]
pub struct CsvPage {
    /// Column paths (`Id`, `Account.Name`), from the page's header row.
    pub headers: Vec<String>,
    /// The rows of the page.
    pub rows: Vec<csv::StringRecord>,
}

/// Reads a complete job's results page by page. The locator lives only in this value.
pub struct ResultPager<'a> {
    transport: &'a dyn Transport,
    path: String,
    locator: Option<String>,
    max_records: u32,
    finished: bool,
}

impl std::fmt::Debug for ResultPager<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultPager")
            .field("path", &self.path)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<'a> ResultPager<'a> {
    /// A pager over job `id`'s results, `max_records` rows per page.
    pub fn new(transport: &'a dyn Transport, version: &str, id: &str, max_records: u32) -> Self {
        ResultPager {
            transport,
            path: format!("{}/{id}/results", jobs_path(version)),
            locator: None,
            max_records: max_records.max(1),
            finished: false,
        }
    }

    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<CsvPage>, ApiError> {
        if self.finished {
            return Ok(None);
        }
        let mut path = format!("{}?maxRecords={}", self.path, self.max_records);
        if let Some(l) = &self.locator {
            path.push_str("&locator=");
            path.extend(url::form_urlencoded::byte_serialize(l.as_bytes()));
        }
        let mut request = ApiRequest::get(path);
        request.headers.push(("Accept".into(), "text/csv".into()));
        let response = self.transport.send(request).await?;
        if !response.is_success() {
            return Err(response
                .into_json()
                .err()
                .unwrap_or(ApiError::Malformed("error without body".into())));
        }
        let locator = response
            .header("sforce-locator")
            .map(str::to_string)
            .ok_or_else(|| ApiError::Malformed("results without Sforce-Locator".into()))?;
        if locator == "null" || locator.is_empty() {
            self.finished = true;
            self.locator = None;
        } else {
            self.locator = Some(locator);
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(response.body.as_ref());
        let headers = reader
            .headers()
            .map_err(|e| ApiError::Malformed(format!("results CSV: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let rows = reader
            .records()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::Malformed(format!("results CSV: {e}")))?;
        Ok(Some(CsvPage { headers, rows }))
    }
}

/// How a CSV text value becomes the JSON value REST would have returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Text (ids, strings, picklists, dates…).
    Text,
    /// `true`/`false`.
    Boolean,
    /// Whole numbers.
    Integer,
    /// Double, currency, percent.
    Number,
    /// `…000Z` in CSV, `…000+0000` in JSON.
    DateTime,
}

impl ValueKind {
    /// The kind of a describe field type (`boolean`, `int`, `double`, `datetime`…).
    pub fn of_describe_type(t: &str) -> ValueKind {
        match t {
            "boolean" => ValueKind::Boolean,
            "int" | "long" => ValueKind::Integer,
            "double" | "currency" | "percent" => ValueKind::Number,
            "datetime" => ValueKind::DateTime,
            _ => ValueKind::Text,
        }
    }

    /// Converts one CSV cell (empty = null).
    pub fn to_json(self, cell: &str) -> Value {
        if cell.is_empty() {
            return Value::Null;
        }
        match self {
            ValueKind::Text => Value::String(cell.to_string()),
            ValueKind::Boolean => Value::Bool(cell.eq_ignore_ascii_case("true")),
            ValueKind::Integer => cell
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(cell.to_string())),
            ValueKind::Number => cell
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(cell.to_string())),
            ValueKind::DateTime => match cell.strip_suffix('Z') {
                Some(base) => Value::String(format!("{base}+0000")),
                None => Value::String(cell.to_string()),
            },
        }
    }
}

/// A CSV row as REST-shaped JSON: dotted columns nest (`Account.Name` → `{"Account":{"Name"}}`),
/// values converted by `kinds` (one per column).
pub fn row_to_record(headers: &[String], kinds: &[ValueKind], row: &csv::StringRecord) -> Value {
    let mut out = Map::with_capacity(headers.len());
    for (i, header) in headers.iter().enumerate() {
        let cell = row.get(i).unwrap_or_default();
        let kind = kinds.get(i).copied().unwrap_or(ValueKind::Text);
        let value = kind.to_json(cell);
        let mut segments = header.split('.').peekable();
        let mut map = &mut out;
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                map.insert(segment.to_string(), value);
                break;
            }
            let entry = map
                .entry(segment.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(m) => map = m,
                _ => break,
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_become_rest_json() {
        assert_eq!(ValueKind::Boolean.to_json("true"), Value::Bool(true));
        assert_eq!(ValueKind::Integer.to_json("42"), Value::from(42));
        assert_eq!(
            ValueKind::Number.to_json("5000").to_string(),
            serde_json::json!(5000.0).to_string()
        );
        assert_eq!(
            ValueKind::DateTime.to_json("2024-01-01T00:00:00.000Z"),
            Value::String("2024-01-01T00:00:00.000+0000".into())
        );
        assert_eq!(ValueKind::Text.to_json(""), Value::Null);
    }

    #[test]
    fn dotted_columns_nest() {
        let headers = vec!["Id".to_string(), "Account.Name".to_string()];
        let row = csv::StringRecord::from(vec!["003x", "Acme"]);
        let v = row_to_record(&headers, &[ValueKind::Text, ValueKind::Text], &row);
        assert_eq!(
            v,
            serde_json::json!({"Id": "003x", "Account": {"Name": "Acme"}})
        );
    }
}
