//! Placeholder for the oauth endpoints.

use super::Ctx;
use axum::Router;

/// The oauth routes.
pub fn routes() -> Router<Ctx> {
    Router::new()
}
