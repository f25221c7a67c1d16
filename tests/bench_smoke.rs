//! CI runs only a tiny smoke of the benchmark tool: it must start webterm,
//! drive both protocols through every scenario and print its table. No
//! timing is asserted; only that nothing was left behind after churn.

use std::process::Command;

#[test]
fn the_benchmark_tool_runs_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_webterm-bench"))
        .args(["--quick", "--webterm", env!("CARGO_BIN_EXE_webterm")])
        .output()
        .expect("run webterm-bench");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "raw PTY ceiling",
        "idle RSS",
        "throughput (cat)",
        "echo p99",
        "10 sessions to prompt",
        "RSS per session (10)",
        "churn",
        "Ctrl-C to prompt, slow reader",
        "binary throughput / raw PTY",
    ] {
        assert!(table.contains(row), "no {row:?} row in:\n{table}");
    }
    let left = table
        .lines()
        .find(|l| l.starts_with("processes left after churn"))
        .expect("a churn row");
    let counts: Vec<f64> = left
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(counts, vec![0.0, 0.0], "{left}");
}
