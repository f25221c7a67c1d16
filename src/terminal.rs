//! A terminal: a PTY and the child started on it, owned as one value.
//!
//! `Terminal::end` consumes it, and is the only way a session's processes
//! are stopped: nothing else can kill the child or close the PTY early, and
//! a terminal cannot be forgotten without its processes being ended
//! (dropping it kills and reaps the child, as a last resort).
//!
//! The pair is opened with rustix and the child started by `spawn` (inside
//! its cgroup from the first instruction, where the kernel allows).
//!
//! Where a session's processes are kept (`Containment`) decides how they
//! are found at the end: its cgroup, where the host allows one (nothing
//! escapes it), or else the process tree below the child plus the orphans
//! webterm adopted that carry the session's mark in their environment.
//!
//! The ending sequence (`end`), for every process of the session:
//! 1. SIGHUP (or `--close-signal`; then SIGCONT, so stopped jobs can act on
//!    it), the way a terminal hangup would; then close the PTY master, so
//!    the kernel hangs up the terminal too.
//! 2. Wait up to the grace period for them to exit, on their pidfds, never
//!    by polling /proc.
//! 3. SIGKILL whatever is still there.
//! 4. Collect the child's status; adopted orphans are reaped by `reaper`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_io::Async;
use futures_lite::FutureExt as _;
use futures_timer::Delay;
use rustix::process::{Pid, Signal};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};

use crate::{cgroup, proctree, reaper, spawn};

/// The environment variable that marks every process of a session, so
/// that one that leaves the process tree is still known as the session's.
pub const MARK: &str = "WEBTERM_SESSION";

/// The open-files soft limit webterm was started with, which its children
/// get back (webterm raises its own: see `main.rs`). `u64::MAX`: unknown or
/// unlimited, leave the child's as it is.
static CHILD_NOFILE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Records the open-files soft limit webterm was started with, before it
/// raises its own, so that every terminal starts with it: a shell with a
/// soft limit of a million descriptors breaks programs that still use
/// `select()`, and is not what the user's login would give them.
pub fn keep_child_fd_limit(soft: Option<u64>) {
    CHILD_NOFILE.store(soft.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// How long to wait for processes to die after SIGKILL. Only a process stuck
/// in the kernel (D state) takes longer; it is reaped when it finally dies.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How soon a session found empty by process tree is looked at again.
const RECHECK: Duration = Duration::from_millis(5);

/// How many reads an orphan mid-exec may hold up a session's end (about
/// 100 ms): far longer than an exec takes, even under qemu-user.
const UNSURE_READS: u32 = 20;

/// Where sessions' processes are kept, decided once at start.
#[derive(Clone, Debug, Default)]
pub struct Containment {
    /// A cgroup per session, where the host allows: no process can leave it.
    pub cgroups: Option<Arc<cgroup::Instance>>,
    /// `WEBTERM_SESSION=<instance>.`: each session's processes carry this
    /// followed by the session's id. None under `--tmux`, whose server
    /// leaves the child's process tree, and must outlive the session, by design.
    pub mark: Option<String>,
}

/// How one terminal's processes are found.
enum Scope {
    Cgroup(cgroup::Group),
    Tree { mark: Option<String> },
}

/// What `end` did, for the session's closing log line.
#[derive(Debug, Default)]
pub struct Ending {
    pub status: Option<std::process::ExitStatus>,
    /// Processes still alive after the grace period, killed with SIGKILL.
    pub killed: usize,
}

/// What to run in each terminal.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    /// argv; the first element is the program.
    pub argv: Vec<String>,
    /// Start the program as a login shell (argv[0] prefixed with '-', the
    /// convention login(1) uses), so it reads the profile files.
    pub login: bool,
}

impl CommandSpec {
    /// The operator's command, or the user's login shell.
    pub fn from_config(command: Option<&[String]>) -> CommandSpec {
        match command {
            Some(argv) if !argv.is_empty() => CommandSpec {
                argv: argv.to_vec(),
                login: false,
            },
            _ => {
                let shell = std::env::var("SHELL")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| "/bin/sh".into());
                CommandSpec {
                    argv: vec![shell],
                    login: true,
                }
            }
        }
    }

    /// The same command inside the tmux session `name`: created by the first
    /// tab, attached to by later ones (`new-session -A`). tmux's server leaves
    /// our session (it daemonizes), so it and the shell survive teardown and
    /// webterm restarts; only the tab's tmux client is ended.
    pub fn in_tmux(self, name: &str) -> CommandSpec {
        let mut argv: Vec<String> = ["tmux", "new-session", "-A", "-s", name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !self.login {
            argv.push("--".into());
            argv.extend(self.argv);
        }
        CommandSpec { argv, login: false }
    }

    /// The command with `extra` appended, each one argument (`--url-arg`).
    pub fn with_args(&self, extra: &[String]) -> CommandSpec {
        let mut argv = self.argv.clone();
        argv.extend_from_slice(extra);
        CommandSpec {
            argv,
            login: self.login,
        }
    }

    /// For logs and the sessions list.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// Whether `program` is an executable on PATH.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A PTY whose child has been started.
pub struct Terminal {
    /// Non-blocking; `&Async<File>` reads and writes, so the input and output
    /// pumps can share it without a lock.
    master: Async<File>,
    /// Locked only to wait for the exit status (`exited`), never across
    /// anything else, so the one waiter and `end` never contend.
    child: async_lock::Mutex<spawn::Child>,
    pid: u32,
    scope: Scope,
}

impl Terminal {
    /// Opens a PTY of `rows` x `cols` and starts `spec` on it, in a new
    /// session with the PTY as its controlling terminal, kept as
    /// `containment` says under the name `id`.
    pub async fn spawn(
        spec: &CommandSpec,
        rows: u16,
        cols: u16,
        env: &[(&str, &str)],
        id: &str,
        containment: &Containment,
    ) -> io::Result<Terminal> {
        let mark = containment
            .mark
            .as_ref()
            .map(|prefix| format!("{prefix}{id}"));
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some((name, value)) = mark.as_deref().and_then(|m| m.split_once('=')) {
            env.push((name.into(), value.into()));
        }
        let spec = spec.clone();
        let instance = containment.cgroups.clone();
        let id = id.to_string();
        // The cgroup is made on the spawner thread too: mkdir in cgroupfs
        // takes a kernel-wide lock, which must not hold up the async threads.
        let (master, group, child) = reaper::spawn_leader(move || {
            let (group, dir) = match &instance {
                Some(instance) => instance.session(&id).map(|(g, d)| (Some(g), Some(d)))?,
                None => (None, None),
            };
            let (master, child) = Terminal::start(&spec, rows, cols, &env, dir.as_ref())?;
            let pid = child.id();
            Ok(((master, group, child), pid))
        })
        .await?;
        let scope = match group {
            Some(group) => Scope::Cgroup(group),
            None => Scope::Tree { mark },
        };
        let pid = child.id();
        Ok(Terminal {
            master: Async::new(File::from(master))?,
            child: async_lock::Mutex::new(child),
            pid,
            scope,
        })
    }

    /// Runs on the spawner thread (see `reaper::spawn_leader`).
    fn start(
        spec: &CommandSpec,
        rows: u16,
        cols: u16,
        env: &[(String, String)],
        cgroup: Option<&OwnedFd>,
    ) -> io::Result<(OwnedFd, spawn::Child)> {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        set_size(&master, rows, cols)?;
        let slave_path = ptsname(&master, Vec::new())?;
        let slave: OwnedFd = rustix::fs::open(
            slave_path.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let arg0 = spec
            .argv
            .first()
            .filter(|_| spec.login)
            .map(|program| format!("-{}", program.rsplit('/').next().unwrap_or(program)));
        let nofile = Some(CHILD_NOFILE.load(Ordering::Relaxed)).filter(|&n| n != u64::MAX);
        let program = spawn::Program {
            argv: &spec.argv,
            arg0,
            env,
            nofile,
        };
        // The slave is closed here once the child has it, so the master
        // sees EOF (EIO) once every process has let go of it.
        let child = spawn::start(&program, slave, cgroup)?;
        Ok((master, child))
    }

    /// The child's pid, which is also its session id and process group.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn io(&self) -> &Async<File> {
        &self.master
    }

    /// Completes when the child exits, with its status (`None`: it could
    /// not be read).
    pub async fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.lock().await.status().await.ok()
    }

    /// Ends every process of the terminal's session and reaps the child;
    /// the sequence is in the module's documentation.
    pub async fn end(self, grace: Duration, hangup: Signal) -> Ending {
        let Terminal {
            master,
            child,
            pid,
            scope,
        } = self;
        let mut child = child.into_inner();
        let leader = pid as i32;

        let master = master.into_inner().ok();
        let scope = off_the_async_threads(move || {
            let members = scope.members(leader);
            signal_each(&members, hangup);
            signal_each(&members, Signal::CONT);
            drop(master);
            scope
        })
        .await;

        // Collect the child's status as soon as it exits, while waiting for
        // the rest: a leader is never left a zombie for the grace period.
        let mut ending = Ending::default();
        let status = async { child.status().await.ok() };
        let (status, emptied) = futures_lite::future::zip(
            status.or(async {
                Delay::new(grace + KILL_WAIT).await;
                None
            }),
            async {
                let emptied = scope.emptied(leader, grace).await;
                if !emptied {
                    let (s, killed) = off_the_async_threads(move || {
                        let killed = scope.kill_all(leader);
                        (scope, killed)
                    })
                    .await;
                    s.emptied(leader, KILL_WAIT).await;
                    return (s, killed);
                }
                (scope, 0)
            },
        )
        .await;
        let (scope, killed) = emptied;
        ending.killed = killed;
        remove_off_the_async_threads(scope).await;

        ending.status = status;
        if ending.status.is_none() {
            // Not even SIGKILL ended it in time (stuck in the kernel): leave
            // the Child to `spawn`, which reaps it when it dies.
            let _ = child.kill();
        } else {
            reaper::leader_reaped(pid);
        }
        ending
    }

    /// Asks the foreground program to redraw its screen, as a resize would,
    /// by sending SIGWINCH to the terminal's foreground process group.
    pub fn request_redraw(&self) {
        if let Ok(pgrp) = rustix::termios::tcgetpgrp(self.master.get_ref()) {
            let _ = rustix::process::kill_process_group(pgrp, rustix::process::Signal::WINCH);
        }
    }

    /// Sets the window size; the kernel sends SIGWINCH to the foreground group.
    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        set_size(self.master.get_ref(), rows, cols)
    }
}

impl Scope {
    /// The live processes of the session, the child included.
    fn members(&self, leader: i32) -> Vec<i32> {
        match self {
            Scope::Cgroup(group) => group.members(),
            Scope::Tree { mark } => tree_members(leader, mark.as_deref()),
        }
    }

    /// Completes when no process of the session is left (true), or after
    /// `limit` (false). Each live process is watched through a pidfd, and
    /// the list read again once they have all exited (one may have forked).
    ///
    /// Not with inotify on the cgroup's `populated` flag: closing an inotify
    /// instance waits for an SRCU grace period (10-20 ms here), which would
    /// hold an async thread for every session that ends.
    ///
    /// By process tree, "none left" is believed only when two reads in a row
    /// say so, with no adopted orphan mid-exec: the kernel's children lists
    /// can skip an entry while they change, and webterm's change all the
    /// time while sessions end together.
    async fn emptied(&self, leader: i32, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        let believed = match self {
            Scope::Cgroup(_) => 1,
            Scope::Tree { .. } => 2,
        };
        let mut empty_reads = 0;
        let mut unsure_reads = 0;
        loop {
            let (members, sure) = match self {
                // The kernel keeps the group's list: a read, not a scan.
                Scope::Cgroup(group) => (group.members(), true),
                Scope::Tree { mark } => {
                    let mark = mark.clone();
                    async_std::task::spawn_blocking(move || {
                        tree_members_sure(leader, mark.as_deref())
                    })
                    .await
                }
            };
            // An orphan whose environment stays empty (`env -i`) cannot be
            // told apart from one mid-exec: it holds up a session's end
            // for `UNSURE_READS` reads, not for good.
            let sure = sure || unsure_reads >= UNSURE_READS;
            if !sure {
                unsure_reads += 1;
            }
            empty_reads = if members.is_empty() && sure {
                empty_reads + 1
            } else {
                0
            };
            if empty_reads >= believed {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if members.is_empty() {
                // Read again in a moment (an exec takes a few milliseconds).
                Delay::new(RECHECK.min(left)).await;
            } else {
                exits(&members).or(Delay::new(left)).await;
            }
        }
    }

    /// SIGKILLs every process left; returns how many there were.
    fn kill_all(&self, leader: i32) -> usize {
        match self {
            Scope::Cgroup(group) => group.kill_all(),
            Scope::Tree { .. } => {
                let members = self.members(leader);
                signal_each(&members, Signal::KILL);
                members.len()
            }
        }
    }
}

/// Runs one of teardown's blocking steps (reading members, signalling,
/// closing the PTY, cgroup.kill) on the blocking pool, so that the two
/// async threads, which also answer /healthz, never wait on them; and a few
/// at a time, so that thousands of sessions ending at once queue here
/// instead of piling threads onto two cores.
async fn off_the_async_threads<T: Send + 'static>(step: impl FnOnce() -> T + Send + 'static) -> T {
    static STEPS: async_lock::Semaphore = async_lock::Semaphore::new(4);
    let _permit = STEPS.acquire().await;
    async_std::task::spawn_blocking(step).await
}

/// Removes an emptied session's cgroup on the blocking pool, one at a time
/// and apart from the steps above: each `rmdir` takes the kernel's cgroup
/// mutex, so more at once would only queue in the kernel, and sharing the
/// steps' permits would hold back other sessions' hangups behind removals
/// (500 sessions closed at once: the last shell went in 1.9x ttyd's time).
async fn remove_off_the_async_threads(scope: Scope) {
    static REMOVALS: async_lock::Semaphore = async_lock::Semaphore::new(1);
    let _permit = REMOVALS.acquire().await;
    async_std::task::spawn_blocking(move || drop(scope)).await
}

/// The live processes below `leader`, and below each orphan webterm adopted
/// that carries `mark`.
fn tree_members(leader: i32, mark: Option<&str>) -> Vec<i32> {
    tree_members_sure(leader, mark).0
}

/// `tree_members`, and whether the answer can be trusted to be complete.
/// It cannot while an adopted orphan is in the middle of an exec (its
/// environment, and so its mark, reads empty for that moment): an escapee
/// forked just as the session ended, as `setsid` does when it must fork
/// first, is then adopted and mid-exec when its session is looked at.
fn tree_members_sure(leader: i32, mark: Option<&str>) -> (Vec<i32>, bool) {
    let mut members = proctree::live_tree(leader);
    let mut sure = true;
    if let Some(mark) = mark {
        let me = rustix::process::getpid().as_raw_nonzero().get();
        for orphan in proctree::children(me) {
            if reaper::is_leader(orphan) || members.contains(&orphan) {
                continue;
            }
            match proctree::has_env(orphan, mark) {
                Some(true) => members.extend(proctree::live_tree(orphan)),
                Some(false) => {}
                None => sure &= !proctree::is_live(orphan),
            }
        }
    }
    (members, sure)
}

/// Completes when every one of `pids` has exited, watching each through a
/// pidfd; where the kernel has no pidfds (before 5.3), after a short pause,
/// so that the caller looks again.
async fn exits(pids: &[i32]) {
    let mut watches = Vec::with_capacity(pids.len());
    for &pid in pids {
        let Some(pid) = Pid::from_raw(pid) else {
            continue;
        };
        match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => match Async::new(fd) {
                Ok(watch) => watches.push(watch),
                Err(_) => return Delay::new(Duration::from_millis(20)).await,
            },
            // Already gone.
            Err(rustix::io::Errno::SRCH) => {}
            Err(_) => return Delay::new(Duration::from_millis(20)).await,
        }
    }
    for watch in &watches {
        let _ = watch.readable().await;
    }
}

fn signal_each(pids: &[i32], sig: Signal) {
    for &pid in pids {
        if let Some(pid) = Pid::from_raw(pid) {
            // ESRCH just means it is already gone.
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

fn set_size(fd: impl AsFd, rows: u16, cols: u16) -> io::Result<()> {
    tcsetwinsize(
        fd,
        Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// Whether a read error means "the other side is gone": Linux reports EIO on
/// the master once the last slave fd closes.
pub fn is_hangup(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error())
}
