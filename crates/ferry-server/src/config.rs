//! Server configuration from flags and environment variables with stable names (`FERRY_PORT`, `FERRY_DATABASE_URL`, `FERRY_ENCRYPTION_KEY[_FILE]`, `FERRY_PUBLIC_URL`, the Salesforce host map, upstream timeouts, the per-org cap and the webhook allow-list `FERRY_WEBHOOK_ALLOWED_HOSTS`).

use crate::providers::HostMap;
use crate::webhook_targets::WebhookTargetPolicy;
use clap::Args;
use ferry_core::secret::SecretString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// Flags shared by `ferry serve`, `ferry migrate` and `ferry keys`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// HTTP port.
    #[arg(long, env = "FERRY_PORT", default_value_t = 3003)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "FERRY_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// `postgres://…` or a SQLite file path (default `./.ferry/ferry.db`).
    #[arg(long, env = "FERRY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The URL end users and the app reach Ferry at; callback and Connect UI links are built on it.
    #[arg(long, env = "FERRY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Stand-in for `https://login.salesforce.com` (e.g. the emulator).
    #[arg(long, env = "FERRY_SALESFORCE_LOGIN_URL")]
    pub salesforce_login_url: Option<String>,
    /// Stand-in for `https://test.salesforce.com`.
    #[arg(long, env = "FERRY_SALESFORCE_SANDBOX_LOGIN_URL")]
    pub salesforce_sandbox_login_url: Option<String>,
    /// Extra instance hosts (`host:port`, comma-separated) allowed as upstreams.
    #[arg(long, env = "FERRY_ALLOWED_UPSTREAM_HOSTS", value_delimiter = ',')]
    pub allowed_upstream_hosts: Vec<String>,
    /// A YAML file declaring syncs beside the pre-built ones (format in the README).
    #[arg(long, env = "FERRY_SYNCS_FILE")]
    pub syncs_file: Option<PathBuf>,
    /// Milliseconds to establish a connection to Salesforce before answering 504 `upstream_timeout`.
    #[arg(long, env = "FERRY_UPSTREAM_CONNECT_TIMEOUT_MS", default_value_t = UpstreamConfig::default().connect_timeout_ms)]
    pub upstream_connect_timeout_ms: u64,
    /// Milliseconds Salesforce may take to start answering (and the longest pause inside a body)
    /// before Ferry answers 504 `upstream_timeout`.
    #[arg(long, env = "FERRY_UPSTREAM_TIMEOUT_MS", default_value_t = UpstreamConfig::default().timeout_ms)]
    pub upstream_timeout_ms: u64,
    /// Concurrent upstream calls per Salesforce org (Salesforce refuses long ones past 25).
    #[arg(long, env = "FERRY_MAX_CONCURRENT_PER_ORG", default_value_t = UpstreamConfig::default().max_concurrent_per_org)]
    pub max_concurrent_per_org: usize,
    /// Operation-log entries buffered in memory before new ones are dropped (and counted).
    #[arg(long, env = "FERRY_OPERATION_LOG_BUFFER", default_value_t = UpstreamConfig::default().operation_log_buffer)]
    pub operation_log_buffer: usize,
    /// Webhook targets delivered to although they are not public addresses (comma-separated IP
    /// addresses, CIDR ranges, host names or `*.suffix`); by default loopback, private,
    /// link-local, CGNAT, multicast and unspecified addresses are refused.
    #[arg(long, env = "FERRY_WEBHOOK_ALLOWED_HOSTS", value_delimiter = ',')]
    pub webhook_allowed_hosts: Vec<String>,
    /// Timeouts, caps and body limits of Ferry's own HTTP server.
    #[command(flatten)]
    pub limits: ServerLimits,
}

/// What one client can hold of Ferry's HTTP server: how long it may take to send headers, how
/// long a request may run, how many connections and WebSockets there are at most, how large a
/// body may be. Defaults suit a public deployment; every value has a flag and a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct ServerLimits {
    /// Milliseconds a connection has to send a request's headers; an idle keep-alive connection
    /// is closed after the same time.
    #[arg(long, env = "FERRY_HEADER_TIMEOUT_MS", default_value_t = LIMITS.header_timeout_ms)]
    pub header_timeout_ms: u64,
    /// Milliseconds an API request may take (the proxy keeps its upstream timeouts instead).
    #[arg(long, env = "FERRY_REQUEST_TIMEOUT_MS", default_value_t = LIMITS.request_timeout_ms)]
    pub request_timeout_ms: u64,
    /// Connections served at once; more are closed as they arrive.
    #[arg(long, env = "FERRY_MAX_CONNECTIONS", default_value_t = LIMITS.max_connections)]
    pub max_connections: usize,
    /// Largest request body of the API routes, in bytes.
    #[arg(long, env = "FERRY_MAX_BODY_BYTES", default_value_t = LIMITS.api_body_bytes)]
    pub api_body_bytes: usize,
    /// Largest request body the proxy forwards, in bytes.
    #[arg(long, env = "FERRY_PROXY_MAX_BODY_BYTES", default_value_t = LIMITS.proxy_body_bytes)]
    pub proxy_body_bytes: usize,
    /// Open WebSockets (the `@nangohq/frontend` channel) at most.
    #[arg(long, env = "FERRY_WS_MAX", default_value_t = LIMITS.ws_max)]
    pub ws_max: usize,
    /// Milliseconds a WebSocket may stay open before a connect flow claims it.
    #[arg(long, env = "FERRY_WS_UNCLAIMED_MS", default_value_t = LIMITS.ws_unclaimed_ms)]
    pub ws_unclaimed_ms: u64,
    /// Milliseconds a claimed WebSocket stays open waiting for its flow's outcome.
    #[arg(long, env = "FERRY_WS_IDLE_MS", default_value_t = LIMITS.ws_idle_ms)]
    pub ws_idle_ms: u64,
}

/// The default [`ServerLimits`].
pub const LIMITS: ServerLimits = ServerLimits {
    header_timeout_ms: 10_000,
    request_timeout_ms: 60_000,
    max_connections: 4_096,
    api_body_bytes: 10 * 1024 * 1024,
    proxy_body_bytes: 256 * 1024 * 1024,
    ws_max: 1_000,
    ws_unclaimed_ms: 30_000,
    ws_idle_ms: 15 * 60 * 1000,
};

impl Default for ServerLimits {
    fn default() -> Self {
        LIMITS
    }
}

/// How Ferry calls Salesforce: timeouts, per-org cap, operation-log buffer, target cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Connect timeout (ms).
    pub connect_timeout_ms: u64,
    /// Time to the response headers, and the longest pause between body chunks (ms).
    pub timeout_ms: u64,
    /// Concurrent upstream calls per org.
    pub max_concurrent_per_org: usize,
    /// Operation-log entries held in memory at most.
    pub operation_log_buffer: usize,
    /// How long a connection's decrypted credentials and `instance_url` are reused without
    /// reading the store (ms); changes by other processes are seen after at most this.
    pub target_cache_ttl_ms: i64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout_ms: 10_000,
            timeout_ms: 120_000,
            max_concurrent_per_org: crate::usage::DEFAULT_MAX_CONCURRENT,
            operation_log_buffer: crate::oplog::DEFAULT_BUFFER,
            target_cache_ttl_ms: 2_000,
        }
    }
}

/// Everything the application needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bind address.
    pub host: IpAddr,
    /// Port (0 = any, for tests).
    pub port: u16,
    /// Database URL.
    pub database_url: String,
    /// Public base URL, without a trailing slash; `None` = derived from the bound address.
    pub public_url: Option<String>,
    /// Salesforce hosts.
    pub hosts: HostMap,
    /// The vault key (base64 or hex), and keys it replaced (for reading old ciphertexts).
    pub encryption_key: SecretString,
    /// Previous keys still accepted for decryption (during a rotation).
    pub previous_keys: Vec<SecretString>,
    /// Run the background workers (webhook delivery) in this process; tests drive `run_one` instead.
    pub run_workers: bool,
    /// Token lifecycle timings.
    pub token_policy: crate::credentials::TokenPolicy,
    /// The user's syncs file, if any.
    pub syncs_file: Option<PathBuf>,
    /// Sync engine tunables.
    pub sync: crate::sync::SyncSettings,
    /// Upstream timeouts, per-org cap, operation-log buffer.
    pub upstream: UpstreamConfig,
    /// Timeouts, caps and body limits of Ferry's own HTTP server.
    pub limits: ServerLimits,
    /// Non-public webhook targets that are delivered to anyway (`FERRY_WEBHOOK_ALLOWED_HOSTS`).
    pub webhook_targets: WebhookTargetPolicy,
}

impl Config {
    /// A configuration for tests: port 0, loopback, webhooks to loopback receivers allowed.
    pub fn for_tests(database_url: &str, encryption_key: SecretString, hosts: HostMap) -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            database_url: database_url.to_string(),
            public_url: None,
            hosts,
            encryption_key,
            previous_keys: Vec::new(),
            run_workers: false,
            token_policy: Default::default(),
            syncs_file: None,
            sync: Default::default(),
            upstream: UpstreamConfig::default(),
            limits: ServerLimits::default(),
            webhook_targets: WebhookTargetPolicy::loopback(),
        }
    }
}

/// The default SQLite location.
pub fn default_database_url() -> String {
    "./.ferry/ferry.db".to_string()
}

/// Reads the encryption key from `FERRY_ENCRYPTION_KEY` or the file named by
/// `FERRY_ENCRYPTION_KEY_FILE`; an error says how to provide one.
pub fn encryption_key_from_env() -> anyhow::Result<SecretString> {
    if let Ok(key) = std::env::var("FERRY_ENCRYPTION_KEY") {
        if !key.trim().is_empty() {
            return Ok(SecretString::from(key.trim().to_string()));
        }
    }
    if let Ok(path) = std::env::var("FERRY_ENCRYPTION_KEY_FILE") {
        let text = std::fs::read_to_string(PathBuf::from(&path))
            .map_err(|e| anyhow::anyhow!("cannot read FERRY_ENCRYPTION_KEY_FILE {path}: {e}"))?;
        return Ok(SecretString::from(text.trim().to_string()));
    }
    anyhow::bail!(
        "no encryption key: set FERRY_ENCRYPTION_KEY (32 bytes, base64) or FERRY_ENCRYPTION_KEY_FILE; \
         `ferry keys generate` prints a new one"
    )
}

/// Keys a rotation is moving away from: `FERRY_PREVIOUS_ENCRYPTION_KEYS` (comma-separated).
/// Servers started with the new key and these keep reading old ciphertexts during a rotation.
pub fn previous_keys_from_env() -> Vec<SecretString> {
    std::env::var("FERRY_PREVIOUS_ENCRYPTION_KEYS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| SecretString::from(k.to_string()))
        .collect()
}

impl ServerArgs {
    /// The configuration these flags and the environment describe.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut hosts = HostMap::default();
        if let Some(u) = &self.salesforce_login_url {
            hosts.login = u.trim_end_matches('/').to_string();
        }
        if let Some(u) = &self.salesforce_sandbox_login_url {
            hosts.sandbox_login = u.trim_end_matches('/').to_string();
        }
        hosts.allowed_upstream_hosts = self
            .allowed_upstream_hosts
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        Ok(Config {
            host: self.host,
            port: self.port,
            database_url: self
                .database_url
                .clone()
                .unwrap_or_else(default_database_url),
            public_url: self
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            hosts,
            encryption_key: encryption_key_from_env()?,
            previous_keys: previous_keys_from_env(),
            run_workers: true,
            token_policy: Default::default(),
            syncs_file: self.syncs_file.clone(),
            sync: crate::sync::SyncSettings::from_env()?,
            upstream: UpstreamConfig {
                connect_timeout_ms: self.upstream_connect_timeout_ms.max(1),
                timeout_ms: self.upstream_timeout_ms.max(1),
                max_concurrent_per_org: self.max_concurrent_per_org.max(1),
                operation_log_buffer: self.operation_log_buffer.max(1),
                ..UpstreamConfig::default()
            },
            limits: self.limits,
            webhook_targets: WebhookTargetPolicy::parse(&self.webhook_allowed_hosts)
                .map_err(|e| anyhow::anyhow!("FERRY_WEBHOOK_ALLOWED_HOSTS: {e}"))?,
        })
    }
}
