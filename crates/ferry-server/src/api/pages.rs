//! What Ferry's HTML pages (the Connect UI, the OAuth callback page) share: escaping, the
//! environment's allowed app origins (who may frame the pages and receive their messages), and
//! the security headers (a nonce-based CSP with `frame-ancestors`, `Referrer-Policy`).

use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use ferry_store::EnvironmentId;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Whom a page may talk to: the environment's allowed app origins, plus Ferry's own.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Ferry's own origin (its public URL's).
    pub own: String,
    /// The app origins configured for the environment; `["*"]` opts into any (Nango's way).
    pub allowed: Vec<String>,
}

impl Origins {
    /// The origins of `environment` (none when unknown).
    pub async fn of(state: &AppState, environment: Option<EnvironmentId>) -> Origins {
        let mut allowed = Vec::new();
        if let Some(id) = environment {
            match state.store.list_environments().await {
                Ok(envs) => {
                    if let Some(env) = envs.into_iter().find(|e| e.id == id) {
                        allowed = env.allowed_origins;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the allowed origins"),
            }
        }
        Origins {
            own: origin_of(&state.public_url),
            allowed,
        }
    }

    /// The origins of every environment together: for a page that does not know its
    /// environment yet (the Connect UI waiting in an iframe for its session token).
    pub async fn of_all(state: &AppState) -> Origins {
        let mut allowed: Vec<String> = match state.store.list_environments().await {
            Ok(envs) => envs.into_iter().flat_map(|e| e.allowed_origins).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading the allowed origins");
                Vec::new()
            }
        };
        allowed.sort();
        allowed.dedup();
        Origins {
            own: origin_of(&state.public_url),
            allowed,
        }
    }

    fn any(&self) -> bool {
        self.allowed.iter().any(|o| o == "*")
    }

    /// The `postMessage` targets, as a JavaScript array literal: each allowed origin and Ferry's
    /// own (a message posted to a window of another origin is dropped by the browser).
    pub fn targets_js(&self) -> String {
        let mut targets: Vec<String> = if self.any() {
            vec!["*".to_string()]
        } else {
            self.allowed.clone()
        };
        targets.push(self.own.clone());
        serde_json::Value::from(targets)
            .to_string()
            .replace('<', "\\u003c")
    }

    /// The `frame-ancestors` source list: the allowed origins, else none.
    fn frame_ancestors(&self) -> String {
        if self.any() {
            "*".to_string()
        } else if self.allowed.is_empty() {
            "'none'".to_string()
        } else {
            self.allowed.join(" ")
        }
    }
}

/// The origin (`scheme://host[:port]`) of a URL, or the text as given.
pub fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| url.to_string())
}

/// A fresh nonce for one page's inline script and style.
pub fn nonce() -> String {
    crate::state::random_hex(16)
}

/// Adds the page's security headers: only its own nonce'd script and style run, it connects only
/// back to Ferry, only the allowed origins may frame it, and no referrer (its URL holds a
/// session token or an OAuth code) leaves it.
pub fn secure(response: &mut Response, nonce: &str, origins: &Origins) {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors {}",
        origins.frame_ancestors()
    );
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
