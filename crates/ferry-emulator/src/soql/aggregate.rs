//! Aggregate queries: `COUNT(f)`, `COUNT_DISTINCT`, `MIN`, `MAX`, `SUM` and `AVG`, with or without `GROUP BY`, over the rows a WHERE selected; each group becomes one `AggregateResult` record.

use super::ast::{AggregateFn, Query, SelectItem};
use super::compile::{cmp_sort, resolve, Accessor, Mode};
use super::{SoqlError, MALFORMED_QUERY};
use crate::org::{Org, Record, Table};
use crate::schema::FieldType;
use crate::value::Value;
use serde_json::{Map, Value as Json};
use std::cmp::Ordering;

/// One output column of an aggregate query.
enum Out<'a> {
    /// A GROUP BY field, shown under its field name.
    Group { key: String, at: usize },
    /// An aggregate over a field.
    Agg {
        key: String,
        func: AggregateFn,
        acc: Accessor<'a>,
        mode: Mode,
        numeric_int: bool,
    },
}

/// Runs an aggregate query over `rows` (record indices that passed WHERE, in creation order);
/// returns one JSON record per group, ordered and cut as the query says.
pub(crate) fn run(
    query: &Query,
    org: &Org,
    table: &Table,
    rows: &[u32],
) -> Result<Vec<Json>, SoqlError> {
    let groups: Vec<(Accessor<'_>, Mode, String)> = query
        .group_by
        .iter()
        .map(|path| {
            let r = resolve(query, org, table, path)?;
            Ok((
                r.accessor(),
                Mode::of(r.def.field_type),
                r.canonical.clone(),
            ))
        })
        .collect::<Result<_, SoqlError>>()?;
    let mut outs = Vec::new();
    let mut unnamed = 0usize;
    for item in &query.select {
        match item {
            SelectItem::Field(path) => {
                let r = resolve(query, org, table, path)?;
                let Some(at) = groups.iter().position(|(_, _, c)| *c == r.canonical) else {
                    return Err(SoqlError::located(
                        MALFORMED_QUERY,
                        &query.text,
                        path.offset,
                        &format!("Field must be grouped or aggregated: {}", r.def.name),
                    ));
                };
                outs.push(Out::Group {
                    key: r.def.name.clone(),
                    at,
                });
            }
            SelectItem::Aggregate { func, field, alias } => {
                let r = resolve(query, org, table, field)?;
                let numeric = matches!(
                    r.def.field_type,
                    FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent
                );
                if matches!(func, AggregateFn::Sum | AggregateFn::Avg) && !numeric {
                    return Err(SoqlError::located(
                        MALFORMED_QUERY,
                        &query.text,
                        field.offset,
                        &format!(
                            "field {} does not support aggregate operator {}",
                            r.def.name,
                            if *func == AggregateFn::Sum {
                                "SUM"
                            } else {
                                "AVG"
                            }
                        ),
                    ));
                }
                let key = alias.clone().unwrap_or_else(|| {
                    let k = format!("expr{unnamed}");
                    unnamed += 1;
                    k
                });
                outs.push(Out::Agg {
                    key,
                    func: *func,
                    acc: r.accessor(),
                    mode: Mode::of(r.def.field_type),
                    numeric_int: r.def.field_type == FieldType::Int,
                });
            }
            _ => return Err(SoqlError::new(
                MALFORMED_QUERY,
                "Only grouped fields and aggregate functions may be selected in an aggregate query",
            )),
        }
    }
    let records = &table.records;
    // Groups in order of first appearance; keys compare as ORDER BY does (text ignoring case).
    let mut buckets: Vec<(Vec<&Value>, Vec<u32>)> = Vec::new();
    if groups.is_empty() {
        buckets.push((Vec::new(), rows.to_vec()));
    } else {
        let mut index: std::collections::HashMap<Vec<String>, usize> =
            std::collections::HashMap::new();
        for &row in rows {
            let record = &records[row as usize];
            let values: Vec<&Value> = groups.iter().map(|(acc, _, _)| acc.get(record)).collect();
            let key: Vec<String> = values
                .iter()
                .zip(&groups)
                .map(|(v, (_, mode, _))| match (v, mode) {
                    (Value::Str(s), Mode::Text) => s.to_lowercase().to_string(),
                    (v, _) => format!("{v:?}"),
                })
                .collect();
            match index.get(&key) {
                Some(&i) => buckets[i].1.push(row),
                None => {
                    index.insert(key, buckets.len());
                    buckets.push((values, vec![row]));
                }
            }
        }
    }
    // ORDER BY names GROUP BY fields here.
    let order: Vec<(usize, bool, bool)> = query
        .order_by
        .iter()
        .map(|item| {
            let r = resolve(query, org, table, &item.field)?;
            let at = groups
                .iter()
                .position(|(_, _, c)| *c == r.canonical)
                .ok_or_else(|| {
                    SoqlError::located(
                        MALFORMED_QUERY,
                        &query.text,
                        item.field.offset,
                        &format!(
                            "Ordered field must be grouped or aggregated: {}",
                            r.def.name
                        ),
                    )
                })?;
            Ok((at, item.descending, item.nulls_first))
        })
        .collect::<Result<_, SoqlError>>()?;
    if !order.is_empty() {
        buckets.sort_by(|a, b| {
            for &(at, desc, nulls_first) in &order {
                let (x, y) = (a.0[at], b.0[at]);
                let c = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) if nulls_first => Ordering::Less,
                    (true, false) => Ordering::Greater,
                    (false, true) if nulls_first => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => {
                        let c = cmp_sort(groups[at].1, x, y);
                        if desc {
                            c.reverse()
                        } else {
                            c
                        }
                    }
                };
                if c.is_ne() {
                    return c;
                }
            }
            Ordering::Equal
        });
    }
    let offset = query.offset.map_or(0, |o| o as usize);
    let limit = query.limit.map_or(usize::MAX, |l| l as usize);
    Ok(buckets
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(values, members)| render(&outs, values, members, records))
        .collect())
}

fn render(outs: &[Out<'_>], values: &[&Value], members: &[u32], records: &[Record]) -> Json {
    let mut map = Map::new();
    let mut attrs = Map::new();
    attrs.insert("type".into(), Json::String("AggregateResult".into()));
    map.insert("attributes".into(), Json::Object(attrs));
    for out in outs {
        match out {
            Out::Group { key, at } => {
                map.insert(key.clone(), values[*at].to_json());
            }
            Out::Agg {
                key,
                func,
                acc,
                mode,
                numeric_int,
            } => {
                let present: Vec<&Value> = members
                    .iter()
                    .map(|&r| acc.get(&records[r as usize]))
                    .filter(|v| !v.is_null())
                    .collect();
                map.insert(key.clone(), aggregate(*func, *mode, *numeric_int, &present));
            }
        }
    }
    Json::Object(map)
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Num(n) => Some(*n),
        _ => None,
    }
}

fn aggregate(func: AggregateFn, mode: Mode, int: bool, present: &[&Value]) -> Json {
    match func {
        AggregateFn::Count => Json::from(present.len()),
        AggregateFn::CountDistinct => {
            let mut sorted: Vec<&Value> = present.to_vec();
            sorted.sort_by(|a, b| cmp_sort(mode, a, b));
            sorted.dedup_by(|a, b| super::compile::cmp_filter(mode, a, b) == Ordering::Equal);
            Json::from(sorted.len())
        }
        AggregateFn::Min => present
            .iter()
            .min_by(|a, b| cmp_sort(mode, a, b))
            .map_or(Json::Null, |v| v.to_json()),
        AggregateFn::Max => present
            .iter()
            .max_by(|a, b| cmp_sort(mode, a, b))
            .map_or(Json::Null, |v| v.to_json()),
        AggregateFn::Sum if present.is_empty() => Json::Null,
        AggregateFn::Sum => {
            let total: f64 = present.iter().filter_map(|v| number(v)).sum();
            if int {
                Json::from(total as i64)
            } else {
                serde_json::Number::from_f64(total).map_or(Json::Null, Json::Number)
            }
        }
        AggregateFn::Avg if present.is_empty() => Json::Null,
        AggregateFn::Avg => {
            let total: f64 = present.iter().filter_map(|v| number(v)).sum();
            serde_json::Number::from_f64(total / present.len() as f64)
                .map_or(Json::Null, Json::Number)
        }
    }
}
