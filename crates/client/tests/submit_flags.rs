//! `rhtex submit --walltime/--retries/--no-exclusive`: bad values are
//! refused before connecting, with the specification's own message; good
//! ones reach a real `interchange` (started with `client::local`, CURVE on),
//! which accepts the task. And [`client::TaskBuilder`], the library's way to
//! set the same keys.
//!
//! The `interchange` binary must sit next to `rhtex` in `target/debug/`:
//! `cargo build --workspace --bins` first (the test says so when it is
//! missing).

mod common;

use common::{rhtex, start_interchange, TIMEOUT};

use client::{Client, ClientSecurity, TaskBuilder};
use protocol::{SpecValue, TaskId};
use std::time::Duration;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `rhtex submit ARGS -- true` must fail before connecting, with exit code
/// `code` and every fragment of `expected` on stderr.
fn check_refused(args: &[&str], code: i32, expected: &[&str]) {
    let mut all = vec!["--insecure", "submit"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--", "true"]);
    let output = rhtex(&all);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{all:?}: {stderr}");
    for fragment in expected {
        assert!(
            stderr.contains(fragment),
            "{all:?}: stderr {stderr:?} does not contain {fragment:?}"
        );
    }
    assert!(
        !stderr.contains("no interchange given"),
        "{all:?} was checked only after looking for an interchange: {stderr}"
    );
}

#[test]
fn bad_walltime_retries_and_exclusive_flags_are_refused_before_connecting() {
    check_refused(
        &["--walltime", "0"],
        1,
        &[
            "not submitted",
            "walltime must be a number of seconds, more than 0 and at most 1000000000, got 0.0",
        ],
    );
    check_refused(
        &["--walltime", "-5"],
        1,
        &["walltime must be a number of seconds", "got -5.0"],
    );
    check_refused(
        &["--walltime", "nan"],
        1,
        &["walltime must be a number of seconds", "got NaN"],
    );
    check_refused(
        &["--walltime", "2e9"],
        1,
        &["walltime must be a number of seconds", "got 2000000000.0"],
    );
    check_refused(
        &["--retries", "1001"],
        1,
        &["retries must be an integer from 0 to 1000, got 1001"],
    );
    check_refused(
        &["--retries", "-1"],
        1,
        &["retries must be an integer from 0 to 1000, got -1"],
    );
    // Not a number at all: clap's own error (exit code 2) names the flag.
    check_refused(&["--walltime", "1h"], 2, &["--walltime", "1h"]);
    check_refused(&["--retries", "two"], 2, &["--retries", "two"]);
    // --no-exclusive takes no value.
    check_refused(&["--no-exclusive=yes"], 2, &["--no-exclusive"]);
}

#[test]
fn good_flags_pass_validation() {
    // Valid: the next thing rhtex needs is an interchange.
    let output = rhtex(&[
        "--insecure",
        "submit",
        "--num-nodes",
        "2",
        "--ranks-per-node",
        "4",
        "--walltime",
        "0.25",
        "--retries",
        "0",
        "--no-exclusive",
        "--",
        "true",
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no interchange given"), "{stderr}");
}

#[tokio::test]
async fn the_interchange_accepts_tasks_submitted_with_the_new_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut interchange = start_interchange(dir.path()).await;
    let url = interchange.client_url();
    let keys = dir.path().join("keys").display().to_string();

    let mut task_ids = Vec::new();
    for flags in [
        vec!["--walltime", "60", "--retries", "2"],
        vec![
            "--num-nodes",
            "2",
            "--ranks-per-node",
            "4",
            "--walltime",
            "0.5",
            "--no-exclusive",
        ],
    ] {
        let mut args = vec![
            "--interchange",
            url.as_str(),
            "--keys-dir",
            keys.as_str(),
            "--json",
            "submit",
        ];
        args.extend(flags);
        args.extend(["--", "echo", "hi"]);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let output = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            rhtex(&args)
        });
        let output = output.await.expect("the rhtex runner");
        let stdout = text(&output.stdout);
        assert!(
            output.status.success(),
            "stdout: {stdout}\nstderr: {}",
            text(&output.stderr)
        );
        let value: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|error| panic!("rhtex --json submit printed {stdout:?}: {error}"));
        let task_id: TaskId = value["task_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no task id in {value}"));
        task_ids.push(task_id);
    }

    // No manager: both wait in the queue (an invalid spec would have
    // failed at once with invalid_spec).
    let security = ClientSecurity::from_keys_dir(&dir.path().join("keys")).expect("client keys");
    let client = Client::connect(&url, &security, TIMEOUT)
        .await
        .expect("connect");
    common::expect_queued_then_stop(&mut interchange, client, &task_ids, 2).await;
}

#[test]
fn task_builder_sets_and_validates_the_new_keys() {
    let task = TaskBuilder::new("$PARSL_MPI_PREFIX ./simulate")
        .num_nodes(2)
        .ranks_per_node(4)
        .walltime(Duration::from_millis(1500))
        .retries(3)
        .exclusive(false)
        .priority(-1)
        .launcher_options("--bind-to core")
        .env("CASE", "a")
        .cwd("/scratch/run")
        .stdout("/scratch/run/out")
        .build()
        .expect("valid");
    let resources = &task.resources.0;
    assert_eq!(resources.get("walltime"), Some(&SpecValue::Float(1.5)));
    assert_eq!(resources.get("retries"), Some(&SpecValue::Int(3)));
    assert_eq!(resources.get("exclusive"), Some(&SpecValue::Bool(false)));
    let validated = protocol::validate(&task.resources).expect("valid");
    assert_eq!(
        (
            validated.num_nodes,
            validated.ranks_per_node,
            validated.num_ranks
        ),
        (2, 4, 8)
    );
    assert_eq!(validated.walltime, Some(1.5));
    assert_eq!(validated.retries, Some(3));
    assert!(!validated.exclusive);
    assert_eq!(validated.priority, Some(-1));
    assert_eq!(task.env.get("CASE").map(String::as_str), Some("a"));
    assert_eq!(task.cwd.as_deref(), Some("/scratch/run"));
    assert_eq!(task.stdout.as_deref(), Some("/scratch/run/out"));
    assert_eq!(task.stderr, None);

    // A plain task: serial, exclusive, no walltime, fresh ids.
    let plain = TaskBuilder::new("hostname").build().expect("valid");
    let other = TaskBuilder::new("hostname").build().expect("valid");
    assert!(plain.resources.is_empty());
    assert_ne!(plain.task_id, other.task_id);
    let fixed = TaskId::from_u128(42);
    assert_eq!(
        TaskBuilder::new("x")
            .task_id(fixed)
            .build()
            .expect("valid")
            .task_id,
        fixed
    );
}

#[test]
fn task_builder_reports_invalid_specifications() {
    for (builder, expected) in [
        (
            TaskBuilder::new("x").walltime(Duration::ZERO),
            "walltime must be a number of seconds",
        ),
        (
            TaskBuilder::new("x").retries(1001),
            "retries must be an integer from 0 to 1000, got 1001",
        ),
        (
            TaskBuilder::new("x").num_nodes(3).num_ranks(2),
            "num_ranks = 2",
        ),
        (
            TaskBuilder::new("x").resource("exclusive", "no"),
            "exclusive must be true",
        ),
    ] {
        let error = builder.build().expect_err(expected);
        assert!(error.to_string().contains(expected), "{error}");
    }
}
