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

/// The cluster secret of the replicas `Cluster::start` starts.
const SECRET: &str = "a-cluster-secret-of-at-least-32-bytes-0123456789";

impl Cluster {
    fn start(extra: &[&str]) -> Cluster {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = TempDir::new(&format!(
            "cluster-{}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let secret = dir.file("secret", SECRET);
        // The ports are chosen before the replicas start (each names the
        // others in --peers), so one can be taken meanwhile: then all three
        // start again on new ones.
        let nodes = (0..5)
            .find_map(|_| Cluster::try_start(extra, &secret))
            .expect("no three free ports in five tries");
        // Each knows the other two before the test begins.
        for n in &nodes {
            n.wait_metric("webterm_peers", &[], 2.0, T);
        }
        Cluster { nodes, _dir: dir }
    }

    /// The three replicas, or `None` if a chosen port was taken.
    fn try_start(extra: &[&str], secret: &str) -> Option<Vec<Server>> {
        let ports = free_ports(3);
        let peers = ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (name, port) in ["a", "b", "c"].iter().zip(&ports) {
            let listen = format!("127.0.0.1:{port}");
            let mut args = vec![
                "--listen",
                &listen,
                "--node-id",
                name,
                "--peers",
                &peers,
                "--secret-file",
                secret,
            ];
            args.extend_from_slice(extra);
            if !extra.contains(&"--") {
                args.extend_from_slice(&["--", "/bin/sh"]);
            }
            // Dropping the ones started ends them.
            nodes.push(Server::start_listening_unless_taken(&args)?);
        }
        Some(nodes)
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

/// The shell's pid, as the shell says it. The line read is the output's,
/// never the terminal's echo of the typed command (which lacks "42ok").
async fn shell_pid(t: &mut Term) -> String {
    let seen = t.run("echo pid=$$ $((40+2))ok", "42ok\r\n").await;
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
        let mut t = c.nodes[1].open_resumable(&format!("&node={tag_a}")).await;
        let id = t.id().to_string();
        assert!(id.starts_with(&tag_a), "{id} is not a's");
        assert!(c.nodes[0].session(&id).is_some(), "a does not hold {id}");
        assert!(c.nodes[1].sessions().is_empty(), "b started a session");
        assert_eq!(c.nodes[1].metric("webterm_forwarded_sockets", &[]), 1.0);
        let pid = shell_pid(&mut t).await;
        t.run("echo mark-$((6*7))", "mark-42").await;
        let first = t.hang_up(); // a blip: no close frame
        c.nodes[0].wait_state(&id, Some("detached"), T);
        c.nodes[1].wait_metric("webterm_forwarded_sockets", &[], 0.0, T);

        // A reload whose socket lands on c, then one on a itself: the same
        // shell each time, with its history.
        for via in [2, 0, 1] {
            let mut t = c.nodes[via].resume(&id, first.resume_token(), 0).await;
            t.read_until("mark-42").await;
            assert_eq!(shell_pid(&mut t).await, pid, "via replica {via}");
            t.ws.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "reload".into(),
            }))
            .await
            .unwrap();
            assert_eq!(t.read_to_close().await.code(), 1000, "via replica {via}");
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
        let mut owner = c.nodes[2].open_resumable("").await;
        let id = owner.id().to_string();
        let mut viewer = c.nodes[0].view(&id, owner.setup.view_token()).await;
        owner.type_text("echo live-$((5+5))\r").await;
        viewer.read_until("live-10").await;
        // The wrong token is refused by the owner, through the forwarder.
        let mut nosy = c.nodes[1].view_socket(&id).await;
        send_text(&mut nosy, r#"{"type":"view","token":"nope"}"#).await;
        assert_eq!(Closed::read(&mut nosy, T).await.code(), 4004);
    });
}

#[test]
fn any_replica_lists_and_ends_every_replica_s_sessions() {
    let c = Cluster::start(&[]);
    block_on(async {
        let mut sockets = Vec::new();
        let mut ids = Vec::new();
        for n in &c.nodes {
            let t = n.open_resumable("").await;
            ids.push(t.id().to_string());
            sockets.push(t);
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
        let killed = c.nodes[1].webterm_sessions(&["--kill", &ids[2][..16]]);
        assert!(killed.ok(), "{killed}");
        assert_eq!(sockets[2].read_to_close().await.code(), 4002);
        // The table says which replica each session is on.
        let table = c.nodes[2].webterm_sessions(&[]).stdout;
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
fn a_peer_proof_is_good_once_and_only_at_the_replica_it_names() {
    use webterm::cluster::proof;
    let c = Cluster::start(&[]);
    let (b, cc) = (&c.nodes[1], &c.nodes[2]);
    // What a would send b for a cluster-wide listing, as someone on the
    // replicas' network would capture it.
    let secret = webterm::auth::Secret::from_file_contents(SECRET.as_bytes()).unwrap();
    let req = proof::Request {
        method: "GET",
        target: "/api/sessions",
        client: "peer",
        remote: "peer",
    };
    let signed = || proof::sign(&secret, "a", "b", &req).unwrap();
    let headers = |p: &str| {
        [
            (proof::HEADER, p.to_string()),
            (proof::CLIENT_HEADER, "peer".to_string()),
            (proof::REMOTE_HEADER, "peer".to_string()),
        ]
    };
    let get = |at: &Server, p: &str| {
        let h = headers(p);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http_get(&at.addr, "/api/sessions", &h).0
    };
    let refused = |at: &Server| at.metric("webterm_requests_refused_total", &[("reason", "peer")]);
    let captured = signed();
    assert_eq!(get(b, &captured), 200, "the proof at the replica it names");
    assert_eq!(get(b, &captured), 403, "the same proof again");
    assert_eq!(refused(b), 1.0);
    // Another proof for b, taken to c instead: refused there, and still
    // good at b, where it was never used.
    let other = signed();
    assert_eq!(get(cc, &other), 403, "a proof for b at c");
    assert_eq!(refused(cc), 1.0);
    assert_eq!(get(b, &other), 200);
}

#[test]
fn losing_a_replica_closes_its_forwarded_sockets_and_spares_the_rest() {
    let mut c = Cluster::start(&[]);
    block_on(async {
        let tag_a = c.tag(0);
        let mut via_b = c.nodes[1].open_resumable(&format!("&node={tag_a}")).await;
        shell_pid(&mut via_b).await;
        let id = via_b.id().to_string();
        let mut on_c = c.nodes[2].open_resumable("").await;
        shell_pid(&mut on_c).await;

        unsafe_kill(c.nodes[0].pid(), 9);
        c.nodes[0].wait_exit(T);
        let cut = via_b.read_to_close().await;
        assert_eq!(cut.code(), 4005, "{:?}", cut.frame);
        c.nodes[1].wait_metric("webterm_forwarded_sockets", &[], 0.0, T);
        // c's own session did not notice.
        on_c.run("echo still-$((1+1))", "still-2").await;
        // b forgets a, and a reattach to a's session is told it is gone.
        c.nodes[1].wait_metric("webterm_peers", &[], 1.0, T);
        let mut late = c.nodes[1]
            .connect(&format!("/ws?resumable=1&resume={id}"), Proto::Binary)
            .await;
        let gone = Closed::read(&mut late, T).await;
        assert_eq!(gone.code(), 4005, "{:?}", gone.frame);
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
        let mut t = c.nodes[1]
            .open_at(&format!("/ws?node={tag_a}"), Proto::Binary)
            .await;
        let id = t.id().to_string();
        t.send_text(r#"{"type":"ack","bytes":0}"#).await;
        t.type_text("\r").await;
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
                futures_util::StreamExt::next(&mut t.ws),
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
        t.type_text("\x03").await;
        assert_eq!(t.read_to_close().await.code(), 1000);
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
        let ws = connect_with(&url, &[("Authorization", &basic("ann", "pw"))]).await;
        let mut t = Term::attach(ws.unwrap(), Proto::Terminado).await;
        assert!(t.id().starts_with(&tag_a));
        t.run("echo via-$((2*21))", "via-42").await;
        assert_eq!(
            c.nodes[1].metric("webterm_sockets_forwarded_total", &[]),
            1.0
        );
        // a counts the session against the user b authenticated.
        let row = c.nodes[0].sessions()[0].clone();
        assert!(row["peer"].as_str().unwrap().ends_with("via b"), "{row}");
    });
}

#[test]
fn a_new_session_forwarded_to_the_page_s_replica_keeps_its_url_arguments() {
    let c = Cluster::start(&["--url-arg", "word", "--", "printf", "[%s]\\n"]);
    block_on(async {
        let tag_a = c.tag(0);
        let tricky = "two words & an = sign; $(id) 'q' é";
        let encoded: String = tricky.bytes().map(|b| format!("%{b:02X}")).collect();
        let url = c.nodes[1].url(&format!("/ws?node={tag_a}&arg.word={encoded}"));
        let mut ws = connect(&url, None, None).await.unwrap();
        let first = setup(&mut ws).await;
        assert!(first["session"].as_str().unwrap().starts_with(&tag_a));
        let out = read_until(&mut ws, "]\r\n", T).await;
        assert!(out.contains(&format!("[{tricky}]")), "{out:?}");
        assert_eq!(
            c.nodes[1].metric("webterm_sockets_forwarded_total", &[]),
            1.0
        );
    });
}
