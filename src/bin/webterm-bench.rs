//! webterm-bench: measures web terminals side by side on this machine.
//!
//! It starts each server itself (webterm, and ttyd when `--ttyd` names its
//! binary) on a loopback port with the same shell, drives it over its own
//! protocol, and prints one table with ratios, every figure the median of
//! `--runs` repetitions measured in the same run. It also measures the raw
//! PTY ceiling: `cat` on a PTY read directly, no network at all.
//!
//! Numbers from a noisy 2-core machine wobble; compare ratios, not absolutes.

use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_std::net::TcpStream;
use async_std::task::block_on;
use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::FutureExt as _;
use futures_util::StreamExt as _;

const HELP: &str = "\
webterm-bench: web terminal benchmarks, side by side, with ratios.

USAGE:
    webterm-bench [--webterm PATH] [--ttyd PATH] [--quick] [--runs N]

OPTIONS:
    --webterm PATH   the webterm binary (default: next to this one)
    --ttyd PATH      also measure ttyd, built from its public source
    --quick          tiny sizes, for a smoke test (CI runs this)
    --runs N         repetitions per figure; the median is shown (default 3)
    --no-ack         binary mode without acknowledgements (no flow window)
    --only LIST      run only these scenarios, comma-separated: throughput,
                     echo, sessions, churn, flood (for profiling one of them)
    -h, --help       this help
";

type Ws = WebSocketStream<TcpStream>;

/// Set by --no-ack: the binary client does not acknowledge output.
static NO_ACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Terminado,
    Binary,
    Ttyd,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Terminado => "webterm (terminado)",
            Proto::Binary => "webterm (binary)",
            Proto::Ttyd => "ttyd",
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

/// A server under test.
struct Target {
    child: Child,
    port: u16,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(proto: Proto, bin: &str) -> Target {
    let port = free_port();
    let mut cmd = Command::new(bin);
    match proto {
        Proto::Ttyd => {
            cmd.args(["-p", &port.to_string(), "-i", "127.0.0.1", "-W", "/bin/sh"]);
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
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{bin} did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Target { child, port }
}

async fn connect(proto: Proto, port: u16) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut req = url.into_client_request().unwrap();
    let sub = match proto {
        Proto::Terminado => None,
        Proto::Binary => Some("webterm.binary.v1"),
        Proto::Ttyd => Some("tty"),
    };
    if let Some(s) = sub {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(s));
    }
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // As browsers do: a keystroke must not wait for Nagle.
    tcp.set_nodelay(true).unwrap();
    let (mut ws, _) = async_tungstenite::client_async(req, tcp).await.unwrap();
    if proto == Proto::Ttyd {
        ws.send(Message::text(r#"{"AuthToken":"","columns":80,"rows":24}"#))
            .await
            .unwrap();
    }
    ws
}

async fn send_input(ws: &mut Ws, proto: Proto, text: &str) {
    let msg = match proto {
        Proto::Terminado => Message::text(serde_json::json!(["stdin", text]).to_string()),
        Proto::Binary => Message::binary(text.as_bytes().to_vec()),
        Proto::Ttyd => {
            let mut b = vec![b'0'];
            b.extend_from_slice(text.as_bytes());
            Message::binary(b)
        }
    };
    ws.send(msg).await.unwrap();
}

/// Acknowledge output in steps of this much, as the page does.
const ACK_STEP: u64 = 64 * 1024;

/// Reads one message and returns its terminal output (empty for control).
/// A binary-mode client acknowledges what it read, as the page does: once
/// 64 KiB are unacknowledged (`received` counts, `acked` is what was sent).
async fn read_output(ws: &mut Ws, proto: Proto, received: &mut (u64, u64)) -> Option<Vec<u8>> {
    let msg = ws.next().await?.ok()?;
    Some(match (proto, msg) {
        (Proto::Terminado, Message::Text(t)) => {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).ok()?;
            if v[0] == "stdout" {
                v[1].as_str()?.as_bytes().to_vec()
            } else if v[0] == "disconnect" {
                return None;
            } else {
                Vec::new()
            }
        }
        (Proto::Binary, Message::Binary(b)) => {
            received.0 += b.len() as u64;
            if !NO_ACK.load(std::sync::atomic::Ordering::Relaxed)
                && received.0 - received.1 >= ACK_STEP
            {
                received.1 = received.0;
                let ack = serde_json::json!({"type": "ack", "bytes": received.0}).to_string();
                ws.send(Message::text(ack)).await.ok()?;
            }
            b.to_vec()
        }
        (Proto::Ttyd, Message::Binary(b)) if b.first() == Some(&b'0') => b[1..].to_vec(),
        (_, Message::Close(_)) => return None,
        _ => Vec::new(),
    })
}

/// Reads until `needle` shows up; returns bytes read.
async fn read_until(
    ws: &mut Ws,
    proto: Proto,
    needle: &[u8],
    acked: &mut (u64, u64),
    limit: Duration,
) -> Option<usize> {
    let deadline = Instant::now() + limit;
    let mut total = 0;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let out = async { read_output(ws, proto, acked).await }
            .or(async {
                async_std::task::sleep(left).await;
                None
            })
            .await?;
        total += out.len();
        tail.extend_from_slice(&out);
        if tail.windows(needle.len()).any(|w| w == needle) {
            return Some(total);
        }
        let keep = tail.len().saturating_sub(needle.len());
        tail.drain(..keep);
    }
}

async fn wait_prompt(ws: &mut Ws, proto: Proto) {
    let mut acked = (0, 0);
    read_until(ws, proto, b"$ ", &mut acked, Duration::from_secs(30))
        .await
        .expect("a prompt");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Processes below `root`, for "left behind" counts.
fn descendants(root: u32) -> usize {
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
        let ppid = stat[close + 2..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        parents.push((pid, ppid));
    }
    let mut found = 0;
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parents {
            if pp == p {
                found += 1;
                frontier.push(c);
            }
        }
    }
    found
}

/// MB/s of `cat FILE` through the terminal.
fn throughput(proto: Proto, port: u16, file: &str, size: usize) -> f64 {
    block_on(async {
        let mut ws = connect(proto, port).await;
        wait_prompt(&mut ws, proto).await;
        let mut acked = (0, 0);
        let started = Instant::now();
        send_input(
            &mut ws,
            proto,
            &format!("cat {file}; echo __DONE$((1+1))__\r"),
        )
        .await;
        read_until(
            &mut ws,
            proto,
            b"__DONE2__",
            &mut acked,
            Duration::from_secs(300),
        )
        .await
        .expect("cat finished");
        size as f64 / started.elapsed().as_secs_f64() / 1e6
    })
}

/// The same `cat` on a PTY read directly: the ceiling.
fn raw_pty(file: &str, size: usize) -> f64 {
    use std::io::Read as _;
    let spec = webterm::terminal::CommandSpec {
        argv: vec!["cat".into(), file.into()],
        login: false,
    };
    let started = Instant::now();
    let pty = block_on(webterm::terminal::Terminal::spawn(
        &spec,
        24,
        80,
        &[],
        "bench",
        &webterm::terminal::Containment::default(),
    ))
    .expect("pty");
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match pty.io().get_ref().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ = block_on(pty.io().readable());
            }
            Err(_) => break, // EIO: the child is done
        }
    }
    let _ = block_on(pty.exited());
    assert!(total >= size, "raw cat read {total} of {size}");
    size as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// Keystroke echo latencies in microseconds (p50, p90, p99), through `cat`.
fn echo_latency(proto: Proto, port: u16, keys: usize) -> (f64, f64, f64) {
    block_on(async {
        let mut ws = connect(proto, port).await;
        wait_prompt(&mut ws, proto).await;
        let mut acked = (0, 0);
        send_input(&mut ws, proto, "cat\r").await;
        read_until(
            &mut ws,
            proto,
            b"cat\r\n",
            &mut acked,
            Duration::from_secs(10),
        )
        .await
        .expect("cat started");
        let mut samples = Vec::with_capacity(keys);
        for i in 0..keys {
            let key = [b'a' + (i % 26) as u8];
            let key = std::str::from_utf8(&key).unwrap().to_string();
            let started = Instant::now();
            send_input(&mut ws, proto, &key).await;
            read_until(
                &mut ws,
                proto,
                key.as_bytes(),
                &mut acked,
                Duration::from_secs(10),
            )
            .await
            .expect("echo");
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        send_input(&mut ws, proto, "\x03").await;
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (
            percentile(&samples, 0.5),
            percentile(&samples, 0.9),
            percentile(&samples, 0.99),
        )
    })
}

/// N sessions opened at once, to their prompts: seconds, and RSS (KiB)
/// before, with all open, and after they closed.
fn sessions(proto: Proto, target: &Target, n: usize) -> (f64, f64, f64, f64) {
    let pid = target.child.id();
    let before = rss_kib(pid);
    block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let port = target.port;
                async_std::task::spawn(async move {
                    let mut ws = connect(proto, port).await;
                    wait_prompt(&mut ws, proto).await;
                    ws
                })
            })
            .collect();
        let mut open = Vec::new();
        for t in tasks {
            open.push(t.await);
        }
        let secs = started.elapsed().as_secs_f64();
        async_std::task::sleep(Duration::from_millis(300)).await;
        let during = rss_kib(pid);
        for mut ws in open {
            let _ = ws.close(None).await;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while descendants(pid) > 0 && Instant::now() < deadline {
            async_std::task::sleep(Duration::from_millis(50)).await;
        }
        let after = rss_kib(pid);
        (secs, before, during, after)
    })
}

/// Connect, see the prompt, drop without a close frame; cycles per second,
/// and processes still below the server a few seconds later.
fn churn(proto: Proto, target: &Target, cycles: usize) -> (f64, usize) {
    let started = Instant::now();
    block_on(async {
        for _ in 0..cycles {
            let mut ws = connect(proto, target.port).await;
            wait_prompt(&mut ws, proto).await;
            drop(ws);
        }
    });
    let rate = cycles as f64 / started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    (rate, descendants(target.child.id()))
}

/// `yes` for a while, then Ctrl-C: milliseconds until the prompt answers, and
/// bytes delivered after Ctrl-C. A slow reader sleeps 5 ms per frame.
fn flood(proto: Proto, port: u16, dur: Duration, slow: bool) -> (f64, f64) {
    block_on(async {
        let mut ws = connect(proto, port).await;
        wait_prompt(&mut ws, proto).await;
        let mut acked = (0, 0);
        send_input(&mut ws, proto, "yes\r").await;
        let started = Instant::now();
        while started.elapsed() < dur {
            read_output(&mut ws, proto, &mut acked).await;
            if slow {
                async_std::task::sleep(Duration::from_millis(5)).await;
            }
        }
        let ctrl_c = Instant::now();
        send_input(&mut ws, proto, "\x03").await;
        send_input(&mut ws, proto, "echo __BACK$((1+1))__\r").await;
        let late = read_until(
            &mut ws,
            proto,
            b"__BACK2__",
            &mut acked,
            Duration::from_secs(120),
        )
        .await
        .expect("prompt back");
        (ctrl_c.elapsed().as_secs_f64() * 1000.0, late as f64)
    })
}

struct Row {
    name: String,
    unit: &'static str,
    values: Vec<Option<f64>>,
}

fn main() {
    let mut webterm_bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("webterm")))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "webterm".into());
    let mut ttyd_bin: Option<String> = None;
    let mut quick = false;
    let mut runs = 3usize;
    let mut only: Option<Vec<String>> = None;
    let mut args =
        lexopt::Parser::from_args(std::env::args_os().skip(1).collect::<Vec<OsString>>());
    while let Some(arg) = args.next().unwrap_or_else(|e| die(&e.to_string())) {
        use lexopt::prelude::*;
        match arg {
            Long("webterm") => webterm_bin = value(&mut args),
            Long("ttyd") => ttyd_bin = Some(value(&mut args)),
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
                runs = value(&mut args)
                    .parse()
                    .unwrap_or_else(|_| die("--runs takes a number"))
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
    let runs = if quick { 1 } else { runs.max(1) };
    let want = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));

    let file = std::env::temp_dir().join(format!("webterm-bench-{}.txt", std::process::id()));
    let line =
        "The quick brown fox jumps over the lazy dog; 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ.\n";
    let text: String = line.repeat(sizes.file_bytes / line.len() + 1);
    std::fs::write(&file, &text.as_bytes()[..sizes.file_bytes]).unwrap();
    let file_s = file.to_string_lossy().into_owned();

    let mut protos = vec![
        (Proto::Binary, webterm_bin.clone()),
        (Proto::Terminado, webterm_bin.clone()),
    ];
    if let Some(t) = &ttyd_bin {
        protos.push((Proto::Ttyd, t.clone()));
    }
    eprintln!(
        "machine: {} cores; {} run(s) per figure",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        runs
    );

    let raw = median(
        (0..runs)
            .map(|_| raw_pty(&file_s, sizes.file_bytes))
            .collect(),
    );
    let mut rows: Vec<Row> = Vec::new();

    let mut col: Vec<Vec<(String, &'static str, f64)>> = Vec::new();
    for (proto, bin) in &protos {
        eprintln!("measuring {}", proto.name());
        let mut figures = Vec::new();
        let target = start(*proto, bin);
        std::thread::sleep(Duration::from_millis(300));
        figures.push(("idle RSS".into(), "KiB", rss_kib(target.child.id())));
        if want("throughput") {
            let tp = median(
                (0..runs)
                    .map(|_| throughput(*proto, target.port, &file_s, sizes.file_bytes))
                    .collect(),
            );
            figures.push(("throughput (cat)".into(), "MB/s", tp));
        }
        if want("echo") {
            let lat: Vec<(f64, f64, f64)> = (0..runs)
                .map(|_| echo_latency(*proto, target.port, sizes.keys))
                .collect();
            figures.push((
                "echo p50".into(),
                "us",
                median(lat.iter().map(|l| l.0).collect()),
            ));
            figures.push((
                "echo p90".into(),
                "us",
                median(lat.iter().map(|l| l.1).collect()),
            ));
            figures.push((
                "echo p99".into(),
                "us",
                median(lat.iter().map(|l| l.2).collect()),
            ));
        }
        for &n in sizes.sessions.iter().filter(|_| want("sessions")) {
            let s: Vec<_> = (0..runs).map(|_| sessions(*proto, &target, n)).collect();
            let secs = median(s.iter().map(|x| x.0).collect());
            let per = median(s.iter().map(|x| (x.2 - x.1) / n as f64).collect());
            figures.push((format!("{n} sessions to prompt"), "s", secs));
            figures.push((format!("RSS per session ({n})"), "KiB", per));
            figures.push((
                format!("RSS after {n} closed"),
                "KiB",
                median(s.iter().map(|x| x.3).collect()),
            ));
        }
        if want("churn") {
            let (rate, left) = churn(*proto, &target, sizes.churn);
            figures.push(("churn".into(), "cycles/s", rate));
            figures.push(("processes left after churn".into(), "", left as f64));
        }
        for slow in [false, true].into_iter().filter(|_| want("flood")) {
            let f: Vec<_> = (0..runs)
                .map(|_| flood(*proto, target.port, sizes.flood, slow))
                .collect();
            let who = if slow { "slow" } else { "fast" };
            figures.push((
                format!("Ctrl-C to prompt, {who} reader"),
                "ms",
                median(f.iter().map(|x| x.0).collect()),
            ));
            figures.push((
                format!("bytes after Ctrl-C, {who} reader"),
                "kB",
                median(f.iter().map(|x| x.1 / 1000.0).collect()),
            ));
        }
        drop(target);
        col.push(figures);
    }
    let _ = std::fs::remove_file(&file);

    for i in 0..col[0].len() {
        let (name, unit, _) = col[0][i].clone();
        rows.push(Row {
            name,
            unit,
            values: col.iter().map(|c| c.get(i).map(|f| f.2)).collect(),
        });
    }

    // The table.
    let names: Vec<&str> = protos.iter().map(|(p, _)| p.name()).collect();
    let mut out = format!("{:<34}", "");
    for n in &names {
        out.push_str(&format!("{n:>22}"));
    }
    if ttyd_bin.is_some() {
        out.push_str(&format!("{:>16}", "binary/ttyd"));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<34}{:>22}\n",
        "raw PTY ceiling (cat), MB/s",
        format!("{raw:.1}")
    ));
    for r in &rows {
        out.push_str(&format!(
            "{:<34}",
            format!(
                "{} {}",
                r.name,
                if r.unit.is_empty() {
                    String::new()
                } else {
                    format!("({})", r.unit)
                }
            )
        ));
        for v in &r.values {
            out.push_str(&format!(
                "{:>22}",
                v.map(|v| format!("{v:.1}")).unwrap_or_default()
            ));
        }
        if ttyd_bin.is_some() {
            let ratio = match (
                r.values.first().copied().flatten(),
                r.values.last().copied().flatten(),
            ) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}x", a / b),
                _ => String::new(),
            };
            out.push_str(&format!("{ratio:>16}"));
        }
        out.push('\n');
    }
    if let Some(tp) = rows
        .iter()
        .find(|r| r.name.starts_with("throughput"))
        .and_then(|r| r.values[0])
    {
        out.push_str(&format!(
            "{:<34}{:>22}\n",
            "binary throughput / raw PTY",
            format!("{:.2}x", tp / raw)
        ));
    }
    print!("{out}");
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
