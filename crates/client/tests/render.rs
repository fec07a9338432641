//! Result, status and summary rendering; exit codes; spec validation before
//! sending.

use client::render::{self, SummaryRow};
use client::{check_submissions, ClientError, ResourceRequest, TaskSubmission};
use protocol::{
    ErrorKind, Launcher, ManagerId, ManagerInfo, StatusReport, TaskError, TaskId, TaskResult,
    TaskState, WaitingGroup,
};
use std::collections::BTreeMap;

fn completed(id: u128) -> TaskResult {
    TaskResult {
        task_id: TaskId::from_u128(id),
        state: TaskState::Completed,
        exit_code: Some(0),
        signal: None,
        error: None,
        manager_id: Some(ManagerId::from_u128(9)),
        block_id: Some("local".into()),
        nodes: vec!["n1".into(), "n2".into()],
        stdout_path: Some("/run/tasks/x.stdout".into()),
        stderr_path: Some("/run/tasks/x.stderr".into()),
        stdout_tail: b"hello\n\xffbytes\n".to_vec(),
        stderr_tail: Vec::new(),
        start_time: Some(100.0),
        end_time: Some(101.5),
    }
}

fn failed(id: u128, exit_code: Option<i32>, signal: Option<i32>, kind: ErrorKind) -> TaskResult {
    TaskResult {
        state: TaskState::Failed,
        exit_code,
        signal,
        error: Some(TaskError {
            kind,
            message: format!("{kind} happened"),
        }),
        ..completed(id)
    }
}

#[test]
fn result_json_has_every_field() {
    let value = render::result_json(&completed(1));
    let keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "task_id",
        "state",
        "exit_code",
        "signal",
        "error",
        "manager_id",
        "block_id",
        "nodes",
        "stdout_path",
        "stderr_path",
        "stdout_tail",
        "stderr_tail",
        "start_time",
        "end_time",
    ] {
        assert!(keys.contains(&key), "missing {key} in {value}");
    }
    assert_eq!(value["task_id"], TaskId::from_u128(1).to_string());
    assert_eq!(value["state"], "completed");
    assert_eq!(value["error"], serde_json::Value::Null);
    assert_eq!(value["stdout_tail"], "hello\n\u{fffd}bytes\n");
    assert_eq!(value["nodes"], serde_json::json!(["n1", "n2"]));

    let value = render::result_json(&failed(2, Some(3), None, ErrorKind::ExitCode));
    assert_eq!(value["state"], "failed");
    assert_eq!(value["exit_code"], 3);
    assert_eq!(value["error"]["kind"], "exit_code");
    assert_eq!(value["error"]["message"], "exit_code happened");
}

#[test]
fn result_human_shows_state_error_and_tails() {
    let text = render::result_human(&completed(1));
    assert!(text.starts_with(&format!(
        "task {} completed (exit code 0)",
        TaskId::from_u128(1)
    )));
    assert!(text.contains("nodes: n1,n2"), "{text}");
    assert!(text.contains("run time: 1.50 s"), "{text}");
    assert!(text.contains("  hello\n"), "{text}");
    assert!(!text.contains("stderr (tail)"), "{text}");

    let text = render::result_human(&failed(2, None, Some(9), ErrorKind::Signaled));
    assert!(text.contains("failed (signal 9)"), "{text}");
    assert!(
        text.contains("error: signaled: signaled happened"),
        "{text}"
    );
}

#[test]
fn exit_codes_follow_the_result() {
    assert_eq!(render::exit_code_for(&completed(1)), 0);
    assert_eq!(
        render::exit_code_for(&failed(1, Some(7), None, ErrorKind::ExitCode)),
        7
    );
    assert_eq!(
        render::exit_code_for(&failed(1, None, Some(15), ErrorKind::Signaled)),
        143
    );
    assert_eq!(
        render::exit_code_for(&failed(1, None, None, ErrorKind::LaunchFailed)),
        1
    );
    assert_eq!(
        render::exit_code_for(&failed(1, Some(0), None, ErrorKind::Killed)),
        1
    );
    let cancelled = TaskResult::failed_before_start(
        TaskId::from_u128(1),
        ErrorKind::Cancelled,
        "cancelled".into(),
    );
    assert_eq!(render::exit_code_for(&cancelled), 1);
}

fn report() -> StatusReport {
    StatusReport {
        interchange_version: "0.1.0".into(),
        protocol_version: 1,
        n_queued: 4,
        n_running: 2,
        n_completed: 10,
        n_failed: 1,
        n_cancelled: 0,
        n_bad_messages: 3,
        managers: vec![ManagerInfo {
            manager_id: ManagerId::from_u128(5),
            block_id: "block-7".into(),
            hostname: "nid001".into(),
            launcher: Launcher::Mpiexec,
            n_nodes: 4,
            n_free_nodes: 1,
            n_running_tasks: 2,
            held: true,
            draining: false,
            registered_at: 900.0,
            last_heartbeat: 990.0,
            rhtex_version: "0.1.0".into(),
            slots_per_node: 8,
            reserved_for: None,
        }],
        waiting: vec![WaitingGroup {
            num_nodes: 8,
            n_tasks: 4,
            reason: "needs 8 nodes; the largest block has 4".into(),
        }],
        blocks: Vec::new(),
    }
}

#[test]
fn status_human_has_table_counts_and_reasons() {
    let text = render::status_human(&report(), 1000.0);
    assert!(text.contains("MANAGER"), "{text}");
    assert!(
        text.contains(&ManagerId::from_u128(5).to_string()),
        "{text}"
    );
    assert!(text.contains("block-7"), "{text}");
    assert!(text.contains("nid001"), "{text}");
    assert!(text.contains("1/4 free"), "{text}");
    assert!(text.contains("held"), "{text}");
    assert!(text.contains("10 s ago"), "{text}");
    assert!(
        text.contains("4 queued, 2 running, 10 completed, 1 failed, 0 cancelled"),
        "{text}"
    );
    assert!(
        text.contains("4 task(s) needing 8 node(s) wait: needs 8 nodes"),
        "{text}"
    );
    assert!(text.contains("bad messages: 3"), "{text}");

    let empty = StatusReport {
        managers: Vec::new(),
        ..report()
    };
    assert!(render::status_human(&empty, 0.0).contains("managers: none connected"));
}

#[test]
fn status_json_has_managers_queue_and_waiting() {
    let value = render::status_json(&report(), 1000.0);
    assert_eq!(value["queue"]["queued"], 4);
    assert_eq!(value["n_bad_messages"], 3);
    assert_eq!(value["managers"][0]["block_id"], "block-7");
    assert_eq!(value["managers"][0]["held"], true);
    assert_eq!(value["managers"][0]["seconds_since_heartbeat"], 10.0);
    assert_eq!(value["waiting"][0]["num_nodes"], 8);
}

#[test]
fn summary_lists_every_task_and_counts() {
    let rows = vec![
        SummaryRow {
            index: 0,
            command: "echo hi".into(),
            result: Some(completed(1)),
        },
        SummaryRow {
            index: 1,
            command: format!("run {}", "x".repeat(100)),
            result: Some(failed(2, Some(2), None, ErrorKind::ExitCode)),
        },
        SummaryRow {
            index: 2,
            command: "never".into(),
            result: None,
        },
    ];
    let text = render::summary_human(&rows);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("#  STATE"), "{text}");
    assert!(
        lines[1].contains("completed") && lines[1].contains("echo hi"),
        "{text}"
    );
    assert!(
        lines[2].contains("failed") && lines[2].contains("exit_code"),
        "{text}"
    );
    assert!(lines[2].ends_with('…'), "{text}");
    assert!(lines[3].contains("no result"), "{text}");
    assert_eq!(
        lines[4],
        "3 tasks: 1 completed, 1 failed, 0 cancelled, 1 without result"
    );
    let value = render::summary_json(&rows);
    assert_eq!(value["counts"]["completed"], 1);
    assert_eq!(value["counts"]["without_result"], 1);
    assert_eq!(value["tasks"][1]["result"]["exit_code"], 2);
    assert_eq!(value["tasks"][2]["result"], serde_json::Value::Null);
}

#[test]
fn shorten_keeps_one_line_within_width() {
    assert_eq!(render::shorten("echo   hi\nthere", 20), "echo hi there");
    assert_eq!(render::shorten("abcdefghij", 5), "abcd…");
    assert_eq!(render::shorten("abcde", 5), "abcde");
}

fn submission(resources: ResourceRequest) -> TaskSubmission {
    TaskSubmission {
        task_id: TaskId::new_random(),
        command: "true".into(),
        resources,
        env: BTreeMap::new(),
        cwd: None,
        stdout: None,
        stderr: None,
    }
}

#[test]
fn invalid_spec_is_caught_with_its_position() {
    let tasks = vec![
        submission(ResourceRequest::new()),
        submission(
            ResourceRequest::new()
                .with("num_nodes", 2)
                .with("num_ranks", 4),
        ),
        submission(
            ResourceRequest::new()
                .with("num_nodes", 3)
                .with("num_ranks", 2),
        ),
    ];
    let bad_id = tasks[2].task_id;
    match check_submissions(&tasks) {
        Err(ClientError::InvalidSpec {
            index,
            task_id,
            source,
        }) => {
            assert_eq!(index, 2);
            assert_eq!(task_id, bad_id);
            assert!(source.to_string().contains("num_ranks = 2"), "{source}");
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
    assert!(check_submissions(&tasks[..2]).is_ok());
}
