//! The `rhtex-sim` binary: named workloads with `--json`, workload files in
//! JSON and TOML, and clear errors for bad input.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `rhtex-sim` with a bounded wait (killed by pid past 120 s).
fn rhtex_sim(args: &[&str]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rhtex-sim"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start rhtex-sim: {error}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rhtex-sim {args:?} did not finish within 120 s");
            }
            Err(error) => panic!("cannot wait for rhtex-sim: {error}"),
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut stdout);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn json(outcome: &Outcome) -> serde_json::Value {
    serde_json::from_str(&outcome.stdout).unwrap_or_else(|error| {
        panic!("not JSON ({error}): {}\n{}", outcome.stdout, outcome.stderr)
    })
}

#[test]
fn named_workload_as_json_and_text() {
    let outcome = rhtex_sim(&["--workload", "parsl-mixed", "--seed", "4", "--json"]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
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

    let text = rhtex_sim(&["--workload", "starvation", "--seed", "2"]);
    assert_eq!(text.code, Some(0), "{}{}", text.stdout, text.stderr);
    assert!(text.stdout.contains("utilization"), "{}", text.stdout);
    assert!(text.stdout.contains("exactly once: yes"), "{}", text.stdout);
}

#[test]
fn workload_files_json_and_toml() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let json_path = dir.path().join("small.json");
    std::fs::write(
        &json_path,
        r#"{"blocks": [{"nodes": 4, "slots_per_node": 8}],
            "tasks": [{"duration": 2, "num_nodes": 2, "count": 4}, {"submit": 1, "duration": 1}]}"#,
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let outcome = rhtex_sim(&[
        "--workload",
        "file",
        "--file",
        &json_path.to_string_lossy(),
        "--json",
    ]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    let report = json(&outcome);
    assert_eq!(report["workload"], "small");
    assert_eq!(report["n_completed"], 5);
    // Two 2-node tasks at a time on 4 nodes (0-2 s, 2-4 s); the 1-node task
    // submitted at 1 s queues behind them in FIFO order and runs 4-5 s.
    assert_eq!(report["makespan"], 5.0);

    let toml_path = dir.path().join("small.toml");
    std::fs::write(
        &toml_path,
        "name = \"t\"\n[[block]]\nnodes = 2\n[[task]]\nduration = 3.5\nnum_nodes = 2\nwalltime = 1\n",
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let outcome = rhtex_sim(&["--file", &toml_path.to_string_lossy(), "--json"]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    let report = json(&outcome);
    assert_eq!(report["workload"], "t");
    assert_eq!(report["n_failed"]["walltime_exceeded"], 1);
    assert_eq!(report["makespan"], 1.0);
}

#[test]
fn bad_input_gives_a_clear_error_and_exit_2() {
    let outcome = rhtex_sim(&["--workload", "nope"]);
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome.stderr.contains("heavy-tailed"),
        "{}",
        outcome.stderr
    );

    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let path = dir.path().join("bad.json");
    std::fs::write(&path, r#"{"tasks": [{"duration": 1, "nodes": 2}]}"#)
        .unwrap_or_else(|error| panic!("{error}"));
    let outcome = rhtex_sim(&["--file", &path.to_string_lossy()]);
    assert_eq!(outcome.code, Some(2));
    assert!(outcome.stderr.contains("\"nodes\""), "{}", outcome.stderr);

    let missing = dir.path().join("missing.json");
    let outcome = rhtex_sim(&["--file", &missing.to_string_lossy()]);
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome.stderr.contains("missing.json"),
        "{}",
        outcome.stderr
    );

    let outcome = rhtex_sim(&["--workload", "file"]);
    assert_eq!(outcome.code, Some(2));
    assert!(outcome.stderr.contains("--file"), "{}", outcome.stderr);

    let outcome = rhtex_sim(&[
        "--workload",
        "starvation",
        "--file",
        &path.to_string_lossy(),
    ]);
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome.stderr.contains("--workload file"),
        "{}",
        outcome.stderr
    );

    let outcome = rhtex_sim(&["--placement", "worst-fit"]);
    assert_eq!(outcome.code, Some(2));
    assert!(outcome.stderr.contains("best-fit"), "{}", outcome.stderr);
}

/// A task larger than every block and no block limit: it can never run, so
/// the report says so and the exit code is 1.
#[test]
fn stranded_task_exits_1() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let path = dir.path().join("big.json");
    std::fs::write(
        &path,
        r#"{"blocks": [{"nodes": 2}], "tasks": [{"duration": 1, "num_nodes": 4}]}"#,
    )
    .unwrap_or_else(|error| panic!("{error}"));
    let outcome = rhtex_sim(&["--file", &path.to_string_lossy(), "--json"]);
    assert_eq!(
        outcome.code,
        Some(1),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    let report = json(&outcome);
    assert_eq!(report["n_without_result"], 1);
    assert_eq!(report["stalled"], true);

    let outcome = rhtex_sim(&[
        "--file",
        &path.to_string_lossy(),
        "--max-block-nodes",
        "2",
        "--json",
    ]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    assert_eq!(json(&outcome)["n_failed"]["unschedulable"], 1);
}
