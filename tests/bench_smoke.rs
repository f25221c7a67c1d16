//! CI runs only a tiny smoke of the benchmark tool: it must start webterm,
//! drive both protocols through every scenario and print its table. No
//! timing is asserted; only that every scenario produced figures for both
//! protocols, that nothing failed, and that nothing was left behind.

use std::process::Command;

/// The cells of the table row whose first cell starts with `name`: one per
/// column (webterm binary, webterm terminado, webterm forwarded through a
/// second replica, raw PTY, and the forwarded/binary ratio).
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| l.trim_start_matches('|').trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} row in:\n{table}"));
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    // "| name | a | b | c | d | e |" splits into "", name, a, ..., e, "".
    assert_eq!(cells.len(), 8, "odd row {line:?} in:\n{table}");
    cells[2..7].to_vec()
}

#[test]
fn the_benchmark_tool_runs_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_webterm-bench"))
        .args(["--quick", "--webterm", env!("CARGO_BIN_EXE_webterm")])
        .output()
        .expect("run webterm-bench");
    let table = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{table}\n{log}");

    // Every figure, for both protocols.
    for name in [
        "throughput (cat)",
        "server CPU per GB (cat)",
        "echo p50",
        "echo p99",
        "server context switches per 1,000 keys",
        "idle RSS",
        "10 sessions to prompt",
        "RSS per session (10)",
        "10 closed: until no shell left",
        "RSS after 10 closed",
        "churn",
        "Ctrl-C to prompt, fast reader",
        "Ctrl-C to prompt, slow reader",
        "bytes after Ctrl-C, slow reader",
        "throughput / raw PTY",
    ] {
        let cells = row(&table, name);
        for c in &cells[..2] {
            assert!(
                c.split_whitespace()
                    .next()
                    .and_then(|v| v.trim_end_matches('x').parse::<f64>().ok())
                    .is_some(),
                "{name:?} has no figure for every protocol in:\n{table}\n{log}"
            );
        }
    }
    // Through a second replica: throughput and echo, and their ratios to
    // the direct binary figures.
    for name in ["throughput (cat)", "echo p50", "echo p99"] {
        let cells = row(&table, name);
        for c in [cells[2], cells[4]] {
            assert!(
                c.trim_end_matches('x').parse::<f64>().is_ok(),
                "{name:?} has no forwarded figure or ratio in:\n{table}\n{log}"
            );
        }
    }
    // CPU time comes in clock ticks (10 ms): at --quick sizes the direct
    // figure can be 0, and a ratio to it has no value. The figure itself
    // must be there.
    let cpu = row(&table, "server CPU per GB (cat)");
    assert!(
        cpu[2].parse::<f64>().is_ok(),
        "no forwarded CPU figure in:\n{table}\n{log}"
    );
    // The ceiling, measured with no server.
    let raw = row(&table, "throughput (cat)")[3];
    assert!(raw.parse::<f64>().is_ok(), "no raw PTY figure in:\n{table}");

    // No failure in any scenario.
    let mut scenarios = 0;
    for line in table.lines().filter(|l| l.starts_with("| failures:")) {
        scenarios += 1;
        for c in line.split('|').skip(2).map(str::trim) {
            assert!(
                c.is_empty() || c.starts_with("0/"),
                "a failure: {line}\n{log}"
            );
        }
    }
    assert_eq!(scenarios, 6, "one failure row per scenario in:\n{table}");

    // Nothing left behind.
    for name in ["processes left after churn", "shells left after 10 closed"] {
        let cells = row(&table, name);
        assert_eq!(cells[..2], ["0", "0"], "{name}:\n{table}");
    }
}
