//! One socket attached to a running session: the pumps between socket and
//! PTY, flow control, keepalive, idle warnings, and the socket's last words.
//!
//! A session outlives its sockets: each attachment runs here until
//! something ends it, and says whether the *session* ended or only the
//! *client* left (then a resumable session detaches).
//!
//! Backpressure is structural: the output pump reads the PTY only after the
//! previous frame was handed to the socket (`send` awaits the flush), with
//! nothing queued in between, and never more than the window beyond what
//! the client confirmed reading (by acks, or by answering the output pings
//! of `protocol::output_ping`): `protocol::ACK_WINDOW`, or for a client
//! that acks, what it consumes in `protocol::ACK_WINDOW_TIME`. A client
//! that stops reading stops the child at the kernel's PTY buffer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::{Bytes, Message};
use event_listener::Event;
use futures_lite::{AsyncWriteExt as _, FutureExt as _};
use futures_timer::Delay;
use futures_util::StreamExt as _;

use super::{Attachment, Session};
use crate::duration::format_duration;
use crate::idle;
use crate::latch::wait_until;
use crate::protocol::{self, close, server, ClientMessage, End, Leave, Mode};
use crate::socket::{self, Hearing, Sink, Stream, CLOSE_TIMEOUT, OUTPUT_CHUNK};
use crate::terminal::{self, Terminal};
use crate::utf8::Utf8Decoder;

/// How an attachment ended.
pub enum Outcome {
    /// The session is over; the client has been told why.
    Ended(End),
    /// The client left; the session itself could go on.
    Left(Leave),
    /// Another socket proved ownership and takes over.
    Replaced(Box<Attachment>),
}

/// The output pump's window: how far it may run ahead of the client.
/// Atomic because the racing futures share it.
struct Window {
    paused: AtomicBool,
    /// Absolute output offset the client has confirmed reading.
    acked: AtomicU64,
    /// Whether the client acks; if not, the output pump asks with pings.
    acking: AtomicBool,
    /// How far the pump may run ahead now: `protocol::ACK_WINDOW`, then
    /// what the client's acks show it can take (`protocol::ack_window`).
    limit: AtomicU64,
    /// Where the span the client's rate is measured over began: when, and
    /// what had been acked then. Only the input pump takes it.
    span: std::sync::Mutex<Option<(Instant, u64)>>,
    /// Notified on resume and on every ack: the output pump may go on.
    moved: Event,
}

impl Window {
    fn new(acked_from: u64) -> Window {
        Window {
            paused: AtomicBool::new(false),
            acked: AtomicU64::new(acked_from),
            acking: AtomicBool::new(false),
            limit: AtomicU64::new(protocol::ACK_WINDOW),
            span: std::sync::Mutex::new(None),
            moved: Event::new(),
        }
    }

    /// How many more bytes may be sent now: none while the client asked for
    /// a pause, else what the window has left.
    fn room(&self, sent: u64) -> u64 {
        if self.paused.load(Ordering::Acquire) {
            return 0;
        }
        let unconfirmed = sent.saturating_sub(self.acked.load(Ordering::Acquire));
        self.limit
            .load(Ordering::Acquire)
            .saturating_sub(unconfirmed)
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
        self.moved.notify(usize::MAX);
    }

    /// Never more than was sent, never backwards: a confused or hostile
    /// client can only slow its own session down. `explicit`: an ack, not a
    /// pong; such a client needs no more pings, and its acks size the
    /// window. Pongs never do: a client that does not ack may not be
    /// reading for anyone who could press Ctrl-C, and keeps the floor.
    fn ack(&self, bytes: u64, sent: u64, explicit: bool) {
        let acked = self
            .acked
            .fetch_max(bytes.min(sent), Ordering::AcqRel)
            .max(bytes.min(sent));
        if explicit {
            self.acking.store(true, Ordering::Release);
            self.measure(acked, Instant::now());
        }
        self.moved.notify(usize::MAX);
    }

    /// Sizes the window from how much the client acked over the last span
    /// of at least `protocol::ACK_RATE_SPAN`. A span that included a pause
    /// in the output reads slow and shrinks the window to the floor; the
    /// next one, during the flood, grows it again.
    fn measure(&self, acked: u64, now: Instant) {
        let mut span = self.span.lock().unwrap_or_else(|e| e.into_inner());
        match *span {
            Some((began, from)) if now - began >= protocol::ACK_RATE_SPAN => {
                let limit = protocol::ack_window(acked - from, now - began);
                self.limit.store(limit, Ordering::Release);
                *span = Some((now, acked));
            }
            Some(_) => {}
            None => *span = Some((now, acked)),
        }
    }
}

/// Where the output pump sends what it reads: the attached client, or
/// nobody (detached: the replay buffer and viewers only).
struct Client<'a> {
    sink: &'a Sink,
    mode: Mode,
}

/// Runs one attachment until it or the session ends.
pub(super) async fn run(
    session: &Session,
    terminal: &Terminal,
    att: Attachment,
    fresh: bool,
    handovers: &async_channel::Receiver<Attachment>,
) -> Outcome {
    let mode = att.mode;
    let (sink, mut stream) = socket::split(att.ws);
    if let (Some((rows, cols)), false) = (att.size, fresh) {
        if let Err(e) = terminal.resize(rows, cols) {
            log::warn!("resize on reattach failed: {e}");
        }
    }

    // What the client gets first: setup, then (on a reattach) the replay.
    let resumption = (!fresh).then(|| session.output.resume_from(att.have));
    let offset = resumption.as_ref().map_or(0, |r| r.offset);
    let setup = session.setup_message(mode, resumption.is_some(), offset);
    if let Err(e) = socket::send(&sink, Message::text(setup)).await {
        return Outcome::Left(Leave::Gone(e.to_string()));
    }
    if let Some(r) = &resumption {
        if let Err(e) = socket::send_output(&sink, &r.bytes).await {
            return Outcome::Left(Leave::Gone(e.to_string()));
        }
        if !r.seamless {
            // The screen was rebuilt from history, not from state: ask
            // full-screen programs (socktop, htop, vim) to redraw.
            terminal.request_redraw();
        }
    }

    let window = Window::new(offset);
    let hearing = Hearing::default();
    let client = Client { sink: &sink, mode };
    let settings = &session.settings;
    let stop = async {
        Ok(output_pump(session, terminal, Some(&client), &window)
            .or(input_pump(
                session,
                terminal,
                mode,
                &mut stream,
                &window,
                &hearing,
            ))
            .or(watch_idle(session, Some(&client)))
            .or(announce_drain(session, &client))
            .or(async {
                let silent =
                    socket::keepalive(&sink, &hearing, settings.config.ping_interval).await;
                End::Left(Leave::Keepalive(silent))
            })
            .or(session.ended(terminal))
            .await)
    }
    .or(async {
        match handovers.recv().await {
            Ok(next) => Err(Box::new(next)),
            // The sender lives in the session as long as the session.
            Err(_) => std::future::pending().await,
        }
    })
    .await;

    let end = match stop {
        Err(next) => {
            socket::close(
                &sink,
                &mut stream,
                close::REPLACED,
                "another connection took over this session",
            )
            .await;
            return Outcome::Replaced(next);
        }
        Ok(End::Left(Leave::Closed)) => {
            socket::answer_close(&sink).await;
            return Outcome::Left(Leave::Closed);
        }
        Ok(End::Left(leave)) => {
            // A client that stopped answering may still be reading: tell it why.
            if matches!(leave, Leave::Keepalive(_)) {
                let reason = leave.to_string();
                socket::close(&sink, &mut stream, close::KEEPALIVE_TIMEOUT, &reason).await;
            }
            return Outcome::Left(leave);
        }
        Ok(End::OutputClosed) => {
            // Output ended first; the exit status follows within moments.
            let status = async { terminal.exited().await }
                .or(async {
                    Delay::new(CLOSE_TIMEOUT).await;
                    None
                })
                .await;
            End::Exited(status)
        }
        Ok(end) => end,
    };
    let farewell = end.farewell(mode);
    if let Some(words) = farewell.last_words {
        let _ = socket::send_within(&sink, Message::text(words), CLOSE_TIMEOUT).await;
    }
    socket::close(&sink, &mut stream, farewell.code, &farewell.reason).await;
    Outcome::Ended(end)
}

/// Runs while no client is attached: output goes to the replay buffer (and
/// viewers) only. Completes with the session's end, if it comes first.
///
/// Nobody acknowledges output now, so the window closes after one window's
/// worth: a program that floods while detached is stopped by the kernel's
/// PTY buffer instead of keeping webterm reading flat out for nobody.
pub(super) async fn detached(session: &Session, terminal: &Terminal) -> End {
    let window = Window::new(session.output.total());
    output_pump(session, terminal, None, &window)
        .or(watch_idle(session, None))
        .or(session.ended(terminal))
        .await
}

/// PTY -> replay buffer, viewers and (when attached) the client.
async fn output_pump(
    session: &Session,
    terminal: &Terminal,
    client: Option<&Client<'_>>,
    window: &Window,
) -> End {
    let mut decoder = Utf8Decoder::default();
    // Where the last output ping was sent (see `protocol::output_ping`).
    let mut pinged = window.acked();
    // Whether the last read may have left output behind. Then the next read
    // goes ahead without asking the reactor first: during a flood there is
    // nearly always more by the time a frame is sent, and asking costs an
    // epoll re-arm and a wait per chunk. The price is one read that finds
    // nothing after each burst.
    let mut more = false;
    loop {
        if let Some(client) = client.filter(|_| !window.acking.load(Ordering::Acquire)) {
            let sent = session.output.total();
            // Often enough that pongs keep coming during a flood, and always
            // before waiting on a closed window, so that it can open again.
            if sent > pinged
                && (sent - pinged >= protocol::PING_ACK_EVERY || window.room(sent) == 0)
            {
                let ping = Message::Ping(protocol::output_ping(sent).into());
                if let Err(e) = socket::send(client.sink, ping).await {
                    return End::Left(Leave::Gone(e.to_string()));
                }
                pinged = sent;
            }
        }
        wait_until(&window.moved, || window.room(session.output.total()) > 0).await;
        if more {
            // Skipping the reactor must not mean never giving the one
            // executor thread to the other sessions.
            futures_lite::future::yield_now().await;
        } else if let Err(e) = terminal.io().readable().await {
            return End::TerminalError(e);
        }
        // The read itself stays within the window.
        let room = window.room(session.output.total());
        let (bytes, eof) = match read_chunk(terminal, room) {
            Ok(read) => read,
            Err(e) => return End::TerminalError(e),
        };
        let n = bytes.len();
        more = n > 0;
        if n > 0 {
            session.record_output(&bytes);
            if let Some(client) = client {
                let msg = match client.mode {
                    Mode::Binary => Some(Message::Binary(bytes)),
                    Mode::Terminado => {
                        let mut text = String::with_capacity(n);
                        decoder.decode_into(&bytes, &mut text);
                        (!text.is_empty()).then(|| Message::text(server::stdout(&text)))
                    }
                };
                if let Some(msg) = msg {
                    if let Err(e) = socket::send(client.sink, msg).await {
                        return End::Left(Leave::Gone(e.to_string()));
                    }
                }
            }
        }
        if eof {
            let tail = decoder.finish();
            if let (Some(client), false) = (client, tail.is_empty()) {
                let _ = socket::send(client.sink, Message::text(server::stdout(&tail))).await;
            }
            return End::OutputClosed;
        }
    }
}

/// What the PTY holds now, up to one chunk (fewer, larger frames) or
/// `limit`, and whether it reached the end. Read into one scratch buffer
/// per thread and copied out at its length: no session holds a read
/// buffer, and a keystroke's echo costs a few bytes, not a zeroed 32 KiB
/// allocation.
fn read_chunk(terminal: &Terminal, limit: u64) -> std::io::Result<(Bytes, bool)> {
    use std::io::Read as _;
    thread_local! {
        static SCRATCH: std::cell::RefCell<Box<[u8]>> =
            std::cell::RefCell::new(vec![0u8; OUTPUT_CHUNK].into_boxed_slice());
    }
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        let want = buf.len().min(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut n = 0;
        let mut eof = false;
        while n < want {
            match terminal.io().get_ref().read(&mut buf[n..want]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if terminal::is_hangup(&e) => {
                    eof = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok((Bytes::copy_from_slice(&buf[..n]), eof))
    })
}

/// Socket -> PTY, plus control messages.
async fn input_pump(
    session: &Session,
    terminal: &Terminal,
    mode: Mode,
    stream: &mut Stream,
    window: &Window,
    hearing: &Hearing,
) -> End {
    while let Some(frame) = stream.next().await {
        hearing.heard();
        let parsed = match frame {
            Ok(Message::Text(t)) => protocol::parse_text(mode, t.as_str()),
            Ok(Message::Binary(b)) => protocol::parse_binary(mode, &b),
            Ok(Message::Close(_)) => return End::Left(Leave::Closed),
            Ok(Message::Pong(payload)) => {
                if let Some(offset) = protocol::output_pong(&payload) {
                    window.ack(offset, session.output.total(), false);
                }
                continue;
            }
            Ok(_) => continue, // ping: the library answers it itself
            Err(e) => return socket::read_error(e),
        };
        match parsed {
            Ok(ClientMessage::Input(_)) if session.settings.config.readonly => {
                log::trace!("read-only: input dropped");
            }
            Ok(ClientMessage::Input(bytes)) => {
                session.record_input(bytes.len());
                hearing.set_deaf(true);
                let written = { terminal.io() }.write_all(&bytes).await;
                hearing.set_deaf(false);
                if let Err(e) = written {
                    if terminal::is_hangup(&e) {
                        // The child is gone; the output pump or the exit watch
                        // reports it with its status.
                        return std::future::pending().await;
                    }
                    return End::TerminalError(e);
                }
            }
            Ok(ClientMessage::Resize { rows, cols }) => {
                session.activity.input();
                let Some((rows, cols)) = protocol::accept_size(rows, cols, "resize") else {
                    continue;
                };
                if let Err(e) = terminal.resize(rows, cols) {
                    log::warn!("resize to {rows}x{cols} failed: {e}");
                }
            }
            Ok(ClientMessage::Pause) => window.pause(true),
            Ok(ClientMessage::Resume) => window.pause(false),
            Ok(ClientMessage::Ack(bytes)) => window.ack(bytes, session.output.total(), true),
            Ok(ClientMessage::Unknown(kind)) => {
                log::debug!("ignoring unknown {} message type {kind:?}", mode.name());
            }
            Err(e) => return End::Protocol(e),
        }
    }
    End::Left(Leave::Gone(
        "connection closed without a close frame".into(),
    ))
}

/// Tells the client when a drain will end its session, as soon as the drain
/// begins, or at once for a client that attaches during one (binary clients
/// only, as for the idle warning). Never ends the attachment itself: the
/// shutdown that follows the drain does.
async fn announce_drain(session: &Session, client: &Client<'_>) -> End {
    let until = session.registry.drain_begun().await;
    if client.mode == Mode::Binary {
        let left = until.saturating_duration_since(Instant::now());
        let msg = Message::text(server::drain(left));
        let _ = socket::send_within(client.sink, msg, CLOSE_TIMEOUT).await;
    }
    std::future::pending().await
}

/// The idle rule's clock, with the warning: completes with `End::Idle` once
/// the session has been idle for its timeout. Sends `idle_warning` when
/// `--idle-warning` is left, and `idle_warning_cleared` if activity comes
/// after it (binary clients only).
async fn watch_idle(session: &Session, client: Option<&Client<'_>>) -> End {
    let Some(timeout) = session.idle_timeout else {
        return std::future::pending().await;
    };
    let clock = session.activity.clock();
    let warning = session
        .settings
        .config
        .idle_warning
        .filter(|w| *w < timeout);
    let tell = |msg: String| async move {
        if let Some(Client {
            sink,
            mode: Mode::Binary,
        }) = client
        {
            let _ = socket::send_within(sink, Message::text(msg), CLOSE_TIMEOUT).await;
        }
    };
    let mut warned = false;
    loop {
        match idle::check(clock, timeout, warning) {
            idle::Status::Expired(idle) => {
                return End::Idle {
                    idle,
                    policy: session.activity.policy(),
                }
            }
            idle::Status::Warn(left) if !warned => {
                warned = true;
                tell(server::idle_warning(left)).await;
                log::info!(
                    "session={}: idle warning, {} left",
                    session.id,
                    format_duration(Duration::from_secs(left.as_secs()))
                );
            }
            idle::Status::Active if warned => {
                warned = false;
                tell(server::idle_warning_cleared()).await;
            }
            _ => {}
        }
        let next = idle::next_check(
            clock,
            timeout,
            warning,
            warned,
            session.settings.config.idle_check_interval,
        );
        if warned {
            // Wake as soon as the user is back, to clear the warning at once
            // (and so warn again, in time, if they go quiet again).
            Delay::new(next).or(clock.touched()).await;
        } else {
            Delay::new(next).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_window_follows_the_clients_rate_between_floor_and_ceiling() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let w = Window::new(0);
        w.measure(0, at(0));
        assert_eq!(
            w.room(0),
            protocol::ACK_WINDOW,
            "every client starts at the floor"
        );
        // Too short a span to measure: nothing changes.
        w.measure(MIB, at(10));
        assert_eq!(w.room(0), protocol::ACK_WINDOW);
        // 5 MiB in 500 ms: 1 MiB may be in flight.
        w.acked.store(5 * MIB, Ordering::Release);
        w.measure(5 * MIB, at(500));
        assert_eq!(w.room(5 * MIB), MIB);
        assert_eq!(w.room(6 * MIB), 0);
        // An absurd rate (acks of everything sent, as fast as they come)
        // meets the ceiling.
        w.acked.store(5000 * MIB, Ordering::Release);
        w.measure(5000 * MIB, at(560));
        assert_eq!(w.room(5000 * MIB), protocol::ACK_WINDOW_MAX);
        // A span with a pause in it: back to the floor.
        w.measure(5000 * MIB + 1, at(5560));
        assert_eq!(w.room(5000 * MIB), protocol::ACK_WINDOW);
    }

    #[test]
    fn pongs_never_grow_the_window() {
        let w = Window::new(0);
        for sent in (1..=100).map(|i| i * MIB) {
            w.ack(sent, sent, false);
        }
        assert_eq!(w.room(100 * MIB), protocol::ACK_WINDOW);
        assert!(!w.acking.load(Ordering::Acquire));
    }
}
