//! Rendering results and status for people (text) and programs (JSON).
//!
//! JSON is built with `serde_json::json!` (nothing outside `protocol`
//! derives `Serialize`); output tails are UTF-8, lossy.

use protocol::{ManagerInfo, StatusReport, TaskResult, TaskState, UnixTime};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// A result as a JSON object.
pub fn result_json(result: &TaskResult) -> Value {
    json!({
        "task_id": result.task_id.to_string(),
        "state": result.state.as_str(),
        "exit_code": result.exit_code,
        "signal": result.signal,
        "error": result.error.as_ref().map(|error| json!({
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
    })
}

/// A result for people: a header line, then the details and output tails.
pub fn result_human(result: &TaskResult) -> String {
    let mut text = format!("task {} {}", result.task_id, result.state);
    if let Some(code) = result.exit_code {
        let _ = write!(text, " (exit code {code})");
    }
    if let Some(signal) = result.signal {
        let _ = write!(text, " (signal {signal})");
    }
    text.push('\n');
    if let Some(error) = &result.error {
        let _ = writeln!(text, "  error: {}: {}", error.kind, error.message);
    }
    if !result.nodes.is_empty() {
        let _ = writeln!(text, "  nodes: {}", result.nodes.join(","));
    }
    if let Some(block) = &result.block_id {
        let _ = writeln!(text, "  block: {block}");
    }
    if let (Some(start), Some(end)) = (result.start_time, result.end_time) {
        let _ = writeln!(text, "  run time: {:.2} s", (end - start).max(0.0));
    }
    if let Some(path) = &result.stdout_path {
        let _ = writeln!(text, "  stdout: {path}");
    }
    if let Some(path) = &result.stderr_path {
        let _ = writeln!(text, "  stderr: {path}");
    }
    for (name, tail) in [
        ("stdout", &result.stdout_tail),
        ("stderr", &result.stderr_tail),
    ] {
        if !tail.is_empty() {
            let _ = writeln!(text, "  --- {name} (tail) ---");
            for line in String::from_utf8_lossy(tail).lines() {
                let _ = writeln!(text, "  {line}");
            }
        }
    }
    text
}

/// The process exit code that stands for a task's result: 0 when it
/// completed, its own exit code when it has one, 128+N when killed by
/// signal N, else 1.
pub fn exit_code_for(result: &TaskResult) -> i32 {
    if result.state == TaskState::Completed {
        return 0;
    }
    match (result.exit_code, result.signal) {
        (Some(code), _) if code != 0 => code,
        (_, Some(signal)) if signal > 0 => 128 + signal,
        _ => 1,
    }
}

/// The status report as JSON.
pub fn status_json(report: &StatusReport, now: UnixTime) -> Value {
    json!({
        "interchange_version": report.interchange_version,
        "protocol_version": report.protocol_version,
        "queue": {
            "queued": report.n_queued,
            "running": report.n_running,
            "completed": report.n_completed,
            "failed": report.n_failed,
            "cancelled": report.n_cancelled,
        },
        "n_bad_messages": report.n_bad_messages,
        "managers": report.managers.iter().map(|manager| manager_json(manager, now)).collect::<Vec<_>>(),
        "waiting": report.waiting.iter().map(|group| json!({
            "num_nodes": group.num_nodes,
            "n_tasks": group.n_tasks,
            "reason": group.reason,
        })).collect::<Vec<_>>(),
    })
}

fn manager_json(manager: &ManagerInfo, now: UnixTime) -> Value {
    json!({
        "manager_id": manager.manager_id.to_string(),
        "block_id": manager.block_id,
        "hostname": manager.hostname,
        "launcher": manager.launcher.as_str(),
        "n_nodes": manager.n_nodes,
        "n_free_nodes": manager.n_free_nodes,
        "n_running_tasks": manager.n_running_tasks,
        "held": manager.held,
        "draining": manager.draining,
        "registered_at": manager.registered_at,
        "last_heartbeat": manager.last_heartbeat,
        "seconds_since_heartbeat": (now - manager.last_heartbeat).max(0.0),
        "rhtex_version": manager.rhtex_version,
    })
}

/// The status report for people: a managers table, queue counts and why
/// queued tasks wait. `now` gives the heartbeat ages.
pub fn status_human(report: &StatusReport, now: UnixTime) -> String {
    let mut text = format!(
        "interchange {} (protocol {})\n",
        report.interchange_version, report.protocol_version
    );
    if report.managers.is_empty() {
        text.push_str("managers: none connected\n");
    } else {
        let header = [
            "MANAGER",
            "BLOCK",
            "HOST",
            "NODES",
            "RUNNING",
            "STATE",
            "HEARTBEAT",
        ];
        let rows: Vec<Vec<String>> = report
            .managers
            .iter()
            .map(|manager| {
                let state = match (manager.held, manager.draining) {
                    (_, true) => "draining",
                    (true, false) => "held",
                    (false, false) => "active",
                };
                vec![
                    manager.manager_id.to_string(),
                    manager.block_id.clone(),
                    manager.hostname.clone(),
                    format!("{}/{} free", manager.n_free_nodes, manager.n_nodes),
                    manager.n_running_tasks.to_string(),
                    state.to_owned(),
                    format!("{:.0} s ago", (now - manager.last_heartbeat).max(0.0)),
                ]
            })
            .collect();
        text.push_str(&table(&header, &rows));
    }
    let _ = writeln!(
        text,
        "tasks: {} queued, {} running, {} completed, {} failed, {} cancelled",
        report.n_queued, report.n_running, report.n_completed, report.n_failed, report.n_cancelled
    );
    for group in &report.waiting {
        let _ = writeln!(
            text,
            "  {} task(s) needing {} node(s) wait: {}",
            group.n_tasks, group.num_nodes, group.reason
        );
    }
    let _ = writeln!(text, "bad messages: {}", report.n_bad_messages);
    text
}

/// One row of the `rhtex run` summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    pub index: usize,
    pub command: String,
    /// `None` when no result came (the run was interrupted).
    pub result: Option<TaskResult>,
}

/// The `rhtex run` summary: one row per task and the counts per state.
pub fn summary_human(rows: &[SummaryRow]) -> String {
    let header = ["#", "STATE", "EXIT", "ERROR", "NODES", "COMMAND"];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| match &row.result {
            Some(result) => vec![
                row.index.to_string(),
                result.state.to_string(),
                match (result.exit_code, result.signal) {
                    (Some(code), _) => code.to_string(),
                    (None, Some(signal)) => format!("sig {signal}"),
                    (None, None) => "-".to_owned(),
                },
                result
                    .error
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |error| error.kind.to_string()),
                if result.nodes.is_empty() {
                    "-".to_owned()
                } else {
                    result.nodes.join(",")
                },
                shorten(&row.command, 50),
            ],
            None => vec![
                row.index.to_string(),
                "no result".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                shorten(&row.command, 50),
            ],
        })
        .collect();
    let mut text = table(&header, &body);
    let _ = writeln!(text, "{}", summary_counts(rows));
    text
}

/// How many rows have a result in `state`.
fn count_in_state(rows: &[SummaryRow], state: TaskState) -> usize {
    rows.iter()
        .filter(|row| {
            row.result
                .as_ref()
                .is_some_and(|result| result.state == state)
        })
        .count()
}

/// "N tasks: a completed, b failed, c cancelled[, d without result]".
pub fn summary_counts(rows: &[SummaryRow]) -> String {
    let count = |state: TaskState| count_in_state(rows, state);
    let missing = rows.iter().filter(|row| row.result.is_none()).count();
    let mut text = format!(
        "{} tasks: {} completed, {} failed, {} cancelled",
        rows.len(),
        count(TaskState::Completed),
        count(TaskState::Failed),
        count(TaskState::Cancelled)
    );
    if missing > 0 {
        let _ = write!(text, ", {missing} without result");
    }
    text
}

/// The summary as JSON: `{"tasks": [...], "counts": {...}}`.
pub fn summary_json(rows: &[SummaryRow]) -> Value {
    let tasks: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "index": row.index,
                "command": row.command,
                "result": row.result.as_ref().map(result_json),
            })
        })
        .collect();
    let count = |state: TaskState| count_in_state(rows, state);
    json!({
        "tasks": tasks,
        "counts": {
            "total": rows.len(),
            "completed": count(TaskState::Completed),
            "failed": count(TaskState::Failed),
            "cancelled": count(TaskState::Cancelled),
            "without_result": rows.iter().filter(|row| row.result.is_none()).count(),
        },
    })
}

/// `text` on one line, at most `width` characters, with `…` when cut.
pub fn shorten(text: &str, width: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= width {
        one_line
    } else {
        let kept: String = one_line.chars().take(width.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// A left-aligned table with two spaces between columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (column, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(column) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (column, cell) in cells.iter().enumerate() {
            if column + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let width = widths.get(column).copied().unwrap_or(0);
                let _ = write!(out, "{cell:<width$}  ");
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    text
}
