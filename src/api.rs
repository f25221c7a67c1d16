//! `/api/sessions`: the session table as JSON, for `webterm sessions` and
//! for scripts. The HTTP side lives in `http`; this is the document.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::session::{Registry, Session};

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
}

#[derive(Serialize, Deserialize, Debug)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
    pub max_sessions: usize,
}

pub fn row(h: &Session) -> SessionRow {
    let idle = h.since_input();
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
    }
}

pub fn list(registry: &Registry) -> String {
    let doc = SessionList {
        sessions: registry.sessions().iter().map(|h| row(h)).collect(),
        max_sessions: registry.max(),
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default()
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
