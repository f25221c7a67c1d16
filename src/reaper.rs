//! Ending a session's processes, all of them, and reaping every child.
//!
//! This is the "no grey goo" guarantee. A terminal's child runs in its own
//! session (`setsid`), whose id is the child's pid, so every process it
//! starts, in any process group, carries that session id until it
//! deliberately calls `setsid` itself. Teardown therefore works on the
//! session, not just the child:
//!
//! 1. SIGHUP (then SIGCONT, so stopped jobs can act on it) to every process
//!    in the session, the way a terminal hangup would.
//! 2. Close the PTY master: the kernel hangs up the terminal too.
//! 3. Wait up to the grace period for the session to empty.
//! 4. SIGKILL whatever is still in it.
//! 5. Reap the child; orphans handed to us are reaped on their SIGCHLD.
//!
//! webterm also makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so
//! processes orphaned inside a session are re-parented to webterm rather than
//! to PID 1 of the host or container; `reap_orphans` collects them when they
//! die. Without that, a container whose PID 1 is webterm (or any init that
//! does not reap) would fill with zombies.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_lite::FutureExt as _;
use futures_timer::Delay;
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};

/// Pids of the session leaders async-process is watching. `reap_orphans`
/// must never wait on one of these: it would steal the exit status that
/// async-process is waiting for. Held across spawning too, so that a child
/// that exits instantly is registered before anyone can see it as an orphan.
static LEADERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn leaders() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    // A panic while holding this lock cannot leave the set inconsistent
    // (insert and remove are single operations), so poisoning is ignored.
    LEADERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a child with `spawn` and registers it as a session leader.
pub fn spawn_leader<T>(
    spawn: impl FnOnce() -> std::io::Result<(T, async_process::Child)>,
) -> std::io::Result<(T, async_process::Child)> {
    let mut set = leaders();
    let (t, child) = spawn()?;
    set.insert(child.id() as i32);
    Ok((t, child))
}

/// Makes this process the reaper for orphans of its descendants.
pub fn become_subreaper() {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        log::warn!("could not become a child subreaper ({e}); orphans of sessions will be re-parented to PID 1");
    }
}

/// One line of /proc/<pid>/stat, the fields teardown needs.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    pid: i32,
    state: u8,
    ppid: i32,
    session: i32,
}

fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain
    // spaces or parentheses, so parse from the last ')'.
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.bytes().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let _pgrp: i32 = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        session,
    })
}

fn all_processes() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_stat)
        .collect()
}

/// Live (not zombie) processes in session `sid`.
fn session_members(sid: i32) -> Vec<i32> {
    all_processes()
        .into_iter()
        .filter(|p| p.session == sid && p.state != b'Z' && p.state != b'X')
        .map(|p| p.pid)
        .collect()
}

fn signal_all(pids: &[i32], sig: Signal) {
    for &pid in pids {
        if let Some(pid) = Pid::from_raw(pid) {
            // ESRCH just means it is already gone.
            let _ = kill_process(pid, sig);
        }
    }
}

/// What teardown found, for the session's closing log line.
#[derive(Debug, Default)]
pub struct TeardownReport {
    pub status: Option<std::process::ExitStatus>,
    /// Processes still alive after the grace period, killed with SIGKILL.
    pub killed: usize,
}

/// Ends every process of the session led by `child` and reaps the child.
/// `hangup` is called between the SIGHUP and the wait; it closes the PTY.
pub async fn end_session(
    child: &mut async_process::Child,
    hangup: impl FnOnce(),
    grace: Duration,
) -> TeardownReport {
    let sid = child.id() as i32;
    let started = Instant::now();
    let members = session_members(sid);
    signal_all(&members, Signal::HUP);
    signal_all(&members, Signal::CONT);
    hangup();

    // Wait for the leader first (an event, not a poll), then for stragglers.
    let status = async { child.status().await.ok() }
        .or(async {
            Delay::new(grace).await;
            None
        })
        .await;
    let mut report = TeardownReport { status, killed: 0 };
    loop {
        let left = session_members(sid);
        if left.is_empty() {
            break;
        }
        if started.elapsed() >= grace {
            signal_all(&left, Signal::KILL);
            report.killed = left.len();
            break;
        }
        Delay::new(Duration::from_millis(25)).await;
    }
    if report.status.is_none() {
        let _ = child.kill();
        // SIGKILL cannot be ignored; only a process stuck in the kernel (D
        // state) could delay this, and then we stop waiting after a while and
        // leave the Child to async-process, which reaps it when it finally dies.
        report.status = async { child.status().await.ok() }
            .or(async {
                Delay::new(Duration::from_secs(5)).await;
                None
            })
            .await;
    }
    if report.status.is_some() {
        leaders().remove(&sid);
    }
    // Orphans of this session that die later are collected by
    // `reap_orphans_forever` on their SIGCHLD; no scan needed here.
    report
}

/// Reaps zombies re-parented to us (we are their subreaper), leaving alone
/// the session leaders that async-process owns. Returns how many it reaped.
pub fn reap_orphans() -> usize {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let set = leaders();
    let mut reaped = 0;
    for p in all_processes() {
        if p.ppid == me && p.state == b'Z' && !set.contains(&p.pid) {
            if let Some(pid) = Pid::from_raw(p.pid) {
                if let Ok(Some(_)) = waitpid(Some(pid), WaitOptions::NOHANG) {
                    reaped += 1;
                }
            }
        }
    }
    reaped
}

/// At shutdown, once every session has ended: reaps the children that are
/// left (processes killed in the last teardowns whose exit has not been
/// collected yet), so none is handed to the next init as a zombie. Returns
/// when no child is left, or at `deadline` (a process that escaped its
/// session and is still running then is left to the next init).
pub async fn reap_remaining(deadline: Duration) -> usize {
    let until = Instant::now() + deadline;
    let mut reaped = 0;
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some(_)) => reaped += 1,
            Ok(None) if Instant::now() < until => Delay::new(Duration::from_millis(10)).await,
            // No child at all (ECHILD), or time is up.
            _ => return reaped,
        }
    }
}

/// Runs for the life of the server: reaps orphans after each SIGCHLD. A burst
/// of exits is handled with one scan of /proc after a short pause, so churn
/// does not turn into one scan per exited process.
pub async fn reap_orphans_forever() {
    use futures_util::StreamExt as _;
    let mut signals = match async_signal::Signals::new([async_signal::Signal::Child]) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot watch SIGCHLD ({e}); orphans are reaped only at session teardown");
            return;
        }
    };
    while signals.next().await.is_some() {
        Delay::new(Duration::from_millis(100)).await;
        // Every SIGCHLD that arrived meanwhile is covered by this one scan:
        // take them all now, or a burst of exits costs a scan each.
        while let Some(Some(_)) = futures_lite::future::poll_once(signals.next()).await {}
        let n = reap_orphans();
        if n > 0 {
            log::debug!("reaped {n} orphaned processes");
        }
    }
}
