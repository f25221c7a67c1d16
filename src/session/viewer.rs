//! Read-only viewers of a session: the owner hands out a link carrying the
//! session's view token; a viewer sees the replay, then live output. Its
//! input is ignored and it does not count as activity, so a watched session
//! still idles out when its owner leaves. A viewer that cannot keep up is
//! disconnected rather than allowed to slow the owner down.

use std::sync::Arc;
use std::time::Instant;

use async_tungstenite::tungstenite::Message;
use futures_lite::FutureExt as _;
use futures_util::StreamExt as _;

use super::{output::MAX_VIEWERS, Session, State};
use crate::protocol::{close, server};
use crate::socket::{self, Hearing, Socket, CLOSE_TIMEOUT};

/// Why a viewer's socket ended.
enum Gone {
    /// The session dropped it: the session ended, or it was too slow.
    Dropped,
    /// It closed, vanished, or stopped answering pings.
    Left,
}

pub(super) async fn watch(ws: Socket, session: Arc<Session>, peer: String) {
    let (sink, mut stream) = socket::split(ws);
    let Some(sub) = session.output.subscribe() else {
        log::warn!(
            "Refused viewer {peer} for session {}: {MAX_VIEWERS} viewers already",
            session.id
        );
        socket::close(
            &sink,
            &mut stream,
            close::TRY_AGAIN_LATER,
            "too many viewers",
        )
        .await;
        return;
    };
    log::info!(
        "Viewer {peer} watching session={} ({} viewers)",
        session.id,
        session.viewer_count()
    );
    let setup = server::viewer_setup(&session.id, sub.history.offset);
    if socket::send(&sink, Message::text(setup)).await.is_err()
        || socket::send_output(&sink, &sub.history.bytes)
            .await
            .is_err()
    {
        return;
    }
    let hearing = Hearing::default();
    let forward = async {
        while let Ok(bytes) = sub.live.recv().await {
            if socket::send(&sink, Message::Binary(bytes)).await.is_err() {
                return Gone::Left;
            }
        }
        Gone::Dropped
    };
    let ignore_input = async {
        let mut ignored = 0usize;
        while let Some(Ok(msg)) = stream.next().await {
            hearing.heard();
            match msg {
                Message::Close(_) => {
                    socket::answer_close(&sink).await;
                    break;
                }
                Message::Binary(_) | Message::Text(_) => {
                    ignored += 1;
                    if ignored == 1 {
                        log::debug!("viewer {peer}: input ignored (read-only)");
                    }
                }
                _ => {}
            }
        }
        Gone::Left
    };
    // Pings keep a quiet view alive through proxies that cut silent
    // connections, as for owners.
    let keepalive = async {
        socket::keepalive(&sink, &hearing, session.settings.config.ping_interval).await;
        Gone::Left
    };
    // A drain ends the session it watches: viewers are told too.
    let drain = async {
        let until = session.registry.drain_begun().await;
        let left = until.saturating_duration_since(Instant::now());
        let notice = Message::text(server::drain(left));
        let _ = socket::send_within(&sink, notice, CLOSE_TIMEOUT).await;
        std::future::pending().await
    };
    if let Gone::Dropped = forward.or(ignore_input).or(keepalive).or(drain).await {
        let (code, why) = if session.state() == State::Ending {
            (close::NORMAL, "the session has ended")
        } else {
            (close::TRY_AGAIN_LATER, "viewer too slow to keep up")
        };
        socket::close(&sink, &mut stream, code, why).await;
    }
    log::info!("Viewer {peer} left session={}", session.id);
}
