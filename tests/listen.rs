//! Where webterm listens: Unix sockets (`--listen unix:`, `--socket-mode`),
//! IPv6, and several `--listen` at once, each with real clients reaching a
//! real shell.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;

use async_std::task::block_on;
use common::*;

/// `GET path` over a Unix socket with the given Host; the status.
fn unix_get(sock: &Path, path: &str, host: &str) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

async fn unix_ws(sock: &Path) -> Ws {
    let io = async_std::os::unix::net::UnixStream::connect(sock)
        .await
        .unwrap();
    connect_over(io, "ws://localhost/ws", None)
        .await
        .expect("upgrade over the Unix socket")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs webterm expecting it to fail at start-up; its stderr.
fn fails(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
        .args(args)
        .env("SHELL", "/bin/sh")
        .output()
        .unwrap();
    assert!(!out.status.success(), "webterm {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_shell_over_a_unix_socket_which_is_removed_on_exit() {
    let dir = TempDir::new("listen-unix");
    let sock = dir.path("w.sock");
    let listen = format!("unix:{}", sock.display());
    let mut server = Server::start(&["--listen", &listen, "--", "/bin/sh"]);
    assert!(std::fs::metadata(&sock).unwrap().file_type().is_socket());
    assert_eq!(mode(&sock), 0o600);

    let (status, body) = unix_get(&sock, "/", "localhost");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<html"));
    // The Host check holds on the socket too: a proxy forwards the name
    // users typed, and an unknown one is refused without authentication.
    assert_eq!(unix_get(&sock, "/", "evil.example").0, 403);
    block_on(async {
        let mut ws = unix_ws(&sock).await;
        setup(&mut ws).await;
        type_text(&mut ws, false, "echo unix-$((6*7))\r").await;
        read_until(&mut ws, "unix-42", T).await;
    });
    // TCP is served alongside it.
    assert_eq!(server.get("/healthz").0, 200);

    server.sigterm();
    let status = server.wait_exit(T).expect("webterm exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(
        std::fs::symlink_metadata(&sock).is_err(),
        "the socket file outlived the server"
    );
}

#[test]
fn socket_mode_is_applied() {
    let dir = TempDir::new("listen-mode");
    let sock = dir.path("w.sock");
    let listen = format!("unix:{}", sock.display());
    let _server = Server::start_env(&["--listen", &listen], &[("WEBTERM_SOCKET_MODE", "0660")]);
    assert_eq!(mode(&sock), 0o660);
    assert_eq!(unix_get(&sock, "/healthz", "localhost").0, 200);
    let e = fails(&["--listen", &listen, "--socket-mode", "rw"]);
    assert!(e.contains("--socket-mode: 'rw'"), "{e}");
}

#[test]
fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let dir = TempDir::new("listen-live");
    let sock = dir.path("w.sock");
    let listen = format!("unix:{}", sock.display());
    let server = Server::start(&["--listen", &listen]);

    let e = fails(&["--listen", "127.0.0.1:0", "--listen", &listen]);
    assert!(e.contains(&format!("--listen {listen}")), "{e}");
    assert!(e.contains("already listening"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    // The refused server left the live one's file alone.
    assert_eq!(unix_get(&sock, "/healthz", "localhost").0, 200);
    drop(server);
    assert!(std::fs::symlink_metadata(&sock).is_err());

    // A socket file nobody answers on, as a killed server leaves it.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(std::fs::metadata(&sock).unwrap().file_type().is_socket());
    let _server = Server::start(&["--listen", &listen]);
    assert_eq!(unix_get(&sock, "/healthz", "localhost").0, 200);

    // Anything but a socket is never deleted.
    let file = dir.path("file");
    std::fs::write(&file, "keep me").unwrap();
    let e = fails(&["--listen", &format!("unix:{}", file.display())]);
    assert!(e.contains("other than a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

/// The address of the `also listening on http://...` line for `prefix`:
/// the only place a port the kernel picked is told. The line can follow
/// the one `Server::start` waits for, so it is waited for too.
fn also_listening(server: &Server, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + common::T;
    loop {
        let found = server.logs().iter().find_map(|l| {
            let rest = l.split("also listening on http://").nth(1)?;
            rest.starts_with(prefix)
                .then(|| rest.split('/').next().unwrap().to_string())
        });
        if let Some(addr) = found {
            return addr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no listen line for {prefix}: {:?}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn ipv6_and_several_addresses_at_once() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    // The harness listens on 127.0.0.1 first; add [::1] and another port.
    let server = Server::start(&[
        "--listen",
        "[::1]:0",
        "--listen",
        "127.0.0.1:0",
        "--",
        "/bin/sh",
    ]);
    let v6 = also_listening(&server, "[::1]:");
    let second = also_listening(&server, "127.0.0.1:");
    assert_ne!(second, server.addr);
    for addr in [&server.addr, &v6, &second] {
        assert_eq!(http_get(addr, "/healthz", &[]).0, 200, "{addr}");
        block_on(async {
            let mut ws = connect(&format!("ws://{addr}/ws"), None, None)
                .await
                .unwrap_or_else(|e| panic!("{addr}: {e}"));
            setup(&mut ws).await;
            type_text(&mut ws, false, "echo at-$((5*5))\r").await;
            read_until(&mut ws, "at-25", T).await;
        });
    }
}
