//! `ferry bench proxy`: Ferry (`ferry serve` on SQLite) and the emulator each in a child process, the same keep-alive load generator (this process) against the emulator directly and through Ferry's `/proxy` at several concurrency levels; prints requests/s, p50/p99 of both, their ratio, the latency Ferry adds, the CPU each process spends per request and Ferry's peak memory.

use crate::bench::{cpu_time, free_port, proc_status_bytes, spawn_self, wait_until_up};
use crate::bench::{EmulatorChild, TempDir};
use crate::config::Config;
use crate::providers::HostMap;
use anyhow::Context;
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
    /// Seconds each run lasts (after a half-second warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Latency the emulator adds to every API answer, standing in for the network and
    /// Salesforce's own time (0: the emulator answers at once and the machine's CPU is the
    /// limit).
    #[arg(long, default_value_t = 0)]
    pub upstream_latency_ms: u64,
}

/// The processes whose CPU a run accounts for.
struct Processes {
    emulator: u32,
    ferry: u32,
}

/// One run's figures.
struct Run {
    requests: usize,
    errors: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    /// CPU per request of the load generator, the emulator and Ferry.
    cpu_us: [f64; 3],
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// `concurrency` workers, each with its own HTTP/1.1 keep-alive connection, sending `request()`
/// back to back for `duration`.
async fn load(
    concurrency: usize,
    duration: Duration,
    processes: &Processes,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + Clone + 'static,
) -> anyhow::Result<Run> {
    let pids = [None, Some(processes.emulator), Some(processes.ferry)];
    let cpu_before = pids.map(cpu_time);
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
    let requests = all.len().max(1) as f64;
    let mut cpu_us = [0.0; 3];
    for (i, pid) in pids.into_iter().enumerate() {
        cpu_us[i] = (cpu_time(pid) - cpu_before[i]).as_secs_f64() * 1e6 / requests;
    }
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
        cpu_us,
    })
}

/// Runs the proxy benchmark and prints its figures.
pub async fn proxy(args: ProxyBenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        println!("warning: debug build; run `cargo run --release -- bench proxy` for real figures");
    }
    let http = reqwest::Client::new();
    let emulator = EmulatorChild::start(&http).await?;
    let admin = format!("{}/__emulator", emulator.url());
    emulator.seed(&http, json!({"Account": 10})).await?;
    let minted = emulator.mint_tokens(&http).await?;
    let access = minted["access_token"]
        .as_str()
        .context("minted access token")?
        .to_string();
    let instance = minted["instance_url"]
        .as_str()
        .context("minted instance_url")?
        .to_string();

    // Ferry as `ferry serve` on a fresh SQLite file, told the emulator is Salesforce.
    let dir = TempDir::new("ferry-bench-proxy")?;
    let db = dir.join("ferry.db").to_string_lossy().to_string();
    let key = EncryptionKey::generate()?.to_base64();
    let ferry_port = free_port()?;
    let ferry_url = format!("http://127.0.0.1:{ferry_port}");
    let hosts = HostMap {
        login: emulator.url(),
        sandbox_login: format!("http://127.0.0.1:{}", emulator.sandbox),
        allowed_upstream_hosts: emulator.hosts(),
    };
    let ferry = spawn_self(
        &[
            "serve",
            "--port",
            &ferry_port.to_string(),
            "--database-url",
            &db,
            "--salesforce-login-url",
            &hosts.login,
            "--salesforce-sandbox-login-url",
            &hosts.sandbox_login,
            "--allowed-upstream-hosts",
            &hosts.allowed_upstream_hosts.join(","),
            "--max-concurrent-per-org",
            "1000",
        ],
        &[
            ("FERRY_ENCRYPTION_KEY", key.expose_secret()),
            ("RUST_LOG", "error"),
        ],
    )?;
    wait_until_up(&http, &format!("{ferry_url}/health")).await?;
    let processes = Processes {
        emulator: emulator.process.id().context("emulator pid")?,
        ferry: ferry.id().context("ferry pid")?,
    };

    // The dev environment's secret key, read from the store Ferry created.
    let (store, vault) = crate::app::open_store(&Config::for_tests(&db, key, hosts)).await?;
    let dev = store
        .list_environments()
        .await?
        .into_iter()
        .find(|e| e.name == "dev")
        .context("no dev environment")?;
    let secret = crate::sealing::open_secret_key(&vault, &dev)
        .context("the dev secret key")?
        .expose_secret()
        .to_string();
    store.close().await;
    crate::bench::connect_bench_org(&http, &ferry_url, &secret, &minted).await?;

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
        .with_context(|| format!("the org has no Account: {query}"))?
        .to_string();
    let path = format!("/services/data/v59.0/sobjects/Account/{account}");
    if args.upstream_latency_ms > 0 {
        crate::bench::send_ok(
            http.post(format!("{admin}/faults")).json(
                &json!({"path_prefix": "/services/data/", "latency_ms": args.upstream_latency_ms}),
            ),
            "latency",
        )
        .await?;
    }
    let direct_url = format!("{instance}{path}");
    let proxy_url = format!("{ferry_url}/proxy{path}");
    let direct = move |c: &reqwest::Client| c.get(&direct_url).bearer_auth(&access);
    let through = move |c: &reqwest::Client| {
        c.get(&proxy_url)
            .bearer_auth(&secret)
            .header("Connection-Id", "bench")
            .header("Provider-Config-Key", "salesforce")
    };
    let check = through(&http).send().await?;
    anyhow::ensure!(
        check.status().is_success(),
        "proxied call failed: {}",
        check.text().await?
    );

    println!(
        "ferry bench proxy (GET {path}; {}s per run; upstream latency {} ms; load generator here, emulator and `ferry serve` on SQLite in child processes)",
        args.seconds, args.upstream_latency_ms
    );
    println!(
        "  {:>5}  {:>10} {:>8} {:>8}  {:>10} {:>8} {:>8}  {:>6}  {:>10}   CPU µs per request: direct (load gen + emulator) | through Ferry (load gen + emulator + Ferry)",
        "conns", "direct r/s", "p50 µs", "p99 µs", "ferry r/s", "p50 µs", "p99 µs", "ratio", "added p50"
    );
    let duration = Duration::from_secs(args.seconds.max(1));
    for &n in &args.concurrency {
        let n = n.max(1);
        // Warm-up: connections opened, caches filled.
        load(n, Duration::from_millis(500), &processes, direct.clone()).await?;
        load(n, Duration::from_millis(500), &processes, through.clone()).await?;
        let d = load(n, duration, &processes, direct.clone()).await?;
        let f = load(n, duration, &processes, through.clone()).await?;
        println!(
            "  {:>5}  {:>10.0} {:>8} {:>8}  {:>10.0} {:>8} {:>8}  {:>5.0}%  {:>7} µs   {:.0} + {:.0} | {:.0} + {:.0} + {:.0}{}",
            n,
            d.rps(),
            d.p50_us,
            d.p99_us,
            f.rps(),
            f.p50_us,
            f.p99_us,
            100.0 * f.rps() / d.rps(),
            f.p50_us as i64 - d.p50_us as i64,
            d.cpu_us[0],
            d.cpu_us[1],
            f.cpu_us[0],
            f.cpu_us[1],
            f.cpu_us[2],
            if d.errors + f.errors > 0 {
                format!("  ({} direct / {} proxied errors)", d.errors, f.errors)
            } else {
                String::new()
            }
        );
    }
    println!(
        "  Ferry's peak RSS (VmHWM of `ferry serve`): {:.0} MiB",
        proc_status_bytes(Some(processes.ferry), "VmHWM") as f64 / 1_048_576.0
    );
    drop(ferry);
    drop(emulator);
    Ok(())
}
