//! `webterm sessions`: the session monitoring tool. It replaces the seed's
//! `ps aux | grep socktop-agent` with the server's own table, and ends a
//! session through the same teardown as any other ending.
//!
//! It speaks plain HTTP/1.1 to a running server (in a cluster, to each pod's
//! address; see scripts/), so it needs no HTTP client library.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;

use crate::api::{SessionList, SessionRow};

pub const HELP: &str = "\
webterm sessions: list or end the sessions of a running webterm.

USAGE:
    webterm sessions [--url URL] [--json] [--kill ID] [--credential USER:PASS] [--header 'NAME: VALUE']

OPTIONS:
        --url URL                 [env: WEBTERM_URL] default http://127.0.0.1:8080
        The server, with its base path if it has one (http://host:8080/term).
        --json                    Print the server's JSON instead of a table.
        --kill ID                 End one session (an ID or a unique prefix of one)
                                  through the normal teardown.
        --credential USER:PASS    [env: WEBTERM_CREDENTIAL] HTTP Basic credentials.
        --header 'NAME: VALUE'    Send a header, such as the one an
                                  --auth-header server trusts. Repeatable.
    -h, --help                    Print this help.
";

struct Opts {
    url: String,
    json: bool,
    kill: Option<String>,
    credential: Option<String>,
    headers: Vec<String>,
}

/// Runs the tool; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "webterm sessions: {e}");
            1
        }
    }
}

fn run(args: Vec<OsString>) -> Result<(), String> {
    use lexopt::prelude::*;
    let mut o = Opts {
        url: std::env::var("WEBTERM_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        json: false,
        kill: None,
        credential: std::env::var("WEBTERM_CREDENTIAL")
            .ok()
            .filter(|c| !c.is_empty()),
        headers: Vec::new(),
    };
    let mut p = lexopt::Parser::from_args(args);
    let text = |v: OsString| v.into_string().map_err(|v| format!("{v:?} is not UTF-8"));
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => {
                let _ = write!(std::io::stdout(), "{HELP}");
                return Ok(());
            }
            Long("url") => o.url = text(p.value().map_err(|e| e.to_string())?)?,
            Long("json") => o.json = true,
            Long("kill") => o.kill = Some(text(p.value().map_err(|e| e.to_string())?)?),
            Long("credential") => o.credential = Some(text(p.value().map_err(|e| e.to_string())?)?),
            Long("header") => o.headers.push(text(p.value().map_err(|e| e.to_string())?)?),
            other => {
                return Err(format!(
                    "{}; see 'webterm sessions --help'",
                    other.unexpected()
                ))
            }
        }
    }
    let server = Server::parse(&o.url)?;
    let mut headers = o.headers.clone();
    if let Some(c) = &o.credential {
        headers.push(format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(c)
        ));
    }

    let (status, body) = server.request("GET", "/api/sessions", &headers)?;
    if status != 200 {
        return Err(format!("{} answered {status}: {}", o.url, body.trim()));
    }
    let list: SessionList = serde_json::from_str(&body)
        .map_err(|e| format!("{} sent something that is not a session list: {e}", o.url))?;

    if let Some(wanted) = &o.kill {
        let matches: Vec<&SessionRow> = list
            .sessions
            .iter()
            .filter(|s| s.id.starts_with(wanted.as_str()))
            .collect();
        let target = match matches.as_slice() {
            [one] => *one,
            [] => return Err(format!("no session whose id starts with '{wanted}'")),
            many => {
                return Err(format!(
                    "'{wanted}' matches {} sessions; give more of the id",
                    many.len()
                ))
            }
        };
        let (status, body) =
            server.request("DELETE", &format!("/api/sessions/{}", target.id), &headers)?;
        if status != 202 {
            return Err(format!(
                "could not end {}: {status} {}",
                target.id,
                body.trim()
            ));
        }
        let _ = writeln!(
            std::io::stdout(),
            "ending session {} (pid {}, {})",
            target.id,
            target.pid,
            target.command
        );
        return Ok(());
    }

    if o.json {
        let _ = writeln!(std::io::stdout(), "{body}");
    } else {
        let _ = write!(std::io::stdout(), "{}", table(&list));
    }
    Ok(())
}

/// The human table: one line per session, newest last.
pub fn table(list: &SessionList) -> String {
    let mut out = format!(
        "{:<12} {:>7} {:<9} {:<21} {:>8} {:>8} {:>9} {:>9}  COMMAND\n",
        "ID", "PID", "STATE", "PEER", "AGE", "IDLE", "IN", "OUT"
    );
    for s in &list.sessions {
        out.push_str(&format!(
            "{:<12} {:>7} {:<9} {:<21} {:>8} {:>8} {:>9} {:>9}  {}\n",
            &s.id[..s.id.len().min(12)],
            s.pid,
            s.state,
            s.peer,
            since(&s.started),
            short_duration(s.idle_seconds),
            bytes(s.bytes_in),
            bytes(s.bytes_out),
            s.command
        ));
    }
    out.push_str(&format!(
        "{} of {} sessions\n",
        list.sessions.len(),
        list.max_sessions
    ));
    out
}

fn since(started: &str) -> String {
    // The server's clock formats both ends, so parse our own RFC 3339 back.
    let now = crate::api::rfc3339(std::time::SystemTime::now());
    match (seconds_of(started), seconds_of(&now)) {
        (Some(a), Some(b)) if b >= a => short_duration((b - a) as f64),
        _ => "?".into(),
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ`, enough to subtract two.
fn seconds_of(t: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn short_duration(secs: f64) -> String {
    let s = secs as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// A plain HTTP/1.1 client for one server; `webterm health` uses it too.
pub(crate) struct Server {
    host: String,
    base: String,
}

impl Server {
    pub(crate) fn parse(url: &str) -> Result<Server, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("'{url}' is not an http:// URL (for https, ask the pod directly over http)")
        })?;
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let host = if host.contains(':') && !host.ends_with(']') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let base = path.trim_end_matches('/');
        Ok(Server {
            host,
            base: if base.is_empty() {
                String::new()
            } else {
                format!("/{base}")
            },
        })
    }

    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[String],
    ) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect(&self.host)
            .map_err(|e| format!("cannot reach {}: {e}", self.host))?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.base, self.host
        );
        for h in headers {
            req.push_str(h.trim());
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .map_err(|e| format!("reading the answer: {e}"))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("the answer was not HTTP")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("the answer had no status")?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("transfer-encoding:")
                && l.to_ascii_lowercase().contains("chunked")
        });
        Ok((
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_string()
            },
        ))
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_formats() {
        let s = Server::parse("http://10.0.0.5:8080/term/").unwrap();
        assert_eq!(
            (s.host.as_str(), s.base.as_str()),
            ("10.0.0.5:8080", "/term")
        );
        assert_eq!(Server::parse("http://pod").unwrap().host, "pod:80");
        assert!(Server::parse("https://x").is_err());
        assert_eq!(short_duration(75.0), "1m15s");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(seconds_of("2026-11-25T03:28:59Z"), Some(1_795_577_339));
    }
}
