//! Result, status and summary rendering; exit codes; spec validation before
//! sending.

use client::render::{self, SummaryRow};
use client::{check_submissions, ClientError, ResourceRequest, TaskSubmission};
use protocol::{
    BlockInfo, BlockState, ErrorKind, Launcher, ManagerId, ManagerInfo, StatusReport, TaskError,
    TaskId, TaskResult, TaskState, UserCounts, WaitingGroup,
};

/// Fails unless every one of `fragments` is in `text`.
fn assert_all_in(text: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(text.contains(fragment), "{fragment:?} not in:\n{text}");
    }
}

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
        output: None,
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
    assert_all_in(&text, &["nodes: n1,n2", "run time: 1.50 s", "  hello\n"]);
    assert!(!text.contains("stderr (tail)"), "{text}");

    let text = render::result_human(&failed(2, None, Some(9), ErrorKind::Signaled));
    assert_all_in(
        &text,
        &["failed (signal 9)", "error: signaled: signaled happened"],
    );
}

#[test]
fn exit_codes_follow_the_result() {
    assert_eq!(render::exit_code_for(&completed(1)), 0);
    for (exit_code, signal, kind, expected) in [
        (Some(7), None, ErrorKind::ExitCode, 7),
        (None, Some(15), ErrorKind::Signaled, 143),
        (None, None, ErrorKind::LaunchFailed, 1),
        (Some(0), None, ErrorKind::Killed, 1),
    ] {
        let result = failed(1, exit_code, signal, kind);
        assert_eq!(render::exit_code_for(&result), expected, "{result:?}");
    }
    let cancelled = TaskResult::failed_before_start(
        TaskId::from_u128(1),
        ErrorKind::Cancelled,
        "cancelled".into(),
    );
    assert_eq!(render::exit_code_for(&cancelled), 1);
}

#[test]
fn walltime_exceeded_fails_like_any_other_failure() {
    // Killed by SIGTERM at the walltime: 128 + 15, as any task ended by a signal.
    let killed = failed(1, None, Some(15), ErrorKind::WalltimeExceeded);
    assert_eq!(render::exit_code_for(&killed), 143);
    // It trapped SIGTERM and exited 0: still a failure.
    let trapped = failed(1, Some(0), None, ErrorKind::WalltimeExceeded);
    assert_eq!(render::exit_code_for(&trapped), 1);
    let text = render::result_human(&killed);
    assert_all_in(
        &text,
        &[
            "failed (signal 15)",
            "error: walltime_exceeded: walltime_exceeded happened",
        ],
    );
    let value = render::result_json(&killed);
    assert_eq!(value["state"], "failed");
    assert_eq!(value["error"]["kind"], "walltime_exceeded");
    assert_eq!(value["signal"], 15);
    let rows = vec![SummaryRow {
        index: 0,
        command: "sleep 100".into(),
        result: Some(killed),
    }];
    let summary = render::summary_human(&rows);
    assert_all_in(
        &summary,
        &[
            "walltime_exceeded",
            "sig 15",
            "1 tasks: 0 completed, 1 failed",
        ],
    );
}

#[test]
fn a_failed_task_never_exits_zero() {
    // Whatever numbers a (perhaps foreign) manager puts in the result, a
    // task that did not complete gives a code from 1 to 255.
    for (exit_code, signal) in [
        (Some(-1), None),
        (Some(256), None),
        (Some(0), Some(0)),
        (None, Some(-9)),
        (None, Some(200)),
        (Some(i32::MIN), Some(i32::MAX)),
    ] {
        let result = failed(1, exit_code, signal, ErrorKind::ExitCode);
        let code = render::exit_code_for(&result);
        assert!(
            (1..=255).contains(&code),
            "exit_code {exit_code:?}, signal {signal:?} gave {code}"
        );
    }
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
        users: vec![UserCounts {
            identity: "alice".into(),
            n_queued: 4,
            n_running: 2,
        }],
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
    assert_all_in(
        &text,
        &[
            "block-7",
            "nid001",
            "1/4 free",
            "held",
            "10 s ago",
            "4 queued, 2 running, 10 completed, 1 failed, 0 cancelled",
            "4 task(s) needing 8 node(s) wait: needs 8 nodes",
            "alice: 4 queued, 2 running",
            "bad messages: 3",
        ],
    );

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
    assert_eq!(value["managers"][0]["slots_per_node"], 8);
    assert_eq!(
        value["managers"][0]["reserved_for"],
        serde_json::Value::Null
    );
    assert_eq!(value["waiting"][0]["num_nodes"], 8);
    assert_eq!(value["blocks"], serde_json::json!([]));
    assert_eq!(
        value["users"],
        serde_json::json!([{"identity": "alice", "queued": 4, "running": 2}])
    );
}

const RESERVED_TASK: TaskId = TaskId::from_u128(0x77);

/// A report with a reserved manager and two blocks from a provider.
fn report_with_blocks() -> StatusReport {
    let mut report = report();
    report.managers[0].reserved_for = Some(RESERVED_TASK);
    report.managers[0].held = false;
    report.blocks = vec![
        BlockInfo {
            block_id: "block-7".into(),
            job_id: "48213".into(),
            provider: "slurm".into(),
            state: BlockState::Connected,
            n_nodes: 4,
            manager_id: Some(ManagerId::from_u128(5)),
            submitted_at: 880.0,
            output_path: Some("/scratch/rhtex-run/blocks/block-7.out".into()),
            message: None,
        },
        BlockInfo {
            block_id: "block-8".into(),
            job_id: String::new(),
            provider: "slurm".into(),
            state: BlockState::Failed,
            n_nodes: 8,
            manager_id: None,
            submitted_at: 990.0,
            output_path: None,
            message: Some("sbatch: error: invalid partition specified: big".into()),
        },
    ];
    report
}

/// The line of manager 5 in a status text.
fn manager_row(text: &str) -> &str {
    text.lines()
        .find(|line| line.starts_with(&ManagerId::from_u128(5).to_string()))
        .unwrap_or_else(|| panic!("no manager row in {text}"))
}

#[test]
fn status_human_shows_slots_and_reservations() {
    let text = render::status_human(&report(), 1000.0);
    let header = text
        .lines()
        .find(|line| line.starts_with("MANAGER"))
        .unwrap_or_else(|| panic!("no managers header in {text}"));
    assert!(header.contains("SLOTS/NODE"), "{text}");
    let row = manager_row(&text);
    // The slots column sits under its header.
    let column = header.find("SLOTS/NODE").unwrap_or(0);
    assert_eq!(row.get(column..column + 2), Some("8 "), "{text}");
    assert!(!text.contains("reserved for"), "{text}");
    assert!(!text.contains("blocks:"), "{text}");

    let text = render::status_human(&report_with_blocks(), 1000.0);
    assert!(
        text.contains(&format!(
            "manager {} is reserved for task {RESERVED_TASK}",
            ManagerId::from_u128(5)
        )),
        "{text}"
    );
    assert!(text.contains("active"), "{text}");

    // A manager that registered without slots (a version 1 style report).
    let mut unknown_slots = report();
    unknown_slots.managers[0].slots_per_node = 0;
    let text = render::status_human(&unknown_slots, 1000.0);
    let row = manager_row(&text);
    assert_eq!(row.get(column..column + 2), Some("- "), "{text}");
}

#[test]
fn status_human_lists_blocks_when_there_are_some() {
    let text = render::status_human(&report_with_blocks(), 1000.0);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|line| *line == "blocks:")
        .unwrap_or_else(|| panic!("no blocks section in {text}"));
    let header = lines[start + 1];
    let columns = "BLOCK JOB PROVIDER STATE NODES MANAGER SUBMITTED".split(' ');
    for column in columns.chain(["OUTPUT / MESSAGE"]) {
        assert!(header.contains(column), "{column} missing: {text}");
    }
    let connected = lines[start + 2];
    assert!(connected.starts_with("block-7"), "{text}");
    for cell in [
        "48213",
        "slurm",
        "connected",
        "4",
        &ManagerId::from_u128(5).to_string(),
        "120 s ago",
        "/scratch/rhtex-run/blocks/block-7.out",
    ] {
        assert!(connected.contains(cell), "{cell} missing: {connected}");
    }
    let failed = lines[start + 3];
    assert!(failed.starts_with("block-8"), "{text}");
    assert!(failed.contains("failed"), "{failed}");
    assert!(
        failed.ends_with("sbatch: error: invalid partition specified: big"),
        "{failed}"
    );
    // No job id and no manager: dashes, not empty cells.
    let cells: Vec<&str> = failed.split_whitespace().collect();
    assert_eq!(cells.get(1), Some(&"-"), "{failed}");
    assert!(text.ends_with("bad messages: 3\n"), "{text}");
}

#[test]
fn status_json_passes_reservations_and_blocks_through() {
    let value = render::status_json(&report_with_blocks(), 1000.0);
    assert_eq!(
        value["managers"][0]["reserved_for"],
        RESERVED_TASK.to_string()
    );
    assert_eq!(value["managers"][0]["slots_per_node"], 8);
    let blocks = value["blocks"].as_array().expect("a blocks array");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["block_id"], "block-7");
    assert_eq!(blocks[0]["job_id"], "48213");
    assert_eq!(blocks[0]["provider"], "slurm");
    assert_eq!(blocks[0]["state"], "connected");
    assert_eq!(blocks[0]["n_nodes"], 4);
    assert_eq!(blocks[0]["manager_id"], ManagerId::from_u128(5).to_string());
    assert_eq!(blocks[0]["submitted_at"], 880.0);
    assert_eq!(blocks[0]["seconds_since_submitted"], 120.0);
    assert_eq!(
        blocks[0]["output_path"],
        "/scratch/rhtex-run/blocks/block-7.out"
    );
    assert_eq!(blocks[0]["message"], serde_json::Value::Null);
    assert_eq!(blocks[1]["state"], "failed");
    assert_eq!(blocks[1]["manager_id"], serde_json::Value::Null);
    assert_eq!(
        blocks[1]["message"],
        "sbatch: error: invalid partition specified: big"
    );
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
    // Streamed, the summary is the same bytes as the whole value.
    let mut streamed = Vec::new();
    render::write_summary_json(&rows, &mut streamed).expect("writing to a Vec");
    assert_eq!(
        String::from_utf8(streamed).expect("JSON is UTF-8"),
        serde_json::to_string(&value).expect("a JSON value serializes")
    );
}

/// What `rhtex` printed for a result, a summary and `rhtex run --json`'s
/// lines when they were built as `serde_json::Value`s: the reference the
/// written JSON must match byte for byte.
fn reference_result(result: &TaskResult) -> serde_json::Value {
    serde_json::json!({
        "task_id": result.task_id.to_string(),
        "state": result.state.as_str(),
        "exit_code": result.exit_code,
        "signal": result.signal,
        "error": result.error.as_ref().map(|error| serde_json::json!({
            "kind": error.kind.as_str(),
            "message": error.message,
        })),
        "manager_id": result.manager_id.map(|id| id.to_string()),
        "block_id": result.block_id,
        "nodes": result.nodes,
        "stdout_path": result.stdout_path,
        "stderr_path": result.stderr_path,
        "stdout_tail": String::from_utf8_lossy(&result.stdout_tail),
        "stderr_tail": String::from_utf8_lossy(&result.stderr_tail),
        "start_time": result.start_time,
        "end_time": result.end_time,
        "output_bytes": result.output.as_ref().map(Vec::len),
    })
}

fn reference_finished_line(index: usize, result: &TaskResult) -> serde_json::Value {
    use protocol::events::rfc3339_millis;
    serde_json::json!({
        "event": "finished",
        "index": index,
        "task_id": result.task_id.to_string(),
        "state": result.state.as_str(),
        "exit_code": result.exit_code,
        "error_kind": result.error.as_ref().map(|error| error.kind.as_str()),
        "nodes": result.nodes,
        "start_time": result.start_time.map(rfc3339_millis),
        "end_time": result.end_time.map(rfc3339_millis),
    })
}

/// The bytes `write` writes, as text.
fn written(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut bytes = Vec::new();
    write(&mut bytes).expect("writing to a Vec");
    String::from_utf8(bytes).expect("JSON is UTF-8")
}

#[test]
fn written_json_is_the_bytes_of_the_value_it_stands_for() {
    let mut odd = TaskResult::new(TaskId::from_u128(3), TaskState::Cancelled);
    odd.stderr_tail = b"quote \" backslash \\ tab \t nul \0 \xe2\x82".to_vec();
    odd.start_time = Some(f64::NAN);
    odd.end_time = Some(1_800_000_000.123_456);
    odd.output = Some(vec![1, 2, 3]);
    odd.nodes = vec!["n\"1".into()];
    let results = [
        completed(1),
        failed(2, Some(3), None, ErrorKind::ExitCode),
        failed(4, None, Some(9), ErrorKind::WalltimeExceeded),
        TaskResult::new(TaskId::from_u128(5), TaskState::Failed),
        odd,
    ];
    for result in &results {
        let reference = serde_json::to_string(&reference_result(result)).expect("a value");
        assert_eq!(
            written(|out| render::write_result_json(result, out)),
            reference
        );
        assert_eq!(render::result_json(result), reference_result(result));
        assert_eq!(
            written(|out| client::listing::write_finished_line(out, 7, result)),
            serde_json::to_string(&reference_finished_line(7, result)).expect("a value")
        );
    }
    let submitted = serde_json::json!({
        "event": "submitted",
        "index": 4,
        "task_id": TaskId::from_u128(6).to_string(),
        "command": "echo \"hi\"\n",
    });
    assert_eq!(
        written(|out| client::listing::write_submitted_line(
            out,
            4,
            TaskId::from_u128(6),
            "echo \"hi\"\n"
        )),
        serde_json::to_string(&submitted).expect("a value")
    );
    let rows: Vec<SummaryRow> = results
        .iter()
        .enumerate()
        .map(|(index, result)| SummaryRow {
            index,
            command: format!("task {index} \u{e9}"),
            result: (index != 2).then(|| result.clone()),
        })
        .collect();
    let summary = serde_json::json!({
        "tasks": rows.iter().map(|row| serde_json::json!({
            "index": row.index,
            "command": row.command,
            "result": row.result.as_ref().map(reference_result),
        })).collect::<Vec<_>>(),
        "counts": {
            "total": 5,
            "completed": 1,
            "failed": 2,
            "cancelled": 1,
            "without_result": 1,
        },
    });
    assert_eq!(
        written(|out| render::write_summary_json(&rows, out)),
        serde_json::to_string(&summary).expect("a value")
    );
}

#[test]
fn shorten_keeps_one_line_within_width() {
    assert_eq!(render::shorten("echo   hi\nthere", 20), "echo hi there");
    assert_eq!(render::shorten("abcdefghij", 5), "abcd…");
    assert_eq!(render::shorten("abcde", 5), "abcde");
}

fn submission(resources: ResourceRequest) -> TaskSubmission {
    TaskSubmission {
        resources,
        ..TaskSubmission::new(TaskId::new_random(), "true")
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

#[test]
fn status_shows_node_utilization() {
    let text = render::status_human(&report(), 1000.0);
    assert!(text.contains("nodes: 3 busy of 4 (75 % in use)"), "{text}");
    let json = render::status_json(&report(), 1000.0);
    assert_eq!(json["nodes"]["busy"], 3);
    assert_eq!(json["nodes"]["total"], 4);
}
