//! The one way a session ends, whatever ended it.
//!
//! 1. Mark it ending and log why (an attached client has already been told,
//!    and its socket closed, by its attachment).
//! 2. Disconnect its read-only viewers, and refuse sockets that raced to
//!    reattach.
//! 3. End the terminal: every process of the session hung up, killed after
//!    the grace period, reaped (`Terminal::end`).
//! 4. Count it, unlist it, log the result; its slot frees last, so shutdown
//!    waits for this whole sequence.

use std::time::Duration;

use super::{Attachment, Session, Slot, State};
use crate::duration::format_duration;
use crate::metrics::EndReason;
use crate::protocol::{close, End};
use crate::socket;
use crate::terminal::Terminal;

pub(super) async fn end(
    session: &Session,
    terminal: Terminal,
    handovers: &async_channel::Receiver<Attachment>,
    end: End,
    slot: Slot,
) {
    let (id, pid) = (&session.id, session.pid);
    session.set_state(State::Ending);
    if let End::Idle { idle, .. } = &end {
        log::info!(
            "Terminal idle timeout reached ({} idle), stopping session session={id} pid={pid}",
            format_duration(*idle)
        );
    }
    let level = match end {
        End::Protocol(_)
        | End::Left(crate::protocol::Leave::Keepalive(_))
        | End::TerminalError(_) => log::Level::Warn,
        _ => log::Level::Info,
    };
    log::log!(
        level,
        "Stopping Terminal session={id} pid={pid} reason={:?}",
        end.to_string()
    );

    session.output.drop_viewers();
    handovers.close();
    while let Ok(late) = handovers.try_recv() {
        async_std::task::spawn(socket::refuse(
            late.ws,
            close::NO_SUCH_SESSION,
            "the session has ended",
            None,
        ));
    }

    let config = &session.settings.config;
    let grace = config.kill_grace;
    let hangup = config.close_signal.unwrap_or(rustix::process::Signal::HUP);
    let report = terminal.end(grace, hangup).await;
    if report.killed > 0 {
        log::warn!(
            "session={id}: killed {} {} still alive {} after hangup",
            report.killed,
            if report.killed == 1 {
                "process"
            } else {
                "processes"
            },
            format_duration(grace)
        );
    }

    session
        .registry
        .record_exit(crate::protocol::exit_code(report.status).0);
    let lasted = session.started_at.elapsed();
    session.registry.metrics().ended(reason(&end), lasted);
    session.registry.unlist(id);
    let status = match report.status {
        Some(s) => format!("{s}"),
        None => "unknown (still running)".into(),
    };
    log::info!(
        "Stopped Terminal session={id} pid={pid} status={status:?} duration={} bytes_in={} bytes_out={}",
        format_duration(Duration::from_secs(lasted.as_secs())),
        session.bytes_in(),
        session.bytes_out()
    );
    drop(slot);
}

/// The `reason` label of `webterm_sessions_ended_total`.
fn reason(end: &End) -> EndReason {
    match end {
        End::Exited(_) | End::OutputClosed => EndReason::Exit,
        End::Left(_) | End::ReconnectWindow(_) => EndReason::Disconnect,
        End::Protocol(_) | End::TerminalError(_) => EndReason::Error,
        End::Idle { .. } => EndReason::Idle,
        End::Shutdown => EndReason::Shutdown,
        End::Killed => EndReason::Killed,
    }
}
