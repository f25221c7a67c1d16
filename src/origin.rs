//! The cross-site WebSocket hijacking check, decided before any upgrade.
//!
//! Browsers attach cookies and proxy credentials to a WebSocket opened from
//! *any* page, so without this check a malicious site could open a shell on
//! a user's webterm. A browser always sends `Origin`; we accept the upgrade
//! only when that origin names the same host and port the request was sent
//! to (its `Host` header, which reverse proxies such as Traefik and NGINX
//! Proxy Manager pass through), or appears in the operator's allow-list. A
//! request without `Origin` does not come from a browser page (curl, a
//! benchmark, a script) and cannot be a cross-site attack, so it passes.

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

    #[test]
    fn allowed_values_are_validated() {
        assert!(validate_allowed("https://example.com").is_ok());
        assert!(validate_allowed("http://localhost:3000/").is_ok());
        assert!(validate_allowed("*").is_ok());
        assert!(validate_allowed("example.com").is_err());
        assert!(validate_allowed("https://example.com/path").is_err());
    }
}
