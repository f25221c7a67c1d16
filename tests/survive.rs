//! Sessions that survive: reattach, reconnect window, idle policies and
//! warnings, per-user timeouts, read-only viewers, tmux. Real server,
//! sockets, PTYs and processes.

mod common;

use std::time::{Duration, Instant};

use async_std::task::block_on;
use async_tungstenite::tungstenite::Message;
use common::*;

#[test]
fn a_dropped_socket_reattaches_to_the_same_shell_with_its_output() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut t = server.open_resumable("").await;
        let pid = t.pid();
        // The pid itself, not "shell=": the echo of the typed line has that.
        let shell = format!("shell={pid}");
        t.run("echo before-$((20+1)); echo shell=$$", &shell).await;
        let first = t.hang_up(); // abrupt: no close frame
        let (id, token) = (first.id(), first.resume_token());

        // A fresh page (it has nothing) gets the history and the same shell.
        server.wait_state(id, Some("detached"), T);
        let mut again = server.resume(id, token, 0).await;
        assert_eq!(again.setup["resumed"], true, "{}", again.setup);
        assert_eq!(again.setup["pid"], pid);
        let replayed = again.read_until("before-21").await;
        assert!(replayed.contains(&shell), "{replayed}");
        again.run("echo now=$$", &format!("now={pid}")).await;

        // A client that missed nothing (a blip) gets no duplicates.
        let have = again.setup["offset"].as_u64().unwrap() + replayed.len() as u64;
        again.close().await;
        // Attached (it answered the setup), so this detach is the second.
        server.wait_state(id, Some("detached"), T);
        let mut third = server.resume(id, token, have).await;
        assert_eq!(third.setup["resumed"], true);
        let after = third.run("echo third", "third").await;
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
        let first = server.open_resumable("").await;
        // The window starts after the hang-up, so the shell must outlive
        // this instant by a second at least; a lower bound holds however
        // slow the machine (asking "still alive?" at some later moment
        // would race the window instead).
        let hung_up = Instant::now();
        let first = first.hang_up();
        let (pid, id) = (first.pid(), first.id());
        server.wait_state(id, Some("detached"), T);
        eventually("child gone after the window", T, || !alive(pid));
        assert!(
            hung_up.elapsed() >= Duration::from_secs(1),
            "the shell ended {:?} after the hang-up, inside the window",
            hung_up.elapsed()
        );
        // Detached, nothing else can end it: the window passed.
        server.wait_state(id, None, T);
        assert_eq!(
            server.metric("webterm_sessions_ended_total", &[("reason", "disconnect")]),
            1.0
        );
        assert_eq!(server.metric("webterm_sessions_ended_total", &[]), 1.0);
        // Too late: resuming now gets a new session, and says so.
        let again = server.resume(id, first.resume_token(), 0).await;
        assert_eq!(again.setup["resumed"], false);
        assert_ne!(again.setup["pid"], first["pid"]);
        assert_eq!(again.notices[0]["kind"], "resume_failed");
    });
}

#[test]
fn only_the_owner_can_reattach_and_a_new_socket_takes_over() {
    let server = Server::start(&["--", "/bin/sh"]);
    block_on(async {
        let mut owner = server.open_resumable("").await;
        let first = owner.setup.clone();
        // A wrong token (or the view token) gets a new session, not this one.
        let wrong = server.resume(first.id(), &"0".repeat(64), 0).await;
        assert_eq!(wrong.setup["resumed"], false);
        assert_ne!(wrong.setup["pid"], first["pid"]);
        let view = server.resume(first.id(), first.view_token(), 0).await;
        assert_eq!(view.setup["resumed"], false);
        // Terminado clients get no tokens at all.
        let t = server.open(Proto::Terminado).await;
        assert!(t.setup.0.get("resume_token").is_none());

        // The right token while the old socket is still open: the new one wins.
        let mut taker = server.resume(first.id(), first.resume_token(), 0).await;
        assert_eq!(taker.setup["resumed"], true);
        assert_eq!(owner.read_to_close().await.code(), 4003);
        taker.run("echo taken", "taken").await;
    });
}

#[test]
fn detached_sessions_count_toward_max_sessions() {
    let server = Server::start(&["--max-sessions", "1", "--", "/bin/sh"]);
    block_on(async {
        let first = server.open_resumable("").await.hang_up();
        server.wait_state(first.id(), Some("detached"), T);
        let mut other = server.connect("/ws", Proto::Binary).await;
        assert_eq!(Closed::read(&mut other, T).await.code(), 1013);
        // Its owner can still come back.
        let again = server.resume(first.id(), first.resume_token(), 0).await;
        assert_eq!(again.setup["resumed"], true);
    });
}

#[test]
fn without_resumable_or_with_a_zero_window_a_drop_ends_the_session() {
    let server = Server::start(&["--reconnect-window", "0", "--", "/bin/sh"]);
    block_on(async {
        let pid = server.open_resumable("").await.hang_up().pid();
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
    // Output every 0.1 s against a 4 s timeout: the busy session survives
    // unless its shell (or webterm) is starved for 4 s.
    let ticker = ["--idle-timeout", "4s", "--idle-check-interval", "100ms"];
    let cmd = [
        "--",
        "/bin/sh",
        "-c",
        "while :; do echo tick; sleep 0.1; done",
    ];
    let busy = Server::start(&[&ticker[..], &["--idle-policy", "activity"], &cmd[..]].concat());
    let strict = Server::start(&[&ticker[..], &["--idle-policy", "input"], &cmd[..]].concat());
    block_on(async {
        let mut a = busy.open(Proto::Binary).await;
        let mut b = strict.open(Proto::Binary).await;
        assert_eq!(
            b.read_to_close().await.code(),
            4000,
            "input policy: output does not count"
        );
        // Two and a half timeouts later the busy one is still drawing. The
        // wait is the check: under the input policy it would have closed
        // after one.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            match a.event().await {
                Event::Output(_) | Event::Json(_) => {}
                Event::Closed(f) => panic!("activity policy ended a busy session: {f:?}"),
            }
        }
    });
}

#[test]
fn the_warning_arrives_before_the_end_and_a_key_cancels_it() {
    // Generous margins: the key has six seconds to arrive on a busy machine.
    let server = Server::start(&[
        "--idle-timeout",
        "8s",
        "--idle-warning",
        "6s",
        "--idle-check-interval",
        "30s",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        // The session's idle clock starts after `before` and before `after`,
        // so bounds taken from them hold however slow the machine is.
        let before = Instant::now();
        let mut t = server.open_resumable("").await;
        let after = Instant::now();
        assert_eq!(t.setup["idle_warning_ms"], 6000);
        let warning = loop {
            match t.event().await {
                Event::Json(v) if v["type"] == "idle_warning" => break v,
                Event::Closed(f) => panic!("closed before any warning: {f:?}"),
                _ => {}
            }
        };
        // Due 2 s after the start; the 30 s check interval must not delay it.
        let (at_least, at_most) = (before.elapsed(), after.elapsed());
        assert!(
            at_least >= Duration::from_millis(2000) && at_most < Duration::from_millis(8000),
            "warned {at_least:?} after the connect began, {at_most:?} after the setup"
        );
        assert!(warning["seconds_left"].as_u64().unwrap() <= 6, "{warning}");
        t.type_text("\r").await;
        loop {
            match t.event().await {
                Event::Json(v) if v["type"] == "idle_warning_cleared" => break,
                Event::Closed(f) => panic!("a key did not cancel the end: {f:?}"),
                _ => {}
            }
        }
        // Past the original deadline, alive; then silence ends it, warned
        // first: the key came 2 s in at the earliest, so the end 8 s later.
        let end = t.read_to_close().await;
        assert!(
            before.elapsed() >= Duration::from_millis(9900),
            "{:?}",
            before.elapsed()
        );
        assert!(end.messages().any(|v| v["type"] == "idle_warning"));
        assert_eq!(end.code(), 4000);
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
        let hour = server.open_resumable("&idle_timeout=1h").await;
        assert_eq!(hour.setup["idle_timeout_ms"], 3000);
        let never = server.open_resumable("&idle_timeout=0").await;
        assert_eq!(never.setup["idle_timeout_ms"], 3000);
        // Taken before the session exists, so the bound holds however slow
        // the setup is to arrive.
        let started = Instant::now();
        let mut t = server.open_resumable("&idle_timeout=2s").await;
        assert_eq!(t.setup["idle_timeout_ms"], 2000);
        assert_eq!(t.read_to_close().await.code(), 4000);
        assert!(
            started.elapsed() >= Duration::from_millis(2000),
            "ended after {:?}",
            started.elapsed()
        );
        let default = server.open_resumable("").await;
        assert_eq!(default.setup["idle_timeout_ms"], 1000);
    });
}

#[test]
fn a_viewer_sees_output_cannot_type_and_does_not_keep_the_session_alive() {
    // 10 s of idleness: the owner's last key and the viewer's attach may be
    // seconds apart on a loaded machine.
    let server = Server::start(&[
        "--idle-timeout",
        "10s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
    ]);
    block_on(async {
        let mut owner = server.open_resumable("").await;
        owner.run("echo history-1", "history-1").await;
        let first = owner.setup.clone();

        // The wrong token is refused.
        let mut nosy = server.view_socket(first.id()).await;
        send_text(&mut nosy, r#"{"type":"view","token":"nope"}"#).await;
        assert_eq!(Closed::read(&mut nosy, T).await.code(), 4004);

        let mut viewer = server.view(first.id(), first.view_token()).await;
        assert_eq!(viewer.setup["viewer"], true);
        assert!(viewer.setup.0.get("resume_token").is_none());
        viewer.read_until("history-1").await;
        owner.type_text("echo live-2\r").await;
        viewer.read_until("live-2").await;
        // The viewer types; nothing reaches the shell.
        viewer.type_text("echo viewer-typed-$((3*3))\r").await;
        let seen = owner.run("echo owner-3", "owner-3").await;
        assert!(!seen.contains("viewer-typed-9"), "{seen}");

        // The viewer keeps typing, the owner stops: the session idles out.
        let started = Instant::now();
        let closed = loop {
            viewer.type_text("x").await;
            let quiet = Duration::from_millis(200);
            if let Ok(Some(Message::Close(f))) =
                async_std::future::timeout(quiet, next(&mut viewer.ws, T)).await
            {
                break f;
            }
            assert!(started.elapsed() < T, "a viewer kept the session alive");
        };
        assert_eq!(close_code(&closed), 1000);
        assert_eq!(owner.read_to_close().await.code(), 4000);
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
        let mut t = first.open(Proto::Binary).await;
        // Wait for the command's output, not the echo of what was typed.
        t.run("KEPT=value-$((6*7)); echo set-$((1+1))", "set-2")
            .await;
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
        let mut t = second.open(Proto::Binary).await;
        t.run("echo got-$KEPT", "got-value-42").await;
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
        let first = server.open_resumable("").await.hang_up();
        let (yes, id) = (first.pid(), first.id());
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
        let mut again = server.resume(id, first.resume_token(), 0).await;
        assert_eq!(again.setup["resumed"], true);
        again.read_until("detached flood").await;
    });
}

#[test]
fn viewers_are_pinged_like_owners() {
    // Both must answer within two intervals, so not too short a one.
    let server = Server::start(&["--ping-interval", "2s", "--", "/bin/sh"]);
    block_on(async {
        let owner = server.open_resumable("").await;
        let first = owner.setup.clone();
        // The owner answers its pings too, or the session would end.
        let _owner = owner.keep_reading();
        let mut viewer = server.view(first.id(), first.view_token()).await;
        let deadline = Instant::now() + T;
        loop {
            assert!(Instant::now() < deadline, "no ping reached the viewer");
            if let Some(Message::Ping(_)) = next(&mut viewer.ws, T).await {
                break;
            }
        }
    });
}
