//! Authentication: who may open the page, its terminals and the sessions API.
//!
//! Off by default (the default bind is loopback). Two ways to turn it on:
//!
//! - **HTTP Basic** (`--credential`, `--credential-file`). Safari does not send
//!   Basic credentials on WebSocket requests, so a page load that passes Basic
//!   authentication also gets a cookie holding a token, and the socket is
//!   accepted with either. A token is signed, not stored: HMAC-SHA256 over the
//!   user, its expiry and the user's current password, with the key from
//!   `--secret-file`. Nothing is kept per login, so there is no cap on logins,
//!   a restart with the same key keeps users logged in, every replica sharing
//!   the key accepts every token, and changing a password (or removing the
//!   user) retires that user's tokens. Without `--secret-file` the key is
//!   random per process: a restart logs everyone out, and replicas do not
//!   accept each other's tokens.
//! - **A trusted proxy header** (`--auth-header Remote-User`): a proxy in
//!   front (Traefik forward-auth, an NGINX Proxy Manager access list) has
//!   authenticated the user and says who it is. Any client can send such a
//!   header, so it is believed only from `--trusted-proxy` addresses.
//!
//! Wrong passwords are logged (peer and user name, never the password),
//! counted, and answered only after a delay that doubles with each failure
//! from the same client; attempts a client makes while its delay runs are
//! refused without being checked, so parallel guessing gains nothing.
//!
//! `Authorization` is parsed here rather than with http-types' helpers, which
//! carry an unsoundness advisory, and every secret is compared in constant time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// The cookie that carries a token.
pub const COOKIE: &str = "webterm_auth";
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Tells this token format apart from any later one, inside the MAC too.
const TOKEN_VERSION: &str = "v1";
/// A shorter key would be the weakest part of the token.
pub const MIN_SECRET_BYTES: usize = 32;

/// The first wrong password waits this long; each further one doubles it.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A client that has not failed for this long starts over.
const BACKOFF_FORGET: Duration = Duration::from_secs(15 * 60);
/// Clients remembered at most, so a spray of addresses cannot grow memory.
const BACKOFF_PEERS: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// The token signing key. Its `Debug` hides it, since configurations get printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Secret {
    /// The contents of a key file. Surrounding whitespace is not part of the
    /// key: `kubectl create secret --from-file` keeps an editor's newline.
    pub fn from_file_contents(bytes: &[u8]) -> Result<Secret, String> {
        let key = bytes.trim_ascii();
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "holds {} bytes; a key needs at least {MIN_SECRET_BYTES} (make one with: head -c 48 /dev/urandom | base64)",
                key.len()
            ));
        }
        Ok(Secret(key.to_vec()))
    }

    fn random() -> Secret {
        let mut key = vec![0u8; 32];
        // getrandom fails only without any entropy source, where nothing
        // else in the process would be safe either.
        if getrandom::fill(&mut key).is_err() {
            log::error!("no randomness for the token key: tokens are disabled");
            return Secret(Vec::new());
        }
        Secret(key)
    }

    /// An HMAC-SHA256 over `parts` under `label`. The label keeps the uses
    /// of the one key apart (a peer's proof can never pass for a login
    /// token), and each part goes in after its length, so no two lists of
    /// parts share an input.
    pub fn tag(&self, label: &str, parts: &[&[u8]]) -> Option<[u8; 32]> {
        Some(self.mac_of(label, parts)?.finalize().into_bytes().into())
    }

    /// Whether `tag` is `Secret::tag` of the same input, in constant time.
    pub fn verify(&self, label: &str, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.mac_of(label, parts)
            .is_some_and(|mac| mac.verify_slice(tag).is_ok())
    }

    fn mac_of(&self, label: &str, parts: &[&[u8]]) -> Option<HmacSha256> {
        if self.0.is_empty() {
            return None;
        }
        let mut mac = HmacSha256::new_from_slice(&self.0).ok()?;
        mac.update(b"webterm-label");
        mac.update(&(label.len() as u64).to_be_bytes());
        mac.update(label.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Some(mac)
    }
}

/// An address range from `--trusted-proxy`: `10.42.0.0/16`, `fd00::/8`, or
/// one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad =
            || "is not an address range such as 10.42.0.0/16, fd00::/8 or 127.0.0.1".to_string();
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let host_bits = width - u32::from(prefix);
    host_bits >= width || (a >> host_bits) == (b >> host_bits)
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The client behind a request: the peer itself, unless the peer is a
/// trusted proxy, in which case the nearest address in `X-Forwarded-For`
/// that is not one of our proxies. Behind Traefik every peer is Traefik, and
/// backing off "the peer" would lock every user out for one guesser.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.iter().any(|c| c.contains(peer)) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or("").rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !trusted.iter().any(|c| c.contains(client)) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

/// How authentication is configured.
#[derive(Debug, Default)]
pub struct Settings {
    pub credentials: Vec<(String, String)>,
    pub header: Option<String>,
    /// `None`: a random key for this process.
    pub secret: Option<Secret>,
    pub trusted_proxies: Vec<Cidr>,
}

#[derive(Debug)]
enum Mode {
    Open,
    Basic(Vec<(String, String)>),
    ProxyHeader(String),
}

#[derive(Debug)]
pub struct Auth {
    mode: Mode,
    key: Secret,
    trusted: Vec<Cidr>,
    backoff: Backoff,
}

/// What the request carried that could identify a user.
#[derive(Default, Debug)]
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
    /// The value of the `--auth-header` header, when configured.
    pub proxy_user: Option<&'a str>,
    /// The address the request came from (the TCP peer).
    pub peer: Option<IpAddr>,
    /// The client behind any trusted proxy (see [`client_ip`]).
    pub client: Option<IpAddr>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead. `user` is None when authentication is off; `new_token`
    /// should be set as the cookie (Basic mode, after a password check).
    Allow {
        user: Option<String>,
        new_token: Option<String>,
    },
    /// 401 with a Basic challenge: nothing (or an expired or foreign token)
    /// was presented.
    Challenge,
    /// A failed login: wait `delay`, then answer as for `Challenge`.
    Refused { delay: Duration },
    /// 401: the proxy header is missing (the proxy was bypassed or misconfigured).
    MissingHeader(String),
    /// 401: the proxy header came from an address not in `--trusted-proxy`.
    UntrustedPeer,
}

impl Auth {
    pub fn new(settings: Settings) -> Auth {
        let mode = match (settings.credentials.is_empty(), settings.header) {
            (_, Some(h)) => Mode::ProxyHeader(h),
            (false, None) => Mode::Basic(settings.credentials),
            (true, None) => Mode::Open,
        };
        Auth {
            mode,
            key: settings.secret.unwrap_or_else(Secret::random),
            trusted: settings.trusted_proxies,
            backoff: Backoff::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        !matches!(self.mode, Mode::Open)
    }

    /// The header to read for `Presented::proxy_user`, in proxy mode.
    pub fn proxy_header(&self) -> Option<&str> {
        match &self.mode {
            Mode::ProxyHeader(h) => Some(h),
            _ => None,
        }
    }

    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.trusted
    }

    pub fn check(&self, p: &Presented<'_>) -> Decision {
        match &self.mode {
            Mode::Open => Decision::Allow {
                user: None,
                new_token: None,
            },
            Mode::ProxyHeader(name) => {
                let trusted = p
                    .peer
                    .is_some_and(|ip| self.trusted.iter().any(|c| c.contains(ip)));
                if !trusted {
                    return Decision::UntrustedPeer;
                }
                match p.proxy_user.map(str::trim).filter(|u| !u.is_empty()) {
                    Some(user) => Decision::Allow {
                        user: Some(user.to_string()),
                        new_token: None,
                    },
                    None => Decision::MissingHeader(name.clone()),
                }
            }
            Mode::Basic(creds) => {
                if let Some((user, pass)) = p.authorization.and_then(parse_basic) {
                    return self.password_login(creds, p, &user, &pass);
                }
                match p
                    .cookie
                    .and_then(cookie_token)
                    .and_then(|t| self.verify(creds, t, now_secs()))
                {
                    Some(user) => Decision::Allow {
                        user: Some(user),
                        new_token: None,
                    },
                    None => Decision::Challenge,
                }
            }
        }
    }

    fn password_login(
        &self,
        creds: &[(String, String)],
        p: &Presented<'_>,
        user: &str,
        pass: &str,
    ) -> Decision {
        let client = p.client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let now = Instant::now();
        if let Some(wait) = self.backoff.waiting(client, now) {
            // Debug only: a client firing logins in parallel would flood the log.
            log::debug!(
                "Login as {user:?} from {client} refused unchecked: still backing off for {}ms",
                wait.as_millis()
            );
            return Decision::Refused { delay: wait };
        }
        // Check every entry, so timing does not reveal which user exists.
        let mut found = false;
        for (u, pw) in creds {
            found |= ct_eq(u.as_bytes(), user.as_bytes()) & ct_eq(pw.as_bytes(), pass.as_bytes());
        }
        if !found {
            let (failures, delay) = self.backoff.failed(client, now);
            log::warn!(
                "Failed login as {user:?} from {client} ({failures} in a row; answering in {}ms)",
                delay.as_millis()
            );
            return Decision::Refused { delay };
        }
        self.backoff.succeeded(client);
        let now = now_secs();
        let has_token = p
            .cookie
            .and_then(cookie_token)
            .and_then(|t| self.verify(creds, t, now))
            .is_some_and(|u| u == user);
        Decision::Allow {
            user: Some(user.to_string()),
            new_token: (!has_token)
                .then(|| self.sign(user, pass, now + TOKEN_LIFETIME.as_secs()))
                .flatten(),
        }
    }

    /// `v1.<user, base64url>.<expiry, Unix seconds>.<HMAC, base64url>`.
    fn sign(&self, user: &str, pass: &str, expiry: u64) -> Option<String> {
        let mac = self.mac(user, pass, expiry)?;
        Some(format!(
            "{TOKEN_VERSION}.{}.{expiry}.{}",
            URL_SAFE_NO_PAD.encode(user),
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }

    fn mac(&self, user: &str, pass: &str, expiry: u64) -> Option<HmacSha256> {
        if self.key.0.is_empty() {
            return None;
        }
        let mut mac = HmacSha256::new_from_slice(&self.key.0).ok()?;
        // Lengths first, so no two (user, expiry, password) can share an input.
        let pass_hash = Sha256::digest(pass.as_bytes());
        mac.update(TOKEN_VERSION.as_bytes());
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(&expiry.to_be_bytes());
        mac.update(&pass_hash);
        Some(mac)
    }

    /// The user a token was issued to, if it is ours, unexpired, and the
    /// user still has the password it was issued under.
    fn verify(&self, creds: &[(String, String)], token: &str, now: u64) -> Option<String> {
        let mut parts = token.split('.');
        let (version, user, expiry, sig) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != TOKEN_VERSION || parts.next().is_some() {
            return None;
        }
        let user = String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?;
        let expiry: u64 = expiry.parse().ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if expiry <= now {
            return None;
        }
        let (_, pass) = creds.iter().find(|(u, _)| *u == user)?;
        self.mac(&user, pass, expiry)?.verify_slice(&sig).ok()?;
        Some(user)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Failed logins per client: how many in a row, and until when the client
/// must wait.
#[derive(Debug, Default)]
struct Backoff {
    peers: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    until: Instant,
    last: Instant,
}

impl Backoff {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How much longer `client` must wait, if it is backing off.
    fn waiting(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let table = self.table();
        let f = table.get(&client)?;
        (f.until > now).then(|| f.until - now)
    }

    /// Records a failure; returns the failures in a row and the delay.
    fn failed(&self, client: IpAddr, now: Instant) -> (u32, Duration) {
        let mut table = self.table();
        if table.len() >= BACKOFF_PEERS && !table.contains_key(&client) {
            table.retain(|_, f| now.duration_since(f.last) < BACKOFF_FORGET);
            if table.len() >= BACKOFF_PEERS {
                if let Some(oldest) = table.iter().min_by_key(|(_, f)| f.last).map(|(ip, _)| *ip) {
                    table.remove(&oldest);
                }
            }
        }
        let previous = table
            .get(&client)
            .filter(|f| now.duration_since(f.last) < BACKOFF_FORGET)
            .map_or(0, |f| f.count);
        let count = previous.saturating_add(1);
        let delay = backoff_delay(count);
        table.insert(
            client,
            Failures {
                count,
                until: now + delay,
                last: now,
            },
        );
        (count, delay)
    }

    fn succeeded(&self, client: IpAddr) {
        self.table().remove(&client);
    }
}

/// 250 ms, 500 ms, 1 s, 2 s ... up to 10 s.
fn backoff_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// The `Set-Cookie` value for a new token.
pub fn cookie_header(token: &str, path: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        TOKEN_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Basic dXNlcjpwYXNz` -> ("user", "pass"). The scheme is case-insensitive
/// (RFC 7617); anything malformed is simply not a credential.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

fn cookie_token(cookies: &str) -> Option<&str> {
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// Equality whose time depends only on the length of `a`, not on where the
/// inputs differ.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    fn basic_auth(creds: &[(&str, &str)], key: &[u8]) -> Auth {
        Auth::new(Settings {
            credentials: creds
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            secret: Some(Secret::from_file_contents(key).unwrap()),
            ..Default::default()
        })
    }

    fn login(auth: &Auth, user: &str, pass: &str) -> Decision {
        let header = basic(user, pass);
        auth.check(&Presented {
            authorization: Some(&header),
            client: Some("192.0.2.1".parse().unwrap()),
            ..Default::default()
        })
    }

    fn with_cookie(auth: &Auth, token: &str) -> Decision {
        let cookie = format!("other=1; {COOKIE}={token}");
        auth.check(&Presented {
            cookie: Some(&cookie),
            ..Default::default()
        })
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn open_allows_everyone() {
        assert_eq!(
            Auth::new(Settings::default()).check(&Presented::default()),
            Decision::Allow {
                user: None,
                new_token: None
            }
        );
    }

    #[test]
    fn basic_then_cookie() {
        let auth = basic_auth(&[("ann", "pw:1")], KEY);
        assert_eq!(auth.check(&Presented::default()), Decision::Challenge);
        assert!(matches!(
            login(&auth, "ann", "nope"),
            Decision::Refused { .. }
        ));
        let auth = basic_auth(&[("ann", "pw:1")], KEY);
        let Decision::Allow {
            user,
            new_token: Some(token),
        } = login(&auth, "ann", "pw:1")
        else {
            panic!("expected a token")
        };
        assert_eq!(user.as_deref(), Some("ann"));
        let ann = Decision::Allow {
            user: Some("ann".into()),
            new_token: None,
        };
        assert_eq!(with_cookie(&auth, &token), ann);
        // Another process with the same key and users accepts it too.
        assert_eq!(
            with_cookie(&basic_auth(&[("ann", "pw:1")], KEY), &token),
            ann
        );
        // Another key, a changed password or a removed user does not.
        let other = b"fedcba9876543210fedcba9876543210";
        assert_eq!(
            with_cookie(&basic_auth(&[("ann", "pw:1")], other), &token),
            Decision::Challenge
        );
        assert_eq!(
            with_cookie(&basic_auth(&[("ann", "pw:2")], KEY), &token),
            Decision::Challenge
        );
        assert_eq!(
            with_cookie(&basic_auth(&[("bob", "pw:1")], KEY), &token),
            Decision::Challenge
        );
        assert_eq!(with_cookie(&auth, &"0".repeat(64)), Decision::Challenge);
        assert!(cookie_header(&token, "/t/", true).contains("HttpOnly; SameSite=Strict; Secure"));
    }

    #[test]
    fn tokens_expire_and_cannot_be_altered() {
        let creds = vec![("ann".to_string(), "pw".to_string())];
        let auth = basic_auth(&[("ann", "pw")], KEY);
        let now = now_secs();
        let live = auth.sign("ann", "pw", now + 60).unwrap();
        assert_eq!(auth.verify(&creds, &live, now).as_deref(), Some("ann"));
        let stale = auth.sign("ann", "pw", now - 1).unwrap();
        assert_eq!(auth.verify(&creds, &stale, now), None);
        // Pushing the expiry forward breaks the signature.
        let mut parts: Vec<String> = stale.split('.').map(String::from).collect();
        parts[2] = (now + 3600).to_string();
        assert_eq!(auth.verify(&creds, &parts.join("."), now), None);
    }

    #[test]
    fn failures_back_off_per_client() {
        let auth = basic_auth(&[("ann", "pw")], KEY);
        let delays: Vec<Duration> = (1..=3)
            .map(|n| {
                let Decision::Refused { delay } = login(&auth, "ann", "wrong") else {
                    panic!()
                };
                // The previous delay has not run out, so the attempt after a
                // failure is refused unchecked; let it run out.
                auth.backoff
                    .table()
                    .get_mut(&"192.0.2.1".parse().unwrap())
                    .unwrap()
                    .until = Instant::now();
                assert_eq!(delay, backoff_delay(n));
                delay
            })
            .collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[2], Duration::from_secs(1));
        assert_eq!(backoff_delay(100), BACKOFF_MAX);
        // While a delay runs even the right password is not checked.
        let _ = login(&auth, "ann", "wrong");
        assert!(matches!(
            login(&auth, "ann", "pw"),
            Decision::Refused { .. }
        ));
        // Other clients are not affected.
        let header = basic("ann", "pw");
        assert!(matches!(
            auth.check(&Presented {
                authorization: Some(&header),
                client: Some("192.0.2.2".parse().unwrap()),
                ..Default::default()
            }),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn proxy_header_only_from_trusted_proxies() {
        let auth = Auth::new(Settings {
            header: Some("Remote-User".into()),
            trusted_proxies: vec![Cidr::parse("10.42.0.0/16").unwrap()],
            ..Default::default()
        });
        let proxy = Some("10.42.7.1".parse().unwrap());
        assert_eq!(
            auth.check(&Presented {
                peer: proxy,
                ..Default::default()
            }),
            Decision::MissingHeader("Remote-User".into())
        );
        assert_eq!(
            auth.check(&Presented {
                proxy_user: Some("bob"),
                peer: proxy,
                ..Default::default()
            }),
            Decision::Allow {
                user: Some("bob".into()),
                new_token: None
            }
        );
        assert_eq!(
            auth.check(&Presented {
                proxy_user: Some("bob"),
                peer: Some("10.43.0.1".parse().unwrap()),
                ..Default::default()
            }),
            Decision::UntrustedPeer
        );
    }

    #[test]
    fn cidrs_and_forwarded_clients() {
        let c = Cidr::parse("10.42.0.0/16").unwrap();
        assert!(c.contains("10.42.255.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.42.0.1".parse().unwrap()));
        assert!(!c.contains("10.43.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0/8", "proxy", "", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        let trusted = [c];
        let peer = Some("10.42.0.9".parse().unwrap());
        assert_eq!(
            client_ip(peer, Some("203.0.113.5, 198.51.100.7, 10.42.0.3"), &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(client_ip(peer, None, &trusted), peer);
        // An untrusted peer's X-Forwarded-For is the peer's own claim.
        let outsider = Some("198.51.100.9".parse().unwrap());
        assert_eq!(client_ip(outsider, Some("10.0.0.1"), &trusted), outsider);
    }

    #[test]
    fn secrets_must_be_long_enough() {
        assert!(Secret::from_file_contents(b"short\n").is_err());
        assert!(Secret::from_file_contents(&[b'k'; 32]).is_ok());
        assert!(format!("{:?}", Secret::from_file_contents(KEY).unwrap()).contains("redacted"));
    }

    #[test]
    fn parsing_and_comparison() {
        assert_eq!(
            parse_basic("basic YTpiOmM="),
            Some(("a".into(), "b:c".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"ab", b"abc"));
        assert!(!ct_eq(b"", b"a"));
    }
}
