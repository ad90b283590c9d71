//! `ferry sync run <connection-id> <sync>`: one run of one sync against the configured database, claimed like a worker would, with a progress bar and a summary.

use crate::app::Application;
use crate::sync::engine::{run_sync, LoadMode, Progress, RunOptions};
use clap::Args;
use ferry_store::SyncTrigger;
use std::sync::Arc;
use std::time::Instant;

/// Flags of `ferry sync run`.
#[derive(Debug, Args)]
pub struct SyncRunArgs {
    /// The connection's `connection_id`.
    pub connection_id: String,
    /// The sync's name (`contacts`, or one of the syncs file).
    pub sync: String,
    /// The integration key, when the connection id is used by several integrations.
    #[arg(long)]
    pub provider_config_key: Option<String>,
    /// The environment (`dev`, `prod`), when the connection id is used in both.
    #[arg(long)]
    pub environment: Option<String>,
    /// Start from scratch (records are kept; unchanged ones are not reported).
    #[arg(long)]
    pub full: bool,
    /// Server and database settings.
    #[command(flatten)]
    pub server: crate::config::ServerArgs,
}

/// Runs the command.
pub async fn run(args: SyncRunArgs) -> anyhow::Result<()> {
    let mut config = args.server.config()?;
    config.port = 0;
    config.host = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    config.run_workers = false;
    let settings = config.sync.clone();
    let app = Application::build(config).await?;
    let state = app.state();
    let mut matches = Vec::new();
    for env in state.store.list_environments().await? {
        if args.environment.as_ref().is_some_and(|e| *e != env.name) {
            continue;
        }
        for c in state
            .store
            .connections_with_id(env.id, &args.connection_id)
            .await?
        {
            if args
                .provider_config_key
                .as_ref()
                .is_none_or(|k| *k == c.integration_key)
            {
                matches.push((env.name.clone(), c));
            }
        }
    }
    let (env_name, connection) = match matches.len() {
        0 => anyhow::bail!("no connection {} found", args.connection_id),
        1 => matches.remove(0),
        _ => anyhow::bail!(
            "connection id {} is used by {} connections ({}); add --provider-config-key or --environment",
            args.connection_id,
            matches.len(),
            matches
                .iter()
                .map(|(e, c)| format!("{e}/{}", c.integration_key))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if state.syncs.get(&args.sync).is_none() {
        anyhow::bail!(
            "no sync named {}; known: {}",
            args.sync,
            state
                .syncs
                .all()
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    crate::sync::scheduler::ensure_connection_syncs(&state, &connection).await?;
    let now = state.clock.now_ms();
    if args.full {
        state
            .store
            .request_sync_run(
                connection.environment_id,
                connection.id,
                std::slice::from_ref(&args.sync),
                SyncTrigger::FullRefresh,
                now,
            )
            .await?;
    }
    let row = state
        .store
        .get_sync(connection.environment_id, connection.id, &args.sync)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the sync {} is missing", args.sync))?;
    let owner = format!("cli-{}", uuid::Uuid::new_v4());
    let Some(claimed) = state
        .store
        .claim_sync(row.id, &owner, now, settings.lease_ms)
        .await?
    else {
        anyhow::bail!(
            "the sync is running elsewhere ({}); try again when it finishes",
            row.lease_owner.unwrap_or_default()
        );
    };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos} records read ({per_sec}) {elapsed} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let progress_bar = bar.clone();
    let options = RunOptions {
        progress: Some(Arc::new(move |p: &Progress| {
            if let Some(total) = p.expected {
                progress_bar.set_length(total);
            }
            progress_bar.set_position(p.records);
            progress_bar.set_message(format!("{} pages", p.pages));
        })),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let report = run_sync(&state, &settings, &claimed, &owner, &options).await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sync {} of connection {} ({env_name}/{})",
        args.sync, args.connection_id, connection.integration_key
    );
    println!(
        "  read     {} records in {} pages via {} ({:.0} records/s)",
        report.records_read,
        report.pages,
        match report.mode {
            Some(LoadMode::Bulk) => "Bulk API 2.0",
            Some(LoadMode::Rest) => "REST query",
            None => "nothing to read",
        },
        report.records_read as f64 / secs.max(1e-9)
    );
    println!(
        "  changes  {} added, {} updated, {} deleted{}",
        report.added,
        report.updated,
        report.deleted,
        if report.reconciled {
            " (ids reconciled)"
        } else {
            ""
        }
    );
    println!("  duration {secs:.2} s");
    for w in &report.warnings {
        println!("  warning  {w}");
    }
    if let Some(e) = &report.error {
        anyhow::bail!("the run failed: {e}");
    }
    Ok(())
}
