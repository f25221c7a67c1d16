//! A terminal: a PTY and the child started on it, owned as one value.
//!
//! `Terminal::end` consumes it, and is the only way a session's processes
//! are stopped: nothing else can kill the child or close the PTY early, and
//! a terminal cannot be forgotten without its processes being ended
//! (dropping it kills and reaps the child, as a last resort).
//!
//! The pair is opened with rustix and the child started with async-process
//! (std's spawn underneath). We never fork and run Rust code in the child
//! ourselves, as the `pty` crate does: in a multi-threaded process only
//! async-signal-safe calls are allowed between fork and exec, so the
//! `pre_exec` hook below makes exactly two system calls.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::Duration;

use async_io::Async;
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};

use crate::reaper;

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
    child: async_lock::Mutex<async_process::Child>,
    pid: u32,
}

impl Terminal {
    /// Opens a PTY of `rows` x `cols` and starts `spec` on it, in a new
    /// session with the PTY as its controlling terminal.
    pub fn spawn(
        spec: &CommandSpec,
        rows: u16,
        cols: u16,
        env: &[(&str, &str)],
    ) -> io::Result<Terminal> {
        let (master, child) = reaper::spawn_leader(|| Terminal::start(spec, rows, cols, env))?;
        let pid = child.id();
        Ok(Terminal {
            master: Async::new(File::from(master))?,
            child: async_lock::Mutex::new(child),
            pid,
        })
    }

    fn start(
        spec: &CommandSpec,
        rows: u16,
        cols: u16,
        env: &[(&str, &str)],
    ) -> io::Result<(OwnedFd, async_process::Child)> {
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

        let program = spec
            .argv
            .first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut std_cmd = std::process::Command::new(program);
        std_cmd.args(&spec.argv[1..]);
        if spec.login {
            let base = program.rsplit('/').next().unwrap_or(program);
            std_cmd.arg0(format!("-{base}"));
        }
        // webterm's own settings (and, later, secrets) are not the shell's business.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WEBTERM_") {
                std_cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            std_cmd.env(k, v);
        }
        // Safety: the closure runs in the child between fork and exec, where
        // only async-signal-safe functions may be called. It calls setsid(2)
        // and ioctl(2) through rustix, which are raw system calls with no
        // allocation, locking or shared state. By then std has already
        // dup2'ed the slave onto fds 0, 1 and 2.
        unsafe {
            std_cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                Ok(())
            });
        }
        let mut cmd = async_process::Command::from(std_cmd);
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave))
            // Teardown ends the child deliberately; dropping a Child must not
            // be the mechanism, but if it ever is, it must not leave a zombie.
            .reap_on_drop(true)
            .kill_on_drop(true);
        let child = cmd.spawn()?;
        // `cmd` still holds the slave fds; dropping it closes them, so the
        // master sees EOF (EIO) once every process has let go of the slave.
        drop(cmd);
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

    /// Ends every process of the terminal's session and reaps the child:
    /// hang up, close the PTY, wait up to `grace`, kill what is left.
    pub async fn end(self, grace: Duration) -> reaper::TeardownReport {
        let Terminal { master, child, .. } = self;
        let mut child = child.into_inner();
        reaper::end_session(&mut child, move || drop(master), grace).await
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
