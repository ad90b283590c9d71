//! Search: SOSL `search?q=FIND {…} IN … FIELDS RETURNING …` and `parameterizedSearch`, matching search terms against text fields and shaping hits with SOQL; plus `recent` and `quickActions`.

use super::errors::{self, json, sf_error};
use super::{ApiVersion, Ctx};
use crate::org::{Org, Record};
use crate::schema::{FieldType, ObjectSchema};
use crate::soql;
use crate::state::Session;
use axum::extract::{Extension, Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value as J};
use std::collections::HashMap;

/// Objects searched when a SOSL query names none.
const SEARCHED_BY_DEFAULT: &[&str] = &[
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "Case",
    "Campaign",
    "Contract",
    "Order",
    "Product2",
];

/// Global quick actions every org has: API name, label, type and target object.
const QUICK_ACTIONS: &[(&str, &str, &str, &str)] = &[
    ("NewTask", "New Task", "Create", "Task"),
    ("NewContact", "New Contact", "Create", "Contact"),
    ("NewCase", "New Case", "Create", "Case"),
    ("NewEvent", "New Event", "Create", "Event"),
    ("LogACall", "Log a Call", "LogACall", "Task"),
];

/// The search, recent-items and quick-action routes.
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/services/data/{version}/search", get(search))
        .route(
            "/services/data/{version}/parameterizedSearch",
            get(parameterized_search),
        )
        .route("/services/data/{version}/recent", get(recent))
        .route("/services/data/{version}/quickActions", get(global_actions))
        .route(
            "/services/data/{version}/sobjects/{sobject}/quickActions",
            get(object_actions),
        )
        .route(
            "/services/data/{version}/quickActions/{action}/describe",
            get(describe_action),
        )
        .route(
            "/services/data/{version}/quickActions/{action}/defaultValues",
            get(action_defaults),
        )
}

/// Which fields a search term is matched against (`IN … FIELDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    Name,
    Email,
    Phone,
}

/// One `RETURNING` item: the object and the SOQL that shapes its hits.
#[derive(Debug, Clone)]
struct Returning {
    object: String,
    fields: String,
    /// `WHERE …` / `ORDER BY …` as written, without LIMIT.
    clauses: String,
    limit: Option<usize>,
}

/// A parsed SOSL search.
#[derive(Debug, Clone)]
struct Sosl {
    terms: Vec<String>,
    scope: Scope,
    returning: Vec<Returning>,
    limit: usize,
}

fn malformed(message: &str) -> Response {
    sf_error(StatusCode::BAD_REQUEST, "MALFORMED_SEARCH", message)
}

/// Splits a search phrase into lower-cased terms (quotes and SOSL operators dropped).
fn terms_of(phrase: &str) -> Vec<String> {
    phrase
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_lowercase())
        .filter(|w| !w.is_empty() && !matches!(w.as_str(), "and" | "or" | "and not"))
        .collect()
}

/// Finds `word` as a keyword at the top level of `text` (outside quotes and parentheses).
fn keyword_at(text: &str, word: &str) -> Option<usize> {
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let (mut depth, mut quoted) = (0i32, false);
    for i in 0..bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ => {}
        }
        if quoted || depth != 0 || !upper[i..].starts_with(word) {
            continue;
        }
        let before = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let after = bytes
            .get(i + word.len())
            .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_');
        if before && after {
            return Some(i);
        }
    }
    None
}

fn parse_returning_item(item: &str) -> Result<Returning, String> {
    let item = item.trim();
    let (object, inner) = match item.split_once('(') {
        Some((o, rest)) => (
            o.trim(),
            rest.trim_end()
                .strip_suffix(')')
                .ok_or("unbalanced parentheses in RETURNING")?,
        ),
        None => (item, "Id"),
    };
    if object.is_empty()
        || !object
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!("unexpected object in RETURNING: {object}"));
    }
    let mut cut = inner.len();
    for word in ["WHERE", "ORDER", "LIMIT", "OFFSET"] {
        if let Some(i) = keyword_at(inner, word) {
            cut = cut.min(i);
        }
    }
    let fields = inner[..cut].trim().trim_end_matches(',').to_string();
    let mut clauses = inner[cut..].trim().to_string();
    let mut limit = None;
    if let Some(i) = keyword_at(&clauses, "LIMIT") {
        let n = clauses[i + 5..].trim();
        limit = Some(n.parse().map_err(|_| format!("bad LIMIT {n}"))?);
        clauses.truncate(i);
    }
    Ok(Returning {
        object: object.to_string(),
        fields: if fields.is_empty() {
            "Id".into()
        } else {
            fields
        },
        clauses: clauses.trim().to_string(),
        limit,
    })
}

/// Parses `FIND {terms} [IN scope FIELDS] [RETURNING …] [LIMIT n]`.
fn parse_sosl(text: &str) -> Result<Sosl, String> {
    let text = text.trim();
    let rest = text
        .get(..4)
        .filter(|w| w.eq_ignore_ascii_case("FIND"))
        .map(|_| text[4..].trim_start())
        .ok_or("a search starts with FIND")?;
    let (phrase, mut rest) = match rest.chars().next() {
        Some('{') => {
            let end = rest.find('}').ok_or("the search term needs a closing }")?;
            (&rest[1..end], &rest[end + 1..])
        }
        Some('\'') => {
            let end = rest[1..].find('\'').ok_or("unterminated search term")? + 1;
            (&rest[1..end], &rest[end + 1..])
        }
        _ => return Err("the search term goes in braces: FIND {term}".into()),
    };
    let terms = terms_of(phrase);
    if terms
        .iter()
        .all(|t| t.trim_matches('*').chars().count() < 2)
    {
        return Err("search term must be longer than one character".into());
    }
    rest = rest.trim();
    let mut scope = Scope::All;
    if let Some(after) = rest
        .strip_prefix("IN ")
        .or_else(|| rest.strip_prefix("in "))
    {
        let mut words = after.trim_start().splitn(3, ' ');
        let which = words.next().unwrap_or_default().to_ascii_uppercase();
        scope = match which.as_str() {
            "ALL" => Scope::All,
            "NAME" => Scope::Name,
            "EMAIL" => Scope::Email,
            "PHONE" => Scope::Phone,
            other => return Err(format!("unexpected search group {other}")),
        };
        if !words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("FIELDS"))
        {
            return Err("IN needs … FIELDS".into());
        }
        rest = words.next().unwrap_or_default().trim();
    }
    let mut limit = 2000;
    if let Some(i) = keyword_at(rest, "LIMIT") {
        let n = rest[i + 5..].trim();
        limit = n.parse().map_err(|_| format!("bad LIMIT {n}"))?;
        rest = rest[..i].trim();
    }
    let mut returning = Vec::new();
    if let Some(i) = keyword_at(rest, "RETURNING") {
        let list = &rest[i + 9..];
        let (mut depth, mut start) = (0i32, 0usize);
        for (j, c) in list.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    returning.push(parse_returning_item(&list[start..j])?);
                    start = j + 1;
                }
                _ => {}
            }
        }
        returning.push(parse_returning_item(&list[start..])?);
    } else if !rest.is_empty() {
        return Err(format!("unexpected text: {rest}"));
    }
    Ok(Sosl {
        terms,
        scope,
        returning,
        limit,
    })
}

/// Whether one term matches a text value: words start with it (`*` is a wildcard).
fn term_matches(term: &str, value: &str) -> bool {
    let value = value.to_lowercase();
    let parts: Vec<&str> = term.split('*').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return false;
    }
    if parts.len() == 1 && !term.contains('*') {
        return value.contains(parts[0]);
    }
    let mut at = 0;
    for p in parts {
        match value[at..].find(p) {
            Some(i) => at += i + p.len(),
            None => return false,
        }
    }
    true
}

fn searchable(schema: &ObjectSchema, scope: Scope) -> Vec<usize> {
    schema
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| match scope {
            Scope::All => {
                f.field_type.is_text()
                    && !matches!(f.field_type, FieldType::Id | FieldType::Reference)
            }
            Scope::Name => f.name_field,
            Scope::Email => f.field_type == FieldType::Email,
            Scope::Phone => f.field_type == FieldType::Phone,
        })
        .map(|(i, _)| i)
        .collect()
}

fn record_matches(record: &Record, fields: &[usize], terms: &[String]) -> bool {
    terms.iter().all(|t| {
        fields
            .iter()
            .any(|&i| record.get(i).as_str().is_some_and(|v| term_matches(t, v)))
    })
}

/// Runs a search; hits in RETURNING order, each object's rows shaped by its SOQL.
fn run_search(org: &Org, sosl: &Sosl, now: i64, version: &str) -> Result<J, soql::SoqlError> {
    let returning = if sosl.returning.is_empty() {
        SEARCHED_BY_DEFAULT
            .iter()
            .map(|o| Returning {
                object: o.to_string(),
                fields: "Id".into(),
                clauses: String::new(),
                limit: None,
            })
            .collect()
    } else {
        sosl.returning.clone()
    };
    let mut hits = Vec::new();
    for item in &returning {
        let Some(table) = org.table(&item.object) else {
            return Err(soql::SoqlError::new(
                soql::INVALID_TYPE,
                format!("sObject type '{}' is not supported.", item.object),
            ));
        };
        let text = format!(
            "SELECT {} FROM {} {}",
            item.fields, table.schema.name, item.clauses
        );
        let parsed = soql::parse(text.trim())?;
        let opts = soql::ExecOptions {
            include_deleted: false,
            now,
            api_version: version.parse().unwrap_or(59.0),
        };
        let rs = soql::execute(&parsed, org, &opts)?;
        let fields = searchable(&table.schema, sosl.scope);
        let mut taken = 0;
        for (position, &row) in rs.rows.iter().enumerate() {
            if hits.len() >= sosl.limit || item.limit.is_some_and(|l| taken >= l) {
                break;
            }
            let Some(record) = table.records.get(row as usize) else {
                continue;
            };
            if record_matches(record, &fields, &sosl.terms) {
                hits.push(soql::render_row(&rs, org, position, version));
                taken += 1;
            }
        }
    }
    Ok(json!({"searchRecords": hits}))
}

fn search_response(ctx: &Ctx, session: &Session, v: &ApiVersion, sosl: Sosl) -> Response {
    let now = ctx.state.clock.now_secs();
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    match run_search(org, &sosl, now, &v.0) {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => sf_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    }
}

async fn search(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = raw.as_deref().and_then(|raw| {
        form_urlencoded::parse(raw.as_bytes())
            .find(|(k, _)| k == "q")
            .map(|(_, v)| v.into_owned())
    });
    let Some(q) = q else {
        return malformed("A search string has to be specified");
    };
    match parse_sosl(&q) {
        Ok(sosl) => search_response(&ctx, &session, &v, sosl),
        Err(message) => malformed(&message),
    }
}

async fn parameterized_search(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(q) = params.get("q") else {
        return malformed("A search string has to be specified");
    };
    let terms = terms_of(q);
    if terms
        .iter()
        .all(|t| t.trim_matches('*').chars().count() < 2)
    {
        return malformed("search term must be longer than one character");
    }
    let scope = match params.get("in").map(|s| s.to_ascii_uppercase()).as_deref() {
        None | Some("ALL") => Scope::All,
        Some("NAME") => Scope::Name,
        Some("EMAIL") => Scope::Email,
        Some("PHONE") => Scope::Phone,
        Some(other) => return malformed(&format!("unexpected search group {other}")),
    };
    let returning = params
        .get("sobject")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| Returning {
                    object: o.to_string(),
                    fields: params
                        .get(&format!("{o}.fields"))
                        .cloned()
                        .unwrap_or_else(|| "Id".into()),
                    clauses: params
                        .get(&format!("{o}.where"))
                        .map(|w| format!("WHERE {w}"))
                        .unwrap_or_default(),
                    limit: params
                        .get(&format!("{o}.limit"))
                        .and_then(|l| l.parse().ok()),
                })
                .collect()
        })
        .unwrap_or_default();
    let limit = params
        .get("overallLimit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(2000);
    search_response(
        &ctx,
        &session,
        &v,
        Sosl {
            terms,
            scope,
            returning,
            limit,
        },
    )
}

#[derive(Debug, serde::Deserialize)]
struct RecentParams {
    limit: Option<usize>,
}

/// `GET /recent`: the records most recently written, newest first, as `attributes`, `Id`, `Name`.
async fn recent(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Query(params): Query<RecentParams>,
) -> Response {
    let limit = params.limit.unwrap_or(200).min(200);
    let data = ctx.state.data.read();
    let Some(org) = data.orgs.get(&session.org_id) else {
        return errors::invalid_session();
    };
    let mut items: Vec<(i64, &crate::org::Table, &Record)> = Vec::new();
    for object in SEARCHED_BY_DEFAULT {
        if let Some(t) = org.table(object) {
            items.extend(
                t.records
                    .iter()
                    .rev()
                    .filter(|r| !r.purged && !r.is_deleted())
                    .take(limit)
                    .map(|r| (r.system_modstamp(), t, r)),
            );
        }
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.0));
    let list: Vec<J> = items
        .into_iter()
        .take(limit)
        .map(|(_, t, r)| {
            let mut fields = vec![crate::schema::sys::ID];
            fields.extend(t.schema.fields.iter().position(|f| f.name_field));
            super::rest::record_json(org, &t.schema, r, Some(&fields), &v.0)
        })
        .collect();
    json(StatusCode::OK, &J::Array(list))
}

fn action_json(version: &str, base: &str, action: &(&str, &str, &str, &str)) -> J {
    let (name, label, kind, target) = action;
    json!({
        "actionEnumOrId": name,
        "label": label,
        "name": name,
        "type": kind,
        "urls": {
            "defaultValues": format!("/services/data/v{version}/{base}/{name}/defaultValues"),
            "quickAction": format!("/services/data/v{version}/{base}/{name}"),
            "describe": format!("/services/data/v{version}/{base}/{name}/describe"),
            "defaultValuesTemplate": format!("/services/data/v{version}/{base}/{name}/defaultValues/{{ID}}"),
        },
        "targetSobjectType": target,
    })
}

async fn global_actions(Extension(v): Extension<ApiVersion>) -> Response {
    let list: Vec<J> = QUICK_ACTIONS
        .iter()
        .map(|a| action_json(&v.0, "quickActions", a))
        .collect();
    json(StatusCode::OK, &J::Array(list))
}

async fn object_actions(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, sobject)): Path<(String, String)>,
) -> Response {
    let data = ctx.state.data.read();
    let Some(table) = data
        .orgs
        .get(&session.org_id)
        .and_then(|o| o.table(&sobject))
    else {
        return errors::not_found();
    };
    let base = format!("sobjects/{}/quickActions", table.schema.name);
    let list: Vec<J> = QUICK_ACTIONS
        .iter()
        .map(|a| action_json(&v.0, &base, a))
        .collect();
    json(StatusCode::OK, &J::Array(list))
}

fn find_action(
    name: &str,
) -> Option<&'static (&'static str, &'static str, &'static str, &'static str)> {
    QUICK_ACTIONS
        .iter()
        .find(|a| a.0.eq_ignore_ascii_case(name))
}

async fn describe_action(
    State(ctx): State<Ctx>,
    Extension(session): Extension<Session>,
    Extension(v): Extension<ApiVersion>,
    Path((_, action)): Path<(String, String)>,
) -> Response {
    let Some(found) = find_action(&action) else {
        return errors::not_found();
    };
    let data = ctx.state.data.read();
    let Some(table) = data
        .orgs
        .get(&session.org_id)
        .and_then(|o| o.table(found.3))
    else {
        return errors::not_found();
    };
    let fields: Vec<J> = table
        .schema
        .fields
        .iter()
        .filter(|f| f.createable)
        .take(12)
        .map(|f| json!({"field": f.name, "required": f.required_on_create}))
        .collect();
    let mut body = action_json(&v.0, "quickActions", found);
    body["layout"] = json!({"layoutItems": fields});
    json(StatusCode::OK, &body)
}

async fn action_defaults(
    Extension(v): Extension<ApiVersion>,
    Path((_, action)): Path<(String, String)>,
) -> Response {
    let Some((_, _, kind, target)) = find_action(&action) else {
        return errors::not_found();
    };
    let mut body = json!({"attributes": {"type": target}});
    if *target == "Task" {
        body["Status"] = J::String(
            if *kind == "LogACall" {
                "Completed"
            } else {
                "Not Started"
            }
            .into(),
        );
        body["Priority"] = J::String("Normal".into());
    }
    let _ = v;
    json(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sosl_reads_terms_scope_returning_and_limits() {
        let s = parse_sosl(
            "FIND {Acme Corp} IN NAME FIELDS RETURNING Account(Id, Name WHERE Industry = 'Energy' ORDER BY Name LIMIT 3), Contact LIMIT 10",
        )
        .expect("parses");
        assert_eq!(s.terms, vec!["acme", "corp"]);
        assert_eq!(s.scope, Scope::Name);
        assert_eq!(s.limit, 10);
        assert_eq!(s.returning.len(), 2);
        assert_eq!(s.returning[0].fields, "Id, Name");
        assert_eq!(
            s.returning[0].clauses,
            "WHERE Industry = 'Energy' ORDER BY Name"
        );
        assert_eq!(s.returning[0].limit, Some(3));
        assert_eq!(s.returning[1].object, "Contact");
        assert!(parse_sosl("SELECT Id FROM Account").is_err());
        assert!(parse_sosl("FIND {a}").is_err());
        assert!(parse_sosl("FIND {acme} IN SOME FIELDS").is_err());
    }

    #[test]
    fn terms_match_within_words_and_with_wildcards() {
        assert!(term_matches("acme", "The ACME Company"));
        assert!(term_matches("ac*co", "Acme Company"));
        assert!(!term_matches("globex", "Acme"));
    }
}
