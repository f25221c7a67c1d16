//! End-to-end tests of the server: the real binary, real WebSockets, real
//! PTYs and real child processes.

mod common;

use std::time::{Duration, Instant};

use async_std::task::block_on;
use async_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use async_tungstenite::tungstenite::protocol::frame::Frame;
use async_tungstenite::tungstenite::Message;
use common::*;
use futures_lite::FutureExt as _;

#[test]
fn terminado_echo_round_trip() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        assert!(t.setup["pid"].as_u64().unwrap() > 1);
        assert_eq!(t.id().len(), 32);
        t.run("echo hello-$((6*7))", "hello-42").await;
        // The session is counted and listed before its setup is sent.
        assert_eq!(server.metric("webterm_sessions_started_total", &[]), 1.0);
        let row = server.session(t.id()).expect("listed");
        assert_eq!(
            (&row["pid"], &row["state"]),
            (&t.setup["pid"], &"attached".into())
        );
    });
}

#[test]
fn binary_echo_round_trip_passes_bytes_exactly() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut t = server.open(Proto::Binary).await;
        assert_eq!(t.setup["protocol"], "binary");
        // printf emits a byte that is not UTF-8: binary mode must not touch it.
        t.type_text("printf 'A\\377B\\n'\r").await;
        let deadline = Instant::now() + T;
        let mut got = Vec::new();
        while !got.windows(3).any(|w| w == b"A\xffB") {
            assert!(Instant::now() < deadline, "no raw byte in {got:?}");
            if let Event::Output(b) = t.event().await {
                got.extend(b);
            }
        }
    });
}

#[test]
fn set_size_reaches_the_child() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        t.send_text(r#"["set_size", 40, 123]"#).await;
        t.run("stty size", "40 123").await;

        let mut t = server.open(Proto::Binary).await;
        t.send_text(r#"{"type":"resize","rows":33,"cols":77}"#)
            .await;
        t.run("stty size", "33 77").await;

        // The first size can come with the URL, before the shell starts.
        let mut t = server
            .open_at("/ws?rows=31&cols=91", Proto::Terminado)
            .await;
        t.run("stty size", "31 91").await;
    });
}

#[test]
fn child_exit_sends_disconnect_then_closes() {
    let server = Server::start(&["--", "/bin/sh", "-c", "echo bye; exit 3"]);
    block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        let closed = t.read_to_close().await;
        let before = &closed.before;
        assert!(
            String::from_utf8_lossy(&closed.output()).contains("bye"),
            "{before:?}"
        );
        let disconnect = closed.messages().find(|v| v[0] == "disconnect");
        assert_eq!(
            disconnect,
            Some(&serde_json::json!(["disconnect", 3])),
            "{before:?}"
        );
        assert_eq!(closed.code(), 1000);
        assert!(closed.reason().contains("code 3"));
        eventually("child reaped", T, || !alive(t.pid()));

        // Binary mode reports the exit as a control message.
        let closed = server.open(Proto::Binary).await.read_to_close().await;
        assert!(
            closed
                .messages()
                .any(|v| v["type"] == "exit" && v["code"] == 3),
            "{:?}",
            closed.before
        );
        assert_eq!(closed.code(), 1000);
    });
    server.wait_metric(
        "webterm_sessions_ended_total",
        &[("reason", "exit")],
        2.0,
        T,
    );
    assert_eq!(server.metric("webterm_sessions_ended_total", &[]), 2.0);
}

/// Box drawing, CJK, emoji and braille, long enough to cross many PTY reads
/// at every possible offset within a character.
fn multibyte_text() -> String {
    let mut s = String::new();
    let pieces = [
        "┌─┬─┐│├┼┤└┴┘",
        "日本語のテキスト",
        "🦀🚀✨👩‍💻",
        "⣿⡇⠿⢸⣀",
        "héllo wörld",
        "x",
    ];
    let mut i = 0;
    while s.len() < 600_000 {
        s.push_str(pieces[i % pieces.len()]);
        if i % 7 == 0 {
            s.push('\n');
        }
        i += 1;
    }
    s.push_str("\nEND-OF-STREAM\n");
    s
}

#[test]
fn multibyte_stream_arrives_identical_in_both_protocols() {
    let dir = std::env::temp_dir().join(format!("webterm-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("text.txt");
    let text = multibyte_text();
    std::fs::write(&file, &text).unwrap();
    // stty -onlcr: the terminal must not turn \n into \r\n, so the bytes can be compared.
    let script = format!("stty -onlcr; cat '{}'", file.display());
    let server = Server::start(&["--", "/bin/sh", "-c", &script]);
    block_on(async {
        for protocol in [Proto::Terminado, Proto::Binary] {
            let mut t = server.open(protocol).await;
            let got = Closed::read(&mut t.ws, 2 * T).await.output();
            let got = String::from_utf8(got).expect("output is valid UTF-8");
            assert!(
                !got.contains('\u{FFFD}'),
                "a character was broken ({protocol:?})"
            );
            assert_eq!(got.len(), text.len(), "{protocol:?}");
            assert!(got == text, "{protocol:?}: stream differs");
        }
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn idle_timeout_ends_session_and_its_child() {
    let server = Server::start(&[
        "--idle-timeout",
        "1s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let mut t = server.open(Proto::Binary).await;
        let closed = t.read_to_close().await;
        assert_eq!(closed.code(), 4000, "{:?}", closed.frame);
        assert!(
            closed.messages().any(|v| v["kind"] == "idle_timeout"),
            "{:?}",
            closed.before
        );
        eventually("idle child gone", T, || !alive(t.pid()));
    });
    server.wait_metric(
        "webterm_sessions_ended_total",
        &[("reason", "idle")],
        1.0,
        T,
    );
    assert_eq!(server.metric("webterm_idle_timeouts_total", &[]), 1.0);
    assert_eq!(server.metric("webterm_sessions_active", &[]), 0.0);
}

#[test]
fn output_alone_does_not_keep_a_session_alive() {
    let server = Server::start(&[
        "--idle-timeout",
        "1s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
        "-c",
        "while :; do echo tick; sleep 0.05; done",
    ]);
    block_on(async {
        let closed = server.open(Proto::Terminado).await.read_to_close().await;
        assert_eq!(closed.code(), 4000);
        // How many ticks arrive in the second depends on the machine; that
        // more than one did (the loop was running) does not.
        let before = &closed.before;
        let ticks = before
            .iter()
            .filter(|e| matches!(e, Event::Output(_)))
            .count();
        assert!(ticks >= 2, "the child was producing output: {before:?}");
    });
    server.wait_metric(
        "webterm_sessions_ended_total",
        &[("reason", "idle")],
        1.0,
        T,
    );
    assert_eq!(server.metric("webterm_sessions_ended_total", &[]), 1.0);
}

#[test]
fn input_keeps_a_session_alive() {
    let server = Server::start(&[
        "--idle-timeout",
        "4s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        // The pauses below are the behaviour under test, not synchronisation:
        // keystrokes 300 ms apart for over two timeouts. Without input
        // resetting the clock the session would close after 4 s and
        // read_until would see the close, so this cannot pass by luck.
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(9000) {
            n += 1;
            t.type_text(&format!("echo k{n}\r")).await;
            async_std::task::sleep(Duration::from_millis(300)).await;
        }
        // Over twice the timeout has passed with input: still alive.
        t.run("echo still-$((6*7))", "still-42").await;
        // Resizes count as input too (paced the same way, for two timeouts).
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(8000) {
            t.send_text(r#"["set_size", 24, 80]"#).await;
            async_std::task::sleep(Duration::from_millis(300)).await;
        }
        t.run("echo resized-$((6*7))", "resized-42").await;
        // Then silence ends it.
        assert_eq!(t.read_to_close().await.code(), 4000);
    });
}

#[test]
fn abrupt_disconnects_leave_no_process_and_no_zombie() {
    let server = Server::start(&[
        "--max-sessions",
        "1000",
        "--max-sessions-per-client",
        "1000",
        "--",
        "/bin/sh",
    ]);
    const ROUNDS: usize = 15;
    const PER_ROUND: usize = 20;
    block_on(async {
        for _ in 0..ROUNDS {
            let mut sockets = Vec::new();
            for _ in 0..PER_ROUND {
                sockets.push(server.open(Proto::Terminado).await);
            }
            // Wait for each prompt, then drop the TCP connection with no close frame.
            for mut t in sockets {
                // The prompt ("$ " or, for root, "# ") is the first output.
                while !matches!(t.event().await, Event::Output(_)) {}
                drop(t);
            }
        }
    });
    let total = (ROUNDS * PER_ROUND) as f64;
    // Counted once each session's processes are ended and reaped.
    server.wait_metric("webterm_sessions_ended_total", &[], total, 2 * T);
    assert_eq!(
        server.metric("webterm_sessions_ended_total", &[("reason", "disconnect")]),
        total
    );
    assert_eq!(server.metric("webterm_sessions_active", &[]), 0.0);
    eventually("no descendants left", T, || {
        descendants(server.pid()).is_empty()
    });
    let zombies: Vec<_> = procs()
        .into_iter()
        .filter(|p| p.ppid == server.pid() && p.state == 'Z')
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}");
}

#[test]
fn background_jobs_and_nohup_are_ended_with_the_session() {
    let subreaper = !skip_without_subreaper(
        "background_jobs_and_nohup_are_ended_with_the_session (adoption and reaping checks only)",
        "orphaned jobs go to PID 1 instead of webterm",
    );
    let server = Server::start(&["--kill-grace", "500ms", "--", "/bin/sh"]);
    let (sid, sleepers) = block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        let sid = t.pid();
        // One job ignores SIGHUP by nohup, one by trap; one has been orphaned from the shell.
        let jobs = "nohup sleep 1001 >/dev/null 2>&1 & (trap '' HUP; sleep 1002) & (sleep 1003 &) ; echo jobs-$((1+2))";
        // The result, not the echo of the command line: the line has run.
        t.run(jobs, "jobs-3").await;
        let sleepers = || {
            in_session(sid)
                .into_iter()
                .filter(|p| p.comm == "sleep")
                .collect::<Vec<_>>()
        };
        // A process is named "sleep" a moment before its command line is
        // there (exec sets the name first), so wait for both.
        let started = || {
            let found = sleepers();
            let argv: Vec<String> = found.iter().map(|p| cmdline(p.pid)).collect();
            (found.len() == 3 && argv.iter().all(|a| a.contains("100"))).then_some(found)
        };
        eventually("jobs running", T, || started().is_some());
        let found = started().expect("the jobs ran a moment ago");
        if subreaper {
            // The orphan is adopted by webterm, not by PID 1, once the
            // subshell that started it has exited.
            let orphan = found
                .iter()
                .find(|p| cmdline(p.pid).contains("1003"))
                .expect("the orphaned job")
                .pid;
            eventually("the orphaned job adopted by webterm", T, || {
                procs()
                    .iter()
                    .any(|p| p.pid == orphan && p.ppid == server.pid())
            });
        }
        drop(t);
        (sid, found.into_iter().map(|p| p.pid).collect::<Vec<_>>())
    });
    // Two of the jobs ignore SIGHUP: only the SIGKILL webterm sends when the
    // grace period has passed can end them.
    server.wait_metric(
        "webterm_sessions_ended_total",
        &[("reason", "disconnect")],
        1.0,
        T,
    );
    let ended = |pid: i32| procs().iter().all(|p| p.pid != pid || p.state == 'Z');
    eventually("every job ended", T, || sleepers.iter().all(|&p| ended(p)));
    if subreaper {
        // webterm reaps what it adopted: no zombie is left behind.
        eventually("every job reaped", T, || {
            sleepers.iter().all(|&p| !alive(p))
        });
        assert!(in_session(sid).is_empty(), "{:?}", in_session(sid));
    }
    eventually("nothing left under webterm", T, || {
        descendants(server.pid()).is_empty()
    });
}

#[test]
fn a_client_that_never_reads_keeps_server_memory_flat() {
    let server = Server::start(&["--", "yes", "0123456789abcdefghijklmnopqrstuvwxyz"]);
    block_on(async {
        let t = server.open(Proto::Binary).await;
        let id = t.id();
        // Never read from here on. Wait for the buffers between `yes` and
        // this socket to fill: webterm stops reading the terminal.
        let bytes_out = || server.session(id).unwrap()["bytes_out"].as_u64().unwrap();
        wait_steady(
            "output read for a client that does not read",
            Duration::from_millis(500),
            T,
            bytes_out,
        );
        let before = rss_kib(server.pid());
        // The wait is the behaviour under test: `yes` writes hundreds of
        // MB/s, so memory that followed it would grow far past the margin.
        async_std::task::sleep(Duration::from_secs(4)).await;
        let after = rss_kib(server.pid());
        assert!(
            after < before + 2048,
            "RSS grew from {before} KiB to {after} KiB"
        );
        // The child is blocked on the full PTY, not spinning.
        let yes = descendants(server.pid())
            .into_iter()
            .find(|p| p.comm == "yes")
            .expect("yes running");
        eventually("yes blocked on a full terminal", T, || {
            procs().iter().any(|p| p.pid == yes.pid && p.state == 'S')
        });
        // Meanwhile another session works normally.
        let other = server.open(Proto::Terminado).await;
        drop(other);
        drop(t);
    });
    server.wait_metric("webterm_sessions_ended_total", &[], 2.0, T);
    assert_eq!(server.metric("webterm_sessions_active", &[]), 0.0);
    eventually("no descendants left", T, || {
        descendants(server.pid()).is_empty()
    });
}

/// Opens a session, sends one bad thing, and returns the close code.
async fn close_code_after(server: &Server, protocol: Proto, bad: Message) -> u16 {
    let mut t = server.open(protocol).await;
    t.ws.send(bad).await.unwrap();
    t.read_to_close().await.code()
}

#[test]
fn bad_input_gets_a_clean_close_and_costs_nothing_else() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        // A healthy session that must survive everything below.
        let mut healthy = server.open(Proto::Terminado).await;

        for (bad, code) in [
            (Message::text("not json"), 1008),
            (Message::text(r#"{"stdin":"x"}"#), 1008),
            (Message::text(r#"["stdin"]"#), 1008),
            (Message::text(r#"["stdin", 42]"#), 1008),
            (Message::text(r#"["set_size", "a", 80]"#), 1008),
            (Message::binary(vec![1, 2, 3]), 1003),
            (Message::text("x".repeat(300 * 1024)), 1009),
            (
                Message::Frame(Frame::message(
                    vec![0xff, 0xfe, b'a'],
                    OpCode::Data(Data::Text),
                    true,
                )),
                1007,
            ),
        ] {
            let desc = format!("{bad:?}").chars().take(60).collect::<String>();
            assert_eq!(
                close_code_after(&server, Proto::Terminado, bad).await,
                code,
                "{desc}"
            );
        }
        assert_eq!(
            close_code_after(&server, Proto::Binary, Message::text(r#"{"type":5}"#)).await,
            1008
        );
        assert_eq!(
            close_code_after(
                &server,
                Proto::Binary,
                Message::binary(vec![b'x'; 300 * 1024])
            )
            .await,
            1009
        );

        // Every bad message above ended its own session, as an error.
        server.wait_metric(
            "webterm_sessions_ended_total",
            &[("reason", "error")],
            10.0,
            T,
        );

        // Unknown types are ignored, a zero size is refused (the terminal
        // keeps its size) and an absurd one clamped; the session goes on.
        let mut t = server
            .open_at("/ws?rows=31&cols=91", Proto::Terminado)
            .await;
        t.send_text(r#"["frobnicate", 1]"#).await;
        t.send_text(r#"["set_size", 0, 0]"#).await;
        t.run("stty size", "31 91").await;
        t.send_text(r#"["set_size", 50000, 60000]"#).await;
        t.run("stty size", "1000 1000").await;

        healthy.run("echo survived", "survived").await;

        // Nothing else ended: the two good sessions run on, and only they.
        assert_eq!(server.metric("webterm_sessions_ended_total", &[]), 10.0);
        assert_eq!(server.metric("webterm_sessions_active", &[]), 2.0);
        // Their two shells, and not a zombie of the others.
        eventually("all bad sessions reaped", T, || {
            descendants(server.pid()).len() == 2
        });
    });
}

#[test]
fn cross_origin_upgrades_are_refused() {
    let server = Server::start(&[
        "--allowed-origin",
        "https://allowed.example",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let err = connect(&server.url("/ws"), None, Some("http://evil.example"))
            .await
            .unwrap_err();
        match err {
            async_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 403),
            other => panic!("expected HTTP 403, got {other:?}"),
        }
        let same = format!("http://{}", server.addr);
        for origin in [same.as_str(), "https://allowed.example"] {
            let ws = connect(&server.url("/ws"), None, Some(origin)).await;
            Term::attach(ws.unwrap(), Proto::Terminado).await;
        }
    });
    // Refused before any session existed, and counted for the operator.
    assert_eq!(server.metric("webterm_sessions_started_total", &[]), 2.0);
    assert_eq!(
        server.metric("webterm_requests_refused_total", &[("reason", "origin")]),
        1.0
    );
}

#[test]
fn max_sessions_is_enforced_with_a_clear_refusal() {
    // Every test client is 127.0.0.1: the server-wide limit is under test.
    let server = Server::start(&[
        "--max-sessions",
        "2",
        "--max-sessions-per-client",
        "2",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let a = server.open(Proto::Terminado).await;
        let _b = server.open(Proto::Terminado).await;
        let mut c = server.connect("/ws", Proto::Terminado).await;
        let refused = Closed::read(&mut c, T).await;
        assert_eq!(refused.code(), 1013);
        assert!(refused.reason().contains("too many sessions (limit 2)"));
        assert_eq!(
            server.metric("webterm_sessions_ended_total", &[("reason", "refused")]),
            1.0
        );
        // Ending one frees its place.
        a.close().await;
        server.wait_metric(
            "webterm_sessions_ended_total",
            &[("reason", "disconnect")],
            1.0,
            T,
        );
        // The place itself is released an instant after the end is counted,
        // as the session's task returns: a refusal in that instant is retried.
        let deadline = Instant::now() + T;
        loop {
            let mut d = server.connect("/ws", Proto::Terminado).await;
            match event(&mut d, T).await {
                Event::Json(v) if v[0] == "setup" => break,
                Event::Closed(f) if close_code(&f) == 1013 && Instant::now() < deadline => {}
                other => panic!("a freed place was not given out: {other:?}"),
            }
        }
    });
}

#[test]
fn sigterm_closes_sockets_and_leaves_no_process() {
    let mut server = Server::start(&["--", "/bin/sh"]);
    let pids = block_on(async {
        let mut sockets = Vec::new();
        let mut pids = Vec::new();
        for _ in 0..3 {
            let t = server.open(Proto::Terminado).await;
            pids.push(t.pid());
            sockets.push(t);
        }
        server.sigterm();
        for mut t in sockets {
            assert_eq!(t.read_to_close().await.code(), 1001);
        }
        pids
    });
    let status = server.wait_exit(T).expect("exited after SIGTERM");
    assert!(status.success(), "{status}");
    // Exiting with every session's processes already gone is what a
    // completed drain means (one cut short leaves them to the next init).
    for pid in pids {
        assert!(!alive(pid), "child {pid} survived shutdown");
        assert!(in_session(pid).is_empty(), "{:?}", in_session(pid));
    }
}

#[test]
fn keepalive_closes_a_client_that_stops_answering() {
    // The reading client must answer within two intervals however busy
    // the machine: not too short a one.
    let server = Server::start(&["--ping-interval", "2s", "--", "/bin/sh"]);
    block_on(async {
        // A client that reads (and so answers pings) stays.
        let live = server.open(Proto::Terminado).await.keep_reading();
        // A client that never reads never answers; its socket stays open.
        let mut dead = server.open(Proto::Terminado).await;
        let dead_pid = dead.pid();
        // Both face the same deadline: the reading one must outlast it.
        server.wait_metric(
            "webterm_sessions_ended_total",
            &[("reason", "disconnect")],
            1.0,
            T,
        );
        eventually("the silent client's shell ended", T, || !alive(dead_pid));
        let mut live = live.stop().await;
        live.run("echo alive-$((2+3))", "alive-5").await;
        assert_eq!(server.metric("webterm_sessions_ended_total", &[]), 1.0);
        // The server hung up on the silent client.
        async { while let Some(Ok(_)) = futures_util::StreamExt::next(&mut dead.ws).await {} }
            .or(async {
                async_std::task::sleep(T).await;
                panic!("the silent client's socket is still open")
            })
            .await;
    });
}

#[test]
fn page_and_health_are_served() {
    let server = Server::start(&["--", "/bin/sh"]);
    let (status, body) = server.get("/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = server.get("/");
    assert_eq!(status, 200);
    assert!(body.contains("<html"));
    let (status, body) = server.get("/vendor/xterm.mjs");
    assert_eq!(status, 200);
    assert!(body.len() > 10_000);
    assert_eq!(server.get("/nope").0, 404);
    assert_eq!(server.get("/ws").0, 426);
}

#[test]
fn help_documents_every_option() {
    let help = webterm(&["--help"]).stdout;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for opt in [
        "--listen",
        "--idle-timeout",
        "--idle-check-interval",
        "--max-sessions",
        "--allowed-origin",
        "--ping-interval",
        "--kill-grace",
        "--assets-dir",
        "--log-level",
        "--socket-mode",
        "WEBTERM_SOCKET_MODE",
        "--tls-cert",
        "WEBTERM_TLS_CERT",
        "--tls-key",
        "WEBTERM_TLS_KEY",
        "--url-arg",
        "WEBTERM_URL_ARGS",
        "--max-upload",
        "WEBTERM_MAX_UPLOAD",
        "--no-file-transfer",
        "WEBTERM_NO_FILE_TRANSFER",
        "WEBTERM_COMMAND",
        "IDLE_TIMEOUT_SECS",
        "RUST_LOG",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}");
        assert!(readme.contains(opt), "README lacks {opt}");
    }
    let bad = webterm(&["--idle-timeout", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stderr.contains("--idle-timeout: 'soon'"));
    let _ = CloseCode::Normal;
}

/// Reads binary output into `got` until the client holds everything the
/// server has read from the terminal, and that is at least `at_least`:
/// nothing is left in flight. Asks the server only when the socket is quiet.
async fn read_all_sent(ws: &mut Ws, server: &Server, id: &str, got: &mut u64, at_least: u64) {
    let deadline = Instant::now() + T;
    let mut sent = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "read {got} bytes; the server has read {sent} (want at least {at_least})"
        );
        match async_std::future::timeout(
            Duration::from_millis(50),
            futures_util::StreamExt::next(ws),
        )
        .await
        {
            Ok(Some(Ok(Message::Binary(b)))) => *got += b.len() as u64,
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the socket ended: {other:?}"),
            Err(_) => {
                sent = server_bytes_out(server, id);
                if sent == *got && sent >= at_least {
                    return;
                }
            }
        }
    }
}

fn server_bytes_out(server: &Server, id: &str) -> u64 {
    server.session(id).expect("session listed")["bytes_out"]
        .as_u64()
        .unwrap()
}

/// How much output the server reads from a terminal at once.
const CHUNK: u64 = 32 * 1024;

#[test]
fn a_client_that_never_acks_is_held_to_the_window_by_its_pongs() {
    const WINDOW: u64 = 256 * 1024;
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        // Binary, but never an ack: only the pongs tungstenite sends for
        // the server's pings as it reads tell the server what was read.
        let mut t = server.open(Proto::Binary).await;
        let id = t.id().to_string();
        t.type_text("yes\r").await;
        // A slow reader: output keeps coming, window after window, because
        // each pong reopens it (a client that did not answer would stop
        // at one window).
        let mut got = 0u64;
        let deadline = Instant::now() + T;
        while got < 4 * WINDOW {
            assert!(Instant::now() < deadline, "only {got} bytes came");
            match async_std::future::timeout(T, futures_util::StreamExt::next(&mut t.ws)).await {
                Ok(Some(Ok(Message::Binary(b)))) => got += b.len() as u64,
                Ok(Some(Ok(_))) => {}
                other => panic!("the socket ended: {other:?}"),
            }
            async_std::task::sleep(Duration::from_millis(2)).await;
        }
        // The reader stops. The server stops too, at most a window past
        // what was read (through the socket's buffers, whatever their size).
        let mut sent = server_bytes_out(&server, &id);
        loop {
            async_std::task::sleep(Duration::from_millis(500)).await;
            let now = server_bytes_out(&server, &id);
            if now == sent {
                break;
            }
            sent = now;
        }
        assert!(
            sent - got <= WINDOW,
            "the server read {} bytes past what the client read",
            sent - got
        );
        // Ctrl-C: what still arrives before the prompt is that window at
        // most, plus what `yes` wrote after the flush and before it died
        // (one buffer) and the prompt's own bytes.
        t.type_text("\x03").await;
        t.type_text("echo __BA$((1+1))CK__\r").await;
        let mut late = Vec::new();
        let deadline = Instant::now() + T;
        while !String::from_utf8_lossy(&late).contains("__BA2CK__") {
            assert!(Instant::now() < deadline, "no prompt after Ctrl-C");
            match async_std::future::timeout(T, futures_util::StreamExt::next(&mut t.ws)).await {
                Ok(Some(Ok(Message::Binary(b)))) => late.extend_from_slice(&b),
                Ok(Some(Ok(_))) => {}
                other => panic!("the socket ended: {other:?}"),
            }
        }
        assert!(
            late.len() as u64 <= WINDOW + 12 * 1024,
            "{} bytes arrived after Ctrl-C",
            late.len()
        );
    });
}

/// A flood that starts on a keystroke, sent after the client's first ack,
/// so that it starts after the ack whatever the scheduling: the window
/// counts from there. The server runs `FLOOD_AFTER_A_KEY`.
async fn acked_flood(server: &Server) -> (Term, String) {
    let mut t = server.open(Proto::Binary).await;
    let id = t.id().to_string();
    t.send_text(r#"{"type":"ack","bytes":0}"#).await;
    t.type_text("\r").await;
    (t, id)
}

const FLOOD_AFTER_A_KEY: &[&str] = &["--", "/bin/sh", "-c", "read go; exec yes flood"];

#[test]
fn a_client_that_acks_quickly_may_have_more_in_flight_up_to_a_ceiling() {
    const WINDOW: u64 = 256 * 1024;
    const CEILING: u64 = 2 * 1024 * 1024;
    let server = Server::start(FLOOD_AFTER_A_KEY);
    block_on(async {
        let (mut t, id) = acked_flood(&server).await;
        let mut got = 0u64;
        let mut grown = None;
        // A stall of this machine in the last span before the acks stop
        // reads as a slow client (the window is back at the floor then);
        // the next round measures again.
        for _ in 0..5 {
            // Read and acknowledge each frame as it comes, for a while:
            // over loopback that is far faster than 2.5 MiB/s, the rate at
            // which the window starts to grow.
            let until = Instant::now() + Duration::from_millis(300);
            while Instant::now() < until {
                match async_std::future::timeout(T, futures_util::StreamExt::next(&mut t.ws)).await
                {
                    Ok(Some(Ok(Message::Binary(b)))) => {
                        got += b.len() as u64;
                        t.send_text(&format!(r#"{{"type":"ack","bytes":{got}}}"#))
                            .await;
                    }
                    Ok(Some(Ok(_))) => {}
                    other => panic!("the socket ended: {other:?}"),
                }
            }
            // Then stop acknowledging, and read on until the server stops.
            let acked = got;
            let deadline = Instant::now() + T;
            while !quiet_for(&mut t.ws, &mut got).await {
                assert!(Instant::now() < deadline, "output never stopped");
            }
            assert_eq!(server_bytes_out(&server, &id), got, "the server read on");
            let ahead = got - acked;
            assert!(
                ahead <= CEILING,
                "{ahead} bytes past the last ack, beyond the 2 MiB ceiling"
            );
            if ahead > WINDOW {
                grown = Some(ahead);
                break;
            }
            // Acknowledge what came, and measure again.
            t.send_text(&format!(r#"{{"type":"ack","bytes":{got}}}"#))
                .await;
        }
        assert!(
            grown.is_some(),
            "the window never grew past 256 KiB for a client that acks at once"
        );
        // Input still works while output is held back: Ctrl-C ends `yes`.
        t.type_text("\x03").await;
        assert_eq!(t.read_to_close().await.code(), 1000);
    });
}

/// Whether no output arrives for 700 ms; what does arrive is added to `got`.
async fn quiet_for(ws: &mut Ws, got: &mut u64) -> bool {
    let quiet = Duration::from_millis(700);
    let started = Instant::now();
    let mut quiet_all_along = true;
    while let Some(left) = quiet.checked_sub(started.elapsed()) {
        match async_std::future::timeout(left, futures_util::StreamExt::next(ws)).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                *got += b.len() as u64;
                quiet_all_along = false;
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the socket ended: {other:?}"),
            Err(_) => break,
        }
    }
    quiet_all_along
}

/// Asserts that for `quiet` no output reaches the client and the server
/// reads none from the terminal. The wait is the check: the command floods,
/// so output that was not held back would arrive in the first milliseconds.
async fn assert_held(ws: &mut Ws, server: &Server, id: &str, got: u64, why: &str) {
    let quiet = Duration::from_millis(700);
    let started = Instant::now();
    while let Some(left) = quiet.checked_sub(started.elapsed()) {
        match async_std::future::timeout(left, futures_util::StreamExt::next(ws)).await {
            Ok(Some(Ok(Message::Binary(b)))) => panic!("{why}: {} more bytes", b.len()),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("the socket ended: {other:?}"),
            Err(_) => break,
        }
    }
    assert_eq!(
        server_bytes_out(server, id),
        got,
        "{why}: the server read on"
    );
}

#[test]
fn pause_stops_output_and_resume_restarts_it() {
    let server = Server::start(&["--", "yes", "flood"]);
    block_on(async {
        let mut t = server.open(Proto::Binary).await;
        let id = t.id().to_string();
        t.send_text(r#"{"type":"pause"}"#).await;
        // A keystroke after the pause: once the server has counted it, it
        // has taken the pause, which comes first on the same socket.
        t.type_text("x").await;
        eventually("the pause taken", T, || {
            server.session(&id).unwrap()["bytes_in"] == 1
        });
        // The server may still read the one chunk it was waiting for when
        // the pause came, then nothing; the client gets what was in flight.
        let paused_at = server_bytes_out(&server, &id);
        let mut got = 0;
        let deadline = Instant::now() + T;
        loop {
            read_all_sent(&mut t.ws, &server, &id, &mut got, 0).await;
            if quiet_for(&mut t.ws, &mut got).await {
                break;
            }
            assert!(Instant::now() < deadline, "output never stopped");
        }
        assert!(
            got <= paused_at + CHUNK,
            "{} bytes read after the pause was taken",
            got - paused_at
        );
        assert_held(&mut t.ws, &server, &id, got, "output while paused").await;
        t.send_text(r#"{"type":"resume"}"#).await;
        let mut more = 0;
        while more <= 100_000 {
            match t.event().await {
                Event::Output(b) => more += b.len(),
                Event::Json(_) => {}
                Event::Closed(f) => panic!("closed after resume: {f:?}"),
            }
        }
    });
}

#[test]
fn unacknowledged_output_is_bounded_by_the_window() {
    const WINDOW: u64 = 256 * 1024;
    let server = Server::start(FLOOD_AFTER_A_KEY);
    block_on(async {
        let (mut t, id) = acked_flood(&server).await;
        // The client reads everything but acknowledges nothing: the server
        // sends one window, not a byte more, and stops.
        let mut got = 0;
        read_all_sent(&mut t.ws, &server, &id, &mut got, WINDOW).await;
        assert!(got <= WINDOW, "{got} bytes sent past a 256 KiB window");
        assert_held(&mut t.ws, &server, &id, got, "output past the window").await;
        // Acknowledging it all opens the window again, by exactly a window.
        t.send_text(&format!(r#"{{"type":"ack","bytes":{got}}}"#))
            .await;
        let acked = got;
        read_all_sent(&mut t.ws, &server, &id, &mut got, acked + WINDOW).await;
        assert!(
            got < acked + WINDOW + CHUNK,
            "{} after the ack",
            got - acked
        );
        assert_held(
            &mut t.ws,
            &server,
            &id,
            got,
            "output past the second window",
        )
        .await;
        // An ack beyond what was sent is clamped to what was sent: it opens
        // one more window, and cannot unbound it.
        t.send_text(r#"{"type":"ack","bytes":999999999999}"#).await;
        let before_lie = got;
        read_all_sent(&mut t.ws, &server, &id, &mut got, before_lie + WINDOW).await;
        assert!(
            got < before_lie + WINDOW + CHUNK,
            "{} after an ack beyond the end",
            got - before_lie
        );
        assert_held(&mut t.ws, &server, &id, got, "output past the clamped ack").await;
        // Input still works while output is held back: Ctrl-C ends `yes`.
        t.type_text("\x03").await;
        assert_eq!(t.read_to_close().await.code(), 1000);
    });
}
