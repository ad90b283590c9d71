//! SOQL for the emulator: parsing a query into an AST, executing it over an org's tables, and rendering rows as REST JSON or Bulk API 2.0 CSV.
//!
//! The subset is the one sync tools use: field lists with parent relationship paths, `COUNT()`,
//! `FIELDS(ALL|STANDARD|CUSTOM)`, `WHERE` with `AND`/`OR`/`NOT`, comparisons, `LIKE`, `IN`,
//! typed and relative date literals, `ORDER BY`, `LIMIT` and `OFFSET`. Errors carry Salesforce's
//! error codes and message wording.

mod aggregate;
mod ast;
mod compile;
mod exec;
mod lexer;
mod like;
mod parser;
mod render;

pub use ast::{
    AggregateFn, CompareOp, Condition, FieldPath, FieldsKind, Literal, LiteralValue, OrderItem,
    PeriodUnit, Query, RelativeDate, SelectItem,
};
pub use exec::{execute, ChildSet, Column, ExecOptions, Hop, PolyColumn, ResultSet};
pub use parser::parse;
pub use render::{render_csv, render_json, render_row};

use std::fmt;

/// A query error as the REST API reports it (always HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlError {
    /// `errorCode`: `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`,
    /// `INVALID_QUERY_FILTER_OPERATOR` or `UNSUPPORTED_API_VERSION`.
    pub code: &'static str,
    /// `message`, worded as Salesforce words it.
    pub message: String,
}

/// `MALFORMED_QUERY`: the text is not valid SOQL (or uses a part the emulator does not support).
pub const MALFORMED_QUERY: &str = "MALFORMED_QUERY";
/// `INVALID_FIELD`: an unknown field or relationship, or a literal of the wrong type.
pub const INVALID_FIELD: &str = "INVALID_FIELD";
/// `INVALID_TYPE`: an unknown object.
pub const INVALID_TYPE: &str = "INVALID_TYPE";
/// `INVALID_QUERY_FILTER_OPERATOR`: e.g. a malformed id compared with an id field.
pub const INVALID_QUERY_FILTER_OPERATOR: &str = "INVALID_QUERY_FILTER_OPERATOR";
/// `UNSUPPORTED_API_VERSION`: a feature newer than the request's API version.
pub const UNSUPPORTED_API_VERSION: &str = "UNSUPPORTED_API_VERSION";

impl SoqlError {
    /// An error with a plain message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        SoqlError {
            code,
            message: message.into(),
        }
    }

    /// An error whose message points at a position of the query, in Salesforce's multi-line form:
    /// `"\n<query line(s)>\n<spaces>^\nERROR at Row:r:Column:c\n<detail>"`.
    pub fn located(code: &'static str, text: &str, offset: usize, detail: &str) -> Self {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let before = &text[..offset];
        let row = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let shown = &text[..line_end];
        let mut message = String::with_capacity(shown.len() + detail.len() + column + 40);
        message.push('\n');
        message.push_str(shown);
        message.push('\n');
        message.extend(std::iter::repeat_n(' ', column - 1));
        message.push_str("^\nERROR at Row:");
        message.push_str(&row.to_string());
        message.push_str(":Column:");
        message.push_str(&column.to_string());
        message.push('\n');
        message.push_str(detail);
        SoqlError { code, message }
    }

    /// The HTTP status the REST API answers with.
    pub fn status(&self) -> u16 {
        400
    }
}

impl fmt::Display for SoqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SoqlError {}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests_exec;
#[cfg(test)]
mod tests_parse;
#[cfg(test)]
mod tests_prop;
