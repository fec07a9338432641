//! `rhtex report EVENTS... [-o report.html]`: one self-contained HTML page
//! (inline CSS and SVG, nothing fetched) from the interchange's event log
//! (`proto/EVENTS.md`): node utilization over time per manager coloured
//! by task, queued and running tasks over time, histograms of wait and run
//! times, and a summary (tasks by state, node-hour utilization, makespan
//! against its lower bound).
//!
//! - `analysis.rs`: the numbers, from the records (pure, unit tested).
//! - `svg.rs`: the charts.

pub mod analysis;
pub mod svg;

use analysis::{histogram, Run};
use anyhow::{Context, Result};
use protocol::events::rfc3339_millis;
use protocol::EventRecord;
use std::fmt::Write as _;
use std::path::PathBuf;
use svg::escape;

/// `rhtex report`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The event log(s), oldest first (a rotated log: events.jsonl.2
    /// events.jsonl.1 events.jsonl).
    #[arg(required = true, value_name = "EVENTS")]
    pub events: Vec<PathBuf>,
    /// The HTML file to write.
    #[arg(short = 'o', long, default_value = "report.html", value_name = "FILE")]
    pub output: PathBuf,
}

/// Reads the logs and writes the report; says where on stderr.
pub fn write(args: &ReportArgs) -> Result<()> {
    let mut records = Vec::new();
    let mut n_skipped = 0usize;
    for path in &args.events {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the event log {}", path.display()))?;
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            match EventRecord::from_json_line(line) {
                Ok(record) => records.push(record),
                Err(_) => n_skipped += 1,
            }
        }
    }
    if n_skipped > 0 {
        eprintln!("rhtex: skipped {n_skipped} line(s) that are not events this rhtex knows");
    }
    let names: Vec<String> = args
        .events
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let html = render(&records, &names.join(", "));
    std::fs::write(&args.output, html)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "rhtex: wrote {} ({} events)",
        args.output.display(),
        records.len()
    );
    Ok(())
}

/// Hours with one decimal, or minutes under an hour.
fn node_hours(node_seconds: f64) -> String {
    format!("{:.2}", node_seconds / 3600.0)
}

fn seconds(value: f64) -> String {
    if value >= 3600.0 {
        format!("{:.2} h", value / 3600.0)
    } else if value >= 60.0 {
        format!("{:.1} min", value / 60.0)
    } else {
        format!("{value:.2} s")
    }
}

/// The page for `records`, read from `source`.
pub fn render(records: &[EventRecord], source: &str) -> String {
    let run = Run::from_records(records);
    let summary = run.summary();
    let mut page = String::new();
    page.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>rhtex report</title><style>\
         body{font-family:sans-serif;margin:16px;color:#222;max-width:1020px}\
         h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}\
         p.note{color:#555;font-size:12px;margin:2px 0 8px}\
         table{border-collapse:collapse;font-size:13px}\
         td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}\
         .row{display:flex;gap:20px}\
         </style></head><body>\n",
    );
    let span = if records.is_empty() {
        "no events".to_owned()
    } else {
        format!(
            "{} to {} (UTC)",
            rfc3339_millis(run.start),
            rfc3339_millis(run.end)
        )
    };
    let _ = writeln!(
        page,
        "<h1>rhtex run report</h1><p class=\"note\">{} events from {}: {}</p>",
        records.len(),
        escape(source),
        escape(&span)
    );
    page.push_str("<h2>Node utilization over time</h2><p class=\"note\">One row per node, grouped by pool-manager (grey while it is registered); one colour per task, from its dispatch to its result.</p>\n");
    page.push_str(&svg::node_chart(&run));
    page.push_str("\n<h2>Summary</h2>\n<table>");
    let mut row = |name: &str, value: String| {
        let _ = write!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(&value)
        );
    };
    row("tasks", summary.n_tasks.to_string());
    for (state, count) in &summary.by_state {
        row(&format!("  {state}"), count.to_string());
    }
    row(
        "node-hours used / available",
        format!(
            "{} / {} ({:.1} %)",
            node_hours(summary.node_seconds_busy),
            node_hours(summary.node_seconds_available),
            summary.utilization() * 100.0
        ),
    );
    row("most nodes at once", summary.peak_nodes.to_string());
    row(
        "makespan (first submission to last result)",
        seconds(summary.makespan),
    );
    row(
        "lower bound on the makespan",
        format!(
            "{} (the busy node-time on the most nodes at once, or the longest run){}",
            seconds(summary.lower_bound),
            if summary.lower_bound > 0.0 {
                format!(
                    "; the run took {:.2}x that",
                    summary.makespan / summary.lower_bound
                )
            } else {
                String::new()
            }
        ),
    );
    page.push_str("</table>\n");
    page.push_str("<h2>Queued and running tasks</h2>\n");
    page.push_str(&svg::queue_chart(&run));
    page.push_str("\n<h2>Wait and run times</h2><div class=\"row\">");
    page.push_str(&svg::histogram_chart(
        &histogram(&run.waits(), 20),
        "wait in the queue (s)",
    ));
    page.push_str(&svg::histogram_chart(
        &histogram(&run.run_times(), 20),
        "run time, dispatch to result (s)",
    ));
    page.push_str("</div>\n</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Event, ManagerId, TaskId, TaskState};

    #[test]
    fn the_page_is_self_contained_and_shows_every_part() {
        let manager_id = ManagerId::from_u128(1);
        let task_id = TaskId::from_u128(2);
        let records = vec![
            EventRecord::new(
                10.0,
                Event::ManagerRegistered {
                    manager_id,
                    block_id: "block <1>".to_owned(),
                    hostname: "h".to_owned(),
                    nodes: vec!["a".to_owned()],
                },
            ),
            EventRecord::new(
                11.0,
                Event::TaskSubmitted {
                    task_id,
                    num_nodes: Some(1),
                },
            ),
            EventRecord::new(
                11.0,
                Event::TaskStarted {
                    task_id,
                    manager_id,
                    block_id: "block <1>".to_owned(),
                    nodes: vec!["a".to_owned()],
                    attempt: 1,
                },
            ),
            EventRecord::new(
                14.0,
                Event::TaskFinished {
                    task_id,
                    state: TaskState::Completed,
                    exit_code: Some(0),
                    error_kind: None,
                    manager_id: Some(manager_id),
                },
            ),
        ];
        let page = render(&records, "events.jsonl");
        for part in [
            "Node utilization over time",
            "Queued and running tasks",
            "Wait and run times",
            "block &lt;1&gt;",
            svg::TASK_COLOURS[0],
            "node-hours used / available",
            "75.0 %",
        ] {
            assert!(page.contains(part), "{part} missing");
        }
        // Nothing is loaded from elsewhere.
        assert!(!page.contains("src="));
        assert!(!page.contains("href"));
        assert!(!page.contains("@import"));
        assert!(!page.contains("<script"));
        assert_eq!(page.matches("<svg").count(), 4);
    }
}
