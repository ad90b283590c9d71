//! Authentication of API calls: `Authorization: Bearer <environment secret key>` resolves to exactly one environment; Nango's error codes for every way it can fail.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use ferry_store::Environment;
use std::sync::Arc;

/// The environment an authenticated request acts in. Every handler that touches tenant data
/// takes this, so nothing is reachable without it.
#[derive(Debug, Clone)]
pub struct Env(pub Environment);

fn is_uuid_v4(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 4) && s.len() == 36
}

impl FromRequestParts<Arc<AppState>> for Env {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing_auth_header",
                "Authentication failed. The request is missing the Authorization header.",
            ));
        };
        let value = value.to_str().unwrap_or_default();
        let Some(key) = value
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|k| !k.is_empty())
        else {
            return Err(ApiError::unauthorized(
                "malformed_auth_header",
                "Authentication failed. The Authorization header must be 'Bearer <secret key>'.",
            ));
        };
        if key.starts_with("nango_connect_session_") {
            return Err(ApiError::forbidden(
                "A connect session token cannot call this route; use the environment's secret key.",
            ));
        }
        if !is_uuid_v4(key) {
            return Err(ApiError::unauthorized(
                "invalid_secret_key_format",
                "Authentication failed. The secret key is not a UUID v4.",
            ));
        }
        match state.environment_by_key(key) {
            Some(env) => Ok(Env(env)),
            None => Err(ApiError::unauthorized(
                "unknown_account",
                "Authentication failed. The secret key does not match any environment.",
            )),
        }
    }
}
