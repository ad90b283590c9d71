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

/// Resident set size of this process in bytes (Linux), 0 when unknown.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
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
    let resp = http
        .post(format!("{admin}/orgs/Acme/seed"))
        .json(&serde_json::json!({"counts": {"Contact": args.contacts}}))
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "seed failed: {}",
        resp.text().await?
    );
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
