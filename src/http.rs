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
use crate::cluster::{self, proof, Cluster, Route};
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
    /// The other replicas, and where each session lives.
    pub cluster: Arc<Cluster>,
}

/// A request a peer replica proved it sent (see `cluster::proof`): the
/// peer checked Host, Origin and the user's credentials already, and says
/// whom it speaks for.
#[derive(Clone)]
struct FromPeer {
    node: String,
    client: String,
    remote: String,
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
    app.at(&format!("{base}/api/peer")).get(api_peer);
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
    flush_h1_timers();
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

/// Has async-h1's reactor forget the header timers of connections that
/// are done with.
///
/// async-h1 times each request's headers with a timer on its own reactor
/// (async-io 1, not the one the rest of webterm runs on). A timer that is
/// dropped is only queued for removal, and that reactor reads its queue
/// when it next wakes: at the next new timer, else at the oldest deadline,
/// 60 s on. Until then each entry keeps its connection task's allocation
/// alive. After a burst of sessions, with no request coming, those small
/// survivors sat among the freed sessions' memory and kept glibc from
/// giving about 1.7 MB back (500 sessions opened and closed at once).
/// Registering a timer wakes that reactor, which then empties its queue;
/// this one is polled with a waker that holds nothing and dropped at once.
fn flush_h1_timers() {
    use std::future::Future as _;
    use std::task::{Context, Waker};
    let mut timer = async_io_h1::Timer::after(std::time::Duration::from_secs(3600));
    let _ = std::pin::Pin::new(&mut timer).poll(&mut Context::from_waker(Waker::noop()));
}

/// Runs around every route: the Host check before anything else, and the
/// security headers on whatever the route answers.
struct Guard;

#[tide::utils::async_trait]
impl tide::Middleware<Arc<State>> for Guard {
    async fn handle(&self, mut req: Req, next: tide::Next<'_, Arc<State>>) -> tide::Result {
        let state = Arc::clone(req.state());
        let mut res = match check_peer(&req) {
            Err(why) => {
                state.registry.metrics().refused(Refusal::Peer);
                log::warn!(
                    "Refused {} from {}: {why}",
                    req.url().path(),
                    req.peer_addr().unwrap_or("unknown")
                );
                plain(StatusCode::Forbidden, &format!("forbidden: {why}\n"))
            }
            Ok(Some(peer)) => {
                req.set_ext(peer);
                next.run(req).await
            }
            Ok(None) => {
                // Probes and metrics are not checked: they hand out no shell
                // and no user data, and kubelet, Prometheus and `webterm
                // health` ask with whatever Host they were given (a pod IP, a
                // Service name), which the operator should not have to list.
                let checked = !is_probe(req.url().path(), &state.base_path);
                let refusal = if checked {
                    state
                        .hosts
                        .check(header(&req, "Host").as_deref(), req.local_addr())
                        .err()
                } else {
                    None
                };
                match refusal {
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
                }
            }
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

/// A request with a peer proof: `Ok(Some)` if the proof holds, `Err` if it
/// does not (the request is refused whole, not served as a user's).
fn check_peer(req: &Req) -> Result<Option<FromPeer>, &'static str> {
    let Some(proof_header) = header(req, proof::HEADER) else {
        return Ok(None);
    };
    let client = header(req, proof::CLIENT_HEADER).unwrap_or_default();
    let remote = header(req, proof::REMOTE_HEADER).unwrap_or_default();
    let target = target_of(req);
    let node = req.state().cluster.verify(
        &proof_header,
        &proof::Request {
            method: req.method().as_ref(),
            target: &target,
            client: &client,
            remote: &remote,
        },
    )?;
    Ok(Some(FromPeer {
        node,
        client,
        remote,
    }))
}

/// The request's path and query, as a peer signed them.
fn target_of(req: &Req) -> String {
    match req.url().query() {
        Some(q) => format!("{}?{q}", req.url().path()),
        None => req.url().path().to_string(),
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

/// Ready for new sessions: not while draining or shutting down, so a
/// rolling update takes this pod out of the Service before its sockets close.
async fn readyz(req: Req) -> tide::Result {
    let registry = &req.state().registry;
    if registry.is_shutting_down() {
        Ok(plain(StatusCode::ServiceUnavailable, "shutting down\n"))
    } else if registry.is_draining() {
        Ok(plain(StatusCode::ServiceUnavailable, "draining\n"))
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

/// `GET /api/sessions`: this replica's sessions, or with `?cluster=1`
/// every replica's (each peer asked with a proof, in parallel).
async fn api_sessions(req: Req) -> tide::Result {
    let from_peer = req.ext::<FromPeer>().is_some();
    if !from_peer {
        if let Err(denied) = authorize(&req).await {
            return Ok(*denied);
        }
    }
    let state = Arc::clone(req.state());
    let cluster_wide = !from_peer
        && req
            .url()
            .query_pairs()
            .any(|(k, v)| k == "cluster" && v == "1");
    let local = {
        let state = Arc::clone(&state);
        async_std::task::spawn_blocking(move || {
            crate::api::list(
                &state.registry,
                state.cluster.node(),
                &state.settings.containment,
            )
        })
        .await
    };
    let mut list = local;
    if cluster_wide {
        let target = format!("{}/api/sessions", state.base_path);
        let asks = state.cluster.peers().into_iter().map(|p| {
            // A proof per peer: each is good at the replica it names, once.
            let headers = state.cluster.sign(
                &p.node,
                &proof::Request {
                    method: "GET",
                    target: &target,
                    client: "peer",
                    remote: "peer",
                },
            );
            let target = &target;
            async move {
                let answer =
                    crate::fetch::request(p.addr, "GET", target, &headers, cluster::PEER_TIMEOUT)
                        .await
                        .and_then(|(status, body)| match status {
                            200 => serde_json::from_str::<crate::api::SessionList>(&body)
                                .map_err(|e| format!("unreadable session list: {e}")),
                            other => Err(format!("answered {other}")),
                        });
                (p, answer)
            }
        });
        for (p, answer) in futures_util::future::join_all(asks).await {
            match answer {
                Ok(theirs) => {
                    list.sessions.extend(theirs.sessions);
                    list.max_sessions += theirs.max_sessions;
                }
                Err(why) => list
                    .unreachable
                    .push(format!("{} ({}): {why}", p.node, p.addr)),
            }
        }
    }
    Ok(Response::builder(StatusCode::Ok)
        .content_type("application/json")
        .body(serde_json::to_string_pretty(&list).unwrap_or_default())
        .build())
}

/// `DELETE /api/sessions/:id`: ends one session through its normal
/// teardown, on whichever replica holds it.
async fn api_kill(req: Req) -> tide::Result {
    let from_peer = req.ext::<FromPeer>().cloned();
    if from_peer.is_none() {
        // Browsers cannot send a cross-site DELETE without a CORS preflight
        // we never answer, but check Origin anyway, as for the socket.
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
        if let Err(denied) = authorize(&req).await {
            return Ok(*denied);
        }
    }
    let state = req.state();
    let id = req.param("id").unwrap_or("");
    let who = match &from_peer {
        Some(p) => format!("{} via {}", p.remote, p.node),
        None => req.peer_addr().unwrap_or("unknown").to_string(),
    };
    let route = if from_peer.is_some() {
        Route::Local
    } else {
        state.cluster.locate(id, state.registry.metrics()).await
    };
    Ok(match route {
        Route::Local => match state.registry.session(id) {
            Some(h) => {
                log::info!(
                    "Session {id} (pid {}) ended by an operator from {who}",
                    h.pid
                );
                h.request_kill();
                let row = crate::api::row(&h, state.cluster.node(), &state.settings.containment);
                Response::builder(StatusCode::Accepted)
                    .content_type("application/json")
                    .body(serde_json::to_string(&row).unwrap_or_default())
                    .build()
            }
            None => plain(StatusCode::NotFound, "no such session\n"),
        },
        Route::Peer(owner) => {
            let target = format!("{}/api/sessions/{id}", state.base_path);
            let headers = state.cluster.sign(
                &owner.node,
                &proof::Request {
                    method: "DELETE",
                    target: &target,
                    client: "operator",
                    remote: &who,
                },
            );
            match crate::fetch::request(
                owner.addr,
                "DELETE",
                &target,
                &headers,
                cluster::PEER_TIMEOUT,
            )
            .await
            {
                Ok((status, body)) => Response::builder(status)
                    .content_type(if status == 202 {
                        "application/json"
                    } else {
                        "text/plain"
                    })
                    .body(body)
                    .build(),
                Err(why) => plain(
                    StatusCode::BadGateway,
                    &format!(
                        "cannot reach {}, which holds the session: {why}\n",
                        owner.node
                    ),
                ),
            }
        }
        Route::Unknown => plain(
            StatusCode::NotFound,
            "no such session (no known replica holds it)\n",
        ),
    })
}

/// `GET /api/peer?nonce=N`: who this replica is, for a peer's discovery.
/// Only peers ask, and the answer proves we hold the cluster secret.
async fn api_peer(req: Req) -> tide::Result {
    if req.ext::<FromPeer>().is_none() {
        return Ok(plain(
            StatusCode::Forbidden,
            "forbidden: for peer replicas only\n",
        ));
    }
    let nonce = req
        .url()
        .query_pairs()
        .find_map(|(k, v)| (k == "nonce").then(|| v.into_owned()))
        .unwrap_or_default();
    Ok(match req.state().cluster.identity(&nonce) {
        Some(id) => Response::builder(StatusCode::Ok)
            .content_type("application/json")
            .body(serde_json::to_string(&id).unwrap_or_default())
            .build(),
        None => plain(
            StatusCode::Forbidden,
            "forbidden: this replica has no --peers\n",
        ),
    })
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
/// it chooses an addon rather than configuring the terminal; file transfer,
/// `null` when turned off (the page then does not load trzsz), with its
/// upload limit in bytes (`null`: none). `node` is this replica's tag when
/// it has peers: the page asks for its new session there (`?node=`),
/// wherever its socket lands.
pub fn render_page_config(config: &crate::config::Config, node: Option<&str>) -> String {
    let mut terminal = config.term_options.clone();
    let renderer = terminal.remove("renderer");
    let transfer =
        (!config.no_file_transfer).then(|| serde_json::json!({ "max_upload": config.max_upload }));
    serde_json::json!({
        "terminal": terminal,
        "renderer": renderer,
        "node": node,
        "file_transfer": transfer,
    })
    .to_string()
}

fn shutting_down() -> Response {
    let mut res = plain(StatusCode::ServiceUnavailable, "webterm is shutting down\n");
    res.insert_header("Retry-After", "5");
    res
}

/// A page file: gzipped when the client takes it, with an entity tag, and
/// `no-cache` so the browser asks each time: a reload costs a 304 per file.
/// Still served during a drain: a page reloaded then reattaches to its
/// session, which is still running here.
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
                } else if rel.ends_with(csp::WORKER_SUFFIX) {
                    res.insert_header("Content-Security-Policy", csp::WORKER);
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
    let state = Arc::clone(req.state());
    let (intent, resumable, idle_timeout) = socket_options(&req);
    // During a drain only sockets for running sessions come in: a reattach
    // or a viewer. A new session is refused before the upgrade, as in the
    // shutdown; a failed reattach is refused after it (see `admit`).
    if state.registry.is_shutting_down()
        || (state.registry.is_draining() && intent == session::Intent::New)
    {
        return Ok(shutting_down());
    }
    let from_peer = req.ext::<FromPeer>().cloned();
    let (peer, client) = match &from_peer {
        Some(p) => (format!("{} via {}", p.remote, p.node), p.client.clone()),
        None => {
            let peer = req.peer_addr().unwrap_or("unknown").to_string();
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
            match authorize(&req).await {
                Ok(a) => (peer, a.client),
                Err(denied) => {
                    log::warn!("Refused WebSocket from {peer}: not authenticated");
                    return Ok(*denied);
                }
            }
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
    // A peer's socket is always for this replica: never forwarded again.
    let route = if from_peer.is_some() {
        Route::Local
    } else {
        route_of(&req, &intent).await
    };
    // The URL arguments again, checked above, for an owner that starts the
    // session (every replica has the same --url-arg list).
    let arg_pairs: Vec<(String, String)> = req
        .url()
        .query_pairs()
        .filter(|(k, _)| k.starts_with("arg."))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();

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
    let deflate = if state.settings.config.no_compression {
        None
    } else {
        crate::deflate::negotiate(header(&req, "Sec-WebSocket-Extensions").as_deref())
    };
    if let Some(answer) = deflate {
        res.insert_header("Sec-WebSocket-Extensions", answer);
    }
    let http_res: &mut tide::http::Response = res.as_mut();
    let upgrade = http_res.recv_upgrade().await;
    async_std::task::spawn(async move {
        let Some(conn) = upgrade.await else {
            log::debug!("WebSocket upgrade from {peer} did not complete");
            return;
        };
        let io: Box<dyn crate::socket::Io> = match deflate {
            Some(_) => Box::new(crate::deflate::Deflated::new(
                conn,
                protocol::MAX_MESSAGE_BYTES,
            )),
            None => Box::new(conn),
        };
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
        match route {
            Route::Local => serve_here(ws, request, &state).await,
            // Boxed: this task is sized for its largest branch, and the
            // relay's future is larger than a session's; every local
            // session would carry the difference for its whole life.
            Route::Peer(owner) => {
                Box::pin(forward(ws, request, &arg_pairs, subprotocol, owner, &state)).await
            }
            Route::Unknown => {
                log::warn!(
                    "Refused WebSocket from {}: no known replica holds the session it names",
                    request.peer
                );
                crate::socket::refuse(
                    ws,
                    protocol::close::OWNER_GONE,
                    "no server holds this session any more",
                    None,
                )
                .await;
            }
        }
    });
    Ok(res)
}

async fn serve_here(ws: crate::socket::Socket, request: session::Request, state: &State) {
    session::serve(
        ws,
        request,
        Arc::clone(&state.settings),
        Arc::clone(&state.registry),
    )
    .await;
}

/// Where a socket's session is: the session it names, or for a new one,
/// the replica that served the page (`?node=TAG`), if that one is known.
async fn route_of(req: &Req, intent: &session::Intent) -> Route {
    let state = req.state();
    if !state.cluster.enabled() {
        return Route::Local;
    }
    let metrics = state.registry.metrics();
    match intent {
        session::Intent::Claim(_, id) => state.cluster.locate(id, metrics).await,
        session::Intent::New => {
            let hint = req.url().query_pairs().find_map(|(k, v)| {
                (k == "node"
                    && v.len() == cluster::TAG_LEN
                    && v.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| v.into_owned())
            });
            match hint {
                Some(tag) => match state.cluster.locate(&tag, metrics).await {
                    Route::Unknown => Route::Local,
                    known => known,
                },
                None => Route::Local,
            }
        }
    }
}

/// Hands the socket to the replica that holds its session. A new session
/// whose replica cannot be reached starts here instead; a reattach or a
/// view is told that its session is gone.
async fn forward(
    ws: crate::socket::Socket,
    request: session::Request,
    arg_pairs: &[(String, String)],
    subprotocol: Option<&'static str>,
    owner: cluster::Peer,
    state: &State,
) {
    let args = if request.intent == session::Intent::New {
        arg_pairs
    } else {
        &[]
    };
    let target = forward_target(&state.base_path, &request, args);
    let headers = state.cluster.sign(
        &owner.node,
        &proof::Request {
            method: "GET",
            target: &target,
            client: &request.client,
            remote: &request.peer,
        },
    );
    match cluster::relay::connect(owner.addr, &target, &headers, subprotocol).await {
        Ok(socket) => {
            log::info!(
                "Forwarding WebSocket from {} to {} at {}",
                request.peer,
                owner.node,
                owner.addr
            );
            cluster::relay::run(
                ws,
                socket,
                &owner.node,
                state.settings.config.ping_interval,
                state.registry.metrics(),
            )
            .await;
        }
        Err(why) if request.intent == session::Intent::New => {
            log::warn!(
                "Cannot forward a new session to {} ({why}); starting it here",
                owner.node
            );
            serve_here(ws, request, state).await;
        }
        Err(why) => {
            log::warn!(
                "Cannot forward WebSocket from {} to {}: {why}",
                request.peer,
                owner.node
            );
            crate::socket::refuse(
                ws,
                protocol::close::OWNER_GONE,
                &format!(
                    "cannot reach the server holding this session ({})",
                    owner.node
                ),
                None,
            )
            .await;
        }
    }
}

/// The socket's path and query for the owner: what `socket_options`,
/// `initial_size` and `url_args` took from the browser's URL, rebuilt from
/// the parsed values only (nothing else passes through), and serialized by
/// the URL parser itself, so that the owner, parsing it, reads back the
/// very string the peer proof signed.
fn forward_target(base: &str, r: &session::Request, args: &[(String, String)]) -> String {
    let Ok(mut url) = tide::http::Url::parse(&format!("http://peer{base}/ws")) else {
        return format!("{base}/ws");
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("rows", &r.rows.to_string())
            .append_pair("cols", &r.cols.to_string());
        match &r.intent {
            session::Intent::New => {}
            session::Intent::Claim(Claim::Resume, id) => {
                q.append_pair("resume", id);
            }
            session::Intent::Claim(Claim::View, id) => {
                q.append_pair("view", id);
            }
        }
        if r.resumable {
            q.append_pair("resumable", "1");
        }
        if let Some(t) = r.idle_timeout {
            q.append_pair("idle_timeout", &format!("{}ms", t.as_millis()));
        }
        for (k, v) in args {
            q.append_pair(k, v);
        }
    }
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_config_carries_file_transfer() {
        let mut config = crate::config::Config {
            max_upload: Some(1 << 20),
            ..Default::default()
        };
        config
            .term_options
            .insert("renderer".into(), serde_json::json!("dom"));
        let page: serde_json::Value =
            serde_json::from_str(&render_page_config(&config, None)).unwrap();
        assert_eq!(page["renderer"], "dom");
        assert_eq!(page["terminal"], serde_json::json!({}));
        assert_eq!(page["file_transfer"]["max_upload"], 1 << 20);
        assert!(page["node"].is_null());
        let page: serde_json::Value =
            serde_json::from_str(&render_page_config(&config, Some("n1"))).unwrap();
        assert_eq!(page["node"], "n1");
        config.max_upload = None;
        let page: serde_json::Value =
            serde_json::from_str(&render_page_config(&config, None)).unwrap();
        assert!(page["file_transfer"]["max_upload"].is_null());
        assert!(page["file_transfer"].is_object());
        config.no_file_transfer = true;
        let page: serde_json::Value =
            serde_json::from_str(&render_page_config(&config, None)).unwrap();
        assert!(page["file_transfer"].is_null());
    }
}
