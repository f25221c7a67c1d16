//! Every process a session started ends with it: also the ones that left
//! the terminal's session (`setsid`, `setsid -f`, a double-forked daemon)
//! and the ones that ignore the hangup (`nohup`, `trap '' HUP`). Checked
//! with a cgroup per session (where this machine lets webterm make one)
//! and with the process-tree fallback (`--no-cgroups`), which every host
//! gets.

mod common;

use std::path::Path;
use std::time::Duration;

use async_std::task::block_on;
use common::*;

const T: Duration = Duration::from_secs(15);

/// Starts processes that try every way out of the session; each writes its
/// own pid to a file in `dir`.
const ESCAPE: &str = r#"d=$1
setsid sh -c 'echo $$ > "$1/setsid"; exec sleep 1001' sh "$d" &
setsid -f sh -c 'echo $$ > "$1/setsid-f"; exec sleep 1002' sh "$d"
( setsid sh -c 'echo $$ > "$1/daemon"; exec sleep 1003' sh "$d" & )
nohup sh -c 'echo $$ > "$1/nohup"; exec sleep 1004' sh "$d" >/dev/null 2>&1 &
sh -c 'trap "" HUP; echo $$ > "$1/trap"; exec sleep 1005' sh "$d" &
"#;
const WAYS: [&str; 5] = ["setsid", "setsid-f", "daemon", "nohup", "trap"];

/// The pids the escape script wrote, once all five are there.
fn escapees(dir: &Path) -> Vec<i32> {
    let read = || -> Option<Vec<i32>> {
        WAYS.iter()
            .map(|w| {
                std::fs::read_to_string(dir.join(w))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
            .collect()
    };
    eventually("every escapee wrote its pid", T, || read().is_some());
    read().unwrap()
}

/// Runs the escape script in a session, ends the session, and checks that
/// every escapee is gone (killed and reaped: not even a zombie is left).
fn escapees_end_with_the_session(extra: &[&str], name: &str) {
    let dir = TempDir::new(name);
    std::fs::write(dir.0.join("escape.sh"), ESCAPE).unwrap();
    let mut args = vec!["--kill-grace", "500ms"];
    args.extend_from_slice(extra);
    args.extend(["--", "/bin/sh"]);
    let server = Server::start(&args);
    let pids = block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        let cmd = format!("sh {0}/escape.sh {0}; echo started", dir.0.display());
        t.run(&cmd, "started").await;
        let pids = escapees(&dir.0);
        for &p in &pids {
            assert!(
                alive(p),
                "escapee {p} is not running\n{}",
                server.logs().join("\n")
            );
        }
        drop(t);
        pids
    });
    eventually("the session ended", T, || server.sessions().is_empty());
    // Reaped too (not even a zombie) where webterm can adopt orphans;
    // without a subreaper they go to PID 1, whose reaping is not ours.
    let reaped = !skip_without_subreaper(
        name,
        "checks only that escapees stop, not that webterm reaps them",
    );
    for (way, pid) in WAYS.iter().zip(&pids) {
        eventually(&format!("the {way} escapee ({pid}) ended"), T, || {
            if reaped {
                !alive(*pid)
            } else {
                !running(*pid)
            }
        });
    }
}

#[test]
fn escapees_end_with_the_session_in_its_cgroup() {
    escapees_end_with_the_session(&[], "cgroup");
}

#[test]
fn escapees_end_with_the_session_without_cgroups() {
    // Without a cgroup, escapees are found as orphans webterm adopted.
    if skip_without_subreaper(
        "escapees_end_with_the_session_without_cgroups",
        "escapees are found as the orphans webterm adopts",
    ) {
        return;
    }
    escapees_end_with_the_session(&["--no-cgroups"], "tree");
}

/// Whether `pid` is still running (a zombie is not: it has exited, and
/// after webterm is gone its reaping is init's business).
fn running(pid: i32) -> bool {
    procs().iter().any(|p| p.pid == pid && p.state != 'Z')
}

/// SIGKILLs webterm itself with a session running the escape script: the
/// shell dies with it (its parent-death signal), and the keeper ends the
/// rest.
fn everything_ends_when_webterm_is_killed(extra: &[&str], name: &str) {
    let dir = TempDir::new(name);
    std::fs::write(dir.0.join("escape.sh"), ESCAPE).unwrap();
    let mut args = extra.to_vec();
    args.extend(["--", "/bin/sh"]);
    let mut server = Server::start(&args);
    let (shell, pids) = block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        let cmd = format!("sh {0}/escape.sh {0}; echo started", dir.0.display());
        t.run(&cmd, "started").await;
        (t.pid(), escapees(&dir.0))
    });
    unsafe_kill(server.pid(), libc_sig::KILL);
    server.wait_exit(T).expect("webterm exits on SIGKILL");
    eventually("the shell died with webterm", T, || !running(shell));
    for (way, pid) in WAYS.iter().zip(&pids) {
        eventually(&format!("the {way} escapee ({pid}) ended"), T, || {
            !running(*pid)
        });
    }
}

#[test]
fn everything_ends_when_webterm_is_killed_with_cgroups() {
    everything_ends_when_webterm_is_killed(&[], "killed-cgroup");
}

#[test]
fn everything_ends_when_webterm_is_killed_without_cgroups() {
    everything_ends_when_webterm_is_killed(&["--no-cgroups"], "killed-tree");
}

/// `--close-signal TERM`: what a session's processes get first is SIGTERM,
/// which this child acts on; it ignores SIGHUP, so under the default it
/// would have written nothing and been killed after the grace period.
#[test]
fn the_close_signal_is_sent_first() {
    let dir = TempDir::new("close-signal");
    let marker = dir.0.join("got");
    let script = format!(
        "trap '' HUP; trap 'echo term > {}; exit 0' TERM; echo ready; while :; do sleep 0.1; done",
        marker.display()
    );
    let server = Server::start(&[
        "--close-signal",
        "TERM",
        "--kill-grace",
        "10s",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    block_on(async {
        server
            .open(Proto::Terminado)
            .await
            .read_until("ready")
            .await;
    });
    eventually("the session ended", T, || server.sessions().is_empty());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "term\n");
}
