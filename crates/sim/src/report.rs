//! The report of one simulation: utilization, makespan against its lower
//! bound, waits, counts and the correctness checks, as text or JSON.
//!
//! Definitions (times in seconds, from the first submission):
//! - **makespan**: from the first submission to the last result;
//! - **lower bound**: the larger of (total work / total nodes of all blocks)
//!   and (the latest submit time plus duration of any task), where a task's
//!   work is its node equivalents times its run time (its duration, or its
//!   walltime when it runs over); only tasks that ran count;
//! - **utilization**: busy node-seconds over available node-seconds, both
//!   from the first submission to the end of the makespan; a block is
//!   available from when it joins until it leaves; a task busies its whole
//!   nodes, or for a shared (non-exclusive) task `ranks_per_node /
//!   slots_per_node` of each of its nodes;
//! - **wait**: from submission to the first dispatch;
//! - **largest tasks**: those with the most `num_nodes` of the tasks that
//!   ran.

use crate::sim::{to_millis, to_seconds, Millis, Simulation};
use protocol::TaskState;
use std::collections::BTreeMap;
use std::fmt;

/// Everything a run measured. Plain data, comparable for the determinism test.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub workload: String,
    pub description: String,
    pub seed: Option<u64>,
    pub n_tasks: usize,
    pub n_blocks: usize,
    pub n_nodes: u64,
    pub n_completed: usize,
    /// Failed tasks by error kind (`walltime_exceeded`, `manager_lost`...).
    pub n_failed: BTreeMap<String, usize>,
    pub n_cancelled: usize,
    /// Tasks that never got a result.
    pub n_without_result: usize,
    /// Tasks that got more than one result.
    pub n_duplicated: usize,
    /// Dispatches beyond the first (retries after a lost manager).
    pub n_redispatched: usize,
    /// Every task got exactly one result.
    pub exactly_once: bool,
    /// Placement, duplicate and idle-block violations found by the simulated
    /// managers and the checks after every event.
    pub n_violations: u64,
    pub violations: Vec<String>,
    pub makespan: f64,
    pub lower_bound: f64,
    /// makespan / lower_bound (1 is perfect).
    pub makespan_ratio: f64,
    pub utilization: f64,
    pub busy_node_seconds: f64,
    pub available_node_seconds: f64,
    pub wait_p50: f64,
    pub wait_p99: f64,
    pub wait_max: f64,
    /// `num_nodes` of the largest tasks that ran.
    pub largest_num_nodes: u32,
    pub n_largest: usize,
    pub largest_wait_max: f64,
    pub largest_wait_mean: f64,
    pub n_events: u64,
    pub n_frames: u64,
    /// The run ended with tasks that could never get a result.
    pub stalled: bool,
}

fn percentile(sorted: &[Millis], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    to_seconds(sorted[rank - 1])
}

impl Report {
    /// Measures a simulation (normally after [`Simulation::run`]).
    pub fn of(
        simulation: &Simulation,
        workload: &str,
        description: &str,
        seed: Option<u64>,
    ) -> Self {
        let tasks = simulation.tasks();
        let blocks = simulation.blocks();
        let first_submit = tasks
            .iter()
            .map(|task| to_millis(task.spec.submit))
            .min()
            .unwrap_or(0);
        let last_result = tasks
            .iter()
            .filter_map(|task| task.result.as_ref().map(|(at, _)| *at))
            .max()
            .unwrap_or(first_submit);
        let end = last_result.max(first_submit);
        let makespan = to_seconds(end - first_submit);

        let mut n_completed = 0;
        let mut n_cancelled = 0;
        let mut n_failed: BTreeMap<String, usize> = BTreeMap::new();
        let mut n_without_result = 0;
        let mut n_duplicated = 0;
        let mut n_redispatched = 0;
        for task in tasks {
            n_redispatched += task.dispatches.len().saturating_sub(1);
            if task.n_results > 1 {
                n_duplicated += 1;
            }
            match &task.result {
                None => n_without_result += 1,
                Some((_, result)) => match result.state {
                    TaskState::Completed => n_completed += 1,
                    TaskState::Cancelled => n_cancelled += 1,
                    _ => {
                        let kind = task
                            .error_kind()
                            .map_or_else(|| "unknown".to_owned(), |kind| kind.as_str().to_owned());
                        *n_failed.entry(kind).or_default() += 1;
                    }
                },
            }
        }

        // Lower bound.
        let n_nodes: u64 = blocks.iter().map(|block| u64::from(block.nodes)).sum();
        let max_slots = blocks
            .iter()
            .map(|block| block.slots_per_node)
            .max()
            .unwrap_or(1);
        let mut work = 0.0;
        let mut latest_end: Millis = first_submit;
        for task in tasks {
            let ran = task.result.as_ref().is_some_and(|(_, result)| {
                !task.dispatches.is_empty() && result.state != TaskState::Cancelled
            });
            let Some(resources) = task.resources.as_ref().filter(|_| ran) else {
                continue;
            };
            let duration = to_millis(task.spec.duration);
            let run_for = resources
                .walltime
                .map_or(duration, |walltime| duration.min(to_millis(walltime)));
            let equivalent = if resources.exclusive {
                f64::from(resources.num_nodes)
            } else {
                f64::from(resources.num_nodes) * f64::from(resources.ranks_per_node.min(max_slots))
                    / f64::from(max_slots)
            };
            work += equivalent * to_seconds(run_for);
            latest_end = latest_end.max(to_millis(task.spec.submit) + run_for);
        }
        let by_work = if n_nodes > 0 {
            work / n_nodes as f64
        } else {
            0.0
        };
        let lower_bound = by_work.max(to_seconds(latest_end - first_submit));

        // Utilization.
        let clip = |start: Millis, stop: Millis| -> f64 {
            let start = start.max(first_submit);
            let stop = stop.min(end);
            to_seconds(stop.saturating_sub(start))
        };
        let busy: f64 = simulation
            .busy_spans()
            .iter()
            .map(|span| span.nodes * clip(span.start, span.end))
            .sum();
        let available: f64 = blocks
            .iter()
            .map(|block| {
                let leave = block.leave.map_or(Millis::MAX, to_millis);
                f64::from(block.nodes) * clip(to_millis(block.join), leave)
            })
            .sum();

        // Waits.
        let mut waits: Vec<Millis> = tasks.iter().filter_map(|task| task.wait()).collect();
        waits.sort_unstable();
        let largest_num_nodes = tasks
            .iter()
            .filter(|task| !task.dispatches.is_empty())
            .filter_map(|task| task.resources.as_ref().map(|resources| resources.num_nodes))
            .max()
            .unwrap_or(0);
        let largest_waits: Vec<Millis> = tasks
            .iter()
            .filter(|task| {
                task.resources
                    .as_ref()
                    .is_some_and(|resources| resources.num_nodes == largest_num_nodes)
            })
            .filter_map(|task| task.wait())
            .collect();
        let largest_wait_max = largest_waits.iter().copied().max().map_or(0.0, to_seconds);
        let largest_wait_mean = if largest_waits.is_empty() {
            0.0
        } else {
            largest_waits
                .iter()
                .map(|wait| to_seconds(*wait))
                .sum::<f64>()
                / largest_waits.len() as f64
        };

        let (violations, n_violations) = simulation.violations();
        let (n_events, n_frames) = simulation.counters();
        Report {
            workload: workload.to_owned(),
            description: description.to_owned(),
            seed,
            n_tasks: tasks.len(),
            n_blocks: blocks.len(),
            n_nodes,
            n_completed,
            n_failed,
            n_cancelled,
            n_without_result,
            n_duplicated,
            n_redispatched,
            exactly_once: n_without_result == 0 && n_duplicated == 0,
            n_violations,
            violations: violations.to_vec(),
            makespan,
            lower_bound,
            makespan_ratio: if lower_bound > 0.0 {
                makespan / lower_bound
            } else {
                1.0
            },
            utilization: if available > 0.0 {
                busy / available
            } else {
                0.0
            },
            busy_node_seconds: busy,
            available_node_seconds: available,
            wait_p50: percentile(&waits, 0.5),
            wait_p99: percentile(&waits, 0.99),
            wait_max: waits.last().copied().map_or(0.0, to_seconds),
            largest_num_nodes,
            n_largest: largest_waits.len(),
            largest_wait_max,
            largest_wait_mean,
            n_events,
            n_frames,
            stalled: simulation.stalled(),
        }
    }

    /// Every task got exactly one result and no check found a violation.
    pub fn ok(&self) -> bool {
        self.exactly_once && self.n_violations == 0
    }

    /// The report as a JSON object (built by hand: only `protocol` derives
    /// `Serialize`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "workload": self.workload,
            "description": self.description,
            "seed": self.seed,
            "n_tasks": self.n_tasks,
            "n_blocks": self.n_blocks,
            "n_nodes": self.n_nodes,
            "n_completed": self.n_completed,
            "n_failed": self.n_failed,
            "n_cancelled": self.n_cancelled,
            "n_without_result": self.n_without_result,
            "n_duplicated": self.n_duplicated,
            "n_redispatched": self.n_redispatched,
            "exactly_once": self.exactly_once,
            "n_violations": self.n_violations,
            "violations": self.violations,
            "makespan": self.makespan,
            "lower_bound": self.lower_bound,
            "makespan_ratio": self.makespan_ratio,
            "utilization": self.utilization,
            "busy_node_seconds": self.busy_node_seconds,
            "available_node_seconds": self.available_node_seconds,
            "wait_p50": self.wait_p50,
            "wait_p99": self.wait_p99,
            "wait_max": self.wait_max,
            "largest_num_nodes": self.largest_num_nodes,
            "n_largest": self.n_largest,
            "largest_wait_max": self.largest_wait_max,
            "largest_wait_mean": self.largest_wait_mean,
            "n_events": self.n_events,
            "n_frames": self.n_frames,
            "stalled": self.stalled,
            "ok": self.ok(),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seed = self
            .seed
            .map_or_else(|| "-".to_owned(), |seed| seed.to_string());
        writeln!(f, "workload     {} (seed {seed})", self.workload)?;
        writeln!(f, "             {}", self.description)?;
        writeln!(
            f,
            "resources    {} tasks, {} blocks, {} nodes",
            self.n_tasks, self.n_blocks, self.n_nodes
        )?;
        let failed: Vec<String> = self
            .n_failed
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        writeln!(
            f,
            "outcome      {} completed, failed: {}, {} cancelled, {} without result, {} duplicated, {} re-dispatched",
            self.n_completed,
            if failed.is_empty() { "0".to_owned() } else { failed.join(", ") },
            self.n_cancelled,
            self.n_without_result,
            self.n_duplicated,
            self.n_redispatched
        )?;
        writeln!(
            f,
            "makespan     {:.1} s, lower bound {:.1} s (ratio {:.3})",
            self.makespan, self.lower_bound, self.makespan_ratio
        )?;
        writeln!(
            f,
            "utilization  {:.1}% ({:.0} busy of {:.0} available node-seconds)",
            self.utilization * 100.0,
            self.busy_node_seconds,
            self.available_node_seconds
        )?;
        writeln!(
            f,
            "wait         p50 {:.1} s, p99 {:.1} s, max {:.1} s",
            self.wait_p50, self.wait_p99, self.wait_max
        )?;
        writeln!(
            f,
            "largest      {} task(s) of {} nodes: wait max {:.1} s, mean {:.1} s",
            self.n_largest, self.largest_num_nodes, self.largest_wait_max, self.largest_wait_mean
        )?;
        writeln!(
            f,
            "checks       exactly once: {}; violations: {}{}",
            if self.exactly_once { "yes" } else { "NO" },
            self.n_violations,
            if self.stalled {
                "; STALLED with tasks left"
            } else {
                ""
            }
        )?;
        for violation in &self.violations {
            writeln!(f, "  violation: {violation}")?;
        }
        write!(
            f,
            "simulation   {} events, {} frames",
            self.n_events, self.n_frames
        )
    }
}
