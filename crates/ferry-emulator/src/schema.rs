//! Object and field definitions (the describe metadata): the standard objects the emulator ships and custom ones added at run time.

use serde::Deserialize;
use std::collections::HashMap;

/// A field's Salesforce type, as `describe` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// The record id.
    Id,
    /// A lookup to another object.
    Reference,
    /// Short text.
    String,
    /// Long text.
    Textarea,
    /// A checkbox.
    Boolean,
    /// Date and time.
    Datetime,
    /// Date only.
    Date,
    /// A floating-point number.
    Double,
    /// Money.
    Currency,
    /// A percentage.
    Percent,
    /// A whole number.
    Int,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A URL.
    Url,
    /// One value from a list.
    Picklist,
    /// Several values from a list, joined with `;`.
    Multipicklist,
    /// Text with suggested values.
    Combobox,
    /// Base64-encoded binary content (`ContentVersion.VersionData`).
    Base64,
    /// A compound address, read-only, assembled from its component fields.
    Address,
}

impl FieldType {
    /// The `soapType` describe reports for this type.
    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Datetime => "xsd:dateTime",
            FieldType::Date => "xsd:date",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Int => "xsd:int",
            FieldType::Base64 => "xsd:base64Binary",
            FieldType::Address => "urn:address",
            _ => "xsd:string",
        }
    }

    /// The name `describe` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Boolean => "boolean",
            FieldType::Datetime => "datetime",
            FieldType::Date => "date",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Int => "int",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::Combobox => "combobox",
            FieldType::Base64 => "base64",
            FieldType::Address => "address",
        }
    }

    /// Whether values of this type are text in storage.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::Reference
                | FieldType::String
                | FieldType::Textarea
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Picklist
                | FieldType::Multipicklist
                | FieldType::Combobox
                | FieldType::Base64
        )
    }
}

/// One field of an object.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// API name with canonical casing (`AccountId`, `Amount__c`).
    pub name: String,
    /// Display label.
    pub label: String,
    /// Type.
    pub field_type: FieldType,
    /// Maximum length for text fields, 0 otherwise.
    pub length: u32,
    /// Whether the field may be empty.
    pub nillable: bool,
    /// Whether a create may set it.
    pub createable: bool,
    /// Whether an update may set it.
    pub updateable: bool,
    /// Whether this is a custom field (`__c`).
    pub custom: bool,
    /// Whether the field is an external id (usable for upsert).
    pub external_id: bool,
    /// Whether values must be unique.
    pub unique: bool,
    /// Whether the field identifies records for upsert and retrieve (`idLookup`), as `Email`
    /// does on Contact, without being an external id.
    pub id_lookup: bool,
    /// Objects a reference field points to.
    pub reference_to: Vec<String>,
    /// Relationship name of a reference field (`Account` for `AccountId`).
    pub relationship_name: Option<String>,
    /// Allowed values of a picklist.
    pub picklist_values: Vec<String>,
    /// Whether the field is required on create (not nillable, createable, not defaulted).
    pub required_on_create: bool,
    /// Whether this is the object's name field.
    pub name_field: bool,
    /// Whether the platform numbers records in this field (`CaseNumber`).
    pub auto_number: bool,
    /// The relationship name children are reached by from the referenced object
    /// (`Contacts` for `Contact.AccountId`); `None` means the child's plural label.
    pub child_relationship: Option<String>,
    /// The compound field this one is a part of (`BillingAddress` for `BillingCity`).
    pub compound_of: Option<String>,
}

impl FieldDef {
    /// A writeable, nillable field of the given type.
    pub fn new(name: &str, field_type: FieldType) -> Self {
        let length = match field_type {
            FieldType::Id | FieldType::Reference => 18,
            FieldType::String
            | FieldType::Picklist
            | FieldType::Multipicklist
            | FieldType::Combobox => 255,
            FieldType::Email | FieldType::Url => 255,
            FieldType::Phone => 40,
            FieldType::Textarea => 32_000,
            _ => 0,
        };
        FieldDef {
            name: name.to_string(),
            label: label_for(name),
            field_type,
            length,
            nillable: true,
            createable: true,
            updateable: true,
            custom: name.ends_with("__c"),
            external_id: false,
            unique: false,
            id_lookup: false,
            reference_to: Vec::new(),
            relationship_name: None,
            picklist_values: Vec::new(),
            required_on_create: false,
            name_field: false,
            auto_number: false,
            child_relationship: None,
            compound_of: None,
        }
    }

    /// A field set only by the system (ids, audit fields).
    pub fn system(name: &str, field_type: FieldType) -> Self {
        FieldDef {
            nillable: false,
            createable: false,
            updateable: false,
            ..Self::new(name, field_type)
        }
    }

    /// Marks the field as required on create.
    pub fn required(mut self) -> Self {
        self.nillable = false;
        self.required_on_create = true;
        self
    }

    /// A reference to `target` through the relationship `relationship`.
    pub fn reference(name: &str, target: &str, relationship: &str) -> Self {
        FieldDef {
            reference_to: vec![target.to_string()],
            relationship_name: Some(relationship.to_string()),
            ..Self::new(name, FieldType::Reference)
        }
    }

    /// A picklist with the given values.
    pub fn picklist(name: &str, values: &[&str]) -> Self {
        FieldDef {
            picklist_values: values.iter().map(|v| v.to_string()).collect(),
            ..Self::new(name, FieldType::Picklist)
        }
    }

    /// Whether upsert and retrieve may use the field as the record key (`idLookup` in describe).
    pub fn is_id_lookup(&self) -> bool {
        self.name == "Id" || self.external_id || self.id_lookup
    }

    /// Marks the field as an `idLookup` key.
    pub fn lookup(mut self) -> Self {
        self.id_lookup = true;
        self
    }

    /// Marks a field read-only (computed by the emulator).
    pub fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }
}

/// The name a parent reaches the records of `child` by through `field` (`Contacts`): the
/// catalog's name, else the child's plural label without spaces.
pub fn child_relationship_name(field: &FieldDef, child: &ObjectSchema) -> String {
    field
        .child_relationship
        .clone()
        .unwrap_or_else(|| child.label_plural.replace(' ', ""))
}

fn label_for(name: &str) -> String {
    let base = name.trim_end_matches("__c");
    let mut label = String::new();
    for (i, c) in base.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && !label.ends_with(' ') {
            label.push(' ');
        }
        label.push(if c == '_' { ' ' } else { c });
    }
    label
}

/// An object (sObject type) and its fields, in a fixed order that records follow.
#[derive(Debug, Clone)]
pub struct ObjectSchema {
    /// API name (`Account`, `Invoice__c`).
    pub name: String,
    /// Label.
    pub label: String,
    /// Plural label.
    pub label_plural: String,
    /// Three-character id prefix.
    pub key_prefix: String,
    /// Whether the object is custom.
    pub custom: bool,
    /// Fields in storage order.
    pub fields: Vec<FieldDef>,
    /// Lower-cased field name to index.
    index: HashMap<String, usize>,
    /// See [`ObjectSchema::value_floor`].
    floor: usize,
}

/// Positions of the system fields every object has, in this order.
pub mod sys {
    /// `Id`.
    pub const ID: usize = 0;
    /// `IsDeleted`.
    pub const IS_DELETED: usize = 1;
    /// `CreatedDate`.
    pub const CREATED_DATE: usize = 2;
    /// `CreatedById`.
    pub const CREATED_BY_ID: usize = 3;
    /// `LastModifiedDate`.
    pub const LAST_MODIFIED_DATE: usize = 4;
    /// `LastModifiedById`.
    pub const LAST_MODIFIED_BY_ID: usize = 5;
    /// `SystemModstamp`.
    pub const SYSTEM_MODSTAMP: usize = 6;
    /// Number of system fields.
    pub const COUNT: usize = 7;
}

impl ObjectSchema {
    /// An object with the system fields followed by `fields`.
    pub fn new(name: &str, label_plural: &str, key_prefix: &str, fields: Vec<FieldDef>) -> Self {
        let mut all = vec![
            FieldDef {
                label: "Record ID".into(),
                ..FieldDef::system("Id", FieldType::Id)
            },
            FieldDef::system("IsDeleted", FieldType::Boolean),
            FieldDef::system("CreatedDate", FieldType::Datetime),
            FieldDef {
                reference_to: vec!["User".into()],
                relationship_name: Some("CreatedBy".into()),
                ..FieldDef::system("CreatedById", FieldType::Reference)
            },
            FieldDef::system("LastModifiedDate", FieldType::Datetime),
            FieldDef {
                reference_to: vec!["User".into()],
                relationship_name: Some("LastModifiedBy".into()),
                ..FieldDef::system("LastModifiedById", FieldType::Reference)
            },
            FieldDef::system("SystemModstamp", FieldType::Datetime),
        ];
        all.extend(fields);
        let mut schema = ObjectSchema {
            name: name.to_string(),
            label: label_for(name),
            label_plural: label_plural.to_string(),
            key_prefix: key_prefix.to_string(),
            custom: name.ends_with("__c"),
            fields: all,
            index: HashMap::new(),
            floor: sys::COUNT,
        };
        schema.reindex();
        schema
    }

    /// Sets the display labels.
    pub fn with_labels(mut self, label: &str, label_plural: &str) -> Self {
        self.label = label.to_string();
        self.label_plural = label_plural.to_string();
        self
    }

    fn reindex(&mut self) {
        self.index = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        self.floor = self
            .fields
            .iter()
            .rposition(|f| f.name == "OwnerId")
            .map_or(sys::COUNT, |i| (i + 1).max(sys::COUNT));
    }

    /// The index of a field, by case-insensitive name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        // Lower-case into a stack buffer: this runs per record while seeding and per name while
        // compiling queries, and API names are short.
        let mut buf = [0u8; 64];
        if name.len() <= buf.len() {
            let lower = &mut buf[..name.len()];
            lower.copy_from_slice(name.as_bytes());
            lower.make_ascii_lowercase();
            return std::str::from_utf8(lower)
                .ok()
                .and_then(|key| self.index.get(key).copied());
        }
        self.index.get(&name.to_ascii_lowercase()).copied()
    }

    /// How many leading values a stored record always holds: through `OwnerId` (which the
    /// platform fills).
    pub fn value_floor(&self) -> usize {
        self.floor
    }

    /// A field by case-insensitive name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// The reference field behind a relationship name (`Account` → `AccountId`), case-insensitive.
    pub fn relationship(&self, relationship: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(relationship))
        })
    }

    /// Adds a field (or replaces a custom one with the same name); records grow lazily.
    pub fn add_field(&mut self, field: FieldDef) {
        match self.field_index(&field.name) {
            Some(i) => self.fields[i] = field,
            None => self.fields.push(field),
        }
        self.reindex();
    }
}

/// The standard objects the emulator ships (Account, Contact, Lead, Opportunity, Case, User and
/// the objects around them), as `src/standard_objects.txt` describes them.
pub fn standard_objects() -> Vec<ObjectSchema> {
    crate::catalog::standard_objects()
}
