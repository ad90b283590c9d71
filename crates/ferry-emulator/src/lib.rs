//! A faithful, in-memory Salesforce emulator: OAuth 2.0, REST, Bulk API 2.0 and an admin API, served over real HTTP.
//!
//! It depends on none of Ferry's own crates on purpose: it is a second, independent reading of
//! Salesforce's documented behaviour, so a misunderstanding in Ferry's client cannot be mirrored
//! here and pass unnoticed.

pub mod catalog;
pub mod clock;
pub mod http;
pub mod ids;
pub mod org;
pub mod schema;
pub mod seed;
pub mod soql;
pub mod state;
pub mod value;

use crate::http::{Ctx, Listener};
use crate::state::{App, State};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// Default password of the demo users.
pub const DEMO_PASSWORD: &str = "ferry-demo-password";
/// Username of the demo production org's admin.
pub const DEMO_USERNAME: &str = "admin@acme.example";
/// Username of the demo sandbox org's admin.
pub const DEMO_SANDBOX_USERNAME: &str = "admin@acme.example.sandbox";

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind.
    pub host: IpAddr,
    /// Production listener port (0 = any free port).
    pub production_port: u16,
    /// Sandbox listener port (0 = any free port).
    pub sandbox_port: u16,
    /// Second instance listener port (0 = any free port).
    pub instance2_port: u16,
    /// Create the demo app, orgs and users.
    pub demo: bool,
    /// Seed the demo production org with a small realistic data set.
    pub seed_demo_data: bool,
    /// Callback URLs of the demo app.
    pub demo_callback_urls: Vec<String>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            production_port: 3004,
            sandbox_port: 3005,
            instance2_port: 3006,
            demo: true,
            seed_demo_data: true,
            demo_callback_urls: vec!["http://localhost:3003/oauth/callback".into()],
        }
    }
}

impl EmulatorConfig {
    /// Every listener on a free port: what tests use.
    pub fn ephemeral() -> Self {
        EmulatorConfig {
            production_port: 0,
            sandbox_port: 0,
            instance2_port: 0,
            ..Self::default()
        }
    }
}

/// A running emulator. Dropping it does not stop it; call [`RunningEmulator::shutdown`].
#[derive(Debug, Clone)]
pub struct RunningEmulator {
    /// Shared state, for in-process inspection.
    pub state: Arc<State>,
    /// `http://host:port` of the production listener (login host, admin API).
    pub production_url: String,
    /// `http://host:port` of the sandbox listener.
    pub sandbox_url: String,
    /// `http://host:port` of the second instance listener.
    pub instance2_url: String,
    /// Demo production org id, when created.
    pub demo_org_id: Option<String>,
    /// Demo sandbox org id, when created.
    pub demo_sandbox_org_id: Option<String>,
    shutdown: CancellationToken,
}

impl RunningEmulator {
    /// Stops all listeners.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Resolves when the emulator has been asked to stop.
    pub async fn stopped(&self) {
        self.shutdown.cancelled().await;
    }
}

/// Binds the listeners, creates the defaults and starts serving.
pub async fn start(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let bind = |port: u16| TcpListener::bind(SocketAddr::new(config.host, port));
    let production = bind(config.production_port).await?;
    let sandbox = bind(config.sandbox_port).await?;
    let instance2 = bind(config.instance2_port).await?;
    let url = |l: &TcpListener| -> std::io::Result<String> {
        let addr = l.local_addr()?;
        Ok(format!("http://{addr}"))
    };
    let state = Arc::new(State::default());
    {
        let mut urls = state.urls.write();
        urls.production = url(&production)?;
        urls.sandbox = url(&sandbox)?;
        urls.instance2 = url(&instance2)?;
    }
    let mut demo_org_id = None;
    let mut demo_sandbox_org_id = None;
    if config.demo {
        let mut app = App::demo();
        app.callback_urls = config.demo_callback_urls.clone();
        state.data.write().apps.insert(app.client_id.clone(), app);
        let (org_id, _) = state
            .create_org("Acme", false, DEMO_USERNAME, DEMO_PASSWORD)
            .map_err(std::io::Error::other)?;
        let (sandbox_id, _) = state
            .create_org("Acme Sandbox", true, DEMO_SANDBOX_USERNAME, DEMO_PASSWORD)
            .map_err(std::io::Error::other)?;
        if config.seed_demo_data {
            let now = state.clock.now_secs();
            let mut data = state.data.write();
            if let Some(org) = data.orgs.get_mut(&org_id) {
                seed::seed(org, &seed::demo_counts(), false, now);
            }
        }
        demo_org_id = Some(org_id);
        demo_sandbox_org_id = Some(sandbox_id);
    }
    let shutdown = CancellationToken::new();
    for (listener, kind) in [
        (production, Listener::Production),
        (sandbox, Listener::Sandbox),
        (instance2, Listener::Instance2),
    ] {
        let router = http::router(Ctx {
            state: state.clone(),
            listener: kind,
        });
        let service =
            tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash().layer(router);
        let token = shutdown.clone();
        tokio::spawn(async move {
            let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(service);
            let result = axum::serve(listener, make)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "emulator listener stopped");
            }
        });
    }
    let urls = state.urls.read().clone();
    Ok(RunningEmulator {
        production_url: urls.production,
        sandbox_url: urls.sandbox,
        instance2_url: urls.instance2,
        state,
        demo_org_id,
        demo_sandbox_org_id,
        shutdown,
    })
}
