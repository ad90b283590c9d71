//! The operation log's write side: a bounded in-process buffer every call appends to without
//! waiting, and the background writer that flushes it (and the dirty org usage records) to the
//! store in batches. When the buffer is full new entries are dropped and counted, never waited on.

use ferry_store::{NewOperation, Store};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Entries held in memory at most, by default.
pub const DEFAULT_BUFFER: usize = 50_000;

/// Entries written per store call.
pub const BATCH: usize = 1_000;

/// How often the writer flushes when nothing wakes it earlier.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The in-process buffer of operation-log entries.
#[derive(Debug)]
pub struct OperationLog {
    buffer: Mutex<Vec<NewOperation>>,
    capacity: usize,
    dropped: AtomicU64,
    written: AtomicU64,
    wakeup: Notify,
    /// Entries offered so far (written, waiting or dropped): tests wait on it instead of sleeping.
    recorded: tokio::sync::watch::Sender<u64>,
    /// One flush at a time, so a flush that returns idle means everything before it is stored.
    flushing: tokio::sync::Mutex<()>,
}

impl Default for OperationLog {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_BUFFER)
    }
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Operation-log entries written.
    pub operations: usize,
    /// Org usage records written.
    pub usage_records: usize,
}

impl Flushed {
    /// Nothing was waiting.
    pub fn is_idle(&self) -> bool {
        self.operations == 0 && self.usage_records == 0
    }
}

impl OperationLog {
    /// A buffer holding at most `capacity` unwritten entries (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        OperationLog {
            buffer: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            wakeup: Notify::new(),
            recorded: tokio::sync::watch::Sender::new(0),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    /// Appends an entry without waiting; drops it (and counts the drop) when the buffer is full.
    pub fn record(&self, entry: NewOperation) {
        let len = {
            let mut buffer = self.buffer.lock();
            if buffer.len() >= self.capacity {
                None
            } else {
                buffer.push(entry);
                Some(buffer.len())
            }
        };
        match len {
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Some(len) if len >= BATCH => self.wakeup.notify_one(),
            Some(_) => {}
        }
        self.recorded.send_modify(|n| *n += 1);
    }

    /// Waits until at least `n` entries have been offered since start (an event, not a sleep).
    pub async fn wait_recorded(&self, n: u64) {
        let mut rx = self.recorded.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Entries offered since start.
    pub fn recorded(&self) -> u64 {
        *self.recorded.borrow()
    }

    /// Entries dropped because the buffer was full (since start).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Entries written to the store (since start).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Entries waiting to be written.
    pub fn pending(&self) -> usize {
        self.buffer.lock().len()
    }

    /// Wakes the writer early (a budget flip must reach other processes soon).
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Writes up to one batch of entries and the latest usage of every org changed since the last
    /// flush. A failed write puts
    /// the entries back (if they fit) so the next flush retries them.
    pub async fn run_one(
        &self,
        state: &crate::state::AppState,
    ) -> Result<Flushed, ferry_store::StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        let usage_records = state.org_limits.flush(state.store.as_ref()).await?;
        let batch: Vec<NewOperation> = {
            let mut buffer = self.buffer.lock();
            let n = buffer.len().min(BATCH);
            buffer.drain(..n).collect()
        };
        if batch.is_empty() {
            return Ok(Flushed {
                operations: 0,
                usage_records,
            });
        }
        match write(state.store.as_ref(), &batch).await {
            Ok(()) => {
                self.written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                Ok(Flushed {
                    operations: batch.len(),
                    usage_records,
                })
            }
            Err(e) => {
                let mut buffer = self.buffer.lock();
                let room = self.capacity.saturating_sub(buffer.len());
                let lost = batch.len().saturating_sub(room);
                self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                let keep: Vec<_> = batch.into_iter().take(room).collect();
                buffer.splice(0..0, keep);
                Err(e)
            }
        }
    }

    /// Flushes until nothing is waiting (tests, shutdown).
    pub async fn flush_all(
        &self,
        state: &crate::state::AppState,
    ) -> Result<(), ferry_store::StoreError> {
        while !self.run_one(state).await?.is_idle() {}
        Ok(())
    }
}

async fn write(store: &dyn Store, batch: &[NewOperation]) -> Result<(), ferry_store::StoreError> {
    store.insert_operations(batch).await.map(|_| ())
}

/// Entries older than this are deleted by the writer.
pub const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

/// How often the writer deletes expired entries.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The background writer: flushes on wake-up or every second, prunes entries past
/// [`RETENTION_MS`] hourly, and flushes once more at shutdown.
pub async fn worker(state: Arc<crate::state::AppState>, shutdown: CancellationToken) {
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            if let Err(e) = state
                .store
                .prune_operations(state.clock.now_ms() - RETENTION_MS)
                .await
            {
                tracing::warn!(error = %e, "old operation-log entries could not be deleted");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.oplog.wakeup.notified() => {}
            _ = state.org_limits.flush_wanted.notified() => {}
            _ = tokio::time::sleep(FLUSH_EVERY) => {}
        }
        loop {
            match state.oplog.run_one(&state).await {
                Ok(done) if done.is_idle() || done.operations < BATCH => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the operation log could not be written; retrying");
                    break;
                }
            }
        }
    }
    if let Err(e) = state.oplog.flush_all(&state).await {
        tracing::warn!(error = %e, "the operation log could not be flushed at shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::{EnvironmentId, OperationKind};

    fn entry() -> NewOperation {
        NewOperation {
            environment_id: EnvironmentId(1),
            kind: OperationKind::Proxy,
            connection_id: None,
            integration_key: None,
            org_id: None,
            method: "GET".into(),
            path: "/".into(),
            status: Some(200),
            duration_ms: 1,
            retries: 0,
            bytes_in: 0,
            bytes_out: 0,
            error_code: None,
            started_at: 0,
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let log = OperationLog::with_capacity(2);
        for _ in 0..5 {
            log.record(entry());
        }
        assert_eq!(log.pending(), 2);
        assert_eq!(log.dropped(), 3);
        assert_eq!(log.recorded(), 5);
    }
}
