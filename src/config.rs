//! Configuration: every option, declared once, in `OPTIONS`.
//!
//! Each option is one entry: its flag, its `WEBTERM_*` environment twin (so
//! a Kubernetes ConfigMap can configure a pod without a custom command
//! line), its default, its help text and the function that applies a value.
//! `--help`, the environment lookup, the defaults and the error messages all
//! come from that entry. Precedence, highest first: the flag, its variable,
//! a legacy variable (only `IDLE_TIMEOUT_SECS`, from the design this
//! project grew from), the default.
//!
//! A table of plain functions rather than clap's derive: the same one
//! declaration per option, with webterm's own error messages (which name
//! the flag or the variable the bad value came from) and no extra
//! dependency in a binary meant for small boards.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::duration::{format_duration, parse_duration};
use crate::idle::Policy;

/// Everything the server needs to know, resolved and validated.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Where to serve; at least one address.
    pub listen: Vec<Listen>,
    /// The permissions of `--listen unix:` socket files.
    pub socket_mode: u32,
    /// Serve HTTPS with this PEM certificate chain and key (`--tls-cert`,
    /// `--tls-key`); both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Names of the `?arg.NAME=` values a client may append to the
    /// command (`--url-arg`), in the order they are appended.
    pub url_args: Vec<String>,
    /// The program and its arguments; `None` means the user's login shell.
    pub command: Option<Vec<String>>,
    /// `None` disables the idle timeout.
    pub idle_timeout: Option<Duration>,
    pub idle_check_interval: Duration,
    pub idle_policy: Policy,
    pub idle_warning: Option<Duration>,
    /// The most a client may ask for with `?idle_timeout=`.
    pub max_idle_timeout: Option<Duration>,
    /// How long a detached session waits for its client; zero ends at once.
    pub reconnect_window: Duration,
    /// Run each tab's command inside this tmux session.
    pub tmux: Option<String>,
    pub max_sessions: usize,
    /// Serve one session, then exit with its exit code.
    pub once: bool,
    /// Exit once no session has existed for this long.
    pub exit_when_empty: Option<Duration>,
    /// `None`: a quarter of `max_sessions` (see `max_per_client`).
    pub max_sessions_per_client: Option<usize>,
    pub allowed_origins: Vec<String>,
    /// Host names served without authentication, besides loopback and the
    /// listening addresses (`--allowed-host`).
    pub allowed_hosts: Vec<String>,
    /// `None` disables keepalive pings.
    pub ping_interval: Option<Duration>,
    pub kill_grace: Duration,
    /// On SIGTERM, how long running sessions may go on (new ones refused)
    /// before the shutdown ends them; zero ends them at once.
    pub drain_timeout: Duration,
    /// What teardown sends first (`--close-signal`); always set after parsing.
    pub close_signal: Option<rustix::process::Signal>,
    /// Track sessions by process tree even where a cgroup could be made.
    pub no_cgroups: bool,
    /// Serve page assets from this directory instead of the embedded copies.
    pub assets_dir: Option<PathBuf>,
    /// xterm.js options for the page (`--term-option`), plus `renderer`.
    pub term_options: serde_json::Map<String, serde_json::Value>,
    /// Drop all input: the terminal is output only.
    pub readonly: bool,
    /// Turn off trz/tsz file transfer in the page (`--no-file-transfer`).
    pub no_file_transfer: bool,
    /// Never negotiate permessage-deflate (`--no-compression`).
    pub no_compression: bool,
    /// The most the page uploads in one transfer, in bytes; `None`: no limit.
    /// Enforced by the page: see `--max-upload`'s help for why only there.
    pub max_upload: Option<u64>,
    /// URL prefix every route lives under: "" or "/something" (no trailing slash).
    pub base_path: String,
    /// HTTP Basic users and passwords; empty means no Basic authentication.
    pub credentials: Vec<(String, String)>,
    /// Trust this header, set by an authenticating proxy, as the user name.
    pub auth_header: Option<String>,
    /// Where `auth_header` (and `X-Forwarded-For`) may come from.
    pub trusted_proxies: Vec<crate::auth::Cidr>,
    /// The key that signs login tokens; `None` means random per process.
    pub secret: Option<crate::auth::Secret>,
    /// This replica's name among its peers; `None`: the host name.
    pub node_id: Option<String>,
    /// Where peers reach this replica (host:port), if it should say.
    pub advertise: Option<String>,
    /// The other replicas: `NAME:PORT` resolved again and again, or a list.
    pub peers: Vec<String>,
    /// Always set after parsing (the option has a default); an `Option`
    /// only so that an empty `Config` can exist to parse into.
    pub log_level: Option<log::LevelFilter>,
}

/// One place to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A Unix socket file (`unix:/run/webterm.sock`).
    Unix(PathBuf),
}

impl Listen {
    fn parse(v: &str) -> Result<Listen, String> {
        let v = v.trim();
        if let Some(path) = v.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err("is not unix:/absolute/path".into());
            }
            // sun_path holds 108 bytes, the terminating NUL among them.
            if path.len() > 107 {
                return Err("is too long for a Unix socket path (at most 107 bytes)".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        v.parse().map(Listen::Tcp).map_err(|_| {
            "is not an address and port (127.0.0.1:8080, [::1]:8080) or unix:/path".to_string()
        })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(a) => write!(f, "{a}"),
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// How long a `?arg.NAME=` value may be, in bytes.
pub const URL_ARG_MAX: usize = 256;

/// One option, whole.
struct Opt {
    long: &'static str,
    short: Option<char>,
    /// Its environment twin; for a repeatable option it holds a
    /// comma-separated list, unless `whole_env`.
    env: &'static str,
    /// Other variables read when the twin is not set.
    fallback_env: &'static [&'static str],
    /// The value's name in `--help`; `None` for a switch (its variable
    /// takes true or false).
    value: Option<&'static str>,
    /// May be given more than once, each use adding a value.
    repeats: bool,
    /// The variable is one value even for a repeatable option (a JSON
    /// object, a password that may hold commas), and flags add to it.
    whole_env: bool,
    /// Applied when neither the flag nor its variables are set.
    default: Option<&'static str>,
    /// Values are secrets: error messages do not repeat them.
    secret: bool,
    help: &'static str,
    /// Applies one value. The error says what is wrong with it, and is
    /// shown after the flag or variable it came from and the value.
    set: fn(&mut Config, &str) -> Result<(), String>,
}

const fn opt(
    long: &'static str,
    env: &'static str,
    help: &'static str,
    set: fn(&mut Config, &str) -> Result<(), String>,
) -> Opt {
    Opt {
        long,
        short: None,
        env,
        fallback_env: &[],
        value: None,
        repeats: false,
        whole_env: false,
        default: None,
        secret: false,
        help,
        set,
    }
}

impl Opt {
    const fn short(mut self, c: char) -> Opt {
        self.short = Some(c);
        self
    }
    const fn value(mut self, name: &'static str) -> Opt {
        self.value = Some(name);
        self
    }
    const fn default(mut self, d: &'static str) -> Opt {
        self.default = Some(d);
        self
    }
    const fn repeats(mut self) -> Opt {
        self.repeats = true;
        self
    }
    const fn whole_env(mut self) -> Opt {
        self.whole_env = true;
        self
    }
    const fn secret(mut self) -> Opt {
        self.secret = true;
        self
    }
    const fn fallback(mut self, vars: &'static [&'static str]) -> Opt {
        self.fallback_env = vars;
        self
    }
}

/// Every option webterm takes, in the order `--help` lists them.
static OPTIONS: &[Opt] = &[
    opt(
        "listen",
        "WEBTERM_LISTEN",
        "\
Address and port to serve on. The default serves this machine only;
use 0.0.0.0:8080 (or [::]:8080) to accept connections from others.
unix:/run/webterm.sock serves on a Unix socket (for a proxy on the
same host; see --socket-mode). Repeatable: serve on several at once.",
        |c, v| {
            c.listen.push(Listen::parse(v)?);
            Ok(())
        },
    )
    .short('l')
    .value("ADDR")
    .default("127.0.0.1:8080")
    .repeats(),
    opt(
        "socket-mode",
        "WEBTERM_SOCKET_MODE",
        "\
The permissions of --listen unix: socket files, in octal. Whoever may
connect gets a shell as this user, so the default lets only this user
(and root) in; 0660 adds the file's group, for a proxy running as
another user in that group.",
        |c, v| {
            let v = v.trim();
            let digits = v.strip_prefix("0o").unwrap_or(v);
            c.socket_mode = u32::from_str_radix(digits, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or("is not an octal file mode such as 0600 or 0660")?;
            Ok(())
        },
    )
    .value("MODE")
    .default("0600"),
    opt(
        "tls-cert",
        "WEBTERM_TLS_CERT",
        "\
Serve HTTPS (and wss://) with this PEM certificate chain; needs
--tls-key. Both files are read again when they change (a renewal by
cert-manager or certbot) without dropping open sessions; a bad new
pair is logged and the old one kept. Unix sockets stay plain.",
        |c, v| {
            c.tls_cert = Some(PathBuf::from(v));
            Ok(())
        },
    )
    .value("FILE"),
    opt(
        "tls-key",
        "WEBTERM_TLS_KEY",
        "\
The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.",
        |c, v| {
            c.tls_key = Some(PathBuf::from(v));
            Ok(())
        },
    )
    .value("FILE"),
    opt(
        "idle-timeout",
        "WEBTERM_IDLE_TIMEOUT",
        "\
End a session after this long without activity (see --idle-policy).
0 turns the timeout off. The legacy variable IDLE_TIMEOUT_SECS
(seconds) is honoured when neither the flag nor WEBTERM_IDLE_TIMEOUT
is set.",
        |c, v| {
            c.idle_timeout = nonzero(parse_duration(v)?);
            Ok(())
        },
    )
    .value("DURATION")
    .default("5m"),
    opt(
        "idle-policy",
        "WEBTERM_IDLE_POLICY",
        "\
What counts as activity: 'input' (keys, paste, resize: a forgotten
'tail -f' still ends) or 'activity' (output too: an unattended
dashboard such as socktop stays up while it draws).",
        |c, v| {
            c.idle_policy = Policy::parse(v).ok_or("is not a policy: use input or activity")?;
            Ok(())
        },
    )
    .value("POLICY")
    .default("input"),
    opt(
        "idle-warning",
        "WEBTERM_IDLE_WARNING",
        "\
Tell the page this long before an idle timeout; it shows a countdown
that any key cancels.",
        |c, v| {
            c.idle_warning = nonzero(parse_duration(v)?);
            Ok(())
        },
    )
    .value("DURATION"),
    opt(
        "max-idle-timeout",
        "WEBTERM_MAX_IDLE_TIMEOUT",
        "\
The most a user may ask for with ?idle_timeout=DURATION on the page's
URL (default: --idle-timeout, so users may only ask for less).",
        |c, v| {
            c.max_idle_timeout = nonzero(parse_duration(v)?);
            Ok(())
        },
    )
    .value("DURATION"),
    opt(
        "idle-check-interval",
        "WEBTERM_IDLE_CHECK_INTERVAL",
        "\
How often each session checks whether it has been idle too long, at
the least; a session ends at most this long after its timeout passes.",
        |c, v| {
            let d = parse_duration(v)?;
            if d.is_zero() {
                return Err("is too short: the check interval must be longer than 0".into());
            }
            c.idle_check_interval = d;
            Ok(())
        },
    )
    .value("DURATION")
    .default("30s"),
    opt(
        "reconnect-window",
        "WEBTERM_RECONNECT_WINDOW",
        "\
A tab that loses its connection (refresh, network blip, laptop sleep)
may come back this long and find its shell as it left it. Detached
sessions count toward --max-sessions. 0 ends a session with its socket.",
        |c, v| {
            c.reconnect_window = parse_duration(v)?;
            Ok(())
        },
    )
    .value("DURATION")
    .default("60s"),
    opt(
        "tmux",
        "WEBTERM_TMUX",
        "\
Run the command inside the tmux session NAME (created on first use,
shared by every tab), so the shell outlives webterm itself. Needs tmux.",
        |c, v| {
            let name = v.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err("is not a tmux session name (letters, digits, - and _)".into());
            }
            c.tmux = Some(name.to_string());
            Ok(())
        },
    )
    .value("NAME"),
    opt(
        "max-sessions",
        "WEBTERM_MAX_SESSIONS",
        "\
Refuse new terminals (WebSocket close 1013) while N are running.",
        |c, v| {
            c.max_sessions = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or("is not a whole number above 0")?;
            Ok(())
        },
    )
    .value("N")
    .default("64"),
    opt(
        "once",
        "WEBTERM_ONCE",
        "\
Serve one session, then exit with its exit code (128 + the signal if
it was killed). Other sockets are refused while it runs.",
        |c, v| {
            c.once = switch(v)?;
            Ok(())
        },
    ),
    opt(
        "exit-when-empty",
        "WEBTERM_EXIT_WHEN_EMPTY",
        "\
Exit (with status 0) once no session has existed for DURATION, counted
from the start or from the last session's end: for socket-activated
and one-off uses.",
        |c, v| {
            c.exit_when_empty = nonzero(parse_duration(v)?);
            Ok(())
        },
    )
    .value("DURATION"),
    opt(
        "max-sessions-per-client",
        "WEBTERM_MAX_SESSIONS_PER_CLIENT",
        "\
Refuse a client new terminals (close 1013) while it holds N, counted
by authenticated user, else by address (behind a --trusted-proxy, the
forwarded one). Default: a quarter of --max-sessions (at least 1), so
one client (or its drops waiting to reconnect) cannot lock out the rest.",
        |c, v| {
            c.max_sessions_per_client = Some(
                v.trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("is not a whole number above 0")?,
            );
            Ok(())
        },
    )
    .value("N"),
    opt(
        "allowed-origin",
        "WEBTERM_ALLOWED_ORIGINS",
        "\
A browser origin (https://example.com:8443) allowed to open
terminals besides the one whose Host the request names. Repeatable.
'*' allows every origin, which lets any web page a user visits open
a shell as that user: only for trusted networks.",
        |c, v| {
            crate::origin::validate_allowed(v)?;
            c.allowed_origins.push(v.to_string());
            Ok(())
        },
    )
    .value("ORIGIN")
    .repeats(),
    opt(
        "allowed-host",
        "WEBTERM_ALLOWED_HOSTS",
        "\
Without authentication, webterm answers only requests whose Host is
a loopback name or address (localhost, *.localhost, 127.0.0.0/8,
[::1]), an address it listens on, or the address the client reached
it at; anything else gets 403, so a web page cannot reach it through
DNS rebinding. Name the other host names (or addresses) it is
reached by here: term.example.com, or .example.com for the domain
and its subdomains. Repeatable. '*' turns the check off. With
authentication on, every Host is served. /healthz, /readyz and
/metrics are never checked.",
        |c, v| {
            crate::origin::validate_allowed_host(v.trim())?;
            c.allowed_hosts.push(v.trim().to_string());
            Ok(())
        },
    )
    .value("NAME")
    .repeats(),
    opt(
        "ping-interval",
        "WEBTERM_PING_INTERVAL",
        "\
Send a WebSocket ping this often, so proxies that cut silent
connections (NGINX Proxy Manager after 90s) keep them, and close a
socket that has answered nothing for two intervals (close 4001).
0 turns it off.",
        |c, v| {
            c.ping_interval = nonzero(parse_duration(v)?);
            Ok(())
        },
    )
    .value("DURATION")
    .default("25s"),
    opt(
        "kill-grace",
        "WEBTERM_KILL_GRACE",
        "\
After hanging up a session's processes, how long to wait before
killing whatever is still alive with SIGKILL.",
        |c, v| {
            c.kill_grace = parse_duration(v)?;
            Ok(())
        },
    )
    .value("DURATION")
    .default("2s"),
    opt(
        "drain-timeout",
        "WEBTERM_DRAIN_TIMEOUT",
        "\
On SIGTERM, turn unready and refuse new sessions, tell every page
when the server restarts, and let running sessions go on (reattach
included) until they end by themselves or this long has passed;
then shut down as usual. A second signal cuts the wait short.
0 ends sessions at once.",
        |c, v| {
            c.drain_timeout = parse_duration(v)?;
            Ok(())
        },
    )
    .value("DURATION")
    .default("0"),
    opt(
        "close-signal",
        "WEBTERM_CLOSE_SIGNAL",
        "\
The signal a session's processes get first when it ends: HUP (as a
terminal hangup), TERM, INT, QUIT, USR1 or USR2; SIGCONT follows, and
SIGKILL after --kill-grace.",
        |c, v| {
            use rustix::process::Signal;
            let name = v.trim().to_ascii_uppercase();
            c.close_signal = Some(match name.strip_prefix("SIG").unwrap_or(&name) {
                "HUP" => Signal::HUP,
                "TERM" => Signal::TERM,
                "INT" => Signal::INT,
                "QUIT" => Signal::QUIT,
                "USR1" => Signal::USR1,
                "USR2" => Signal::USR2,
                _ => return Err("is not one of HUP, TERM, INT, QUIT, USR1, USR2".into()),
            });
            Ok(())
        },
    )
    .value("SIGNAL")
    .default("HUP"),
    opt(
        "no-cgroups",
        "WEBTERM_NO_CGROUPS",
        "\
Do not give each session a cgroup of its own, even where webterm
can make one. Without one, a process that leaves the terminal's
session (setsid, a daemon) is found through the process tree and
the session's mark in its environment (see the README).",
        |c, v| {
            c.no_cgroups = switch(v)?;
            Ok(())
        },
    ),
    opt(
        "assets-dir",
        "WEBTERM_ASSETS_DIR",
        "\
Serve the page from DIR instead of the copy built into the binary
(for working on the page without rebuilding).",
        |c, v| {
            c.assets_dir = Some(PathBuf::from(v));
            Ok(())
        },
    )
    .value("DIR"),
    opt(
        "term-option",
        "WEBTERM_TERM_OPTIONS",
        "\
An xterm.js option for the page, such as fontSize=16,
fontFamily='Fira Code', cursorStyle=bar, scrollback=10000 or
theme='{\"background\":\"#000000\"}'. VALUE is JSON when it parses as
JSON, text otherwise. Repeatable; the variable holds a JSON object.
renderer=dom turns WebGL off.",
        |c, v| {
            if v.trim_start().starts_with('{') {
                match serde_json::from_str(v) {
                    Ok(serde_json::Value::Object(map)) => c.term_options.extend(map),
                    _ => return Err("is not a JSON object such as {\"fontSize\": 16}".into()),
                }
                return Ok(());
            }
            let (key, raw) = v
                .split_once('=')
                .ok_or("is not KEY=VALUE, such as fontSize=16")?;
            let value = serde_json::from_str(raw)
                .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
            c.term_options.insert(key.trim().to_string(), value);
            Ok(())
        },
    )
    .short('t')
    .value("KEY=VALUE")
    .repeats()
    .whole_env(),
    opt(
        "url-arg",
        "WEBTERM_URL_ARGS",
        "\
Let the page's URL add arguments to the command: ?arg.NAME=VALUE is
appended as one argument (never through a shell) for each NAME given
here, in the order given. Off by default: whoever can open the page
chooses these arguments. Values are at most 256 bytes, without control
characters, and may not start with '-' (no options such as
-oProxyCommand=...). Repeatable. See the README before using it.",
        |c, v| {
            let name = v.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err("is not a name (letters, digits, - and _)".into());
            }
            if c.url_args.iter().any(|n| n == name) {
                return Err("is named twice".into());
            }
            c.url_args.push(name.to_string());
            Ok(())
        },
    )
    .value("NAME")
    .repeats(),
    opt(
        "readonly",
        "WEBTERM_READONLY",
        "\
Output only: whatever clients type is dropped (resizes still apply).",
        |c, v| {
            c.readonly = switch(v)?;
            Ok(())
        },
    ),
    opt(
        "no-file-transfer",
        "WEBTERM_NO_FILE_TRANSFER",
        "\
Turn off file transfer: the page neither loads trzsz nor answers trz
and tsz in the shell, and dropped files are not uploaded.",
        |c, v| {
            c.no_file_transfer = switch(v)?;
            Ok(())
        },
    ),
    opt(
        "no-compression",
        "WEBTERM_NO_COMPRESSION",
        "\
Do not compress WebSocket messages. By default a browser that offers
permessage-deflate gets terminal output compressed, each message on
its own (memory per thread, not per session); turn it off to save CPU
where the network is fast, or when a proxy in front compresses.",
        |c, v| {
            c.no_compression = switch(v)?;
            Ok(())
        },
    ),
    opt(
        "max-upload",
        "WEBTERM_MAX_UPLOAD",
        "\
The most the page uploads in one transfer (trz or dropped files), all
files together: 64M, 1G, 512K; 0 for no limit. The page refuses more
before sending anything. Uploads are terminal input, which webterm
relays without reading, so this binds the page, not a client that
types the bytes some other way.",
        |c, v| {
            let n = crate::size::parse_size(v)?;
            c.max_upload = (n > 0).then_some(n);
            Ok(())
        },
    )
    .value("SIZE")
    .default("64M"),
    opt(
        "base-path",
        "WEBTERM_BASE_PATH",
        "\
Serve everything under PATH (such as /term) for a reverse proxy that
routes by path without stripping it. /healthz and /readyz stay at the
root too, for probes.",
        |c, v| {
            c.base_path = normalize_base_path(v)?;
            Ok(())
        },
    )
    .value("PATH")
    .default("/"),
    opt(
        "credential",
        "WEBTERM_CREDENTIAL",
        "\
Require HTTP Basic authentication with this user and password.
Repeatable. Prefer --credential-file: arguments show in ps.",
        |c, v| {
            c.credentials.push(parse_credential(v)?);
            Ok(())
        },
    )
    .value("USER:PASS")
    .repeats()
    .whole_env()
    .secret(),
    opt(
        "credential-file",
        "WEBTERM_CREDENTIAL_FILE",
        "\
Read USER:PASS lines (a Kubernetes Secret mounted as a file); blank
lines and lines starting with # are skipped.",
        |c, path| {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
            let before = c.credentials.len();
            for (n, line) in text.lines().enumerate() {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() || line.trim_start().starts_with('#') {
                    continue;
                }
                c.credentials
                    .push(parse_credential(line).map_err(|e| format!("line {}: {e}", n + 1))?);
            }
            if c.credentials.len() == before {
                return Err("holds no USER:PASS line".into());
            }
            Ok(())
        },
    )
    .value("FILE"),
    opt(
        "auth-header",
        "WEBTERM_AUTH_HEADER",
        "\
Trust an authenticating proxy (Traefik forward-auth, an NGINX Proxy
Manager access list): a request must carry header NAME (such as
Remote-User), whose value is taken as the user. Needs
--trusted-proxy: the header is believed only from those addresses.",
        |c, v| {
            let name = v.trim();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("is not a header name".into());
            }
            c.auth_header = Some(name.to_string());
            Ok(())
        },
    )
    .value("NAME"),
    opt(
        "trusted-proxy",
        "WEBTERM_TRUSTED_PROXIES",
        "\
Addresses of the reverse proxies in front of webterm, such as
10.42.0.0/16 (k3s pods) or 127.0.0.1. Repeatable. Only they may set
--auth-header's header, and for their requests the client address
(for logs and failed-login backoff) comes from X-Forwarded-For.",
        |c, v| {
            c.trusted_proxies.push(crate::auth::Cidr::parse(v)?);
            Ok(())
        },
    )
    .value("CIDR")
    .repeats(),
    opt(
        "secret-file",
        "WEBTERM_SECRET_FILE",
        "\
The key (at least 32 bytes; a Kubernetes Secret mounted as a file)
that signs the login cookies of --credential users. Replicas and
restarts that share it accept each other's cookies. Without it the
key is random per process: a restart logs everyone out.",
        |c, path| {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
            c.secret = Some(crate::auth::Secret::from_file_contents(&bytes)?);
            Ok(())
        },
    )
    .value("FILE"),
    opt(
        "node-id",
        "WEBTERM_NODE_ID",
        "\
This replica's name among its peers (letters, digits, '.', '-', '_';
at most 63). A session's id starts with a tag made from it, which is
how any replica knows where a session lives. Default: the host name
(in Kubernetes, the pod name).",
        |c, v| {
            c.node_id = Some(node_name(v)?);
            Ok(())
        },
    )
    .value("NAME"),
    opt(
        "advertise",
        "WEBTERM_ADVERTISE",
        "\
The address and port peers reach this replica on (in Kubernetes, the
pod IP and the container port). Lets a replica find itself in
--peers without asking.",
        |c, v| {
            let v = v.trim();
            host_port(v)?;
            c.advertise = Some(v.to_string());
            Ok(())
        },
    )
    .value("HOST:PORT"),
    opt(
        "peers",
        "WEBTERM_PEERS",
        "\
The other replicas, so that any of them serves any session: a DNS
name and port resolved every few seconds (a headless Service, such
as webterm-peers:8080), or several HOST:PORT. Repeatable. Sockets
for a session on another replica are forwarded to it. Needs
--secret-file: peers prove themselves with that key.",
        |c, v| {
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                host_port(p)?;
                c.peers.push(p.to_string());
            }
            Ok(())
        },
    )
    .value("HOST:PORT")
    .repeats(),
    opt(
        "log-level",
        "WEBTERM_LOG_LEVEL",
        "\
One of error, warn, info, debug, trace, off. RUST_LOG is read when
WEBTERM_LOG_LEVEL is not set.",
        |c, v| {
            let level = v
                .trim()
                .parse()
                .map_err(|_| "is not a log level (error, warn, info, debug, trace, off)")?;
            c.log_level = Some(level);
            Ok(())
        },
    )
    .value("LEVEL")
    .default("info")
    .fallback(&["RUST_LOG"]),
];

impl Config {
    /// How many sessions may run at once.
    pub fn max_sessions(&self) -> usize {
        if self.once {
            1
        } else {
            self.max_sessions
        }
    }

    /// How many sessions one client may hold.
    pub fn max_per_client(&self) -> usize {
        if self.once {
            return 1;
        }
        self.max_sessions_per_client
            .unwrap_or((self.max_sessions / 4).max(1))
            .min(self.max_sessions)
    }
}

/// What the command line asked for: run the server, or print something.
#[derive(Debug)]
pub enum Invocation {
    Serve(Box<Config>),
    Help,
    Version,
}

/// A configuration mistake, phrased for the person who made it.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

const USAGE: &str = "\
webterm: a terminal in your browser, one PTY per tab, no orphaned processes.

USAGE:
    webterm [OPTIONS] [--] [COMMAND [ARGS...]]
    webterm sessions [--url URL] [--json] [--kill ID]   (see webterm sessions --help)
    webterm health [--url URL]                          (the image's HEALTHCHECK)

With no COMMAND, each tab runs the user's login shell ($SHELL, else /bin/sh).
Every option can also be set with the environment variable shown beside it;
a flag wins over its variable. Durations take a unit: 500ms, 30s, 5m, 1h.

OPTIONS:
";

const COMMAND_HELP: &str = "\
    -h, --help                      Print this help.
    -V, --version                   Print the version.

COMMAND:
    Runs in a fresh PTY for every tab, with TERM=xterm-256color and
    COLORTERM=truecolor. Its arguments never come from the URL, unless
    --url-arg names the ones that may (see the README first). The
    environment variable WEBTERM_COMMAND sets it too (split like a shell
    would: quotes and backslashes work, nothing is expanded).

EXAMPLES:
    webterm                                  # your shell on http://127.0.0.1:8080
    webterm --listen 0.0.0.0:7681 -- htop    # htop for your LAN
    WEBTERM_IDLE_TIMEOUT=10m webterm socktop
";

/// The `--help` text, made from `OPTIONS`.
pub fn help() -> String {
    let mut out = String::from(USAGE);
    for o in OPTIONS {
        let short = o.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = o.value.map(|v| format!(" {v}")).unwrap_or_default();
        let env = if o.value.is_some() {
            format!("[env: {}]", o.env)
        } else {
            format!("[env: {}=true]", o.env)
        };
        let left = format!("    {short:>4}--{}{value}", o.long);
        let mut line = format!("{left:<36}{env}");
        if let Some(d) = o.default {
            line = format!("{line:<64} default {d}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        for l in o.help.lines() {
            out.push_str("        ");
            out.push_str(l);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(COMMAND_HELP);
    out
}

/// Reads the configuration from the process's arguments and environment.
pub fn from_env() -> Result<Invocation, ConfigError> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    parse(args, |name| std::env::var(name).ok())
}

/// Parses `args` (without the program name), looking variables up with `env`.
///
/// Taking the environment as a function keeps this pure, so tests can cover
/// precedence without touching the process environment.
pub fn parse(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, ConfigError> {
    use lexopt::prelude::*;

    // The values each option was given on the command line, in order.
    let mut given: Vec<Vec<String>> = OPTIONS.iter().map(|_| Vec::new()).collect();
    let mut parser = lexopt::Parser::from_args(args);
    let mut command: Vec<String> = Vec::new();
    while let Some(arg) = parser.next().map_err(lexopt_error)? {
        let found = match &arg {
            Short('h') | Long("help") => return Ok(Invocation::Help),
            Short('V') | Long("version") => return Ok(Invocation::Version),
            Short(c) => OPTIONS.iter().position(|o| o.short == Some(*c)),
            Long(l) => OPTIONS.iter().position(|o| o.long == *l),
            Value(_) => None,
        };
        match (found, arg) {
            (Some(i), _) => {
                let o = &OPTIONS[i];
                let v = match o.value {
                    Some(_) => {
                        let v = parser
                            .value()
                            .map_err(|_| ConfigError(format!("--{} needs a value", o.long)))?;
                        os_to_string(v, &format!("--{}", o.long))?
                    }
                    None => "true".to_string(),
                };
                given[i].push(v);
            }
            (None, Value(first)) => {
                // The first positional argument starts the command; everything
                // after it belongs to the command, even things that look like flags.
                command.push(os_to_string(first, "COMMAND")?);
                for rest in parser.raw_args().map_err(lexopt_error)? {
                    command.push(os_to_string(rest, "COMMAND")?);
                }
            }
            (None, other) => {
                return Err(ConfigError(format!(
                    "{}\n\nRun 'webterm --help' for the list of options.",
                    other.unexpected()
                )))
            }
        }
    }

    let mut cfg = Config::default();
    for (o, flags) in OPTIONS.iter().zip(given) {
        let from_env = std::iter::once(o.env)
            .chain(o.fallback_env.iter().copied())
            .find_map(|var| env(var).filter(|v| !v.trim().is_empty()).map(|v| (var, v)));
        let mut values: Vec<(String, String)> = Vec::new();
        if let Some((var, v)) = from_env.filter(|_| flags.is_empty() || o.whole_env) {
            if o.repeats && !o.whole_env {
                values.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| (var.to_string(), s.to_string())),
                );
            } else {
                values.push((var.to_string(), v));
            }
        }
        values.extend(flags.into_iter().map(|v| (format!("--{}", o.long), v)));
        if values.is_empty() {
            if o.long == "idle-timeout" && legacy_idle_timeout(&mut cfg, &env)? {
                continue;
            }
            if let Some(d) = o.default {
                values.push((format!("the default of --{}", o.long), d.to_string()));
            }
        }
        for (src, v) in values {
            (o.set)(&mut cfg, &v).map_err(|e| {
                if o.secret {
                    ConfigError(format!("{src}: {e}"))
                } else {
                    ConfigError(format!("{src}: '{v}' {e}"))
                }
            })?;
        }
    }
    if cfg.auth_header.is_some() && !cfg.credentials.is_empty() {
        return Err(ConfigError(
            "--auth-header and --credential are alternatives: let the proxy authenticate, or webterm".into(),
        ));
    }
    if cfg.auth_header.is_some() && cfg.trusted_proxies.is_empty() {
        return Err(ConfigError(
            "--auth-header needs --trusted-proxy CIDR (the proxy's addresses, such as 10.42.0.0/16): any client can send the header".into(),
        ));
    }

    if !cfg.peers.is_empty() && cfg.secret.is_none() {
        return Err(ConfigError(
            "--peers needs --secret-file: replicas prove themselves to each other with that shared key".into(),
        ));
    }
    if cfg.tls_cert.is_some() != cfg.tls_key.is_some() {
        return Err(ConfigError(
            "--tls-cert and --tls-key go together: give both (the certificate chain and its key), or neither".into(),
        ));
    }
    if cfg.tls_cert.is_some() && !cfg.listen.iter().any(|l| matches!(l, Listen::Tcp(_))) {
        return Err(ConfigError(
            "--tls-cert: every --listen is a Unix socket, which is served without TLS".into(),
        ));
    }
    if !cfg.url_args.is_empty() && cfg.tmux.is_some() {
        return Err(ConfigError(
            "--url-arg cannot be combined with --tmux: every tab joins one tmux session, whose command was fixed when it was made".into(),
        ));
    }

    if !command.is_empty() {
        cfg.command = Some(command);
    } else if let Some(v) = env("WEBTERM_COMMAND").filter(|v| !v.trim().is_empty()) {
        cfg.command =
            Some(split_command(&v).map_err(|e| ConfigError(format!("WEBTERM_COMMAND: {e}")))?);
    }
    // Appended to a login shell, a URL argument would name a script for
    // the shell to run.
    if !cfg.url_args.is_empty() && cfg.command.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ConfigError(
            "--url-arg needs a COMMAND to append to, such as: webterm --url-arg host -- ssh".into(),
        ));
    }

    Ok(Invocation::Serve(Box::new(cfg)))
}

/// Checks a `--node-id`.
fn node_name(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() || v.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err("may hold only letters, digits, '.', '-' and '_'".into());
    }
    Ok(v.to_string())
}

/// Checks a `HOST:PORT` (a name or an address; IPv6 in brackets).
fn host_port(v: &str) -> Result<(), String> {
    let bad = || "is not HOST:PORT, such as webterm-peers:8080 or 10.42.0.7:8080".to_string();
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

/// `IDLE_TIMEOUT_SECS`, the seed's variable: whole seconds. True if set.
fn legacy_idle_timeout(
    cfg: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<bool, ConfigError> {
    let Some(secs) = env("IDLE_TIMEOUT_SECS") else {
        return Ok(false);
    };
    let n: u64 = secs.trim().parse().map_err(|_| {
        ConfigError(format!(
            "IDLE_TIMEOUT_SECS: '{secs}' is not a whole number of seconds"
        ))
    })?;
    cfg.idle_timeout = nonzero(Duration::from_secs(n));
    Ok(true)
}

/// A switch's value: "true" from its flag, or its variable's.
fn switch(v: &str) -> Result<bool, String> {
    parse_bool(v).ok_or_else(|| "is not true or false".to_string())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn parse_credential(c: &str) -> Result<(String, String), String> {
    match c.split_once(':') {
        Some((user, pass)) if !user.is_empty() && !pass.is_empty() => {
            Ok((user.to_string(), pass.to_string()))
        }
        _ => Err("expected USER:PASS with neither part empty".into()),
    }
}

/// `/term/` and `term` become `/term`; `/` becomes "" (the root).
fn normalize_base_path(v: &str) -> Result<String, String> {
    let trimmed = v.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    });
    if !ok {
        return Err("is not a URL path such as /term (letters, digits, - . _ ~ and /)".into());
    }
    Ok(format!("/{trimmed}"))
}

fn os_to_string(v: OsString, what: &str) -> Result<String, ConfigError> {
    v.into_string()
        .map_err(|v| ConfigError(format!("{what}: {v:?} is not valid UTF-8")))
}

fn lexopt_error(e: lexopt::Error) -> ConfigError {
    ConfigError(format!(
        "{e}\n\nRun 'webterm --help' for the list of options."
    ))
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Splits a command line the way a POSIX shell tokenises words, without any
/// expansion: single quotes, double quotes (with `\"` and `\\`) and backslashes.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c)
                            }
                            None => return Err("a double quote is not closed".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("it ends with a lone backslash".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c)
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = args.iter().map(OsString::from).collect();
        match parse(args, |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })? {
            Invocation::Serve(c) => Ok(*c),
            other => panic!("expected Serve, got {other:?}"),
        }
    }

    #[test]
    fn defaults_bind_loopback_only() {
        let c = serve(&[], &[]).unwrap();
        assert_eq!(
            c.listen,
            vec![Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 8080)))]
        );
        assert_eq!(c.socket_mode, 0o600);
        assert!(c.url_args.is_empty());
        assert_eq!(c.tls_cert, None);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.idle_check_interval, Duration::from_secs(30));
        assert_eq!(c.command, None);
    }

    #[test]
    fn every_option_is_declared_once_and_documented() {
        let help = help();
        for (i, o) in OPTIONS.iter().enumerate() {
            assert!(
                help.contains(&format!("--{}", o.long)),
                "--help lacks --{}",
                o.long
            );
            assert!(help.contains(o.env), "--help lacks {}", o.env);
            assert!(
                OPTIONS[i + 1..]
                    .iter()
                    .all(|p| p.long != o.long && p.env != o.env),
                "--{} is declared twice",
                o.long
            );
            if let Some(d) = o.default {
                (o.set)(&mut Config::default(), d)
                    .unwrap_or_else(|e| panic!("the default of --{} '{d}' {e}", o.long));
            }
        }
        let c = serve(&[], &[]).unwrap();
        assert_eq!(c.log_level, Some(log::LevelFilter::Info));
        assert_eq!(c.max_sessions, 64);
        assert_eq!(c.kill_grace, Duration::from_secs(2));
    }

    #[test]
    fn several_listen_addresses_replace_the_default() {
        let c = serve(&["-l", "127.0.0.1:1", "--listen", "[::1]:2"], &[]).unwrap();
        assert_eq!(
            c.listen,
            vec![
                Listen::Tcp("127.0.0.1:1".parse().unwrap()),
                Listen::Tcp("[::1]:2".parse().unwrap())
            ]
        );
        let c = serve(&[], &[("WEBTERM_LISTEN", "127.0.0.1:3, 127.0.0.1:4")]).unwrap();
        assert_eq!(c.listen.len(), 2);
    }

    #[test]
    fn unix_sockets_and_their_mode() {
        let c = serve(
            &[
                "-l",
                "unix:/run/w.sock",
                "-l",
                "[::]:1",
                "--socket-mode",
                "660",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            c.listen,
            vec![
                Listen::Unix(PathBuf::from("/run/w.sock")),
                Listen::Tcp("[::]:1".parse().unwrap())
            ]
        );
        assert_eq!(c.socket_mode, 0o660);
        let c = serve(&[], &[("WEBTERM_SOCKET_MODE", "0o640")]).unwrap();
        assert_eq!(c.socket_mode, 0o640);
        let e = serve(&["-l", "unix:relative.sock"], &[]).unwrap_err();
        assert!(e.0.starts_with("--listen: 'unix:relative.sock'"), "{e}");
        let long = format!("unix:/{}", "x".repeat(120));
        assert!(serve(&["-l", &long], &[]).is_err());
        for bad in ["0999", "rw-------", "1777", ""] {
            if bad.is_empty() {
                continue;
            }
            let e = serve(&["--socket-mode", bad], &[]).unwrap_err();
            assert!(e.0.starts_with("--socket-mode: '"), "{e}");
        }
    }

    #[test]
    fn tls_files_go_together() {
        let c = serve(&["--tls-cert", "/c.pem"], &[("WEBTERM_TLS_KEY", "/k.pem")]).unwrap();
        assert_eq!(c.tls_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.tls_key, Some(PathBuf::from("/k.pem")));
        let e = serve(&["--tls-cert", "/c.pem"], &[]).unwrap_err();
        assert!(
            e.0.starts_with("--tls-cert and --tls-key go together"),
            "{e}"
        );
        assert!(!e.0.contains('\n'), "{e}");
        assert!(serve(&[], &[("WEBTERM_TLS_KEY", "/k.pem")]).is_err());
        let e = serve(
            &["-l", "unix:/w.sock", "--tls-cert", "/c", "--tls-key", "/k"],
            &[],
        )
        .unwrap_err();
        assert!(e.0.starts_with("--tls-cert:"), "{e}");
    }

    #[test]
    fn url_args_are_named() {
        let c = serve(&["--url-arg", "host", "--url-arg", "port", "ssh"], &[]).unwrap();
        assert_eq!(c.url_args, vec!["host", "port"]);
        let c = serve(
            &[],
            &[
                ("WEBTERM_URL_ARGS", "host, user"),
                ("WEBTERM_COMMAND", "ssh"),
            ],
        )
        .unwrap();
        assert_eq!(c.url_args, vec!["host", "user"]);
        let e = serve(&["--url-arg", "a.b", "ssh"], &[]).unwrap_err();
        assert!(e.0.starts_with("--url-arg: 'a.b'"), "{e}");
        assert!(serve(&["--url-arg", "x", "--url-arg", "x", "ssh"], &[]).is_err());
        let e = serve(&["--url-arg", "host"], &[]).unwrap_err();
        assert!(e.0.starts_with("--url-arg needs a COMMAND"), "{e}");
        let e = serve(&["--url-arg", "host", "--tmux", "main", "ssh"], &[]).unwrap_err();
        assert!(
            e.0.starts_with("--url-arg cannot be combined with --tmux"),
            "{e}"
        );
    }

    #[test]
    fn flag_beats_env_beats_legacy() {
        let c = serve(
            &["--idle-timeout", "1m"],
            &[("WEBTERM_IDLE_TIMEOUT", "2m"), ("IDLE_TIMEOUT_SECS", "3")],
        )
        .unwrap();
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
        let c = serve(
            &[],
            &[("WEBTERM_IDLE_TIMEOUT", "2m"), ("IDLE_TIMEOUT_SECS", "3")],
        )
        .unwrap();
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(120)));
        let c = serve(&[], &[("IDLE_TIMEOUT_SECS", "600")]).unwrap();
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(600)));
        let c = serve(&["--idle-timeout", "0"], &[]).unwrap();
        assert_eq!(c.idle_timeout, None);
    }

    #[test]
    fn command_after_double_dash_keeps_its_flags() {
        let c = serve(
            &["--listen", "[::1]:9000", "--", "ls", "-la", "--help"],
            &[],
        )
        .unwrap();
        assert_eq!(c.command.unwrap(), vec!["ls", "-la", "--help"]);
        let c = serve(&["htop", "-d", "5"], &[]).unwrap();
        assert_eq!(c.command.unwrap(), vec!["htop", "-d", "5"]);
        let c = serve(&[], &[("WEBTERM_COMMAND", "sh -c 'echo \"hi there\"'")]).unwrap();
        assert_eq!(c.command.unwrap(), vec!["sh", "-c", "echo \"hi there\""]);
    }

    #[test]
    fn bad_values_name_the_source() {
        let e = serve(&["--idle-timeout", "300"], &[]).unwrap_err();
        assert!(e.0.starts_with("--idle-timeout: '300' needs a unit"), "{e}");
        let e = serve(&[], &[("WEBTERM_LISTEN", "localhost")]).unwrap_err();
        assert!(e.0.starts_with("WEBTERM_LISTEN: 'localhost'"), "{e}");
        let e = serve(&["--max-sessions", "0"], &[]).unwrap_err();
        assert!(e.0.contains("above 0"), "{e}");
        let e = serve(&["--bogus"], &[]).unwrap_err();
        assert!(e.0.contains("--bogus"), "{e}");
        let e = serve(&["--allowed-origin", "example.com"], &[]).unwrap_err();
        assert!(e.0.contains("scheme"), "{e}");
    }

    #[test]
    fn term_options_parse_json_or_text() {
        let c = serve(
            &[
                "-t",
                "fontSize=16",
                "--term-option",
                "fontFamily=Fira Code",
                "-t",
                r##"theme={"background":"#000"}"##,
            ],
            &[(
                "WEBTERM_TERM_OPTIONS",
                r#"{"fontSize": 12, "cursorStyle": "bar"}"#,
            )],
        )
        .unwrap();
        assert_eq!(c.term_options["fontSize"], 16);
        assert_eq!(c.term_options["fontFamily"], "Fira Code");
        assert_eq!(c.term_options["theme"]["background"], "#000");
        assert_eq!(c.term_options["cursorStyle"], "bar");
        assert!(serve(&["-t", "fontSize"], &[]).is_err());
        assert!(serve(&[], &[("WEBTERM_TERM_OPTIONS", "[1]")]).is_err());
    }

    #[test]
    fn file_transfer() {
        let c = serve(&[], &[]).unwrap();
        assert!(!c.no_file_transfer);
        assert_eq!(c.max_upload, Some(64 << 20));
        let c = serve(&["--max-upload", "1G", "--no-file-transfer"], &[]).unwrap();
        assert!(c.no_file_transfer);
        assert_eq!(c.max_upload, Some(1 << 30));
        let c = serve(
            &[],
            &[
                ("WEBTERM_MAX_UPLOAD", "0"),
                ("WEBTERM_NO_FILE_TRANSFER", "true"),
            ],
        )
        .unwrap();
        assert!(c.no_file_transfer);
        assert_eq!(c.max_upload, None);
        let err = serve(&["--max-upload", "lots"], &[]).unwrap_err().0;
        assert!(err.starts_with("--max-upload: 'lots' "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = serve(&[], &[("WEBTERM_MAX_UPLOAD", "5x")]).unwrap_err().0;
        assert!(err.starts_with("WEBTERM_MAX_UPLOAD: '5x' "), "{err}");
    }

    #[test]
    fn auth_and_paths() {
        let c = serve(
            &[
                "--base-path",
                "/term/",
                "--readonly",
                "--credential",
                "ann:s3cr:et",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.base_path, "/term");
        assert!(c.readonly);
        assert_eq!(
            c.credentials,
            vec![("ann".to_string(), "s3cr:et".to_string())]
        );
        assert_eq!(serve(&["--base-path", "/"], &[]).unwrap().base_path, "");
        assert!(serve(&["--base-path", "/a/../b"], &[]).is_err());
        assert!(serve(&["--credential", "nopass"], &[]).is_err());
        assert!(serve(
            &["--credential", "a:b", "--auth-header", "Remote-User"],
            &[]
        )
        .is_err());
        assert!(serve(&[], &[("WEBTERM_READONLY", "maybe")]).is_err());
        assert!(
            serve(&[], &[("WEBTERM_READONLY", "true")])
                .unwrap()
                .readonly
        );
        let dir = std::env::temp_dir().join(format!("webterm-cred-{}", std::process::id()));
        std::fs::write(&dir, "# users\nann:one\n\nbob:two\n").unwrap();
        let c = serve(&["--credential-file", dir.to_str().unwrap()], &[]).unwrap();
        assert_eq!(c.credentials.len(), 2);
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn allowed_hosts() {
        let c = serve(
            &[
                "--allowed-host",
                "term.example.com",
                "--allowed-host",
                ".lan",
            ],
            &[("WEBTERM_ALLOWED_HOSTS", "ignored.example")],
        )
        .unwrap();
        assert_eq!(c.allowed_hosts, vec!["term.example.com", ".lan"]);
        let c = serve(&[], &[("WEBTERM_ALLOWED_HOSTS", "a.example, b.example")]).unwrap();
        assert_eq!(c.allowed_hosts, vec!["a.example", "b.example"]);
        let e = serve(&["--allowed-host", "https://x.example"], &[]).unwrap_err();
        assert!(
            e.0.starts_with("--allowed-host: 'https://x.example'"),
            "{e}"
        );
    }

    #[test]
    fn node_names_and_peer_addresses() {
        assert_eq!(node_name(" pod-a.x_1 ").unwrap(), "pod-a.x_1");
        assert!(node_name("").is_err());
        assert!(node_name("a b").is_err());
        assert!(node_name(&"a".repeat(64)).is_err());
        assert!(host_port("webterm-peers:8080").is_ok());
        assert!(host_port("[::1]:8080").is_ok());
        assert!(host_port("webterm-peers").is_err());
        assert!(host_port(":8080").is_err());
        assert!(host_port("x:99999").is_err());
        let e = serve(&["--peers", "10.0.0.2:8080"], &[]).unwrap_err();
        assert!(e.0.starts_with("--peers needs --secret-file"), "{e}");
        let e = serve(&["--node-id", "a/b"], &[]).unwrap_err();
        assert!(e.0.starts_with("--node-id: 'a/b' may hold only"), "{e}");
    }

    #[test]
    fn proxies_and_secrets() {
        let e = serve(&["--auth-header", "Remote-User"], &[]).unwrap_err();
        assert!(
            e.0.starts_with("--auth-header needs --trusted-proxy"),
            "{e}"
        );
        assert!(!e.0.contains('\n'), "{e}");
        let c = serve(
            &["--auth-header", "Remote-User"],
            &[("WEBTERM_TRUSTED_PROXIES", "10.42.0.0/16, 127.0.0.1")],
        )
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        let e = serve(&["--trusted-proxy", "10.0.0.0/40"], &[]).unwrap_err();
        assert!(e.0.starts_with("--trusted-proxy: '10.0.0.0/40'"), "{e}");
        let e = serve(&[], &[("WEBTERM_TRUSTED_PROXIES", "proxy")]).unwrap_err();
        assert!(e.0.starts_with("WEBTERM_TRUSTED_PROXIES: 'proxy'"), "{e}");

        let path = std::env::temp_dir().join(format!("webterm-key-{}", std::process::id()));
        std::fs::write(&path, "too short\n").unwrap();
        let e = serve(&["--secret-file", path.to_str().unwrap()], &[]).unwrap_err();
        assert!(e.0.starts_with("--secret-file: '"), "{e}");
        assert!(e.0.contains("holds 9 bytes"), "{e}");
        std::fs::write(&path, format!("{}\n", "k".repeat(40))).unwrap();
        let c = serve(&[], &[("WEBTERM_SECRET_FILE", path.to_str().unwrap())]).unwrap();
        assert!(c.secret.is_some());
        std::fs::remove_file(&path).unwrap();
        let e = serve(&["--secret-file", "/nonexistent/key"], &[]).unwrap_err();
        assert!(
            e.0.starts_with("--secret-file: '/nonexistent/key' cannot be read"),
            "{e}"
        );
    }

    #[test]
    fn split_command_handles_quotes() {
        assert_eq!(
            split_command(r#"a 'b c' "d \"e\"" f\ g"#).unwrap(),
            vec!["a", "b c", "d \"e\"", "f g"]
        );
        assert!(split_command("'open").is_err());
        assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
    }
}
