//! Operating webterm on a network: authentication, base path, read-only,
//! metrics, the sessions API and tool, probes. Real server, real sockets.

mod common;

use std::process::Command;

use async_std::task::block_on;
use common::*;

#[test]
fn basic_auth_guards_page_socket_and_api_and_the_cookie_works_alone() {
    let server = Server::start(&["--credential", "ann:correct horse", "--", "/bin/sh"]);
    let (status, head, _) = http_get_full(&server.addr, "/", &[]);
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"webterm\""),
        "{head}"
    );
    assert_eq!(
        http_get_full(
            &server.addr,
            "/",
            &[("Authorization", &basic("ann", "wrong"))]
        )
        .0,
        401
    );
    assert_eq!(http_get_full(&server.addr, "/api/sessions", &[]).0, 401);
    assert_eq!(http_get_full(&server.addr, "/config.json", &[]).0, 401);
    // Probes and metrics stay open for Kubernetes and Prometheus.
    assert_eq!(http_get_full(&server.addr, "/healthz", &[]).0, 200);
    assert_eq!(http_get_full(&server.addr, "/metrics", &[]).0, 200);

    let (status, head, body) = http_get_full(
        &server.addr,
        "/",
        &[("Authorization", &basic("ann", "correct horse"))],
    );
    assert_eq!(status, 200);
    assert!(body.contains("<html"));
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Set-Cookie: ")
                .or_else(|| l.strip_prefix("set-cookie: "))
        })
        .expect("a token cookie for the socket")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token_pair = cookie.split(';').next().unwrap().to_string();

    block_on(async {
        assert_eq!(connect_with(&server.url("/ws"), &[]).await.err(), Some(401));
        assert_eq!(
            connect_with(&server.url("/ws"), &[("Cookie", "webterm_auth=forged")])
                .await
                .err(),
            Some(401)
        );
        // Basic on the socket works...
        let _basic = server
            .open_with(&[("Authorization", &basic("ann", "correct horse"))])
            .await;
        // ...and so does the cookie alone, which is all Safari sends.
        let mut t = server.open_with(&[("Cookie", &token_pair)]).await;
        t.run("echo cookie-ok", "cookie-ok").await;
    });
}

#[test]
fn credentials_from_a_file() {
    let path = std::env::temp_dir().join(format!("webterm-creds-{}", std::process::id()));
    std::fs::write(&path, "# mounted from a Secret\nann:one\nbob:two\n").unwrap();
    let server = Server::start(&["--credential-file", path.to_str().unwrap(), "--", "/bin/sh"]);
    assert_eq!(
        http_get_full(
            &server.addr,
            "/",
            &[("Authorization", &basic("bob", "two"))]
        )
        .0,
        200
    );
    assert_eq!(
        http_get_full(
            &server.addr,
            "/",
            &[("Authorization", &basic("bob", "one"))]
        )
        .0,
        401
    );
    std::fs::remove_file(path).unwrap();
}

#[test]
fn trusted_proxy_header() {
    let server = Server::start(&[
        "--auth-header",
        "Remote-User",
        "--trusted-proxy",
        "127.0.0.1",
        "--",
        "/bin/sh",
    ]);
    assert_eq!(http_get_full(&server.addr, "/", &[]).0, 401);
    assert_eq!(
        http_get_full(&server.addr, "/", &[("Remote-User", "bob")]).0,
        200
    );
    block_on(async {
        assert_eq!(connect_with(&server.url("/ws"), &[]).await.err(), Some(401));
        let _t = server.open_with(&[("Remote-User", "bob")]).await;
    });
    // Both refusals are counted: requests bypassing the proxy show on a graph.
    assert_eq!(
        server.metric(
            "webterm_requests_refused_total",
            &[("reason", "auth_header")]
        ),
        2.0
    );
}

#[test]
fn everything_works_under_a_base_path() {
    let server = Server::start(&["--base-path", "/term/", "--", "/bin/sh"]);
    let (status, head, _) = http_get_full(&server.addr, "/term", &[]);
    assert_eq!(status, 308);
    assert!(
        head.to_ascii_lowercase().contains("location: /term/"),
        "{head}"
    );
    assert!(http_get_full(&server.addr, "/term/", &[])
        .2
        .contains("<html"));
    assert_eq!(
        http_get_full(&server.addr, "/term/vendor/xterm.mjs", &[]).0,
        200
    );
    assert_eq!(http_get_full(&server.addr, "/term/config.json", &[]).0, 200);
    assert_eq!(http_get_full(&server.addr, "/term/healthz", &[]).0, 200);
    assert_eq!(http_get_full(&server.addr, "/healthz", &[]).0, 200);
    assert_eq!(http_get_full(&server.addr, "/", &[]).0, 404);
    assert_eq!(http_get_full(&server.addr, "/vendor/xterm.mjs", &[]).0, 404);
    block_on(async {
        assert!(connect(&server.url("/ws"), None, None).await.is_err());
        let mut t = server.open_at("/term/ws", Proto::Terminado).await;
        t.run("echo based", "based").await;
    });
}

#[test]
fn readonly_drops_input_but_not_resizes() {
    let script = "trap 'echo size:$(stty size)' WINCH; echo ready; while :; do sleep 0.05; done";
    let server = Server::start(&["--readonly", "--", "/bin/bash", "-c", script]);
    block_on(async {
        let mut t = server.open(Proto::Binary).await;
        t.read_until("ready").await;
        // Ctrl-C would end the loop and the session, were input delivered.
        t.type_text("\x03echo typed-$((40+2))\r").await;
        t.send_text(r#"{"type":"resize","rows":21,"cols":61}"#)
            .await;
        let seen = t.read_until("size:21 61").await;
        assert!(!seen.contains("typed-42") && !seen.contains("^C"), "{seen}");
    });
}

/// Parses `/metrics` with the Prometheus project's own OpenMetrics parser
/// (its Python client, installed by `make test`) and returns the samples.
fn parse_metrics(text: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/parse_metrics.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    parse_metrics(text)
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or(0.0)
}

#[test]
fn metrics_parse_and_follow_real_sessions() {
    // Long enough for each session's steps below on a loaded machine.
    let server = Server::start(&[
        "--idle-timeout",
        "5s",
        "--idle-check-interval",
        "100ms",
        "--",
        "/bin/sh",
    ]);
    let scrape = || http_get_full(&server.addr, "/metrics", &[]).2;
    // A refused socket, so that the refusals family has a sample.
    block_on(async {
        let refused = connect(&server.url("/ws"), None, Some("http://evil.example")).await;
        assert!(refused.is_err());
    });

    // Every family is there, typed as it should be.
    let text = scrape();
    let types: std::collections::HashMap<String, String> = parse_metrics(&text)
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, kind) in [
        ("webterm_sessions_active", "gauge"),
        ("webterm_sessions_detached", "gauge"),
        ("webterm_detaches_total", "counter"),
        ("webterm_requests_refused_total", "counter"),
        ("webterm_sessions_started_total", "counter"),
        ("webterm_idle_timeouts_total", "counter"),
        ("webterm_session_duration_seconds_count", "histogram"),
        ("webterm_input_bytes_total", "counter"),
        ("webterm_output_bytes_total", "counter"),
        ("webterm_process_resident_memory_bytes", "gauge"),
        ("webterm_process_open_fds", "gauge"),
    ] {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some(kind),
            "{name} in {text}"
        );
    }
    assert_eq!(metric(&text, "webterm_sessions_active", &[]), 0.0);
    assert_eq!(
        metric(
            &text,
            "webterm_requests_refused_total",
            &[("reason", "origin")]
        ),
        1.0
    );
    assert!(metric(&text, "webterm_process_resident_memory_bytes", &[]) > 1e6);
    assert!(metric(&text, "webterm_process_open_fds", &[]) >= 3.0);

    block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        t.run("echo 12345", "12345").await;
        let text = scrape();
        assert_eq!(metric(&text, "webterm_sessions_active", &[]), 1.0);
        assert_eq!(metric(&text, "webterm_sessions_started_total", &[]), 1.0);
        assert_eq!(metric(&text, "webterm_input_bytes_total", &[]), 11.0);
        assert!(metric(&text, "webterm_output_bytes_total", &[]) >= 10.0);
        // End it by idling.
        t.read_to_close().await;
        eventually("idle end counted", T, || {
            metric(
                &scrape(),
                "webterm_sessions_ended_total",
                &[("reason", "idle")],
            ) == 1.0
        });
        let text = scrape();
        assert_eq!(metric(&text, "webterm_idle_timeouts_total", &[]), 1.0);
        assert_eq!(metric(&text, "webterm_sessions_active", &[]), 0.0);
        assert_eq!(
            metric(&text, "webterm_session_duration_seconds_count", &[]),
            1.0
        );

        // End one by exit.
        let mut t = server.open(Proto::Terminado).await;
        t.type_text("exit 4\r").await;
        t.read_to_close().await;
        eventually("exit end counted", T, || {
            metric(
                &scrape(),
                "webterm_sessions_ended_total",
                &[("reason", "exit")],
            ) == 1.0
        });
    });
}

#[test]
fn the_sessions_tool_lists_and_kills_live_sessions() {
    let server = Server::start(&["--credential", "op:pw", "--", "/bin/sh"]);
    block_on(async {
        let auth = basic("op", "pw");
        let a = server.open_with(&[("Authorization", &auth)]).await;
        let mut b = server.open_with(&[("Authorization", &auth)]).await;
        let (pid_a, pid_b, id_b) = (a.pid(), b.pid(), b.id().to_string());
        b.run("echo abc", "abc").await;

        let anonymous = server.webterm_sessions(&[]);
        assert!(
            !anonymous.ok() && anonymous.stderr.contains("401"),
            "{anonymous}"
        );
        let list = server.webterm_sessions(&["--credential", "op:pw"]);
        assert!(list.ok(), "{list}");
        let table = &list.stdout;
        assert!(
            table.contains(&pid_a.to_string()) && table.contains(&pid_b.to_string()),
            "{table}"
        );
        assert!(table.contains("2 of 64 sessions"), "{table}");
        assert!(
            table.contains("/bin/sh") && table.contains("attached"),
            "{table}"
        );

        let json = server.webterm_sessions(&["--credential", "op:pw", "--json"]);
        assert!(json.ok(), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let row = v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id_b.as_str())
            .unwrap()
            .clone();
        assert_eq!(row["bytes_in"], 9);
        assert_eq!(row["pid"], pid_b);
        assert!(row["started"].as_str().unwrap().ends_with('Z'));

        // A prefix both ids share (the replica's tag) is refused as ambiguous.
        let kill =
            |prefix: &str| server.webterm_sessions(&["--credential", "op:pw", "--kill", prefix]);
        let ambiguous = kill(&id_b[..8]);
        assert!(
            !ambiguous.ok() && ambiguous.stderr.contains("matches 2 sessions"),
            "{ambiguous}"
        );
        // Kill b by the prefix the table shows: it ends through the normal teardown.
        let killed = kill(&id_b[..16]);
        assert!(killed.ok() && killed.stdout.contains(&id_b), "{killed}");
        assert_eq!(b.read_to_close().await.code(), 4002);
        eventually("killed child gone", T, || !alive(pid_b));
        assert!(alive(pid_a));
        let unknown = kill("ffffffffff");
        assert!(
            !unknown.ok() && unknown.stderr.contains("no session"),
            "{unknown}"
        );
        drop(a);
    });
    server.wait_metric(
        "webterm_sessions_ended_total",
        &[("reason", "killed")],
        1.0,
        T,
    );
}

#[test]
fn readyz_turns_unavailable_while_draining() {
    let subreaper = !skip_without_subreaper(
        "readyz_turns_unavailable_while_draining (its reaping check only)",
        "the shell's last `sleep`, orphaned by the kill, goes to PID 1",
    );
    // A child that ignores the hangup keeps the drain going for the grace period.
    let mut server = Server::start(&[
        "--kill-grace",
        "3s",
        "--",
        "/bin/sh",
        "-c",
        "trap '' HUP; echo up; while :; do sleep 0.1; done",
    ]);
    assert_eq!(http_get_full(&server.addr, "/readyz", &[]).0, 200);
    let shell = block_on(async {
        let mut t = server.open(Proto::Terminado).await;
        t.read_until("up").await;
        server.sigterm();
        eventually("not ready", T, || {
            http_get_full(&server.addr, "/readyz", &[]).0 == 503
        });
        assert_eq!(http_get_full(&server.addr, "/healthz", &[]).0, 200);
        assert_eq!(http_get_full(&server.addr, "/", &[]).0, 503);
        assert_eq!(t.read_to_close().await.code(), 1001);
        t.pid()
    });
    // The shell ignores the hangup, so the server is still draining (and
    // the shell still alive) after its socket closed; the drain ends only
    // when the kill grace has passed and the shell was killed and reaped.
    let status = server.wait_exit(T).expect("exits after the drain");
    assert!(status.success());
    // Without a subreaper the killed shell's child is PID 1's to reap.
    let left: Vec<Proc> = in_session(shell)
        .into_iter()
        .filter(|p| subreaper || p.state != 'Z')
        .collect();
    assert!(
        left.is_empty(),
        "the session's processes outlived the drain: {left:?}"
    );
}

/// `webterm health`, told where the server listens as the image tells it.
fn health(listen: &str) -> Run {
    webterm_env(&["health"], &[("WEBTERM_LISTEN", listen)])
}

/// The image's HEALTHCHECK: `webterm health` finds the server from the same
/// WEBTERM_LISTEN (an unspecified address means loopback), even when the
/// server requires credentials, and fails loudly when nothing answers.
#[test]
fn the_health_probe_follows_webterm_listen() {
    let server = Server::start(&["--credential", "op:pw", "--", "/bin/sh"]);
    let port = server.addr.rsplit(':').next().unwrap();

    let run = health(&server.addr);
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains(": ok"), "{run}");
    let run = health(&format!("0.0.0.0:{port}"));
    assert_eq!(run.code(), 0, "{run}");
    assert!(
        run.stdout.starts_with(&format!("http://127.0.0.1:{port}")),
        "{run}"
    );

    // A port with no server: exit 1 and say why.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let run = health(&dead_addr);
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("cannot reach"), "{run}");
    let run = health("not-an-address");
    assert_eq!(run.code(), 1, "{run}");
    assert!(
        run.stderr.contains("WEBTERM_LISTEN: 'not-an-address'"),
        "{run}"
    );
}

/// `webterm sessions … | head -1` and friends: a closed stdout costs the
/// text, never a panic.
#[test]
fn subcommands_survive_a_closed_stdout() {
    for args in [
        &["sessions", "--help"][..],
        &["health", "--help"],
        &["--help"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_webterm"))
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
