//! `POST /action/trigger` (synchronous, or queued with `X-Async: true`), `GET /action/{id}` and
//! `GET /scripts/config`: thin handlers over `crate::actions`.

use super::auth::Env;
use super::header;
use crate::actions;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ferry_store::{Connection, Integration, NewActionRun};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// The routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/action/trigger", post(trigger))
        .route("/action/{id}", get(result))
        .route("/scripts/config", get(scripts_config))
}

#[derive(Debug, Deserialize)]
struct TriggerBody {
    action_name: String,
    #[serde(default)]
    input: Option<Value>,
}

/// The integration and connection named by `Provider-Config-Key` / `Connection-Id`.
async fn resolve(
    state: &AppState,
    env: &ferry_store::Environment,
    headers: &HeaderMap,
) -> Result<(Integration, Connection), ApiError> {
    let (connection_id, key) = super::connection_headers(headers)?;
    super::integration_and_connection(state, env.id, key, connection_id).await
}

async fn trigger(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: TriggerBody = super::json_body(&headers, &body)?;
    let is_async = match header(&headers, "x-async") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_headers",
                "X-Async must be true or false",
            ))
        }
    };
    let max_retries = match header(&headers, "x-max-retries") {
        None => 0,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=5).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_headers",
                    "X-Max-Retries must be an integer from 0 to 5",
                )
            })?,
    };
    let (integration, connection) = resolve(&state, &env, &headers).await?;
    let input = body.input.unwrap_or_else(|| json!({}));
    let spec = match actions::validate(&state, &body.action_name, &input) {
        Ok(spec) => spec,
        Err(e) => return Ok(e.into_response()),
    };
    if is_async {
        let id = uuid::Uuid::new_v4().to_string();
        state
            .store
            .create_action_run(
                &NewActionRun {
                    id: &id,
                    environment_id: env.id,
                    connection_row_id: connection.id,
                    action_name: &spec.name,
                    input: &input,
                    max_retries,
                },
                state.clock.now_ms(),
            )
            .await?;
        state.actions.wakeup.notify_one();
        let status_url = format!("/action/{id}");
        let mut response = (
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": id, "statusUrl": status_url})),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&status_url) {
            response
                .headers_mut()
                .insert(axum::http::header::LOCATION, v);
        }
        return Ok(response);
    }
    Ok(
        match actions::run(&state, integration, connection, spec, &input).await {
            Ok(output) => axum::Json(output).into_response(),
            Err(e) => e.into_response(),
        },
    )
}

async fn result(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(ApiError {
            errors: vec![
                json!({"code": "invalid_string", "message": "Invalid uuid", "path": ["id"]}),
            ],
            ..ApiError::bad_request("invalid_uri_params", "id: Invalid uuid")
        });
    }
    let not_found = || ApiError::not_found(format!("No action '{id}' found"));
    let run = state
        .store
        .get_action_run(env.id, &id)
        .await?
        .ok_or_else(not_found)?;
    // As Nango: 404 while the action is still queued or running.
    match run.status.as_str() {
        "success" => Ok(axum::Json(run.output.unwrap_or(Value::Null)).into_response()),
        "error" => {
            let status = run
                .error_status
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok((status, axum::Json(run.output.unwrap_or(Value::Null))).into_response())
        }
        _ => Err(not_found()),
    }
}

/// `GET /scripts/config?format=nango|openai`: the syncs and actions of every integration.
async fn scripts_config(
    State(state): State<Arc<AppState>>,
    Env(env): Env,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = super::strict_query(query.as_deref(), &["format"])?;
    let format = params.get("format").map(String::as_str).unwrap_or("nango");
    let specs = state.actions.catalog(&state);
    match format {
        "openai" => {
            let data: Vec<Value> = specs
                .iter()
                .map(|s| {
                    json!({"name": s.name, "description": s.description, "parameters": s.input_schema})
                })
                .collect();
            Ok(axum::Json(json!({"data": data})).into_response())
        }
        "nango" => {
            let integrations = state.store.list_integrations(env.id).await?;
            let syncs: Vec<Value> = actions::models::definitions(&state)
                .iter()
                .map(sync_config)
                .collect();
            let actions: Vec<Value> = specs.iter().map(action_config).collect();
            let out: Vec<Value> = integrations
                .iter()
                .map(|i| {
                    json!({
                        "providerConfigKey": i.unique_key,
                        "provider": i.provider,
                        "syncs": syncs,
                        "actions": actions,
                        "on-events": [],
                    })
                })
                .collect();
            Ok(axum::Json(Value::Array(out)).into_response())
        }
        _ => Err(ApiError::invalid_query("format", "must be nango or openai")),
    }
}

/// A Nango model (`{name, fields:[{name, value, optional}]}`) from a JSON Schema object.
fn model_from_schema(name: &str, schema: &Value) -> Value {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<Value> = schema
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let ty = match v.get("type") {
                Some(Value::String(t)) => t.clone(),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                    .collect::<Vec<_>>()
                    .join(" | "),
                _ => "any".into(),
            };
            let ty = match ty.as_str() {
                "integer" => "number".to_string(),
                "array" => "any[]".to_string(),
                "object" => "Record<string, any>".to_string(),
                _ => ty,
            };
            json!({"name": k, "value": ty, "tsType": true, "optional": !required.contains(&k.as_str())})
        })
        .collect();
    json!({"name": name, "fields": fields})
}

fn pascal(name: &str) -> String {
    name.split(['-', '_'])
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn action_config(spec: &actions::catalog::ActionSpec) -> Value {
    let input_name = format!("{}Input", pascal(&spec.name));
    let output_name = spec
        .model
        .clone()
        .unwrap_or_else(|| format!("{}Output", pascal(&spec.name)));
    json!({
        "name": spec.name,
        "type": "action",
        "description": spec.description,
        "returns": [output_name],
        "input": model_from_schema(&input_name, &spec.input_schema),
        "models": [model_from_schema(&input_name, &spec.input_schema), model_from_schema(&output_name, &spec.output_schema)],
        "endpoints": [{"method": "POST", "path": format!("/{}", spec.name), "group": "Salesforce"}],
        "json_schema": {"definitions": {input_name: spec.input_schema, output_name: spec.output_schema}},
        "scopes": [],
        "attributes": {},
        "version": "1.0.0",
        "is_public": true,
        "pre_built": true,
        "enabled": true,
        "webhookSubscriptions": [],
    })
}

fn sync_config(def: &actions::models::SyncDefinition) -> Value {
    let fields: Vec<Value> = def
        .fields
        .iter()
        .map(|f| json!({"name": f.model_field, "value": if f.model_field == "id" { "string" } else { "string | null" }, "tsType": true}))
        .collect();
    json!({
        "name": def.name,
        "type": "sync",
        "description": format!("{} records of Salesforce {} objects", def.model, def.object),
        "returns": [def.model],
        "models": [{"name": def.model, "fields": fields}],
        "endpoints": [{"method": "GET", "path": format!("/{}", def.name), "group": def.model}],
        "sync_type": "incremental",
        "track_deletes": true,
        "auto_start": def.auto_start,
        "runs": format!("every {}s", def.frequency_secs),
        "input": null,
        "scopes": [],
        "attributes": {},
        "version": "1.0.0",
        "is_public": true,
        "pre_built": true,
        "enabled": true,
        "webhookSubscriptions": [],
    })
}
