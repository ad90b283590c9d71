//! Syncs: definitions (what to read and how to shape it), the engine (one run of one connection's sync), the scheduler worker, and their tunables.

pub mod bench;
pub mod cli;
pub mod definitions;
pub mod engine;
pub mod scheduler;

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

impl SyncSettings {
    /// The defaults, changed by `FERRY_SYNC_OVERLAP_SECS`, `FERRY_SYNC_BULK_THRESHOLD`,
    /// `FERRY_SYNC_RECONCILE_EVERY_RUNS`, `FERRY_SYNC_MAX_DELETE_SHARE` and
    /// `FERRY_SYNC_BUDGET_SHARE` when set; a value that does not parse is an error naming it.
    pub fn from_env() -> anyhow::Result<SyncSettings> {
        fn read<T: std::str::FromStr>(name: &str, into: &mut T) -> anyhow::Result<()> {
            if let Ok(text) = std::env::var(name) {
                *into = text
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name} is not a valid number: {text}"))?;
            }
            Ok(())
        }
        let mut s = SyncSettings::default();
        read("FERRY_SYNC_OVERLAP_SECS", &mut s.overlap_secs)?;
        read("FERRY_SYNC_BULK_THRESHOLD", &mut s.bulk_threshold)?;
        read(
            "FERRY_SYNC_RECONCILE_EVERY_RUNS",
            &mut s.reconcile_every_runs,
        )?;
        read("FERRY_SYNC_MAX_DELETE_SHARE", &mut s.max_delete_share)?;
        read("FERRY_SYNC_BUDGET_SHARE", &mut s.budget_share)?;
        anyhow::ensure!(
            (0.0..=1.0).contains(&s.max_delete_share) && (0.0..=1.0).contains(&s.budget_share),
            "FERRY_SYNC_MAX_DELETE_SHARE and FERRY_SYNC_BUDGET_SHARE are shares between 0 and 1"
        );
        anyhow::ensure!(
            s.overlap_secs >= 0,
            "FERRY_SYNC_OVERLAP_SECS cannot be negative"
        );
        s.reconcile_every_runs = s.reconcile_every_runs.max(1);
        Ok(s)
    }
}
