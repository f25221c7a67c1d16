//! `--url-arg NAME`: `?arg.NAME=VALUE` on the socket URL appended to the
//! command, one argv entry each, only for the names the operator allowed,
//! and never a value that could be read as an option.
//!
//! The command is `printf '[%s]\n'`, a real program that prints each
//! argument it gets in brackets, so argv's boundaries show in the output.

mod common;

use async_std::task::block_on;
use common::*;

/// Percent-encodes everything but letters and digits.
fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn start(names: &[&str]) -> Server {
    let mut args = Vec::new();
    for n in names {
        args.extend(["--url-arg", n]);
    }
    args.extend(["--", "printf", "[%s]\\n"]);
    Server::start(&args)
}

/// Everything the session prints until `needle`.
fn output_of(server: &Server, pairs: &[(&str, &str)], needle: &str) -> String {
    block_on(async {
        let url = server.url(&format!("/ws?{}", query(pairs)));
        let mut ws = connect(&url, None, None).await.unwrap();
        setup(&mut ws).await;
        read_until(&mut ws, needle, T).await
    })
}

/// The HTTP status the upgrade was refused with.
fn refused(server: &Server, pairs: &[(&str, &str)]) -> u16 {
    block_on(async {
        let url = server.url(&format!("/ws?{}", query(pairs)));
        match connect_with(&url, &[]).await {
            Ok(_) => panic!("{pairs:?} was accepted"),
            Err(status) => status,
        }
    })
}

#[test]
fn named_arguments_reach_argv_one_entry_each_in_the_operators_order() {
    let server = start(&["first", "second"]);
    let tricky = r#"two words, "double" and 'single' quotes; $(id) `id` *"#;
    let out = output_of(
        &server,
        &[("arg.second", "2nd"), ("arg.first", tricky)],
        "[2nd]",
    );
    assert!(out.contains(&format!("[{tricky}]\r\n[2nd]")), "{out:?}");
    // Only one given: only one appended; an empty value counts as absent.
    let out = output_of(&server, &[("arg.second", "only"), ("arg.first", "")], "]");
    assert!(out.contains("[only]"), "{out:?}");
    assert!(!out.contains("[]"), "{out:?}");
    // Exactly 256 bytes is allowed; see the refusal of 257 below.
    let long = "x".repeat(256);
    let out = output_of(&server, &[("arg.first", &long)], "]");
    assert!(out.contains(&format!("[{long}]")), "{out:?}");
    server.wait_metric("webterm_requests_refused_total", &[], 0.0, T);
}

#[test]
fn bad_or_unnamed_arguments_are_refused_before_any_process_starts() {
    let server = start(&["host"]);
    let cases: &[&[(&str, &str)]] = &[
        &[("arg.other", "x")],
        &[("arg.host", &"x".repeat(257))],
        &[("arg.host", "-oProxyCommand=touch /tmp/pwned")],
        &[("arg.host", "--help")],
        &[("arg.host", "line\nbreak")],
        &[("arg.host", "nul\0byte")],
        &[("arg.host", "esc\x1b[31m")],
        &[("arg.host", "a"), ("arg.host", "b")],
    ];
    for (n, pairs) in cases.iter().enumerate() {
        assert_eq!(refused(&server, pairs), 400, "{pairs:?}");
        server.wait_metric(
            "webterm_requests_refused_total",
            &[("reason", "url_arg")],
            (n + 1) as f64,
            T,
        );
    }
    assert_eq!(server.metric("webterm_sessions_started_total", &[]), 0.0);
    assert!(descendants(server.pid()).is_empty());
}

#[test]
fn without_url_arg_nothing_from_the_url_reaches_the_command() {
    let server = Server::start(&["--", "printf", "[%s]\\n", "fixed"]);
    assert_eq!(refused(&server, &[("arg.host", "x")]), 400);
    // ttyd's ?arg= is not ours: ignored, the command runs as configured.
    let out = output_of(&server, &[("arg", "injected")], "[fixed]");
    assert!(!out.contains("injected"), "{out:?}");
}

#[test]
fn url_arg_needs_a_command_and_no_tmux() {
    for args in [
        &["--url-arg", "host"][..],
        &["--url-arg", "host", "--tmux", "main", "--", "ssh"][..],
        &["--url-arg", "bad.name", "--", "ssh"][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_webterm"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--url-arg"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn a_resumed_session_keeps_the_arguments_it_started_with() {
    let server = Server::start(&[
        "--url-arg",
        "word",
        "--",
        "/bin/sh",
        "-c",
        "printf '[%s]\\n' \"$1\"; exec cat",
        "sh",
    ]);
    block_on(async {
        let url = server.url("/ws?resumable=1&arg.word=first");
        let mut ws = connect(&url, Some(BINARY), None).await.unwrap();
        let first = setup(&mut ws).await;
        let id = first["session"].as_str().unwrap().to_string();
        let token = first["resume_token"].as_str().unwrap().to_string();
        read_until(&mut ws, "[first]", T).await;
        let row = server.session(&id).expect("listed");
        assert!(
            row["command"].as_str().unwrap().ends_with(" first"),
            "{row}"
        );
        drop(ws);
        server.wait_state(&id, Some("detached"), T);

        let url = server.url(&format!("/ws?resumable=1&resume={id}&arg.word=second"));
        let mut ws = connect(&url, Some(BINARY), None).await.unwrap();
        send_text(
            &mut ws,
            &serde_json::json!({"type": "resume", "token": token, "have": 0}).to_string(),
        )
        .await;
        let again = loop {
            match event(&mut ws, T).await {
                Event::Json(v) if v["type"] == "setup" => break v,
                Event::Json(_) => {}
                other => panic!("expected setup, got {other:?}"),
            }
        };
        assert_eq!(again["resumed"], true, "{again}");
        assert_eq!(again["pid"], first["pid"]);
        type_text(&mut ws, true, "typed\r").await;
        let seen = read_until(&mut ws, "typed", T).await;
        assert!(seen.contains("[first]"), "{seen:?}");
        assert!(!seen.contains("second"), "{seen:?}");
        assert_eq!(server.metric("webterm_sessions_started_total", &[]), 1.0);
    });
}
