//! Property tests: random records and random WHERE / ORDER BY / LIMIT / OFFSET queries must select the same ids, in the same order, as a brute-force model written independently here.

use super::*;
use crate::ids;
use crate::org::{Org, WriteContext};
use crate::value::{format_datetime_csv, Value};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use std::cmp::Ordering;

const POD: &str = "7x";
const BASE: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const NAMES: &[&str] = &[
    "acme", "Acme", "ACME", "beta", "Beta", "b", "zeta", "Zeta co", "a_b", "a%b", "it's", "Ab",
];
const INDUSTRIES: &[&str] = &["Energy", "Banking", "Retail"];
const ALIASES: &[&str] = &["ann", "Bob"];

#[derive(Debug, Clone)]
struct Row {
    name: Option<&'static str>,
    emp: Option<i64>,
    rev: Option<f64>,
    industry: Option<&'static str>,
    stamp: i64,
    owner: usize,
    deleted: bool,
    active: Option<bool>,
}

/// The fields the generator uses, with their kind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum F {
    Name,
    Emp,
    Rev,
    Industry,
    Stamp,
    Id,
    OwnerAlias,
    Active,
}

impl F {
    fn soql(self) -> &'static str {
        match self {
            F::Name => "Name",
            F::Emp => "NumberOfEmployees",
            F::Rev => "annualrevenue",
            F::Industry => "Industry",
            F::Stamp => "SystemModstamp",
            F::Id => "Id",
            F::OwnerAlias => "Owner.Alias",
            F::Active => "Active__c",
        }
    }
}

/// A model value: the brute force works on these, not on the emulator's `Value`.
#[derive(Debug, Clone, PartialEq)]
enum M {
    Null,
    Text(String),
    Id(String),
    Int(i64),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Pat {
    Lit(char),
    One,
    Any,
}

#[derive(Debug, Clone)]
enum Lit {
    Null,
    Text(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    /// A datetime, and whether to write it with a `+01:00` offset.
    Stamp(i64, bool),
    /// A record position, and whether to write its 15-character id.
    IdOf(usize, bool),
}

#[derive(Debug, Clone)]
enum Cond {
    Cmp(F, Op, Lit),
    In(F, bool, Vec<Lit>),
    Like(F, Vec<Pat>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

#[derive(Debug, Clone)]
struct Order {
    field: F,
    desc: bool,
    nulls: Option<bool>,
}

#[derive(Debug, Clone)]
struct Q {
    cond: Option<Cond>,
    order: Vec<Order>,
    limit: Option<usize>,
    offset: Option<usize>,
    all: bool,
}

fn row_strategy() -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.8, proptest::sample::select(NAMES)),
        proptest::option::weighted(0.7, -3i64..6),
        proptest::option::weighted(
            0.7,
            proptest::sample::select(&[-1.5, 0.0, 0.5, 2.0, 3.25][..]),
        ),
        proptest::option::weighted(0.6, proptest::sample::select(INDUSTRIES)),
        0i64..5,
        0usize..2,
        proptest::bool::weighted(0.2),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(name, emp, rev, industry, h, owner, deleted, active)| Row {
                name,
                emp,
                rev,
                industry,
                stamp: BASE + h * 3600,
                owner,
                deleted,
                active,
            },
        )
}

fn field_strategy() -> impl Strategy<Value = F> {
    proptest::sample::select(vec![
        F::Name,
        F::Emp,
        F::Rev,
        F::Industry,
        F::Stamp,
        F::Id,
        F::OwnerAlias,
        F::Active,
    ])
}

fn lit_for(f: F, n: usize) -> BoxedStrategy<Lit> {
    let non_null = match f {
        F::Name => proptest::sample::select(NAMES)
            .prop_map(|s| Lit::Text(s.to_string()))
            .boxed(),
        F::Industry => proptest::sample::select(&["energy", "Banking", "RETAIL", "Other"][..])
            .prop_map(|s| Lit::Text(s.to_string()))
            .boxed(),
        F::OwnerAlias => proptest::sample::select(&["ANN", "bob", "carl"][..])
            .prop_map(|s| Lit::Text(s.to_string()))
            .boxed(),
        F::Emp => (-4i64..7).prop_map(Lit::Int).boxed(),
        F::Rev => prop_oneof![
            (-2i64..4).prop_map(Lit::Int),
            proptest::sample::select(&[-1.5, 0.5, 2.0, 3.3][..]).prop_map(Lit::Num)
        ]
        .boxed(),
        F::Stamp => ((-1i64..6), any::<bool>())
            .prop_map(|(h, off)| Lit::Stamp(BASE + h * 3600, off))
            .boxed(),
        F::Active => any::<bool>().prop_map(Lit::Bool).boxed(),
        F::Id => (0..n.max(1), any::<bool>())
            .prop_map(|(i, short)| Lit::IdOf(i, short))
            .boxed(),
    };
    prop_oneof![1 => Just(Lit::Null), 6 => non_null].boxed()
}

fn pattern_strategy() -> impl Strategy<Value = Vec<Pat>> {
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(&['a', 'b', 'e', 'Z', ' ', '%', '_', '\''][..]).prop_map(Pat::Lit),
            1 => Just(Pat::One),
            2 => Just(Pat::Any),
        ],
        0..5,
    )
}

fn leaf(n: usize) -> BoxedStrategy<Cond> {
    let cmp = field_strategy()
        .prop_flat_map(move |f| {
            let ops =
                proptest::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge]);
            (Just(f), ops, lit_for(f, n))
        })
        .prop_map(|(f, op, lit)| match lit {
            // Only = and != take null.
            Lit::Null => Cond::Cmp(
                f,
                if matches!(op, Op::Eq | Op::Lt | Op::Ge) {
                    Op::Eq
                } else {
                    Op::Ne
                },
                Lit::Null,
            ),
            lit => Cond::Cmp(f, op, lit),
        });
    let inn = field_strategy().prop_flat_map(move |f| {
        (
            Just(f),
            any::<bool>(),
            proptest::collection::vec(lit_for(f, n), 1..4),
        )
            .prop_map(|(f, neg, lits)| Cond::In(f, neg, lits))
    });
    let like = (
        proptest::sample::select(vec![F::Name, F::Industry, F::OwnerAlias]),
        pattern_strategy(),
    )
        .prop_map(|(f, p)| Cond::Like(f, p));
    prop_oneof![4 => cmp, 2 => inn, 1 => like].boxed()
}

fn cond_strategy(n: usize) -> impl Strategy<Value = Cond> {
    leaf(n).prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Cond::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Cond::Or),
            inner.prop_map(|c| Cond::Not(Box::new(c))),
        ]
    })
}

fn query_strategy(n: usize) -> impl Strategy<Value = Q> {
    (
        proptest::option::weighted(0.8, cond_strategy(n)),
        proptest::collection::vec(
            (
                field_strategy(),
                any::<bool>(),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(|(field, desc, nulls)| Order { field, desc, nulls }),
            0..4,
        ),
        proptest::option::of(0usize..25),
        proptest::option::weighted(0.3, 0usize..10),
        proptest::bool::weighted(0.3),
    )
        .prop_map(|(cond, order, limit, offset, all)| Q {
            cond,
            order,
            limit,
            offset,
            all,
        })
}

// ---- Building the org -------------------------------------------------------------------

fn build(rows: &[Row]) -> (Org, Vec<String>) {
    let mut org = Org::new(ids::make_id("00D", POD, 1), "Prop", false, POD);
    let active = crate::schema::FieldDef::new("Active__c", crate::schema::FieldType::Boolean);
    if let Err(e) = org.define_object("Account", "Accounts", vec![active]) {
        panic!("{e:?}");
    }
    let mut users = Vec::new();
    for alias in ALIASES {
        let table = org.table("User").unwrap_or_else(|| panic!("no User"));
        let n = table.schema.fields.len();
        let mut values = vec![Value::Null; n];
        let idx = |name: &str| {
            table
                .schema
                .field_index(name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        values[idx("Alias")] = Value::str(alias);
        values[idx("LastName")] = Value::str(alias);
        let id = org
            .insert_raw("User", values, "005000000000000AAA", BASE)
            .unwrap_or_else(|| panic!("user"));
        users.push(id);
    }
    let schema = org
        .table("Account")
        .unwrap_or_else(|| panic!("no Account"))
        .schema
        .clone();
    let idx = |name: &str| schema.field_index(name).unwrap_or_else(|| panic!("{name}"));
    let mut ids_out = Vec::new();
    for row in rows {
        let mut values = vec![Value::Null; schema.fields.len()];
        let set = |values: &mut Vec<Value>, name: &str, v: Value| values[idx(name)] = v;
        set(
            &mut values,
            "Name",
            row.name.map_or(Value::Null, Value::str),
        );
        set(
            &mut values,
            "NumberOfEmployees",
            row.emp.map_or(Value::Null, Value::Int),
        );
        set(
            &mut values,
            "AnnualRevenue",
            row.rev.map_or(Value::Null, Value::Num),
        );
        set(
            &mut values,
            "Industry",
            row.industry.map_or(Value::Null, Value::str),
        );
        set(&mut values, "OwnerId", Value::str(&users[row.owner]));
        set(
            &mut values,
            "Active__c",
            row.active.map_or(Value::Null, Value::Bool),
        );
        let id = org
            .insert_raw("Account", values, &users[0], row.stamp)
            .unwrap_or_else(|| panic!("insert"));
        if row.deleted {
            let ctx = WriteContext {
                user_id: &users[0],
                now: row.stamp,
                modstamp: Some(row.stamp),
            };
            if let Err(e) = org.delete("Account", &id, ctx) {
                panic!("{e:?}");
            }
        }
        ids_out.push(id);
    }
    (org, ids_out)
}

// ---- Writing SOQL -------------------------------------------------------------------------

fn quote(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn write_lit(lit: &Lit, ids: &[String]) -> String {
    match lit {
        Lit::Null => "null".into(),
        Lit::Text(s) => quote(s),
        Lit::Int(i) => i.to_string(),
        Lit::Num(x) => format!("{x:?}"),
        Lit::Bool(b) => {
            if *b {
                "TRUE".into()
            } else {
                "false".into()
            }
        }
        Lit::Stamp(secs, false) => format_datetime_csv(*secs),
        Lit::Stamp(secs, true) => Utc
            .timestamp_opt(secs + 3600, 0)
            .single()
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S+01:00").to_string())
            .unwrap_or_default(),
        Lit::IdOf(i, short) => {
            let id = ids
                .get(*i)
                .cloned()
                .unwrap_or_else(|| "001000000000000AAA".into());
            quote(if *short { &id[..15] } else { &id })
        }
    }
}

fn write_cond(c: &Cond, ids: &[String]) -> String {
    match c {
        Cond::Cmp(f, op, lit) => {
            let op = match op {
                Op::Eq => "=",
                Op::Ne => "!=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                Op::Ge => ">=",
            };
            format!("{} {op} {}", f.soql(), write_lit(lit, ids))
        }
        Cond::In(f, neg, lits) => format!(
            "{} {}IN ({})",
            f.soql(),
            if *neg { "NOT " } else { "" },
            lits.iter()
                .map(|l| write_lit(l, ids))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Cond::Like(f, pat) => {
            let mut s = String::from("'");
            for p in pat {
                match p {
                    Pat::Any => s.push('%'),
                    Pat::One => s.push('_'),
                    Pat::Lit(c) if matches!(c, '%' | '_' | '\'' | '\\') => {
                        s.push('\\');
                        s.push(*c);
                    }
                    Pat::Lit(c) => s.push(*c),
                }
            }
            s.push('\'');
            format!("{} LIKE {s}", f.soql())
        }
        Cond::And(cs) => format!(
            "({})",
            cs.iter()
                .map(|c| write_cond(c, ids))
                .collect::<Vec<_>>()
                .join(" AND ")
        ),
        Cond::Or(cs) => format!(
            "({})",
            cs.iter()
                .map(|c| write_cond(c, ids))
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        Cond::Not(c) => format!("(NOT {})", write_cond(c, ids)),
    }
}

fn write_query(q: &Q, ids: &[String]) -> String {
    let mut s = String::from("SELECT Id, Name, Owner.Alias FROM Account");
    if let Some(c) = &q.cond {
        s.push_str(" WHERE ");
        s.push_str(&write_cond(c, ids));
    }
    if !q.order.is_empty() {
        let items: Vec<String> = q
            .order
            .iter()
            .map(|o| {
                format!(
                    "{}{}{}",
                    o.field.soql(),
                    if o.desc { " DESC" } else { "" },
                    match o.nulls {
                        None => "",
                        Some(true) => " NULLS FIRST",
                        Some(false) => " NULLS LAST",
                    }
                )
            })
            .collect();
        s.push_str(" ORDER BY ");
        s.push_str(&items.join(", "));
    }
    if let Some(l) = q.limit {
        s.push_str(&format!(" LIMIT {l}"));
    }
    if let Some(o) = q.offset {
        s.push_str(&format!(" OFFSET {o}"));
    }
    s
}

// ---- The brute-force model ----------------------------------------------------------------

fn model_value(row: &Row, id: &str, f: F) -> M {
    match f {
        F::Name => row.name.map_or(M::Null, |s| M::Text(s.into())),
        F::Industry => row.industry.map_or(M::Null, |s| M::Text(s.into())),
        F::OwnerAlias => M::Text(ALIASES[row.owner].into()),
        F::Emp => row.emp.map_or(M::Null, M::Int),
        F::Rev => row.rev.map_or(M::Null, M::Num),
        F::Stamp => M::Int(row.stamp),
        F::Id => M::Id(id.to_string()),
        // A checkbox is never empty: unset reads as false.
        F::Active => M::Bool(row.active.unwrap_or(false)),
    }
}

fn model_lit(f: F, lit: &Lit, ids: &[String]) -> M {
    match (f, lit) {
        (_, Lit::Null) => M::Null,
        (_, Lit::Text(s)) => M::Text(s.clone()),
        (F::Rev, Lit::Int(i)) => M::Num(*i as f64),
        (_, Lit::Int(i)) => M::Int(*i),
        (_, Lit::Num(x)) => M::Num(*x),
        (_, Lit::Bool(b)) => M::Bool(*b),
        (_, Lit::Stamp(s, _)) => M::Int(*s),
        (_, Lit::IdOf(i, _)) => M::Id(
            ids.get(*i)
                .cloned()
                .unwrap_or_else(|| "001000000000000AAA".into()),
        ),
    }
}

/// Case-insensitive for text, byte order for ids, numeric otherwise.
fn model_cmp(a: &M, b: &M) -> Ordering {
    match (a, b) {
        (M::Text(x), M::Text(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (M::Id(x), M::Id(y)) => x.cmp(y),
        (M::Int(x), M::Int(y)) => x.cmp(y),
        (M::Num(x), M::Num(y)) => x.total_cmp(y),
        (M::Bool(x), M::Bool(y)) => x.cmp(y),
        _ => panic!("model compares {a:?} with {b:?}"),
    }
}

fn like(pat: &[Pat], text: &[char]) -> bool {
    match pat.split_first() {
        None => text.is_empty(),
        Some((Pat::Any, rest)) => (0..=text.len()).any(|k| like(rest, &text[k..])),
        Some((Pat::One, rest)) => !text.is_empty() && like(rest, &text[1..]),
        Some((Pat::Lit(c), rest)) => {
            text.first()
                .is_some_and(|t| t.to_lowercase().eq(c.to_lowercase()))
                && like(rest, &text[1..])
        }
    }
}

fn model_eval(c: &Cond, row: &Row, id: &str, ids: &[String]) -> bool {
    match c {
        Cond::And(cs) => cs.iter().all(|c| model_eval(c, row, id, ids)),
        Cond::Or(cs) => cs.iter().any(|c| model_eval(c, row, id, ids)),
        Cond::Not(c) => !model_eval(c, row, id, ids),
        Cond::Cmp(f, op, lit) => {
            let v = model_value(row, id, *f);
            let l = model_lit(*f, lit, ids);
            match (&v, &l) {
                (M::Null, M::Null) => *op == Op::Eq,
                (_, M::Null) => *op == Op::Ne,
                (M::Null, _) => *op == Op::Ne,
                _ => {
                    let o = model_cmp(&v, &l);
                    match op {
                        Op::Eq => o.is_eq(),
                        Op::Ne => o.is_ne(),
                        Op::Lt => o.is_lt(),
                        Op::Le => o.is_le(),
                        Op::Gt => o.is_gt(),
                        Op::Ge => o.is_ge(),
                    }
                }
            }
        }
        Cond::In(f, neg, lits) => {
            let v = model_value(row, id, *f);
            let hit = lits.iter().any(|lit| {
                let l = model_lit(*f, lit, ids);
                match (&v, &l) {
                    (M::Null, M::Null) => true,
                    (M::Null, _) | (_, M::Null) => false,
                    _ => model_cmp(&v, &l).is_eq(),
                }
            });
            hit != *neg
        }
        Cond::Like(f, pat) => match model_value(row, id, *f) {
            M::Text(s) => like(pat, &s.chars().collect::<Vec<_>>()),
            _ => false,
        },
    }
}

/// ORDER BY tie-break for text: case-insensitive first, then case-sensitive.
fn model_sort_cmp(a: &M, b: &M) -> Ordering {
    match (a, b) {
        (M::Text(x), M::Text(y)) => x
            .to_lowercase()
            .cmp(&y.to_lowercase())
            .then_with(|| x.cmp(y)),
        _ => model_cmp(a, b),
    }
}

fn model_run(rows: &[Row], ids: &[String], q: &Q) -> Vec<String> {
    let mut hits: Vec<usize> = (0..rows.len())
        .filter(|&i| q.all || !rows[i].deleted)
        .filter(|&i| {
            q.cond
                .as_ref()
                .is_none_or(|c| model_eval(c, &rows[i], &ids[i], ids))
        })
        .collect();
    hits.sort_by(|&a, &b| {
        for o in &q.order {
            let va = model_value(&rows[a], &ids[a], o.field);
            let vb = model_value(&rows[b], &ids[b], o.field);
            let nulls_first = o.nulls.unwrap_or(!o.desc);
            let c = match (&va, &vb) {
                (M::Null, M::Null) => Ordering::Equal,
                (M::Null, _) => {
                    if nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (_, M::Null) => {
                    if nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                _ => {
                    let c = model_sort_cmp(&va, &vb);
                    if o.desc {
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
    hits.into_iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|i| ids[i].clone())
        .collect()
}

fn scenario() -> impl Strategy<Value = (Vec<Row>, Q)> {
    proptest::collection::vec(row_strategy(), 0..50).prop_flat_map(|rows| {
        let n = rows.len();
        (Just(rows), query_strategy(n))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn execute_matches_brute_force((rows, q) in scenario()) {
        let (org, ids) = build(&rows);
        let text = write_query(&q, &ids);
        let parsed = parse(&text);
        prop_assert!(parsed.is_ok(), "{text}: {:?}", parsed.err());
        let Ok(parsed) = parsed else { return Ok(()) };
        let opts = ExecOptions { include_deleted: q.all, now: BASE, api_version: 59.0 };
        let rs = execute(&parsed, &org, &opts);
        prop_assert!(rs.is_ok(), "{text}: {:?}", rs.err());
        let Ok(rs) = rs else { return Ok(()) };
        let table = org.table("Account").unwrap_or_else(|| panic!("no Account"));
        let got: Vec<String> = rs.rows.iter().map(|&r| table.records[r as usize].id().to_string()).collect();
        let want = model_run(&rows, &ids, &q);
        prop_assert_eq!(rs.total_size, want.len());
        prop_assert_eq!(got, want, "{}", text);

        // COUNT() agrees with the row count.
        let count_text = text.replacen("SELECT Id, Name, Owner.Alias", "SELECT COUNT()", 1);
        let count = parse(&count_text).and_then(|p| execute(&p, &org, &opts));
        prop_assert_eq!(count.map(|r| r.total_size).ok(), Some(rs.total_size));

        // Every row renders as JSON and CSV without trouble.
        for &r in &rs.rows {
            let json = render_json(&rs, &org, r, "59.0");
            prop_assert!(json["attributes"]["type"] == "Account");
        }
        let csv = render_csv(&rs, &org, &rs.rows, b',', false);
        prop_assert_eq!(csv.lines().count(), rs.rows.len() + 1);
    }
}

proptest! {
    /// Arbitrary token soup over real field names never makes parse or execute panic.
    #[test]
    fn execute_never_panics(
        words in proptest::collection::vec(
            prop_oneof![
                Just("SELECT"), Just("FROM"), Just("Account"), Just("Contact"), Just("WHERE"),
                Just("Id"), Just("Name"), Just("Owner.Name"), Just("Account.Name"), Just("OwnerId"),
                Just("CreatedDate"), Just("NumberOfEmployees"), Just("AnnualRevenue"), Just("IsDeleted"),
                Just("Birthdate"), Just("Active__c"), Just(","), Just("("), Just(")"), Just("="),
                Just("!="), Just("<"), Just(">="), Just("'a%'"), Just("'001000000000000AAA'"),
                Just("AND"), Just("OR"), Just("NOT"), Just("IN"), Just("LIKE"), Just("ORDER BY"),
                Just("DESC"), Just("NULLS LAST"), Just("LIMIT"), Just("OFFSET"), Just("3"), Just("-1.5"),
                Just("2024-01-01"), Just("2024-01-01T00:00:00Z"), Just("LAST_N_DAYS:3"), Just("TODAY"),
                Just("COUNT()"), Just("FIELDS(ALL)"), Just("FIELDS(STANDARD)"), Just("null"), Just("true"),
            ],
            0..14,
        ),
        rows in proptest::collection::vec(row_strategy(), 0..6),
    ) {
        let (org, _) = build(&rows);
        let text = format!("SELECT {}", words.join(" "));
        if let Ok(q) = parse(&text) {
            let opts = ExecOptions { include_deleted: true, now: BASE, api_version: 59.0 };
            if let Ok(rs) = execute(&q, &org, &opts) {
                for &r in &rs.rows {
                    let _ = render_json(&rs, &org, r, "59.0");
                }
                let _ = render_csv(&rs, &org, &rs.rows, b'\t', true);
            }
        }
    }
}

// ---- Parent-to-child subqueries ------------------------------------------------------------

/// A contact for the subquery property: its last name and which account (if any) it belongs to.
#[derive(Debug, Clone)]
struct Child {
    last: &'static str,
    account: Option<usize>,
    deleted: bool,
}

fn child_strategy() -> impl Strategy<Value = Child> {
    (
        proptest::sample::select(NAMES),
        proptest::option::weighted(0.9, 0usize..8),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(last, account, deleted)| Child {
            last,
            account,
            deleted,
        })
}

/// A subquery's filter, order and limit on `LastName`.
#[derive(Debug, Clone)]
struct ChildQuery {
    filter: Option<(Op, &'static str)>,
    desc: Option<bool>,
    limit: Option<usize>,
}

fn child_query_strategy() -> impl Strategy<Value = ChildQuery> {
    (
        proptest::option::of((
            proptest::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Ge]),
            proptest::sample::select(NAMES),
        )),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0usize..4),
    )
        .prop_map(|(filter, desc, limit)| ChildQuery {
            filter,
            desc,
            limit,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Each parent row carries exactly its live children that pass the subquery's WHERE, in
    /// its ORDER BY (creation order without one), cut at its LIMIT.
    #[test]
    fn subquery_children_match_brute_force(
        rows in proptest::collection::vec(row_strategy(), 1..8),
        children in proptest::collection::vec(child_strategy(), 0..30),
        cq in child_query_strategy(),
        all in any::<bool>(),
    ) {
        let (mut org, ids) = build(&rows);
        let mut child_ids = Vec::new();
        for c in &children {
            let mut input = serde_json::Map::new();
            input.insert("LastName".into(), serde_json::Value::String(c.last.into()));
            if let Some(a) = c.account.filter(|a| *a < ids.len()) {
                input.insert("AccountId".into(), serde_json::Value::String(ids[a].clone()));
            }
            let ctx = WriteContext { user_id: "005000000000000AAA", now: BASE, modstamp: None };
            let id = org.create("Contact", &input, ctx).unwrap_or_else(|e| panic!("{e:?}"));
            if c.deleted {
                org.delete("Contact", &id, ctx).unwrap_or_else(|e| panic!("{e:?}"));
            }
            child_ids.push(id);
        }
        let mut inner = String::from("SELECT Id FROM Contacts");
        if let Some((op, name)) = cq.filter {
            let op = match op { Op::Eq => "=", Op::Ne => "!=", Op::Lt => "<", _ => ">=" };
            inner.push_str(&format!(" WHERE LastName {op} {}", quote(name)));
        }
        if let Some(desc) = cq.desc {
            inner.push_str(if desc { " ORDER BY LastName DESC" } else { " ORDER BY LastName" });
        }
        if let Some(l) = cq.limit {
            inner.push_str(&format!(" LIMIT {l}"));
        }
        let text = format!("SELECT Id, ({inner}) FROM Account ORDER BY Id");
        let parsed = parse(&text);
        prop_assert!(parsed.is_ok(), "{text}: {:?}", parsed.err());
        let Ok(parsed) = parsed else { return Ok(()) };
        let opts = ExecOptions { include_deleted: all, now: BASE, api_version: 59.0 };
        let rs = execute(&parsed, &org, &opts);
        prop_assert!(rs.is_ok(), "{text}: {:?}", rs.err());
        let Ok(rs) = rs else { return Ok(()) };
        let accounts = org.table("Account").unwrap_or_else(|| panic!("no Account"));
        let contacts = org.table("Contact").unwrap_or_else(|| panic!("no Contact"));
        for (pos, &row) in rs.rows.iter().enumerate() {
            let parent = accounts.records[row as usize].id();
            let at = ids.iter().position(|i| i == parent).unwrap_or_else(|| panic!("parent"));
            let mut want: Vec<usize> = (0..children.len())
                .filter(|&i| children[i].account == Some(at))
                .filter(|&i| all || !children[i].deleted)
                .filter(|&i| match cq.filter {
                    None => true,
                    Some((op, name)) => {
                        let c = model_cmp(&M::Text(children[i].last.into()), &M::Text(name.into()));
                        match op { Op::Eq => c.is_eq(), Op::Ne => c.is_ne(), Op::Lt => c.is_lt(), _ => c.is_ge() }
                    }
                })
                .collect();
            if let Some(desc) = cq.desc {
                want.sort_by(|&a, &b| {
                    let c = model_sort_cmp(&M::Text(children[a].last.into()), &M::Text(children[b].last.into()));
                    if desc { c.reverse() } else { c }
                });
            }
            want.truncate(cq.limit.unwrap_or(usize::MAX));
            let want: Vec<String> = want.into_iter().map(|i| child_ids[i].clone()).collect();
            let got: Vec<String> = rs.children[0].rows[pos]
                .iter()
                .map(|&r| contacts.records[r as usize].id().to_string())
                .collect();
            prop_assert_eq!(&got, &want, "{}", text);
            let json = render_row(&rs, &org, pos, "59.0");
            if want.is_empty() {
                prop_assert!(json["Contacts"].is_null());
            } else {
                prop_assert_eq!(json["Contacts"]["totalSize"].as_u64(), Some(want.len() as u64));
            }
        }
    }
}
