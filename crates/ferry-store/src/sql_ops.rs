//! The operation log and org usage SQL both backends share, as a macro instantiated per database
//! type (kept apart from `sql.rs` so it evolves on its own).

/// Rows per `INSERT` (14 binds each keeps well under SQLite's bind limit).
pub(crate) const OPERATION_CHUNK: usize = 500;

/// Columns of `operations`, in insert order after `id`.
pub(crate) const OPERATION_COLUMNS: &str = "id, environment_id, kind, connection_id, \
     integration_key, org_id, method, path, status, duration_ms, retries, bytes_in, bytes_out, \
     error_code, started_at";

/// Implements [`OperationLogStore`](crate::OperationLogStore) and
/// [`OrgUsageStore`](crate::OrgUsageStore) for `$store` (a struct with a `pool: Pool<$db>`).
macro_rules! impl_ops_store {
    ($store:ident, $db:ty, $row:ty) => {
        mod ops_impl {
            use super::$store;
            use async_trait::async_trait;
            use sqlx::{QueryBuilder, Row};

            use $crate::error::StoreError;
            use $crate::model::EnvironmentId;
            use $crate::ops::{
                NewOperation, Operation, OperationId, OperationKind, OperationLogStore,
                OperationQuery, OrgUsageRow, OrgUsageStore,
            };
            use $crate::sql_ops::{OPERATION_CHUNK, OPERATION_COLUMNS};

            fn operation_from_row(row: &$row) -> Result<Operation, StoreError> {
                let kind: String = row.try_get("kind")?;
                Ok(Operation {
                    id: OperationId(row.try_get("id")?),
                    entry: NewOperation {
                        environment_id: EnvironmentId(row.try_get("environment_id")?),
                        kind: OperationKind::parse(&kind).unwrap_or(OperationKind::Proxy),
                        connection_id: row.try_get("connection_id")?,
                        integration_key: row.try_get("integration_key")?,
                        org_id: row.try_get("org_id")?,
                        method: row.try_get("method")?,
                        path: row.try_get("path")?,
                        status: row.try_get("status")?,
                        duration_ms: row.try_get("duration_ms")?,
                        retries: row.try_get("retries")?,
                        bytes_in: row.try_get("bytes_in")?,
                        bytes_out: row.try_get("bytes_out")?,
                        error_code: row.try_get("error_code")?,
                        started_at: row.try_get("started_at")?,
                    },
                })
            }

            #[async_trait]
            impl OperationLogStore for $store {
                async fn insert_operations(
                    &self,
                    entries: &[NewOperation],
                ) -> Result<u64, StoreError> {
                    let mut written = 0;
                    for chunk in entries.chunks(OPERATION_CHUNK) {
                        let mut query = QueryBuilder::<$db>::new(
                            "INSERT INTO operations (environment_id, kind, connection_id, \
                             integration_key, org_id, method, path, status, duration_ms, \
                             retries, bytes_in, bytes_out, error_code, started_at) ",
                        );
                        query.push_values(chunk, |mut b, e| {
                            b.push_bind(e.environment_id.0)
                                .push_bind(e.kind.as_str())
                                .push_bind(e.connection_id.as_deref())
                                .push_bind(e.integration_key.as_deref())
                                .push_bind(e.org_id.as_deref())
                                .push_bind(e.method.as_str())
                                .push_bind(e.path.as_str())
                                .push_bind(e.status)
                                .push_bind(e.duration_ms)
                                .push_bind(e.retries)
                                .push_bind(e.bytes_in)
                                .push_bind(e.bytes_out)
                                .push_bind(e.error_code.as_deref())
                                .push_bind(e.started_at);
                        });
                        written += query.build().execute(&self.pool).await?.rows_affected();
                    }
                    Ok(written)
                }

                async fn list_operations(
                    &self,
                    environment: EnvironmentId,
                    q: &OperationQuery,
                ) -> Result<Vec<Operation>, StoreError> {
                    let limit = match q.limit {
                        0 => 100,
                        n => n.min(1000),
                    };
                    let mut query = QueryBuilder::<$db>::new(format!(
                        "SELECT {OPERATION_COLUMNS} FROM operations WHERE environment_id = "
                    ));
                    query.push_bind(environment.0);
                    if let Some(c) = &q.connection_id {
                        query.push(" AND connection_id = ").push_bind(c.as_str());
                    }
                    if let Some(k) = &q.integration_key {
                        query.push(" AND integration_key = ").push_bind(k.as_str());
                    }
                    if let Some(kind) = q.kind {
                        query.push(" AND kind = ").push_bind(kind.as_str());
                    }
                    if let Some(before) = q.before {
                        query.push(" AND id < ").push_bind(before.0);
                    }
                    query
                        .push(" ORDER BY id DESC LIMIT ")
                        .push_bind(i64::from(limit));
                    query
                        .build()
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(operation_from_row)
                        .collect()
                }

                async fn prune_operations(&self, before: i64) -> Result<u64, StoreError> {
                    Ok(sqlx::query("DELETE FROM operations WHERE started_at < $1")
                        .bind(before)
                        .execute(&self.pool)
                        .await?
                        .rows_affected())
                }
            }

            #[async_trait]
            impl OrgUsageStore for $store {
                async fn put_org_usage(&self, usage: &OrgUsageRow) -> Result<(), StoreError> {
                    // An older observation (another process, a slow writer) never overwrites a
                    // newer one.
                    sqlx::query(
                        "INSERT INTO org_usage (org_id, used, max, budget_spent, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET \
                         used = COALESCE(excluded.used, org_usage.used), \
                         max = COALESCE(excluded.max, org_usage.max), \
                         budget_spent = excluded.budget_spent, updated_at = excluded.updated_at \
                         WHERE org_usage.updated_at <= excluded.updated_at",
                    )
                    .bind(usage.org_id.as_str())
                    .bind(usage.used)
                    .bind(usage.max)
                    .bind(i64::from(usage.budget_spent))
                    .bind(usage.updated_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn get_org_usage(
                    &self,
                    org_id: &str,
                ) -> Result<Option<OrgUsageRow>, StoreError> {
                    let row = sqlx::query(
                        "SELECT org_id, used, max, budget_spent, updated_at FROM org_usage \
                         WHERE org_id = $1",
                    )
                    .bind(org_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.map(|row| {
                        let spent: i64 = row.try_get("budget_spent")?;
                        Ok(OrgUsageRow {
                            org_id: row.try_get("org_id")?,
                            used: row.try_get("used")?,
                            max: row.try_get("max")?,
                            budget_spent: spent != 0,
                            updated_at: row.try_get("updated_at")?,
                        })
                    })
                    .transpose()
                }
            }
        }
    };
}

pub(crate) use impl_ops_store;
