//! One WebSocket as sessions use it: sending with a bound on how long a
//! stalled client can hold us, closing cleanly, keepalive, and turning read
//! errors into reasons. Attachments, viewers and refusals all go through
//! these, so each of them is written once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_lock::Mutex;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use futures_lite::{AsyncRead, AsyncWrite, FutureExt as _};
use futures_timer::Delay;
use futures_util::StreamExt as _;

use crate::idle::IdleClock;
use crate::protocol::{self, close, End, Leave};

/// How much PTY output one frame carries at most.
pub const OUTPUT_CHUNK: usize = 32 * 1024;
/// How long we wait on a client to take a message it is not waiting for
/// (a notice, a warning, our last words) or to answer our close frame.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Any connection a WebSocket can run over; boxed so that a socket can be
/// handed from the HTTP layer to a running session through a channel.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}
pub type Socket = WebSocketStream<Box<dyn Io>>;
/// The sending half, shared by the racing futures of one connection.
pub type Sink = Mutex<WebSocketSender<Box<dyn Io>>>;
pub type Stream = WebSocketReceiver<Box<dyn Io>>;

pub fn split(ws: Socket) -> (Sink, Stream) {
    let (sink, stream) = ws.split();
    (Mutex::new(sink), stream)
}

/// Sends one message; completes when it is handed to the connection, so a
/// client that stops reading stops whoever sends to it.
pub async fn send(sink: &Sink, msg: Message) -> Result<(), WsError> {
    sink.lock().await.send(msg).await
}

/// Sends a message the client did not ask for, giving up after `limit`.
pub async fn send_within(sink: &Sink, msg: Message, limit: Duration) -> Result<(), WsError> {
    send(sink, msg)
        .or(async {
            Delay::new(limit).await;
            Err(WsError::Io(std::io::ErrorKind::TimedOut.into()))
        })
        .await
}

/// Sends terminal output as binary frames of at most `OUTPUT_CHUNK` bytes.
pub async fn send_output(sink: &Sink, bytes: &[u8]) -> Result<(), WsError> {
    for chunk in bytes.chunks(OUTPUT_CHUNK) {
        send(sink, Message::binary(chunk.to_vec())).await?;
    }
    Ok(())
}

/// Sends a close frame and waits briefly for the client's reply, so the TCP
/// connection ends cleanly rather than with a reset that could discard the
/// close frame before the browser reads it.
pub async fn close(sink: &Sink, stream: &mut Stream, code: u16, reason: &str) {
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

/// Answers a client's close frame. tungstenite queued the reply when it read
/// the frame; a flush sends it, so the client sees its own code echoed
/// instead of an abnormal closure (1006).
pub async fn answer_close(sink: &Sink) {
    async {
        let _ = futures_util::SinkExt::flush(&mut *sink.lock().await).await;
    }
    .or(Delay::new(CLOSE_TIMEOUT))
    .await;
}

/// Closes a socket that never became part of a session, after an optional
/// notice the binary client shows.
pub async fn refuse(ws: Socket, code: u16, reason: &str, notice: Option<String>) {
    let (sink, mut stream) = split(ws);
    if let Some(n) = notice {
        let _ = send_within(&sink, Message::text(n), CLOSE_TIMEOUT).await;
    }
    close(&sink, &mut stream, code, reason).await;
}

/// What keepalive needs to know about the other side.
#[derive(Debug, Default)]
pub struct Hearing {
    /// Any frame from the client, pongs included.
    heard: IdleClock,
    /// True while we cannot read the client through no fault of its own
    /// (the input pump is blocked writing to a child that does not read).
    deaf: AtomicBool,
}

impl Hearing {
    pub fn heard(&self) {
        self.heard.touch();
    }

    pub fn set_deaf(&self, deaf: bool) {
        self.deaf.store(deaf, Ordering::Release);
    }
}

/// Pings every `interval`; completes with the silence once the client has
/// answered nothing for two intervals (and we were listening).
pub async fn keepalive(sink: &Sink, hearing: &Hearing, interval: Option<Duration>) -> Duration {
    let Some(interval) = interval else {
        return std::future::pending().await;
    };
    loop {
        Delay::new(interval).await;
        let silent = hearing.heard.idle_for();
        if silent >= interval * 2 && !hearing.deaf.load(Ordering::Acquire) {
            return silent;
        }
        // A socket that cannot take a ping for a whole interval is stalled;
        // the silence check above ends it on a later round.
        let _ = send_within(sink, Message::Ping(Default::default()), interval).await;
    }
}

/// What a failed read means: a protocol error ends the session; a vanished
/// client only leaves it.
pub fn read_error(e: WsError) -> End {
    use async_tungstenite::tungstenite::error::ProtocolError as WsProtocol;
    let protocol =
        |close_code, reason: String| End::Protocol(protocol::ProtocolError { close_code, reason });
    match e {
        WsError::Capacity(c) => protocol(close::MESSAGE_TOO_BIG, format!("message too big: {c}")),
        WsError::Utf8(_) => protocol(
            close::INVALID_PAYLOAD,
            "text frame is not valid UTF-8".into(),
        ),
        // A TCP reset or EOF without a close frame: the client went away
        // (a closed laptop, a dropped network), which is no protocol error.
        WsError::Protocol(WsProtocol::ResetWithoutClosingHandshake) => {
            End::Left(Leave::Gone("connection reset without a close frame".into()))
        }
        WsError::Protocol(p) => protocol(
            close::PROTOCOL_ERROR,
            format!("WebSocket protocol error: {p}"),
        ),
        // A compressed message the client got wrong (deflate.rs says
        // which); any other I/O error means the connection broke.
        WsError::Io(e) => match crate::deflate::close_code(&e) {
            Some(code) => protocol(code, e.to_string()),
            None => End::Left(Leave::Gone(e.to_string())),
        },
        other => End::Left(Leave::Gone(other.to_string())),
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn close_reasons_are_cut_on_a_character_boundary() {
        let s = "é".repeat(100);
        let cut = super::truncate_utf8(&s, 123);
        assert_eq!(cut.len(), 122);
        assert_eq!(super::truncate_utf8("short", 123), "short");
    }
}
