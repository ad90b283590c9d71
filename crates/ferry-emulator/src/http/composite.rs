//! Composite resources: `/composite` (subrequests with `referenceId` and `allOrNone`) and the `/composite/sobjects` collections.

use super::errors::{self, json, sf_error};
use super::rest::record_json;
use super::{ApiVersion, Ctx};
use crate::ids;
use crate::org::{Org, Record, RecordError, WriteContext};
use crate::state::Session;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value as J};
use std::collections::HashMap;

/// The composite routes.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/services/data/{version}/composite", post(composite))
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collection_create)
                .patch(collection_update)
                .delete(collection_delete),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}",
            get(collection_retrieve_get).post(collection_retrieve_post),
        )
        .route(
            "/services/data/{version}/composite/sobjects/{sobject}/{field}",
            axum::routing::patch(collection_upsert),
        )
}

/// Undo log of one all-or-none transaction: the records as they were before it touched them.
#[derive(Default)]
pub(super) struct Undo {
    entries: Vec<(String, usize, Option<Record>)>,
}

impl Undo {
    pub(super) fn before_write(&mut self, org: &Org, object: &str, id: &str) {
        if let Some(t) = org.table(object) {
            if let Some(i) = t.index_of(id) {
                self.entries
                    .push((object.to_string(), i, Some(t.records[i].clone())));
            }
        }
    }

    pub(super) fn created(&mut self, org: &Org, object: &str, id: &str) {
        if let Some(t) = org.table(object) {
            if let Some(i) = t.index_of(id) {
                self.entries.push((object.to_string(), i, None));
            }
        }
    }

    pub(super) fn rollback(self, org: &mut Org) {
        for (object, i, before) in self.entries.into_iter().rev() {
            if let Some(t) = org.table_mut(&object) {
                match before {
                    Some(r) => t.records[i] = r,
                    None => {
                        t.records[i].purged = true;
                    }
                }
            }
        }
    }
}

pub(super) struct SubResult {
    pub(super) status: u16,
    pub(super) body: J,
    pub(super) location: Option<String>,
    /// Other response headers the subrequest carries (`ETag`, `Last-Modified` on describe).
    pub(super) headers: Vec<(&'static str, String)>,
}

fn error_body(e: &RecordError) -> J {
    if e.fields.is_empty() {
        json!([{"errorCode": e.code, "message": e.message}])
    } else {
        json!([{"errorCode": e.code, "message": e.message, "fields": e.fields}])
    }
}

/// Replaces `@{ref.field}` with values from earlier subresults.
fn resolve_refs(text: &str, results: &HashMap<String, J>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated reference in {text}"))?;
        let reference = &after[..end];
        let mut parts = reference.split('.');
        let name = parts.next().unwrap_or_default();
        let mut value = results.get(name).ok_or_else(|| {
            format!("Invalid reference specified. No value for {reference} found in {name}.")
        })?;
        for p in parts {
            value = match value {
                J::Object(m) => m.get(p),
                J::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            }
            .ok_or_else(|| {
                format!("Invalid reference specified. No value for {reference} found in {name}.")
            })?;
        }
        match value {
            J::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where and as whom a composite request runs.
#[derive(Clone, Copy)]
pub(super) struct SubContext<'a> {
    pub(super) wctx: WriteContext<'a>,
    pub(super) version: &'a str,
    /// The org's base URL, for describe's UI templates.
    pub(super) instance: &'a str,
}

pub(super) fn run_subrequest(
    org: &mut Org,
    sub: SubContext<'_>,
    method: &str,
    url: &str,
    body: Option<&J>,
    undo: &mut Undo,
) -> SubResult {
    let SubContext {
        wctx,
        version,
        instance,
    } = sub;
    let path = url.split('?').next().unwrap_or_default();
    let Some(rest) = path
        .strip_prefix("/services/data/v")
        .and_then(|r| r.split_once('/'))
        .map(|(_, r)| r.trim_end_matches('/'))
    else {
        return SubResult {
            status: 400,
            body: json!([{"errorCode": "INVALID_URL", "message": format!("invalid subrequest url: {url}")}]),
            location: None,
            headers: Vec::new(),
        };
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let err = |e: RecordError| SubResult {
        status: e.status,
        body: error_body(&e),
        location: None,
        headers: Vec::new(),
    };
    let input = || match body {
        Some(J::Object(m)) => Ok(m.clone()),
        Some(_) => Err(RecordError {
            code: "JSON_PARSER_ERROR",
            message: "Cannot deserialize instance of SObject".into(),
            fields: vec![],
            status: 400,
        }),
        None => Ok(Map::new()),
    };
    match (method.to_ascii_uppercase().as_str(), segments.as_slice()) {
        ("POST", ["sobjects", object]) => {
            let input = match input() {
                Ok(i) => i,
                Err(e) => return err(e),
            };
            match org.create(object, &input, wctx) {
                Ok(id) => {
                    undo.created(org, object, &id);
                    SubResult {
                        status: 201,
                        location: Some(format!("/services/data/v{version}/sobjects/{object}/{id}")),
                        headers: Vec::new(),
                        body: json!({"id": id, "success": true, "errors": []}),
                    }
                }
                Err(e) => err(e),
            }
        }
        ("PATCH", ["sobjects", object, id]) => {
            let input = match input() {
                Ok(i) => i,
                Err(e) => return err(e),
            };
            undo.before_write(org, object, id);
            match org.update(object, id, &input, wctx) {
                Ok(()) => SubResult {
                    status: 204,
                    body: J::Null,
                    location: None,
                    headers: Vec::new(),
                },
                Err(e) => err(e),
            }
        }
        ("DELETE", ["sobjects", object, id]) => {
            undo.before_write(org, object, id);
            match org.delete(object, id, wctx) {
                Ok(()) => SubResult {
                    status: 204,
                    body: J::Null,
                    location: None,
                    headers: Vec::new(),
                },
                Err(e) => err(e),
            }
        }
        ("GET", ["sobjects", object, "describe"]) => {
            match super::rest::describe_json(org, object, version, instance) {
                Some(body) => SubResult {
                    status: 200,
                    headers: super::rest::describe_validators(org, object),
                    body,
                    location: None,
                },
                None => err(RecordError::not_found()),
            }
        }
        ("GET", ["sobjects", object]) => match super::rest::basic_info_json(org, object, version) {
            Some(body) => SubResult {
                status: 200,
                body,
                location: None,
                headers: Vec::new(),
            },
            None => err(RecordError::not_found()),
        },
        ("GET", ["query" | "queryAll"]) => {
            let all = segments[0] == "queryAll";
            let q = url
                .split_once('?')
                .and_then(|(_, qs)| {
                    form_urlencoded::parse(qs.as_bytes())
                        .find(|(k, _)| k == "q")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            match super::rest::query_json(org, &q, all, wctx.now, version) {
                Ok(body) => SubResult {
                    status: 200,
                    body,
                    location: None,
                    headers: Vec::new(),
                },
                Err(e) => SubResult {
                    status: 400,
                    body: json!([{"errorCode": e.code, "message": e.message}]),
                    location: None,
                    headers: Vec::new(),
                },
            }
        }
        ("GET", ["sobjects", object, id]) => {
            let found = org.table(object).and_then(|t| {
                ids::normalize(id)
                    .and_then(|c| t.get(&c))
                    .filter(|r| !r.is_deleted())
                    .map(|r| (t, r))
            });
            match found {
                Some((t, r)) => SubResult {
                    status: 200,
                    body: record_json(org, &t.schema, r, None, version),
                    location: None,
                    headers: Vec::new(),
                },
                None => err(RecordError::not_found()),
            }
        }
        _ => SubResult {
            status: 400,
            body: json!([{"errorCode": "INVALID_URL", "message": format!("unsupported composite subrequest: {method} {url}")}]),
            location: None,
            headers: Vec::new(),
        },
    }
}

async fn composite(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    body: Bytes,
) -> Response {
    let request: J = match errors::parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let all_or_none = request
        .get("allOrNone")
        .and_then(J::as_bool)
        .unwrap_or(false);
    let subrequests = match errors::bounded_array(
        &request,
        "compositeRequest",
        25,
        "INVALID_BATCH_REQUEST",
        "Composite API supports up to 25 subrequests",
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
    let wctx = WriteContext {
        user_id: &session.user_id,
        now,
        modstamp: None,
    };
    let sub_ctx = SubContext {
        wctx,
        version: &v.0,
        instance: &instance,
    };
    let (items, _) = run_composite(org, sub_ctx, subrequests, all_or_none);
    json(StatusCode::OK, &json!({"compositeResponse": items}))
}

/// Runs composite subrequests in order with `@{ref}` references; with `all_or_none`, a failure
/// rolls every write back and turns the other answers into PROCESSING_HALTED. Returns the
/// `compositeResponse` items and whether every subrequest succeeded.
pub(super) fn run_composite(
    org: &mut Org,
    sub_ctx: SubContext<'_>,
    subrequests: &[J],
    all_or_none: bool,
) -> (Vec<J>, bool) {
    let mut undo = Undo::default();
    let mut by_ref: HashMap<String, J> = HashMap::new();
    let mut responses: Vec<(String, SubResult)> = Vec::new();
    let mut failed = false;
    for sub in subrequests {
        let reference = sub
            .get("referenceId")
            .and_then(J::as_str)
            .unwrap_or_default()
            .to_string();
        let method = sub.get("method").and_then(J::as_str).unwrap_or("GET");
        let url = sub.get("url").and_then(J::as_str).unwrap_or_default();
        let result = if failed && all_or_none {
            SubResult {
                status: 400,
                body: json!([{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}]),
                location: None,
                headers: Vec::new(),
            }
        } else {
            let resolved_url = resolve_refs(url, &by_ref);
            let resolved_body = match sub.get("body") {
                Some(b) => resolve_refs(&b.to_string(), &by_ref)
                    .and_then(|t| serde_json::from_str::<J>(&t).map_err(|e| e.to_string()))
                    .map(Some),
                None => Ok(None),
            };
            match (resolved_url, resolved_body) {
                (Ok(url), Ok(body)) => {
                    run_subrequest(org, sub_ctx, method, &url, body.as_ref(), &mut undo)
                }
                (Err(e), _) | (_, Err(e)) => SubResult {
                    status: 400,
                    body: json!([{"errorCode": "PROCESSING_HALTED", "message": e}]),
                    location: None,
                    headers: Vec::new(),
                },
            }
        };
        if result.status >= 400 {
            failed = true;
        } else {
            by_ref.insert(reference.clone(), result.body.clone());
        }
        responses.push((reference, result));
    }
    if failed && all_or_none {
        undo.rollback(org);
        for (_, r) in responses.iter_mut() {
            if r.status < 400 {
                r.status = 400;
                r.location = None;
                r.body = json!([{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back since another operation in the same transaction failed."}]);
            }
        }
    }
    let items: Vec<J> = responses
        .into_iter()
        .map(|(reference, r)| {
            let mut headers = Map::new();
            if let Some(l) = r.location {
                headers.insert("Location".into(), J::String(l));
            }
            for (name, value) in r.headers {
                headers.insert(name.into(), J::String(value));
            }
            let headers = J::Object(headers);
            json!({"body": r.body, "httpHeaders": headers, "httpStatusCode": r.status, "referenceId": reference})
        })
        .collect();
    (items, !failed)
}

/// A failed item of a collection answer: no `id` key, `statusCode` rather than `errorCode`.
fn collection_error(e: &RecordError) -> J {
    json!({"success": false, "errors": [{"statusCode": e.code, "message": e.message, "fields": e.fields}]})
}

fn rolled_back() -> J {
    json!({"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]})
}

/// A collection update names an unknown record as a bad cross reference, not as a 404.
fn as_cross_reference(e: RecordError) -> RecordError {
    if e.code == "NOT_FOUND" {
        RecordError {
            code: "INVALID_CROSS_REFERENCE_KEY",
            message: "invalid cross reference id".into(),
            fields: vec![],
            status: 400,
        }
    } else {
        e
    }
}

/// Runs one collection write over every record; `op` returns the id written.
fn collection_write(
    ctx: &Ctx,
    session: &Session,
    body: &Bytes,
    op: impl Fn(
        &mut Org,
        &str,
        &Map<String, J>,
        WriteContext<'_>,
        &mut Undo,
    ) -> Result<String, RecordError>,
) -> Response {
    let request: J = match errors::parse_body(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let all_or_none = request
        .get("allOrNone")
        .and_then(J::as_bool)
        .unwrap_or(false);
    let records = match errors::bounded_array(
        &request,
        "records",
        200,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    ) {
        Ok(items) => items,
        Err(refusal) => return refusal,
    };
    let now = ctx.state.clock.now_secs();
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    let wctx = WriteContext {
        user_id: &session.user_id,
        now,
        modstamp: None,
    };
    let mut undo = Undo::default();
    let mut results: Vec<Result<String, RecordError>> = Vec::new();
    for record in records {
        let Some(map) = record.as_object() else {
            results.push(Err(RecordError {
                code: "JSON_PARSER_ERROR",
                message: "each record must be an object".into(),
                fields: vec![],
                status: 400,
            }));
            continue;
        };
        let Some(object) = map
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(J::as_str)
        else {
            results.push(Err(RecordError {
                code: "INVALID_TYPE",
                message: "Must specify a type in the attributes of each record".into(),
                fields: vec![],
                status: 400,
            }));
            continue;
        };
        let mut fields = map.clone();
        fields.remove("attributes");
        results.push(op(org, object, &fields, wctx, &mut undo));
    }
    collection_outcome(org, undo, &results, all_or_none)
}

/// Ends a collection call: with `allOrNone` and any failure, undoes the writes and reports the
/// successful items as rolled back; answers one result per item.
fn collection_outcome(
    org: &mut Org,
    undo: Undo,
    results: &[Result<String, RecordError>],
    all_or_none: bool,
) -> Response {
    let any_failed = results.iter().any(Result::is_err);
    if any_failed && all_or_none {
        undo.rollback(org);
    }
    let out: Vec<J> = results
        .iter()
        .map(|r| match r {
            Err(e) => collection_error(e),
            Ok(_) if any_failed && all_or_none => rolled_back(),
            Ok(id) => json!({"id": id, "success": true, "errors": []}),
        })
        .collect();
    json(StatusCode::OK, &J::Array(out))
}

async fn collection_create(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    body: Bytes,
) -> Response {
    collection_write(&ctx, &session, &body, |org, object, fields, wctx, undo| {
        if fields.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
            return Err(RecordError {
                code: "INVALID_FIELD",
                message: "cannot specify Id in an insert call".into(),
                fields: vec!["Id".into()],
                status: 400,
            });
        }
        let id = org.create(object, fields, wctx)?;
        undo.created(org, object, &id);
        Ok(id)
    })
}

async fn collection_update(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    body: Bytes,
) -> Response {
    collection_write(&ctx, &session, &body, |org, object, fields, wctx, undo| {
        let id = fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Id"))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| RecordError {
                code: "MISSING_ARGUMENT",
                message: "Id not specified in an update call".into(),
                fields: vec![],
                status: 400,
            })?;
        undo.before_write(org, object, &id);
        org.update(object, &id, fields, wctx)
            .map_err(as_cross_reference)?;
        Ok(ids::normalize(&id).unwrap_or(id))
    })
}

/// `PATCH /composite/sobjects/{type}/{field}`: upserts up to 200 records of one type by an
/// external id, `idLookup` field or `Id`; each item says whether it `created` its record.
async fn collection_upsert(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let request: J = match errors::parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let all_or_none = request
        .get("allOrNone")
        .and_then(J::as_bool)
        .unwrap_or(false);
    let records = match errors::bounded_array(
        &request,
        "records",
        200,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    ) {
        Ok(items) => items,
        Err(refusal) => return refusal,
    };
    let now = ctx.state.clock.now_secs();
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(key) = org
        .table(&sobject)
        .and_then(|t| t.schema.field(&field))
        .filter(|f| f.is_id_lookup())
        .cloned()
    else {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {field}"),
        );
    };
    let wctx = WriteContext {
        user_id: &session.user_id,
        now,
        modstamp: None,
    };
    let mut undo = Undo::default();
    let mut results: Vec<Result<(String, bool), RecordError>> = Vec::new();
    for record in records {
        results.push(upsert_one(org, &sobject, &key, record, wctx, &mut undo));
    }
    let any_failed = results.iter().any(Result::is_err);
    if any_failed && all_or_none {
        undo.rollback(org);
    }
    let out: Vec<J> = results
        .iter()
        .map(|r| match r {
            Err(e) => {
                let mut item = collection_error(e);
                item["created"] = J::Bool(false);
                item
            }
            Ok(_) if any_failed && all_or_none => {
                let mut item = rolled_back();
                item["created"] = J::Bool(false);
                item
            }
            Ok((id, created)) => {
                json!({"id": id, "success": true, "errors": [], "created": created})
            }
        })
        .collect();
    json(StatusCode::OK, &J::Array(out))
}

/// Upserts one collection item; returns its id and whether it was created.
fn upsert_one(
    org: &mut Org,
    object: &str,
    key: &crate::schema::FieldDef,
    record: &J,
    wctx: WriteContext<'_>,
    undo: &mut Undo,
) -> Result<(String, bool), RecordError> {
    let parser_error = |message: &str| RecordError {
        code: "JSON_PARSER_ERROR",
        message: message.into(),
        fields: vec![],
        status: 400,
    };
    let map = record
        .as_object()
        .ok_or_else(|| parser_error("each record must be an object"))?;
    // Salesforce reads the type first: a record must open with its attributes.
    if map.keys().next().map(String::as_str) != Some("attributes") {
        return Err(parser_error(
            "Nested object for polymorphic foreign key must have an attributes field before any other fields.",
        ));
    }
    let mut fields = map.clone();
    fields.remove("attributes");
    let value = fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&key.name))
        .and_then(|(_, v)| match v {
            J::String(s) => Some(s.clone()),
            J::Number(n) => Some(n.to_string()),
            _ => None,
        });
    let index = org
        .table(object)
        .and_then(|t| t.schema.field_index(&key.name))
        .ok_or_else(RecordError::not_found)?;
    let matches = match &value {
        None => Vec::new(),
        Some(v) if key.name == "Id" => org
            .table(object)
            .and_then(|t| {
                ids::normalize(v)
                    .and_then(|id| t.index_of(&id))
                    .filter(|i| !t.records[*i].is_deleted())
            })
            .into_iter()
            .collect(),
        Some(v) => org.find_by_field(object, index, v),
    };
    match matches.as_slice() {
        [] if key.name == "Id" && value.is_some() => {
            Err(as_cross_reference(RecordError::not_found()))
        }
        [] => {
            fields.retain(|k, _| !k.eq_ignore_ascii_case("Id"));
            let id = org.create(object, &fields, wctx)?;
            undo.created(org, object, &id);
            Ok((id, true))
        }
        [one] => {
            let id = org
                .table(object)
                .map(|t| t.records[*one].id().to_string())
                .unwrap_or_default();
            fields.retain(|k, _| !k.eq_ignore_ascii_case(&key.name));
            undo.before_write(org, object, &id);
            org.update(object, &id, &fields, wctx)?;
            Ok((id, false))
        }
        _ => Err(RecordError {
            code: "DUPLICATE_EXTERNAL_ID",
            message: format!(
                "{}: more than one record found for external id field",
                key.name
            ),
            fields: vec![key.name.clone()],
            status: 300,
        }),
    }
}

async fn collection_delete(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let all_or_none = params.get("allOrNone").is_some_and(|v| v == "true");
    let list: Vec<String> = params
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if list.len() > 200 {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let now = ctx.state.clock.now_secs();
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    let wctx = WriteContext {
        user_id: &session.user_id,
        now,
        modstamp: None,
    };
    let mut undo = Undo::default();
    let results: Vec<Result<String, RecordError>> = list
        .iter()
        .map(|id| {
            let object = org
                .find_by_id(id)
                .map(|(t, _)| t.schema.name.clone())
                .ok_or_else(|| RecordError {
                    code: "ENTITY_IS_DELETED",
                    message: "entity is deleted".into(),
                    fields: vec![],
                    status: 400,
                })?;
            undo.before_write(org, &object, id);
            org.delete(&object, id, wctx)?;
            Ok(ids::normalize(id).unwrap_or_else(|| id.clone()))
        })
        .collect();
    collection_outcome(org, undo, &results, all_or_none)
}

fn collection_retrieve(
    ctx: &Ctx,
    session: &Session,
    version: &str,
    object: &str,
    ids_list: &[String],
    fields: &[String],
) -> Response {
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(object) else {
        return errors::not_found();
    };
    let mut indices = Vec::new();
    for f in fields {
        match table.schema.field_index(f) {
            Some(i) => indices.push(i),
            None => {
                return sf_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FIELD",
                    &format!(
                        "No such column '{f}' on sobject of type {}",
                        table.schema.name
                    ),
                )
            }
        }
    }
    let out: Vec<J> = ids_list
        .iter()
        .map(|id| {
            ids::normalize(id)
                .and_then(|c| table.get(&c))
                .filter(|r| !r.is_deleted())
                .map(|r| record_json(org, &table.schema, r, Some(&indices), version))
                .unwrap_or(J::Null)
        })
        .collect();
    json(StatusCode::OK, &J::Array(out))
}

fn split_list(s: Option<&String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

async fn collection_retrieve_get(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, object)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let ids_list = split_list(params.get("ids"));
    let fields = split_list(params.get("fields"));
    collection_retrieve(&ctx, &session, &v.0, &object, &ids_list, &fields)
}

async fn collection_retrieve_post(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, object)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let request: J = match errors::parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let list = |k: &str| -> Vec<String> {
        request
            .get(k)
            .and_then(J::as_array)
            .map(|a| a.iter().filter_map(J::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    collection_retrieve(&ctx, &session, &v.0, &object, &list("ids"), &list("fields"))
}
