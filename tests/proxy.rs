//! webterm behind Debian's nginx configured the way NGINX Proxy Manager
//! writes a proxy host with "Websockets Support" on: an idle session
//! survives the proxy's read timeout because webterm pings, and a
//! `--base-path` deployment behind a custom location serves its page,
//! assets and socket. Real nginx, server, sockets and PTYs.

mod common;

use std::time::Duration;

use async_std::task::block_on;
use common::nginx::Nginx;
use common::*;

/// The proxy's read timeout, cut from NPM's 90 s so the test is quick.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// The headers NPM's proxy host sends upstream, written the way NPM
/// composes them: its common proxy include, then, with "Websockets
/// Support" on, the client's own `Upgrade` and `Connection` passed through
/// over HTTP/1.1 (not a `map`).
const PROXY_HEADERS: &str = "
            add_header X-Served-By $host;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Scheme $scheme;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $http_connection;
            proxy_http_version 1.1;";

/// An NPM proxy host forwarding to `upstream` (`127.0.0.1:PORT`), with
/// `locations` (NPM's custom locations) beside its default one. The
/// http-level settings are NPM's own defaults, but for the read timeout.
///
/// nginx passes `Host` as `$host`, which drops the port; NPM listens on 80
/// and 443, where that is what a browser's `Origin` says, but this test
/// listens on a free port, so its sockets send no `Origin` (like scripts).
fn npm_proxy_host(upstream: &str, locations: &str) -> String {
    let (host, port) = upstream.split_once(':').unwrap();
    format!(
        "
    keepalive_timeout 90s;
    proxy_connect_timeout 90s;
    proxy_send_timeout 90s;
    proxy_read_timeout {read}s;
    proxy_http_version 1.1;
    proxy_set_header X-Forwarded-Scheme $scheme;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header Accept-Encoding \"\";
    server {{
        listen {{listen}};
        server_name _;
        set $forward_scheme http;
        set $server \"{host}\";
        set $port {port};
        location / {{{PROXY_HEADERS}
            proxy_pass $forward_scheme://$server:$port$request_uri;
        }}
{locations}
    }}",
        read = READ_TIMEOUT.as_secs(),
    )
}

#[test]
fn an_idle_session_outlives_ten_proxy_read_timeouts() {
    // Pings every second, well inside the proxy's 3 s.
    let server = Server::start(&["--ping-interval", "1s", "--", "/bin/sh"]);
    let nginx = Nginx::start(&npm_proxy_host(&server.addr, ""));
    block_on(async {
        let mut ws = connect(&nginx.url("/ws"), Some(BINARY), None)
            .await
            .unwrap_or_else(|e| panic!("through nginx: {e}\n{}", nginx.error_log()));
        setup(&mut ws).await;
        type_text(&mut ws, true, "echo before-$((40+2))\r").await;
        read_until(&mut ws, "before-42", T).await;

        // Nothing typed, nothing printed: only pings and their answers
        // cross the proxy. The reader answers pings and fails if the socket
        // ends; the wall clock says when ten read timeouts have passed.
        let reader = keep_reading(ws);
        async_std::task::sleep(READ_TIMEOUT * 10).await;
        let mut ws = reader.stop().await;

        type_text(&mut ws, true, "echo after-$((40+2))\r").await;
        read_until(&mut ws, "after-42", T).await;
        // Still the one session, asked while its socket is open (dropping
        // the socket, not resumable, ends it).
        assert_eq!(server.sessions().len(), 1, "{:?}", server.logs());
        assert_eq!(server.metric("webterm_sessions_started_total", &[]), 1.0);
    });
}

#[test]
fn a_base_path_deployment_serves_page_assets_and_socket() {
    let server = Server::start(&["--base-path", "/term", "--", "/bin/sh"]);
    // An NPM custom location `/term/` with the same upstream: nginx passes
    // the URI on unchanged, prefix included.
    let location = format!(
        "        location ^~ /term/ {{{PROXY_HEADERS}
            proxy_pass http://{};
        }}",
        server.addr
    );
    let nginx = Nginx::start(&npm_proxy_host(&server.addr, &location));

    let (status, head, page) = http_get_full(&nginx.addr, "/term/", &[]);
    assert_eq!(status, 200, "{head}\n{}", nginx.error_log());
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(page.contains("importmap"), "{page}");
    for (asset, kind) in [
        ("/term/app.mjs", "javascript"),
        ("/term/style.css", "text/css"),
        ("/term/vendor/xterm.mjs", "javascript"),
    ] {
        let (status, head, body) = http_get_full(&nginx.addr, asset, &[]);
        assert_eq!(status, 200, "{asset}: {head}");
        assert!(head.to_ascii_lowercase().contains(kind), "{asset}: {head}");
        assert!(!body.is_empty(), "{asset} is empty");
    }
    // Nothing is served outside the base path.
    assert_eq!(http_get_full(&nginx.addr, "/app.mjs", &[]).0, 404);

    block_on(async {
        let mut ws = connect(&nginx.url("/term/ws"), Some(BINARY), None)
            .await
            .unwrap_or_else(|e| panic!("through nginx: {e}\n{}", nginx.error_log()));
        let setup = setup(&mut ws).await;
        assert_eq!(setup["protocol"], "binary", "{setup}");
        type_text(&mut ws, true, "echo base-$((40+2))\r").await;
        read_until(&mut ws, "base-42", T).await;
    });
}
