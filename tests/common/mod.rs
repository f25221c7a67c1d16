//! Test harness: starts the real `webterm` binary on an ephemeral port,
//! connects real WebSocket clients, and inspects real processes in /proc.
#![allow(dead_code)]

pub mod nginx;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_std::net::TcpStream;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::FutureExt as _;
use futures_util::StreamExt as _;

/// Any byte stream a test's WebSocket runs over: TCP, TLS, a Unix socket.
pub trait Conn: futures_lite::AsyncRead + futures_lite::AsyncWrite + Send + Unpin {}
impl<T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Send + Unpin> Conn for T {}
pub type Ws = WebSocketStream<Box<dyn Conn>>;

impl std::fmt::Debug for dyn Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

/// Opens a WebSocket over an already-open connection (TLS, a Unix socket).
pub async fn connect_over(
    io: impl Conn + 'static,
    url: &str,
    protocol: Option<&str>,
) -> Result<Ws, async_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request()?;
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    let io: Box<dyn Conn> = Box::new(io);
    let (ws, _resp) = async_tungstenite::client_async(req, io).await?;
    Ok(ws)
}

/// How long anything that must happen may take before a test fails. Passing
/// runs never wait for it, so it is sized for the slowest place the suite
/// runs: under qemu-user, on a machine whose cores are busy with something
/// else, a shell's prompt has been seen to take more than 10 s.
pub const T: Duration = Duration::from_secs(30);

pub struct Server {
    pub child: Child,
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// What `/api/sessions` needs from this server: its base path and the
    /// credentials it was started with.
    base_path: String,
    auth: Vec<(String, String)>,
}

impl Server {
    /// Starts webterm with `args` (use `--` before a command).
    pub fn start(args: &[&str]) -> Server {
        Server::start_env(args, &[])
    }

    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_via(&[], args, env)
    }

    /// Starts webterm through `wrapper` (a program and its arguments, which
    /// must exec webterm with the arguments after it), to start it in a
    /// state a parent could leave it in (ignored signals, limits).
    pub fn start_via(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::launch(wrapper, args, env, true)
    }

    /// Starts webterm on the `--listen` addresses in `args` alone: for
    /// replicas that must know each other's ports before they start.
    /// (Otherwise the harness listens on an ephemeral loopback port first,
    /// and `addr` is that one.)
    pub fn start_listening(args: &[&str]) -> Server {
        Server::launch(&[], args, &[], false)
    }

    /// Like `start_listening`, but `None` if the address was taken: a port
    /// chosen free in advance can be taken by anything else on the machine
    /// before webterm binds it, and the caller then picks another.
    pub fn start_listening_unless_taken(args: &[&str]) -> Option<Server> {
        match Server::try_launch(&[], args, &[], false) {
            Ok(server) => Some(server),
            // EADDRINUSE, as the OS words it in webterm's error.
            Err(logs) if logs.iter().any(|l| l.contains("(os error 98)")) => None,
            Err(logs) => panic!("webterm exited early: {logs:?}"),
        }
    }

    fn launch(wrapper: &[&str], args: &[&str], env: &[(&str, &str)], ephemeral: bool) -> Server {
        Server::try_launch(wrapper, args, env, ephemeral)
            .unwrap_or_else(|logs| panic!("webterm exited early: {logs:?}"))
    }

    /// Starts webterm and waits for its listening line; `Err` with its
    /// output if it exits first.
    fn try_launch(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        ephemeral: bool,
    ) -> Result<Server, Vec<String>> {
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(env!("CARGO_BIN_EXE_webterm"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_webterm")),
        };
        if ephemeral {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(["--log-level", "debug"])
            .args(args)
            .env_remove("RUST_LOG")
            // Inside a developer's tmux, $TMUX would point every tmux the
            // server starts at the developer's own tmux server.
            .env_remove("TMUX")
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start webterm");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let logs = Arc::clone(&logs);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if std::env::var_os("WEBTERM_TEST_ECHO").is_some() {
                        eprintln!("[webterm] {line}");
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        // Generous: an emulated (qemu-user) server on a loaded machine can
        // take tens of seconds to start.
        let deadline = Instant::now() + 4 * T;
        loop {
            let addr = logs.lock().unwrap().iter().find_map(|l| {
                let rest = l.split("listening on ").nth(1)?;
                let rest = rest
                    .strip_prefix("http://")
                    .or_else(|| rest.strip_prefix("https://"))?;
                Some(rest.split(['/', ' ']).next().unwrap().to_string())
            });
            if let Some(addr) = addr {
                let (base_path, auth) = api_access(args);
                return Ok(Server {
                    child,
                    addr,
                    logs,
                    base_path,
                    auth,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut out = logs.lock().unwrap().clone();
                out.push(format!("(exit: {status})"));
                return Err(out);
            }
            if Instant::now() >= deadline {
                // Not left running behind a failed test.
                let _ = child.kill();
                let _ = child.wait();
                panic!("webterm did not start: {:?}", logs.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Everything the server has logged so far, for failure messages only:
    /// tests wait on state (processes, sockets, metrics), never on log text.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The `/metrics` exposition, as text.
    pub fn metrics_text(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "/metrics: {body}");
        body
    }

    /// The sum of every sample of `name` carrying all of `labels`: with no
    /// labels, a family's total (`webterm_sessions_ended_total` over every
    /// reason). A family with no such sample yet counts as 0.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics_text(), name, labels)
    }

    /// Waits until `metric(name, labels)` is exactly `want`.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics_text();
            let got = metric_value(&text, name, labels);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} is {got}, not {want}, after {timeout:?}:\n{text}\nlogs:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The rows of `/api/sessions`.
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let headers: Vec<(&str, &str)> = self
            .auth
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let path = format!("{}/api/sessions", self.base_path);
        let (status, body) = http_get(&self.addr, &path, &headers);
        assert_eq!(status, 200, "{path}: {body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        doc["sessions"].as_array().unwrap().clone()
    }

    /// One session's row, if it is listed.
    pub fn session(&self, id: &str) -> Option<serde_json::Value> {
        self.sessions().into_iter().find(|s| s["id"] == id)
    }

    /// `attached`, `detached` or `ending`; None once the session is gone.
    pub fn session_state(&self, id: &str) -> Option<String> {
        self.session(id)
            .and_then(|s| s["state"].as_str().map(str::to_string))
    }

    /// Waits until the session is in `state`, or (None) no longer listed.
    pub fn wait_state(&self, id: &str, state: Option<&str>, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.session_state(id);
            if now.as_deref() == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "session {id} is {now:?}, not {state:?}, after {timeout:?}; logs:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigterm(&self) {
        unsafe_kill(self.pid(), libc_sig::TERM);
    }

    /// Waits for the server to exit, returning its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path, &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.sigterm();
            if self.wait_exit(T).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

pub mod libc_sig {
    pub const TERM: i32 = 15;
    pub const KILL: i32 = 9;
}

/// Sends a signal with the `kill` command, keeping the tests free of unsafe.
pub fn unsafe_kill(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A minimal HTTP/1.1 GET, returning the status and body.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let (status, _, body) = http_get_full(addr, path, headers);
    (status, body)
}

/// A minimal HTTP/1.1 GET, returning the status, the head and the body.
pub fn http_get_full(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// The base path and the request headers that get a server started with
/// `args` to answer `/api/sessions`.
fn api_access(args: &[&str]) -> (String, Vec<(String, String)>) {
    use base64::Engine as _;
    let value = |flag: &str| {
        args.iter()
            .take_while(|a| **a != "--")
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.to_string())
    };
    let base_path = value("--base-path")
        .map(|b| b.trim_end_matches('/').to_string())
        .unwrap_or_default();
    let mut auth = Vec::new();
    if let Some(credential) = value("--credential") {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credential);
        auth.push(("Authorization".to_string(), format!("Basic {encoded}")));
    }
    if let Some(header) = value("--auth-header") {
        auth.push((header, "webterm-tests".to_string()));
    }
    (base_path, auth)
}

/// One value from an OpenMetrics exposition: the sum of the samples named
/// `name` whose labels include every one of `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (sample, sample_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        if sample == name
            && labels
                .iter()
                .all(|(k, v)| sample_labels.iter().any(|(sk, sv)| sk == k && sv == v))
        {
            sum += value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        }
    }
    sum
}

/// `a="x",b="y"` to pairs; values may hold escaped quotes and commas.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

/// Waits until `sample` gives the same value twice, `quiet` apart: a flow
/// (of output, of CPU) has stopped. Returns that value.
pub fn wait_steady(
    what: &str,
    quiet: Duration,
    timeout: Duration,
    mut sample: impl FnMut() -> u64,
) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut last = sample();
    loop {
        std::thread::sleep(quiet);
        let now = sample();
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still changing after {timeout:?} ({last} -> {now})"
        );
        last = now;
    }
}

/// Opens a WebSocket. `protocol`: a subprotocol to offer; `origin`: an Origin header.
pub async fn connect(
    url: &str,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<Ws, async_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request()?;
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(p).unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).unwrap());
    }
    let host = req
        .uri()
        .authority()
        .expect("ws URL has a host")
        .to_string();
    // An address, not a name: async-std resolves names on its blocking
    // pool, which makes thousands of connections crawl.
    let tcp = match host.parse::<std::net::SocketAddr>() {
        Ok(addr) => TcpStream::connect(addr).await?,
        Err(_) => TcpStream::connect(host).await?,
    };
    let tcp: Box<dyn Conn> = Box::new(tcp);
    let (ws, _resp) = async_tungstenite::client_async(req, tcp).await?;
    Ok(ws)
}

/// An `Authorization` header value for HTTP Basic.
pub fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{user}:{pass}")
        )
    )
}

/// Opens a socket with extra request headers; Err carries the HTTP status.
pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name =
            async_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut()
            .insert(name, HeaderValue::from_str(v).unwrap());
    }
    let host = req.uri().authority().unwrap().to_string();
    let tcp: Box<dyn Conn> = Box::new(async_std::net::TcpStream::connect(host).await.unwrap());
    match async_tungstenite::client_async(req, tcp).await {
        Ok((ws, _)) => Ok(ws),
        Err(async_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected error {e}"),
    }
}

pub const BINARY: &str = "webterm.binary.v1";

/// Reads the next message, failing the test after `timeout`.
pub async fn next(ws: &mut Ws, timeout: Duration) -> Option<Message> {
    async { ws.next().await.map(|m| m.expect("websocket error")) }
        .or(async {
            async_std::task::sleep(timeout).await;
            panic!("no message within {timeout:?}")
        })
        .await
}

/// Reads the terminado `setup` message and returns it.
pub async fn setup(ws: &mut Ws) -> serde_json::Value {
    match next(ws, T).await {
        Some(Message::Text(t)) => {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            if v.is_array() {
                assert_eq!(v[0], "setup", "{v}");
                v[1].clone()
            } else {
                assert_eq!(v["type"], "setup", "{v}");
                v
            }
        }
        other => panic!("expected setup, got {other:?}"),
    }
}

/// Everything a session sends, decoded into one of these.
#[derive(Debug)]
pub enum Event {
    Output(Vec<u8>),
    Json(serde_json::Value),
    Closed(Option<CloseFrame>),
}

pub async fn event(ws: &mut Ws, timeout: Duration) -> Event {
    loop {
        match next(ws, timeout).await {
            Some(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v.is_array() && v[0] == "stdout" {
                    return Event::Output(v[1].as_str().unwrap().as_bytes().to_vec());
                }
                return Event::Json(v);
            }
            Some(Message::Binary(b)) => return Event::Output(b.to_vec()),
            Some(Message::Close(f)) => return Event::Closed(f),
            Some(_) => continue,
            None => return Event::Closed(None),
        }
    }
}

/// Reads output until `needle` appears; returns everything read so far.
pub async fn read_until(ws: &mut Ws, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "did not see {needle:?} within {timeout:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        match event(ws, left).await {
            Event::Output(b) => {
                got.extend_from_slice(&b);
                if String::from_utf8_lossy(&got).contains(needle) {
                    return String::from_utf8_lossy(&got).into_owned();
                }
            }
            Event::Json(_) => {}
            Event::Closed(f) => panic!(
                "closed ({f:?}) before {needle:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// Sends keystrokes in whichever protocol the socket speaks.
pub async fn type_text(ws: &mut Ws, binary: bool, text: &str) {
    let msg = if binary {
        Message::binary(text.as_bytes().to_vec())
    } else {
        Message::text(serde_json::json!(["stdin", text]).to_string())
    };
    ws.send(msg).await.unwrap();
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text.to_string())).await.unwrap();
}

/// Reads until the socket closes; returns the close frame and what came before.
pub async fn read_to_close(ws: &mut Ws, timeout: Duration) -> (Option<CloseFrame>, Vec<Event>) {
    let deadline = Instant::now() + timeout;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "socket not closed within {timeout:?}; saw {before:?}"
        );
        match event(ws, left).await {
            Event::Closed(f) => return (f, before),
            e => before.push(e),
        }
    }
}

// ---- Sessions, as a client sees them ----

/// Which wire protocol a client speaks: the terminado JSON arrays every
/// terminado client sends, or webterm's own (raw bytes, typed JSON control
/// messages), offered as the `webterm.binary.v1` subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Terminado,
    Binary,
}

impl Proto {
    /// The subprotocol to offer on connect.
    fn offer(self) -> Option<&'static str> {
        match self {
            Proto::Terminado => None,
            Proto::Binary => Some(BINARY),
        }
    }
}

/// The `setup` message a session begins with: what the server says about
/// the session (its id, the child's pid, tokens, limits). Index it for any
/// field; the accessors are for the ones tests use as values.
#[derive(Clone, Debug)]
pub struct Setup(pub serde_json::Value);

impl Setup {
    /// The child's pid (in tmux mode, the client's).
    pub fn pid(&self) -> i32 {
        self.0["pid"].as_i64().expect("setup has a pid") as i32
    }

    /// The session's id, as `/api/sessions` lists it.
    pub fn id(&self) -> &str {
        self.0["session"].as_str().expect("setup names the session")
    }

    /// The owner's token for reattaching (resumable binary sessions only).
    pub fn resume_token(&self) -> &str {
        self.0["resume_token"].as_str().expect("a resume token")
    }

    /// The token that lets a read-only viewer in.
    pub fn view_token(&self) -> &str {
        self.0["view_token"].as_str().expect("a view token")
    }
}

impl std::ops::Index<&str> for Setup {
    type Output = serde_json::Value;
    fn index(&self, key: &str) -> &serde_json::Value {
        &self.0[key]
    }
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One client socket with its session's setup already read: the sequence
/// (connect, read the setup, type, read until the output shows) that most
/// tests start with, written once. It knows its protocol, so typing needs
/// no flag. Dropping it drops the connection with no close frame, as a
/// client that vanishes does; `close` says goodbye properly.
pub struct Term {
    pub ws: Ws,
    pub setup: Setup,
    pub proto: Proto,
    /// What the server sent before the setup when this socket reattached
    /// (a `resume_failed` notice when the session could not be resumed).
    pub notices: Vec<serde_json::Value>,
}

impl Term {
    /// Reads the setup off a socket just opened. The setup must be the
    /// first thing the server sends.
    pub async fn attach(mut ws: Ws, proto: Proto) -> Term {
        let setup = Setup(setup(&mut ws).await);
        Term {
            ws,
            setup,
            proto,
            notices: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.setup.pid()
    }

    pub fn id(&self) -> &str {
        self.setup.id()
    }

    /// Sends keystrokes, framed for this socket's protocol.
    pub async fn type_text(&mut self, text: &str) {
        type_text(&mut self.ws, self.proto == Proto::Binary, text).await;
    }

    /// Sends one text message as it is: a control message (a resize, an
    /// ack) or something malformed on purpose.
    pub async fn send_text(&mut self, text: &str) {
        send_text(&mut self.ws, text).await;
    }

    /// Types `line` and Enter, then reads until `expect` shows; returns
    /// what was read. `expect` should be something only running the line
    /// prints (`echo a-$((1+1))` shows `a-2`), not the echo of the line.
    pub async fn run(&mut self, line: &str, expect: &str) -> String {
        self.type_text(&format!("{line}\r")).await;
        self.read_until(expect).await
    }

    /// Reads output until `needle` appears (failing the test after `T` or
    /// on a close); returns everything read.
    pub async fn read_until(&mut self, needle: &str) -> String {
        read_until(&mut self.ws, needle, T).await
    }

    /// The next thing the session sends, within `T`.
    pub async fn event(&mut self) -> Event {
        event(&mut self.ws, T).await
    }

    /// Reads until the server closes the socket, within `T`.
    pub async fn read_to_close(&mut self) -> Closed {
        Closed::read(&mut self.ws, T).await
    }

    /// Hands the socket to a background reader, so that it answers pings
    /// while the test waits on something else; `stop` gives it back.
    pub fn keep_reading(self) -> Reading {
        Reading {
            reader: keep_reading(self.ws),
            setup: self.setup,
            proto: self.proto,
            notices: self.notices,
        }
    }

    /// Closes the socket with a close frame: a client leaving on purpose.
    pub async fn close(mut self) {
        self.ws.close(None).await.unwrap();
    }

    /// Drops the connection with no close frame (a client that vanishes),
    /// keeping the setup: the session's id, pid and tokens outlive it.
    pub fn hang_up(self) -> Setup {
        self.setup
    }
}

/// How a socket ended: the close frame, and everything that came before it.
#[derive(Debug)]
pub struct Closed {
    pub frame: Option<CloseFrame>,
    pub before: Vec<Event>,
}

impl Closed {
    /// Reads `ws` until the server closes it, failing the test after
    /// `timeout`.
    pub async fn read(ws: &mut Ws, timeout: Duration) -> Closed {
        let (frame, before) = read_to_close(ws, timeout).await;
        Closed { frame, before }
    }

    /// The close code; 0 for a close with no frame.
    pub fn code(&self) -> u16 {
        close_code(&self.frame)
    }

    /// The close reason; empty for a close with no frame.
    pub fn reason(&self) -> &str {
        self.frame.as_ref().map_or("", |f| f.reason.as_str())
    }

    /// The terminal output that arrived before the close, joined.
    pub fn output(&self) -> Vec<u8> {
        self.before
            .iter()
            .filter_map(|e| match e {
                Event::Output(b) => Some(b.as_slice()),
                _ => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    /// The JSON (control) messages that arrived before the close.
    pub fn messages(&self) -> impl Iterator<Item = &serde_json::Value> {
        self.before.iter().filter_map(|e| match e {
            Event::Json(v) => Some(v),
            _ => None,
        })
    }
}

/// A `Term` whose socket is being read in the background.
pub struct Reading {
    reader: Reader,
    setup: Setup,
    proto: Proto,
    notices: Vec<serde_json::Value>,
}

impl Reading {
    /// The `Term` back, its socket still open; fails the test if the
    /// socket ended meanwhile.
    pub async fn stop(self) -> Term {
        Term {
            ws: self.reader.stop().await,
            setup: self.setup,
            proto: self.proto,
            notices: self.notices,
        }
    }
}

/// A close frame's code; 0 for a close with no frame.
pub fn close_code(frame: &Option<CloseFrame>) -> u16 {
    frame.as_ref().map_or(0, |f| u16::from(f.code))
}

impl Server {
    /// Opens a session at `/ws` and reads its setup.
    pub async fn open(&self, proto: Proto) -> Term {
        self.open_at("/ws", proto).await
    }

    /// Opens a resumable binary session (`query`, if any, starts with `&`)
    /// and reads its setup.
    pub async fn open_resumable(&self, query: &str) -> Term {
        self.open_at(&format!("/ws?resumable=1{query}"), Proto::Binary)
            .await
    }

    /// Opens a session at `path` (with its query) and reads its setup.
    pub async fn open_at(&self, path: &str, proto: Proto) -> Term {
        Term::attach(self.connect(path, proto).await, proto).await
    }

    /// Opens a terminado session with extra request headers (credentials,
    /// a cookie) and reads its setup.
    pub async fn open_with(&self, headers: &[(&str, &str)]) -> Term {
        let ws = connect_with(&self.url("/ws"), headers)
            .await
            .unwrap_or_else(|status| panic!("refused with HTTP {status}"));
        Term::attach(ws, Proto::Terminado).await
    }

    /// A socket upgraded at `path` and nothing read yet: for sessions the
    /// server is expected to refuse.
    pub async fn connect(&self, path: &str, proto: Proto) -> Ws {
        connect(&self.url(path), proto.offer(), None)
            .await
            .unwrap_or_else(|e| panic!("connect to {path}: {e}"))
    }

    /// Reattaches to session `id` with its resume token, holding `have`
    /// bytes of its output. Notices sent before the setup (a failed resume
    /// gets a new session and says so) are kept in `notices`.
    pub async fn resume(&self, id: &str, token: &str, have: u64) -> Term {
        let hello = serde_json::json!({"type": "resume", "token": token, "have": have});
        let mut ws = self
            .connect(&format!("/ws?resumable=1&resume={id}"), Proto::Binary)
            .await;
        send_text(&mut ws, &hello.to_string()).await;
        let mut notices = Vec::new();
        loop {
            match event(&mut ws, T).await {
                Event::Json(v) if v["type"] == "setup" => {
                    return Term {
                        ws,
                        setup: Setup(v),
                        proto: Proto::Binary,
                        notices,
                    }
                }
                Event::Json(v) => notices.push(v),
                other => panic!("expected setup, got {other:?}"),
            }
        }
    }

    /// Joins session `id` as a read-only viewer with its view token. The
    /// setup must be the first thing the server sends.
    pub async fn view(&self, id: &str, token: &str) -> Term {
        let mut ws = self.view_socket(id).await;
        let hello = serde_json::json!({"type": "view", "token": token});
        send_text(&mut ws, &hello.to_string()).await;
        Term::attach(ws, Proto::Binary).await
    }

    /// A binary socket asking to view session `id`, its token not sent yet.
    pub async fn view_socket(&self, id: &str) -> Ws {
        self.connect(&format!("/ws?view={id}"), Proto::Binary).await
    }

    /// Runs `webterm sessions --url <this server> args`.
    pub fn webterm_sessions(&self, args: &[&str]) -> Run {
        let url = format!("http://{}", self.addr);
        webterm(&[&["sessions", "--url", &url][..], args].concat())
    }
}

// ---- The webterm binary's subcommands ----

/// What a run of the `webterm` binary left: its exit status and output.
#[derive(Debug)]
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// The exit code; -1 if a signal ended it.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// For failure messages: everything the run left.
impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the `webterm` binary with `args` to its end (`sessions …`,
/// `health`, `--help`, a bad flag), in the tests' own environment. What it
/// prints must be UTF-8.
pub fn webterm(args: &[&str]) -> Run {
    webterm_env(args, &[])
}

/// `webterm` with `args` and these environment variables added.
pub fn webterm_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_webterm"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run webterm");
    Run {
        status: out.status,
        stdout: String::from_utf8(out.stdout).expect("webterm prints UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("webterm logs UTF-8"),
    }
}

// ---- Processes, from /proc ----

#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub session: i32,
    pub comm: String,
}

pub fn procs() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        out.push(Proc {
            pid,
            state: f[0].chars().next().unwrap(),
            ppid: f[1].parse().unwrap(),
            session: f[3].parse().unwrap(),
            comm,
        });
    }
    out
}

/// All descendants of `root` (not including it).
pub fn descendants(root: i32) -> Vec<Proc> {
    let all = procs();
    let mut found: Vec<Proc> = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for c in all.iter().filter(|c| c.ppid == p) {
            frontier.push(c.pid);
            found.push(c.clone());
        }
    }
    found
}

/// Processes in session `sid` (the session a terminal's child leads).
pub fn in_session(sid: i32) -> Vec<Proc> {
    procs().into_iter().filter(|p| p.session == sid).collect()
}

pub fn alive(pid: i32) -> bool {
    procs().iter().any(|p| p.pid == pid)
}

/// Waits until `cond` holds, or fails with `what`.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Whether this machine lets a process become a child subreaper, which
/// webterm needs to adopt and reap the orphans of its sessions. qemu-user
/// does not emulate `PR_{GET,SET}_CHILD_SUBREAPER` (it answers EINVAL), so
/// under `scripts/test-aarch64.sh` webterm runs without it. Asked with the
/// side-effect-free GET, through the same emulation webterm runs under.
pub fn subreaping_unavailable() -> Option<String> {
    rustix::process::child_subreaper()
        .err()
        .map(|e| format!("prctl(PR_GET_CHILD_SUBREAPER) fails here ({e})"))
}

/// For a test that needs webterm to be a child subreaper: true (and says so
/// on the terminal, past the test harness's capture) when it must be
/// skipped (the whole test, or the checks that need one).
pub fn skip_without_subreaper(test: &str, why: &str) -> bool {
    use std::io::Write as _;
    let Some(cause) = subreaping_unavailable() else {
        return false;
    };
    // Written to the file descriptor itself: libtest captures eprintln!,
    // and a skip nobody sees is a silent pass.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test} (no child subreaper here, as under qemu-user): {why}; {cause}"
    );
    true
}

/// A process's command line, arguments separated by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// A socket read on the async-std executor's threads, so that it answers
/// pings while the test thread blocks on something else.
pub struct Reader {
    stop: async_channel::Sender<()>,
    task: async_std::task::JoinHandle<Result<Ws, String>>,
}

/// Keeps reading (and discarding) what arrives on `ws` until `stop`.
pub fn keep_reading(mut ws: Ws) -> Reader {
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let task = async_std::task::spawn(async move {
        loop {
            let msg = async { Some(ws.next().await) }
                .or(async {
                    let _ = stopped.recv().await;
                    None
                })
                .await;
            match msg {
                Some(Some(Ok(_))) => {}
                Some(other) => return Err(format!("the socket ended: {other:?}")),
                None => return Ok(ws),
            }
        }
    });
    Reader { stop, task }
}

impl Reader {
    /// The socket back, still open; fails the test if it ended meanwhile.
    pub async fn stop(self) -> Ws {
        let _ = self.stop.send(()).await;
        self.task.await.unwrap_or_else(|e| panic!("{e}"))
    }
}

/// A directory of the test's own, removed when dropped (even as a failed
/// test unwinds). `name` keeps tests in one process apart.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        // Short: a Unix socket's path holds at most 107 bytes.
        let dir = std::env::temp_dir().join(format!("webterm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Where `name` goes in it.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// A file in it holding `contents`; its path as a string.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads an HTTP response head, through its blank line, from a raw socket
/// (byte by byte: what follows belongs to the WebSocket).
pub fn read_head(s: &mut impl std::io::Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}
