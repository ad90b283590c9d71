//! `composite/batch` (independent subrequests, `haltOnError`), `composite/tree/{type}` (one all-or-none insert of record trees with `referenceId`s) and `composite/graph` (several all-or-none composite requests).

use super::composite::{run_composite, run_subrequest, SubContext, Undo};
use super::errors::{self, json, sf_error};
use super::{ApiVersion, Ctx};
use crate::org::{Org, RecordError, WriteContext};
use crate::state::Session;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Map, Value as J};

/// Most subrequests in one batch.
const MAX_BATCH: usize = 25;
/// Most records in one tree request.
const MAX_TREE_RECORDS: usize = 200;

/// The batch and tree routes.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/services/data/{version}/composite/batch", post(batch))
        .route("/services/data/{version}/composite/graph", post(graph))
        .route(
            "/services/data/{version}/composite/tree/{sobject}",
            post(tree),
        )
}

async fn batch(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> Response {
    let request: J = match errors::parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let subrequests = match errors::bounded_array(
        &request,
        "batchRequests",
        MAX_BATCH,
        "INVALID_BATCH_REQUEST",
        "Batch request supports up to 25 subrequests",
    ) {
        Ok(items) => items,
        Err(refusal) => return refusal,
    };
    let halt_on_error = request
        .get("haltOnError")
        .and_then(J::as_bool)
        .unwrap_or(false);
    let instance = ctx.base_url();
    let now = ctx.state.clock.now_secs();
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    let sub_ctx = SubContext {
        wctx: WriteContext {
            user_id: &session.user_id,
            now,
            modstamp: None,
        },
        version: &v.0,
        instance: &instance,
    };
    let mut results = Vec::with_capacity(subrequests.len());
    let mut has_errors = false;
    for sub in subrequests {
        if has_errors && halt_on_error {
            results.push(json!({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}]}));
            continue;
        }
        let method = sub.get("method").and_then(J::as_str).unwrap_or("GET");
        let url = sub.get("url").and_then(J::as_str).unwrap_or_default();
        // Batch URLs start at the version: `v59.0/sobjects/Account`.
        let full = if url.starts_with("/services/data/") {
            url.to_string()
        } else {
            format!("/services/data/{}", url.trim_start_matches('/'))
        };
        let body = sub.get("richInput");
        // Each subrequest is its own transaction.
        let mut undo = Undo::default();
        let r = run_subrequest(org, sub_ctx, method, &full, body, &mut undo);
        has_errors |= r.status >= 400;
        let result = if r.status == 204 { J::Null } else { r.body };
        results.push(json!({"statusCode": r.status, "result": result}));
    }
    json(
        StatusCode::OK,
        &json!({"hasErrors": has_errors, "results": results}),
    )
}

/// Most graphs in one request, and most subrequests in one graph.
const MAX_GRAPHS: usize = 75;
const MAX_GRAPH_NODES: usize = 500;

/// `POST /composite/graph`: each graph is a composite request that succeeds or rolls back as a
/// whole; one graph failing leaves the others in place.
async fn graph(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> Response {
    let request: J = match errors::parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let graphs = match errors::bounded_array(
        &request,
        "graphs",
        MAX_GRAPHS,
        "INVALID_INPUT",
        "A request can have up to 75 graphs",
    ) {
        Ok(items) => items,
        Err(refusal) => return refusal,
    };
    let instance = ctx.base_url();
    let now = ctx.state.clock.now_secs();
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    let sub_ctx = SubContext {
        wctx: WriteContext {
            user_id: &session.user_id,
            now,
            modstamp: None,
        },
        version: &v.0,
        instance: &instance,
    };
    let mut out = Vec::with_capacity(graphs.len());
    for g in graphs {
        let graph_id = g.get("graphId").and_then(J::as_str).unwrap_or_default();
        let subrequests = g
            .get("compositeRequest")
            .and_then(J::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if subrequests.is_empty() || subrequests.len() > MAX_GRAPH_NODES {
            out.push(json!({"graphId": graph_id, "isSuccessful": false, "graphResponse": {"compositeResponse": [
                {"body": [{"errorCode": "INVALID_INPUT", "message": "A graph needs between 1 and 500 subrequests"}], "httpHeaders": {}, "httpStatusCode": 400, "referenceId": ""}
            ]}}));
            continue;
        }
        let (items, ok) = run_composite(org, sub_ctx, subrequests, true);
        out.push(json!({"graphId": graph_id, "isSuccessful": ok, "graphResponse": {"compositeResponse": items}}));
    }
    json(StatusCode::OK, &json!({"graphs": out}))
}

/// One record of a tree, with where it hangs.
struct TreeNode {
    object: String,
    reference_id: String,
    fields: Map<String, J>,
    /// The parent node's index and the reference field on this record that points at it.
    parent: Option<(usize, String)>,
}

/// A refusal of the whole tree request before anything is written.
fn tree_refusal(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "INVALID_INPUT", message)
}

/// Flattens the request's records (parents before their children).
fn flatten(
    org: &Org,
    object: &str,
    records: &[J],
    parent: Option<usize>,
    via: Option<&str>,
    out: &mut Vec<TreeNode>,
) -> Result<(), String> {
    for record in records {
        let map = record.as_object().ok_or("each record must be an object")?;
        let attributes = map
            .get("attributes")
            .and_then(J::as_object)
            .ok_or("each record needs attributes with type and referenceId")?;
        let kind = attributes
            .get("type")
            .and_then(J::as_str)
            .ok_or("attributes need a type")?;
        let reference_id = attributes
            .get("referenceId")
            .and_then(J::as_str)
            .ok_or("attributes need a referenceId")?
            .to_string();
        if out.iter().any(|n| n.reference_id == reference_id) {
            return Err(format!(
                "Duplicate ReferenceId provided in the request: {reference_id}"
            ));
        }
        let table = org
            .table(kind)
            .ok_or_else(|| format!("sObject type '{kind}' is not supported"))?;
        if parent.is_none() && !table.schema.name.eq_ignore_ascii_case(object) {
            return Err(format!(
                "Record type {kind} does not match the request's type {object}"
            ));
        }
        let mut fields = Map::new();
        let mut nested = Vec::new();
        for (key, value) in map {
            if key == "attributes" {
                continue;
            }
            match value.get("records").and_then(J::as_array) {
                Some(children) if value.is_object() => nested.push((key.clone(), children)),
                _ => {
                    fields.insert(key.clone(), value.clone());
                }
            }
        }
        let index = out.len();
        out.push(TreeNode {
            object: table.schema.name.clone(),
            reference_id,
            fields,
            parent: parent.zip(via.map(str::to_string)),
        });
        for (relationship, children) in nested {
            let (child, field) = org
                .child_link(&table.schema.name, &relationship)
                .ok_or_else(|| {
                    format!(
                        "Invalid relationship {relationship} on {}",
                        table.schema.name
                    )
                })?;
            flatten(org, &child, children, Some(index), Some(&field), out)?;
        }
        if out.len() > MAX_TREE_RECORDS {
            return Err("Too many records in the request: at most 200".into());
        }
    }
    Ok(())
}

async fn tree(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let request: J = match errors::parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(records) = request.get("records").and_then(J::as_array) else {
        return tree_refusal("records is required");
    };
    let now = ctx.state.clock.now_secs();
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    if org.table(&sobject).is_none() {
        return errors::not_found();
    }
    let mut nodes = Vec::new();
    if let Err(message) = flatten(org, &sobject, records, None, None, &mut nodes) {
        return tree_refusal(&message);
    }
    let wctx = WriteContext {
        user_id: &session.user_id,
        now,
        modstamp: None,
    };
    let mut undo = Undo::default();
    let mut ids: Vec<String> = Vec::with_capacity(nodes.len());
    let mut failures: Vec<(String, RecordError)> = Vec::new();
    for node in &nodes {
        let mut fields = node.fields.clone();
        if let Some((parent, field)) = &node.parent {
            match ids.get(*parent) {
                Some(id) if !id.is_empty() => {
                    fields.insert(field.clone(), J::String(id.clone()));
                }
                // The parent failed: its children are not tried.
                _ => {
                    ids.push(String::new());
                    continue;
                }
            }
        }
        match org.create(&node.object, &fields, wctx) {
            Ok(id) => {
                undo.created(org, &node.object, &id);
                ids.push(id);
            }
            Err(e) => {
                failures.push((node.reference_id.clone(), e));
                ids.push(String::new());
            }
        }
    }
    if !failures.is_empty() {
        undo.rollback(org);
        let results: Vec<J> = failures
            .iter()
            .map(|(reference, e)| {
                json!({"referenceId": reference, "errors": [{"statusCode": e.code, "message": e.message, "fields": e.fields}]})
            })
            .collect();
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"hasErrors": true, "results": results}),
        );
    }
    let results: Vec<J> = nodes
        .iter()
        .zip(&ids)
        .map(|(n, id)| json!({"referenceId": n.reference_id, "id": id}))
        .collect();
    json(
        StatusCode::CREATED,
        &json!({"hasErrors": false, "results": results}),
    )
}
