//! The application: storage, vault and environments brought up in order, the router built once, bound to a port; the same `Application::build` serves the CLI and the tests.
//!
//! The shared state lives in [`crate::state`], which imports no module of its own: handlers and
//! workers depend on it, and this file on them, without a cycle.

use crate::config::Config;
use anyhow::Context;
use ferry_core::vault::{EncryptionKey, Vault};
use ferry_store::Store;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The meta key holding the encryption key's fingerprint.
pub const KEY_FINGERPRINT: &str = "encryption_key_fingerprint";

pub use crate::state::{random_hex, AppState, Clock};

/// Environment names created on first start.
pub const ENVIRONMENTS: &[&str] = &["dev", "prod"];

/// Opens the store, runs migrations and checks the encryption key against the stored fingerprint.
pub async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Vault)> {
    let store = ferry_store::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&config.database_url)
            )
        })?;
    store
        .migrate()
        .await
        .context("database migrations failed")?;
    let key = EncryptionKey::parse(config.encryption_key.expose_secret())
        .context("FERRY_ENCRYPTION_KEY is not a valid key")?;
    let previous = config
        .previous_keys
        .iter()
        .map(|k| EncryptionKey::parse(k.expose_secret()))
        .collect::<Result<Vec<_>, _>>()
        .context("a previous encryption key is not valid")?;
    let fingerprint = key.fingerprint();
    let vault = Vault::new(key, previous);
    match store.get_meta(KEY_FINGERPRINT).await? {
        // During a rotation the database may still be marked with a previous key.
        Some(stored) if !vault.knows_fingerprint(&stored) => anyhow::bail!(
            "the encryption key does not match the one this database was encrypted with; \
             start with the original FERRY_ENCRYPTION_KEY (to change keys, see `ferry keys rotate --help`)"
        ),
        Some(_) => {}
        None => store.set_meta(KEY_FINGERPRINT, &fingerprint).await?,
    }
    Ok((store, vault))
}

/// Hides a password in a database URL for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A built application, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
}

impl Application {
    /// Opens storage, creates the environments, binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let (store, vault) = open_store(&config).await?;
        let syncs = Arc::new(crate::sync::SyncCatalog::load(
            config.syncs_file.as_deref(),
        )?);
        let mut environments = HashMap::new();
        for name in ENVIRONMENTS {
            let env =
                crate::sealing::ensure_environment(&*store, &vault, name, crate::api::now_ms())
                    .await?;
            environments.insert(env.secret_key_hash.clone(), env);
        }
        crate::sealing::bind_all(&*store, &vault)
            .await
            .context("binding sealed values to their rows")?;
        let listener = TcpListener::bind(SocketAddr::new(config.host, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let upstream = config.upstream;
        let client = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_millis(
                    upstream.connect_timeout_ms,
                ))
                .read_timeout(std::time::Duration::from_millis(upstream.timeout_ms))
                .pool_max_idle_per_host(256)
        };
        // Bodies pass through as Salesforce sent them unless a caller asks for `Decompress`.
        let http = client().no_gzip().build()?;
        let http_decompress = client().gzip(true).build()?;
        let webhook_http = crate::webhook_targets::client(
            Arc::new(config.webhook_targets.clone()),
            std::time::Duration::from_millis(upstream.connect_timeout_ms),
        )?;
        let org_limits = crate::usage::OrgLimits::default();
        org_limits.set_max_concurrent(upstream.max_concurrent_per_org);
        let state = Arc::new(AppState {
            store,
            vault,
            config,
            public_url,
            http,
            environments: RwLock::new(environments),
            ws: crate::ws::WsHub::default(),
            webhook_wakeup: tokio::sync::Notify::new(),
            credentials: crate::credentials::CredentialService::default(),
            clock: Clock::default(),
            actions: crate::actions::ActionService::default(),
            syncs,
            sync_wakeup: tokio::sync::Notify::default(),
            org_limits,
            http_decompress,
            webhook_http,
            oplog: crate::oplog::OperationLog::with_capacity(upstream.operation_log_buffer),
            targets: crate::upstream::TargetCache::default(),
        });
        Ok(Application {
            listener,
            state,
            shutdown: CancellationToken::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Shared state (for tests and the CLI).
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled; the webhook worker runs beside the API.
    pub async fn run(self) -> anyhow::Result<()> {
        // The operation log is written in the background even when other workers are off
        // (tests flush it themselves with `run_one`; an extra flush is harmless).
        let oplog_writer = tokio::spawn(crate::oplog::worker(
            self.state.clone(),
            self.shutdown.clone(),
        ));
        if self.state.config.run_workers {
            tokio::spawn(crate::webhooks::worker(
                self.state.clone(),
                self.shutdown.clone(),
            ));
            tokio::spawn(crate::refresher::worker(
                self.state.clone(),
                self.shutdown.clone(),
            ));
            tokio::spawn(crate::purge::worker(
                self.state.clone(),
                self.shutdown.clone(),
            ));
            for _ in 0..crate::actions::worker::WORKERS {
                tokio::spawn(crate::actions::worker::worker(
                    self.state.clone(),
                    self.shutdown.clone(),
                ));
            }
            for _ in 0..crate::sync::scheduler::WORKERS {
                tokio::spawn(crate::sync::scheduler::worker(
                    self.state.clone(),
                    self.shutdown.clone(),
                ));
            }
        }
        let router = crate::api::router(self.state.clone());
        let limits = self.state.config.limits;
        crate::serve::serve(self.listener, router, limits, self.shutdown.clone()).await?;
        let _ = oplog_writer.await;
        Ok(())
    }
}
