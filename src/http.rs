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

/// Serves `app` on already-bound listeners until the future is dropped.
pub async fn listen(
    app: tide::Server<Arc<State>>,
    listeners: Vec<async_std::net::TcpListener>,
) -> std::io::Result<()> {
    let mut all = tide::listener::ConcurrentListener::new();
    for l in listeners {
        all.add(l)?;
    }
    app.listen(all).await
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
    let client = match presented.client {
        Some(ip) => format!("address {ip}"),
        None => "an unknown address".to_string(),
    };
    match state.auth.check(&presented) {
        Decision::Allow { new_token, user } => Ok(Authorized {
            cookie: new_token.map(|t| {
                let secure = header(req, "X-Forwarded-Proto")
                    .is_some_and(|p| p.eq_ignore_ascii_case("https"))
                    || req.url().scheme() == "https";
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
/// it chooses an addon rather than configuring the terminal; and file
/// transfer, `null` when turned off (the page then does not load trzsz),
/// with its upload limit in bytes (`null`: none).
pub fn render_page_config(config: &crate::config::Config) -> String {
    let mut terminal = config.term_options.clone();
    let renderer = terminal.remove("renderer");
    let transfer =
        (!config.no_file_transfer).then(|| serde_json::json!({ "max_upload": config.max_upload }));
    serde_json::json!({ "terminal": terminal, "renderer": renderer, "file_transfer": transfer })
        .to_string()
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

/// The socket URL's other options. None of them reaches a command line:
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

/// `?rows=R&cols=C` on the socket URL lets the page start the PTY at the
/// window's size, so the first prompt is drawn for it. These are sizes, not
/// arguments: nothing from the URL reaches the command line.
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
        let page: serde_json::Value = serde_json::from_str(&render_page_config(&config)).unwrap();
        assert_eq!(page["renderer"], "dom");
        assert_eq!(page["terminal"], serde_json::json!({}));
        assert_eq!(page["file_transfer"]["max_upload"], 1 << 20);
        config.max_upload = None;
        let page: serde_json::Value = serde_json::from_str(&render_page_config(&config)).unwrap();
        assert!(page["file_transfer"]["max_upload"].is_null());
        assert!(page["file_transfer"].is_object());
        config.no_file_transfer = true;
        let page: serde_json::Value = serde_json::from_str(&render_page_config(&config)).unwrap();
        assert!(page["file_transfer"].is_null());
    }
}
