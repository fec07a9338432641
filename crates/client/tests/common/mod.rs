//! Helpers shared by the client's integration tests (each test binary uses
//! some of them).
#![allow(dead_code)]

use client::local::{InterchangeOptions, LocalInterchange};
use client::{Client, Command, Reply};
use protocol::{TaskId, TaskState};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// How long one `rhtex` run or one connection may take in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `rhtex ARGS` in its own process group with no interchange from the
/// environment, bounded by [`TIMEOUT`] (then its group is killed).
pub fn rhtex(args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rhtex"));
    command
        .args(args)
        .env_remove("RHTEX_INTERCHANGE")
        .env_remove("RUST_LOG");
    testkit::run_bounded(&format!("rhtex {args:?}"), &mut command, TIMEOUT)
}

/// Starts a real interchange with fresh CURVE keys under `dir/keys`.
pub async fn start_interchange(dir: &Path) -> LocalInterchange {
    // The interchange is looked up next to the test's binaries.
    testkit::with_binaries_next_to(
        env!("CARGO_BIN_EXE_rhtex").into(),
        &[client::local::INTERCHANGE_PROGRAM],
    );
    let keys = dir.join("keys");
    transport::keygen(&keys).expect("keygen");
    let options = InterchangeOptions::local(&dir.join("run"), Some(&keys))
        .unwrap_or_else(|error| panic!("{error}"));
    LocalInterchange::start(&options)
        .await
        .unwrap_or_else(|error| panic!("cannot start the interchange: {error}"))
}

/// Expects the `n_tasks` tasks `task_ids` to be queued (there is no
/// manager), then stops the interchange through `client` and expects it to
/// exit 0.
pub async fn expect_queued_then_stop(
    interchange: &mut LocalInterchange,
    mut client: Client,
    task_ids: &[TaskId],
    n_tasks: usize,
) {
    let reply = client
        .command(Command::TaskStatus {
            task_ids: task_ids.to_vec(),
        })
        .await
        .expect("task_status");
    let Reply::TaskStatus { tasks } = reply else {
        panic!("expected a task_status reply, got {reply:?}");
    };
    assert_eq!(tasks.len(), n_tasks, "{tasks:#?}");
    for task in &tasks {
        assert_eq!(task.state, TaskState::Queued, "{task:#?}");
    }
    let status = interchange
        .stop(Some(&mut client), Duration::from_secs(10))
        .await
        .expect("stop");
    assert!(status.success(), "the interchange exits 0: {status}");
    client.close();
}
