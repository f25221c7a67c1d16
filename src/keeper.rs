//! The keeper: a small process whose only job is to end what webterm's
//! sessions leave behind if webterm itself dies (SIGKILL, the OOM killer, a
//! crash), when no shutdown sequence runs.
//!
//! Each session's leader already dies with webterm (its parent-death
//! signal), but a process that left the terminal or ignores the hangup
//! would live on. The keeper reads a pipe whose write end only webterm
//! holds; when the pipe closes without a goodbye, webterm is gone, and the
//! keeper kills the instance's cgroup in one write (`cgroup.kill`), or,
//! without cgroups, every process carrying this instance's mark in its
//! environment (one scan of /proc: the only one webterm ever does, at its
//! death). It runs in a process group of its own, so that a Ctrl-C meant
//! for webterm does not reach it.
//!
//! It is started with a double fork before webterm becomes a subreaper, so
//! it is not webterm's child: nothing webterm waits for or counts as its
//! own. Not started when webterm is PID 1: a container's processes all die
//! with its PID 1.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};

/// What webterm writes before closing the pipe when it exits normally.
const GOODBYE: &[u8] = b"bye";
/// Set in the second fork, the keeper proper.
const DETACHED: &str = "WEBTERM_KEEPER_DETACHED";

/// webterm's side: the pipe to the keeper.
pub struct Keeper {
    pipe: ChildStdin,
}

impl Keeper {
    /// Starts the keeper for this instance: its cgroup directory, if any,
    /// and the mark its sessions' processes carry (`NAME=PREFIX`).
    pub fn start(cgroup: Option<&Path>, mark_prefix: &str) -> std::io::Result<Keeper> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("keeper")
            .arg(cgroup.map(Path::as_os_str).unwrap_or("-".as_ref()))
            .arg(mark_prefix)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .env_remove(DETACHED)
            .process_group(0);
        let mut first = cmd.spawn()?;
        let pipe = first
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no pipe"))?;
        // The first fork starts the keeper proper and exits at once.
        let status = first.wait()?;
        if !status.success() {
            return Err(std::io::Error::other(format!("it exited with {status}")));
        }
        Ok(Keeper { pipe })
    }

    /// webterm is exiting normally, having ended every session itself.
    pub fn dismiss(mut self) {
        let _ = self.pipe.write_all(GOODBYE);
    }
}

/// The keeper process: `webterm keeper CGROUP|- MARK_PREFIX`.
pub fn main(args: Vec<OsString>) -> i32 {
    let [cgroup, mark] = args.as_slice() else {
        let _ = writeln!(
            std::io::stderr(),
            "webterm keeper: started by webterm itself, not by hand"
        );
        return 2;
    };
    if std::env::var_os(DETACHED).is_none() {
        // The first fork: start the keeper proper, which inherits the pipe,
        // and leave it to be adopted by init.
        let started = std::env::current_exe().and_then(|exe| {
            Command::new(exe)
                .arg("keeper")
                .args(&args)
                .env(DETACHED, "1")
                .stdin(Stdio::inherit())
                .spawn()
        });
        return match started {
            Ok(_) => 0,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "webterm keeper: cannot start: {e}");
                1
            }
        };
    }
    let mut said = Vec::new();
    // Blocks until webterm writes its goodbye and closes, or dies.
    let _ = std::io::stdin().lock().read_to_end(&mut said);
    if said == GOODBYE {
        return 0;
    }
    let mark = mark.to_string_lossy();
    let killed = if cgroup == "-" {
        kill_marked(&mark)
    } else {
        kill_cgroup(&PathBuf::from(cgroup))
    };
    if killed > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "webterm keeper: webterm died; ended {killed} processes its sessions left"
        );
    }
    0
}

/// Kills every process in the instance's cgroup and removes its groups.
fn kill_cgroup(dir: &Path) -> usize {
    let procs = count_procs(dir);
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    // The kernel needs a moment to empty the groups before they can go.
    for _ in 0..250 {
        let populated = std::fs::read_to_string(dir.join("cgroup.events"))
            .map(|e| e.lines().any(|l| l == "populated 1"))
            .unwrap_or(false);
        if !populated {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if let Ok(sessions) = std::fs::read_dir(dir) {
        for s in sessions.flatten().filter(|s| s.path().is_dir()) {
            let _ = std::fs::remove_dir(s.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
    procs
}

fn count_procs(dir: &Path) -> usize {
    let Ok(sessions) = std::fs::read_dir(dir) else {
        return 0;
    };
    sessions
        .flatten()
        .map(|s| crate::cgroup::members(&s.path()).len())
        .sum()
}

/// Kills every process whose environment holds an entry starting with `mark`.
fn kill_marked(mark: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env
            .split(|&b| b == 0)
            .any(|e| e.starts_with(mark.as_bytes()))
        {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                if rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok() {
                    killed += 1;
                }
            }
        }
    }
    killed
}
