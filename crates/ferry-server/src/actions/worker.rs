//! The asynchronous action worker: claims one queued run with a lease (safe across processes),
//! runs it, stores the output or error for `GET /action/{id}`; retries only what is safe to repeat.

use super::ActionError;
use crate::state::AppState;
use ferry_store::{ActionRun, ActionRunOutcome, StoreError};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Async action workers per process.
pub const WORKERS: usize = 4;
/// How long a claimed run is held before another worker may take it over.
pub const LEASE_MS: i64 = 15 * 60 * 1000;
/// Wait before a retry of a retry-safe failure (doubles per attempt).
const RETRY_BASE_MS: i64 = 2_000;

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    /// A run ended with an output.
    Succeeded(String),
    /// A run ended with an error.
    Failed(String),
    /// A run failed in a retry-safe way and was queued again.
    Retried(String),
}

/// Claims and runs one due run.
pub async fn run_one(state: &Arc<AppState>, owner: &str) -> Result<Outcome, StoreError> {
    let now = state.clock.now_ms();
    let Some(run) = state.store.claim_action_run(owner, now, LEASE_MS).await? else {
        return Ok(Outcome::Idle);
    };
    let (outcome, label) = match execute(state, &run).await {
        Ok(output) => (
            ActionRunOutcome::Succeeded { output },
            Outcome::Succeeded(run.id.clone()),
        ),
        Err((error, idempotent)) => {
            let retries_used = run.attempts - 1;
            if error.retry_safe(idempotent) && retries_used < run.max_retries {
                let wait = RETRY_BASE_MS << retries_used.clamp(0, 10);
                (
                    ActionRunOutcome::Retry {
                        next_attempt_at: state.clock.now_ms() + wait,
                    },
                    Outcome::Retried(run.id.clone()),
                )
            } else {
                let (status, body) = error.to_response();
                (
                    ActionRunOutcome::Failed {
                        status: i64::from(status),
                        error: body,
                    },
                    Outcome::Failed(run.id.clone()),
                )
            }
        }
    };
    let webhook = completion_webhook(state, &run).await?;
    if !state
        .store
        .finish_action_run(
            &run.id,
            owner,
            &outcome,
            webhook.as_ref(),
            state.clock.now_ms(),
        )
        .await?
    {
        tracing::warn!(run = %run.id, "action run lease lost before it finished");
    }
    if webhook.is_some() && !matches!(label, Outcome::Retried(_)) {
        state.webhook_wakeup.notify_one();
    }
    Ok(label)
}

/// Nango's `async_action` webhook for a finished run (none if the connection is gone).
async fn completion_webhook(
    state: &AppState,
    run: &ActionRun,
) -> Result<Option<Value>, StoreError> {
    let connection = state
        .store
        .connection_by_row_id(run.environment_id, run.connection_row_id)
        .await?;
    Ok(connection.map(|c| {
        serde_json::json!({
            "from": "nango",
            "type": "async_action",
            "connectionId": c.connection_id,
            "providerConfigKey": c.integration_key,
            "payload": {"id": run.id, "statusUrl": format!("/action/{}", run.id)},
        })
    }))
}

/// Runs the stored action; the error carries whether the action is idempotent.
async fn execute(state: &Arc<AppState>, run: &ActionRun) -> Result<Value, (ActionError, bool)> {
    let spec = super::validate(state, &run.action_name, &run.input).map_err(|e| (e, false))?;
    let idempotent = spec.idempotent;
    // A second attempt of a non-idempotent write means the first one was lost mid-flight
    // (its worker died): it may have reached Salesforce, so it is not sent again.
    if run.attempts > 1 && !idempotent {
        return Err((
            ActionError::Unreachable {
                message: "the worker running this action stopped before it finished".into(),
                ambiguous_write: true,
            },
            false,
        ));
    }
    let connection = state
        .store
        .connection_by_row_id(run.environment_id, run.connection_row_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "loading an action run's connection failed");
            (ActionError::Internal, false)
        })?
        .ok_or_else(|| {
            (
                ActionError::Connection("the connection was deleted".into()),
                false,
            )
        })?;
    let integration = state
        .store
        .get_integration(run.environment_id, &connection.integration_key)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "loading an action run's integration failed");
            (ActionError::Internal, false)
        })?
        .ok_or_else(|| {
            (
                ActionError::Connection("the integration was deleted".into()),
                false,
            )
        })?;
    super::run(state, integration, connection, spec, &run.input)
        .await
        .map_err(|e| (e, idempotent))
}

/// Runs queued actions until shutdown.
pub async fn worker(state: Arc<AppState>, shutdown: tokio_util::sync::CancellationToken) {
    let owner = format!("actions-{}", uuid::Uuid::new_v4());
    loop {
        match run_one(&state, &owner).await {
            Ok(Outcome::Idle) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = state.actions.wakeup.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Ok(_) => {
                if shutdown.is_cancelled() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "action worker step failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        }
    }
}
