//! The page's close codes (public/close.mjs) are the server's
//! (src/protocol.rs, `mod close`): same names, same numbers, none missing.

use std::collections::BTreeMap;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `pub const NAME: u16 = N;` lines inside `pub mod close { ... }`.
fn server_codes() -> BTreeMap<String, u16> {
    let src = read("src/protocol.rs");
    let start = src
        .find("pub mod close {")
        .expect("protocol.rs has `pub mod close`");
    let body = &src[start..];
    let body = &body[..body.find("\n}").expect("end of mod close")];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .map(|l| {
            let (name, rest) = l.split_once(':').expect("NAME: u16 = N;");
            let n = rest
                .split('=')
                .nth(1)
                .and_then(|v| v.trim().trim_end_matches(';').parse().ok())
                .unwrap_or_else(|| panic!("cannot read the value of {name}"));
            (name.trim().to_string(), n)
        })
        .collect()
}

/// `NAME: N,` lines of the frozen `CLOSE` object.
fn page_codes() -> BTreeMap<String, u16> {
    let src = read("public/close.mjs");
    let start = src
        .find("Object.freeze({")
        .expect("close.mjs freezes CLOSE");
    let body = &src[start..src[start..].find("});").unwrap() + start];
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//"))
        .filter_map(|l| l.trim_end_matches(',').split_once(": "))
        .filter_map(|(name, n)| Some((name.to_string(), n.parse().ok()?)))
        .collect()
}

#[test]
fn the_page_and_the_server_agree_on_close_codes() {
    let server = server_codes();
    let mut page = page_codes();
    assert!(server.len() >= 15, "read too few server codes: {server:?}");
    // The one code only a browser makes: a connection lost without a close.
    assert_eq!(page.remove("ABNORMAL"), Some(1006));
    assert_eq!(page, server, "public/close.mjs differs from protocol.rs");
}
