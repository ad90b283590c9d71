//! Per-org Salesforce API usage, kept in memory for the hot path and written to the store by the background writer (the latest view of each changed org once a second, at once when the budget flips) so it survives restarts and is shared by processes: the last `Sforce-Limit-Info: api-usage=N/M` seen, whether the org's daily budget is spent (`TotalRequests`), the cap on concurrent upstream calls per org, and the proxy's retry backoff.

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The key of an org's shared state (usage, budget flag, concurrency gate, negotiated API
/// version): the environment and the org id Salesforce itself confirmed (the identity URL of a
/// token answer, or `userinfo` at import), never an id a caller supplied. A token of one's own
/// org filed under another org's id therefore cannot spend that org's budget or hold its
/// slots, and a `dev` environment never shares state with `prod`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgKey {
    key: String,
    org_start: usize,
}

impl OrgKey {
    /// The key of `org_id` (as verified) in `environment`.
    pub fn new(environment: ferry_store::EnvironmentId, org_id: &str) -> OrgKey {
        let prefix = format!("{}/", environment.0);
        OrgKey {
            org_start: prefix.len(),
            key: prefix + org_id,
        }
    }

    /// The Salesforce org id alone (for logs and answers).
    pub fn org_id(&self) -> &str {
        &self.key[self.org_start..]
    }
}

/// The map key (`{environment}/{org}`), so `Option<OrgKey>::as_deref()` gives `Option<&str>`.
impl std::ops::Deref for OrgKey {
    type Target = str;

    fn deref(&self) -> &str {
        &self.key
    }
}

/// Concurrent upstream calls allowed per org by default (Salesforce refuses long ones past 25).
pub const DEFAULT_MAX_CONCURRENT: usize = 20;

/// The first retry waits about this long; each later one twice as long.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1000;

/// No single retry waits longer than this.
pub const MAX_RETRY_DELAY_MS: u64 = 60_000;

/// The API usage Salesforce last reported for an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ApiUsage {
    /// Calls counted in the rolling 24 hours.
    pub used: u64,
    /// The org's allowance.
    pub max: u64,
    /// When it was reported (epoch milliseconds).
    pub updated_at: i64,
}

/// What Ferry knows about one org's budget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrgUsage {
    /// The last reported usage, if any response carried one.
    pub api_usage: Option<ApiUsage>,
    /// Salesforce answered `REQUEST_LIMIT_EXCEEDED` / `TotalRequests` (or reported used ≥ max)
    /// and no successful call has happened since.
    pub budget_spent: bool,
    /// When this record last changed (epoch ms; 0 = never).
    pub updated_at: i64,
}

impl OrgUsage {
    /// The share of the daily budget used (0.0 ..= 1.0 and above), 1.0 when the budget is
    /// spent, `None` when nothing is known.
    pub fn share(&self) -> Option<f64> {
        if self.budget_spent {
            return Some(1.0_f64.max(self.api_usage.map_or(0.0, ratio)));
        }
        self.api_usage.map(ratio)
    }

    fn row(&self, org_id: &str) -> ferry_store::OrgUsageRow {
        ferry_store::OrgUsageRow {
            org_id: org_id.to_string(),
            used: self.api_usage.map(|u| u.used as i64),
            max: self.api_usage.map(|u| u.max as i64),
            budget_spent: self.budget_spent,
            updated_at: self.updated_at,
        }
    }
}

fn ratio(u: ApiUsage) -> f64 {
    if u.max == 0 {
        1.0
    } else {
        u.used as f64 / u.max as f64
    }
}

/// Usage records, concurrency gates and retry timing shared by every proxied call.
#[derive(Debug)]
pub struct OrgLimits {
    records: RwLock<HashMap<String, OrgUsage>>,
    /// Orgs changed since the background writer last stored them.
    dirty: Mutex<std::collections::HashSet<String>>,
    /// Wakes the background writer when a budget flipped.
    pub flush_wanted: tokio::sync::Notify,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    max_concurrent: AtomicUsize,
    retry_base_ms: AtomicU64,
}

impl Default for OrgLimits {
    fn default() -> Self {
        OrgLimits {
            records: RwLock::default(),
            dirty: Mutex::default(),
            flush_wanted: tokio::sync::Notify::new(),
            gates: Mutex::default(),
            max_concurrent: AtomicUsize::new(DEFAULT_MAX_CONCURRENT),
            retry_base_ms: AtomicU64::new(DEFAULT_RETRY_BASE_MS),
        }
    }
}

/// Parses `api-usage=N/M` out of a `Sforce-Limit-Info` value (other entries, such as
/// `per-app-api-usage=…`, are ignored).
pub fn parse_limit_info(value: &str) -> Option<(u64, u64)> {
    value.split(',').find_map(|part| {
        let (used, max) = part.trim().strip_prefix("api-usage=")?.split_once('/')?;
        Some((used.trim().parse().ok()?, max.trim().parse().ok()?))
    })
}

impl OrgLimits {
    /// Sets the per-org concurrency cap for orgs not yet seen (at least 1).
    pub fn set_max_concurrent(&self, n: usize) {
        self.max_concurrent.store(n.max(1), Ordering::Relaxed);
    }

    /// Sets the base of the retry backoff (tests use a millisecond).
    pub fn set_retry_base_ms(&self, ms: u64) {
        self.retry_base_ms.store(ms, Ordering::Relaxed);
    }

    /// How long to wait before retry number `attempt` (0-based): `base × 2^attempt`, capped,
    /// with the upper half jittered.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.retry_base_ms.load(Ordering::Relaxed);
        let full = base
            .saturating_mul(1u64 << attempt.min(20))
            .min(MAX_RETRY_DELAY_MS);
        let half = full / 2;
        let jitter = if full > half {
            rand::random_range(0..=full - half)
        } else {
            0
        };
        Duration::from_millis(half + jitter)
    }

    /// Waits for a free slot among the org's concurrent upstream calls.
    pub async fn acquire(&self, org_id: &str) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut gates = self.gates.lock();
            match gates.get(org_id) {
                Some(gate) => gate.clone(),
                None => gates
                    .entry(org_id.to_string())
                    .or_insert_with(|| {
                        Arc::new(Semaphore::new(self.max_concurrent.load(Ordering::Relaxed)))
                    })
                    .clone(),
            }
        };
        gate.acquire_owned().await.ok()
    }

    /// Records a `Sforce-Limit-Info` value seen at `now` (epoch ms).
    pub fn record_limit_info(&self, org_id: &str, value: &str, now: i64) {
        let Some((used, max)) = parse_limit_info(value) else {
            return;
        };
        self.change(org_id, now, |record| {
            record.api_usage = Some(ApiUsage {
                used,
                max,
                updated_at: now,
            });
            if used >= max {
                record.budget_spent = true;
            }
        });
    }

    /// Marks the org's daily budget as spent (`TotalRequests`) at `now`.
    pub fn mark_budget_spent(&self, org_id: &str, now: i64) {
        self.change(org_id, now, |record| record.budget_spent = true);
    }

    /// A successful call at `now`: the budget is evidently not spent.
    pub fn record_success(&self, org_id: &str, now: i64) {
        if !self
            .records
            .read()
            .get(org_id)
            .is_some_and(|r| r.budget_spent)
        {
            return;
        }
        self.change(org_id, now, |record| {
            if record.api_usage.is_none_or(|u| u.used < u.max) {
                record.budget_spent = false;
            }
        });
    }

    /// Applies a change and marks the org for the background writer, which stores the latest
    /// view of each marked org once a second, or at once when the budget flipped.
    fn change(&self, org_id: &str, now: i64, apply: impl FnOnce(&mut OrgUsage)) {
        let flipped = {
            let mut records = self.records.write();
            if !records.contains_key(org_id) {
                records.insert(org_id.to_string(), OrgUsage::default());
            }
            let Some(record) = records.get_mut(org_id) else {
                return;
            };
            let before = record.budget_spent;
            apply(record);
            record.updated_at = record.updated_at.max(now);
            before != record.budget_spent
        };
        {
            let mut dirty = self.dirty.lock();
            if !dirty.contains(org_id) {
                dirty.insert(org_id.to_string());
            }
        }
        if flipped {
            self.flush_wanted.notify_one();
        }
    }

    /// Writes the latest view of every org changed since the last flush; returns how many.
    /// Failed ones stay marked.
    pub async fn flush(
        &self,
        store: &dyn ferry_store::Store,
    ) -> Result<usize, ferry_store::StoreError> {
        let marked: Vec<String> = self.dirty.lock().drain().collect();
        let mut written = 0;
        let mut failure = None;
        for org in marked {
            if failure.is_some() {
                self.dirty.lock().insert(org);
                continue;
            }
            let record = self.get(&org);
            match store.put_org_usage(&record.row(&org)).await {
                Ok(()) => written += 1,
                Err(e) => {
                    self.dirty.lock().insert(org);
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }

    /// Reads the org's stored record (written by any process) and keeps it when it is newer than
    /// this process's view; returns the resulting view.
    pub async fn load(
        &self,
        store: &dyn ferry_store::Store,
        org_id: &str,
    ) -> Result<OrgUsage, ferry_store::StoreError> {
        if let Some(row) = store.get_org_usage(org_id).await? {
            let mut records = self.records.write();
            let record = records.entry(org_id.to_string()).or_default();
            if row.updated_at > record.updated_at {
                *record = OrgUsage {
                    api_usage: match (row.used, row.max) {
                        (Some(used), Some(max)) => Some(ApiUsage {
                            used: used.max(0) as u64,
                            max: max.max(0) as u64,
                            updated_at: row.updated_at,
                        }),
                        _ => record.api_usage,
                    },
                    budget_spent: row.budget_spent,
                    updated_at: row.updated_at,
                };
            }
        }
        Ok(self.get(org_id))
    }

    /// The share of the org's daily API budget in use, from this process's view: `Some(0.8)`
    /// means 80 % used; `Some(1.0)` or more when spent; `None` when no call reported usage yet.
    /// Syncs call this before a page to back off (e.g. skip when above 0.9). Call
    /// [`OrgLimits::load`] first to take in other processes' observations.
    pub fn usage_share(&self, org_id: &str) -> Option<f64> {
        self.records.read().get(org_id).and_then(OrgUsage::share)
    }

    /// Whether the org is at or above `share` of its budget (unknown counts as below).
    pub fn is_above_share(&self, org_id: &str, share: f64) -> bool {
        self.usage_share(org_id).is_some_and(|s| s >= share)
    }

    /// What is known about an org.
    pub fn get(&self, org_id: &str) -> OrgUsage {
        self.records.read().get(org_id).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_usage_entry_is_found_among_others() {
        assert_eq!(parse_limit_info("api-usage=12/15000"), Some((12, 15000)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=1/100(appName=x), api-usage=7/9"),
            Some((7, 9))
        );
        assert_eq!(parse_limit_info("garbage"), None);
    }

    #[test]
    fn changed_orgs_are_marked_for_the_writer_and_a_flip_wakes_it() {
        let limits = OrgLimits::default();
        limits.record_limit_info("00D", "api-usage=1/10", 1000);
        limits.record_limit_info("00D", "api-usage=2/10", 1500);
        assert!(limits.dirty.lock().contains("00D"));
        assert_eq!(limits.dirty.lock().len(), 1);
        limits.dirty.lock().clear();
        limits.mark_budget_spent("00D", 1700);
        assert!(limits.dirty.lock().contains("00D"));
        assert!(limits.get("00D").budget_spent);
        assert_eq!(limits.get("00D").updated_at, 1700);
        assert!(limits.is_above_share("00D", 0.99));
    }

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        let limits = OrgLimits::default();
        for attempt in 0..4 {
            let full = 1000u64 << attempt;
            let d = limits.backoff(attempt).as_millis() as u64;
            assert!(d >= full / 2 && d <= full, "{attempt}: {d}");
        }
        assert!(limits.backoff(30).as_millis() as u64 <= MAX_RETRY_DELAY_MS);
    }

    #[test]
    fn a_total_requests_refusal_marks_the_budget_until_a_success() {
        let limits = OrgLimits::default();
        limits.record_limit_info("00D", "api-usage=5/10", 1);
        limits.mark_budget_spent("00D", 2);
        assert!(limits.get("00D").budget_spent);
        assert_eq!(limits.usage_share("00D"), Some(1.0));
        limits.record_success("00D", 3);
        assert_eq!(limits.usage_share("00D"), Some(0.5));
        assert!(!limits.get("00D").budget_spent);
        limits.record_limit_info("00D", "api-usage=10/10", 4);
        assert!(limits.get("00D").budget_spent);
    }
}
