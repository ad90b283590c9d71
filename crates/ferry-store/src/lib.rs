//! Ferry persistence ports with SQLite and PostgreSQL implementations and their migrations.
//!
//! [`connect`] picks the backend from the URL; the returned [`Store`] implements every narrow
//! port trait. Times are epoch milliseconds (`i64`), JSON columns are `serde_json::Value`, and
//! secrets are opaque ciphertext the server encrypts and decrypts itself.

mod error;
mod model;
mod model_sync;
mod ops;
mod postgres;
mod sql;
mod sql_actions;
mod sql_ops;
mod sql_sync;
mod sqlite;
pub mod testing;
mod traits;

use std::sync::Arc;

pub use error::StoreError;
pub use model::{
    CipherRef, ConnectSession, ConnectSessionId, Connection, ConnectionFilter, ConnectionPatch,
    ConnectionRowId, ConnectionStatus, DeliveryOutcome, Environment, EnvironmentId,
    ExistingConnection, Integration, IntegrationId, IntegrationPatch, MetadataMode,
    NewConnectSession, NewConnection, NewIntegration, OAuthState, SealFor, WebhookDelivery,
    WebhookDeliveryId, DEFAULT_LIST_LIMIT,
};
pub use model_sync::{
    NewSync, PageCommit, PageOutcome, RecordAction, RecordQuery, RecordWrite, StoredRecord, SyncId,
    SyncRow, SyncRunId, SyncRunSummary, SyncTrigger,
};
pub use ops::{
    NewOperation, Operation, OperationId, OperationKind, OperationLogStore, OperationQuery,
    OrgUsageRow, OrgUsageStore,
};
pub use postgres::PostgresStore;
pub use sql_actions::{ActionRun, ActionRunOutcome, ActionRunStore, NewActionRun};
pub use sqlite::SqliteStore;
pub use traits::{
    CiphertextStore, ConnectSessionStore, ConnectionStore, EnvironmentStore, IntegrationStore,
    MetaStore, OAuthStateStore, RecordStore, Store, SyncStore, WebhookStore,
};

/// Opens the store named by `url`: `postgres://…` / `postgresql://…` for PostgreSQL;
/// `sqlite:…` or a plain file path for SQLite (the file and its directory are created).
/// Migrations are not run; call [`Store::migrate`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url).await?))
    } else if url.starts_with("sqlite:") || !url.contains("://") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
