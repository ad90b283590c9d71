//! The PostgreSQL store: the shared state when several Ferry processes run together.

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

/// A [`Store`](crate::Store) on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Row locks taken by the first write serialize writers; a plain `BEGIN` suffices.
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// The set-returning function yielding `key`, `value` of the `tags` JSON object.
    const TAGS_EACH: &'static str = "json_each_text(c.tags::json)";
    /// This backend's migrations.
    const MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

    /// Connects to a `postgres://` URL.
    pub async fn open(url: &str) -> Result<Self, crate::StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// SQL text extracting a JSON text field at `path` from a JSON text column.
    fn json_field(column: &str, path: &[&str]) -> String {
        format!("({column}::json #>> '{{{}}}')", path.join(","))
    }
}

crate::sql::impl_store!(PostgresStore, sqlx::Postgres, PgRow, "postgres");
crate::sql_actions::impl_action_run_store!(PostgresStore, sqlx::Postgres, PgRow);
crate::sql_sync::impl_sync_store!(
    PostgresStore,
    sqlx::Postgres,
    PgRow,
    " FOR UPDATE SKIP LOCKED",
    "SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))",
    false,
    "json_array_elements(",
    "::json)"
);
crate::sql_ops::impl_ops_store!(PostgresStore, sqlx::Postgres, sqlx::postgres::PgRow);
