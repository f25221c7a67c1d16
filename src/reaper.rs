//! Starting session leaders, and reaping every child webterm ever has.
//!
//! webterm makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so
//! processes orphaned inside a session are re-parented to webterm rather
//! than to PID 1 of the host or container, and their exit statuses come to
//! us. Two kinds of children follow:
//!
//! - session *leaders*, which webterm started; `spawn` waits for each
//!   (through a pidfd) and hands its status to the session;
//! - *orphans*, adopted; `reap_orphans_forever` collects them when they die.
//!
//! The orphan reaper must never wait on a leader (it would steal the status
//! `spawn` is waiting for), so leaders are registered in `LEADERS`
//! while they are being spawned, before anyone could see them exit. It finds
//! candidates through the kernel's list of webterm's own children, never by
//! scanning /proc: its cost is the number of webterm's children.
//!
//! Leaders are spawned from one thread that lives as long as webterm, so
//! that their parent-death signal (SIGKILL, set between fork and exec) fires
//! when webterm dies, and not when some worker thread exits.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_timer::Delay;
use rustix::process::{waitpid, Pid, WaitOptions};

use crate::proctree;

/// Pids of the session leaders `spawn` is watching.
static LEADERS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn leaders() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    // A panic while holding this lock cannot leave the set inconsistent
    // (insert and remove are single operations), so poisoning is ignored.
    LEADERS.lock().unwrap_or_else(|p| p.into_inner())
}

type Job = Box<dyn FnOnce() + Send>;

/// The spawner thread's queue.
fn spawner() -> &'static async_channel::Sender<Job> {
    static SPAWNER: OnceLock<async_channel::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = async_channel::unbounded::<Job>();
        let started = std::thread::Builder::new()
            .name("webterm-spawner".into())
            .spawn(move || {
                while let Ok(job) = rx.recv_blocking() {
                    job();
                }
            });
        if let Err(e) = started {
            log::error!("cannot start the spawner thread: {e}");
        }
        tx
    })
}

/// Starts a session leader with `spawn` (which returns what it made and
/// the leader's pid), on the spawner thread, and registers it before
/// anyone can see it exit.
pub async fn spawn_leader<T: Send + 'static>(
    spawn: impl FnOnce() -> std::io::Result<(T, u32)> + Send + 'static,
) -> std::io::Result<T> {
    let (reply, result) = async_channel::bounded(1);
    let job: Job = Box::new(move || {
        let mut set = leaders();
        let spawned = spawn().map(|(made, pid)| {
            set.insert(pid as i32);
            made
        });
        drop(set);
        let _ = reply.try_send(spawned);
    });
    let gone = || std::io::Error::other("the spawner thread is gone");
    spawner().send(job).await.map_err(|_| gone())?;
    result.recv().await.map_err(|_| gone())?
}

/// The leader `pid` has been reaped by its session: it is no longer ours
/// to protect, and its pid may be reused.
pub fn leader_reaped(pid: u32) {
    leaders().remove(&(pid as i32));
}

/// Whether `pid` is a session leader (its status belongs to its session).
pub fn is_leader(pid: i32) -> bool {
    leaders().contains(&pid)
}

/// Makes this process the reaper for orphans of its descendants. False
/// where the kernel (or an emulator such as qemu-user) refuses.
pub fn become_subreaper() -> bool {
    match rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("could not become a child subreaper ({e}); orphans of sessions will be re-parented to PID 1");
            false
        }
    }
}

/// Reaps every exited child that is not a leader. Returns how many.
pub fn reap_orphans() -> usize {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let mut reaped = 0;
    for pid in proctree::children(me) {
        // Checked under the lock, which spawning holds until the leader is
        // registered: a leader that exits at once is never mistaken for an orphan.
        if leaders().contains(&pid) {
            continue;
        }
        if let Some(pid) = Pid::from_raw(pid) {
            if let Ok(Some(_)) = waitpid(Some(pid), WaitOptions::NOHANG) {
                reaped += 1;
            }
        }
    }
    reaped
}

/// Runs for the life of the server: reaps orphans on every SIGCHLD. A burst
/// of exits is handled in one pass, and passes are at least `PASS_GAP`
/// apart: each reads the list of all webterm's children, leaders included,
/// so when 500 sessions close at once a pass per SIGCHLD would cost
/// quadratic time on the threads that are hanging up the other sessions.
/// An orphan is a zombie for at most that much longer.
pub async fn reap_orphans_forever() {
    use futures_util::StreamExt as _;
    let mut signals = match async_signal::Signals::new([async_signal::Signal::Child]) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("cannot watch SIGCHLD ({e}); orphans are reaped only at shutdown");
            return;
        }
    };
    while signals.next().await.is_some() {
        while let Some(Some(_)) = futures_lite::future::poll_once(signals.next()).await {}
        // A syscall per child: off the async threads.
        let n = async_std::task::spawn_blocking(reap_orphans).await;
        if n > 0 {
            log::debug!("reaped {n} orphaned processes");
        }
        Delay::new(PASS_GAP).await;
    }
}

/// The least time between two passes of the orphan reaper.
const PASS_GAP: Duration = Duration::from_millis(20);

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
