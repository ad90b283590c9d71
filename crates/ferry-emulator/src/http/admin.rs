//! The admin API under `/__emulator/`: a stable JSON interface for tests, benchmarks and the demo to create apps, orgs, users and records, move the clock, inject faults and read counters.

use super::Ctx;
use crate::org::{Org, WriteContext};
use crate::schema::{FieldDef, FieldType};
use crate::state::{App, FaultRule};
use crate::value;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value as J};
use std::collections::{BTreeMap, HashMap};

/// The admin routes (production listener only).
pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/__emulator/state", get(state))
        .route("/__emulator/apps", post(create_app))
        .route("/__emulator/apps/{client_id}", patch(update_app))
        .route("/__emulator/orgs", post(create_org))
        .route("/__emulator/orgs/{org}", patch(update_org))
        .route("/__emulator/orgs/{org}/users", post(create_user))
        .route("/__emulator/orgs/{org}/objects", post(define_object))
        .route("/__emulator/orgs/{org}/seed", post(seed))
        .route(
            "/__emulator/orgs/{org}/records/{sobject}",
            post(create_record),
        )
        .route(
            "/__emulator/orgs/{org}/records/{sobject}/{id}",
            patch(update_record).delete(delete_record),
        )
        .route(
            "/__emulator/orgs/{org}/recycle-bin/empty",
            post(empty_recycle_bin),
        )
        .route("/__emulator/orgs/{org}/migrate", post(migrate))
        .route("/__emulator/orgs/{org}/revoke-tokens", post(revoke_tokens))
        .route("/__emulator/orgs/{org}/tokens", post(mint_tokens))
        .route("/__emulator/clock", get(get_clock).post(set_clock))
        .route(
            "/__emulator/faults",
            post(add_fault).delete(clear_faults).get(list_faults),
        )
        .route("/__emulator/stats", get(stats))
        .route("/__emulator/requests", get(recent_requests))
        .route("/__emulator/stream", get(stream))
        .route("/__emulator/sink", post(sink))
        .route("/__emulator/stats/reset", post(reset_stats))
}

fn ok(body: J) -> Response {
    super::errors::json(StatusCode::OK, &body)
}

fn created(body: J) -> Response {
    super::errors::json(StatusCode::CREATED, &body)
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    super::errors::json(status, &json!({"error": message.into()}))
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    let bytes: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(bytes)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// Finds an org by 15/18-char id or by name (case-insensitive).
fn org_key(data: &crate::state::Data, key: &str) -> Option<String> {
    if let Some(id) = crate::ids::normalize(key) {
        if data.orgs.contains_key(&id) {
            return Some(id);
        }
    }
    data.orgs
        .values()
        .find(|o| o.name.eq_ignore_ascii_case(key))
        .map(|o| o.id.clone())
}

fn with_org<T>(ctx: &Ctx, key: &str, f: impl FnOnce(&mut Org) -> T) -> Result<T, Response> {
    let mut data = ctx.state.data.write();
    let id = org_key(&data, key)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("unknown org: {key}")))?;
    let org = data
        .orgs
        .get_mut(&id)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("unknown org: {key}")))?;
    Ok(f(org))
}

fn org_json(ctx: &Ctx, org: &Org, logins: &[&crate::state::Login]) -> J {
    let users: Vec<J> = logins
        .iter()
        .filter(|l| l.org_id == org.id)
        .map(|l| json!({"id": l.user_id, "username": l.username}))
        .collect();
    json!({
        "id": org.id,
        "name": org.name,
        "sandbox": org.sandbox,
        "instance_url": ctx.state.instance_url(org),
        "api_daily_limit": org.api_daily_limit,
        "api_used": org.api_used,
        "api_disabled": org.api_disabled,
        "users": users,
    })
}

async fn state(State(ctx): State<Ctx>) -> Response {
    let data = ctx.state.data.read();
    let logins: Vec<&crate::state::Login> = data.logins.values().collect();
    let mut orgs: Vec<&Org> = data.orgs.values().collect();
    orgs.sort_by(|a, b| a.id.cmp(&b.id));
    let urls = ctx.state.urls.read().clone();
    ok(json!({
        "urls": {"production": urls.production, "sandbox": urls.sandbox, "instance2": urls.instance2},
        "now": crate::value::format_datetime_json(ctx.state.clock.now_secs()),
        "orgs": orgs.iter().map(|o| org_json(&ctx, o, &logins)).collect::<Vec<_>>(),
        "apps": data.apps.values().map(app_json).collect::<Vec<_>>(),
    }))
}

fn app_json(app: &App) -> J {
    serde_json::to_value(app).unwrap_or(J::Null)
}

/// Fields of an app that `POST`/`PATCH /__emulator/apps` may set.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AppPatch {
    client_id: Option<String>,
    client_secret: Option<String>,
    callback_urls: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    access_token_ttl_secs: Option<i64>,
    refresh_token_rotation: Option<bool>,
    #[serde(default, with = "double_option")]
    refresh_token_idle_ttl_secs: Option<Option<i64>>,
    require_pkce: Option<bool>,
    introspection_allowed: Option<bool>,
    reject_tilde_in_verifier: Option<bool>,
    #[serde(default, with = "double_option_string")]
    client_credentials_user: Option<Option<String>>,
    allow_username_password: Option<bool>,
    #[serde(default, with = "double_option_string")]
    jwt_certificate: Option<Option<String>>,
    preauthorized: Option<bool>,
}

mod double_option_string {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        Option::<i64>::deserialize(d).map(Some)
    }
}

impl AppPatch {
    fn apply(self, app: &mut App) {
        if let Some(v) = self.client_secret {
            app.client_secret = v;
        }
        if let Some(v) = self.callback_urls {
            app.callback_urls = v;
        }
        if let Some(v) = self.scopes {
            app.scopes = v;
        }
        if let Some(v) = self.access_token_ttl_secs {
            app.access_token_ttl_secs = v;
        }
        if let Some(v) = self.refresh_token_rotation {
            app.refresh_token_rotation = v;
        }
        if let Some(v) = self.refresh_token_idle_ttl_secs {
            app.refresh_token_idle_ttl_secs = v;
        }
        if let Some(v) = self.require_pkce {
            app.require_pkce = v;
        }
        if let Some(v) = self.introspection_allowed {
            app.introspection_allowed = v;
        }
        if let Some(v) = self.reject_tilde_in_verifier {
            app.reject_tilde_in_verifier = v;
        }
        if let Some(v) = self.client_credentials_user {
            app.client_credentials_user = v;
        }
        if let Some(v) = self.allow_username_password {
            app.allow_username_password = v;
        }
        if let Some(v) = self.jwt_certificate {
            app.jwt_certificate = v;
        }
        if let Some(v) = self.preauthorized {
            app.preauthorized = v;
        }
    }
}

async fn create_app(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let patch: AppPatch = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(client_id) = patch.client_id.clone().filter(|c| !c.is_empty()) else {
        return fail(StatusCode::BAD_REQUEST, "client_id is required");
    };
    let mut data = ctx.state.data.write();
    if data.apps.contains_key(&client_id) {
        return fail(StatusCode::CONFLICT, format!("app exists: {client_id}"));
    }
    let mut app = App {
        client_id: client_id.clone(),
        client_secret: crate::state::State::random_token(32),
        callback_urls: Vec::new(),
        ..App::demo()
    };
    patch.apply(&mut app);
    let body = app_json(&app);
    data.apps.insert(client_id, app);
    created(body)
}

async fn update_app(
    State(ctx): State<Ctx>,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Response {
    let patch: AppPatch = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut data = ctx.state.data.write();
    let Some(app) = data.apps.get_mut(&client_id) else {
        return fail(StatusCode::NOT_FOUND, format!("unknown app: {client_id}"));
    };
    patch.apply(app);
    ok(app_json(app))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    name: String,
    #[serde(default)]
    sandbox: bool,
    api_daily_limit: Option<u64>,
    #[serde(default)]
    api_disabled: bool,
    bulk_daily_limit: Option<u64>,
    username: Option<String>,
    password: Option<String>,
}

async fn create_org(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let req: NewOrg = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let slug: String = req
        .name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    let username = req.username.unwrap_or_else(|| {
        let suffix = if req.sandbox { ".sandbox" } else { "" };
        format!(
            "admin@{slug}{}.example{suffix}",
            crate::state::State::random_token(4).to_ascii_lowercase()
        )
    });
    let password = req
        .password
        .unwrap_or_else(|| crate::DEMO_PASSWORD.to_string());
    let (org_id, user_id) = match ctx
        .state
        .create_org(&req.name, req.sandbox, &username, &password)
    {
        Ok(ids) => ids,
        Err(e) => return fail(StatusCode::CONFLICT, e),
    };
    let result = with_org(&ctx, &org_id, |org| {
        if let Some(l) = req.api_daily_limit {
            org.api_daily_limit = l;
        }
        if let Some(l) = req.bulk_daily_limit {
            org.bulk_daily_limit = l;
        }
        org.api_disabled = req.api_disabled;
        ctx.state.instance_url(org)
    });
    match result {
        Ok(instance_url) => created(json!({
            "id": org_id,
            "instance_url": instance_url,
            "user": {"id": user_id, "username": username, "password": password},
        })),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgPatch {
    active: Option<bool>,
    login_restricted: Option<bool>,
    token_rate_limited: Option<bool>,
    api_daily_limit: Option<u64>,
    api_used: Option<u64>,
    api_disabled: Option<bool>,
    bulk_daily_limit: Option<u64>,
}

async fn update_org(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> Response {
    let req: OrgPatch = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = with_org(&ctx, &key, |org| {
        if let Some(v) = req.api_daily_limit {
            org.api_daily_limit = v;
        }
        if let Some(v) = req.api_used {
            org.api_used = v;
        }
        if let Some(v) = req.api_disabled {
            org.api_disabled = v;
        }
        if let Some(v) = req.bulk_daily_limit {
            org.bulk_daily_limit = v;
        }
        if let Some(v) = req.active {
            org.active = v;
        }
        if let Some(v) = req.login_restricted {
            org.login_restricted = v;
        }
        if let Some(v) = req.token_rate_limited {
            org.token_rate_limited = v;
        }
        json!({"id": org.id, "api_daily_limit": org.api_daily_limit, "api_used": org.api_used, "api_disabled": org.api_disabled})
    });
    result.map(ok).unwrap_or_else(|r| r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    first_name: Option<String>,
    last_name: Option<String>,
}

async fn create_user(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> Response {
    let req: NewUser = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let org_id = {
        let data = ctx.state.data.read();
        match org_key(&data, &key) {
            Some(id) => id,
            None => return fail(StatusCode::NOT_FOUND, format!("unknown org: {key}")),
        }
    };
    let first = req.first_name.unwrap_or_else(|| "Test".into());
    let last = req.last_name.unwrap_or_else(|| "User".into());
    match ctx
        .state
        .add_user(&org_id, &req.username, &req.password, &first, &last)
    {
        Ok(id) => created(json!({"id": id, "username": req.username})),
        Err(e) => fail(StatusCode::CONFLICT, e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewField {
    name: String,
    #[serde(rename = "type")]
    field_type: FieldType,
    label: Option<String>,
    length: Option<u32>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    external_id: bool,
    #[serde(default)]
    unique: bool,
    reference_to: Option<String>,
    relationship_name: Option<String>,
    #[serde(default)]
    picklist_values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewObject {
    name: String,
    label_plural: Option<String>,
    #[serde(default)]
    fields: Vec<NewField>,
}

async fn define_object(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> Response {
    let req: NewObject = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut fields = Vec::new();
    for f in req.fields {
        if !f.name.ends_with("__c") {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("custom field names must end in __c: {}", f.name),
            );
        }
        let mut def = match (&f.reference_to, f.field_type) {
            (Some(target), _) => {
                let rel = f
                    .relationship_name
                    .clone()
                    .unwrap_or_else(|| format!("{}r", f.name.trim_end_matches('c')));
                FieldDef::reference(&f.name, target, &rel)
            }
            (None, FieldType::Reference) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!("reference field {} needs reference_to", f.name),
                )
            }
            (None, t) => FieldDef::new(&f.name, t),
        };
        if let Some(l) = f.label {
            def.label = l;
        }
        if let Some(l) = f.length {
            def.length = l;
        }
        if f.required {
            def = def.required();
        }
        def.external_id = f.external_id;
        def.unique = f.unique;
        def.picklist_values = f.picklist_values;
        fields.push(def);
    }
    let plural = req
        .label_plural
        .unwrap_or_else(|| format!("{}s", req.name.trim_end_matches("__c")));
    let result = with_org(&ctx, &key, |org| {
        org.define_object(&req.name, &plural, fields).map(|()| {
            let schema = org.table(&req.name).map(|t| &t.schema);
            json!({
                "name": schema.map(|s| s.name.clone()),
                "key_prefix": schema.map(|s| s.key_prefix.clone()),
                "fields": schema.map(|s| s.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>()),
            })
        })
    });
    match result {
        Ok(Ok(body)) => created(body),
        Ok(Err(e)) => fail(StatusCode::BAD_REQUEST, e.message),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest {
    counts: BTreeMap<String, usize>,
    #[serde(default)]
    same_systemmodstamp: bool,
}

async fn seed(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> Response {
    let req: SeedRequest = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let now = ctx.state.clock.now_secs();
    let started = std::time::Instant::now();
    let result = with_org(&ctx, &key, |org| {
        if let Some(unknown) = req.counts.keys().find(|k| org.table(k).is_none()) {
            return Err(format!("unknown object: {unknown}"));
        }
        Ok(crate::seed::seed(
            org,
            &req.counts,
            req.same_systemmodstamp,
            now,
        ))
    });
    match result {
        Ok(Ok(created_counts)) => ok(json!({
            "created": created_counts,
            "elapsed_ms": started.elapsed().as_millis() as u64,
        })),
        Ok(Err(e)) => fail(StatusCode::BAD_REQUEST, e),
        Err(r) => r,
    }
}

/// Takes `SystemModstamp` out of an admin write body.
fn split_modstamp(
    mut body: serde_json::Map<String, J>,
) -> Result<(serde_json::Map<String, J>, Option<i64>), Response> {
    let key = body
        .keys()
        .find(|k| k.eq_ignore_ascii_case("SystemModstamp"))
        .cloned();
    let stamp = match key.and_then(|k| body.remove(&k)) {
        Some(J::String(s)) => Some(value::parse_datetime(&s).ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                format!("invalid SystemModstamp: {s}"),
            )
        })?),
        Some(J::Null) | None => None,
        Some(other) => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("invalid SystemModstamp: {other}"),
            ))
        }
    };
    Ok((body, stamp))
}

fn record_error(e: crate::org::RecordError) -> Response {
    super::errors::sf_error_fields(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.code,
        &e.message,
        &e.fields,
    )
}

fn admin_user(org: &Org) -> String {
    org.table("User")
        .and_then(|t| t.records.first().map(|r| r.id().to_string()))
        .unwrap_or_default()
}

/// Parses an admin write body, taking out an explicit `SystemModstamp`.
fn write_body(body: &Bytes) -> Result<(serde_json::Map<String, J>, Option<i64>), Response> {
    split_modstamp(parse(body)?)
}

/// Runs a write as the org's first (admin) user at the emulator's current time.
fn admin_write<T>(
    ctx: &Ctx,
    key: &str,
    modstamp: Option<i64>,
    write: impl FnOnce(&mut Org, WriteContext<'_>) -> Result<T, crate::org::RecordError>,
) -> Result<T, Response> {
    let now = ctx.state.clock.now_secs();
    with_org(ctx, key, |org| {
        let user = admin_user(org);
        write(
            org,
            WriteContext {
                user_id: &user,
                now,
                modstamp,
            },
        )
    })?
    .map_err(record_error)
}

async fn create_record(
    State(ctx): State<Ctx>,
    Path((key, sobject)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let (fields, modstamp) = match write_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match admin_write(&ctx, &key, modstamp, |org, w| {
        org.create(&sobject, &fields, w)
    }) {
        Ok(id) => created(json!({"id": id, "success": true, "errors": []})),
        Err(r) => r,
    }
}

async fn update_record(
    State(ctx): State<Ctx>,
    Path((key, sobject, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (fields, modstamp) = match write_body(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match admin_write(&ctx, &key, modstamp, |org, w| {
        org.update(&sobject, &id, &fields, w)
    }) {
        Ok(()) => ok(json!({"id": id, "success": true})),
        Err(r) => r,
    }
}

async fn delete_record(
    State(ctx): State<Ctx>,
    Path((key, sobject, id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let modstamp = match params
        .get("system_modstamp")
        .or(params.get("SystemModstamp"))
    {
        Some(s) => match value::parse_datetime(s) {
            Some(t) => Some(t),
            None => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!("invalid system_modstamp: {s}"),
                )
            }
        },
        None => None,
    };
    match admin_write(&ctx, &key, modstamp, |org, w| org.delete(&sobject, &id, w)) {
        Ok(()) => ok(json!({"id": id, "success": true})),
        Err(r) => r,
    }
}

async fn empty_recycle_bin(State(ctx): State<Ctx>, Path(key): Path<String>) -> Response {
    with_org(&ctx, &key, |org| {
        ok(json!({"purged": org.empty_recycle_bin()}))
    })
    .unwrap_or_else(|r| r)
}

async fn migrate(State(ctx): State<Ctx>, Path(key): Path<String>) -> Response {
    let result = with_org(&ctx, &key, |org| {
        org.instance = 1;
        ctx.state.instance_url(org)
    });
    result
        .map(|url| ok(json!({"instance_url": url})))
        .unwrap_or_else(|r| r)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    user_id: Option<String>,
    username: Option<String>,
}

async fn revoke_tokens(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> Response {
    let req: RevokeRequest = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut data = ctx.state.data.write();
    let Some(org_id) = org_key(&data, &key) else {
        return fail(StatusCode::NOT_FOUND, format!("unknown org: {key}"));
    };
    let user_filter = match (&req.user_id, &req.username) {
        (Some(id), _) => crate::ids::normalize(id),
        (None, Some(name)) => data
            .logins
            .get(&name.to_ascii_lowercase())
            .map(|l| l.user_id.clone()),
        (None, None) => None,
    };
    if (req.user_id.is_some() || req.username.is_some()) && user_filter.is_none() {
        return fail(StatusCode::NOT_FOUND, "unknown user");
    }
    let matches = |o: &str, u: &str| o == org_id && user_filter.as_deref().is_none_or(|f| f == u);
    let families: std::collections::BTreeSet<u64> = data
        .refresh_tokens
        .values()
        .filter(|t| matches(&t.org_id, &t.user_id))
        .map(|t| t.family)
        .chain(
            data.access_tokens
                .values()
                .filter(|t| matches(&t.org_id, &t.user_id))
                .map(|t| t.family),
        )
        .collect();
    for f in &families {
        ctx.state.revoke_family(&mut data, *f);
    }
    ok(json!({"revoked_families": families.len()}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    freeze: Option<bool>,
    advance_secs: Option<i64>,
    set: Option<String>,
}

fn clock_json(ctx: &Ctx) -> J {
    json!({
        "now": ctx.state.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "frozen": ctx.state.clock.is_frozen(),
    })
}

async fn get_clock(State(ctx): State<Ctx>) -> Response {
    ok(clock_json(&ctx))
}

async fn set_clock(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let req: ClockRequest = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(s) = &req.set {
        match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => ctx.state.clock.set(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    format!("invalid RFC 3339 time {s}: {e}"),
                )
            }
        }
    }
    if let Some(f) = req.freeze {
        ctx.state.clock.freeze(f);
    }
    if let Some(secs) = req.advance_secs {
        ctx.state.clock.advance(secs);
    }
    ok(clock_json(&ctx))
}

async fn add_fault(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let rule: FaultRule = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if rule.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return fail(
            StatusCode::BAD_REQUEST,
            "probability must be between 0 and 1",
        );
    }
    if rule.status.is_some_and(|s| !(100..=599).contains(&s)) {
        return fail(
            StatusCode::BAD_REQUEST,
            "status must be an HTTP status code",
        );
    }
    let mut faults = ctx.state.faults.lock();
    faults.push(rule);
    created(json!({"rules": faults.len()}))
}

async fn list_faults(State(ctx): State<Ctx>) -> Response {
    let faults = ctx.state.faults.lock().clone();
    ok(serde_json::to_value(faults).unwrap_or(J::Null))
}

async fn clear_faults(State(ctx): State<Ctx>) -> Response {
    ctx.state.faults.lock().clear();
    ok(json!({"rules": 0}))
}

async fn stats(State(ctx): State<Ctx>) -> Response {
    ok(ctx.state.stats.snapshot())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    limit: Option<usize>,
}

/// `GET /__emulator/requests?limit=N`: the latest N Salesforce requests (oldest first) with
/// their method, path and headers.
async fn recent_requests(State(ctx): State<Ctx>, Query(q): Query<Limit>) -> Response {
    let recent = ctx.state.stats.recent.lock();
    let n = q.limit.unwrap_or(50).min(recent.len());
    let out: Vec<J> = recent
        .iter()
        .skip(recent.len() - n)
        .map(|r| {
            let headers: serde_json::Map<String, J> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), J::String(v.clone())))
                .collect();
            json!({"method": r.method, "path": r.path, "headers": headers})
        })
        .collect();
    ok(J::Array(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamRequest {
    bytes: u64,
    chunk: Option<usize>,
}

/// `GET /__emulator/stream?bytes=N&chunk=M`: N bytes of `x`, produced one chunk at a time only
/// when the reader asks for the next (counted in `stream_produced`), for streaming tests.
async fn stream(State(ctx): State<Ctx>, Query(q): Query<StreamRequest>) -> Response {
    let chunk = q.chunk.unwrap_or(64 * 1024).clamp(1, 8 * 1024 * 1024);
    let block = Bytes::from(vec![b'x'; chunk]);
    let state = ctx.state.clone();
    let body = futures::stream::unfold(q.bytes, move |left| {
        let block = block.clone();
        let state = state.clone();
        async move {
            if left == 0 {
                return None;
            }
            let n = left.min(block.len() as u64);
            state
                .stats
                .stream_produced
                .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(block.slice(..n as usize)), left - n))
        }
    });
    let mut resp = Response::new(axum::body::Body::from_stream(body));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    resp
}

/// `POST /__emulator/sink`: reads a body chunk by chunk, counting bytes in `sink_received`;
/// answers `{"bytes": N}`.
async fn sink(State(ctx): State<Ctx>, body: axum::body::Body) -> Response {
    use futures::StreamExt;
    let mut total = 0u64;
    let mut data = body.into_data_stream();
    while let Some(chunk) = data.next().await {
        match chunk {
            Ok(c) => {
                total += c.len() as u64;
                ctx.state
                    .stats
                    .sink_received
                    .fetch_add(c.len() as u64, std::sync::atomic::Ordering::SeqCst);
            }
            Err(_) => return fail(StatusCode::BAD_REQUEST, "the body ended early"),
        }
    }
    ok(json!({"bytes": total}))
}

async fn reset_stats(State(ctx): State<Ctx>) -> Response {
    ctx.state.stats.reset();
    ok(ctx.state.stats.snapshot())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    username: Option<String>,
    client_id: Option<String>,
    scopes: Option<Vec<String>>,
}

/// Mints tokens for a user without the browser flow: a shortcut for tests of code that only
/// needs a valid session. The OAuth endpoints remain the way to test the flow itself.
async fn mint_tokens(State(ctx): State<Ctx>, Path(key): Path<String>, body: Bytes) -> Response {
    let req: MintRequest = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut data = ctx.state.data.write();
    let Some(org_id) = org_key(&data, &key) else {
        return fail(StatusCode::NOT_FOUND, format!("unknown org: {key}"));
    };
    let login = match &req.username {
        Some(u) => data
            .logins
            .get(&u.to_ascii_lowercase())
            .filter(|l| l.org_id == org_id)
            .cloned(),
        None => data
            .logins
            .values()
            .filter(|l| l.org_id == org_id)
            .min_by(|a, b| a.user_id.cmp(&b.user_id))
            .cloned(),
    };
    let Some(login) = login else {
        return fail(StatusCode::NOT_FOUND, "unknown user");
    };
    let client_id = req
        .client_id
        .unwrap_or_else(|| "ferry-demo-client".to_string());
    if !data.apps.contains_key(&client_id) {
        return fail(StatusCode::NOT_FOUND, format!("unknown app: {client_id}"));
    }
    let scopes = req
        .scopes
        .unwrap_or_else(|| vec!["api".into(), "refresh_token".into()]);
    let with_refresh = scopes
        .iter()
        .any(|s| s == "refresh_token" || s == "offline_access");
    let sandbox = data.orgs.get(&org_id).is_some_and(|o| o.sandbox);
    let login_base = {
        let urls = ctx.state.urls.read();
        if sandbox {
            urls.sandbox.clone()
        } else {
            urls.production.clone()
        }
    };
    let issued = ctx.state.issue_tokens(
        &mut data,
        &client_id,
        &org_id,
        &login.user_id,
        &scopes,
        &login_base,
        None,
        with_refresh,
    );
    let instance_url = data
        .orgs
        .get(&org_id)
        .map(|o| ctx.state.instance_url(o))
        .unwrap_or_default();
    created(json!({
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "instance_url": instance_url,
        "id": format!("{login_base}/id/{org_id}/{}", login.user_id),
        "org_id": org_id,
        "user_id": login.user_id,
    }))
}
