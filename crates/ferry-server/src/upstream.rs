//! Calls to a connection's org: the cache of resolved targets (decrypted credentials and
//! `instance_url`) the proxy's hot path reads, and, on Ferry's own behalf (syncs, actions), the
//! connection's token and `instance_url`, the per-org concurrency cap and usage record, one shared
//! refresh-and-retry on `401 INVALID_SESSION_ID`, and the operation log, behind
//! `ferry_salesforce`'s [`Transport`] port.

use crate::connections::Credentials;
use crate::state::AppState;
use crate::usage::OrgKey;
use ferry_salesforce::transport::{ApiError, ApiRequest, ApiResponse, Transport};
use ferry_store::{Connection, EnvironmentId, Integration, NewOperation, OperationKind};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// A connection resolved for calling: its integration, the connection as read, its decrypted
/// credentials and its checked `instance_url`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The integration.
    pub integration: Integration,
    /// The connection as last read.
    pub connection: Connection,
    /// Its decrypted credentials.
    pub credentials: Credentials,
    /// `instance_url` (checked against the allowed hosts) parsed once: a call's URL is this with
    /// the path and query set, which spares parsing the scheme and host (IDNA for real hosts)
    /// on every call.
    pub base_url: reqwest::Url,
    /// The org's shared-state key, when Salesforce confirmed the org.
    pub org_id: Option<OrgKey>,
    /// When this was resolved (Ferry clock, epoch ms).
    pub resolved_at: i64,
}

impl Target {
    /// Resolves a target from a connection and its credentials; `None` when the `instance_url`
    /// is not a host Ferry sends tokens to.
    pub fn new(
        state: &AppState,
        integration: Integration,
        connection: Connection,
        credentials: Credentials,
    ) -> Option<Target> {
        let instance_url = instance_url_of(&connection);
        if !state
            .config
            .hosts
            .upstream_allowed(&integration.provider, &instance_url)
        {
            return None;
        }
        let base_url = reqwest::Url::parse(&instance_url).ok()?;
        Some(Target {
            base_url,
            org_id: org_of(&connection),
            integration,
            connection,
            credentials,
            resolved_at: state.clock.now_ms(),
        })
    }

    /// The upstream URL of `path_and_query` (`/services/…?q=…`): the same URL as parsing
    /// `instance_url` followed by it.
    pub fn url_for(&self, path_and_query: &str) -> reqwest::Url {
        join_url(&self.base_url, path_and_query)
    }
}

/// `base` followed by `path_and_query`, as parsing the two written one after the other gives
/// (the path appended to the base's, dot segments resolved, the same characters escaped).
fn join_url(base: &reqwest::Url, path_and_query: &str) -> reqwest::Url {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    if prefix.is_empty() {
        url.set_path(path);
    } else {
        url.set_path(&format!("{prefix}{path}"));
    }
    url.set_query(query);
    url
}

type TargetKey = (EnvironmentId, String, String);

/// Recently resolved targets by (environment, integration key, connection id), so a proxied call
/// costs no store read and no decryption. An entry is used for at most the configured TTL (so
/// other processes' changes are seen) and only while its token is fresh; a refresh replaces it and
/// a deletion removes it.
#[derive(Debug, Default)]
pub struct TargetCache {
    entries: parking_lot::RwLock<HashMap<TargetKey, Arc<Target>>>,
}

/// Entries kept at most; past this the cache starts over (a crude but bounded policy).
const TARGET_CACHE_MAX: usize = 10_000;

impl TargetCache {
    /// A cached target still within `ttl_ms` and whose token is fresh at `now`.
    pub fn get(
        &self,
        state: &AppState,
        env: EnvironmentId,
        key: &str,
        connection_id: &str,
    ) -> Option<Arc<Target>> {
        let now = state.clock.now_ms();
        let ttl = state.config.upstream.target_cache_ttl_ms;
        let entries = self.entries.read();
        let target = entries.get(&(env, key.to_string(), connection_id.to_string()))?;
        (now - target.resolved_at < ttl
            && now >= target.resolved_at
            && crate::credentials::is_fresh(&target.credentials, &state.config.token_policy, now))
        .then(|| target.clone())
    }

    /// Remembers a resolved target.
    pub fn put(&self, target: Target) -> Arc<Target> {
        let target = Arc::new(target);
        let key = (
            target.connection.environment_id,
            target.integration.unique_key.clone(),
            target.connection.connection_id.clone(),
        );
        let mut entries = self.entries.write();
        if entries.len() >= TARGET_CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, target.clone());
        target
    }

    /// Forgets a connection (deleted, reconnected, refreshed elsewhere).
    pub fn invalidate(&self, env: EnvironmentId, key: &str, connection_id: &str) {
        self.entries
            .write()
            .remove(&(env, key.to_string(), connection_id.to_string()));
    }
}

/// A [`Transport`] to one connection's org, refreshing its token through the credential service.
pub struct ConnectionTransport {
    state: Arc<AppState>,
    integration: Integration,
    current: Mutex<(Connection, Credentials)>,
    org_id: Option<OrgKey>,
    log_as: Option<OperationKind>,
}

impl std::fmt::Debug for ConnectionTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTransport")
            .field("integration", &self.integration.unique_key)
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

/// The shared-state key of the org a connection belongs to: only the org Salesforce confirmed
/// (`sf_org_id`), never the `connection_config.org_id` a caller may have written.
pub fn org_of(connection: &Connection) -> Option<OrgKey> {
    connection
        .sf_org_id
        .as_deref()
        .map(|org| OrgKey::new(connection.environment_id, org))
}

impl ConnectionTransport {
    /// A transport for `connection`, with a usable token (refreshed first if it is due).
    pub async fn open(
        state: Arc<AppState>,
        integration: Integration,
        connection: Connection,
    ) -> Result<Self, ApiError> {
        let (connection, credentials) = state
            .credentials
            .get(&state, &integration, connection, false)
            .await
            .map_err(|e| ApiError::Connection(e.into_api(None).to_string()))?;
        let org_id = org_of(&connection);
        if let Some(org) = &org_id {
            // Take in what other processes learned about the org's budget.
            if let Err(e) = state.org_limits.load(state.store.as_ref(), org).await {
                tracing::warn!(error = %e, "the org's stored usage could not be read");
            }
        }
        Ok(ConnectionTransport {
            state,
            integration,
            current: Mutex::new((connection, credentials)),
            org_id,
            log_as: None,
        })
    }

    /// Writes every call of this transport to the operation log as `kind` (sync or action).
    pub fn log_as(mut self, kind: OperationKind) -> Self {
        self.log_as = Some(kind);
        self
    }

    /// The shared-state key of the org this transport talks to.
    pub fn org_key(&self) -> Option<&OrgKey> {
        self.org_id.as_ref()
    }

    /// The connection as last read (its `instance_url` may have changed on a refresh).
    pub async fn connection(&self) -> Connection {
        self.current.lock().await.0.clone()
    }

    async fn send_once(
        &self,
        request: &ApiRequest,
        instance_url: &str,
        token: &str,
    ) -> Result<ApiResponse, ApiError> {
        if !self
            .state
            .config
            .hosts
            .upstream_allowed(&self.integration.provider, instance_url)
        {
            return Err(ApiError::Connection(
                "the connection's instance_url is not a host Ferry sends tokens to".into(),
            ));
        }
        let limits = &self.state.org_limits;
        if let Some(org) = &self.org_id {
            if limits.get(org).budget_spent {
                return Err(ApiError::BudgetSpent);
            }
        }
        let mut req = self
            .state
            .http
            .request(
                request.method.clone(),
                format!("{instance_url}{}", request.path),
            )
            .bearer_auth(token);
        for (name, value) in &request.headers {
            req = req.header(name, value);
        }
        if let Some(body) = &request.body {
            req = req.body(body.clone());
        }
        let _permit = match &self.org_id {
            Some(org) => limits.acquire(org).await,
            None => None,
        };
        let timeout = std::time::Duration::from_millis(self.state.config.upstream.timeout_ms);
        let started = std::time::Instant::now();
        let started_at = self.state.clock.now_ms();
        let result = match tokio::time::timeout(timeout, async {
            let response = req.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        })
        .await
        {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) if e.is_timeout() => Err(("upstream_timeout", e.without_url().to_string())),
            Ok(Err(e)) => Err(("upstream_unreachable", e.without_url().to_string())),
            Err(_) => Err((
                "upstream_timeout",
                format!("no answer within {} ms", timeout.as_millis()),
            )),
        };
        self.log(
            request,
            started,
            started_at,
            result.as_ref().ok().map(|r| (r.0, r.2.len())),
            result.as_ref().err().map(|e| e.0),
        )
        .await;
        let (status, headers, body) = result.map_err(|(_, e)| ApiError::Unreachable(e))?;
        if let Some(org) = &self.org_id {
            let now = self.state.clock.now_ms();
            if let Some(info) = headers
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
            {
                limits.record_limit_info(org, info, now);
            }
            if (200..300).contains(&status) {
                limits.record_success(org, now);
            } else if status == 403
                && String::from_utf8_lossy(&body).contains("REQUEST_LIMIT_EXCEEDED")
                && String::from_utf8_lossy(&body).contains("TotalRequests")
            {
                limits.mark_budget_spent(org, now);
            }
        }
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }
}

impl ConnectionTransport {
    async fn log(
        &self,
        request: &ApiRequest,
        started: std::time::Instant,
        started_at: i64,
        answer: Option<(u16, usize)>,
        error_code: Option<&'static str>,
    ) {
        let Some(kind) = self.log_as else {
            return;
        };
        let connection = &self.current.lock().await.0;
        self.state.oplog.record(NewOperation {
            environment_id: connection.environment_id,
            kind,
            connection_id: Some(connection.connection_id.clone()),
            integration_key: Some(self.integration.unique_key.clone()),
            org_id: self.org_id.as_ref().map(|o| o.org_id().to_string()),
            method: request.method.to_string(),
            path: path_without_query(&request.path).to_string(),
            status: answer.map(|a| i64::from(a.0)),
            duration_ms: started.elapsed().as_millis() as i64,
            retries: 0,
            bytes_in: request.body.as_ref().map_or(0, |b| b.len() as i64),
            bytes_out: answer.map_or(0, |a| a.1 as i64),
            error_code: error_code.map(str::to_string),
            started_at,
        });
    }
}

/// The path of a path-and-query: the query may hold SOQL literals, which the log never keeps.
pub fn path_without_query(path_and_query: &str) -> &str {
    path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p)
}

#[async_trait::async_trait]
impl Transport for ConnectionTransport {
    async fn send(&self, request: ApiRequest) -> Result<ApiResponse, ApiError> {
        let (instance_url, token) = {
            let current = self.current.lock().await;
            (instance_url_of(&current.0), current.1.access_token.clone())
        };
        let response = self.send_once(&request, &instance_url, &token).await?;
        if response.status != 401
            || !String::from_utf8_lossy(&response.body).contains("INVALID_SESSION_ID")
        {
            return Ok(response);
        }
        // One refresh, shared with every caller that saw the same token refused.
        let (instance_url, token) = {
            let mut current = self.current.lock().await;
            if current.1.access_token == token {
                let (connection, credentials) = self
                    .state
                    .credentials
                    .replace_rejected(&self.state, &self.integration, current.0.clone(), &token)
                    .await
                    .map_err(|e| ApiError::Connection(e.into_api(None).to_string()))?;
                *current = (connection, credentials);
            }
            (instance_url_of(&current.0), current.1.access_token.clone())
        };
        self.send_once(&request, &instance_url, &token).await
    }
}

/// A connection's `instance_url` without a trailing slash (empty when absent).
pub fn instance_url_of(connection: &Connection) -> String {
    connection
        .connection_config
        .get("instance_url")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::join_url;

    #[test]
    fn a_call_url_is_the_instance_url_and_the_path_as_parsed_together() {
        for base in ["https://acme.my.salesforce.com", "http://127.0.0.1:3004"] {
            let parsed = reqwest::Url::parse(base).expect("base");
            for rest in [
                "/services/data/v59.0/query?q=SELECT+Id,Name+FROM+Account+WHERE+Name+=+'a b'",
                "/services/data/v59.0/sobjects/Account/001xx000003DGb2AAG",
                "/a b/\"c\"/{d}",
                "/x/../y/./z",
                "/p%2Fq?a=1?b=2&c=%20",
                "/",
                "/search?q=",
            ] {
                let expected = reqwest::Url::parse(&format!("{base}{rest}")).expect("url");
                assert_eq!(join_url(&parsed, rest), expected, "{base}{rest}");
            }
        }
    }
}
