//! Syncs: definitions (what to read and how to shape it), the engine (one run of one connection's sync), the scheduler worker, and their tunables.

pub mod definitions;

pub use definitions::{FieldMap, SyncCatalog, SyncDefinition};

/// Tunables of the sync engine (defaults suit production; tests shrink some).
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Each incremental query re-reads this far behind the checkpoint, so rows committed late
    /// with an earlier `SystemModstamp` are not missed (the content hash hides re-reads).
    pub overlap_secs: i64,
    /// An initial load goes through Bulk API 2.0 when `COUNT()` is above this.
    pub bulk_threshold: u64,
    /// Records per Bulk results page (`maxRecords`).
    pub bulk_page_size: u32,
    /// REST query batch size (`Sforce-Query-Options: batchSize`, 200–2000).
    pub rest_batch_size: u32,
    /// A full id reconciliation runs every this many runs (and when the deleted-records window
    /// was last read more than 15 days ago, and on a full refresh).
    pub reconcile_every_runs: u32,
    /// Reconciliation refuses to delete more than this share of the local records.
    pub max_delete_share: f64,
    /// Runs pause (are put off) while the org's API usage is above this share of its allowance.
    pub budget_share: f64,
    /// How long a claimed sync is leased; renewed as pages commit.
    pub lease_ms: i64,
    /// Delay before a sync that failed is tried again.
    pub retry_after_error_secs: i64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            overlap_secs: 300,
            bulk_threshold: 50_000,
            bulk_page_size: 10_000,
            rest_batch_size: 2000,
            reconcile_every_runs: 24,
            max_delete_share: 0.2,
            budget_share: 0.8,
            lease_ms: 120_000,
            retry_after_error_secs: 300,
        }
    }
}
