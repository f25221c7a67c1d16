//! Hardening (issue 14): DNS rebinding, security headers, logging that
//! cannot take the server down, signed tokens, login backoff, trusted
//! proxies, the descriptor limit, and the options that configure them.
//! Real server binary, real sockets; every wait is on state (a status, a
//! metric, a process), never on log wording or a sleep.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_std::task::block_on;
use base64::Engine as _;
use common::*;
use hmac::Mac as _;
use sha2::Digest as _;

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

    fn start_env(args: &[&str], env: &[(&str, &str)]) -> Webterm {
        Webterm::start_with(Command::new(BIN), args, env, Stdout::Captured)
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

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
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

/// Sends `head` (request line and headers, without the blank line) and
/// returns the status and the response head; the body is not read, so an
/// upgrade that succeeds is seen as its 101.
fn raw(addr: &str, head: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(format!("{head}\r\n\r\n").as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn get_as(addr: &str, path: &str, host: &str) -> (u16, String) {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close"),
    )
}

fn upgrade_as(addr: &str, host: &str, origin: &str) -> (u16, String) {
    raw(
        addr,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        ),
    )
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
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

// ---- 1. DNS rebinding ----

#[test]
fn dns_rebinding_is_refused_without_authentication() {
    let server = Webterm::start(&["--", "/bin/sh"], Stdout::Captured);
    let p = server.port();
    let evil = format!("rebind.attacker.example:{p}");

    // The attack: a page on the attacker's name, now resolving to 127.0.0.1,
    // opens a socket. Host and Origin agree, so only the Host check stops it.
    let (status, head) = upgrade_as(&server.addr, &evil, &format!("http://{evil}"));
    assert_eq!(status, 403, "{head}");
    // Nothing else is served to that name either, not even a 404.
    for path in [
        "/",
        "/app.mjs",
        "/vendor/xterm.mjs",
        "/config.json",
        "/api/sessions",
        "/nope",
    ] {
        assert_eq!(get_as(&server.addr, path, &evil).0, 403, "{path}");
    }
    // No shell was started for it.
    assert_eq!(server.metric("webterm_sessions_started_total"), 0.0);
    let children = descendants(server.pid());
    assert!(children.is_empty(), "{children:?}");
    // Probes answer whatever the Host.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get_as(&server.addr, path, &evil).0, 200, "{path}");
    }
    // Loopback names and addresses are served.
    for host in [
        format!("localhost:{p}"),
        format!("term.localhost:{p}"),
        format!("127.0.0.1:{p}"),
        format!("127.0.0.2:{p}"),
        format!("[::1]:{p}"),
    ] {
        assert_eq!(get_as(&server.addr, "/", &host).0, 200, "{host}");
    }
    let local = format!("localhost:{p}");
    let (status, head) = upgrade_as(&server.addr, &local, &format!("http://{local}"));
    assert_eq!(status, 101, "{head}");
    eventually("the real session started", T, || {
        server.metric("webterm_sessions_started_total") == 1.0
    });

    let (_, _, stdout) = server.finish();
    // The refusal is logged as a warning naming the peer and the host; every
    // line is one JSON object with femme's fields.
    let mut warned = false;
    for line in &stdout {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["time"].is_u64() && v["msg"].is_string(), "{line}");
        let msg = v["msg"].as_str().unwrap();
        warned |= v["level"] == 40 && msg.contains(&evil) && msg.contains("127.0.0.1:");
    }
    assert!(
        warned,
        "no warning with the peer and the refused host:\n{stdout:#?}"
    );
}

#[test]
fn allowed_hosts_are_served_and_authentication_lifts_the_check() {
    let server = Webterm::start(
        &[
            "--allowed-host",
            "term.example.com",
            "--allowed-host",
            ".lan",
            "--",
            "/bin/sh",
        ],
        Stdout::Captured,
    );
    let p = server.port();
    assert_eq!(
        get_as(&server.addr, "/", &format!("term.example.com:{p}")).0,
        200
    );
    assert_eq!(get_as(&server.addr, "/", "pi.lan").0, 200);
    assert_eq!(get_as(&server.addr, "/", "example.com").0, 403);
    let host = format!("term.example.com:{p}");
    assert_eq!(
        upgrade_as(&server.addr, &host, &format!("http://{host}")).0,
        101
    );
    drop(server);

    let server = Webterm::start_env(
        &["--", "/bin/sh"],
        &[("WEBTERM_ALLOWED_HOSTS", "a.example, b.example")],
    );
    assert_eq!(get_as(&server.addr, "/", "b.example").0, 200);
    assert_eq!(get_as(&server.addr, "/", "c.example").0, 403);
    drop(server);

    // With a password the attacker's page has nothing to send: the Host is
    // not checked, authentication is.
    let server = Webterm::start(
        &["--credential", "ann:pw", "--", "/bin/sh"],
        Stdout::Captured,
    );
    assert_eq!(get_as(&server.addr, "/", "rebind.attacker.example").0, 401);
}

// ---- 2. Security headers ----

#[test]
fn page_and_assets_carry_security_headers() {
    let server = Webterm::start(&["--", "/bin/sh"], Stdout::Captured);
    let (status, head, body) = http_get_full(&server.addr, "/", &[]);
    assert_eq!(status, 200);
    let csp = header(&head, "Content-Security-Policy").expect("a CSP on the page");
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(csp.contains("object-src 'none'"), "{csp}");
    assert!(csp.contains("base-uri 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    // WebAssembly for the image addon's sixel decoder, but never JS eval.
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    // The inline import map runs because its hash is allowed, and only it.
    let start = body
        .find("<script type=\"importmap\">")
        .expect("import map")
        + 25;
    let end = start + body[start..].find("</script>").unwrap();
    let hash = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(&body.as_bytes()[start..end]));
    assert!(
        csp.contains(&format!(
            "script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}'"
        )),
        "{csp}"
    );
    for path in [
        "/",
        "/app.mjs",
        "/vendor/xterm.mjs",
        "/style.css",
        "/config.json",
        "/socket.worker.mjs",
    ] {
        let (status, head, _) = http_get_full(&server.addr, path, &[]);
        assert_eq!(status, 200, "{path}");
        for (name, value) in [
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "SAMEORIGIN"),
        ] {
            assert_eq!(header(&head, name), Some(value), "{path}: {head}");
        }
        let csp = header(&head, "Content-Security-Policy").unwrap_or("");
        assert!(csp.contains("frame-ancestors 'self'"), "{path}: {head}");
    }
    // A worker runs under its own script's policy: the socket worker's
    // may load only our scripts, and must leave it the socket.
    let (_, head, _) = http_get_full(&server.addr, "/socket.worker.mjs", &[]);
    let csp = header(&head, "Content-Security-Policy").unwrap_or("");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("default-src") && !csp.contains("connect-src"),
        "{csp}"
    );
}

// ---- 3. Logging that cannot take the server down ----

fn survives_a_broken_stdout(stdout: Stdout) {
    let mut server = Webterm::start(&["--", "/bin/sh"], stdout);
    assert_eq!(http_get(&server.addr, "/healthz", &[]).0, 200);
    // The start-up lines fail to be written, and are counted (by the
    // writer thread, which may not have tried yet when the server answers).
    eventually("the start-up lines counted as dropped", T, || {
        server.metric("webterm_log_write_errors_total") >= 1.0
    });
    let dropped = server.metric("webterm_log_write_errors_total");
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

// ---- 4. Authentication ----

fn secret_file(name: &str, key: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("webterm-{name}-{}", std::process::id()));
    std::fs::write(&path, format!("{key}\n")).unwrap();
    path
}

/// A token as webterm signs it (`auth.rs`), for the cases no server would
/// issue: one that has expired.
fn mint(key: &str, user: &str, pass: &str, expiry: u64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(b"v1");
    mac.update(&(user.len() as u64).to_be_bytes());
    mac.update(user.as_bytes());
    mac.update(&expiry.to_be_bytes());
    mac.update(&sha2::Sha256::digest(pass.as_bytes()));
    format!(
        "v1.{}.{expiry}.{}",
        b64.encode(user),
        b64.encode(mac.finalize().into_bytes())
    )
}

fn status_with_cookie(addr: &str, token: &str) -> u16 {
    http_get_full(
        addr,
        "/config.json",
        &[("Cookie", &format!("webterm_auth={token}"))],
    )
    .0
}

/// Runs a webterm that should refuse its options and exit; one that starts
/// serving instead is killed after a while, so the test fails rather than hangs.
fn run_to_exit(cmd: &mut Command) -> std::process::Output {
    let child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if waited.recv_timeout(T).is_err() {
            unsafe_kill(pid, libc_sig::KILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    out
}

#[test]
fn signed_tokens_survive_a_restart_and_other_keys_or_expiry_are_refused() {
    let key = "0123456789abcdef0123456789abcdef-shared";
    let shared = secret_file("key-shared", key);
    let other = secret_file("key-other", "fedcba9876543210fedcba9876543210-other");
    let args = |file: &std::path::Path| -> Vec<String> {
        vec![
            "--credential".into(),
            "ann:correct horse".into(),
            "--secret-file".into(),
            file.to_str().unwrap().into(),
            "--".into(),
            "/bin/sh".into(),
        ]
    };
    let first = Webterm::start(
        &args(&shared).iter().map(String::as_str).collect::<Vec<_>>(),
        Stdout::Captured,
    );
    let (status, head, _) = http_get_full(
        &first.addr,
        "/",
        &[
            ("Authorization", &basic("ann", "correct horse")),
            ("X-Forwarded-Proto", "https"),
        ],
    );
    assert_eq!(status, 200);
    let cookie = header(&head, "Set-Cookie")
        .expect("a token cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("webterm_auth=")
        .unwrap()
        .to_string();
    assert_eq!(status_with_cookie(&first.addr, &token), 200);
    first.finish();

    // A new process with the same key: the user is still logged in, on the
    // page and on the socket, where the cookie is all Safari sends.
    let second = Webterm::start(
        &args(&shared).iter().map(String::as_str).collect::<Vec<_>>(),
        Stdout::Captured,
    );
    assert_eq!(status_with_cookie(&second.addr, &token), 200);
    block_on(async {
        use async_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = second.url("/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert("Cookie", format!("webterm_auth={token}").parse().unwrap());
        let tcp: Box<dyn Conn> = Box::new(
            async_std::net::TcpStream::connect(&second.addr)
                .await
                .unwrap(),
        );
        let (mut ws, _) = async_tungstenite::client_async(req, tcp).await.unwrap();
        setup(&mut ws).await;
    });
    // The test signs tokens as webterm does: a live one passes, which shows
    // the refusals below are for the key and the expiry alone.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        status_with_cookie(&second.addr, &mint(key, "ann", "correct horse", now + 600)),
        200
    );
    assert_eq!(
        status_with_cookie(&second.addr, &mint(key, "ann", "correct horse", now - 1)),
        401
    );
    assert_eq!(
        status_with_cookie(
            &second.addr,
            &mint(
                "another key, 32 bytes or longer!!",
                "ann",
                "correct horse",
                now + 600
            )
        ),
        401
    );

    // A process with another key refuses the first key's token.
    let third = Webterm::start(
        &args(&other).iter().map(String::as_str).collect::<Vec<_>>(),
        Stdout::Captured,
    );
    assert_eq!(status_with_cookie(&third.addr, &token), 401);
    assert_eq!(
        status_with_cookie(&third.addr, &mint(key, "ann", "correct horse", now + 600)),
        401
    );
    std::fs::remove_file(shared).unwrap();
    std::fs::remove_file(other).unwrap();
}

#[test]
fn failed_logins_are_counted_logged_and_slowed() {
    let password = "correct horse";
    let server = Webterm::start(
        &["--credential", "ann:correct horse", "--", "/bin/sh"],
        Stdout::Captured,
    );
    let wrong = basic("ann", "Tr0ub4dor&3");
    let mut took = Vec::new();
    for n in 1..=4 {
        let started = Instant::now();
        let status = http_get_full(&server.addr, "/", &[("Authorization", &wrong)]).0;
        took.push(started.elapsed());
        assert_eq!(status, 401);
        assert_eq!(server.metric("webterm_auth_failures_total"), f64::from(n));
    }
    // Each answer waited at least twice as long as the one before.
    for (i, t) in took.iter().enumerate() {
        let floor = Duration::from_millis(250 << i) - Duration::from_millis(5);
        assert!(
            *t >= floor,
            "failure {} answered after {t:?}: {took:?}",
            i + 1
        );
    }

    // A fifth guess runs; while its delay runs, even the right password is
    // refused unchecked (so guessing in parallel gains nothing).
    let guess = {
        let addr = server.addr.clone();
        let wrong = wrong.clone();
        std::thread::spawn(move || http_get_full(&addr, "/", &[("Authorization", &wrong)]).0)
    };
    let started = Instant::now();
    eventually("the fifth failure counted", T, || {
        server.metric("webterm_auth_failures_total") == 5.0
    });
    let status = http_get_full(
        &server.addr,
        "/",
        &[("Authorization", &basic("ann", password))],
    )
    .0;
    // The fifth delay is 4 s; only a machine slower than that would reach
    // the right password after it, and then it must be accepted.
    if started.elapsed() < Duration::from_secs(4) {
        assert_eq!(status, 401);
    }
    assert_eq!(guess.join().unwrap(), 401);
    // Once the delay has run out, the right password works and starts over.
    assert_eq!(
        http_get_full(
            &server.addr,
            "/",
            &[("Authorization", &basic("ann", password))]
        )
        .0,
        200
    );

    let (_, _, stdout) = server.finish();
    let warnings: Vec<&String> = stdout
        .iter()
        .filter(|l| {
            l.contains("\"level\":40") && l.contains("\\\"ann\\\"") && l.contains("127.0.0.1")
        })
        .collect();
    assert!(warnings.len() >= 5, "{stdout:#?}");
    assert!(
        !stdout
            .iter()
            .any(|l| l.contains("Tr0ub4dor") || l.contains("horse")),
        "{stdout:#?}"
    );
}

#[test]
fn the_auth_header_is_believed_only_from_trusted_proxies() {
    // Refused at start without --trusted-proxy, in one line.
    let out = run_to_exit(Command::new(BIN).args(["--auth-header", "Remote-User"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--trusted-proxy"), "{err}");

    // We connect from 127.0.0.1, which is not the trusted proxy: the header
    // is a forgery and is ignored.
    let server = Webterm::start(
        &[
            "--auth-header",
            "Remote-User",
            "--trusted-proxy",
            "10.99.0.0/16",
            "--",
            "/bin/sh",
        ],
        Stdout::Captured,
    );
    let forged = [("Remote-User", "admin")];
    assert_eq!(http_get_full(&server.addr, "/", &forged).0, 401);
    assert_eq!(http_get_full(&server.addr, "/api/sessions", &forged).0, 401);
    let (status, _) = raw(
        &server.addr,
        &format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nRemote-User: admin\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            server.addr
        ),
    );
    assert_eq!(status, 401);
    assert_eq!(server.metric("webterm_sessions_started_total"), 0.0);
    drop(server);

    // From a trusted proxy the same header is believed.
    let server = Webterm::start_env(
        &["--auth-header", "Remote-User", "--", "/bin/sh"],
        &[("WEBTERM_TRUSTED_PROXIES", "10.99.0.0/16, 127.0.0.1")],
    );
    assert_eq!(http_get_full(&server.addr, "/", &forged).0, 200);
    assert_eq!(http_get_full(&server.addr, "/", &[]).0, 401);
}

// ---- 5. Descriptor limit ----

#[test]
fn the_soft_fd_limit_is_raised_to_the_hard_limit() {
    let hard = hard_nofile(std::process::id() as i32);
    assert!(
        hard > 256,
        "this test needs a hard limit above 256, not {hard}"
    );
    let mut wrapper = Command::new("/bin/sh");
    wrapper.args(["-c", "ulimit -S -n 256 && exec \"$0\" \"$@\"", BIN]);
    let server = Webterm::start_with(wrapper, &["--", "/bin/sh"], &[], Stdout::Captured);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let (soft, hard_now) = nofile(&limits);
    assert_eq!(hard_now, hard.to_string());
    assert_eq!(soft, hard_now, "{limits}");
    let (_, _, stdout) = server.finish();
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("256") && l.contains(&hard.to_string())),
        "both limits are logged: {stdout:#?}"
    );
}

fn nofile(limits: &str) -> (String, String) {
    let row = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = row["Max open files".len()..].split_whitespace().collect();
    (f[0].to_string(), f[1].to_string())
}

fn hard_nofile(pid: i32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    nofile(&limits).1.parse().unwrap()
}

// ---- 7. Options ----

#[test]
fn new_options_are_documented_and_checked() {
    let help = String::from_utf8(Command::new(BIN).arg("--help").output().unwrap().stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for (flag, var) in [
        ("--allowed-host", "WEBTERM_ALLOWED_HOSTS"),
        ("--secret-file", "WEBTERM_SECRET_FILE"),
        ("--trusted-proxy", "WEBTERM_TRUSTED_PROXIES"),
    ] {
        for text in [flag, var] {
            assert!(help.contains(text), "--help lacks {text}");
            assert!(readme.contains(text), "README lacks {text}");
        }
    }
    for metric in [
        "webterm_auth_failures_total",
        "webterm_log_write_errors_total",
    ] {
        assert!(readme.contains(metric), "README lacks {metric}");
    }
    for (args, env, starts) in [
        (
            &["--allowed-host", "http://x"][..],
            None,
            "--allowed-host: 'http://x'",
        ),
        (
            &[][..],
            Some(("WEBTERM_ALLOWED_HOSTS", "a b")),
            "WEBTERM_ALLOWED_HOSTS: 'a b'",
        ),
        (
            &["--trusted-proxy", "10.0.0.0/99"][..],
            None,
            "--trusted-proxy: '10.0.0.0/99'",
        ),
        (
            &[][..],
            Some(("WEBTERM_TRUSTED_PROXIES", "x")),
            "WEBTERM_TRUSTED_PROXIES: 'x'",
        ),
        (
            &["--secret-file", "/nonexistent"][..],
            None,
            "--secret-file: '/nonexistent' cannot be read",
        ),
        (
            &[][..],
            Some(("WEBTERM_SECRET_FILE", "/dev/null")),
            "WEBTERM_SECRET_FILE: '/dev/null' holds 0 bytes",
        ),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_remove("RUST_LOG");
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = run_to_exit(&mut cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("webterm: {starts}")), "{err}");
    }
    // Printing help into a closed pipe is not a crash either.
    let mut child = Command::new(BIN)
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}
