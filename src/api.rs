//! `/api/sessions`: the session table as JSON, for `webterm sessions` and
//! for scripts. The HTTP side lives in `http`; this is the document. With
//! `?cluster=1` the replica asked adds every peer's table (see `cluster`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::session::{Registry, Session};
use crate::terminal::Containment;

/// One row of the table. Also what `webterm sessions` reads back.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub pid: u32,
    pub command: String,
    pub peer: String,
    pub protocol: String,
    pub state: String,
    /// RFC 3339, UTC.
    pub started: String,
    pub last_input: String,
    pub idle_seconds: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The replica it runs on (`--node-id`).
    #[serde(default)]
    pub node: String,
    /// CPU time and memory of all its processes (see `usage`).
    #[serde(default)]
    pub cpu_seconds: f64,
    #[serde(default)]
    pub memory_bytes: u64,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
    /// The sum over the replicas listed.
    pub max_sessions: usize,
    /// Replicas that were asked and did not answer, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
}

pub fn row(h: &Session, node: &str, containment: &Containment) -> SessionRow {
    let idle = h.since_input();
    let usage = crate::usage::of_session(containment, &h.id, h.pid);
    SessionRow {
        id: h.id.clone(),
        pid: h.pid,
        command: h.command.clone(),
        peer: h.peer(),
        protocol: h.protocol.to_string(),
        state: h.state().name().to_string(),
        started: rfc3339(h.started),
        last_input: rfc3339(SystemTime::now() - idle),
        idle_seconds: (idle.as_millis() as f64) / 1000.0,
        bytes_in: h.bytes_in(),
        bytes_out: h.bytes_out(),
        node: node.to_string(),
        cpu_seconds: usage.cpu_seconds,
        memory_bytes: usage.memory_bytes,
    }
}

/// This replica's table. Reads /proc (or cgroup files) for every session:
/// call it off the async threads.
pub fn list(registry: &Registry, node: &str, containment: &Containment) -> SessionList {
    SessionList {
        sessions: registry
            .sessions()
            .iter()
            .map(|h| row(h, node, containment))
            .collect(),
        max_sessions: registry.max(),
        unreachable: Vec::new(),
    }
}

/// UTC time as `2026-11-25T03:41:31Z`, without a date crate: days since the
/// epoch to a civil date (Howard Hinnant's algorithm).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_577_339)),
            "2026-11-25T03:28:59Z"
        );
    }
}
