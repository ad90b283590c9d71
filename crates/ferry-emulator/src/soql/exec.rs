//! Query execution: resolves the SELECT list, filters a table with the compiled WHERE, sorts row indices with precomputed keys, and applies OFFSET and LIMIT.

use super::ast::{FieldsKind, Query, SelectItem};
use super::compile::{cmp_sort, resolve, Accessor, Compiler, Mode, Step};
use super::{SoqlError, INVALID_TYPE, MALFORMED_QUERY, UNSUPPORTED_API_VERSION};
use crate::org::{Org, Record, Table};
use crate::schema::FieldType;
use crate::value::Value;
use std::cmp::Ordering;

/// How a query runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecOptions {
    /// `queryAll`: include records in the recycle bin (`IsDeleted = true`).
    pub include_deleted: bool,
    /// The current time in epoch seconds, for `TODAY`, `LAST_N_DAYS:n` and friends (UTC days).
    pub now: i64,
    /// The request's API version (e.g. `59.0`).
    pub api_version: f32,
}

/// One hop from a record to its parent through a reference field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Position of the reference field in the child object.
    pub reference: usize,
    /// Canonical relationship name (`Owner`).
    pub relationship: String,
    /// Canonical name of the parent object (`User`).
    pub object: String,
}

/// One selected column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Canonical dotted path (`Id`, `Account.Name`), the CSV header.
    pub header: String,
    /// Parent hops, empty for a field of the queried object.
    pub hops: Vec<Hop>,
    /// Position of the field in the last object.
    pub field: usize,
    /// Canonical field name (`Name`).
    pub name: String,
    /// The field's type.
    pub field_type: FieldType,
}

/// A `TYPEOF` column: fields of a polymorphic parent chosen by the parent's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolyColumn {
    /// Canonical relationship name (`What`).
    pub relationship: String,
    /// Position of the reference field in the queried object.
    pub reference: usize,
    /// Canonical object name and field positions of each `WHEN` branch.
    pub branches: Vec<(String, Vec<usize>)>,
    /// The `ELSE` field names, looked up on whatever type the parent has.
    pub otherwise: Vec<String>,
}

/// The records of one parent-to-child subquery, per parent row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSet {
    /// The relationship name the parent record shows them under (`Contacts`).
    pub relationship: String,
    /// Canonical name of the child object.
    pub object: String,
    /// The subquery's columns.
    pub columns: Vec<Column>,
    /// Child record indices for each parent row, aligned with `ResultSet::rows`.
    pub rows: Vec<Vec<u32>>,
}

/// The outcome of a query: which records, in which order, and which columns to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultSet {
    /// Canonical name of the queried object.
    pub object: String,
    /// Selected columns in SELECT order (empty for `COUNT()`).
    pub columns: Vec<Column>,
    /// `SELECT COUNT()`: only `total_size` matters and `rows` is empty.
    pub count_only: bool,
    /// `totalSize`: the number of rows the query returns (after OFFSET and LIMIT).
    pub total_size: usize,
    /// Indices into the object's `Table::records`, filtered, ordered, offset and limited.
    pub rows: Vec<u32>,
    /// Parent-to-child subqueries, in SELECT order.
    pub children: Vec<ChildSet>,
    /// An aggregate query's `AggregateResult` records; `rows` then counts them.
    pub aggregates: Option<Vec<serde_json::Value>>,
    /// `TYPEOF` columns, in SELECT order.
    pub polymorphic: Vec<PolyColumn>,
}

/// Runs a parsed query against an org.
pub fn execute(query: &Query, org: &Org, opts: &ExecOptions) -> Result<ResultSet, SoqlError> {
    let table = org.table(&query.object).ok_or_else(|| {
        SoqlError::located(
            INVALID_TYPE,
            &query.text,
            query.object_offset,
            &format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.",
                query.object
            ),
        )
    })?;
    let aggregate = query.has_aggregates() && !query.is_count();
    if aggregate && query.has_subqueries() {
        return Err(SoqlError::new(
            MALFORMED_QUERY,
            "An aggregate query cannot have a parent-to-child subquery",
        ));
    }
    check_fields_function(query, opts)?;
    let columns = if aggregate {
        Vec::new()
    } else {
        columns(query, org, table)?
    };
    let compiler = Compiler {
        query,
        org,
        root: table,
        now: opts.now,
    };
    let pred = query
        .condition
        .as_ref()
        .map(|c| compiler.condition(c))
        .transpose()?;
    let order: Vec<SortItem<'_>> = query
        .order_by
        .iter()
        .filter(|_| !aggregate)
        .map(|item| {
            let r = resolve(query, org, table, &item.field)?;
            Ok(SortItem {
                mode: Mode::of(r.def.field_type),
                acc: r.accessor(),
                descending: item.descending,
                nulls_first: item.nulls_first,
            })
        })
        .collect::<Result<_, SoqlError>>()?;

    let offset = query.offset.map_or(0, |o| o as usize);
    let limit = query.limit.map_or(usize::MAX, |l| l as usize);
    let wanted = offset.saturating_add(limit);
    // Without ORDER BY, rows come in creation order and the scan can stop early.
    let stop_after = if order.is_empty() && !aggregate {
        wanted
    } else {
        usize::MAX
    };

    let records = &table.records;
    let mut rows: Vec<u32> = Vec::new();
    let mut count = 0usize;
    for (i, record) in records.iter().enumerate() {
        if count >= stop_after {
            break;
        }
        if record.purged || (!opts.include_deleted && record.is_deleted()) {
            continue;
        }
        if let Some(p) = &pred {
            if !p.eval(record) {
                continue;
            }
        }
        count += 1;
        if !query.is_count() {
            rows.push(i as u32);
        }
    }

    if aggregate {
        let results = super::aggregate::run(query, org, table, &rows)?;
        return Ok(ResultSet {
            object: table.schema.name.clone(),
            columns,
            count_only: false,
            total_size: results.len(),
            rows: (0..results.len() as u32).collect(),
            children: Vec::new(),
            aggregates: Some(results),
            polymorphic: Vec::new(),
        });
    }
    if query.is_count() {
        let total = count.saturating_sub(offset).min(limit);
        return Ok(ResultSet {
            object: table.schema.name.clone(),
            columns,
            count_only: true,
            total_size: total,
            rows: Vec::new(),
            children: Vec::new(),
            aggregates: None,
            polymorphic: Vec::new(),
        });
    }
    if !order.is_empty() {
        rows = sort_rows(rows, records, &order, wanted);
    }
    let rows: Vec<u32> = if offset > 0 || rows.len() > limit {
        rows.into_iter().skip(offset).take(limit).collect()
    } else {
        rows
    };
    let polymorphic = query
        .select
        .iter()
        .filter_map(|item| match item {
            SelectItem::TypeOf {
                relationship,
                whens,
                otherwise,
                offset,
            } => Some(poly_column(
                query,
                table,
                org,
                relationship,
                whens,
                otherwise,
                *offset,
            )),
            _ => None,
        })
        .collect::<Result<Vec<_>, _>>()?;
    let children = query
        .select
        .iter()
        .filter_map(|item| match item {
            SelectItem::Subquery { query: sub, offset } => Some((sub, *offset)),
            _ => None,
        })
        .map(|(sub, offset)| child_set(query, sub, offset, org, table, &rows, opts))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ResultSet {
        object: table.schema.name.clone(),
        columns,
        count_only: false,
        total_size: rows.len(),
        rows,
        children,
        aggregates: None,
        polymorphic,
    })
}

/// Resolves a `TYPEOF` against the queried object: a polymorphic relationship, and fields that
/// exist on each `WHEN` type.
fn poly_column(
    query: &Query,
    table: &Table,
    org: &Org,
    relationship: &str,
    whens: &[(String, Vec<String>)],
    otherwise: &[String],
    offset: usize,
) -> Result<PolyColumn, SoqlError> {
    let field = table
        .schema
        .relationship(relationship)
        .filter(|f| !f.reference_to.is_empty())
        .ok_or_else(|| {
            SoqlError::located(
                super::INVALID_FIELD,
                &query.text,
                offset,
                &format!("Didn't understand relationship '{relationship}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
            )
        })?;
    let reference = table.schema.field_index(&field.name).unwrap_or_default();
    let mut branches = Vec::with_capacity(whens.len());
    for (object, names) in whens {
        let target = field
            .reference_to
            .iter()
            .find(|t| t.eq_ignore_ascii_case(object))
            .and_then(|t| org.table(t))
            .ok_or_else(|| {
                SoqlError::located(
                    MALFORMED_QUERY,
                    &query.text,
                    offset,
                    &format!("TYPEOF {relationship}: {object} is not a type the relationship can point to"),
                )
            })?;
        let mut at = Vec::with_capacity(names.len());
        for name in names {
            at.push(target.schema.field_index(name).ok_or_else(|| {
                SoqlError::located(
                    super::INVALID_FIELD,
                    &query.text,
                    offset,
                    &format!("No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", target.schema.name),
                )
            })?);
        }
        branches.push((target.schema.name.clone(), at));
    }
    Ok(PolyColumn {
        relationship: field.relationship_name.clone().unwrap_or_default(),
        reference,
        branches,
        otherwise: otherwise.to_vec(),
    })
}

/// The child relationship a subquery's FROM names (`Contacts`, `Account.Contacts`): the child
/// table and the reference field on it that points at the parent.
fn child_relationship<'a>(
    parent_query: &Query,
    sub: &Query,
    org: &'a Org,
    parent: &Table,
) -> Result<(&'a Table, usize, String), SoqlError> {
    let mut name = sub.object.as_str();
    if let Some((first, rest)) = name.split_once('.') {
        let is_parent = first.eq_ignore_ascii_case(&parent.schema.name)
            || parent_query
                .alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(first));
        if is_parent {
            name = rest;
        }
    }
    let mut tables: Vec<&Table> = org.tables.values().collect();
    tables.sort_by(|a, b| a.schema.name.cmp(&b.schema.name));
    for t in tables {
        for (i, f) in t.schema.fields.iter().enumerate() {
            if !f.reference_to.iter().any(|r| r == &parent.schema.name) {
                continue;
            }
            let rel = crate::schema::child_relationship_name(f, &t.schema);
            if rel.eq_ignore_ascii_case(name) {
                return Ok((t, i, rel));
            }
        }
    }
    Err(SoqlError::located(
        INVALID_TYPE,
        &parent_query.text,
        sub.object_offset,
        &format!(
            "Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.",
            sub.object
        ),
    ))
}

/// Runs one parent-to-child subquery for every parent row.
fn child_set(
    parent_query: &Query,
    sub: &Query,
    _offset: usize,
    org: &Org,
    parent: &Table,
    parent_rows: &[u32],
    opts: &ExecOptions,
) -> Result<ChildSet, SoqlError> {
    let (child, reference, relationship) = child_relationship(parent_query, sub, org, parent)?;
    if sub.has_aggregates() {
        return Err(SoqlError::new(
            MALFORMED_QUERY,
            "Aggregate functions are not supported in a parent-to-child subquery",
        ));
    }
    let columns = columns(sub, org, child)?;
    let compiler = Compiler {
        query: sub,
        org,
        root: child,
        now: opts.now,
    };
    let pred = sub
        .condition
        .as_ref()
        .map(|c| compiler.condition(c))
        .transpose()?;
    let order: Vec<SortItem<'_>> = sub
        .order_by
        .iter()
        .map(|item| {
            let r = resolve(sub, org, child, &item.field)?;
            Ok(SortItem {
                mode: Mode::of(r.def.field_type),
                acc: r.accessor(),
                descending: item.descending,
                nulls_first: item.nulls_first,
            })
        })
        .collect::<Result<_, SoqlError>>()?;
    let position: std::collections::HashMap<&str, usize> = parent_rows
        .iter()
        .enumerate()
        .map(|(pos, &row)| (crate::ids::id15(parent.records[row as usize].id()), pos))
        .collect();
    let mut groups: Vec<Vec<u32>> = vec![Vec::new(); parent_rows.len()];
    for (i, record) in child.records.iter().enumerate() {
        if record.purged || (!opts.include_deleted && record.is_deleted()) {
            continue;
        }
        let Some(parent_id) = record.get(reference).as_str() else {
            continue;
        };
        let Some(&pos) = position.get(crate::ids::id15(parent_id)) else {
            continue;
        };
        if pred.as_ref().is_some_and(|p| !p.eval(record)) {
            continue;
        }
        groups[pos].push(i as u32);
    }
    let offset = sub.offset.map_or(0, |o| o as usize);
    let limit = sub.limit.map_or(usize::MAX, |l| l as usize);
    let rows = groups
        .into_iter()
        .map(|group| {
            let group = if order.is_empty() {
                group
            } else {
                sort_rows(group, &child.records, &order, offset.saturating_add(limit))
            };
            group.into_iter().skip(offset).take(limit).collect()
        })
        .collect();
    Ok(ChildSet {
        relationship,
        object: child.schema.name.clone(),
        columns,
        rows,
    })
}

fn check_fields_function(query: &Query, opts: &ExecOptions) -> Result<(), SoqlError> {
    let mut needs_limit = false;
    let mut any = false;
    for item in &query.select {
        if let SelectItem::Fields { kind, .. } = item {
            any = true;
            needs_limit |= matches!(kind, FieldsKind::All | FieldsKind::Custom);
        }
    }
    if !any {
        return Ok(());
    }
    if opts.api_version < 51.0 {
        return Err(SoqlError::new(
            UNSUPPORTED_API_VERSION,
            format!(
                "The SOQL FIELDS function is not supported in API version {:.1}. Use API version 51.0 or later.",
                opts.api_version
            ),
        ));
    }
    if needs_limit && query.limit.is_none_or(|l| l > 200) {
        return Err(SoqlError::new(
            MALFORMED_QUERY,
            "The SOQL FIELDS function must have a LIMIT of at most 200",
        ));
    }
    Ok(())
}

fn columns(query: &Query, org: &Org, table: &Table) -> Result<Vec<Column>, SoqlError> {
    let mut out: Vec<Column> = Vec::new();
    let mut explicit: Vec<String> = Vec::new();
    let direct = |i: usize| {
        let f = &table.schema.fields[i];
        Column {
            header: f.name.clone(),
            hops: Vec::new(),
            field: i,
            name: f.name.clone(),
            field_type: f.field_type,
        }
    };
    for item in &query.select {
        match item {
            SelectItem::Count
            | SelectItem::Aggregate { .. }
            | SelectItem::Subquery { .. }
            | SelectItem::TypeOf { .. } => {}
            SelectItem::Fields { kind, .. } => {
                for (i, f) in table.schema.fields.iter().enumerate() {
                    let take = match kind {
                        FieldsKind::All => true,
                        FieldsKind::Standard => !f.custom,
                        FieldsKind::Custom => f.custom,
                    };
                    if take && !out.iter().any(|c| c.header == f.name) {
                        out.push(direct(i));
                    }
                }
            }
            SelectItem::Field(path) => {
                let r = resolve(query, org, table, path)?;
                if explicit.contains(&r.canonical) {
                    return Err(SoqlError::located(
                        MALFORMED_QUERY,
                        &query.text,
                        path.offset,
                        &format!("duplicate field selected: {}", r.canonical),
                    ));
                }
                explicit.push(r.canonical.clone());
                if out.iter().any(|c| c.header == r.canonical) {
                    // Already selected through FIELDS(…).
                    continue;
                }
                out.push(Column {
                    header: r.canonical.clone(),
                    hops: r
                        .hops
                        .iter()
                        .map(|(reference, relationship, t)| Hop {
                            reference: *reference,
                            relationship: relationship.clone(),
                            object: t.schema.name.clone(),
                        })
                        .collect(),
                    field: r.field,
                    name: r.def.name.clone(),
                    field_type: r.def.field_type,
                });
            }
        }
    }
    Ok(out)
}

/// An accessor for a result column, for rendering; `None` if a parent table disappeared.
pub(crate) fn column_accessor<'a>(org: &'a Org, col: &Column) -> Option<Accessor<'a>> {
    let steps = col
        .hops
        .iter()
        .map(|h| {
            org.table(&h.object).map(|table| Step {
                reference: h.reference,
                table,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Accessor {
        steps,
        field: col.field,
        checkbox: col.field_type == FieldType::Boolean,
    })
}

struct SortItem<'a> {
    acc: Accessor<'a>,
    mode: Mode,
    descending: bool,
    nulls_first: bool,
}

impl<'a> SortItem<'a> {
    fn cmp(&self, a: &'a Record, b: &'a Record) -> Ordering {
        let (va, vb) = (self.acc.get(a), self.acc.get(b));
        match (va.is_null(), vb.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if self.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if self.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let c = cmp_sort(self.mode, va, vb);
                if self.descending {
                    c.reverse()
                } else {
                    c
                }
            }
        }
    }

    /// A `u64` per row that never contradicts `cmp` (a smaller key means an earlier row);
    /// `exact` when equal keys also mean equal values.
    fn keys(&self, rows: &[u32], records: &'a [Record]) -> (Vec<u64>, bool) {
        const SIGN: u64 = 1 << 63;
        const TEXT: u8 = 5;
        let value = |i: u32| self.acc.get(&records[i as usize]);
        let null_key = if self.nulls_first { 0 } else { u64::MAX };
        let fold = self.mode != Mode::Id;
        let flip = |raw: u64| if self.descending { !raw } else { raw };
        // One pass computes the keys of non-text values and learns the kind of values, whether
        // any is null, and (for text) the prefix all values share.
        let mut kind: Option<u8> = None;
        let mut mixed = false;
        let mut has_null = false;
        let mut first_text: Option<&str> = None;
        let mut prefix = usize::MAX;
        let mut keys: Vec<u64> = Vec::with_capacity(rows.len());
        for &i in rows {
            let (k, raw) = match value(i) {
                Value::Null => {
                    has_null = true;
                    keys.push(null_key);
                    continue;
                }
                Value::Int(n) => (1, (*n as u64) ^ SIGN),
                Value::DateTime(n) => (6, (*n as u64) ^ SIGN),
                Value::Date(d) => (2, (i64::from(*d) as u64) ^ SIGN),
                Value::Bool(b) => (3, u64::from(*b)),
                Value::Num(f) => {
                    let bits = f.to_bits();
                    (4, if bits & SIGN != 0 { !bits } else { bits | SIGN })
                }
                Value::Str(s) => {
                    match first_text {
                        None => {
                            first_text = Some(s.as_str());
                            prefix = s.len();
                        }
                        Some(f) => {
                            let common = f
                                .bytes()
                                .zip(s.bytes())
                                .take(prefix)
                                .take_while(|(a, b)| {
                                    if fold {
                                        a.eq_ignore_ascii_case(b)
                                    } else {
                                        a == b
                                    }
                                })
                                .count();
                            prefix = prefix.min(common);
                        }
                    }
                    (TEXT, 0)
                }
            };
            keys.push(flip(raw));
            match kind {
                None => kind = Some(k),
                Some(prev) if prev != k => mixed = true,
                _ => {}
            }
        }
        if mixed {
            return (vec![0; rows.len()], false);
        }
        if kind == Some(TEXT) {
            let prefix = if prefix == usize::MAX { 0 } else { prefix };
            for (key, &i) in keys.iter_mut().zip(rows) {
                if let Value::Str(s) = value(i) {
                    let mut buf = [0u8; 8];
                    for (slot, b) in buf.iter_mut().zip(s.as_bytes().iter().skip(prefix)) {
                        *slot = if fold { b.to_ascii_lowercase() } else { *b };
                    }
                    *key = flip(u64::from_be_bytes(buf));
                }
            }
            return (keys, false);
        }
        (keys, !has_null)
    }
}

#[derive(Clone, Copy)]
struct Entry {
    k0: u64,
    k1: u64,
    row: u32,
}

/// Orders rows by the ORDER BY items (ties in creation order); only the first `wanted` rows
/// need to be right.
fn sort_rows<'a>(
    rows: Vec<u32>,
    records: &'a [Record],
    order: &[SortItem<'a>],
    wanted: usize,
) -> Vec<u32> {
    let (k0, exact0) = order[0].keys(&rows, records);
    let (k1, exact1) = match order.get(1) {
        Some(item) => item.keys(&rows, records),
        None => (vec![0; rows.len()], true),
    };
    let mut entries: Vec<Entry> = rows
        .iter()
        .zip(k0)
        .zip(k1)
        .map(|((&row, k0), k1)| Entry { k0, k1, row })
        .collect();
    let rest = order.get(2..).unwrap_or_default();
    let cmp = |a: &Entry, b: &Entry| -> Ordering {
        let (ra, rb) = (&records[a.row as usize], &records[b.row as usize]);
        a.k0.cmp(&b.k0)
            .then_with(|| {
                if exact0 {
                    Ordering::Equal
                } else {
                    order[0].cmp(ra, rb)
                }
            })
            .then_with(|| a.k1.cmp(&b.k1))
            .then_with(|| match order.get(1) {
                Some(item) if !exact1 => item.cmp(ra, rb),
                _ => Ordering::Equal,
            })
            .then_with(|| {
                rest.iter()
                    .map(|item| item.cmp(ra, rb))
                    .find(|c| c.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
            .then(a.row.cmp(&b.row))
    };
    if wanted < entries.len() {
        if wanted == 0 {
            return Vec::new();
        }
        entries.select_nth_unstable_by(wanted - 1, cmp);
        entries.truncate(wanted);
    }
    entries.sort_unstable_by(cmp);
    entries.into_iter().map(|e| e.row).collect()
}
