//! `ferry bench emulator`: measures the emulator's seeding speed, memory and REST query pagination throughput.

use clap::Args;
use std::collections::BTreeMap;
use std::time::Instant;

/// Flags of `ferry bench emulator`.
#[derive(Debug, Args)]
pub struct EmulatorBenchArgs {
    /// How many contacts to seed and page through.
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: usize,
}

/// A `/proc/<pid>/status` figure in bytes (`VmRSS`, `VmHWM`…) of `pid` (this process when
/// `None`), 0 when unknown (not Linux).
pub fn proc_status_bytes(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Resident set size of this process in bytes, 0 when unknown.
pub fn rss_bytes() -> u64 {
    proc_status_bytes(None, "VmRSS")
}

/// Peak resident set size (`VmHWM`) of this process in bytes, 0 when unknown.
pub fn peak_rss_bytes() -> u64 {
    proc_status_bytes(None, "VmHWM")
}

/// CPU time (user + system) `pid` has used so far (this process when `None`), from
/// `/proc/<pid>/stat`; zero when unknown.
pub fn cpu_time(pid: Option<u32>) -> std::time::Duration {
    /// Linux reports these fields in USER_HZ ticks, 100 per second on every architecture.
    const TICKS_PER_SEC: u64 = 100;
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let ticks = std::fs::read_to_string(path).ok().and_then(|s| {
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let rest = &s[s.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    });
    std::time::Duration::from_millis(ticks.unwrap_or(0) * 1000 / TICKS_PER_SEC)
}

/// Sends `request` and fails with `what` and the answer's text unless it succeeded.
pub async fn send_ok(
    request: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    let resp = request.send().await?;
    if !resp.status().is_success() {
        anyhow::bail!("{what}: {} {}", resp.status(), resp.text().await?);
    }
    Ok(resp)
}

/// A free local TCP port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `ferry <args>` as a child process of this one (killed when dropped), output discarded.
pub fn spawn_self(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<tokio::process::Child> {
    use anyhow::Context;
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .spawn()
        .with_context(|| format!("cannot start `ferry {}`", args.join(" ")))
}

/// Waits until `url` answers at all (a child process has started listening), for up to 30 s.
pub async fn wait_until_up(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while http.get(url).send().await.is_err() {
        anyhow::ensure!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{url} did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Through Ferry's API at `ferry_url` with an environment's `secret`: the `salesforce`
/// integration and the connection `bench` imported from `minted` (the emulator's token
/// response), so a benchmark measures calls, not the OAuth pages.
pub async fn connect_bench_org(
    http: &reqwest::Client,
    ferry_url: &str,
    secret: &str,
    minted: &serde_json::Value,
) -> anyhow::Result<()> {
    send_ok(
        http
        .post(format!("{ferry_url}/integrations"))
        .bearer_auth(secret)
        .json(&serde_json::json!({"provider": "salesforce", "unique_key": "salesforce", "credentials": {"type": "OAUTH2", "client_id": "ferry-demo-client", "client_secret": "ferry-demo-secret", "scopes": "api,refresh_token"}})),
        "integration",
    )
    .await?;
    send_ok(
        http
        .post(format!("{ferry_url}/connections"))
        .bearer_auth(secret)
        .json(&serde_json::json!({
            "connection_id": "bench",
            "provider_config_key": "salesforce",
            "connection_config": {"instance_url": minted["instance_url"], "org_id": minted["org_id"]},
            "credentials": {"type": "OAUTH2", "access_token": minted["access_token"], "refresh_token": minted["refresh_token"]},
        })),
        "import",
    )
    .await?;
    Ok(())
}

/// A temp directory removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new empty directory under the system temp dir, named `<prefix>-<uuid>`.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The emulator running as a child process (`ferry emulator`, nothing seeded), so a
/// benchmark's figures for this process are Ferry's alone.
pub struct EmulatorChild {
    /// The process, killed when dropped.
    pub process: tokio::process::Child,
    /// Production port (login and the first instance).
    pub port: u16,
    /// Sandbox login port.
    pub sandbox: u16,
    /// Second instance port.
    pub second: u16,
}

impl EmulatorChild {
    /// Starts it and waits until it answers.
    pub async fn start(http: &reqwest::Client) -> anyhow::Result<Self> {
        let (port, sandbox, second) = (free_port()?, free_port()?, free_port()?);
        let process = spawn_self(
            &[
                "emulator",
                "--port",
                &port.to_string(),
                "--sandbox-port",
                &sandbox.to_string(),
                "--instance2-port",
                &second.to_string(),
                "--no-seed",
            ],
            &[],
        )?;
        let child = EmulatorChild {
            process,
            port,
            sandbox,
            second,
        };
        wait_until_up(http, &format!("{}/__emulator/state", child.url())).await?;
        Ok(child)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Seeds the org `Acme` with `counts` records per object (`{"Contact": 1000}`).
    pub async fn seed(
        &self,
        http: &reqwest::Client,
        counts: serde_json::Value,
    ) -> anyhow::Result<()> {
        send_ok(
            http.post(format!("{}/__emulator/orgs/Acme/seed", self.url()))
                .json(&serde_json::json!({ "counts": counts })),
            "seed",
        )
        .await?;
        Ok(())
    }

    /// Tokens for the org `Acme` minted by the emulator (no OAuth pages): the token response.
    pub async fn mint_tokens(&self, http: &reqwest::Client) -> anyhow::Result<serde_json::Value> {
        Ok(http
            .post(format!("{}/__emulator/orgs/Acme/tokens", self.url()))
            .json(&serde_json::json!({}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The three listeners as `host:port`, for Ferry's allowed upstream hosts.
    pub fn hosts(&self) -> Vec<String> {
        [self.port, self.sandbox, self.second]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect()
    }
}

/// Runs the emulator benchmark and prints its figures.
pub async fn emulator(args: EmulatorBenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        println!(
            "warning: debug build; run `cargo run --release -- bench emulator` for real figures"
        );
    }
    let config = ferry_emulator::EmulatorConfig {
        seed_demo_data: false,
        ..ferry_emulator::EmulatorConfig::ephemeral()
    };
    let emulator = ferry_emulator::start(config).await?;
    let http = reqwest::Client::new();
    let admin = format!("{}/__emulator", emulator.production_url);
    let rss_before = rss_bytes();

    // Seeding, through the admin API as a user would call it.
    let started = Instant::now();
    send_ok(
        http.post(format!("{admin}/orgs/Acme/seed"))
            .json(&serde_json::json!({"counts": {"Contact": args.contacts}})),
        "seed failed",
    )
    .await?;
    let seed_secs = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();

    // REST query pagination to a single client.
    let token: serde_json::Value = http
        .post(format!("{admin}/orgs/Acme/tokens"))
        .json(&serde_json::json!({}))
        .send()
        .await?
        .json()
        .await?;
    let access = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let instance = token["instance_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let started = Instant::now();
    let mut url = format!(
        "{instance}/services/data/v59.0/query?q={}",
        "SELECT+Id,FirstName,LastName,Email,AccountId,SystemModstamp+FROM+Contact+ORDER+BY+SystemModstamp,Id"
    );
    let mut records = 0usize;
    let mut first_page_ms = 0.0;
    loop {
        let page: serde_json::Value = http
            .get(&url)
            .bearer_auth(&access)
            .send()
            .await?
            .json()
            .await?;
        if first_page_ms == 0.0 {
            first_page_ms = started.elapsed().as_secs_f64() * 1000.0;
        }
        let n = page["records"].as_array().map(Vec::len).unwrap_or(0);
        anyhow::ensure!(n > 0 || records >= args.contacts, "query failed: {page}");
        records += n;
        match page["nextRecordsUrl"].as_str() {
            Some(next) => url = format!("{instance}{next}"),
            None => break,
        }
    }
    let query_secs = started.elapsed().as_secs_f64();
    emulator.shutdown();

    let mut figures = BTreeMap::new();
    figures.insert("contacts seeded", format!("{}", args.contacts));
    figures.insert(
        "seed time",
        format!(
            "{seed_secs:.2} s ({:.0} records/s)",
            args.contacts as f64 / seed_secs
        ),
    );
    figures.insert(
        "resident memory",
        format!(
            "{:.0} MiB after seeding ({:.0} MiB before)",
            rss_after as f64 / 1048576.0,
            rss_before as f64 / 1048576.0
        ),
    );
    figures.insert(
        "REST query pagination",
        format!(
            "{records} records in {query_secs:.2} s = {:.0} records/s (first page after {first_page_ms:.0} ms)",
            records as f64 / query_secs
        ),
    );
    println!("ferry bench emulator");
    for (k, v) in figures {
        println!("  {k:<24} {v}");
    }
    Ok(())
}
