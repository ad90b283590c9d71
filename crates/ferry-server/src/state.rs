//! The state every handler and worker shares (storage, vault, configuration, clients, caches
//! and wake-ups) and the clock expiry is judged by; built by [`crate::app::Application`].

use crate::config::Config;
use ferry_core::vault::Vault;
use ferry_store::{Environment, EnvironmentId, Store};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// Shared state of every handler and worker.
pub struct AppState {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Encryption of secrets at rest.
    pub vault: Vault,
    /// Configuration.
    pub config: Config,
    /// Public base URL without a trailing slash.
    pub public_url: String,
    /// The outbound HTTP client (Salesforce).
    pub http: reqwest::Client,
    /// Environments by the hash of their secret key (they change only through `ferry keys`).
    pub(crate) environments: RwLock<HashMap<String, Environment>>,
    /// Browser WebSocket clients waiting for an OAuth outcome.
    pub ws: crate::ws::WsHub,
    /// Wakes the webhook worker when something was queued.
    pub webhook_wakeup: tokio::sync::Notify,
    /// The credential service (single-flight refreshes).
    pub credentials: crate::credentials::CredentialService,
    /// The clock token expiry is judged by (real time, shiftable in tests).
    pub clock: Clock,
    /// Per-org API usage, concurrency caps and proxy retry timing.
    pub org_limits: crate::usage::OrgLimits,
    /// Actions: catalog, API versions by org, async worker wake-up.
    pub actions: crate::actions::ActionService,
    /// The sync definitions (pre-built plus the user's YAML file).
    pub syncs: Arc<crate::sync::SyncCatalog>,
    /// Wakes the sync scheduler when a sync became due (trigger, new connection).
    pub sync_wakeup: tokio::sync::Notify,
    /// The same client as `http` but decompressing gzip answers (the proxy's `Decompress: true`).
    pub http_decompress: reqwest::Client,
    /// The webhook client: DNS answers filtered by the webhook target policy, no redirects.
    pub webhook_http: reqwest::Client,
    /// Operation-log entries waiting for the background writer.
    pub oplog: crate::oplog::OperationLog,
    /// Recently used connections' decrypted credentials (the proxy's hot path).
    pub targets: crate::upstream::TargetCache,
}

/// Real time plus an offset tests can move forward (or a frozen instant), so expiry is tested
/// without sleeping.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: std::sync::atomic::AtomicI64,
    frozen_at: parking_lot::Mutex<Option<i64>>,
}

impl Clock {
    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let offset = self.offset_ms.load(std::sync::atomic::Ordering::Relaxed);
        match *self.frozen_at.lock() {
            Some(at) => at + offset,
            None => chrono::Utc::now().timestamp_millis() + offset,
        }
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops the clock at `at_ms` (epoch milliseconds, before any offset).
    pub fn freeze_at(&self, at_ms: i64) {
        *self.frozen_at.lock() = Some(at_ms);
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The environment a secret key belongs to (looked up by the key's hash, which is all the
    /// database holds, then compared in constant time).
    pub fn environment_by_key(&self, key: &str) -> Option<Environment> {
        let hash = crate::sealing::secret_key_hash(key);
        self.environments
            .read()
            .get(&hash)
            .filter(|e| {
                ferry_core::secret::constant_time_eq(e.secret_key_hash.as_bytes(), hash.as_bytes())
            })
            .cloned()
    }

    /// An environment by id.
    pub fn environment_by_id(&self, id: EnvironmentId) -> Option<Environment> {
        self.environments
            .read()
            .values()
            .find(|e| e.id == id)
            .cloned()
    }
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
