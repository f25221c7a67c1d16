//! Read-only viewers of a session: the owner hands out a link carrying the
//! session's view token; a viewer sees the replay, then live output. Its
//! input is ignored and it does not count as activity, so a watched session
//! still idles out when its owner leaves. A viewer that cannot keep up is
//! disconnected rather than allowed to slow the owner down.

use std::sync::Arc;

use async_lock::Mutex;
use async_tungstenite::tungstenite::Message;
use futures_lite::FutureExt as _;
use futures_util::StreamExt as _;

use crate::bridge::{self, Socket};
use crate::protocol::{close, server};
use crate::sessions::{Handle, State};

pub async fn serve(
    ws: Socket,
    handle: Arc<Handle>,
    peer: String,
    ping_interval: Option<std::time::Duration>,
) {
    // Snapshot and subscribe under one lock (the replay's), so no byte is
    // missed or repeated between the two.
    let (history, offset, rx) = {
        let replay = handle.replay();
        let r = replay.resume_from(0);
        (r.bytes, r.offset, handle.add_viewer())
    };
    let (sink, mut stream) = ws.split();
    let sink = Mutex::new(sink);
    let Some(rx) = rx else {
        log::warn!(
            "Refused viewer {peer} for session {}: {} viewers already",
            handle.id,
            crate::sessions::MAX_VIEWERS
        );
        bridge::close_socket(
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
        handle.id,
        handle.viewer_count()
    );
    let setup = server::viewer_setup(&handle.id, offset);
    if bridge::send(&sink, Message::text(setup)).await.is_err() {
        return;
    }
    for chunk in history.chunks(bridge::OUTPUT_CHUNK) {
        if bridge::send(&sink, Message::binary(chunk.to_vec()))
            .await
            .is_err()
        {
            return;
        }
    }
    let forward = async {
        while let Ok(bytes) = rx.recv().await {
            if bridge::send(&sink, Message::Binary(bytes)).await.is_err() {
                return false;
            }
        }
        true // the session dropped us: it ended, or we were too slow
    };
    let ignore_input = async {
        let mut ignored = 0usize;
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            if matches!(msg, Message::Binary(_) | Message::Text(_)) {
                ignored += 1;
                if ignored == 1 {
                    log::debug!("viewer {peer}: input ignored (read-only)");
                }
            }
        }
        false
    };
    // Pings keep a quiet view alive through proxies that cut silent
    // connections, as for owners.
    let keepalive = async {
        let Some(interval) = ping_interval else {
            return std::future::pending().await;
        };
        loop {
            futures_timer::Delay::new(interval).await;
            if bridge::send(&sink, Message::Ping(Default::default()))
                .await
                .is_err()
            {
                return false;
            }
        }
    };
    let dropped = forward.or(ignore_input).or(keepalive).await;
    if dropped {
        let (code, why) = if handle.state() == State::Ending {
            (close::NORMAL, "the session has ended")
        } else {
            (close::TRY_AGAIN_LATER, "viewer too slow to keep up")
        };
        bridge::close_socket(&sink, &mut stream, code, why).await;
    }
    log::info!("Viewer {peer} left session={}", handle.id);
}
