//! The drain before a restart (`--drain-timeout`): on SIGTERM the server
//! turns unready and refuses new sessions, tells attached clients when it
//! will end their sessions, keeps the running ones (reattach included), and
//! exits as soon as the last one ends, or shuts down as usual when the
//! timeout passes or a second signal comes. Real server, sockets, PTYs and
//! processes.

mod common;

use async_std::task::block_on;
use common::*;

/// Reads until the drain notice and returns its `seconds_left`; output on
/// the way is skipped, anything else fails the test.
async fn drain_notice(t: &mut Term) -> u64 {
    loop {
        match t.event().await {
            Event::Json(v) if v["type"] == "drain" => return v["seconds_left"].as_u64().unwrap(),
            Event::Output(_) => {}
            other => panic!("expected the drain notice, got {other:?}"),
        }
    }
}

/// Types a command whose output only the shell can produce (the typed
/// line's echo does not contain it) and waits for that output.
async fn echoes(t: &mut Term, tag: &str) {
    t.run(&format!("echo {tag}-$((40+2))"), &format!("{tag}-42"))
        .await;
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
        let mut t = server.open_resumable("").await;
        let first = t.setup.clone();
        let (id, shell) = (first.id(), first.pid());
        echoes(&mut t, "before").await;

        server.sigterm();
        let left = drain_notice(&mut t).await;
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
        echoes(&mut t, "during").await;

        // Viewers may still come, and are told too.
        let mut viewer = server.view(id, first.view_token()).await;
        assert_eq!(viewer.setup["viewer"], true);
        drain_notice(&mut viewer).await;

        // A client that drops reattaches, and is told of the drain again.
        t.close().await;
        server.wait_state(id, Some("detached"), T);
        let mut again = server.resume(id, first.resume_token(), 0).await;
        // The setup comes first: the drain notice follows it.
        assert!(again.notices.is_empty(), "{:?}", again.notices);
        assert_eq!(again.setup["resumed"], true, "{}", again.setup);
        assert_eq!(again.pid(), shell);
        let left = drain_notice(&mut again).await;
        assert!(left > 0 && left <= 600, "seconds_left {left}");
        echoes(&mut again, "reattached").await;

        // A reattach that fails does not start a session: it is told why.
        let mut stray = server
            .connect(&format!("/ws?resumable=1&resume={id}"), Proto::Binary)
            .await;
        let wrong = serde_json::json!({"type": "resume", "token": "wrong", "have": 0});
        send_text(&mut stray, &wrong.to_string()).await;
        let refused = Closed::read(&mut stray, T).await;
        assert_eq!(refused.code(), 1001, "{:?}", refused.frame);

        // The session ends by itself: the server exits without waiting.
        again.type_text("exit 3\r").await;
        let end = again.read_to_close().await;
        assert_eq!(end.code(), 1000, "{:?}", end.frame);
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
        let mut t = server.open_resumable("").await;
        t.read_until("up").await;
        server.sigterm();
        let left = drain_notice(&mut t).await;
        assert!(left > 0 && left <= 2, "seconds_left {left}");
        let end = t.read_to_close().await;
        let before = &end.before;
        assert_eq!(end.code(), 1001, "{:?}", end.frame);
        assert_eq!(end.reason(), "server shutting down", "{before:?}");
        assert!(
            end.messages().any(|v| v["kind"] == "shutdown"),
            "no shutdown notice before the close: {before:?}"
        );
        t.pid()
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
        let mut t = server.open_resumable("").await;
        echoes(&mut t, "up").await;
        server.sigterm();
        drain_notice(&mut t).await;
        server.sigterm();
        let end = t.read_to_close().await;
        assert_eq!(end.code(), 1001, "{:?}", end.frame);
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
        let mut t = server.open_resumable("").await;
        echoes(&mut t, "up").await;
        server.sigterm();
        let end = t.read_to_close().await;
        assert_eq!(end.code(), 1001, "{:?}", end.frame);
        assert!(
            !end.messages().any(|v| v["type"] == "drain"),
            "a drain notice without a drain: {:?}",
            end.before
        );
    });
    assert!(server.wait_exit(T).expect("exits").success());
}

#[test]
fn the_option_is_documented_and_checked() {
    let help = webterm(&["--help"]).stdout;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for text in ["--drain-timeout", "WEBTERM_DRAIN_TIMEOUT"] {
        assert!(help.contains(text), "--help lacks {text}");
        assert!(readme.contains(text), "README lacks {text}");
    }
    let bad = webterm(&["--drain-timeout", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "{bad}");
    assert!(bad.stderr.contains("--drain-timeout: 'soon'"), "{bad}");
    let bad = webterm_env(&[], &[("WEBTERM_DRAIN_TIMEOUT", "soon")]);
    assert_eq!(bad.status.code(), Some(2), "{bad}");
    assert!(
        bad.stderr.contains("WEBTERM_DRAIN_TIMEOUT: 'soon'"),
        "{bad}"
    );
}
