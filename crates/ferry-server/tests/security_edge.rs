//! The edges an attacker pushes on, on both databases over real HTTP: proxy callers cannot set hop-by-hop or framing headers.

mod common;

use common::{Db, TestApp};
use serde_json::{json, Value};

fn proxied(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    id: &str,
) -> reqwest::RequestBuilder {
    app.api(method, &format!("/proxy{path}"))
        .header("Connection-Id", id)
        .header("Provider-Config-Key", "salesforce")
}

/// The headers of the last request the emulator's Salesforce endpoints received.
async fn last_upstream_request(app: &TestApp) -> Value {
    let recent: Value = app
        .http
        .get(format!(
            "{}/__emulator/requests?limit=1",
            app.emulator.production_url
        ))
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    recent[0].clone()
}

async fn proxy_callers_cannot_set_hop_by_hop_or_framing_headers(db: Db) {
    let app = TestApp::spawn(db).await;
    app.create_integrations().await;
    let id = app.connect_org("hygiene").await;
    let connection: Value = app
        .api(
            reqwest::Method::GET,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let instance = url::Url::parse(
        connection["connection_config"]["instance_url"]
            .as_str()
            .expect("instance_url"),
    )
    .expect("url");
    let emulator_host = format!(
        "{}:{}",
        instance.host_str().expect("host"),
        instance.port_or_known_default().expect("port")
    );
    let injected = [
        ("host", "evil.example.com"),
        ("content-length", "5"),
        ("transfer-encoding", "chunked"),
        ("connection", "close"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("trailer", "X-Checksum"),
        ("upgrade", "h2c"),
        ("expect", "100-continue"),
        ("proxy-authorization", "Basic Zm9vOmJhcg=="),
        ("proxy-connection", "keep-alive"),
    ];
    for (name, value) in injected {
        let account = format!("Hygiene {name}");
        let created = proxied(
            &app,
            reqwest::Method::POST,
            "/services/data/v59.0/sobjects/Account",
            &id,
        )
        .header(format!("Nango-Proxy-{name}"), value)
        .json(&json!({ "Name": account }))
        .send()
        .await
        .expect("create");
        assert_eq!(
            created.status(),
            201,
            "Nango-Proxy-{name}: {}",
            created.text().await.unwrap_or_default()
        );
        let seen = last_upstream_request(&app).await;
        assert_eq!(seen["method"], "POST", "{name}: {seen}");
        let headers = &seen["headers"];
        assert_eq!(headers["host"], emulator_host.as_str(), "{name}: {seen}");
        if name != "host" && name != "content-length" {
            assert_ne!(
                headers[name].as_str(),
                Some(value),
                "Nango-Proxy-{name} reached Salesforce: {seen}"
            );
        }
        assert_eq!(
            headers["content-length"],
            json!({ "Name": account }).to_string().len().to_string(),
            "{name}: the body's own length: {seen}"
        );
        // The whole body arrived: the record has the full name.
        let record: Value = created.json().await.expect("json");
        let fetched: Value = proxied(
            &app,
            reqwest::Method::GET,
            &format!(
                "/services/data/v59.0/sobjects/Account/{}?fields=Name",
                record["id"].as_str().expect("id")
            ),
            &id,
        )
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
        assert_eq!(fetched["Name"], account.as_str());
    }
    // Ordinary headers still pass, prefix stripped.
    let limits = proxied(
        &app,
        reqwest::Method::GET,
        "/services/data/v59.0/limits",
        &id,
    )
    .header("Nango-Proxy-X-Trace", "t-1")
    .send()
    .await
    .expect("limits");
    assert_eq!(limits.status(), 200);
    assert_eq!(
        last_upstream_request(&app).await["headers"]["x-trace"],
        "t-1"
    );
}
on_both_databases!(
    proxy_callers_cannot_set_hop_by_hop_or_framing_headers,
    proxy_callers_cannot_set_hop_by_hop_or_framing_headers
);
