//! Placeholder for the SOQL module (parser, evaluator, renderers); replaced by the real one.

use crate::org::Org;

/// A SOQL error.
#[derive(Debug, Clone)]
pub struct SoqlError {
    /// Error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Has OFFSET.
    pub offset: Option<usize>,
}

impl Query {
    /// Whether the Bulk API refuses this query.
    pub fn bulk_unsupported_reason(&self) -> Option<&'static str> {
        None
    }
}

/// Execution options.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// queryAll.
    pub include_deleted: bool,
    /// Now.
    pub now: i64,
    /// Version.
    pub api_version: f32,
}

/// A result.
#[derive(Debug, Clone)]
pub struct ResultSet {
    /// Object.
    pub object: String,
    /// COUNT().
    pub count_only: bool,
    /// Total.
    pub total_size: usize,
    /// Rows.
    pub rows: Vec<u32>,
}

/// Parses.
pub fn parse(_text: &str) -> Result<Query, SoqlError> {
    Err(SoqlError {
        code: "MALFORMED_QUERY",
        message: "not yet".into(),
    })
}

/// Executes.
pub fn execute(_q: &Query, _org: &Org, _o: &ExecOptions) -> Result<ResultSet, SoqlError> {
    Err(SoqlError {
        code: "MALFORMED_QUERY",
        message: "not yet".into(),
    })
}

/// Renders JSON.
pub fn render_json(_rs: &ResultSet, _org: &Org, _row: u32, _v: &str) -> serde_json::Value {
    serde_json::Value::Null
}

/// Renders CSV.
pub fn render_csv(_rs: &ResultSet, _org: &Org, _rows: &[u32], _d: u8, _crlf: bool) -> String {
    String::new()
}
