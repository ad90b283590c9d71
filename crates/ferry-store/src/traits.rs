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
    MetadataMode, NewConnectSession, NewConnection, NewIntegration, OAuthState,
};
use crate::model::{DeliveryOutcome, WebhookDelivery, WebhookDeliveryId};

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
        new_secret_key: &str,
        new_signing_key: &str,
        now: i64,
    ) -> Result<Environment, StoreError>;
    /// All environments, by id.
    async fn list_environments(&self) -> Result<Vec<Environment>, StoreError>;
    /// The environment whose API secret key is `secret_key`.
    async fn environment_by_secret_key(
        &self,
        secret_key: &str,
    ) -> Result<Option<Environment>, StoreError>;
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
    /// `connection_id`. Returns the row and whether it was created.
    async fn upsert_connection(
        &self,
        environment: EnvironmentId,
        connection: &NewConnection,
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
    /// Every stored ciphertext with where it lives.
    async fn list_ciphertexts(&self) -> Result<Vec<(CipherRef, Vec<u8>)>, StoreError>;
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
