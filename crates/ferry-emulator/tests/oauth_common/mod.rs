//! Helpers of the OAuth tests: an emulator with a test callback URL, a small "browser" (a reqwest client with a cookie jar that follows no redirects), HTML form parsing and token requests.
#![allow(dead_code, clippy::unwrap_used)]

use ferry_emulator::{EmulatorConfig, RunningEmulator};
use std::collections::HashMap;
use std::sync::Mutex;

/// The demo app's callback URL in these tests (never fetched: redirects are not followed).
pub const CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";
/// The demo app's consumer key.
pub const CLIENT_ID: &str = "ferry-demo-client";
/// The demo app's consumer secret.
pub const CLIENT_SECRET: &str = "ferry-demo-secret";

/// Starts an emulator whose demo app accepts [`CALLBACK`] (no seeded records: faster).
pub async fn emulator() -> RunningEmulator {
    let config = EmulatorConfig {
        demo_callback_urls: vec![CALLBACK.to_string()],
        seed_demo_data: false,
        ..EmulatorConfig::ephemeral()
    };
    ferry_emulator::start(config).await.unwrap()
}

/// One HTTP answer, read completely.
#[derive(Debug, Clone)]
pub struct Page {
    /// Status code.
    pub status: u16,
    /// `Location`, when a redirect.
    pub location: Option<String>,
    /// `Content-Type`.
    pub content_type: String,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The query parameters of the redirect target.
    pub fn redirect_query(&self) -> HashMap<String, String> {
        let location = self
            .location
            .as_deref()
            .unwrap_or_else(|| panic!("expected a redirect, got {self:?}"));
        let url = url::Url::parse(location).unwrap();
        url.query_pairs().into_owned().collect()
    }

    /// The hidden inputs of the page's form.
    pub fn hidden_fields(&self) -> Vec<(String, String)> {
        inputs(&self.body)
            .into_iter()
            .filter(|(ty, _, _)| ty == "hidden")
            .map(|(_, n, v)| (n, v))
            .collect()
    }

    /// The `action` of the page's form.
    pub fn form_action(&self) -> String {
        let start = self
            .body
            .find("<form")
            .unwrap_or_else(|| panic!("no form in {}", self.body));
        let tag = &self.body[start..start + self.body[start..].find('>').unwrap()];
        attr(tag, "action").unwrap()
    }

    /// The value of the input with this id.
    pub fn input_value(&self, id: &str) -> Option<String> {
        let needle = format!("id=\"{id}\"");
        let pos = self.body.find(&needle)?;
        let start = self.body[..pos].rfind('<')?;
        let end = pos + self.body[pos..].find('>')?;
        attr(&self.body[start..end], "value")
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

/// (type, name, value) of every `<input>`.
fn inputs(html: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(pos) = rest.find("<input") {
        let after = &rest[pos..];
        let end = after.find('>').unwrap();
        let tag = &after[..end];
        out.push((
            attr(tag, "type").unwrap_or_default(),
            attr(tag, "name").unwrap_or_default(),
            attr(tag, "value").unwrap_or_default(),
        ));
        rest = &after[end..];
    }
    out
}

/// A minimal browser: keeps cookies, follows no redirects.
#[derive(Debug)]
pub struct Browser {
    client: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with an empty cookie jar.
    pub fn new() -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::new(HashMap::new()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&self, resp: reqwest::Response) -> Page {
        for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let text = v.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies
                    .lock()
                    .unwrap()
                    .insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let location = header(reqwest::header::LOCATION);
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        Page {
            status: resp.status().as_u16(),
            location,
            content_type,
            body: resp.text().await.unwrap(),
        }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Page {
        let resp = self
            .client
            .get(url)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.read(resp).await
    }

    /// `POST url` with a form body.
    pub async fn post_form(&self, url: &str, fields: &[(String, String)]) -> Page {
        let resp = self
            .client
            .post(url)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .form(fields)
            .send()
            .await
            .unwrap();
        self.read(resp).await
    }

    /// Fills the login form of `page` and submits it to `base`.
    pub async fn login(&self, base: &str, page: &Page, username: &str, password: &str) -> Page {
        assert!(
            page.body.contains("id=\"username\""),
            "not a login page: {page:?}"
        );
        let mut fields = page.hidden_fields();
        fields.push(("username".into(), username.into()));
        fields.push(("password".into(), password.into()));
        self.post_form(&format!("{base}{}", page.form_action()), &fields)
            .await
    }

    /// Clicks `Allow` or `Deny` on the consent page `page`.
    pub async fn decide(&self, base: &str, page: &Page, decision: &str) -> Page {
        assert!(
            page.body.contains("name=\"decision\""),
            "not a consent page: {page:?}"
        );
        let mut fields = page.hidden_fields();
        fields.push(("decision".into(), decision.into()));
        self.post_form(&format!("{base}{}", page.form_action()), &fields)
            .await
    }
}

/// `{base}/services/oauth2/authorize?…` for the demo app and [`CALLBACK`], plus `extra`.
pub fn authorize_url(base: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{base}/services/oauth2/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        let have = |k: &str| extra.iter().any(|(n, _)| *n == k);
        for (k, v) in [
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("state", "st-123"),
        ] {
            if !have(k) {
                q.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// Runs authorize → login → Allow (unless the app was approved before) as `username` on
/// `base` in a new browser; returns the code.
pub async fn get_code(base: &str, username: &str, extra: &[(&str, &str)]) -> String {
    let browser = Browser::new();
    let page = browser.get(&authorize_url(base, extra)).await;
    let mut page = browser
        .login(base, &page, username, ferry_emulator::DEMO_PASSWORD)
        .await;
    if page.status == 200 {
        page = browser.decide(base, &page, "Allow").await;
    }
    assert_eq!(page.status, 302, "{page:?}");
    let q = page.redirect_query();
    assert!(
        page.location.as_deref().unwrap().starts_with(CALLBACK),
        "{page:?}"
    );
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {page:?}"))
}

/// `POST {base}/services/oauth2/token` with a form; returns (status, JSON body).
pub async fn token_request(base: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

/// Exchanges a code for the demo app and [`CALLBACK`].
pub async fn exchange(base: &str, code: &str) -> (u16, serde_json::Value) {
    token_request(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await
}

/// A refresh-token grant for the demo app.
pub async fn refresh(base: &str, refresh_token: &str) -> (u16, serde_json::Value) {
    token_request(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await
}

/// Logs the demo admin in on the production host and exchanges the code.
pub async fn tokens(emu: &RunningEmulator, extra: &[(&str, &str)]) -> serde_json::Value {
    let code = get_code(&emu.production_url, ferry_emulator::DEMO_USERNAME, extra).await;
    let (status, body) = exchange(&emu.production_url, &code).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Calls the admin API; returns (status, JSON body).
pub async fn admin(
    emu: &RunningEmulator,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", emu.production_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Changes the demo app's policy.
pub async fn patch_app(emu: &RunningEmulator, body: serde_json::Value) {
    let (status, answer) = admin(
        emu,
        reqwest::Method::PATCH,
        &format!("/__emulator/apps/{CLIENT_ID}"),
        body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}

/// Freezes the emulator clock.
pub async fn freeze(emu: &RunningEmulator) {
    let (status, _) = admin(
        emu,
        reqwest::Method::POST,
        "/__emulator/clock",
        serde_json::json!({"freeze": true}),
    )
    .await;
    assert_eq!(status, 200);
}

/// Moves the emulator clock forward.
pub async fn advance(emu: &RunningEmulator, secs: i64) {
    let (status, _) = admin(
        emu,
        reqwest::Method::POST,
        "/__emulator/clock",
        serde_json::json!({"advance_secs": secs}),
    )
    .await;
    assert_eq!(status, 200);
}

/// The emulator's counters.
pub async fn stats(emu: &RunningEmulator) -> serde_json::Value {
    let resp = reqwest::get(format!("{}/__emulator/stats", emu.production_url))
        .await
        .unwrap();
    resp.json().await.unwrap()
}
