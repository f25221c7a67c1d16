//! The security headers of every response, and the page's
//! Content-Security-Policy.
//!
//! What the policy says, and why no more:
//! - `frame-ancestors 'self'` (and `X-Frame-Options: SAMEORIGIN` for old
//!   browsers): another site must not frame a shell and trick clicks or
//!   keys into it.
//! - `script-src 'self'` plus the SHA-256 of each inline script: the page
//!   runs only its own files and its inline import map (which loads the
//!   xterm.js ES modules without a bundler). The hash is taken from the page
//!   as served, so `--assets-dir` edits keep working; no `'unsafe-inline'`.
//!   `'wasm-unsafe-eval'` lets the image addon compile its sixel decoder
//!   (WebAssembly); it allows no JavaScript `eval`.
//! - `object-src 'none'`, `base-uri 'self'`, `form-action 'self'`.
//! - No `default-src`, so neither `style-src` nor `connect-src`: xterm.js
//!   writes `<style>` elements at run time (which `style-src 'self'` would
//!   block), and Safari before 16 does not let `'self'` cover the `ws:` /
//!   `wss:` socket URL, so either would break the page for some users while
//!   scripts are already pinned.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// Headers for every response.
pub const COMMON: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "SAMEORIGIN"),
];

/// The policy of anything that is not an HTML page or a worker: it loads
/// nothing.
pub const NOT_A_PAGE: &str = "default-src 'none'; frame-ancestors 'self'";

/// How the page's worker scripts are named (`public/socket.worker.mjs`).
pub const WORKER_SUFFIX: &str = ".worker.mjs";

/// The policy of a worker script. A worker runs under its own script's
/// policy, not the page's, so `NOT_A_PAGE` would forbid it the socket it
/// exists to hold. It gets the page's rules, less the inline hashes (a
/// worker has no inline scripts), and no `connect-src` for the page's
/// reason.
pub const WORKER: &str =
    "script-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'self'";

/// The policy for an HTML page, allowing exactly its inline scripts.
pub fn page_policy(html: &[u8]) -> String {
    let mut script_src = String::from("'self' 'wasm-unsafe-eval'");
    for script in inline_scripts(&String::from_utf8_lossy(html)) {
        // Browsers hash the script's text as parsed, and HTML parsing turns
        // CRLF and lone CR into LF.
        let text = script.replace("\r\n", "\n").replace('\r', "\n");
        let digest = Sha256::digest(text.as_bytes());
        script_src.push_str(&format!(
            " 'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
    }
    format!(
        "script-src {script_src}; object-src 'none'; base-uri 'self'; frame-ancestors 'self'; form-action 'self'"
    )
}

/// The text of every `<script>` element without a `src` attribute. A small
/// scanner, not an HTML parser: enough for a page we write ourselves.
fn inline_scripts(html: &str) -> Vec<&str> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<script").map(|i| at + i) {
        let after_name = start + "<script".len();
        if !lower[after_name..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>') {
            at = after_name;
            continue;
        }
        let Some(tag_end) = end_of_tag(&lower, after_name) else {
            break;
        };
        let body_start = tag_end + 1;
        let Some(body_end) = lower[body_start..].find("</script").map(|i| body_start + i) else {
            break;
        };
        if !has_src(&lower[after_name..tag_end]) {
            found.push(&html[body_start..body_end]);
        }
        at = body_end;
    }
    found
}

/// The index of the `>` closing a start tag, skipping quoted values.
fn end_of_tag(s: &str, from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, c) in s[from..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(from + i),
            _ => {}
        }
    }
    None
}

fn has_src(attributes: &str) -> bool {
    let mut quote = None;
    let mut name = String::new();
    for c in attributes.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c.is_ascii_whitespace() || c == '=' || c == '/' => {
                if name == "src" {
                    return true;
                }
                name.clear();
            }
            (None, c) => name.push(c),
        }
    }
    name == "src"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_inline_scripts_only() {
        let html = "<head><SCRIPT type=\"importmap\">{\"a\":1}</script>\n\
                    <script type=\"module\" src=\"app.mjs\"></script>\
                    <script data-x='>' >x()</script><scripts></scripts></head>";
        assert_eq!(inline_scripts(html), vec!["{\"a\":1}", "x()"]);
        let policy = page_policy(html.as_bytes());
        let expected = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"x()"));
        assert!(policy.contains(&format!("'sha256-{expected}'")), "{policy}");
        assert!(policy.contains("frame-ancestors 'self'"));
        assert_eq!(policy.matches("'sha256-").count(), 2, "{policy}");
    }

    #[test]
    fn carriage_returns_are_hashed_as_the_browser_sees_them() {
        let crlf = page_policy(b"<script>a\r\nb\rc</script>");
        let lf = page_policy(b"<script>a\nb\nc</script>");
        assert_eq!(crlf, lf);
    }

    #[test]
    fn the_embedded_page_has_its_import_map_hashed() {
        let page = crate::assets::lookup("/", None, false).unwrap();
        let policy = page_policy(&page.body);
        assert_eq!(policy.matches("'sha256-").count(), 1, "{policy}");
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn src_attribute_detection() {
        assert!(has_src(" src=\"a.js\""));
        assert!(has_src(" type=module src=a.js"));
        assert!(!has_src(" data-src=\"a\""));
        assert!(!has_src(" type=\"importmap\" title=\"src\""));
    }
}
