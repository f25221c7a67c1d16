//! The wire format on `/ws`: both protocols, parsed and encoded here only.
//!
//! `docs/protocol.md` is the reader's version of this file. Two protocols
//! share the socket, chosen by the `Sec-WebSocket-Protocol` the client offers:
//!
//! - **terminado** (no subprotocol, or `terminado`): Jupyter's protocol, text
//!   frames holding JSON arrays. Output must be valid UTF-8 to fit in JSON,
//!   so the session decodes it incrementally (see `utf8`).
//! - **binary** (`webterm.binary.v1`): PTY bytes travel untouched in binary
//!   frames both ways; JSON objects in text frames carry control messages.
//!   This is what the page uses: no UTF-8 or JSON work per byte of output.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::duration::format_duration;

/// The subprotocol that selects the binary protocol.
pub const BINARY_SUBPROTOCOL: &str = "webterm.binary.v1";
/// The subprotocol a terminado client may name explicitly.
pub const TERMINADO_SUBPROTOCOL: &str = "terminado";

/// Terminal sizes outside these bounds are clamped; zero is refused.
pub const MAX_ROWS: u16 = 1000;
pub const MAX_COLS: u16 = 1000;

/// Output the server sends ahead of what the client has confirmed reading,
/// to begin with and for as long as the client is slow or does not ack.
/// Everything in flight (our socket buffer, the network, the browser,
/// xterm.js's queue) is bounded by the window, so Ctrl-C during a flood is
/// answered once what is in flight has been drawn.
///
/// A binary client confirms with acks. Any other client (terminado, or a
/// binary client that never acks) is asked with pings: every WebSocket
/// client must answer each with a pong carrying the same payload, and does
/// so only once it has read the frames before it. See `output_ping`.
pub const ACK_WINDOW: u64 = 256 * 1024;

/// The most a client that acks quickly may have in flight: see `ack_window`.
pub const ACK_WINDOW_MAX: u64 = 2 * 1024 * 1024;

/// A client that acks may have in flight what it consumed in this long.
/// The window is what Ctrl-C waits out, so a bound in bytes is a bound in
/// time only for one speed of drawing: 256 KiB is 40 ms on a desktop that
/// draws 6 MiB/s and 250 ms on a phone that draws 1 MiB/s, and it starves
/// the desktop's page (its queue runs dry while each ack travels back).
pub const ACK_WINDOW_TIME: Duration = Duration::from_millis(100);

/// The shortest span over which acks measure how fast a client consumes.
pub const ACK_RATE_SPAN: Duration = Duration::from_millis(50);

/// The window for a client that acked `consumed` bytes over `span`: what
/// it consumes in `ACK_WINDOW_TIME` at that rate, never below `ACK_WINDOW`
/// (a slow client is no worse off than with a fixed window) nor above
/// `ACK_WINDOW_MAX` (bytes in flight are the server's and the browser's
/// memory too). A client that acks without reading gains nothing from it
/// but a later Ctrl-C: acks are clamped to what was sent.
pub fn ack_window(consumed: u64, span: Duration) -> u64 {
    let span = span.max(ACK_RATE_SPAN).as_micros();
    let wanted = u128::from(consumed) * ACK_WINDOW_TIME.as_micros() / span;
    u64::try_from(wanted)
        .unwrap_or(u64::MAX)
        .clamp(ACK_WINDOW, ACK_WINDOW_MAX)
}

/// For a client that does not ack: a ping after this much output, so that
/// pongs keep coming while a window's worth is in flight.
pub const PING_ACK_EVERY: u64 = 64 * 1024;

/// What marks our output pings' payload (a keepalive ping's is empty).
const OUTPUT_PING_TAG: &[u8] = b"webterm-output:";

/// The payload of a ping sent when the output reached `offset`: the tag,
/// then the offset as 8 bytes, big-endian. Its pong acknowledges `offset`.
pub fn output_ping(offset: u64) -> Vec<u8> {
    let mut payload = OUTPUT_PING_TAG.to_vec();
    payload.extend_from_slice(&offset.to_be_bytes());
    payload
}

/// The output offset a pong acknowledges, if it answers an output ping.
pub fn output_pong(payload: &[u8]) -> Option<u64> {
    let offset = payload.strip_prefix(OUTPUT_PING_TAG)?;
    Some(u64::from_be_bytes(offset.try_into().ok()?))
}

/// Largest WebSocket message a client may send. Well under 1 MiB: a paste
/// larger than this must be split by the client (the page does).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Frame and message limits for every socket. The defaults of WebSocket
/// libraries (64 MiB messages) let one client make the server allocate
/// without bound; ours are explicit. The read buffer is small because
/// tungstenite zero-fills it to capacity on its first read, so every byte
/// of it is resident for every socket, and client frames are keystrokes;
/// a larger frame (a paste, an upload) reserves its own length and only
/// takes more reads. Writes go out as soon as they are sent.
pub fn websocket_config() -> async_tungstenite::tungstenite::protocol::WebSocketConfig {
    async_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Terminado,
    Binary,
}

impl Mode {
    /// Picks the protocol from the client's offered subprotocols, returning
    /// the one to echo in the handshake response (`None`: echo nothing).
    pub fn negotiate(offered: Option<&str>) -> (Mode, Option<&'static str>) {
        let offered = offered.unwrap_or("");
        let names = || offered.split(',').map(str::trim);
        if names().any(|p| p == BINARY_SUBPROTOCOL) {
            (Mode::Binary, Some(BINARY_SUBPROTOCOL))
        } else if names().any(|p| p == TERMINADO_SUBPROTOCOL) {
            (Mode::Terminado, Some(TERMINADO_SUBPROTOCOL))
        } else {
            (Mode::Terminado, None)
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Terminado => "terminado",
            Mode::Binary => "binary",
        }
    }
}

/// A message from the client, in either protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// Keystrokes or pasted text for the PTY.
    Input(Vec<u8>),
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Binary mode flow control: stop reading the PTY until `Resume`.
    Pause,
    Resume,
    /// Binary mode flow control: the client has processed this many bytes of
    /// output since the session began. The first ack turns on the window.
    Ack(u64),
    /// A well-formed message of a type this server does not know; ignored so
    /// newer clients can talk to older servers.
    Unknown(String),
}

/// Why a client message was rejected. The session closes the socket with
/// `close_code()` and this text as the reason.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub close_code: u16,
    pub reason: String,
}

impl ProtocolError {
    fn policy(reason: impl Into<String>) -> Self {
        ProtocolError {
            close_code: close::POLICY_VIOLATION,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (close {})", self.reason, self.close_code)
    }
}

/// Why a session ended, which decides what its client is told.
#[derive(Debug)]
pub enum End {
    /// The child exited (`None`: its status could not be read in time).
    Exited(Option<std::process::ExitStatus>),
    /// The PTY reported end of output: every process let go of the terminal.
    /// The exit status follows; the session waits briefly for it.
    OutputClosed,
    /// The idle rule: nothing counted as activity under `policy` for `idle`.
    Idle {
        idle: Duration,
        policy: crate::idle::Policy,
    },
    Shutdown,
    /// An operator ended it (`webterm sessions --kill`).
    Killed,
    /// The client broke the protocol; the session ends with it.
    Protocol(ProtocolError),
    TerminalError(std::io::Error),
    /// The client left and the session could not wait for it.
    Left(Leave),
    /// Detached, and the client did not come back within the window.
    ReconnectWindow(Duration),
}

/// Why a client left a session that could go on without it.
#[derive(Debug)]
pub enum Leave {
    /// It sent a close frame.
    Closed,
    /// The connection failed or vanished without a close frame.
    Gone(String),
    /// It stopped answering pings for this long.
    Keepalive(Duration),
}

impl std::fmt::Display for Leave {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leave::Closed => f.write_str("client closed the socket"),
            Leave::Gone(e) => write!(f, "socket lost: {e}"),
            Leave::Keepalive(d) => write!(
                f,
                "client stopped answering pings ({} silent)",
                format_duration(*d)
            ),
        }
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Exited(_) | End::OutputClosed => f.write_str("child exited"),
            End::Idle { idle, policy } => write!(
                f,
                "idle timeout ({} for {})",
                policy.nothing(),
                format_duration(Duration::from_secs(idle.as_secs()))
            ),
            End::Shutdown => f.write_str("server shutting down"),
            End::Killed => f.write_str("ended by an operator"),
            End::Protocol(e) => write!(f, "protocol error: {e}"),
            End::TerminalError(e) => write!(f, "terminal error: {e}"),
            End::Left(leave) => leave.fmt(f),
            End::ReconnectWindow(d) => {
                write!(f, "client did not reconnect within {}", format_duration(*d))
            }
        }
    }
}

/// How a session's end reaches its client: the close code and reason, and
/// for the binary protocol a message before the close (the exit status, or
/// a notice the page shows).
pub struct Farewell {
    pub code: u16,
    pub reason: String,
    pub last_words: Option<String>,
}

impl End {
    /// The farewell for a client still attached when the session ended.
    pub fn farewell(&self, mode: Mode) -> Farewell {
        let notice =
            |kind: &str, msg: &str| (mode == Mode::Binary).then(|| server::notice(kind, msg));
        let (code, reason, last_words) = match self {
            End::Exited(status) => {
                let (code, signal) = exit_code(*status);
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
            End::Idle { idle, policy } => {
                let msg = format!(
                    "idle timeout: {} for {}",
                    policy.nothing(),
                    format_duration(Duration::from_secs(idle.as_secs()))
                );
                let words = notice("idle_timeout", &msg);
                (close::IDLE_TIMEOUT, msg, words)
            }
            End::Shutdown => (
                close::GOING_AWAY,
                self.to_string(),
                notice("shutdown", "server shutting down"),
            ),
            End::Killed => (
                close::KILLED,
                self.to_string(),
                notice("killed", "ended by an operator"),
            ),
            End::Protocol(e) => (e.close_code, e.reason.clone(), None),
            End::TerminalError(e) => (close::INTERNAL_ERROR, format!("terminal error: {e}"), None),
            End::Left(Leave::Keepalive(_)) => (close::KEEPALIVE_TIMEOUT, self.to_string(), None),
            End::OutputClosed | End::Left(_) | End::ReconnectWindow(_) => {
                (close::NORMAL, String::new(), None)
            }
        };
        Farewell {
            code,
            reason,
            last_words,
        }
    }
}

/// The status as a shell would report it: the exit code, or 128 + signal.
pub fn exit_code(status: Option<std::process::ExitStatus>) -> (i32, Option<i32>) {
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

/// What a socket that names a session wants of it (`?resume=ID`, `?view=ID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Resume,
    View,
}

/// The first message of a socket that names a session:
/// `{"type": "resume"|"view", "token": T, "have": N}`. The secret comes in a
/// message, never in the URL, which proxies log.
#[derive(Debug, PartialEq, Eq)]
pub struct Proof {
    pub token: String,
    /// Output the client already has (absolute offset), for the replay.
    pub have: u64,
}

impl Proof {
    /// Parses a proof of `claim`; None for anything else.
    pub fn parse(claim: Claim, text: &str) -> Option<Proof> {
        let v: Value = serde_json::from_str(text).ok()?;
        let want = match claim {
            Claim::Resume => "resume",
            Claim::View => "view",
        };
        if v["type"] != want {
            return None;
        }
        Some(Proof {
            token: v["token"].as_str()?.to_string(),
            have: v["have"].as_u64().unwrap_or(0),
        })
    }
}

/// WebSocket close codes the server uses; the reason text says the rest.
pub mod close {
    /// The child exited; the reason carries its status.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame that breaks RFC 6455 (masking, opcodes, fragmentation).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A frame kind the protocol does not use (binary in terminado mode).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A malformed message: bad JSON, wrong shape, wrong types.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message over `MAX_MESSAGE_BYTES`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server could not start the terminal.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// `--max-sessions` terminals are already running.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// No user input for `--idle-timeout`.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The client stopped answering pings.
    pub const KEEPALIVE_TIMEOUT: u16 = 4001;
    /// An operator ended the session.
    pub const KILLED: u16 = 4002;
    /// The session's owner reconnected on another socket, which took over.
    pub const REPLACED: u16 = 4003;
    /// A resume or view named a session that does not exist (any more), or
    /// the token did not match.
    pub const NO_SUCH_SESSION: u16 = 4004;
    /// The session lives on another replica, which cannot be reached (it
    /// died, or was replaced): the session is gone with it.
    pub const OWNER_GONE: u16 = 4005;
}

/// Parses one text frame.
pub fn parse_text(mode: Mode, text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::policy(format!("malformed JSON: {e}")))?;
    match mode {
        Mode::Terminado => parse_terminado(value),
        Mode::Binary => parse_control(value),
    }
}

/// Parses one binary frame.
pub fn parse_binary(mode: Mode, bytes: &[u8]) -> Result<ClientMessage, ProtocolError> {
    match mode {
        Mode::Binary => Ok(ClientMessage::Input(bytes.to_vec())),
        Mode::Terminado => Err(ProtocolError {
            close_code: close::UNSUPPORTED_DATA,
            reason: "binary frames need the webterm.binary.v1 subprotocol".into(),
        }),
    }
}

/// terminado: `["stdin", text]` or `["set_size", rows, cols, ...]`. Jupyter's
/// own client appends the window's pixel height and width to `set_size`, so
/// extra trailing elements are allowed and ignored there.
fn parse_terminado(value: Value) -> Result<ClientMessage, ProtocolError> {
    let Value::Array(items) = value else {
        return Err(ProtocolError::policy("terminado messages are JSON arrays"));
    };
    let kind = items.first().and_then(Value::as_str).ok_or_else(|| {
        ProtocolError::policy("a terminado message starts with its type, a string")
    })?;
    match kind {
        "stdin" => match items.as_slice() {
            [_, Value::String(s)] => Ok(ClientMessage::Input(s.as_bytes().to_vec())),
            _ => Err(ProtocolError::policy(
                "stdin takes exactly one string: [\"stdin\", text]",
            )),
        },
        "set_size" => {
            if items.len() < 3 {
                return Err(ProtocolError::policy(
                    "set_size takes rows and cols: [\"set_size\", rows, cols]",
                ));
            }
            Ok(ClientMessage::Resize {
                rows: dimension(&items[1], "rows")?,
                cols: dimension(&items[2], "cols")?,
            })
        }
        other => Ok(ClientMessage::Unknown(other.chars().take(64).collect())),
    }
}

/// binary mode control: `{"type": "resize", "rows": R, "cols": C}`,
/// `{"type": "pause"}`, `{"type": "resume"}`, `{"type": "ack", "bytes": N}`.
fn parse_control(value: Value) -> Result<ClientMessage, ProtocolError> {
    let Value::Object(map) = value else {
        return Err(ProtocolError::policy("control messages are JSON objects"));
    };
    let kind = map
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ProtocolError::policy("a control message needs a string \"type\""))?;
    match kind {
        "resize" => Ok(ClientMessage::Resize {
            rows: dimension(map.get("rows").unwrap_or(&Value::Null), "rows")?,
            cols: dimension(map.get("cols").unwrap_or(&Value::Null), "cols")?,
        }),
        "pause" => Ok(ClientMessage::Pause),
        "resume" => Ok(ClientMessage::Resume),
        "ack" => map
            .get("bytes")
            .and_then(Value::as_u64)
            .map(ClientMessage::Ack)
            .ok_or_else(|| {
                ProtocolError::policy("ack takes a whole number: {\"type\": \"ack\", \"bytes\": N}")
            }),
        other => Ok(ClientMessage::Unknown(other.chars().take(64).collect())),
    }
}

/// Reads a row or column count as sent; range checks come later (`clamp_size`)
/// so that they can log what they changed.
fn dimension(v: &Value, what: &str) -> Result<u16, ProtocolError> {
    let n = v
        .as_u64()
        .ok_or_else(|| ProtocolError::policy(format!("{what} must be a whole number, got {v}")))?;
    Ok(n.min(u64::from(u16::MAX)) as u16)
}

/// What to do with a requested terminal size.
#[derive(Debug, PartialEq, Eq)]
pub enum SizeDecision {
    Accept {
        rows: u16,
        cols: u16,
    },
    /// Out of range, brought within it; the string says what changed.
    Clamped {
        rows: u16,
        cols: u16,
        why: String,
    },
    /// Zero rows or columns: no terminal has that size. Ignored.
    Refused(String),
}

/// `clamp_size`, logging what it changed or refused; `what` names the
/// request in the log ("resize", "initial size"). None: refused.
pub fn accept_size(rows: u16, cols: u16, what: &str) -> Option<(u16, u16)> {
    match clamp_size(rows, cols) {
        SizeDecision::Accept { rows, cols } => Some((rows, cols)),
        SizeDecision::Clamped { rows, cols, why } => {
            log::warn!("{what} clamped: {why}");
            Some((rows, cols))
        }
        SizeDecision::Refused(why) => {
            log::warn!("{what} refused: {why}");
            None
        }
    }
}

pub fn clamp_size(rows: u16, cols: u16) -> SizeDecision {
    if rows == 0 || cols == 0 {
        return SizeDecision::Refused(format!(
            "{rows}x{cols}: a terminal needs at least one row and one column"
        ));
    }
    if rows <= MAX_ROWS && cols <= MAX_COLS {
        return SizeDecision::Accept { rows, cols };
    }
    let (r, c) = (rows.min(MAX_ROWS), cols.min(MAX_COLS));
    SizeDecision::Clamped {
        rows: r,
        cols: c,
        why: format!("{rows}x{cols} is over the {MAX_ROWS}x{MAX_COLS} limit; using {r}x{c}"),
    }
}

/// Messages the server sends, encoded for either protocol.
pub mod server {
    use super::*;

    /// What the client learns when the terminal is ready.
    #[derive(Serialize)]
    pub struct Setup<'a> {
        pub session: &'a str,
        pub pid: u32,
        pub protocol: &'static str,
        /// True when this socket reattached to a running session.
        pub resumed: bool,
        /// Absolute offset of the next output byte (replay included).
        pub offset: u64,
        pub idle_timeout_ms: Option<u64>,
        pub idle_warning_ms: Option<u64>,
        pub reconnect_window_ms: u64,
        pub readonly: bool,
        /// The owner's secrets (binary mode only): to reattach, and to share
        /// a read-only view.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resume_token: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub view_token: Option<&'a str>,
    }

    /// terminado `["setup", {...}]`, or binary `{"type":"setup",...}`.
    pub fn setup(mode: Mode, setup: &Setup<'_>) -> String {
        match mode {
            Mode::Terminado => serde_json::json!(["setup", setup]).to_string(),
            Mode::Binary => {
                let mut v = serde_json::to_value(setup).unwrap_or_default();
                v["type"] = "setup".into();
                v.to_string()
            }
        }
    }

    /// A viewer's first message.
    pub fn viewer_setup(session: &str, offset: u64) -> String {
        serde_json::json!({"type": "setup", "session": session, "viewer": true, "readonly": true, "offset": offset}).to_string()
    }

    /// The idle timeout is near: `seconds_left` until the session ends.
    pub fn idle_warning(left: std::time::Duration) -> String {
        serde_json::json!({"type": "idle_warning", "seconds_left": left.as_secs_f64().ceil() as u64}).to_string()
    }

    /// Input arrived after a warning: the session goes on.
    pub fn idle_warning_cleared() -> String {
        serde_json::json!({"type": "idle_warning_cleared"}).to_string()
    }

    /// The server is draining (SIGTERM with `--drain-timeout`): it takes no
    /// new sessions and ends this one in `seconds_left` unless it ends first.
    pub fn drain(left: std::time::Duration) -> String {
        serde_json::json!({"type": "drain", "seconds_left": left.as_secs_f64().ceil() as u64})
            .to_string()
    }

    /// terminado `["stdout", text]`, already decoded by the caller.
    pub fn stdout(text: &str) -> String {
        let mut out = String::with_capacity(text.len() + 16);
        out.push_str("[\"stdout\",");
        // Writing into a String cannot fail.
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
        out.push(']');
        out
    }

    /// The child's end: terminado `["disconnect", code]`; binary
    /// `{"type":"exit","code":N,"signal":S}`. `code` is the exit status, or
    /// 128 + the signal number for a child killed by a signal, as a shell reports it.
    pub fn exit(mode: Mode, code: i32, signal: Option<i32>) -> String {
        match mode {
            Mode::Terminado => serde_json::json!(["disconnect", code]).to_string(),
            Mode::Binary => {
                serde_json::json!({"type": "exit", "code": code, "signal": signal}).to_string()
            }
        }
    }

    /// A notice the binary client can show (terminado clients get the close reason only).
    pub fn notice(kind: &str, message: &str) -> String {
        serde_json::json!({"type": "notice", "kind": kind, "message": message}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_window_is_what_the_client_consumes_in_its_time_clamped() {
        let ms = Duration::from_millis;
        // 10 MiB/s for 100 ms: 1 MiB.
        assert_eq!(ack_window(5 * 1024 * 1024, ms(500)), 1024 * 1024);
        // Slow, idle, or no span at all: the floor.
        assert_eq!(ack_window(64 * 1024, ms(500)), ACK_WINDOW);
        assert_eq!(ack_window(0, ms(0)), ACK_WINDOW);
        // A span shorter than the shortest counts as the shortest, and no
        // rate, however absurd, goes past the ceiling.
        assert_eq!(ack_window(u64::MAX, ms(1)), ACK_WINDOW_MAX);
        assert_eq!(ack_window(1024 * 1024, ms(1)), ACK_WINDOW_MAX);
    }

    #[test]
    fn negotiation_prefers_binary() {
        assert_eq!(Mode::negotiate(None), (Mode::Terminado, None));
        assert_eq!(
            Mode::negotiate(Some("terminado")),
            (Mode::Terminado, Some("terminado"))
        );
        assert_eq!(
            Mode::negotiate(Some("x, webterm.binary.v1")),
            (Mode::Binary, Some(BINARY_SUBPROTOCOL))
        );
        assert_eq!(Mode::negotiate(Some("other")), (Mode::Terminado, None));
    }

    #[test]
    fn terminado_messages() {
        let t = |s| parse_text(Mode::Terminado, s);
        assert_eq!(
            t(r#"["stdin","ls\r"]"#),
            Ok(ClientMessage::Input(b"ls\r".to_vec()))
        );
        assert_eq!(
            t(r#"["set_size",24,80]"#),
            Ok(ClientMessage::Resize { rows: 24, cols: 80 })
        );
        assert_eq!(
            t(r#"["set_size",24,80,600,800]"#),
            Ok(ClientMessage::Resize { rows: 24, cols: 80 })
        );
        assert_eq!(t(r#"["ping"]"#), Ok(ClientMessage::Unknown("ping".into())));
        for bad in [
            r#"{"stdin":1}"#,
            r#"["stdin"]"#,
            r#"["stdin",1]"#,
            r#"["stdin","a","b"]"#,
            r#"["set_size",-1,80]"#,
            r#"["set_size","24",80]"#,
            r#"["set_size",24]"#,
            r#"[]"#,
            r#"[1]"#,
            "not json",
            r#"["set_size",2.5,80]"#,
        ] {
            let e = t(bad).unwrap_err();
            assert_eq!(e.close_code, close::POLICY_VIOLATION, "{bad}");
        }
    }

    #[test]
    fn binary_messages() {
        let t = |s| parse_text(Mode::Binary, s);
        assert_eq!(
            t(r#"{"type":"resize","rows":30,"cols":100}"#),
            Ok(ClientMessage::Resize {
                rows: 30,
                cols: 100
            })
        );
        assert_eq!(t(r#"{"type":"pause"}"#), Ok(ClientMessage::Pause));
        assert_eq!(t(r#"{"type":"resume"}"#), Ok(ClientMessage::Resume));
        assert_eq!(
            t(r#"{"type":"ack","bytes":65536}"#),
            Ok(ClientMessage::Ack(65536))
        );
        assert!(t(r#"{"type":"ack","bytes":-1}"#).is_err());
        assert!(t(r#"{"type":"resize","rows":30}"#).is_err());
        assert!(t(r#"["stdin","x"]"#).is_err());
        assert_eq!(
            parse_binary(Mode::Binary, b"\xff\x00"),
            Ok(ClientMessage::Input(vec![0xff, 0]))
        );
        assert_eq!(
            parse_binary(Mode::Terminado, b"x").unwrap_err().close_code,
            close::UNSUPPORTED_DATA
        );
    }

    #[test]
    fn absurd_sizes() {
        assert!(matches!(clamp_size(0, 80), SizeDecision::Refused(_)));
        assert!(matches!(clamp_size(24, 0), SizeDecision::Refused(_)));
        assert_eq!(
            clamp_size(24, 80),
            SizeDecision::Accept { rows: 24, cols: 80 }
        );
        assert!(matches!(
            clamp_size(60000, 5000),
            SizeDecision::Clamped {
                rows: MAX_ROWS,
                cols: MAX_COLS,
                ..
            }
        ));
        let huge = parse_text(Mode::Terminado, r#"["set_size",99999999999,5]"#).unwrap();
        assert_eq!(
            huge,
            ClientMessage::Resize {
                rows: u16::MAX,
                cols: 5
            }
        );
    }

    #[test]
    fn server_encoding() {
        assert_eq!(
            server::stdout("a\u{1b}[0m\"é"),
            r#"["stdout","a\u001b[0m\"é"]"#
        );
        assert_eq!(
            server::exit(Mode::Terminado, 3, None),
            r#"["disconnect",3]"#
        );
        let drain: Value =
            serde_json::from_str(&server::drain(Duration::from_millis(599_001))).unwrap();
        assert_eq!(drain["type"], "drain");
        assert_eq!(drain["seconds_left"], 600);
        let s = server::setup(
            Mode::Binary,
            &server::Setup {
                session: "abc",
                pid: 7,
                protocol: "binary",
                resumed: false,
                offset: 0,
                idle_timeout_ms: Some(1000),
                idle_warning_ms: None,
                reconnect_window_ms: 60_000,
                readonly: false,
                resume_token: Some("t"),
                view_token: None,
            },
        );
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["type"], "setup");
        assert_eq!(v["pid"], 7);
        assert_eq!(v["resume_token"], "t");
        assert!(v.get("view_token").is_none());
    }
}
