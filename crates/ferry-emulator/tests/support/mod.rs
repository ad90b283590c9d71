//! Shared helpers of the emulator's HTTP tests: the demo org with a minted session, and request shortcuts.

#![allow(dead_code)]

use ferry_emulator::{start, EmulatorConfig, RunningEmulator};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The demo org "Acme" with a session minted through the admin API.
pub struct Org {
    pub emulator: RunningEmulator,
    pub http: reqwest::Client,
    pub token: String,
    pub instance: String,
}

impl Org {
    pub async fn demo() -> Org {
        let emulator = start(EmulatorConfig::ephemeral())
            .await
            .expect("emulator starts");
        let http = reqwest::Client::new();
        let minted: Value = http
            .post(format!(
                "{}/__emulator/orgs/Acme/tokens",
                emulator.production_url
            ))
            .json(&json!({}))
            .send()
            .await
            .expect("mint")
            .json()
            .await
            .expect("json");
        Org {
            token: minted["access_token"].as_str().expect("token").to_string(),
            instance: minted["instance_url"]
                .as_str()
                .expect("instance")
                .to_string(),
            emulator,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/services/data/v59.0{path}", self.instance)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .request(
                method,
                format!("{}/__emulator{path}", self.emulator.production_url),
            )
            .json(&body)
            .send()
            .await
            .expect("admin");
        assert!(
            resp.status().is_success(),
            "admin call {path} failed: {}",
            resp.status()
        );
        resp.json().await.expect("admin json")
    }

    /// GETs a path relative to the instance with a raw (already encoded) query string.
    pub async fn get_raw(&self, path_and_query: &str, batch: Option<usize>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .get(format!("{}{path_and_query}", self.instance))
            .bearer_auth(&self.token);
        if let Some(n) = batch {
            req = req.header("Sforce-Query-Options", format!("batchSize={n}"));
        }
        let resp = req.send().await.expect("get");
        let status = resp.status();
        (status, resp.json().await.expect("json"))
    }

    pub async fn query(&self, soql: &str) -> (StatusCode, Value) {
        let q: String = url_encode(soql);
        self.get_raw(&format!("/services/data/v59.0/query?q={q}"), None)
            .await
    }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
