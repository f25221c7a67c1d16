//! Plain HTTP/1.1 requests with `Connection: close`: the command-line tools
//! ask a server (blocking), and replicas ask each other (async). Enough
//! HTTP for our own JSON answers, so no HTTP client library.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _, FutureExt as _};

/// The most of an answer we read: a session list of thousands of rows fits.
const MAX_ANSWER: usize = 16 << 20;

/// One server, asked with blocking requests: what `webterm sessions` and
/// `webterm health` use.
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
        let req = request_head(method, &format!("{}{path}", self.base), &self.host, headers);
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .map_err(|e| format!("reading the answer: {e}"))?;
        parse_response(&raw)
    }
}

/// A request without a body: the request line, `Host`, one answer per
/// connection, and `headers` (complete `Name: value` lines).
fn request_head(method: &str, target: &str, host: &str, headers: &[String]) -> String {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    for h in headers {
        req.push_str(h.trim());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Status and body of a whole HTTP/1.1 answer (read to the end of a
/// `Connection: close` exchange).
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
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

/// Sends one request to `addr` and reads the whole answer, within `limit`.
/// `headers` are complete `Name: value` lines.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[String],
    limit: Duration,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut s = async_std::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        let req = request_head(method, target, &addr.to_string(), headers);
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let mut raw = Vec::new();
        (&mut s)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("{addr}: reading the answer: {e}"))?;
        if raw.len() > MAX_ANSWER {
            return Err(format!("{addr}: the answer is over {MAX_ANSWER} bytes"));
        }
        parse_response(&raw).map_err(|e| format!("{addr}: {e}"))
    };
    exchange
        .or(async {
            futures_timer::Delay::new(limit).await;
            Err(format!("{addr}: no answer within {limit:?}"))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_answers() {
        let s = Server::parse("http://10.0.0.5:8080/term/").unwrap();
        assert_eq!(
            (s.host.as_str(), s.base.as_str()),
            ("10.0.0.5:8080", "/term")
        );
        assert_eq!(Server::parse("http://pod").unwrap().host, "pod:80");
        assert!(Server::parse("https://x").is_err());
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno").unwrap(),
            (404, "no".to_string())
        );
        assert!(parse_response(b"garbage").is_err());
    }
}
