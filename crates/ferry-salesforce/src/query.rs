//! SOQL over REST: `query` / `queryAll` read a page at a time by following `nextRecordsUrl`, and `SELECT COUNT()`. Locators live only inside one [`QueryPager`]; nothing here persists them.

use crate::transport::{ApiError, ApiRequest, Transport};
use serde::Deserialize;
use serde_json::Value;

/// `q=` value encoding (spaces as `+`, everything else percent-encoded as needed).
pub fn encode_soql(soql: &str) -> String {
    url::form_urlencoded::byte_serialize(soql.as_bytes()).collect()
}

/// One page of a query result.
#[derive(Debug, Clone)]
pub struct QueryPage {
    /// The full result size (the same on every page).
    pub total_size: u64,
    /// The records of this page, as Salesforce returns them (parents nested).
    pub records: Vec<Value>,
    /// Whether this is the last page.
    pub done: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPage {
    total_size: u64,
    done: bool,
    #[serde(default)]
    next_records_url: Option<String>,
    #[serde(default)]
    records: Vec<Value>,
}

/// Reads a query result page by page: the first call runs the query, later ones follow the
/// locator. Memory is one page.
pub struct QueryPager<'a> {
    transport: &'a dyn Transport,
    next: Option<String>,
    batch_size: u32,
    finished: bool,
}

impl std::fmt::Debug for QueryPager<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryPager")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<'a> QueryPager<'a> {
    /// A pager for `soql` on API `version` (`v62.0`); `all` = `queryAll` (deleted and archived
    /// rows too); `batch_size` is asked with `Sforce-Query-Options` (Salesforce keeps it in
    /// 200–2000 and may return fewer).
    pub fn new(
        transport: &'a dyn Transport,
        version: &str,
        soql: &str,
        all: bool,
        batch_size: u32,
    ) -> Self {
        let resource = if all { "queryAll" } else { "query" };
        QueryPager {
            transport,
            next: Some(format!(
                "/services/data/{version}/{resource}?q={}",
                encode_soql(soql)
            )),
            batch_size,
            finished: false,
        }
    }

    /// The next page, or `None` once the last one was returned.
    pub async fn next_page(&mut self) -> Result<Option<QueryPage>, ApiError> {
        if self.finished {
            return Ok(None);
        }
        let Some(path) = self.next.take() else {
            self.finished = true;
            return Ok(None);
        };
        let mut request = ApiRequest::get(path);
        request.headers.push((
            "Sforce-Query-Options".into(),
            format!("batchSize={}", self.batch_size.clamp(200, 2000)),
        ));
        let response = self.transport.send(request).await?;
        if !response.is_success() {
            return Err(response
                .into_json()
                .err()
                .unwrap_or(ApiError::Malformed("error without body".into())));
        }
        let page: RawPage = serde_json::from_slice(&response.body)
            .map_err(|e| ApiError::Malformed(format!("query page: {e}")))?;
        self.next = if page.done {
            None
        } else {
            match page.next_records_url {
                Some(url) => Some(url),
                None => {
                    return Err(ApiError::Malformed(
                        "a page with done:false has no nextRecordsUrl".into(),
                    ))
                }
            }
        };
        self.finished = self.next.is_none();
        Ok(Some(QueryPage {
            total_size: page.total_size,
            records: page.records,
            done: page.done,
        }))
    }
}

/// `SELECT COUNT() FROM …`: the number of matching rows.
pub async fn count(transport: &dyn Transport, version: &str, soql: &str) -> Result<u64, ApiError> {
    let mut pager = QueryPager::new(transport, version, soql, false, 2000);
    match pager.next_page().await? {
        Some(page) => Ok(page.total_size),
        None => Ok(0),
    }
}
