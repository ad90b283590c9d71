//! The Tooling API query subset field-discovery tools use: `tooling/query` over `EntityDefinition`, `FieldDefinition`, `CustomField` and `ValidationRule`, answered from the org's schema by running SOQL on a metadata snapshot.

use super::errors::{self, json, sf_error};
use super::{ApiVersion, Ctx};
use crate::org::Org;
use crate::schema::{FieldDef, FieldType, ObjectSchema};
use crate::soql;
use crate::state::Session;
use crate::value::Value;
use axum::extract::{Extension, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value as J};

/// Most records one tooling query answers (no locators).
const MAX_ROWS: usize = 2000;

/// The tooling routes.
pub fn routes() -> Router<Ctx> {
    Router::new().route("/services/data/{version}/tooling/query", get(query))
}

fn text(name: &str, length: u32) -> FieldDef {
    let mut f = FieldDef::new(name, FieldType::String);
    f.length = length;
    f.read_only()
}

fn flag(name: &str) -> FieldDef {
    FieldDef {
        nillable: false,
        ..FieldDef::new(name, FieldType::Boolean)
    }
    .read_only()
}

fn number(name: &str) -> FieldDef {
    FieldDef::new(name, FieldType::Int).read_only()
}

fn entity_ref() -> FieldDef {
    FieldDef::reference("EntityDefinitionId", "EntityDefinition", "EntityDefinition").read_only()
}

/// The metadata objects, with the fields the Tooling API documents for them.
fn schemas() -> Vec<ObjectSchema> {
    vec![
        ObjectSchema::new(
            "EntityDefinition",
            "Entity Definitions",
            "01I",
            vec![
                text("QualifiedApiName", 250),
                text("DeveloperName", 40),
                text("Label", 40),
                text("PluralLabel", 40),
                text("KeyPrefix", 3),
                text("NamespacePrefix", 15),
                text("DurableId", 255),
                flag("IsCustomizable"),
                flag("IsCustomSetting"),
                flag("IsQueryable"),
            ],
        ),
        ObjectSchema::new(
            "FieldDefinition",
            "Field Definitions",
            "0Fd",
            vec![
                text("QualifiedApiName", 250),
                text("DeveloperName", 40),
                text("Label", 40),
                text("DataType", 255),
                text("DurableId", 255),
                text("NamespacePrefix", 15),
                text("RelationshipName", 255),
                text("Description", 1000),
                entity_ref(),
                flag("IsNillable"),
                flag("IsCalculated"),
                flag("IsIndexed"),
                number("Length"),
                number("Precision"),
                number("Scale"),
            ],
        ),
        ObjectSchema::new(
            "CustomField",
            "Custom Fields",
            "00N",
            vec![
                text("DeveloperName", 40),
                text("TableEnumOrId", 255),
                text("FullName", 255),
                text("NamespacePrefix", 15),
                text("Description", 1000),
                text("InlineHelpText", 510),
                text("ManageableState", 40),
                entity_ref(),
                number("Length"),
                number("Precision"),
                number("Scale"),
            ],
        ),
        ObjectSchema::new(
            "ValidationRule",
            "Validation Rules",
            "03d",
            vec![
                text("ValidationName", 40),
                text("Description", 255),
                text("ErrorMessage", 255),
                text("ErrorDisplayField", 255),
                text("NamespacePrefix", 15),
                flag("Active"),
                entity_ref(),
            ],
        ),
    ]
}

/// Setup's description of a field type (`Text(255)`, `Lookup(Account)`, `Number(8, 0)`).
fn data_type(f: &FieldDef) -> String {
    match f.field_type {
        FieldType::Id => "Lookup()".into(),
        FieldType::Reference => format!("Lookup({})", f.reference_to.join(",")),
        FieldType::String => format!("Text({})", f.length),
        FieldType::Textarea if f.length > 255 => format!("Long Text Area({})", f.length),
        FieldType::Textarea => "Text Area(255)".into(),
        FieldType::Boolean => "Checkbox".into(),
        FieldType::Datetime => "Date/Time".into(),
        FieldType::Date => "Date".into(),
        FieldType::Double => "Number(18, 0)".into(),
        FieldType::Currency => "Currency(18, 0)".into(),
        FieldType::Percent => "Percent(3, 0)".into(),
        FieldType::Int => "Number(9, 0)".into(),
        FieldType::Email => "Email".into(),
        FieldType::Phone => "Phone".into(),
        FieldType::Url => format!("URL({})", f.length),
        FieldType::Picklist => "Picklist".into(),
        FieldType::Multipicklist => "Picklist (Multi-Select)".into(),
        FieldType::Combobox => "Picklist".into(),
        FieldType::Base64 => "Base64".into(),
        FieldType::Address => "Address".into(),
    }
}

/// Inserts one metadata row, setting the named values.
fn put(org: &mut Org, object: &str, values: &[(&str, Value)]) -> Option<String> {
    let schema = &org.table(object)?.schema;
    let mut row = vec![Value::Null; schema.fields.len()];
    for (name, v) in values {
        if let Some(i) = schema.field_index(name) {
            row[i] = v.clone();
        }
    }
    org.insert_raw(object, row, "005000000000000AAA", 0)
}

/// A snapshot of the org's metadata as tooling rows.
fn snapshot(org: &Org) -> Org {
    let mut meta = Org::new(org.id.clone(), &org.name, org.sandbox, &org.pod);
    meta.tables = schemas()
        .into_iter()
        .map(|s| (s.name.to_ascii_lowercase(), crate::org::Table::new(s)))
        .collect();
    let mut objects: Vec<&ObjectSchema> = org.tables.values().map(|t| &t.schema).collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    for schema in objects {
        let developer = schema.name.trim_end_matches("__c");
        let entity = put(
            &mut meta,
            "EntityDefinition",
            &[
                ("QualifiedApiName", Value::str(&schema.name)),
                ("DeveloperName", Value::str(developer)),
                ("Label", Value::str(&schema.label)),
                ("PluralLabel", Value::str(&schema.label_plural)),
                ("KeyPrefix", Value::str(&schema.key_prefix)),
                ("DurableId", Value::str(&schema.name)),
                ("IsCustomizable", Value::Bool(true)),
                ("IsCustomSetting", Value::Bool(false)),
                ("IsQueryable", Value::Bool(true)),
            ],
        )
        .unwrap_or_default();
        for f in &schema.fields {
            let durable = format!("{}.{}", schema.name, f.name);
            put(
                &mut meta,
                "FieldDefinition",
                &[
                    ("QualifiedApiName", Value::str(&f.name)),
                    ("DeveloperName", Value::str(f.name.trim_end_matches("__c"))),
                    ("Label", Value::str(&f.label)),
                    ("DataType", Value::str(data_type(f))),
                    ("DurableId", Value::str(&durable)),
                    (
                        "RelationshipName",
                        f.relationship_name
                            .as_deref()
                            .map_or(Value::Null, Value::str),
                    ),
                    ("EntityDefinitionId", Value::str(&entity)),
                    ("IsNillable", Value::Bool(f.nillable)),
                    ("IsCalculated", Value::Bool(false)),
                    ("IsIndexed", Value::Bool(f.is_id_lookup() || f.name_field)),
                    ("Length", Value::Int(i64::from(f.length))),
                    ("Precision", Value::Int(0)),
                    ("Scale", Value::Int(0)),
                ],
            );
            if f.custom {
                put(
                    &mut meta,
                    "CustomField",
                    &[
                        ("DeveloperName", Value::str(f.name.trim_end_matches("__c"))),
                        ("TableEnumOrId", Value::str(&schema.name)),
                        ("FullName", Value::str(&durable)),
                        ("ManageableState", Value::str("unmanaged")),
                        ("EntityDefinitionId", Value::str(&entity)),
                        ("Length", Value::Int(i64::from(f.length))),
                        ("Precision", Value::Int(0)),
                        ("Scale", Value::Int(0)),
                    ],
                );
            }
        }
    }
    meta
}

async fn query(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = raw.as_deref().and_then(|raw| {
        form_urlencoded::parse(raw.as_bytes())
            .find(|(k, _)| k == "q")
            .map(|(_, v)| v.into_owned())
    });
    let Some(q) = q else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let parsed = match soql::parse(&q) {
        Ok(p) => p,
        Err(e) => return sf_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let meta = {
        let data = ctx.state.data.read();
        let Some(org) = data.orgs.get(&session.org_id) else {
            return errors::invalid_session();
        };
        snapshot(org)
    };
    let opts = soql::ExecOptions {
        include_deleted: false,
        now: ctx.state.clock.now_secs(),
        api_version: v.number(),
    };
    let rs = match soql::execute(&parsed, &meta, &opts) {
        Ok(rs) => rs,
        Err(e) => return sf_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    };
    let shown = if rs.count_only {
        0
    } else {
        rs.rows.len().min(MAX_ROWS)
    };
    let tooling_path = format!("/services/data/v{}/tooling/sobjects/", v.0);
    let records: Vec<J> = (0..shown)
        .map(|p| {
            let mut r = soql::render_row(&rs, &meta, p, &v.0);
            if let Some(J::String(url)) = r.pointer_mut("/attributes/url") {
                *url = url.replacen(
                    &format!("/services/data/v{}/sobjects/", v.0),
                    &tooling_path,
                    1,
                );
            }
            r
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "size": rs.total_size,
            "totalSize": rs.total_size,
            "done": shown == rs.rows.len() || rs.count_only,
            "queryLocator": null,
            "entityTypeName": rs.object,
            "records": records,
        }),
    )
}
