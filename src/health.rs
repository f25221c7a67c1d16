//! `webterm health`: the container image's HEALTHCHECK.
//!
//! The runtime image has no curl, and a `wget http://127.0.0.1:8080/healthz`
//! line would hard-code the port: move `WEBTERM_LISTEN` and every container
//! turns unhealthy. This reads the same variable the server read, so the
//! check follows the server wherever it listens.

use std::ffi::OsString;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::fetch::Server;

pub const HELP: &str = "\
webterm health: exit 0 if the webterm on this host answers /healthz.

USAGE:
    webterm health [--url URL]

OPTIONS:
        --url URL    Ask this server instead. By default the address comes
                     from WEBTERM_LISTEN (default 127.0.0.1:8080), with an
                     unspecified address (0.0.0.0, [::]) asked on loopback.
    -h, --help       Print this help.
";

/// Runs the probe; returns the process exit code (0 healthy, 1 not).
pub fn main(args: Vec<OsString>) -> i32 {
    match run(args) {
        Ok(None) => 0,
        Ok(Some(healthy)) => {
            let _ = writeln!(std::io::stdout(), "{healthy}");
            0
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "webterm health: {e}");
            1
        }
    }
}

fn run(args: Vec<OsString>) -> Result<Option<String>, String> {
    use lexopt::prelude::*;
    let mut url = None;
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => {
                let _ = write!(std::io::stdout(), "{HELP}");
                return Ok(None);
            }
            Long("url") => {
                let v = p.value().map_err(|e| e.to_string())?;
                url = Some(v.into_string().map_err(|v| format!("{v:?} is not UTF-8"))?);
            }
            other => {
                return Err(format!(
                    "{}; see 'webterm health --help'",
                    other.unexpected()
                ))
            }
        }
    }
    let url = match url {
        Some(u) => u,
        None => url_for_listen(std::env::var("WEBTERM_LISTEN").ok().as_deref())?,
    };
    // The probes answer at the root whatever the base path, so only the
    // host part of the URL matters.
    let server = Server::parse(&url)?;
    let (status, body) = server.request("GET", "/healthz", &[])?;
    if status == 200 {
        Ok(Some(format!("{url}: {}", body.trim())))
    } else {
        Err(format!("{url} answered {status}: {}", body.trim()))
    }
}

/// The URL at which a server started with this `WEBTERM_LISTEN` is reached
/// from the same host.
fn url_for_listen(listen: Option<&str>) -> Result<String, String> {
    let listen = listen.map(str::trim).filter(|l| !l.is_empty());
    let addr: SocketAddr = listen.unwrap_or("127.0.0.1:8080").parse().map_err(|_| {
        format!(
            "WEBTERM_LISTEN: '{}' is not an IP:PORT",
            listen.unwrap_or("")
        )
    })?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!("http://{}", SocketAddr::new(ip, addr.port())))
}

#[cfg(test)]
mod tests {
    use super::url_for_listen;

    #[test]
    fn listen_addresses_map_to_reachable_urls() {
        assert_eq!(url_for_listen(None).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(
            url_for_listen(Some("0.0.0.0:7681")).unwrap(),
            "http://127.0.0.1:7681"
        );
        assert_eq!(url_for_listen(Some("[::]:80")).unwrap(), "http://[::1]:80");
        assert_eq!(
            url_for_listen(Some("10.1.2.3:9")).unwrap(),
            "http://10.1.2.3:9"
        );
        assert!(url_for_listen(Some("localhost:80")).is_err());
    }
}
