//! Per-org Salesforce API usage, kept in memory: the last `Sforce-Limit-Info: api-usage=N/M` seen, whether the org's daily budget is spent (`TotalRequests`), the cap on concurrent upstream calls per org, and the proxy's retry backoff.

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
}

/// Usage records, concurrency gates and retry timing shared by every proxied call.
#[derive(Debug)]
pub struct OrgLimits {
    records: RwLock<HashMap<String, OrgUsage>>,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    max_concurrent: AtomicUsize,
    retry_base_ms: AtomicU64,
}

impl Default for OrgLimits {
    fn default() -> Self {
        OrgLimits {
            records: RwLock::default(),
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
            gates
                .entry(org_id.to_string())
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(self.max_concurrent.load(Ordering::Relaxed)))
                })
                .clone()
        };
        gate.acquire_owned().await.ok()
    }

    /// Records a `Sforce-Limit-Info` value seen at `now` (epoch ms).
    pub fn record_limit_info(&self, org_id: &str, value: &str, now: i64) {
        let Some((used, max)) = parse_limit_info(value) else {
            return;
        };
        let mut records = self.records.write();
        let record = records.entry(org_id.to_string()).or_default();
        record.api_usage = Some(ApiUsage {
            used,
            max,
            updated_at: now,
        });
        if used >= max {
            record.budget_spent = true;
        }
    }

    /// Marks the org's daily budget as spent (`TotalRequests`).
    pub fn mark_budget_spent(&self, org_id: &str) {
        self.records
            .write()
            .entry(org_id.to_string())
            .or_default()
            .budget_spent = true;
    }

    /// A successful call: the budget is evidently not spent.
    pub fn record_success(&self, org_id: &str) {
        if let Some(record) = self.records.write().get_mut(org_id) {
            if record.api_usage.is_none_or(|u| u.used < u.max) {
                record.budget_spent = false;
            }
        }
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
        limits.mark_budget_spent("00D");
        assert!(limits.get("00D").budget_spent);
        limits.record_success("00D");
        assert!(!limits.get("00D").budget_spent);
        limits.record_limit_info("00D", "api-usage=10/10", 2);
        assert!(limits.get("00D").budget_spent);
    }
}
