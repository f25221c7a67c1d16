//! webterm-bench: measures web terminals side by side on this machine.
//!
//! It starts each server itself (webterm, and ttyd when `--ttyd` names its
//! binary) on a loopback port with the same shell, drives it over its own
//! protocol, and prints one table. It also measures the raw PTY ceiling:
//! `cat` on a PTY read directly, no server and no network at all.
//!
//! How it keeps the comparison fair on a noisy machine:
//! - **Interleaved.** Every scenario runs `--runs` repetitions; within a
//!   repetition each subject is measured once, one after the other, and the
//!   order flips from one repetition to the next (A B C, then C B A), so a
//!   burst of noise lands on every subject rather than on one block.
//! - **Fresh servers.** Every single measurement starts its own server and
//!   stops it afterwards, so nothing (a heap grown by an earlier step, a
//!   leftover process) carries over from one measurement to the next.
//! - **Pairwise ratios.** The ratio column divides the two servers' figures
//!   of the same repetition, then takes the median of those ratios.
//! - **Ranges.** Every cell is the median with the minimum and maximum of
//!   the repetitions.
//! - **Forwarded.** The "forwarded" column is webterm's binary protocol
//!   through a second replica: two webterm processes, peers of each other
//!   (`--peers`), the client on one and its session on the other, so every
//!   byte crosses the relay in `src/cluster/relay.rs`. Its CPU figures are
//!   both processes' together.
//! - **Failures counted.** No error from a server stops the run: a failed
//!   connection, handshake, read or timeout is counted against its
//!   scenario and shown in the table, and the figures of that repetition
//!   are left out.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_std::net::TcpStream;
use async_std::task::block_on;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_util::StreamExt as _;

const HELP: &str = "\
webterm-bench: web terminal benchmarks, side by side, interleaved.

USAGE:
    webterm-bench [--webterm PATH] [--ttyd PATH] [--static PATH] [--quick] [--runs N]

OPTIONS:
    --webterm PATH   the webterm binary (default: next to this one)
    --ttyd PATH      also measure ttyd, built from its public source
    --static PATH    also measure this webterm build over the binary
                     protocol: the static musl build the image ships
                     (cargo build --profile dist --target
                     x86_64-unknown-linux-musl)
    --quick          tiny sizes, for a smoke test (CI runs this)
    --runs N         interleaved repetitions per figure (default 3; 1 with
                     --quick); cells show the median (min-max)
    --no-ack         binary mode without ack messages: the window then moves
                     with the client's pongs, as for any client that never acks
    --only LIST      run only these scenarios, comma-separated: throughput,
                     echo, sessions, churn, flood (for profiling one of them)
    -h, --help       this help
";

type Ws = WebSocketStream<TcpStream>;
type Res<T> = Result<T, String>;

/// Set by --no-ack: the binary client does not acknowledge output.
static NO_ACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Terminado,
    Binary,
    /// Binary, through a second replica that forwards to the owner.
    Forwarded,
    Ttyd,
}

/// The node names and the tag the forwarded pair uses.
const OWNER_NODE: &str = "bench-owner";
const FRONT_NODE: &str = "bench-front";

/// One column of the table: a server spoken to over a protocol, or the
/// PTY read directly.
#[derive(Clone)]
enum Subject {
    Server(Proto, String),
    /// The static musl build (`--static PATH`), over the binary protocol:
    /// the artifact the image ships, beside the glibc build.
    Static(String),
    RawPty,
}

impl Subject {
    fn name(&self) -> &'static str {
        match self {
            Subject::Server(Proto::Terminado, _) => "webterm (terminado)",
            Subject::Server(Proto::Binary, _) => "webterm (binary)",
            Subject::Server(Proto::Forwarded, _) => "webterm (forwarded)",
            Subject::Server(Proto::Ttyd, _) => "ttyd",
            Subject::Static(_) => "webterm (static musl)",
            Subject::RawPty => "raw PTY",
        }
    }

    /// The protocol and binary a column's server is measured with; `None`
    /// for the raw PTY.
    fn server(&self) -> Option<(Proto, &str)> {
        match self {
            Subject::Server(p, bin) => Some((*p, bin)),
            Subject::Static(bin) => Some((Proto::Binary, bin)),
            Subject::RawPty => None,
        }
    }
}

struct Sizes {
    file_bytes: usize,
    keys: usize,
    sessions: Vec<usize>,
    churn: usize,
    flood: Duration,
}

// ---------------------------------------------------------------------------
// Servers

/// A server under test, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
    /// For a forwarded pair: the replica that holds the sessions (this one
    /// is the front the client talks to). Stopped with it.
    owner: Option<Box<Server>>,
    /// Kept until the servers stop: the pair's shared --secret-file.
    _secret: Option<TempFile>,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every process of this subject: the front and, if any, the owner.
    fn pids(&self) -> Vec<u32> {
        let mut v = vec![self.pid()];
        v.extend(self.owner.as_ref().map(|o| o.pid()));
        v
    }
}

/// A file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The sum of `f` over `pids`.
fn total(pids: &[u32], f: fn(u32) -> Res<f64>) -> Res<f64> {
    pids.iter().map(|&p| f(p)).sum()
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("  (server {} ignored SIGTERM for 10 s; killed)", self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Res<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Starts a fresh server and waits until it listens; for `Forwarded`, a
/// pair of replicas, and waits until the front knows the owner.
fn start(proto: Proto, bin: &str) -> Res<Server> {
    if proto == Proto::Forwarded {
        return start_pair(bin);
    }
    start_one(proto, bin, &[])
}

fn start_pair(bin: &str) -> Res<Server> {
    let secret = TempFile(std::env::temp_dir().join(format!(
        "webterm-bench-secret-{}-{}",
        std::process::id(),
        free_port()?
    )));
    std::fs::write(&secret.0, "webterm-bench-cluster-secret-0123456789abcdef")
        .map_err(|e| format!("cannot write {}: {e}", secret.0.display()))?;
    let (p_owner, p_front) = (free_port()?, free_port()?);
    let peers = format!("127.0.0.1:{p_owner},127.0.0.1:{p_front}");
    let path = secret.0.to_string_lossy().into_owned();
    let cluster = |node: &'static str, port: u16| {
        vec![
            format!("--listen=127.0.0.1:{port}"),
            format!("--node-id={node}"),
            format!("--peers={peers}"),
            format!("--secret-file={path}"),
        ]
    };
    let owner = start_one(Proto::Binary, bin, &cluster(OWNER_NODE, p_owner))?;
    let mut front = start_one(Proto::Binary, bin, &cluster(FRONT_NODE, p_front))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let peers = http_get(front.port, "/metrics").ok().and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("webterm_peers ")?.trim().parse::<f64>().ok())
        });
        if peers == Some(1.0) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the front replica did not find its peer within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    front.owner = Some(Box::new(owner));
    front._secret = Some(secret);
    Ok(front)
}

/// A plain GET on loopback; the body.
fn http_get(port: u16, path: &str) -> Res<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body)
}

fn start_one(proto: Proto, bin: &str, extra: &[String]) -> Res<Server> {
    let mut port = free_port()?;
    if let Some(listen) = extra.iter().find_map(|a| a.strip_prefix("--listen=")) {
        port = listen
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(port);
    }
    let mut cmd = Command::new(bin);
    match proto {
        Proto::Ttyd => {
            cmd.args(["-p", &port.to_string(), "-i", "127.0.0.1", "-W", "/bin/sh"]);
        }
        _ if !extra.is_empty() => {
            cmd.args(extra);
            cmd.args([
                "--max-sessions",
                "2000",
                "--log-level",
                "warn",
                "--",
                "/bin/sh",
            ]);
        }
        _ => {
            cmd.args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--max-sessions",
                "2000",
                "--log-level",
                "warn",
                "--",
                "/bin/sh",
            ]);
        }
    }
    cmd.env("PS1", "$ ")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    let mut server = Server {
        child,
        port,
        owner: None,
        _secret: None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{bin} exited before listening: {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("{bin} did not listen within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(server)
}

// ---------------------------------------------------------------------------
// Clients

/// Runs `fut` for at most `limit`; running out of time is an error.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = Res<T>>) -> Res<T> {
    async_std::future::timeout(limit, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {limit:?}"))?
}

async fn connect(proto: Proto, port: u16) -> Res<Ws> {
    let url = match proto {
        // A new session on the owner, asked of the front.
        Proto::Forwarded => format!(
            "ws://127.0.0.1:{port}/ws?node={}",
            webterm::cluster::tag_of(OWNER_NODE)
        ),
        _ => format!("ws://127.0.0.1:{port}/ws"),
    };
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    let sub = match proto {
        Proto::Terminado => None,
        Proto::Binary | Proto::Forwarded => Some("webterm.binary.v1"),
        Proto::Ttyd => Some("tty"),
    };
    if let Some(s) = sub {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(s));
    }
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // As browsers do: a keystroke must not wait for Nagle.
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (mut ws, _) = async_tungstenite::client_async(req, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    if proto == Proto::Ttyd {
        ws.send(Message::text(r#"{"AuthToken":"","columns":80,"rows":24}"#))
            .await
            .map_err(|e| format!("ttyd init: {e}"))?;
    }
    Ok(ws)
}

/// Connects and waits for the shell's prompt.
async fn open(proto: Proto, port: u16) -> Res<Ws> {
    within(Duration::from_secs(60), "connect to prompt", async {
        let mut ws = connect(proto, port).await?;
        let mut acked = (0, 0);
        read_until(&mut ws, proto, b"$ ", &mut acked, Duration::from_secs(60)).await?;
        Ok(ws)
    })
    .await
}

async fn send_input(ws: &mut Ws, proto: Proto, text: &str) -> Res<()> {
    let msg = match proto {
        Proto::Terminado => Message::text(serde_json::json!(["stdin", text]).to_string()),
        Proto::Binary | Proto::Forwarded => Message::binary(text.as_bytes().to_vec()),
        Proto::Ttyd => {
            let mut b = vec![b'0'];
            b.extend_from_slice(text.as_bytes());
            Message::binary(b)
        }
    };
    within(Duration::from_secs(30), "send", async {
        ws.send(msg).await.map_err(|e| format!("send: {e}"))
    })
    .await
}

/// Acknowledge output in steps of this much, as the page does.
const ACK_STEP: u64 = 64 * 1024;

/// Reads one message and returns its terminal output (empty for control).
/// A binary-mode client acknowledges what it read, as the page does: once
/// 64 KiB are unacknowledged (`received` counts, `acked` is what was sent).
/// The socket ending is an error: every scenario expects it to stay open.
async fn read_output(ws: &mut Ws, proto: Proto, received: &mut (u64, u64)) -> Res<Vec<u8>> {
    let msg = match ws.next().await {
        None => return Err("the server ended the socket".into()),
        Some(Err(e)) => return Err(format!("read: {e}")),
        Some(Ok(m)) => m,
    };
    Ok(match (proto, msg) {
        (Proto::Terminado, Message::Text(t)) => {
            let v: serde_json::Value = serde_json::from_str(t.as_str())
                .map_err(|e| format!("bad terminado message: {e}"))?;
            if v[0] == "stdout" {
                v[1].as_str().unwrap_or_default().as_bytes().to_vec()
            } else if v[0] == "disconnect" {
                return Err(format!("disconnect: {}", v[1]));
            } else {
                Vec::new()
            }
        }
        (Proto::Binary | Proto::Forwarded, Message::Binary(b)) => {
            received.0 += b.len() as u64;
            if !NO_ACK.load(std::sync::atomic::Ordering::Relaxed)
                && received.0 - received.1 >= ACK_STEP
            {
                received.1 = received.0;
                let ack = serde_json::json!({"type": "ack", "bytes": received.0}).to_string();
                ws.send(Message::text(ack))
                    .await
                    .map_err(|e| format!("ack: {e}"))?;
            }
            b.to_vec()
        }
        (Proto::Ttyd, Message::Binary(b)) if b.first() == Some(&b'0') => b[1..].to_vec(),
        (_, Message::Close(c)) => return Err(format!("closed by the server: {c:?}")),
        _ => Vec::new(),
    })
}

/// Reads until `needle` shows up; returns the output bytes read.
async fn read_until(
    ws: &mut Ws,
    proto: Proto,
    needle: &[u8],
    acked: &mut (u64, u64),
    limit: Duration,
) -> Res<usize> {
    let what = format!("waiting for {:?}", String::from_utf8_lossy(needle));
    // The search is memchr's: a compare at every position, as this did
    // before, cost the client about as much CPU as the server spends, on
    // the same two cores, in the throughput run.
    let finder = memchr::memmem::Finder::new(needle);
    within(limit, &what, async {
        let mut total = 0;
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let out = read_output(ws, proto, acked).await?;
            total += out.len();
            tail.extend_from_slice(&out);
            if finder.find(&tail).is_some() {
                return Ok(total);
            }
            let keep = tail.len().saturating_sub(needle.len());
            tail.drain(..keep);
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// What the kernel says about a process

fn proc_status_field(path: &str, field: &str) -> Option<f64> {
    std::fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    })
}

fn rss_kib(pid: u32) -> Res<f64> {
    proc_status_field(&format!("/proc/{pid}/status"), "VmRSS:")
        .ok_or_else(|| format!("no VmRSS for {pid}: the server is gone"))
}

/// Voluntary plus involuntary context switches of every thread of `pid`.
fn context_switches(pid: u32) -> Res<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("threads of {pid}: {e}"))?;
    let mut total = 0.0;
    for t in tasks.flatten() {
        let status = format!("{}/status", t.path().display());
        total += proc_status_field(&status, "voluntary_ctxt_switches:").unwrap_or(0.0);
        total += proc_status_field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0.0);
    }
    Ok(total)
}

/// Jiffies the machine's cores spent idle (idle and iowait), and in all,
/// since boot: how busy the whole machine was during a run.
fn machine_jiffies() -> Res<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if v.len() < 5 {
        return Err(format!("/proc/stat: unexpected first line {line:?}"));
    }
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice).
    Ok((v[3] + v[4], v.iter().take(8).sum()))
}

/// What a `cat` run cost outside the server: the bench's own CPU (the
/// WebSocket client, or the raw PTY's reader), which shares the machine's
/// cores with the server, and the share of the machine left idle, which
/// tells a run short of CPU from one that waits.
struct CatCosts {
    client: f64,
    machine: (u64, u64),
}

impl CatCosts {
    fn start() -> Res<Self> {
        Ok(Self {
            client: cpu_seconds(std::process::id())?,
            machine: machine_jiffies()?,
        })
    }

    /// The figures since `start`, for a run that moved `size` bytes.
    fn figures(self, size: usize) -> Res<Vec<Figure>> {
        let after = machine_jiffies()?;
        let client = cpu_seconds(std::process::id())? - self.client;
        let total = after.1.saturating_sub(self.machine.1).max(1);
        let idle = 100.0 * after.0.saturating_sub(self.machine.0) as f64 / total as f64;
        Ok(vec![
            fig("client CPU per GB (cat)", "s", client / (size as f64 / 1e9)),
            fig("machine idle during cat", "%", idle),
        ])
    }
}

/// User plus system CPU seconds of `pid`, all its threads.
fn cpu_seconds(pid: u32) -> Res<f64> {
    webterm::usage::cpu_seconds(pid)
        .ok_or_else(|| format!("no CPU time for {pid}: the server is gone"))
}

/// Pids of every process below `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parents.push((pid, ppid));
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parents {
            if pp == p {
                found.push(c);
                frontier.push(c);
            }
        }
    }
    found
}

/// Drops from `pids` the processes that no longer exist (zombies not yet
/// reaped still do), stopping at the first one that does, so that polling
/// costs a few system calls rather than one per process. Returns how many
/// are left.
fn prune_gone(pids: &mut Vec<u32>) -> usize {
    while let Some(p) = pids.last() {
        if std::path::Path::new(&format!("/proc/{p}")).exists() {
            break;
        }
        pids.pop();
    }
    pids.len()
}

// ---------------------------------------------------------------------------
// Scenarios. Each measures one subject once and returns its figures.

struct Figure {
    name: String,
    unit: &'static str,
    value: f64,
    /// Whether the table divides webterm's figure by ttyd's.
    ratio: bool,
}

fn fig(name: impl Into<String>, unit: &'static str, value: f64) -> Figure {
    Figure {
        name: name.into(),
        unit,
        value,
        ratio: true,
    }
}

/// What one measurement produced: figures, and how many of its attempts
/// (one, or one per session or cycle) failed and why.
struct Outcome {
    figures: Vec<Figure>,
    attempts: usize,
    failures: usize,
    errors: Vec<String>,
}

impl Outcome {
    fn single(r: Res<Vec<Figure>>) -> Outcome {
        match r {
            Ok(figures) => Outcome {
                figures,
                attempts: 1,
                failures: 0,
                errors: Vec::new(),
            },
            Err(e) => Outcome {
                figures: Vec::new(),
                attempts: 1,
                failures: 1,
                errors: vec![e],
            },
        }
    }

    fn failed(attempts: usize, e: String) -> Outcome {
        Outcome {
            figures: Vec::new(),
            attempts,
            failures: attempts,
            errors: vec![e],
        }
    }
}

/// `cat` of the file through the terminal: MB/s, and the server's CPU
/// seconds per GB of file.
fn throughput(proto: Proto, bin: &str, file: &str, size: usize) -> Res<Vec<Figure>> {
    let server = start(proto, bin)?;
    let pids = server.pids();
    block_on(async {
        let mut ws = open(proto, server.port).await?;
        let mut acked = (0, 0);
        let cpu = total(&pids, cpu_seconds)?;
        let costs = CatCosts::start()?;
        let started = Instant::now();
        send_input(
            &mut ws,
            proto,
            &format!("cat {file}; echo __DONE$((1+1))__\r"),
        )
        .await?;
        read_until(
            &mut ws,
            proto,
            b"__DONE2__",
            &mut acked,
            Duration::from_secs(300),
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        let costs = costs.figures(size)?;
        let cpu = total(&pids, cpu_seconds)? - cpu;
        let mut figures = vec![
            fig("throughput (cat)", "MB/s", size as f64 / secs / 1e6),
            fig("server CPU per GB (cat)", "s", cpu / (size as f64 / 1e9)),
        ];
        figures.extend(costs);
        Ok(figures)
    })
}

/// The same `cat` on a PTY read directly (blocking reads, no server): the
/// ceiling. Uses the kernel's PTY through rustix, not webterm's own code.
fn raw_pty(file: &str, size: usize) -> Res<Vec<Figure>> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    use std::io::Read as _;
    let e = |what: &str| {
        let what = what.to_string();
        move |err: rustix::io::Errno| format!("{what}: {err}")
    };
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).map_err(e("openpt"))?;
    rustix::pty::grantpt(&master).map_err(e("grantpt"))?;
    rustix::pty::unlockpt(&master).map_err(e("unlockpt"))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(e("ptsname"))?;
    let slave: OwnedFd = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(e("open the PTY's slave"))?;
    let costs = CatCosts::start()?;
    let started = Instant::now();
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
    // The Command (and with it the parent's copies of the slave) is gone
    // after this statement, so the read below ends with EIO when cat exits.
    let mut child = Command::new("cat")
        .arg(file)
        .stdin(Stdio::from(dup(&slave)?))
        .stdout(Stdio::from(dup(&slave)?))
        .stderr(Stdio::from(slave))
        .spawn()
        .map_err(|e| format!("cat: {e}"))?;
    let mut master = std::fs::File::from(master);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break, // EIO: every slave descriptor is closed
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let costs = costs.figures(size)?;
    let _ = child.wait();
    if total < size {
        return Err(format!("raw cat read {total} of {size} bytes"));
    }
    let mut figures = vec![fig("throughput (cat)", "MB/s", size as f64 / secs / 1e6)];
    figures.extend(costs);
    Ok(figures)
}

/// Keystroke echo through `cat`: latencies in microseconds (p50, p90,
/// p99), and the server's context switches (all threads) per 1,000 keys.
fn echo(proto: Proto, bin: &str, keys: usize) -> Res<Vec<Figure>> {
    let server = start(proto, bin)?;
    let pids = server.pids();
    block_on(async {
        let mut ws = open(proto, server.port).await?;
        let mut acked = (0, 0);
        send_input(&mut ws, proto, "cat\r").await?;
        read_until(
            &mut ws,
            proto,
            b"cat\r\n",
            &mut acked,
            Duration::from_secs(10),
        )
        .await?;
        let mut samples = Vec::with_capacity(keys);
        let switches = total(&pids, context_switches)?;
        for i in 0..keys {
            let key = char::from(b'a' + (i % 26) as u8).to_string();
            let started = Instant::now();
            send_input(&mut ws, proto, &key).await?;
            read_until(
                &mut ws,
                proto,
                key.as_bytes(),
                &mut acked,
                Duration::from_secs(10),
            )
            .await?;
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        let switches = total(&pids, context_switches)? - switches;
        let _ = send_input(&mut ws, proto, "\x03").await;
        samples.sort_by(f64::total_cmp);
        Ok(vec![
            fig("echo p50", "us", percentile(&samples, 0.5)),
            fig("echo p90", "us", percentile(&samples, 0.9)),
            fig("echo p99", "us", percentile(&samples, 0.99)),
            fig(
                "server context switches per 1,000 keys",
                "",
                switches * 1000.0 / keys as f64,
            ),
        ])
    })
}

/// On a fresh server: idle RSS; N sessions opened at once, until every one
/// shows its prompt; RSS with all open; then all closed at once (a close
/// frame each), the time until every shell is gone, and RSS after.
fn sessions(proto: Proto, bin: &str, n: usize, idle_row: bool) -> Outcome {
    let server = match start(proto, bin) {
        Ok(s) => s,
        Err(e) => return Outcome::failed(n, e),
    };
    let pid = server.pid();
    let port = server.port;
    // Let the server finish starting up before its baseline.
    std::thread::sleep(Duration::from_millis(300));
    let before = match rss_kib(pid) {
        Ok(r) => r,
        Err(e) => return Outcome::failed(n, e),
    };
    block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                async_std::task::spawn(async move {
                    let r = open(proto, port).await;
                    (r, Instant::now())
                })
            })
            .collect();
        let mut open_ws = Vec::new();
        let mut errors = Vec::new();
        let mut last = started;
        for t in tasks {
            match t.await {
                (Ok(ws), at) => {
                    open_ws.push(ws);
                    last = last.max(at);
                }
                (Err(e), _) => errors.push(e),
            }
        }
        let failures = errors.len();
        let mut out = Outcome {
            figures: Vec::new(),
            attempts: n,
            failures,
            errors,
        };
        if open_ws.is_empty() {
            return out;
        }
        let ok = open_ws.len() as f64;
        let secs = (last - started).as_secs_f64();
        async_std::task::sleep(Duration::from_millis(300)).await;
        let during = rss_kib(pid);
        let mut shells = descendants(pid);

        let closing = Instant::now();
        for ws in &mut open_ws {
            let _ = async_std::future::timeout(Duration::from_secs(1), ws.close(None)).await;
        }
        drop(open_ws);
        let deadline = closing + Duration::from_secs(20);
        while prune_gone(&mut shells) > 0 && Instant::now() < deadline {
            async_std::task::sleep(Duration::from_millis(10)).await;
        }
        let closed = closing.elapsed().as_secs_f64();
        shells.retain(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        let left = shells.len();
        // Time for the server to finish its own teardown, and to give back
        // what the burst freed (webterm trims its heap 250 ms after the
        // last session ends), before measuring.
        async_std::task::sleep(Duration::from_millis(1500)).await;
        let after = rss_kib(pid);
        let (during, after) = match (during, after) {
            (Ok(d), Ok(a)) => (d, a),
            (Err(e), _) | (_, Err(e)) => {
                out.errors.push(e);
                out.failures = n;
                return out;
            }
        };
        if idle_row {
            out.figures.push(fig("idle RSS", "KiB", before));
        }
        out.figures.extend([
            fig(format!("{n} sessions to prompt"), "s", secs),
            fig(
                format!("RSS per session ({n})"),
                "KiB",
                (during - before) / ok,
            ),
            fig(format!("{n} closed: until no shell left"), "s", closed),
            fig(format!("RSS after {n} closed"), "KiB", after),
            fig(
                format!("RSS after {n} closed, minus idle"),
                "KiB",
                after - before,
            ),
            Figure {
                ratio: false,
                ..fig(format!("shells left after {n} closed"), "", left as f64)
            },
        ]);
        out
    })
}

/// Connect, see the prompt, drop without a close frame, `cycles` times in
/// a row: cycles per second, and processes still below the server once it
/// has had up to 5 s to clean up.
fn churn(proto: Proto, bin: &str, cycles: usize) -> Outcome {
    let server = match start(proto, bin) {
        Ok(s) => s,
        Err(e) => return Outcome::failed(cycles, e),
    };
    let started = Instant::now();
    let mut errors = Vec::new();
    block_on(async {
        for _ in 0..cycles {
            match open(proto, server.port).await {
                Ok(ws) => drop(ws),
                Err(e) => errors.push(e),
            }
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let ok = cycles - errors.len();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = descendants(server.pid()).len();
    while left > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = descendants(server.pid()).len();
    }
    Outcome {
        figures: vec![
            fig("churn", "cycles/s", ok as f64 / secs),
            Figure {
                ratio: false,
                ..fig("processes left after churn", "", left as f64)
            },
        ],
        attempts: cycles,
        failures: errors.len(),
        errors,
    }
}

/// `yes` for a while, then Ctrl-C: milliseconds until the prompt answers, and
/// bytes delivered after Ctrl-C. A slow reader sleeps 5 ms per frame.
fn flood(proto: Proto, bin: &str, dur: Duration, slow: bool) -> Res<Vec<Figure>> {
    let server = start(proto, bin)?;
    block_on(async {
        let mut ws = open(proto, server.port).await?;
        let mut acked = (0, 0);
        send_input(&mut ws, proto, "yes\r").await?;
        let started = Instant::now();
        while started.elapsed() < dur {
            within(
                Duration::from_secs(10),
                "yes output",
                read_output(&mut ws, proto, &mut acked),
            )
            .await?;
            if slow {
                async_std::task::sleep(Duration::from_millis(5)).await;
            }
        }
        let ctrl_c = Instant::now();
        send_input(&mut ws, proto, "\x03").await?;
        send_input(&mut ws, proto, "echo __BACK$((1+1))__\r").await?;
        let late = read_until(
            &mut ws,
            proto,
            b"__BACK2__",
            &mut acked,
            Duration::from_secs(120),
        )
        .await?;
        let who = if slow { "slow" } else { "fast" };
        Ok(vec![
            fig(
                format!("Ctrl-C to prompt, {who} reader"),
                "ms",
                ctrl_c.elapsed().as_secs_f64() * 1000.0,
            ),
            fig(
                format!("bytes after Ctrl-C, {who} reader"),
                "kB",
                late as f64 / 1000.0,
            ),
        ])
    })
}

// ---------------------------------------------------------------------------
// The table

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Median, minimum and maximum.
fn spread(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((med, v[0], v[n - 1]))
}

/// Three significant digits, without exponent noise.
fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A figure: "median (min–max)", or one number when they agree.
fn cell(v: &[f64]) -> String {
    match spread(v) {
        None => String::new(),
        Some((m, lo, hi)) if lo == hi => num(m),
        Some((m, lo, hi)) => format!("{} ({}–{})", num(m), num(lo), num(hi)),
    }
}

/// A ratio, the same way, to two decimals.
fn ratio_cell(v: &[f64]) -> String {
    match spread(v) {
        None => String::new(),
        Some((m, lo, hi)) if lo == hi => format!("{m:.2}x"),
        Some((m, lo, hi)) => format!("{m:.2}x ({lo:.2}–{hi:.2})"),
    }
}

struct Row {
    name: String,
    unit: &'static str,
    ratio: bool,
    /// [column][repetition]
    values: Vec<Vec<Option<f64>>>,
}

struct Table {
    columns: Vec<Subject>,
    runs: usize,
    rows: Vec<Row>,
    /// Per scenario: (failures, attempts) per column.
    failures: Vec<(String, Vec<(usize, usize)>)>,
}

impl Table {
    fn record(&mut self, scenario: &str, col: usize, rep: usize, out: Outcome) {
        let (cols, runs) = (self.columns.len(), self.runs);
        for f in out.figures {
            let i = match self.rows.iter().position(|r| r.name == f.name) {
                Some(i) => i,
                None => {
                    self.rows.push(Row {
                        name: f.name,
                        unit: f.unit,
                        ratio: f.ratio,
                        values: vec![vec![None; runs]; cols],
                    });
                    self.rows.len() - 1
                }
            };
            self.rows[i].values[col][rep] = Some(f.value);
        }
        let i = match self.failures.iter().position(|(s, _)| s == scenario) {
            Some(i) => i,
            None => {
                self.failures
                    .push((scenario.to_string(), vec![(0, 0); cols]));
                self.failures.len() - 1
            }
        };
        let slot = &mut self.failures[i].1[col];
        slot.0 += out.failures;
        slot.1 += out.attempts;
        if out.failures > 0 {
            let mut errors = out.errors.clone();
            errors.sort();
            errors.dedup();
            eprintln!(
                "  {} {scenario}, repetition {}: {} of {} failed: {}",
                self.columns[col].name(),
                rep + 1,
                out.failures,
                out.attempts,
                errors.join("; ")
            );
        }
    }

    /// Figures of one row and column, repetition by repetition.
    fn series(&self, row: &str, col: usize) -> Vec<Option<f64>> {
        self.rows
            .iter()
            .find(|r| r.name == row)
            .map(|r| r.values[col].clone())
            .unwrap_or_else(|| vec![None; self.runs])
    }

    fn render(&self) -> String {
        let col_of = |p: Proto| {
            self.columns
                .iter()
                .position(|s| matches!(s, Subject::Server(q, _) if *q == p))
        };
        let raw = self
            .columns
            .iter()
            .position(|s| matches!(s, Subject::RawPty));
        let pair = col_of(Proto::Binary).zip(col_of(Proto::Ttyd));
        let hop = col_of(Proto::Forwarded).zip(col_of(Proto::Binary));
        let musl = self
            .columns
            .iter()
            .position(|s| matches!(s, Subject::Static(_)))
            .zip(col_of(Proto::Binary));
        let ratios = |a: &[Option<f64>], b: &[Option<f64>]| -> Vec<f64> {
            a.iter()
                .zip(b)
                .filter_map(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) if *y != 0.0 => Some(x / y),
                    _ => None,
                })
                .collect()
        };

        let mut header: Vec<String> = vec!["figure".into()];
        header.extend(self.columns.iter().map(|c| c.name().to_string()));
        if pair.is_some() {
            header.push("binary/ttyd".into());
        }
        if hop.is_some() {
            header.push("forwarded/binary".into());
        }
        if musl.is_some() {
            header.push("static musl/binary".into());
        }
        let mut lines: Vec<Vec<String>> = Vec::new();
        for r in &self.rows {
            let mut line = vec![if r.unit.is_empty() {
                r.name.clone()
            } else {
                format!("{}, {}", r.name, r.unit)
            }];
            for c in &r.values {
                let v: Vec<f64> = c.iter().flatten().copied().collect();
                line.push(cell(&v));
            }
            for (a, b) in pair.into_iter().chain(hop).chain(musl) {
                line.push(if r.ratio {
                    ratio_cell(&ratios(&r.values[a], &r.values[b]))
                } else {
                    String::new()
                });
            }
            lines.push(line);
        }
        // Each server's throughput over the raw PTY's of the same repetition.
        if let Some(raw) = raw.filter(|_| self.rows.iter().any(|r| r.name == "throughput (cat)")) {
            let ceiling = self.series("throughput (cat)", raw);
            let mut line = vec!["throughput / raw PTY".to_string()];
            for c in 0..self.columns.len() {
                line.push(if c == raw {
                    String::new()
                } else {
                    ratio_cell(&ratios(&self.series("throughput (cat)", c), &ceiling))
                });
            }
            for _ in pair.iter().chain(hop.iter()).chain(musl.iter()) {
                line.push(String::new());
            }
            lines.push(line);
        }
        for (scenario, counts) in &self.failures {
            let mut line = vec![format!("failures: {scenario}")];
            for &(f, a) in counts {
                line.push(if a == 0 {
                    String::new()
                } else {
                    format!("{f}/{a}")
                });
            }
            for _ in pair.iter().chain(hop.iter()).chain(musl.iter()) {
                line.push(String::new());
            }
            lines.push(line);
        }

        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for l in &lines {
            for (w, c) in widths.iter_mut().zip(l) {
                *w = (*w).max(c.chars().count());
            }
        }
        let fmt_line = |l: &[String]| -> String {
            let mut s = String::from("|");
            for (i, (c, w)) in l.iter().zip(&widths).enumerate() {
                if i == 0 {
                    s.push_str(&format!(" {c:<w$} |"));
                } else {
                    s.push_str(&format!(" {c:>w$} |"));
                }
            }
            s.push('\n');
            s
        };
        let mut out = fmt_line(&header);
        out.push('|');
        for (i, w) in widths.iter().enumerate() {
            let dashes = "-".repeat(*w);
            out.push_str(&if i == 0 {
                format!(" {dashes} |")
            } else {
                format!(" {}: |", &dashes[1..])
            });
        }
        out.push('\n');
        for l in &lines {
            out.push_str(&fmt_line(l));
        }
        out
    }
}

/// Runs `f`, turning a panic (a bug in this tool) into a failure rather
/// than losing the whole run.
fn guarded(f: impl FnOnce() -> Outcome) -> Outcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Outcome::failed(1, format!("panic in the bench: {msg}"))
    })
}

/// How many processes the machine runs: webterm's teardown scans them all.
fn process_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

/// Signals this process ignores that the servers and their shells would
/// inherit, each of which changes what is measured: under `nohup` shells
/// ignore SIGHUP, so ttyd's hangup never ends them and webterm waits out
/// its kill grace on every close; with SIGINT ignored, Ctrl-C stops nothing.
fn inherited_ignored_signals() -> Vec<&'static str> {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    [(1, "SIGHUP"), (2, "SIGINT"), (15, "SIGTERM")]
        .into_iter()
        .filter(|(n, _)| mask & (1 << (n - 1)) != 0)
        .map(|(_, name)| name)
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let mut webterm_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("webterm")))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "webterm".into());
    let mut ttyd_bin: Option<String> = None;
    let mut static_bin: Option<String> = None;
    let mut quick = false;
    let mut runs: Option<usize> = None;
    let mut only: Option<Vec<String>> = None;
    let mut args = lexopt::Parser::from_env();
    while let Some(arg) = args.next().unwrap_or_else(|e| die(&e.to_string())) {
        use lexopt::prelude::*;
        match arg {
            Long("webterm") => webterm_bin = value(&mut args),
            Long("ttyd") => ttyd_bin = Some(value(&mut args)),
            Long("static") => static_bin = Some(value(&mut args)),
            Long("quick") => quick = true,
            Long("only") => {
                only = Some(
                    value(&mut args)
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect(),
                )
            }
            Long("no-ack") => NO_ACK.store(true, std::sync::atomic::Ordering::Relaxed),
            Long("runs") => {
                runs = Some(
                    value(&mut args)
                        .parse()
                        .unwrap_or_else(|_| die("--runs takes a number")),
                )
            }
            Short('h') | Long("help") => {
                print!("{HELP}");
                return;
            }
            other => die(&other.unexpected().to_string()),
        }
    }
    let sizes = if quick {
        Sizes {
            file_bytes: 1 << 20,
            keys: 50,
            sessions: vec![10],
            churn: 20,
            flood: Duration::from_millis(300),
        }
    } else {
        Sizes {
            file_bytes: 64 << 20,
            keys: 1000,
            sessions: vec![100, 500],
            churn: 200,
            flood: Duration::from_secs(2),
        }
    };
    let runs = runs.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let want = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));

    let file = std::env::temp_dir().join(format!("webterm-bench-{}.txt", std::process::id()));
    let line =
        "The quick brown fox jumps over the lazy dog; 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ.\n";
    let text: String = line.repeat(sizes.file_bytes / line.len() + 1);
    if let Err(e) = std::fs::write(&file, &text.as_bytes()[..sizes.file_bytes]) {
        die(&format!("cannot write {}: {e}", file.display()));
    }
    let file_s = file.to_string_lossy().into_owned();

    let mut columns = vec![
        Subject::Server(Proto::Binary, webterm_bin.clone()),
        Subject::Server(Proto::Terminado, webterm_bin.clone()),
        Subject::Server(Proto::Forwarded, webterm_bin.clone()),
    ];
    if let Some(t) = &ttyd_bin {
        columns.push(Subject::Server(Proto::Ttyd, t.clone()));
    }
    if let Some(m) = &static_bin {
        columns.push(Subject::Static(m.clone()));
    }
    columns.push(Subject::RawPty);
    let servers: Vec<usize> = (0..columns.len())
        .filter(|&c| !matches!(columns[c], Subject::RawPty))
        .collect();
    // Forwarding is measured where it adds work per byte or per key; the
    // session-count, churn and Ctrl-C scenarios are about the owner.
    let direct: Vec<usize> = servers
        .iter()
        .copied()
        .filter(|&c| !matches!(columns[c], Subject::Server(Proto::Forwarded, _)))
        .collect();
    let all: Vec<usize> = (0..columns.len()).collect();
    let mut table = Table {
        columns: columns.clone(),
        runs,
        rows: Vec::new(),
        failures: Vec::new(),
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let ignored = inherited_ignored_signals();
    let warning = if ignored.is_empty() {
        String::new()
    } else {
        format!(
            "WARNING: started with {} ignored, which the servers and their \
             shells inherit; the teardown, churn and Ctrl-C figures may \
             measure that rather than the servers (nohup ignores SIGHUP)\n",
            ignored.join(", ")
        )
    };
    eprint!("{warning}");
    let load_before = loadavg();
    let procs_before = process_count();
    eprintln!("{cores} cores; {runs} interleaved repetition(s) per figure");

    // One scenario: every repetition measures each subject once, in an
    // order that flips from one repetition to the next.
    let mut scenario = |name: &str, subjects: &[usize], measure: &dyn Fn(&Subject) -> Outcome| {
        for rep in 0..runs {
            let mut order = subjects.to_vec();
            if rep % 2 == 1 {
                order.reverse();
            }
            for col in order {
                eprintln!(
                    "{name}: repetition {}/{runs}, {}",
                    rep + 1,
                    columns[col].name()
                );
                let out = guarded(|| measure(&columns[col]));
                table.record(name, col, rep, out);
            }
        }
    };

    if want("throughput") {
        scenario("throughput", &all, &|s| match s.server() {
            None => Outcome::single(raw_pty(&file_s, sizes.file_bytes)),
            Some((p, bin)) => Outcome::single(throughput(p, bin, &file_s, sizes.file_bytes)),
        });
    }
    if want("echo") {
        scenario("echo", &servers, &|s| match s.server() {
            Some((p, bin)) => Outcome::single(echo(p, bin, sizes.keys)),
            None => unreachable!(),
        });
    }
    if want("sessions") {
        for (i, &n) in sizes.sessions.iter().enumerate() {
            scenario(&format!("{n} sessions"), &direct, &|s| match s.server() {
                Some((p, bin)) => sessions(p, bin, n, i == 0),
                None => unreachable!(),
            });
        }
    }
    if want("churn") {
        scenario("churn", &direct, &|s| match s.server() {
            Some((p, bin)) => churn(p, bin, sizes.churn),
            None => unreachable!(),
        });
    }
    if want("flood") {
        for slow in [false, true] {
            let name = if slow {
                "Ctrl-C, slow reader"
            } else {
                "Ctrl-C, fast reader"
            };
            scenario(name, &direct, &|s| match s.server() {
                Some((p, bin)) => Outcome::single(flood(p, bin, sizes.flood, slow)),
                None => unreachable!(),
            });
        }
    }
    let _ = std::fs::remove_file(&file);

    println!(
        "{cores} cores; load average {load_before} before, {} after; \
         {procs_before} processes on the machine before, {} after; \
         {runs} interleaved repetition(s), each on a fresh server; \
         cells: median (min–max); ratios: median (min–max) of the \
         repetitions' own ratios",
        loadavg(),
        process_count()
    );
    print!("{warning}");
    println!();
    print!("{}", table.render());
}

fn value(args: &mut lexopt::Parser) -> String {
    args.value()
        .ok()
        .and_then(|v| v.into_string().ok())
        .unwrap_or_else(|| die("missing value"))
}

fn die(msg: &str) -> ! {
    eprintln!("webterm-bench: {msg}\n\n{HELP}");
    std::process::exit(2)
}
