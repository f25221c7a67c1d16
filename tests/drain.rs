//! The drain before a restart (`--drain-timeout`): on SIGTERM the server
//! turns unready and refuses new sessions, tells attached clients when it
//! will end their sessions, keeps the running ones (reattach included), and
//! exits as soon as the last one ends, or shuts down as usual when the
//! timeout passes or a second signal comes. Real server, sockets, PTYs and
//! processes.

mod common;

use async_std::task::block_on;
use common::*;

fn code(f: &Option<async_tungstenite::tungstenite::protocol::CloseFrame>) -> u16 {
    f.as_ref().map(|f| u16::from(f.code)).unwrap_or(0)
}

/// Opens a resumable binary session; returns the socket and its setup.
async fn open(server: &Server) -> (Ws, serde_json::Value) {
    let mut ws = connect(&server.url("/ws?resumable=1"), Some(BINARY), None)
        .await
        .unwrap();
    let setup = setup(&mut ws).await;
    (ws, setup)
}

/// Reads until the drain notice and returns its `seconds_left`; output on
/// the way is skipped, anything else fails the test.
async fn drain_notice(ws: &mut Ws) -> u64 {
    loop {
        match event(ws, T).await {
            Event::Json(v) if v["type"] == "drain" => return v["seconds_left"].as_u64().unwrap(),
            Event::Output(_) => {}
            other => panic!("expected the drain notice, got {other:?}"),
        }
    }
}

/// Types a command whose output only the shell can produce (the typed
/// line's echo does not contain it) and waits for that output.
async fn echoes(ws: &mut Ws, tag: &str) {
    type_text(ws, true, &format!("echo {tag}-$((40+2))\r")).await;
    read_until(ws, &format!("{tag}-42"), T).await;
}

fn ready(server: &Server) -> u16 {
    http_get_full(&server.addr, "/readyz", &[]).0
}

#[test]
fn a_drain_keeps_the_running_session_and_exits_when_it_ends() {
    // Ten minutes: the server can only exit within the test's deadline if
    // it exits when the last session ends.
    let mut server = Server::start(&["--drain-timeout", "10m", "--", "/bin/sh"]);
    assert_eq!(ready(&server), 200);
    let shell = block_on(async {
        let (mut ws, first) = open(&server).await;
        let id = first["session"].as_str().unwrap().to_string();
        let token = first["resume_token"].as_str().unwrap().to_string();
        let shell = first["pid"].as_i64().unwrap() as i32;
        echoes(&mut ws, "before").await;

        server.sigterm();
        let left = drain_notice(&mut ws).await;
        assert!(left > 0 && left <= 600, "seconds_left {left}");
        assert_eq!(ready(&server), 503);
        assert_eq!(http_get_full(&server.addr, "/healthz", &[]).0, 200);
        // New sessions are refused, in both protocols; the page is served
        // (a reload finds its session).
        assert_eq!(connect_with(&server.url("/ws"), &[]).await.err(), Some(503));
        assert_eq!(
            connect_with(
                &server.url("/ws?resumable=1"),
                &[("Sec-WebSocket-Protocol", BINARY)]
            )
            .await
            .err(),
            Some(503)
        );
        assert_eq!(http_get_full(&server.addr, "/", &[]).0, 200);
        // The running session goes on.
        echoes(&mut ws, "during").await;

        // Viewers may still come, and are told too.
        let view = first["view_token"].as_str().unwrap();
        let mut viewer = connect(&server.url(&format!("/ws?view={id}")), Some(BINARY), None)
            .await
            .unwrap();
        send_text(
            &mut viewer,
            &serde_json::json!({"type": "view", "token": view}).to_string(),
        )
        .await;
        assert_eq!(setup(&mut viewer).await["viewer"], true);
        drain_notice(&mut viewer).await;

        // A client that drops reattaches, and is told of the drain again.
        ws.close(None).await.unwrap();
        server.wait_state(&id, Some("detached"), T);
        let mut ws = connect(
            &server.url(&format!("/ws?resumable=1&resume={id}")),
            Some(BINARY),
            None,
        )
        .await
        .unwrap();
        send_text(
            &mut ws,
            &serde_json::json!({"type": "resume", "token": token, "have": 0}).to_string(),
        )
        .await;
        let again = setup(&mut ws).await;
        assert_eq!(again["resumed"], true, "{again}");
        assert_eq!(again["pid"].as_i64().unwrap() as i32, shell);
        let left = drain_notice(&mut ws).await;
        assert!(left > 0 && left <= 600, "seconds_left {left}");
        echoes(&mut ws, "reattached").await;

        // A reattach that fails does not start a session: it is told why.
        let mut stray = connect(
            &server.url(&format!("/ws?resumable=1&resume={id}")),
            Some(BINARY),
            None,
        )
        .await
        .unwrap();
        send_text(
            &mut stray,
            &serde_json::json!({"type": "resume", "token": "wrong", "have": 0}).to_string(),
        )
        .await;
        let (close, _) = read_to_close(&mut stray, T).await;
        assert_eq!(code(&close), 1001, "{close:?}");

        // The session ends by itself: the server exits without waiting.
        type_text(&mut ws, true, "exit 3\r").await;
        let (close, _) = read_to_close(&mut ws, T).await;
        assert_eq!(code(&close), 1000, "{close:?}");
        shell
    });
    let status = server
        .wait_exit(T)
        .unwrap_or_else(|| panic!("still draining; logs:\n{}", server.logs().join("\n")));
    assert!(status.success(), "{status}");
    assert!(!alive(shell), "the shell outlived the server");
}

#[test]
fn a_drain_that_times_out_ends_sessions_as_a_shutdown_does() {
    let subreaper = !skip_without_subreaper(
        "a_drain_that_times_out_ends_sessions_as_a_shutdown_does (its reaping check only)",
        "the shell's last `sleep`, orphaned by the kill, goes to PID 1",
    );
    // A child that ignores the hangup: the teardown after the drain must
    // kill it after the grace, and reap everything.
    let mut server = Server::start(&[
        "--drain-timeout",
        "2s",
        "--kill-grace",
        "1s",
        "--",
        "/bin/sh",
        "-c",
        "trap '' HUP; sleep 1000 & echo up; while :; do sleep 0.1; done",
    ]);
    let shell = block_on(async {
        let (mut ws, first) = open(&server).await;
        let shell = first["pid"].as_i64().unwrap() as i32;
        read_until(&mut ws, "up", T).await;
        server.sigterm();
        let left = drain_notice(&mut ws).await;
        assert!(left > 0 && left <= 2, "seconds_left {left}");
        let (close, before) = read_to_close(&mut ws, T).await;
        assert_eq!(code(&close), 1001, "{close:?}");
        assert_eq!(
            close.unwrap().reason.as_str(),
            "server shutting down",
            "{before:?}"
        );
        assert!(
            before
                .iter()
                .any(|e| matches!(e, Event::Json(v) if v["kind"] == "shutdown")),
            "no shutdown notice before the close: {before:?}"
        );
        shell
    });
    let status = server.wait_exit(T).expect("exits after the drain");
    assert!(status.success(), "{status}");
    let left: Vec<Proc> = in_session(shell)
        .into_iter()
        .filter(|p| subreaper || p.state != 'Z')
        .collect();
    assert!(
        left.is_empty(),
        "the session's processes outlived it: {left:?}"
    );
}

#[test]
fn a_second_signal_ends_the_drain() {
    let mut server = Server::start(&["--drain-timeout", "10m", "--", "/bin/sh"]);
    block_on(async {
        let (mut ws, _) = open(&server).await;
        echoes(&mut ws, "up").await;
        server.sigterm();
        drain_notice(&mut ws).await;
        server.sigterm();
        let (close, _) = read_to_close(&mut ws, T).await;
        assert_eq!(code(&close), 1001, "{close:?}");
    });
    let status = server
        .wait_exit(T)
        .unwrap_or_else(|| panic!("still draining; logs:\n{}", server.logs().join("\n")));
    assert!(status.success(), "{status}");
}

#[test]
fn without_a_drain_timeout_sigterm_ends_sessions_at_once() {
    let mut server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let (mut ws, _) = open(&server).await;
        echoes(&mut ws, "up").await;
        server.sigterm();
        let (close, before) = read_to_close(&mut ws, T).await;
        assert_eq!(code(&close), 1001, "{close:?}");
        assert!(
            !before
                .iter()
                .any(|e| matches!(e, Event::Json(v) if v["type"] == "drain")),
            "a drain notice without a drain: {before:?}"
        );
    });
    assert!(server.wait_exit(T).expect("exits").success());
}

#[test]
fn the_option_is_documented_and_checked() {
    let bin = env!("CARGO_BIN_EXE_webterm");
    let help = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for text in ["--drain-timeout", "WEBTERM_DRAIN_TIMEOUT"] {
        assert!(help.contains(text), "--help lacks {text}");
        assert!(readme.contains(text), "README lacks {text}");
    }
    let bad = std::process::Command::new(bin)
        .args(["--drain-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--drain-timeout: 'soon'"), "{err}");
    let bad = std::process::Command::new(bin)
        .env("WEBTERM_DRAIN_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("WEBTERM_DRAIN_TIMEOUT: 'soon'"), "{err}");
}
