//! What a report shows, computed from an event log's records: the run's
//! managers (lanes of nodes over time), every task's attempts on nodes,
//! the queued and running counts over time, waits and run times, and the
//! summary (tasks by state, node-hour utilization, makespan against its
//! lower bound). Pure: records in, numbers out.

use protocol::{Event, EventRecord, ManagerId, TaskId, TaskState};
use std::collections::{BTreeMap, HashMap};

/// A pool-manager's nodes, and when it was registered: from each
/// registration (a manager may register again, re-attaching) to its
/// departure or the end of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Lane {
    pub manager_id: ManagerId,
    pub block_id: String,
    pub nodes: Vec<String>,
    /// (from, to), in time order.
    pub spans: Vec<(f64, f64)>,
}

/// One run of a task on some nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub manager_id: ManagerId,
    pub nodes: Vec<String>,
    pub start: f64,
    /// Its result, its retry, or the end of the log.
    pub end: f64,
}

/// A task's life.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskLife {
    pub task_id: TaskId,
    pub submitted: f64,
    pub attempts: Vec<Attempt>,
    /// Its final state and when; `None` if the log ends first.
    pub finished: Option<(TaskState, f64)>,
}

/// A run, as its event log tells it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// The first and last record's times.
    pub start: f64,
    pub end: f64,
    pub lanes: Vec<Lane>,
    /// In submission order.
    pub tasks: Vec<TaskLife>,
}

impl Run {
    /// Reads the records (in log order; times may repeat, never go back
    /// by much).
    pub fn from_records(records: &[EventRecord]) -> Run {
        let times: Vec<f64> = records.iter().filter_map(EventRecord::unix).collect();
        let start = times.iter().copied().fold(f64::INFINITY, f64::min);
        let end = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if times.is_empty() {
            return Run::default();
        }
        let mut lanes: Vec<Lane> = Vec::new();
        // The lane of each manager, and whether its last span is open.
        let mut lane_of: HashMap<ManagerId, (usize, bool)> = HashMap::new();
        let mut tasks: Vec<TaskLife> = Vec::new();
        let mut index_of: HashMap<TaskId, usize> = HashMap::new();
        for record in records {
            let Some(at) = record.unix() else { continue };
            match &record.event {
                Event::ManagerRegistered {
                    manager_id,
                    block_id,
                    nodes,
                    ..
                } => match lane_of.get_mut(manager_id) {
                    Some((_, true)) => {}
                    Some((lane, open)) => {
                        lanes[*lane].spans.push((at, end));
                        *open = true;
                    }
                    None => {
                        lane_of.insert(*manager_id, (lanes.len(), true));
                        lanes.push(Lane {
                            manager_id: *manager_id,
                            block_id: block_id.clone(),
                            nodes: nodes.clone(),
                            spans: vec![(at, end)],
                        });
                    }
                },
                Event::ManagerGone { manager_id, .. } | Event::ManagerLost { manager_id, .. } => {
                    if let Some((lane, open)) =
                        lane_of.get_mut(manager_id).filter(|(_, open)| *open)
                    {
                        if let Some(span) = lanes[*lane].spans.last_mut() {
                            span.1 = at;
                        }
                        *open = false;
                    }
                }
                Event::TaskSubmitted { task_id, .. } => {
                    index_of.entry(*task_id).or_insert_with(|| {
                        tasks.push(TaskLife {
                            task_id: *task_id,
                            submitted: at,
                            attempts: Vec::new(),
                            finished: None,
                        });
                        tasks.len() - 1
                    });
                }
                Event::TaskStarted {
                    task_id,
                    manager_id,
                    nodes,
                    ..
                } => {
                    if let Some(task) = index_of.get(task_id).map(|index| &mut tasks[*index]) {
                        task.attempts.push(Attempt {
                            manager_id: *manager_id,
                            nodes: nodes.clone(),
                            start: at,
                            end,
                        });
                    }
                }
                Event::TaskRetried { task_id, .. } => {
                    if let Some(attempt) = index_of
                        .get(task_id)
                        .and_then(|index| tasks[*index].attempts.last_mut())
                    {
                        attempt.end = at;
                    }
                }
                Event::TaskFinished { task_id, state, .. } => {
                    if let Some(task) = index_of.get(task_id).map(|index| &mut tasks[*index]) {
                        if let Some(attempt) = task.attempts.last_mut() {
                            attempt.end = attempt.end.min(at);
                        }
                        task.finished = Some((*state, at));
                    }
                }
                _ => {}
            }
        }
        Run {
            start,
            end,
            lanes,
            tasks,
        }
    }

    /// Queued and running tasks after each change: (time, queued,
    /// running), in time order.
    pub fn queue_series(&self) -> Vec<(f64, u64, u64)> {
        // (time, change in queued, change in running)
        let mut changes: Vec<(f64, i64, i64)> = Vec::new();
        for task in &self.tasks {
            changes.push((task.submitted, 1, 0));
            for attempt in &task.attempts {
                changes.push((attempt.start, -1, 1));
                changes.push((attempt.end, 0, -1));
                let retried = task.finished.map_or(true, |(_, at)| attempt.end < at);
                if retried && attempt.end < self.end {
                    changes.push((attempt.end, 1, 0));
                }
            }
            if let Some((_, at)) = task.finished {
                if task.attempts.is_empty() {
                    changes.push((at, -1, 0));
                }
            }
        }
        changes.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut series: Vec<(f64, u64, u64)> = Vec::new();
        let (mut queued, mut running) = (0i64, 0i64);
        for (at, d_queued, d_running) in changes {
            queued += d_queued;
            running += d_running;
            let point = (at, queued.max(0) as u64, running.max(0) as u64);
            match series.last_mut() {
                Some(last) if last.0 == at => *last = point,
                _ => series.push(point),
            }
        }
        series
    }

    /// Seconds each task waited in the queue before each of its starts.
    pub fn waits(&self) -> Vec<f64> {
        let mut waits = Vec::new();
        for task in &self.tasks {
            let mut queued_at = task.submitted;
            for attempt in &task.attempts {
                waits.push((attempt.start - queued_at).max(0.0));
                queued_at = attempt.end;
            }
        }
        waits
    }

    /// Seconds each attempt ran that ended with the task's result.
    pub fn run_times(&self) -> Vec<f64> {
        self.tasks
            .iter()
            .filter(|task| task.finished.is_some())
            .filter_map(|task| task.attempts.last())
            .map(|attempt| (attempt.end - attempt.start).max(0.0))
            .collect()
    }

    /// The numbers of the summary.
    pub fn summary(&self) -> Summary {
        let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
        for task in &self.tasks {
            let state = task
                .finished
                .map_or("unfinished", |(state, _)| state.as_str());
            *by_state.entry(state).or_default() += 1;
        }
        let node_seconds_available: f64 = self
            .lanes
            .iter()
            .flat_map(|lane| {
                let n_nodes = lane.nodes.len() as f64;
                lane.spans
                    .iter()
                    .map(move |(from, to)| (to - from).max(0.0) * n_nodes)
            })
            .sum();
        let node_seconds_busy: f64 = self
            .tasks
            .iter()
            .flat_map(|task| &task.attempts)
            .map(|attempt| (attempt.end - attempt.start).max(0.0) * attempt.nodes.len() as f64)
            .sum();
        let first_submit = self
            .tasks
            .iter()
            .map(|task| task.submitted)
            .fold(f64::INFINITY, f64::min);
        let last_end = self
            .tasks
            .iter()
            .filter_map(|task| task.finished.map(|(_, at)| at))
            .fold(f64::NEG_INFINITY, f64::max);
        let makespan = (last_end - first_submit).max(0.0);
        let makespan = if makespan.is_finite() { makespan } else { 0.0 };
        let peak_nodes = self.peak_nodes();
        let longest = self.run_times().into_iter().fold(0.0, f64::max);
        let lower_bound = if peak_nodes == 0 {
            longest
        } else {
            (node_seconds_busy / peak_nodes as f64).max(longest)
        };
        Summary {
            n_tasks: self.tasks.len() as u64,
            by_state,
            node_seconds_available,
            node_seconds_busy,
            makespan,
            lower_bound,
            peak_nodes,
        }
    }

    /// The most nodes registered at once.
    pub fn peak_nodes(&self) -> u64 {
        let mut changes: Vec<(f64, i64)> = Vec::new();
        for lane in &self.lanes {
            for (from, to) in &lane.spans {
                changes.push((*from, lane.nodes.len() as i64));
                changes.push((*to, -(lane.nodes.len() as i64)));
            }
        }
        // At equal times, departures first.
        changes.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let (mut now, mut peak) = (0i64, 0i64);
        for (_, change) in changes {
            now += change;
            peak = peak.max(now);
        }
        peak.max(0) as u64
    }
}

/// A run's summary numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub n_tasks: u64,
    /// Tasks by final state (`unfinished` for those without a result).
    pub by_state: BTreeMap<&'static str, u64>,
    /// Node-seconds the managers offered (registration to departure).
    pub node_seconds_available: f64,
    /// Node-seconds the tasks held (dispatch to result, per node).
    pub node_seconds_busy: f64,
    /// First submission to last result.
    pub makespan: f64,
    /// No schedule could be shorter: the busy node-seconds spread over the
    /// most nodes ever registered at once, or the longest run, whichever
    /// is larger.
    pub lower_bound: f64,
    pub peak_nodes: u64,
}

impl Summary {
    /// Busy over available node-seconds, from 0 to 1.
    pub fn utilization(&self) -> f64 {
        if self.node_seconds_available > 0.0 {
            (self.node_seconds_busy / self.node_seconds_available).min(1.0)
        } else {
            0.0
        }
    }
}

/// `n_bins` equal bins from 0 to the largest value: (upper bound, count).
pub fn histogram(values: &[f64], n_bins: usize) -> Vec<(f64, u64)> {
    let n_bins = n_bins.max(1);
    let largest = values.iter().copied().fold(0.0, f64::max);
    let width = if largest > 0.0 {
        largest / n_bins as f64
    } else {
        1.0
    };
    let mut counts = vec![0u64; n_bins];
    for value in values {
        let bin = ((value / width) as usize).min(n_bins - 1);
        counts[bin] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(bin, count)| ((bin + 1) as f64 * width, count))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{ErrorKind, TaskState};

    fn id(n: u128) -> TaskId {
        TaskId::from_u128(n)
    }

    fn manager(n: u128) -> ManagerId {
        ManagerId::from_u128(n)
    }

    fn at(seconds: f64, event: Event) -> EventRecord {
        EventRecord::new(1_000.0 + seconds, event)
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn started(task: u128, nodes: &[&str]) -> Event {
        Event::TaskStarted {
            task_id: id(task),
            manager_id: manager(1),
            block_id: "b1".to_owned(),
            nodes: names(nodes),
            attempt: 1,
        }
    }

    fn finished(task: u128, state: TaskState) -> Event {
        Event::TaskFinished {
            task_id: id(task),
            state,
            exit_code: Some(0),
            error_kind: (state != TaskState::Completed).then_some(ErrorKind::ExitCode),
            manager_id: Some(manager(1)),
        }
    }

    /// A 2-node manager from t=0 to t=10; task 1 (2 nodes) runs 1..5;
    /// task 2 (1 node) waits until 5, runs 5..6, is retried, runs 7..9 and
    /// fails; task 3 is refused at once at t=2.
    fn run() -> Run {
        let records = vec![
            at(
                0.0,
                Event::ManagerRegistered {
                    manager_id: manager(1),
                    block_id: "b1".to_owned(),
                    hostname: "h".to_owned(),
                    nodes: names(&["a", "b"]),
                },
            ),
            at(
                1.0,
                Event::TaskSubmitted {
                    task_id: id(1),
                    num_nodes: Some(2),
                },
            ),
            at(
                1.0,
                Event::TaskSubmitted {
                    task_id: id(2),
                    num_nodes: Some(1),
                },
            ),
            at(1.0, started(1, &["a", "b"])),
            at(
                2.0,
                Event::TaskSubmitted {
                    task_id: id(3),
                    num_nodes: None,
                },
            ),
            at(2.0, finished(3, TaskState::Failed)),
            at(5.0, finished(1, TaskState::Completed)),
            at(5.0, started(2, &["a"])),
            at(
                6.0,
                Event::TaskRetried {
                    task_id: id(2),
                    manager_id: manager(1),
                },
            ),
            at(7.0, started(2, &["b"])),
            at(9.0, finished(2, TaskState::Failed)),
            at(
                10.0,
                Event::ManagerGone {
                    manager_id: manager(1),
                    block_id: "b1".to_owned(),
                    reason: "drained".to_owned(),
                },
            ),
        ];
        Run::from_records(&records)
    }

    #[test]
    fn tasks_lanes_and_attempts_are_read_from_the_log() {
        let run = run();
        assert_eq!((run.start, run.end), (1_000.0, 1_010.0));
        assert_eq!(run.lanes.len(), 1);
        assert_eq!(run.lanes[0].spans, vec![(1_000.0, 1_010.0)]);
        assert_eq!(run.tasks.len(), 3);
        let spans: Vec<(f64, f64)> = run.tasks[1]
            .attempts
            .iter()
            .map(|attempt| (attempt.start - 1_000.0, attempt.end - 1_000.0))
            .collect();
        assert_eq!(spans, vec![(5.0, 6.0), (7.0, 9.0)]);
        assert_eq!(run.tasks[2].finished, Some((TaskState::Failed, 1_002.0)));
    }

    #[test]
    fn the_queue_series_counts_queued_and_running_tasks() {
        let series: Vec<(f64, u64, u64)> = run()
            .queue_series()
            .into_iter()
            .map(|(at, queued, running)| (at - 1_000.0, queued, running))
            .collect();
        assert_eq!(
            series,
            vec![
                (1.0, 1, 1),
                (2.0, 1, 1),
                (5.0, 0, 1),
                (6.0, 1, 0),
                (7.0, 0, 1),
                (9.0, 0, 0),
            ]
        );
    }

    #[test]
    fn waits_run_times_and_the_summary() {
        let run = run();
        assert_eq!(run.waits(), vec![0.0, 4.0, 1.0]);
        assert_eq!(run.run_times(), vec![4.0, 2.0]);
        let summary = run.summary();
        assert_eq!(summary.n_tasks, 3);
        assert_eq!(summary.by_state.get("completed"), Some(&1));
        assert_eq!(summary.by_state.get("failed"), Some(&2));
        assert_eq!(summary.node_seconds_available, 20.0);
        // 2 nodes x 4 s + 1 x 1 s + 1 x 2 s
        assert_eq!(summary.node_seconds_busy, 11.0);
        assert!((summary.utilization() - 0.55).abs() < 1e-9);
        assert_eq!(summary.makespan, 8.0);
        assert_eq!(summary.peak_nodes, 2);
        // 11 node-seconds on 2 nodes, more than the longest run (4 s)
        assert_eq!(summary.lower_bound, 5.5);
    }

    #[test]
    fn histograms_have_equal_bins_up_to_the_largest_value() {
        assert_eq!(
            histogram(&[0.0, 1.0, 2.0, 4.0], 4),
            vec![(1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)]
        );
        assert_eq!(histogram(&[], 2), vec![(1.0, 0), (2.0, 0)]);
        assert_eq!(histogram(&[0.0, 0.0], 1), vec![(1.0, 2)]);
    }

    #[test]
    fn a_manager_that_registers_again_keeps_its_lane_with_two_spans() {
        let register = Event::ManagerRegistered {
            manager_id: manager(1),
            block_id: "b1".to_owned(),
            hostname: "h".to_owned(),
            nodes: names(&["a", "b"]),
        };
        let lost = Event::ManagerLost {
            manager_id: manager(1),
            block_id: "b1".to_owned(),
            reason: "silent".to_owned(),
        };
        let run = Run::from_records(&[
            at(0.0, register.clone()),
            at(2.0, lost),
            at(5.0, register.clone()),
            at(6.0, register),
            at(
                8.0,
                Event::TaskSubmitted {
                    task_id: id(1),
                    num_nodes: Some(1),
                },
            ),
        ]);
        assert_eq!(run.lanes.len(), 1);
        assert_eq!(
            run.lanes[0].spans,
            vec![(1_000.0, 1_002.0), (1_005.0, 1_008.0)]
        );
        let summary = run.summary();
        assert_eq!(summary.node_seconds_available, 2.0 * (2.0 + 3.0));
        assert_eq!(summary.peak_nodes, 2);
    }

    #[test]
    fn an_empty_log_is_an_empty_run() {
        let run = Run::from_records(&[]);
        assert_eq!(run, Run::default());
        assert_eq!(run.summary().makespan, 0.0);
        assert!(run.queue_series().is_empty());
    }
}
