//! The emulator's shared state: connected apps, orgs, users, OAuth codes and token families, query locators, bulk jobs, fault rules and counters.

use crate::clock::Clock;
use crate::ids;
use crate::org::Org;
use crate::value::Value;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A connected app and its token policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    /// Consumer key.
    pub client_id: String,
    /// Consumer secret.
    pub client_secret: String,
    /// Allowed callback URLs (exact match).
    pub callback_urls: Vec<String>,
    /// Scopes the app may be granted.
    pub scopes: Vec<String>,
    /// Access-token lifetime in seconds (the org session timeout).
    pub access_token_ttl_secs: i64,
    /// Whether refresh tokens rotate on every use.
    pub refresh_token_rotation: bool,
    /// A refresh token unused for this long expires (None: never).
    pub refresh_token_idle_ttl_secs: Option<i64>,
    /// Whether the authorize request must carry a PKCE challenge.
    pub require_pkce: bool,
    /// Whether the app may introspect tokens.
    pub introspection_allowed: bool,
    /// Whether PKCE verifiers containing `~` are refused (a real Salesforce quirk).
    pub reject_tilde_in_verifier: bool,
    /// The run-as user of the client credentials flow (a username); `None` refuses the flow.
    #[serde(default)]
    pub client_credentials_user: Option<String>,
    /// Whether the username-password flow is allowed (new orgs block it).
    #[serde(default)]
    pub allow_username_password: bool,
    /// The certificate (PEM) whose key signs JWT bearer assertions; `None` refuses them.
    #[serde(default)]
    pub jwt_certificate: Option<String>,
    /// "Admin approved users are pre-authorized": JWT bearer works without a prior consent.
    #[serde(default)]
    pub preauthorized: bool,
}

impl App {
    /// The default demo app.
    pub fn demo() -> Self {
        App {
            client_id: "ferry-demo-client".into(),
            client_secret: "ferry-demo-secret".into(),
            callback_urls: vec!["http://localhost:3003/oauth/callback".into()],
            scopes: ["api", "refresh_token", "offline_access", "id", "openid"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            access_token_ttl_secs: 7200,
            refresh_token_rotation: false,
            refresh_token_idle_ttl_secs: None,
            require_pkce: false,
            introspection_allowed: true,
            reject_tilde_in_verifier: false,
            client_credentials_user: None,
            allow_username_password: false,
            jwt_certificate: None,
            preauthorized: false,
        }
    }
}

/// A user's login credentials.
#[derive(Debug, Clone)]
pub struct Login {
    /// Org id (18).
    pub org_id: String,
    /// User id (18).
    pub user_id: String,
    /// Username as created.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A one-use authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    /// The app it was issued to.
    pub client_id: String,
    /// Org and user that approved.
    pub org_id: String,
    /// User id.
    pub user_id: String,
    /// The redirect URI of the authorize request.
    pub redirect_uri: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// PKCE S256 challenge, if one was sent.
    pub code_challenge: Option<String>,
    /// Issued at (epoch seconds).
    pub issued_at: i64,
    /// Used already.
    pub used: bool,
    /// Login base URL the user came through (for the `id` URL).
    pub login_base: String,
    /// OIDC nonce.
    pub nonce: Option<String>,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// Org id.
    pub org_id: String,
    /// User id.
    pub user_id: String,
    /// Issuing app.
    pub client_id: String,
    /// Token family (all tokens descended from one authorization).
    pub family: u64,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Issued (epoch seconds).
    pub issued_at: i64,
    /// Expires (epoch seconds).
    pub expires_at: i64,
    /// Revoked directly.
    pub revoked: bool,
    /// Login base URL (for the `id` URL).
    pub login_base: String,
}

/// An issued refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// Org id.
    pub org_id: String,
    /// User id.
    pub user_id: String,
    /// Issuing app.
    pub client_id: String,
    /// Token family.
    pub family: u64,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Issued (epoch seconds).
    pub issued_at: i64,
    /// Last used (epoch seconds), for idle expiry.
    pub last_used_at: i64,
    /// Replaced by a newer token under rotation; reuse revokes the family.
    pub rotated_out: bool,
    /// Revoked directly.
    pub revoked: bool,
    /// Login base URL.
    pub login_base: String,
}

/// A stored query result being paged through `nextRecordsUrl`.
#[derive(Debug)]
pub struct QueryCursor {
    /// Org that ran it.
    pub org_id: String,
    /// The result.
    pub result: Arc<crate::soql::ResultSet>,
    /// Last touched (epoch seconds); expires after 15 minutes idle.
    pub touched_at: i64,
    /// Page size.
    pub batch_size: usize,
}

/// A Bulk API 2.0 query job.
#[derive(Debug, Clone)]
pub struct BulkJob {
    /// Job id (`750…`).
    pub id: String,
    /// Org.
    pub org_id: String,
    /// Creating user.
    pub user_id: String,
    /// `query` or `queryAll`.
    pub operation: String,
    /// Object queried.
    pub object: String,
    /// The SOQL text.
    pub query: String,
    /// Created (epoch seconds).
    pub created_at: i64,
    /// `UploadComplete`, `InProgress`, `JobComplete`, `Failed`, `Aborted`.
    pub state: String,
    /// API version that created it.
    pub api_version: String,
    /// `COMMA`, `TAB`, …
    pub column_delimiter: String,
    /// `LF` or `CRLF`.
    pub line_ending: String,
    /// The result, once computed.
    pub result: Option<Arc<crate::soql::ResultSet>>,
    /// Failure text when `Failed`.
    pub error_message: Option<String>,
}

/// A fault-injection rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRule {
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match (any when absent).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Status to answer with (no status: only latency is added).
    #[serde(default)]
    pub status: Option<u16>,
    /// Body to answer with (JSON value, sent as JSON; a string is sent as text).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// How many times it fires (forever when absent).
    #[serde(default)]
    pub count: Option<u64>,
    /// Probability in 0..=1 that a matching request is hit (1 when absent).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Latency added before answering.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Serve the request first (its effects happen), then answer with the fault instead of the
    /// real response: a write whose answer was lost on the way back.
    #[serde(default)]
    pub after_handling: bool,
    /// Serve the request at once (its effects happen), then hold the real answer back this
    /// long: a slow answer that a client may give up on after the work was done.
    #[serde(default)]
    pub answer_delay_ms: Option<u64>,
}

/// Counters of everything the emulator served, for tests that assert "exactly one refresh".
#[derive(Debug, Default)]
pub struct Stats {
    /// Token requests by grant type: (ok, failed).
    pub token_requests: Mutex<BTreeMap<String, (u64, u64)>>,
    /// Introspection calls.
    pub introspections: AtomicU64,
    /// Revocation calls.
    pub revocations: AtomicU64,
    /// Whole token families revoked (reuse under rotation, refresh-token revocation).
    pub family_revocations: AtomicU64,
    /// Requests to Salesforce endpoints (everything but the admin API).
    pub api_requests: AtomicU64,
    /// Requests by path.
    pub by_path: Mutex<HashMap<String, u64>>,
    /// Records returned by queries, retrieves and bulk results.
    pub records_served: AtomicU64,
    /// Salesforce requests being served right now.
    pub in_flight: AtomicU64,
    /// The most requests served at once since the last reset.
    pub in_flight_peak: AtomicU64,
    /// The latest requests' method, path and headers (a bounded ring, oldest first).
    pub recent: Mutex<std::collections::VecDeque<RecordedRequest>>,
    /// Bytes produced so far by `GET /__emulator/stream` (test scaffolding for streaming).
    pub stream_produced: AtomicU64,
    /// Bytes received so far by `POST /__emulator/sink`.
    pub sink_received: AtomicU64,
}

/// How many requests `Stats::recent` keeps.
pub const RECENT_REQUESTS: usize = 256;

/// One request as it arrived: what a test checks for leaked headers.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in arrival order (lowercase names).
    pub headers: Vec<(String, String)>,
}

impl Stats {
    /// Counts a token request.
    pub fn token_request(&self, grant: &str, ok: bool) {
        let mut map = self.token_requests.lock();
        let entry = map.entry(grant.to_string()).or_default();
        if ok {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    /// Counts an API request.
    pub fn api_request(&self, path: &str) {
        self.api_requests.fetch_add(1, Ordering::Relaxed);
        *self.by_path.lock().entry(path.to_string()).or_default() += 1;
    }

    /// Keeps a request's method, path and headers in the ring of recent requests.
    pub fn record_request(&self, request: RecordedRequest) {
        let mut recent = self.recent.lock();
        if recent.len() >= RECENT_REQUESTS {
            recent.pop_front();
        }
        recent.push_back(request);
    }

    /// A request started: counts it in flight and raises the peak. Returns the guard that ends it.
    pub fn start_request(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.in_flight_peak.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    /// The counters as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        let tokens: serde_json::Map<String, serde_json::Value> = self
            .token_requests
            .lock()
            .iter()
            .map(|(k, (ok, failed))| (k.clone(), serde_json::json!({"ok": ok, "failed": failed})))
            .collect();
        serde_json::json!({
            "token_requests": tokens,
            "introspections": self.introspections.load(Ordering::Relaxed),
            "revocations": self.revocations.load(Ordering::Relaxed),
            "family_revocations": self.family_revocations.load(Ordering::Relaxed),
            "api_requests": {
                "total": self.api_requests.load(Ordering::Relaxed),
                "by_path": *self.by_path.lock(),
            },
            "records_served": self.records_served.load(Ordering::Relaxed),
            "in_flight_peak": self.in_flight_peak.load(Ordering::Relaxed),
            "stream_produced": self.stream_produced.load(Ordering::Relaxed),
            "sink_received": self.sink_received.load(Ordering::Relaxed),
        })
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        self.token_requests.lock().clear();
        self.introspections.store(0, Ordering::Relaxed);
        self.revocations.store(0, Ordering::Relaxed);
        self.family_revocations.store(0, Ordering::Relaxed);
        self.api_requests.store(0, Ordering::Relaxed);
        self.by_path.lock().clear();
        self.records_served.store(0, Ordering::Relaxed);
        self.in_flight_peak
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        self.recent.lock().clear();
        self.stream_produced.store(0, Ordering::Relaxed);
        self.sink_received.store(0, Ordering::Relaxed);
    }
}

/// A request in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Base URLs of the listeners.
#[derive(Debug, Clone, Default)]
pub struct Urls {
    /// Production login host and production orgs' instance.
    pub production: String,
    /// Sandbox login host and sandbox orgs' instance.
    pub sandbox: String,
    /// The second instance, where migrated orgs live.
    pub instance2: String,
}

/// Everything under one lock: apps, orgs, logins, codes, tokens, cursors, jobs.
#[derive(Debug, Default)]
pub struct Data {
    /// Apps by client id.
    pub apps: HashMap<String, App>,
    /// Orgs by 18-char id.
    pub orgs: HashMap<String, Org>,
    /// Logins by lower-cased username.
    pub logins: HashMap<String, Login>,
    /// Approved (user id, client id) pairs, so consent is asked once.
    pub approvals: std::collections::HashSet<(String, String)>,
    /// Authorization codes.
    pub codes: HashMap<String, AuthCode>,
    /// Access tokens.
    pub access_tokens: HashMap<String, AccessToken>,
    /// Refresh tokens.
    pub refresh_tokens: HashMap<String, RefreshToken>,
    /// Revoked families.
    pub revoked_families: std::collections::HashSet<u64>,
    /// Next family number.
    pub next_family: u64,
    /// Browser login sessions: cookie value → (org id, user id).
    pub sessions: HashMap<String, (String, String)>,
    /// Bulk jobs by id.
    pub jobs: BTreeMap<String, BulkJob>,
    /// Next org / job sequence numbers.
    pub next_org_seq: u64,
    /// Next bulk job number.
    pub next_job_seq: u64,
}

/// The whole emulator state, shared by all listeners.
#[derive(Debug, Default)]
pub struct State {
    /// The clock.
    pub clock: Clock,
    /// Apps, orgs, tokens and the rest.
    pub data: RwLock<Data>,
    /// Query cursors by locator id.
    pub cursors: Mutex<HashMap<String, QueryCursor>>,
    /// Next cursor number.
    pub next_cursor: AtomicU64,
    /// Fault rules.
    pub faults: Mutex<Vec<FaultRule>>,
    /// Counters.
    pub stats: Stats,
    /// Listener base URLs.
    pub urls: RwLock<Urls>,
}

/// What a valid access token resolves to.
#[derive(Debug, Clone)]
pub struct Session {
    /// Org id.
    pub org_id: String,
    /// User id.
    pub user_id: String,
    /// App.
    pub client_id: String,
}

impl State {
    /// Random URL-safe text of `n` characters.
    pub fn random_token(n: usize) -> String {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), n)
    }

    /// The instance URL an org is served on.
    pub fn instance_url(&self, org: &Org) -> String {
        let urls = self.urls.read();
        match (org.instance, org.sandbox) {
            (1, _) => urls.instance2.clone(),
            (_, true) => urls.sandbox.clone(),
            _ => urls.production.clone(),
        }
    }

    /// Creates an org with an admin user; returns (org id, user id).
    pub fn create_org(
        &self,
        name: &str,
        sandbox: bool,
        admin_username: &str,
        password: &str,
    ) -> Result<(String, String), String> {
        let mut data = self.data.write();
        if data
            .logins
            .contains_key(&admin_username.to_ascii_lowercase())
        {
            return Err(format!("username already exists: {admin_username}"));
        }
        data.next_org_seq += 1;
        let seq = data.next_org_seq;
        let org_id = ids::make_id("00D", "5g", 1_000_000 + seq);
        let pod = if sandbox { "3x" } else { "5g" };
        let mut org = Org::new(org_id.clone(), name, sandbox, pod);
        let now = self.clock.now_secs();
        let user_id = insert_user(&mut org, admin_username, "Admin", "User", now)
            .ok_or("cannot create user")?;
        data.logins.insert(
            admin_username.to_ascii_lowercase(),
            Login {
                org_id: org_id.clone(),
                user_id: user_id.clone(),
                username: admin_username.to_string(),
                password: password.to_string(),
            },
        );
        data.orgs.insert(org_id.clone(), org);
        Ok((org_id, user_id))
    }

    /// Adds a user to an org; returns its id.
    pub fn add_user(
        &self,
        org_id: &str,
        username: &str,
        password: &str,
        first: &str,
        last: &str,
    ) -> Result<String, String> {
        let now = self.clock.now_secs();
        let mut data = self.data.write();
        if data.logins.contains_key(&username.to_ascii_lowercase()) {
            return Err(format!("username already exists: {username}"));
        }
        let org = data.orgs.get_mut(org_id).ok_or("unknown org")?;
        let user_id = insert_user(org, username, first, last, now).ok_or("cannot create user")?;
        data.logins.insert(
            username.to_ascii_lowercase(),
            Login {
                org_id: org_id.to_string(),
                user_id: user_id.clone(),
                username: username.to_string(),
                password: password.to_string(),
            },
        );
        Ok(user_id)
    }

    /// Resolves a bearer access token, or `None` when missing, unknown, expired or revoked.
    pub fn session_for(&self, token: &str) -> Option<Session> {
        let now = self.clock.now_secs();
        let data = self.data.read();
        let t = data.access_tokens.get(token)?;
        let valid = !t.revoked && t.expires_at > now && !data.revoked_families.contains(&t.family);
        valid.then(|| Session {
            org_id: t.org_id.clone(),
            user_id: t.user_id.clone(),
            client_id: t.client_id.clone(),
        })
    }

    /// Revokes a whole token family.
    pub fn revoke_family(&self, data: &mut Data, family: u64) {
        if data.revoked_families.insert(family) {
            self.stats
                .family_revocations
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn insert_user(org: &mut Org, username: &str, first: &str, last: &str, now: i64) -> Option<String> {
    let schema = &org.table("User")?.schema;
    let mut values = vec![Value::Null; schema.fields.len()];
    let set = |values: &mut Vec<Value>, name: &str, v: Value| {
        if let Some(i) = schema.field_index(name) {
            values[i] = v;
        }
    };
    let email = if username.contains('@') {
        username.trim_end_matches(".sandbox").to_string()
    } else {
        format!("{username}@example.com")
    };
    set(&mut values, "Username", Value::str(username));
    set(&mut values, "FirstName", Value::str(first));
    set(&mut values, "LastName", Value::str(last));
    set(&mut values, "Email", Value::str(email));
    set(
        &mut values,
        "Alias",
        Value::str(username.chars().take(8).collect::<String>()),
    );
    set(&mut values, "IsActive", Value::Bool(true));
    set(
        &mut values,
        "TimeZoneSidKey",
        Value::str("America/Los_Angeles"),
    );
    set(&mut values, "LanguageLocaleKey", Value::str("en_US"));
    set(&mut values, "LocaleSidKey", Value::str("en_US"));
    set(&mut values, "EmailEncodingKey", Value::str("UTF-8"));
    set(&mut values, "UserType", Value::str("Standard"));
    set(
        &mut values,
        "CommunityNickname",
        Value::str(username.split('@').next().unwrap_or(username)),
    );
    set(&mut values, "DigestFrequency", Value::str("N"));
    set(
        &mut values,
        "DefaultGroupNotificationFrequency",
        Value::str("N"),
    );
    // The first user creates itself; later ones are created by it.
    let creator = org
        .table("User")
        .and_then(|t| t.records.first().map(|r| r.id().to_string()))
        .unwrap_or_default();
    let id = org.insert_raw("User", values, &creator, now)?;
    if creator.is_empty() {
        // Point the audit fields of the very first user at itself.
        if let Some(t) = org.table_mut("User") {
            if let Some(r) = t.records.first_mut() {
                r.fields[crate::schema::sys::CREATED_BY_ID] = Value::str(&id);
                r.fields[crate::schema::sys::LAST_MODIFIED_BY_ID] = Value::str(&id);
            }
        }
    }
    // The first user administers the org; later ones get the standard profile.
    let profile_name = if creator.is_empty() {
        "System Administrator"
    } else {
        "Standard User"
    };
    let author = if creator.is_empty() { &id } else { &creator };
    if let Some(profile) = standard_profile(org, profile_name, author, now) {
        if let Some(t) = org.table_mut("User") {
            let at = t.schema.field_index("ProfileId");
            let row = t.index_of(&id);
            if let (Some(field), Some(row)) = (at, row) {
                t.records[row].set(field, Value::str(profile));
            }
        }
    }
    Some(id)
}

/// The profiles every org starts with, by name and whether they may use the API.
const STANDARD_PROFILES: &[(&str, bool)] = &[
    ("System Administrator", true),
    ("Standard User", true),
    ("Read Only", true),
    ("Minimum Access - Salesforce", false),
];

/// The id of a standard profile, creating the standard set on first use.
fn standard_profile(org: &mut Org, name: &str, author: &str, now: i64) -> Option<String> {
    let exists = |org: &Org| -> Option<String> {
        let t = org.table("Profile")?;
        let field = t.schema.field_index("Name")?;
        t.live()
            .find(|r| r.get(field).as_str() == Some(name))
            .map(|r| r.id().to_string())
    };
    if let Some(id) = exists(org) {
        return Some(id);
    }
    let schema = org.table("Profile")?.schema.clone();
    for (profile, api) in STANDARD_PROFILES {
        let mut values = vec![Value::Null; schema.fields.len()];
        let mut set = |field: &str, v: Value| {
            if let Some(i) = schema.field_index(field) {
                values[i] = v;
            }
        };
        set("Name", Value::str(profile));
        set("UserType", Value::str("Standard"));
        set("PermissionsApiEnabled", Value::Bool(*api));
        let admin = *profile == "System Administrator";
        set("PermissionsModifyAllData", Value::Bool(admin));
        set("PermissionsViewAllData", Value::Bool(admin));
        set("PermissionsViewSetup", Value::Bool(admin));
        org.insert_raw("Profile", values, author, now)?;
    }
    exists(org)
}

/// Tokens minted by one grant.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// `{orgId15}!{opaque}`.
    pub access_token: String,
    /// Present when the scopes allow it (and on rotation).
    pub refresh_token: Option<String>,
    /// Family number.
    pub family: u64,
    /// Issued at, epoch milliseconds.
    pub issued_at_ms: i64,
}

impl State {
    /// Mints an access token (and a refresh token when `with_refresh`) in `family`, or a new
    /// family when `None`. The caller holds the data lock.
    #[allow(clippy::too_many_arguments)]
    pub fn issue_tokens(
        &self,
        data: &mut Data,
        client_id: &str,
        org_id: &str,
        user_id: &str,
        scopes: &[String],
        login_base: &str,
        family: Option<u64>,
        with_refresh: bool,
    ) -> IssuedTokens {
        let now_ms = self.clock.now_millis();
        let now = now_ms.div_euclid(1000);
        let family = family.unwrap_or_else(|| {
            data.next_family += 1;
            data.next_family
        });
        let ttl = data
            .apps
            .get(client_id)
            .map(|a| a.access_token_ttl_secs)
            .unwrap_or(7200);
        let access_token = format!("{}!{}", ids::id15(org_id), Self::random_token(96));
        data.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                org_id: org_id.to_string(),
                user_id: user_id.to_string(),
                client_id: client_id.to_string(),
                family,
                scopes: scopes.to_vec(),
                issued_at: now,
                expires_at: now + ttl,
                revoked: false,
                login_base: login_base.to_string(),
            },
        );
        let refresh_token = with_refresh.then(|| {
            let token = format!("5Aep861{}", Self::random_token(80));
            data.refresh_tokens.insert(
                token.clone(),
                RefreshToken {
                    org_id: org_id.to_string(),
                    user_id: user_id.to_string(),
                    client_id: client_id.to_string(),
                    family,
                    scopes: scopes.to_vec(),
                    issued_at: now,
                    last_used_at: now,
                    rotated_out: false,
                    revoked: false,
                    login_base: login_base.to_string(),
                },
            );
            token
        });
        IssuedTokens {
            access_token,
            refresh_token,
            family,
            issued_at_ms: now_ms,
        }
    }
}
