//! Object metadata and replication calls the sync engine needs: `describe` (an object's fields and their types), `getDeleted` (`/sobjects/{obj}/deleted/?start=&end=`), and the datetime formats of SOQL literals and REST values.

use crate::transport::{ApiError, ApiRequest, Transport};
use serde::Deserialize;

/// One field of an object's describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    /// API name (`Email`, `Amount__c`).
    pub name: String,
    /// Describe type (`id`, `string`, `boolean`, `datetime`, `currency`, `reference`…).
    #[serde(rename = "type")]
    pub field_type: String,
    /// For references, the relationship name (`Account` for `AccountId`).
    #[serde(default)]
    pub relationship_name: Option<String>,
    /// For references, the objects referred to.
    #[serde(default)]
    pub reference_to: Vec<String>,
}

/// The parts of `GET /sobjects/{obj}/describe` Ferry uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDescribe {
    /// API name of the object.
    pub name: String,
    /// Its fields.
    pub fields: Vec<FieldDescribe>,
    /// Whether `getUpdated`/`getDeleted` work on it.
    #[serde(default)]
    pub replicateable: bool,
}

impl ObjectDescribe {
    /// The field named `name` (case-insensitive).
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The reference field whose relationship is `relationship` (`Account` → `AccountId`).
    pub fn relationship(&self, relationship: &str) -> Option<&FieldDescribe> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(relationship))
        })
    }

    /// Whether `path` (`Email`, `Account.Name`) can be selected: a field of this object, or a
    /// relationship of it followed by anything (parent fields are not checked further).
    pub fn has_path(&self, path: &str) -> bool {
        match path.split_once('.') {
            None => self.field(path).is_some(),
            Some((rel, _)) => self.relationship(rel).is_some(),
        }
    }
}

/// `GET /sobjects/{object}/describe`.
pub async fn describe(
    transport: &dyn Transport,
    version: &str,
    object: &str,
) -> Result<ObjectDescribe, ApiError> {
    let value = transport
        .send(ApiRequest::get(format!(
            "/services/data/{version}/sobjects/{object}/describe"
        )))
        .await?
        .into_json()?;
    serde_json::from_value(value).map_err(|e| ApiError::Malformed(format!("describe: {e}")))
}

/// One deleted record.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    /// The record id.
    pub id: String,
    /// When it was deleted (REST datetime form).
    pub deleted_date: String,
}

/// The answer of `getDeleted`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecords {
    /// Records deleted in the window.
    pub deleted_records: Vec<DeletedRecord>,
    /// The oldest instant Salesforce still knows deletions from.
    pub earliest_date_available: Option<String>,
    /// Deletions are complete up to this instant: the next window starts here.
    pub latest_date_covered: Option<String>,
}

/// `GET /sobjects/{object}/deleted/?start=&end=` for `[start_ms, end_ms)` (Salesforce ignores
/// seconds; at most the last 15 days).
pub async fn get_deleted(
    transport: &dyn Transport,
    version: &str,
    object: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<DeletedRecords, ApiError> {
    let enc = |ms: i64| -> String {
        url::form_urlencoded::byte_serialize(replication_datetime(ms).as_bytes()).collect()
    };
    let value = transport
        .send(ApiRequest::get(format!(
            "/services/data/{version}/sobjects/{object}/deleted/?start={}&end={}",
            enc(start_ms),
            enc(end_ms)
        )))
        .await?
        .into_json()?;
    serde_json::from_value(value).map_err(|e| ApiError::Malformed(format!("getDeleted: {e}")))
}

/// `2024-01-01T00:00:00Z`: a SOQL datetime literal (whole seconds, rounded down).
pub fn soql_datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms.div_euclid(1000) * 1000)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// `2024-01-01T00:00:00+00:00`: the form the replication resources take.
pub fn replication_datetime(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .unwrap_or_default()
}

/// Parses a Salesforce datetime (`…000+0000`, `…000Z`, `…+00:00`) to epoch milliseconds.
pub fn parse_datetime(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip_in_every_form() {
        let ms = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        assert_eq!(soql_datetime(ms + 999), "2024-01-01T00:00:00Z");
        assert_eq!(replication_datetime(ms), "2024-01-01T00:00:00+00:00");
        assert_eq!(parse_datetime("2024-01-01T00:00:00.000+0000"), Some(ms));
        assert_eq!(parse_datetime("2024-01-01T00:00:00.000Z"), Some(ms));
        assert_eq!(parse_datetime("2024-01-01T00:00:00+00:00"), Some(ms));
        assert_eq!(parse_datetime("garbage"), None);
    }
}
