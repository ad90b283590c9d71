//! Rendering result rows: one record as the REST API returns it (JSON with `attributes` and nested parents) and pages of Bulk API 2.0 CSV.

use super::exec::{column_accessor, ChildSet, Column, PolyColumn, ResultSet};
use crate::org::{Org, Record, Table};
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
///
/// `row` is a record index; use [`render_row`] to include parent-to-child subqueries.
pub fn render_json(rs: &ResultSet, org: &Org, row: u32, api_version: &str) -> Json {
    if rs.aggregates.is_some() {
        return render_row(rs, org, row as usize, api_version);
    }
    let position = if rs.children.is_empty() {
        None
    } else {
        rs.rows.iter().position(|&r| r == row)
    };
    render(rs, org, row, position, api_version)
}

/// The record at `position` of the result (an index into `rs.rows`), with its subqueries'
/// children as nested `{totalSize, done, records}` (`null` when there are none).
pub fn render_row(rs: &ResultSet, org: &Org, position: usize, api_version: &str) -> Json {
    if let Some(results) = &rs.aggregates {
        return results.get(position).cloned().unwrap_or(Json::Null);
    }
    match rs.rows.get(position) {
        Some(&row) => render(rs, org, row, Some(position), api_version),
        None => Json::Null,
    }
}

fn render(rs: &ResultSet, org: &Org, row: u32, position: Option<usize>, api_version: &str) -> Json {
    let Some(table) = org.table(&rs.object) else {
        return Json::Null;
    };
    let Some(record) = table.records.get(row as usize) else {
        return Json::Null;
    };
    let mut map = record_fields(org, table, record, &rs.columns, api_version);
    for poly in &rs.polymorphic {
        map.insert(
            poly.relationship.clone(),
            polymorphic_parent(org, record, poly, api_version),
        );
    }
    for child in &rs.children {
        let rows = position
            .and_then(|p| child.rows.get(p))
            .map(Vec::as_slice)
            .unwrap_or_default();
        map.insert(
            child.relationship.clone(),
            child_records(org, child, rows, api_version),
        );
    }
    Json::Object(map)
}

/// `attributes` and the columns of one record.
fn record_fields(
    org: &Org,
    table: &Table,
    record: &Record,
    columns: &[Column],
    api_version: &str,
) -> Map<String, Json> {
    let mut map = Map::new();
    map.insert(
        "attributes".into(),
        attributes(&table.schema.name, record.id(), api_version),
    );
    for col in columns {
        insert_column(&mut map, org, table, record, col, 0, api_version);
    }
    map
}

/// The parent a `TYPEOF` column shows: its type's `WHEN` fields, else the `ELSE` fields.
fn polymorphic_parent(org: &Org, record: &Record, poly: &PolyColumn, api_version: &str) -> Json {
    let Some((parent_table, parent)) = record
        .get(poly.reference)
        .as_str()
        .and_then(|id| org.find_by_id(id))
    else {
        return Json::Null;
    };
    let mut map = Map::new();
    map.insert(
        "attributes".into(),
        attributes(&parent_table.schema.name, parent.id(), api_version),
    );
    let schema = &parent_table.schema;
    match poly.branches.iter().find(|(o, _)| *o == schema.name) {
        Some((_, fields)) => {
            for &i in fields {
                map.insert(schema.fields[i].name.clone(), parent.json_of(schema, i));
            }
        }
        None => {
            for name in &poly.otherwise {
                if let Some(i) = schema.field_index(name) {
                    map.insert(schema.fields[i].name.clone(), parent.json_of(schema, i));
                }
            }
        }
    }
    Json::Object(map)
}

fn child_records(org: &Org, child: &ChildSet, rows: &[u32], api_version: &str) -> Json {
    let Some(table) = org.table(&child.object) else {
        return Json::Null;
    };
    if rows.is_empty() {
        return Json::Null;
    }
    let records: Vec<Json> = rows
        .iter()
        .filter_map(|&i| table.records.get(i as usize))
        .map(|r| Json::Object(record_fields(org, table, r, &child.columns, api_version)))
        .collect();
    let mut out = Map::new();
    out.insert("totalSize".into(), Json::from(records.len()));
    out.insert("done".into(), Json::Bool(true));
    out.insert("records".into(), Json::Array(records));
    Json::Object(out)
}

/// Puts one column's value into `map`, descending through `col.hops[depth..]`.
fn insert_column(
    map: &mut Map<String, Json>,
    org: &Org,
    table: &Table,
    record: &Record,
    col: &Column,
    depth: usize,
    api_version: &str,
) {
    let Some(hop) = col.hops.get(depth) else {
        map.insert(col.name.clone(), record.json_of(&table.schema, col.field));
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
        insert_column(
            nested,
            org,
            parent_table,
            parent,
            col,
            depth + 1,
            api_version,
        );
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
