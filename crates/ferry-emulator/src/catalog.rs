//! The standard-object catalog: reads `standard_objects.txt` (fields, types, lengths, flags, relationships, picklist values) into object schemas once, and hands each new org a copy.

use crate::schema::{FieldDef, FieldType, ObjectSchema};
use std::sync::OnceLock;

/// The catalog text, in the format its header describes.
const CATALOG: &str = include_str!("standard_objects.txt");

/// Values offered for the state and country code picklists of compound addresses.
const STATE_CODES: &[&str] = &["CA", "NY", "TX", "IL", "WA", "MA", "ON", "BC", "NSW", "VIC"];
const COUNTRY_CODES: &[&str] = &["US", "CA", "GB", "DE", "FR", "JP", "AU", "IN", "BR"];
const GEOCODE_ACCURACY: &[&str] = &[
    "Address",
    "NearAddress",
    "Block",
    "Street",
    "ExtendedZip",
    "Zip",
    "Neighborhood",
    "City",
    "County",
    "State",
    "Unknown",
];

/// The standard objects, parsed once per process.
pub fn standard_objects() -> Vec<ObjectSchema> {
    static PARSED: OnceLock<Vec<ObjectSchema>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            parse(CATALOG).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the standard-object catalog does not parse");
                Vec::new()
            })
        })
        .clone()
}

/// One object being read.
struct Pending {
    name: String,
    prefix: String,
    label: String,
    plural: String,
    fields: Vec<FieldDef>,
}

impl Pending {
    fn finish(mut self) -> ObjectSchema {
        // A person's name is a compound of its parts, where the object has them.
        let person = self.fields.iter().any(|f| f.name == "FirstName")
            && self
                .fields
                .iter()
                .any(|f| f.name == "Name" && !f.createable);
        if person {
            for f in self.fields.iter_mut() {
                if matches!(
                    f.name.as_str(),
                    "Salutation" | "FirstName" | "MiddleName" | "LastName" | "Suffix"
                ) {
                    f.compound_of = Some("Name".into());
                }
            }
        }
        ObjectSchema::new(&self.name, &self.plural, &self.prefix, self.fields)
            .with_labels(&self.label, &self.plural)
    }
}

/// Parses catalog text into schemas; an error names the line.
pub fn parse(text: &str) -> Result<Vec<ObjectSchema>, String> {
    let mut out = Vec::new();
    let mut current: Option<Pending> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        if let Some(header) = line.strip_prefix('@') {
            if let Some(done) = current.take() {
                out.push(done.finish());
            }
            current = Some(object_header(header).map_err(at)?);
            continue;
        }
        let Some(object) = current.as_mut() else {
            return Err(at("a field before any @Object line".into()));
        };
        if let Some(prefix) = line.strip_prefix("+address") {
            let prefix = prefix.trim();
            add_address(&mut object.fields, if prefix == "-" { "" } else { prefix });
            continue;
        }
        object.fields.push(field_line(line).map_err(at)?);
    }
    if let Some(done) = current.take() {
        out.push(done.finish());
    }
    Ok(out)
}

fn object_header(header: &str) -> Result<Pending, String> {
    let mut parts = header.splitn(3, ' ');
    let name = parts.next().filter(|s| !s.is_empty()).ok_or("no name")?;
    let prefix = parts
        .next()
        .filter(|p| p.len() == 3)
        .ok_or("no key prefix")?;
    let labels = parts.next().ok_or("no labels")?;
    let (label, plural) = labels.split_once('|').ok_or("labels need Label|Plural")?;
    Ok(Pending {
        name: name.to_string(),
        prefix: prefix.to_string(),
        label: label.trim().to_string(),
        plural: plural.trim().to_string(),
        fields: Vec::new(),
    })
}

fn field_type(name: &str) -> Result<FieldType, String> {
    Ok(match name {
        "id" => FieldType::Id,
        "reference" => FieldType::Reference,
        "string" => FieldType::String,
        "textarea" => FieldType::Textarea,
        "boolean" => FieldType::Boolean,
        "datetime" => FieldType::Datetime,
        "date" => FieldType::Date,
        "double" => FieldType::Double,
        "currency" => FieldType::Currency,
        "percent" => FieldType::Percent,
        "int" => FieldType::Int,
        "email" => FieldType::Email,
        "phone" => FieldType::Phone,
        "url" => FieldType::Url,
        "picklist" => FieldType::Picklist,
        "multipicklist" => FieldType::Multipicklist,
        "combobox" => FieldType::Combobox,
        "base64" => FieldType::Base64,
        "address" => FieldType::Address,
        other => return Err(format!("unknown type {other}")),
    })
}

fn field_line(line: &str) -> Result<FieldDef, String> {
    let (head, values) = match line.split_once('{') {
        Some((head, rest)) => {
            let list = rest
                .strip_suffix('}')
                .ok_or("picklist values need a closing }")?;
            let values: Vec<String> = list
                .split(';')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect();
            (head, values)
        }
        None => (line, Vec::new()),
    };
    let mut words = head.split_whitespace();
    let name = words.next().ok_or("no field name")?;
    let kind = words.next().ok_or("no field type")?;
    let (kind, length) = match kind.split_once('/') {
        Some((k, len)) => (
            k,
            Some(
                len.parse::<u32>()
                    .map_err(|_| format!("bad length {len}"))?,
            ),
        ),
        None => (kind, None),
    };
    let field_type = field_type(kind)?;
    let mut f = FieldDef::new(name, field_type);
    if let Some(len) = length {
        f.length = len;
    }
    if field_type == FieldType::Boolean {
        // Checkboxes always hold a value: false unless set.
        f.nillable = false;
    }
    f.picklist_values = values;
    for word in words {
        match word {
            "req" => f = f.required(),
            "nn" => f.nillable = false,
            "ro" => f = f.read_only(),
            "insert" => f.updateable = false,
            "name" => f.name_field = true,
            "lookup" => f.id_lookup = true,
            "unique" => f.unique = true,
            "ext" => f.external_id = true,
            "auto" => f.auto_number = true,
            w if w.starts_with('=') => {
                let (targets, relationship) = w[1..]
                    .rsplit_once('.')
                    .ok_or_else(|| format!("{w}: references are =Target.Relationship"))?;
                f.reference_to = targets.split(',').map(str::to_string).collect();
                f.relationship_name = Some(relationship.to_string());
            }
            w if w.starts_with("kids=") => f.child_relationship = Some(w[5..].to_string()),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(f)
}

/// Adds the parts of a compound address not listed yet, then the compound field itself.
fn add_address(fields: &mut Vec<FieldDef>, prefix: &str) {
    let compound = format!("{prefix}Address");
    let parts: [(&str, FieldType, u32, &[&str]); 10] = [
        ("Street", FieldType::Textarea, 255, &[]),
        ("City", FieldType::String, 40, &[]),
        ("State", FieldType::String, 80, &[]),
        ("PostalCode", FieldType::String, 20, &[]),
        ("Country", FieldType::String, 80, &[]),
        ("StateCode", FieldType::Picklist, 255, STATE_CODES),
        ("CountryCode", FieldType::Picklist, 255, COUNTRY_CODES),
        ("Latitude", FieldType::Double, 0, &[]),
        ("Longitude", FieldType::Double, 0, &[]),
        (
            "GeocodeAccuracy",
            FieldType::Picklist,
            255,
            GEOCODE_ACCURACY,
        ),
    ];
    for (suffix, field_type, length, values) in parts {
        let name = format!("{prefix}{suffix}");
        match fields.iter_mut().find(|f| f.name == name) {
            Some(existing) => existing.compound_of = Some(compound.clone()),
            None => {
                let mut f = FieldDef::new(&name, field_type);
                f.length = length;
                f.picklist_values = values.iter().map(|v| v.to_string()).collect();
                f.compound_of = Some(compound.clone());
                fields.push(f);
            }
        }
    }
    fields.push(FieldDef::new(&compound, FieldType::Address).read_only());
}

/// The JSON keys of a compound address and the component suffix each one reads.
pub const ADDRESS_PARTS: [(&str, &str); 10] = [
    ("city", "City"),
    ("country", "Country"),
    ("countryCode", "CountryCode"),
    ("geocodeAccuracy", "GeocodeAccuracy"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
    ("postalCode", "PostalCode"),
    ("state", "State"),
    ("stateCode", "StateCode"),
    ("street", "Street"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_parses_with_the_core_objects_and_their_keys() {
        let objects = parse(CATALOG).expect("catalog parses");
        for (name, prefix) in [
            ("Account", "001"),
            ("Contact", "003"),
            ("Lead", "00Q"),
            ("Opportunity", "006"),
            ("Case", "500"),
            ("User", "005"),
            ("Profile", "00e"),
        ] {
            let o = objects.iter().find(|o| o.name == name).expect(name);
            assert_eq!(o.key_prefix, prefix);
        }
        let mut prefixes: Vec<&str> = objects.iter().map(|o| o.key_prefix.as_str()).collect();
        prefixes.sort_unstable();
        let before = prefixes.len();
        prefixes.dedup();
        assert_eq!(before, prefixes.len(), "key prefixes are unique");
        let account = objects
            .iter()
            .find(|o| o.name == "Account")
            .expect("Account");
        assert!(account.fields.len() >= 60, "{}", account.fields.len());
        let city = account.field("BillingCity").expect("BillingCity");
        assert_eq!(city.length, 40);
        assert_eq!(city.compound_of.as_deref(), Some("BillingAddress"));
        assert_eq!(
            account
                .field("BillingAddress")
                .expect("compound")
                .field_type,
            FieldType::Address
        );
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let err = parse("@Thing 0zz Thing|Things\nName strin").expect_err("bad type");
        assert!(err.starts_with("line 2:"), "{err}");
        assert!(parse("Name string").is_err());
        assert!(parse("@Thing 0zz Thing|Things\nX reference =Nope").is_err());
    }
}
