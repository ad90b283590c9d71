//! The parsed form of a SOQL query: select items, object, condition tree, ordering, limit and offset, with source offsets for error messages.

/// A parsed query. Names are kept as written; `execute` resolves them against the org's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The query text, for error messages that quote it.
    pub text: String,
    /// The SELECT list, in order.
    pub select: Vec<SelectItem>,
    /// The object after FROM, as written.
    pub object: String,
    /// Byte offset of the object name.
    pub object_offset: usize,
    /// The object's alias (`FROM Contact c`), if any.
    pub alias: Option<String>,
    /// The WHERE condition.
    pub condition: Option<Condition>,
    /// GROUP BY fields.
    pub group_by: Vec<FieldPath>,
    /// ORDER BY items, in order.
    pub order_by: Vec<OrderItem>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// OFFSET.
    pub offset: Option<u64>,
}

impl Query {
    /// Whether the query has an OFFSET clause (Bulk API 2.0 refuses these).
    pub fn has_offset(&self) -> bool {
        self.offset.is_some()
    }

    /// Whether the query is `SELECT COUNT() …`.
    pub fn is_count(&self) -> bool {
        self.select.iter().any(|s| matches!(s, SelectItem::Count))
    }

    /// Whether the query uses `COUNT()`, an aggregate function or GROUP BY (Bulk API 2.0
    /// refuses these).
    pub fn has_aggregates(&self) -> bool {
        !self.group_by.is_empty()
            || self
                .select
                .iter()
                .any(|s| matches!(s, SelectItem::Count | SelectItem::Aggregate { .. }))
    }

    /// Whether the SELECT list has a parent-to-child subquery.
    pub fn has_subqueries(&self) -> bool {
        self.select
            .iter()
            .any(|s| matches!(s, SelectItem::Subquery { .. }))
    }

    /// Whether the SELECT list has a `TYPEOF` (Bulk API 2.0 refuses these).
    pub fn has_typeof(&self) -> bool {
        self.select
            .iter()
            .any(|s| matches!(s, SelectItem::TypeOf { .. }))
    }

    /// Whether the SELECT list uses `FIELDS(…)`.
    pub fn uses_fields_function(&self) -> bool {
        self.select
            .iter()
            .any(|s| matches!(s, SelectItem::Fields { .. }))
    }
}

/// One element of the SELECT list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// A field or a parent relationship path.
    Field(FieldPath),
    /// `COUNT()`.
    Count,
    /// `FIELDS(ALL|STANDARD|CUSTOM)`.
    Fields {
        /// Which fields.
        kind: FieldsKind,
        /// Byte offset of `FIELDS`.
        offset: usize,
    },
    /// A parent-to-child subquery, `(SELECT … FROM Contacts)`: its `object` is the child
    /// relationship name as written.
    Subquery {
        /// The inner query.
        query: Box<Query>,
        /// Byte offset of the opening parenthesis.
        offset: usize,
    },
    /// `TYPEOF What WHEN Account THEN Phone WHEN Opportunity THEN Amount ELSE Name END`: fields of
    /// a polymorphic parent that depend on its type.
    TypeOf {
        /// The relationship as written (`What`).
        relationship: String,
        /// `WHEN Type THEN fields` branches, in order.
        whens: Vec<(String, Vec<String>)>,
        /// The `ELSE` fields (empty without ELSE).
        otherwise: Vec<String>,
        /// Byte offset of `TYPEOF`.
        offset: usize,
    },
    /// `COUNT(f)`, `MAX(f)`, … in an aggregate query.
    Aggregate {
        /// The function.
        func: AggregateFn,
        /// Its argument.
        field: FieldPath,
        /// The alias written after it (`MAX(Amount) top`); unaliased results are `expr0`, `expr1`, ….
        alias: Option<String>,
    },
}

/// The argument of `FIELDS(…)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsKind {
    /// Every field.
    All,
    /// Standard fields only.
    Standard,
    /// Custom fields only.
    Custom,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFn {
    /// `COUNT(f)`.
    Count,
    /// `COUNT_DISTINCT(f)`.
    CountDistinct,
    /// `MIN(f)`.
    Min,
    /// `MAX(f)`.
    Max,
    /// `SUM(f)`.
    Sum,
    /// `AVG(f)`.
    Avg,
}

/// A dotted field path as written (`Name`, `Account.Name`, `Contact.Account.Name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    /// The dot-separated parts.
    pub parts: Vec<String>,
    /// Byte offset of the first part.
    pub offset: usize,
}

impl FieldPath {
    /// The path as written, joined with dots.
    pub fn joined(&self) -> String {
        self.parts.join(".")
    }
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// All must hold.
    And(Vec<Condition>),
    /// Any must hold.
    Or(Vec<Condition>),
    /// Negation.
    Not(Box<Condition>),
    /// `field op value`.
    Compare {
        /// The field.
        field: FieldPath,
        /// The operator.
        op: CompareOp,
        /// The value.
        value: Literal,
    },
    /// `field [NOT] IN (values)`.
    In {
        /// The field.
        field: FieldPath,
        /// `NOT IN`.
        negated: bool,
        /// The values.
        values: Vec<Literal>,
    },
    /// `field [NOT] IN (SELECT f FROM …)`: a semi-join (or anti-join) on another object's field.
    InQuery {
        /// The field.
        field: FieldPath,
        /// `NOT IN`.
        negated: bool,
        /// The inner query; it selects exactly one id or reference field.
        query: Box<Query>,
    },
    /// `field LIKE 'pattern'`.
    Like {
        /// The field.
        field: FieldPath,
        /// The pattern as written between the quotes (escapes not yet decoded).
        raw_pattern: String,
        /// Byte offset of the pattern.
        offset: usize,
    },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// A literal with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    /// The value.
    pub value: LiteralValue,
    /// Byte offset.
    pub offset: usize,
}

/// Literal values, typed as written; `execute` coerces them to the field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum LiteralValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number; `int` is set when it was written without a fraction or exponent.
    Number {
        /// The value.
        value: f64,
        /// The exact integer, when it is one.
        int: Option<i64>,
    },
    /// A quoted string (escapes decoded).
    Str(String),
    /// An unquoted datetime, in epoch seconds.
    DateTime(i64),
    /// An unquoted date, in days since the epoch.
    Date(i32),
    /// A relative date literal.
    Relative(RelativeDate),
}

/// Relative date literals (evaluated in UTC against `ExecOptions::now`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelativeDate {
    /// `TODAY`.
    Today,
    /// `YESTERDAY`.
    Yesterday,
    /// `TOMORROW`.
    Tomorrow,
    /// `LAST_N_DAYS:n`: the past n days and today.
    LastNDays(u32),
    /// `NEXT_N_DAYS:n`: the next n days, from tomorrow.
    NextNDays(u32),
    /// `N_DAYS_AGO:n`: the single day n days ago.
    NDaysAgo(u32),
    /// A run of calendar periods: `THIS_MONTH` is (Month, 0, 1), `LAST_N_WEEKS:3` is
    /// (Week, -3, 3), `NEXT_YEAR` is (Year, 1, 1).
    Period {
        /// The calendar unit.
        unit: PeriodUnit,
        /// The first period, relative to the current one.
        shift: i32,
        /// How many periods.
        count: u32,
    },
}

/// Calendar units of relative date literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodUnit {
    /// Sunday-to-Saturday weeks (the en_US locale).
    Week,
    /// Calendar months.
    Month,
    /// Calendar quarters (January, April, July, October).
    Quarter,
    /// Calendar years.
    Year,
}

impl RelativeDate {
    /// The half-open range of days `[from, to)` relative to today (0 = today).
    pub fn day_range(self) -> (i64, i64) {
        match self {
            RelativeDate::Today => (0, 1),
            RelativeDate::Yesterday => (-1, 0),
            RelativeDate::Tomorrow => (1, 2),
            RelativeDate::LastNDays(n) => (-i64::from(n), 1),
            RelativeDate::NextNDays(n) => (1, 1 + i64::from(n)),
            RelativeDate::NDaysAgo(n) => (-i64::from(n), 1 - i64::from(n)),
            RelativeDate::Period { .. } => (0, 1),
        }
    }

    /// The half-open range of days `[from, to)` since the epoch, given today's.
    pub fn days(self, today: i64) -> (i64, i64) {
        let RelativeDate::Period { unit, shift, count } = self else {
            let (from, to) = self.day_range();
            return (today + from, today + to);
        };
        use chrono::{Datelike, Duration, Months, NaiveDate};
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let date = epoch + Duration::days(today);
        let days_of = |d: NaiveDate| (d - epoch).num_days();
        let months = |start: NaiveDate, by: i64| {
            let m = Months::new(by.unsigned_abs().min(u64::from(u32::MAX)) as u32);
            if by >= 0 {
                start.checked_add_months(m)
            } else {
                start.checked_sub_months(m)
            }
            .unwrap_or(start)
        };
        match unit {
            PeriodUnit::Week => {
                let start = today - i64::from(date.weekday().num_days_from_sunday());
                let from = start + 7 * i64::from(shift);
                (from, from + 7 * i64::from(count))
            }
            PeriodUnit::Month | PeriodUnit::Quarter | PeriodUnit::Year => {
                let per = match unit {
                    PeriodUnit::Month => 1,
                    PeriodUnit::Quarter => 3,
                    _ => 12,
                };
                let month0 = match unit {
                    PeriodUnit::Month => date.month0(),
                    PeriodUnit::Quarter => date.month0() / 3 * 3,
                    _ => 0,
                };
                let start = NaiveDate::from_ymd_opt(date.year(), month0 + 1, 1).unwrap_or(date);
                let from = months(start, per * i64::from(shift));
                let to = months(from, per * i64::from(count));
                (days_of(from), days_of(to))
            }
        }
    }
}

/// One ORDER BY item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    /// The field.
    pub field: FieldPath,
    /// `DESC`.
    pub descending: bool,
    /// Whether nulls come first (default: first for ASC, last for DESC).
    pub nulls_first: bool,
}
