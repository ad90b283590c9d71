//! `ferry bench sync`: the emulator in a child process with N contacts; a bare client pages them out (REST and Bulk), Ferry syncs them into a temp SQLite store; rates, their ratio, Ferry's peak RSS, and the latency of an incremental run with changed records from trigger to webhook.

use crate::app::Application;
use crate::bench::{peak_rss_bytes, EmulatorChild, TempDir};
use crate::config::Config;
use crate::providers::HostMap;
use crate::sync::engine::{run_sync, RunOptions, RunReport};
use crate::sync::{SyncCatalog, SyncSettings};
use anyhow::Context;
use clap::Args;
use ferry_salesforce::transport::{latest_version, StaticTransport};
use ferry_salesforce::{bulk, query};
use ferry_store::SyncTrigger;
use serde_json::json;
use std::time::Instant;

/// Flags of `ferry bench sync`.
#[derive(Debug, Args)]
pub struct SyncBenchArgs {
    /// Contacts seeded and synced.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Contacts changed before the incremental run.
    #[arg(long, default_value_t = 1000)]
    pub changed: usize,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: SyncBenchArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        println!("warning: debug build; run `cargo run --release -p ferry-server -- bench sync` for real figures");
    }
    let http = reqwest::Client::new();
    // The emulator runs as a child process, so this process's peak RSS is Ferry's alone.
    let child = EmulatorChild::start(&http).await?;
    let sandbox = child.sandbox;
    let emulator = child.url();
    let admin = format!("{emulator}/__emulator");
    child.seed(&http, json!({"Account": 1000})).await?;
    let t = Instant::now();
    child.seed(&http, json!({"Contact": args.records})).await?;
    println!(
        "seeded {} contacts in {:.1} s (emulator child process)",
        args.records,
        t.elapsed().as_secs_f64()
    );
    let minted = child.mint_tokens(&http).await?;
    let sf = StaticTransport {
        http: http.clone(),
        instance_url: minted["instance_url"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        access_token: minted["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    let version = latest_version(&sf).await?;
    let def = SyncCatalog::prebuilt()
        .get("contacts")
        .cloned()
        .context("contacts definition")?;
    let settings = SyncSettings::default();
    let soql = format!(
        "SELECT {} FROM Contact ORDER BY SystemModstamp, Id",
        def.soql_fields().join(", ")
    );

    // (a) A bare client: REST pages, then a Bulk job, same fields and order.
    let t = Instant::now();
    let mut pager = query::QueryPager::new(&sf, &version, &soql, false, 2000);
    let mut rest_records = 0u64;
    while let Some(page) = pager.next_page().await? {
        rest_records += page.records.len() as u64;
    }
    let rest_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let job = bulk::create_job(&sf, &version, &soql, false).await?;
    bulk::wait_for_completion(&sf, &version, &job.id, |_| async {}).await?;
    let mut results = bulk::ResultPager::new(&sf, &version, &job.id, settings.bulk_page_size);
    let mut bulk_records = 0u64;
    while let Some(page) = results.next_page().await? {
        bulk_records += page.rows.len() as u64;
    }
    let bulk_secs = t.elapsed().as_secs_f64();
    let rss_after_bare = peak_rss_bytes();

    // (b) Ferry: a connection imported into a temp SQLite store, the contacts sync run once.
    let dir = TempDir::new("ferry-bench-sync")?;
    let key = ferry_core::vault::EncryptionKey::generate()?.to_base64();
    let hosts = HostMap {
        login: emulator.clone(),
        sandbox_login: format!("http://127.0.0.1:{sandbox}"),
        allowed_upstream_hosts: child.hosts(),
    };
    let mut config = Config::for_tests(&dir.join("ferry.db").to_string_lossy(), key, hosts);
    config.sync = settings.clone();
    let app = Application::build(config).await?;
    let state = app.state();
    let ferry_url = format!("http://{}", app.local_addr()?);
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run());
    let dev = state
        .store
        .list_environments()
        .await?
        .into_iter()
        .find(|e| e.name == "dev")
        .context("dev environment")?;
    let dev_key = crate::sealing::open_secret_key(&state.vault, &dev)
        .context("the dev secret key")?
        .expose_secret()
        .to_string();
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{ferry_url}{path}"))
            .bearer_auth(&dev_key)
    };
    crate::bench::connect_bench_org(&http, &ferry_url, &dev_key, &minted).await?;
    let connection = state
        .store
        .get_connection(dev.id, "salesforce", "bench")
        .await?
        .context("the imported connection")?;
    let owner = "bench";
    let run_once = |trigger: Option<SyncTrigger>| {
        let state = state.clone();
        let settings = settings.clone();
        let connection = connection.clone();
        async move {
            let now = state.clock.now_ms();
            if let Some(t) = trigger {
                state
                    .store
                    .request_sync_run(
                        connection.environment_id,
                        connection.id,
                        &["contacts".to_string()],
                        t,
                        now,
                    )
                    .await?;
            }
            let row = state
                .store
                .get_sync(connection.environment_id, connection.id, "contacts")
                .await?
                .context("contacts sync")?;
            let claimed = state
                .store
                .claim_sync(row.id, owner, now, settings.lease_ms)
                .await?
                .context("claim")?;
            let report: RunReport =
                run_sync(&state, &settings, &claimed, owner, &RunOptions::default()).await?;
            anyhow::ensure!(report.error.is_none(), "sync failed: {:?}", report.error);
            anyhow::Ok(report)
        }
    };
    let t = Instant::now();
    let initial = run_once(None).await?;
    let ferry_secs = t.elapsed().as_secs_f64();
    let ferry_peak = peak_rss_bytes();

    // (c) Incremental: change records, then trigger → run → webhook queued → webhook sent.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    crate::bench::send_ok(
        api(reqwest::Method::PATCH, "/ferry/environment").json(&json!({"webhook_url": hook_url})),
        "webhook url",
    )
    .await?;
    while crate::webhooks::run_one(&state).await? != crate::webhooks::Outcome::Idle {}
    while rx.try_recv().is_ok() {}
    let mut ids = Vec::new();
    let mut pager = query::QueryPager::new(
        &sf,
        &version,
        &format!("SELECT Id FROM Contact ORDER BY Id LIMIT {}", args.changed),
        false,
        2000,
    );
    while let Some(page) = pager.next_page().await? {
        ids.extend(
            page.records
                .iter()
                .filter_map(|r| r["Id"].as_str().map(str::to_string)),
        );
    }
    for chunk in ids.chunks(50) {
        let calls = chunk.iter().map(|id| {
            http.patch(format!("{admin}/orgs/Acme/records/Contact/{id}"))
                .json(&json!({"Title": "Changed by the bench"}))
                .send()
        });
        for r in futures::future::join_all(calls).await {
            anyhow::ensure!(r?.status().is_success(), "update failed");
        }
    }
    let t = Instant::now();
    let incremental = run_once(Some(SyncTrigger::Incremental)).await?;
    let queued_ms = t.elapsed().as_secs_f64() * 1000.0;
    state.webhook_wakeup.notify_one();
    let delivered = crate::webhooks::run_one(&state).await?;
    anyhow::ensure!(
        delivered == crate::webhooks::Outcome::Delivered,
        "the sync webhook was not delivered: {delivered:?}"
    );
    rx.recv().await.context("webhook receiver")?;
    let sent_ms = t.elapsed().as_secs_f64() * 1000.0;
    shutdown.cancel();
    drop(child);

    let rest_rate = rest_records as f64 / rest_secs;
    let bulk_rate = bulk_records as f64 / bulk_secs;
    let ferry_rate = initial.records_read as f64 / ferry_secs;
    let bare_same_api = match initial.mode {
        Some(crate::sync::engine::LoadMode::Bulk) => bulk_rate,
        _ => rest_rate,
    };
    println!("ferry bench sync ({} contacts)", args.records);
    println!(
        "  bare client, REST query    {rest_records} records in {rest_secs:.2} s = {rest_rate:.0} records/s"
    );
    println!(
        "  bare client, Bulk API 2.0  {bulk_records} records in {bulk_secs:.2} s = {bulk_rate:.0} records/s"
    );
    println!(
        "  Ferry initial sync ({:?})  {} records in {ferry_secs:.2} s = {ferry_rate:.0} records/s ({} added, {} pages)",
        initial.mode.unwrap_or(crate::sync::engine::LoadMode::Rest),
        initial.records_read,
        initial.added,
        initial.pages
    );
    println!(
        "  ratio                      {:.0}% of the bare client on the same API (target >= 80%); {:.0}% of bare REST",
        100.0 * ferry_rate / bare_same_api,
        100.0 * ferry_rate / rest_rate
    );
    println!(
        "  Ferry peak RSS (VmHWM)     {:.0} MiB (target <= 300 MiB; {:.0} MiB after the bare-client phase; emulator in a child process)",
        mib(ferry_peak),
        mib(rss_after_bare)
    );
    println!(
        "  incremental run            {} changed: {} updated; webhook queued after {queued_ms:.0} ms, sent after {sent_ms:.0} ms (target < 1000 ms)",
        args.changed, incremental.updated
    );
    drop(dir);
    Ok(())
}
