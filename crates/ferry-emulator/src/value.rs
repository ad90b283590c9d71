//! Field values as the emulator stores them, and their Salesforce wire formats (JSON, CSV, SOQL literals).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use compact_str::CompactString;
use std::cmp::Ordering;

/// One field value of a record. Datetimes are whole seconds (Salesforce stores no milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value (`null` in JSON, empty in CSV).
    Null,
    /// A checkbox.
    Bool(bool),
    /// An integer field (`int`).
    Int(i64),
    /// A number, currency or percent field (`double`, `currency`, `percent`).
    Num(f64),
    /// Text of any kind: strings, ids, references, picklists, emails, phones, urls.
    Str(CompactString),
    /// A datetime, in seconds since the Unix epoch (UTC).
    DateTime(i64),
    /// A date, in days since 1970-01-01.
    Date(i32),
}

impl Value {
    /// A text value.
    pub fn str(s: impl AsRef<str>) -> Self {
        Value::Str(CompactString::new(s.as_ref()))
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a `Str` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The JSON form Salesforce's REST API uses.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Num(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::DateTime(secs) => serde_json::Value::String(format_datetime_json(*secs)),
            Value::Date(days) => serde_json::Value::String(format_date(*days)),
        }
    }

    /// The CSV form Bulk API 2.0 uses: datetimes end in `.000Z`, nulls are empty.
    pub fn to_csv(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Num(n) => format_number(*n),
            Value::Str(s) => s.to_string(),
            Value::DateTime(secs) => format_datetime_csv(*secs),
            Value::Date(days) => format_date(*days),
        }
    }

    /// Orders two values the way SOQL's ORDER BY does for non-null values of one field;
    /// text compares case-insensitively, as Salesforce's default collation does.
    pub fn cmp_for_sort(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Int(a), Value::Num(b)) => (*a as f64).total_cmp(b),
            (Value::Num(a), Value::Int(b)) => a.total_cmp(&(*b as f64)),
            (Value::Num(a), Value::Num(b)) => a.total_cmp(b),
            (Value::Str(a), Value::Str(b)) => cmp_text(a, b),
            (Value::DateTime(a), Value::DateTime(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::DateTime(a), Value::Date(b)) => a.cmp(&(i64::from(*b) * 86_400)),
            (Value::Date(a), Value::DateTime(b)) => (i64::from(*a) * 86_400).cmp(b),
            (a, b) => a.type_rank().cmp(&b.type_rank()),
        }
    }

    fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Num(_) => 2,
            Value::Str(_) => 3,
            Value::DateTime(_) | Value::Date(_) => 4,
        }
    }
}

/// Case-insensitive text comparison with a case-sensitive tie-break, so sorting is total.
pub fn cmp_text(a: &str, b: &str) -> Ordering {
    let folded = a
        .bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()));
    folded.then_with(|| a.cmp(b))
}

/// `2024-01-01T00:00:00.000+0000`, the REST JSON datetime form.
pub fn format_datetime_json(secs: i64) -> String {
    match Utc.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string(),
        None => String::new(),
    }
}

/// `2024-01-01T00:00:00.000Z`, the Bulk CSV datetime form.
pub fn format_datetime_csv(secs: i64) -> String {
    match Utc.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
        None => String::new(),
    }
}

/// `2024-01-01`.
pub fn format_date(days: i32) -> String {
    match NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_FROM_CE) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => String::new(),
    }
}

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(chrono::Datelike::num_days_from_ce(&d) - EPOCH_DAYS_FROM_CE)
}

/// Parses the datetime forms Salesforce accepts on input (`Z`, `+01:00`, `+0100`, optional
/// fractional seconds) into whole epoch seconds.
pub fn parse_datetime(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.timestamp());
        }
    }
    None
}

/// A number as Salesforce prints it in CSV: integers without a fraction.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_use_salesforce_wire_forms() {
        let secs = parse_datetime("2024-01-01T00:00:00Z").unwrap_or_default();
        assert_eq!(format_datetime_json(secs), "2024-01-01T00:00:00.000+0000");
        assert_eq!(format_datetime_csv(secs), "2024-01-01T00:00:00.000Z");
        assert_eq!(parse_datetime("2024-01-01T01:00:00.000+0100"), Some(secs));
        assert_eq!(parse_datetime("2024-01-01T01:00:00+01:00"), Some(secs));
        let days = parse_date("2024-03-05").unwrap_or_default();
        assert_eq!(format_date(days), "2024-03-05");
        assert_eq!(parse_date("1970-01-01"), Some(0));
    }

    #[test]
    fn value_stays_small() {
        assert!(std::mem::size_of::<Value>() <= 32);
    }
}
