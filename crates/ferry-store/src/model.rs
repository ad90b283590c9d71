//! Rows and inputs the store reads and writes. Times are epoch milliseconds, secrets ciphertext.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

row_id!(
    /// Internal id of an environment.
    EnvironmentId
);
row_id!(
    /// Internal id of an integration.
    IntegrationId
);
row_id!(
    /// Internal numeric id of a connection (Nango's `id`, not the caller-chosen `connection_id`).
    ConnectionRowId
);
row_id!(
    /// Internal id of a connect session.
    ConnectSessionId
);

/// An environment (`dev`, `prod`): the tenant boundary every query is scoped by.
#[derive(Debug, Clone, PartialEq)]
pub struct Environment {
    /// Internal id.
    pub id: EnvironmentId,
    /// Unique name.
    pub name: String,
    /// `sha256:{hex}` of the API secret key: what a presented key is looked up by. The key
    /// itself is never stored in the clear (a database copy must not open the API).
    pub secret_key_hash: String,
    /// The secret key sealed by the vault (bound to this environment), for `ferry keys show`;
    /// `None` only between the row's creation and its sealing.
    pub secret_key_sealed: Option<Vec<u8>>,
    /// Key for signing outgoing webhooks.
    pub webhook_signing_key: String,
    /// Where webhooks are sent, if configured.
    pub webhook_url: Option<String>,
    /// App origins the Connect UI and OAuth pages talk to (`["*"]`: any).
    pub allowed_origins: Vec<String>,
    /// Creation time.
    pub created_at: i64,
}

/// Seals a secret for the row that will store it. The store calls it inside the write's
/// transaction once the row's id is known, so every ciphertext is bound to its own row (the
/// vault lives above the store, which only ever sees ciphertext).
pub type SealFor<'a> = &'a (dyn Fn(i64) -> Result<Vec<u8>, String> + Send + Sync);

/// A configured provider integration (Nango's "provider config").
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    /// Internal id.
    pub id: IntegrationId,
    /// The environment it belongs to.
    pub environment_id: EnvironmentId,
    /// The caller-visible key (`provider_config_key`), unique per environment.
    pub unique_key: String,
    /// Provider name (`salesforce`, `salesforce-sandbox`, …).
    pub provider: String,
    /// Human-readable name.
    pub display_name: String,
    /// OAuth client id, when configured.
    pub client_id: Option<String>,
    /// Encrypted OAuth client secret, when configured.
    pub client_secret: Option<Vec<u8>>,
    /// Scopes, as the provider expects them (comma or space separated).
    pub scopes: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Input for [`IntegrationStore::create_integration`](crate::IntegrationStore::create_integration).
#[derive(Debug, Clone, PartialEq)]
pub struct NewIntegration {
    /// The caller-visible key, unique per environment.
    pub unique_key: String,
    /// Provider name.
    pub provider: String,
    /// Human-readable name.
    pub display_name: String,
    /// OAuth client id.
    pub client_id: Option<String>,
    /// Scopes.
    pub scopes: Option<String>,
}

/// A partial update of an integration; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntegrationPatch {
    /// New unique key (a rename); connections follow since they reference the internal id.
    pub unique_key: Option<String>,
    /// New provider.
    pub provider: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New client id (`Some(None)` clears it).
    pub client_id: Option<Option<String>>,
    /// New encrypted client secret (`Some(None)` clears it).
    pub client_secret: Option<Option<Vec<u8>>>,
    /// New scopes (`Some(None)` clears them).
    pub scopes: Option<Option<String>>,
}

/// A connect session; the server keeps only a hash of its token.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSession {
    /// Internal id.
    pub id: ConnectSessionId,
    /// The environment that created it.
    pub environment_id: EnvironmentId,
    /// Hash of the session token.
    pub token_hash: String,
    /// The end user (`{id, email, display_name, tags}`), absent when only tags were given.
    pub end_user: Option<Value>,
    /// The end user's organization (`{id, display_name}`).
    pub organization: Option<Value>,
    /// Integration keys the session may connect; `None` allows all.
    pub allowed_integrations: Option<Vec<String>>,
    /// Per-integration defaults (`user_scopes`, `authorization_params`, `connection_config`).
    pub integrations_config_defaults: Option<Value>,
    /// Tags copied onto the connections created through this session.
    pub tags: Value,
    /// The connection this session reconnects, if it is a reconnect session.
    pub reconnect_connection_id: Option<ConnectionRowId>,
    /// Where webhooks about the connections made through this session go, instead of the
    /// environment's URL.
    pub webhook_url_override: Option<String>,
    /// When the session stops being usable.
    pub expires_at: i64,
    /// Creation time.
    pub created_at: i64,
}

/// Input for [`ConnectSessionStore::create_connect_session`](crate::ConnectSessionStore::create_connect_session).
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnectSession {
    /// Hash of the session token.
    pub token_hash: String,
    /// The end user.
    pub end_user: Option<Value>,
    /// The end user's organization.
    pub organization: Option<Value>,
    /// Integration keys the session may connect; `None` allows all.
    pub allowed_integrations: Option<Vec<String>>,
    /// Per-integration defaults.
    pub integrations_config_defaults: Option<Value>,
    /// Tags for created connections.
    pub tags: Value,
    /// The connection to reconnect (must belong to the same environment).
    pub reconnect_connection_id: Option<ConnectionRowId>,
    /// Webhook URL for the connections made through the session.
    pub webhook_url_override: Option<String>,
    /// Expiry time.
    pub expires_at: i64,
}

/// A pending OAuth authorization: one-use, short-lived, keyed by the `state` parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthState {
    /// The random `state` sent to the provider.
    pub state: String,
    /// The environment the flow runs in.
    pub environment_id: EnvironmentId,
    /// The integration being connected.
    pub integration_id: IntegrationId,
    /// The connect session that started the flow, if any.
    pub connect_session_id: Option<ConnectSessionId>,
    /// The connection id the caller asked for (legacy popup flow), if any.
    pub connection_id: Option<String>,
    /// Encrypted PKCE verifier.
    pub pkce_verifier: Vec<u8>,
    /// The WebSocket client to notify when the flow ends.
    pub ws_client_id: Option<String>,
    /// Connection config gathered before the redirect (login host, …).
    pub connection_config: Value,
    /// When the state stops being accepted.
    pub expires_at: i64,
    /// Creation time.
    pub created_at: i64,
}

/// Whether a connection's credentials are usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Credentials work (or are refreshable).
    Active,
    /// A permanent refresh failure: the end user has to reconnect.
    NeedsReauth,
}

impl ConnectionStatus {
    /// The value stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::NeedsReauth => "needs_reauth",
        }
    }

    /// Parses a stored `status` value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "needs_reauth" => Some(Self::NeedsReauth),
            _ => None,
        }
    }
}

/// A connection: one end user's authorized account at a provider, under one integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Internal numeric id.
    pub id: ConnectionRowId,
    /// The environment it belongs to.
    pub environment_id: EnvironmentId,
    /// The integration it belongs to.
    pub integration_id: IntegrationId,
    /// The integration's current unique key (`provider_config_key`).
    pub integration_key: String,
    /// The caller-visible id, unique per (environment, integration).
    pub connection_id: String,
    /// Provider name.
    pub provider: String,
    /// Non-secret configuration (`instance_url`, …); `{}` when empty.
    pub connection_config: Value,
    /// Caller metadata; `None` when never set.
    pub metadata: Option<Value>,
    /// Tags (string values), `{}` when empty.
    pub tags: Value,
    /// The end user, when known.
    pub end_user: Option<Value>,
    /// The end user's id (copied out of `end_user` for filtering).
    pub end_user_id: Option<String>,
    /// Encrypted credentials.
    pub credentials: Vec<u8>,
    /// When the access token expires, if known.
    pub expires_at: Option<i64>,
    /// Usability.
    pub status: ConnectionStatus,
    /// Recorded errors (`[{"type": "auth", "log_id": …}]`).
    pub errors: Vec<Value>,
    /// Salesforce organization id.
    pub sf_org_id: Option<String>,
    /// Salesforce user id.
    pub sf_user_id: Option<String>,
    /// Fencing token, incremented by every lease acquisition and every reconnect.
    pub refresh_fence: i64,
    /// Holder of the refresh lease, if one was taken and not released.
    pub refresh_lease_owner: Option<String>,
    /// When the refresh lease lapses.
    pub refresh_lease_until: Option<i64>,
    /// Last time the credentials were handed to a caller.
    pub last_fetched_at: Option<i64>,
    /// Where webhooks about this connection go instead of the environment's URL.
    pub webhook_url_override: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// Input for [`ConnectionStore::upsert_connection`](crate::ConnectionStore::upsert_connection).
#[derive(Debug, Clone, PartialEq)]
pub struct NewConnection {
    /// The integration (must belong to the environment).
    pub integration_id: IntegrationId,
    /// The caller-visible id to use when a new row is inserted.
    pub connection_id: String,
    /// Provider name.
    pub provider: String,
    /// Non-secret configuration.
    pub connection_config: Value,
    /// Metadata; `None` keeps an existing connection's metadata.
    pub metadata: Option<Value>,
    /// Tags; `Value::Null` keeps an existing connection's tags (a reconnect without tags).
    pub tags: Value,
    /// End user; `None` keeps an existing connection's end user.
    pub end_user: Option<Value>,
    /// End user id; part of the dedupe key.
    pub end_user_id: Option<String>,
    /// Access token expiry.
    pub expires_at: Option<i64>,
    /// Salesforce organization id; part of the dedupe key.
    pub sf_org_id: Option<String>,
    /// Salesforce user id; part of the dedupe key.
    pub sf_user_id: Option<String>,
    /// Reconnect this connection (a reconnect session's target) instead of matching.
    pub reconnect: Option<ConnectionRowId>,
    /// What happens when no reconnect target is named and a connection already matches.
    pub existing: ExistingConnection,
    /// The webhook URL override; `None` keeps an existing connection's.
    pub webhook_url_override: Option<String>,
    /// An auth webhook to queue in the same transaction: the store fills in `connectionId`
    /// (the stored row's) and `operation` (`creation` or `override`).
    pub auth_webhook: Option<Value>,
}

/// How [`ConnectionStore::upsert_connection`](crate::ConnectionStore::upsert_connection) treats
/// a connection that already exists. Whatever the choice, an existing connection of one
/// Salesforce org is never overwritten with another org's credentials
/// ([`StoreError::OrgMismatch`](crate::StoreError::OrgMismatch)): records of two orgs must not mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingConnection {
    /// The OAuth flow: the connection of the same org, user and end user (else the same
    /// `connection_id`) is updated.
    #[default]
    Update,
    /// An import: the same `connection_id` is a [`StoreError::Conflict`](crate::StoreError::Conflict).
    Refuse,
    /// An import asked to replace: the same `connection_id` is updated.
    Replace,
}

/// Filters for [`ConnectionStore::list_connections`](crate::ConnectionStore::list_connections).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionFilter {
    /// Exact `connection_id`.
    pub connection_id: Option<String>,
    /// Case-insensitive substring of the connection id, end user display name or email.
    pub search: Option<String>,
    /// Exact end user id.
    pub end_user_id: Option<String>,
    /// Exact end user organization id (`end_user.organization.id`).
    pub end_user_organization_id: Option<String>,
    /// Integration keys; empty means every integration.
    pub integration_keys: Vec<String>,
    /// Tag pairs that must all be present with exactly these values.
    pub tags: Vec<(String, String)>,
    /// Page size; [`DEFAULT_LIST_LIMIT`] when `None`.
    pub limit: Option<u32>,
    /// 0-based page; the offset is `page × limit`.
    pub page: Option<u32>,
}

/// The page size when a list call gives none (Nango's default).
pub const DEFAULT_LIST_LIMIT: u32 = 10_000;

/// A partial update of a connection; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionPatch {
    /// Replacement tags.
    pub tags: Option<Value>,
    /// Replacement end user (`Some(None)` clears it).
    pub end_user: Option<Option<Value>>,
    /// Replacement end user id (`Some(None)` clears it).
    pub end_user_id: Option<Option<String>>,
    /// Replacement connection config.
    pub connection_config: Option<Value>,
    /// Replacement webhook URL override (`Some(None)` clears it).
    pub webhook_url_override: Option<Option<String>>,
}

/// How [`ConnectionStore::set_metadata`](crate::ConnectionStore::set_metadata) applies metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMode {
    /// Replace the whole object (`POST /connections/metadata`).
    Replace,
    /// Shallow merge `{...old, ...new}` (`PATCH /connections/metadata`).
    Merge,
}

/// Applies metadata per `mode` to a connection's current metadata.
pub(crate) fn apply_metadata(
    current: Option<&Value>,
    update: &Map<String, Value>,
    mode: MetadataMode,
) -> Value {
    match mode {
        MetadataMode::Replace => Value::Object(update.clone()),
        MetadataMode::Merge => {
            let mut merged = match current {
                Some(Value::Object(existing)) => existing.clone(),
                _ => Map::new(),
            };
            for (key, value) in update {
                merged.insert(key.clone(), value.clone());
            }
            Value::Object(merged)
        }
    }
}

/// Names one encrypted value, for key rotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CipherRef {
    /// `integrations.client_secret`.
    IntegrationClientSecret(IntegrationId),
    /// `oauth_states.pkce_verifier`, by state.
    OAuthStatePkceVerifier(String),
    /// `connections.credentials`.
    ConnectionCredentials(ConnectionRowId),
    /// `environments.secret_key_sealed`.
    EnvironmentSecretKey(EnvironmentId),
}

row_id!(
    /// A queued webhook delivery.
    WebhookDeliveryId
);

/// A webhook waiting to be sent, or sent.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// Row id.
    pub id: WebhookDeliveryId,
    /// The environment whose URL and signing key apply.
    pub environment_id: EnvironmentId,
    /// The JSON body to send.
    pub payload: Value,
    /// `pending`, `delivered`, `failed` or `skipped`.
    pub status: String,
    /// Attempts made so far (including the one a claim starts).
    pub attempts: i64,
    /// When it may be tried next (epoch ms).
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// HTTP status of the last attempt.
    pub last_status: Option<i64>,
    /// Queued at.
    pub created_at: i64,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// HTTP status.
        status: i64,
    },
    /// Try again at `next_attempt_at`.
    Retry {
        /// When.
        next_attempt_at: i64,
        /// Why.
        error: String,
        /// HTTP status, if any.
        status: Option<i64>,
    },
    /// Give up.
    Failed {
        /// Why.
        error: String,
        /// HTTP status, if any.
        status: Option<i64>,
    },
    /// Nothing to send to (no webhook URL configured).
    Skipped,
}
