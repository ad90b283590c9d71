//! The seam between actions and the sync definitions / records store: which model an object
//! syncs into, how its fields map, and the read-after-write into the records store.

use crate::state::AppState;
use ferry_store::{ConnectionRowId, EnvironmentId, RecordAction, RecordWrite, StoreError};
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

/// Writes one record into the connection's records of `model` (same hash rule as a sync page);
/// returns the action taken, or `None` when unchanged.
pub async fn write_back(
    state: &AppState,
    env: EnvironmentId,
    connection: ConnectionRowId,
    model: &str,
    external_id: &str,
    payload: &Value,
    hash: &str,
) -> Result<Option<RecordAction>, StoreError> {
    state
        .store
        .write_back_record(
            env,
            connection,
            model,
            &RecordWrite {
                external_id: external_id.to_string(),
                payload: payload.clone(),
                hash: hash.to_string(),
                payload_text: None,
            },
            state.clock.now_ms(),
        )
        .await
}

/// Marks one record of `model` deleted; returns whether it was live.
pub async fn delete_back(
    state: &AppState,
    env: EnvironmentId,
    connection: ConnectionRowId,
    model: &str,
    external_id: &str,
) -> Result<bool, StoreError> {
    state
        .store
        .delete_back_record(env, connection, model, external_id, state.clock.now_ms())
        .await
}
