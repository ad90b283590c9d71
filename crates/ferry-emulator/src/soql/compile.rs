//! Name resolution and WHERE compilation: field paths become index chains over the org's tables, literals are coerced to field types, and the condition becomes a predicate tree evaluated per record without allocating.

use super::ast::{CompareOp, Condition, FieldPath, Literal, LiteralValue, Query};
use super::like::LikePattern;
use super::{SoqlError, INVALID_FIELD, INVALID_QUERY_FILTER_OPERATOR, MALFORMED_QUERY};
use crate::ids;
use crate::org::{Org, Record, Table};
use crate::schema::{FieldDef, FieldType};
use crate::value::Value;
use std::cmp::Ordering;

static NULL: Value = Value::Null;
static FALSE: Value = Value::Bool(false);

/// How values of a field compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Ids and references: byte order (ids are case-sensitive and generated in byte order).
    Id,
    /// Other text: case-insensitive.
    Text,
    /// Numbers, dates, booleans: natural order.
    Other,
}

impl Mode {
    pub fn of(field_type: FieldType) -> Mode {
        match field_type {
            FieldType::Id | FieldType::Reference => Mode::Id,
            t if t.is_text() => Mode::Text,
            _ => Mode::Other,
        }
    }
}

/// Compares a stored value with a literal for WHERE: text ignores case entirely.
pub(crate) fn cmp_filter(mode: Mode, v: &Value, lit: &Value) -> Ordering {
    match (mode, v, lit) {
        (Mode::Id, Value::Str(a), Value::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        (_, Value::Str(a), Value::Str(b)) => a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
        _ => v.cmp_for_sort(lit),
    }
}

/// Compares two non-null stored values for ORDER BY: a total order (text ignores case first,
/// then breaks ties by case).
pub(crate) fn cmp_sort(mode: Mode, a: &Value, b: &Value) -> Ordering {
    match (mode, a, b) {
        (Mode::Id, Value::Str(a), Value::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
        _ => a.cmp_for_sort(b),
    }
}

/// One step from a record to its parent: the reference field's position and the parent table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step<'a> {
    pub reference: usize,
    pub table: &'a Table,
}

/// Reads one (possibly parent) field of a record.
#[derive(Debug, Clone)]
pub(crate) struct Accessor<'a> {
    pub steps: Vec<Step<'a>>,
    pub field: usize,
    /// A checkbox: an empty value reads as `false` (records do not store unset checkboxes).
    pub checkbox: bool,
}

impl<'a> Accessor<'a> {
    /// The parent record reached after all steps, if every reference is set and found.
    pub fn target(&self, record: &'a Record) -> Option<&'a Record> {
        let mut r = record;
        for step in &self.steps {
            let id = r.get(step.reference).as_str()?;
            let i = step.table.index_of(id)?;
            r = step.table.records.get(i)?;
        }
        Some(r)
    }

    /// The value, `Null` when any reference on the way is empty or dangling.
    #[inline]
    pub fn get(&self, record: &'a Record) -> &'a Value {
        // The common case (a field of the record itself, not a checkbox) stays a plain index:
        // sorting a million rows calls this once per row and key.
        if self.steps.is_empty() && !self.checkbox {
            return record.get(self.field);
        }
        self.get_through_parents(record)
    }

    fn get_through_parents(&self, record: &'a Record) -> &'a Value {
        let v = if self.steps.is_empty() {
            record.get(self.field)
        } else {
            match self.target(record) {
                Some(r) => r.get(self.field),
                None => return &NULL,
            }
        };
        if self.checkbox && v.is_null() {
            &FALSE
        } else {
            v
        }
    }
}

/// A resolved field path.
#[derive(Debug, Clone)]
pub(crate) struct Resolved<'a> {
    /// (reference field index, canonical relationship name, parent table) per hop.
    pub hops: Vec<(usize, String, &'a Table)>,
    /// The field's index in the last table.
    pub field: usize,
    /// The field's definition.
    pub def: &'a FieldDef,
    /// Canonical dotted path (`Account.Name`).
    pub canonical: String,
}

impl<'a> Resolved<'a> {
    pub fn accessor(&self) -> Accessor<'a> {
        Accessor {
            steps: self
                .hops
                .iter()
                .map(|(reference, _, table)| Step {
                    reference: *reference,
                    table,
                })
                .collect(),
            field: self.field,
            checkbox: self.def.field_type == FieldType::Boolean,
        }
    }
}

/// The message Salesforce gives for an unknown column.
fn no_such_column(query: &Query, offset: usize, name: &str, object: &str) -> SoqlError {
    SoqlError::located(
        INVALID_FIELD,
        &query.text,
        offset,
        &format!(
            "No such column '{name}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

fn bad_relationship(query: &Query, offset: usize, name: &str) -> SoqlError {
    SoqlError::located(
        INVALID_FIELD,
        &query.text,
        offset,
        &format!(
            "Didn't understand relationship '{name}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

/// Resolves a field path against the query's object, following parent relationships.
pub(crate) fn resolve<'a>(
    query: &Query,
    org: &'a Org,
    root: &'a Table,
    path: &FieldPath,
) -> Result<Resolved<'a>, SoqlError> {
    let mut parts: &[String] = &path.parts;
    if parts.len() > 1 {
        let first = &parts[0];
        let is_alias = query
            .alias
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(first));
        let is_object = first.eq_ignore_ascii_case(&root.schema.name)
            && root.schema.relationship(first).is_none();
        if is_alias || is_object {
            parts = &parts[1..];
        }
    }
    let Some((last, rels)) = parts.split_last() else {
        return Err(no_such_column(query, path.offset, "", &root.schema.name));
    };
    let mut table = root;
    let mut hops = Vec::with_capacity(rels.len());
    let mut canonical = String::new();
    for rel in rels {
        let reference = table
            .schema
            .relationship(rel)
            .ok_or_else(|| bad_relationship(query, path.offset, rel))?;
        let index = table
            .schema
            .field_index(&reference.name)
            .ok_or_else(|| bad_relationship(query, path.offset, rel))?;
        let target = reference
            .reference_to
            .first()
            .and_then(|t| org.tables.get(&t.to_ascii_lowercase()))
            .ok_or_else(|| bad_relationship(query, path.offset, rel))?;
        let rel_name = reference
            .relationship_name
            .clone()
            .unwrap_or_else(|| rel.clone());
        canonical.push_str(&rel_name);
        canonical.push('.');
        hops.push((index, rel_name, target));
        table = target;
    }
    let field = table
        .schema
        .field_index(last)
        .ok_or_else(|| no_such_column(query, path.offset, last, &table.schema.name))?;
    let def = &table.schema.fields[field];
    canonical.push_str(&def.name);
    Ok(Resolved {
        hops,
        field,
        def,
        canonical,
    })
}

/// A compiled WHERE condition.
#[derive(Debug, Clone)]
pub(crate) enum Pred<'a> {
    And(Vec<Pred<'a>>),
    Or(Vec<Pred<'a>>),
    Not(Box<Pred<'a>>),
    /// `field op literal` with a non-null literal; a null field only satisfies `!=`.
    Cmp {
        acc: Accessor<'a>,
        mode: Mode,
        op: CompareOp,
        lit: Value,
    },
    /// `field = null` (`is_null`) or `field != null`.
    Null {
        acc: Accessor<'a>,
        is_null: bool,
    },
    /// A relative date literal: the half-open range `[lo, hi)`.
    Range {
        acc: Accessor<'a>,
        op: CompareOp,
        lo: Value,
        hi: Value,
    },
    /// `field [NOT] IN (…)`; `values` are sorted by `cmp_filter`.
    In {
        acc: Accessor<'a>,
        mode: Mode,
        negated: bool,
        values: Vec<Value>,
        ranges: Vec<(Value, Value)>,
        nulls: bool,
    },
    /// `field LIKE pattern`.
    Like {
        acc: Accessor<'a>,
        pattern: LikePattern,
    },
}

impl<'a> Pred<'a> {
    /// Whether a record satisfies the condition.
    pub fn eval(&self, record: &'a Record) -> bool {
        match self {
            Pred::And(ps) => ps.iter().all(|p| p.eval(record)),
            Pred::Or(ps) => ps.iter().any(|p| p.eval(record)),
            Pred::Not(p) => !p.eval(record),
            Pred::Cmp { acc, mode, op, lit } => {
                let v = acc.get(record);
                if v.is_null() {
                    return *op == CompareOp::Ne;
                }
                let ord = cmp_filter(*mode, v, lit);
                match op {
                    CompareOp::Eq => ord == Ordering::Equal,
                    CompareOp::Ne => ord != Ordering::Equal,
                    CompareOp::Lt => ord == Ordering::Less,
                    CompareOp::Le => ord != Ordering::Greater,
                    CompareOp::Gt => ord == Ordering::Greater,
                    CompareOp::Ge => ord != Ordering::Less,
                }
            }
            Pred::Null { acc, is_null } => acc.get(record).is_null() == *is_null,
            Pred::Range { acc, op, lo, hi } => {
                let v = acc.get(record);
                if v.is_null() {
                    return *op == CompareOp::Ne;
                }
                let below = v.cmp_for_sort(lo) == Ordering::Less;
                let above = v.cmp_for_sort(hi) != Ordering::Less;
                match op {
                    CompareOp::Eq => !below && !above,
                    CompareOp::Ne => below || above,
                    CompareOp::Lt => below,
                    CompareOp::Le => !above,
                    CompareOp::Gt => above,
                    CompareOp::Ge => !below,
                }
            }
            Pred::In {
                acc,
                mode,
                negated,
                values,
                ranges,
                nulls,
            } => {
                let v = acc.get(record);
                let found = if v.is_null() {
                    *nulls
                } else {
                    values
                        .binary_search_by(|lit| cmp_filter(*mode, lit, v))
                        .is_ok()
                        || ranges.iter().any(|(lo, hi)| {
                            v.cmp_for_sort(lo) != Ordering::Less
                                && v.cmp_for_sort(hi) == Ordering::Less
                        })
                };
                found != *negated
            }
            Pred::Like { acc, pattern } => match acc.get(record) {
                Value::Str(s) => pattern.matches(s),
                _ => false,
            },
        }
    }
}

/// A literal coerced to a field's type.
enum Coerced {
    Null,
    Value(Value),
    Range(Value, Value),
}

/// Context for compiling one query.
pub(crate) struct Compiler<'q, 'a> {
    pub query: &'q Query,
    pub org: &'a Org,
    pub root: &'a Table,
    /// `now`, epoch seconds.
    pub now: i64,
}

impl<'a> Compiler<'_, 'a> {
    /// Compiles a WHERE condition.
    pub fn condition(&self, cond: &Condition) -> Result<Pred<'a>, SoqlError> {
        Ok(match cond {
            Condition::And(cs) => Pred::And(
                cs.iter()
                    .map(|c| self.condition(c))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Or(cs) => Pred::Or(
                cs.iter()
                    .map(|c| self.condition(c))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Not(c) => Pred::Not(Box::new(self.condition(c)?)),
            Condition::Compare { field, op, value } => {
                let r = resolve(self.query, self.org, self.root, field)?;
                let acc = r.accessor();
                match self.coerce(&r, value)? {
                    Coerced::Null => match op {
                        CompareOp::Eq => Pred::Null { acc, is_null: true },
                        CompareOp::Ne => Pred::Null {
                            acc,
                            is_null: false,
                        },
                        _ => {
                            return Err(SoqlError::located(
                                MALFORMED_QUERY,
                                &self.query.text,
                                value.offset,
                                "unexpected token: null",
                            ))
                        }
                    },
                    Coerced::Value(lit) => Pred::Cmp {
                        acc,
                        mode: Mode::of(r.def.field_type),
                        op: *op,
                        lit,
                    },
                    Coerced::Range(lo, hi) => Pred::Range {
                        acc,
                        op: *op,
                        lo,
                        hi,
                    },
                }
            }
            Condition::In {
                field,
                negated,
                values,
            } => {
                let r = resolve(self.query, self.org, self.root, field)?;
                let mut lits = Vec::with_capacity(values.len());
                let mut ranges = Vec::new();
                let mut nulls = false;
                for v in values {
                    match self.coerce(&r, v)? {
                        Coerced::Null => nulls = true,
                        Coerced::Value(x) => lits.push(x),
                        Coerced::Range(lo, hi) => ranges.push((lo, hi)),
                    }
                }
                let mode = Mode::of(r.def.field_type);
                // Sorted once so each row is a binary search, even for long id lists.
                lits.sort_by(|a, b| cmp_filter(mode, a, b));
                Pred::In {
                    acc: r.accessor(),
                    mode,
                    negated: *negated,
                    values: lits,
                    ranges,
                    nulls,
                }
            }
            Condition::InQuery {
                field,
                negated,
                query,
            } => {
                let r = resolve(self.query, self.org, self.root, field)?;
                if r.def.field_type != FieldType::Id && r.def.field_type != FieldType::Reference {
                    return Err(SoqlError::located(
                        MALFORMED_QUERY,
                        &self.query.text,
                        field.offset,
                        "semi join sub-selects are only allowed on id or reference fields",
                    ));
                }
                let opts = super::exec::ExecOptions {
                    include_deleted: false,
                    now: self.now,
                    api_version: 59.0,
                };
                let inner = super::exec::execute(query, self.org, &opts)?;
                let [column] = inner.columns.as_slice() else {
                    return Err(SoqlError::new(
                        MALFORMED_QUERY,
                        "a semi join sub-select must select exactly one id or reference field",
                    ));
                };
                if column.field_type != FieldType::Id && column.field_type != FieldType::Reference {
                    return Err(SoqlError::new(
                        MALFORMED_QUERY,
                        "a semi join sub-select must select an id or reference field",
                    ));
                }
                let table = self
                    .org
                    .table(&inner.object)
                    .ok_or_else(|| SoqlError::new(MALFORMED_QUERY, "unknown object"))?;
                let acc = super::exec::column_accessor(self.org, column);
                let mut values: Vec<Value> = inner
                    .rows
                    .iter()
                    .filter_map(|&row| {
                        let record = table.records.get(row as usize)?;
                        let v = acc.as_ref()?.get(record);
                        (!v.is_null()).then(|| v.clone())
                    })
                    .collect();
                values.sort_by(|a, b| cmp_filter(Mode::Id, a, b));
                values.dedup();
                Pred::In {
                    acc: r.accessor(),
                    mode: Mode::Id,
                    negated: *negated,
                    values,
                    ranges: Vec::new(),
                    nulls: false,
                }
            }
            Condition::Like {
                field, raw_pattern, ..
            } => {
                let r = resolve(self.query, self.org, self.root, field)?;
                if !r.def.field_type.is_text() {
                    return Err(SoqlError::located(
                        INVALID_FIELD,
                        &self.query.text,
                        field.offset,
                        &format!(
                            "invalid operator on field '{}': LIKE only applies to text fields",
                            r.def.name
                        ),
                    ));
                }
                Pred::Like {
                    acc: r.accessor(),
                    pattern: LikePattern::new(raw_pattern),
                }
            }
        })
    }

    fn coerce(&self, r: &Resolved<'_>, lit: &Literal) -> Result<Coerced, SoqlError> {
        let ft = r.def.field_type;
        let wrong = |type_name: &str, quoted: bool| {
            SoqlError::located(
                INVALID_FIELD,
                &self.query.text,
                lit.offset,
                &format!(
                    "value of filter criterion for field '{}' must be of type {type_name} and should {}be enclosed in quotes",
                    r.def.name,
                    if quoted { "" } else { "not " }
                ),
            )
        };
        let day = self.now.div_euclid(86_400);
        Ok(match (&lit.value, ft) {
            (LiteralValue::Null, _) => Coerced::Null,
            (LiteralValue::Str(s), FieldType::Id | FieldType::Reference) => {
                match ids::normalize(s) {
                    Some(id) => Coerced::Value(Value::str(id)),
                    None => {
                        return Err(SoqlError::located(
                            INVALID_QUERY_FILTER_OPERATOR,
                            &self.query.text,
                            lit.offset,
                            &format!("invalid ID field: {s}"),
                        ))
                    }
                }
            }
            (_, FieldType::Id | FieldType::Reference) => return Err(wrong("id", true)),
            (LiteralValue::Str(s), t) if t.is_text() => Coerced::Value(Value::str(s)),
            (_, t) if t.is_text() => return Err(wrong("string", true)),
            (LiteralValue::Bool(b), FieldType::Boolean) => Coerced::Value(Value::Bool(*b)),
            (_, FieldType::Boolean) => return Err(wrong("boolean", false)),
            (LiteralValue::Number { value, int }, FieldType::Int) => Coerced::Value(match int {
                Some(i) => Value::Int(*i),
                None => Value::Num(*value),
            }),
            (_, FieldType::Int) => return Err(wrong("int", false)),
            (
                LiteralValue::Number { value, .. },
                FieldType::Double | FieldType::Currency | FieldType::Percent,
            ) => Coerced::Value(Value::Num(*value)),
            (_, FieldType::Double | FieldType::Currency | FieldType::Percent) => {
                return Err(wrong("double", false))
            }
            (LiteralValue::DateTime(s), FieldType::Datetime) => Coerced::Value(Value::DateTime(*s)),
            (LiteralValue::Relative(rel), FieldType::Datetime) => {
                let (from, to) = rel.days(day);
                Coerced::Range(
                    Value::DateTime(from.saturating_mul(86_400)),
                    Value::DateTime(to.saturating_mul(86_400)),
                )
            }
            (_, FieldType::Datetime) => return Err(wrong("dateTime", false)),
            (LiteralValue::Date(d), FieldType::Date) => Coerced::Value(Value::Date(*d)),
            (LiteralValue::Relative(rel), FieldType::Date) => {
                let (from, to) = rel.days(day);
                let clamp =
                    |d: i64| Value::Date(d.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
                Coerced::Range(clamp(from), clamp(to))
            }
            (_, FieldType::Date) => return Err(wrong("date", false)),
            _ => return Err(wrong(ft.as_str(), false)),
        })
    }
}
