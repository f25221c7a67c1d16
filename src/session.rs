//! One terminal session: a WebSocket bridged to a child on a PTY, from the
//! first frame to the last reaped process.
//!
//! The bridge is a handful of futures raced against each other on one task;
//! whichever finishes first says why the session ends (`End`), and then the
//! one teardown sequence runs, whatever the reason:
//!
//! 1. log `Stopping Terminal` with the reason;
//! 2. tell the client why (exit status, idle timeout, shutdown, protocol
//!    error) and send a close frame, waiting at most a second for a client
//!    that does not read;
//! 3. end every process in the child's session and reap them (`reaper`);
//! 4. log `Stopped Terminal`; the session's slot is freed when it drops.
//!
//! Backpressure is structural: the output pump reads the PTY only after the
//! previous chunk has been handed to the socket (`send` awaits the flush),
//! with nothing queued in between. A client that stops reading stops the
//! child at the kernel's PTY buffer, and server memory stays flat.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_lock::Mutex;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use event_listener::Event;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt as _, FutureExt as _};
use futures_timer::Delay;
use futures_util::StreamExt as _;

use crate::config::format_duration;
use crate::idle::{self, IdleClock};
use crate::metrics::EndReason;
use crate::protocol::{self, close, server, ClientMessage, Mode, SizeDecision};
use crate::pty::{self, CommandSpec, Pty};
use crate::reaper;
use crate::sessions::{Handle, Registry, Slot, State};
use crate::utf8::Utf8Decoder;

/// How much PTY output one frame carries at most.
const OUTPUT_CHUNK: usize = 32 * 1024;
/// How long output may keep draining after the child exits, for background
/// processes that still hold the terminal.
const EXIT_DRAIN: Duration = Duration::from_millis(300);
/// How long we wait on a client to accept our last words and close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every session needs from the server's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub command: CommandSpec,
    pub idle_timeout: Option<Duration>,
    pub idle_check_interval: Duration,
    pub ping_interval: Option<Duration>,
    pub kill_grace: Duration,
    /// Output only: input from clients is dropped (resizes still apply).
    pub readonly: bool,
}

/// Everything a new session is handed by the HTTP layer.
pub struct Request {
    pub mode: Mode,
    pub peer: String,
    /// Initial size, so the first prompt is drawn for the real window.
    pub rows: u16,
    pub cols: u16,
    /// `None` when the session limit was reached: the socket is refused.
    pub slot: Option<Slot>,
}

/// Why a session ended. The first future of the bridge to finish decides.
#[derive(Debug)]
enum End {
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
        }
    }

    fn reason(&self) -> EndReason {
        match self {
            End::ChildExited(_) | End::OutputClosed => EndReason::Exit,
            End::ClientClosed | End::ClientGone(_) | End::Keepalive(_) => EndReason::Disconnect,
            End::Protocol(_) | End::PtyError(_) => EndReason::Error,
            End::Idle(_) => EndReason::Idle,
            End::Shutdown => EndReason::Shutdown,
            End::Killed => EndReason::Killed,
        }
    }
}

/// State shared by the racing futures of one session. Everything here is
/// atomic because the session future must be `Send` to be spawned.
struct Shared<'a> {
    /// What the server and operator see: activity clock and byte counts.
    handle: &'a Handle,
    registry: &'a Registry,
    readonly: bool,
    /// Any frame from the client (pongs included), for the keepalive rule.
    heard: IdleClock,
    /// True while the input pump is blocked writing to a child that does not
    /// read: the client cannot be heard then, through no fault of its own.
    input_stalled: AtomicBool,
    paused: AtomicBool,
    /// Output bytes the client has acknowledged, and whether it acknowledges.
    acked: AtomicU64,
    acking: AtomicBool,
    /// Notified on resume and on every ack: the output pump may go on.
    resumed: Event,
}

impl<'a> Shared<'a> {
    fn new(handle: &'a Handle, registry: &'a Registry, readonly: bool) -> Self {
        Shared {
            handle,
            registry,
            readonly,
            heard: IdleClock::default(),
            input_stalled: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            acking: AtomicBool::new(false),
            resumed: Event::new(),
        }
    }

    /// Flow control: the output pump waits while the client asked for a
    /// pause, or while a full window of output is unacknowledged.
    fn must_wait(&self) -> bool {
        if self.paused.load(Ordering::Acquire) {
            return true;
        }
        self.acking.load(Ordering::Acquire)
            && self.handle.bytes_out.load(Ordering::Acquire) - self.acked.load(Ordering::Acquire)
                >= protocol::ACK_WINDOW
    }
}

type Sink<S> = Mutex<WebSocketSender<S>>;

/// Runs one session to its end. Never panics on client input, and returns
/// only after every process it started has been reaped.
pub async fn serve<S>(
    ws: WebSocketStream<S>,
    req: Request,
    settings: Arc<Settings>,
    registry: Arc<Registry>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let sink: Sink<S> = Mutex::new(sink);

    let Some(_slot) = req.slot else {
        let why = if registry.is_shutting_down() {
            (close::GOING_AWAY, "server shutting down".to_string())
        } else {
            (
                close::TRY_AGAIN_LATER,
                format!("too many sessions (limit {})", registry.max()),
            )
        };
        log::warn!("Refused terminal for {}: {}", req.peer, why.1);
        registry.metrics().count_end(EndReason::Refused);
        close_socket(&sink, &mut stream, why.0, &why.1).await;
        return;
    };

    let id = new_session_id();
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
            if req.mode == Mode::Binary {
                let _ = send(&sink, Message::text(server::notice("error", &reason))).await;
            }
            close_socket(&sink, &mut stream, close::INTERNAL_ERROR, &reason).await;
            return;
        }
    };
    let pid = child.id();
    let handle = Arc::new(Handle::new(
        id.clone(),
        pid,
        settings.command.display(),
        req.peer.clone(),
        req.mode.name(),
    ));
    registry.list_session(Arc::clone(&handle));
    registry.metrics().started();
    log::info!(
        "Started Terminal session={id} pid={pid} peer={} protocol={} size={}x{} command={:?}",
        req.peer,
        req.mode.name(),
        req.rows,
        req.cols,
        settings.command.display()
    );

    let shared = Shared::new(&handle, &registry, settings.readonly);
    let setup = server::setup(
        req.mode,
        &server::Setup {
            session: &id,
            pid,
            protocol: req.mode.name(),
        },
    );
    let end = match send(&sink, Message::text(setup)).await {
        Err(e) => End::ClientGone(e.to_string()),
        Ok(()) => {
            output_pump(&pty, req.mode, &sink, &shared)
                .or(input_pump(&pty, req.mode, &mut stream, &shared))
                .or(async {
                    End::Idle(
                        idle::watch(
                            &handle.input,
                            settings.idle_timeout,
                            settings.idle_check_interval,
                        )
                        .await,
                    )
                })
                .or(keepalive(&sink, &shared, settings.ping_interval))
                .or(async {
                    let status = child.status().await.ok();
                    Delay::new(EXIT_DRAIN).await;
                    End::ChildExited(status)
                })
                .or(async {
                    registry.shutdown_requested().await;
                    End::Shutdown
                })
                .or(async {
                    handle.kill_requested().await;
                    End::Killed
                })
                .await
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

    let (code, reason, last_words) = match &end {
        End::ChildExited(_) | End::OutputClosed => {
            let status = match &end {
                End::ChildExited(Some(s)) => Some(*s),
                // Output ended first; the exit status follows within moments.
                _ => {
                    async { child.status().await.ok() }
                        .or(async {
                            Delay::new(CLOSE_TIMEOUT).await;
                            None
                        })
                        .await
                }
            };
            let (code, signal) = exit_code(status);
            (
                close::NORMAL,
                match signal {
                    Some(sig) => format!("child killed by signal {sig}"),
                    None => format!("child exited with code {code}"),
                },
                Some(server::exit(req.mode, code, signal)),
            )
        }
        End::Idle(d) => {
            let msg = format!("idle timeout: no input for {}", format_duration(*d));
            (
                close::IDLE_TIMEOUT,
                msg.clone(),
                notice(req.mode, "idle_timeout", &msg),
            )
        }
        End::Shutdown => (
            close::GOING_AWAY,
            "server shutting down".into(),
            notice(req.mode, "shutdown", "server shutting down"),
        ),
        End::Killed => (
            close::KILLED,
            "ended by an operator".into(),
            notice(req.mode, "killed", "ended by an operator"),
        ),
        End::Protocol(e) => (e.close_code, e.reason.clone(), None),
        End::Keepalive(_) => (close::KEEPALIVE_TIMEOUT, "no answer to pings".into(), None),
        End::PtyError(e) => (close::INTERNAL_ERROR, format!("terminal error: {e}"), None),
        End::ClientClosed | End::ClientGone(_) => (close::NORMAL, String::new(), None),
    };
    let client_there = !matches!(
        end,
        End::ClientClosed | End::ClientGone(_) | End::Keepalive(_)
    );
    if client_there {
        if let Some(words) = last_words {
            let _ = send(&sink, Message::text(words))
                .or(timeout_err(CLOSE_TIMEOUT))
                .await;
        }
        close_socket(&sink, &mut stream, code, &reason).await;
    }
    drop(sink);
    drop(stream);

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

/// PTY -> socket. Reads only once the previous frame has been sent.
async fn output_pump<S>(pty: &Pty, mode: Mode, sink: &Sink<S>, shared: &Shared<'_>) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use std::io::Read as _;
    let mut decoder = Utf8Decoder::default();
    loop {
        while shared.must_wait() {
            let listener = shared.resumed.listen();
            if !shared.must_wait() {
                break;
            }
            listener.await;
        }
        // Wait for output before allocating a buffer, so an idle session
        // holds no output buffer at all.
        if let Err(e) = pty.io().readable().await {
            return End::PtyError(e);
        }
        let mut buf = vec![0u8; OUTPUT_CHUNK];
        let mut n = 0;
        let mut eof = false;
        // Gather what is already there, up to one chunk: fewer, larger frames.
        while n < buf.len() {
            match pty.io().get_ref().read(&mut buf[n..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if pty::is_hangup(&e) => {
                    eof = true;
                    break;
                }
                Err(e) => return End::PtyError(e),
            }
        }
        if n > 0 {
            buf.truncate(n);
            shared
                .handle
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
            shared.registry.metrics().output(n);
            let msg = match mode {
                Mode::Binary => Some(Message::binary(buf)),
                Mode::Terminado => {
                    let mut text = String::with_capacity(n);
                    decoder.decode_into(&buf, &mut text);
                    (!text.is_empty()).then(|| Message::text(server::stdout(&text)))
                }
            };
            if let Some(msg) = msg {
                if let Err(e) = send(sink, msg).await {
                    return End::ClientGone(e.to_string());
                }
            }
        }
        if eof {
            let tail = decoder.finish();
            if mode == Mode::Terminado && !tail.is_empty() {
                let _ = send(sink, Message::text(server::stdout(&tail))).await;
            }
            return End::OutputClosed;
        }
    }
}

/// Socket -> PTY, plus control messages.
async fn input_pump<S>(
    pty: &Pty,
    mode: Mode,
    stream: &mut WebSocketReceiver<S>,
    shared: &Shared<'_>,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(frame) = stream.next().await {
        shared.heard.touch();
        let parsed = match frame {
            Ok(Message::Text(t)) => protocol::parse_text(mode, t.as_str()),
            Ok(Message::Binary(b)) => protocol::parse_binary(mode, &b),
            Ok(Message::Close(_)) => return End::ClientClosed,
            Ok(_) => continue, // ping, pong: the library answers pings itself
            Err(e) => return ws_error(e),
        };
        match parsed {
            Ok(ClientMessage::Input(_)) if shared.readonly => {
                log::trace!("read-only: input dropped");
            }
            Ok(ClientMessage::Input(bytes)) => {
                shared.handle.input.touch();
                shared
                    .handle
                    .bytes_in
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                shared.registry.metrics().input(bytes.len());
                shared.input_stalled.store(true, Ordering::Release);
                let written = { pty.io() }.write_all(&bytes).await;
                shared.input_stalled.store(false, Ordering::Release);
                if let Err(e) = written {
                    if pty::is_hangup(&e) {
                        // The child is gone; the output pump or the exit watch
                        // reports it with its status.
                        return std::future::pending().await;
                    }
                    return End::PtyError(e);
                }
            }
            Ok(ClientMessage::Resize { rows, cols }) => {
                shared.handle.input.touch();
                let (rows, cols) = match protocol::clamp_size(rows, cols) {
                    SizeDecision::Accept { rows, cols } => (rows, cols),
                    SizeDecision::Clamped { rows, cols, why } => {
                        log::warn!("resize clamped: {why}");
                        (rows, cols)
                    }
                    SizeDecision::Refused(why) => {
                        log::warn!("resize refused: {why}");
                        continue;
                    }
                };
                if let Err(e) = pty.resize(rows, cols) {
                    log::warn!("resize to {rows}x{cols} failed: {e}");
                }
            }
            Ok(ClientMessage::Pause) => shared.paused.store(true, Ordering::Release),
            Ok(ClientMessage::Resume) => {
                shared.paused.store(false, Ordering::Release);
                shared.resumed.notify(usize::MAX);
            }
            Ok(ClientMessage::Ack(bytes)) => {
                // Never more than was sent, never backwards: a confused or
                // hostile client can only slow its own session down.
                let sent = shared.handle.bytes_out.load(Ordering::Acquire);
                shared.acked.fetch_max(bytes.min(sent), Ordering::AcqRel);
                shared.acking.store(true, Ordering::Release);
                shared.resumed.notify(usize::MAX);
            }
            Ok(ClientMessage::Unknown(kind)) => {
                log::debug!("ignoring unknown {} message type {kind:?}", mode.name());
            }
            Err(e) => return End::Protocol(e),
        }
    }
    End::ClientGone("connection closed without a close frame".into())
}

/// Pings every `interval`; completes when the client has been silent for two.
async fn keepalive<S>(sink: &Sink<S>, shared: &Shared<'_>, interval: Option<Duration>) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(interval) = interval else {
        return std::future::pending().await;
    };
    loop {
        Delay::new(interval).await;
        let silent = shared.heard.idle_for();
        if silent >= interval * 2 && !shared.input_stalled.load(Ordering::Acquire) {
            return End::Keepalive(silent);
        }
        // A socket that cannot take a ping for a whole interval is stalled;
        // the silence check above ends it on a later round.
        let _ = send(sink, Message::Ping(Default::default()))
            .or(timeout_err(interval))
            .await;
    }
}

fn notice(mode: Mode, kind: &str, message: &str) -> Option<String> {
    (mode == Mode::Binary).then(|| server::notice(kind, message))
}

async fn send<S>(sink: &Sink<S>, msg: Message) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    sink.lock().await.send(msg).await
}

async fn timeout_err(d: Duration) -> Result<(), WsError> {
    Delay::new(d).await;
    Err(WsError::Io(std::io::ErrorKind::TimedOut.into()))
}

/// Sends a close frame and waits briefly for the client's reply, so the TCP
/// connection ends cleanly rather than with a reset that could discard the
/// close frame before the browser reads it.
async fn close_socket<S>(sink: &Sink<S>, stream: &mut WebSocketReceiver<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: truncate_utf8(reason, 123).into(),
    };
    let closing = async {
        if send(sink, Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(_)) = stream.next().await {}
        }
    };
    closing.or(Delay::new(CLOSE_TIMEOUT)).await;
}

/// Close reasons are limited to 123 bytes by RFC 6455.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn ws_error(e: WsError) -> End {
    match e {
        WsError::Capacity(c) => End::Protocol(protocol::ProtocolError {
            close_code: close::MESSAGE_TOO_BIG,
            reason: format!("message too big: {c}"),
        }),
        WsError::Utf8(_) => End::Protocol(protocol::ProtocolError {
            close_code: close::INVALID_PAYLOAD,
            reason: "text frame is not valid UTF-8".into(),
        }),
        WsError::Protocol(p) => End::Protocol(protocol::ProtocolError {
            close_code: 1002,
            reason: format!("WebSocket protocol error: {p}"),
        }),
        other => End::ClientGone(other.to_string()),
    }
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

/// 128 random bits, hex: unguessable, so a session can later be named in a
/// URL (reconnect, shared viewing) without being enumerable.
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source at all is a broken system; fall back to
        // something unique (not secret) rather than refusing terminals.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
