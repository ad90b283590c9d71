//! `ferry dev`: the demo in one command: the emulator, the server on SQLite under `./.ferry/`, the `salesforce` and `salesforce-sandbox` integrations pointed at the emulator, and the links to click.

use crate::app::Application;
use crate::cli::DevArgs;
use crate::config::Config;
use crate::providers::HostMap;
use ferry_core::secret::SecretString;
use ferry_core::vault::EncryptionKey;
use ferry_store::NewIntegration;
use std::net::{IpAddr, Ipv4Addr};

/// Reads the demo encryption key from the data directory, creating it on first run.
fn demo_key(dir: &std::path::Path) -> anyhow::Result<SecretString> {
    let path = dir.join("encryption.key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(text.trim().to_string()));
    }
    std::fs::create_dir_all(dir)?;
    let key = EncryptionKey::generate()?.to_base64();
    std::fs::write(&path, format!("{}\n", key.expose_secret()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key)
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let public_url = format!("http://localhost:{}", args.port);
    let emulator = ferry_emulator::start(ferry_emulator::EmulatorConfig {
        host: loopback,
        production_port: args.emulator_port,
        sandbox_port: args.emulator_port.saturating_add(1),
        instance2_port: args.emulator_port.saturating_add(2),
        demo: true,
        seed_demo_data: true,
        demo_callback_urls: vec![format!("{public_url}/oauth/callback")],
    })
    .await?;
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
    let encryption_key = match crate::config::encryption_key_from_env() {
        Ok(k) => k,
        Err(_) => demo_key(&args.data_dir)?,
    };
    let database_url = std::env::var("FERRY_DATABASE_URL").unwrap_or_else(|_| {
        args.data_dir
            .join("ferry.db")
            .to_string_lossy()
            .into_owned()
    });
    let config = Config {
        host: loopback,
        port: args.port,
        database_url,
        public_url: Some(public_url.clone()),
        hosts,
        encryption_key,
        previous_keys: Vec::new(),
        run_workers: true,
        token_policy: Default::default(),
        syncs_file: std::env::var_os("FERRY_SYNCS_FILE").map(Into::into),
        sync: crate::sync::SyncSettings::from_env()?,
        upstream: Default::default(),
        limits: Default::default(),
        // The demo delivers webhooks to receivers on this machine (and wherever else it is told).
        webhook_targets: crate::webhook_targets::WebhookTargetPolicy::loopback().with(
            crate::webhook_targets::WebhookTargetPolicy::from_env()
                .map_err(|e| anyhow::anyhow!("FERRY_WEBHOOK_ALLOWED_HOSTS: {e}"))?,
        ),
    };
    let app = Application::build(config).await?;
    let state = app.state();
    let environments = state.store.list_environments().await?;
    let dev = environments
        .iter()
        .find(|e| e.name == "dev")
        .ok_or_else(|| anyhow::anyhow!("the dev environment is missing"))?;
    for (key, provider) in [
        ("salesforce", "salesforce"),
        ("salesforce-sandbox", "salesforce-sandbox"),
    ] {
        if state.store.get_integration(dev.id, key).await?.is_none() {
            let seal = |id: i64| {
                crate::api::integrations::seal_client_secret(
                    &state,
                    dev.id,
                    ferry_store::IntegrationId(id),
                    "ferry-demo-secret",
                )
                .map_err(|e| e.message)
            };
            state
                .store
                .create_integration(
                    dev.id,
                    &NewIntegration {
                        unique_key: key.to_string(),
                        provider: provider.to_string(),
                        display_name: crate::providers::provider(provider)
                            .map(|p| p.display_name.to_string())
                            .unwrap_or_default(),
                        client_id: Some("ferry-demo-client".to_string()),
                        scopes: Some("api,refresh_token,offline_access".to_string()),
                    },
                    Some(&seal),
                    crate::api::now_ms(),
                )
                .await?;
        }
    }
    let dev_key = crate::sealing::open_secret_key(&state.vault, dev)
        .ok_or_else(|| anyhow::anyhow!("the dev environment's secret key cannot be opened"))?;
    let dev_key = dev_key.expose_secret();
    let token = app.shutdown_token();
    let local = app.local_addr()?;
    let server = tokio::spawn(app.run());
    // A connect session for a demo end user, so there is a link to click right away.
    let connect_link = reqwest::Client::new()
        .post(format!("http://{local}/connect/sessions"))
        .bearer_auth(dev_key)
        .json(&serde_json::json!({"end_user": {"id": "demo-user", "email": "demo@example.com", "display_name": "Demo User"}}))
        .send()
        .await
        .ok();
    let connect_link = match connect_link {
        Some(resp) => resp
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["data"]["connect_link"].as_str().map(str::to_string)),
        None => None,
    };
    println!("Ferry is running (demo)");
    println!("  API base:        {public_url}");
    println!("  secret key (dev): {dev_key}");
    if let Some(link) = connect_link {
        println!("  connect an org:  {link}");
        println!("                   (valid 30 minutes; POST /connect/sessions makes new ones)");
    }
    println!(
        "  try:             curl -H 'Authorization: Bearer {dev_key}' {public_url}/connections"
    );
    println!(
        "  Salesforce emulator: {} (sandbox {})",
        emulator.production_url, emulator.sandbox_url
    );
    println!(
        "  emulator login:  {} / {}",
        ferry_emulator::DEMO_USERNAME,
        ferry_emulator::DEMO_PASSWORD
    );
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    server.await??;
    emulator.shutdown();
    Ok(())
}
