//! Rows and inputs of syncs, sync runs and synced records, plus the opaque record cursor.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{ConnectionRowId, EnvironmentId};

/// Internal id of a (connection, sync) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncId(pub i64);

/// Internal id of one run of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncRunId(pub i64);

impl std::fmt::Display for SyncId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for SyncRunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What kind of run was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncTrigger {
    /// Continue from the checkpoint.
    Incremental,
    /// Start again from scratch (checkpoint reset), keeping the records.
    FullRefresh,
    /// Start again from scratch and delete the sync's records first.
    FullRefreshAndClear,
}

impl SyncTrigger {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incremental => "incremental",
            Self::FullRefresh => "full_refresh",
            Self::FullRefreshAndClear => "full_refresh_and_clear",
        }
    }

    /// Parses the stored text.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "incremental" => Some(Self::Incremental),
            "full_refresh" => Some(Self::FullRefresh),
            "full_refresh_and_clear" => Some(Self::FullRefreshAndClear),
            _ => None,
        }
    }
}

/// The last change made to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordAction {
    /// First seen.
    Added,
    /// Content changed (or came back after a delete).
    Updated,
    /// Gone at the provider.
    Deleted,
}

impl RecordAction {
    /// The stored (and Nango's) text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Updated => "UPDATED",
            Self::Deleted => "DELETED",
        }
    }

    /// Parses `ADDED`/`UPDATED`/`DELETED`, in any case.
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_uppercase().as_str() {
            "ADDED" => Some(Self::Added),
            "UPDATED" => Some(Self::Updated),
            "DELETED" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A sync a connection should have (input of `ensure_syncs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSync {
    /// Sync name (`contacts`).
    pub name: String,
    /// The model its records are stored under (`Contact`).
    pub model: String,
    /// Seconds between scheduled runs.
    pub frequency_secs: i64,
    /// Whether a new row starts unpaused and due now.
    pub auto_start: bool,
}

/// One run of a sync, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRunSummary {
    /// Run id.
    pub id: SyncRunId,
    /// What was asked for.
    pub trigger: SyncTrigger,
    /// `RUNNING`, `SUCCESS` or `ERROR`.
    pub status: String,
    /// When the run started.
    pub started_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Records added so far.
    pub added: i64,
    /// Records updated so far.
    pub updated: i64,
    /// Records deleted so far.
    pub deleted: i64,
    /// Why it failed.
    pub error: Option<String>,
}

/// A (connection, sync) row: schedule, lease, checkpoint and latest run.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRow {
    /// Row id.
    pub id: SyncId,
    /// The connection's environment.
    pub environment_id: EnvironmentId,
    /// The connection.
    pub connection_row_id: ConnectionRowId,
    /// Sync name.
    pub name: String,
    /// Model its records are stored under.
    pub model: String,
    /// Seconds between scheduled runs.
    pub frequency_secs: i64,
    /// Paused syncs are never claimed.
    pub paused: bool,
    /// When the next scheduled run is due.
    pub next_run_at: Option<i64>,
    /// A requested run not yet started.
    pub pending: Option<SyncTrigger>,
    /// The engine's resume point.
    pub checkpoint: Option<Value>,
    /// Who holds the run lease.
    pub lease_owner: Option<String>,
    /// When the lease lapses.
    pub lease_until: Option<i64>,
    /// The latest run.
    pub last_run: Option<SyncRunSummary>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A record as the engine read it: the model JSON and the caller's content hash of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// The provider's id.
    pub external_id: String,
    /// The model JSON.
    pub payload: Value,
    /// Content hash; equal hashes mean "unchanged".
    pub hash: String,
    /// `payload` already serialized (compact JSON) by the caller, written as is instead of
    /// serializing `payload` again inside the page's transaction; `None`: the store does it.
    pub payload_text: Option<String>,
}

impl RecordWrite {
    /// The payload's compact JSON text: the caller's, or serialized now.
    pub(crate) fn payload_json(&self) -> std::borrow::Cow<'_, str> {
        match &self.payload_text {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => std::borrow::Cow::Owned(self.payload.to_string()),
        }
    }
}

/// One page of a run, committed atomically with the checkpoint by `commit_page`.
#[derive(Debug, Clone, Copy)]
pub struct PageCommit<'a> {
    /// The sync.
    pub sync: SyncId,
    /// The run started by `start_sync_run`.
    pub run: SyncRunId,
    /// The lease holder (checked).
    pub lease_owner: &'a str,
    /// Records read.
    pub upserts: &'a [RecordWrite],
    /// External ids found deleted.
    pub deletes: &'a [String],
    /// New checkpoint, if it moved.
    pub checkpoint: Option<&'a Value>,
    /// Commit time.
    pub now: i64,
}

/// What a page changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// New records.
    pub added: u64,
    /// Changed or resurrected records.
    pub updated: u64,
    /// Live records marked deleted.
    pub deleted: u64,
}

/// A records API query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordQuery {
    /// Model name.
    pub model: String,
    /// Continue after this record ([`StoredRecord::cursor`]).
    pub cursor: Option<String>,
    /// Only records with `updated_at >= modified_after`.
    pub modified_after: Option<i64>,
    /// Only records whose last action is one of these; empty = all.
    pub actions: Vec<RecordAction>,
    /// Only these external ids; empty = all.
    pub ids: Vec<String>,
    /// Page size.
    pub limit: u32,
}

/// A stored record with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// The provider's id.
    pub external_id: String,
    /// The model JSON (the last one seen, also for deleted records).
    pub payload: Value,
    /// Content hash.
    pub hash: String,
    /// When first stored.
    pub first_seen_at: i64,
    /// When last changed (added, updated or deleted).
    pub updated_at: i64,
    /// When marked deleted.
    pub deleted_at: Option<i64>,
    /// The last change.
    pub last_action: RecordAction,
    /// When its payload was pruned (emptied); cleared when a change writes a new one.
    pub pruned_at: Option<i64>,
    /// Opaque keyset cursor pointing just after this record.
    pub cursor: String,
}

/// Encodes the keyset position `(updated_at, row id)` as an opaque cursor.
pub(crate) fn encode_cursor(updated_at: i64, row_id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{updated_at}:{row_id}"))
}

/// Decodes a cursor made by [`encode_cursor`]; `None` if it is not one.
pub(crate) fn decode_cursor(cursor: &str) -> Option<(i64, i64)> {
    if cursor.len() > 1000 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (updated_at, id) = text.split_once(':')?;
    Some((updated_at.parse().ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let cursor = encode_cursor(1_700_000_000_123, 42);
        assert_eq!(decode_cursor(&cursor), Some((1_700_000_000_123, 42)));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(&encode_cursor(1, 2).replace('M', "!")), None);
    }
}
