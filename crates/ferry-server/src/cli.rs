//! The `ferry` command line: subcommands, their flags and environment variables.

use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;

/// Ferry: a self-hostable Salesforce integrations server.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Salesforce emulator alone (OAuth, REST, Bulk API 2.0, admin API).
    Emulator(EmulatorArgs),
    /// Measure Ferry and its parts.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The demo: the server on SQLite under ./.ferry/ with the emulator beside it, ready to connect an org.
    Dev(DevArgs),
    /// The production server (HTTP API, Connect UI).
    Serve(crate::config::ServerArgs),
    /// Run the database migrations and exit.
    Migrate(crate::config::ServerArgs),
    /// Manage secret keys and the encryption key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run syncs by hand.
    #[command(subcommand)]
    Sync(SyncCommand),
}

/// `ferry sync …`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Run one sync of one connection now, with a progress bar and a summary.
    Run(crate::sync::cli::SyncRunArgs),
}

/// Flags of `ferry dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Ferry's HTTP port.
    #[arg(long, env = "FERRY_PORT", default_value_t = 3003)]
    pub port: u16,
    /// The emulator's production port (the sandbox listener takes the next one, the second instance the one after).
    #[arg(long, default_value_t = 3004)]
    pub emulator_port: u16,
    /// Where the SQLite database and the generated encryption key live.
    #[arg(long, default_value = ".ferry")]
    pub data_dir: std::path::PathBuf,
}

/// `ferry keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random encryption key (base64, 32 bytes).
    Generate,
    /// Print each environment's secret key.
    Show(crate::config::ServerArgs),
    /// Re-encrypt every stored secret under a new encryption key, without downtime.
    ///
    /// Reads the new key from FERRY_ENCRYPTION_KEY (or FERRY_ENCRYPTION_KEY_FILE) and the old
    /// one(s) from FERRY_PREVIOUS_ENCRYPTION_KEYS (comma-separated). Safe to run while servers
    /// are serving and safe to run again: secrets written meanwhile are never overwritten, and
    /// the database is marked with the new key only once every secret is re-encrypted.
    ///
    /// The zero-downtime procedure:
    ///   1. Generate a key: `ferry keys generate`.
    ///   2. Restart the servers one by one with FERRY_ENCRYPTION_KEY=<new> and
    ///      FERRY_PREVIOUS_ENCRYPTION_KEYS=<old> (they read both, write with the new one).
    ///   3. Run `ferry keys rotate` with the same two variables.
    ///   4. Remove FERRY_PREVIOUS_ENCRYPTION_KEYS and restart the servers.
    #[command(verbatim_doc_comment)]
    Rotate(crate::config::ServerArgs),
}

/// Flags of `ferry emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, env = "FERRY_EMULATOR_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Production listener (plays login.salesforce.com and production instances; admin API).
    #[arg(long, env = "FERRY_EMULATOR_PORT", default_value_t = 3004)]
    pub port: u16,
    /// Sandbox listener (plays test.salesforce.com and sandbox instances). Default: port + 1.
    #[arg(long, env = "FERRY_EMULATOR_SANDBOX_PORT")]
    pub sandbox_port: Option<u16>,
    /// Second instance listener, where `migrate` moves an org. Default: port + 2.
    #[arg(long, env = "FERRY_EMULATOR_INSTANCE2_PORT")]
    pub instance2_port: Option<u16>,
    /// Callback URL(s) of the demo connected app (repeat the flag for several).
    #[arg(
        long = "callback-url",
        env = "FERRY_EMULATOR_CALLBACK_URL",
        default_value = "http://localhost:3003/oauth/callback"
    )]
    pub callback_urls: Vec<String>,
    /// Start without the demo data set (apps, orgs and users are still created).
    #[arg(long)]
    pub no_seed: bool,
}

impl EmulatorArgs {
    /// The emulator configuration these flags describe.
    pub fn config(&self) -> ferry_emulator::EmulatorConfig {
        ferry_emulator::EmulatorConfig {
            host: self.host,
            production_port: self.port,
            sandbox_port: self.sandbox_port.unwrap_or(self.port.saturating_add(1)),
            instance2_port: self.instance2_port.unwrap_or(self.port.saturating_add(2)),
            demo: true,
            seed_demo_data: !self.no_seed,
            demo_callback_urls: self.callback_urls.clone(),
        }
    }
}

/// `ferry bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Seeding speed, memory and REST query pagination throughput of the emulator.
    Emulator(crate::bench::EmulatorBenchArgs),
    /// Initial and incremental sync speed against a bare client, and Ferry's peak memory.
    Sync(crate::sync::bench::SyncBenchArgs),
    /// The proxy against the emulator directly and through Ferry, at several concurrency levels.
    Proxy(crate::bench_proxy::ProxyBenchArgs),
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Emulator(args) => runtime.block_on(run_emulator(args)),
        Command::Bench(BenchCommand::Proxy(args)) => {
            runtime.block_on(crate::bench_proxy::proxy(args))
        }
        Command::Bench(BenchCommand::Emulator(args)) => {
            runtime.block_on(crate::bench::emulator(args))
        }
        Command::Bench(BenchCommand::Sync(args)) => runtime.block_on(crate::sync::bench::run(args)),
        Command::Sync(SyncCommand::Run(args)) => runtime.block_on(crate::sync::cli::run(args)),
        Command::Dev(args) => runtime.block_on(crate::dev::run(args)),
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Migrate(args) => runtime.block_on(async move {
            crate::app::open_store(&args.config()?).await?;
            println!("migrations applied");
            Ok(())
        }),
        Command::Keys(KeysCommand::Generate) => {
            let key = ferry_core::vault::EncryptionKey::generate()?;
            println!("{}", key.to_base64().expose_secret());
            Ok(())
        }
        Command::Keys(KeysCommand::Show(args)) => runtime.block_on(keys_show(args)),
        Command::Keys(KeysCommand::Rotate(args)) => runtime.block_on(crate::keys::run_cli(args)),
    }
}

async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    let running = ferry_emulator::start(args.config()).await?;
    println!("Salesforce emulator running");
    println!(
        "  production (login.salesforce.com, admin API): {}",
        running.production_url
    );
    println!(
        "  sandbox    (test.salesforce.com):             {}",
        running.sandbox_url
    );
    println!(
        "  second instance (after /migrate):             {}",
        running.instance2_url
    );
    println!("  connected app: client id ferry-demo-client, secret ferry-demo-secret");
    println!("  callback URLs: {}", args.callback_urls.join(", "));
    println!(
        "  users: {} and {} (password {})",
        ferry_emulator::DEMO_USERNAME,
        ferry_emulator::DEMO_SANDBOX_USERNAME,
        ferry_emulator::DEMO_PASSWORD
    );
    println!("  state: curl {}/__emulator/state", running.production_url);
    tokio::signal::ctrl_c().await?;
    running.shutdown();
    Ok(())
}

async fn serve(args: crate::config::ServerArgs) -> anyhow::Result<()> {
    let app = crate::app::Application::build(args.config()?).await?;
    let token = app.shutdown_token();
    tracing::info!(addr = %app.local_addr()?, public_url = %app.state().public_url, "ferry serving");
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    app.run().await
}

async fn keys_show(args: crate::config::ServerArgs) -> anyhow::Result<()> {
    let (store, vault) = crate::app::open_store(&args.config()?).await?;
    for env in store.list_environments().await? {
        // The key is stored sealed: showing it takes the encryption key, not just the database.
        match crate::sealing::open_secret_key(&vault, &env) {
            Some(key) => println!("{:<6} secret key {}", env.name, key.expose_secret()),
            None => println!(
                "{:<6} secret key (not yet sealed; start `ferry serve` once)",
                env.name
            ),
        }
    }
    Ok(())
}
