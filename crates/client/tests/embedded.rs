//! `rhtex run` in embedded mode, as a user runs it: the real `rhtex`,
//! `interchange` and `pool-manager` binaries, the example ensemble (with
//! MPICH's `mpiexec` for its two MPI tasks), the summary and the exit code.
//!
//! `interchange` and `pool-manager` must sit next to `rhtex` in
//! `target/debug/`. `cargo test -p client` builds only this package's
//! binaries, so build them first:
//!     cargo build --workspace --bins
//! Without them the tests fail with a message that says so (`testkit`).
//!
//! Every `rhtex` runs in its own process group with its output in files;
//! every wait is bounded; on a timeout it gets SIGINT (so it stops its
//! daemons), then its group gets SIGKILL, and so do the daemons' groups.

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(180);

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `rhtex ARGS` in `dir` with no inherited interchange, bounded by
/// [`RUN_TIMEOUT`].
fn run_rhtex(dir: &Path, args: &[&str]) -> Run {
    let stdout_path = dir.join("rhtex.stdout");
    let stderr_path = dir.join("rhtex.stderr");
    let stdout = std::fs::File::create(&stdout_path).expect("create stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("create stderr file");
    let rhtex = testkit::with_binaries_next_to(
        env!("CARGO_BIN_EXE_rhtex").into(),
        &["interchange", "pool-manager"],
    );
    let mut child = Command::new(rhtex)
        .args(args)
        .current_dir(dir)
        .env_remove("RHTEX_INTERCHANGE")
        .env("RHTEX_KEYS_DIR", dir.join("no-default-keys"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .expect("start rhtex");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = match done_rx.recv_timeout(RUN_TIMEOUT) {
        Ok(status) => status.expect("wait for rhtex"),
        Err(_) => {
            // Ask it to stop its daemons, then make sure.
            let _ = signal::kill(pid, Signal::SIGINT);
            let outcome = done_rx.recv_timeout(Duration::from_secs(30));
            let _ = signal::killpg(pid, Signal::SIGKILL);
            kill_daemons(&read(&stderr_path));
            let _ = waiter.join();
            panic!(
                "rhtex {args:?} did not finish within {RUN_TIMEOUT:?} (after SIGINT: {outcome:?});\nstderr:\n{}",
                read(&stderr_path)
            );
        }
    };
    let _ = waiter.join();
    let stderr = read(&stderr_path);
    // rhtex waits for its daemons; anything left over is a failure below,
    // but must not outlive the test.
    let leftovers = kill_daemons(&stderr);
    assert!(
        leftovers.is_empty(),
        "daemons {leftovers:?} were still running after rhtex exited;\nstderr:\n{stderr}"
    );
    Run {
        status,
        stdout: read(&stdout_path),
        stderr,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The daemon pids rhtex announced on stderr
/// ("... (pid N), pool-manager pid M, ...").
fn daemon_pids(stderr: &str) -> Vec<i32> {
    let Some(line) = stderr
        .lines()
        .find(|line| line.contains("embedded interchange"))
    else {
        return Vec::new();
    };
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|word| !word.is_empty())
        .collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == "pid")
        .filter_map(|pair| pair[1].parse().ok())
        .collect()
}

/// SIGKILLs the process group of every announced daemon that still
/// exists; returns those that did.
fn kill_daemons(stderr: &str) -> Vec<i32> {
    daemon_pids(stderr)
        .into_iter()
        .filter(|&pid| signal::kill(Pid::from_raw(pid), None).is_ok())
        .inspect(|&pid| {
            let _ = signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
        })
        .collect()
}

fn copy_example(dir: &Path, name: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let target = dir.join(name);
    std::fs::copy(&source, &target).expect("copy the example");
    target
}

#[test]
fn embedded_run_of_the_example_ensemble() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example(dir.path(), "ensemble.toml");
    let run = run_rhtex(dir.path(), &["run", "ensemble.toml"]);
    let context = format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        run.status, run.stdout, run.stderr
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "every task completes: {context}"
    );
    assert_eq!(daemon_pids(&run.stderr).len(), 2, "{context}");

    let rows: Vec<&str> = run
        .stdout
        .lines()
        .filter(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|first| first.parse::<usize>().is_ok())
                && !line.contains(" tasks: ")
        })
        .collect();
    assert_eq!(rows.len(), 6, "one summary row per task: {context}");
    assert!(
        rows.iter().all(|row| row.contains("completed")),
        "{context}"
    );
    assert!(
        rows.iter()
            .any(|row| row.contains("$PARSL_MPI_PREFIX hostname")),
        "{context}"
    );
    assert!(
        run.stdout
            .contains("6 tasks: 6 completed, 0 failed, 0 cancelled"),
        "{context}"
    );
    assert!(
        run.stderr.contains("[6/6] task"),
        "progress lines on a non-terminal stderr: {context}"
    );

    // The relative stdout of the second MPI task landed next to the task file,
    // one hostname per rank.
    let mpi_output = read(&dir.path().join("mpi-hostname.out"));
    assert_eq!(mpi_output.lines().count(), 2, "{mpi_output:?}\n{context}");

    // The run directory holds the keys and both daemons' logs.
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("rhtex-run"))
        .expect("rhtex-run exists")
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    for file in ["keys/server.key", "interchange.log", "pool-manager.log"] {
        assert!(
            runs[0].join(file).exists(),
            "{file} in {}",
            runs[0].display()
        );
    }
}

#[test]
fn embedded_run_with_failures_exits_non_zero_with_json_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mixed.jsonl"),
        concat!(
            "{\"command\": \"echo fine\"}\n",
            "{\"command\": \"echo failing; exit 3\", \"resources\": {\"priority\": 1}}\n",
            "{\"command\": \"kill -9 $$\"}\n",
        ),
    )
    .expect("write the task file");
    let run = run_rhtex(dir.path(), &["--json", "run", "mixed.jsonl"]);
    let context = format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        run.status, run.stdout, run.stderr
    );
    assert_eq!(run.status.code(), Some(1), "{context}");
    // One line per task when submitted and when finished, then the summary.
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {context}")))
        .collect();
    assert_eq!(lines.len(), 7, "{context}");
    for (index, line) in lines[..3].iter().enumerate() {
        assert_eq!(line["event"], "submitted", "{context}");
        assert_eq!(line["index"], index, "{context}");
        assert!(line["task_id"].is_string(), "{context}");
    }
    let finished_with_3: Vec<&serde_json::Value> = lines[3..6]
        .iter()
        .filter(|line| line["event"] == "finished" && line["exit_code"] == 3)
        .collect();
    assert_eq!(finished_with_3.len(), 1, "{context}");
    assert_eq!(
        finished_with_3[0]["task_id"], lines[1]["task_id"],
        "{context}"
    );
    let summary = lines[6].clone();
    assert_eq!(summary["counts"]["total"], 3, "{context}");
    assert_eq!(summary["counts"]["completed"], 1, "{context}");
    assert_eq!(summary["counts"]["failed"], 2, "{context}");
    let tasks = summary["tasks"].as_array().expect("tasks");
    assert_eq!(tasks[1]["command"], "echo failing; exit 3");
    assert_eq!(tasks[1]["result"]["exit_code"], 3, "{context}");
    assert_eq!(
        tasks[1]["result"]["error"]["kind"], "exit_code",
        "{context}"
    );
    assert_eq!(tasks[1]["result"]["stdout_tail"], "failing\n", "{context}");
    assert_eq!(tasks[2]["result"]["signal"], 9, "{context}");
}

#[test]
fn bad_task_file_fails_before_starting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[task]]\ncommand = \"true\"\nresources = { num_nodes = 2, num_ranks = 1 }\n",
    )
    .expect("write the task file");
    let run = run_rhtex(dir.path(), &["run", "bad.toml"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("bad.toml:1: task 0: num_ranks = 1 is fewer than num_nodes = 2"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("rhtex-run").exists());
}
