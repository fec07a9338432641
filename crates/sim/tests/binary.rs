//! The `rhtex-sim` binary: named workloads with `--json`, workload files in
//! JSON and TOML, and clear errors for bad input.

use std::process::Command;
use std::time::Duration;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `rhtex-sim` with a bounded wait (its process group killed past
/// 120 s).
fn rhtex_sim(args: &[&str]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rhtex-sim"));
    command.args(args);
    let output = testkit::run_bounded(
        &format!("rhtex-sim {args:?}"),
        &mut command,
        Duration::from_secs(120),
    );
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn json(outcome: &Outcome) -> serde_json::Value {
    serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
        panic!("not JSON ({error}): {}\n{}", outcome.stdout, outcome.stderr)
    })
}

/// Runs `rhtex-sim ARGS`, which must exit with `code`.
fn run_expecting(args: &[&str], code: i32) -> Outcome {
    let outcome = rhtex_sim(args);
    assert_eq!(
        outcome.code,
        Some(code),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    outcome
}

/// Runs `rhtex-sim ARGS`, which must refuse them (exit code 2) with
/// `fragment` in its error.
fn refused(args: &[&str], fragment: &str) {
    let outcome = rhtex_sim(args);
    assert_eq!(outcome.code, Some(2));
    assert!(outcome.stderr.contains(fragment), "{}", outcome.stderr);
}

/// A workload file `name` with `text` in a temporary directory of its own
/// (removed when the directory is dropped).
fn workload_file(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap_or_else(|error| panic!("{error}"));
    (dir, path.to_string_lossy().into_owned())
}

#[test]
fn named_workload_as_json_and_text() {
    let outcome = run_expecting(&["--workload", "parsl-mixed", "--seed", "4", "--json"], 0);
    let report = json(&outcome);
    assert_eq!(report["n_tasks"], 100);
    assert_eq!(report["ok"], true);
    assert_eq!(report["seed"], 4);
    assert!(
        report["utilization"]
            .as_f64()
            .is_some_and(|u| u > 0.0 && u <= 1.0),
        "{report}"
    );

    let text = run_expecting(&["--workload", "starvation", "--seed", "2"], 0);
    assert!(text.stdout.contains("utilization"), "{}", text.stdout);
    assert!(text.stdout.contains("exactly once: yes"), "{}", text.stdout);
}

#[test]
fn workload_files_json_and_toml() {
    let (_json_dir, json_path) = workload_file(
        "small.json",
        r#"{"blocks": [{"nodes": 4, "slots_per_node": 8}],
            "tasks": [{"duration": 2, "num_nodes": 2, "count": 4}, {"submit": 1, "duration": 1}]}"#,
    );
    let outcome = run_expecting(&["--workload", "file", "--file", &json_path, "--json"], 0);
    let report = json(&outcome);
    assert_eq!(report["workload"], "small");
    assert_eq!(report["n_completed"], 5);
    // Two 2-node tasks at a time on 4 nodes (0-2 s, 2-4 s); the 1-node task
    // submitted at 1 s queues behind them in FIFO order and runs 4-5 s.
    assert_eq!(report["makespan"], 5.0);

    let (_toml_dir, toml_path) = workload_file("small.toml",
        "name = \"t\"\n[[block]]\nnodes = 2\n[[task]]\nduration = 3.5\nnum_nodes = 2\nwalltime = 1\n",
    );
    let outcome = run_expecting(&["--file", &toml_path, "--json"], 0);
    let report = json(&outcome);
    assert_eq!(report["workload"], "t");
    assert_eq!(report["n_failed"]["walltime_exceeded"], 1);
    assert_eq!(report["makespan"], 1.0);
}

#[test]
fn bad_input_gives_a_clear_error_and_exit_2() {
    refused(&["--workload", "nope"], "heavy-tailed");

    let (dir, path) = workload_file("bad.json", r#"{"tasks": [{"duration": 1, "nodes": 2}]}"#);
    refused(&["--file", &path], "\"nodes\"");

    let missing = dir.path().join("missing.json");
    refused(&["--file", &missing.to_string_lossy()], "missing.json");

    refused(&["--workload", "file"], "--file");

    refused(
        &["--workload", "starvation", "--file", &path],
        "--workload file",
    );

    refused(&["--placement", "worst-fit"], "best-fit");
}

/// A task larger than every block and no block limit: it can never run, so
/// the report says so and the exit code is 1.
#[test]
fn stranded_task_exits_1() {
    let (_dir, path) = workload_file(
        "big.json",
        r#"{"blocks": [{"nodes": 2}], "tasks": [{"duration": 1, "num_nodes": 4}]}"#,
    );
    let outcome = run_expecting(&["--file", &path, "--json"], 1);
    let report = json(&outcome);
    assert_eq!(report["n_without_result"], 1);
    assert_eq!(report["stalled"], true);

    let outcome = run_expecting(&["--file", &path, "--max-block-nodes", "2", "--json"], 0);
    assert_eq!(json(&outcome)["n_failed"]["unschedulable"], 1);
}
