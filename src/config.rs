//! Configuration: command-line flags, their `WEBTERM_*` environment twins, and
//! the `--help` text that documents both.
//!
//! Every option can come from the environment so that a Kubernetes ConfigMap
//! can configure a pod without a custom command line. Precedence, highest
//! first: the flag, its `WEBTERM_<NAME>` variable, a legacy variable (only
//! `IDLE_TIMEOUT_SECS`, from the design this project grew from), the default.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::duration::{format_duration, parse_duration};

/// Everything the server needs to know, resolved and validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// The program and its arguments; `None` means the user's login shell.
    pub command: Option<Vec<String>>,
    /// `None` disables the idle timeout.
    pub idle_timeout: Option<Duration>,
    pub idle_check_interval: Duration,
    pub max_sessions: usize,
    pub allowed_origins: Vec<String>,
    /// `None` disables keepalive pings.
    pub ping_interval: Option<Duration>,
    pub kill_grace: Duration,
    pub log_level: log::LevelFilter,
    /// Serve page assets from this directory instead of the embedded copies.
    pub assets_dir: Option<PathBuf>,
    /// xterm.js options for the page (`--term-option`), plus `renderer`.
    pub term_options: serde_json::Map<String, serde_json::Value>,
    /// Drop all input: the terminal is output only.
    pub readonly: bool,
    /// URL prefix every route lives under: "" or "/something" (no trailing slash).
    pub base_path: String,
    /// HTTP Basic users and passwords; empty means no Basic authentication.
    pub credentials: Vec<(String, String)>,
    /// Trust this header, set by an authenticating proxy, as the user name.
    pub auth_header: Option<String>,
    /// How long a detached session waits for its client; zero ends at once.
    pub reconnect_window: Duration,
    /// What counts as activity for the idle rule.
    pub idle_policy: crate::idle::Policy,
    /// The most a client may ask for with `?idle_timeout=`.
    pub max_idle_timeout: Option<Duration>,
    /// Warn this long before an idle timeout.
    pub idle_warning: Option<Duration>,
    /// Run each tab's command inside this tmux session (`--tmux NAME`).
    pub tmux: Option<String>,
    /// Track sessions by process tree even where a cgroup could be made.
    pub no_cgroups: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            command: None,
            idle_timeout: Some(Duration::from_secs(300)),
            idle_check_interval: Duration::from_secs(30),
            max_sessions: 64,
            allowed_origins: Vec::new(),
            ping_interval: Some(Duration::from_secs(25)),
            kill_grace: Duration::from_secs(2),
            log_level: log::LevelFilter::Info,
            assets_dir: None,
            term_options: serde_json::Map::new(),
            readonly: false,
            base_path: String::new(),
            credentials: Vec::new(),
            auth_header: None,
            reconnect_window: Duration::from_secs(60),
            idle_policy: crate::idle::Policy::Input,
            max_idle_timeout: None,
            idle_warning: None,
            tmux: None,
            no_cgroups: false,
        }
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

pub const HELP: &str = "\
webterm: a terminal in your browser, one PTY per tab, no orphaned processes.

USAGE:
    webterm [OPTIONS] [--] [COMMAND [ARGS...]]
    webterm sessions [--url URL] [--json] [--kill ID]   (see webterm sessions --help)
    webterm health [--url URL]                          (the image's HEALTHCHECK)

With no COMMAND, each tab runs the user's login shell ($SHELL, else /bin/sh).
Every option can also be set with the environment variable shown beside it;
a flag wins over its variable. Durations take a unit: 500ms, 30s, 5m, 1h.

OPTIONS:
    -l, --listen ADDR               [env: WEBTERM_LISTEN]       default 127.0.0.1:8080
        Address and port to serve on. The default serves this machine only;
        use 0.0.0.0:8080 (or [::]:8080) to accept connections from others.

        --idle-timeout DURATION     [env: WEBTERM_IDLE_TIMEOUT] default 5m
        End a session after this long without user input (keys, paste,
        resize). Program output does not count. 0 turns the timeout off.
        The legacy variable IDLE_TIMEOUT_SECS (seconds) is honoured when
        neither the flag nor WEBTERM_IDLE_TIMEOUT is set.

                --idle-policy POLICY        [env: WEBTERM_IDLE_POLICY]  default input
        What counts as activity: 'input' (keys, paste, resize: a forgotten
        'tail -f' still ends) or 'activity' (output too: an unattended
        dashboard such as socktop stays up while it draws).

        --idle-warning DURATION     [env: WEBTERM_IDLE_WARNING] default off
        Tell the page this long before an idle timeout; it shows a countdown
        that any key cancels.

        --max-idle-timeout DURATION [env: WEBTERM_MAX_IDLE_TIMEOUT]
        The most a user may ask for with ?idle_timeout=DURATION on the page's
        URL (default: --idle-timeout, so users may only ask for less).

        --reconnect-window DURATION [env: WEBTERM_RECONNECT_WINDOW] default 60s
        A tab that loses its connection (refresh, network blip, laptop sleep)
        may come back this long and find its shell as it left it. Detached
        sessions count toward --max-sessions. 0 ends a session with its socket.

        --tmux NAME                 [env: WEBTERM_TMUX]
        Run the command inside the tmux session NAME (created on first use,
        shared by every tab), so the shell outlives webterm itself. Needs tmux.

        --idle-check-interval DURATION
                                    [env: WEBTERM_IDLE_CHECK_INTERVAL] default 30s
        How often each session checks whether it has been idle too long; a
        session ends at most this long after its timeout passes.

        --max-sessions N            [env: WEBTERM_MAX_SESSIONS] default 64
        Refuse new terminals (WebSocket close 1013) while N are running.

        --allowed-origin ORIGIN     [env: WEBTERM_ALLOWED_ORIGINS, comma-separated]
        A browser origin (https://example.com:8443) allowed to open
        terminals besides the one whose Host the request names. Repeatable.
        '*' allows every origin, which lets any web page a user visits open
        a shell as that user: only for trusted networks.

        --ping-interval DURATION    [env: WEBTERM_PING_INTERVAL] default 25s
        Send a WebSocket ping this often, so proxies that cut silent
        connections (NGINX Proxy Manager after 90s) keep them, and close a
        socket that has answered nothing for two intervals. 0 turns it off.

        --kill-grace DURATION       [env: WEBTERM_KILL_GRACE]   default 2s
        After hanging up a session's processes, how long to wait before
        killing whatever is still alive with SIGKILL.

        --assets-dir DIR            [env: WEBTERM_ASSETS_DIR]
        Serve the page from DIR instead of the copy built into the binary
        (for working on the page without rebuilding).

        -t, --term-option KEY=VALUE  [env: WEBTERM_TERM_OPTIONS, a JSON object]
        An xterm.js option for the page, such as fontSize=16,
        fontFamily='Fira Code', cursorStyle=bar, scrollback=10000 or
        theme='{\"background\":\"#000000\"}'. VALUE is JSON when it parses as
        JSON, text otherwise. Repeatable. renderer=dom turns WebGL off.

                --no-cgroups                [env: WEBTERM_NO_CGROUPS=true]
        Do not give each session a cgroup of its own, even where webterm
        can make one. Without one, a process that leaves the terminal's
        session (setsid, a daemon) is found through the process tree and
        the session's mark in its environment (see the README).

        --readonly                  [env: WEBTERM_READONLY=true]
        Output only: whatever clients type is dropped (resizes still apply).

        --base-path PATH            [env: WEBTERM_BASE_PATH]    default /
        Serve everything under PATH (such as /term) for a reverse proxy that
        routes by path without stripping it. /healthz and /readyz stay at the
        root too, for probes.

        --credential USER:PASS      [env: WEBTERM_CREDENTIAL]
        Require HTTP Basic authentication with this user and password.
        Repeatable. Prefer --credential-file: arguments show in ps.

        --credential-file FILE      [env: WEBTERM_CREDENTIAL_FILE]
        Read USER:PASS lines (a Kubernetes Secret mounted as a file); blank
        lines and lines starting with # are skipped.

        --auth-header NAME          [env: WEBTERM_AUTH_HEADER]
        Trust an authenticating proxy (Traefik forward-auth, an NGINX Proxy
        Manager access list): a request must carry header NAME (such as
        Remote-User), whose value is taken as the user. Only safe when the
        proxy is the only way to reach webterm.

        --log-level LEVEL            [env: WEBTERM_LOG_LEVEL, or RUST_LOG] default info
        One of error, warn, info, debug, trace, off.

    -h, --help                      Print this help.
    -V, --version                   Print the version.

COMMAND:
    Runs in a fresh PTY for every tab, with TERM=xterm-256color and
    COLORTERM=truecolor. Its arguments never come from the URL. The
    environment variable WEBTERM_COMMAND sets it too (split like a shell
    would: quotes and backslashes work, nothing is expanded).

EXAMPLES:
    webterm                                  # your shell on http://127.0.0.1:8080
    webterm --listen 0.0.0.0:7681 -- htop    # htop for your LAN
    WEBTERM_IDLE_TIMEOUT=10m webterm socktop
";

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

    let mut cfg = Config::default();
    let mut flags = Flags::default();
    let mut parser = lexopt::Parser::from_args(args);
    let mut command: Vec<String> = Vec::new();

    while let Some(arg) = parser.next().map_err(lexopt_error)? {
        match arg {
            Short('h') | Long("help") => return Ok(Invocation::Help),
            Short('V') | Long("version") => return Ok(Invocation::Version),
            Short('l') | Long("listen") => flags.listen = Some(value(&mut parser, "--listen")?),
            Long("idle-timeout") => {
                flags.idle_timeout = Some(value(&mut parser, "--idle-timeout")?)
            }
            Long("idle-check-interval") => {
                flags.idle_check_interval = Some(value(&mut parser, "--idle-check-interval")?)
            }
            Long("max-sessions") => {
                flags.max_sessions = Some(value(&mut parser, "--max-sessions")?)
            }
            Long("allowed-origin") => flags
                .allowed_origins
                .push(value(&mut parser, "--allowed-origin")?),
            Long("ping-interval") => {
                flags.ping_interval = Some(value(&mut parser, "--ping-interval")?)
            }
            Long("kill-grace") => flags.kill_grace = Some(value(&mut parser, "--kill-grace")?),
            Long("assets-dir") => flags.assets_dir = Some(value(&mut parser, "--assets-dir")?),
            Long("log-level") => flags.log_level = Some(value(&mut parser, "--log-level")?),
            Long("readonly") => flags.readonly = true,
            Long("no-cgroups") => flags.no_cgroups = true,
            Long("reconnect-window") => {
                flags.reconnect_window = Some(value(&mut parser, "--reconnect-window")?)
            }
            Long("idle-policy") => flags.idle_policy = Some(value(&mut parser, "--idle-policy")?),
            Long("max-idle-timeout") => {
                flags.max_idle_timeout = Some(value(&mut parser, "--max-idle-timeout")?)
            }
            Long("idle-warning") => {
                flags.idle_warning = Some(value(&mut parser, "--idle-warning")?)
            }
            Long("tmux") => flags.tmux = Some(value(&mut parser, "--tmux")?),
            Long("base-path") => flags.base_path = Some(value(&mut parser, "--base-path")?),
            Long("credential") => flags.credentials.push(value(&mut parser, "--credential")?),
            Long("credential-file") => {
                flags.credential_file = Some(value(&mut parser, "--credential-file")?)
            }
            Long("auth-header") => flags.auth_header = Some(value(&mut parser, "--auth-header")?),
            Short('t') | Long("term-option") => flags
                .term_options
                .push(value(&mut parser, "--term-option")?),
            Value(first) => {
                // The first positional argument starts the command; everything
                // after it belongs to the command, even things that look like flags.
                command.push(os_to_string(first, "COMMAND")?);
                for rest in parser.raw_args().map_err(lexopt_error)? {
                    command.push(os_to_string(rest, "COMMAND")?);
                }
            }
            other => {
                return Err(ConfigError(format!(
                    "{}\n\nRun 'webterm --help' for the list of options.",
                    other.unexpected()
                )))
            }
        }
    }

    let pick = |flag: Option<String>, var: &str| -> Option<(String, String)> {
        flag.map(|v| (format!("--{}", flag_name(var)), v))
            .or_else(|| env(var).map(|v| (var.to_string(), v)))
    };

    if let Some((src, v)) = pick(flags.listen, "WEBTERM_LISTEN") {
        cfg.listen = v.parse().map_err(|_| {
            ConfigError(format!(
                "{src}: '{v}' is not an address and port, such as 127.0.0.1:8080 or [::1]:8080"
            ))
        })?;
    }
    if let Some((src, v)) = pick(flags.idle_timeout, "WEBTERM_IDLE_TIMEOUT") {
        cfg.idle_timeout = nonzero(parse_duration(&v).map_err(|e| at(&src, &v, e))?);
    } else if let Some(secs) = env("IDLE_TIMEOUT_SECS") {
        let n: u64 = secs.trim().parse().map_err(|_| {
            ConfigError(format!(
                "IDLE_TIMEOUT_SECS: '{secs}' is not a whole number of seconds"
            ))
        })?;
        cfg.idle_timeout = nonzero(Duration::from_secs(n));
    }
    if let Some((src, v)) = pick(flags.idle_check_interval, "WEBTERM_IDLE_CHECK_INTERVAL") {
        let d = parse_duration(&v).map_err(|e| at(&src, &v, e))?;
        if d.is_zero() {
            return Err(ConfigError(format!(
                "{src}: the check interval must be longer than 0"
            )));
        }
        cfg.idle_check_interval = d;
    }
    if let Some((src, v)) = pick(flags.max_sessions, "WEBTERM_MAX_SESSIONS") {
        cfg.max_sessions =
            v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError(format!("{src}: '{v}' is not a whole number above 0"))
            })?;
    }
    if !flags.allowed_origins.is_empty() {
        cfg.allowed_origins = flags.allowed_origins;
    } else if let Some(v) = env("WEBTERM_ALLOWED_ORIGINS") {
        cfg.allowed_origins = v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
    }
    for origin in &cfg.allowed_origins {
        crate::origin::validate_allowed(origin)
            .map_err(|e| ConfigError(format!("--allowed-origin: '{origin}' {e}")))?;
    }
    if let Some((src, v)) = pick(flags.ping_interval, "WEBTERM_PING_INTERVAL") {
        cfg.ping_interval = nonzero(parse_duration(&v).map_err(|e| at(&src, &v, e))?);
    }
    if let Some((src, v)) = pick(flags.kill_grace, "WEBTERM_KILL_GRACE") {
        cfg.kill_grace = parse_duration(&v).map_err(|e| at(&src, &v, e))?;
    }
    if let Some((_, v)) = pick(flags.assets_dir, "WEBTERM_ASSETS_DIR") {
        cfg.assets_dir = Some(PathBuf::from(v));
    }
    if let Some(v) = env("WEBTERM_TERM_OPTIONS").filter(|v| !v.trim().is_empty()) {
        match serde_json::from_str(&v) {
            Ok(serde_json::Value::Object(map)) => cfg.term_options = map,
            _ => {
                return Err(ConfigError(format!(
                    "WEBTERM_TERM_OPTIONS: '{v}' is not a JSON object such as {{\"fontSize\": 16}}"
                )))
            }
        }
    }
    for option in flags.term_options {
        let (key, raw) = option.split_once('=').ok_or_else(|| {
            ConfigError(format!(
                "--term-option: '{option}' is not KEY=VALUE, such as fontSize=16"
            ))
        })?;
        let value = serde_json::from_str(raw)
            .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
        cfg.term_options.insert(key.trim().to_string(), value);
    }
    cfg.readonly = flags.readonly
        || match env("WEBTERM_READONLY") {
            Some(v) => parse_bool(&v).ok_or_else(|| {
                ConfigError(format!("WEBTERM_READONLY: '{v}' is not true or false"))
            })?,
            None => false,
        };
    cfg.no_cgroups = flags.no_cgroups
        || match env("WEBTERM_NO_CGROUPS") {
            Some(v) => parse_bool(&v).ok_or_else(|| {
                ConfigError(format!("WEBTERM_NO_CGROUPS: '{v}' is not true or false"))
            })?,
            None => false,
        };
    if let Some((src, v)) = pick(flags.reconnect_window, "WEBTERM_RECONNECT_WINDOW") {
        cfg.reconnect_window = parse_duration(&v).map_err(|e| at(&src, &v, e))?;
    }
    if let Some((src, v)) = pick(flags.idle_policy, "WEBTERM_IDLE_POLICY") {
        cfg.idle_policy = crate::idle::Policy::parse(&v)
            .ok_or_else(|| at(&src, &v, "is not a policy: use input or activity".into()))?;
    }
    if let Some((src, v)) = pick(flags.max_idle_timeout, "WEBTERM_MAX_IDLE_TIMEOUT") {
        cfg.max_idle_timeout = nonzero(parse_duration(&v).map_err(|e| at(&src, &v, e))?);
    }
    if let Some((src, v)) = pick(flags.idle_warning, "WEBTERM_IDLE_WARNING") {
        cfg.idle_warning = nonzero(parse_duration(&v).map_err(|e| at(&src, &v, e))?);
    }
    if let Some((src, v)) = pick(flags.tmux, "WEBTERM_TMUX") {
        let name = v.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(at(
                &src,
                &v,
                "is not a tmux session name (letters, digits, - and _)".into(),
            ));
        }
        cfg.tmux = Some(name.to_string());
    }
    if let Some((src, v)) = pick(flags.base_path, "WEBTERM_BASE_PATH") {
        cfg.base_path = normalize_base_path(&v).map_err(|e| at(&src, &v, e))?;
    }
    let mut credentials = flags.credentials;
    if credentials.is_empty() {
        credentials.extend(env("WEBTERM_CREDENTIAL").filter(|v| !v.is_empty()));
    }
    for c in &credentials {
        cfg.credentials
            .push(parse_credential(c).map_err(|e| ConfigError(format!("--credential: {e}")))?);
    }
    if let Some((src, path)) = pick(flags.credential_file, "WEBTERM_CREDENTIAL_FILE") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("{src}: cannot read '{path}': {e}")))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            cfg.credentials.push(
                parse_credential(line)
                    .map_err(|e| ConfigError(format!("{path}, line {}: {e}", n + 1)))?,
            );
        }
        if cfg.credentials.is_empty() {
            return Err(ConfigError(format!(
                "{src}: '{path}' holds no USER:PASS line"
            )));
        }
    }
    if let Some((src, v)) = pick(flags.auth_header, "WEBTERM_AUTH_HEADER") {
        let name = v.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError(format!("{src}: '{v}' is not a header name")));
        }
        cfg.auth_header = Some(name.to_string());
    }
    if cfg.auth_header.is_some() && !cfg.credentials.is_empty() {
        return Err(ConfigError(
            "--auth-header and --credential are alternatives: let the proxy authenticate, or webterm".into(),
        ));
    }
    let level = pick(flags.log_level, "WEBTERM_LOG_LEVEL")
        .or_else(|| env("RUST_LOG").map(|v| ("RUST_LOG".to_string(), v)));
    if let Some((src, v)) = level {
        cfg.log_level = v.trim().parse().map_err(|_| {
            ConfigError(format!(
                "{src}: '{v}' is not a log level (error, warn, info, debug, trace, off)"
            ))
        })?;
    }

    if !command.is_empty() {
        cfg.command = Some(command);
    } else if let Some(v) = env("WEBTERM_COMMAND").filter(|v| !v.trim().is_empty()) {
        cfg.command =
            Some(split_command(&v).map_err(|e| ConfigError(format!("WEBTERM_COMMAND: {e}")))?);
    }

    Ok(Invocation::Serve(Box::new(cfg)))
}

#[derive(Default)]
struct Flags {
    listen: Option<String>,
    idle_timeout: Option<String>,
    idle_check_interval: Option<String>,
    max_sessions: Option<String>,
    allowed_origins: Vec<String>,
    ping_interval: Option<String>,
    kill_grace: Option<String>,
    assets_dir: Option<String>,
    log_level: Option<String>,
    term_options: Vec<String>,
    readonly: bool,
    no_cgroups: bool,
    reconnect_window: Option<String>,
    idle_policy: Option<String>,
    max_idle_timeout: Option<String>,
    idle_warning: Option<String>,
    tmux: Option<String>,
    base_path: Option<String>,
    credentials: Vec<String>,
    credential_file: Option<String>,
    auth_header: Option<String>,
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

/// `WEBTERM_IDLE_TIMEOUT` -> `idle-timeout`, for messages that name the flag.
fn flag_name(var: &str) -> String {
    var.trim_start_matches("WEBTERM_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

fn value(parser: &mut lexopt::Parser, flag: &str) -> Result<String, ConfigError> {
    let v = parser
        .value()
        .map_err(|_| ConfigError(format!("{flag} needs a value")))?;
    os_to_string(v, flag)
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

fn at(src: &str, value: &str, err: String) -> ConfigError {
    ConfigError(format!("{src}: '{value}' {err}"))
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
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.idle_check_interval, Duration::from_secs(30));
        assert_eq!(c.command, None);
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
    fn split_command_handles_quotes() {
        assert_eq!(
            split_command(r#"a 'b c' "d \"e\"" f\ g"#).unwrap(),
            vec!["a", "b c", "d \"e\"", "f g"]
        );
        assert!(split_command("'open").is_err());
        assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
    }
}
