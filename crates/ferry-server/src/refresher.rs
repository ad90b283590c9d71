//! The background refresher: refreshes tokens shortly before they expire (so callers never wait) and keeps idle connections alive before Salesforce's idle refresh-token expiry; a `run_one` pass tests drive, a loop that owns the timing.

use crate::connections::open;
use crate::state::AppState;
use ferry_store::{ConnectionFilter, ConnectionStatus};
use std::time::Duration;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Connections refreshed.
    pub refreshed: usize,
    /// Refreshes that failed (classified and recorded by the credential service).
    pub failed: usize,
    /// Connections looked at.
    pub checked: usize,
}

/// Refreshes every active connection whose token expires within twice the refresh margin, or
/// whose token was obtained longer ago than the keep-alive interval.
pub async fn run_one(state: &std::sync::Arc<AppState>) -> Result<Pass, ferry_store::StoreError> {
    let policy = &state.config.token_policy;
    let now = state.clock.now_ms();
    let mut pass = Pass::default();
    for env in state.store.list_environments().await? {
        let integrations = state.store.list_integrations(env.id).await?;
        for connection in state
            .store
            .list_connections(env.id, &ConnectionFilter::default())
            .await?
        {
            if connection.status != ConnectionStatus::Active {
                continue;
            }
            pass.checked += 1;
            let Ok(credentials) = open(state, &connection) else {
                continue;
            };
            // Twice the request-path margin, plus jitter so connections obtained together do
            // not all refresh in the same pass.
            let margin = policy.refresh_margin_ms.min(lifetime_quarter(&credentials));
            let jitter = rand::random_range(0..=margin / 2);
            let expiring = credentials
                .expires_at
                .is_some_and(|e| e - 2 * margin - jitter <= now);
            let idle = credentials
                .obtained_at
                .is_some_and(|o| now - o >= policy.keepalive_ms);
            if !(expiring || idle) {
                continue;
            }
            let Some(integration) = integrations
                .iter()
                .find(|i| i.id == connection.integration_id)
            else {
                continue;
            };
            match state
                .credentials
                .get(state, integration, connection, true)
                .await
            {
                Ok(_) => pass.refreshed += 1,
                Err(_) => pass.failed += 1,
            }
        }
    }
    Ok(pass)
}

fn lifetime_quarter(credentials: &crate::connections::Credentials) -> i64 {
    match (credentials.expires_at, credentials.obtained_at) {
        (Some(e), Some(o)) => (e - o) / 4,
        _ => i64::MAX,
    }
}

/// Runs passes every `interval` (jittered) until cancelled.
pub async fn worker(
    state: std::sync::Arc<AppState>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        match run_one(&state).await {
            Ok(pass) if pass.refreshed + pass.failed > 0 => {
                tracing::info!(
                    refreshed = pass.refreshed,
                    failed = pass.failed,
                    "background refresh pass"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "background refresh pass failed"),
        }
        let jitter = rand::random_range(0..=5_000u64);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(30_000 + jitter)) => {}
        }
    }
}
