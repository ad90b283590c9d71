//! Test harness: Ferry on port 0 against a fresh SQLite file or Postgres database, the emulator in-process, and an HTTP client that walks the OAuth pages like a person.

#![allow(dead_code)]

use ferry_core::vault::EncryptionKey;
use ferry_emulator::{EmulatorConfig, RunningEmulator};
use ferry_server::app::{AppState, Application};
use ferry_server::config::Config;
use ferry_server::providers::HostMap;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    /// A temp SQLite file.
    Sqlite,
    /// A fresh database on the local Postgres server.
    Postgres,
}

/// A running Ferry with its emulator.
pub struct TestApp {
    pub url: String,
    pub state: Arc<AppState>,
    pub emulator: RunningEmulator,
    pub http: reqwest::Client,
    pub dev_key: String,
    pub prod_key: String,
    pub database_url: String,
    pub sqlite_path: Option<std::path::PathBuf>,
    /// The configuration this app was built with (a peer reuses it).
    pub config: Config,
    _dir: tempfile::TempDir,
    _pg: Option<ferry_store::testing::TestPostgres>,
}

/// A fresh database for `db`: its URL and, for Postgres, the guard that drops it.
pub async fn database(
    db: Db,
    dir: &std::path::Path,
) -> (String, Option<ferry_store::testing::TestPostgres>) {
    match db {
        Db::Sqlite => (dir.join("ferry.db").to_string_lossy().into_owned(), None),
        Db::Postgres => {
            let pg = ferry_store::testing::TestPostgres::create()
                .await
                .expect("a fresh Postgres database");
            (pg.url.clone(), Some(pg))
        }
    }
}

impl TestApp {
    /// Starts the emulator and Ferry (host map pointing at the emulator) on `db`.
    pub async fn spawn(db: Db) -> TestApp {
        TestApp::spawn_with(db, |_| {}).await
    }

    /// [`TestApp::spawn`] with a configuration change applied before Ferry is built.
    pub async fn spawn_with(db: Db, change: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg) = database(db, dir.path()).await;
        // Ferry binds a free port itself (no probe-then-rebind race); the emulator's demo app
        // learns the callback URL once that port is known.
        let emulator = ferry_emulator::start(EmulatorConfig {
            demo_callback_urls: Vec::new(),
            seed_demo_data: false,
            ..EmulatorConfig::ephemeral()
        })
        .await
        .expect("emulator");
        let hosts = HostMap {
            login: emulator.production_url.clone(),
            sandbox_login: emulator.sandbox_url.clone(),
            allowed_upstream_hosts: [
                &emulator.production_url,
                &emulator.sandbox_url,
                &emulator.instance2_url,
            ]
            .iter()
            .map(|u| u.trim_start_matches("http://").to_string())
            .collect(),
        };
        let key = EncryptionKey::generate().expect("key").to_base64();
        let mut config = Config::for_tests(&database_url, key, hosts);
        change(&mut config);
        let app = Application::build(config.clone())
            .await
            .expect("ferry builds");
        let public_url = app.state().public_url.clone();
        // Peers share this process's public URL, as processes behind one address do.
        config.public_url = Some(public_url.clone());
        let registered = reqwest::Client::new()
            .patch(format!(
                "{}/__emulator/apps/ferry-demo-client",
                emulator.production_url
            ))
            .json(&json!({"callback_urls": [format!("{public_url}/oauth/callback")]}))
            .send()
            .await
            .expect("register the callback");
        assert!(registered.status().is_success());
        let state = app.state();
        tokio::spawn(app.run());
        let envs = state.store.list_environments().await.expect("environments");
        let key_of = |name: &str| {
            envs.iter()
                .find(|e| e.name == name)
                .and_then(|e| ferry_server::sealing::open_secret_key(&state.vault, e))
                .map(|k| k.expose_secret().to_string())
                .expect("env")
        };
        let sqlite_path = matches!(db, Db::Sqlite).then(|| dir.path().join("ferry.db"));
        let (dev_key, prod_key) = (key_of("dev"), key_of("prod"));
        TestApp {
            url: public_url,
            state,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            dev_key,
            prod_key,
            emulator,
            database_url,
            sqlite_path,
            config,
            _dir: dir,
            _pg: pg,
        }
    }

    /// Connects the demo production org for `end_user` through a connect session and the real
    /// login and consent pages; returns the connection id.
    pub async fn connect_org(&self, end_user: &str) -> String {
        self.connect_org_with(end_user, json!({})).await
    }

    /// [`TestApp::connect_org`] through a session made from `session` (the end user added).
    pub async fn connect_org_with(&self, end_user: &str, mut session: Value) -> String {
        session["end_user"] = json!({"id": end_user, "email": "user@example.com"});
        let token = self.connect_session(session).await;
        let done = self.sign_in(&token).await;
        assert_eq!(done.status, 200, "{}", done.body);
        let list: Value = self
            .api(
                reqwest::Method::GET,
                &format!("/connections?endUserId={end_user}"),
            )
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        list["connections"][0]["connection_id"]
            .as_str()
            .expect("a connection")
            .to_string()
    }

    /// Runs a connect session's flow for the `salesforce` integration in a new browser: the
    /// emulator's login and consent pages as the demo user; returns Ferry's callback page.
    pub async fn sign_in(&self, token: &str) -> Page {
        let mut browser = Browser::new();
        let login = browser
            .get(&format!(
                "{}/oauth/connect/salesforce?connect_session_token={token}",
                self.url
            ))
            .await;
        browser
            .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
            .await
    }

    /// A second Ferry process on the same database and emulator (another port).
    pub async fn spawn_peer(&self) -> (String, Arc<AppState>) {
        let mut config = self.config.clone();
        config.port = 0;
        let app = Application::build(config).await.expect("peer builds");
        let url = format!("http://{}", app.local_addr().expect("addr"));
        let state = app.state();
        tokio::spawn(app.run());
        (url, state)
    }

    /// Changes the emulator's demo app policy.
    pub async fn app_policy(&self, policy: Value) {
        let resp = self
            .http
            .patch(format!(
                "{}/__emulator/apps/ferry-demo-client",
                self.emulator.production_url
            ))
            .json(&policy)
            .send()
            .await
            .expect("policy");
        assert!(resp.status().is_success());
    }

    /// The emulator's counters.
    pub async fn emulator_stats(&self) -> Value {
        self.http
            .get(format!("{}/__emulator/stats", self.emulator.production_url))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("json")
    }

    /// A request with the dev secret key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.dev_key)
    }

    /// Creates the `salesforce` and `salesforce-sandbox` integrations against the demo app.
    pub async fn create_integrations(&self) {
        for (key, provider) in [
            ("salesforce", "salesforce"),
            ("salesforce-sandbox", "salesforce-sandbox"),
        ] {
            let resp = self
                .api(reqwest::Method::POST, "/integrations")
                .json(&json!({"provider": provider, "unique_key": key, "credentials": {"type": "OAUTH2", "client_id": "ferry-demo-client", "client_secret": "ferry-demo-secret", "scopes": "api,refresh_token"}}))
                .send()
                .await
                .expect("create integration");
            assert_eq!(
                resp.status(),
                200,
                "{}",
                resp.text().await.unwrap_or_default()
            );
        }
    }

    /// Opens a connect session; returns its token.
    pub async fn connect_session(&self, body: Value) -> String {
        let resp = self
            .api(reqwest::Method::POST, "/connect/sessions")
            .json(&body)
            .send()
            .await
            .expect("session");
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.expect("json");
        v["data"]["token"].as_str().expect("token").to_string()
    }
}

/// A browser stand-in: follows redirects by hand, keeps cookies per host, fills forms.
#[derive(Default)]
pub struct Browser {
    cookies: HashMap<String, HashMap<String, String>>,
    http: Option<reqwest::Client>,
}

/// A page the browser ended on.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub body: String,
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or_default(),
                u.port_or_known_default().unwrap_or(0)
            )
        })
        .unwrap_or_default()
}

/// The value of `name=` inputs in a form (hidden and visible).
pub fn form_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in html.split("<input").skip(1) {
        let tag = chunk.split('>').next().unwrap_or_default();
        let attr = |a: &str| {
            tag.split(&format!("{a}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(|v| {
                    v.replace("&amp;", "&")
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                })
        };
        if let Some(name) = attr("name") {
            out.push((name, attr("value").unwrap_or_default()));
        }
    }
    out
}

/// The action of the first form.
pub fn form_action(html: &str) -> String {
    html.split("<form")
        .nth(1)
        .and_then(|f| f.split("action=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .replace("&amp;", "&")
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            cookies: HashMap::new(),
            http: Some(
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("client"),
            ),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.http.as_ref().expect("client")
    }

    fn remember(&mut self, url: &str, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            if let Some((pair, _)) = v
                .to_str()
                .unwrap_or_default()
                .split_once(';')
                .or(Some((v.to_str().unwrap_or_default(), "")))
            {
                if let Some((k, val)) = pair.split_once('=') {
                    self.cookies
                        .entry(host_of(url))
                        .or_default()
                        .insert(k.trim().to_string(), val.trim().to_string());
                }
            }
        }
    }

    fn cookie_header(&self, url: &str) -> String {
        self.cookies
            .get(&host_of(url))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// GETs a URL and follows redirects until a page answers.
    pub async fn get(&mut self, url: &str) -> Page {
        let mut url = url.to_string();
        for _ in 0..10 {
            let resp = self
                .client()
                .get(&url)
                .header("cookie", self.cookie_header(&url))
                .send()
                .await
                .expect("get");
            self.remember(&url, resp.headers());
            if resp.status().is_redirection() {
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .expect("location")
                    .to_string();
                url = url::Url::parse(&url)
                    .and_then(|b| b.join(&loc))
                    .expect("join")
                    .to_string();
                continue;
            }
            let status = resp.status().as_u16();
            return Page {
                url,
                status,
                body: resp.text().await.expect("body"),
            };
        }
        panic!("too many redirects");
    }

    /// Submits the page's first form with `overrides`, then follows redirects.
    pub async fn submit(&mut self, page: &Page, overrides: &[(&str, &str)]) -> Page {
        let action = url::Url::parse(&page.url)
            .and_then(|b| b.join(&form_action(&page.body)))
            .expect("action")
            .to_string();
        let mut fields = form_fields(&page.body);
        for (k, v) in overrides {
            fields.retain(|(n, _)| n != k);
            fields.push((k.to_string(), v.to_string()));
        }
        let resp = self
            .client()
            .post(&action)
            .header("cookie", self.cookie_header(&action))
            .form(&fields)
            .send()
            .await
            .expect("post");
        self.remember(&action, resp.headers());
        if resp.status().is_redirection() {
            let loc = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("location")
                .to_string();
            let next = url::Url::parse(&action)
                .and_then(|b| b.join(&loc))
                .expect("join")
                .to_string();
            return self.get(&next).await;
        }
        let status = resp.status().as_u16();
        Page {
            url: action,
            status,
            body: resp.text().await.expect("body"),
        }
    }

    /// Submits the page's first form and returns the redirect target without following it.
    pub async fn submit_no_follow(&mut self, page: &Page, overrides: &[(&str, &str)]) -> String {
        let action = url::Url::parse(&page.url)
            .and_then(|b| b.join(&form_action(&page.body)))
            .expect("action")
            .to_string();
        let mut fields = form_fields(&page.body);
        for (k, v) in overrides {
            fields.retain(|(n, _)| n != k);
            fields.push((k.to_string(), v.to_string()));
        }
        let resp = self
            .client()
            .post(&action)
            .header("cookie", self.cookie_header(&action))
            .form(&fields)
            .send()
            .await
            .expect("post");
        self.remember(&action, resp.headers());
        resp.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a redirect")
            .to_string()
    }

    /// Logs in and allows, from the emulator's login page; returns Ferry's callback page.
    pub async fn log_in_and_allow(&mut self, login_page: &Page, username: &str) -> Page {
        assert!(
            login_page.body.contains("password"),
            "expected the login page, got {}: {}",
            login_page.url,
            &login_page.body[..login_page.body.len().min(400)]
        );
        let consent = self
            .submit(
                login_page,
                &[
                    ("username", username),
                    ("password", ferry_emulator::DEMO_PASSWORD),
                ],
            )
            .await;
        assert!(
            consent.body.contains("Allow"),
            "expected the consent page: {}",
            &consent.body[..consent.body.len().min(4000)]
        );
        self.submit(&consent, &[("decision", "Allow")]).await
    }
}

/// Runs a test body on both databases.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$body($crate::common::Db::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$body($crate::common::Db::Postgres).await
            }
        }
    };
}

/// A webhook receiver on a free loopback port: records each request and answers with the next
/// queued status (200 when none is queued).
pub struct Receiver {
    pub url: String,
    pub port: u16,
    pub requests: tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, String)>,
    pub statuses: Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
}

/// Starts a [`Receiver`] on a free loopback port.
pub async fn receiver() -> Receiver {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let statuses: Arc<std::sync::Mutex<std::collections::VecDeque<u16>>> = Arc::default();
    let answers = statuses.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let tx = tx.clone();
            let answers = answers.clone();
            async move {
                let _ = tx.send((headers, body));
                let status = answers.lock().expect("lock").pop_front().unwrap_or(200);
                axum::http::StatusCode::from_u16(status).expect("status")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://127.0.0.1:{port}/hook"),
        port,
        requests: rx,
        statuses,
    }
}
