//! The sync scheduler: a worker whose `run_one` step claims one due (connection, sync) under a lease, runs it and lets the store schedule the next run; the loop around it; and the hook that gives a new connection its syncs.

use crate::state::AppState;
use crate::sync::engine::{run_sync, RunOptions, RunReport, SyncError};
use ferry_store::{Connection, NewSync, StoreError, SyncRow};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long an idle worker waits before looking for due syncs again (a wakeup comes sooner).
pub const IDLE_TICK: Duration = Duration::from_secs(2);
/// Sync runs one Ferry process carries out at a time.
pub const WORKERS: usize = 4;

/// This process's lease owner name (unique per process).
pub fn process_owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| format!("ferry-{}-{}", std::process::id(), uuid::Uuid::new_v4()))
}

/// Claims one due sync and runs it as this process; `false` when nothing was due.
pub async fn run_one(state: &Arc<AppState>) -> Result<bool, SyncError> {
    run_one_as(state, process_owner(), &RunOptions::default())
        .await
        .map(|r| r.is_some())
}

/// Claims one due sync as `owner` and runs it with `options`; the report of the run, or
/// `None` when nothing was due. (Tests use other owners to play other processes.)
pub async fn run_one_as(
    state: &Arc<AppState>,
    owner: &str,
    options: &RunOptions,
) -> Result<Option<(SyncRow, RunReport)>, SyncError> {
    let settings = &state.config.sync;
    let now = state.clock.now_ms();
    let Some(sync) = state
        .store
        .claim_due_sync(owner, now, settings.lease_ms)
        .await?
    else {
        return Ok(None);
    };
    let report = run_sync(state, settings, &sync, owner, options).await?;
    if let Some(e) = &report.error {
        tracing::warn!(sync = %sync.name, connection = sync.connection_row_id.0, error = %e, "sync run failed");
    } else {
        tracing::info!(
            sync = %sync.name,
            connection = sync.connection_row_id.0,
            added = report.added,
            updated = report.updated,
            deleted = report.deleted,
            "sync run finished"
        );
    }
    Ok(Some((sync, report)))
}

/// Runs due syncs until cancelled; sleeps on `sync_wakeup` or a short tick when idle.
pub async fn worker(state: Arc<AppState>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let idle = match run_one(&state).await {
            Ok(ran) => !ran,
            Err(SyncError::LeaseLost) => false,
            Err(e) => {
                tracing::error!(error = %e, "sync step failed");
                true
            }
        };
        if idle {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = state.sync_wakeup.notified() => {}
                _ = tokio::time::sleep(IDLE_TICK) => {}
            }
        }
    }
}

/// Gives a connection a row for every catalog sync (auto-start ones due now, the others
/// paused) and wakes the scheduler. Existing rows are left as they are.
pub async fn ensure_connection_syncs(
    state: &AppState,
    connection: &Connection,
) -> Result<Vec<SyncRow>, StoreError> {
    let syncs: Vec<NewSync> = state
        .syncs
        .all()
        .iter()
        .map(|d| NewSync {
            name: d.name.clone(),
            model: d.model.clone(),
            frequency_secs: d.frequency_secs,
            auto_start: d.auto_start,
        })
        .collect();
    let rows = state
        .store
        .ensure_syncs(
            connection.environment_id,
            connection.id,
            &syncs,
            state.clock.now_ms(),
        )
        .await?;
    state.sync_wakeup.notify_waiters();
    state.sync_wakeup.notify_one();
    Ok(rows)
}

/// [`ensure_connection_syncs`] for hooks that must not fail the caller: a failure is logged.
pub async fn on_connection_created(state: &AppState, connection: &Connection) {
    if let Err(e) = ensure_connection_syncs(state, connection).await {
        tracing::error!(connection = connection.id.0, error = %e, "could not create the connection's syncs");
    }
}
