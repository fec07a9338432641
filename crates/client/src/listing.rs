//! `rhtex tasks`: the interchange's task list as a table or as JSON, and
//! `rhtex run --json`'s per-task lines.

use crate::render::{table, JsonObject};
use protocol::events::rfc3339_millis;
use protocol::{TaskResult, TaskSummary, UnixTime};
use serde_json::{json, Value};
use std::io;

/// A task state a listing can filter by, from its name (`--state`).
pub fn parse_state(text: &str) -> Result<protocol::TaskState, String> {
    use protocol::TaskState::{Cancelled, Completed, Failed, Queued, Running};
    [Queued, Running, Completed, Failed, Cancelled]
        .into_iter()
        .find(|state| state.as_str() == text)
        .ok_or_else(|| {
            format!("expected queued, running, completed, failed or cancelled, got {text:?}")
        })
}

/// A time as `2026-12-05 21:03:04` (UTC, whole seconds).
fn clock(time: Option<UnixTime>) -> String {
    match time {
        None => "-".to_owned(),
        Some(time) => {
            let text = rfc3339_millis(time);
            text.get(..19).unwrap_or(&text).replace('T', " ")
        }
    }
}

/// The task list for people: one row per task, oldest first, and a count.
pub fn tasks_human(tasks: &[TaskSummary]) -> String {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|task| {
            let exit = match (task.exit_code, task.error_kind) {
                (Some(code), _) => code.to_string(),
                (None, Some(kind)) => kind.as_str().to_owned(),
                (None, None) => "-".to_owned(),
            };
            vec![
                task.task_id.to_string(),
                task.state.as_str().to_owned(),
                task.num_nodes.to_string(),
                if task.nodes.is_empty() {
                    "-".to_owned()
                } else {
                    task.nodes.join(",")
                },
                clock(Some(task.submitted_at)),
                clock(task.start_time),
                clock(task.end_time),
                exit,
            ]
        })
        .collect();
    let mut text = table(
        &[
            "TASK",
            "STATE",
            "NODES",
            "ON",
            "SUBMITTED (UTC)",
            "STARTED",
            "ENDED",
            "EXIT",
        ],
        &rows,
    );
    let plural = if tasks.len() == 1 { "" } else { "s" };
    text.push_str(&format!("{} task{plural}\n", tasks.len()));
    text
}

/// One task of the list as JSON (times as RFC 3339 with milliseconds).
pub fn task_json(task: &TaskSummary) -> Value {
    json!({
        "task_id": task.task_id.to_string(),
        "state": task.state.as_str(),
        "num_nodes": task.num_nodes,
        "manager_id": task.manager_id.map(|id| id.to_string()),
        "nodes": task.nodes,
        "submitted_at": rfc3339_millis(task.submitted_at),
        "start_time": task.start_time.map(rfc3339_millis),
        "end_time": task.end_time.map(rfc3339_millis),
        "exit_code": task.exit_code,
        "error_kind": task.error_kind.map(|kind| kind.as_str()),
    })
}

/// `rhtex run --json`: the line printed when a task of the file is
/// submitted (without its newline).
pub fn write_submitted_line(
    out: &mut impl io::Write,
    index: usize,
    task_id: protocol::TaskId,
    command: &str,
) -> io::Result<()> {
    JsonObject::begin(out)?
        .member("command", command)?
        .member("event", "submitted")?
        .member("index", &index)?
        .member("task_id", &format_args!("{task_id}"))?
        .end()
}

/// `rhtex run --json`: the line printed when a task of the file finishes
/// (its result's outline; the final summary has the whole result), without
/// its newline.
pub fn write_finished_line(
    out: &mut impl io::Write,
    index: usize,
    result: &TaskResult,
) -> io::Result<()> {
    JsonObject::begin(out)?
        .member_or_null("end_time", result.end_time, write_time)?
        .member(
            "error_kind",
            &result.error.as_ref().map(|error| error.kind.as_str()),
        )?
        .member("event", "finished")?
        .member("exit_code", &result.exit_code)?
        .member("index", &index)?
        .member("nodes", &result.nodes)?
        .member_or_null("start_time", result.start_time, write_time)?
        .member("state", result.state.as_str())?
        .member("task_id", &format_args!("{}", result.task_id))?
        .end()
}

/// A time as a JSON string in RFC 3339, with milliseconds.
fn write_time(out: &mut impl io::Write, time: UnixTime) -> io::Result<()> {
    serde_json::to_writer(out, &rfc3339_millis(time)).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{ErrorKind, TaskId, TaskState};

    fn summary() -> TaskSummary {
        TaskSummary {
            task_id: TaskId::from_u128(7),
            state: TaskState::Failed,
            num_nodes: 2,
            manager_id: None,
            nodes: vec!["n1".into(), "n2".into()],
            submitted_at: 1_800_000_000.0,
            start_time: Some(1_800_000_001.5),
            end_time: Some(1_800_000_003.25),
            exit_code: None,
            error_kind: Some(ErrorKind::WalltimeExceeded),
        }
    }

    #[test]
    fn a_task_row_shows_its_nodes_times_and_outcome() {
        let text = tasks_human(&[summary()]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("TASK"), "{text}");
        assert!(lines[1].contains("failed"), "{text}");
        assert!(lines[1].contains("n1,n2"), "{text}");
        assert!(lines[1].contains("2027-01-15 08:00:00"), "{text}");
        assert!(lines[1].contains("2027-01-15 08:00:03"), "{text}");
        assert!(lines[1].ends_with("walltime_exceeded"), "{text}");
        assert_eq!(lines[2], "1 task");
    }

    #[test]
    fn states_parse_by_name() {
        assert_eq!(parse_state("failed"), Ok(TaskState::Failed));
        assert!(parse_state("unknown").is_err());
    }

    #[test]
    fn a_task_as_json_has_rfc3339_times() {
        let value = task_json(&summary());
        assert_eq!(value["submitted_at"], "2027-01-15T08:00:00.000Z");
        assert_eq!(value["end_time"], "2027-01-15T08:00:03.250Z");
        assert_eq!(value["error_kind"], "walltime_exceeded");
        assert_eq!(value["manager_id"], Value::Null);
    }
}
