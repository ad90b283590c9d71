//! The REST API client for actions: sObject create / update / upsert by external id / delete /
//! get, describe, limits, composite, userinfo and a bounded SOQL query, over the [`Transport`]
//! port at one negotiated API version.

use crate::transport::{latest_version, ApiError, ApiRequest, Transport};
use serde_json::{json, Value};

/// Whether `name` is a plain Salesforce API name (object or field: letters, digits, `_`).
///
/// Everything put into a URL path passes through this or [`is_record_id`], so input cannot
/// reach another endpoint.
pub fn is_api_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `id` looks like a 15- or 18-character Salesforce record id.
pub fn is_record_id(id: &str) -> bool {
    (id.len() == 15 || id.len() == 18) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What an upsert by external id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// The record id (Salesforce omits it on a `204` update; then `None`).
    pub id: Option<String>,
    /// `true` when a record was created (`201`), `false` when one was updated.
    pub created: bool,
}

/// A page-following SOQL result cut at a limit.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The records read, at most the limit asked for.
    pub records: Vec<Value>,
    /// Salesforce's `totalSize` of the whole result.
    pub total_size: u64,
    /// Whether every record of the result was read.
    pub done: bool,
    /// Where to continue when not done (`nextRecordsUrl`), if Salesforce gave one.
    pub next_records_url: Option<String>,
}

/// A REST client for one org at one API version.
pub struct RestClient<'a> {
    transport: &'a dyn Transport,
    version: String,
}

impl std::fmt::Debug for RestClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<'a> RestClient<'a> {
    /// A client at a known version (`v62.0`), e.g. one cached per org.
    pub fn new(transport: &'a dyn Transport, version: impl Into<String>) -> Self {
        RestClient {
            transport,
            version: version.into(),
        }
    }

    /// A client at the org's newest version (one `GET /services/data`).
    pub async fn negotiate(transport: &'a dyn Transport) -> Result<Self, ApiError> {
        let version = latest_version(transport).await?;
        Ok(Self::new(transport, version))
    }

    /// The API version in use.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn path(&self, rest: &str) -> String {
        format!("/services/data/{}{rest}", self.version)
    }

    fn check_name(kind: &str, name: &str) -> Result<(), ApiError> {
        if is_api_name(name) {
            Ok(())
        } else {
            Err(ApiError::Malformed(format!("invalid {kind} name: {name}")))
        }
    }

    fn check_id(id: &str) -> Result<(), ApiError> {
        if is_record_id(id) {
            Ok(())
        } else {
            Err(ApiError::Malformed(format!("invalid record id: {id}")))
        }
    }

    async fn json(&self, request: ApiRequest) -> Result<Value, ApiError> {
        self.transport.send(request).await?.into_json()
    }

    /// Creates a record; returns its id.
    pub async fn create(&self, object: &str, fields: &Value) -> Result<String, ApiError> {
        Self::check_name("object", object)?;
        let body = self
            .json(ApiRequest::json(
                reqwest::Method::POST,
                self.path(&format!("/sobjects/{object}")),
                fields,
            ))
            .await?;
        body.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiError::Malformed("create answered without an id".into()))
    }

    /// Updates fields of a record (`PATCH`, `204`).
    pub async fn update(&self, object: &str, id: &str, fields: &Value) -> Result<(), ApiError> {
        Self::check_name("object", object)?;
        Self::check_id(id)?;
        self.json(ApiRequest::json(
            reqwest::Method::PATCH,
            self.path(&format!("/sobjects/{object}/{id}")),
            fields,
        ))
        .await
        .map(|_| ())
    }

    /// Creates or updates the record whose `external_field` equals `value`
    /// (`201` created, `200`/`204` updated). Safe to repeat.
    pub async fn upsert(
        &self,
        object: &str,
        external_field: &str,
        value: &str,
        fields: &Value,
    ) -> Result<UpsertOutcome, ApiError> {
        Self::check_name("object", object)?;
        Self::check_name("field", external_field)?;
        if value.is_empty() {
            return Err(ApiError::Malformed("empty external id value".into()));
        }
        let response = self
            .transport
            .send(ApiRequest::json(
                reqwest::Method::PATCH,
                self.path(&format!(
                    "/sobjects/{object}/{external_field}/{}",
                    encode_segment(value)
                )),
                fields,
            ))
            .await?;
        let status = response.status;
        let body = response.into_json()?;
        Ok(UpsertOutcome {
            id: body.get("id").and_then(Value::as_str).map(str::to_string),
            created: status == 201 || body.get("created").and_then(Value::as_bool) == Some(true),
        })
    }

    /// Deletes a record (`204`).
    pub async fn delete(&self, object: &str, id: &str) -> Result<(), ApiError> {
        Self::check_name("object", object)?;
        Self::check_id(id)?;
        self.json(ApiRequest {
            method: reqwest::Method::DELETE,
            path: self.path(&format!("/sobjects/{object}/{id}")),
            headers: Vec::new(),
            body: None,
        })
        .await
        .map(|_| ())
    }

    /// Reads a record, with only `fields` when given. Relationship paths (`Account.Name`) are
    /// not accepted by this endpoint; use [`RestClient::query`] for them.
    pub async fn get(
        &self,
        object: &str,
        id: &str,
        fields: Option<&[String]>,
    ) -> Result<Value, ApiError> {
        Self::check_name("object", object)?;
        Self::check_id(id)?;
        let mut path = self.path(&format!("/sobjects/{object}/{id}"));
        if let Some(fields) = fields.filter(|f| !f.is_empty()) {
            for f in fields {
                Self::check_name("field", f)?;
            }
            path.push_str("?fields=");
            path.push_str(&fields.join(","));
        }
        self.json(ApiRequest::get(path)).await
    }

    /// `describe` of one object.
    pub async fn describe(&self, object: &str) -> Result<Value, ApiError> {
        Self::check_name("object", object)?;
        self.json(ApiRequest::get(
            self.path(&format!("/sobjects/{object}/describe")),
        ))
        .await
    }

    /// The org's object list (`GET /sobjects`).
    pub async fn describe_global(&self) -> Result<Value, ApiError> {
        self.json(ApiRequest::get(self.path("/sobjects"))).await
    }

    /// The org's limits (`GET /limits`).
    pub async fn limits(&self) -> Result<Value, ApiError> {
        self.json(ApiRequest::get(self.path("/limits"))).await
    }

    /// The current user (`GET /services/oauth2/userinfo` on the instance).
    pub async fn userinfo(&self) -> Result<Value, ApiError> {
        self.json(ApiRequest::get("/services/oauth2/userinfo"))
            .await
    }

    /// `POST /composite` with `compositeRequest` subrequests (their `url` relative to the
    /// instance) and `allOrNone`; returns Salesforce's `compositeResponse` body as is.
    pub async fn composite(
        &self,
        all_or_none: bool,
        subrequests: &[Value],
    ) -> Result<Value, ApiError> {
        self.json(ApiRequest::json(
            reqwest::Method::POST,
            self.path("/composite"),
            &json!({"allOrNone": all_or_none, "compositeRequest": subrequests}),
        ))
        .await
    }

    /// Runs a SOQL query and follows `nextRecordsUrl` until `limit` records are read or the
    /// result ends.
    pub async fn query(&self, soql: &str, limit: usize) -> Result<QueryResult, ApiError> {
        let mut path = self.path(&format!("/query?q={}", encode_segment(soql)));
        let mut records = Vec::new();
        // Pages no bigger than needed (Salesforce accepts 200..=2000).
        let batch = limit.clamp(200, 2000);
        loop {
            let mut request = ApiRequest::get(path);
            request
                .headers
                .push(("Sforce-Query-Options".into(), format!("batchSize={batch}")));
            let page = self.json(request).await?;
            let total_size = page.get("totalSize").and_then(Value::as_u64).unwrap_or(0);
            let done = page.get("done").and_then(Value::as_bool).unwrap_or(true);
            let next = page
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(list) = page.get("records").and_then(Value::as_array) {
                records.extend(list.iter().cloned());
            }
            let reached = records.len() >= limit;
            records.truncate(limit);
            match next {
                Some(next) if !done && !reached => {
                    if !next.starts_with("/services/data/") {
                        return Err(ApiError::Malformed(format!(
                            "unexpected nextRecordsUrl: {next}"
                        )));
                    }
                    path = next;
                }
                next => {
                    let all_read = done && records.len() as u64 >= total_size;
                    return Ok(QueryResult {
                        records,
                        total_size,
                        done: all_read,
                        next_records_url: if all_read { None } else { next },
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parts_are_checked_and_encoded() {
        assert!(is_api_name("Contact"));
        assert!(is_api_name("External_Id__c"));
        assert!(!is_api_name("Contact/../limits"));
        assert!(!is_api_name(""));
        assert!(is_record_id("003000000000001AAA"));
        assert!(!is_record_id("003/../../x"));
        assert_eq!(encode_segment("a b/c?d"), "a%20b%2Fc%3Fd");
    }
}
