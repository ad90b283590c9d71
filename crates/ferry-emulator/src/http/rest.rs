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
        .merge(super::batch::routes())
        .merge(super::search::routes())
        .merge(super::tooling::routes())
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

/// Limits a Developer Edition org reports that the emulator does not count: name and maximum
/// (the whole allowance stays available).
const FIXED_LIMITS: &[(&str, u64)] = &[
    ("AnalyticsExternalDataSizeMB", 40_960),
    ("ConcurrentAsyncGetReportInstances", 200),
    ("ConcurrentEinsteinDataInsightsStoryCreation", 5),
    ("ConcurrentEinsteinDiscoveryStoryCreation", 2),
    ("ConcurrentSyncLongTxn", 25),
    ("ConcurrentSyncReportRuns", 20),
    ("ContentDistBandwidthLimitMB", 51_200),
    ("ContentDistViewLimit", 50_000),
    ("ContentPublicationLimit", 2_500),
    ("DailyAnalyticsDataflowJobExecutions", 60),
    ("DailyAnalyticsUploadedFilesSizeMB", 51_200),
    ("DailyAsyncApexExecutions", 250_000),
    ("DailyAsyncApexTests", 500),
    ("DailyBulkApiBatches", 15_000),
    ("DailyBulkV2QueryFileStorageMB", 976_562),
    ("DailyDeliveredPlatformEvents", 10_000),
    ("DailyDurableGenericStreamingApiEvents", 10_000),
    ("DailyDurableStreamingApiEvents", 10_000),
    ("DailyEinsteinDataInsightsStoryCreation", 1_000),
    ("DailyEinsteinDiscoveryPredictAPICalls", 50_000),
    ("DailyEinsteinDiscoveryPredictionsByCDC", 500_000),
    ("DailyEinsteinDiscoveryStoryCreation", 100),
    ("DailyFunctionsApiCallLimit", 50_000),
    ("DailyGenericStreamingApiEvents", 10_000),
    ("DailyMetadataRetrievesWithDependencies", 25),
    ("DailyStandardVolumePlatformEvents", 10_000),
    ("DailyStreamingApiEvents", 10_000),
    ("DailyWorkflowEmails", 8_040),
    ("DurableStreamingApiConcurrentClients", 20),
    ("ExternalServicesActiveObjects", 3_000),
    ("ExternalServicesActiveOperations", 3_000),
    ("ExternalServicesObjectProperties", 400_000),
    ("ExternalServicesObjects", 10_000),
    ("ExternalServicesOperations", 10_000),
    ("ExternalServicesRegistrations", 700),
    ("HourlyAsyncReportRuns", 1_200),
    ("HourlyDashboardRefreshes", 200),
    ("HourlyDashboardResults", 5_000),
    ("HourlyDashboardStatuses", 999_999_999),
    ("HourlyElevateAsyncReportRuns", 1_200),
    ("HourlyElevateSyncReportRuns", 500),
    ("HourlyLongTermIdMapping", 100_000),
    ("HourlyManagedContentPublicRequests", 50_000),
    ("HourlyODataCallout", 1_000),
    ("HourlyPublishedPlatformEvents", 50_000),
    ("HourlyPublishedStandardVolumePlatformEvents", 1_000),
    ("HourlyShortTermIdMapping", 100_000),
    ("HourlySyncReportRuns", 500),
    ("HourlyTimeBasedWorkflow", 1_000),
    ("MassEmail", 10),
    ("MaxContentDocumentsLimit", 30_000_000),
    ("Package2VersionCreates", 6),
    ("Package2VersionCreatesWithoutValidation", 500),
    ("PlatformEventTriggersWithParallelProcessing", 5),
    ("ScheduledFlowRunLimit", 250_000),
    ("ScheduledPathRunLimit", 250_000),
    ("SingleEmail", 5_000),
    ("StreamingApiConcurrentClients", 20),
];

async fn limits(State(ctx): State<Ctx>, Extension(session): Extension<Session>) -> Response {
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let records: usize = org.tables.values().map(|t| t.live().count()).sum();
    let storage_mb = (records * 2 / 1024) as u64;
    let mut map = Map::new();
    for (name, max) in FIXED_LIMITS {
        map.insert(name.to_string(), json!({"Max": max, "Remaining": max}));
    }
    for (name, value) in [
        (
            "DailyApiRequests",
            json!({"Max": org.api_daily_limit, "Remaining": org.api_daily_limit.saturating_sub(org.api_used)}),
        ),
        (
            "DailyBulkV2QueryJobs",
            json!({"Max": org.bulk_daily_limit, "Remaining": org.bulk_daily_limit.saturating_sub(org.bulk_used)}),
        ),
        (
            "DataStorageMB",
            json!({"Max": 5120, "Remaining": 5120u64.saturating_sub(storage_mb)}),
        ),
        ("FileStorageMB", json!({"Max": 5120, "Remaining": 5120})),
        (
            "PermissionSets",
            json!({"Max": 1500, "Remaining": 1499, "CreateCustom": {"Max": 1000, "Remaining": 999}}),
        ),
    ] {
        map.insert(name.to_string(), value);
    }
    json(StatusCode::OK, &J::Object(map))
}

pub(crate) fn record_error(e: RecordError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    if e.lists_fields() {
        sf_error_fields(status, e.code, &e.message, &e.fields)
    } else {
        sf_error(status, e.code, &e.message)
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
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": true,
        "custom": schema.custom,
        "customSetting": false,
        "deepCloneable": false,
        "deletable": true,
        "deprecatedAndHidden": false,
        "feedEnabled": !schema.custom,
        "hasSubtypes": false,
        "isInterface": false,
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
            "compactLayouts": format!("{base}/describe/compactLayouts"),
            "rowTemplate": format!("{base}/{{ID}}"),
            "approvalLayouts": format!("{base}/describe/approvalLayouts"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "listviews": format!("{base}/listviews"),
            "describe": format!("{base}/describe"),
            "quickActions": format!("{base}/quickActions"),
            "layouts": format!("{base}/describe/layouts"),
            "sobject": base,
        },
    })
}

/// Extra type information describe gives some text fields.
fn extra_type_info(schema: &ObjectSchema, f: &FieldDef) -> Option<&'static str> {
    use crate::schema::FieldType as T;
    match f.field_type {
        T::Textarea => Some("plaintextarea"),
        T::Url if f.name.ends_with("PhotoUrl") => Some("imageurl"),
        T::String if f.name == "Name" && schema.name == "Account" => Some("switchablepersonname"),
        T::String if f.name == "Name" && schema.field("FirstName").is_some() => Some("personname"),
        _ => None,
    }
}

fn field_json(schema: &ObjectSchema, f: &FieldDef) -> J {
    use crate::schema::FieldType as T;
    let picklist: Vec<J> = f
        .picklist_values
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"active": true, "defaultValue": i == 0 && f.name == "Status", "label": v, "validFor": null, "value": v}))
        .collect();
    let numeric = matches!(f.field_type, T::Double | T::Currency | T::Percent);
    let coordinate = f.name.ends_with("Latitude") || f.name.ends_with("Longitude");
    let compound = f.field_type == T::Address;
    let long_text = f.field_type == T::Textarea && f.length > 255;
    let polymorphic = f.reference_to.len() > 1;
    let mut body = json!({
        "aggregatable": !long_text && !compound,
        "aiPredictionField": false,
        "autoNumber": f.auto_number,
        "byteLength": if f.field_type.is_text() { f.length * 3 } else { 0 },
        "calculated": false,
        "calculatedFormula": null,
        "cascadeDelete": false,
        "caseSensitive": false,
        "compoundFieldName": f.compound_of,
        "controllerName": null,
        "createable": f.createable,
        "custom": f.custom,
        "defaultValue": null,
        "defaultValueFormula": null,
        "defaultedOnCreate": !f.nillable && !f.required_on_create,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": if f.field_type == T::Int { 9 } else { 0 },
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": f.external_id,
        "extraTypeInfo": extra_type_info(schema, f),
        "filterable": !long_text,
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": !numeric && !long_text && !compound && f.field_type != T::Textarea,
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": f.is_id_lookup(),
        "inlineHelpText": null,
    });
    let rest = json!({
        "label": f.label,
        "length": f.length,
        "mask": null,
        "maskType": null,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": polymorphic,
        "nillable": f.nillable,
        "permissionable": f.nillable && f.createable && !f.name_field,
        "picklistValues": picklist,
        "polymorphicForeignKey": polymorphic,
        "precision": if numeric { 18 } else { 0 },
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": f.reference_to,
        "relationshipName": f.relationship_name,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": false,
        "scale": if coordinate { 15 } else if numeric { 2 } else { 0 },
        "searchPrefilterable": false,
        "soapType": f.field_type.soap_type(),
        "sortable": !long_text && !compound && f.field_type != T::Multipicklist,
        "type": f.field_type.as_str(),
        "unique": f.unique,
        "updateable": f.updateable,
        "writeRequiresMasterRead": false,
    });
    if let (J::Object(map), J::Object(more)) = (&mut body, rest) {
        map.extend(more);
    }
    body
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
    match basic_info_json(org, &sobject, &v.0) {
        Some(body) => json(StatusCode::OK, &body),
        None => unknown_object(&sobject),
    }
}

/// `GET /sobjects/{object}`: the summary and the most recently created records (`Id`, `Name`).
pub(crate) fn basic_info_json(org: &Org, object: &str, version: &str) -> Option<J> {
    let table = org.table(object)?;
    let schema = &table.schema;
    let name = schema.fields.iter().position(|f| f.name_field);
    let recent: Vec<J> = table
        .records
        .iter()
        .rev()
        .filter(|r| !r.purged && !r.is_deleted())
        .take(5)
        .map(|r| {
            let mut fields = vec![crate::schema::sys::ID];
            fields.extend(name);
            record_json(org, schema, r, Some(&fields), version)
        })
        .collect();
    Some(json!({"objectDescribe": object_summary(schema, version), "recentItems": recent}))
}

/// Runs a query whole (no paging) for a composite subrequest: `{totalSize, done, records}`.
pub(crate) fn query_json(
    org: &Org,
    text: &str,
    all: bool,
    now: i64,
    version: &str,
) -> Result<J, soql::SoqlError> {
    let parsed = soql::parse(text)?;
    let opts = soql::ExecOptions {
        include_deleted: all,
        now,
        api_version: version.parse().unwrap_or(0.0),
    };
    let rs = soql::execute(&parsed, org, &opts)?;
    let shown = if rs.count_only {
        0
    } else {
        rs.rows.len().min(MAX_BATCH)
    };
    let records: Vec<J> = (0..shown)
        .map(|p| soql::render_row(&rs, org, p, version))
        .collect();
    Ok(
        json!({"totalSize": rs.total_size, "done": shown == rs.rows.len() || rs.count_only, "records": records}),
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
    match describe_json(org, &sobject, &v.0, &ctx.base_url()) {
        Some(body) => {
            let mut resp = json(StatusCode::OK, &body);
            for (name, value) in describe_validators(org, &sobject) {
                let header = axum::http::HeaderName::from_bytes(name.as_bytes());
                if let (Ok(n), Ok(v)) = (header, axum::http::HeaderValue::from_str(&value)) {
                    resp.headers_mut().insert(n, v);
                }
            }
            resp
        }
        None => unknown_object(&sobject),
    }
}

/// The cache validators describe answers carry: an `ETag` that changes with the object's
/// fields and a `Last-Modified` date (the org's creation, as the schema is fixed until a
/// field is added).
pub(crate) fn describe_validators(org: &Org, object: &str) -> Vec<(&'static str, String)> {
    let Some(table) = org.table(object) else {
        return Vec::new();
    };
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    table.schema.name.hash(&mut hasher);
    for f in &table.schema.fields {
        f.name.hash(&mut hasher);
        f.field_type.as_str().hash(&mut hasher);
    }
    let created = org
        .table("User")
        .and_then(|t| t.records.first())
        .map_or(0, |r| match r.get(crate::schema::sys::CREATED_DATE) {
            crate::value::Value::DateTime(s) => *s,
            _ => 0,
        });
    let last_modified = chrono::DateTime::from_timestamp(created, 0)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default();
    vec![
        ("ETag", format!("\"{:016x}--gzip\"", hasher.finish())),
        ("Last-Modified", last_modified),
    ]
}

/// The scopes list views of an object offer.
fn supported_scopes(schema: &ObjectSchema) -> J {
    let plural = schema.label_plural.to_lowercase();
    json!([
        {"label": format!("All {plural}"), "name": "everything"},
        {"label": format!("My {plural}"), "name": "mine"},
        {"label": format!("My team's {plural}"), "name": "team"},
    ])
}

/// `GET /sobjects/{object}/describe`: the object's flags, fields, child relationships and
/// record types; `None` for an unknown object. `instance` is the org's base URL, for the UI
/// templates.
pub(crate) fn describe_json(org: &Org, object: &str, version: &str, instance: &str) -> Option<J> {
    let table = org.table(object)?;
    let schema = &table.schema;
    let mut body = object_summary(schema, version);
    let J::Object(map) = &mut body else {
        return Some(body);
    };
    map.insert(
        "fields".into(),
        J::Array(
            schema
                .fields
                .iter()
                .map(|f| field_json(schema, f))
                .collect(),
        ),
    );
    let mut tables: Vec<&crate::org::Table> = org.tables.values().collect();
    tables.sort_by(|a, b| a.schema.name.cmp(&b.schema.name));
    let children: Vec<J> = tables
        .iter()
        .flat_map(|t| {
            t.schema
                .fields
                .iter()
                .filter(|f| f.reference_to.iter().any(|r| r == &schema.name))
                .filter(|f| f.custom == t.schema.custom || f.child_relationship.is_some())
                .filter(|f| !matches!(f.name.as_str(), "CreatedById" | "LastModifiedById"))
                .map(|f| {
                    json!({
                        "cascadeDelete": false,
                        "childSObject": t.schema.name,
                        "deprecatedAndHidden": false,
                        "field": f.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": crate::schema::child_relationship_name(f, &t.schema),
                        "restrictedDelete": false,
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    map.insert("childRelationships".into(), J::Array(children));
    map.insert(
        "recordTypeInfos".into(),
        json!([{
            "active": true, "available": true, "defaultRecordTypeMapping": true,
            "developerName": "Master", "master": true, "name": "Master",
            "recordTypeId": "012000000000000AAA",
            "urls": {"layout": format!("/services/data/v{version}/sobjects/{}/describe/layouts/012000000000000AAA", schema.name)},
        }]),
    );
    for (key, value) in [
        ("actionOverrides", json!([])),
        ("compactLayoutable", J::Bool(true)),
        ("defaultImplementation", J::Null),
        ("extendedBy", J::Null),
        ("extendsInterfaces", J::Null),
        ("implementedBy", J::Null),
        ("implementsInterfaces", J::Null),
        ("listviewable", J::Null),
        ("lookupLayoutable", J::Null),
        ("namedLayoutInfos", json!([])),
        ("networkScopeFieldName", J::Null),
        ("searchLayoutable", J::Bool(true)),
        ("sobjectDescribeOption", J::String("FULL".into())),
        ("supportedScopes", supported_scopes(schema)),
    ] {
        map.insert(key.to_string(), value);
    }
    if let Some(J::Object(urls)) = map.get_mut("urls") {
        urls.insert(
            "uiDetailTemplate".into(),
            J::String(format!("{instance}/{{ID}}")),
        );
        urls.insert(
            "uiEditTemplate".into(),
            J::String(format!("{instance}/{{ID}}/e")),
        );
        urls.insert(
            "uiNewRecord".into(),
            J::String(format!("{instance}/{}/e", schema.key_prefix)),
        );
    }
    Some(body)
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
        map.insert(schema.fields[i].name.clone(), record.json_of(schema, i));
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
    Extension(v): Extension<ApiVersion>,
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
        Ok(id) => {
            let name = canonical_name(org, &sobject);
            with_location(
                json(
                    StatusCode::CREATED,
                    &json!({"id": id, "success": true, "errors": []}),
                ),
                &v.0,
                &name,
                &id,
            )
        }
        Err(e) => record_error(e),
    }
}

/// The object's API name with its canonical casing (`account` → `Account`).
fn canonical_name(org: &Org, object: &str) -> String {
    org.table(object)
        .map_or_else(|| object.to_string(), |t| t.schema.name.clone())
}

/// Adds the `Location` header Salesforce sends with a created or upserted record: its path.
fn with_location(mut resp: Response, version: &str, object: &str, id: &str) -> Response {
    let path = format!("/services/data/v{version}/sobjects/{object}/{id}");
    if let Ok(value) = axum::http::HeaderValue::from_str(&path) {
        resp.headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    resp
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
        Some(i) if schema.fields[i].is_id_lookup() => Ok((i, &schema.fields[i])),
        _ => Err(sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Provided external ID field does not exist or is not accessible: {field}"),
        )),
    }
}

/// Live records whose key field (`Id`, an external id or an `idLookup` field) has `value`.
fn records_by_key(
    org: &Org,
    object: &str,
    def: &FieldDef,
    index: usize,
    value: &str,
) -> Vec<usize> {
    if def.name != "Id" {
        return org.find_by_field(object, index, value);
    }
    org.table(object)
        .and_then(|t| {
            ids::normalize(value)
                .and_then(|id| t.index_of(&id))
                .filter(|i| !t.records[*i].is_deleted())
        })
        .into_iter()
        .collect()
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
    let (index, def) = match external_field(&table.schema, &field) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let matches = records_by_key(org, &sobject, def, index, &value);
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

#[derive(Debug, serde::Deserialize)]
struct UpsertParams {
    /// `updateOnly=true`: never create; an unmatched key answers 404.
    #[serde(rename = "updateOnly", default)]
    update_only: Option<String>,
}

async fn upsert(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, sobject, field, value)): Path<(String, String, String, String)>,
    Query(params): Query<UpsertParams>,
    body: Bytes,
) -> Response {
    let mut input = match body_object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let update_only = params
        .update_only
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("true"));
    let mut data = ctx.state.data.write();
    let Some(org) = data.orgs.get_mut(&session.org_id) else {
        return errors::invalid_session();
    };
    let Some(table) = org.table(&sobject) else {
        return unknown_object(&sobject);
    };
    let name = table.schema.name.clone();
    let (index, def) = match external_field(&table.schema, &field) {
        Ok((i, f)) => (i, f.clone()),
        Err(r) => return r,
    };
    let matches = records_by_key(org, &sobject, &def, index, &value);
    let wctx = write_ctx(&ctx, &session);
    match matches.as_slice() {
        [] => {
            if def.name == "Id" || update_only {
                return not_found();
            }
            input.insert(def.name.clone(), J::String(value));
            match org.create(&sobject, &input, wctx) {
                Ok(id) => with_location(
                    json(
                        StatusCode::CREATED,
                        &json!({"id": id, "success": true, "errors": [], "created": true}),
                    ),
                    &v.0,
                    &name,
                    &id,
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
                Ok(()) => with_location(
                    json(
                        StatusCode::OK,
                        &json!({"id": id, "success": true, "errors": [], "created": false}),
                    ),
                    &v.0,
                    &name,
                    &id,
                ),
                Err(e) => record_error(e),
            }
        }
        many => {
            let urls: Vec<J> = many
                .iter()
                .filter_map(|i| {
                    org.table(&sobject).map(|t| {
                        J::String(format!(
                            "/services/data/v{}/sobjects/{name}/{}",
                            v.0,
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
        for (n, position) in (offset..end).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let record = soql::render_row(result, org, position, &v.0);
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
