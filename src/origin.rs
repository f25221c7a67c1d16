//! Two checks against cross-site abuse, both decided before a request does
//! anything.
//!
//! **Origin** (before a WebSocket upgrade and the sessions API). Browsers
//! attach cookies and proxy credentials to a WebSocket opened from *any*
//! page, so without this check a malicious site could open a shell on a
//! user's webterm. A browser always sends `Origin`; we accept the upgrade
//! only when that origin names the same host and port the request was sent
//! to (its `Host` header, which reverse proxies such as Traefik and NGINX
//! Proxy Manager pass through), or appears in the operator's allow-list. A
//! request without `Origin` does not come from a browser page (curl, a
//! benchmark, a script) and cannot be a cross-site attack, so it passes.
//!
//! **Host** (every request but the probes, when no authentication is
//! configured). The Origin check compares two values that a DNS rebinding
//! attacker controls: a page on `attacker.example` whose name then resolves
//! to 127.0.0.1 sends `Host: attacker.example:P` and a matching `Origin`.
//! What the attacker cannot choose is a `Host` that is not their own name, so
//! an unauthenticated webterm serves only names it knows to be its own:
//! loopback names and addresses, the address it listens on or was reached
//! at, and the operator's `--allowed-host` list. With authentication on, the
//! attacker's page holds no credentials for its own origin, so the check
//! would add nothing and stays off.

use std::net::{IpAddr, SocketAddr};

/// Why an upgrade was refused, for the log and the 403 body.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Origin` is present but is not `scheme://host[:port]`.
    Malformed(String),
    /// A well-formed origin for another site.
    CrossOrigin { origin: String, host: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(o) => write!(f, "malformed Origin header {o:?}"),
            Refusal::CrossOrigin { origin, host } => write!(
                f,
                "Origin {origin} does not match Host {host:?} and is not in --allowed-origin"
            ),
        }
    }
}

/// Decides whether a WebSocket upgrade may proceed.
pub fn check(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> Result<(), Refusal> {
    let Some(origin) = origin else {
        return Ok(());
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    {
        return Ok(());
    }
    let parsed = parse_origin(origin).ok_or_else(|| Refusal::Malformed(origin.to_string()))?;
    let cross = || Refusal::CrossOrigin {
        origin: origin.to_string(),
        host: host.unwrap_or("").to_string(),
    };
    let (host_name, host_port) = host.map(split_host_port).ok_or_else(cross)?;
    if !host_name.eq_ignore_ascii_case(parsed.host) {
        return Err(cross());
    }
    // A Host without a port means the default port of whatever scheme the
    // browser used; a TLS-terminating proxy in front of us hides that scheme,
    // so an absent port matches the origin's default port for its own scheme.
    let same_port = match host_port {
        Some(p) => p == parsed.port,
        None => parsed.port == default_port(parsed.scheme),
    };
    if same_port {
        Ok(())
    } else {
        Err(cross())
    }
}

/// Checks an `--allowed-origin` value at start-up, so a typo fails loudly
/// instead of silently allowing nothing.
pub fn validate_allowed(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    match parse_origin(origin) {
        Some(o) if origin.trim_end_matches('/').len() == o.len => Ok(()),
        _ => {
            Err("is not an origin: write scheme://host[:port], such as https://example.com".into())
        }
    }
}

/// Which `Host` names an unauthenticated server answers.
#[derive(Clone, Debug)]
pub struct HostGuard {
    /// `None` when every host is served (authentication is on, or the
    /// operator allowed `*`).
    allowed: Option<Vec<String>>,
    /// The specific addresses the server listens on (not 0.0.0.0 or [::]).
    listen: Vec<IpAddr>,
}

/// A `Host` the guard refused, for the log and the 403 body.
#[derive(Debug, PartialEq, Eq)]
pub struct HostRefusal(pub String);

impl std::fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Host {:?} is not a name of this server (without authentication only loopback names, \
             the listening address and --allowed-host names are served)",
            self.0
        )
    }
}

impl HostGuard {
    /// `allowed` holds `--allowed-host` entries, already checked by
    /// [`validate_allowed_host`].
    pub fn new(auth_enabled: bool, allowed: &[String], listen: &[SocketAddr]) -> HostGuard {
        let every = auth_enabled || allowed.iter().any(|a| a == "*");
        HostGuard {
            allowed: (!every).then(|| allowed.iter().map(|a| normalize_name(a)).collect()),
            listen: listen
                .iter()
                .map(|l| l.ip().to_canonical())
                .filter(|ip| !ip.is_unspecified())
                .collect(),
        }
    }

    /// Decides whether to serve a request that named `host` and arrived on
    /// the local socket address `local` (as `ip:port`).
    ///
    /// An IP-literal Host other than loopback is served only when it is an
    /// address the server listens on or the one this connection reached:
    /// any other address means the request was relayed (NAT, a port
    /// forward, a proxy) from somewhere the operator has not named.
    pub fn check(&self, host: Option<&str>, local: Option<&str>) -> Result<(), HostRefusal> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let refuse = || HostRefusal(host.unwrap_or("").to_string());
        let name = normalize_name(split_host_port(host.ok_or_else(refuse)?.trim()).0);
        if name.is_empty() {
            return Err(refuse());
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Ok(());
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            let local = local
                .and_then(|l| l.parse::<SocketAddr>().ok())
                .map(|l| l.ip().to_canonical());
            if ip.is_loopback() || self.listen.contains(&ip) || Some(ip) == local {
                return Ok(());
            }
        }
        let listed = allowed.iter().any(|a| match a.strip_prefix('.') {
            // `.example.com`: the domain and every name under it.
            Some(domain) => name == domain || name.ends_with(a.as_str()),
            None => *a == name,
        });
        if listed {
            Ok(())
        } else {
            Err(refuse())
        }
    }
}

/// Lower case, without the trailing dot of a fully qualified name or the
/// brackets of an IPv6 address, and addresses in one spelling, so that
/// `Example.COM.` and `example.com`, or `[::FFFF:10.0.0.1]` and `10.0.0.1`,
/// are one name.
fn normalize_name(name: &str) -> String {
    let name = name.trim().trim_end_matches('.');
    let name = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => name.to_ascii_lowercase(),
    }
}

/// Checks an `--allowed-host` value at start-up: a name or an address,
/// `.domain` for a domain and its subdomains, or `*`.
pub fn validate_allowed_host(host: &str) -> Result<(), String> {
    if host == "*" {
        return Ok(());
    }
    let bare = host.strip_prefix('.').unwrap_or(host);
    let unbracketed = bare
        .strip_prefix('[')
        .and_then(|b| b.strip_suffix(']'))
        .unwrap_or(bare);
    let is_name = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if is_name || (bare == host && unbracketed.parse::<IpAddr>().is_ok()) {
        Ok(())
    } else {
        Err(
            "is not a host name: give a name or address without scheme or port, \
             such as term.example.com, .example.com (with subdomains) or 192.168.1.10"
                .into(),
        )
    }
}

struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: u16,
    /// Length of the `scheme://host[:port]` text, to reject trailing paths.
    len: usize,
}

fn parse_origin(origin: &str) -> Option<Origin<'_>> {
    let (scheme, rest) = origin.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority);
    let port = match port {
        Some(p) => p,
        None => default_port(scheme),
    };
    if host.is_empty() {
        return None;
    }
    Some(Origin {
        scheme,
        host,
        port,
        len: scheme.len() + 3 + authority.len(),
    })
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`; a port that does not
/// parse is treated as part of the host, which then matches nothing.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h, port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (s, None),
        },
        None => (s, None),
    }
}

fn default_port(scheme: &str) -> u16 {
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "wss" => 443,
        _ => 80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_host_passes() {
        assert_eq!(
            check(Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080"), &[]),
            Ok(())
        );
        assert_eq!(
            check(
                Some("https://term.example.com"),
                Some("term.example.com"),
                &[]
            ),
            Ok(())
        );
        assert_eq!(
            check(Some("http://[::1]:9000"), Some("[::1]:9000"), &[]),
            Ok(())
        );
        assert_eq!(
            check(Some("HTTP://Example.COM"), Some("example.com"), &[]),
            Ok(())
        );
    }

    #[test]
    fn no_origin_is_not_a_browser_and_passes() {
        assert_eq!(check(None, Some("x:1"), &[]), Ok(()));
    }

    #[test]
    fn other_sites_and_ports_are_refused() {
        assert!(matches!(
            check(Some("http://evil.test"), Some("127.0.0.1:8080"), &[]),
            Err(Refusal::CrossOrigin { .. })
        ));
        assert!(check(Some("http://127.0.0.1:9999"), Some("127.0.0.1:8080"), &[]).is_err());
        assert!(check(Some("https://example.com"), Some("example.com:8080"), &[]).is_err());
        assert!(check(
            Some("http://example.com.evil.test"),
            Some("example.com"),
            &[]
        )
        .is_err());
        assert!(check(Some("http://example.com"), None, &[]).is_err());
        assert!(matches!(
            check(Some("null"), Some("example.com"), &[]),
            Err(Refusal::Malformed(_))
        ));
    }

    #[test]
    fn allow_list_is_exact() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert_eq!(
            check(Some("https://app.example.com"), Some("term:8080"), &allowed),
            Ok(())
        );
        assert!(check(
            Some("https://app.example.com:444"),
            Some("term:8080"),
            &allowed
        )
        .is_err());
        assert_eq!(check(Some("null"), Some("h"), &["*".to_string()]), Ok(()));
    }

    fn guard(allowed: &[&str], listen: &str) -> HostGuard {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        HostGuard::new(false, &allowed, &[listen.parse().unwrap()])
    }

    #[test]
    fn loopback_names_and_addresses_are_served() {
        let g = guard(&[], "127.0.0.1:8080");
        for host in [
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:8080",
            "localhost.",
            "127.0.0.1:8080",
            "127.1.2.3",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:8080",
        ] {
            assert_eq!(
                g.check(Some(host), Some("127.0.0.1:8080")),
                Ok(()),
                "{host}"
            );
        }
    }

    #[test]
    fn rebinding_names_are_refused() {
        let g = guard(&[], "127.0.0.1:8080");
        for host in [
            "rebind.attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "192.168.1.10:8080",
            "",
        ] {
            assert!(
                g.check(Some(host), Some("127.0.0.1:8080")).is_err(),
                "{host}"
            );
        }
        assert!(g.check(None, None).is_err());
    }

    #[test]
    fn the_listening_and_local_addresses_are_served() {
        let g = guard(&[], "192.168.1.10:8080");
        assert_eq!(g.check(Some("192.168.1.10:8080"), None), Ok(()));
        let any = guard(&[], "0.0.0.0:8080");
        assert_eq!(
            any.check(Some("10.0.0.7:8080"), Some("10.0.0.7:8080")),
            Ok(())
        );
        assert!(any
            .check(Some("10.0.0.8:8080"), Some("10.0.0.7:8080"))
            .is_err());
        assert!(any
            .check(Some("0.0.0.0:8080"), Some("10.0.0.7:8080"))
            .is_err());
        let two = HostGuard::new(
            false,
            &[],
            &[
                "192.168.1.10:8080".parse().unwrap(),
                "[fd00::5]:8080".parse().unwrap(),
            ],
        );
        assert_eq!(two.check(Some("[fd00::5]:8080"), None), Ok(()));
        assert_eq!(two.check(Some("192.168.1.10"), None), Ok(()));
    }

    #[test]
    fn allowed_hosts_and_auth_open_the_guard() {
        let g = guard(&["term.example.com", ".lan"], "0.0.0.0:8080");
        assert_eq!(g.check(Some("Term.Example.com:443"), None), Ok(()));
        assert_eq!(g.check(Some("pi.lan"), None), Ok(()));
        assert_eq!(g.check(Some("lan"), None), Ok(()));
        assert!(g.check(Some("evil-lan"), None).is_err());
        assert!(g.check(Some("example.com"), None).is_err());
        assert_eq!(guard(&["*"], "0.0.0.0:1").check(Some("x"), None), Ok(()));
        let by_address = guard(&["[fd00::1]", "192.168.1.10"], "0.0.0.0:1");
        assert_eq!(by_address.check(Some("[FD00:0::1]:8080"), None), Ok(()));
        assert_eq!(by_address.check(Some("192.168.1.10"), None), Ok(()));
        let authed = HostGuard::new(true, &[], &["0.0.0.0:1".parse().unwrap()]);
        assert_eq!(authed.check(Some("anything"), None), Ok(()));
        assert!(validate_allowed_host("term.example.com").is_ok());
        assert!(validate_allowed_host(".example.com").is_ok());
        assert!(validate_allowed_host("[::1]").is_ok());
        assert!(validate_allowed_host("*").is_ok());
        assert!(validate_allowed_host("https://example.com").is_err());
        assert!(validate_allowed_host("example.com:8080").is_err());
        assert!(validate_allowed_host("").is_err());
        assert!(validate_allowed_host("a..b").is_err());
    }

    #[test]
    fn allowed_values_are_validated() {
        assert!(validate_allowed("https://example.com").is_ok());
        assert!(validate_allowed("http://localhost:3000/").is_ok());
        assert!(validate_allowed("*").is_ok());
        assert!(validate_allowed("example.com").is_err());
        assert!(validate_allowed("https://example.com/path").is_err());
    }
}
