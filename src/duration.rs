//! Durations as people write them on a command line and read them in logs:
//! `500ms`, `30s`, `5m`, `1h30m`.

use std::time::Duration;

/// Parses `500ms`, `30s`, `5m`, `1h`, `1h30m`, or a bare `0`.
///
/// A bare number other than 0 is refused: `--idle-timeout 300` could mean
/// seconds or minutes, and guessing wrong ends someone's session.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("is empty; give a duration such as 30s or 5m".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("is not a duration; use a number and a unit: 500ms, 30s, 5m, 1h".into());
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "has a number too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "" => return Err("needs a unit: ms, s, m or h (for example 30s)".into()),
            u => return Err(format!("has an unknown unit '{u}'; use ms, s, m or h")),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Formats a duration the way `parse_duration` reads it, for logs and notices.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, d) in [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h30m", Duration::from_secs(5400)),
        ] {
            assert_eq!(parse_duration(text).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
