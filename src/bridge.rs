//! One WebSocket attached to a running session: the pumps between socket and
//! PTY, flow control, keepalive, idle warnings, and the socket's last words.
//!
//! A session outlives its sockets (see `session`): each attachment runs
//! here until something ends it, and says whether the *session* ended or
//! only the *client* went away (then a resumable session detaches).
//!
//! Backpressure is structural: the output pump reads the PTY only after the
//! previous frame was handed to the socket (`send` awaits the flush), with
//! nothing queued in between, and, once the client acknowledges output, at
//! most `protocol::ACK_WINDOW` bytes unacknowledged. A client that stops
//! reading stops the child at the kernel's PTY buffer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_lock::Mutex;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use event_listener::Event;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt as _, FutureExt as _};
use futures_timer::Delay;
use futures_util::StreamExt as _;

use crate::config::format_duration;
use crate::idle::{self, IdleClock};
use crate::protocol::{self, close, server, ClientMessage, Mode};
use crate::pty;
use crate::session::{Attachment, End, Life};
use crate::utf8::Utf8Decoder;

/// How much PTY output one frame carries at most.
pub const OUTPUT_CHUNK: usize = 32 * 1024;
/// How long output may keep draining after the child exits, for background
/// processes that still hold the terminal.
const EXIT_DRAIN: Duration = Duration::from_millis(300);
/// How long we wait on a client to accept our last words and close frame.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Any connection a WebSocket can run over; boxed so that a socket can be
/// handed from the HTTP layer to a running session through a channel.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}
pub type Socket = WebSocketStream<Box<dyn Io>>;
pub type Sink = Mutex<WebSocketSender<Box<dyn Io>>>;
pub type Stream = WebSocketReceiver<Box<dyn Io>>;

/// How an attachment ended.
pub enum Outcome {
    /// The session is over; the client has been told why.
    Ended(End),
    /// The client went away; the session itself could go on.
    Lost(End),
    /// Another socket proved ownership and takes over.
    Replaced(Box<Attachment>),
}

/// Per-attachment flow-control and keepalive state. Atomic because the
/// racing futures share it and the session future must be `Send`.
struct Flow {
    /// Any frame from the client (pongs included), for the keepalive rule.
    heard: IdleClock,
    /// True while the input pump is blocked writing to a child that does not
    /// read: the client cannot be heard then, through no fault of its own.
    input_stalled: AtomicBool,
    paused: AtomicBool,
    /// Absolute output offset the client has acknowledged, and whether it acks.
    acked: AtomicU64,
    acking: AtomicBool,
    /// Notified on resume and on every ack: the output pump may go on.
    resumed: Event,
}

impl Flow {
    fn new(acked_from: u64) -> Flow {
        Flow {
            heard: IdleClock::default(),
            input_stalled: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            acked: AtomicU64::new(acked_from),
            acking: AtomicBool::new(false),
            resumed: Event::new(),
        }
    }

    /// The output pump waits while the client asked for a pause, or while a
    /// full window of output is unacknowledged.
    fn must_wait(&self, sent: u64) -> bool {
        self.paused.load(Ordering::Acquire)
            || (self.acking.load(Ordering::Acquire)
                && sent.saturating_sub(self.acked.load(Ordering::Acquire)) >= protocol::ACK_WINDOW)
    }
}

/// Runs one attachment until it or the session ends.
pub async fn attach(
    life: &Life<'_>,
    att: Attachment,
    child: &mut async_process::Child,
    attach_rx: &async_channel::Receiver<Attachment>,
    first: bool,
) -> Outcome {
    let handle = life.handle;
    let mode = att.mode;
    let (sink, mut stream) = att.ws.split();
    let sink: Sink = Mutex::new(sink);
    handle.set_peer(att.peer.clone());
    if let Some((rows, cols)) = att.size {
        if !first {
            if let Err(e) = life.pty.resize(rows, cols) {
                log::warn!("resize on reattach failed: {e}");
            }
        }
    }

    // What the client gets first: setup, then (on a reattach) the replay.
    let resumption = (!first).then(|| handle.replay().resume_from(att.have));
    let offset = resumption.as_ref().map_or(0, |r| r.offset);
    let setup = life.setup_message(mode, resumption.is_some(), offset);
    if let Err(e) = send(&sink, Message::text(setup)).await {
        return Outcome::Lost(End::ClientGone(e.to_string()));
    }
    if let Some(r) = &resumption {
        for chunk in r.bytes.chunks(OUTPUT_CHUNK) {
            if let Err(e) = send(&sink, Message::binary(chunk.to_vec())).await {
                return Outcome::Lost(End::ClientGone(e.to_string()));
            }
        }
        if !r.seamless {
            // The screen was rebuilt from history, not from state: ask
            // full-screen programs (socktop, htop, vim) to redraw.
            life.pty.request_redraw();
        }
    }

    let flow = Flow::new(offset);
    let end = output_pump(life, mode, Some(&sink), Some(&flow))
        .or(input_pump(life, mode, &mut stream, &flow))
        .or(watch_idle(life, mode, Some(&sink)))
        .or(keepalive(&sink, &flow, life.settings.ping_interval))
        .or(life.session_ends(child))
        .or(async {
            match attach_rx.recv().await {
                Ok(next) => End::Replaced(Box::new(next)),
                // The sender lives in the handle as long as the session.
                Err(_) => std::future::pending().await,
            }
        })
        .await;

    match end {
        End::Replaced(next) => {
            close_socket(
                &sink,
                &mut stream,
                close::REPLACED,
                "another connection took over this session",
            )
            .await;
            Outcome::Replaced(next)
        }
        End::ClientClosed | End::ClientGone(_) | End::Keepalive(_) => Outcome::Lost(end),
        end => {
            let (code, reason, last_words) = life.last_words(mode, &end, child).await;
            if let Some(words) = last_words {
                let _ = send(&sink, Message::text(words))
                    .or(timeout_err(CLOSE_TIMEOUT))
                    .await;
            }
            close_socket(&sink, &mut stream, code, &reason).await;
            Outcome::Ended(end)
        }
    }
}

/// Runs while no client is attached: output goes to the replay buffer (and
/// viewers) only. Completes with the session's end, if it comes first.
///
/// Nobody acknowledges output now, so the window closes after one window's
/// worth: a program that floods while detached is stopped by the kernel's
/// PTY buffer instead of keeping webterm reading flat out for nobody.
pub async fn while_detached(life: &Life<'_>, child: &mut async_process::Child) -> End {
    let flow = Flow::new(life.handle.bytes_out.load(Ordering::Acquire));
    flow.acking.store(true, Ordering::Release);
    output_pump(life, Mode::Binary, None, Some(&flow))
        .or(watch_idle(life, Mode::Binary, None))
        .or(life.session_ends(child))
        .await
}

/// PTY -> replay buffer, viewers and (when attached) the socket.
async fn output_pump(life: &Life<'_>, mode: Mode, sink: Option<&Sink>, flow: Option<&Flow>) -> End {
    use std::io::Read as _;
    let handle = life.handle;
    let mut decoder = Utf8Decoder::default();
    loop {
        if let Some(flow) = flow {
            while flow.must_wait(handle.bytes_out.load(Ordering::Acquire)) {
                let listener = flow.resumed.listen();
                if !flow.must_wait(handle.bytes_out.load(Ordering::Acquire)) {
                    break;
                }
                listener.await;
            }
        }
        // Wait for output before allocating a buffer, so an idle session
        // holds no output buffer at all.
        if let Err(e) = life.pty.io().readable().await {
            return End::PtyError(e);
        }
        let mut buf = vec![0u8; OUTPUT_CHUNK];
        let mut n = 0;
        let mut eof = false;
        // Gather what is already there, up to one chunk: fewer, larger frames.
        while n < buf.len() {
            match life.pty.io().get_ref().read(&mut buf[n..]) {
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
            let bytes = Bytes::from(buf);
            life.record_output(&bytes);
            if let Some(sink) = sink {
                let msg = match mode {
                    Mode::Binary => Some(Message::Binary(bytes)),
                    Mode::Terminado => {
                        let mut text = String::with_capacity(n);
                        decoder.decode_into(&bytes, &mut text);
                        (!text.is_empty()).then(|| Message::text(server::stdout(&text)))
                    }
                };
                if let Some(msg) = msg {
                    if let Err(e) = send(sink, msg).await {
                        return End::ClientGone(e.to_string());
                    }
                }
            }
        }
        if eof {
            let tail = decoder.finish();
            if let (Some(sink), Mode::Terminado, false) = (sink, mode, tail.is_empty()) {
                let _ = send(sink, Message::text(server::stdout(&tail))).await;
            }
            return End::OutputClosed;
        }
    }
}

/// Socket -> PTY, plus control messages.
async fn input_pump(life: &Life<'_>, mode: Mode, stream: &mut Stream, flow: &Flow) -> End {
    let handle = life.handle;
    while let Some(frame) = stream.next().await {
        flow.heard.touch();
        let parsed = match frame {
            Ok(Message::Text(t)) => protocol::parse_text(mode, t.as_str()),
            Ok(Message::Binary(b)) => protocol::parse_binary(mode, &b),
            Ok(Message::Close(_)) => return End::ClientClosed,
            Ok(_) => continue, // ping, pong: the library answers pings itself
            Err(e) => return ws_error(e),
        };
        match parsed {
            Ok(ClientMessage::Input(_)) if life.settings.readonly => {
                log::trace!("read-only: input dropped");
            }
            Ok(ClientMessage::Input(bytes)) => {
                handle.input.touch();
                handle.activity.touch();
                handle
                    .bytes_in
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                life.registry.metrics().input(bytes.len());
                flow.input_stalled.store(true, Ordering::Release);
                let written = { life.pty.io() }.write_all(&bytes).await;
                flow.input_stalled.store(false, Ordering::Release);
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
                handle.input.touch();
                handle.activity.touch();
                let Some((rows, cols)) = protocol::accept_size(rows, cols, "resize") else {
                    continue;
                };
                if let Err(e) = life.pty.resize(rows, cols) {
                    log::warn!("resize to {rows}x{cols} failed: {e}");
                }
            }
            Ok(ClientMessage::Pause) => flow.paused.store(true, Ordering::Release),
            Ok(ClientMessage::Resume) => {
                flow.paused.store(false, Ordering::Release);
                flow.resumed.notify(usize::MAX);
            }
            Ok(ClientMessage::Ack(bytes)) => {
                // Never more than was sent, never backwards: a confused or
                // hostile client can only slow its own session down.
                let sent = handle.bytes_out.load(Ordering::Acquire);
                flow.acked.fetch_max(bytes.min(sent), Ordering::AcqRel);
                flow.acking.store(true, Ordering::Release);
                flow.resumed.notify(usize::MAX);
            }
            Ok(ClientMessage::Unknown(kind)) => {
                log::debug!("ignoring unknown {} message type {kind:?}", mode.name());
            }
            Err(e) => return End::Protocol(e),
        }
    }
    End::ClientGone("connection closed without a close frame".into())
}

/// The idle rule's clock, with the warning: completes with `End::Idle` once
/// the session has been idle for its timeout. Sends `idle_warning` when
/// `--idle-warning` is left, and `idle_warning_cleared` if input arrives
/// after it (binary clients only).
async fn watch_idle(life: &Life<'_>, mode: Mode, sink: Option<&Sink>) -> End {
    let Some(timeout) = life.idle_timeout else {
        return std::future::pending().await;
    };
    let warning = life.settings.idle_warning.filter(|w| *w < timeout);
    let mut warned = false;
    loop {
        match idle::check(&life.handle.activity, timeout, warning) {
            idle::Status::Expired(idle) => return End::Idle(idle),
            idle::Status::Warn(left) if !warned => {
                warned = true;
                if let (Some(sink), Mode::Binary) = (sink, mode) {
                    let msg = server::idle_warning(left);
                    let _ = send(sink, Message::text(msg))
                        .or(timeout_err(CLOSE_TIMEOUT))
                        .await;
                }
                log::info!(
                    "session={}: idle warning, {} left",
                    life.handle.id,
                    format_duration(Duration::from_secs(left.as_secs()))
                );
            }
            idle::Status::Active if warned => {
                warned = false;
                if let (Some(sink), Mode::Binary) = (sink, mode) {
                    let _ = send(sink, Message::text(server::idle_warning_cleared()))
                        .or(timeout_err(CLOSE_TIMEOUT))
                        .await;
                }
            }
            _ => {}
        }
        let next = idle::next_check(
            &life.handle.activity,
            timeout,
            warning,
            warned,
            life.settings.idle_check_interval,
        );
        if warned {
            // Wake as soon as the user is back, to clear the warning at once
            // (and so warn again, in time, if they go quiet again).
            Delay::new(next).or(life.handle.activity.touched()).await;
        } else {
            Delay::new(next).await;
        }
    }
}

/// Pings every `interval`; completes when the client has been silent for two.
async fn keepalive(sink: &Sink, flow: &Flow, interval: Option<Duration>) -> End {
    let Some(interval) = interval else {
        return std::future::pending().await;
    };
    loop {
        Delay::new(interval).await;
        let silent = flow.heard.idle_for();
        if silent >= interval * 2 && !flow.input_stalled.load(Ordering::Acquire) {
            return End::Keepalive(silent);
        }
        // A socket that cannot take a ping for a whole interval is stalled;
        // the silence check above ends it on a later round.
        let _ = send(sink, Message::Ping(Default::default()))
            .or(timeout_err(interval))
            .await;
    }
}

/// Exit watch: the child's status, after letting its last output drain.
pub async fn child_exit(child: &mut async_process::Child) -> End {
    let status = child.status().await.ok();
    Delay::new(EXIT_DRAIN).await;
    End::ChildExited(status)
}

pub async fn send(sink: &Sink, msg: Message) -> Result<(), WsError> {
    sink.lock().await.send(msg).await
}

async fn timeout_err(d: Duration) -> Result<(), WsError> {
    Delay::new(d).await;
    Err(WsError::Io(std::io::ErrorKind::TimedOut.into()))
}

/// Sends a close frame and waits briefly for the client's reply, so the TCP
/// connection ends cleanly rather than with a reset that could discard the
/// close frame before the browser reads it.
pub async fn close_socket(sink: &Sink, stream: &mut Stream, code: u16, reason: &str) {
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

/// Closes a socket that never became part of a session.
pub async fn refuse(ws: Socket, code: u16, reason: &str, notice: Option<String>) {
    let (sink, mut stream) = ws.split();
    let sink = Mutex::new(sink);
    if let Some(n) = notice {
        let _ = send(&sink, Message::text(n))
            .or(timeout_err(CLOSE_TIMEOUT))
            .await;
    }
    close_socket(&sink, &mut stream, code, reason).await;
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
        // A TCP reset or EOF without a close frame: the client went away
        // (a closed laptop, a dropped network), which is no protocol error.
        WsError::Protocol(
            async_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => End::ClientGone("connection reset without a close frame".into()),
        WsError::Protocol(p) => End::Protocol(protocol::ProtocolError {
            close_code: 1002,
            reason: format!("WebSocket protocol error: {p}"),
        }),
        other => End::ClientGone(other.to_string()),
    }
}
