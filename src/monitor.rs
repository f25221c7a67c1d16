//! `webterm sessions`: the session monitoring tool. It replaces the seed's
//! `ps aux | grep socktop-agent` with the server's own table, and ends a
//! session through the same teardown as any other ending.
//!
//! It speaks plain HTTP/1.1 to a running server (in a cluster, to each pod's
//! address; see scripts/), so it needs no HTTP client library.

use std::ffi::OsString;
use std::io::Write;

use base64::Engine as _;

use crate::api::{SessionList, SessionRow};
use crate::fetch::Server;

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

    // Any replica answers for all of them (a single server, for itself).
    let (status, body) = server.request("GET", "/api/sessions?cluster=1", &headers)?;
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

/// The human table: one line per session, newest last; then the replicas
/// that could not be asked.
pub fn table(list: &SessionList) -> String {
    let mut out = format!(
        "{:<16} {:<14} {:>7} {:<9} {:<21} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}  COMMAND\n",
        "ID", "NODE", "PID", "STATE", "PEER", "AGE", "IDLE", "CPU", "MEM", "IN", "OUT"
    );
    for s in &list.sessions {
        out.push_str(&format!(
            "{:<16} {:<14} {:>7} {:<9} {:<21} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}  {}\n",
            // The first 8 digits name the replica; 8 more tell its
            // sessions apart, and are what --kill needs.
            &s.id[..s.id.len().min(16)],
            &s.node[..s.node.len().min(14)],
            s.pid,
            s.state,
            s.peer,
            since(&s.started),
            short_duration(s.idle_seconds),
            cpu(s.cpu_seconds),
            bytes(s.memory_bytes),
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
    for u in &list.unreachable {
        out.push_str(&format!("not listed: {u}\n"));
    }
    out
}

/// CPU time: seconds with a tenth under a minute, then like a duration.
fn cpu(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        short_duration(secs)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(short_duration(75.0), "1m15s");
        assert_eq!(cpu(1.25), "1.2s");
        assert_eq!(cpu(75.0), "1m15s");
        assert_eq!(bytes(1536), "1.5KiB");
        assert_eq!(seconds_of("2026-11-25T03:28:59Z"), Some(1_795_577_339));
    }
}
