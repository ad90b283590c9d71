//! `ferry bench proxy`: the same keep-alive load generator against the emulator directly and
//! through Ferry's `/proxy`, at several concurrency levels, in one process; prints requests/s,
//! p50/p99 latency of both, their ratio, the latency Ferry adds and the process's peak memory.

use crate::app::Application;
use crate::config::Config;
use crate::providers::HostMap;
use clap::Args;
use ferry_core::vault::EncryptionKey;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Flags of `ferry bench proxy`.
#[derive(Debug, Args)]
pub struct ProxyBenchArgs {
    /// Concurrent keep-alive connections, one run per level (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
    pub concurrency: Vec<usize>,
    /// Seconds each run lasts (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

/// One run's figures.
struct Run {
    requests: usize,
    errors: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// Peak resident set size of this process in bytes (`VmHWM`), 0 when unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `concurrency` workers, each with its own HTTP/1.1 keep-alive connection, sending `request()`
/// back to back for `duration`.
async fn load(
    concurrency: usize,
    duration: Duration,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + Clone + 'static,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(1)
            .build()?;
        let request = request.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                match request(&client).send().await {
                    Ok(resp) => {
                        let ok = resp.status().is_success();
                        if resp.bytes().await.is_err() || !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                latencies.push(t.elapsed().as_micros() as u64);
            }
            (latencies, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(done) = workers.join_next().await {
        let (latencies, e) = done?;
        all.extend(latencies);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(Run {
        requests: all.len(),
        errors,
        secs,
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}

/// Runs the proxy benchmark and prints its figures.
pub async fn proxy(args: ProxyBenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        println!("warning: debug build; run `cargo run --release -- bench proxy` for real figures");
    }
    let emulator = ferry_emulator::start(ferry_emulator::EmulatorConfig::ephemeral()).await?;
    let dir = std::env::temp_dir().join(format!("ferry-bench-proxy-{}", crate::app::random_hex(6)));
    std::fs::create_dir_all(&dir)?;
    let hosts = HostMap {
        login: emulator.production_url.clone(),
        sandbox_login: emulator.sandbox_url.clone(),
        allowed_upstream_hosts: vec![emulator
            .production_url
            .trim_start_matches("http://")
            .to_string()],
    };
    let key = EncryptionKey::generate()?.to_base64();
    let mut config = Config::for_tests(&dir.join("ferry.db").to_string_lossy(), key, hosts);
    config.upstream.max_concurrent_per_org = 1000;
    let app = Application::build(config).await?;
    let ferry_url = format!("http://{}", app.local_addr()?);
    let state = app.state();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run());

    // One org connected: the integration through the API, the connection from minted tokens
    // (the OAuth pages are not what is measured here).
    let env = state
        .store
        .list_environments()
        .await?
        .into_iter()
        .find(|e| e.name == "dev")
        .ok_or_else(|| anyhow::anyhow!("no dev environment"))?;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{ferry_url}/integrations"))
        .bearer_auth(&env.secret_key)
        .json(&json!({"provider": "salesforce", "unique_key": "salesforce", "credentials": {"type": "OAUTH2", "client_id": "ferry-demo-client", "client_secret": "ferry-demo-secret", "scopes": "api,refresh_token"}}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "integration: {}",
        resp.text().await?
    );
    let minted: Value = http
        .post(format!(
            "{}/__emulator/orgs/Acme/tokens",
            emulator.production_url
        ))
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let mut token: ferry_salesforce::oauth::TokenResponse = serde_json::from_value(minted.clone())?;
    token.raw = minted;
    let integration = state
        .store
        .get_integration(env.id, "salesforce")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no integration"))?;
    let identity = token.identity()?;
    let access = token.access_token.clone();
    let instance = token.instance_url.clone();
    let (connection, _) = crate::connections::store_oauth_connection(
        &state,
        crate::connections::NewOAuthConnection {
            integration: &integration,
            token,
            identity,
            hostname: None,
            tags: json!({}),
            end_user: json!({"id": "bench"}),
            reconnect: None,
            expires_at: Some(state.clock.now_ms() + 2 * 3600 * 1000),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("connection: {}", e.message))?;
    let connection_id = connection.connection_id.clone();

    // A small REST resource: one Account by id.
    let query: Value = http
        .get(format!(
            "{instance}/services/data/v59.0/query?q=SELECT+Id+FROM+Account+LIMIT+1"
        ))
        .bearer_auth(&access)
        .send()
        .await?
        .json()
        .await?;
    let account = query["records"][0]["Id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the demo org has no Account: {query}"))?
        .to_string();
    let path = format!("/services/data/v59.0/sobjects/Account/{account}");
    let direct_url = format!("{instance}{path}");
    let proxy_url = format!("{ferry_url}/proxy{path}");
    let secret = env.secret_key.clone();
    let direct = move |c: &reqwest::Client| c.get(&direct_url).bearer_auth(&access);
    let through = move |c: &reqwest::Client| {
        c.get(&proxy_url)
            .bearer_auth(&secret)
            .header("Connection-Id", &connection_id)
            .header("Provider-Config-Key", "salesforce")
    };
    let check = through(&http).send().await?;
    anyhow::ensure!(
        check.status().is_success(),
        "proxied call failed: {}",
        check.text().await?
    );

    println!("ferry bench proxy (GET {path}; {}s per run; emulator, Ferry on SQLite and the load generator in one process)", args.seconds);
    println!(
        "  {:>5}  {:>10} {:>8} {:>8}  {:>10} {:>8} {:>8}  {:>6}  {:>10}",
        "conns",
        "direct r/s",
        "p50 µs",
        "p99 µs",
        "ferry r/s",
        "p50 µs",
        "p99 µs",
        "ratio",
        "added p50"
    );
    let duration = Duration::from_secs(args.seconds.max(1));
    for &n in &args.concurrency {
        let n = n.max(1);
        // Warm-up: connections opened, caches filled.
        load(n, Duration::from_millis(500), direct.clone()).await?;
        load(n, Duration::from_millis(500), through.clone()).await?;
        let d = load(n, duration, direct.clone()).await?;
        let f = load(n, duration, through.clone()).await?;
        println!(
            "  {:>5}  {:>10.0} {:>8} {:>8}  {:>10.0} {:>8} {:>8}  {:>5.0}%  {:>7} µs{}",
            n,
            d.rps(),
            d.p50_us,
            d.p99_us,
            f.rps(),
            f.p50_us,
            f.p99_us,
            100.0 * f.rps() / d.rps(),
            f.p50_us as i64 - d.p50_us as i64,
            if d.errors + f.errors > 0 {
                format!("  ({} direct / {} proxied errors)", d.errors, f.errors)
            } else {
                String::new()
            }
        );
    }
    state.oplog.flush_all(&state).await?;
    println!(
        "  operation log: {} entries written, {} dropped",
        state.oplog.written(),
        state.oplog.dropped()
    );
    println!(
        "  peak RSS (VmHWM) of this process (Ferry + emulator + load generator): {:.0} MiB",
        peak_rss_bytes() as f64 / 1048576.0
    );
    shutdown.cancel();
    emulator.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
