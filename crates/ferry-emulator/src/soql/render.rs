//! Rendering result rows: one record as the REST API returns it (JSON with `attributes` and nested parents) and pages of Bulk API 2.0 CSV.

use super::exec::{column_accessor, Column, ResultSet};
use crate::org::{Org, Record};
use crate::value::{self, Value};
use serde_json::{Map, Value as Json};

fn attributes(object: &str, id: &str, api_version: &str) -> Json {
    let mut attrs = Map::new();
    attrs.insert("type".into(), Json::String(object.to_string()));
    attrs.insert(
        "url".into(),
        Json::String(format!(
            "/services/data/v{api_version}/sobjects/{object}/{id}"
        )),
    );
    Json::Object(attrs)
}

/// One record as `/query` returns it: `attributes`, then the selected fields in SELECT order
/// with canonical casing; parent fields nest under their relationship name (`"Owner": null`
/// when the reference is empty). A row that no longer exists renders as `null`.
pub fn render_json(rs: &ResultSet, org: &Org, row: u32, api_version: &str) -> Json {
    let Some(table) = org.table(&rs.object) else {
        return Json::Null;
    };
    let Some(record) = table.records.get(row as usize) else {
        return Json::Null;
    };
    let mut map = Map::new();
    map.insert(
        "attributes".into(),
        attributes(&table.schema.name, record.id(), api_version),
    );
    for col in &rs.columns {
        insert_column(&mut map, org, record, col, 0, api_version);
    }
    Json::Object(map)
}

/// Puts one column's value into `map`, descending through `col.hops[depth..]`.
fn insert_column(
    map: &mut Map<String, Json>,
    org: &Org,
    record: &Record,
    col: &Column,
    depth: usize,
    api_version: &str,
) {
    let Some(hop) = col.hops.get(depth) else {
        map.insert(col.name.clone(), record.get(col.field).to_json());
        return;
    };
    let parent = org.table(&hop.object).and_then(|t| {
        let id = record.get(hop.reference).as_str()?;
        let i = t.index_of(id)?;
        t.records.get(i).map(|r| (t, r))
    });
    let Some((parent_table, parent)) = parent else {
        map.entry(hop.relationship.clone()).or_insert(Json::Null);
        return;
    };
    let entry = map.entry(hop.relationship.clone()).or_insert_with(|| {
        let mut nested = Map::new();
        nested.insert(
            "attributes".into(),
            attributes(&parent_table.schema.name, parent.id(), api_version),
        );
        Json::Object(nested)
    });
    if let Json::Object(nested) = entry {
        insert_column(nested, org, parent, col, depth + 1, api_version);
    }
}

/// A Bulk API 2.0 CSV page: the header row (canonical column paths) and one line per row.
/// Every field is double-quoted (quotes doubled inside), nulls are empty, booleans are
/// `true`/`false`, datetimes end in `.000Z`.
pub fn render_csv(rs: &ResultSet, org: &Org, rows: &[u32], delimiter: u8, crlf: bool) -> String {
    let delimiter = char::from(delimiter);
    let newline = if crlf { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    for (i, col) in rs.columns.iter().enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        push_quoted(&mut out, &col.header);
    }
    out.push_str(newline);
    let Some(table) = org.table(&rs.object) else {
        return out;
    };
    let accessors: Vec<_> = rs.columns.iter().map(|c| column_accessor(org, c)).collect();
    for &row in rows {
        let Some(record) = table.records.get(row as usize) else {
            continue;
        };
        for (i, acc) in accessors.iter().enumerate() {
            if i > 0 {
                out.push(delimiter);
            }
            let v = acc.as_ref().map_or(&Value::Null, |a| a.get(record));
            match v {
                Value::Str(s) => push_quoted(&mut out, s),
                Value::DateTime(secs) => {
                    push_quoted(&mut out, &value::format_datetime_csv(*secs));
                }
                other => push_quoted(&mut out, &other.to_csv()),
            }
        }
        out.push_str(newline);
    }
    out
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for (i, part) in s.split('"').enumerate() {
        if i > 0 {
            out.push_str("\"\"");
        }
        out.push_str(part);
    }
    out.push('"');
}
