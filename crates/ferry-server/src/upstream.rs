//! Calls to a connection's org on Ferry's own behalf (syncs, actions): the connection's token and
//! `instance_url`, the per-org concurrency cap and usage record, and one shared refresh-and-retry
//! on `401 INVALID_SESSION_ID`, behind `ferry_salesforce`'s [`Transport`] port.

use crate::app::AppState;
use crate::connections::Credentials;
use ferry_salesforce::transport::{ApiError, ApiRequest, ApiResponse, Transport};
use ferry_store::{Connection, Integration};
use std::sync::Arc;
use tokio::sync::Mutex;

/// A [`Transport`] to one connection's org, refreshing its token through the credential service.
pub struct ConnectionTransport {
    state: Arc<AppState>,
    integration: Integration,
    current: Mutex<(Connection, Credentials)>,
    org_id: Option<String>,
}

impl std::fmt::Debug for ConnectionTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionTransport")
            .field("integration", &self.integration.unique_key)
            .field("org_id", &self.org_id)
            .finish_non_exhaustive()
    }
}

/// The Salesforce org a connection belongs to.
pub fn org_of(connection: &Connection) -> Option<String> {
    connection.sf_org_id.clone().or_else(|| {
        connection
            .connection_config
            .get("org_id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    })
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
        Ok(ConnectionTransport {
            state,
            integration,
            current: Mutex::new((connection, credentials)),
            org_id,
        })
    }

    /// The org this transport talks to.
    pub fn org_id(&self) -> Option<&str> {
        self.org_id.as_deref()
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
        if !self.state.config.hosts.upstream_allowed(instance_url) {
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
        let response = req
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| ApiError::Unreachable(e.without_url().to_string()))?;
        if let Some(org) = &self.org_id {
            if let Some(info) = headers
                .get("sforce-limit-info")
                .and_then(|v| v.to_str().ok())
            {
                limits.record_limit_info(org, info, self.state.clock.now_ms());
            }
            if (200..300).contains(&status) {
                limits.record_success(org);
            } else if status == 403
                && String::from_utf8_lossy(&body).contains("REQUEST_LIMIT_EXCEEDED")
                && String::from_utf8_lossy(&body).contains("TotalRequests")
            {
                limits.mark_budget_spent(org);
            }
        }
        Ok(ApiResponse {
            status,
            headers,
            body,
        })
    }
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

fn instance_url_of(connection: &Connection) -> String {
    connection
        .connection_config
        .get("instance_url")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}
