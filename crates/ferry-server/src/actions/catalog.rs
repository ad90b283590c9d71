//! The catalog of pre-built actions: each one's name, description, JSON Schema for input and
//! output, what it does and whether repeating it is safe; plus input validation with a message
//! naming the bad field.

use super::models::SyncDefinition;
use serde_json::{json, Value};

/// An object or field API name.
const API_NAME: &str = "^[A-Za-z][A-Za-z0-9_]{0,79}$";
/// A 15- or 18-character record id.
const RECORD_ID: &str = "^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$";

/// What an action does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionKind {
    /// `create-record`.
    CreateRecord,
    /// `update-record`.
    UpdateRecord,
    /// `upsert-record`.
    UpsertRecord,
    /// `delete-record`.
    DeleteRecord,
    /// `get-record`.
    GetRecord,
    /// `create-<model>` on the sync named here.
    CreateModel(String),
    /// `update-<model>` on the sync named here.
    UpdateModel(String),
    /// `query`.
    Query,
    /// `describe-object`.
    DescribeObject,
    /// `fetch-fields`.
    FetchFields,
    /// `describe-global`.
    DescribeGlobal,
    /// `whoami`.
    Whoami,
    /// `get-limits`.
    GetLimits,
    /// `composite`.
    Composite,
}

/// One action of the catalog.
#[derive(Debug)]
pub struct ActionSpec {
    /// `create-record`, …
    pub name: String,
    /// One line for people and LLM tools.
    pub description: String,
    /// JSON Schema of `input`.
    pub input_schema: Value,
    /// JSON Schema of the output.
    pub output_schema: Value,
    /// The model it writes or returns, for `GET /scripts/config`.
    pub model: Option<String>,
    /// What it does.
    pub kind: ActionKind,
    /// Whether sending it twice cannot make a second effect (reads, update, upsert, delete).
    /// Non-idempotent writes are never retried after an ambiguous failure.
    pub idempotent: bool,
    validator: jsonschema::Validator,
}

impl ActionSpec {
    fn new(
        name: &str,
        description: &str,
        kind: ActionKind,
        idempotent: bool,
        model: Option<&str>,
        input_schema: Value,
        output_schema: Value,
    ) -> Self {
        let validator = jsonschema::draft7::new(&input_schema)
            .unwrap_or_else(|e| panic!("the built-in schema of {name} is invalid: {e}"));
        ActionSpec {
            name: name.into(),
            description: description.into(),
            input_schema,
            output_schema,
            model: model.map(str::to_string),
            kind,
            idempotent,
            validator,
        }
    }

    /// Checks `input` against the input schema; the error names the first bad field
    /// (`input.fields: required`).
    pub fn validate(&self, input: &Value) -> Result<(), String> {
        let Some(error) = self.validator.iter_errors(input).next() else {
            return Ok(());
        };
        let mut path: Vec<String> = error
            .instance_path()
            .as_str()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let message = match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                path.push(property.as_str().unwrap_or_default().to_string());
                "required".to_string()
            }
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                if let Some(first) = unexpected.first() {
                    path.push(first.clone());
                }
                "unknown field".to_string()
            }
            _ => error.to_string(),
        };
        let mut at = String::from("input");
        for p in path {
            at.push('.');
            at.push_str(&p);
        }
        Err(format!("{at}: {message}"))
    }
}

fn object_schema(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn fields_schema() -> Value {
    json!({"type": "object", "minProperties": 1, "propertyNames": {"pattern": API_NAME},
           "description": "Salesforce field API names and values"})
}

/// The JSON type a model field takes, from its Salesforce field.
fn model_field_type(sf_field: &str) -> Value {
    match sf_field {
        "AnnualRevenue" | "Amount" | "Probability" => json!({"type": ["number", "null"]}),
        "NumberOfEmployees" => json!({"type": ["integer", "null"]}),
        "CloseDate" => json!({"type": ["string", "null"], "format": "date"}),
        "IsActive" => json!({"type": ["boolean", "null"]}),
        _ => json!({"type": ["string", "null"]}),
    }
}

/// The model fields an action may write: not `id`, not read-only stamps, not parent paths.
pub fn writable_fields(def: &SyncDefinition) -> impl Iterator<Item = &super::models::FieldMap> {
    def.fields.iter().filter(|f| {
        !f.sf_field.contains('.')
            && !f.sf_field.eq_ignore_ascii_case("Id")
            && !matches!(
                f.sf_field.as_str(),
                "LastModifiedDate" | "SystemModstamp" | "CreatedDate" | "CaseNumber"
            )
    })
}

/// Model fields required to create a record of a pre-built object.
fn required_on_create(object: &str) -> &'static [&'static str] {
    match object {
        "Contact" => &["last_name"],
        "Account" => &["name"],
        "Opportunity" => &["name", "stage", "close_date"],
        "Lead" => &["last_name", "company"],
        _ => &[],
    }
}

/// Objects that get `create-<x>` / `update-<x>` actions, with the action suffix.
const CONVENIENCE: &[(&str, &str)] = &[
    ("Contact", "contact"),
    ("Account", "account"),
    ("Opportunity", "opportunity"),
    ("Lead", "lead"),
];

fn model_output(def: &SyncDefinition) -> Value {
    let mut props = serde_json::Map::new();
    for f in &def.fields {
        props.insert(f.model_field.clone(), model_field_type(&f.sf_field));
    }
    json!({"type": "object", "properties": props, "required": ["id"]})
}

/// Builds the catalog (the convenience actions follow the sync definitions' models).
pub fn build(definitions: &[SyncDefinition]) -> Vec<ActionSpec> {
    let record_ref = json!({"type": "object", "properties": {"id": {"type": "string"}, "success": {"type": "boolean"}}, "required": ["id", "success"]});
    let mut out = vec![
        ActionSpec::new(
            "create-record",
            "Creates a record of any object. Not retried after an ambiguous failure: use upsert-record with an external id to retry safely.",
            ActionKind::CreateRecord,
            false,
            None,
            object_schema(
                json!({"object": {"type": "string", "pattern": API_NAME}, "fields": fields_schema()}),
                &["object", "fields"],
            ),
            record_ref.clone(),
        ),
        ActionSpec::new(
            "update-record",
            "Updates fields of a record of any object.",
            ActionKind::UpdateRecord,
            true,
            None,
            object_schema(
                json!({"object": {"type": "string", "pattern": API_NAME}, "id": {"type": "string", "pattern": RECORD_ID}, "fields": fields_schema()}),
                &["object", "id", "fields"],
            ),
            record_ref.clone(),
        ),
        ActionSpec::new(
            "upsert-record",
            "Creates or updates the record whose external id field has the given value: the safe way to retry a create.",
            ActionKind::UpsertRecord,
            true,
            None,
            object_schema(
                json!({
                    "object": {"type": "string", "pattern": API_NAME},
                    "external_id_field": {"type": "string", "pattern": API_NAME},
                    "external_id": {"type": "string", "minLength": 1, "maxLength": 255},
                    "fields": {"type": "object", "propertyNames": {"pattern": API_NAME}},
                }),
                &["object", "external_id_field", "external_id", "fields"],
            ),
            json!({"type": "object", "properties": {"id": {"type": ["string", "null"]}, "created": {"type": "boolean"}, "success": {"type": "boolean"}}, "required": ["created", "success"]}),
        ),
        ActionSpec::new(
            "delete-record",
            "Deletes a record of any object.",
            ActionKind::DeleteRecord,
            true,
            None,
            object_schema(
                json!({"object": {"type": "string", "pattern": API_NAME}, "id": {"type": "string", "pattern": RECORD_ID}}),
                &["object", "id"],
            ),
            record_ref,
        ),
        ActionSpec::new(
            "get-record",
            "Reads a record of any object, with only the given fields when listed.",
            ActionKind::GetRecord,
            true,
            None,
            object_schema(
                json!({"object": {"type": "string", "pattern": API_NAME}, "id": {"type": "string", "pattern": RECORD_ID},
                       "fields": {"type": "array", "items": {"type": "string", "pattern": API_NAME}, "maxItems": 500}}),
                &["object", "id"],
            ),
            json!({"type": "object", "description": "The record as Salesforce returns it", "properties": {"Id": {"type": "string"}}}),
        ),
    ];
    for (object, suffix) in CONVENIENCE {
        let Some(def) = definitions.iter().find(|d| d.object == *object) else {
            continue;
        };
        let mut props = serde_json::Map::new();
        for f in writable_fields(def) {
            props.insert(f.model_field.clone(), model_field_type(&f.sf_field));
        }
        let create_props = Value::Object(props.clone());
        let mut update_props = props;
        update_props.insert("id".into(), json!({"type": "string", "pattern": RECORD_ID}));
        out.push(ActionSpec::new(
            &format!("create-{suffix}"),
            &format!("Creates a {object} from {} model fields; returns the stored model record. Not retried after an ambiguous failure.", def.model),
            ActionKind::CreateModel(def.name.clone()),
            false,
            Some(&def.model),
            {
                let mut s = object_schema(create_props, required_on_create(object));
                s["minProperties"] = json!(1);
                s
            },
            model_output(def),
        ));
        out.push(ActionSpec::new(
            &format!("update-{suffix}"),
            &format!(
                "Updates a {object} from {} model fields; returns the stored model record.",
                def.model
            ),
            ActionKind::UpdateModel(def.name.clone()),
            true,
            Some(&def.model),
            {
                let mut s = object_schema(Value::Object(update_props), &["id"]);
                s["minProperties"] = json!(2);
                s
            },
            model_output(def),
        ));
    }
    out.extend([
        ActionSpec::new(
            "query",
            "Runs a SOQL query, following nextRecordsUrl until `limit` records (default 1000) are read.",
            ActionKind::Query,
            true,
            None,
            object_schema(
                json!({"query": {"type": "string", "minLength": 1, "maxLength": 100000}, "limit": {"type": "integer", "minimum": 1, "maximum": 50000}}),
                &["query"],
            ),
            json!({"type": "object", "properties": {"records": {"type": "array"}, "total_size": {"type": "integer"}, "done": {"type": "boolean"}, "next_records_url": {"type": ["string", "null"]}}, "required": ["records", "total_size", "done"]}),
        ),
        ActionSpec::new(
            "describe-object",
            "Salesforce's describe of one object (fields, relationships, record types), custom fields included.",
            ActionKind::DescribeObject,
            true,
            None,
            object_schema(json!({"object": {"type": "string", "pattern": API_NAME}}), &["object"]),
            json!({"type": "object", "properties": {"name": {"type": "string"}, "fields": {"type": "array"}}}),
        ),
        ActionSpec::new(
            "fetch-fields",
            "The fields of one object, custom fields included: name, label, type, whether required, createable and updateable.",
            ActionKind::FetchFields,
            true,
            None,
            object_schema(json!({"object": {"type": "string", "pattern": API_NAME}}), &["object"]),
            json!({"type": "object", "properties": {"object": {"type": "string"}, "fields": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "label": {"type": "string"}, "type": {"type": "string"}, "required": {"type": "boolean"},
                "custom": {"type": "boolean"}, "createable": {"type": "boolean"}, "updateable": {"type": "boolean"},
                "reference_to": {"type": "array"}, "picklist_values": {"type": "array"}}}}}, "required": ["object", "fields"]}),
        ),
        ActionSpec::new(
            "describe-global",
            "The org's objects (name, label, custom, createable, queryable).",
            ActionKind::DescribeGlobal,
            true,
            None,
            object_schema(json!({}), &[]),
            json!({"type": "object", "properties": {"sobjects": {"type": "array"}}}),
        ),
        ActionSpec::new(
            "whoami",
            "The connected Salesforce user (OpenID userinfo).",
            ActionKind::Whoami,
            true,
            None,
            object_schema(json!({}), &[]),
            json!({"type": "object", "properties": {"id": {"type": "string"}, "email": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]},
                   "username": {"type": ["string", "null"]}, "organization_id": {"type": ["string", "null"]}}, "required": ["id"]}),
        ),
        ActionSpec::new(
            "get-limits",
            "The org's limits (daily API requests and the rest), as Salesforce reports them.",
            ActionKind::GetLimits,
            true,
            None,
            object_schema(json!({}), &[]),
            json!({"type": "object", "properties": {"DailyApiRequests": {"type": "object"}}}),
        ),
        ActionSpec::new(
            "composite",
            "Up to 25 subrequests in one call (`/composite`), all-or-none when asked; later requests may reference earlier results (@{ref.id}). Not retried after an ambiguous failure when it creates.",
            ActionKind::Composite,
            false,
            None,
            object_schema(
                json!({
                    "all_or_none": {"type": "boolean"},
                    "requests": {"type": "array", "minItems": 1, "maxItems": 25, "items": {
                        "type": "object",
                        "properties": {
                            "method": {"enum": ["GET", "POST", "PATCH", "PUT", "DELETE"]},
                            "url": {"type": "string", "pattern": "^/(sobjects|query|queryAll|limits)(/|\\?|$)", "description": "relative to /services/data/vXX.X, e.g. /sobjects/Contact"},
                            "reference_id": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,79}$"},
                            "body": {"type": "object"},
                        },
                        "required": ["method", "url", "reference_id"],
                        "additionalProperties": false,
                    }},
                }),
                &["requests"],
            ),
            json!({"type": "object", "properties": {"responses": {"type": "array", "items": {"type": "object", "properties": {
                "reference_id": {"type": "string"}, "status": {"type": "integer"}, "body": {}}}}}, "required": ["responses"]}),
        ),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> ActionSpec {
        build(&[])
            .into_iter()
            .find(|s| s.name == name)
            .expect("spec")
    }

    #[test]
    fn validation_names_the_bad_field() {
        let create = spec("create-record");
        assert_eq!(
            create.validate(&json!({"object": "Contact"})),
            Err("input.fields: required".into())
        );
        assert!(matches!(
            create.validate(&json!({"object": "Contact/../x", "fields": {"A": 1}})),
            Err(m) if m.starts_with("input.object: ")
        ));
        assert_eq!(
            create.validate(&json!({"object": "Contact", "fields": {"A": 1}, "x": 1})),
            Err("input.x: unknown field".into())
        );
        assert!(create
            .validate(&json!({"object": "Contact", "fields": {"LastName": "x"}}))
            .is_ok());
        let q = spec("query");
        assert!(matches!(
            q.validate(&json!({"query": "SELECT Id FROM Contact", "limit": 0})),
            Err(m) if m.starts_with("input.limit: ")
        ));
    }
}
