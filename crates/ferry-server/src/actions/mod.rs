//! Actions: typed writes and reads on a connection's org (`POST /action/trigger`), validated
//! before any Salesforce call, never blindly retried when not idempotent, with read-after-write
//! into the records store; the API version negotiated once per org and cached here.

pub mod catalog;
pub mod models;
pub mod worker;

use crate::state::AppState;
use crate::upstream::ConnectionTransport;
use catalog::{ActionKind, ActionSpec};
use ferry_salesforce::rest::RestClient;
use ferry_salesforce::transport::{latest_version, ApiError as SfError, SalesforceErrors};
use ferry_store::{Connection, ConnectionRowId, EnvironmentId, Integration};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Shared state of actions: the catalog, API versions by org, the async worker's wake-up.
#[derive(Default)]
pub struct ActionService {
    catalog: OnceLock<Vec<ActionSpec>>,
    versions: parking_lot::Mutex<HashMap<String, String>>,
    /// Wakes the async-action worker when a run was queued.
    pub wakeup: tokio::sync::Notify,
}

impl std::fmt::Debug for ActionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionService").finish_non_exhaustive()
    }
}

impl ActionService {
    /// The catalog (built on first use from the sync definitions).
    pub fn catalog(&self, state: &AppState) -> &[ActionSpec] {
        self.catalog
            .get_or_init(|| catalog::build(&models::definitions(state)))
    }

    /// One action by name.
    pub fn spec(&self, state: &AppState, name: &str) -> Option<&ActionSpec> {
        self.catalog(state).iter().find(|s| s.name == name)
    }

    /// The org's API version, negotiated once per org (or instance) and kept.
    async fn version(&self, key: &str, transport: &ConnectionTransport) -> Result<String, SfError> {
        if let Some(v) = self.versions.lock().get(key) {
            return Ok(v.clone());
        }
        let v = latest_version(transport).await?;
        self.versions.lock().insert(key.to_string(), v.clone());
        Ok(v)
    }
}

/// Why an action failed, in Nango's shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionError {
    /// No such action.
    UnknownAction(String),
    /// The input does not match the action's schema (message names the field).
    InvalidInput(String),
    /// Salesforce answered with an error.
    Upstream {
        /// Salesforce's status and errors, intact.
        errors: SalesforceErrors,
        /// A non-idempotent write that may or may not have happened.
        ambiguous_write: bool,
    },
    /// Salesforce could not be reached or answered nonsense.
    Unreachable {
        /// What happened.
        message: String,
        /// A non-idempotent write that may or may not have happened.
        ambiguous_write: bool,
    },
    /// The connection cannot be used (needs a reconnect).
    Connection(String),
    /// The org's daily API budget is spent; nothing was sent.
    BudgetSpent,
    /// A fault of Ferry itself (logged).
    Internal,
}

const AMBIGUOUS: &str = "The write may or may not have happened; it was not retried. Check before repeating it, or use upsert-record with an external id, which is safe to repeat.";

impl ActionError {
    fn from_sf(e: SfError, non_idempotent: bool) -> Self {
        match e {
            SfError::Salesforce(errors) => {
                let ambiguous_write = non_idempotent && errors.status >= 500;
                ActionError::Upstream {
                    errors,
                    ambiguous_write,
                }
            }
            SfError::Unreachable(m) | SfError::Malformed(m) => ActionError::Unreachable {
                message: m,
                ambiguous_write: non_idempotent,
            },
            SfError::Connection(m) => ActionError::Connection(m),
            SfError::BudgetSpent => ActionError::BudgetSpent,
        }
    }

    /// Whether trying again could help and cannot duplicate a write.
    pub fn retry_safe(&self, idempotent: bool) -> bool {
        match self {
            ActionError::Upstream { errors, .. } => {
                idempotent && (errors.status >= 500 || errors.status == 429)
            }
            ActionError::Unreachable { .. } => idempotent,
            _ => false,
        }
    }

    /// The HTTP status and `{"error":{…}}` body.
    pub fn to_response(&self) -> (u16, Value) {
        match self {
            ActionError::UnknownAction(name) => (
                404,
                json!({"error": {"code": "not_found", "message": format!("Action '{name}' not found; GET /scripts/config lists the actions")}}),
            ),
            ActionError::InvalidInput(message) => (
                400,
                json!({"error": {"code": "invalid_action_input", "message": message,
                    "payload": {"message": message}}}),
            ),
            ActionError::Upstream {
                errors,
                ambiguous_write,
            } => {
                let mut message = errors.to_string();
                if *ambiguous_write {
                    message = format!("{message}. {AMBIGUOUS}");
                }
                let items: Vec<Value> = errors
                    .errors
                    .iter()
                    .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                    .collect();
                (
                    424,
                    json!({"error": {"code": "script_http_error", "message": message,
                        "payload": {"status": errors.status, "errors": items, "may_have_happened": ambiguous_write},
                        "upstream": {"status": errors.status, "body": items}}}),
                )
            }
            ActionError::Unreachable {
                message,
                ambiguous_write,
            } => {
                let mut message = format!("Salesforce could not be reached: {message}");
                if *ambiguous_write {
                    message = format!("{message}. {AMBIGUOUS}");
                }
                (
                    502,
                    json!({"error": {"code": "action_script_failure", "message": message,
                        "payload": {"may_have_happened": ambiguous_write}}}),
                )
            }
            ActionError::Connection(m) => (
                400,
                json!({"error": {"code": "connection_unusable", "message": format!("The connection cannot be used: {m}")}}),
            ),
            ActionError::BudgetSpent => (
                429,
                json!({"error": {"code": "too_many_request", "message": "The org's daily API budget is spent; nothing was sent to Salesforce."}}),
            ),
            ActionError::Internal => (
                500,
                json!({"error": {"code": "server_error", "message": "An internal error occurred; it has been logged."}}),
            ),
        }
    }
}

impl axum::response::IntoResponse for ActionError {
    fn into_response(self) -> axum::response::Response {
        let (status, body) = self.to_response();
        (
            axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            axum::Json(body),
        )
            .into_response()
    }
}

/// Looks up an action and checks its input; nothing is sent to Salesforce.
pub fn validate<'a>(
    state: &'a AppState,
    name: &str,
    input: &Value,
) -> Result<&'a ActionSpec, ActionError> {
    let spec = state
        .actions
        .spec(state, name)
        .ok_or_else(|| ActionError::UnknownAction(name.to_string()))?;
    spec.validate(input).map_err(ActionError::InvalidInput)?;
    Ok(spec)
}

/// Runs a validated action on a connection's org.
pub async fn run(
    state: &Arc<AppState>,
    integration: Integration,
    connection: Connection,
    spec: &ActionSpec,
    input: &Value,
) -> Result<Value, ActionError> {
    let env = connection.environment_id;
    let row = connection.id;
    let instance_key = connection
        .connection_config
        .get("instance_url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let transport = ConnectionTransport::open(state.clone(), integration, connection)
        .await
        .map_err(|e| ActionError::from_sf(e, false))?
        .log_as(ferry_store::OperationKind::Action);
    let key = transport
        .org_key()
        .map(|k| k.to_string())
        .unwrap_or(instance_key);
    let version = state
        .actions
        .version(&key, &transport)
        .await
        .map_err(|e| ActionError::from_sf(e, false))?;
    let rest = RestClient::new(&transport, version);
    let ctx = RunContext {
        state,
        env,
        row,
        rest: &rest,
        non_idempotent: !spec.idempotent,
    };
    ctx.run(spec, input).await
}

struct RunContext<'a> {
    state: &'a AppState,
    env: EnvironmentId,
    row: ConnectionRowId,
    rest: &'a RestClient<'a>,
    non_idempotent: bool,
}

fn text<'v>(input: &'v Value, key: &str) -> &'v str {
    input.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl RunContext<'_> {
    fn sf(&self, e: SfError) -> ActionError {
        ActionError::from_sf(e, self.non_idempotent)
    }

    async fn run(&self, spec: &ActionSpec, input: &Value) -> Result<Value, ActionError> {
        let rest = self.rest;
        let empty = Value::Object(Map::new());
        match &spec.kind {
            ActionKind::CreateRecord => {
                let object = text(input, "object");
                let id = rest
                    .create(object, input.get("fields").unwrap_or(&empty))
                    .await
                    .map_err(|e| self.sf(e))?;
                self.read_after_write(object, &id).await;
                Ok(json!({"id": id, "success": true}))
            }
            ActionKind::UpdateRecord => {
                let (object, id) = (text(input, "object"), text(input, "id"));
                rest.update(object, id, input.get("fields").unwrap_or(&empty))
                    .await
                    .map_err(|e| self.sf(e))?;
                self.read_after_write(object, id).await;
                Ok(json!({"id": id, "success": true}))
            }
            ActionKind::UpsertRecord => {
                let object = text(input, "object");
                let outcome = rest
                    .upsert(
                        object,
                        text(input, "external_id_field"),
                        text(input, "external_id"),
                        input.get("fields").unwrap_or(&empty),
                    )
                    .await
                    .map_err(|e| self.sf(e))?;
                if let Some(id) = &outcome.id {
                    self.read_after_write(object, id).await;
                }
                Ok(json!({"id": outcome.id, "created": outcome.created, "success": true}))
            }
            ActionKind::DeleteRecord => {
                let (object, id) = (text(input, "object"), text(input, "id"));
                rest.delete(object, id).await.map_err(|e| self.sf(e))?;
                self.delete_after_write(object, id).await;
                Ok(json!({"id": id, "success": true}))
            }
            ActionKind::GetRecord => {
                let fields: Option<Vec<String>> = input.get("fields").and_then(|f| {
                    f.as_array().map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                });
                rest.get(text(input, "object"), text(input, "id"), fields.as_deref())
                    .await
                    .map_err(|e| self.sf(e))
            }
            ActionKind::CreateModel(sync) | ActionKind::UpdateModel(sync) => {
                let def = models::definitions(self.state)
                    .into_iter()
                    .find(|d| &d.name == sync)
                    .ok_or(ActionError::Internal)?;
                let mut fields = Map::new();
                let mut id = String::new();
                for (k, v) in input.as_object().into_iter().flatten() {
                    if k == "id" {
                        id = v.as_str().unwrap_or_default().to_string();
                        continue;
                    }
                    // The schema refused unknown and read-only model fields already.
                    if let Some(f) = catalog::writable_fields(&def).find(|f| &f.model_field == k) {
                        fields.insert(f.sf_field.clone(), v.clone());
                    }
                }
                let fields = Value::Object(fields);
                if matches!(spec.kind, ActionKind::CreateModel(_)) {
                    id = rest
                        .create(&def.object, &fields)
                        .await
                        .map_err(|e| self.sf(e))?;
                } else {
                    rest.update(&def.object, &id, &fields)
                        .await
                        .map_err(|e| self.sf(e))?;
                }
                Ok(self
                    .read_after_write(&def.object, &id)
                    .await
                    .unwrap_or_else(|| json!({"id": id})))
            }
            ActionKind::Query => {
                let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(1000) as usize;
                let result = rest
                    .query(text(input, "query"), limit)
                    .await
                    .map_err(|e| self.sf(e))?;
                Ok(
                    json!({"records": result.records, "total_size": result.total_size,
                          "done": result.done, "next_records_url": result.next_records_url}),
                )
            }
            ActionKind::DescribeObject => rest
                .describe(text(input, "object"))
                .await
                .map_err(|e| self.sf(e)),
            ActionKind::FetchFields => {
                let describe = rest
                    .describe(text(input, "object"))
                    .await
                    .map_err(|e| self.sf(e))?;
                Ok(fetch_fields(&describe))
            }
            ActionKind::DescribeGlobal => rest.describe_global().await.map_err(|e| self.sf(e)),
            ActionKind::GetLimits => rest.limits().await.map_err(|e| self.sf(e)),
            ActionKind::Whoami => {
                let me = rest.userinfo().await.map_err(|e| self.sf(e))?;
                Ok(json!({
                    "id": me.get("user_id").cloned().unwrap_or(Value::Null),
                    "email": me.get("email").cloned().unwrap_or(Value::Null),
                    "name": me.get("name").cloned().unwrap_or(Value::Null),
                    "username": me.get("preferred_username").cloned().unwrap_or(Value::Null),
                    "organization_id": me.get("organization_id").cloned().unwrap_or(Value::Null),
                }))
            }
            ActionKind::Composite => self.composite(input).await,
        }
    }

    async fn composite(&self, input: &Value) -> Result<Value, ActionError> {
        let requests = input
            .get("requests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let creates = requests.iter().any(|r| text(r, "method") == "POST");
        let sub: Vec<Value> = requests
            .iter()
            .map(|r| {
                let mut s = json!({
                    "method": text(r, "method"),
                    "url": format!("/services/data/{}{}", self.rest.version(), text(r, "url")),
                    "referenceId": text(r, "reference_id"),
                });
                if let Some(b) = r.get("body") {
                    s["body"] = b.clone();
                }
                s
            })
            .collect();
        let all_or_none = input
            .get("all_or_none")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let answer = self
            .rest
            .composite(all_or_none, &sub)
            .await
            .map_err(|e| ActionError::from_sf(e, creates))?;
        let mut responses = Vec::new();
        let items = answer
            .get("compositeResponse")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (item, request) in items.iter().zip(requests.iter()) {
            let status = item
                .get("httpStatusCode")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let body = item.get("body").cloned().unwrap_or(Value::Null);
            if (200..300).contains(&status) {
                self.composite_write_back(request, &body).await;
            }
            responses.push(json!({
                "reference_id": item.get("referenceId").cloned().unwrap_or(Value::Null),
                "status": status,
                "body": body,
            }));
        }
        let success = responses
            .iter()
            .all(|r| (200..300).contains(&r["status"].as_u64().unwrap_or(0)));
        Ok(json!({"success": success, "responses": responses}))
    }

    async fn composite_write_back(&self, request: &Value, body: &Value) {
        let url = text(request, "url");
        let path = url.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (text(request, "method"), parts.as_slice()) {
            ("POST", ["sobjects", object]) => {
                if let Some(id) = body.get("id").and_then(Value::as_str) {
                    self.read_after_write(object, id).await;
                }
            }
            ("PATCH", ["sobjects", object, id]) if ferry_salesforce::rest::is_record_id(id) => {
                self.read_after_write(object, id).await;
            }
            ("DELETE", ["sobjects", object, id]) => self.delete_after_write(object, id).await,
            _ => {}
        }
    }

    /// Reads the written record with its sync definition's fields and stores it in the
    /// connection's records, so `GET /records` shows it now and the next sync run finds the same
    /// hash. Returns the model record. A failure here is logged: the write itself succeeded.
    async fn read_after_write(&self, object: &str, id: &str) -> Option<Value> {
        let def = models::by_object(self.state, object)?;
        if !ferry_salesforce::rest::is_record_id(id) {
            return None;
        }
        let mut soql = format!(
            "SELECT {} FROM {} WHERE Id = '{id}'",
            def.soql_fields().join(", "),
            def.object
        );
        if let Some(filter) = def.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            soql.push_str(&format!(" AND ({filter})"));
        }
        let record = match self.rest.query(&soql, 1).await {
            Ok(result) => result.records.into_iter().next()?,
            Err(e) => {
                tracing::warn!(error = %e, object, "read-after-write query failed");
                return None;
            }
        };
        let model = def.map_record(&record);
        let hash = models::SyncDefinition::hash(&model);
        if let Err(e) = models::write_back(
            self.state, self.env, self.row, &def.model, id, &model, &hash,
        )
        .await
        {
            tracing::error!(error = %e, "read-after-write store failed");
        }
        Some(model)
    }

    async fn delete_after_write(&self, object: &str, id: &str) {
        let Some(def) = models::by_object(self.state, object) else {
            return;
        };
        if let Err(e) = models::delete_back(self.state, self.env, self.row, &def.model, id).await {
            tracing::error!(error = %e, "delete write-back failed");
        }
    }
}

/// The field list of a describe, flattened for apps and LLM tools.
fn fetch_fields(describe: &Value) -> Value {
    let fields: Vec<Value> = describe
        .get("fields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|f| {
            let flag = |k: &str| f.get(k).and_then(Value::as_bool).unwrap_or(false);
            json!({
                "name": f.get("name"),
                "label": f.get("label"),
                "type": f.get("type"),
                "required": !flag("nillable") && flag("createable") && !flag("defaultedOnCreate"),
                "custom": flag("custom"),
                "createable": flag("createable"),
                "updateable": flag("updateable"),
                "reference_to": f.get("referenceTo").cloned().unwrap_or(json!([])),
                "picklist_values": f.get("picklistValues").and_then(Value::as_array).map(|p| p.iter().filter_map(|v| v.get("value").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
            })
        })
        .collect();
    json!({"object": describe.get("name"), "fields": fields})
}
