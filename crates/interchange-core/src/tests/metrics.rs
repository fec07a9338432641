//! The metrics a core keeps: counters and histogram observations after a
//! submit, a dispatch, a completion, a failure, a cancel, a refusal, a
//! retry and a bad message; and the gauges of managers and nodes.

use super::*;
use crate::metrics::{FinishedAs, Histogram, Metrics, DURATION_BUCKETS};

fn finished(state: &'static str, error_kind: &'static str) -> FinishedAs {
    FinishedAs { state, error_kind }
}

/// A manager's result with start and end times `start`..`end` seconds
/// after the core's clock began (on the wall clock).
fn ran(mut result: TaskResult, start: f64, end: f64) -> TaskResult {
    result.start_time = Some(WALL_CLOCK + start);
    result.end_time = Some(WALL_CLOCK + end);
    result
}

/// Asserts the histogram's count and sum (to the millisecond).
fn assert_observed(name: &str, histogram: &Histogram, count: u64, sum: f64) {
    assert_eq!(histogram.count(), count, "{name}: count");
    assert!(
        (histogram.sum() - sum).abs() < 1e-3,
        "{name}: sum {} instead of {sum}",
        histogram.sum()
    );
    let in_buckets: u64 = histogram.buckets().map(|(_, n)| n).sum();
    assert_eq!(in_buckets, count, "{name}: buckets");
}

/// The task counters and gauges (submitted, dispatched, requeued, queued,
/// running), and the nodes (busy, idle).
fn task_and_node_counts(metrics: &Metrics) -> ([u64; 5], (u64, u64)) {
    (
        [
            metrics.n_tasks_submitted,
            metrics.n_tasks_dispatched,
            metrics.n_tasks_requeued,
            metrics.n_tasks_queued,
            metrics.n_tasks_running,
        ],
        (metrics.n_nodes_busy, metrics.n_nodes_idle),
    )
}

#[test]
fn task_events_are_counted_and_their_durations_observed() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    let metrics = sim.core.metrics();
    assert_eq!(metrics.n_tasks_submitted, 0);
    assert_eq!((metrics.n_nodes_busy, metrics.n_nodes_idle), (0, 2));
    assert_eq!(metrics.n_managers_active, 1);

    // t = 0: task 1 starts, task 2 (2 nodes) reserves the manager, task 3
    // waits behind it, and task 4 is refused at once.
    sim.submit(
        "c",
        1,
        submissions([(1, nodes(1)), (2, nodes(2)), (3, nodes(1)), (4, nodes(0))]),
    );
    sim.drain();
    let metrics = sim.core.metrics();
    assert_eq!(task_and_node_counts(&metrics), ([4, 1, 0, 2, 1], (1, 1)));
    assert_eq!(
        metrics.n_tasks_finished,
        BTreeMap::from([(finished("failed", "invalid_spec"), 1)])
    );
    assert_observed("queue wait", &metrics.queue_wait, 1, 0.0);
    assert_observed("turnaround", &metrics.turnaround, 0, 0.0);

    // t = 5: task 1 completes (started 0.5 s after its dispatch, ran 4 s);
    // task 2 starts after waiting 5 s.
    sim.advance(5);
    sim.manager_results("m1", vec![ran(completed(1), 0.5, 4.5)]);
    sim.drain();
    // t = 7: task 3 is cancelled while queued.
    sim.advance(2);
    sim.cancel("c", 2, 3);
    sim.drain();
    // t = 10: task 2 fails (started 0.2 s after its dispatch, ran 3.8 s).
    sim.advance(3);
    let mut failure = failed(2, ErrorKind::ExitCode, "exit code 3");
    failure.exit_code = Some(3);
    sim.manager_results("m1", vec![ran(failure, 5.2, 9.0)]);
    sim.drain();
    // A frame that is not a message.
    sim.client_bytes("c", b"\xc1 not msgpack");
    sim.drain();

    let metrics = sim.core.metrics();
    assert_eq!(task_and_node_counts(&metrics), ([4, 2, 0, 0, 0], (0, 2)));
    assert_eq!(metrics.n_bad_messages, 1);
    assert_eq!(
        metrics.n_tasks_finished,
        BTreeMap::from([
            (finished("completed", "none"), 1),
            (finished("failed", "exit_code"), 1),
            (finished("failed", "invalid_spec"), 1),
            (finished("cancelled", "cancelled"), 1),
        ])
    );
    assert_observed("queue wait", &metrics.queue_wait, 2, 5.0);
    assert_observed("dispatch latency", &metrics.dispatch_latency, 2, 0.7);
    assert_observed("run time", &metrics.run_time, 2, 7.8);
    // Tasks 1, 3 and 2 finished 5, 7 and 10 s after their submission.
    assert_observed("turnaround", &metrics.turnaround, 3, 22.0);
    // The buckets: 4.0 s and 3.8 s of run time are in the (2.5, 5] bucket.
    let run_buckets: Vec<(f64, u64)> = metrics.run_time.buckets().collect();
    assert_eq!(run_buckets.len(), DURATION_BUCKETS.len() + 1);
    assert!(run_buckets.contains(&(5.0, 2)), "{run_buckets:?}");
    assert_eq!(run_buckets.last(), Some(&(f64::INFINITY, 0)));
}

#[test]
fn a_retry_is_counted_and_managers_are_counted_by_state() {
    let mut sim = Sim::with_peers(&["c"], &[(1, 1), (2, 3), (3, 1)]);
    sim.command(
        "c",
        1,
        Command::Hold {
            manager_id: manager_id(2),
        },
    );
    sim.command(
        "c",
        2,
        Command::Drain {
            manager_id: manager_id(3),
        },
    );
    sim.submit("c", 3, vec![submission(1, nodes(1).with("retries", 1_i64))]);
    sim.drain();
    let metrics = sim.core.metrics();
    assert_eq!(
        (
            metrics.n_managers_active,
            metrics.n_managers_held,
            metrics.n_managers_draining
        ),
        (1, 1, 1),
        "{metrics:?}"
    );
    assert_eq!(metrics.n_tasks_running, 1);
    assert_eq!((metrics.n_nodes_busy, metrics.n_nodes_idle), (1, 4));

    // Manager 1 says goodbye without reporting its task: it is queued
    // again (manager 2 is held), and waits there.
    sim.advance(4);
    sim.manager(
        "m1",
        FromManager::Goodbye {
            reason: "test".to_owned(),
        },
    );
    sim.drain();
    let metrics = sim.core.metrics();
    assert_eq!(metrics.n_tasks_requeued, 1);
    assert_eq!(metrics.n_tasks_queued, 1);
    assert_eq!(metrics.n_tasks_running, 0);
    assert!(metrics.n_tasks_finished.is_empty(), "{metrics:?}");

    // Released, manager 2 starts it: its second wait is 2 s, counted from
    // its return to the queue.
    sim.advance(2);
    sim.command(
        "c",
        4,
        Command::Release {
            manager_id: manager_id(2),
        },
    );
    sim.drain();
    let metrics = sim.core.metrics();
    assert_eq!(metrics.n_tasks_dispatched, 2);
    assert_observed("queue wait", &metrics.queue_wait, 2, 2.0);
    assert_eq!(metrics.n_managers_active, 1);
}
