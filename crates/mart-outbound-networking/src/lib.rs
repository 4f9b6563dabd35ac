//! `allowed_outbound_hosts`, as Spin documents it.
//!
//! An entry is `scheme://host[:port]`:
//! - scheme: a name (`http`, `https`, `postgres`, …) or `*`;
//! - host: a name, `*`, `*.example.com` (any subdomain), an IP address or a
//!   CIDR block such as `10.0.0.0/8`, or `self` (this application);
//! - port: a number, a range `8000..8080` (end exclusive), or `*`; when it is
//!   left out, the scheme's well-known port (and a scheme without one must
//!   name a port).
//!
//! `*://*:*` allows everything. Entries are given here after
//! `{{ variable }}` templates were expanded (see `mart-variables`).

use std::fmt;
use std::net::IpAddr;

/// The suffix that addresses a component of this application (service chaining).
pub const SERVICE_CHAINING_DOMAIN: &str = "spin.internal";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed_outbound_hosts entry `{entry}`: {reason}")]
pub struct AllowedHostError {
    pub entry: String,
    pub reason: String,
}

/// Where an outbound connection goes: scheme, host and (resolved) port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundTarget {
    scheme: String,
    host: String,
    port: u16,
}

impl OutboundTarget {
    pub fn new(scheme: &str, host: &str, port: u16) -> Self {
        Self {
            scheme: scheme.to_ascii_lowercase(),
            host: normalise_host(host),
            port,
        }
    }

    /// Parses a URL; a missing port becomes the scheme's well-known port.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid URL `{url}`: {e}"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("URL `{url}` has no host"))?;
        let port = parsed
            .port()
            .or_else(|| well_known_port(parsed.scheme()))
            .ok_or_else(|| format!("URL `{url}` has no port and its scheme has no default"))?;
        Ok(Self::new(parsed.scheme(), host, port))
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The component id when this target is `<component>.spin.internal`.
    pub fn chained_component(&self) -> Option<&str> {
        self.host
            .strip_suffix(SERVICE_CHAINING_DOMAIN)?
            .strip_suffix('.')
            .filter(|id| !id.is_empty() && !id.contains('.'))
    }
}

impl fmt::Display for OutboundTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// A component's parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    allow_all: bool,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: Option<String>,
    host: HostPattern,
    ports: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    AnySubdomainOf(String),
    Cidr(IpAddr, u8),
    ThisApp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    One(u16),
    Range(u16, u16),
}

impl AllowedHosts {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostError> {
        let mut allowed = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            let parsed = parse_entry(entry).map_err(|reason| AllowedHostError {
                entry: entry.to_string(),
                reason,
            })?;
            allowed.allow_all |= parsed.scheme.is_none()
                && parsed.host == HostPattern::Any
                && parsed.ports == PortPattern::Any;
            allowed.entries.push(parsed);
        }
        Ok(allowed)
    }

    pub fn allows(&self, target: &OutboundTarget) -> bool {
        self.allow_all || self.entries.iter().any(|e| e.matches(target))
    }

    /// Whether a TCP connection (`wasi:sockets`) to `address` is allowed: as
    /// in Spin, by a `tcp://` entry (or `*://`) naming its IP address, a
    /// CIDR range holding it, or any host, with its port.
    pub fn allows_tcp(&self, address: std::net::SocketAddr) -> bool {
        let ip = address.ip().to_canonical();
        self.allows(&OutboundTarget::new("tcp", &ip.to_string(), address.port()))
    }

    /// Whether any entry may allow `scheme` (e.g. whether a component may
    /// use TCP sockets at all).
    pub fn mentions_scheme(&self, scheme: &str) -> bool {
        self.allow_all
            || self
                .entries
                .iter()
                .any(|e| e.scheme.as_deref().is_none_or(|s| s == scheme))
    }

    /// Whether a chained request to `<component>.spin.internal` is allowed.
    /// As in Spin, it must be listed like any host (`http://*.spin.internal`
    /// or `http://<component>.spin.internal`); `self` does not cover it.
    pub fn allows_component(&self, scheme: &str, component: &str) -> bool {
        let host = format!("{component}.{SERVICE_CHAINING_DOMAIN}");
        let port = well_known_port(scheme).unwrap_or(80);
        self.allows(&OutboundTarget::new(scheme, &host, port))
    }
}

impl Entry {
    fn matches(&self, target: &OutboundTarget) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == target.scheme);
        scheme_ok && self.host.matches(&target.host) && self.ports.matches(target.port)
    }
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::AnySubdomainOf(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            HostPattern::Cidr(net, bits) => host
                .parse::<IpAddr>()
                .is_ok_and(|ip| in_cidr(ip, *net, *bits)),
            // `self` covers relative requests to the app's own listener,
            // which this host does not offer; it never matches a named host.
            HostPattern::ThisApp => false,
        }
    }
}

impl PortPattern {
    fn matches(&self, port: u16) -> bool {
        match *self {
            PortPattern::Any => true,
            PortPattern::One(p) => p == port,
            PortPattern::Range(lo, hi) => (lo..hi).contains(&port),
        }
    }
}

fn parse_entry(entry: &str) -> Result<Entry, String> {
    if entry == "insecure:allow-all" {
        return Err(
            "not allowed; use `*://*:*` if you really want to allow all outbound traffic".into(),
        );
    }
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or("expected `scheme://host[:port]`, with `*` wildcards allowed for each")?;
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphabetic()) => {
            Some(s.to_ascii_lowercase())
        }
        _ => return Err(format!("invalid scheme `{scheme}`")),
    };
    let (host, port) = split_host_port(rest)?;
    // A trailing `/` is tolerated; any other path is not.
    let port = port.map(|p| strip_trailing_slash(p)).transpose()?;
    let host = if port.is_none() {
        host.trim_end_matches('/')
    } else {
        host
    };
    let host = parse_host(host)?;
    let ports = match port {
        Some(port) => parse_port(port)?,
        None => match scheme.as_deref().and_then(well_known_port) {
            Some(p) => PortPattern::One(p),
            None => return Err("a port is required for this scheme (use `:*` for any)".into()),
        },
    };
    Ok(Entry {
        scheme,
        host,
        ports,
    })
}

fn strip_trailing_slash(port: &str) -> Result<&str, String> {
    match port.split_once('/') {
        None => Ok(port),
        Some((port, "")) => Ok(port),
        Some(_) => Err("a path is not allowed; give only scheme, host and port".into()),
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[` in IPv6 host")?;
        return match after {
            "" => Ok((host, None)),
            p => Ok((
                host,
                Some(p.strip_prefix(':').ok_or("expected `:` after `]`")?),
            )),
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host == "self" {
        return Ok(HostPattern::ThisApp);
    }
    if let Some(domain) = host.strip_prefix("*.") {
        if domain.is_empty() || domain.contains('*') {
            return Err(format!("invalid wildcard host `{host}`"));
        }
        return Ok(HostPattern::AnySubdomainOf(normalise_host(domain)));
    }
    if host.contains('*') {
        return Err(format!(
            "`*` may only stand alone or as `*.domain`, not in `{host}`"
        ));
    }
    if let Some((net, bits)) = host.split_once('/') {
        let net: IpAddr = net
            .parse()
            .map_err(|_| "a path is not allowed; give only scheme, host and port".to_string())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("invalid CIDR prefix in `{host}`"))?;
        return Ok(HostPattern::Cidr(net, bits));
    }
    Ok(HostPattern::Exact(normalise_host(host)))
}

fn parse_port(port: &str) -> Result<PortPattern, String> {
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    let number = |p: &str| p.parse::<u16>().map_err(|_| format!("invalid port `{p}`"));
    match port.split_once("..") {
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo >= hi {
                return Err(format!("empty port range `{port}`"));
            }
            Ok(PortPattern::Range(lo, hi))
        }
        None => Ok(PortPattern::One(number(port)?)),
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Default ports of the schemes Spin knows.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" | "postgresql" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entries: &[&str], url: &str) -> bool {
        AllowedHosts::parse(entries)
            .unwrap()
            .allows(&OutboundTarget::from_url(url).unwrap())
    }

    #[test]
    fn exact_host_with_default_port() {
        assert!(allows(
            &["https://api.stripe.com"],
            "https://api.stripe.com/v1/x"
        ));
        assert!(allows(
            &["https://api.stripe.com"],
            "https://API.Stripe.com:443"
        ));
        assert!(!allows(
            &["https://api.stripe.com"],
            "https://api.stripe.com:8443"
        ));
        assert!(!allows(
            &["https://api.stripe.com"],
            "http://api.stripe.com"
        ));
        assert!(!allows(&["https://api.stripe.com"], "https://evil.com"));
        assert!(allows(
            &["postgres://localhost"],
            "postgres://u:p@localhost/db"
        ));
        assert!(!allows(
            &["postgres://localhost"],
            "postgres://localhost:5433/db"
        ));
    }

    #[test]
    fn wildcards() {
        assert!(allows(&["*://example.com:*"], "http://example.com:81"));
        assert!(allows(
            &["https://*.example.com"],
            "https://a.b.example.com"
        ));
        assert!(!allows(&["https://*.example.com"], "https://example.com"));
        assert!(!allows(
            &["https://*.example.com"],
            "https://badexample.com"
        ));
        assert!(allows(&["http://*:8080"], "http://anything:8080"));
        assert!(!allows(&["http://*:8080"], "http://anything:8081"));
    }

    #[test]
    fn port_ranges_exclude_the_end() {
        assert!(allows(
            &["http://localhost:8000..8002"],
            "http://localhost:8001"
        ));
        assert!(!allows(
            &["http://localhost:8000..8002"],
            "http://localhost:8002"
        ));
    }

    #[test]
    fn cidr_and_ip_hosts() {
        assert!(allows(
            &["postgres://127.0.0.0/8:5432"],
            "postgres://127.1.2.3:5432"
        ));
        assert!(!allows(
            &["postgres://127.0.0.0/8:5432"],
            "postgres://10.0.0.1:5432"
        ));
        assert!(allows(&["http://[::1]:8080"], "http://[::1]:8080/"));
    }

    #[test]
    fn empty_list_allows_nothing_and_allow_all_everything() {
        assert!(!allows(&[], "http://localhost"));
        assert!(allows(&["*://*:*"], "mysql://db:3306"));
        assert!(AllowedHosts::parse(&["insecure:allow-all"]).is_err());
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "localhost",
            "ftp://host",
            "http://ho*st",
            "http://host:port",
            "http://host:90..80",
            "http://host/path",
            "http://:80",
            "ht tp://host",
        ] {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad}");
        }
        assert!(AllowedHosts::parse(&["ftp://host:21", "http://host/"]).is_ok());
        assert!(
            AllowedHosts::parse(&["*://example.com"]).is_err(),
            "`*` has no default port"
        );
        assert!(
            AllowedHosts::parse(&["h2c://example.com:80"]).is_err(),
            "schemes are alphabetic"
        );
    }

    #[test]
    fn service_chaining() {
        let t = OutboundTarget::from_url("http://catalog.spin.internal/products").unwrap();
        assert_eq!(t.chained_component(), Some("catalog"));
        assert_eq!(
            OutboundTarget::from_url("http://spin.internal")
                .unwrap()
                .chained_component(),
            None
        );
        let specific = AllowedHosts::parse(&["http://catalog.spin.internal"]).unwrap();
        assert!(specific.allows_component("http", "catalog"));
        assert!(!specific.allows_component("http", "users"));
        let any = AllowedHosts::parse(&["http://*.spin.internal"]).unwrap();
        assert!(any.allows_component("http", "users"));
        let this_app = AllowedHosts::parse(&["http://self"]).unwrap();
        assert!(!this_app.allows_component("http", "users"));
        assert!(!AllowedHosts::parse(&["http://localhost"])
            .unwrap()
            .allows_component("http", "users"));
    }

    #[test]
    fn tcp_is_allowed_by_address_range_and_port_only() {
        let allowed = AllowedHosts::parse(&[
            "tcp://127.0.0.1:5432",
            "tcp://10.0.0.0/8:6379",
            "https://api.example.com",
        ])
        .unwrap();
        let at = |a: &str| allowed.allows_tcp(a.parse().unwrap());
        assert!(at("127.0.0.1:5432"));
        assert!(!at("127.0.0.1:5433"), "another port");
        assert!(at("10.1.2.3:6379"));
        assert!(!at("11.1.2.3:6379"), "outside the range");
        assert!(
            at("[::ffff:127.0.0.1]:5432"),
            "an IPv4-mapped address is its IPv4 one"
        );
        assert!(allowed.mentions_scheme("tcp"));
        let http_only = AllowedHosts::parse(&["https://api.example.com"]).unwrap();
        assert!(!http_only.mentions_scheme("tcp"));
        assert!(!http_only.allows_tcp("127.0.0.1:443".parse().unwrap()));
    }
}
