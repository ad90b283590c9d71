//! The operation log and the per-org API usage record: their types and store ports.

use async_trait::async_trait;
use serde::Serialize;

use crate::error::StoreError;
use crate::model::EnvironmentId;

/// Row id of an operation-log entry (its order is the log's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct OperationId(pub i64);

/// What made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// An app's call relayed by `/proxy`.
    Proxy,
    /// A sync run's call.
    Sync,
    /// An action's call.
    Action,
}

impl OperationKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Proxy => "proxy",
            OperationKind::Sync => "sync",
            OperationKind::Action => "action",
        }
    }

    /// Parses the stored text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "proxy" => Some(OperationKind::Proxy),
            "sync" => Some(OperationKind::Sync),
            "action" => Some(OperationKind::Action),
            _ => None,
        }
    }
}

/// One call to Salesforce, as logged: never a body, a header value or a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewOperation {
    /// The environment the call was made in.
    pub environment_id: EnvironmentId,
    /// Proxy, sync or action.
    pub kind: OperationKind,
    /// The connection's public id, when known.
    pub connection_id: Option<String>,
    /// The integration's unique key (`Provider-Config-Key`), when known.
    pub integration_key: Option<String>,
    /// The Salesforce org, when known.
    pub org_id: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Upstream path (query string stripped: it may hold SOQL literals).
    pub path: String,
    /// The status returned, `None` if no response came back.
    pub status: Option<i64>,
    /// From the call's start until its response body was passed on (or dropped).
    pub duration_ms: i64,
    /// Retries made (the refresh-and-retry counts as one).
    pub retries: i64,
    /// Request body bytes sent upstream.
    pub bytes_in: i64,
    /// Response body bytes passed back.
    pub bytes_out: i64,
    /// Ferry's error code when the call failed on Ferry's side (`upstream_timeout`, …).
    pub error_code: Option<String>,
    /// When the call started (epoch ms).
    pub started_at: i64,
}

/// A stored operation-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// Row id; also the keyset cursor.
    pub id: OperationId,
    /// The entry.
    #[serde(flatten)]
    pub entry: NewOperation,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationQuery {
    /// Only this connection's calls.
    pub connection_id: Option<String>,
    /// Only this integration's calls.
    pub integration_key: Option<String>,
    /// Only calls of this kind.
    pub kind: Option<OperationKind>,
    /// Keyset cursor: only entries older than this id.
    pub before: Option<OperationId>,
    /// At most this many (1..=1000; 0 means 100).
    pub limit: u32,
}

/// What Ferry knows about one org's API budget, shared by every process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgUsageRow {
    /// The Salesforce org id.
    pub org_id: String,
    /// Calls counted in the rolling 24 hours, as last reported.
    pub used: Option<i64>,
    /// The org's allowance, as last reported.
    pub max: Option<i64>,
    /// `REQUEST_LIMIT_EXCEEDED`/`TotalRequests` seen (or used ≥ max) and no success since.
    pub budget_spent: bool,
    /// When this was observed (epoch ms).
    pub updated_at: i64,
}

/// The operation log: appended in batches by a background writer, read by the API.
#[async_trait]
pub trait OperationLogStore: Send + Sync {
    /// Appends entries in one statement per chunk; returns how many were written.
    async fn insert_operations(&self, entries: &[NewOperation]) -> Result<u64, StoreError>;
    /// An environment's entries, newest first, filtered by `query`.
    async fn list_operations(
        &self,
        environment: EnvironmentId,
        query: &OperationQuery,
    ) -> Result<Vec<Operation>, StoreError>;
    /// Deletes entries that started before `before` (retention); returns how many.
    async fn prune_operations(&self, before: i64) -> Result<u64, StoreError>;
}

/// Per-org API usage, written through by every process and read on start and by the usage API.
#[async_trait]
pub trait OrgUsageStore: Send + Sync {
    /// Stores `usage` unless a newer observation (`updated_at`) is already stored.
    async fn put_org_usage(&self, usage: &OrgUsageRow) -> Result<(), StoreError>;
    /// One org's record.
    async fn get_org_usage(&self, org_id: &str) -> Result<Option<OrgUsageRow>, StoreError>;
}
