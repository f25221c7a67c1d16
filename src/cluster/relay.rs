//! One forwarded socket: the browser's WebSocket on this replica, a
//! WebSocket of our own to the replica that holds the session, and every
//! message passed across as it is, both ways.
//!
//! Flow control survives the extra hop because nothing is queued here: a
//! message is read from one side only after the previous one was handed to
//! the other, and the protocol's acknowledgement window (the client acks
//! output, the owner stops at its window) bounds what is in flight end
//! to end. Pings are not passed on: each hop keeps its own connection
//! alive (tungstenite answers the owner's pings for us; we ping the
//! browser), so a proxy's read timeout in front of this replica is
//! satisfied as for a direct socket. For a client that does not ack, whose
//! window the owner keeps by its pongs (`protocol::output_ping`), this
//! means the pongs confirm what this replica has handed to the browser's
//! socket, not what the browser has read: such a client may have this
//! replica's socket buffers in flight beyond the window.
//!
//! How it ends: a close frame from either side is passed to the other;
//! the browser vanishing is a close with 1001 to the owner (its session
//! detaches and waits for a reconnect, as for a direct socket); the owner
//! vanishing is a close with `OWNER_GONE` to the browser.

use std::net::SocketAddr;
use std::time::Duration;

use async_tungstenite::tungstenite::client::IntoClientRequest as _;
use async_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::Message;
use futures_lite::FutureExt as _;
use futures_timer::Delay;
use futures_util::{SinkExt as _, StreamExt as _};

use crate::metrics::Metrics;
use crate::protocol::close;
use crate::socket::{self, Hearing, Socket, CLOSE_TIMEOUT, OUTPUT_CHUNK};

/// How long connecting to the owner may take, handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type PeerSocket = async_tungstenite::WebSocketStream<async_std::net::TcpStream>;

/// Opens our side of a forwarded socket: a WebSocket to `addr` for
/// `target` (path and query), carrying `headers` (the peer proof) and the
/// subprotocols the browser offered.
pub async fn connect(
    addr: SocketAddr,
    target: &str,
    headers: &[String],
    subprotocols: Option<&str>,
) -> Result<PeerSocket, String> {
    let attempt = async {
        let stream = async_std::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut req = format!("ws://{addr}{target}")
            .into_client_request()
            .map_err(|e| format!("bad forwarding request: {e}"))?;
        for line in headers {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            set_header(&mut req, name, value.trim())?;
        }
        if let Some(offered) = subprotocols {
            set_header(&mut req, "Sec-WebSocket-Protocol", offered)?;
        }
        // The owner sends output in frames of up to `OUTPUT_CHUNK`: read
        // one whole frame (and its header, at most 14 bytes) per system
        // call, not in the 512-byte steps that suit a browser's keystrokes.
        let config = crate::protocol::websocket_config().read_buffer_size(OUTPUT_CHUNK + 14);
        let (ws, _) = async_tungstenite::client_async_with_config(req, stream, Some(config))
            .await
            .map_err(|e| format!("{addr} refused the forwarded socket: {e}"))?;
        Ok(ws)
    };
    attempt
        .or(async {
            Delay::new(CONNECT_TIMEOUT).await;
            Err(format!("{addr} did not answer within {CONNECT_TIMEOUT:?}"))
        })
        .await
}

fn set_header(
    req: &mut async_tungstenite::tungstenite::handshake::client::Request,
    name: &str,
    value: &str,
) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| format!("bad forwarding header {name}: {e}");
    let name: HeaderName = name.parse().map_err(|e| bad(&e))?;
    let value = HeaderValue::from_str(value).map_err(|e| bad(&e))?;
    req.headers_mut().insert(name, value);
    Ok(())
}

/// How the relay loop stopped.
enum Stop {
    /// The browser sent a close frame; it was passed to the owner.
    BrowserClosed,
    /// The browser went away without one, or stopped answering pings.
    BrowserGone(String),
    /// The owner sent a close frame.
    OwnerClosed(Option<CloseFrame>),
    /// The owner went away without one.
    OwnerGone(String),
}

/// Passes messages both ways until either side ends; `node` names the
/// owner in what the browser is told.
pub async fn run(
    browser: Socket,
    owner: PeerSocket,
    node: &str,
    ping_interval: Option<Duration>,
    metrics: &Metrics,
) {
    metrics.forwarding(1);
    let (b_sink, mut b_stream) = socket::split(browser);
    let (mut o_sink, mut o_stream) = owner.split();
    let hearing = Hearing::default();

    let up = async {
        while let Some(m) = b_stream.next().await {
            hearing.heard();
            match m {
                Ok(Message::Close(frame)) => {
                    let _ = o_sink.send(Message::Close(frame)).await;
                    return Stop::BrowserClosed;
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(m) => {
                    // While the owner does not read (its child does not),
                    // the browser's silence is not the browser's fault.
                    hearing.set_deaf(true);
                    let sent = o_sink.send(m).await;
                    hearing.set_deaf(false);
                    if let Err(e) = sent {
                        return Stop::OwnerGone(e.to_string());
                    }
                }
                Err(e) => return Stop::BrowserGone(e.to_string()),
            }
        }
        Stop::BrowserGone("connection closed".into())
    };
    let down = async {
        while let Some(m) = o_stream.next().await {
            match m {
                Ok(Message::Close(frame)) => return Stop::OwnerClosed(frame),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(m) => {
                    if let Err(e) = socket::send(&b_sink, m).await {
                        return Stop::BrowserGone(e.to_string());
                    }
                }
                Err(e) => return Stop::OwnerGone(e.to_string()),
            }
        }
        Stop::OwnerGone("connection closed".into())
    };
    let keepalive = async {
        let silent = socket::keepalive(&b_sink, &hearing, ping_interval).await;
        Stop::BrowserGone(format!("no answer to pings for {silent:?}"))
    };
    let stop = up.or(down).or(keepalive).await;

    match stop {
        Stop::BrowserClosed => {
            // The owner answers the close; then the browser gets the reply
            // tungstenite queued when it read the browser's frame.
            drain(&mut o_stream).await;
            socket::answer_close(&b_sink).await;
        }
        Stop::BrowserGone(why) => {
            log::debug!("forwarded socket to {node}: the browser left ({why})");
            let frame = CloseFrame {
                code: CloseCode::from(close::GOING_AWAY),
                reason: "the client went away".into(),
            };
            let _ = o_sink
                .send(Message::Close(Some(frame)))
                .or(async {
                    Delay::new(CLOSE_TIMEOUT).await;
                    Ok(())
                })
                .await;
            drain(&mut o_stream).await;
        }
        Stop::OwnerClosed(frame) => {
            let _ = o_sink
                .flush()
                .or(async {
                    Delay::new(CLOSE_TIMEOUT).await;
                    Ok(())
                })
                .await;
            let (code, reason) = frame
                .map(|f| (u16::from(f.code), f.reason.to_string()))
                .unwrap_or((close::NORMAL, String::new()));
            socket::close(&b_sink, &mut b_stream, code, &reason).await;
        }
        Stop::OwnerGone(why) => {
            log::warn!("forwarded socket: lost {node}, which holds the session ({why})");
            socket::close(
                &b_sink,
                &mut b_stream,
                close::OWNER_GONE,
                &format!("lost the server holding this session ({node})"),
            )
            .await;
        }
    }
    metrics.forwarding(-1);
}

/// Reads what the owner still sends, until its close or `CLOSE_TIMEOUT`.
async fn drain(stream: &mut async_tungstenite::WebSocketReceiver<async_std::net::TcpStream>) {
    async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    }
    .or(Delay::new(CLOSE_TIMEOUT))
    .await;
}
