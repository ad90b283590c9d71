//! The `ferry` binary as a user runs it: `ferry emulator` starts with the documented defaults.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn ferry_emulator_starts_with_the_documented_defaults() {
    let (port, sandbox, second) = (free_port(), free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "emulator",
            "--port",
            &port.to_string(),
            "--sandbox-port",
            &sandbox.to_string(),
        ])
        .args(["--instance2-port", &second.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut child = KillOnDrop(child);
    // The banner is printed once the listeners are bound: wait for it, line by line.
    let banner: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take(8)
        .collect();
    assert!(banner[0].contains("emulator running"), "{banner:?}");
    assert!(
        banner.iter().any(|l| l.contains("ferry-demo-client")),
        "{banner:?}"
    );

    let base = format!("http://127.0.0.1:{port}");
    let state: serde_json::Value = reqwest::get(format!("{base}/__emulator/state"))
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    let app = &state["apps"][0];
    assert_eq!(app["client_id"], "ferry-demo-client");
    assert_eq!(app["client_secret"], "ferry-demo-secret");
    assert_eq!(
        app["callback_urls"][0],
        "http://localhost:3003/oauth/callback"
    );
    let orgs = state["orgs"].as_array().expect("orgs");
    let acme = orgs.iter().find(|o| o["name"] == "Acme").expect("Acme");
    assert_eq!(acme["sandbox"], false);
    assert_eq!(acme["instance_url"], base.as_str());
    assert_eq!(acme["users"][0]["username"], "admin@acme.example");
    let sandbox_org = orgs
        .iter()
        .find(|o| o["name"] == "Acme Sandbox")
        .expect("Acme Sandbox");
    assert_eq!(
        sandbox_org["instance_url"],
        format!("http://127.0.0.1:{sandbox}").as_str()
    );
    assert_eq!(
        sandbox_org["users"][0]["username"],
        "admin@acme.example.sandbox"
    );

    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/__emulator/orgs/Acme/tokens"))
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    let limits = reqwest::Client::new()
        .get(format!(
            "{base}/services/data/v59.0/sobjects/Account/describe"
        ))
        .bearer_auth(token["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("describe");
    assert_eq!(limits.status(), 200);
    let _ = child.0.kill();
}

#[tokio::test]
async fn ferry_dev_prints_a_secret_key_and_a_working_connect_link() {
    let (port, emulator) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "dev",
            "--port",
            &port.to_string(),
            "--emulator-port",
            &emulator.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("FERRY_ENCRYPTION_KEY")
        .env_remove("FERRY_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry dev starts");
    let stdout = child.stdout.take().expect("stdout");
    let _child = KillOnDrop(child);
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.contains("emulator login"))
        .collect();
    let key = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("secret key (dev):"))
        .expect("a secret key")
        .trim()
        .to_string();
    let link = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("connect an org:"))
        .expect("a connect link")
        .trim()
        .to_string();
    let page = reqwest::get(&link)
        .await
        .expect("connect ui")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Connect your Salesforce org"), "{page}");
    assert!(
        page.contains("Salesforce (Sandbox)"),
        "both demo integrations are offered"
    );
    let integrations: serde_json::Value = reqwest::Client::new()
        .get(format!("http://localhost:{port}/integrations"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("integrations")
        .json()
        .await
        .expect("json");
    assert_eq!(integrations["data"].as_array().expect("data").len(), 2);
    assert!(
        dir.path().join("encryption.key").exists(),
        "the demo key is generated into the data dir"
    );
}
