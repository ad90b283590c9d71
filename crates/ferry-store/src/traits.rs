//! The store ports: narrow traits per context, each method atomic on its own.
//!
//! Every method that touches tenant data takes the [`EnvironmentId`] it is scoped by, except the
//! lookups whose key is itself a capability (secret key, session token hash, OAuth state) and the
//! refresh operations keyed by [`ConnectionRowId`], which the server calls only after a scoped
//! lookup. Times are passed in (`now`, epoch milliseconds) so behaviour is testable without sleeping.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::StoreError;
use crate::model::{
    CipherRef, ConnectSession, ConnectSessionId, Connection, ConnectionFilter, ConnectionPatch,
    ConnectionRowId, ConnectionStatus, Environment, EnvironmentId, Integration, IntegrationPatch,
    MetadataMode, NewConnectSession, NewConnection, NewIntegration, OAuthState, SealFor,
};
use crate::model::{DeliveryOutcome, WebhookDelivery, WebhookDeliveryId};
use crate::model_sync::{
    NewSync, PageCommit, PageOutcome, RecordAction, RecordQuery, RecordWrite, StoredRecord, SyncId,
    SyncRow, SyncRunId, SyncRunSummary, SyncTrigger,
};

/// Server-wide key/value settings (for example the encryption key fingerprint).
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Reads a setting.
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes a setting, replacing any previous value.
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// Environments and their keys.
#[async_trait]
pub trait EnvironmentStore: Send + Sync {
    /// Returns the environment named `name`, creating it with the given keys if absent.
    /// Concurrent callers all get the same row.
    async fn ensure_environment(
        &self,
        name: &str,
        new_secret_key_hash: &str,
        new_signing_key: &str,
        now: i64,
    ) -> Result<Environment, StoreError>;
    /// All environments, by id.
    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError>;
    /// The environment whose API secret key hashes to `secret_key_hash`.
    async fn environment_by_secret_key(
        &self,
        secret_key_hash: &str,
    ) -> Result<Option<Environment>, StoreError>;
    /// Stores the secret key's lookup hash and sealed form in place of `current` (the hash, or
    /// a plaintext key written by an older Ferry); false if the row no longer holds `current`.
    async fn seal_secret_key(
        &self,
        environment: EnvironmentId,
        current: &str,
        secret_key_hash: &str,
        sealed: &[u8],
    ) -> Result<bool, StoreError>;
    /// Replaces the app origins the environment's pages talk to (empty = none); false if the
    /// environment does not exist.
    async fn set_allowed_origins(
        &self,
        environment: EnvironmentId,
        origins: &[String],
    ) -> Result<bool, StoreError>;
    /// Sets or clears the environment's webhook URL; false if the environment does not exist.
    async fn set_webhook_url(
        &self,
        environment: EnvironmentId,
        webhook_url: Option<&str>,
    ) -> Result<bool, StoreError>;
}

/// Integrations (provider configs).
#[async_trait]
pub trait IntegrationStore: Send + Sync {
    /// Creates an integration; [`StoreError::Conflict`] if the key is taken in the environment.
    async fn create_integration(
        &self,
        environment: EnvironmentId,
        integration: &NewIntegration,
        client_secret: Option<SealFor<'_>>,
        now: i64,
    ) -> Result<Integration, StoreError>;
    /// The integration with this key in the environment.
    async fn get_integration(
        &self,
        environment: EnvironmentId,
        unique_key: &str,
    ) -> Result<Option<Integration>, StoreError>;
    /// The environment's integrations, by creation.
    async fn list_integrations(
        &self,
        environment: EnvironmentId,
    ) -> Result<Vec<Integration>, StoreError>;
    /// Applies a patch; [`StoreError::NotFound`] if absent, [`StoreError::Conflict`] if a rename
    /// collides.
    async fn update_integration(
        &self,
        environment: EnvironmentId,
        unique_key: &str,
        patch: &IntegrationPatch,
        now: i64,
    ) -> Result<Integration, StoreError>;
    /// Deletes an integration with its connections and pending OAuth states; false if absent.
    async fn delete_integration(
        &self,
        environment: EnvironmentId,
        unique_key: &str,
    ) -> Result<bool, StoreError>;
}

/// Connect sessions, looked up by the hash of their token.
#[async_trait]
pub trait ConnectSessionStore: Send + Sync {
    /// Creates a session; [`StoreError::NotFound`] if the reconnect target is not in the
    /// environment, [`StoreError::Conflict`] if the token hash is taken.
    async fn create_connect_session(
        &self,
        environment: EnvironmentId,
        session: &NewConnectSession,
        now: i64,
    ) -> Result<ConnectSession, StoreError>;
    /// The unexpired session with this token hash.
    async fn connect_session_by_token_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ConnectSession>, StoreError>;
    /// Deletes a session (and OAuth states it started); false if absent.
    async fn delete_connect_session(
        &self,
        environment: EnvironmentId,
        id: ConnectSessionId,
    ) -> Result<bool, StoreError>;
    /// Deletes sessions expired at `now`; returns how many.
    async fn purge_expired_connect_sessions(&self, now: i64) -> Result<u64, StoreError>;
}

/// One-use OAuth states.
#[async_trait]
pub trait OAuthStateStore: Send + Sync {
    /// Stores a state; [`StoreError::NotFound`] if the integration or session is not in the
    /// state's environment.
    async fn create_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError>;
    /// Deletes and returns the state if it exists and is unexpired at `now`. Of concurrent takes
    /// of one state, exactly one gets it.
    async fn take_oauth_state(
        &self,
        state: &str,
        now: i64,
    ) -> Result<Option<OAuthState>, StoreError>;
    /// Deletes states expired at `now`; returns how many.
    async fn purge_expired_oauth_states(&self, now: i64) -> Result<u64, StoreError>;
}

/// Connections, their credentials and the refresh lease.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Stores the outcome of an authorization. Updates instead of inserting when `reconnect` is
    /// given, else when a connection of the same integration, Salesforce org, user and end user
    /// exists, else when the `connection_id` exists; an update replaces credentials, config,
    /// tags, expiry and org/user, resets status and errors, and bumps the refresh fence (so an
    /// in-flight refresh cannot overwrite the new credentials); the matched row keeps its
    /// `connection_id`. `seal` makes the credentials' ciphertext for the row's id. Returns the
    /// row and whether it was created.
    async fn upsert_connection(
        &self,
        environment: EnvironmentId,
        connection: &NewConnection,
        seal: SealFor<'_>,
        now: i64,
    ) -> Result<(Connection, bool), StoreError>;
    /// The connection `connection_id` of the integration `integration_key`.
    async fn get_connection(
        &self,
        environment: EnvironmentId,
        integration_key: &str,
        connection_id: &str,
    ) -> Result<Option<Connection>, StoreError>;
    /// Every connection named `connection_id` in the environment, whatever its integration
    /// (newest first).
    async fn connections_with_id(
        &self,
        environment: EnvironmentId,
        connection_id: &str,
    ) -> Result<Vec<Connection>, StoreError>;
    /// The connection with this internal id, if it is in the environment.
    async fn connection_by_row_id(
        &self,
        environment: EnvironmentId,
        id: ConnectionRowId,
    ) -> Result<Option<Connection>, StoreError>;
    /// Connections matching the filter, newest first (`created_at` desc, `id` desc), paged.
    async fn list_connections(
        &self,
        environment: EnvironmentId,
        filter: &ConnectionFilter,
    ) -> Result<Vec<Connection>, StoreError>;
    /// Deletes a connection; false if absent.
    async fn delete_connection(
        &self,
        environment: EnvironmentId,
        integration_key: &str,
        connection_id: &str,
    ) -> Result<bool, StoreError>;
    /// Replaces or shallow-merges metadata on every listed connection, all or nothing: if any is
    /// missing, nothing changes and [`StoreError::NotFound`] lists the missing ids.
    async fn set_metadata(
        &self,
        environment: EnvironmentId,
        integration_key: &str,
        connection_ids: &[String],
        metadata: &Map<String, Value>,
        mode: MetadataMode,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Applies a patch (tags, end user, config); returns the updated row, `None` if absent.
    async fn patch_connection(
        &self,
        environment: EnvironmentId,
        integration_key: &str,
        connection_id: &str,
        patch: &ConnectionPatch,
        now: i64,
    ) -> Result<Option<Connection>, StoreError>;
    /// Writes refreshed credentials (and config, when given). With `expected_fence`, writes only
    /// if the row's fence still equals it. Returns whether the row was written.
    async fn update_credentials(
        &self,
        id: ConnectionRowId,
        credentials: &[u8],
        expires_at: Option<i64>,
        connection_config: Option<&Value>,
        expected_fence: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Sets status and errors; false if the connection is not in the environment.
    async fn set_connection_status(
        &self,
        environment: EnvironmentId,
        id: ConnectionRowId,
        status: ConnectionStatus,
        errors: &[Value],
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Records that credentials were handed out at `now`.
    async fn touch_last_fetched(
        &self,
        environment: EnvironmentId,
        id: ConnectionRowId,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Takes the refresh lease if nobody holds a live one, until `now + ttl_ms`; returns the new
    /// fence (incremented), or `None` if the lease is held or the connection is gone.
    async fn acquire_refresh_lease(
        &self,
        id: ConnectionRowId,
        owner: &str,
        now: i64,
        ttl_ms: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Releases the lease if `owner` still holds it at `fence`; returns whether it did.
    async fn release_refresh_lease(
        &self,
        id: ConnectionRowId,
        owner: &str,
        fence: i64,
    ) -> Result<bool, StoreError>;
}

/// Whole-database access to encrypted columns, for key rotation (deliberately unscoped).
#[async_trait]
pub trait CiphertextStore: Send + Sync {
    /// Every stored ciphertext with where it lives and the environment of its row.
    async fn list_ciphertexts(
        &self,
    ) -> Result<Vec<(CipherRef, EnvironmentId, Vec<u8>)>, StoreError>;
    /// Replaces `old` with `new` only if the value is still `old` (compare-and-swap).
    async fn replace_ciphertext(
        &self,
        target: &CipherRef,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
}

/// The whole store: every port plus lifecycle. Use as `Arc<dyn Store>`; it upcasts to the
/// narrow traits (`Arc<dyn ConnectionStore>`, …).
/// The outgoing webhook queue.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Queues a webhook for an environment.
    async fn enqueue_webhook(
        &self,
        environment: EnvironmentId,
        payload: &Value,
        now: i64,
    ) -> Result<WebhookDeliveryId, StoreError>;
    /// Claims the oldest due delivery for `lease_ms` (counting an attempt); `None` when idle.
    /// Safe with several processes: a delivery is held by one claimer at a time.
    async fn claim_webhook(
        &self,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<WebhookDelivery>, StoreError>;
    /// Records how an attempt ended.
    async fn finish_webhook(
        &self,
        id: WebhookDeliveryId,
        outcome: &DeliveryOutcome,
        now: i64,
    ) -> Result<(), StoreError>;
    /// An environment's deliveries, newest first.
    async fn list_webhooks(
        &self,
        environment: EnvironmentId,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
}

#[async_trait]
pub trait Store:
    MetaStore
    + EnvironmentStore
    + IntegrationStore
    + ConnectSessionStore
    + OAuthStateStore
    + ConnectionStore
    + CiphertextStore
    + WebhookStore
    + crate::sql_actions::ActionRunStore
    + SyncStore
    + RecordStore
    + crate::ops::OperationLogStore
    + crate::ops::OrgUsageStore
{
    /// Applies pending forward-only migrations; safe to run repeatedly and concurrently.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Closes the connection pool, waiting for connections in use to be returned.
    async fn close(&self);
}

/// Per-connection syncs: schedule, lease-guarded runs and their page commits.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Inserts the missing (connection, name) rows; new ones are paused unless `auto_start`
    /// (then `next_run_at = now`). Existing rows are left as they are. Returns all rows of the
    /// connection, by name. [`StoreError::NotFound`] if the connection is not in `env`.
    async fn ensure_syncs(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        syncs: &[NewSync],
        now: i64,
    ) -> Result<Vec<SyncRow>, StoreError>;
    /// The connection's syncs, by name.
    async fn list_syncs(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
    ) -> Result<Vec<SyncRow>, StoreError>;
    /// One sync of the connection by name.
    async fn get_sync(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        name: &str,
    ) -> Result<Option<SyncRow>, StoreError>;
    /// Claims one due sync (not paused; `pending` set or `next_run_at <= now`; lease free or
    /// expired) until `now + lease_ms`; requested runs first, then the most overdue. Never two
    /// holders, also across processes.
    async fn claim_due_sync(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<SyncRow>, StoreError>;
    /// Claims one given sync whatever its schedule or pause; `None` if another holds a live
    /// lease (or the sync does not exist).
    async fn claim_sync(
        &self,
        sync: SyncId,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<Option<SyncRow>, StoreError>;
    /// Extends the lease to `now + lease_ms` if `owner` holds it; returns whether it did.
    async fn renew_sync_lease(
        &self,
        sync: SyncId,
        owner: &str,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Starts a run under the lease: records a `RUNNING` run (earlier runs left `RUNNING` by a
    /// lost worker become `ERROR`), clears `pending`; `FullRefresh` resets the checkpoint;
    /// `FullRefreshAndClear` also deletes the sync's records, in the same transaction.
    /// [`StoreError::LeaseLost`] if `owner` is not the holder.
    async fn start_sync_run(
        &self,
        sync: SyncId,
        owner: &str,
        trigger: SyncTrigger,
        now: i64,
    ) -> Result<SyncRunId, StoreError>;
    /// One transaction: upserts (hash unchanged and not deleted: no change; new: `ADDED`;
    /// changed or resurrected: `UPDATED`), deletes (live: `DELETED`), checkpoint, run counters.
    /// Later duplicates of an external id in `upserts` win. [`StoreError::LeaseLost`] (and
    /// nothing written) if `lease_owner` no longer holds the sync or the run is not running.
    async fn commit_page(&self, page: &PageCommit<'_>) -> Result<PageOutcome, StoreError>;
    /// Ends the run (`SUCCESS`/`ERROR` with `error`), releases the lease, sets `next_run_at`,
    /// and queues `webhooks` for the sync's environment, in one transaction.
    /// [`StoreError::LeaseLost`] if `owner` is not the holder or the run is not running.
    #[allow(clippy::too_many_arguments)]
    async fn finish_sync_run(
        &self,
        sync: SyncId,
        run: SyncRunId,
        owner: &str,
        success: bool,
        error: Option<&str>,
        next_run_at: Option<i64>,
        webhooks: &[Value],
        now: i64,
    ) -> Result<(), StoreError>;
    /// Pauses or unpauses the named syncs (empty `names` = all of the connection); unpausing
    /// schedules a sync that has no `next_run_at` for `now`. All or nothing:
    /// [`StoreError::NotFound`] lists unknown names. Returns the changed rows.
    async fn set_syncs_paused(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        names: &[String],
        paused: bool,
        now: i64,
    ) -> Result<Vec<SyncRow>, StoreError>;
    /// Sets `pending` on the named syncs (empty `names` = all); does not unpause. All or
    /// nothing like [`SyncStore::set_syncs_paused`]. Returns the changed rows.
    async fn request_sync_run(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        names: &[String],
        trigger: SyncTrigger,
        now: i64,
    ) -> Result<Vec<SyncRow>, StoreError>;
    /// Changes a sync's frequency; a scheduled run later than `now + frequency` is brought
    /// forward to it. `None` if there is no such sync.
    async fn set_sync_frequency(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        name: &str,
        frequency_secs: i64,
        now: i64,
    ) -> Result<Option<SyncRow>, StoreError>;
    /// Puts a sync's frequency back to the one it was created with (`NewSync::frequency_secs`
    /// at its first `ensure_syncs`), rescheduling like [`SyncStore::set_sync_frequency`].
    async fn reset_sync_frequency(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        name: &str,
        now: i64,
    ) -> Result<Option<SyncRow>, StoreError>;
    /// The sync's runs, newest first.
    async fn list_sync_runs(
        &self,
        sync: SyncId,
        limit: u32,
    ) -> Result<Vec<SyncRunSummary>, StoreError>;
}

/// Synced records, read by the records API and written back by actions.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Keyset page by `(updated_at, row id)` ascending, up to `limit` records.
    /// [`StoreError::InvalidCursor`] for a cursor this store did not issue.
    async fn list_records(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        query: &RecordQuery,
    ) -> Result<Vec<StoredRecord>, StoreError>;
    /// Live (not deleted) external ids of a model in byte order, after `after`, at most
    /// `limit` (for id reconciliation by merge-join).
    async fn live_record_ids(
        &self,
        connection: ConnectionRowId,
        model: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// `(live, deleted)` record counts of a model.
    async fn count_records(
        &self,
        connection: ConnectionRowId,
        model: &str,
    ) -> Result<(u64, u64), StoreError>;
    /// Read-after-write from an action (no lease): the hash rule of
    /// [`SyncStore::commit_page`]; returns the action taken, `None` if unchanged.
    /// [`StoreError::NotFound`] if the connection is not in `env`.
    async fn write_back_record(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        model: &str,
        record: &RecordWrite,
        now: i64,
    ) -> Result<Option<RecordAction>, StoreError>;
    /// Empties the payloads of a model's records up to and including the keyset position of
    /// `until_cursor` (oldest first, at most `limit` not pruned yet), keeping their metadata
    /// and stamping `pruned_at = now`. Returns how many were pruned and whether unpruned ones
    /// remain up to the cursor. [`StoreError::InvalidCursor`] for a cursor this store did not
    /// issue; [`StoreError::NotFound`] if the connection is not in `env`.
    async fn prune_records(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        model: &str,
        until_cursor: &str,
        limit: u32,
        now: i64,
    ) -> Result<(u64, bool), StoreError>;
    /// Marks one record deleted; false if absent or already deleted.
    async fn delete_back_record(
        &self,
        env: EnvironmentId,
        connection: ConnectionRowId,
        model: &str,
        external_id: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
}
