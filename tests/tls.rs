//! Native TLS: the real server with `--tls-cert`/`--tls-key` (a test CA and
//! certificates made here with rcgen), real TLS clients (rustls trusting
//! only that CA), the page over https, a shell over wss, and a renewal
//! while a session is open.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_std::net::TcpStream;
use async_std::task::block_on;
use common::*;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _};
use futures_rustls::rustls;
use rustls::pki_types::{CertificateDer, ServerName};

/// A throwaway CA that signs server certificates for `localhost`.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "webterm test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate (its PEM and DER) and its key's PEM.
    fn issue(&self, cn: &str, serial: u64) -> (String, CertificateDer<'static>, String) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), cert.der().clone(), key.serialize_pem())
    }

    fn client(&self) -> futures_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        futures_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Writes `contents` to `path` the way renewals do: a new file renamed
/// into place, so a reader sees the old file or the new one, whole.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

type Tls = futures_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to the server, for the name `localhost`.
async fn tls_connect(server: &Server, ca: &Ca) -> Tls {
    let tcp = TcpStream::connect(&server.addr).await.unwrap();
    ca.client()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the test CA trusted")
}

/// The certificate the server presented on `conn`.
fn served(conn: &Tls) -> CertificateDer<'static> {
    conn.get_ref().1.peer_certificates().expect("a certificate")[0].clone()
}

fn port(server: &Server) -> &str {
    server.addr.rsplit(':').next().unwrap()
}

async fn wss(server: &Server, ca: &Ca) -> Ws {
    let conn = tls_connect(server, ca).await;
    let url = format!("wss://localhost:{}/ws", port(server));
    connect_over(conn, &url, None).await.expect("wss upgrade")
}

/// `GET path` over https; the status, the head and the body.
async fn https_get(server: &Server, ca: &Ca, path: &str) -> (u16, String, String) {
    let mut conn = tls_connect(server, ca).await;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        port(server)
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Waits until the metric `name` (over https) is `want`.
async fn wait_metric(server: &Server, ca: &Ca, name: &str, want: f64) {
    let deadline = Instant::now() + T;
    loop {
        let (status, _, text) = https_get(server, ca, "/metrics").await;
        assert_eq!(status, 200, "{text}");
        let got = metric_value(&text, name, &[]);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} is {got}, not {want}: {:?}",
            server.logs()
        );
        async_std::task::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Starts webterm serving TLS with a fresh certificate from `ca`; returns
/// the server and the DER of what it serves.
fn start(
    ca: &Ca,
    dir: &TempDir,
    extra: &[&str],
) -> (Server, CertificateDer<'static>, PathBuf, PathBuf) {
    let (cert, der, key) = ca.issue("webterm first", 1);
    let (cert_path, key_path) = (dir.path("cert.pem"), dir.path("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let mut args = vec![
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "/bin/sh"]);
    (Server::start(&args), der, cert_path, key_path)
}

#[test]
fn the_page_and_a_shell_over_https_and_wss() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-shell");
    let (server, _, _, _) = start(&ca, &dir, &[]);
    block_on(async {
        let (status, _, body) = https_get(&server, &ca, "/").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("<html"), "{body}");
        let mut ws = wss(&server, &ca).await;
        setup(&mut ws).await;
        type_text(&mut ws, false, "echo tls-$((6*7))\r").await;
        read_until(&mut ws, "tls-42", T).await;
    });
    // Plain HTTP on the TLS port is refused (the handshake fails), and the
    // server goes on serving.
    let (status, _) = http_get(&server.addr, "/healthz", &[]);
    assert_ne!(status, 200);
    block_on(async {
        let (status, _, body) = https_get(&server, &ca, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
    });
}

#[test]
fn the_login_cookie_is_secure_over_tls() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-cookie");
    let (server, _, _, _) = start(&ca, &dir, &["--credential", "ann:pw"]);
    block_on(async {
        let mut conn = tls_connect(&server, &ca).await;
        let req = format!(
            "GET / HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            port(&server),
            basic("ann", "pw")
        );
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut resp = Vec::new();
        conn.read_to_end(&mut resp).await.unwrap();
        let resp = String::from_utf8_lossy(&resp);
        let head = resp.split("\r\n\r\n").next().unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let cookie = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .unwrap_or_else(|| panic!("no cookie: {head}"));
        assert!(cookie.contains("; Secure"), "{cookie}");
    });
}

#[test]
fn a_stalled_handshake_holds_up_no_one() {
    use std::io::{Read as _, Write as _};
    let ca = Ca::new();
    let dir = TempDir::new("tls-stall");
    let (server, _, _, _) = start(&ca, &dir, &[]);
    // A client that connects and says nothing, and one that sends garbage.
    let started = Instant::now();
    let mut silent = std::net::TcpStream::connect(&server.addr).unwrap();
    let mut garbage = std::net::TcpStream::connect(&server.addr).unwrap();
    garbage
        .write_all(b"\x16\x03\x01\xff\xffnot a hello")
        .unwrap();
    block_on(async {
        let conn = tls_connect(&server, &ca).await;
        drop(conn);
    });
    // Served while the silent client's handshake is still pending: had the
    // accept loop waited on it, it would have been cut off first (after
    // the handshake timeout, 10 s; on a machine too slow to tell within
    // that, there is nothing to conclude).
    silent.set_nonblocking(true).unwrap();
    let pending = matches!(
        silent.read(&mut [0; 1]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    assert!(
        pending || started.elapsed() >= std::time::Duration::from_secs(10),
        "the silent client was cut off before another was served"
    );
    block_on(async {
        let mut ws = wss(&server, &ca).await;
        setup(&mut ws).await;
        type_text(&mut ws, false, "echo still-$((2*3))\r").await;
        read_until(&mut ws, "still-6", T).await;
    });
    // The garbage got a TLS alert or a close, and the silent client is cut
    // off once the handshake timeout passes: neither holds a task forever.
    garbage.set_read_timeout(Some(T)).unwrap();
    let mut sink = Vec::new();
    let _ = garbage.read_to_end(&mut sink);
    silent.set_nonblocking(false).unwrap();
    silent.set_read_timeout(Some(T)).unwrap();
    let n = silent.read(&mut [0; 64]);
    assert!(
        matches!(n, Ok(0))
            || matches!(&n, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the silent client was not cut off: {n:?}"
    );
}

#[test]
fn a_renewed_certificate_is_served_to_new_connections_while_a_session_lives() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-renew");
    let (server, first, cert_path, key_path) = start(&ca, &dir, &[]);
    block_on(async {
        let conn = tls_connect(&server, &ca).await;
        assert_eq!(served(&conn), first);
        drop(conn);
        let mut ws = wss(&server, &ca).await;
        setup(&mut ws).await;
        type_text(&mut ws, false, "echo before-$((1+1))\r").await;
        read_until(&mut ws, "before-2", T).await;

        // A bad pair first: a key that is not the certificate's. It is
        // refused, and the first certificate is still served.
        let (_, _, stray_key) = ca.issue("stray", 3);
        replace(&key_path, &stray_key);
        wait_metric(&server, &ca, "webterm_tls_reload_failures_total", 1.0).await;
        assert_eq!(served(&tls_connect(&server, &ca).await), first);

        // Then the renewal: the key and its certificate, renamed into place.
        let (cert, second, key) = ca.issue("webterm renewed", 2);
        assert_ne!(second, first);
        replace(&key_path, &key);
        replace(&cert_path, &cert);
        let deadline = Instant::now() + T;
        loop {
            let conn = tls_connect(&server, &ca).await;
            if served(&conn) == second {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the renewed certificate was not served within {T:?}: {:?}",
                server.logs()
            );
            async_std::task::sleep(std::time::Duration::from_millis(100)).await;
        }
        // The session opened under the first certificate never noticed.
        type_text(&mut ws, false, "echo after-$((2+2))\r").await;
        read_until(&mut ws, "after-4", T).await;
    });
}

#[test]
fn a_missing_or_bad_pair_stops_start_up_with_one_line() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-bad");
    let (cert, _, key) = ca.issue("x", 1);
    let (_, _, other_key) = ca.issue("y", 2);
    let cert_path = dir.path("cert.pem");
    let key_path = dir.path("key.pem");
    let other_path = dir.path("other.pem");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    std::fs::write(&other_path, other_key).unwrap();
    let garbage = dir.path("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    for (cert, key, says) in [
        (dir.path("absent.pem"), key_path.clone(), "--tls-cert"),
        (cert_path.clone(), dir.path("absent.pem"), "--tls-key"),
        (garbage.clone(), key_path.clone(), "--tls-cert"),
        (cert_path.clone(), garbage.clone(), "--tls-key"),
        (cert_path.clone(), other_path.clone(), "--tls-key"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert", &p(&cert)])
            .args(["--tls-key", &p(&key)])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("webterm: "))
            .unwrap_or_else(|| panic!("no error line: {stderr}"));
        assert!(line.contains(says), "{line}");
        assert!(!line.contains("PRIVATE KEY"), "{line}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
        .args(["--tls-cert", &p(&cert_path)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

/// Whether the start-up logs (complete once the harness sees the
/// `listening on` line, which comes after them) warn of clear text.
fn warns_of_clear_text(server: &Server) -> bool {
    server
        .logs()
        .iter()
        .any(|l| l.contains("without TLS") && l.contains("clear text"))
}

#[test]
fn beyond_loopback_with_passwords_and_no_tls_is_warned_of() {
    let plain = Server::start(&["--listen", "0.0.0.0:0", "--credential", "ann:pw"]);
    assert!(warns_of_clear_text(&plain), "{:?}", plain.logs());
    drop(plain);
    let ca = Ca::new();
    let dir = TempDir::new("tls-warn");
    let (tls, _, _, _) = start(
        &ca,
        &dir,
        &["--listen", "0.0.0.0:0", "--credential", "ann:pw"],
    );
    assert!(!warns_of_clear_text(&tls), "{:?}", tls.logs());
    assert!(
        tls.logs()
            .iter()
            .any(|l| l.contains("listening on https://")),
        "{:?}",
        tls.logs()
    );
    // Loopback only: nothing crosses a network.
    let local = Server::start(&["--credential", "ann:pw"]);
    assert!(!warns_of_clear_text(&local), "{:?}", local.logs());
}

#[test]
fn webterm_health_follows_a_tls_server() {
    let ca = Ca::new();
    let dir = TempDir::new("tls-health");
    let (server, _, cert, _) = start(&ca, &dir, &[]);
    let health = |listen: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
            .arg("health")
            .env("WEBTERM_LISTEN", listen)
            .env("WEBTERM_TLS_CERT", &cert)
            .output()
            .unwrap()
    };
    let out = health(&server.addr);
    assert!(out.status.success(), "{out:?}");
    // Nothing listening there: unhealthy.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    assert_eq!(health(&addr).status.code(), Some(1));
}
