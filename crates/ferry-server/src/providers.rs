//! Built-in provider definitions (`salesforce`, `salesforce-sandbox`) with Nango's catalogue field names, login-host resolution through the configured host map, and the upstream host allowlist.

use ferry_core::ids::SalesforceHostname;
use serde_json::{json, Value};

/// Which Salesforce login family a provider uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    /// `login.salesforce.com`.
    Production,
    /// `test.salesforce.com`.
    Sandbox,
}

/// A built-in provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Catalogue name (`salesforce`).
    pub name: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// Login family.
    pub login: LoginKind,
    /// Scopes requested when the integration names none.
    pub default_scopes: &'static [&'static str],
    /// Extra authorize parameters.
    pub authorization_params: &'static [(&'static str, &'static str)],
}

/// The providers Ferry ships.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "salesforce",
        display_name: "Salesforce",
        login: LoginKind::Production,
        default_scopes: &["api", "refresh_token"],
        authorization_params: &[("prompt", "consent")],
    },
    Provider {
        name: "salesforce-sandbox",
        display_name: "Salesforce (Sandbox)",
        login: LoginKind::Sandbox,
        default_scopes: &["api", "refresh_token"],
        authorization_params: &[],
    },
];

/// A provider by name.
pub fn provider(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name == name)
}

impl Provider {
    /// The catalogue entry as `GET /providers` returns it (Nango's field names).
    pub fn to_json(&self, public_url: &str) -> Value {
        let fallback = match self.login {
            LoginKind::Production => "login.salesforce.com",
            LoginKind::Sandbox => "test.salesforce.com",
        };
        let example = match self.login {
            LoginKind::Production => "acme.my.salesforce.com",
            LoginKind::Sandbox => "acme--sandboxname.sandbox.my.salesforce.com",
        };
        let params: serde_json::Map<String, Value> = self
            .authorization_params
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
            .collect();
        json!({
            "name": self.name,
            "display_name": self.display_name,
            "logo_url": format!("{public_url}/images/template-logos/{}.svg", self.name),
            "auth_mode": "OAUTH2",
            "categories": ["crm"],
            "authorization_url": format!("https://${{connectionConfig.hostname}}/services/oauth2/authorize || https://{fallback}/services/oauth2/authorize"),
            "token_url": format!("https://${{connectionConfig.hostname}}/services/oauth2/token || https://{fallback}/services/oauth2/token"),
            "authorization_params": params,
            "default_scopes": self.default_scopes,
            "scope_separator": " ",
            "token_response_metadata": ["instance_url"],
            "proxy": {"base_url": "${connectionConfig.instance_url}"},
            "connection_config": {
                "instance_url": {"type": "string", "title": "Instance URL", "format": "uri", "pattern": "^https?://.*$", "automated": true},
                "hostname": {
                    "type": "string",
                    "title": "My Domain",
                    "description": "Your org's My Domain login host (not the Lightning UI host)",
                    "example": example,
                    "prefix": "https://",
                    "optional": true,
                },
            },
            "docs": format!("{public_url}/docs/providers/{}", self.name),
        })
    }
}

/// Where Ferry finds Salesforce: the real hosts by default, or a host map (the emulator).
#[derive(Debug, Clone)]
pub struct HostMap {
    /// Base URL standing in for `https://login.salesforce.com`.
    pub login: String,
    /// Base URL standing in for `https://test.salesforce.com`.
    pub sandbox_login: String,
    /// Extra instance hosts (`host:port`) allowed besides Salesforce's own domains.
    pub allowed_upstream_hosts: Vec<String>,
}

impl Default for HostMap {
    fn default() -> Self {
        HostMap {
            login: "https://login.salesforce.com".into(),
            sandbox_login: "https://test.salesforce.com".into(),
            allowed_upstream_hosts: Vec::new(),
        }
    }
}

/// Whether `host` is an instance host of an org of the `login` family: a My Domain
/// (`acme.my.salesforce.com`; sandboxes and scratch orgs under `.sandbox.` / `.scratch.`) or a
/// classic instance (`na123.salesforce.com`, sandboxes on `cs…`). Lightning, Visualforce and
/// Experience Cloud site domains (`force.com`, `my.site.com`, …) are not API instances of
/// these providers, so a token answer naming one is refused.
fn is_instance_host(login: LoginKind, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if let Some(name) = host.strip_suffix(".my.salesforce.com") {
        let (org, sandboxed) = match name
            .strip_suffix(".sandbox")
            .or_else(|| name.strip_suffix(".scratch"))
        {
            Some(org) => (org, true),
            None => (name, false),
        };
        let org_ok = org.split('.').all(label_ok) && !org.is_empty();
        return org_ok && sandboxed == (login == LoginKind::Sandbox);
    }
    let Some(pod) = host.strip_suffix(".salesforce.com") else {
        return false;
    };
    let letters = pod.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = &pod[letters..];
    let is_pod = (2..=3).contains(&letters)
        && (1..=4).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit());
    is_pod && pod.starts_with("cs") == (login == LoginKind::Sandbox)
}

impl HostMap {
    /// The login base for a provider and an optional My Domain hostname.
    ///
    /// With a host map pointing at the emulator, every hostname resolves to the mapped login
    /// base (the emulator plays every My Domain on its production listener).
    pub fn login_base(&self, provider: &Provider, hostname: Option<&SalesforceHostname>) -> String {
        let mapped = match provider.login {
            LoginKind::Production => &self.login,
            LoginKind::Sandbox => &self.sandbox_login,
        };
        match hostname {
            Some(h)
                if mapped.starts_with("https://login.salesforce.com")
                    || mapped.starts_with("https://test.salesforce.com") =>
            {
                format!("https://{}", h.as_str())
            }
            _ => mapped.trim_end_matches('/').to_string(),
        }
    }

    /// Whether an upstream URL (an `instance_url`) is one Ferry may send the credentials of a
    /// `provider` connection to: `https` on an instance host of that provider's orgs, or a
    /// host the operator allowed explicitly. An unknown provider has no instance hosts.
    pub fn upstream_allowed(&self, provider_name: &str, url: &str) -> bool {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        let Some(host) = parsed.host_str() else {
            return false;
        };
        let host_port = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        if self
            .allowed_upstream_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host_port))
        {
            return matches!(parsed.scheme(), "http" | "https");
        }
        let Some(p) = provider(provider_name) else {
            return false;
        };
        parsed.scheme() == "https" && parsed.port().is_none() && is_instance_host(p.login, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_instance_hosts_of_the_provider_or_configured_hosts_are_upstreams() {
        let map = HostMap {
            allowed_upstream_hosts: vec!["127.0.0.1:3004".into()],
            ..HostMap::default()
        };
        let prod = |u: &str| map.upstream_allowed("salesforce", u);
        let sandbox = |u: &str| map.upstream_allowed("salesforce-sandbox", u);
        assert!(prod("https://acme.my.salesforce.com"));
        assert!(prod("https://acme-dev-ed.develop.my.salesforce.com"));
        assert!(prod("https://na123.salesforce.com"));
        assert!(sandbox("https://acme--uat.sandbox.my.salesforce.com"));
        assert!(sandbox("https://cs42.salesforce.com"));
        assert!(prod("http://127.0.0.1:3004"));
        // A sandbox host is not a production instance, nor the other way round.
        assert!(!prod("https://acme--uat.sandbox.my.salesforce.com"));
        assert!(!sandbox("https://acme.my.salesforce.com"));
        assert!(!prod("https://cs42.salesforce.com"));
        // Site, Lightning and other Salesforce-owned domains are not API instances.
        for url in [
            "https://acme.my.site.com",
            "https://acme.lightning.force.com",
            "https://acme.force.com",
            "https://evil.salesforce-sites.com",
            "https://login.salesforce.com",
            "https://trust.salesforce.com",
            "https://x.cloudforce.com",
            "https://salesforce.com.evil.example",
            "https://evil.example.com",
            "http://acme.my.salesforce.com",
            "https://acme.my.salesforce.com:8443",
            "http://127.0.0.1:3005",
        ] {
            assert!(!prod(url), "{url}");
        }
        assert!(!map.upstream_allowed("unknown-provider", "https://acme.my.salesforce.com"));
        assert!(!HostMap::default().upstream_allowed("salesforce", "http://127.0.0.1:3004"));
    }
}
