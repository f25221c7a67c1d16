//! Sessions that survive: reattach, reconnect window, idle policies and
//! warnings, per-user timeouts, read-only viewers, tmux. Real server,
//! sockets, PTYs and processes.

mod common;

use std::time::{Duration, Instant};

use async_std::task::block_on;
use async_tungstenite::tungstenite::Message;
use common::*;

fn code(f: &Option<async_tungstenite::tungstenite::protocol::CloseFrame>) -> u16 {
    f.as_ref().map(|f| u16::from(f.code)).unwrap_or(0)
}

/// Opens a resumable binary session; returns the socket and its setup.
async fn open(server: &Server, query: &str) -> (Ws, serde_json::Value) {
    let mut ws = connect(
        &server.url(&format!("/ws?resumable=1{query}")),
        Some(BINARY),
        None,
    )
    .await
    .unwrap();
    let setup = setup(&mut ws).await;
    (ws, setup)
}

/// Reattaches with the session's token, having `have` bytes of its output.
async fn resume(
    server: &Server,
    setup: &serde_json::Value,
    token: &str,
    have: u64,
) -> (Ws, serde_json::Value) {
    let id = setup["session"].as_str().unwrap();
    let mut ws = connect(
        &server.url(&format!("/ws?resumable=1&resume={id}")),
        Some(BINARY),
        None,
    )
    .await
    .unwrap();
    send_text(
        &mut ws,
        &serde_json::json!({"type": "resume", "token": token, "have": have}).to_string(),
    )
    .await;
    let mut notices = Vec::new();
    loop {
        match event(&mut ws, T).await {
            Event::Json(v) if v["type"] == "setup" => {
                let mut v = v;
                v["notices"] = serde_json::json!(notices);
                return (ws, v);
            }
            Event::Json(v) => notices.push(v),
            other => panic!("expected setup, got {other:?}"),
        }
    }
}

#[test]
fn a_dropped_socket_reattaches_to_the_same_shell_with_its_output() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let (mut ws, first) = open(&server, "").await;
        let token = first["resume_token"].as_str().unwrap().to_string();
        let pid = first["pid"].as_i64().unwrap();
        let id = first["session"].as_str().unwrap();
        type_text(&mut ws, true, "echo before-$((20+1)); echo shell=$$\r").await;
        // The pid itself, not "shell=": the echo of the typed line has that.
        read_until(&mut ws, &format!("shell={pid}"), T).await;
        drop(ws); // abrupt: no close frame

        // A fresh page (it has nothing) gets the history and the same shell.
        server.wait_state(id, Some("detached"), T);
        let (mut ws, again) = resume(&server, &first, &token, 0).await;
        assert_eq!(again["resumed"], true, "{again}");
        assert_eq!(again["pid"], pid);
        let replayed = read_until(&mut ws, "before-21", T).await;
        assert!(replayed.contains(&format!("shell={pid}")), "{replayed}");
        type_text(&mut ws, true, "echo now=$$\r").await;
        read_until(&mut ws, &format!("now={pid}"), T).await;

        // A client that missed nothing (a blip) gets no duplicates.
        let have = again["offset"].as_u64().unwrap() + replayed.len() as u64;
        ws.close(None).await.unwrap();
        drop(ws);
        // Attached (it answered the setup), so this detach is the second.
        server.wait_state(id, Some("detached"), T);
        let (mut ws, third) = resume(&server, &first, &token, have).await;
        assert_eq!(third["resumed"], true);
        type_text(&mut ws, true, "echo third\r").await;
        let after = read_until(&mut ws, "third", T).await;
        assert!(!after.contains("before-21"), "replayed again: {after}");
        // Three sockets, one session: detached twice, reattached twice.
        assert_eq!(server.session_state(id).as_deref(), Some("attached"));
        assert_eq!(server.metric("webterm_detaches_total", &[]), 2.0);
        assert_eq!(server.metric("webterm_sessions_detached", &[]), 0.0);
        assert_eq!(server.metric("webterm_sessions_started_total", &[]), 1.0);
    });
}

#[test]
fn the_session_ends_when_the_window_passes() {
    let server = Server::start(&["--reconnect-window", "1s", "--", "/bin/sh"]);
    block_on(async {
        let (ws, first) = open(&server, "").await;
        let pid = first["pid"].as_i64().unwrap() as i32;
        let id = first["session"].as_str().unwrap();
        drop(ws);
        server.wait_state(id, Some("detached"), T);
        assert!(alive(pid), "detached, the shell waits");
        eventually("child gone after the window", T, || !alive(pid));
        // Detached, nothing else can end it: the window passed.
        server.wait_state(id, None, T);
        assert_eq!(
            server.metric("webterm_sessions_ended_total", &[("reason", "disconnect")]),
            1.0
        );
        assert_eq!(server.metric("webterm_sessions_ended_total", &[]), 1.0);
        // Too late: resuming now gets a new session, and says so.
        let (_ws, again) =
            resume(&server, &first, first["resume_token"].as_str().unwrap(), 0).await;
        assert_eq!(again["resumed"], false);
        assert_ne!(again["pid"], first["pid"]);
        assert_eq!(again["notices"][0]["kind"], "resume_failed");
    });
}

#[test]
fn only_the_owner_can_reattach_and_a_new_socket_takes_over() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let (mut owner, first) = open(&server, "").await;
        let token = first["resume_token"].as_str().unwrap().to_string();
        // A wrong token (or the view token) gets a new session, not this one.
        let (_other, wrong) = resume(&server, &first, &"0".repeat(64), 0).await;
        assert_eq!(wrong["resumed"], false);
        assert_ne!(wrong["pid"], first["pid"]);
        let (_other, view) =
            resume(&server, &first, first["view_token"].as_str().unwrap(), 0).await;
        assert_eq!(view["resumed"], false);
        // Terminado clients get no tokens at all.
        let mut t = connect(&server.url("/ws"), None, None).await.unwrap();
        let tsetup = common::setup(&mut t).await;
        assert!(tsetup.get("resume_token").is_none());

        // The right token while the old socket is still open: the new one wins.
        let (mut taker, again) = resume(&server, &first, &token, 0).await;
        assert_eq!(again["resumed"], true);
        let (close, _) = read_to_close(&mut owner, T).await;
        assert_eq!(code(&close), 4003);
        type_text(&mut taker, true, "echo taken\r").await;
        read_until(&mut taker, "taken", T).await;
    });
}

#[test]
fn detached_sessions_count_toward_max_sessions() {
    let server = Server::start(&["--max-sessions", "1", "--", "/bin/sh"]);
    block_on(async {
        let (ws, first) = open(&server, "").await;
        drop(ws);
        server.wait_state(first["session"].as_str().unwrap(), Some("detached"), T);
        let mut other = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        let (close, _) = read_to_close(&mut other, T).await;
        assert_eq!(code(&close), 1013);
        // Its owner can still come back.
        let (_ws, again) =
            resume(&server, &first, first["resume_token"].as_str().unwrap(), 0).await;
        assert_eq!(again["resumed"], true);
    });
}

#[test]
fn without_resumable_or_with_a_zero_window_a_drop_ends_the_session() {
    let server = Server::start(&["--reconnect-window", "0", "--", "/bin/sh"]);
    block_on(async {
        let (ws, first) = open(&server, "").await;
        let pid = first["pid"].as_i64().unwrap() as i32;
        drop(ws);
        eventually("ended at once", T, || !alive(pid));
    });
    server.wait_metric(
        "webterm_sessions_ended_total",
        &[("reason", "disconnect")],
        1.0,
        T,
    );
    assert_eq!(server.metric("webterm_detaches_total", &[]), 0.0);
}

#[test]
fn activity_policy_keeps_a_busy_session_that_input_policy_ends() {
    // Output every 0.1 s against a 2 s timeout: the busy session survives
    // unless its shell is starved for 2 s.
    let ticker = ["--idle-timeout", "2s", "--idle-check-interval", "100ms"];
    let cmd = [
        "--",
        "/bin/sh",
        "-c",
        "while :; do echo tick; sleep 0.1; done",
    ];
    let busy = Server::start(&[&ticker[..], &["--idle-policy", "activity"], &cmd[..]].concat());
    let strict = Server::start(&[&ticker[..], &["--idle-policy", "input"], &cmd[..]].concat());
    block_on(async {
        let mut a = connect(&busy.url("/ws"), Some(BINARY), None).await.unwrap();
        common::setup(&mut a).await;
        let mut b = connect(&strict.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        common::setup(&mut b).await;
        let (close, _) = read_to_close(&mut b, T).await;
        assert_eq!(code(&close), 4000, "input policy: output does not count");
        // Three timeouts later the busy one is still drawing. The wait is the
        // check: under the input policy it would have closed after one.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(6) {
            match event(&mut a, T).await {
                Event::Output(_) | Event::Json(_) => {}
                Event::Closed(f) => panic!("activity policy ended a busy session: {f:?}"),
            }
        }
    });
}

#[test]
fn the_warning_arrives_before_the_end_and_a_key_cancels_it() {
    // Generous margins: the key has three seconds to arrive on a busy machine.
    let server = Server::start(&[
        "--idle-timeout",
        "4s",
        "--idle-warning",
        "3s",
        "--idle-check-interval",
        "30s",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        // The session's idle clock starts after `before` and before `after`,
        // so bounds taken from them hold however slow the machine is.
        let before = Instant::now();
        let (mut ws, first) = open(&server, "").await;
        let after = Instant::now();
        assert_eq!(first["idle_warning_ms"], 3000);
        let warning = loop {
            match event(&mut ws, T).await {
                Event::Json(v) if v["type"] == "idle_warning" => break v,
                Event::Closed(f) => panic!("closed before any warning: {f:?}"),
                _ => {}
            }
        };
        // Due 1 s after the start; the 30 s check interval must not delay it.
        let (at_least, at_most) = (before.elapsed(), after.elapsed());
        assert!(
            at_least >= Duration::from_millis(1000) && at_most < Duration::from_millis(3000),
            "warned {at_least:?} after the connect began, {at_most:?} after the setup"
        );
        assert!(warning["seconds_left"].as_u64().unwrap() <= 3, "{warning}");
        type_text(&mut ws, true, "\r").await;
        loop {
            match event(&mut ws, T).await {
                Event::Json(v) if v["type"] == "idle_warning_cleared" => break,
                Event::Closed(f) => panic!("a key did not cancel the end: {f:?}"),
                _ => {}
            }
        }
        // Past the original deadline, alive; then silence ends it, warned first.
        let (close, events) = read_to_close(&mut ws, T).await;
        assert!(
            before.elapsed() >= Duration::from_millis(4900),
            "{:?}",
            before.elapsed()
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::Json(v) if v["type"] == "idle_warning")));
        assert_eq!(code(&close), 4000);
    });
}

#[test]
fn a_per_user_idle_timeout_is_clamped_by_the_operator() {
    let server = Server::start(&[
        "--idle-timeout",
        "1s",
        "--max-idle-timeout",
        "3s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let (_ws, s) = open(&server, "&idle_timeout=1h").await;
        assert_eq!(s["idle_timeout_ms"], 3000);
        let (_ws, s) = open(&server, "&idle_timeout=0").await;
        assert_eq!(s["idle_timeout_ms"], 3000);
        // Taken before the session exists, so the bound holds however slow
        // the setup is to arrive.
        let started = Instant::now();
        let (mut ws, s) = open(&server, "&idle_timeout=2s").await;
        assert_eq!(s["idle_timeout_ms"], 2000);
        let (close, _) = read_to_close(&mut ws, T).await;
        assert_eq!(code(&close), 4000);
        assert!(
            started.elapsed() >= Duration::from_millis(2000),
            "ended after {:?}",
            started.elapsed()
        );
        let (_ws, s) = open(&server, "").await;
        assert_eq!(s["idle_timeout_ms"], 1000);
    });
}

#[test]
fn a_viewer_sees_output_cannot_type_and_does_not_keep_the_session_alive() {
    let server = Server::start(&[
        "--idle-timeout",
        "2s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let (mut owner, first) = open(&server, "").await;
        type_text(&mut owner, true, "echo history-1\r").await;
        read_until(&mut owner, "history-1", T).await;
        let id = first["session"].as_str().unwrap();

        // The wrong token is refused.
        let mut nosy = connect(&server.url(&format!("/ws?view={id}")), Some(BINARY), None)
            .await
            .unwrap();
        send_text(&mut nosy, r#"{"type":"view","token":"nope"}"#).await;
        let (close, _) = read_to_close(&mut nosy, T).await;
        assert_eq!(code(&close), 4004);

        let mut viewer = connect(&server.url(&format!("/ws?view={id}")), Some(BINARY), None)
            .await
            .unwrap();
        send_text(
            &mut viewer,
            &serde_json::json!({"type": "view", "token": first["view_token"]}).to_string(),
        )
        .await;
        let vs = common::setup(&mut viewer).await;
        assert_eq!(vs["viewer"], true);
        assert!(vs.get("resume_token").is_none());
        read_until(&mut viewer, "history-1", T).await;
        type_text(&mut owner, true, "echo live-2\r").await;
        read_until(&mut viewer, "live-2", T).await;
        // The viewer types; nothing reaches the shell.
        type_text(&mut viewer, true, "echo viewer-typed-$((3*3))\r").await;
        type_text(&mut owner, true, "echo owner-3\r").await;
        let seen = read_until(&mut owner, "owner-3", T).await;
        assert!(!seen.contains("viewer-typed-9"), "{seen}");

        // The viewer keeps typing, the owner stops: the session idles out.
        let started = Instant::now();
        let closed = loop {
            type_text(&mut viewer, true, "x").await;
            if let Ok(Some(Message::Close(f))) =
                async_std::future::timeout(Duration::from_millis(200), common::next(&mut viewer, T))
                    .await
            {
                break f;
            }
            assert!(started.elapsed() < T, "a viewer kept the session alive");
        };
        assert_eq!(code(&closed), 1000);
        let (close, _) = read_to_close(&mut owner, T).await;
        assert_eq!(code(&close), 4000);
    });
}

/// A tmux socket directory of the test's own (`TMUX_TMPDIR`), so that no
/// tmux the test starts can reach the developer's tmux server. Dropping it,
/// even as a failed test unwinds, ends that tmux server and removes the
/// directory.
struct PrivateTmux {
    dir: std::path::PathBuf,
}

impl PrivateTmux {
    fn new() -> PrivateTmux {
        let dir = std::env::temp_dir().join(format!("webterm-tmux-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        PrivateTmux { dir }
    }

    fn env(&self) -> (&'static str, &str) {
        ("TMUX_TMPDIR", self.dir.to_str().unwrap())
    }

    /// Runs tmux against this directory's server only.
    fn tmux(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("tmux")
            .args(args)
            .env("TMUX_TMPDIR", &self.dir)
            .env_remove("TMUX")
            .output()
            .unwrap()
    }
}

impl Drop for PrivateTmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn tmux_mode_keeps_the_shell_across_a_webterm_restart() {
    let tmux = PrivateTmux::new();
    let name = "webterm-test";
    let mut first = Server::start_env(&["--tmux", name, "--", "/bin/sh"], &[tmux.env()]);
    block_on(async {
        let mut ws = connect(&first.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        common::setup(&mut ws).await;
        // Wait for the command's output, not the echo of what was typed.
        type_text(&mut ws, true, "KEPT=value-$((6*7)); echo set-$((1+1))\r").await;
        read_until(&mut ws, "set-2", T).await;
    });
    first.sigterm();
    assert!(first.wait_exit(T).unwrap().success());
    // The shell lives on in the private tmux server, and only there.
    let listed = tmux.tmux(&["list-sessions", "-F", "#{session_name}"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        name,
        "{listed:?}"
    );
    let second = Server::start_env(&["--tmux", name, "--", "/bin/sh"], &[tmux.env()]);
    block_on(async {
        let mut ws = connect(&second.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        common::setup(&mut ws).await;
        type_text(&mut ws, true, "echo got-$KEPT\r").await;
        read_until(&mut ws, "got-value-42", T).await;
    });
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_detached_flood_is_held_at_the_pty_not_read_for_nobody() {
    let server = Server::start(&["--", "yes", "detached flood"]);
    block_on(async {
        let (ws, first) = open(&server, "").await;
        let yes = first["pid"].as_i64().unwrap() as i32;
        let id = first["session"].as_str().unwrap();
        drop(ws);
        server.wait_state(id, Some("detached"), T);
        // Detached, webterm reads one window more and stops.
        wait_steady(
            "output read while detached",
            Duration::from_millis(300),
            T,
            || server.session(id).unwrap()["bytes_out"].as_u64().unwrap(),
        );
        // Both webterm and `yes` sit idle: one window read, then the PTY is
        // full. The wait is the check: either one spinning would use about
        // 200 ticks in these 2 s, ten times the margin.
        let (w0, y0) = (cpu_ticks(server.pid()), cpu_ticks(yes));
        async_std::task::sleep(Duration::from_secs(2)).await;
        let (w1, y1) = (cpu_ticks(server.pid()), cpu_ticks(yes));
        assert!(
            w1 - w0 <= 20,
            "webterm used {} ticks of CPU in 2s while detached",
            w1 - w0
        );
        assert!(
            y1 - y0 <= 20,
            "yes used {} ticks of CPU in 2s while detached",
            y1 - y0
        );
        // And the owner comes back to it.
        let (mut ws, again) =
            resume(&server, &first, first["resume_token"].as_str().unwrap(), 0).await;
        assert_eq!(again["resumed"], true);
        read_until(&mut ws, "detached flood", T).await;
    });
}

#[test]
fn viewers_are_pinged_like_owners() {
    let server = Server::start(&["--ping-interval", "300ms", "--", "/bin/sh"]);
    block_on(async {
        let (owner, first) = open(&server, "").await;
        // The owner answers its pings too, or the session would end.
        let _owner = keep_reading(owner);
        let id = first["session"].as_str().unwrap();
        let mut viewer = connect(&server.url(&format!("/ws?view={id}")), Some(BINARY), None)
            .await
            .unwrap();
        send_text(
            &mut viewer,
            &serde_json::json!({"type": "view", "token": first["view_token"]}).to_string(),
        )
        .await;
        common::setup(&mut viewer).await;
        let deadline = Instant::now() + T;
        loop {
            assert!(Instant::now() < deadline, "no ping reached the viewer");
            if let Some(Message::Ping(_)) = common::next(&mut viewer, T).await {
                break;
            }
        }
    });
}
