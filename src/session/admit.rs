//! Letting a socket in: a claim on a running session is proven or refused,
//! a new session gets a slot under the limit and a terminal, or a clear
//! close saying why not.

use std::sync::Arc;
use std::time::Duration;

use async_tungstenite::tungstenite::Message;
use futures_lite::FutureExt as _;
use futures_timer::Delay;
use futures_util::StreamExt as _;

use super::registry::Full;
use super::{viewer, Attachment, Intent, Registry, Request, Settings, Slot, State};
use crate::metrics::EndReason;
use crate::protocol::{close, server, Claim, Mode, Proof};
use crate::socket::{self, Socket};
use crate::terminal::Terminal;

/// How long a resuming or viewing client has to send its proof.
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// A session to start: its first socket, a slot, and a running terminal.
pub(super) struct New {
    pub id: String,
    pub ws: Socket,
    pub req: Request,
    pub terminal: Terminal,
    pub slot: Slot,
    /// Said to the client before its setup (its resume failed).
    pub notice: Option<String>,
}

/// Lets `ws` in. Returns a new session to run, or None when the socket was
/// served (handed to a running session, or to a viewer) or refused.
pub(super) async fn admit(
    mut ws: Socket,
    req: Request,
    settings: &Settings,
    registry: &Arc<Registry>,
) -> Option<New> {
    let mut notice = None;
    if let Intent::Claim(claim, id) = &req.intent {
        // Only binary clients send proofs (and read notices).
        let proof = if req.mode == Mode::Binary {
            read_proof(&mut ws, *claim).await
        } else {
            None
        };
        let session = registry
            .session(id)
            .filter(|s| s.state() != State::Ending)
            .filter(|s| proof.as_ref().is_some_and(|p| s.proves(*claim, &p.token)));
        match (claim, session) {
            (Claim::View, Some(session)) => {
                viewer::watch(ws, session, req.peer).await;
                return None;
            }
            (Claim::View, None) => {
                log::warn!(
                    "Refused viewer for session {id} from {}: no such session, or wrong token",
                    req.peer
                );
                socket::refuse(ws, close::NO_SUCH_SESSION, "no such session to view", None).await;
                return None;
            }
            (Claim::Resume, Some(session)) => {
                let att = Attachment {
                    ws,
                    mode: req.mode,
                    peer: req.peer.clone(),
                    have: proof.map_or(0, |p| p.have),
                    size: Some((req.rows, req.cols)),
                };
                match session.handover.try_send(att) {
                    Ok(()) => return None,
                    Err(e) => ws = e.into_inner().ws,
                }
                log::info!(
                    "Cannot resume session {id} for {}: it is busy or ending",
                    req.peer
                );
            }
            (Claim::Resume, None) => log::info!(
                "Cannot resume session {id} for {}: no such session, or not theirs",
                req.peer
            ),
        }
        notice = (req.mode == Mode::Binary).then(|| {
            server::notice(
                "resume_failed",
                "the previous session has ended; this is a new one",
            )
        });
    }

    let slot = match registry.try_reserve(&req.client) {
        Ok(slot) => slot,
        Err(full) => {
            let (code, why) = match full {
                Full::ShuttingDown => (close::GOING_AWAY, "server shutting down".to_string()),
                Full::Server => (
                    close::TRY_AGAIN_LATER,
                    format!("too many sessions (limit {})", registry.max()),
                ),
                Full::Client => (
                    close::TRY_AGAIN_LATER,
                    format!(
                        "too many sessions for {} (limit {} each)",
                        req.client,
                        registry.max_per_client()
                    ),
                ),
            };
            log::warn!("Refused terminal for {}: {why}", req.peer);
            registry.metrics().count_end(EndReason::Refused);
            socket::refuse(ws, code, &why, None).await;
            return None;
        }
    };

    let env = [("TERM", "xterm-256color"), ("COLORTERM", "truecolor")];
    // 32 hex digits: the replica's tag, then 96 random bits. Guessing an id
    // gains nothing (a reattach or a view also needs a 256-bit token); the
    // tag tells any replica where the session lives.
    let id = format!("{}{}", settings.id_prefix, crate::random::hex(12));
    let spawned = Terminal::spawn(
        &settings.command,
        req.rows,
        req.cols,
        &env,
        &id,
        &settings.containment,
    )
    .await;
    match spawned {
        Ok(terminal) => Some(New {
            id,
            ws,
            req,
            terminal,
            slot,
            notice,
        }),
        Err(e) => {
            log::error!("Could not start '{}': {e}", settings.command.display());
            registry.metrics().count_end(EndReason::Error);
            let reason = format!("could not start the terminal: {e}");
            let notice = (req.mode == Mode::Binary).then(|| server::notice("error", &reason));
            socket::refuse(ws, close::INTERNAL_ERROR, &reason, notice).await;
            None
        }
    }
}

/// The claim's proof, the socket's first message; None if it does not come
/// in time or is not a proof of `claim`.
async fn read_proof(ws: &mut Socket, claim: Claim) -> Option<Proof> {
    let msg = async { ws.next().await }
        .or(async {
            Delay::new(PROOF_TIMEOUT).await;
            None
        })
        .await?;
    match msg {
        Ok(Message::Text(text)) => Proof::parse(claim, text.as_str()),
        _ => None,
    }
}
