//! Captured logs of a whole connect flow (at debug level, every crate) contain no token, secret key or client secret.

mod common;

use common::{Browser, Db, TestApp};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn logs_of_a_connect_flow_contain_no_secrets() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_integrations().await;
    let session = app
        .connect_session(json!({"end_user": {"id": "logged"}}))
        .await;
    let mut browser = Browser::new();
    let login = browser
        .get(&format!(
            "{}/oauth/connect/salesforce?connect_session_token={session}",
            app.url
        ))
        .await;
    let done = browser
        .log_in_and_allow(&login, ferry_emulator::DEMO_USERNAME)
        .await;
    assert_eq!(done.status, 200);
    // A failing flow too: errors are logged, their secrets must not be.
    let _ = browser
        .get(&format!(
            "{}/oauth/callback?code=bogus&state=bogus",
            app.url
        ))
        .await;
    let list: Value = app
        .api(reqwest::Method::GET, "/connections")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = list["connections"][0]["connection_id"]
        .as_str()
        .expect("id")
        .to_string();
    let full: Value = app
        .api(reqwest::Method::GET, &format!("/connections/{id}?provider_config_key=salesforce&refresh_token=true&force_refresh=true"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let access = full["credentials"]["access_token"]
        .as_str()
        .expect("access")
        .to_string();
    let refresh = full["credentials"]["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_string();
    let resp = app
        .api(
            reqwest::Method::DELETE,
            &format!("/connections/{id}?provider_config_key=salesforce"),
        )
        .send()
        .await
        .expect("delete");
    assert_eq!(resp.status(), 200);

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8");
    assert!(!logs.is_empty(), "the subscriber captured something");
    for (what, secret) in [
        ("access token", access.as_str()),
        ("refresh token", refresh.as_str()),
        ("client secret", "ferry-demo-secret"),
        ("connect session token", session.as_str()),
        ("dev secret key", app.dev_key.as_str()),
        ("emulator password", ferry_emulator::DEMO_PASSWORD),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
}
