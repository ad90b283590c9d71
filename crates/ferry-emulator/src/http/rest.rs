//! The REST API under `/services/data`: versions and resources, query and queryAll with locators, sObject describe and CRUD, upsert, replication (`updated`/`deleted`), limits and composite.

use super::errors::{self, json, not_found, sf_error, sf_error_fields};
use super::{ApiVersion, Ctx, MAX_VERSION, MIN_VERSION};
use crate::ids;
use crate::org::{Org, RecordError, WriteContext};
use crate::schema::{FieldDef, ObjectSchema};
use crate::soql;
use crate::state::{QueryCursor, Session};
use crate::value;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value as J};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Routes that need no session (the versions list).
pub fn public_routes() -> Router<Ctx> {
    Router::new().route("/services/data", get(versions))
}

/// Routes under `/services/data/vXX.X/` (behind the session gate).
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/services/data/{version}", get(resources))
        .route("/services/data/{version}/limits", get(limits))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/queryAll", get(query_all))
        .route("/services/data/{version}/query/{locator}", get(query_more))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query_more),
        )
        .route("/services/data/{version}/sobjects", get(describe_global))
        .route(
            "/services/data/{version}/sobjects/{sobject}",
            get(object_info).post(create),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/describe",
            get(describe),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/updated",
            get(updated),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/deleted",
            get(deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{id}",
            get(retrieve).patch(update).delete(delete),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
            get(retrieve_by_external_id).patch(upsert),
        )
        .merge(super::composite::routes())
}

async fn versions() -> Response {
    let list: Vec<J> = (MIN_VERSION..=MAX_VERSION)
        .map(|v| {
            json!({
                "label": super::version_label(v),
                "url": format!("/services/data/v{v}.0"),
                "version": format!("{v}.0"),
            })
        })
        .collect();
    json(StatusCode::OK, &J::Array(list))
}

fn identity_url(ctx: &Ctx, session: &Session) -> String {
    format!(
        "{}/id/{}/{}",
        ctx.base_url(),
        session.org_id,
        session.user_id
    )
}

async fn resources(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
) -> Response {
    let base = format!("/services/data/v{}", v.0);
    let mut map = Map::new();
    for name in [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "contact-tracing",
        "jsonxform",
        "chatter",
        "tabs",
        "appMenu",
        "quickActions",
        "queryAll",
        "commerce",
        "wave",
        "iot",
        "analytics",
        "search",
        "smartdatadiscovery",
        "identity",
        "composite",
        "parameterizedSearch",
        "fingerprint",
        "theme",
        "nouns",
        "domino",
        "event",
        "serviceTemplates",
        "recent",
        "connect",
        "licensing",
        "limits",
        "process",
        "async-queries",
        "query",
        "match",
        "emailConnect",
        "compactLayouts",
        "knowledgeManagement",
        "sobjects",
        "actions",
        "support",
        "jobs",
    ] {
        let url = if name == "identity" {
            identity_url(&ctx, &session)
        } else {
            format!("{base}/{name}")
        };
        map.insert(name.to_string(), J::String(url));
    }
    json(StatusCode::OK, &J::Object(map))
}

async fn limits(State(ctx): State<Ctx>, Extension(session): Extension<Session>) -> Response {
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let records: usize = org.tables.values().map(|t| t.live().count()).sum();
    let storage_mb = (records * 2 / 1024) as u64;
    json(
        StatusCode::OK,
        &json!({
            "DailyApiRequests": {"Max": org.api_daily_limit, "Remaining": org.api_daily_limit.saturating_sub(org.api_used)},
            "DailyBulkV2QueryJobs": {"Max": org.bulk_daily_limit, "Remaining": org.bulk_daily_limit.saturating_sub(org.bulk_used)},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976_562, "Remaining": 976_562},
            "DataStorageMB": {"Max": 5120, "Remaining": 5120u64.saturating_sub(storage_mb)},
            "FileStorageMB": {"Max": 5120, "Remaining": 5120},
            "ConcurrentSyncLongTxn": {"Max": 25, "Remaining": 25},
            "DailyAsyncApexExecutions": {"Max": 250_000, "Remaining": 250_000},
            "SingleEmail": {"Max": 5000, "Remaining": 5000},
            "PermissionSets": {"Max": 1500, "Remaining": 1499, "CreateCustom": {"Max": 1000, "Remaining": 999}},
        }),
    )
}

pub(crate) fn record_error(e: RecordError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    if e.fields.is_empty() {
        sf_error(status, e.code, &e.message)
    } else {
        sf_error_fields(status, e.code, &e.message, &e.fields)
    }
}

fn unknown_object(_name: &str) -> Response {
    not_found()
}

/// The `sobjects` entry of one object (describe global and basic info).
fn object_summary(schema: &ObjectSchema, version: &str) -> J {
    let base = format!("/services/data/v{version}/sobjects/{}", schema.name);
    json!({
        "activateable": false,
        "createable": true,
        "custom": schema.custom,
        "customSetting": false,
        "deletable": true,
        "deprecatedAndHidden": false,
        "feedEnabled": !schema.custom,
        "hasSubtypes": false,
        "isSubtype": false,
        "keyPrefix": schema.key_prefix,
        "label": schema.label,
        "labelPlural": schema.label_plural,
        "layoutable": true,
        "mergeable": matches!(schema.name.as_str(), "Account" | "Contact" | "Lead" | "Case"),
        "mruEnabled": true,
        "name": schema.name,
        "queryable": true,
        "replicateable": true,
        "retrieveable": true,
        "searchable": true,
        "triggerable": true,
        "undeletable": true,
        "updateable": true,
        "urls": {
            "rowTemplate": format!("{base}/{{ID}}"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "describe": format!("{base}/describe"),
            "sobject": base,
        },
    })
}

fn field_json(f: &FieldDef) -> J {
    let picklist: Vec<J> = f
        .picklist_values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"active": true, "defaultValue": i == 0 && f.name == "Status", "label": v, "validFor": null, "value": v}))
        .collect();
    let numeric = matches!(
        f.field_type,
        crate::schema::FieldType::Double
            | crate::schema::FieldType::Currency
            | crate::schema::FieldType::Percent
    );
    json!({
        "aggregatable": true,
        "autoNumber": false,
        "byteLength": if f.field_type.is_text() { f.length * 3 } else { 0 },
        "calculated": false,
        "calculatedFormula": null,
        "caseSensitive": false,
        "controllerName": null,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": null,
        "defaultedOnCreate": !f.nillable && !f.required_on_create,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": if f.field_type == crate::schema::FieldType::Int { 9 } else { 0 },
        "externalId": f.external_id,
        "filterable": true,
        "groupable": !numeric,
        "htmlFormatted": false,
        "idLookup": f.name == "Id" || f.external_id,
        "inlineHelpText": null,
        "label": f.label,
        "length": f.length,
        "name": f.name,
        "nameField": f.name_field,
        "nillable": f.nillable,
        "picklistValues": picklist,
        "precision": if numeric { 18 } else { 0 },
        "referenceTo": f.reference_to,
        "relationshipName": f.relationship_name,
        "relationshipOrder": null,
        "restrictedPicklist": false,
        "scale": if numeric { 2 } else { 0 },
        "soapType": f.field_type.soap_type(),
        "sortable": f.field_type != crate::schema::FieldType::Textarea,
        "type": f.field_type.as_str(),
        "unique": f.unique,
        "updateable": f.updateable,
    })
}

async fn describe_global(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
) -> Response {
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let mut objects: Vec<&ObjectSchema> = org.tables.values().map(|t| &t.schema).collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    json(
        StatusCode::OK,
        &json!({
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": objects.iter().map(|s| object_summary(s, &v.0)).collect::<Vec<_>>(),
        }),
    )
}

async fn object_info(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, sobject)): Path<(String, String)>,
) -> Response {
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return unknown_object(&sobject);
    };
    json(
        StatusCode::OK,
        &json!({"objectDescribe": object_summary(&table.schema, &v.0), "recentItems": []}),
    )
}

async fn describe(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, sobject)): Path<(String, String)>,
) -> Response {
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return unknown_object(&sobject);
    };
    let schema = &table.schema;
    let mut body = object_summary(schema, &v.0);
    if let J::Object(map) = &mut body {
        map.insert(
            "fields".into(),
            J::Array(schema.fields.iter().map(field_json).collect()),
        );
        let children: Vec<J> = org
            .tables
            .values()
            .flat_map(|t| {
                t.schema
                    .fields
                    .iter()
                    .filter(|f| f.reference_to.iter().any(|r| r == &schema.name) && f.custom == t.schema.custom)
                    .filter(|f| !matches!(f.name.as_str(), "CreatedById" | "LastModifiedById"))
                    .map(|f| {
                        json!({
                            "cascadeDelete": false,
                            "childSObject": t.schema.name,
                            "deprecatedAndHidden": false,
                            "field": f.name,
                            "relationshipName": format!("{}", t.schema.label_plural.replace(' ', "")),
                            "restrictedDelete": false,
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        map.insert("childRelationships".into(), J::Array(children));
        map.insert(
            "recordTypeInfos".into(),
            json!([{"active": true, "available": true, "defaultRecordTypeMapping": true, "developerName": "Master", "master": true, "name": "Master", "recordTypeId": "012000000000000AAA"}]),
        );
    }
    json(StatusCode::OK, &body)
}

/// Renders a whole record (all fields, or the listed ones) as a retrieve returns it.
pub(crate) fn record_json(
    org: &Org,
    schema: &ObjectSchema,
    record: &crate::org::Record,
    fields: Option<&[usize]>,
    version: &str,
) -> J {
    let mut map = Map::new();
    map.insert(
        "attributes".into(),
        json!({"type": schema.name, "url": format!("/services/data/v{version}/sobjects/{}/{}", schema.name, record.id())}),
    );
    let all: Vec<usize> = (0..schema.fields.len()).collect();
    for &i in fields.unwrap_or(&all) {
        map.insert(schema.fields[i].name.clone(), record.get(i).to_json());
    }
    let _ = org;
    J::Object(map)
}

#[derive(Debug, serde::Deserialize)]
struct RetrieveParams {
    fields: Option<String>,
}

async fn retrieve(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, sobject, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let params = RetrieveParams {
        fields: params.get("fields").cloned(),
    };
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return unknown_object(&sobject);
    };
    let Some(canonical) = ids::normalize(&id) else {
        // Not an id: Salesforce treats the segment as an external-id field name.
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {id}"),
        );
    };
    let Some(record) = table.get(&canonical).filter(|r| !r.is_deleted()) else {
        return not_found();
    };
    let selected = match params.fields.as_deref() {
        Some(list) => {
            let mut out = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match table.schema.field_index(name) {
                    Some(i) => out.push(i),
                    None => {
                        return sf_error(
                            StatusCode::BAD_REQUEST,
                            "INVALID_FIELD",
                            &format!(
                                "No such column '{name}' on sobject of type {}",
                                table.schema.name
                            ),
                        )
                    }
                }
            }
            Some(out)
        }
        None => None,
    };
    ctx.state
        .stats
        .records_served
        .fetch_add(1, Ordering::Relaxed);
    json(
        StatusCode::OK,
        &record_json(org, &table.schema, record, selected.as_deref(), &v.0),
    )
}

fn write_ctx<'a>(ctx: &Ctx, session: &'a Session) -> WriteContext<'a> {
    WriteContext {
        user_id: &session.user_id,
        now: ctx.state.clock.now_secs(),
        modstamp: None,
    }
}

fn body_object(body: &Bytes) -> Result<Map<String, J>, Response> {
    match errors::parse_body::<J>(body)? {
        J::Object(map) => Ok(map),
        other => Err(errors::json_parser_error(&format!(
            "Cannot deserialize instance of SObject from {} value",
            match other {
                J::Array(_) => "START_ARRAY",
                _ => "VALUE",
            }
        ))),
    }
}

async fn create(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    if org.table(&sobject).is_none() {
        return unknown_object(&sobject);
    }
    match org.create(&sobject, &input, write_ctx(&ctx, &session)) {
        Ok(id) => json(
            StatusCode::CREATED,
            &json!({"id": id, "success": true, "errors": []}),
        ),
        Err(e) => record_error(e),
    }
}

async fn update(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    if org.table(&sobject).is_none() {
        return unknown_object(&sobject);
    }
    match org.update(&sobject, &id, &input, write_ctx(&ctx, &session)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response_sf(),
        Err(e) => record_error(e),
    }
}

async fn delete(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject, id)): Path<(String, String, String)>,
) -> Response {
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    if org.table(&sobject).is_none() {
        return unknown_object(&sobject);
    }
    match org.delete(&sobject, &id, write_ctx(&ctx, &session)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response_sf(),
        Err(e) => record_error(e),
    }
}

trait EmptyResponse {
    fn into_response_sf(self) -> Response;
}

impl EmptyResponse for StatusCode {
    fn into_response_sf(self) -> Response {
        axum::response::IntoResponse::into_response(self)
    }
}

fn external_field<'a>(
    schema: &'a ObjectSchema,
    field: &str,
) -> Result<(usize, &'a FieldDef), Response> {
    match schema.field_index(field) {
        Some(i) if schema.fields[i].external_id || schema.fields[i].name == "Id" => {
            Ok((i, &schema.fields[i]))
        }
        _ => Err(sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {field}"),
        )),
    }
}

async fn retrieve_by_external_id(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, sobject, field, value)): Path<(String, String, String, String)>,
) -> Response {
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return unknown_object(&sobject);
    };
    let (index, _) = match external_field(&table.schema, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let matches = org.find_by_field(&sobject, index, &value);
    match matches.as_slice() {
        [] => not_found(),
        [one] => json(
            StatusCode::OK,
            &record_json(org, &table.schema, &table.records[*one], None, &v.0),
        ),
        many => json(
            StatusCode::MULTIPLE_CHOICES,
            &J::Array(
                many.iter()
                    .map(|i| {
                        J::String(format!(
                            "/services/data/v{}/sobjects/{}/{}",
                            v.0,
                            table.schema.name,
                            table.records[*i].id()
                        ))
                    })
                    .collect(),
            ),
        ),
    }
}

async fn upsert(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject, field, value)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let mut input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return unknown_object(&sobject);
    };
    let (index, def) = match external_field(&table.schema, &field) {
        Ok((i, f)) => (i, f.clone()),
        Err(r) => return r,
    };
    let matches = org.find_by_field(&sobject, index, &value);
    let wctx = write_ctx(&ctx, &session);
    match matches.as_slice() {
        [] => {
            if def.name == "Id" {
                return not_found();
            }
            input.insert(def.name.clone(), J::String(value));
            match org.create(&sobject, &input, wctx) {
                Ok(id) => json(
                    StatusCode::CREATED,
                    &json!({"id": id, "success": true, "errors": [], "created": true}),
                ),
                Err(e) => record_error(e),
            }
        }
        [one] => {
            let id = org
                .table(&sobject)
                .map(|t| t.records[*one].id().to_string())
                .unwrap_or_default();
            input.remove(&def.name);
            match org.update(&sobject, &id, &input, wctx) {
                Ok(()) => json(
                    StatusCode::OK,
                    &json!({"id": id, "success": true, "errors": [], "created": false}),
                ),
                Err(e) => record_error(e),
            }
        }
        many => {
            let name = org
                .table(&sobject)
                .map(|t| t.schema.name.clone())
                .unwrap_or_default();
            let urls: Vec<J> = many
                .iter()
                .filter_map(|i| {
                    org.table(&sobject).map(|t| {
                        J::String(format!(
                            "/services/data/vXX.X/sobjects/{name}/{}",
                            t.records[*i].id()
                        ))
                    })
                })
                .collect();
            json(StatusCode::MULTIPLE_CHOICES, &J::Array(urls))
        }
    }
}

/// Parses `start`/`end` of the replication resources, ignoring seconds as Salesforce does.
fn replication_window(params: &HashMap<String, String>) -> Result<(i64, i64), Response> {
    let get = |k: &str| -> Result<i64, Response> {
        let raw = params.get(k).ok_or_else(|| {
            sf_error(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                &format!("Missing required parameter: {k}"),
            )
        })?;
        let secs = value::parse_datetime(raw).ok_or_else(|| {
            sf_error(
                StatusCode::BAD_REQUEST,
                "INVALID_REPLICATION_DATE",
                &format!("{k} date cannot be parsed: {raw}"),
            )
        })?;
        Ok(secs - secs.rem_euclid(60))
    };
    let (start, end) = (get("start")?, get("end")?);
    if end < start {
        return Err(sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "end date cannot be before start date",
        ));
    }
    Ok((start, end))
}

async fn updated(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (start, end) = match replication_window(&params) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let now = ctx.state.clock.now_secs();
    if start < now - 30 * 86_400 {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "startDate cannot be more than 30 days ago",
        );
    }
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return sf_error(
            StatusCode::NOT_FOUND,
            "INVALID_TYPE",
            &format!("sObject type '{sobject}' is not supported."),
        );
    };
    let latest = end.min(now - now.rem_euclid(60));
    let ids: Vec<J> = table
        .live()
        .filter(|r| {
            let s = r.system_modstamp();
            s >= start && s < latest
        })
        .map(|r| J::String(r.id().to_string()))
        .collect();
    if ids.len() > 600_000 {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. narrow the window",
        );
    }
    json(
        StatusCode::OK,
        &json!({"ids": ids, "latestDateCovered": value::format_datetime_json(latest)}),
    )
}

async fn deleted(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Path((_, sobject)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (start, end) = match replication_window(&params) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let now = ctx.state.clock.now_secs();
    let earliest = now - 15 * 86_400;
    if start < earliest - 60 {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate and be within the last 15 days",
        );
    }
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return sf_error(
            StatusCode::NOT_FOUND,
            "INVALID_TYPE",
            &format!("sObject type '{sobject}' is not supported."),
        );
    };
    let latest = end.min(now - now.rem_euclid(60));
    let deleted: Vec<J> = table
        .records
        .iter()
        .filter(|r| !r.purged && r.is_deleted())
        .filter_map(|r| r.deleted_at.map(|d| (r, d)))
        .filter(|(_, d)| *d >= start && *d < latest)
        .map(|(r, d)| json!({"id": r.id(), "deletedDate": value::format_datetime_json(d)}))
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "deletedRecords": deleted,
            "earliestDateAvailable": value::format_datetime_json(earliest - earliest.rem_euclid(60)),
            "latestDateCovered": value::format_datetime_json(latest),
        }),
    )
}

/// Query locators expire after this long idle.
const LOCATOR_TTL_SECS: i64 = 15 * 60;
/// Default and maximum page size.
const MAX_BATCH: usize = 2000;

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| {
            s.split(',')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        })
        .map(|n| n.clamp(200, MAX_BATCH))
        .unwrap_or(MAX_BATCH)
}

/// Reads `q` from the raw query string, accepting `+` and `%20` for spaces.
fn soql_text(raw: Option<&str>) -> Option<String> {
    form_urlencoded::parse(raw?.as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.into_owned())
}

async fn query(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    run_query(&ctx, &session, &v, &headers, raw.as_deref(), false)
}

async fn query_all(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    run_query(&ctx, &session, &v, &headers, raw.as_deref(), true)
}

fn soql_error(e: soql::SoqlError) -> Response {
    sf_error(StatusCode::BAD_REQUEST, e.code, &e.message)
}

fn run_query(
    ctx: &Ctx,
    session: &Session,
    v: &ApiVersion,
    headers: &HeaderMap,
    raw: Option<&str>,
    all: bool,
) -> Response {
    let Some(text) = soql_text(raw) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let parsed = match soql::parse(&text) {
        Ok(q) => q,
        Err(e) => return soql_error(e),
    };
    let now = ctx.state.clock.now_secs();
    let result = {
        let data = ctx.state.data.read();
        let Some(org) = data.orgs.get(&session.org_id) else {
            return errors::invalid_session();
        };
        let opts = soql::ExecOptions {
            include_deleted: all,
            now,
            api_version: v.number(),
        };
        match soql::execute(&parsed, org, &opts) {
            Ok(rs) => Arc::new(rs),
            Err(e) => return soql_error(e),
        }
    };
    let batch = batch_size(headers);
    let locator = if !result.count_only && result.rows.len() > batch {
        let n = ctx.state.next_cursor.fetch_add(1, Ordering::Relaxed) + 1;
        let cursor_id = ids::make_id("01g", "5g", n)[..15].to_string();
        let mut cursors = ctx.state.cursors.lock();
        cursors.retain(|_, c| now - c.touched_at < LOCATOR_TTL_SECS);
        cursors.insert(
            cursor_id.clone(),
            QueryCursor {
                org_id: session.org_id.clone(),
                result: result.clone(),
                touched_at: now,
                batch_size: batch,
            },
        );
        Some(cursor_id)
    } else {
        None
    };
    render_page(ctx, session, v, &result, 0, batch, locator.as_deref(), all)
}

#[allow(clippy::too_many_arguments)]
fn render_page(
    ctx: &Ctx,
    session: &Session,
    v: &ApiVersion,
    result: &soql::ResultSet,
    offset: usize,
    batch: usize,
    locator: Option<&str>,
    all: bool,
) -> Response {
    let end = (offset + batch).min(result.rows.len());
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    // Hand-assembled JSON: a page is built once, so avoid an intermediate Value tree for it.
    let mut out = Vec::with_capacity(64 + (end - offset) * 400);
    out.extend_from_slice(
        format!(
            "{{\"totalSize\":{},\"done\":{}",
            result.total_size,
            end >= result.rows.len()
        )
        .as_bytes(),
    );
    if end < result.rows.len() {
        if let Some(loc) = locator {
            let kind = if all { "queryAll" } else { "query" };
            out.extend_from_slice(
                format!(
                    ",\"nextRecordsUrl\":\"/services/data/v{}/{kind}/{loc}-{end}\"",
                    v.0
                )
                .as_bytes(),
            );
        }
    }
    out.extend_from_slice(b",\"records\":[");
    if !result.count_only {
        for (n, row) in result.rows[offset..end].iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let record = soql::render_json(result, org, *row, &v.0);
            let _ = serde_json::to_writer(&mut out, &record);
        }
        ctx.state
            .stats
            .records_served
            .fetch_add((end - offset) as u64, Ordering::Relaxed);
    }
    out.extend_from_slice(b"]}");
    errors::json_bytes(StatusCode::OK, out)
}

async fn query_more(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, locator)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Response {
    let all = uri.path().contains("/queryAll/");
    let invalid = || {
        sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((cursor_id, offset)) = locator.rsplit_once('-') else {
        return invalid();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid();
    };
    let now = ctx.state.clock.now_secs();
    let (result, batch) = {
        let mut cursors = ctx.state.cursors.lock();
        let Some(cursor) = cursors.get_mut(cursor_id) else {
            return invalid();
        };
        if cursor.org_id != session.org_id
            || now - cursor.touched_at >= LOCATOR_TTL_SECS
            || offset > cursor.result.rows.len()
        {
            cursors.remove(cursor_id);
            return invalid();
        }
        cursor.touched_at = now;
        (cursor.result.clone(), cursor.batch_size)
    };
    render_page(
        &ctx,
        &session,
        &v,
        &result,
        offset,
        batch,
        Some(cursor_id),
        all,
    )
}
