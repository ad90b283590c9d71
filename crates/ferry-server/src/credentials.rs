//! The one credential service everything uses: a learned expiry (one introspection per token, never on the request path), refresh before expiry or on demand, exactly one refresh at a time per connection across processes (in-process lock plus a fenced database lease), rotation-safe writes, and classified failures.

use crate::connections::{check_token_response, oauth_client, open, seal, Credentials};
use crate::error::ApiError;
use crate::state::AppState;
use ferry_salesforce::oauth::{FailureKind, OAuthClient, OAuthError};
use ferry_store::{Connection, ConnectionRowId, ConnectionStatus, Integration};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Timings of the token lifecycle.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Refresh when the token expires within this long.
    pub refresh_margin_ms: i64,
    /// Expiry assumed when introspection is not allowed.
    pub assumed_lifetime_ms: i64,
    /// How long a refresh lease is held at most (longer than any token call).
    pub lease_ttl_ms: i64,
    /// Refresh connections whose token is older than this, so an idle refresh token never
    /// reaches Salesforce's idle expiry.
    pub keepalive_ms: i64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            refresh_margin_ms: 5 * 60 * 1000,
            assumed_lifetime_ms: 60 * 60 * 1000,
            lease_ttl_ms: 60 * 1000,
            keepalive_ms: 12 * 60 * 60 * 1000,
        }
    }
}

/// Why credentials could not be had.
#[derive(Debug)]
pub enum CredentialError {
    /// Salesforce refused the grant for good (or did so before): the user must reconnect.
    NeedsReauth {
        /// Salesforce's error code (`invalid_grant`, …).
        error_type: String,
        /// Its description.
        description: String,
        /// Whether this call discovered it (400) or it was known already (424).
        just_now: bool,
    },
    /// A temporary failure (5xx, network, a refresh already being processed): try again later.
    Transient(String),
    /// Anything else.
    Api(ApiError),
}

impl From<ApiError> for CredentialError {
    fn from(e: ApiError) -> Self {
        CredentialError::Api(e)
    }
}

impl From<ferry_store::StoreError> for CredentialError {
    fn from(e: ferry_store::StoreError) -> Self {
        CredentialError::Api(ApiError::from(e))
    }
}

impl CredentialError {
    /// Nango's `invalid_credentials` (400 when just discovered, 424 when known or backing off).
    pub fn into_api(self, connection: Option<Value>) -> ApiError {
        let (status, message) = match self {
            CredentialError::Api(e) => return e,
            CredentialError::NeedsReauth { error_type, description, just_now } => (
                if just_now { 400 } else { 424 },
                format!("Salesforce refused the refresh token ({error_type}: {description}); the end user must reconnect"),
            ),
            CredentialError::Transient(d) => (424, format!("refreshing the token failed for now ({d}); try again shortly")),
        };
        let status =
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST);
        let mut e = ApiError::new(status, "invalid_credentials", message);
        if let Some(c) = connection {
            e = e.with_payload(json!({ "connection": c }));
        }
        e
    }
}

/// Learns when an access token expires: one introspection; the assumed lifetime if not allowed.
pub async fn learn_expiry(state: &AppState, client: &OAuthClient, access_token: &str) -> i64 {
    let now = state.clock.now_ms();
    let assumed = now + state.config.token_policy.assumed_lifetime_ms;
    match client.introspect(access_token, "access_token").await {
        Ok(i) if i.active => i.exp.map(|s| s * 1000).unwrap_or(assumed),
        Ok(_) => now,
        Err(e) => {
            tracing::debug!(error = %e, "introspection unavailable; assuming a lifetime");
            assumed
        }
    }
}

/// The service: per-connection locks in this process, leases across processes.
#[derive(Debug)]
pub struct CredentialService {
    locks: Mutex<HashMap<ConnectionRowId, Arc<tokio::sync::Mutex<()>>>>,
    /// After a transient failure: (failures in a row, no new attempt before this instant).
    backoff: Mutex<HashMap<ConnectionRowId, (u32, i64)>>,
    /// This process's lease owner name.
    owner: String,
}

impl Default for CredentialService {
    fn default() -> Self {
        CredentialService {
            locks: Mutex::new(HashMap::new()),
            backoff: Mutex::new(HashMap::new()),
            owner: format!("ferry-{}", uuid::Uuid::new_v4()),
        }
    }
}

/// Backoff after the `n`th transient failure in a row: 1 s, 2 s, 4 s … up to 5 min, plus jitter.
fn transient_backoff_ms(failures: u32) -> i64 {
    let base = 1_000i64
        .saturating_mul(1 << failures.clamp(1, 9).saturating_sub(1))
        .min(300_000);
    base + rand::random_range(0..=base / 4)
}

/// Fresh: not within the refresh margin of its expiry. The margin is at most a quarter of the
/// token's lifetime, so short-lived tokens are still used for most of their life.
pub(crate) fn is_fresh(credentials: &Credentials, policy: &TokenPolicy, now: i64) -> bool {
    credentials.expires_at.is_some_and(|expires| {
        let lifetime = credentials
            .obtained_at
            .map(|o| expires - o)
            .unwrap_or(i64::MAX);
        let margin = policy.refresh_margin_ms.min(lifetime / 4);
        expires - margin > now
    })
}

impl CredentialService {
    fn lock_for(&self, id: ConnectionRowId) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().entry(id).or_default().clone()
    }

    /// Usable credentials for a connection: the stored ones while fresh, a refresh otherwise
    /// (or when `force`). Concurrent callers share one refresh.
    pub async fn get(
        &self,
        state: &Arc<AppState>,
        integration: &Integration,
        connection: Connection,
        force: bool,
    ) -> Result<(Connection, Credentials), CredentialError> {
        self.get_with(state, integration, connection, force, None)
            .await
    }

    /// After Salesforce refused `rejected_token` (`401 INVALID_SESSION_ID`): a new token, by one
    /// refresh shared with every caller that saw the same rejection.
    pub async fn replace_rejected(
        &self,
        state: &Arc<AppState>,
        integration: &Integration,
        connection: Connection,
        rejected_token: &str,
    ) -> Result<(Connection, Credentials), CredentialError> {
        self.get_with(state, integration, connection, true, Some(rejected_token))
            .await
    }

    /// Whether a transient failure put this connection in backoff.
    fn in_backoff(&self, id: ConnectionRowId, now: i64) -> bool {
        self.backoff
            .lock()
            .get(&id)
            .is_some_and(|(_, until)| *until > now)
    }

    fn note_transient(&self, id: ConnectionRowId, now: i64) {
        let mut backoff = self.backoff.lock();
        let entry = backoff.entry(id).or_insert((0, now));
        entry.0 += 1;
        entry.1 = now + transient_backoff_ms(entry.0);
    }

    async fn get_with(
        &self,
        state: &Arc<AppState>,
        integration: &Integration,
        connection: Connection,
        force: bool,
        rejected_token: Option<&str>,
    ) -> Result<(Connection, Credentials), CredentialError> {
        let policy = &state.config.token_policy;
        if connection.status == ConnectionStatus::NeedsReauth && !force {
            return Err(known_failure(&connection));
        }
        let credentials = open(state, &connection)?;
        let now = state.clock.now_ms();
        if !force && is_fresh(&credentials, policy, now) {
            return Ok((connection, credentials));
        }
        // During a token-endpoint outage: keep using a token that has not expired yet, and do
        // not call the token endpoint again before the backoff ends.
        let still_valid = credentials.expires_at.is_some_and(|e| e > now);
        if self.in_backoff(connection.id, now) && rejected_token.is_none() && !force {
            if still_valid {
                return Ok((connection, credentials));
            }
            return Err(CredentialError::Transient(
                "the token endpoint failed recently; backing off".into(),
            ));
        }
        let id = connection.id;
        let fallback = (still_valid && !force && rejected_token.is_none())
            .then(|| (connection.clone(), credentials.clone()));
        let result = self
            .refresh_flow(state, integration, connection, force, rejected_token)
            .await;
        match result {
            Err(CredentialError::Transient(reason)) => {
                self.note_transient(id, state.clock.now_ms());
                match fallback {
                    Some(current) => {
                        tracing::warn!(connection = id.0, %reason, "refresh failed for now; the current token is still valid");
                        Ok(current)
                    }
                    None => Err(CredentialError::Transient(reason)),
                }
            }
            other => {
                if other.is_ok() {
                    self.backoff.lock().remove(&id);
                }
                other
            }
        }
    }

    async fn refresh_flow(
        &self,
        state: &Arc<AppState>,
        integration: &Integration,
        connection: Connection,
        force: bool,
        rejected_token: Option<&str>,
    ) -> Result<(Connection, Credentials), CredentialError> {
        let policy = &state.config.token_policy;
        let fence_seen = connection.refresh_fence;
        let lock = self.lock_for(connection.id);
        let _guard = lock.lock().await;
        let started = std::time::Instant::now();
        loop {
            let current = reread(state, &connection).await?;
            let credentials = open(state, &current)?;
            let lease_free = current
                .refresh_lease_until
                .is_none_or(|u| u <= state.clock.now_ms());
            // Someone refreshed (or the user reconnected) while we waited: use their result.
            if current.refresh_fence != fence_seen && lease_free {
                if current.status == ConnectionStatus::NeedsReauth {
                    return Err(known_failure(&current));
                }
                return Ok((current, credentials));
            }
            if !force && is_fresh(&credentials, policy, state.clock.now_ms()) {
                return Ok((current, credentials));
            }
            // Someone already replaced the token Salesforce refused.
            if rejected_token.is_some_and(|t| t != credentials.access_token) {
                return Ok((current, credentials));
            }
            if let Some(fence) = state
                .store
                .acquire_refresh_lease(
                    current.id,
                    &self.owner,
                    state.clock.now_ms(),
                    policy.lease_ttl_ms,
                )
                .await?
            {
                // Read again under the lease: another process may have refreshed (and released)
                // between our read and the lease. Its credentials win; ours are stale, and under
                // rotation using them would revoke the whole token family.
                let latest = reread(state, &connection).await?;
                let latest_credentials = open(state, &latest)?;
                if latest_credentials.access_token != credentials.access_token
                    || latest.status == ConnectionStatus::NeedsReauth
                {
                    let _ = state
                        .store
                        .release_refresh_lease(current.id, &self.owner, fence)
                        .await;
                    if latest.status == ConnectionStatus::NeedsReauth {
                        return Err(known_failure(&latest));
                    }
                    return Ok((latest, latest_credentials));
                }
                // The token call and its commit run to the end even when the caller goes away
                // (a client disconnects, a request times out): a refresh cut short after
                // Salesforce answered would lose a rotated refresh token, and the next refresh
                // with the old one would revoke the whole token family.
                let task_state = state.clone();
                let task_integration = integration.clone();
                let id = current.id;
                let committed = tokio::spawn(async move {
                    let service = &task_state.credentials;
                    let result = service
                        .refresh_under_lease(
                            &task_state,
                            &task_integration,
                            latest,
                            latest_credentials,
                            fence,
                        )
                        .await;
                    let _ = task_state
                        .store
                        .release_refresh_lease(id, &service.owner, fence)
                        .await;
                    result
                });
                return committed.await.unwrap_or_else(|e| {
                    Err(CredentialError::Transient(format!(
                        "the refresh task failed: {e}"
                    )))
                });
            }
            // Another process holds the lease: wait for its result or for the lease to lapse.
            if started.elapsed() > Duration::from_millis((policy.lease_ttl_ms * 2) as u64 + 5_000) {
                return Err(CredentialError::Transient(
                    "another refresh of this connection did not finish".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn refresh_under_lease(
        &self,
        state: &AppState,
        integration: &Integration,
        connection: Connection,
        mut credentials: Credentials,
        fence: i64,
    ) -> Result<(Connection, Credentials), CredentialError> {
        let Some(refresh_token) = credentials.refresh_token.clone() else {
            return Err(self
                .fail_permanently(
                    state,
                    &connection,
                    "missing_refresh_token",
                    "the connection has no refresh token",
                )
                .await);
        };
        let hostname = connection
            .connection_config
            .get("hostname")
            .and_then(Value::as_str)
            .and_then(|h| ferry_core::ids::SalesforceHostname::parse(h).ok());
        let client = oauth_client(state, integration, hostname.as_ref())?;
        let mut attempt = 0;
        let token = loop {
            attempt += 1;
            match client.refresh(&refresh_token).await {
                Ok(t) => break t,
                // Salesforce is still processing another request with this token: wait it out.
                Err(e @ OAuthError::Rejected { .. })
                    if e.kind() == FailureKind::Transient && attempt < 4 =>
                {
                    tracing::info!(connection = %connection.connection_id, "token request already being processed; waiting");
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(e) if e.kind() == FailureKind::Permanent => {
                    let (code, description) = match &e {
                        OAuthError::Rejected {
                            error, description, ..
                        } => (error.clone(), description.clone()),
                        other => ("refresh_failed".to_string(), other.to_string()),
                    };
                    return Err(self
                        .fail_permanently(state, &connection, &code, &description)
                        .await);
                }
                Err(e) => {
                    let _ = state
                        .store
                        .set_connection_status(
                            connection.environment_id,
                            connection.id,
                            ConnectionStatus::Active,
                            &[json!({"type": "auth", "transient": true, "description": e.to_string()})],
                            state.clock.now_ms(),
                        )
                        .await;
                    return Err(CredentialError::Transient(e.to_string()));
                }
            }
        };
        let identity = check_token_response(&state.config.hosts, &integration.provider, &token)
            .map_err(|m| CredentialError::Api(ApiError::bad_request("invalid_credentials", m)))?;
        if connection
            .sf_org_id
            .as_deref()
            .is_some_and(|org| org != identity.org_id)
        {
            return Err(self
                .fail_permanently(
                    state,
                    &connection,
                    "org_mismatch",
                    "the refreshed token belongs to a different org",
                )
                .await);
        }
        credentials.access_token = token.access_token.clone();
        if let Some(rotated) = &token.refresh_token {
            credentials.refresh_token = Some(rotated.clone());
        }
        credentials.raw = token.raw.clone();
        credentials.obtained_at = Some(state.clock.now_ms());
        credentials.expires_at = Some(learn_expiry(state, &client, &token.access_token).await);
        let mut config = connection.connection_config.clone();
        if let Some(map) = config.as_object_mut() {
            map.insert(
                "instance_url".into(),
                Value::String(token.instance_url.clone()),
            );
        }
        let sealed = seal(
            state,
            connection.environment_id,
            connection.id,
            &credentials,
        )?;
        // The rotated refresh token is committed before the lease is released; a stale fence
        // (a newer writer) means our result is obsolete.
        let written = state
            .store
            .update_credentials(
                connection.id,
                &sealed,
                credentials.expires_at,
                Some(&config),
                Some(fence),
                state.clock.now_ms(),
            )
            .await?;
        if !written {
            let current = reread(state, &connection).await?;
            let fresh = open(state, &current)?;
            return Ok((current, fresh));
        }
        if !connection.errors.is_empty() || connection.status != ConnectionStatus::Active {
            state
                .store
                .set_connection_status(
                    connection.environment_id,
                    connection.id,
                    ConnectionStatus::Active,
                    &[],
                    state.clock.now_ms(),
                )
                .await?;
            self.announce(state, &connection, true, None).await;
        }
        let current = reread(state, &connection).await?;
        Ok((current, credentials))
    }

    async fn fail_permanently(
        &self,
        state: &AppState,
        connection: &Connection,
        code: &str,
        description: &str,
    ) -> CredentialError {
        let was_active = connection.status == ConnectionStatus::Active;
        let errors = [
            json!({"type": "auth", "log_id": code, "error_type": code, "description": description}),
        ];
        if let Err(e) = state
            .store
            .set_connection_status(
                connection.environment_id,
                connection.id,
                ConnectionStatus::NeedsReauth,
                &errors,
                state.clock.now_ms(),
            )
            .await
        {
            tracing::error!(error = %e, "recording needs_reauth");
        }
        if was_active {
            self.announce(state, connection, false, Some((code, description)))
                .await;
        }
        tracing::warn!(connection = %connection.connection_id, error_type = code, "refresh refused; the connection needs a reconnect");
        CredentialError::NeedsReauth {
            error_type: code.to_string(),
            description: description.to_string(),
            just_now: true,
        }
    }

    /// Queues a `refresh` auth webhook (a failure, or a recovery).
    async fn announce(
        &self,
        state: &AppState,
        connection: &Connection,
        success: bool,
        error: Option<(&str, &str)>,
    ) {
        let Some(env) = state.environment_by_id(connection.environment_id) else {
            return;
        };
        let mut payload = crate::webhooks::auth_payload(
            &env.name,
            &connection.integration_key,
            &connection.provider,
            &connection.tags,
            connection.end_user.as_ref(),
        );
        if let Some(map) = payload.as_object_mut() {
            map.insert("connectionId".into(), json!(connection.connection_id));
            map.insert("operation".into(), json!("refresh"));
            map.insert("success".into(), json!(success));
            if let Some((t, d)) = error {
                map.insert("error".into(), json!({"type": t, "description": d}));
            }
        }
        match state
            .store
            .enqueue_webhook(env.id, &payload, state.clock.now_ms())
            .await
        {
            Ok(_) => state.webhook_wakeup.notify_one(),
            Err(e) => tracing::error!(error = %e, "queueing a refresh webhook"),
        }
    }
}

async fn reread(state: &AppState, connection: &Connection) -> Result<Connection, CredentialError> {
    state
        .store
        .connection_by_row_id(connection.environment_id, connection.id)
        .await?
        .ok_or_else(|| CredentialError::Api(ApiError::not_found("the connection was deleted")))
}

fn known_failure(connection: &Connection) -> CredentialError {
    let first = connection.errors.first();
    CredentialError::NeedsReauth {
        error_type: first
            .and_then(|e| e.get("error_type"))
            .and_then(Value::as_str)
            .unwrap_or("invalid_grant")
            .to_string(),
        description: first
            .and_then(|e| e.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        just_now: false,
    }
}
