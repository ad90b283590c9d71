//! One org's data: its object tables, records (with system fields), recycle bin, and the write rules shared by REST, composite and the admin API.

use crate::ids;
use crate::schema::{sys, FieldDef, FieldType, ObjectSchema};
use crate::value::{self, Value};
use compact_str::CompactString;
use std::collections::HashMap;

/// One stored record: values in the order of its object's fields.
///
/// A record created before a custom field was added is shorter than the schema; missing
/// trailing values read as `Null`.
#[derive(Debug, Clone)]
pub struct Record {
    /// Field values by schema position.
    pub fields: Vec<Value>,
    /// Hard-deleted (recycle bin emptied): invisible to everything, kept to keep indices stable.
    pub purged: bool,
    /// When the record went to the recycle bin (epoch seconds), for `getDeleted`.
    pub deleted_at: Option<i64>,
}

impl Record {
    /// The value at a schema position.
    pub fn get(&self, index: usize) -> &Value {
        self.fields.get(index).unwrap_or(&Value::Null)
    }

    /// The 18-character id.
    pub fn id(&self) -> &str {
        self.get(sys::ID).as_str().unwrap_or_default()
    }

    /// Whether the record is in the recycle bin.
    pub fn is_deleted(&self) -> bool {
        matches!(self.get(sys::IS_DELETED), Value::Bool(true))
    }

    /// `SystemModstamp` in epoch seconds.
    pub fn system_modstamp(&self) -> i64 {
        match self.get(sys::SYSTEM_MODSTAMP) {
            Value::DateTime(s) => *s,
            _ => 0,
        }
    }

    /// A field's JSON value; a compound address is assembled from its parts (`null` when all
    /// of them are empty).
    pub fn json_of(&self, schema: &ObjectSchema, index: usize) -> serde_json::Value {
        let Some(field) = schema.fields.get(index) else {
            return serde_json::Value::Null;
        };
        match (field.field_type, self.get(index)) {
            // Unset checkboxes are not stored: they read as false.
            (FieldType::Boolean, Value::Null) => return serde_json::Value::Bool(false),
            (FieldType::Address, _) => {}
            (_, v) => return v.to_json(),
        }
        let prefix = field.name.strip_suffix("Address").unwrap_or_default();
        let mut map = serde_json::Map::new();
        let mut any = false;
        for (key, suffix) in crate::catalog::ADDRESS_PARTS {
            let v = schema
                .field_index(&format!("{prefix}{suffix}"))
                .map_or(serde_json::Value::Null, |i| self.get(i).to_json());
            any |= !v.is_null();
            map.insert(key.to_string(), v);
        }
        if any {
            serde_json::Value::Object(map)
        } else {
            serde_json::Value::Null
        }
    }

    /// Sets the value at a schema position, growing a short record.
    pub(crate) fn set(&mut self, index: usize, v: Value) {
        if self.fields.len() <= index {
            self.fields.resize(index + 1, Value::Null);
        }
        self.fields[index] = v;
    }
}

/// All records of one object in one org.
#[derive(Debug, Clone)]
pub struct Table {
    /// The object's fields.
    pub schema: ObjectSchema,
    /// Records in creation order; indices never change.
    pub records: Vec<Record>,
    /// 15-character id to record index.
    by_id15: HashMap<CompactString, u32>,
    /// Next id sequence number.
    next_seq: u64,
}

impl Table {
    /// An empty table.
    pub fn new(schema: ObjectSchema) -> Self {
        Table {
            schema,
            records: Vec::new(),
            by_id15: HashMap::new(),
            next_seq: 1,
        }
    }

    /// The index of a live or recycled (not purged) record by 15- or 18-character id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        let idx = *self.by_id15.get(ids::id15(id))? as usize;
        (!self.records[idx].purged).then_some(idx)
    }

    /// A record by id (live or in the recycle bin).
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.index_of(id).map(|i| &self.records[i])
    }

    /// Reserves capacity for `n` more records.
    pub fn reserve(&mut self, n: usize) {
        self.records.reserve(n);
        self.by_id15.reserve(n);
    }

    fn next_id(&mut self, pod: &str) -> String {
        let id = ids::make_id(&self.schema.key_prefix, pod, self.next_seq);
        self.next_seq += 1;
        id
    }

    /// Live (not deleted, not purged) records.
    pub fn live(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().filter(|r| !r.purged && !r.is_deleted())
    }
}

/// A record-level error in Salesforce's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// `errorCode` / `statusCode`, e.g. `REQUIRED_FIELD_MISSING`.
    pub code: &'static str,
    /// Human-readable message as Salesforce words it.
    pub message: String,
    /// Fields involved.
    pub fields: Vec<String>,
    /// HTTP status a single-record call answers with.
    pub status: u16,
}

impl RecordError {
    fn new(code: &'static str, message: impl Into<String>, fields: Vec<String>) -> Self {
        RecordError {
            code,
            message: message.into(),
            fields,
            status: 400,
        }
    }

    fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Whether a REST answer carries the `fields` key: Salesforce sends it when it names fields,
    /// and as an empty list for a record already in the recycle bin.
    pub fn lists_fields(&self) -> bool {
        !self.fields.is_empty() || self.code == "ENTITY_IS_DELETED"
    }

    /// The unknown-record answer.
    pub fn not_found() -> Self {
        RecordError::new("NOT_FOUND", "The requested resource does not exist", vec![])
            .with_status(404)
    }
}

/// One org: identity, limits and data.
#[derive(Debug, Clone)]
pub struct Org {
    /// 18-character org id (`00D…`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether this is a sandbox (logs in through the sandbox host).
    pub sandbox: bool,
    /// Which instance listener serves it: 0 = its home listener, 1 = the second instance.
    pub instance: u8,
    /// Daily API request allowance.
    pub api_daily_limit: u64,
    /// Requests counted today.
    pub api_used: u64,
    /// Daily Bulk API 2.0 query job allowance.
    pub bulk_daily_limit: u64,
    /// Bulk query jobs created today.
    pub bulk_used: u64,
    /// When set, every REST call answers `API_DISABLED_FOR_ORG`.
    pub api_disabled: bool,
    /// A deactivated org: logins and token grants fail with `inactive_org`.
    pub active: bool,
    /// Logins and token grants fail with `invalid_grant` "ip restricted or invalid login hours".
    pub login_restricted: bool,
    /// Token grants fail with `rate_limit_exceeded` (too many login attempts).
    pub token_rate_limited: bool,
    /// Two-character pod code used in generated ids.
    pub pod: String,
    /// Tables by lower-cased object name.
    pub tables: HashMap<String, Table>,
    /// Next case number.
    next_case_number: u64,
}

/// Who performs a write and when (epoch seconds).
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    /// The acting user's id.
    pub user_id: &'a str,
    /// The time to stamp.
    pub now: i64,
    /// An explicit `SystemModstamp` (admin writes modelling late commits).
    pub modstamp: Option<i64>,
}

impl Org {
    /// A new org with the standard objects and no records.
    pub fn new(id: String, name: &str, sandbox: bool, pod: &str) -> Self {
        let tables = crate::schema::standard_objects()
            .into_iter()
            .map(|s| (s.name.to_ascii_lowercase(), Table::new(s)))
            .collect();
        Org {
            id,
            name: name.to_string(),
            sandbox,
            instance: 0,
            api_daily_limit: 1_000_000,
            api_used: 0,
            bulk_daily_limit: 10_000,
            bulk_used: 0,
            api_disabled: false,
            active: true,
            login_restricted: false,
            token_rate_limited: false,
            pod: pod.to_string(),
            tables,
            next_case_number: 1,
        }
    }

    /// A table by case-insensitive object name.
    pub fn table(&self, object: &str) -> Option<&Table> {
        self.tables.get(&object.to_ascii_lowercase())
    }

    /// A mutable table by case-insensitive object name.
    pub fn table_mut(&mut self, object: &str) -> Option<&mut Table> {
        self.tables.get_mut(&object.to_ascii_lowercase())
    }

    /// Finds a record by id in any table, from its key prefix.
    pub fn find_by_id(&self, id: &str) -> Option<(&Table, &Record)> {
        let prefix = id.get(..3)?;
        let table = self
            .tables
            .values()
            .find(|t| t.schema.key_prefix == prefix)?;
        Some((table, table.get(id)?))
    }

    /// The object and reference field behind a child relationship of `parent` (`Contacts` on
    /// Account → `Contact`, `AccountId`), case-insensitively.
    pub fn child_link(&self, parent: &str, relationship: &str) -> Option<(String, String)> {
        let parent = self.table(parent)?.schema.name.clone();
        let mut tables: Vec<&Table> = self.tables.values().collect();
        tables.sort_by(|a, b| a.schema.name.cmp(&b.schema.name));
        tables.into_iter().find_map(|t| {
            t.schema
                .fields
                .iter()
                .filter(|f| f.reference_to.contains(&parent))
                .find(|f| {
                    crate::schema::child_relationship_name(f, &t.schema)
                        .eq_ignore_ascii_case(relationship)
                })
                .map(|f| (t.schema.name.clone(), f.name.clone()))
        })
    }

    /// Defines a custom object (or adds fields to an existing one).
    pub fn define_object(
        &mut self,
        name: &str,
        label_plural: &str,
        fields: Vec<FieldDef>,
    ) -> Result<(), RecordError> {
        if let Some(table) = self.table_mut(name) {
            for f in fields {
                table.schema.add_field(f);
            }
            return Ok(());
        }
        if !name.ends_with("__c") {
            return Err(RecordError::new(
                "INVALID_TYPE",
                format!("custom object names must end in __c: {name}"),
                vec![],
            ));
        }
        let n = self.tables.values().filter(|t| t.schema.custom).count() as u64;
        let prefix = format!("a0{}", ids::make_id("a00", "00", n).as_bytes()[14] as char);
        let mut fields = fields;
        if !fields.iter().any(|f| f.name.eq_ignore_ascii_case("Name")) {
            fields.insert(
                0,
                FieldDef {
                    name_field: true,
                    ..FieldDef::new("Name", FieldType::String)
                },
            );
        }
        fields.push(FieldDef::reference("OwnerId", "User", "Owner"));
        let schema = ObjectSchema::new(name, label_plural, &prefix, fields);
        self.tables
            .insert(name.to_ascii_lowercase(), Table::new(schema));
        Ok(())
    }

    /// Creates a record from JSON input, applying Salesforce's validation; returns the new id.
    pub fn create(
        &mut self,
        object: &str,
        input: &serde_json::Map<String, serde_json::Value>,
        ctx: WriteContext<'_>,
    ) -> Result<String, RecordError> {
        let pod = self.pod.clone();
        let case_number = self.next_case_number;
        let table = self.table_mut(object).ok_or_else(|| invalid_type(object))?;
        let mut values = Vec::with_capacity(table.schema.fields.len());
        values.resize(table.schema.fields.len(), Value::Null);
        let assigned = convert_input(&table.schema, input, true)?;
        for (i, v) in assigned {
            values[i] = v;
        }
        let missing: Vec<String> = table
            .schema
            .fields
            .iter()
            .enumerate()
            .filter(|(i, f)| f.required_on_create && values[*i].is_null())
            .map(|(_, f)| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(RecordError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            ));
        }
        check_unique(table, &values, None)?;
        let id = table.next_id(&pod);
        let stamp = ctx.modstamp.unwrap_or(ctx.now);
        values[sys::ID] = Value::str(&id);
        values[sys::IS_DELETED] = Value::Bool(false);
        values[sys::CREATED_DATE] = Value::DateTime(ctx.now.min(stamp));
        values[sys::CREATED_BY_ID] = Value::str(ctx.user_id);
        values[sys::LAST_MODIFIED_DATE] = Value::DateTime(stamp);
        values[sys::LAST_MODIFIED_BY_ID] = Value::str(ctx.user_id);
        values[sys::SYSTEM_MODSTAMP] = Value::DateTime(stamp);
        if let Some(i) = table.schema.field_index("OwnerId") {
            if values[i].is_null() {
                values[i] = Value::str(ctx.user_id);
            }
        }
        let is_case = table.schema.name == "Case";
        let mut record = Record {
            fields: values,
            purged: false,
            deleted_at: None,
        };
        apply_derived(
            &table.schema,
            &mut record,
            if is_case { Some(case_number) } else { None },
        );
        trim_trailing_nulls(&mut record.fields);
        table.by_id15.insert(
            CompactString::new(ids::id15(&id)),
            table.records.len() as u32,
        );
        table.records.push(record);
        if is_case {
            self.next_case_number += 1;
        }
        Ok(id)
    }

    /// Inserts a fully formed record without validation (seeding); returns its id.
    pub fn insert_raw(
        &mut self,
        object: &str,
        mut values: Vec<Value>,
        user_id: &str,
        stamp: i64,
    ) -> Option<String> {
        let pod = self.pod.clone();
        let case_number = self.next_case_number;
        let table = self.table_mut(object)?;
        let floor = table.schema.value_floor();
        if values.len() < floor {
            values.resize(floor, Value::Null);
        }
        let id = table.next_id(&pod);
        values[sys::ID] = Value::str(&id);
        values[sys::IS_DELETED] = Value::Bool(false);
        values[sys::CREATED_DATE] = Value::DateTime(stamp);
        values[sys::CREATED_BY_ID] = Value::str(user_id);
        values[sys::LAST_MODIFIED_DATE] = Value::DateTime(stamp);
        values[sys::LAST_MODIFIED_BY_ID] = Value::str(user_id);
        values[sys::SYSTEM_MODSTAMP] = Value::DateTime(stamp);
        if let Some(i) = table.schema.field_index("OwnerId") {
            if values[i].is_null() {
                values[i] = Value::str(user_id);
            }
        }
        let is_case = table.schema.name == "Case";
        let mut record = Record {
            fields: values,
            purged: false,
            deleted_at: None,
        };
        apply_derived(
            &table.schema,
            &mut record,
            if is_case { Some(case_number) } else { None },
        );
        trim_trailing_nulls(&mut record.fields);
        table.by_id15.insert(
            CompactString::new(ids::id15(&id)),
            table.records.len() as u32,
        );
        table.records.push(record);
        if is_case {
            self.next_case_number += 1;
        }
        Some(id)
    }

    /// Updates a live record from JSON input.
    pub fn update(
        &mut self,
        object: &str,
        id: &str,
        input: &serde_json::Map<String, serde_json::Value>,
        ctx: WriteContext<'_>,
    ) -> Result<(), RecordError> {
        let table = self.table_mut(object).ok_or_else(|| invalid_type(object))?;
        let canonical = ids::normalize(id).ok_or_else(|| malformed_id(id))?;
        let idx = table
            .index_of(&canonical)
            .ok_or_else(RecordError::not_found)?;
        if table.records[idx].is_deleted() {
            return Err(entity_is_deleted());
        }
        let assigned = convert_input(&table.schema, input, false)?;
        let mut candidate = table.records[idx].fields.clone();
        candidate.resize(table.schema.fields.len(), Value::Null);
        for (i, v) in assigned {
            if table.schema.fields[i].required_on_create && v.is_null() {
                let name = table.schema.fields[i].name.clone();
                return Err(RecordError::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{name}]"),
                    vec![name],
                ));
            }
            candidate[i] = v;
        }
        check_unique(table, &candidate, Some(idx))?;
        let stamp = ctx.modstamp.unwrap_or(ctx.now);
        candidate[sys::LAST_MODIFIED_DATE] = Value::DateTime(stamp);
        candidate[sys::LAST_MODIFIED_BY_ID] = Value::str(ctx.user_id);
        candidate[sys::SYSTEM_MODSTAMP] = Value::DateTime(stamp);
        let record = &mut table.records[idx];
        record.fields = candidate;
        apply_derived(&table.schema, record, None);
        trim_trailing_nulls(&mut record.fields);
        Ok(())
    }

    /// Moves a record to the recycle bin.
    pub fn delete(
        &mut self,
        object: &str,
        id: &str,
        ctx: WriteContext<'_>,
    ) -> Result<(), RecordError> {
        let table = self.table_mut(object).ok_or_else(|| invalid_type(object))?;
        let canonical = ids::normalize(id).ok_or_else(|| malformed_id(id))?;
        let idx = table
            .index_of(&canonical)
            .ok_or_else(RecordError::not_found)?;
        let record = &mut table.records[idx];
        if record.is_deleted() {
            return Err(entity_is_deleted().with_status(404));
        }
        let stamp = ctx.modstamp.unwrap_or(ctx.now);
        record.set(sys::IS_DELETED, Value::Bool(true));
        record.set(sys::SYSTEM_MODSTAMP, Value::DateTime(stamp));
        record.set(sys::LAST_MODIFIED_DATE, Value::DateTime(stamp));
        record.set(sys::LAST_MODIFIED_BY_ID, Value::str(ctx.user_id));
        record.deleted_at = Some(stamp);
        Ok(())
    }

    /// Hard-deletes everything in the recycle bin; returns how many records went.
    pub fn empty_recycle_bin(&mut self) -> usize {
        let mut n = 0;
        for table in self.tables.values_mut() {
            for r in table
                .records
                .iter_mut()
                .filter(|r| !r.purged && r.is_deleted())
            {
                r.purged = true;
                r.fields = Vec::new();
                n += 1;
            }
        }
        n
    }

    /// Finds live records whose key field equals `value` (ignoring case, as Salesforce's
    /// external ids and `idLookup` fields do).
    pub fn find_by_field(&self, object: &str, field: usize, value: &str) -> Vec<usize> {
        let Some(table) = self.table(object) else {
            return Vec::new();
        };
        table
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.purged && !r.is_deleted())
            .filter(|(_, r)| {
                r.get(field)
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(value))
            })
            .map(|(i, _)| i)
            .collect()
    }
}

fn invalid_type(object: &str) -> RecordError {
    RecordError::new(
        "NOT_FOUND",
        format!("The requested resource does not exist: sObject type '{object}' is not supported."),
        vec![],
    )
    .with_status(404)
}

/// A path id that is not a well-formed id: Salesforce names the `Id` field and quotes the value.
fn malformed_id(id: &str) -> RecordError {
    RecordError::new(
        "MALFORMED_ID",
        format!("Record ID: id value of incorrect type: {id}"),
        vec!["Id".into()],
    )
}

fn entity_is_deleted() -> RecordError {
    RecordError::new("ENTITY_IS_DELETED", "entity is deleted", vec![])
}

/// Drops trailing empty values: a short record reads them as `Null`, and most of a standard
/// object's fields stay empty, so seeded records cost memory only for what they hold.
fn trim_trailing_nulls(values: &mut Vec<Value>) {
    while values.len() > sys::COUNT && values.last().is_some_and(Value::is_null) {
        values.pop();
    }
    // Callers build a wider row first: keep exactly what is held (a fresh allocation, as an
    // allocator may keep a shrunk block at its old size).
    if values.capacity() > values.len() {
        let mut exact = Vec::with_capacity(values.len());
        exact.append(values);
        *values = exact;
    }
}

/// Recomputes fields the platform derives: `Name` from first and last names, closed flags,
/// the case number.
fn apply_derived(schema: &ObjectSchema, record: &mut Record, case_number: Option<u64>) {
    if let (Some(first), Some(last), Some(name)) = (
        schema.field_index("FirstName"),
        schema.field_index("LastName"),
        schema.field_index("Name"),
    ) {
        let full = match (record.get(first).as_str(), record.get(last).as_str()) {
            (Some(f), Some(l)) if !f.is_empty() => format!("{f} {l}"),
            (_, Some(l)) => l.to_string(),
            (Some(f), None) => f.to_string(),
            _ => String::new(),
        };
        record.set(name, Value::str(full));
    }
    if let Some(n) = case_number {
        if let Some(i) = schema.field_index("CaseNumber") {
            record.set(i, Value::str(format!("{n:08}")));
        }
    }
    let stage = schema
        .field_index("StageName")
        .map(|i| record.get(i).as_str().unwrap_or_default().to_string());
    if let Some(stage) = stage {
        if let (Some(closed), Some(won)) =
            (schema.field_index("IsClosed"), schema.field_index("IsWon"))
        {
            record.set(closed, Value::Bool(stage.starts_with("Closed")));
            record.set(won, Value::Bool(stage == "Closed Won"));
        }
    } else if schema.name == "Case" {
        if let (Some(status), Some(closed)) =
            (schema.field_index("Status"), schema.field_index("IsClosed"))
        {
            let is_closed = record.get(status).as_str() == Some("Closed");
            record.set(closed, Value::Bool(is_closed));
            // ClosedDate is when the case last became closed.
            if let Some(at) = schema.field_index("ClosedDate") {
                if !is_closed {
                    record.set(at, Value::Null);
                } else if record.get(at).is_null() {
                    let stamp = record.get(sys::LAST_MODIFIED_DATE).clone();
                    record.set(at, stamp);
                }
            }
        }
    }
    if schema.name == "Lead" {
        if let Some(i) = schema.field_index("Status") {
            if record.get(i).is_null() {
                record.set(i, Value::str("Open - Not Contacted"));
            }
        }
        if let Some(i) = schema.field_index("IsConverted") {
            if record.get(i).is_null() {
                record.set(i, Value::Bool(false));
            }
        }
    }
    if schema.name == "Case" {
        if let Some(i) = schema.field_index("Status") {
            if record.get(i).is_null() {
                record.set(i, Value::str("New"));
            }
        }
    }
}

/// Converts JSON input into typed values by field position, rejecting unknown, read-only and
/// ill-typed fields the way Salesforce does.
fn convert_input(
    schema: &ObjectSchema,
    input: &serde_json::Map<String, serde_json::Value>,
    creating: bool,
) -> Result<Vec<(usize, Value)>, RecordError> {
    let mut out = Vec::with_capacity(input.len());
    for (key, raw) in input {
        if key == "attributes" {
            continue;
        }
        let Some(i) = schema.field_index(key) else {
            // Salesforce names no field here: the column does not exist.
            return Err(RecordError::new(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {}", schema.name),
                vec![],
            ));
        };
        let field = &schema.fields[i];
        if field.name == "Id" && !creating {
            continue;
        }
        let writable = if creating {
            field.createable
        } else {
            field.updateable
        };
        if !writable {
            return Err(RecordError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!("Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", field.name),
                vec![field.name.clone()],
            ));
        }
        out.push((i, json_to_value(field, raw)?));
    }
    Ok(out)
}

/// Converts one JSON value for a field, with Salesforce's error for a wrong type.
pub fn json_to_value(field: &FieldDef, raw: &serde_json::Value) -> Result<Value, RecordError> {
    use serde_json::Value as J;
    let bad = |what: &str| {
        RecordError::new(
            "JSON_PARSER_ERROR",
            format!(
                "Cannot deserialize instance of {what} from {} value {raw} for field {}",
                json_kind(raw),
                field.name
            ),
            vec![field.name.clone()],
        )
    };
    let v = match (field.field_type, raw) {
        (_, J::Null) => Value::Null,
        (FieldType::Boolean, J::Bool(b)) => Value::Bool(*b),
        (FieldType::Boolean, J::String(s)) if s == "true" || s == "false" => {
            Value::Bool(s == "true")
        }
        (FieldType::Boolean, _) => return Err(bad("boolean")),
        (FieldType::Int, J::Number(n)) => Value::Int(
            n.as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .unwrap_or_default(),
        ),
        (FieldType::Int, J::String(s)) => Value::Int(s.parse().map_err(|_| bad("int"))?),
        (FieldType::Int, _) => return Err(bad("int")),
        (FieldType::Double | FieldType::Currency | FieldType::Percent, J::Number(n)) => {
            Value::Num(n.as_f64().unwrap_or_default())
        }
        (FieldType::Double | FieldType::Currency | FieldType::Percent, J::String(s)) => {
            Value::Num(s.parse().map_err(|_| bad("double"))?)
        }
        (FieldType::Double | FieldType::Currency | FieldType::Percent, _) => {
            return Err(bad("double"))
        }
        (FieldType::Datetime, J::String(s)) => {
            Value::DateTime(value::parse_datetime(s).ok_or_else(|| bad("datetime"))?)
        }
        (FieldType::Datetime, _) => return Err(bad("datetime")),
        (FieldType::Date, J::String(s)) => Value::Date(
            value::parse_date(s)
                .or_else(|| value::parse_datetime(s).map(|t| (t.div_euclid(86_400)) as i32))
                .ok_or_else(|| bad("date"))?,
        ),
        (FieldType::Date, _) => return Err(bad("date")),
        (FieldType::Id | FieldType::Reference, J::String(s)) => {
            if s.is_empty() {
                Value::Null
            } else {
                let id = ids::normalize(s).ok_or_else(|| {
                    RecordError::new(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {s}", field.label),
                        vec![field.name.clone()],
                    )
                })?;
                Value::str(id)
            }
        }
        (_, J::String(s)) => {
            if field.length > 0 && s.chars().count() > field.length as usize {
                return Err(RecordError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {} (max length={})",
                        field.label, s, field.length
                    ),
                    vec![field.name.clone()],
                ));
            }
            if s.is_empty() {
                Value::Null
            } else {
                Value::str(s)
            }
        }
        (_, J::Number(n)) => Value::str(n.to_string()),
        (_, J::Bool(b)) => Value::str(b.to_string()),
        _ => return Err(bad("string")),
    };
    Ok(v)
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "START_ARRAY",
        serde_json::Value::Object(_) => "START_OBJECT",
        serde_json::Value::String(_) => "VALUE_STRING",
        serde_json::Value::Number(_) => "VALUE_NUMBER",
        serde_json::Value::Bool(_) => "VALUE_BOOLEAN",
        serde_json::Value::Null => "VALUE_NULL",
    }
}

/// Enforces unique and external-id fields (`DUPLICATE_VALUE`).
fn check_unique(table: &Table, values: &[Value], except: Option<usize>) -> Result<(), RecordError> {
    for (i, f) in table.schema.fields.iter().enumerate() {
        if !(f.unique || f.external_id) {
            continue;
        }
        let Some(candidate) = values.get(i).and_then(Value::as_str) else {
            continue;
        };
        let clash = table.records.iter().enumerate().find(|(j, r)| {
            Some(*j) != except
                && !r.purged
                && !r.is_deleted()
                && r.get(i)
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(candidate))
        });
        if let Some((_, other)) = clash {
            return Err(RecordError::new(
                "DUPLICATE_VALUE",
                format!(
                    "duplicate value found: {} duplicates value on record with id: {}",
                    f.name,
                    other.id()
                ),
                vec![f.name.clone()],
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_only_the_values_they_hold_and_checkboxes_read_false() {
        let mut org = Org::new(ids::make_id("00D", "7x", 1), "Mem", false, "7x");
        let ctx = WriteContext {
            user_id: "005000000000000AAA",
            now: 1_704_067_200,
            modstamp: None,
        };
        let mut input = serde_json::Map::new();
        input.insert("LastName".into(), serde_json::Value::String("Short".into()));
        let id = org.create("Contact", &input, ctx).expect("create");
        let table = org.table("Contact").expect("Contact");
        let record = table.get(&id).expect("record");
        assert!(record.fields.len() < table.schema.fields.len() / 2);
        assert_eq!(record.fields.capacity(), record.fields.len());
        let do_not_call = table.schema.field_index("DoNotCall").expect("DoNotCall");
        assert!(
            record.get(do_not_call).is_null(),
            "unset checkboxes are not stored"
        );
        assert_eq!(
            record.json_of(&table.schema, do_not_call),
            serde_json::Value::Bool(false)
        );
        let mobile = table
            .schema
            .field_index("MobilePhone")
            .expect("MobilePhone");
        assert!(record.get(mobile).is_null());
    }
}
