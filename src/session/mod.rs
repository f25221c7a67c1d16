//! One terminal session's whole life, and nothing else.
//!
//! A session starts with the socket that asked for it (`admit`: proofs,
//! the session limit, spawning the terminal), then runs attachments one at
//! a time (`attachment`: the pumps between one socket and the PTY). When a
//! client that can resume (`?resumable=1`) goes away, the session detaches:
//! its output goes on into the replay buffer (`output`), and it waits
//! `--reconnect-window` for the same client, which proves itself with the
//! session's resume token, to come back. Every other ending, and a window
//! that passes, ends the session through one sequence (`teardown`).
//! Read-only viewers (`viewer`) watch the output without being attached.
//! `registry` holds the table of sessions, the limit and the shutdown.
//!
//! `Session` is the face the rest of the server sees (the table, the API,
//! reattaching sockets); the `Terminal` (PTY and child) belongs to the
//! session's own task alone, which is what lets only teardown end it.

mod admit;
mod attachment;
mod output;
mod registry;
mod replay;
mod teardown;
mod viewer;

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_tungstenite::tungstenite::{Bytes, Message};
use futures_lite::FutureExt as _;
use futures_timer::Delay;

use crate::duration::format_duration;
use crate::idle::Activity;
use crate::latch::Latch;
use crate::protocol::{server, Claim, End, Mode};
use crate::socket::Socket;
use crate::terminal::{CommandSpec, Terminal};
use attachment::Outcome;

pub use output::MAX_VIEWERS;
pub use registry::{Registry, Slot};

/// How long output may keep draining after the child exits, for background
/// processes that still hold the terminal.
const EXIT_DRAIN: Duration = Duration::from_millis(300);

/// What every session needs from the server: the operator's options, and
/// what was made of them at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config: Arc<crate::config::Config>,
    /// The command each tab runs (the login shell, or inside tmux).
    pub command: CommandSpec,
    /// Where each session's processes are kept, so that all are found.
    pub containment: crate::terminal::Containment,
    /// What this replica's session ids start with (`cluster::tag_of`).
    pub id_prefix: String,
}

/// What a socket asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    New,
    /// Reattach to, or watch, this session (proof follows as the first message).
    Claim(Claim, String),
}

/// Everything a new socket is handed by the HTTP layer.
pub struct Request {
    pub mode: Mode,
    pub peer: String,
    /// Whom `--max-sessions-per-client` counts (a user, or an address).
    pub client: String,
    /// Initial size, so the first prompt is drawn for the real window.
    pub rows: u16,
    pub cols: u16,
    pub intent: Intent,
    /// The client can resume; a lost connection detaches instead of ending.
    pub resumable: bool,
    /// The client's own idle timeout (`?idle_timeout=`; zero asks for none).
    pub idle_timeout: Option<Duration>,
    /// Arguments appended to the command of a new session (`--url-arg`,
    /// already checked); a resumed session keeps the ones it started with.
    pub args: Vec<String>,
}

/// A socket on its way into a running session.
pub struct Attachment {
    pub ws: Socket,
    pub mode: Mode,
    pub peer: String,
    /// Output the client already has (absolute offset), for the replay.
    pub have: u64,
    /// The client's window, applied when it reattaches.
    pub size: Option<(u16, u16)>,
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A client is connected.
    Attached,
    /// Its client went away; it waits for a reconnect.
    Detached,
    /// Teardown has begun.
    Ending,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Attached => "attached",
            State::Detached => "detached",
            State::Ending => "ending",
        }
    }
}

/// One running session, as the rest of the server sees it.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub pid: u32,
    pub command: String,
    pub protocol: &'static str,
    pub started: SystemTime,
    pub started_at: Instant,
    settings: Arc<Settings>,
    registry: Arc<Registry>,
    /// This session's idle timeout, after the client's request was clamped.
    idle_timeout: Option<Duration>,
    activity: Activity,
    peer: Mutex<String>,
    /// Proves a reattaching client owns this session; never leaves the
    /// server except in the owner's `setup` message.
    resume_token: String,
    /// Lets a viewer watch read-only; the owner hands it out.
    view_token: String,
    /// Where a reattaching socket is handed to the session's task.
    handover: async_channel::Sender<Attachment>,
    output: output::Output,
    bytes_in: AtomicU64,
    state: AtomicU8,
    kill: Latch,
}

impl Session {
    pub fn state(&self) -> State {
        match self.state.load(Ordering::Acquire) {
            0 => State::Attached,
            1 => State::Detached,
            _ => State::Ending,
        }
    }

    fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub fn peer(&self) -> String {
        self.peer.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn set_peer(&self, peer: &str) {
        if let Ok(mut p) = self.peer.lock() {
            *p = peer.to_string();
        }
    }

    /// Time since the user's last input.
    pub fn since_input(&self) -> Duration {
        self.activity.since_input()
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    pub fn bytes_out(&self) -> u64 {
        self.output.total()
    }

    pub fn viewer_count(&self) -> usize {
        self.output.viewer_count()
    }

    /// Asks the session to end through its normal teardown.
    pub fn request_kill(&self) {
        self.kill.set();
    }

    /// Whether `token` proves `claim` on this session (constant time).
    fn proves(&self, claim: Claim, token: &str) -> bool {
        let secret = match claim {
            Claim::Resume => &self.resume_token,
            Claim::View => &self.view_token,
        };
        crate::auth::ct_eq(secret.as_bytes(), token.as_bytes())
    }

    /// Input from the client, on its way to the PTY.
    fn record_input(&self, n: usize) {
        self.activity.input();
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        self.registry.metrics().input(n);
    }

    /// Output read from the PTY: numbered, kept for replay, given to viewers.
    fn record_output(&self, bytes: &Bytes) {
        self.output.record(bytes);
        self.registry.metrics().output(bytes.len());
        self.activity.output();
    }

    /// The ends that do not depend on any socket: the child, shutdown, an
    /// operator. Races every attachment, and the detached wait.
    async fn ended(&self, terminal: &Terminal) -> End {
        async {
            let status = terminal.exited().await;
            Delay::new(EXIT_DRAIN).await;
            End::Exited(status)
        }
        .or(async {
            self.registry.shutdown_requested().await;
            End::Shutdown
        })
        .or(async {
            self.kill.wait().await;
            End::Killed
        })
        .await
    }

    fn setup_message(&self, mode: Mode, resumed: bool, offset: u64) -> String {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let owner_secrets = mode == Mode::Binary;
        server::setup(
            mode,
            &server::Setup {
                session: &self.id,
                pid: self.pid,
                protocol: mode.name(),
                resumed,
                offset,
                idle_timeout_ms: ms(self.idle_timeout),
                idle_warning_ms: ms(self.settings.config.idle_warning),
                reconnect_window_ms: self.settings.config.reconnect_window.as_millis() as u64,
                readonly: self.settings.config.readonly,
                resume_token: owner_secrets.then_some(self.resume_token.as_str()),
                view_token: owner_secrets.then_some(self.view_token.as_str()),
            },
        )
    }
}

/// Serves one new socket: a fresh session, a reattachment, or a viewer.
/// Never panics on client input, and when it starts a session, returns only
/// after every process of it has been reaped.
pub async fn serve(ws: Socket, req: Request, settings: Arc<Settings>, registry: Arc<Registry>) {
    let Some(new) = admit::admit(ws, req, &settings, &registry).await else {
        return;
    };
    let (req, terminal) = (new.req, new.terminal);

    let (handover, handovers) = async_channel::bounded(1);
    let idle_timeout = crate::idle::clamp(
        req.idle_timeout,
        settings.config.idle_timeout,
        settings.config.max_idle_timeout,
    );
    if let (Some(asked), Some(got)) = (req.idle_timeout, idle_timeout) {
        if asked != got {
            log::info!(
                "idle timeout of {} asked for, clamped to {}",
                format_duration(asked),
                format_duration(got)
            );
        }
    }
    let session = Arc::new(Session {
        id: new.id,
        pid: terminal.pid(),
        command: settings.command.with_args(&req.args).display(),
        protocol: req.mode.name(),
        started: SystemTime::now(),
        started_at: Instant::now(),
        settings: Arc::clone(&settings),
        registry: Arc::clone(&registry),
        idle_timeout,
        activity: Activity::new(settings.config.idle_policy),
        peer: Mutex::new(req.peer.clone()),
        resume_token: crate::random::hex(32),
        view_token: crate::random::hex(32),
        handover,
        output: output::Output::default(),
        bytes_in: AtomicU64::new(0),
        state: AtomicU8::new(State::Attached as u8),
        kill: Latch::default(),
    });
    registry.list(Arc::clone(&session));
    registry.metrics().started();
    log::info!(
        "Started Terminal session={} pid={} peer={} protocol={} size={}x{} idle_timeout={} command={:?}",
        session.id,
        session.pid,
        req.peer,
        req.mode.name(),
        req.rows,
        req.cols,
        idle_timeout.map(format_duration).unwrap_or_else(|| "off".into()),
        session.command
    );

    let mut ws = new.ws;
    if let Some(n) = new.notice {
        // The client asked to resume and could not: tell it before its setup.
        let _ = ws.send(Message::text(n)).await;
    }
    let resumable =
        req.resumable && req.mode == Mode::Binary && !settings.config.reconnect_window.is_zero();
    let first = Attachment {
        ws,
        mode: req.mode,
        peer: req.peer,
        have: 0,
        size: None,
    };
    let end = run(&session, &terminal, first, &handovers, resumable).await;
    teardown::end(&session, terminal, &handovers, end, new.slot).await;
}

/// The attach/detach loop: runs attachments one after another, and waits
/// while detached, until something ends the session.
async fn run(
    session: &Session,
    terminal: &Terminal,
    first: Attachment,
    handovers: &async_channel::Receiver<Attachment>,
    resumable: bool,
) -> End {
    let mut next = Some(first);
    let mut fresh = true;
    loop {
        if let Some(att) = next.take() {
            session.set_state(State::Attached);
            session.set_peer(&att.peer);
            match attachment::run(session, terminal, att, fresh, handovers).await {
                Outcome::Ended(end) => return end,
                Outcome::Replaced(att) => {
                    log::info!(
                        "Reattached Terminal session={} pid={} peer={} (took over)",
                        session.id,
                        session.pid,
                        att.peer
                    );
                    fresh = false;
                    next = Some(*att);
                    continue;
                }
                Outcome::Left(leave) if !resumable => return End::Left(leave),
                Outcome::Left(leave) => log::info!(
                    "Detached Terminal session={} pid={} ({leave}); waiting {} for a reconnect",
                    session.id,
                    session.pid,
                    format_duration(session.settings.config.reconnect_window)
                ),
            }
            fresh = false;
        }
        session.set_state(State::Detached);
        let metrics = session.registry.metrics();
        metrics.detached(1);
        let window = session.settings.config.reconnect_window;
        let waited = async {
            match handovers.recv().await {
                Ok(att) => Ok(att),
                // The sender lives in the session as long as the session.
                Err(_) => std::future::pending().await,
            }
        }
        .or(async { Err(attachment::detached(session, terminal).await) })
        .or(async {
            Delay::new(window).await;
            Err(End::ReconnectWindow(window))
        })
        .await;
        metrics.detached(-1);
        match waited {
            Ok(att) => {
                log::info!(
                    "Reattached Terminal session={} pid={} peer={}",
                    session.id,
                    session.pid,
                    att.peer
                );
                next = Some(att);
            }
            Err(end) => return end,
        }
    }
}
