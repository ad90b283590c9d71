//! Where webhooks may go: loopback, private, link-local, CGNAT, multicast and unspecified addresses (and their IPv4-mapped forms) are refused unless allow-listed, checked on literal-IP URLs before sending and on every resolved address at connect time, so a DNS answer that changes after the URL was accepted cannot aim Ferry at the inside of its network.

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Which webhook targets are delivered to despite resolving to a non-public address: the
/// `FERRY_WEBHOOK_ALLOWED_HOSTS` list. Empty (the default) allows public addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookTargetPolicy {
    /// Host names (lowercase) delivered to whatever they resolve to; `*.example.internal` entries
    /// are kept as `.example.internal` and match any subdomain.
    hosts: Vec<String>,
    /// Address ranges delivered to even when non-public.
    nets: Vec<IpNet>,
}

/// An allow-list entry that is neither an address, a CIDR range nor a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address, a CIDR range (10.0.0.0/8) or a host name (hooks.internal, *.internal)")]
pub struct InvalidAllowEntry(pub String);

/// A webhook target Ferry refuses to send to, and why (the message is safe to show and store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedTarget {
    /// The URL is not an absolute `http(s)` URL with a host.
    #[error("the webhook URL must be an absolute http(s) URL")]
    NotHttp,
    /// The URL's host is a non-public address literal.
    #[error("the webhook URL's address {0} is not public (loopback, private, link-local, CGNAT, multicast or unspecified); allow it with FERRY_WEBHOOK_ALLOWED_HOSTS")]
    Address(IpAddr),
    /// Every address the host resolved to is non-public.
    #[error("the webhook host {host} resolves only to non-public addresses ({first}); allow it with FERRY_WEBHOOK_ALLOWED_HOSTS")]
    Resolved {
        /// The host name.
        host: String,
        /// The first refused address.
        first: IpAddr,
    },
}

impl WebhookTargetPolicy {
    /// Parses allow-list entries: IP addresses, CIDR ranges, host names, `*.suffix` wildcards.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, InvalidAllowEntry> {
        let mut policy = WebhookTargetPolicy::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.nets.push(net);
            } else if let Ok(ip) = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                policy.nets.push(IpNet::from(ip));
            } else {
                let name = entry.strip_prefix('*').unwrap_or(entry);
                let labels = name.strip_prefix('.').unwrap_or(name);
                let valid = !labels.is_empty()
                    && labels.split('.').all(|l| {
                        !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if !valid || (entry.starts_with('*') && !name.starts_with('.')) {
                    return Err(InvalidAllowEntry(entry.to_string()));
                }
                policy.hosts.push(name.to_ascii_lowercase());
            }
        }
        Ok(policy)
    }

    /// Loopback only (`127.0.0.0/8`, `::1`): what tests and `ferry dev` deliver to.
    pub fn loopback() -> Self {
        WebhookTargetPolicy {
            hosts: Vec::new(),
            nets: vec![
                IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
                IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
        }
    }

    /// This policy plus everything `other` allows.
    pub fn with(mut self, other: WebhookTargetPolicy) -> Self {
        self.hosts.extend(other.hosts);
        self.nets.extend(other.nets);
        self
    }

    /// The entries of `FERRY_WEBHOOK_ALLOWED_HOSTS` (comma-separated), for callers that do not
    /// go through the CLI's flags (`ferry dev`).
    pub fn from_env() -> Result<Self, InvalidAllowEntry> {
        let list = std::env::var("FERRY_WEBHOOK_ALLOWED_HOSTS").unwrap_or_default();
        Self::parse(&list.split(',').collect::<Vec<_>>())
    }

    /// Whether `ip` may be delivered to: public, or inside an allowed range.
    pub fn allows_address(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !is_non_public(ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether a host name is allow-listed (delivered to whatever it resolves to).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        self.hosts.iter().any(|h| match h.strip_prefix('.') {
            Some(suffix) => {
                let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
                host.len() > suffix.len() + 1
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && host[host.len() - suffix.len() - 1] == b'.'
            }
            None => h.eq_ignore_ascii_case(host),
        })
    }

    /// Checks a URL before it is stored or sent: `http(s)`, a host, and, when the host is an
    /// address literal (which no resolver sees), an allowed address. Host names are checked
    /// when they are resolved, at connect time.
    pub fn check_url(&self, url: &url::Url) -> Result<(), RefusedTarget> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RefusedTarget::NotHttp);
        }
        let ip = match url.host() {
            None => return Err(RefusedTarget::NotHttp),
            Some(url::Host::Domain(_)) => return Ok(()),
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        };
        if self.allows_address(ip) {
            Ok(())
        } else {
            Err(RefusedTarget::Address(ip))
        }
    }

    /// [`check_url`](Self::check_url) on a URL's text.
    pub fn check_url_text(&self, url: &str) -> Result<url::Url, RefusedTarget> {
        let parsed = url::Url::parse(url).map_err(|_| RefusedTarget::NotHttp)?;
        self.check_url(&parsed)?;
        Ok(parsed)
    }

    /// The resolved addresses of `host` Ferry may connect to; an error when none is left.
    pub fn filter_resolved(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, RefusedTarget> {
        let trusted = self.allows_host(host);
        let mut first_refused = None;
        let allowed: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|a| {
                let ok = trusted || self.allows_address(a.ip());
                if !ok && first_refused.is_none() {
                    first_refused = Some(a.ip());
                }
                ok
            })
            .collect();
        match (allowed.is_empty(), first_refused) {
            (true, Some(first)) => Err(RefusedTarget::Resolved {
                host: host.to_string(),
                first,
            }),
            _ => Ok(allowed),
        }
    }
}

/// An IPv4-mapped or IPv4-compatible IPv6 address as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Whether an address is not on the public internet: loopback, private (RFC 1918, ULA),
/// link-local, CGNAT `100.64.0.0/10`, unspecified, multicast, broadcast and reserved; IPv6 forms
/// embedding an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                || a >= 240
                || (a == 100 && (b & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: usize| {
                let o = v6.octets();
                Ipv4Addr::new(o[hi], o[hi + 1], o[hi + 2], o[hi + 3])
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public(IpAddr::V4(v4));
            }
            // IPv4-compatible (`::a.b.c.d`, deprecated) and NAT64 (`64:ff9b::/96`).
            if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return v6.is_loopback()
                    || v6.is_unspecified()
                    || is_non_public(IpAddr::V4(embedded(12)));
            }
            // 6to4 (`2002::/16`) carries the IPv4 address in the next 32 bits.
            if s[0] == 0x2002 {
                return is_non_public(IpAddr::V4(embedded(2)));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        }
    }
}

/// The webhook client's DNS resolver: the system resolver, then the policy applied to every
/// answer, so the addresses checked are the addresses connected to.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<WebhookTargetPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = policy.filter_resolved(&host, resolved)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Checks a webhook URL a caller sets (the environment's URL, a connection's or a connect
/// session's override): a clear 400 naming `field` for a URL that is not http(s) or whose host
/// is a refused address literal. Host names are checked again at every delivery, on the
/// addresses they then resolve to.
pub fn validate_webhook_url(
    policy: &WebhookTargetPolicy,
    field: &str,
    url: &str,
) -> Result<(), crate::error::ApiError> {
    policy
        .check_url_text(url)
        .map(|_| ())
        .map_err(|refused| crate::error::ApiError::invalid_body(field, refused.to_string()))
}

/// Whether a request error came from the policy (a refusal, final) rather than the network.
pub fn refusal(error: &reqwest::Error) -> Option<&RefusedTarget> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<RefusedTarget>() {
            return Some(refused);
        }
        source = e.source();
    }
    None
}

/// The webhook HTTP client: the guarded resolver, no redirects (a redirect is not followed to
/// an address no one checked), no system proxy (which would resolve the name itself).
pub fn client(
    policy: Arc<WebhookTargetPolicy>,
    connect_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(connect_timeout)
        .dns_resolver(Arc::new(GuardedResolver { policy }))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn non_public_ranges_are_refused_and_public_ones_pass() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ] {
            assert!(is_non_public(ip(refused)), "{refused} must be refused");
        }
        for public in [
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_non_public(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn the_allow_list_takes_ranges_addresses_and_host_names() {
        let policy = WebhookTargetPolicy::parse(&[
            "10.0.0.0/8",
            "192.168.1.7",
            "[fd00::1]",
            "hooks.internal",
            "*.corp.example",
        ])
        .expect("valid");
        assert!(policy.allows_address(ip("10.9.9.9")));
        assert!(policy.allows_address(ip("::ffff:10.9.9.9")), "mapped form");
        assert!(policy.allows_address(ip("192.168.1.7")));
        assert!(!policy.allows_address(ip("192.168.1.8")));
        assert!(policy.allows_address(ip("fd00::1")));
        assert!(!policy.allows_address(ip("127.0.0.1")));
        assert!(policy.allows_host("hooks.internal"));
        assert!(policy.allows_host("HOOKS.internal."));
        assert!(policy.allows_host("a.corp.example"));
        assert!(!policy.allows_host("corp.example"));
        assert!(!policy.allows_host("evilcorp.example"));
        assert!(WebhookTargetPolicy::parse(&["http://x"]).is_err());
        assert!(WebhookTargetPolicy::parse(&["*foo"]).is_err());
        assert!(WebhookTargetPolicy::loopback().allows_address(ip("127.0.0.2")));
        assert!(WebhookTargetPolicy::loopback().allows_address(ip("::1")));
        assert!(!WebhookTargetPolicy::loopback().allows_address(ip("10.0.0.1")));
    }

    #[test]
    fn resolved_addresses_are_filtered_and_all_refused_is_an_error() {
        let policy = WebhookTargetPolicy::default();
        let mixed = [
            SocketAddr::new(ip("127.0.0.1"), 0),
            SocketAddr::new(ip("93.184.216.34"), 0),
        ];
        assert_eq!(
            policy
                .filter_resolved("example.com", mixed)
                .expect("one left"),
            vec![SocketAddr::new(ip("93.184.216.34"), 0)]
        );
        let refused = policy
            .filter_resolved(
                "rebound.example",
                [SocketAddr::new(ip("169.254.169.254"), 0)],
            )
            .expect_err("refused");
        assert!(refused.to_string().contains("169.254.169.254"), "{refused}");
        let trusted = WebhookTargetPolicy::parse(&["rebound.example"]).expect("valid");
        assert_eq!(
            trusted
                .filter_resolved("rebound.example", [SocketAddr::new(ip("10.0.0.1"), 0)])
                .expect("allow-listed")
                .len(),
            1
        );
    }

    #[test]
    fn literal_urls_are_checked_before_sending() {
        let policy = WebhookTargetPolicy::default();
        for refused in [
            "http://127.0.0.1:8080/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://0x7f000001/hook",
            "http://2130706433/hook",
            "ftp://example.com/hook",
        ] {
            assert!(policy.check_url_text(refused).is_err(), "{refused}");
        }
        assert!(policy.check_url_text("https://hooks.example.com/x").is_ok());
    }
}
