//! The report's charts as SVG text: node utilization over time (a row per
//! node, grouped by manager, a coloured bar per task), queued and running
//! tasks over time, and histograms. Plain strings; no scripts, no fonts
//! or images from elsewhere.

use super::analysis::{Run, TaskLife};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Task colours, by submission order (the report's test looks for them).
pub const TASK_COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#393b79",
];
/// The background of a manager's lane while it is registered.
pub const LANE_COLOUR: &str = "#e4e4e4";
const QUEUED_COLOUR: &str = "#e6550d";
const RUNNING_COLOUR: &str = "#3182bd";
const BAR_COLOUR: &str = "#6baed6";

/// Width of every chart, and the margin left of the plot for labels.
pub const WIDTH: f64 = 1000.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 40.0;

/// Text safe inside XML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Maps [t0, t1] onto the plot's width.
struct TimeScale {
    t0: f64,
    span: f64,
}

impl TimeScale {
    fn new(run: &Run) -> Self {
        Self {
            t0: run.start,
            span: (run.end - run.start).max(1e-3),
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.t0) / self.span * (WIDTH - LEFT - RIGHT)
    }
}

/// A step of about `range / target` rounded to 1, 2 or 5 times a power of
/// ten.
pub fn nice_step(range: f64, target: usize) -> f64 {
    let raw = (range / target.max(1) as f64).max(1e-9);
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A number without needless decimals.
fn number(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else if value.abs() >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// The time axis under a plot whose bottom is at `y`: ticks in seconds
/// (or minutes, or hours) since the run began.
fn time_axis(out: &mut String, scale: &TimeScale, y: f64) {
    let (unit, divisor) = if scale.span >= 3.0 * 3600.0 {
        ("h", 3600.0)
    } else if scale.span >= 180.0 {
        ("min", 60.0)
    } else {
        ("s", 1.0)
    };
    let step = nice_step(scale.span / divisor, 8) * divisor;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#444"/>"##,
        WIDTH - RIGHT
    );
    let mut tick = 0.0;
    while tick <= scale.span + 1e-9 {
        let x = scale.x(scale.t0 + tick);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{y}" x2="{x:.1}" y2="{}" stroke="#444"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y + 5.0,
            y + 18.0,
            number(tick / divisor)
        );
        tick += step;
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">time since the first event ({unit})</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        y + 34.0
    );
}

fn open(out: &mut String, height: f64, label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11" role="img" aria-label="{}">"#,
        escape(label)
    );
}

/// Node utilization over time: one row per node of every manager (a grey
/// lane while the manager is registered), a bar in the task's colour for
/// every task on that node. Its plot area spans x from 150 to 980 and y
/// from 10 to `height - 40`.
pub fn node_chart(run: &Run) -> String {
    let n_rows: usize = run.lanes.iter().map(|lane| lane.nodes.len()).sum();
    let row_height = if n_rows == 0 {
        18.0
    } else {
        (480.0 / n_rows as f64).clamp(1.0, 18.0)
    };
    let plot_height = row_height * n_rows.max(1) as f64;
    let height = TOP + plot_height + BOTTOM;
    let scale = TimeScale::new(run);
    let mut out = String::new();
    open(
        &mut out,
        height,
        "nodes by time, per manager, coloured by task",
    );
    out.push_str(r#"<g shape-rendering="crispEdges">"#);
    // (manager, node) -> row; managers in registration order.
    let mut row_of: HashMap<(protocol::ManagerId, &str), usize> = HashMap::new();
    let mut row = 0;
    for lane in &run.lanes {
        let y = TOP + row as f64 * row_height;
        let lane_height = row_height * lane.nodes.len() as f64;
        for (from, to) in &lane.spans {
            let _ = write!(
                out,
                r#"<rect x="{:.2}" y="{y:.2}" width="{:.2}" height="{:.2}" fill="{LANE_COLOUR}"><title>{}</title></rect>"#,
                scale.x(*from),
                (scale.x(*to) - scale.x(*from)).max(1.0),
                (lane_height - 1.0).max(0.5),
                escape(&format!("{} ({} nodes)", lane.block_id, lane.nodes.len()))
            );
        }
        if lane_height >= 10.0 {
            let _ = write!(
                out,
                r#"<text x="4" y="{:.1}" dominant-baseline="middle" font-weight="bold">{}</text>"#,
                y + lane_height / 2.0,
                escape(&shorten(&lane.block_id, 12))
            );
        }
        for node in &lane.nodes {
            if row_height >= 10.0 {
                let _ = write!(
                    out,
                    r#"<text x="{}" y="{:.1}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
                    LEFT - 6.0,
                    TOP + (row as f64 + 0.5) * row_height,
                    escape(&shorten(node, 10))
                );
            }
            row_of.insert((lane.manager_id, node.as_str()), row);
            row += 1;
        }
    }
    for (index, task) in run.tasks.iter().enumerate() {
        let colour = TASK_COLOURS[index % TASK_COLOURS.len()];
        for attempt in &task.attempts {
            let x = scale.x(attempt.start);
            let width = (scale.x(attempt.end) - x).max(1.0);
            for node in &attempt.nodes {
                let Some(row) = row_of.get(&(attempt.manager_id, node.as_str())) else {
                    continue;
                };
                let y = TOP + *row as f64 * row_height;
                let _ = write!(
                    out,
                    r#"<rect x="{x:.2}" y="{y:.2}" width="{width:.2}" height="{:.2}" fill="{colour}"><title>{}</title></rect>"#,
                    (row_height - 1.0).max(0.5),
                    escape(&task_title(task, node))
                );
            }
        }
    }
    out.push_str("</g>");
    time_axis(&mut out, &scale, TOP + plot_height);
    out.push_str("</svg>");
    out
}

fn task_title(task: &TaskLife, node: &str) -> String {
    let state = task
        .finished
        .map_or("unfinished", |(state, _)| state.as_str());
    format!("task {} on {node}: {state}", task.task_id)
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

/// Queued and running tasks over time, as two step lines.
pub fn queue_chart(run: &Run) -> String {
    let series = run.queue_series();
    let most = series
        .iter()
        .map(|(_, queued, running)| (*queued).max(*running))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_height = 200.0;
    let height = TOP + plot_height + BOTTOM;
    let scale = TimeScale::new(run);
    let y = |count: u64| TOP + plot_height - count as f64 / most * plot_height;
    let mut out = String::new();
    open(&mut out, height, "queued and running tasks over time");
    value_axis(&mut out, most, TOP, plot_height);
    for (colour, pick) in [(QUEUED_COLOUR, 1usize), (RUNNING_COLOUR, 2usize)] {
        let mut points = format!("{LEFT},{:.1}", y(0));
        let mut last = 0;
        for (at, queued, running) in &series {
            let value = if pick == 1 { *queued } else { *running };
            let x = scale.x(*at);
            let _ = write!(points, " {x:.1},{:.1} {x:.1},{:.1}", y(last), y(value));
            last = value;
        }
        let _ = write!(points, " {:.1},{:.1}", WIDTH - RIGHT, y(last));
        let _ = write!(
            out,
            r#"<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>"#
        );
    }
    let _ = write!(
        out,
        r#"<rect x="{}" y="{}" width="10" height="10" fill="{QUEUED_COLOUR}"/><text x="{}" y="{}">queued</text><rect x="{}" y="{}" width="10" height="10" fill="{RUNNING_COLOUR}"/><text x="{}" y="{}">running</text>"#,
        WIDTH - 160.0,
        TOP + 4.0,
        WIDTH - 145.0,
        TOP + 13.0,
        WIDTH - 90.0,
        TOP + 4.0,
        WIDTH - 75.0,
        TOP + 13.0
    );
    time_axis(&mut out, &scale, TOP + plot_height);
    out.push_str("</svg>");
    out
}

/// A vertical axis from 0 to `most` for a plot at `top`, `height` high.
fn value_axis(out: &mut String, most: f64, top: f64, height: f64) {
    let step = nice_step(most, 4).max(if most >= 1.0 { 1.0 } else { 0.0 });
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{}" stroke="#444"/>"##,
        top + height
    );
    let mut tick = 0.0;
    while tick <= most + 1e-9 {
        let y = top + height - tick / most * height;
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" stroke="#444"/><text x="{}" y="{y:.1}" text-anchor="end" dominant-baseline="middle">{}</text>"##,
            LEFT - 5.0,
            LEFT - 8.0,
            number(tick)
        );
        tick += step;
    }
}

/// A histogram of `bins` ((upper bound, count), equal widths) titled
/// `label`, its x axis in seconds.
pub fn histogram_chart(bins: &[(f64, u64)], label: &str) -> String {
    let width = WIDTH / 2.0 - 10.0;
    let plot_height = 160.0;
    let height = TOP + plot_height + BOTTOM;
    let most = bins
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let left = 60.0;
    let plot_width = width - left - RIGHT;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img" aria-label="{}">"#,
        escape(label)
    );
    let bar_width = plot_width / bins.len().max(1) as f64;
    for (index, (upper, count)) in bins.iter().enumerate() {
        let bar_height = *count as f64 / most * plot_height;
        let x = left + index as f64 * bar_width;
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{bar_height:.1}" fill="{BAR_COLOUR}"><title>{count} up to {} s</title></rect>"#,
            TOP + plot_height - bar_height,
            (bar_width - 1.0).max(0.5),
            number(*upper)
        );
    }
    let bottom = TOP + plot_height;
    let _ = write!(
        out,
        r##"<line x1="{left}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#444"/><text x="{left}" y="{}">0</text><text x="{}" y="{}" text-anchor="end">{} s</text><text x="{}" y="{}" text-anchor="middle">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"##,
        left + plot_width,
        bottom + 16.0,
        left + plot_width,
        bottom + 16.0,
        number(bins.last().map_or(0.0, |(upper, _)| *upper)),
        left + plot_width / 2.0,
        bottom + 32.0,
        escape(label),
        left - 6.0,
        TOP + 10.0,
        number(most)
    );
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0, 10), 10.0);
        assert_eq!(nice_step(7.0, 8), 1.0);
        assert_eq!(nice_step(130.0, 8), 20.0);
        assert_eq!(nice_step(0.3, 3), 0.1);
        assert_eq!(nice_step(4000.0, 8), 500.0);
    }

    #[test]
    fn text_is_escaped_and_numbers_are_short() {
        assert_eq!(escape(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12.4), "12");
    }
}
