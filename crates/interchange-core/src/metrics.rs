//! What the interchange has done, as plain numbers a shell can export
//! (the daemon serves them as Prometheus metrics): counters and
//! histograms of task events, and gauges read from the current state.
//!
//! The counters live in the task table (`tasks/`, the one module that
//! changes a task's state), which updates them through the small calls of
//! [`TaskCounters`]; durations come from the `seam::Time` of each input
//! (and, for the dispatch latency, the wall clock the core derives from
//! it), never from a clock of its own. [`Core::metrics`] gathers them with
//! the gauges into a [`Metrics`] snapshot, which costs O(managers + queue
//! buckets + blocks) and touches nothing.
//!
//! The durations observed:
//! - *queue wait*: from the moment a task entered the queue (its
//!   submission, or its return to the queue after its manager was lost)
//!   to its dispatch to a manager; one observation per dispatch.
//! - *dispatch latency*: from its dispatch (the interchange's wall clock)
//!   to the start of its command on the manager (the `start_time` of its
//!   result, the manager host's wall clock), so clock skew between the two
//!   hosts shows here; a negative difference counts as 0. One observation
//!   per result with a start time.
//! - *run time*: the result's `end_time - start_time`, both from the
//!   manager's clock; one observation per result that has both.
//! - *turnaround*: from submission to the final result, for every task
//!   that was queued (not for a submission refused at once).

use crate::machine::Core;
use protocol::{TaskResult, UnixTime};
use seam::Time;
use std::collections::BTreeMap;

/// Upper bounds, in seconds, of the buckets of every duration histogram
/// (a last bucket, `+Inf`, takes the rest): from a millisecond to a day.
pub const DURATION_BUCKETS: [f64; 23] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];

/// A histogram of durations in seconds over [`DURATION_BUCKETS`].
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); one more than
    /// [`DURATION_BUCKETS`], the last for the values above every bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; DURATION_BUCKETS.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }
}

impl Histogram {
    /// Counts one duration of `seconds` (negative or NaN counts as 0).
    pub fn observe(&mut self, seconds: f64) {
        let seconds = if seconds > 0.0 { seconds } else { 0.0 };
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// Each bucket's upper bound (`f64::INFINITY` for the last) with the
    /// observations in it (not cumulative).
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        DURATION_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter().copied())
    }

    /// The sum of the observations, in seconds.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The labels of a finished task: its final state and error kind
/// (`"none"` for a completed task).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FinishedAs {
    pub state: &'static str,
    pub error_kind: &'static str,
}

impl FinishedAs {
    /// The labels of `result`.
    pub fn of(result: &TaskResult) -> Self {
        Self {
            state: result.state.as_str(),
            error_kind: result
                .error
                .as_ref()
                .map_or("none", |error| error.kind.as_str()),
        }
    }
}

/// The counters the task table keeps as tasks change state.
#[derive(Clone, Debug, Default)]
pub(crate) struct TaskCounters {
    n_submitted: u64,
    n_dispatched: u64,
    n_requeued: u64,
    finished: BTreeMap<FinishedAs, u64>,
    queue_wait: Histogram,
    dispatch_latency: Histogram,
    run_time: Histogram,
    turnaround: Histogram,
}

impl TaskCounters {
    /// A submission arrived (accepted or not).
    pub(crate) fn submitted(&mut self) {
        self.n_submitted += 1;
    }

    /// A task that entered the queue at `queued_at` was sent to a manager
    /// at `now`.
    pub(crate) fn dispatched(&mut self, queued_at: Time, now: Time) {
        self.n_dispatched += 1;
        self.queue_wait.observe(now.since(queued_at).as_secs_f64());
    }

    /// A running task went back to the queue (its manager was lost).
    pub(crate) fn requeued(&mut self) {
        self.n_requeued += 1;
    }

    /// A task has its final result. `submitted_at` is `None` for a
    /// submission refused at once; `dispatched_at_unix` is the wall time
    /// of its last dispatch, if it was sent to a manager.
    pub(crate) fn finished(
        &mut self,
        result: &TaskResult,
        submitted_at: Option<Time>,
        dispatched_at_unix: Option<UnixTime>,
        now: Time,
    ) {
        *self.finished.entry(FinishedAs::of(result)).or_default() += 1;
        if let Some(submitted_at) = submitted_at {
            self.turnaround
                .observe(now.since(submitted_at).as_secs_f64());
        }
        if let (Some(dispatched_at), Some(start_time)) = (dispatched_at_unix, result.start_time) {
            self.dispatch_latency.observe(start_time - dispatched_at);
        }
        if let (Some(start_time), Some(end_time)) = (result.start_time, result.end_time) {
            self.run_time.observe(end_time - start_time);
        }
    }
}

/// A snapshot of the interchange's metrics: counters since it started,
/// and gauges of now. The daemon exports it; see README.md, "Metrics".
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// Task submissions received, accepted or refused.
    pub n_tasks_submitted: u64,
    /// Times a task was sent to a manager (retries count again).
    pub n_tasks_dispatched: u64,
    /// Times a task went back to the queue after its manager was lost.
    pub n_tasks_requeued: u64,
    /// Tasks with a final result, by state and error kind.
    pub n_tasks_finished: BTreeMap<FinishedAs, u64>,
    /// Tasks waiting in the queue now.
    pub n_tasks_queued: u64,
    /// Tasks running on a manager now.
    pub n_tasks_running: u64,
    /// Registered managers that take tasks (neither held nor draining).
    pub n_managers_active: u64,
    /// Registered managers held (and not draining).
    pub n_managers_held: u64,
    /// Registered managers draining (or told to stop).
    pub n_managers_draining: u64,
    /// Nodes of registered managers running at least one task.
    pub n_nodes_busy: u64,
    /// Nodes of registered managers running nothing.
    pub n_nodes_idle: u64,
    /// The provider's blocks by state (`pending`, `running`...; empty
    /// without a provider).
    pub n_blocks: BTreeMap<&'static str, u64>,
    /// Frames that did not decode, and messages that made no sense.
    pub n_bad_messages: u64,
    /// Submits refused as a whole as busy: the input they carry would
    /// take the input held for unfinished tasks past its limit. Their
    /// tasks count nowhere else.
    pub n_busy_submits: u64,
    /// Requests refused because the client identity may not make them
    /// (another identity's task, an admin command from a non-admin).
    pub n_denied_requests: u64,
    pub queue_wait: Histogram,
    pub dispatch_latency: Histogram,
    pub run_time: Histogram,
    pub turnaround: Histogram,
}

impl Core {
    /// The metrics as of the last input.
    pub fn metrics(&self) -> Metrics {
        let counters = self.tasks.counters();
        let mut metrics = Metrics {
            n_tasks_submitted: counters.n_submitted,
            n_tasks_dispatched: counters.n_dispatched,
            n_tasks_requeued: counters.n_requeued,
            n_tasks_finished: counters.finished.clone(),
            n_tasks_queued: self.tasks.queue().len() as u64,
            n_tasks_running: 0,
            n_managers_active: 0,
            n_managers_held: 0,
            n_managers_draining: 0,
            n_nodes_busy: 0,
            n_nodes_idle: 0,
            n_blocks: BTreeMap::new(),
            n_bad_messages: self.n_bad_messages,
            n_busy_submits: self.n_busy_submits,
            n_denied_requests: self.n_denied,
            queue_wait: counters.queue_wait.clone(),
            dispatch_latency: counters.dispatch_latency.clone(),
            run_time: counters.run_time.clone(),
            turnaround: counters.turnaround.clone(),
        };
        for manager in self.managers.iter() {
            if manager.draining {
                metrics.n_managers_draining += 1;
            } else if manager.held {
                metrics.n_managers_held += 1;
            } else {
                metrics.n_managers_active += 1;
            }
            let n_idle = manager.n_whole_free();
            metrics.n_nodes_idle += u64::from(n_idle);
            metrics.n_nodes_busy += u64::from(manager.n_nodes.saturating_sub(n_idle));
            metrics.n_tasks_running += manager.tasks().len() as u64;
        }
        for block in &self.blocks {
            *metrics.n_blocks.entry(block.state.as_str()).or_default() += 1;
        }
        metrics
    }
}
