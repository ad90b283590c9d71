//! The SQL both backends share, written once as a macro and instantiated per database type.
//!
//! Queries use `$n` placeholders, which SQLite and PostgreSQL both accept, and plain types
//! (integers, text, blobs; JSON as text) so both backends behave identically. The few dialect
//! differences (transaction start, JSON field access) are associated items of each store.

use serde_json::Value;

use crate::error::StoreError;

/// Columns of `environments` in the order the row decoder expects.
pub(crate) const ENVIRONMENT_COLUMNS: &str =
    "id, name, secret_key, secret_key_sealed, webhook_signing_key, webhook_url, allowed_origins, \
     created_at";

/// Columns of `integrations`.
pub(crate) const INTEGRATION_COLUMNS: &str = "id, environment_id, unique_key, provider, \
     display_name, client_id, client_secret, scopes, created_at, updated_at";

/// Columns of `connect_sessions`.
pub(crate) const SESSION_COLUMNS: &str = "id, environment_id, token_hash, end_user, organization, \
     allowed_integrations, integrations_config_defaults, tags, reconnect_connection_id, \
     webhook_url_override, expires_at, created_at";

/// Columns of `oauth_states`.
pub(crate) const OAUTH_STATE_COLUMNS: &str = "state, environment_id, integration_id, \
     connect_session_id, connection_id, pkce_verifier, ws_client_id, connection_config, \
     expires_at, created_at";

/// Columns of a connection joined with its integration (`c` and `i`).
pub(crate) const CONNECTION_SELECT: &str = "SELECT c.id, c.environment_id, c.integration_id, \
     i.unique_key AS integration_key, c.connection_id, c.provider, c.connection_config, \
     c.metadata, c.tags, c.end_user, c.end_user_id, c.credentials, c.expires_at, c.status, \
     c.errors, c.sf_org_id, c.sf_user_id, c.refresh_fence, c.refresh_lease_owner, \
     c.refresh_lease_until, c.last_fetched_at, c.webhook_url_override, c.created_at, \
     c.updated_at FROM connections c JOIN integrations i ON i.id = c.integration_id";

/// Serializes a JSON value for a text column.
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// Serializes an optional JSON value; `None` is SQL NULL.
pub(crate) fn json_text_opt(value: Option<&Value>) -> Option<String> {
    value.map(Value::to_string)
}

/// Whether two Salesforce org ids name the same org (15- and 18-character forms compare by
/// their case-sensitive 15-character prefix).
pub(crate) fn same_org(a: &str, b: &str) -> bool {
    let short = |id: &str| {
        id.get(..15)
            .map(str::to_owned)
            .unwrap_or_else(|| id.to_owned())
    };
    short(a) == short(b)
}

/// Parses a JSON text column.
pub(crate) fn parse_json(text: &str, column: &'static str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt { column, source })
}

/// Parses a nullable JSON text column.
pub(crate) fn parse_json_opt(
    text: Option<String>,
    column: &'static str,
) -> Result<Option<Value>, StoreError> {
    text.map(|text| parse_json(&text, column)).transpose()
}

/// Parses a JSON text column into a typed value.
pub(crate) fn parse_typed<T: serde::de::DeserializeOwned>(
    text: &str,
    column: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt { column, source })
}

/// A `LIKE` pattern matching `search` as a lowercase substring, with `\` as the escape.
pub(crate) fn contains_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for ch in search.to_lowercase().chars() {
        if matches!(ch, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

/// Implements every store trait for `$store` (a struct with a `pool: Pool<$db>` field and the
/// dialect items `BEGIN_WRITE`, `TAGS_EACH`, `json_field`).
macro_rules! impl_store {
    ($store:ident, $db:ty, $row:ty, $backend:literal) => {
        use async_trait::async_trait;
        use serde_json::{Map, Value};
        use sqlx::{QueryBuilder, Row};

        use $crate::error::{conflict_or, is_unique_violation, StoreError};
        use $crate::model::{
            apply_metadata, CipherRef, ConnectSession, ConnectSessionId, Connection,
            ConnectionFilter, ConnectionPatch, ConnectionRowId, ConnectionStatus, Environment,
            EnvironmentId, ExistingConnection, Integration, SealFor, IntegrationId, IntegrationPatch, MetadataMode,
            NewConnectSession, NewConnection, NewIntegration, OAuthState, DEFAULT_LIST_LIMIT,
            DeliveryOutcome, WebhookDelivery, WebhookDeliveryId,
        };
        use $crate::sql::{
            contains_pattern, json_text, json_text_opt, parse_json, parse_json_opt, parse_typed,
            same_org,
            CONNECTION_SELECT, ENVIRONMENT_COLUMNS, INTEGRATION_COLUMNS, OAUTH_STATE_COLUMNS,
            SESSION_COLUMNS,
        };
        use $crate::traits::{
            CiphertextStore, ConnectSessionStore, ConnectionStore, EnvironmentStore,
            IntegrationStore, MetaStore, OAuthStateStore, Store, WebhookStore,
        };

        fn delivery_from_row(row: &$row) -> Result<WebhookDelivery, StoreError> {
            let payload: String = row.try_get("payload")?;
            Ok(WebhookDelivery {
                id: WebhookDeliveryId(row.try_get("id")?),
                environment_id: EnvironmentId(row.try_get("environment_id")?),
                payload: parse_json(&payload, "webhook_deliveries.payload")?,
                status: row.try_get("status")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
                last_error: row.try_get("last_error")?,
                last_status: row.try_get("last_status")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn environment_from_row(row: &$row) -> Result<Environment, StoreError> {
            Ok(Environment {
                id: EnvironmentId(row.try_get("id")?),
                name: row.try_get("name")?,
                secret_key_hash: row.try_get("secret_key")?,
                secret_key_sealed: row.try_get("secret_key_sealed")?,
                webhook_signing_key: row.try_get("webhook_signing_key")?,
                webhook_url: row.try_get("webhook_url")?,
                allowed_origins: row
                    .try_get::<Option<String>, _>("allowed_origins")?
                    .map(|text| parse_typed(&text, "allowed_origins"))
                    .transpose()?
                    .unwrap_or_default(),
                created_at: row.try_get("created_at")?,
            })
        }

        fn integration_from_row(row: &$row) -> Result<Integration, StoreError> {
            Ok(Integration {
                id: IntegrationId(row.try_get("id")?),
                environment_id: EnvironmentId(row.try_get("environment_id")?),
                unique_key: row.try_get("unique_key")?,
                provider: row.try_get("provider")?,
                display_name: row.try_get("display_name")?,
                client_id: row.try_get("client_id")?,
                client_secret: row.try_get("client_secret")?,
                scopes: row.try_get("scopes")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn session_from_row(row: &$row) -> Result<ConnectSession, StoreError> {
            let allowed: Option<String> = row.try_get("allowed_integrations")?;
            Ok(ConnectSession {
                id: ConnectSessionId(row.try_get("id")?),
                environment_id: EnvironmentId(row.try_get("environment_id")?),
                token_hash: row.try_get("token_hash")?,
                end_user: parse_json_opt(row.try_get("end_user")?, "end_user")?,
                organization: parse_json_opt(row.try_get("organization")?, "organization")?,
                allowed_integrations: allowed
                    .map(|text| parse_typed(&text, "allowed_integrations"))
                    .transpose()?,
                integrations_config_defaults: parse_json_opt(
                    row.try_get("integrations_config_defaults")?,
                    "integrations_config_defaults",
                )?,
                tags: parse_json(row.try_get("tags")?, "tags")?,
                reconnect_connection_id: row
                    .try_get::<Option<i64>, _>("reconnect_connection_id")?
                    .map(ConnectionRowId),
                webhook_url_override: row.try_get("webhook_url_override")?,
                expires_at: row.try_get("expires_at")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn oauth_state_from_row(row: &$row) -> Result<OAuthState, StoreError> {
            Ok(OAuthState {
                state: row.try_get("state")?,
                environment_id: EnvironmentId(row.try_get("environment_id")?),
                integration_id: IntegrationId(row.try_get("integration_id")?),
                connect_session_id: row
                    .try_get::<Option<i64>, _>("connect_session_id")?
                    .map(ConnectSessionId),
                connection_id: row.try_get("connection_id")?,
                pkce_verifier: row.try_get("pkce_verifier")?,
                ws_client_id: row.try_get("ws_client_id")?,
                connection_config: parse_json(
                    row.try_get("connection_config")?,
                    "connection_config",
                )?,
                expires_at: row.try_get("expires_at")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn connection_from_row(row: &$row) -> Result<Connection, StoreError> {
            let status: String = row.try_get("status")?;
            Ok(Connection {
                id: ConnectionRowId(row.try_get("id")?),
                environment_id: EnvironmentId(row.try_get("environment_id")?),
                integration_id: IntegrationId(row.try_get("integration_id")?),
                integration_key: row.try_get("integration_key")?,
                connection_id: row.try_get("connection_id")?,
                provider: row.try_get("provider")?,
                connection_config: parse_json(
                    row.try_get("connection_config")?,
                    "connection_config",
                )?,
                metadata: parse_json_opt(row.try_get("metadata")?, "metadata")?,
                tags: parse_json(row.try_get("tags")?, "tags")?,
                end_user: parse_json_opt(row.try_get("end_user")?, "end_user")?,
                end_user_id: row.try_get("end_user_id")?,
                credentials: row.try_get("credentials")?,
                expires_at: row.try_get("expires_at")?,
                status: serde_json::from_value::<ConnectionStatus>(Value::String(status))
                    .map_err(|source| StoreError::Corrupt {
                        column: "status",
                        source,
                    })?,
                errors: parse_typed(row.try_get("errors")?, "errors")?,
                sf_org_id: row.try_get("sf_org_id")?,
                sf_user_id: row.try_get("sf_user_id")?,
                refresh_fence: row.try_get("refresh_fence")?,
                refresh_lease_owner: row.try_get("refresh_lease_owner")?,
                refresh_lease_until: row.try_get("refresh_lease_until")?,
                last_fetched_at: row.try_get("last_fetched_at")?,
                webhook_url_override: row.try_get("webhook_url_override")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        /// The sub-select resolving an integration key inside an environment.
        const INTEGRATION_BY_KEY: &str =
            "(SELECT id FROM integrations WHERE environment_id = $1 AND unique_key = $2)";

        impl $store {
            async fn upsert_once(
                &self,
                environment: EnvironmentId,
                new: &NewConnection,
                seal: SealFor<'_>,
                now: i64,
            ) -> Result<(Connection, bool), StoreError> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let integration: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM integrations WHERE id = $1 AND environment_id = $2",
                )
                .bind(new.integration_id.0)
                .bind(environment.0)
                .fetch_optional(&mut *tx)
                .await?;
                if integration.is_none() {
                    return Err(StoreError::not_found(
                        "integration",
                        new.integration_id.to_string(),
                    ));
                }
                let target: Option<i64> = if let Some(reconnect) = new.reconnect {
                    let found: Option<i64> = sqlx::query_scalar(
                        "SELECT id FROM connections \
                         WHERE id = $1 AND environment_id = $2 AND integration_id = $3",
                    )
                    .bind(reconnect.0)
                    .bind(environment.0)
                    .bind(new.integration_id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if found.is_none() {
                        return Err(StoreError::not_found("connection", reconnect.to_string()));
                    }
                    found
                } else {
                    let mut found = None;
                    let by_identity = new.existing == ExistingConnection::Update;
                    if let (true, Some(org), Some(user)) =
                        (by_identity, &new.sf_org_id, &new.sf_user_id)
                    {
                        found = sqlx::query_scalar(
                            "SELECT id FROM connections WHERE environment_id = $1 \
                             AND integration_id = $2 AND sf_org_id = $3 AND sf_user_id = $4 \
                             AND COALESCE(end_user_id, '') = COALESCE($5, '')",
                        )
                        .bind(environment.0)
                        .bind(new.integration_id.0)
                        .bind(org.as_str())
                        .bind(user.as_str())
                        .bind(new.end_user_id.as_deref())
                        .fetch_optional(&mut *tx)
                        .await?;
                    }
                    if found.is_none() {
                        found = sqlx::query_scalar(
                            "SELECT id FROM connections WHERE environment_id = $1 \
                             AND integration_id = $2 AND connection_id = $3",
                        )
                        .bind(environment.0)
                        .bind(new.integration_id.0)
                        .bind(new.connection_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    }
                    if found.is_some() && new.existing == ExistingConnection::Refuse {
                        return Err(StoreError::Conflict {
                            entity: "connection",
                            key: new.connection_id.clone(),
                        });
                    }
                    found
                };
                if let (Some(id), Some(new_org)) = (target, &new.sf_org_id) {
                    let stored: Option<Option<String>> =
                        sqlx::query_scalar("SELECT sf_org_id FROM connections WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some(Some(existing)) = stored {
                        if !same_org(&existing, new_org) {
                            return Err(StoreError::OrgMismatch { existing });
                        }
                    }
                }
                let (id, created) = match target {
                    Some(id) => {
                        sqlx::query(
                            "UPDATE connections SET provider = $1, connection_config = $2, \
                             metadata = COALESCE($3, metadata), tags = COALESCE($4, tags), \
                             end_user = COALESCE($5, end_user), \
                             end_user_id = COALESCE($6, end_user_id), credentials = $7, \
                             expires_at = $8, sf_org_id = COALESCE($9, sf_org_id), \
                             sf_user_id = COALESCE($10, sf_user_id), status = 'active', \
                             errors = '[]', refresh_fence = refresh_fence + 1, \
                             refresh_lease_owner = NULL, refresh_lease_until = NULL, \
                             webhook_url_override = COALESCE($13, webhook_url_override), \
                             updated_at = $11 WHERE id = $12",
                        )
                        .bind(new.provider.as_str())
                        .bind(json_text(&new.connection_config))
                        .bind(json_text_opt(new.metadata.as_ref()))
                        .bind((!new.tags.is_null()).then(|| json_text(&new.tags)))
                        .bind(json_text_opt(new.end_user.as_ref()))
                        .bind(new.end_user_id.as_deref())
                        .bind(seal(id).map_err(StoreError::Seal)?)
                        .bind(new.expires_at)
                        .bind(new.sf_org_id.as_deref())
                        .bind(new.sf_user_id.as_deref())
                        .bind(now)
                        .bind(id)
                        .bind(new.webhook_url_override.as_deref())
                        .execute(&mut *tx)
                        .await?;
                        (id, false)
                    }
                    None => {
                        let id: i64 = sqlx::query_scalar(
                            "INSERT INTO connections (environment_id, integration_id, \
                             connection_id, provider, connection_config, metadata, tags, \
                             end_user, end_user_id, credentials, expires_at, sf_org_id, \
                             sf_user_id, webhook_url_override, created_at, updated_at) VALUES \
                             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $14, \
                             $14) RETURNING id",
                        )
                        .bind(environment.0)
                        .bind(new.integration_id.0)
                        .bind(new.connection_id.as_str())
                        .bind(new.provider.as_str())
                        .bind(json_text(&new.connection_config))
                        .bind(json_text_opt(new.metadata.as_ref()))
                        .bind(if new.tags.is_null() { "{}".to_string() } else { json_text(&new.tags) })
                        .bind(json_text_opt(new.end_user.as_ref()))
                        .bind(new.end_user_id.as_deref())
                        .bind(&[] as &[u8])
                        .bind(new.expires_at)
                        .bind(new.sf_org_id.as_deref())
                        .bind(new.sf_user_id.as_deref())
                        .bind(now)
                        .bind(new.webhook_url_override.as_deref())
                        .fetch_one(&mut *tx)
                        .await?;
                        // The ciphertext is bound to the row, whose id the insert just gave.
                        sqlx::query("UPDATE connections SET credentials = $1 WHERE id = $2")
                            .bind(seal(id).map_err(StoreError::Seal)?)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        (id, true)
                    }
                };
                let row = sqlx::query(&format!("{CONNECTION_SELECT} WHERE c.id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let connection = connection_from_row(&row)?;
                if let Some(Value::Object(template)) = &new.auth_webhook {
                    let mut payload = template.clone();
                    payload.insert("connectionId".into(), Value::String(connection.connection_id.clone()));
                    payload.insert(
                        "operation".into(),
                        Value::String(if created { "creation" } else { "override" }.into()),
                    );
                    sqlx::query(
                        "INSERT INTO webhook_deliveries (environment_id, payload, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $3)",
                    )
                    .bind(environment.0)
                    .bind(Value::Object(payload).to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok((connection, created))
            }
        }

        #[async_trait]
        impl WebhookStore for $store {
            async fn enqueue_webhook(&self, environment: EnvironmentId, payload: &Value, now: i64) -> Result<WebhookDeliveryId, StoreError> {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO webhook_deliveries (environment_id, payload, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $3) RETURNING id",
                )
                .bind(environment.0)
                .bind(payload.to_string())
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                Ok(WebhookDeliveryId(id))
            }

            async fn claim_webhook(&self, now: i64, lease_ms: i64) -> Result<Option<WebhookDelivery>, StoreError> {
                // One statement: pick the oldest due row and lease it; the outer condition is
                // re-checked on the row itself, so two claimers never hold the same delivery.
                let row = sqlx::query(
                    "UPDATE webhook_deliveries SET lease_until = $1, attempts = attempts + 1 \
                     WHERE id = (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
                     AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
                     ORDER BY next_attempt_at, id LIMIT 1) \
                     AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $2) \
                     RETURNING id, environment_id, payload, status, attempts, next_attempt_at, \
                     last_error, last_status, created_at",
                )
                .bind(now + lease_ms)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(delivery_from_row).transpose()
            }

            async fn finish_webhook(&self, id: WebhookDeliveryId, outcome: &DeliveryOutcome, now: i64) -> Result<(), StoreError> {
                let (status, next, error, http): (&str, Option<i64>, Option<&str>, Option<i64>) = match outcome {
                    DeliveryOutcome::Delivered { status } => ("delivered", None, None, Some(*status)),
                    DeliveryOutcome::Retry { next_attempt_at, error, status } => ("pending", Some(*next_attempt_at), Some(error.as_str()), *status),
                    DeliveryOutcome::Failed { error, status } => ("failed", None, Some(error.as_str()), *status),
                    DeliveryOutcome::Skipped => ("skipped", None, None, None),
                };
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, next_attempt_at = COALESCE($2, next_attempt_at), \
                     last_error = $3, last_status = $4, lease_until = NULL, \
                     finished_at = CASE WHEN $1 = 'pending' THEN NULL ELSE $5 END WHERE id = $6",
                )
                .bind(status)
                .bind(next)
                .bind(error)
                .bind(http)
                .bind(now)
                .bind(id.0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_webhooks(&self, environment: EnvironmentId, limit: u32) -> Result<Vec<WebhookDelivery>, StoreError> {
                sqlx::query(
                    "SELECT id, environment_id, payload, status, attempts, next_attempt_at, last_error, \
                     last_status, created_at FROM webhook_deliveries WHERE environment_id = $1 \
                     ORDER BY id DESC LIMIT $2",
                )
                .bind(environment.0)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(delivery_from_row)
                .collect()
            }
        }

        #[async_trait]
        impl MetaStore for $store {
            async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl EnvironmentStore for $store {
            async fn ensure_environment(
                &self,
                name: &str,
                new_secret_key_hash: &str,
                new_signing_key: &str,
                now: i64,
            ) -> Result<Environment, StoreError> {
                // Insert-or-ignore then read: concurrent callers converge on the first row.
                sqlx::query(
                    "INSERT INTO environments (name, secret_key, webhook_signing_key, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(new_secret_key_hash)
                .bind(new_signing_key)
                .bind(now)
                .execute(&self.pool)
                .await?;
                let row = sqlx::query(&format!(
                    "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE name = $1"
                ))
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
                environment_from_row(&row)
            }

            async fn list_environments(&self) -> Result<Vec<Environment>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY id"
                ))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(environment_from_row)
                .collect()
            }

            async fn environment_by_secret_key(
                &self,
                secret_key_hash: &str,
            ) -> Result<Option<Environment>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE secret_key = $1"
                ))
                .bind(secret_key_hash)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(environment_from_row)
                .transpose()
            }

            async fn seal_secret_key(
                &self,
                environment: EnvironmentId,
                current: &str,
                secret_key_hash: &str,
                sealed: &[u8],
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE environments SET secret_key = $1, secret_key_sealed = $2 \
                     WHERE id = $3 AND secret_key = $4",
                )
                .bind(secret_key_hash)
                .bind(sealed)
                .bind(environment.0)
                .bind(current)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_allowed_origins(
                &self,
                environment: EnvironmentId,
                origins: &[String],
            ) -> Result<bool, StoreError> {
                let text = (!origins.is_empty())
                    .then(|| serde_json::Value::from(origins.to_vec()).to_string());
                let done = sqlx::query("UPDATE environments SET allowed_origins = $1 WHERE id = $2")
                    .bind(text)
                    .bind(environment.0)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_webhook_url(
                &self,
                environment: EnvironmentId,
                webhook_url: Option<&str>,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE environments SET webhook_url = $1 WHERE id = $2")
                    .bind(webhook_url)
                    .bind(environment.0)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl IntegrationStore for $store {
            async fn create_integration(
                &self,
                environment: EnvironmentId,
                integration: &NewIntegration,
                client_secret: Option<SealFor<'_>>,
                now: i64,
            ) -> Result<Integration, StoreError> {
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                let row = sqlx::query(&format!(
                    "INSERT INTO integrations (environment_id, unique_key, provider, \
                     display_name, client_id, scopes, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {INTEGRATION_COLUMNS}"
                ))
                .bind(environment.0)
                .bind(integration.unique_key.as_str())
                .bind(integration.provider.as_str())
                .bind(integration.display_name.as_str())
                .bind(integration.client_id.as_deref())
                .bind(integration.scopes.as_deref())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|error| conflict_or(error, "integration", &integration.unique_key))?;
                let mut created = integration_from_row(&row)?;
                if let Some(seal) = client_secret {
                    let sealed = seal(created.id.0).map_err(StoreError::Seal)?;
                    sqlx::query("UPDATE integrations SET client_secret = $1 WHERE id = $2")
                        .bind(sealed.as_slice())
                        .bind(created.id.0)
                        .execute(&mut *tx)
                        .await?;
                    created.client_secret = Some(sealed);
                }
                tx.commit().await?;
                Ok(created)
            }

            async fn get_integration(
                &self,
                environment: EnvironmentId,
                unique_key: &str,
            ) -> Result<Option<Integration>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {INTEGRATION_COLUMNS} FROM integrations \
                     WHERE environment_id = $1 AND unique_key = $2"
                ))
                .bind(environment.0)
                .bind(unique_key)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(integration_from_row)
                .transpose()
            }

            async fn list_integrations(
                &self,
                environment: EnvironmentId,
            ) -> Result<Vec<Integration>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {INTEGRATION_COLUMNS} FROM integrations \
                     WHERE environment_id = $1 ORDER BY created_at, id"
                ))
                .bind(environment.0)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(integration_from_row)
                .collect()
            }

            async fn update_integration(
                &self,
                environment: EnvironmentId,
                unique_key: &str,
                patch: &IntegrationPatch,
                now: i64,
            ) -> Result<Integration, StoreError> {
                let mut query = QueryBuilder::<$db>::new("UPDATE integrations SET updated_at = ");
                query.push_bind(now);
                if let Some(key) = &patch.unique_key {
                    query.push(", unique_key = ").push_bind(key.as_str());
                }
                if let Some(provider) = &patch.provider {
                    query.push(", provider = ").push_bind(provider.as_str());
                }
                if let Some(name) = &patch.display_name {
                    query.push(", display_name = ").push_bind(name.as_str());
                }
                if let Some(client_id) = &patch.client_id {
                    query.push(", client_id = ").push_bind(client_id.as_deref());
                }
                if let Some(secret) = &patch.client_secret {
                    query.push(", client_secret = ").push_bind(secret.as_deref());
                }
                if let Some(scopes) = &patch.scopes {
                    query.push(", scopes = ").push_bind(scopes.as_deref());
                }
                query.push(" WHERE environment_id = ").push_bind(environment.0);
                query.push(" AND unique_key = ").push_bind(unique_key);
                query.push(format!(" RETURNING {INTEGRATION_COLUMNS}"));
                let renamed_to = patch.unique_key.as_deref().unwrap_or(unique_key);
                let row = query
                    .build()
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|error| conflict_or(error, "integration", renamed_to))?
                    .ok_or_else(|| StoreError::not_found("integration", unique_key))?;
                integration_from_row(&row)
            }

            async fn delete_integration(
                &self,
                environment: EnvironmentId,
                unique_key: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM integrations WHERE environment_id = $1 AND unique_key = $2",
                )
                .bind(environment.0)
                .bind(unique_key)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl ConnectSessionStore for $store {
            async fn create_connect_session(
                &self,
                environment: EnvironmentId,
                session: &NewConnectSession,
                now: i64,
            ) -> Result<ConnectSession, StoreError> {
                let allowed = session
                    .allowed_integrations
                    .as_ref()
                    .map(|keys| json_text(&Value::from(keys.clone())));
                // The reconnect target must be a connection of this environment.
                let row = sqlx::query(&format!(
                    "INSERT INTO connect_sessions (environment_id, token_hash, end_user, \
                     organization, allowed_integrations, integrations_config_defaults, tags, \
                     reconnect_connection_id, expires_at, created_at, webhook_url_override) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
                     WHERE $8 IS NULL OR EXISTS \
                     (SELECT 1 FROM connections WHERE id = $8 AND environment_id = $1) \
                     RETURNING {SESSION_COLUMNS}"
                ))
                .bind(environment.0)
                .bind(session.token_hash.as_str())
                .bind(json_text_opt(session.end_user.as_ref()))
                .bind(json_text_opt(session.organization.as_ref()))
                .bind(allowed)
                .bind(json_text_opt(session.integrations_config_defaults.as_ref()))
                .bind(json_text(&session.tags))
                .bind(session.reconnect_connection_id.map(|id| id.0))
                .bind(session.expires_at)
                .bind(now)
                .bind(session.webhook_url_override.as_deref())
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| conflict_or(error, "connect session", "token"))?;
                match row {
                    Some(row) => session_from_row(&row),
                    None => Err(StoreError::not_found(
                        "connection",
                        session
                            .reconnect_connection_id
                            .map(|id| id.to_string())
                            .unwrap_or_default(),
                    )),
                }
            }

            async fn connect_session_by_token_hash(
                &self,
                token_hash: &str,
                now: i64,
            ) -> Result<Option<ConnectSession>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {SESSION_COLUMNS} FROM connect_sessions \
                     WHERE token_hash = $1 AND expires_at > $2"
                ))
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(session_from_row)
                .transpose()
            }

            async fn delete_connect_session(
                &self,
                environment: EnvironmentId,
                id: ConnectSessionId,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM connect_sessions WHERE id = $1 AND environment_id = $2",
                )
                .bind(id.0)
                .bind(environment.0)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn purge_expired_connect_sessions(&self, now: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM connect_sessions WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait]
        impl OAuthStateStore for $store {
            async fn create_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "INSERT INTO oauth_states (state, environment_id, integration_id, \
                     connect_session_id, connection_id, pkce_verifier, ws_client_id, \
                     connection_config, expires_at, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
                     WHERE EXISTS (SELECT 1 FROM integrations WHERE id = $3 AND environment_id = $2) \
                     AND ($4 IS NULL OR EXISTS \
                     (SELECT 1 FROM connect_sessions WHERE id = $4 AND environment_id = $2))",
                )
                .bind(state.state.as_str())
                .bind(state.environment_id.0)
                .bind(state.integration_id.0)
                .bind(state.connect_session_id.map(|id| id.0))
                .bind(state.connection_id.as_deref())
                .bind(state.pkce_verifier.as_slice())
                .bind(state.ws_client_id.as_deref())
                .bind(json_text(&state.connection_config))
                .bind(state.expires_at)
                .bind(state.created_at)
                .execute(&self.pool)
                .await
                .map_err(|error| conflict_or(error, "oauth state", &state.state))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::not_found(
                        "integration",
                        state.integration_id.to_string(),
                    ));
                }
                Ok(())
            }

            async fn take_oauth_state(
                &self,
                state: &str,
                now: i64,
            ) -> Result<Option<OAuthState>, StoreError> {
                // One DELETE … RETURNING: the row lock (Postgres) or write lock (SQLite) lets
                // exactly one of several concurrent takes see the row.
                sqlx::query(&format!(
                    "DELETE FROM oauth_states WHERE state = $1 AND expires_at > $2 \
                     RETURNING {OAUTH_STATE_COLUMNS}"
                ))
                .bind(state)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(oauth_state_from_row)
                .transpose()
            }

            async fn purge_expired_oauth_states(&self, now: i64) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait]
        impl ConnectionStore for $store {
            async fn upsert_connection(
                &self,
                environment: EnvironmentId,
                connection: &NewConnection,
                seal: SealFor<'_>,
                now: i64,
            ) -> Result<(Connection, bool), StoreError> {
                match self.upsert_once(environment, connection, seal, now).await {
                    // A concurrent insert of the same connection won the race; the second
                    // attempt finds its row and updates it.
                    Err(StoreError::Database(error)) if is_unique_violation(&error) => self
                        .upsert_once(environment, connection, seal, now)
                        .await
                        .map_err(|error| match error {
                            StoreError::Database(error) => {
                                conflict_or(error, "connection", &connection.connection_id)
                            }
                            other => other,
                        }),
                    other => other,
                }
            }

            async fn get_connection(
                &self,
                environment: EnvironmentId,
                integration_key: &str,
                connection_id: &str,
            ) -> Result<Option<Connection>, StoreError> {
                sqlx::query(&format!(
                    "{CONNECTION_SELECT} WHERE c.environment_id = $1 AND i.unique_key = $2 \
                     AND c.connection_id = $3"
                ))
                .bind(environment.0)
                .bind(integration_key)
                .bind(connection_id)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(connection_from_row)
                .transpose()
            }

            async fn connections_with_id(
                &self,
                environment: EnvironmentId,
                connection_id: &str,
            ) -> Result<Vec<Connection>, StoreError> {
                sqlx::query(&format!(
                    "{CONNECTION_SELECT} WHERE c.environment_id = $1 AND c.connection_id = $2 \
                     ORDER BY c.created_at DESC, c.id DESC"
                ))
                .bind(environment.0)
                .bind(connection_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(connection_from_row)
                .collect()
            }

            async fn connection_by_row_id(
                &self,
                environment: EnvironmentId,
                id: ConnectionRowId,
            ) -> Result<Option<Connection>, StoreError> {
                sqlx::query(&format!(
                    "{CONNECTION_SELECT} WHERE c.environment_id = $1 AND c.id = $2"
                ))
                .bind(environment.0)
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(connection_from_row)
                .transpose()
            }

            async fn list_connections(
                &self,
                environment: EnvironmentId,
                filter: &ConnectionFilter,
            ) -> Result<Vec<Connection>, StoreError> {
                let mut query = QueryBuilder::<$db>::new(CONNECTION_SELECT);
                query.push(" WHERE c.environment_id = ").push_bind(environment.0);
                if let Some(connection_id) = &filter.connection_id {
                    query.push(" AND c.connection_id = ").push_bind(connection_id.as_str());
                }
                if let Some(search) = &filter.search {
                    let pattern = contains_pattern(search);
                    query.push(" AND (LOWER(c.connection_id) LIKE ");
                    query.push_bind(pattern.clone()).push(" ESCAPE '\\'");
                    for field in ["display_name", "email"] {
                        query.push(" OR LOWER(");
                        query.push(Self::json_field("c.end_user", &[field]));
                        query.push(") LIKE ").push_bind(pattern.clone()).push(" ESCAPE '\\'");
                    }
                    query.push(")");
                }
                if let Some(end_user_id) = &filter.end_user_id {
                    query.push(" AND c.end_user_id = ").push_bind(end_user_id.as_str());
                }
                if let Some(organization) = &filter.end_user_organization_id {
                    query.push(" AND ");
                    query.push(Self::json_field("c.end_user", &["organization", "id"]));
                    query.push(" = ").push_bind(organization.as_str());
                }
                if !filter.integration_keys.is_empty() {
                    query.push(" AND i.unique_key IN (");
                    let mut keys = query.separated(", ");
                    for key in &filter.integration_keys {
                        keys.push_bind(key.as_str());
                    }
                    query.push(")");
                }
                for (key, value) in &filter.tags {
                    query.push(" AND EXISTS (SELECT 1 FROM ");
                    query.push(Self::TAGS_EACH);
                    query.push(" t WHERE t.key = ").push_bind(key.as_str());
                    query.push(" AND t.value = ").push_bind(value.as_str()).push(")");
                }
                let limit = i64::from(filter.limit.unwrap_or(DEFAULT_LIST_LIMIT));
                let offset = limit * i64::from(filter.page.unwrap_or(0));
                query.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ");
                query.push_bind(limit).push(" OFFSET ").push_bind(offset);
                query
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(connection_from_row)
                    .collect()
            }

            async fn delete_connection(
                &self,
                environment: EnvironmentId,
                integration_key: &str,
                connection_id: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(&format!(
                    "DELETE FROM connections WHERE environment_id = $1 \
                     AND integration_id = {INTEGRATION_BY_KEY} AND connection_id = $3"
                ))
                .bind(environment.0)
                .bind(integration_key)
                .bind(connection_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_metadata(
                &self,
                environment: EnvironmentId,
                integration_key: &str,
                connection_ids: &[String],
                metadata: &Map<String, Value>,
                mode: MetadataMode,
                now: i64,
            ) -> Result<(), StoreError> {
                if connection_ids.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                // Touching the rows first locks them (Postgres) so a concurrent merge waits
                // instead of losing an update, and tells us which ids exist.
                let mut touch = QueryBuilder::<$db>::new("UPDATE connections SET updated_at = ");
                touch.push_bind(now);
                touch.push(" WHERE environment_id = ").push_bind(environment.0);
                touch.push(
                    " AND integration_id = (SELECT id FROM integrations WHERE environment_id = ",
                );
                touch.push_bind(environment.0);
                touch.push(" AND unique_key = ").push_bind(integration_key);
                touch.push(") AND connection_id IN (");
                let mut ids = touch.separated(", ");
                for id in connection_ids {
                    ids.push_bind(id.as_str());
                }
                touch.push(") RETURNING id, connection_id, metadata");
                let rows = touch.build().fetch_all(&mut *tx).await?;
                let mut current = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id: i64 = row.try_get("id")?;
                    let connection_id: String = row.try_get("connection_id")?;
                    let metadata = parse_json_opt(row.try_get("metadata")?, "metadata")?;
                    current.push((id, connection_id, metadata));
                }
                let mut missing: Vec<String> = Vec::new();
                for id in connection_ids {
                    if !current.iter().any(|(_, found, _)| found == id) && !missing.contains(id) {
                        missing.push(id.clone());
                    }
                }
                if !missing.is_empty() {
                    return Err(StoreError::NotFound {
                        entity: "connection",
                        keys: missing,
                    });
                }
                for (id, _, old) in &current {
                    let updated = apply_metadata(old.as_ref(), metadata, mode);
                    sqlx::query("UPDATE connections SET metadata = $1 WHERE id = $2")
                        .bind(json_text(&updated))
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn patch_connection(
                &self,
                environment: EnvironmentId,
                integration_key: &str,
                connection_id: &str,
                patch: &ConnectionPatch,
                now: i64,
            ) -> Result<Option<Connection>, StoreError> {
                let mut query = QueryBuilder::<$db>::new("UPDATE connections SET updated_at = ");
                query.push_bind(now);
                if let Some(tags) = &patch.tags {
                    query.push(", tags = ").push_bind(json_text(tags));
                }
                if let Some(end_user) = &patch.end_user {
                    query.push(", end_user = ").push_bind(json_text_opt(end_user.as_ref()));
                }
                if let Some(end_user_id) = &patch.end_user_id {
                    query.push(", end_user_id = ").push_bind(end_user_id.as_deref());
                }
                if let Some(config) = &patch.connection_config {
                    query.push(", connection_config = ").push_bind(json_text(config));
                }
                if let Some(url) = &patch.webhook_url_override {
                    query.push(", webhook_url_override = ").push_bind(url.as_deref());
                }
                query.push(" WHERE environment_id = ").push_bind(environment.0);
                query.push(
                    " AND integration_id = (SELECT id FROM integrations WHERE environment_id = ",
                );
                query.push_bind(environment.0);
                query.push(" AND unique_key = ").push_bind(integration_key);
                query.push(") AND connection_id = ").push_bind(connection_id);
                query.push(" RETURNING id");
                let id: Option<i64> = query
                    .build_query_scalar()
                    .fetch_optional(&self.pool)
                    .await?;
                match id {
                    Some(id) => self.connection_by_row_id(environment, ConnectionRowId(id)).await,
                    None => Ok(None),
                }
            }

            async fn update_credentials(
                &self,
                id: ConnectionRowId,
                credentials: &[u8],
                expires_at: Option<i64>,
                connection_config: Option<&Value>,
                expected_fence: Option<i64>,
                now: i64,
            ) -> Result<bool, StoreError> {
                let mut query = QueryBuilder::<$db>::new("UPDATE connections SET credentials = ");
                query.push_bind(credentials);
                query.push(", expires_at = ").push_bind(expires_at);
                query.push(", connection_config = COALESCE(");
                query.push_bind(json_text_opt(connection_config));
                query.push(", connection_config), updated_at = ").push_bind(now);
                query.push(" WHERE id = ").push_bind(id.0);
                if let Some(fence) = expected_fence {
                    query.push(" AND refresh_fence = ").push_bind(fence);
                }
                let done = query.build().execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_connection_status(
                &self,
                environment: EnvironmentId,
                id: ConnectionRowId,
                status: ConnectionStatus,
                errors: &[Value],
                now: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE connections SET status = $1, errors = $2, updated_at = $3 \
                     WHERE id = $4 AND environment_id = $5",
                )
                .bind(status.as_str())
                .bind(json_text(&Value::from(errors.to_vec())))
                .bind(now)
                .bind(id.0)
                .bind(environment.0)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn touch_last_fetched(
                &self,
                environment: EnvironmentId,
                id: ConnectionRowId,
                now: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE connections SET last_fetched_at = $1 \
                     WHERE id = $2 AND environment_id = $3",
                )
                .bind(now)
                .bind(id.0)
                .bind(environment.0)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn acquire_refresh_lease(
                &self,
                id: ConnectionRowId,
                owner: &str,
                now: i64,
                ttl_ms: i64,
            ) -> Result<Option<i64>, StoreError> {
                // One conditional UPDATE … RETURNING: atomic on both backends.
                Ok(sqlx::query_scalar(
                    "UPDATE connections SET refresh_fence = refresh_fence + 1, \
                     refresh_lease_owner = $1, refresh_lease_until = $2 \
                     WHERE id = $3 AND (refresh_lease_until IS NULL OR refresh_lease_until <= $4) \
                     RETURNING refresh_fence",
                )
                .bind(owner)
                .bind(now.saturating_add(ttl_ms))
                .bind(id.0)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn release_refresh_lease(
                &self,
                id: ConnectionRowId,
                owner: &str,
                fence: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE connections SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
                     WHERE id = $1 AND refresh_lease_owner = $2 AND refresh_fence = $3",
                )
                .bind(id.0)
                .bind(owner)
                .bind(fence)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl CiphertextStore for $store {
            async fn list_ciphertexts(
                &self,
            ) -> Result<Vec<(CipherRef, EnvironmentId, Vec<u8>)>, StoreError> {
                let mut all = Vec::new();
                let rows = sqlx::query(
                    "SELECT id, environment_id, client_secret FROM integrations \
                     WHERE client_secret IS NOT NULL ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    all.push((
                        CipherRef::IntegrationClientSecret(IntegrationId(row.try_get("id")?)),
                        EnvironmentId(row.try_get("environment_id")?),
                        row.try_get("client_secret")?,
                    ));
                }
                let rows = sqlx::query(
                    "SELECT state, environment_id, pkce_verifier FROM oauth_states ORDER BY state",
                )
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    all.push((
                        CipherRef::OAuthStatePkceVerifier(row.try_get("state")?),
                        EnvironmentId(row.try_get("environment_id")?),
                        row.try_get("pkce_verifier")?,
                    ));
                }
                let rows = sqlx::query(
                    "SELECT id, environment_id, credentials FROM connections ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    all.push((
                        CipherRef::ConnectionCredentials(ConnectionRowId(row.try_get("id")?)),
                        EnvironmentId(row.try_get("environment_id")?),
                        row.try_get("credentials")?,
                    ));
                }
                let rows = sqlx::query(
                    "SELECT id, secret_key_sealed FROM environments \
                     WHERE secret_key_sealed IS NOT NULL ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await?;
                for row in &rows {
                    let id = EnvironmentId(row.try_get("id")?);
                    all.push((
                        CipherRef::EnvironmentSecretKey(id),
                        id,
                        row.try_get("secret_key_sealed")?,
                    ));
                }
                Ok(all)
            }

            async fn replace_ciphertext(
                &self,
                target: &CipherRef,
                old: &[u8],
                new: &[u8],
            ) -> Result<bool, StoreError> {
                let query = match target {
                    CipherRef::IntegrationClientSecret(id) => sqlx::query(
                        "UPDATE integrations SET client_secret = $1 \
                         WHERE id = $2 AND client_secret = $3",
                    )
                    .bind(new)
                    .bind(id.0),
                    CipherRef::OAuthStatePkceVerifier(state) => sqlx::query(
                        "UPDATE oauth_states SET pkce_verifier = $1 \
                         WHERE state = $2 AND pkce_verifier = $3",
                    )
                    .bind(new)
                    .bind(state.as_str()),
                    CipherRef::ConnectionCredentials(id) => sqlx::query(
                        "UPDATE connections SET credentials = $1 \
                         WHERE id = $2 AND credentials = $3",
                    )
                    .bind(new)
                    .bind(id.0),
                    CipherRef::EnvironmentSecretKey(id) => sqlx::query(
                        "UPDATE environments SET secret_key_sealed = $1 \
                         WHERE id = $2 AND secret_key_sealed = $3",
                    )
                    .bind(new)
                    .bind(id.0),
                };
                let done = query.bind(old).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn migrate(&self) -> Result<(), StoreError> {
                Self::MIGRATOR.run(&self.pool).await?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                $backend
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

pub(crate) use impl_store;
