//! HTTP routes, and the only module that knows about tide.
//!
//! tide and async-std are unmaintained upstream, so the framework stays
//! behind this one door: sessions, PTYs and the protocol see a plain
//! `AsyncRead + AsyncWrite` connection, and replacing tide means rewriting
//! this file alone. The WebSocket handshake is done here by hand on tide's
//! own upgrade mechanism, then handed to async-tungstenite with explicit
//! limits (tide-websockets pins a vulnerable tungstenite with 64 MiB limits).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::Role;
use async_tungstenite::WebSocketStream;
use tide::http::headers::HeaderName;
use tide::{Request, Response, StatusCode};

use crate::auth::{self, Auth, Decision, Presented};
use crate::csp;
use crate::metrics::Refusal;
use crate::origin::{self, HostGuard};
use crate::protocol::Claim;
use crate::protocol::{self, Mode};
use crate::session::{self, Registry, Settings};

/// What the routes share.
pub struct State {
    pub settings: Arc<Settings>,
    pub registry: Arc<Registry>,
    pub allowed_origins: Vec<String>,
    pub assets_dir: Option<PathBuf>,
    /// `config.json` for the page, rendered once at start-up.
    pub page_config: String,
    pub auth: Auth,
    /// "" or "/prefix": where the page and its socket live.
    pub base_path: String,
    /// Which `Host` names are served (DNS rebinding; see `origin`).
    pub hosts: HostGuard,
}

type Req = Request<Arc<State>>;

/// Builds the application. Serve it with [`listen`].
///
/// Everything lives under the base path; the probes and `/metrics` also
/// answer at the root, where Kubernetes and Prometheus look by default.
pub fn app(state: State) -> tide::Server<Arc<State>> {
    let base = state.base_path.clone();
    let mut app = tide::with_state(Arc::new(state));
    app.with(Guard);
    for prefix in if base.is_empty() {
        vec![String::new()]
    } else {
        vec![String::new(), base.clone()]
    } {
        app.at(&format!("{prefix}/healthz")).get(healthz);
        app.at(&format!("{prefix}/readyz")).get(readyz);
        app.at(&format!("{prefix}/metrics")).get(metrics);
    }
    if !base.is_empty() {
        // `/term` -> `/term/`, so the page's relative URLs resolve under it.
        app.at(&base).get(|req: Req| async move {
            let to = format!("{}/", req.state().base_path);
            Ok(tide::Redirect::permanent(to))
        });
    }
    app.at(&format!("{base}/config.json")).get(page_config);
    app.at(&format!("{base}/ws")).get(websocket);
    app.at(&format!("{base}/api/sessions")).get(api_sessions);
    app.at(&format!("{base}/api/sessions/:id")).delete(api_kill);
    app.at(&format!("{base}/")).get(asset);
    app.at(&format!("{base}/*path")).get(asset);
    app
}

/// A bound socket to serve on.
pub enum Bound {
    Tcp(async_std::net::TcpListener),
    Unix(async_std::os::unix::net::UnixListener),
}

/// How a request reached us, for what depends on it: the cookie's
/// `Secure` attribute, and who the client is on a Unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Tcp,
    Tls,
    Unix,
}

/// What a Unix socket's peer is called in logs and counted as per client:
/// it has no address, and every process that may open the file is
/// already on this host (usually one proxy).
pub const UNIX_PEER: &str = "unix";

/// Serves `app` on already-bound listeners until the future is dropped;
/// TCP connections speak TLS when `tls` is given.
///
/// Our own accept loop rather than tide's listeners, which know nothing of
/// TLS: each connection (and its handshake, under a deadline) runs in its
/// own task, so a client that stalls holds up nobody else.
pub async fn listen(
    app: tide::Server<Arc<State>>,
    listeners: Vec<Bound>,
    tls: Option<Arc<crate::tls::Tls>>,
) -> std::io::Result<()> {
    let loops = listeners.into_iter().map(|l| {
        let app = app.clone();
        let tls = tls.clone();
        Box::pin(async move {
            match l {
                Bound::Tcp(l) => accept_tcp(app, l, tls).await,
                Bound::Unix(l) => accept_unix(app, l).await,
            }
        })
            as std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>
    });
    futures_util::future::select_all(loops).await.0
}

async fn accept_tcp(
    app: tide::Server<Arc<State>>,
    listener: async_std::net::TcpListener,
    tls: Option<Arc<crate::tls::Tls>>,
) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let local = stream.local_addr().ok().map(|a| a.to_string());
        let peer = stream.peer_addr().ok().map(|a| a.to_string());
        let app = app.clone();
        let tls = tls.clone();
        async_std::task::spawn(async move {
            match tls {
                None => serve(app, stream, local, peer, Transport::Tcp).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        let io = async_dup::Arc::new(async_dup::Mutex::new(stream));
                        serve(app, io, local, peer, Transport::Tls).await
                    }
                    // Scanners, plain-HTTP clients and clients that do not
                    // trust the certificate all end here: not worth a warning.
                    Err(e) => log::debug!(
                        "TLS handshake with {} failed: {e}",
                        peer.as_deref().unwrap_or("unknown")
                    ),
                },
            }
        });
    }
}

async fn accept_unix(
    app: tide::Server<Arc<State>>,
    listener: async_std::os::unix::net::UnixListener,
) -> std::io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let app = app.clone();
                async_std::task::spawn(serve(
                    app,
                    stream,
                    None,
                    Some(UNIX_PEER.to_string()),
                    Transport::Unix,
                ));
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

/// An accept error: a connection that went away before we took it is
/// nothing; running out of descriptors is worth a pause, not a busy loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted
    ) {
        return;
    }
    log::error!("accepting a connection failed: {e}; pausing 500ms");
    futures_timer::Delay::new(std::time::Duration::from_millis(500)).await;
}

/// Serves HTTP/1.1 on one connection until it closes or is upgraded.
async fn serve<S>(
    app: tide::Server<Arc<State>>,
    io: S,
    local: Option<String>,
    peer: Option<String>,
    transport: Transport,
) where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Clone + Send + Sync + Unpin + 'static,
{
    use futures_lite::{AsyncWriteExt as _, FutureExt as _};
    use std::sync::atomic::{AtomicBool, Ordering};
    // Set once a response hands the connection to a WebSocket, which then
    // owns its closing.
    let upgraded = Arc::new(AtomicBool::new(false));
    let result = async_h1::accept(io.clone(), |mut req| {
        let app = app.clone();
        let local = local.clone();
        let peer = peer.clone();
        let upgraded = Arc::clone(&upgraded);
        async move {
            req.set_local_addr(local);
            req.set_peer_addr(peer);
            req.ext_mut().insert(transport);
            let res: tide::http::Response = app.respond(req).await?;
            if res.status() == StatusCode::SwitchingProtocols {
                upgraded.store(true, Ordering::Relaxed);
            }
            Ok(res)
        }
    })
    .await;
    if let Err(e) = &result {
        log::debug!(
            "HTTP connection from {} ended: {e}",
            peer.as_deref().unwrap_or("unknown")
        );
    }
    if !upgraded.load(Ordering::Relaxed) {
        // Close rather than drop: over TLS this sends close_notify, without
        // which clients cannot tell the end of a response from a cut.
        let mut io = io;
        let _ = io
            .close()
            .or(async {
                futures_timer::Delay::new(crate::socket::CLOSE_TIMEOUT).await;
                Ok(())
            })
            .await;
    }
}

/// Runs around every route: the Host check before anything else, and the
/// security headers on whatever the route answers.
struct Guard;

#[tide::utils::async_trait]
impl tide::Middleware<Arc<State>> for Guard {
    async fn handle(&self, req: Req, next: tide::Next<'_, Arc<State>>) -> tide::Result {
        let state = Arc::clone(req.state());
        // Probes and metrics are not checked: they hand out no shell and no
        // user data, and kubelet, Prometheus and `webterm health` ask with
        // whatever Host they were given (a pod IP, a Service name), which
        // the operator should not have to list.
        let checked = !is_probe(req.url().path(), &state.base_path);
        let refusal = if checked {
            state
                .hosts
                .check(header(&req, "Host").as_deref(), req.local_addr())
                .err()
        } else {
            None
        };
        let mut res = match refusal {
            Some(refusal) => {
                state.registry.metrics().refused(Refusal::Host);
                log::warn!(
                    "Refused {} from {}: {refusal}",
                    req.url().path(),
                    req.peer_addr().unwrap_or("unknown")
                );
                plain(StatusCode::Forbidden, &format!("forbidden: {refusal}\n"))
            }
            None => next.run(req).await,
        };
        for (name, value) in csp::COMMON {
            res.insert_header(name, value);
        }
        if res.header("Content-Security-Policy").is_none() {
            res.insert_header("Content-Security-Policy", csp::NOT_A_PAGE);
        }
        Ok(res)
    }
}

fn is_probe(path: &str, base: &str) -> bool {
    let rel = match path.strip_prefix(base) {
        Some(rel) if !base.is_empty() && rel.starts_with('/') => rel,
        _ => path,
    };
    matches!(rel, "/healthz" | "/readyz" | "/metrics")
}

/// Alive: the process answers.
async fn healthz(_req: Req) -> tide::Result {
    Ok(plain(StatusCode::Ok, "ok\n"))
}

/// Ready for new sessions: not while shutting down, so a rolling update
/// takes this pod out of the Service before its sockets close.
async fn readyz(req: Req) -> tide::Result {
    if req.state().registry.is_shutting_down() {
        Ok(plain(StatusCode::ServiceUnavailable, "shutting down\n"))
    } else {
        Ok(plain(StatusCode::Ok, "ready\n"))
    }
}

async fn metrics(req: Req) -> tide::Result {
    Ok(Response::builder(StatusCode::Ok)
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(req.state().registry.metrics().render())
        .build())
}

/// Who passed the authentication check.
struct Authorized {
    /// A `Set-Cookie` value to attach to the answer.
    cookie: Option<String>,
    /// Whom `--max-sessions-per-client` counts: the authenticated user,
    /// else the client's address (behind any trusted proxy).
    client: String,
}

/// Runs the authentication check. `Err` is the response to send instead.
async fn authorize(req: &Req) -> Result<Authorized, Box<Response>> {
    let state = req.state();
    let authorization = header(req, "Authorization");
    let cookie = header(req, "Cookie");
    let proxy_user = state.auth.proxy_header().and_then(|h| header(req, h));
    let peer = req
        .peer_addr()
        .and_then(|p| p.parse::<SocketAddr>().ok())
        .map(|a| a.ip());
    let forwarded_for = header(req, "X-Forwarded-For");
    let presented = Presented {
        authorization: authorization.as_deref(),
        cookie: cookie.as_deref(),
        proxy_user: proxy_user.as_deref(),
        peer,
        client: auth::client_ip(peer, forwarded_for.as_deref(), state.auth.trusted_proxies()),
    };
    let challenge = || {
        let mut res = plain(StatusCode::Unauthorized, "authentication required\n");
        res.insert_header(
            "WWW-Authenticate",
            "Basic realm=\"webterm\", charset=\"UTF-8\"",
        );
        Box::new(res)
    };
    // A Unix socket's peers have no address, and none is believed from
    // X-Forwarded-For over it (it is no --trusted-proxy): they count as one
    // client, "unix", unless authenticated.
    let client = match presented.client {
        Some(ip) => format!("address {ip}"),
        None if req.ext::<Transport>() == Some(&Transport::Unix) => UNIX_PEER.to_string(),
        None => "an unknown address".to_string(),
    };
    match state.auth.check(&presented) {
        Decision::Allow { new_token, user } => Ok(Authorized {
            cookie: new_token.map(|t| {
                let secure = header(req, "X-Forwarded-Proto")
                    .is_some_and(|p| p.eq_ignore_ascii_case("https"))
                    || req.ext::<Transport>() == Some(&Transport::Tls);
                auth::cookie_header(&t, &format!("{}/", state.base_path), secure)
            }),
            client: user.map(|u| format!("user {u}")).unwrap_or(client),
        }),
        Decision::Challenge => {
            state.registry.metrics().refused(Refusal::Auth);
            Err(challenge())
        }
        Decision::Refused { delay } => {
            state.registry.metrics().refused(Refusal::Auth);
            state.registry.metrics().auth_failed();
            futures_timer::Delay::new(delay).await;
            Err(challenge())
        }
        Decision::UntrustedPeer => {
            state.registry.metrics().refused(Refusal::AuthHeader);
            log::warn!(
                "Refused {} from {}: it is not a --trusted-proxy, so its {} header is not believed",
                req.url().path(),
                req.peer_addr().unwrap_or("unknown"),
                state.auth.proxy_header().unwrap_or("proxy")
            );
            Err(Box::new(plain(
                StatusCode::Unauthorized,
                "authentication required\n",
            )))
        }
        Decision::MissingHeader(name) => {
            state.registry.metrics().refused(Refusal::AuthHeader);
            log::warn!(
                "Refused {} from {}: no {name} header (is the request bypassing the authenticating proxy?)",
                req.url().path(),
                req.peer_addr().unwrap_or("unknown")
            );
            Err(Box::new(plain(
                StatusCode::Unauthorized,
                "authentication required\n",
            )))
        }
    }
}

/// Applies `authorize` to a handler's response.
async fn with_auth(req: &Req, respond: impl FnOnce() -> Response + Send) -> Response {
    match authorize(req).await {
        Ok(Authorized { cookie, .. }) => {
            let mut res = respond();
            if let Some(c) = cookie {
                res.insert_header("Set-Cookie", c);
            }
            res
        }
        Err(denied) => *denied,
    }
}

async fn api_sessions(req: Req) -> tide::Result {
    Ok(with_auth(&req, || {
        Response::builder(StatusCode::Ok)
            .content_type("application/json")
            .body(crate::api::list(&req.state().registry))
            .build()
    })
    .await)
}

/// `DELETE /api/sessions/:id`: ends one session through its normal teardown.
async fn api_kill(req: Req) -> tide::Result {
    // Browsers cannot send a cross-site DELETE without a CORS preflight we
    // never answer, but check Origin anyway, as for the socket.
    if let Err(refusal) = origin::check(
        header(&req, "Origin").as_deref(),
        header(&req, "Host").as_deref(),
        &req.state().allowed_origins,
    ) {
        req.state().registry.metrics().refused(Refusal::Origin);
        return Ok(plain(
            StatusCode::Forbidden,
            &format!("forbidden: {refusal}\n"),
        ));
    }
    Ok(with_auth(&req, || {
        let id = req.param("id").unwrap_or("");
        match req.state().registry.session(id) {
            Some(h) => {
                log::info!(
                    "Session {id} (pid {}) ended by an operator from {}",
                    h.pid,
                    req.peer_addr().unwrap_or("unknown")
                );
                h.request_kill();
                Response::builder(StatusCode::Accepted)
                    .content_type("application/json")
                    .body(serde_json::to_string(&crate::api::row(&h)).unwrap_or_default())
                    .build()
            }
            None => plain(StatusCode::NotFound, "no such session\n"),
        }
    })
    .await)
}

async fn page_config(req: Req) -> tide::Result {
    Ok(with_auth(&req, || {
        Response::builder(StatusCode::Ok)
            .content_type("application/json")
            .header("Cache-Control", "no-cache")
            .body(req.state().page_config.clone())
            .build()
    })
    .await)
}

/// The page's settings: xterm.js options, with `renderer` lifted out because
/// it chooses an addon rather than configuring the terminal.
pub fn render_page_config(term_options: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut terminal = term_options.clone();
    let renderer = terminal.remove("renderer");
    serde_json::json!({ "terminal": terminal, "renderer": renderer }).to_string()
}

fn shutting_down() -> Response {
    let mut res = plain(StatusCode::ServiceUnavailable, "webterm is shutting down\n");
    res.insert_header("Retry-After", "5");
    res
}

/// A page file: gzipped when the client takes it, with an entity tag, and
/// `no-cache` so the browser asks each time: a reload costs a 304 per file.
async fn asset(req: Req) -> tide::Result {
    let state = req.state();
    if state.registry.is_shutting_down() {
        return Ok(shutting_down());
    }
    let path = req.url().path();
    let rel = path.strip_prefix(state.base_path.as_str()).unwrap_or(path);
    let gzip_ok = header(&req, "Accept-Encoding").is_some_and(|v| crate::assets::accepts_gzip(&v));
    let if_none_match = header(&req, "If-None-Match");
    Ok(with_auth(&req, || {
        match crate::assets::lookup(rel, state.assets_dir.as_deref(), gzip_ok) {
            Some(a) => {
                let fresh = if_none_match
                    .as_deref()
                    .is_some_and(|v| crate::assets::etag_matches(v, &a.etag));
                let mut res = if fresh {
                    Response::new(StatusCode::NotModified)
                } else {
                    let mut res = Response::new(StatusCode::Ok);
                    res.set_body(a.body.into_owned());
                    if a.gzip {
                        res.insert_header("Content-Encoding", "gzip");
                    }
                    res
                };
                // Also on a 304: a cache takes its headers over the stored ones.
                res.set_content_type(a.content_type);
                res.insert_header("ETag", a.etag);
                res.insert_header("Cache-Control", "no-cache");
                res.insert_header("Vary", "Accept-Encoding");
                res.insert_header("X-Content-Type-Options", "nosniff");
                if a.content_type.starts_with("text/html") {
                    // The policy hashes the page's import map: from the
                    // page itself, not its gzipped form.
                    let plain = crate::assets::lookup(rel, state.assets_dir.as_deref(), false);
                    if let Some(page) = plain {
                        res.insert_header("Content-Security-Policy", csp::page_policy(&page.body));
                    }
                }
                res
            }
            None => plain(StatusCode::NotFound, "not found\n"),
        }
    })
    .await)
}

fn plain(status: StatusCode, body: &str) -> Response {
    Response::builder(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.to_string())
        .build()
}

fn header(req: &Req, name: &str) -> Option<String> {
    let values = req.header(HeaderName::from(name))?;
    Some(
        values
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// `GET /ws`: checks the handshake and the origin, then upgrades and hands
/// the connection to a session.
async fn websocket(req: Req) -> tide::Result {
    let is_upgrade = header(&req, "Upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        && header(&req, "Connection").is_some_and(|c| {
            c.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        });
    if !is_upgrade {
        let mut res = plain(
            StatusCode::UpgradeRequired,
            "this endpoint speaks WebSocket only\n",
        );
        res.insert_header("Upgrade", "websocket");
        return Ok(res);
    }
    if header(&req, "Sec-WebSocket-Version").as_deref() != Some("13") {
        let mut res = plain(
            StatusCode::UpgradeRequired,
            "unsupported WebSocket version; this server speaks 13\n",
        );
        res.insert_header("Sec-WebSocket-Version", "13");
        return Ok(res);
    }
    let Some(key) = header(&req, "Sec-WebSocket-Key") else {
        return Ok(plain(StatusCode::BadRequest, "missing Sec-WebSocket-Key\n"));
    };
    let peer = req.peer_addr().unwrap_or("unknown").to_string();
    let state = Arc::clone(req.state());
    if state.registry.is_shutting_down() {
        return Ok(shutting_down());
    }
    if let Err(refusal) = origin::check(
        header(&req, "Origin").as_deref(),
        header(&req, "Host").as_deref(),
        &state.allowed_origins,
    ) {
        state.registry.metrics().refused(Refusal::Origin);
        log::warn!("Refused WebSocket from {peer}: {refusal}");
        return Ok(plain(
            StatusCode::Forbidden,
            &format!("forbidden: {refusal}\n"),
        ));
    }
    let client = match authorize(&req).await {
        Ok(a) => a.client,
        Err(denied) => {
            log::warn!("Refused WebSocket from {peer}: not authenticated");
            return Ok(*denied);
        }
    };

    let args = match url_args(&req, &state.settings.config.url_args) {
        Ok(args) => args,
        Err(why) => {
            state.registry.metrics().refused(Refusal::UrlArg);
            log::warn!("Refused WebSocket from {peer}: {why}");
            return Ok(plain(StatusCode::BadRequest, &format!("{why}\n")));
        }
    };
    if !args.is_empty() {
        // Not secrets (they are in the URL, which proxies log too), and
        // what a session was started with is worth knowing afterwards.
        log::info!("URL arguments from {peer} for a new session: {args:?}");
    }

    let (mode, subprotocol) = Mode::negotiate(header(&req, "Sec-WebSocket-Protocol").as_deref());
    let (rows, cols) = initial_size(&req);
    let (intent, resumable, idle_timeout) = socket_options(&req);

    let mut res = Response::new(StatusCode::SwitchingProtocols);
    res.insert_header("Upgrade", "websocket");
    res.insert_header("Connection", "Upgrade");
    res.insert_header(
        "Sec-WebSocket-Accept",
        derive_accept_key(key.trim().as_bytes()),
    );
    if let Some(p) = subprotocol {
        res.insert_header("Sec-WebSocket-Protocol", p);
    }
    let http_res: &mut tide::http::Response = res.as_mut();
    let upgrade = http_res.recv_upgrade().await;
    async_std::task::spawn(async move {
        let Some(conn) = upgrade.await else {
            log::debug!("WebSocket upgrade from {peer} did not complete");
            return;
        };
        let io: Box<dyn crate::socket::Io> = Box::new(conn);
        let ws =
            WebSocketStream::from_raw_socket(io, Role::Server, Some(protocol::websocket_config()))
                .await;
        let request = session::Request {
            mode,
            peer,
            client,
            rows,
            cols,
            intent,
            resumable,
            idle_timeout,
            args,
        };
        session::serve(
            ws,
            request,
            Arc::clone(&state.settings),
            Arc::clone(&state.registry),
        )
        .await;
    });
    Ok(res)
}

/// The socket URL's other options. None of them reaches a command line
/// (only `arg.NAME`, through `url_args`, can):
/// `resume=ID` and `view=ID` name a session (the secret that proves the
/// right to it comes in the first message, not the URL, which proxies log),
/// `resumable=1` says the client can reattach, and `idle_timeout=10m` asks
/// for a per-user idle timeout (clamped to `--max-idle-timeout`).
fn socket_options(req: &Req) -> (session::Intent, bool, Option<std::time::Duration>) {
    let mut intent = session::Intent::New;
    let mut resumable = false;
    let mut idle_timeout = None;
    let is_id = |v: &str| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit());
    for (k, v) in req.url().query_pairs() {
        match k.as_ref() {
            "resume" if is_id(&v) => intent = session::Intent::Claim(Claim::Resume, v.into_owned()),
            "view" if is_id(&v) => intent = session::Intent::Claim(Claim::View, v.into_owned()),
            "resumable" => resumable = v == "1" || v == "true",
            "idle_timeout" => match crate::config::parse_duration(&v) {
                Ok(d) => idle_timeout = Some(d),
                Err(e) => log::warn!("ignoring idle_timeout={v:?}: it {e}"),
            },
            _ => {}
        }
    }
    (intent, resumable, idle_timeout)
}

/// `?arg.NAME=VALUE` on the socket URL: arguments for the command of a new
/// session, only for the names the operator allowed (`--url-arg`), and in
/// the operator's order, not the URL's. Each value becomes one argv entry
/// (no shell). Refused, so that the client hears why rather than getting
/// a different command than it asked for: a name not allowed, a name
/// given twice, a value over `URL_ARG_MAX` bytes, a control character
/// (NUL cannot be passed at all; newlines and escapes fool logs and
/// terminals), and a value starting with '-', which the program would
/// read as an option (`ssh -oProxyCommand=...` runs a shell command).
/// An empty value counts as not given.
fn url_args(req: &Req, allowed: &[String]) -> Result<Vec<String>, String> {
    let mut given: Vec<(usize, String)> = Vec::new();
    for (k, v) in req.url().query_pairs() {
        let Some(name) = k.strip_prefix("arg.") else {
            continue;
        };
        let Some(i) = allowed.iter().position(|a| a == name) else {
            return Err(if allowed.is_empty() {
                format!("URL argument {name:?} refused: this server takes none (--url-arg)")
            } else {
                format!(
                    "URL argument {name:?} refused: this server takes only {}",
                    allowed.join(", ")
                )
            });
        };
        if given.iter().any(|(j, _)| *j == i) {
            return Err(format!("URL argument {name:?} given twice"));
        }
        if v.len() > crate::config::URL_ARG_MAX {
            return Err(format!(
                "URL argument {name:?} refused: longer than {} bytes",
                crate::config::URL_ARG_MAX
            ));
        }
        if v.chars().any(char::is_control) {
            return Err(format!(
                "URL argument {name:?} refused: it holds a control character"
            ));
        }
        if v.starts_with('-') {
            return Err(format!(
                "URL argument {name:?} refused: it starts with '-', which the command would take for an option"
            ));
        }
        if !v.is_empty() {
            given.push((i, v.into_owned()));
        }
    }
    given.sort_by_key(|(i, _)| *i);
    Ok(given.into_iter().map(|(_, v)| v).collect())
}

/// `?rows=R&cols=C` on the socket URL lets the page start the PTY at the
/// window's size, so the first prompt is drawn for it. These are sizes, not
/// arguments.
fn initial_size(req: &Req) -> (u16, u16) {
    let (mut rows, mut cols) = (24u16, 80u16);
    for (k, v) in req.url().query_pairs() {
        let n = v
            .parse::<u64>()
            .ok()
            .map(|n| n.min(u64::from(u16::MAX)) as u16);
        match (k.as_ref(), n) {
            ("rows", Some(n)) => rows = n,
            ("cols", Some(n)) => cols = n,
            _ => {}
        }
    }
    protocol::accept_size(rows, cols, "initial size").unwrap_or((24, 80))
}
