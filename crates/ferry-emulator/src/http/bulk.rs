//! Placeholder for the bulk endpoints.

use super::Ctx;
use axum::Router;

/// The bulk routes.
pub fn routes() -> Router<Ctx> {
    Router::new()
}
