//! Any replica serves any session: three real webterm replicas on
//! loopback, peers of each other, and sockets that reach a session through
//! a replica that does not hold it. Real server, sockets, PTYs, processes.

mod common;

use std::time::{Duration, Instant};

use async_std::task::block_on;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::Message;
use common::*;

/// Three replicas named a, b and c, each told of all three (itself
/// included, as a headless Service would list it).
struct Cluster {
    nodes: Vec<Server>,
    _dir: TempDir,
}

fn code(f: &Option<async_tungstenite::tungstenite::protocol::CloseFrame>) -> u16 {
    f.as_ref().map(|f| u16::from(f.code)).unwrap_or(0)
}

/// Ports the kernel hands out, released for the replicas to take: the
/// replicas must know each other's addresses before any of them starts.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Cluster {
    fn start(extra: &[&str]) -> Cluster {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = TempDir::new(&format!(
            "cluster-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let secret = dir.file("secret", "a-cluster-secret-of-at-least-32-bytes-0123456789");
        let ports = free_ports(3);
        let peers = ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ["a", "b", "c"]
            .iter()
            .zip(&ports)
            .map(|(name, port)| {
                let listen = format!("127.0.0.1:{port}");
                let mut args = vec![
                    "--listen",
                    &listen,
                    "--node-id",
                    name,
                    "--peers",
                    &peers,
                    "--secret-file",
                    &secret,
                ];
                args.extend_from_slice(extra);
                if !extra.contains(&"--") {
                    args.extend_from_slice(&["--", "/bin/sh"]);
                }
                Server::start(&args)
            })
            .collect::<Vec<_>>();
        // Each knows the other two before the test begins.
        for n in &nodes {
            n.wait_metric("webterm_peers", &[], 2.0, T);
        }
        Cluster { nodes, _dir: dir }
    }

    fn tag(&self, i: usize) -> String {
        self.tag_with(i, &[])
    }

    /// The tag replica `i` gives its pages, asked with `headers`.
    fn tag_with(&self, i: usize, headers: &[(&str, &str)]) -> String {
        let (status, cfg) = http_get(&self.nodes[i].addr, "/config.json", headers);
        assert_eq!(status, 200, "{cfg}");
        let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
        v["node"]
            .as_str()
            .expect("config.json names the node")
            .to_string()
    }
}

async fn open(server: &Server, query: &str) -> (Ws, serde_json::Value) {
    let mut ws = connect(
        &server.url(&format!("/ws?resumable=1{query}")),
        Some(BINARY),
        None,
    )
    .await
    .unwrap();
    let s = setup(&mut ws).await;
    (ws, s)
}

/// Sends the first message of a claim (resume or view) and reads to setup.
async fn claim(server: &Server, query: &str, first: serde_json::Value) -> Ws {
    let mut ws = connect(&server.url(&format!("/ws?{query}")), Some(BINARY), None)
        .await
        .unwrap();
    send_text(&mut ws, &first.to_string()).await;
    loop {
        match event(&mut ws, T).await {
            Event::Json(v) if v["type"] == "setup" => return ws,
            Event::Json(_) => {}
            other => panic!("expected setup, got {other:?}"),
        }
    }
}

/// The shell's pid, as the shell says it. The line read is the output's,
/// never the terminal's echo of the typed command (which lacks "42ok").
async fn shell_pid(ws: &mut Ws) -> String {
    type_text(ws, true, "echo pid=$$ $((40+2))ok\r").await;
    let seen = read_until(ws, "42ok\r\n", T).await;
    let line = seen
        .lines()
        .rfind(|l| l.ends_with("42ok"))
        .expect("the output line");
    let at = line.rfind("pid=").expect("pid in output");
    line[at + 4..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_session_started_through_one_replica_lives_on_the_page_s_replica_and_reattaches_through_any() {
    let c = Cluster::start(&[]);
    block_on(async {
        // The page came from a; its socket landed on b.
        let tag_a = c.tag(0);
        let (mut ws, first) = open(&c.nodes[1], &format!("&node={tag_a}")).await;
        let id = first["session"].as_str().unwrap().to_string();
        assert!(id.starts_with(&tag_a), "{id} is not a's");
        assert!(c.nodes[0].session(&id).is_some(), "a does not hold {id}");
        assert!(c.nodes[1].sessions().is_empty(), "b started a session");
        assert_eq!(c.nodes[1].metric("webterm_forwarded_sockets", &[]), 1.0);
        let pid = shell_pid(&mut ws).await;
        type_text(&mut ws, true, "echo mark-$((6*7))\r").await;
        read_until(&mut ws, "mark-42", T).await;
        drop(ws); // a blip: no close frame
        c.nodes[0].wait_state(&id, Some("detached"), T);
        c.nodes[1].wait_metric("webterm_forwarded_sockets", &[], 0.0, T);

        // A reload whose socket lands on c, then one on a itself: the same
        // shell each time, with its history.
        let token = first["resume_token"].as_str().unwrap();
        for via in [2, 0, 1] {
            let mut ws = claim(
                &c.nodes[via],
                &format!("resumable=1&resume={id}"),
                serde_json::json!({"type": "resume", "token": token, "have": 0}),
            )
            .await;
            read_until(&mut ws, "mark-42", T).await;
            assert_eq!(shell_pid(&mut ws).await, pid, "via replica {via}");
            ws.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "reload".into(),
            }))
            .await
            .unwrap();
            let (close, _) = read_to_close(&mut ws, T).await;
            assert_eq!(code(&close), 1000, "via replica {via}");
            c.nodes[0].wait_state(&id, Some("detached"), T);
        }
        // Only a ever ran a session.
        for (i, n) in c.nodes.iter().enumerate() {
            let want = if i == 0 { 1.0 } else { 0.0 };
            assert_eq!(
                n.metric("webterm_sessions_started_total", &[]),
                want,
                "node {i}"
            );
            n.wait_metric("webterm_forwarded_sockets", &[], 0.0, T);
        }
    });
}

#[test]
fn a_read_only_view_through_another_replica_sees_live_output() {
    let c = Cluster::start(&[]);
    block_on(async {
        let (mut owner, first) = open(&c.nodes[2], "").await;
        let id = first["session"].as_str().unwrap().to_string();
        let mut viewer = claim(
            &c.nodes[0],
            &format!("view={id}"),
            serde_json::json!({"type": "view", "token": first["view_token"]}),
        )
        .await;
        type_text(&mut owner, true, "echo live-$((5+5))\r").await;
        read_until(&mut viewer, "live-10", T).await;
        // The wrong token is refused by the owner, through the forwarder.
        let mut nosy = connect(
            &c.nodes[1].url(&format!("/ws?view={id}")),
            Some(BINARY),
            None,
        )
        .await
        .unwrap();
        send_text(&mut nosy, r#"{"type":"view","token":"nope"}"#).await;
        let (close, _) = read_to_close(&mut nosy, T).await;
        assert_eq!(code(&close), 4004);
    });
}

#[test]
fn any_replica_lists_and_ends_every_replica_s_sessions() {
    let c = Cluster::start(&[]);
    block_on(async {
        let mut sockets = Vec::new();
        let mut ids = Vec::new();
        for n in &c.nodes {
            let (ws, s) = open(n, "").await;
            ids.push(s["session"].as_str().unwrap().to_string());
            sockets.push(ws);
        }
        let (status, body) = http_get(&c.nodes[1].addr, "/api/sessions?cluster=1", &[]);
        assert_eq!(status, 200, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rows = doc["sessions"].as_array().unwrap();
        let mut seen: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["node"].as_str().unwrap().into(),
                    r["id"].as_str().unwrap().into(),
                )
            })
            .collect();
        seen.sort();
        let want: Vec<(String, String)> = ["a", "b", "c"]
            .iter()
            .zip(&ids)
            .map(|(n, i)| (n.to_string(), i.clone()))
            .collect();
        assert_eq!(seen, want);
        for r in rows {
            assert!(r["memory_bytes"].as_u64().unwrap() > 0, "{r}");
        }

        // `webterm sessions --kill` against b ends c's session.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
            .args(["sessions", "--url", &format!("http://{}", c.nodes[1].addr)])
            .args(["--kill", &ids[2][..16]])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (close, _) = read_to_close(&mut sockets[2], T).await;
        assert_eq!(code(&close), 4002);
        // The table says which replica each session is on.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
            .args(["sessions", "--url", &format!("http://{}", c.nodes[2].addr)])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.lines().next().unwrap().contains("NODE"), "{table}");
        eventually("c's session leaves the table", T, || {
            c.nodes[2].sessions().is_empty()
        });
        assert_eq!(c.nodes[0].sessions().len(), 1);
        assert_eq!(c.nodes[1].sessions().len(), 1);
    });
}

#[test]
fn peer_requests_without_the_cluster_secret_are_refused() {
    let c = Cluster::start(&[]);
    let a = &c.nodes[0];
    // A forged proof: refused whole, not served as a user's request.
    let forged = [
        ("X-Webterm-Peer", "b 1 00"),
        ("X-Webterm-Client", "user admin"),
        ("X-Webterm-Remote", "10.0.0.1:1"),
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let wrong_mac = format!("b {now} {}", "ab".repeat(32));
    for path in ["/api/sessions", "/api/peer?nonce=1", "/ws"] {
        let (status, _) = http_get(&a.addr, path, &forged);
        assert_eq!(status, 403, "{path} with a malformed proof");
        let (status, _) = http_get(
            &a.addr,
            path,
            &[("X-Webterm-Peer", &wrong_mac), ("X-Webterm-Client", "x")],
        );
        assert_eq!(status, 403, "{path} with a wrong proof");
    }
    assert_eq!(
        a.metric("webterm_requests_refused_total", &[("reason", "peer")]),
        6.0
    );
    // Without a proof, the peer endpoint says nothing.
    assert_eq!(http_get(&a.addr, "/api/peer?nonce=1", &[]).0, 403);
    block_on(async {
        let r = connect_with(&a.url("/ws"), &[("X-Webterm-Peer", &wrong_mac)]).await;
        assert_eq!(r.err(), Some(403));
    });

    // A replica with another secret is no peer: a does not count it.
    let dir = TempDir::new("cluster-stranger");
    let other = dir.file("secret", "another-secret-entirely-of-at-least-32-bytes-xyz");
    let stranger = Server::start(&[
        "--node-id",
        "d",
        "--peers",
        &a.addr,
        "--secret-file",
        &other,
    ]);
    // The stranger asks a who it is, is refused, and knows no peer.
    eventually("a refuses the stranger", T, || {
        a.metric("webterm_requests_refused_total", &[("reason", "peer")]) > 6.0
    });
    assert_eq!(stranger.metric("webterm_peers", &[]), 0.0);
    assert_eq!(a.metric("webterm_peers", &[]), 2.0);
}

#[test]
fn losing_a_replica_closes_its_forwarded_sockets_and_spares_the_rest() {
    let mut c = Cluster::start(&[]);
    block_on(async {
        let tag_a = c.tag(0);
        let (mut via_b, first) = open(&c.nodes[1], &format!("&node={tag_a}")).await;
        shell_pid(&mut via_b).await;
        let id = first["session"].as_str().unwrap().to_string();
        let (mut on_c, _) = open(&c.nodes[2], "").await;
        shell_pid(&mut on_c).await;

        unsafe_kill(c.nodes[0].pid(), 9);
        c.nodes[0].wait_exit(T);
        let (close, _) = read_to_close(&mut via_b, T).await;
        assert_eq!(code(&close), 4005, "{close:?}");
        c.nodes[1].wait_metric("webterm_forwarded_sockets", &[], 0.0, T);
        // c's own session did not notice.
        type_text(&mut on_c, true, "echo still-$((1+1))\r").await;
        read_until(&mut on_c, "still-2", T).await;
        // b forgets a, and a reattach to a's session is told it is gone.
        c.nodes[1].wait_metric("webterm_peers", &[], 1.0, T);
        let mut late = connect(
            &c.nodes[1].url(&format!("/ws?resumable=1&resume={id}")),
            Some(BINARY),
            None,
        )
        .await
        .unwrap();
        let (close, _) = read_to_close(&mut late, T).await;
        assert_eq!(code(&close), 4005, "{close:?}");
    });
    let _ = &mut c;
}

#[test]
fn flow_control_holds_through_a_forwarded_socket() {
    const WINDOW: u64 = 256 * 1024;
    const CHUNK: u64 = 32 * 1024;
    let c = Cluster::start(&["--", "/bin/sh", "-c", "read go; exec yes flood"]);
    block_on(async {
        let tag_a = c.tag(0);
        let mut ws = connect(
            &c.nodes[1].url(&format!("/ws?node={tag_a}")),
            Some(BINARY),
            None,
        )
        .await
        .unwrap();
        let id = setup(&mut ws).await["session"]
            .as_str()
            .unwrap()
            .to_string();
        send_text(&mut ws, r#"{"type":"ack","bytes":0}"#).await;
        type_text(&mut ws, true, "\r").await;
        // Read everything that comes, acknowledging nothing, until the
        // owner has sent no more than we received.
        let owner = &c.nodes[0];
        let sent = || {
            owner.session(&id).expect("listed")["bytes_out"]
                .as_u64()
                .unwrap()
        };
        let deadline = Instant::now() + T;
        let mut got = 0u64;
        loop {
            assert!(
                Instant::now() < deadline,
                "got {got}, owner sent {}",
                sent()
            );
            match async_std::future::timeout(
                Duration::from_millis(100),
                futures_util::StreamExt::next(&mut ws),
            )
            .await
            {
                Ok(Some(Ok(Message::Binary(b)))) => got += b.len() as u64,
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("the socket ended: {other:?}"),
                Err(_) => {
                    if got >= WINDOW && sent() == got {
                        break;
                    }
                }
            }
        }
        assert!(got < WINDOW + CHUNK, "{got} bytes past a 256 KiB window");
        // Ctrl-C through two hops ends `yes`.
        type_text(&mut ws, true, "\x03").await;
        let (close, _) = read_to_close(&mut ws, T).await;
        assert_eq!(code(&close), 1000);
    });
}

#[test]
fn forwarding_is_no_way_around_authentication() {
    let c = Cluster::start(&["--credential", "ann:pw", "--", "/bin/sh"]);
    block_on(async {
        let tag_a = c.tag_with(0, &[("Authorization", &basic("ann", "pw"))]);
        let url = c.nodes[1].url(&format!("/ws?node={tag_a}"));
        // No credentials: b refuses before anything reaches a.
        assert_eq!(connect_with(&url, &[]).await.err(), Some(401));
        assert_eq!(
            connect_with(&url, &[("Authorization", &basic("ann", "wrong"))])
                .await
                .err(),
            Some(401)
        );
        assert_eq!(
            c.nodes[1].metric("webterm_sockets_forwarded_total", &[]),
            0.0
        );
        // With them, the session starts on a, through b.
        let mut ws = connect_with(&url, &[("Authorization", &basic("ann", "pw"))])
            .await
            .unwrap();
        let first = setup(&mut ws).await;
        assert!(first["session"].as_str().unwrap().starts_with(&tag_a));
        type_text(&mut ws, false, "echo via-$((2*21))\r").await;
        read_until(&mut ws, "via-42", T).await;
        assert_eq!(
            c.nodes[1].metric("webterm_sockets_forwarded_total", &[]),
            1.0
        );
        // a counts the session against the user b authenticated.
        let row = c.nodes[0].sessions()[0].clone();
        assert!(row["peer"].as_str().unwrap().ends_with("via b"), "{row}");
    });
}
