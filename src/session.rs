//! One terminal session's life: a child on a PTY, the sockets that come and
//! go, and the one teardown at the end.
//!
//! A session starts with the socket that asked for it, and runs a loop of
//! attachments (`bridge::attach`). When a client that can resume (the page
//! says so with `?resumable=1`) goes away, the session *detaches*: its
//! output goes on into the replay buffer, and it waits `--reconnect-window`
//! for the same client, which proves itself with the session's secret
//! resume token, to come back. Every other ending, and a window that
//! passes, ends the session. Whatever the reason, one sequence follows:
//!
//! 1. log `Stopping Terminal` with the reason (the client, if attached, has
//!    been told why and its socket closed, by `bridge`);
//! 2. disconnect read-only viewers;
//! 3. end every process in the child's session and reap them (`reaper`);
//! 4. count it in the metrics, drop it from the table, log `Stopped Terminal`;
//!    its slot frees when the last borrow of it drops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::tungstenite::{Bytes, Message};
use futures_lite::FutureExt as _;
use futures_timer::Delay;
use futures_util::StreamExt as _;

use crate::bridge::{self, Outcome, Socket};
use crate::config::format_duration;
use crate::metrics::EndReason;
use crate::protocol::{self, close, server, Mode};
use crate::pty::{CommandSpec, Pty};
use crate::reaper;
use crate::sessions::{Handle, Registry, State};

/// How long a resuming or viewing client has to send its token.
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// What every session needs from the server's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub command: CommandSpec,
    pub idle_timeout: Option<Duration>,
    /// The most a client may ask for with `?idle_timeout=`.
    pub max_idle_timeout: Option<Duration>,
    pub idle_check_interval: Duration,
    /// Warn the client this long before an idle timeout.
    pub idle_warning: Option<Duration>,
    /// `--idle-policy activity`: output keeps a session alive too.
    pub output_is_activity: bool,
    pub ping_interval: Option<Duration>,
    pub kill_grace: Duration,
    /// Output only: input from clients is dropped (resizes still apply).
    pub readonly: bool,
    /// How long a detached session waits for its client; zero ends it at once.
    pub reconnect_window: Duration,
}

/// What a socket asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    New,
    /// Reattach to this session (proof follows as the first message).
    Resume(String),
    /// Watch this session read-only (proof follows as the first message).
    View(String),
}

/// Everything a new socket is handed by the HTTP layer.
pub struct Request {
    pub mode: Mode,
    pub peer: String,
    /// Initial size, so the first prompt is drawn for the real window.
    pub rows: u16,
    pub cols: u16,
    pub intent: Intent,
    /// The client can resume; a lost connection detaches instead of ending.
    pub resumable: bool,
    /// The client's own idle timeout (`?idle_timeout=`; zero asks for none).
    pub idle_timeout: Option<Duration>,
}

/// A socket on its way into a running session.
pub struct Attachment {
    pub ws: Socket,
    pub mode: Mode,
    pub peer: String,
    /// Output the client already has (absolute offset), for the replay.
    pub have: u64,
    pub size: Option<(u16, u16)>,
}

/// Why a session (or an attachment) ended.
pub enum End {
    /// The child exited (`None`: its status could not be read).
    ChildExited(Option<std::process::ExitStatus>),
    /// The PTY reported end of output: every process let go of the terminal.
    OutputClosed,
    ClientClosed,
    /// The socket failed or vanished without a close frame.
    ClientGone(String),
    Protocol(protocol::ProtocolError),
    Idle(Duration),
    Keepalive(Duration),
    Shutdown,
    /// An operator ended it (`webterm sessions --kill`).
    Killed,
    PtyError(std::io::Error),
    /// Detached, and the client did not come back in time.
    ReconnectWindow(Duration),
    /// Only ends an attachment: the owner reconnected on another socket.
    Replaced(Box<Attachment>),
}

impl End {
    fn describe(&self) -> String {
        match self {
            End::ChildExited(_) | End::OutputClosed => "child exited".into(),
            End::ClientClosed => "client closed the socket".into(),
            End::ClientGone(e) => format!("socket lost: {e}"),
            End::Protocol(e) => format!("protocol error: {e}"),
            End::Idle(d) => format!("idle timeout ({} idle)", format_duration(*d)),
            End::Keepalive(d) => format!(
                "client stopped answering pings ({} silent)",
                format_duration(*d)
            ),
            End::Shutdown => "server shutting down".into(),
            End::Killed => "ended by an operator".into(),
            End::PtyError(e) => format!("PTY error: {e}"),
            End::ReconnectWindow(d) => {
                format!("client did not reconnect within {}", format_duration(*d))
            }
            End::Replaced(_) => "replaced by another connection".into(),
        }
    }

    fn reason(&self) -> EndReason {
        match self {
            End::ChildExited(_) | End::OutputClosed => EndReason::Exit,
            End::ClientClosed
            | End::ClientGone(_)
            | End::Keepalive(_)
            | End::ReconnectWindow(_)
            | End::Replaced(_) => EndReason::Disconnect,
            End::Protocol(_) | End::PtyError(_) => EndReason::Error,
            End::Idle(_) => EndReason::Idle,
            End::Shutdown => EndReason::Shutdown,
            End::Killed => EndReason::Killed,
        }
    }
}

/// What the attachments of one session share.
pub struct Life<'a> {
    pub handle: &'a Handle,
    pub registry: &'a Registry,
    pub settings: &'a Settings,
    pub pty: &'a Pty,
    /// This session's idle timeout, after the client's request was clamped.
    pub idle_timeout: Option<Duration>,
}

impl Life<'_> {
    /// Output read from the PTY: numbered, kept for replay, given to viewers.
    /// One lock covers the replay buffer and the viewers, so a viewer that
    /// joins gets each byte exactly once (from the replay or from its queue).
    pub fn record_output(&self, bytes: &Bytes) {
        let mut replay = self.handle.replay();
        replay.push(bytes);
        self.handle.bytes_out.store(replay.end(), Ordering::Release);
        self.handle.feed_viewers(bytes);
        drop(replay);
        self.registry.metrics().output(bytes.len());
        if self.settings.output_is_activity {
            self.handle.activity.touch();
        }
    }

    /// Ends that do not depend on any socket: the child, shutdown, an operator.
    pub async fn session_ends(&self, child: &mut async_process::Child) -> End {
        bridge::child_exit(child)
            .or(async {
                self.registry.shutdown_requested().await;
                End::Shutdown
            })
            .or(async {
                self.handle.kill_requested().await;
                End::Killed
            })
            .await
    }

    pub fn setup_message(&self, mode: Mode, resumed: bool, offset: u64) -> String {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let owner_secrets = mode == Mode::Binary;
        server::setup(
            mode,
            &server::Setup {
                session: &self.handle.id,
                pid: self.handle.pid,
                protocol: mode.name(),
                resumed,
                offset,
                idle_timeout_ms: ms(self.idle_timeout),
                idle_warning_ms: ms(self.settings.idle_warning),
                reconnect_window_ms: self.settings.reconnect_window.as_millis() as u64,
                readonly: self.settings.readonly,
                resume_token: owner_secrets.then_some(self.handle.resume_token.as_str()),
                view_token: owner_secrets.then_some(self.handle.view_token.as_str()),
            },
        )
    }

    /// The close code, reason and final message for a session that ended
    /// while a client was attached.
    pub async fn last_words(
        &self,
        mode: Mode,
        end: &End,
        child: &mut async_process::Child,
    ) -> (u16, String, Option<String>) {
        let notice =
            |kind: &str, msg: &str| (mode == Mode::Binary).then(|| server::notice(kind, msg));
        match end {
            End::ChildExited(_) | End::OutputClosed => {
                let status = match end {
                    End::ChildExited(Some(s)) => Some(*s),
                    // Output ended first; the exit status follows within moments.
                    _ => {
                        async { child.status().await.ok() }
                            .or(async {
                                Delay::new(bridge::CLOSE_TIMEOUT).await;
                                None
                            })
                            .await
                    }
                };
                let (code, signal) = exit_code(status);
                let reason = match signal {
                    Some(sig) => format!("child killed by signal {sig}"),
                    None => format!("child exited with code {code}"),
                };
                (
                    close::NORMAL,
                    reason,
                    Some(server::exit(mode, code, signal)),
                )
            }
            End::Idle(d) => {
                let msg = format!(
                    "idle timeout: no input for {}",
                    format_duration(Duration::from_secs(d.as_secs()))
                );
                (
                    close::IDLE_TIMEOUT,
                    msg.clone(),
                    notice("idle_timeout", &msg),
                )
            }
            End::Shutdown => (
                close::GOING_AWAY,
                "server shutting down".into(),
                notice("shutdown", "server shutting down"),
            ),
            End::Killed => (
                close::KILLED,
                "ended by an operator".into(),
                notice("killed", "ended by an operator"),
            ),
            End::Protocol(e) => (e.close_code, e.reason.clone(), None),
            End::PtyError(e) => (close::INTERNAL_ERROR, format!("terminal error: {e}"), None),
            _ => (close::NORMAL, String::new(), None),
        }
    }
}

/// Serves one new socket: a fresh session, a reattachment, or a viewer.
/// Never panics on client input, and when it starts a session, returns only
/// after every process of it has been reaped.
pub async fn serve(mut ws: Socket, req: Request, settings: Arc<Settings>, registry: Arc<Registry>) {
    let mut fallback_notice = None;
    if let Intent::Resume(id) | Intent::View(id) = &req.intent {
        let viewing = matches!(req.intent, Intent::View(_));
        let want = if viewing { "view" } else { "resume" };
        let proof = if req.mode == Mode::Binary {
            read_proof(&mut ws, want).await
        } else {
            None
        };
        let handle = registry.session(id).filter(|h| h.state() != State::Ending);
        let verdict = match (&handle, &proof) {
            (Some(h), Some(p)) => {
                let token = if viewing {
                    &h.view_token
                } else {
                    &h.resume_token
                };
                crate::auth::ct_eq(token.as_bytes(), p.token.as_bytes())
            }
            _ => false,
        };
        match (verdict, handle, viewing) {
            (true, Some(h), true) => {
                crate::viewer::serve(ws, h, req.peer, settings.ping_interval).await;
                return;
            }
            (true, Some(h), false) => {
                let att = Attachment {
                    ws,
                    mode: req.mode,
                    peer: req.peer.clone(),
                    have: proof.map_or(0, |p| p.have),
                    size: Some((req.rows, req.cols)),
                };
                match h.attach.try_send(att) {
                    Ok(()) => return,
                    Err(e) => ws = e.into_inner().ws,
                }
                log::info!(
                    "Cannot resume session {id} for {}: it is busy or ending",
                    req.peer
                );
            }
            (_, _, true) => {
                log::warn!(
                    "Refused viewer for session {id} from {}: no such session, or wrong token",
                    req.peer
                );
                bridge::refuse(ws, close::NO_SUCH_SESSION, "no such session to view", None).await;
                return;
            }
            _ => log::info!(
                "Cannot resume session {id} for {}: no such session, or not theirs",
                req.peer
            ),
        }
        // Only binary clients can resume, and only they read notices.
        fallback_notice = (req.mode == Mode::Binary).then(|| {
            server::notice(
                "resume_failed",
                "the previous session has ended; this is a new one",
            )
        });
    }

    let Some(_slot) = registry.try_reserve() else {
        let (code, why) = if registry.is_shutting_down() {
            (close::GOING_AWAY, "server shutting down".to_string())
        } else {
            (
                close::TRY_AGAIN_LATER,
                format!("too many sessions (limit {})", registry.max()),
            )
        };
        log::warn!("Refused terminal for {}: {why}", req.peer);
        registry.metrics().count_end(EndReason::Refused);
        bridge::refuse(ws, code, &why, None).await;
        return;
    };

    let id = random_hex(16);
    let spawned = reaper::spawn_leader(|| {
        Pty::spawn(
            &settings.command,
            req.rows,
            req.cols,
            &[("TERM", "xterm-256color"), ("COLORTERM", "truecolor")],
        )
    });
    let (pty, mut child) = match spawned {
        Ok(p) => p,
        Err(e) => {
            log::error!(
                "Could not start '{}' for session {id}: {e}",
                settings.command.display()
            );
            registry.metrics().count_end(EndReason::Error);
            let reason = format!("could not start the terminal: {e}");
            let notice = (req.mode == Mode::Binary).then(|| server::notice("error", &reason));
            bridge::refuse(ws, close::INTERNAL_ERROR, &reason, notice).await;
            return;
        }
    };
    let pid = child.id();
    let (attach_tx, attach_rx) = async_channel::bounded(1);
    let handle = Arc::new(Handle::new(
        id.clone(),
        pid,
        settings.command.display(),
        req.peer.clone(),
        req.mode.name(),
        attach_tx,
    ));
    let idle_timeout = effective_idle_timeout(&settings, req.idle_timeout);
    registry.list_session(Arc::clone(&handle));
    registry.metrics().started();
    log::info!(
        "Started Terminal session={id} pid={pid} peer={} protocol={} size={}x{} idle_timeout={} command={:?}",
        req.peer,
        req.mode.name(),
        req.rows,
        req.cols,
        idle_timeout.map(format_duration).unwrap_or_else(|| "off".into()),
        settings.command.display()
    );

    let life = Life {
        handle: &handle,
        registry: &registry,
        settings: &settings,
        pty: &pty,
        idle_timeout,
    };
    if let Some(n) = fallback_notice {
        // The client asked to resume and could not: tell it before its setup.
        let _ = ws.send(Message::text(n)).await;
    }
    let resumable =
        req.resumable && req.mode == Mode::Binary && !settings.reconnect_window.is_zero();
    let mut next = Some(Attachment {
        ws,
        mode: req.mode,
        peer: req.peer,
        have: 0,
        size: None,
    });
    let mut first = true;
    let end = loop {
        if let Some(att) = next.take() {
            handle.set_state(State::Attached);
            match bridge::attach(&life, att, &mut child, &attach_rx, first).await {
                Outcome::Ended(end) => break end,
                Outcome::Replaced(att) => {
                    log::info!(
                        "Reattached Terminal session={id} pid={pid} peer={} (took over)",
                        att.peer
                    );
                    first = false;
                    next = Some(*att);
                    continue;
                }
                Outcome::Lost(end) if !resumable => break end,
                Outcome::Lost(end) => {
                    log::info!(
                        "Detached Terminal session={id} pid={pid} ({}); waiting {} for a reconnect",
                        end.describe(),
                        format_duration(settings.reconnect_window)
                    );
                }
            }
            first = false;
        }
        handle.set_state(State::Detached);
        registry.metrics().detached(1);
        let window = settings.reconnect_window;
        let waited = async {
            match attach_rx.recv().await {
                Ok(att) => Ok(att),
                Err(_) => std::future::pending().await,
            }
        }
        .or(async { Err(bridge::while_detached(&life, &mut child).await) })
        .or(async {
            Delay::new(window).await;
            Err(End::ReconnectWindow(window))
        })
        .await;
        registry.metrics().detached(-1);
        match waited {
            Ok(att) => {
                log::info!(
                    "Reattached Terminal session={id} pid={pid} peer={}",
                    att.peer
                );
                next = Some(att);
            }
            Err(end) => break end,
        }
    };

    // --- The one teardown sequence. ---
    handle.set_state(State::Ending);
    if let End::Idle(d) = &end {
        log::info!(
            "Terminal idle timeout reached ({} idle), stopping session session={id} pid={pid}",
            format_duration(*d)
        );
    }
    let level = match end {
        End::Protocol(_) | End::Keepalive(_) | End::PtyError(_) => log::Level::Warn,
        _ => log::Level::Info,
    };
    log::log!(
        level,
        "Stopping Terminal session={id} pid={pid} reason={:?}",
        end.describe()
    );
    handle.drop_viewers();
    // Sockets that raced to reattach get a clean refusal.
    attach_rx.close();
    while let Ok(late) = attach_rx.try_recv() {
        async_std::task::spawn(bridge::refuse(
            late.ws,
            close::NO_SUCH_SESSION,
            "the session has ended",
            None,
        ));
    }

    let report = reaper::end_session(&mut child, move || drop(pty), settings.kill_grace).await;
    let status = match report.status {
        Some(s) => format!("{s}"),
        None => "unknown (still running)".into(),
    };
    if report.killed > 0 {
        log::warn!(
            "session={id}: killed {} {} still alive {} after hangup",
            report.killed,
            if report.killed == 1 {
                "process"
            } else {
                "processes"
            },
            format_duration(settings.kill_grace)
        );
    }
    let lasted = handle.started_at.elapsed();
    registry.metrics().ended(end.reason(), lasted);
    registry.unlist_session(&id);
    log::info!(
        "Stopped Terminal session={id} pid={pid} status={status:?} duration={} bytes_in={} bytes_out={}",
        format_duration(Duration::from_secs(lasted.as_secs())),
        handle.bytes_in.load(Ordering::Relaxed),
        handle.bytes_out.load(Ordering::Relaxed)
    );
}

/// The client's idle timeout, within what the operator allows: a request
/// above `--max-idle-timeout` (or for none at all) gets the maximum.
fn effective_idle_timeout(settings: &Settings, requested: Option<Duration>) -> Option<Duration> {
    let Some(asked) = requested else {
        return settings.idle_timeout;
    };
    let ceiling = settings.max_idle_timeout.or(settings.idle_timeout);
    match (asked.is_zero(), ceiling) {
        (_, None) => (!asked.is_zero()).then_some(asked),
        (true, Some(max)) => Some(max),
        (false, Some(max)) if asked > max => {
            log::info!(
                "idle timeout of {} asked for, clamped to {}",
                format_duration(asked),
                format_duration(max)
            );
            Some(max)
        }
        (false, Some(_)) => Some(asked),
    }
}

/// `{"type": "resume"|"view", "token": T, "have": N}`, the first message of
/// a socket that names a session.
struct Proof {
    token: String,
    have: u64,
}

async fn read_proof(ws: &mut Socket, want: &str) -> Option<Proof> {
    let msg = async { ws.next().await }
        .or(async {
            Delay::new(PROOF_TIMEOUT).await;
            None
        })
        .await?;
    let Ok(Message::Text(text)) = msg else {
        return None;
    };
    let v: serde_json::Value = serde_json::from_str(text.as_str()).ok()?;
    if v["type"] != want {
        return None;
    }
    Some(Proof {
        token: v["token"].as_str()?.to_string(),
        have: v["have"].as_u64().unwrap_or(0),
    })
}

/// The status as a shell would report it: the exit code, or 128 + signal.
fn exit_code(status: Option<std::process::ExitStatus>) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (c, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            _ => (-1, None),
        },
        None => (-1, None),
    }
}

/// `bytes` random bytes as hex: session ids (16) and tokens (32) that cannot
/// be guessed or enumerated.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // No entropy source at all is a broken system. Ids stay unique (not
        // secret); tokens made from this would be guessable, so say so.
        log::error!("no source of randomness: session tokens are predictable");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (nanos >> ((i % 16) * 8)) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(idle: Option<u64>, max: Option<u64>) -> Settings {
        Settings {
            command: CommandSpec::from_config(None),
            idle_timeout: idle.map(Duration::from_secs),
            max_idle_timeout: max.map(Duration::from_secs),
            idle_check_interval: Duration::from_secs(30),
            idle_warning: None,
            output_is_activity: false,
            ping_interval: None,
            kill_grace: Duration::from_secs(2),
            readonly: false,
            reconnect_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn per_user_idle_timeouts_are_clamped() {
        let s = settings(Some(300), Some(3600));
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(effective_idle_timeout(&s, None), secs(300));
        assert_eq!(effective_idle_timeout(&s, secs(60)), secs(60));
        assert_eq!(effective_idle_timeout(&s, secs(7200)), secs(3600));
        assert_eq!(effective_idle_timeout(&s, Some(Duration::ZERO)), secs(3600));
        // Without --max-idle-timeout, the default is the ceiling.
        let s = settings(Some(300), None);
        assert_eq!(effective_idle_timeout(&s, secs(900)), secs(300));
        // With no timeout at all, a client may still ask for one.
        let s = settings(None, None);
        assert_eq!(effective_idle_timeout(&s, secs(60)), secs(60));
        assert_eq!(effective_idle_timeout(&s, Some(Duration::ZERO)), None);
    }

    #[test]
    fn ids_and_tokens_are_random_hex() {
        let a = random_hex(16);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(16));
    }
}
