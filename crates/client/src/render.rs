//! Rendering results and status for people (text) and programs (JSON).
//!
//! JSON is built with `serde_json::json!` (nothing outside `protocol`
//! derives `Serialize`); output tails are UTF-8, lossy.

use protocol::{
    BlockInfo, ManagerInfo, StatusReport, TaskResult, TaskState, UnixTime, UserCounts, WaitingGroup,
};
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
        // The size only: the bytes go to a file (`--output-file`).
        "output_bytes": result.output.as_ref().map(Vec::len),
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
    if let Some(output) = &result.output {
        let _ = writeln!(text, "  output: {} bytes", output.len());
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
/// completed, its own exit code when it has one (1 to 255), 128+N when
/// killed by signal N (a walltime kill included), else 1. A task that did
/// not complete never gives 0, whatever numbers its result carries.
pub fn exit_code_for(result: &TaskResult) -> i32 {
    if result.state == TaskState::Completed {
        return 0;
    }
    match (result.exit_code, result.signal) {
        (Some(code), _) if (1..=255).contains(&code) => code,
        (_, Some(signal)) if (1..=127).contains(&signal) => 128 + signal,
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
        "nodes": {
            "busy": node_counts(report).0,
            "total": node_counts(report).1,
        },
        "managers": report.managers.iter().map(|manager| manager_json(manager, now)).collect::<Vec<_>>(),
        "waiting": report.waiting.iter().map(waiting_json).collect::<Vec<_>>(),
        "blocks": report.blocks.iter().map(|block| block_json(block, now)).collect::<Vec<_>>(),
        "users": report.users.iter().map(user_json).collect::<Vec<_>>(),
    })
}

/// Nodes of the registered managers that run at least one task, and all
/// of them.
pub fn node_counts(report: &StatusReport) -> (u64, u64) {
    report
        .managers
        .iter()
        .fold((0, 0), |(busy, total), manager| {
            (
                busy + u64::from(manager.n_nodes.saturating_sub(manager.n_free_nodes)),
                total + u64::from(manager.n_nodes),
            )
        })
}

fn waiting_json(group: &WaitingGroup) -> Value {
    json!({
        "num_nodes": group.num_nodes,
        "n_tasks": group.n_tasks,
        "reason": group.reason,
    })
}

fn user_json(user: &UserCounts) -> Value {
    json!({
        "identity": user.identity,
        "queued": user.n_queued,
        "running": user.n_running,
    })
}

fn block_json(block: &BlockInfo, now: UnixTime) -> Value {
    json!({
        "block_id": block.block_id,
        "job_id": block.job_id,
        "provider": block.provider,
        "state": block.state.as_str(),
        "n_nodes": block.n_nodes,
        "manager_id": block.manager_id.map(|id| id.to_string()),
        "submitted_at": block.submitted_at,
        "seconds_since_submitted": (now - block.submitted_at).max(0.0),
        "output_path": block.output_path,
        "message": block.message,
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
        "slots_per_node": manager.slots_per_node,
        "reserved_for": manager.reserved_for.map(|id| id.to_string()),
    })
}

/// The status report for people: a managers table (with each manager's
/// slots per node and, below it, the task each reserved manager waits
/// for), queue counts, why queued tasks wait, and the provider's blocks
/// when there are any. `now` gives the heartbeat ages.
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
            "SLOTS/NODE",
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
                    if manager.slots_per_node == 0 {
                        "-".to_owned()
                    } else {
                        manager.slots_per_node.to_string()
                    },
                    manager.n_running_tasks.to_string(),
                    state.to_owned(),
                    format!("{:.0} s ago", (now - manager.last_heartbeat).max(0.0)),
                ]
            })
            .collect();
        text.push_str(&table(&header, &rows));
        for manager in &report.managers {
            if let Some(task_id) = manager.reserved_for {
                let _ = writeln!(
                    text,
                    "  manager {} is reserved for task {task_id} \
                     (other tasks start there only if they cannot delay it)",
                    manager.manager_id
                );
            }
        }
        let (busy, total) = node_counts(report);
        let _ = writeln!(
            text,
            "nodes: {busy} busy of {total} ({:.0} % in use)",
            if total == 0 {
                0.0
            } else {
                busy as f64 * 100.0 / total as f64
            }
        );
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
    for user in &report.users {
        let _ = writeln!(
            text,
            "  {}: {} queued, {} running",
            user.identity, user.n_queued, user.n_running
        );
    }
    if !report.blocks.is_empty() {
        text.push_str(&blocks_table(&report.blocks, now));
    }
    let _ = writeln!(text, "bad messages: {}", report.n_bad_messages);
    text
}

/// The provider's blocks: job, provider, state, nodes, manager, age, and
/// the output file (or, for a block that went wrong, what happened).
fn blocks_table(blocks: &[BlockInfo], now: UnixTime) -> String {
    let header = [
        "BLOCK",
        "JOB",
        "PROVIDER",
        "STATE",
        "NODES",
        "MANAGER",
        "SUBMITTED",
        "OUTPUT / MESSAGE",
    ];
    let dash = |text: &str| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text.to_owned()
        }
    };
    let rows: Vec<Vec<String>> = blocks
        .iter()
        .map(|block| {
            let output_or_message = match (&block.message, &block.output_path) {
                (Some(message), Some(path)) => format!("{} (output: {path})", shorten(message, 80)),
                (Some(message), None) => shorten(message, 80),
                (None, Some(path)) => path.clone(),
                (None, None) => "-".to_owned(),
            };
            vec![
                dash(&block.block_id),
                dash(&block.job_id),
                dash(&block.provider),
                block.state.to_string(),
                block.n_nodes.to_string(),
                block
                    .manager_id
                    .map_or_else(|| "-".to_owned(), |id| id.to_string()),
                format!("{:.0} s ago", (now - block.submitted_at).max(0.0)),
                output_or_message,
            ]
        })
        .collect();
    format!("blocks:\n{}", table(&header, &rows))
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
    json!({
        "tasks": rows.iter().map(summary_task_json).collect::<Vec<_>>(),
        "counts": summary_counts_json(rows),
    })
}

/// [`summary_json`] written out compact, one task at a time: the same
/// bytes as serializing it whole, without holding every task's JSON at once.
pub fn write_summary_json(
    rows: &[SummaryRow],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    // The keys in serde_json's order (sorted): "counts" before "tasks".
    out.write_all(b"{\"counts\":")?;
    serde_json::to_writer(&mut *out, &summary_counts_json(rows))?;
    out.write_all(b",\"tasks\":[")?;
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &summary_task_json(row))?;
    }
    out.write_all(b"]}")
}

fn summary_task_json(row: &SummaryRow) -> Value {
    json!({
        "index": row.index,
        "command": row.command,
        "result": row.result.as_ref().map(result_json),
    })
}

fn summary_counts_json(rows: &[SummaryRow]) -> Value {
    let count = |state: TaskState| count_in_state(rows, state);
    json!({
        "total": rows.len(),
        "completed": count(TaskState::Completed),
        "failed": count(TaskState::Failed),
        "cancelled": count(TaskState::Cancelled),
        "without_result": rows.iter().filter(|row| row.result.is_none()).count(),
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
