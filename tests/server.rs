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

fn close_code(f: &Option<async_tungstenite::tungstenite::protocol::CloseFrame>) -> u16 {
    f.as_ref().map(|f| u16::from(f.code)).unwrap_or(0)
}

#[test]
fn terminado_echo_round_trip() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
        let setup = setup(&mut ws).await;
        assert!(setup["pid"].as_u64().unwrap() > 1);
        let id = setup["session"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        type_text(&mut ws, false, "echo hello-$((6*7))\r").await;
        read_until(&mut ws, "hello-42", T).await;
        // The session is counted and listed before its setup is sent.
        assert_eq!(server.metric("webterm_sessions_started_total", &[]), 1.0);
        let row = server.session(id).expect("listed");
        assert_eq!(
            (&row["pid"], &row["state"]),
            (&setup["pid"], &"attached".into())
        );
    });
}

#[test]
fn binary_echo_round_trip_passes_bytes_exactly() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        let setup = setup(&mut ws).await;
        assert_eq!(setup["protocol"], "binary");
        // printf emits a byte that is not UTF-8: binary mode must not touch it.
        type_text(&mut ws, true, "printf 'A\\377B\\n'\r").await;
        let deadline = Instant::now() + T;
        let mut got = Vec::new();
        while !got.windows(3).any(|w| w == b"A\xffB") {
            assert!(Instant::now() < deadline, "no raw byte in {got:?}");
            if let Event::Output(b) = event(&mut ws, T).await {
                got.extend(b);
            }
        }
    });
}

#[test]
fn set_size_reaches_the_child() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut ws).await;
        send_text(&mut ws, r#"["set_size", 40, 123]"#).await;
        type_text(&mut ws, false, "stty size\r").await;
        read_until(&mut ws, "40 123", T).await;

        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        setup(&mut ws).await;
        send_text(&mut ws, r#"{"type":"resize","rows":33,"cols":77}"#).await;
        type_text(&mut ws, true, "stty size\r").await;
        read_until(&mut ws, "33 77", T).await;

        // The first size can come with the URL, before the shell starts.
        let mut ws = connect(&server.url("/ws?rows=31&cols=91"), None, None)
            .await
            .unwrap();
        setup(&mut ws).await;
        type_text(&mut ws, false, "stty size\r").await;
        read_until(&mut ws, "31 91", T).await;
    });
}

#[test]
fn child_exit_sends_disconnect_then_closes() {
    let server = Server::start(&["--", "/bin/sh", "-c", "echo bye; exit 3"]);
    block_on(async {
        let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
        let pid = setup(&mut ws).await["pid"].as_i64().unwrap() as i32;
        let (close, before) = read_to_close(&mut ws, T).await;
        let out: Vec<u8> = before
            .iter()
            .filter_map(|e| match e {
                Event::Output(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(String::from_utf8_lossy(&out).contains("bye"), "{before:?}");
        let disconnect = before.iter().find_map(|e| match e {
            Event::Json(v) if v[0] == "disconnect" => Some(v.clone()),
            _ => None,
        });
        assert_eq!(
            disconnect,
            Some(serde_json::json!(["disconnect", 3])),
            "{before:?}"
        );
        assert_eq!(close_code(&close), 1000);
        assert!(close.unwrap().reason.contains("code 3"));
        eventually("child reaped", T, || !alive(pid));

        // Binary mode reports the exit as a control message.
        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        setup(&mut ws).await;
        let (close, before) = read_to_close(&mut ws, T).await;
        assert!(
            before
                .iter()
                .any(|e| matches!(e, Event::Json(v) if v["type"] == "exit" && v["code"] == 3)),
            "{before:?}"
        );
        assert_eq!(close_code(&close), 1000);
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
        for protocol in [None, Some(BINARY)] {
            let mut ws = connect(&server.url("/ws"), protocol, None).await.unwrap();
            setup(&mut ws).await;
            let (_, events) = read_to_close(&mut ws, 2 * T).await;
            let got: Vec<u8> = events
                .into_iter()
                .filter_map(|e| match e {
                    Event::Output(b) => Some(b),
                    _ => None,
                })
                .flatten()
                .collect();
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
        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        let pid = setup(&mut ws).await["pid"].as_i64().unwrap() as i32;
        let (close, before) = read_to_close(&mut ws, T).await;
        assert_eq!(close_code(&close), 4000, "{close:?}");
        assert!(
            before
                .iter()
                .any(|e| matches!(e, Event::Json(v) if v["kind"] == "idle_timeout")),
            "{before:?}"
        );
        eventually("idle child gone", T, || !alive(pid));
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
        let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut ws).await;
        let (close, before) = read_to_close(&mut ws, T).await;
        assert_eq!(close_code(&close), 4000);
        // How many ticks arrive in the second depends on the machine; that
        // more than one did (the loop was running) does not.
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
        "2s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut ws).await;
        // The pauses below are the behaviour under test, not synchronisation:
        // keystrokes 300 ms apart for three timeouts. Without input resetting
        // the clock the session would close after 2 s and read_until would
        // see the close, so this cannot pass by luck.
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(6000) {
            n += 1;
            type_text(&mut ws, false, &format!("echo k{n}\r")).await;
            async_std::task::sleep(Duration::from_millis(300)).await;
        }
        // Three times the timeout has passed with input: still alive.
        type_text(&mut ws, false, "echo still-$((6*7))\r").await;
        read_until(&mut ws, "still-42", T).await;
        // Resizes count as input too (paced the same way, for two timeouts).
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(4000) {
            send_text(&mut ws, r#"["set_size", 24, 80]"#).await;
            async_std::task::sleep(Duration::from_millis(300)).await;
        }
        type_text(&mut ws, false, "echo resized-$((6*7))\r").await;
        read_until(&mut ws, "resized-42", T).await;
        // Then silence ends it.
        let (close, _) = read_to_close(&mut ws, T).await;
        assert_eq!(close_code(&close), 4000);
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
                let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
                setup(&mut ws).await;
                sockets.push(ws);
            }
            // Wait for each prompt, then drop the TCP connection with no close frame.
            for mut ws in sockets {
                // The prompt ("$ " or, for root, "# ") is the first output.
                while !matches!(event(&mut ws, T).await, Event::Output(_)) {}
                drop(ws);
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
        let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
        let sid = setup(&mut ws).await["pid"].as_i64().unwrap() as i32;
        // One job ignores SIGHUP by nohup, one by trap; one has been orphaned from the shell.
        type_text(&mut ws, false, "nohup sleep 1001 >/dev/null 2>&1 & (trap '' HUP; sleep 1002) & (sleep 1003 &) ; echo jobs-$((1+2))\r").await;
        // The result, not the echo of the command line: the line has run.
        read_until(&mut ws, "jobs-3", T).await;
        let sleepers = || {
            in_session(sid)
                .into_iter()
                .filter(|p| p.comm == "sleep")
                .collect::<Vec<_>>()
        };
        eventually("jobs running", T, || sleepers().len() == 3);
        let found = sleepers();
        if subreaper {
            // The orphan was adopted by webterm, not by PID 1.
            let orphan = found
                .iter()
                .find(|p| cmdline(p.pid).contains("1003"))
                .expect("the orphaned job");
            assert_eq!(orphan.ppid, server.pid(), "{orphan:?}");
        }
        drop(ws);
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
        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        let id = setup(&mut ws).await["session"]
            .as_str()
            .unwrap()
            .to_string();
        // Never read from here on. Wait for the buffers between `yes` and
        // this socket to fill: webterm stops reading the terminal.
        let bytes_out = || server.session(&id).unwrap()["bytes_out"].as_u64().unwrap();
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
        let mut other = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut other).await;
        drop(other);
        drop(ws);
    });
    server.wait_metric("webterm_sessions_ended_total", &[], 2.0, T);
    assert_eq!(server.metric("webterm_sessions_active", &[]), 0.0);
    eventually("no descendants left", T, || {
        descendants(server.pid()).is_empty()
    });
}

/// Opens a session, sends one bad thing, and returns the close code.
async fn close_code_after(server: &Server, protocol: Option<&str>, bad: Message) -> u16 {
    let mut ws = connect(&server.url("/ws"), protocol, None).await.unwrap();
    setup(&mut ws).await;
    ws.send(bad).await.unwrap();
    let (close, _) = read_to_close(&mut ws, T).await;
    close_code(&close)
}

#[test]
fn bad_input_gets_a_clean_close_and_costs_nothing_else() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        // A healthy session that must survive everything below.
        let mut healthy = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut healthy).await;

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
            assert_eq!(close_code_after(&server, None, bad).await, code, "{desc}");
        }
        assert_eq!(
            close_code_after(&server, Some(BINARY), Message::text(r#"{"type":5}"#)).await,
            1008
        );
        assert_eq!(
            close_code_after(
                &server,
                Some(BINARY),
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
        let mut ws = connect(&server.url("/ws?rows=31&cols=91"), None, None)
            .await
            .unwrap();
        setup(&mut ws).await;
        send_text(&mut ws, r#"["frobnicate", 1]"#).await;
        send_text(&mut ws, r#"["set_size", 0, 0]"#).await;
        type_text(&mut ws, false, "stty size\r").await;
        read_until(&mut ws, "31 91", T).await;
        send_text(&mut ws, r#"["set_size", 50000, 60000]"#).await;
        type_text(&mut ws, false, "stty size\r").await;
        read_until(&mut ws, "1000 1000", T).await;

        type_text(&mut healthy, false, "echo survived\r").await;
        read_until(&mut healthy, "survived", T).await;

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
        let mut ws = connect(&server.url("/ws"), None, Some(&same))
            .await
            .unwrap();
        setup(&mut ws).await;
        let mut ws = connect(&server.url("/ws"), None, Some("https://allowed.example"))
            .await
            .unwrap();
        setup(&mut ws).await;
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
        let mut a = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut a).await;
        let mut b = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut b).await;
        let mut c = connect(&server.url("/ws"), None, None).await.unwrap();
        let (close, _) = read_to_close(&mut c, T).await;
        assert_eq!(close_code(&close), 1013);
        assert!(close
            .unwrap()
            .reason
            .contains("too many sessions (limit 2)"));
        assert_eq!(
            server.metric("webterm_sessions_ended_total", &[("reason", "refused")]),
            1.0
        );
        // Ending one frees its place.
        a.close(None).await.unwrap();
        drop(a);
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
            let mut d = connect(&server.url("/ws"), None, None).await.unwrap();
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
            let mut ws = connect(&server.url("/ws"), None, None).await.unwrap();
            pids.push(setup(&mut ws).await["pid"].as_i64().unwrap() as i32);
            sockets.push(ws);
        }
        server.sigterm();
        for mut ws in sockets {
            let (close, _) = read_to_close(&mut ws, T).await;
            assert_eq!(close_code(&close), 1001);
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
    let server = Server::start(&["--ping-interval", "500ms", "--", "/bin/sh"]);
    block_on(async {
        // A client that reads (and so answers pings) stays.
        let mut live = connect(&server.url("/ws"), None, None).await.unwrap();
        setup(&mut live).await;
        let live = keep_reading(live);
        // A client that never reads never answers; its socket stays open.
        let mut dead = connect(&server.url("/ws"), None, None).await.unwrap();
        let dead_pid = setup(&mut dead).await["pid"].as_i64().unwrap() as i32;
        // Both face the same deadline: the reading one must outlast it.
        server.wait_metric(
            "webterm_sessions_ended_total",
            &[("reason", "disconnect")],
            1.0,
            T,
        );
        eventually("the silent client's shell ended", T, || !alive(dead_pid));
        let mut live = live.stop().await;
        type_text(&mut live, false, "echo alive-$((2+3))\r").await;
        read_until(&mut live, "alive-5", T).await;
        assert_eq!(server.metric("webterm_sessions_ended_total", &[]), 1.0);
        // The server hung up on the silent client.
        async { while let Some(Ok(_)) = futures_util::StreamExt::next(&mut dead).await {} }
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
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
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
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
        .args(["--idle-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--idle-timeout: 'soon'"));
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
        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        let id = setup(&mut ws).await["session"]
            .as_str()
            .unwrap()
            .to_string();
        send_text(&mut ws, r#"{"type":"pause"}"#).await;
        // A keystroke after the pause: once the server has counted it, it
        // has taken the pause, which comes first on the same socket.
        type_text(&mut ws, true, "x").await;
        eventually("the pause taken", T, || {
            server.session(&id).unwrap()["bytes_in"] == 1
        });
        // The server may still read the one chunk it was waiting for when
        // the pause came, then nothing; the client gets what was in flight.
        let paused_at = server_bytes_out(&server, &id);
        let mut got = 0;
        let deadline = Instant::now() + T;
        loop {
            read_all_sent(&mut ws, &server, &id, &mut got, 0).await;
            if quiet_for(&mut ws, &mut got).await {
                break;
            }
            assert!(Instant::now() < deadline, "output never stopped");
        }
        assert!(
            got <= paused_at + CHUNK,
            "{} bytes read after the pause was taken",
            got - paused_at
        );
        assert_held(&mut ws, &server, &id, got, "output while paused").await;
        send_text(&mut ws, r#"{"type":"resume"}"#).await;
        let mut more = 0;
        while more <= 100_000 {
            match event(&mut ws, T).await {
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
    // The flood starts on a keystroke, so that it starts after the ack
    // below, whatever the scheduling: the window counts from there.
    let server = Server::start(&["--", "/bin/sh", "-c", "read go; exec yes flood"]);
    block_on(async {
        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        let id = setup(&mut ws).await["session"]
            .as_str()
            .unwrap()
            .to_string();
        send_text(&mut ws, r#"{"type":"ack","bytes":0}"#).await;
        type_text(&mut ws, true, "\r").await;
        // The client reads everything but acknowledges nothing: the server
        // sends one window (plus the chunk that crossed it) and stops.
        let mut got = 0;
        read_all_sent(&mut ws, &server, &id, &mut got, WINDOW).await;
        assert!(
            got < WINDOW + CHUNK,
            "{got} bytes sent past a 256 KiB window"
        );
        assert_held(&mut ws, &server, &id, got, "output past the window").await;
        // Acknowledging it all opens the window again, by exactly a window.
        send_text(&mut ws, &format!(r#"{{"type":"ack","bytes":{got}}}"#)).await;
        let acked = got;
        read_all_sent(&mut ws, &server, &id, &mut got, acked + WINDOW).await;
        assert!(
            got < acked + WINDOW + CHUNK,
            "{} after the ack",
            got - acked
        );
        assert_held(&mut ws, &server, &id, got, "output past the second window").await;
        // An ack beyond what was sent is clamped to what was sent: it opens
        // one more window, and cannot unbound it.
        send_text(&mut ws, r#"{"type":"ack","bytes":999999999999}"#).await;
        let before_lie = got;
        read_all_sent(&mut ws, &server, &id, &mut got, before_lie + WINDOW).await;
        assert!(
            got < before_lie + WINDOW + CHUNK,
            "{} after an ack beyond the end",
            got - before_lie
        );
        assert_held(&mut ws, &server, &id, got, "output past the clamped ack").await;
        // Input still works while output is held back: Ctrl-C ends `yes`.
        type_text(&mut ws, true, "\x03").await;
        let (close, _) = read_to_close(&mut ws, T).await;
        assert_eq!(close_code(&close), 1000);
    });
}
