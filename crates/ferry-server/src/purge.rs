//! The purge worker: expired OAuth states and connect sessions are deleted, so abandoned
//! flows cannot make the tables grow without bound; a `run_one` pass tests drive, a loop that
//! owns the timing.

use crate::state::AppState;
use std::time::Duration;

/// How often the loop purges.
pub const INTERVAL: Duration = Duration::from_secs(10 * 60);

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Expired OAuth states.
    pub oauth_states: u64,
    /// Expired connect sessions.
    pub connect_sessions: u64,
}

/// Deletes every OAuth state and connect session past its expiry (Ferry's clock).
pub async fn run_one(state: &AppState) -> Result<Purged, ferry_store::StoreError> {
    let now = state.clock.now_ms();
    Ok(Purged {
        oauth_states: state.store.purge_expired_oauth_states(now).await?,
        connect_sessions: state.store.purge_expired_connect_sessions(now).await?,
    })
}

/// Purges every [`INTERVAL`] until cancelled.
pub async fn worker(
    state: std::sync::Arc<AppState>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match run_one(&state).await {
            Ok(p) if p.oauth_states + p.connect_sessions > 0 => tracing::info!(
                oauth_states = p.oauth_states,
                connect_sessions = p.connect_sessions,
                "expired flows purged"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purging expired flows failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}
