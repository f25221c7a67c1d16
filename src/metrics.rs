//! `/metrics`: what an operator graphs, in Prometheus text format, through
//! the prometheus-client crate.
//!
//! Session events are counted where they happen (the session calls
//! `started`/`ended`, the pumps count bytes); process figures (RSS, open fds)
//! are read from /proc when scraped, so they cost nothing between scrapes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Why a session ended, as the `reason` label of `webterm_sessions_ended_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The command exited.
    Exit,
    /// The idle timeout.
    Idle,
    /// The client went away (closed, vanished, stopped answering, or its
    /// reconnect window passed).
    Disconnect,
    /// The server shut down.
    Shutdown,
    /// A protocol error, a PTY error, or the command could not start.
    Error,
    /// Never started: the session limit was reached.
    Refused,
    /// Ended by an operator (`webterm sessions --kill`).
    Killed,
}

impl EndReason {
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Exit => "exit",
            EndReason::Idle => "idle",
            EndReason::Disconnect => "disconnect",
            EndReason::Shutdown => "shutdown",
            EndReason::Error => "error",
            EndReason::Refused => "refused",
            EndReason::Killed => "killed",
        }
    }
}

/// Why an HTTP request was turned away before it reached a session, as the
/// `reason` label of `webterm_requests_refused_total`. A rising count of
/// `auth_header` means requests are bypassing the authenticating proxy;
/// `origin`, that some page is trying to open sockets cross-site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A cross-site or malformed `Origin`.
    Origin,
    /// No credentials, or wrong ones.
    Auth,
    /// The trusted proxy's user header is missing.
    AuthHeader,
    /// Without authentication, a `Host` that is not this server's (DNS
    /// rebinding).
    Host,
    /// A request that claimed to come from a peer replica and could not
    /// prove it (`--peers`).
    Peer,
    /// A `?arg.NAME=` the operator did not allow, or a bad value.
    UrlArg,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Origin => "origin",
            Refusal::Auth => "auth",
            Refusal::AuthHeader => "auth_header",
            Refusal::Host => "host",
            Refusal::Peer => "peer",
            Refusal::UrlArg => "url_arg",
        }
    }
}

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    active: Gauge,
    detached: Gauge,
    detaches: Counter,
    started: Counter,
    ended: Family<Labels, Counter>,
    idle_timeouts: Counter,
    duration: Histogram,
    refused: Family<Labels, Counter>,
    bytes_in: Counter<u64, AtomicU64>,
    bytes_out: Counter<u64, AtomicU64>,
    rss: Gauge,
    fds: Gauge,
    auth_failures: Counter,
    forwarding: Gauge,
    forwarded: Counter,
    peers: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("webterm");
        let active = Gauge::default();
        let detached = Gauge::default();
        let detaches = Counter::default();
        let started = Counter::default();
        let ended = Family::default();
        let idle_timeouts = Counter::default();
        let duration = Histogram::new([
            1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0,
        ]);
        let refused = Family::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let rss = Gauge::default();
        let fds = Gauge::default();
        let auth_failures = Counter::default();
        let forwarding = Gauge::default();
        let forwarded = Counter::default();
        let peers = Gauge::default();
        registry.register(
            "forwarded_sockets",
            "Sockets open now that this replica forwards to the replica holding their session",
            forwarding.clone(),
        );
        registry.register(
            "sockets_forwarded",
            "Sockets this replica forwarded to the replica holding their session",
            forwarded.clone(),
        );
        registry.register(
            "peers",
            "Other replicas this one knows and can forward to (--peers)",
            peers.clone(),
        );
        registry.register(
            "sessions_active",
            "Sessions running now, attached or not",
            active.clone(),
        );
        registry.register(
            "sessions_detached",
            "Sessions waiting for their client to reconnect",
            detached.clone(),
        );
        registry.register(
            "detaches",
            "Times a session lost its client and began waiting for a reconnect",
            detaches.clone(),
        );
        registry.register("sessions_started", "Sessions started", started.clone());
        registry.register("sessions_ended", "Sessions ended, by reason", ended.clone());
        registry.register(
            "idle_timeouts",
            "Sessions ended by the idle timeout",
            idle_timeouts.clone(),
        );
        registry.register(
            "session_duration_seconds",
            "How long sessions lasted",
            duration.clone(),
        );
        registry.register(
            "requests_refused",
            "Requests refused before reaching a session, by reason",
            refused.clone(),
        );
        registry.register(
            "input_bytes",
            "Bytes of user input written to terminals",
            bytes_in.clone(),
        );
        registry.register(
            "output_bytes",
            "Bytes of terminal output sent to clients",
            bytes_out.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the webterm process",
            rss.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors of the webterm process",
            fds.clone(),
        );
        registry.register(
            "auth_failures",
            "Login attempts refused: wrong credentials, or tried while the peer was backing off",
            auth_failures.clone(),
        );
        registry.register(
            "tls_reloads",
            "Renewed TLS certificate and key pairs taken from --tls-cert and --tls-key",
            StaticCounter(&crate::tls::RELOADS),
        );
        registry.register(
            "tls_reload_failures",
            "Changes to the TLS files that held no good pair (the previous pair is still served)",
            StaticCounter(&crate::tls::RELOAD_FAILURES),
        );
        registry.register(
            "compressed_sockets",
            "WebSockets on which permessage-deflate was negotiated",
            StaticCounter(&crate::deflate::SOCKETS),
        );
        registry.register(
            "compressed_message_bytes",
            "Payload bytes of the outgoing messages sent compressed",
            StaticCounter(&crate::deflate::MESSAGE_BYTES),
        );
        registry.register(
            "compressed_wire_bytes",
            "What those messages took on the wire, compressed (frame headers aside)",
            StaticCounter(&crate::deflate::WIRE_BYTES),
        );
        registry.register(
            "log_write_errors",
            "Log lines dropped because stdout failed or could not keep up",
            StaticCounter(&crate::logging::WRITE_ERRORS),
        );
        Metrics {
            registry,
            active,
            detached,
            detaches,
            started,
            ended,
            idle_timeouts,
            duration,
            refused,
            bytes_in,
            bytes_out,
            rss,
            fds,
            auth_failures,
            forwarding,
            forwarded,
            peers,
        }
    }

    /// A forwarded socket opened (`+1`) or closed (`-1`).
    pub fn forwarding(&self, by: i64) {
        self.forwarding.inc_by(by);
        if by > 0 {
            self.forwarded.inc_by(by as u64);
        }
    }

    pub fn set_peers(&self, n: usize) {
        self.peers.set(n as i64);
    }

    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    pub fn started(&self) {
        self.started.inc();
        self.active.inc();
    }

    pub fn ended(&self, reason: EndReason, lasted: Duration) {
        self.active.dec();
        self.count_end(reason);
        if reason == EndReason::Idle {
            self.idle_timeouts.inc();
        }
        self.duration.observe(lasted.as_secs_f64());
    }

    /// Counts an end for a session that never started (refused, failed to spawn).
    pub fn count_end(&self, reason: EndReason) {
        self.ended
            .get_or_create(&vec![("reason", reason.label())])
            .inc();
    }

    pub fn detached(&self, by: i64) {
        self.detached.inc_by(by);
        if by > 0 {
            self.detaches.inc_by(by as u64);
        }
    }

    pub fn refused(&self, why: Refusal) {
        self.refused
            .get_or_create(&vec![("reason", why.label())])
            .inc();
    }

    pub fn input(&self, n: usize) {
        self.bytes_in.inc_by(n as u64);
    }

    pub fn output(&self, n: usize) {
        self.bytes_out.inc_by(n as u64);
    }

    /// The text exposition, with process figures read now.
    pub fn render(&self) -> String {
        self.rss.set(resident_bytes().unwrap_or(0) as i64);
        self.fds.set(open_fds().unwrap_or(0) as i64);
        let mut out = String::new();
        // Encoding into a String only fails if a metric's own encoder does,
        // which the built-in metric types never do.
        if encode(&mut out, &self.registry).is_err() {
            log::error!("could not encode metrics");
        }
        out
    }
}

/// A counter kept in a plain atomic by code that must not depend on the
/// metrics registry (the logger runs before any registry exists, and in
/// every process, including the client tools).
#[derive(Debug)]
struct StaticCounter(&'static AtomicU64);

impl TypedMetric for StaticCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for StaticCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0.load(Ordering::Relaxed), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_reason() {
        let m = Metrics::new();
        m.started();
        m.started();
        m.ended(EndReason::Idle, Duration::from_secs(400));
        m.count_end(EndReason::Refused);
        m.output(10);
        m.detached(1);
        m.detached(-1);
        m.refused(Refusal::Origin);
        let text = m.render();
        assert!(text.contains("webterm_sessions_active 1\n"), "{text}");
        assert!(
            text.contains("webterm_sessions_started_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"webterm_sessions_ended_total{reason="idle"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"webterm_sessions_ended_total{reason="refused"} 1"#),
            "{text}"
        );
        assert!(text.contains("webterm_idle_timeouts_total 1\n"), "{text}");
        assert!(text.contains("webterm_output_bytes_total 10\n"), "{text}");
        assert!(text.contains("webterm_sessions_detached 0\n"), "{text}");
        assert!(text.contains("webterm_detaches_total 1\n"), "{text}");
        assert!(
            text.contains(r#"webterm_requests_refused_total{reason="origin"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("webterm_process_resident_memory_bytes "),
            "{text}"
        );
        assert!(text.contains("webterm_auth_failures_total 0\n"), "{text}");
        assert!(text.contains("webterm_log_write_errors_total "), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
