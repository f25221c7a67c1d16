//! What a terminal's command gets from webterm, and what it must not: a
//! webterm started with signals ignored (under nohup, or as a background job
//! of a script) or with its open-files limit raised (webterm raises its own)
//! must not hand either to the user's shell.

mod common;

use async_std::task::block_on;
use common::*;

/// A field of /proc/PID/status or a row of /proc/PID/limits, as printed.
fn soft_nofile(limits: &str) -> String {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .expect("Max open files in /proc/.../limits")
        .to_string()
}

#[test]
fn shells_start_with_default_signals_and_the_open_files_limit_webterm_was_given() {
    // sh ignores HUP, INT and QUIT, as nohup, or `&` in a script, would
    // leave webterm, and lowers the open-files soft limit below the hard one
    // (which webterm raises its own to), then execs webterm.
    let server = Server::start_via(
        &[
            "sh",
            "-c",
            "ulimit -S -n 512 && trap '' HUP INT QUIT && exec \"$0\" \"$@\"",
        ],
        &["--", "/bin/sh"],
        &[],
    );
    let ours = "512".to_string();
    let webterm_ignores = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:").map(|v| v.trim().to_string()))
        .unwrap();
    // The premise: webterm itself does ignore SIGHUP (bit 0).
    assert_eq!(
        u64::from_str_radix(&webterm_ignores, 16).unwrap() & 1,
        1,
        "webterm was not started ignoring SIGHUP: {webterm_ignores}"
    );
    let webterm_nofile =
        soft_nofile(&std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap());
    block_on(async {
        let mut ws = connect(&server.url("/ws"), Some(BINARY), None)
            .await
            .unwrap();
        setup(&mut ws).await;
        type_text(
            &mut ws,
            true,
            "echo ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status) nofile=$(ulimit -n) end$((20+1))\r",
        )
        .await;
        // "end21" is in the output only, never in the echo of the command.
        let out = read_until(&mut ws, "end21\r\n", T).await;
        // The output's line; a prompt may precede it on the same line (the
        // command was typed before the shell's first prompt).
        let line = out
            .lines()
            .filter(|l| l.ends_with(" end21"))
            .find_map(|l| l.rfind("ign=").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("no answer line in {out:?}"));
        let ign = line["ign=".len()..].split(' ').next().unwrap();
        let ign = u64::from_str_radix(ign, 16).unwrap_or_else(|_| panic!("{line}"));
        // The shell may ignore signals of its own choosing (an interactive
        // sh ignores SIGQUIT and SIGTERM); never the inherited SIGHUP.
        assert_eq!(ign & 1, 0, "the shell ignores SIGHUP: {line}");
        let nofile = line
            .split("nofile=")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap();
        assert_eq!(
            nofile, ours,
            "{line} (webterm's own soft limit: {webterm_nofile})"
        );
    });
}
