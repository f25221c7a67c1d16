//! webterm: a web terminal server. A browser page runs xterm.js; each of its
//! WebSockets gets a fresh PTY running the configured command; the session
//! ends (and every process it started is reaped) when the socket closes, the
//! child exits, the user goes idle, or the server shuts down.
//!
//! Where to find things:
//! - `config`: every option, declared once (flag, variable, default, help).
//! - `http`: routes and the WebSocket upgrade (the only tide code).
//! - `listener`: the listening sockets (TCP with its send buffer, Unix
//!   socket files and their mode).
//! - `tls`: the certificate and key for `--tls-cert`, reloaded on renewal.
//! - `origin`: the cross-site checks: Origin before an upgrade, Host (DNS
//!   rebinding) before anything when authentication is off.
//! - `csp`: security headers and the page's Content-Security-Policy.
//! - `auth`: Basic, proxy-header and signed-cookie authentication, login backoff.
//! - `api`: the `/api/sessions` document; `metrics`: `/metrics`;
//!   `usage`: a session's CPU time and memory.
//! - `cluster/`: replicas as peers: discovery, the peer proof, and the relay
//!   that forwards a socket to the replica holding its session.
//! - `fetch`: plain HTTP/1.1 requests (the CLI tools, and peers).
//! - `protocol`: the wire format of both protocols: messages, limits, the
//!   resume/view proof, every close code and why a session ended (`End`).
//! - `session/`: one terminal session's whole life: `admit` (proof, limit,
//!   spawn), `attachment` (one socket: pumps, flow control), `output`
//!   (replay, viewers, byte counts under one lock), `viewer`, `teardown`
//!   (the one ending sequence), `registry` (the table, limits, shutdown).
//! - `socket`: sending, closing and keepalive on one WebSocket;
//!   `deflate`: permessage-deflate beneath it.
//! - `idle`: the idle-timeout rule, whole.
//! - `terminal`: a PTY and its child as one value, and `Terminal::end`,
//!   the only way a session's processes stop; `spawn`: starting its child
//!   (clone3 into the session's cgroup, std's spawn where refused).
//! - `cgroup`, `proctree`: where a session's processes are found.
//! - `reaper`: spawning leaders, reaping every child; `keeper`: what ends
//!   sessions' leftovers if webterm itself dies.
//! - `latch`: the race-free wait on a flag or a count.
//! - `heap`: freed memory given back after a burst of sessions ends.
//! - `logging`: a logger that can never block or take the server down.
//! - `duration`, `size`, `random`, `utf8`: small leaves.

pub mod api;
pub mod assets;
pub mod auth;
pub mod cgroup;
pub mod cluster;
pub mod config;
pub mod csp;
pub mod deflate;
pub mod duration;
pub mod fetch;
pub mod health;
pub mod heap;
pub mod http;
pub mod idle;
pub mod keeper;
pub mod latch;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod origin;
pub mod proctree;
pub mod protocol;
pub mod random;
pub mod reaper;
pub mod session;
pub mod size;
pub mod socket;
pub mod spawn;
pub mod terminal;
pub mod tls;
pub mod usage;
pub mod utf8;

use std::sync::Arc;
use std::time::Duration;

use futures_lite::FutureExt as _;
use futures_util::StreamExt as _;

use config::{format_duration, Config};
use session::{Registry, Settings};

/// How long shutdown waits for sessions beyond their kill grace.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(3);
/// And after that, once what is left has been killed outright.
const SHUTDOWN_FORCE: Duration = Duration::from_secs(10);

/// Runs the server until SIGTERM or SIGINT, then shuts down gracefully:
/// drain first if `--drain-timeout` asks for it (see `drain`), then stop
/// accepting, close every socket with 1001, end every session through its
/// one teardown, and return once all are reaped (or time is up).
pub async fn run(config: Config) -> Result<i32, String> {
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    // TLS first: a bad certificate is a configuration mistake, reported
    // before anything is bound.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(tls::Tls::load(cert, key)?)),
        _ => None,
    };
    let mut listeners = Vec::new();
    // Unix socket files, removed when these drop as `run` returns.
    let mut socket_files = Vec::new();
    // Where each listener serves, for the log: the URL, or the socket file.
    let mut places = Vec::new();
    let mut locals = Vec::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    for place in &config.listen {
        match place {
            config::Listen::Tcp(addr) => {
                let l = listener::bind(*addr)
                    .map_err(|e| format!("--listen {addr}: cannot listen: {e}"))?;
                let local = l.local_addr().map_err(|e| e.to_string())?;
                places.push(format!("{scheme}://{local}{}/", config.base_path));
                locals.push(local);
                listeners.push(http::Bound::Tcp(l));
            }
            config::Listen::Unix(path) => {
                let (l, file) = listener::bind_unix(path, config.socket_mode)
                    .map_err(|e| format!("--listen {place}: cannot listen: {e}"))?;
                places.push(format!(
                    "{place} (mode {:04o}, plain HTTP, base path {}/)",
                    config.socket_mode, config.base_path
                ));
                listeners.push(http::Bound::Unix(l));
                socket_files.push(file);
            }
        }
    }
    let mut command = terminal::CommandSpec::from_config(config.command.as_deref());
    if let Some(name) = &config.tmux {
        if !terminal::on_path("tmux") {
            return Err("--tmux: tmux is not installed (or not on PATH)".into());
        }
        command = command.in_tmux(name);
    }
    let containment = contain(&config);
    // Before becoming a subreaper, so that the keeper is not our child.
    let mut keeper = start_keeper(&containment);
    reaper::become_subreaper();
    async_std::task::spawn(reaper::reap_orphans_forever());
    let cluster = Arc::new(cluster::Cluster::new(&config));
    let settings = Arc::new(Settings {
        config: Arc::new(config.clone()),
        command: command.clone(),
        containment: containment.clone(),
        id_prefix: cluster.tag().to_string(),
    });
    let registry = Registry::new(config.max_sessions(), config.max_per_client());
    let auth_enabled = !config.credentials.is_empty() || config.auth_header.is_some();
    let app = http::app(http::State {
        settings,
        registry: Arc::clone(&registry),
        allowed_origins: config.allowed_origins.clone(),
        assets_dir: config.assets_dir.clone(),
        page_config: http::render_page_config(&config, cluster.enabled().then(|| cluster.tag())),
        auth: auth::Auth::new(auth::Settings {
            credentials: config.credentials.clone(),
            header: config.auth_header.clone(),
            secret: config.secret.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
        }),
        base_path: config.base_path.clone(),
        hosts: origin::HostGuard::new(auth_enabled, &config.allowed_hosts, &locals),
        cluster: Arc::clone(&cluster),
    });
    if cluster.enabled() {
        log::info!(
            "node {} (session ids start with {}); peers: {}",
            cluster.node(),
            cluster.tag(),
            config.peers.join(", ")
        );
        let (cluster, registry) = (Arc::clone(&cluster), Arc::clone(&registry));
        async_std::task::spawn(async move { cluster.discover_forever(registry.metrics()).await });
    }

    {
        let registry = Arc::clone(&registry);
        async_std::task::spawn(async move { heap::trim_after_bursts(&registry).await });
    }

    // Before the start-up line, which tells scripts (and the tests) that
    // the server is up: the warnings are out by then.
    for local in &locals {
        if local.ip().is_loopback() {
            continue;
        }
        if !auth_enabled {
            log::warn!(
                "listening on {local}, beyond this machine, without authentication: anyone who can reach it gets a shell as this user"
            );
        } else if tls.is_none() {
            log::warn!(
                "listening on {local}, beyond this machine, without TLS: passwords and login cookies travel in clear text unless a TLS proxy is in front (see --tls-cert)"
            );
        }
    }
    log::info!(
        "webterm {} listening on {} command={:?} idle_timeout={} max_sessions={}",
        env!("CARGO_PKG_VERSION"),
        places[0],
        command.display(),
        config
            .idle_timeout
            .map(format_duration)
            .unwrap_or_else(|| "off".into()),
        config.max_sessions
    );
    for place in &places[1..] {
        log::info!("also listening on {place}");
    }
    if let Some(tls) = &tls {
        async_std::task::spawn(Arc::clone(tls).watch());
    }
    if !config.credentials.is_empty() && config.secret.is_none() {
        log::info!(
            "login cookies are signed with a random key: a restart logs users out, and other replicas do not accept them (see --secret-file)"
        );
    }

    // The listener keeps running through the drain and the shutdown, so
    // probes see /readyz turn 503 (and new sockets are refused with 503)
    // until the last session is reaped; the race below drops it then.
    let serving = async {
        match http::listen(app, listeners, tls).await {
            Ok(()) => Err("the listener stopped unexpectedly".to_string()),
            Err(e) => Err(format!("the listener failed: {e}")),
        }
    };
    let shutdown = async {
        // Only a signal drains: `--once` and `--exit-when-empty` stop when
        // no session is left anyway.
        let (why, code, signalled) = async {
            match signals.next().await {
                Some(Ok(sig)) => Ok((format!("received {sig:?}"), 0, true)),
                _ => Err("signal handling failed".to_string()),
            }
        }
        .or(async {
            let (why, code) = finished(&config, &registry).await;
            Ok((why, code, false))
        })
        .await?;
        if signalled && !config.drain_timeout.is_zero() {
            drain(&config, &registry, &mut signals).await;
        }
        log::info!("{why}: shutting down {} sessions", registry.active());
        registry.begin_shutdown();
        let deadline = config.kill_grace + SHUTDOWN_SLACK;
        let mut waited = ended_within(&registry, deadline, &mut signals).await;
        if waited == Ending::TimedOut {
            // A loaded machine can take longer than that to hang up, kill
            // and reap every session. Exiting now would hand their
            // processes to init unreaped: kill what is left outright, and
            // give the teardowns a while longer to collect it.
            log::warn!(
                "shutdown: {} sessions still ending after {}; killing their processes",
                registry.active(),
                format_duration(deadline)
            );
            if let Some(instance) = &containment.cgroups {
                instance.kill_all();
            }
            waited = ended_within(&registry, SHUTDOWN_FORCE, &mut signals).await;
        }
        let drained = waited == Ending::Ended;
        if drained {
            if let Some(instance) = &containment.cgroups {
                instance.remove();
            }
            if let Some(keeper) = keeper.take() {
                keeper.dismiss();
            }
            let n = reaper::reap_remaining(Duration::from_secs(1)).await;
            if n > 0 {
                log::debug!("reaped {n} processes left by the last sessions");
            }
            log::info!("shutdown complete");
        } else {
            log::warn!(
                "shutdown: {} sessions still ending after {}",
                registry.active(),
                format_duration(deadline + SHUTDOWN_FORCE)
            );
            // What has died by now is at least not handed on as a zombie
            // (unless a second signal asked not to wait at all).
            if waited == Ending::TimedOut {
                reaper::reap_remaining(Duration::from_secs(1)).await;
            }
        }
        Ok(code)
    };
    serving.or(shutdown).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Ended,
    TimedOut,
    /// A second SIGTERM or SIGINT: exit without waiting.
    Signal,
}

/// Waits for every session to have ended, at most `limit`.
async fn ended_within(
    registry: &Registry,
    limit: Duration,
    signals: &mut async_signal::Signals,
) -> Ending {
    async {
        registry.all_ended().await;
        Ending::Ended
    }
    .or(async {
        futures_timer::Delay::new(limit).await;
        Ending::TimedOut
    })
    .or(async {
        signals.next().await;
        log::warn!("second signal: exiting without waiting for sessions");
        Ending::Signal
    })
    .await
}

/// The drain before a shutdown (`--drain-timeout`): unready, no new
/// sessions, every attached page told when its session will end; running
/// sessions go on, and may be reattached, until they all end by themselves
/// (then the server exits early), the timeout passes, or a second signal
/// says not to wait. Whatever is still running then gets the usual shutdown.
async fn drain(config: &Config, registry: &Registry, signals: &mut async_signal::Signals) {
    let timeout = config.drain_timeout;
    log::info!(
        "draining: no new sessions; {} running may go on for up to {}",
        registry.active(),
        format_duration(timeout)
    );
    registry.begin_drain(std::time::Instant::now() + timeout);
    async {
        registry.all_ended().await;
        log::info!("drain: every session has ended");
    }
    .or(async {
        futures_timer::Delay::new(timeout).await;
        log::info!("drain: {} passed", format_duration(timeout));
    })
    .or(async {
        signals.next().await;
        log::warn!("second signal: ending the drain early");
    })
    .await;
}

/// When the server stops by itself, why, and with which exit code:
/// `--once` after its one session, `--exit-when-empty` once no session has
/// existed for that long. Never, otherwise.
async fn finished(config: &Config, registry: &Registry) -> (String, i32) {
    if config.once {
        registry.ran_and_emptied().await;
        let code = registry.last_exit().unwrap_or(0);
        return (
            format!("--once: the session ended (exit code {code})"),
            code,
        );
    }
    let Some(quiet) = config.exit_when_empty else {
        return std::future::pending().await;
    };
    loop {
        registry.all_ended().await;
        let before = registry.started();
        futures_timer::Delay::new(quiet).await;
        if registry.active() == 0 && registry.started() == before {
            return (
                format!(
                    "--exit-when-empty: no session for {}",
                    format_duration(quiet)
                ),
                0,
            );
        }
    }
}

/// Where sessions' processes will be kept: a cgroup each where the host
/// allows (and the operator did not say --no-cgroups), and always marked,
/// except under --tmux (see `terminal::Containment`).
fn contain(config: &Config) -> terminal::Containment {
    if config.tmux.is_some() {
        return terminal::Containment::default();
    }
    let mark = Some(format!("{}={}.", terminal::MARK, random::hex(6)));
    let cgroups = if config.no_cgroups {
        log::info!("sessions are tracked by process tree (--no-cgroups)");
        None
    } else {
        match cgroup::Instance::detect() {
            Ok(instance) => {
                log::info!(
                    "each session gets its own cgroup under {}",
                    instance.dir().display()
                );
                Some(Arc::new(instance))
            }
            Err(why) => {
                log::info!("sessions are tracked by process tree, not cgroups: {why}");
                None
            }
        }
    };
    terminal::Containment { cgroups, mark }
}

/// The keeper ends what sessions leave behind if webterm dies; not needed
/// as PID 1, whose death ends every process of its container.
fn start_keeper(containment: &terminal::Containment) -> Option<keeper::Keeper> {
    let mark = containment.mark.as_deref()?;
    if rustix::process::getpid().is_init() {
        return None;
    }
    let cgroup = containment.cgroups.as_ref().map(|c| c.dir());
    match keeper::Keeper::start(cgroup, mark) {
        Ok(k) => Some(k),
        Err(e) => {
            log::warn!("cannot start the keeper ({e}): if webterm is killed, processes that left their sessions will outlive it");
            None
        }
    }
}
