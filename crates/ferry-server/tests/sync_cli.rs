//! `ferry sync run` as a user runs it: against the database of a running Ferry, it claims the sync, syncs, and prints a summary; `--full` starts over without reporting unchanged records.

mod common;

use common::{Db, TestApp};
use serde_json::json;

#[tokio::test]
async fn ferry_sync_run_syncs_and_prints_a_summary() {
    let app = TestApp::spawn(Db::Sqlite).await;
    app.create_integrations().await;
    let connection_id = app.connect_org("cli-user").await;
    let resp = app
        .http
        .post(format!(
            "{}/__emulator/orgs/Acme/seed",
            app.emulator.production_url
        ))
        .json(&json!({"counts": {"Contact": 30}}))
        .send()
        .await
        .expect("seed");
    assert!(resp.status().is_success());
    let hosts: Vec<String> = [
        &app.emulator.production_url,
        &app.emulator.sandbox_url,
        &app.emulator.instance2_url,
    ]
    .iter()
    .map(|u| u.trim_start_matches("http://").to_string())
    .collect();
    let key = app.config.encryption_key.expose_secret().to_string();
    let run = |extra: &'static [&'static str]| {
        let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["sync", "run", &connection_id, "contacts"])
            .args(extra)
            .args(["--database-url", &app.database_url])
            .args(["--salesforce-login-url", &app.emulator.production_url])
            .args(["--allowed-upstream-hosts", &hosts.join(",")])
            .env("FERRY_ENCRYPTION_KEY", &key)
            .env("RUST_LOG", "error")
            .output();
        async move {
            let output = command.await.expect("ferry runs");
            let stdout = String::from_utf8_lossy(&output.stdout).to_string();
            assert!(
                output.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            stdout
        }
    };
    let first = run(&[]).await;
    assert!(first.contains("via REST query"), "{first}");
    assert!(first.contains("30 added, 0 updated, 0 deleted"), "{first}");
    let full = run(&["--full"]).await;
    assert!(full.contains("0 added, 0 updated, 0 deleted"), "{full}");
    assert!(full.contains("ids reconciled"), "{full}");
}
