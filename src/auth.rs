//! Authentication: who may open the page, its terminals and the sessions API.
//!
//! Off by default (the default bind is loopback). Two ways to turn it on:
//!
//! - **HTTP Basic** (`--credential`, `--credential-file`). Safari does not send
//!   Basic credentials on WebSocket requests, so a page load that passes Basic
//!   authentication also gets a cookie holding a random token, and the socket
//!   is accepted with either. Tokens live in memory for 12 hours; a restart
//!   forgets them and the next page load issues a new one.
//! - **A trusted proxy header** (`--auth-header Remote-User`): a proxy in
//!   front (Traefik forward-auth, an NGINX Proxy Manager access list) has
//!   authenticated the user and says who it is. Safe only when nothing can
//!   reach webterm except through that proxy.
//!
//! `Authorization` is parsed here rather than with http-types' helpers, which
//! carry an unsoundness advisory, and every secret is compared in constant time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The cookie that carries a token.
pub const COOKIE: &str = "webterm_auth";
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Tokens kept at most; expired ones are dropped first.
const MAX_TOKENS: usize = 1024;

#[derive(Debug)]
enum Mode {
    Open,
    Basic(Vec<(String, String)>),
    ProxyHeader(String),
}

#[derive(Debug)]
pub struct Auth {
    mode: Mode,
    /// (token, user, expiry)
    tokens: Mutex<Vec<(String, String, Instant)>>,
}

/// What the request carried that could identify a user.
#[derive(Default, Debug)]
pub struct Presented<'a> {
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
    /// The value of the `--auth-header` header, when configured.
    pub proxy_user: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead. `user` is None when authentication is off; `new_token`
    /// should be set as the cookie (Basic mode, after a password check).
    Allow {
        user: Option<String>,
        new_token: Option<String>,
    },
    /// 401 with a Basic challenge.
    Challenge,
    /// 401: the proxy header is missing (the proxy was bypassed or misconfigured).
    MissingHeader(String),
}

impl Auth {
    pub fn new(credentials: Vec<(String, String)>, header: Option<String>) -> Auth {
        let mode = match (credentials.is_empty(), header) {
            (_, Some(h)) => Mode::ProxyHeader(h),
            (false, None) => Mode::Basic(credentials),
            (true, None) => Mode::Open,
        };
        Auth {
            mode,
            tokens: Mutex::new(Vec::new()),
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

    pub fn check(&self, p: &Presented<'_>) -> Decision {
        match &self.mode {
            Mode::Open => Decision::Allow {
                user: None,
                new_token: None,
            },
            Mode::ProxyHeader(name) => {
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
                    // Check every entry, so timing does not reveal which user exists.
                    let mut found = None;
                    for (u, pw) in creds {
                        let ok = ct_eq(u.as_bytes(), user.as_bytes())
                            & ct_eq(pw.as_bytes(), pass.as_bytes());
                        if ok && found.is_none() {
                            found = Some(u.clone());
                        }
                    }
                    if let Some(user) = found {
                        let new_token = self
                            .token_for(p.cookie, &user)
                            .is_none()
                            .then(|| self.issue(&user));
                        return Decision::Allow {
                            user: Some(user),
                            new_token: new_token.flatten(),
                        };
                    }
                    return Decision::Challenge;
                }
                match p.cookie.and_then(cookie_token) {
                    Some(token) => match self.lookup(token) {
                        Some(user) => Decision::Allow {
                            user: Some(user),
                            new_token: None,
                        },
                        None => Decision::Challenge,
                    },
                    None => Decision::Challenge,
                }
            }
        }
    }

    fn token_for(&self, cookie: Option<&str>, user: &str) -> Option<()> {
        let token = cookie.and_then(cookie_token)?;
        (self.lookup(token)? == user).then_some(())
    }

    fn lookup(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let tokens = self.tokens.lock().ok()?;
        let mut found = None;
        for (t, user, expiry) in tokens.iter() {
            if ct_eq(t.as_bytes(), token.as_bytes()) && *expiry > now {
                found = Some(user.clone());
            }
        }
        found
    }

    /// A new token for `user`, or None when the table is full of live tokens
    /// (the browser then keeps using Basic, which works everywhere but Safari's sockets).
    fn issue(&self, user: &str) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tokens = self.tokens.lock().ok()?;
        let now = Instant::now();
        tokens.retain(|(_, _, expiry)| *expiry > now);
        if tokens.len() >= MAX_TOKENS {
            log::warn!("{MAX_TOKENS} live authentication tokens: not issuing more");
            return None;
        }
        tokens.push((token.clone(), user.to_string(), now + TOKEN_LIFETIME));
        Some(token)
    }
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

    #[test]
    fn open_allows_everyone() {
        assert_eq!(
            Auth::new(vec![], None).check(&Presented::default()),
            Decision::Allow {
                user: None,
                new_token: None
            }
        );
    }

    #[test]
    fn basic_then_cookie() {
        let auth = Auth::new(vec![("ann".into(), "pw:1".into())], None);
        assert_eq!(auth.check(&Presented::default()), Decision::Challenge);
        let bad = basic("ann", "nope");
        assert_eq!(
            auth.check(&Presented {
                authorization: Some(&bad),
                ..Default::default()
            }),
            Decision::Challenge
        );
        let good = basic("ann", "pw:1");
        let Decision::Allow {
            user,
            new_token: Some(token),
        } = auth.check(&Presented {
            authorization: Some(&good),
            ..Default::default()
        })
        else {
            panic!("expected a token")
        };
        assert_eq!(user.as_deref(), Some("ann"));
        let cookie = format!("other=1; {COOKIE}={token}");
        assert_eq!(
            auth.check(&Presented {
                cookie: Some(&cookie),
                ..Default::default()
            }),
            Decision::Allow {
                user: Some("ann".into()),
                new_token: None
            }
        );
        let forged = format!("{COOKIE}={}", "0".repeat(64));
        assert_eq!(
            auth.check(&Presented {
                cookie: Some(&forged),
                ..Default::default()
            }),
            Decision::Challenge
        );
        assert!(cookie_header(&token, "/t/", true).contains("HttpOnly; SameSite=Strict; Secure"));
    }

    #[test]
    fn proxy_header() {
        let auth = Auth::new(vec![], Some("Remote-User".into()));
        assert_eq!(
            auth.check(&Presented::default()),
            Decision::MissingHeader("Remote-User".into())
        );
        assert_eq!(
            auth.check(&Presented {
                proxy_user: Some("bob"),
                ..Default::default()
            }),
            Decision::Allow {
                user: Some("bob".into()),
                new_token: None
            }
        );
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
