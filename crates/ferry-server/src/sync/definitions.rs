//! Sync definitions as data: which Salesforce object a sync reads, which fields map to which model fields (parent paths such as `Account.Name` included), its filter, frequency and auto-start; the pre-built catalog and user syncs declared in a YAML file.

use ferry_salesforce::bulk::ValueKind;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Default frequency of the pre-built syncs (hourly, as Nango's templates).
pub const DEFAULT_FREQUENCY_SECS: i64 = 3600;
/// Shortest frequency accepted (Nango's minimum).
pub const MIN_FREQUENCY_SECS: i64 = 30;
/// Longest frequency accepted (Nango's maximum, 31 days).
pub const MAX_FREQUENCY_SECS: i64 = 31 * 86_400;

/// One model field and the Salesforce field it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    /// The key in the model JSON (`account_name`).
    pub model_field: String,
    /// The Salesforce field, or a parent path (`Account.Name`).
    pub sf_field: String,
}

/// What one sync reads and how it shapes records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncDefinition {
    /// The sync's name (`contacts`).
    pub name: String,
    /// The Salesforce object (`Contact`, `Invoice__c`).
    pub object: String,
    /// The model records are stored under (`Contact`).
    pub model: String,
    /// The model's fields; always includes `id` ← `Id`.
    pub fields: Vec<FieldMap>,
    /// An optional SOQL condition ANDed into every query of the sync.
    pub filter: Option<String>,
    /// Seconds between runs.
    pub frequency_secs: i64,
    /// Whether the sync starts by itself on a new connection.
    pub auto_start: bool,
}

impl SyncDefinition {
    /// Salesforce record JSON (as returned by REST query, relationship objects nested) → the
    /// model JSON (keys = model_field, in definition order; absent values are `null`).
    pub fn map_record(&self, sf: &Value) -> Value {
        let mut out = Map::with_capacity(self.fields.len());
        for f in &self.fields {
            out.insert(f.model_field.clone(), lookup_path(sf, &f.sf_field));
        }
        Value::Object(out)
    }

    /// How the columns of a Bulk CSV page feed this definition's model, so a row maps straight
    /// to the model JSON without the REST-shaped record in between. `None` when a model field
    /// names a relationship object whose columns are dotted (`Account` over `Account.Name`):
    /// such a page goes through [`bulk::row_to_record`](ferry_salesforce::bulk::row_to_record)
    /// and [`Self::map_record`].
    pub fn csv_plan(&self, headers: &[String], kinds: &[ValueKind]) -> Option<CsvPlan> {
        let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let kind_at = |i: usize| kinds.get(i).copied().unwrap_or(ValueKind::Text);
        let nested = |name: &str| {
            let prefix = format!("{name}.");
            headers.iter().any(|h| {
                h.len() > prefix.len()
                    && h.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            })
        };
        let mut fields = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            let source = match column(&f.sf_field) {
                Some(i) => Some((i, kind_at(i))),
                None if nested(&f.sf_field) => return None,
                None => None,
            };
            fields.push((f.model_field.clone(), source));
        }
        let stamp = column("SystemModstamp")?;
        Some(CsvPlan {
            fields,
            id: column("Id")?,
            stamp,
            stamp_kind: kind_at(stamp),
        })
    }

    /// Content hash of a mapped model JSON (hex sha256 of its canonical JSON: keys sorted,
    /// no whitespace).
    pub fn hash(model: &Value) -> String {
        let mut hasher = Sha256::new();
        write_canonical(model, &mut hasher);
        let digest = hasher.finalize();
        let mut out = String::with_capacity(64);
        for b in digest {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// The SOQL field list (sf_field values, plus Id and SystemModstamp), each once.
    pub fn soql_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = vec!["Id".into(), "SystemModstamp".into()];
        for f in &self.fields {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&f.sf_field)) {
                out.push(f.sf_field.clone());
            }
        }
        out
    }

    /// The model field mapped from `Id`.
    pub fn id_field(&self) -> &str {
        self.fields
            .iter()
            .find(|f| f.sf_field.eq_ignore_ascii_case("Id"))
            .map(|f| f.model_field.as_str())
            .unwrap_or("id")
    }
}

/// A definition's model read straight off Bulk CSV rows (see [`SyncDefinition::csv_plan`]).
#[derive(Debug, Clone)]
pub struct CsvPlan {
    /// Model field and its column with the column's value kind (`None`: not in the page, so
    /// `null`, as [`SyncDefinition::map_record`] gives).
    fields: Vec<(String, Option<(usize, ValueKind)>)>,
    id: usize,
    stamp: usize,
    stamp_kind: ValueKind,
}

impl CsvPlan {
    /// The row's `Id` cell.
    pub fn id<'r>(&self, row: &'r csv::StringRecord) -> &'r str {
        row.get(self.id).unwrap_or_default()
    }

    /// The row's `SystemModstamp` as REST writes it.
    pub fn stamp(&self, row: &csv::StringRecord) -> Value {
        self.stamp_kind
            .to_json(row.get(self.stamp).unwrap_or_default())
    }

    /// The model JSON of a row: the same value [`SyncDefinition::map_record`] gives for the
    /// row's REST-shaped record.
    pub fn map(&self, row: &csv::StringRecord) -> Value {
        let mut out = Map::with_capacity(self.fields.len());
        for (name, source) in &self.fields {
            let value = match source {
                Some((i, kind)) => kind.to_json(row.get(*i).unwrap_or_default()),
                None => Value::Null,
            };
            out.insert(name.clone(), value);
        }
        Value::Object(out)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Feeds the canonical JSON of `value` (object keys sorted, no whitespace; the same bytes as
/// `webhooks::sorted(value).to_string()`) to `hasher` without building it.
fn write_canonical(value: &Value, hasher: &mut Sha256) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                write_scalar(k, hasher);
                hasher.update(b":");
                write_canonical(&map[k], hasher);
            }
            hasher.update(b"}");
        }
        Value::Array(items) => {
            hasher.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    hasher.update(b",");
                }
                write_canonical(item, hasher);
            }
            hasher.update(b"]");
        }
        scalar => write_scalar(scalar, hasher),
    }
}

fn write_scalar<T: serde::Serialize + ?Sized>(value: &T, hasher: &mut Sha256) {
    // serde_json writes scalars exactly as `to_string` would, here straight into the hasher.
    struct Feed<'h>(&'h mut Sha256);
    impl std::io::Write for Feed<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let _ = serde_json::to_writer(Feed(hasher), value);
}

/// Reads `Account.Name` out of `{"Account": {"Name": …}}`; keys match exactly, else
/// case-insensitively; anything missing is `null`.
fn lookup_path(record: &Value, path: &str) -> Value {
    let mut current = record;
    for segment in path.split('.') {
        let Value::Object(map) = current else {
            return Value::Null;
        };
        let next = map.get(segment).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(segment))
                .map(|(_, v)| v)
        });
        match next {
            Some(v) => current = v,
            None => return Value::Null,
        }
    }
    current.clone()
}

/// Pre-built syncs plus the user's, looked up by name or object.
#[derive(Debug, Clone)]
pub struct SyncCatalog {
    definitions: Vec<SyncDefinition>,
}

impl Default for SyncCatalog {
    fn default() -> Self {
        SyncCatalog::prebuilt()
    }
}

impl SyncCatalog {
    /// A catalog of exactly these definitions.
    pub fn new(definitions: Vec<SyncDefinition>) -> Self {
        SyncCatalog { definitions }
    }

    /// The pre-built syncs: accounts, contacts, opportunities, leads, cases, users.
    pub fn prebuilt() -> Self {
        SyncCatalog::new(prebuilt_definitions())
    }

    /// The pre-built syncs plus those of the YAML file at `path` (a user sync named like a
    /// pre-built one replaces it). `None` = pre-built only.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        let Some(path) = path else {
            return Ok(SyncCatalog::prebuilt());
        };
        let text = std::fs::read_to_string(path).map_err(|e| CatalogError {
            source_name: path.display().to_string(),
            line: None,
            message: format!("cannot read the file: {e}"),
        })?;
        SyncCatalog::from_yaml(&text, &path.display().to_string())
    }

    /// Like [`SyncCatalog::load`], from YAML text; `source_name` names it in errors.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Self, CatalogError> {
        let user = parse_user_syncs(text, source_name)?;
        let mut definitions = prebuilt_definitions();
        for def in user {
            match definitions.iter_mut().find(|d| d.name == def.name) {
                Some(existing) => *existing = def,
                None => definitions.push(def),
            }
        }
        Ok(SyncCatalog { definitions })
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&SyncDefinition> {
        self.definitions.iter().find(|d| d.name == name)
    }

    /// Every definition, pre-built first.
    pub fn all(&self) -> &[SyncDefinition] {
        &self.definitions
    }

    /// The first definition reading `object` (compared case-insensitively).
    pub fn by_object(&self, object: &str) -> Option<&SyncDefinition> {
        self.definitions
            .iter()
            .find(|d| d.object.eq_ignore_ascii_case(object))
    }

    /// The first definition storing `model`.
    pub fn by_model(&self, model: &str) -> Option<&SyncDefinition> {
        self.definitions.iter().find(|d| d.model == model)
    }
}

/// A syncs file Ferry cannot use: which file, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syncs file {source_name}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct CatalogError {
    /// The file (or a label for text).
    pub source_name: String,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

fn def(name: &str, object: &str, fields: &[(&str, &str)], filter: Option<&str>) -> SyncDefinition {
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
        filter: filter.map(str::to_string),
        frequency_secs: DEFAULT_FREQUENCY_SECS,
        auto_start: true,
    }
}

fn prebuilt_definitions() -> Vec<SyncDefinition> {
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
            None,
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
            None,
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
            None,
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
            None,
        ),
        def(
            "cases",
            "Case",
            &[
                ("id", "Id"),
                ("case_number", "CaseNumber"),
                ("subject", "Subject"),
                ("status", "Status"),
                ("priority", "Priority"),
                ("origin", "Origin"),
                ("account_id", "AccountId"),
                ("contact_id", "ContactId"),
                ("owner_id", "OwnerId"),
                ("last_modified_date", "LastModifiedDate"),
            ],
            None,
        ),
        def(
            "users",
            "User",
            &[
                ("id", "Id"),
                ("name", "Name"),
                ("email", "Email"),
                ("username", "Username"),
                ("is_active", "IsActive"),
                ("last_modified_date", "LastModifiedDate"),
            ],
            None,
        ),
    ]
}

/// Parses a frequency: seconds as a number, `30s`/`5m`/`2h`/`1d`, or Nango's
/// `every 30 minutes` / `every hour` / `every day` forms. `None` if unreadable.
pub fn parse_frequency(text: &str) -> Option<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_prefix("every").map(str::trim).unwrap_or(&t);
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = if num.is_empty() { 1 } else { num.parse().ok()? };
    let unit = unit.trim();
    let secs = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs)
}

/// `Foo`, `Foo__c`, `ns__Foo__c`: letters, digits and underscores, starting with a letter.
fn is_sf_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.ends_with('_')
}

fn is_model_field(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_model_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_sync_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The YAML shape of a syncs file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncsFile {
    #[serde(default)]
    syncs: Vec<UserSync>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSync {
    name: String,
    object: String,
    #[serde(default)]
    model: Option<String>,
    fields: serde_yaml_ng::Mapping,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    frequency: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    auto_start: Option<bool>,
}

/// The model name a user sync gets by default: the object without `__c`, namespace prefix
/// and underscores, first letter uppercase (`ns__Invoice_Line__c` → `InvoiceLine`).
fn default_model(object: &str) -> String {
    let base = object.trim_end_matches("__c");
    let base = base.rsplit("__").next().unwrap_or(base);
    base.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The first line (1-based) at or after `from` containing `needle`.
fn find_line(text: &str, needle: &str, from: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
}

fn parse_user_syncs(text: &str, source_name: &str) -> Result<Vec<SyncDefinition>, CatalogError> {
    let err = |line: Option<usize>, message: String| CatalogError {
        source_name: source_name.to_string(),
        line,
        message,
    };
    let file: SyncsFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line());
        let mut message = e.to_string();
        // The YAML error ends with its own "at line N column M"; the line is reported apart.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        err(line, message)
    })?;
    let mut out: Vec<SyncDefinition> = Vec::new();
    for (index, sync) in file.syncs.into_iter().enumerate() {
        let sync_line = find_line(text, &sync.name, 1);
        let at = |needle: &str| {
            sync_line
                .and_then(|from| find_line(text, needle, from))
                .or(sync_line)
        };
        let label = format!("sync #{} \"{}\"", index + 1, sync.name);
        if !is_sync_name(&sync.name) {
            return Err(err(
                sync_line,
                format!("{label}: a sync name uses letters, digits, '_' and '-' only"),
            ));
        }
        if out.iter().any(|d| d.name == sync.name) {
            return Err(err(
                sync_line,
                format!("{label}: the name is used by an earlier sync of the file"),
            ));
        }
        if !is_sf_identifier(&sync.object) {
            return Err(err(
                at(&sync.object),
                format!(
                    "{label}: object \"{}\" is not a Salesforce object name (e.g. Account, Invoice__c)",
                    sync.object
                ),
            ));
        }
        let model = sync.model.unwrap_or_else(|| default_model(&sync.object));
        if !is_model_name(&model) {
            return Err(err(
                at(&model),
                format!("{label}: model \"{model}\" must start with an uppercase letter and use letters, digits and '_'"),
            ));
        }
        let mut fields: Vec<FieldMap> = Vec::new();
        for (key, value) in &sync.fields {
            let (Some(model_field), Some(sf_field)) = (key.as_str(), value.as_str()) else {
                return Err(err(
                    at("fields"),
                    format!("{label}: each entry of `fields` is `model_field: SalesforceField`"),
                ));
            };
            if !is_model_field(model_field) {
                return Err(err(
                    at(model_field),
                    format!("{label}: \"{model_field}\" is not a valid model field name"),
                ));
            }
            if !sf_field.split('.').all(is_sf_identifier) {
                return Err(err(
                    at(model_field),
                    format!(
                        "{label}: field \"{model_field}\": \"{sf_field}\" is not a Salesforce field or parent path (e.g. Amount__c, Account.Name)"
                    ),
                ));
            }
            if fields.iter().any(|f| f.model_field == model_field) {
                return Err(err(
                    at(model_field),
                    format!("{label}: model field \"{model_field}\" is listed twice"),
                ));
            }
            fields.push(FieldMap {
                model_field: model_field.to_string(),
                sf_field: sf_field.to_string(),
            });
        }
        match fields.iter().find(|f| f.model_field == "id") {
            Some(f) if !f.sf_field.eq_ignore_ascii_case("Id") => {
                return Err(err(
                    at("id:"),
                    format!(
                        "{label}: the model field `id` is always the record Id, not {}",
                        f.sf_field
                    ),
                ))
            }
            Some(_) => {}
            None => fields.insert(
                0,
                FieldMap {
                    model_field: "id".into(),
                    sf_field: "Id".into(),
                },
            ),
        }
        let frequency_secs = match &sync.frequency {
            None => DEFAULT_FREQUENCY_SECS,
            Some(v) => {
                let parsed = match v {
                    serde_yaml_ng::Value::Number(n) => n.as_i64(),
                    serde_yaml_ng::Value::String(s) => parse_frequency(s),
                    _ => None,
                };
                match parsed {
                    Some(s) if (MIN_FREQUENCY_SECS..=MAX_FREQUENCY_SECS).contains(&s) => s,
                    _ => {
                        return Err(err(
                            at("frequency"),
                            format!("{label}: frequency must be between 30 seconds and 31 days, as seconds or like \"15m\", \"1h\", \"every 30 minutes\""),
                        ))
                    }
                }
            }
        };
        let filter = sync
            .filter
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty());
        if let Some(f) = &filter {
            let upper = f.to_ascii_uppercase();
            if [" ORDER BY ", " LIMIT ", " OFFSET ", "SELECT "]
                .iter()
                .any(|k| upper.contains(k) || upper.starts_with(k.trim_start()))
            {
                return Err(err(
                    at("filter"),
                    format!("{label}: filter is a WHERE condition only (no SELECT, ORDER BY, LIMIT or OFFSET)"),
                ));
            }
        }
        out.push(SyncDefinition {
            name: sync.name,
            object: sync.object,
            model,
            fields,
            filter,
            frequency_secs,
            auto_start: sync.auto_start.unwrap_or(true),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_csv_row_maps_straight_to_the_model_exactly_as_through_its_rest_shape() {
        let def = SyncDefinition {
            name: "things".into(),
            object: "Thing__c".into(),
            model: "Thing".into(),
            fields: [
                ("id", "Id"),
                ("amount", "amount__c"),
                ("open", "Open__c"),
                ("account_name", "Account.Name"),
                ("owner_email", "Owner.Email"),
                ("dropped", "Gone__c"),
                ("stamp", "SystemModstamp"),
            ]
            .into_iter()
            .map(|(m, s)| FieldMap {
                model_field: m.into(),
                sf_field: s.into(),
            })
            .collect(),
            filter: None,
            frequency_secs: DEFAULT_FREQUENCY_SECS,
            auto_start: false,
        };
        let headers: Vec<String> = [
            "Id",
            "SystemModstamp",
            "Amount__c",
            "Open__c",
            "Account.Name",
            "Owner.Email",
        ]
        .map(String::from)
        .to_vec();
        let kinds = [
            ValueKind::Text,
            ValueKind::DateTime,
            ValueKind::Number,
            ValueKind::Boolean,
            ValueKind::Text,
            ValueKind::Text,
        ];
        let rows = [
            [
                "a01",
                "2026-01-02T03:04:05.000Z",
                "12.5",
                "true",
                "Acme",
                "",
            ],
            ["a02", "2026-01-02T03:04:05.000Z", "", "false", "", "o@x.io"],
        ];
        let plan = def.csv_plan(&headers, &kinds).expect("a plan");
        for cells in rows {
            let row = csv::StringRecord::from(cells.to_vec());
            let via_rest = def.map_record(&ferry_salesforce::bulk::row_to_record(
                &headers, &kinds, &row,
            ));
            let direct = plan.map(&row);
            assert_eq!(direct, via_rest);
            assert_eq!(
                serde_json::to_string(&direct).expect("json"),
                serde_json::to_string(&via_rest).expect("json"),
                "same keys in the same order"
            );
            assert_eq!(
                SyncDefinition::hash(&direct),
                SyncDefinition::hash(&via_rest)
            );
            assert_eq!(plan.id(&row), cells[0]);
            assert_eq!(plan.stamp(&row), json!("2026-01-02T03:04:05.000+0000"));
        }
        // A field naming a relationship object (only its dotted columns exist) is left to the
        // REST-shaped path.
        let mut whole = def.clone();
        whole.fields.push(FieldMap {
            model_field: "account".into(),
            sf_field: "Account".into(),
        });
        assert!(whole.csv_plan(&headers, &kinds).is_none());
    }

    #[test]
    fn prebuilt_catalog_has_the_six_syncs_with_ids() {
        let c = SyncCatalog::prebuilt();
        let names: Vec<&str> = c.all().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "accounts",
                "contacts",
                "opportunities",
                "leads",
                "cases",
                "users"
            ]
        );
        for d in c.all() {
            assert_eq!(d.fields[0].model_field, "id");
            assert_eq!(d.fields[0].sf_field, "Id");
            assert!(d.auto_start);
        }
        assert_eq!(
            c.by_object("contact").map(|d| d.model.as_str()),
            Some("Contact")
        );
        assert_eq!(
            c.get("opportunities").map(|d| d.object.as_str()),
            Some("Opportunity")
        );
    }

    #[test]
    fn records_map_with_parent_paths_and_nulls() {
        let c = SyncCatalog::prebuilt();
        let contacts = c.get("contacts").expect("contacts");
        let sf = json!({
            "attributes": {"type": "Contact"},
            "Id": "003000000000001AAA", "FirstName": "Ada", "LastName": "Lovelace",
            "Email": null, "Account": {"attributes": {}, "Name": "Acme"},
            "LastModifiedDate": "2024-01-01T00:00:00.000+0000"
        });
        let m = contacts.map_record(&sf);
        assert_eq!(m["id"], "003000000000001AAA");
        assert_eq!(m["account_name"], "Acme");
        assert_eq!(m["email"], Value::Null);
        assert_eq!(m["phone"], Value::Null, "absent fields are null");
        let no_account = contacts.map_record(&json!({"Id": "x", "Account": null}));
        assert_eq!(no_account["account_name"], Value::Null);
        assert_eq!(
            m.as_object().map(|o| o.keys().next().cloned()),
            Some(Some("id".to_string()))
        );
    }

    #[test]
    fn the_hash_ignores_key_order_and_sees_changes() {
        let a = json!({"id": "1", "name": "x"});
        let b = json!({"name": "x", "id": "1"});
        assert_eq!(SyncDefinition::hash(&a), SyncDefinition::hash(&b));
        assert_ne!(
            SyncDefinition::hash(&a),
            SyncDefinition::hash(&json!({"id": "1", "name": "y"}))
        );
        assert_eq!(SyncDefinition::hash(&a).len(), 64);
        let nested = json!({"b": [1, {"y": "\"q\"", "x": null}], "a": 1.5});
        let expected = Sha256::digest(crate::webhooks::sorted(&nested).to_string().as_bytes());
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            SyncDefinition::hash(&nested),
            hex,
            "the canonical bytes are the sorted JSON"
        );
    }

    #[test]
    fn soql_fields_include_id_and_systemmodstamp_once() {
        let c = SyncCatalog::prebuilt();
        let f = c.get("contacts").expect("contacts").soql_fields();
        assert_eq!(&f[..2], ["Id", "SystemModstamp"]);
        assert!(f.contains(&"Account.Name".to_string()));
        assert_eq!(f.iter().filter(|x| x.as_str() == "Id").count(), 1);
    }

    #[test]
    fn user_syncs_are_read_from_yaml() {
        let yaml = r#"
syncs:
  - name: invoices
    object: Invoice__c
    fields:
      amount: Amount__c
      account_name: Account__r.Name
    filter: "Status__c != 'Draft'"
    frequency: every 15 minutes
    auto_start: false
  - name: contacts
    object: Contact
    model: Contact
    fields:
      id: Id
      email: Email
      tier: Tier__c
"#;
        let c = SyncCatalog::from_yaml(yaml, "test.yaml").expect("parses");
        let inv = c.get("invoices").expect("invoices");
        assert_eq!(inv.model, "Invoice");
        assert_eq!(inv.frequency_secs, 900);
        assert!(!inv.auto_start);
        assert_eq!(inv.fields[0].sf_field, "Id");
        assert_eq!(inv.fields[2].sf_field, "Account__r.Name");
        assert_eq!(inv.filter.as_deref(), Some("Status__c != 'Draft'"));
        let contacts = c.get("contacts").expect("replaced");
        assert_eq!(contacts.fields.len(), 3);
        assert_eq!(c.all().len(), 7);
    }

    #[test]
    fn a_bad_file_names_the_problem_and_line() {
        let yaml = "syncs:\n  - name: invoices\n    object: Invoice__c\n    fields:\n      amount: Amount c\n";
        let e = SyncCatalog::from_yaml(yaml, "s.yaml").expect_err("bad field");
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.to_string().contains("Amount c"), "{e}");
        assert!(
            e.to_string().starts_with("syncs file s.yaml, line 5:"),
            "{e}"
        );

        let e = SyncCatalog::from_yaml("syncs:\n  - name: x\n    objekt: A\n", "s.yaml")
            .expect_err("unknown key");
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("objekt"), "{e}");

        let e = SyncCatalog::from_yaml("syncs: [\n", "s.yaml").expect_err("syntax");
        assert!(e.line.is_some(), "{e}");

        let e = SyncCatalog::from_yaml(
            "syncs:\n  - name: a\n    object: A\n    fields: {x: X}\n    frequency: 5s\n",
            "s.yaml",
        )
        .expect_err("too frequent");
        assert_eq!(e.line, Some(5), "{e}");

        let e = SyncCatalog::from_yaml(
            "syncs:\n  - name: a\n    object: A\n    fields: {x: X}\n  - name: a\n    object: B\n    fields: {y: Y}\n",
            "s.yaml",
        )
        .expect_err("duplicate");
        assert!(e.message.contains("earlier sync"), "{e}");

        let e = SyncCatalog::load(Some(Path::new("/nonexistent/syncs.yaml"))).expect_err("io");
        assert!(e.message.contains("cannot read"), "{e}");
    }

    #[test]
    fn frequencies_parse_in_several_forms() {
        assert_eq!(parse_frequency("every hour"), Some(3600));
        assert_eq!(parse_frequency("every 30 minutes"), Some(1800));
        assert_eq!(parse_frequency("90"), Some(90));
        assert_eq!(parse_frequency("2h"), Some(7200));
        assert_eq!(parse_frequency("1d"), Some(86_400));
        assert_eq!(parse_frequency("often"), None);
    }
}
