//! The seam between actions and the sync definitions / records store: which model an object
//! syncs into, how its fields map, and the read-after-write into the records store.
//!
//! TEMPORARY: until the sync definitions and records store branches are merged, this holds a
//! stand-in with the contract's names; it is replaced by re-exports of `crate::sync` and calls
//! to `RecordStore` on merge.

use crate::app::AppState;
use ferry_store::{ConnectionRowId, EnvironmentId, StoreError};
use serde_json::{Map, Value};

/// One model field and the Salesforce field (or parent path) it is read from.
#[derive(Debug, Clone)]
pub struct FieldMap {
    /// Key in the model JSON.
    pub model_field: String,
    /// Salesforce field or parent path.
    pub sf_field: String,
}

/// A sync definition (stand-in).
#[derive(Debug, Clone)]
pub struct SyncDefinition {
    /// Sync name.
    pub name: String,
    /// Salesforce object.
    pub object: String,
    /// Model name.
    pub model: String,
    /// Field maps.
    pub fields: Vec<FieldMap>,
    /// SOQL condition.
    pub filter: Option<String>,
    /// Seconds between runs.
    pub frequency_secs: i64,
    /// Starts by itself on a new connection.
    pub auto_start: bool,
}

impl SyncDefinition {
    /// Salesforce record → model JSON.
    pub fn map_record(&self, sf: &Value) -> Value {
        let mut out = Map::new();
        for f in &self.fields {
            let mut cur = sf;
            let mut v = Value::Null;
            for (i, seg) in f.sf_field.split('.').enumerate() {
                match cur.get(seg) {
                    Some(next) => {
                        cur = next;
                        if i == f.sf_field.split('.').count() - 1 {
                            v = next.clone();
                        }
                    }
                    None => break,
                }
            }
            out.insert(f.model_field.clone(), v);
        }
        Value::Object(out)
    }

    /// Content hash of a model JSON.
    pub fn hash(model: &Value) -> String {
        use sha2::Digest;
        let canonical = crate::webhooks::sorted(model).to_string();
        sha2::Sha256::digest(canonical.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// SOQL field list.
    pub fn soql_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = vec!["Id".into(), "SystemModstamp".into()];
        for f in &self.fields {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&f.sf_field)) {
                out.push(f.sf_field.clone());
            }
        }
        out
    }
}

fn def(name: &str, object: &str, fields: &[(&str, &str)]) -> SyncDefinition {
    SyncDefinition {
        name: name.into(),
        object: object.into(),
        model: object.into(),
        fields: fields
            .iter()
            .map(|(m, s)| FieldMap {
                model_field: (*m).into(),
                sf_field: (*s).into(),
            })
            .collect(),
        filter: None,
        frequency_secs: 3600,
        auto_start: false,
    }
}

/// All sync definitions.
pub fn definitions(_state: &AppState) -> Vec<SyncDefinition> {
    vec![
        def(
            "accounts",
            "Account",
            &[
                ("id", "Id"),
                ("name", "Name"),
                ("type", "Type"),
                ("industry", "Industry"),
                ("website", "Website"),
                ("phone", "Phone"),
                ("billing_city", "BillingCity"),
                ("billing_country", "BillingCountry"),
                ("annual_revenue", "AnnualRevenue"),
                ("number_of_employees", "NumberOfEmployees"),
                ("description", "Description"),
                ("owner_id", "OwnerId"),
                ("last_modified_date", "LastModifiedDate"),
            ],
        ),
        def(
            "contacts",
            "Contact",
            &[
                ("id", "Id"),
                ("first_name", "FirstName"),
                ("last_name", "LastName"),
                ("email", "Email"),
                ("phone", "Phone"),
                ("title", "Title"),
                ("department", "Department"),
                ("account_id", "AccountId"),
                ("account_name", "Account.Name"),
                ("owner_id", "OwnerId"),
                ("last_modified_date", "LastModifiedDate"),
            ],
        ),
        def(
            "opportunities",
            "Opportunity",
            &[
                ("id", "Id"),
                ("name", "Name"),
                ("amount", "Amount"),
                ("stage", "StageName"),
                ("close_date", "CloseDate"),
                ("probability", "Probability"),
                ("account_id", "AccountId"),
                ("account_name", "Account.Name"),
                ("owner_id", "OwnerId"),
                ("last_modified_date", "LastModifiedDate"),
            ],
        ),
        def(
            "leads",
            "Lead",
            &[
                ("id", "Id"),
                ("first_name", "FirstName"),
                ("last_name", "LastName"),
                ("company", "Company"),
                ("email", "Email"),
                ("phone", "Phone"),
                ("title", "Title"),
                ("status", "Status"),
                ("lead_source", "LeadSource"),
                ("industry", "Industry"),
                ("owner_id", "OwnerId"),
                ("last_modified_date", "LastModifiedDate"),
            ],
        ),
    ]
}

/// The definition syncing `object`, if any.
pub fn by_object(state: &AppState, object: &str) -> Option<SyncDefinition> {
    definitions(state)
        .into_iter()
        .find(|d| d.object.eq_ignore_ascii_case(object))
}

/// The definition whose model is `model`, if any.
pub fn by_model(state: &AppState, model: &str) -> Option<SyncDefinition> {
    definitions(state).into_iter().find(|d| d.model == model)
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
