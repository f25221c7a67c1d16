//! Hardening (issue 14): logging that cannot take the server down.
//! Real server binary, real sockets; every wait is on state (a status, a
//! metric, a process), never on log wording or a sleep.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_std::task::block_on;
use common::*;

const T: Duration = Duration::from_secs(10);
const BIN: &str = env!("CARGO_BIN_EXE_webterm");

/// What becomes of the server's stdout.
enum Stdout {
    /// Read to the end; the lines come back from [`Webterm::finish`].
    Captured,
    /// A pipe whose read end is closed before the server writes anything.
    Closed,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
}

/// A webterm process started by these tests. Unlike `common::Server` it
/// does not need its logs to find its port (they may go nowhere): it reads
/// the listening socket from /proc.
struct Webterm {
    child: Child,
    addr: String,
    readers: Vec<JoinHandle<Vec<String>>>,
}

impl Webterm {
    fn start(args: &[&str], stdout: Stdout) -> Webterm {
        Webterm::start_with(Command::new(BIN), args, &[], stdout)
    }

    /// `cmd` runs webterm (directly, or through a wrapper that execs it).
    fn start_with(
        mut cmd: Command,
        args: &[&str],
        env: &[(&str, &str)],
        stdout: Stdout,
    ) -> Webterm {
        cmd.args(["--listen", "127.0.0.1:0", "--log-level", "debug"])
            .args(args)
            .env_remove("RUST_LOG")
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        match stdout {
            Stdout::Captured | Stdout::Closed => cmd.stdout(Stdio::piped()),
            Stdout::Full => cmd.stdout(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .expect("/dev/full"),
            ),
        };
        let mut child = cmd.spawn().expect("start webterm");
        let mut readers = vec![read_lines(child.stderr.take().unwrap())];
        match stdout {
            Stdout::Captured => readers.push(read_lines(child.stdout.take().unwrap())),
            // Dropping our only read end: every write the server makes to
            // its stdout now fails with EPIPE.
            Stdout::Closed => drop(child.stdout.take()),
            Stdout::Full => {}
        }
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(port) = listening_port(pid) {
                break port;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err = readers.swap_remove(0).join().unwrap();
                panic!("webterm exited early ({status}): {err:?}");
            }
            assert!(Instant::now() < deadline, "webterm did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        };
        Webterm {
            child,
            addr: format!("127.0.0.1:{port}"),
            readers,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn metric(&self, name: &str) -> f64 {
        let (status, body) = http_get(&self.addr, "/metrics", &[]);
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// SIGTERM, wait for the exit, and return it with everything the server
    /// wrote: (status, stderr lines, stdout lines if captured).
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>, Vec<String>) {
        unsafe_kill(self.pid(), libc_sig::TERM);
        let status = wait_exit(&mut self.child, Duration::from_secs(15)).unwrap_or_else(|| {
            let _ = self.child.kill();
            self.child.wait().unwrap()
        });
        let mut readers = std::mem::take(&mut self.readers).into_iter();
        let stderr = readers.next().unwrap().join().unwrap();
        let stdout = readers
            .next()
            .map(|r| r.join().unwrap())
            .unwrap_or_default();
        (status, stderr, stdout)
    }
}

impl Drop for Webterm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            unsafe_kill(self.pid(), libc_sig::TERM);
            if wait_exit(&mut self.child, Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_lines(pipe: impl std::io::Read + Send + 'static) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("WEBTERM_TEST_ECHO").is_some() {
                eprintln!("[webterm] {line}");
            }
            lines.push(line);
        }
        lines
    })
}

/// The TCP port `pid` listens on, from its descriptors and /proc/net/tcp.
fn listening_port(pid: i32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    table.lines().skip(1).find_map(|row| {
        let f: Vec<&str> = row.split_whitespace().collect();
        let listening = f.get(3) == Some(&"0A");
        if listening && inodes.iter().any(|i| Some(&i.as_str()) == f.get(9)) {
            u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()
        } else {
            None
        }
    })
}

/// A session on `server` reaches its prompt and echoes.
fn session_echoes(url: &str, word: &str) {
    block_on(async {
        let mut ws = connect(url, None, None).await.unwrap();
        setup(&mut ws).await;
        type_text(&mut ws, false, &format!("echo {word}-$((40+2))\r")).await;
        read_until(&mut ws, &format!("{word}-42"), T).await;
    });
}

// ---- 3. Logging that cannot take the server down ----

fn survives_a_broken_stdout(stdout: Stdout) {
    let mut server = Webterm::start(&["--", "/bin/sh"], stdout);
    assert_eq!(http_get(&server.addr, "/healthz", &[]).0, 200);
    // The start-up lines already failed to be written, and were counted.
    let dropped = server.metric("webterm_log_write_errors_total");
    assert!(dropped >= 1.0, "{dropped}");
    // A session logs as it starts: it still reaches the prompt and echoes.
    session_echoes(&server.url("/ws"), "alive");
    session_echoes(&server.url("/ws"), "again");
    eventually("the sessions' log lines counted as dropped", T, || {
        server.metric("webterm_log_write_errors_total") > dropped
    });
    assert_eq!(http_get(&server.addr, "/healthz", &[]).0, 200);
    assert!(server.running());
    let (status, stderr, _) = server.finish();
    assert!(status.success(), "{status}: {stderr:?}");
    assert!(!stderr.iter().any(|l| l.contains("panicked")), "{stderr:?}");
}

#[test]
fn log_lines_are_json_with_femmes_fields() {
    let server = Webterm::start(&["--", "/bin/sh"], Stdout::Captured);
    session_echoes(&server.url("/ws"), "logged");
    assert_eq!(server.metric("webterm_log_write_errors_total"), 0.0);
    let (status, _, stdout) = server.finish();
    assert!(status.success(), "{status}");
    // Start-up, the session's start and end, and the shutdown at least.
    assert!(stdout.len() >= 4, "{stdout:#?}");
    for line in &stdout {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            [10, 20, 30, 40, 50].contains(&v["level"].as_u64().unwrap_or(0)),
            "{line}"
        );
        assert!(
            v["time"].as_u64().unwrap_or(0) > 1_600_000_000_000,
            "{line}"
        );
        assert!(v["msg"].is_string(), "{line}");
    }
    // The last words of a clean exit are not lost in the queue.
    assert!(
        stdout.last().unwrap().contains("shutdown complete"),
        "{stdout:#?}"
    );
}

#[test]
fn a_closed_stdout_pipe_takes_nothing_down() {
    survives_a_broken_stdout(Stdout::Closed);
}

#[test]
fn a_full_stdout_takes_nothing_down() {
    survives_a_broken_stdout(Stdout::Full);
}
