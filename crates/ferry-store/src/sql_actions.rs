//! Asynchronous action runs: the [`ActionRunStore`] port, its rows, and the SQL both backends
//! share (instantiated by one `impl_action_run_store!` line in `sqlite.rs` / `postgres.rs`).

use async_trait::async_trait;
use serde_json::Value;

use crate::error::StoreError;
use crate::model::{ConnectionRowId, EnvironmentId};

/// A run to queue (`POST /action/trigger` with `X-Async: true`).
#[derive(Debug, Clone)]
pub struct NewActionRun<'a> {
    /// The run's public id (a UUID v4).
    pub id: &'a str,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// Its connection.
    pub connection_row_id: ConnectionRowId,
    /// The action name.
    pub action_name: &'a str,
    /// The validated input.
    pub input: &'a Value,
    /// How many more attempts a retry-safe failure may get (`X-Max-Retries`, 0..=5).
    pub max_retries: i64,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRun {
    /// Public id.
    pub id: String,
    /// Environment.
    pub environment_id: EnvironmentId,
    /// Connection.
    pub connection_row_id: ConnectionRowId,
    /// Action name.
    pub action_name: String,
    /// Input.
    pub input: Value,
    /// `pending`, `running`, `success` or `error`.
    pub status: String,
    /// Attempts started so far (a claim counts one).
    pub attempts: i64,
    /// Retries allowed after the first attempt.
    pub max_retries: i64,
    /// The action's output on success, or the error body on error.
    pub output: Option<Value>,
    /// The HTTP status of the error, on error.
    pub error_status: Option<i64>,
    /// Created at (ms).
    pub created_at: i64,
    /// Updated at (ms).
    pub updated_at: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionRunOutcome {
    /// Done; the output is kept for `GET /action/{id}`.
    Succeeded {
        /// The action's output.
        output: Value,
    },
    /// Failed for good; the error body and status are kept.
    Failed {
        /// HTTP status the error is answered with.
        status: i64,
        /// The error body (`{"error":{…}}`).
        error: Value,
    },
    /// Failed in a way that is safe to try again; back to the queue.
    Retry {
        /// When to try again (ms).
        next_attempt_at: i64,
    },
}

/// The queue and results of asynchronous action runs.
#[async_trait]
pub trait ActionRunStore: Send + Sync {
    /// Queues a run, due now.
    async fn create_action_run(&self, run: &NewActionRun<'_>, now: i64) -> Result<(), StoreError>;
    /// A run of an environment by id.
    async fn get_action_run(
        &self,
        env: EnvironmentId,
        id: &str,
    ) -> Result<Option<ActionRun>, StoreError>;
    /// Claims the oldest due run (pending, or running with an expired lease) for `lease_ms`,
    /// counting an attempt. Safe across processes: a run is held by one claimer at a time.
    async fn claim_action_run(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<ActionRun>, StoreError>;
    /// Records how the attempt held by `owner` ended; `false` if the lease was lost. When the
    /// run ends (not on a retry) and `webhook` is given, it is queued for the run's environment
    /// in the same transaction (Nango's `async_action` completion webhook).
    async fn finish_action_run(
        &self,
        id: &str,
        owner: &str,
        outcome: &ActionRunOutcome,
        webhook: Option<&Value>,
        now: i64,
    ) -> Result<bool, StoreError>;
}

/// Implements [`ActionRunStore`] for a store with a `pool: Pool<$db>` field.
macro_rules! impl_action_run_store {
    ($store:ident, $db:ty, $row:ty) => {
        // An anonymous scope, so these imports never clash with the other store macros'.
        const _: () = {
            use async_trait::async_trait;
            use sqlx::Row;
            use $crate::error::StoreError;
            use $crate::model::{ConnectionRowId, EnvironmentId};
            use $crate::sql_actions::{ActionRun, ActionRunOutcome, ActionRunStore, NewActionRun};

            const COLUMNS: &str = "id, environment_id, connection_row_id, action_name, input, \
                 status, attempts, max_retries, output, error_status, created_at, updated_at";

            fn run_from_row(row: &$row) -> Result<ActionRun, StoreError> {
                let input: String = row.try_get("input")?;
                let output: Option<String> = row.try_get("output")?;
                Ok(ActionRun {
                    id: row.try_get("id")?,
                    environment_id: EnvironmentId(row.try_get("environment_id")?),
                    connection_row_id: ConnectionRowId(row.try_get("connection_row_id")?),
                    action_name: row.try_get("action_name")?,
                    input: $crate::sql::parse_json(&input, "action_runs.input")?,
                    status: row.try_get("status")?,
                    attempts: row.try_get("attempts")?,
                    max_retries: row.try_get("max_retries")?,
                    output: $crate::sql::parse_json_opt(output, "action_runs.output")?,
                    error_status: row.try_get("error_status")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            #[async_trait]
            impl ActionRunStore for $store {
                async fn create_action_run(
                    &self,
                    run: &NewActionRun<'_>,
                    now: i64,
                ) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO action_runs (id, environment_id, connection_row_id, \
                         action_name, input, max_retries, next_attempt_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)",
                    )
                    .bind(run.id)
                    .bind(run.environment_id.0)
                    .bind(run.connection_row_id.0)
                    .bind(run.action_name)
                    .bind(run.input.to_string())
                    .bind(run.max_retries)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn get_action_run(
                    &self,
                    env: EnvironmentId,
                    id: &str,
                ) -> Result<Option<ActionRun>, StoreError> {
                    sqlx::query(&format!(
                        "SELECT {COLUMNS} FROM action_runs WHERE environment_id = $1 AND id = $2"
                    ))
                    .bind(env.0)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(run_from_row)
                    .transpose()
                }

                async fn claim_action_run(
                    &self,
                    owner: &str,
                    now: i64,
                    lease_ms: i64,
                ) -> Result<Option<ActionRun>, StoreError> {
                    // One statement; the outer condition is re-checked on the row itself, so
                    // two claimers never hold the same run.
                    let due = "status IN ('pending', 'running') AND next_attempt_at <= $3 \
                               AND (lease_until IS NULL OR lease_until <= $3)";
                    sqlx::query(&format!(
                        "UPDATE action_runs SET status = 'running', lease_owner = $1, \
                         lease_until = $2, attempts = attempts + 1, updated_at = $3 \
                         WHERE id = (SELECT id FROM action_runs WHERE {due} \
                         ORDER BY next_attempt_at, created_at LIMIT 1) AND {due} \
                         RETURNING {COLUMNS}"
                    ))
                    .bind(owner)
                    .bind(now + lease_ms)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(run_from_row)
                    .transpose()
                }

                async fn finish_action_run(
                    &self,
                    id: &str,
                    owner: &str,
                    outcome: &ActionRunOutcome,
                    webhook: Option<&serde_json::Value>,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    let (status, output, error_status, next): (
                        &str,
                        Option<String>,
                        Option<i64>,
                        Option<i64>,
                    ) = match outcome {
                        ActionRunOutcome::Succeeded { output } => {
                            ("success", Some(output.to_string()), None, None)
                        }
                        ActionRunOutcome::Failed { status, error } => {
                            ("error", Some(error.to_string()), Some(*status), None)
                        }
                        ActionRunOutcome::Retry { next_attempt_at } => {
                            ("pending", None, None, Some(*next_attempt_at))
                        }
                    };
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let done = sqlx::query(
                        "UPDATE action_runs SET status = $1, output = $2, error_status = $3, \
                         next_attempt_at = COALESCE($4, next_attempt_at), lease_owner = NULL, \
                         lease_until = NULL, updated_at = $5 \
                         WHERE id = $6 AND lease_owner = $7 AND status = 'running'",
                    )
                    .bind(status)
                    .bind(output)
                    .bind(error_status)
                    .bind(next)
                    .bind(now)
                    .bind(id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?;
                    let finished = done.rows_affected() == 1;
                    if let (true, Some(payload), false) = (
                        finished,
                        webhook,
                        matches!(outcome, ActionRunOutcome::Retry { .. }),
                    ) {
                        sqlx::query(
                            "INSERT INTO webhook_deliveries (environment_id, payload, next_attempt_at, created_at) \
                             SELECT environment_id, $1, $2, $2 FROM action_runs WHERE id = $3",
                        )
                        .bind(payload.to_string())
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(finished)
                }
            }
        };
    };
}

pub(crate) use impl_action_run_store;
