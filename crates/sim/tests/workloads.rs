//! Thresholds on the named workloads, run through the real interchange
//! core: utilization, makespan against its lower bound, bounded waits of
//! the largest tasks, nothing lost or duplicated, and the same report for
//! the same seed.
//!
//! How the thresholds were chosen: a reference model of the scheduler the
//! issue asks for (head-of-queue reservation of the manager that frees
//! soonest, EASY backfill when tasks carry walltimes, nothing new on a
//! reserved manager without walltimes, best fit), written outside the
//! repository, reached the figures quoted at each test; each threshold sits
//! below them with a margin, and far above what a broken scheduler gives
//! (one task at a time, or a large task starved to the end of the stream).

mod common;

use common::{assert_clean, run_clean_with, run_with};
use sim::workload::{self, starvation_params};
use sim::{Report, SimConfig};

fn run_named(name: &str, seed: u64) -> Report {
    let workload = match workload::by_name(name, seed) {
        Ok(workload) => workload,
        Err(error) => panic!("{error}"),
    };
    run_with(&workload, SimConfig::default()).1
}

/// Also asks the core for `status` after every event and fails the run if
/// a queued task could start on a manager that holds no reservation.
fn strict() -> SimConfig {
    SimConfig {
        check_unreserved_capacity: true,
        ..SimConfig::default()
    }
}

/// Parsl's mixed test: 100 tasks of 1, 2 or 4 whole nodes on one 8-node
/// block, all submitted at once, no walltimes.
///
/// With no walltimes a reserving scheduler cannot backfill the only block,
/// so whenever the head task does not fit the block drains for it: the
/// reference model gives 86-89% utilization and makespan 1.13-1.16 times
/// the lower bound over seeds 1-5 (a greedy scheduler that lets small tasks
/// pass reaches 97-99% and 1.01-1.03, at the price of starving large ones).
/// Running one task at a time would give about 2.3 / 8 = 29%. Thresholds:
/// at least 80% and at most 1.25 times the bound.
#[test]
fn parsl_mixed_utilization_and_makespan() {
    for seed in 1..=5 {
        let report = run_named("parsl-mixed", seed);
        assert_clean(&report);
        assert_eq!(report.n_completed, 100, "{report}");
        assert!(report.utilization >= 0.80, "seed {seed}:\n{report}");
        assert!(report.makespan_ratio <= 1.25, "seed {seed}:\n{report}");
    }
}

/// Parsl's test also checks that every task ran on exactly `num_nodes` nodes.
#[test]
fn parsl_mixed_every_task_gets_num_nodes_hosts() {
    let workload = workload::parsl_mixed(11);
    let (simulation, _) = run_clean_with(&workload, SimConfig::default());
    for (index, task) in simulation.tasks().iter().enumerate() {
        let num_nodes = task.spec.num_nodes.unwrap_or(1) as usize;
        let Some((_, result)) = &task.result else {
            panic!("task {index} has no result");
        };
        assert_eq!(result.nodes.len(), num_nodes, "task {index}: {result:?}");
        let mut distinct = result.nodes.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            num_nodes,
            "task {index} repeats a node: {result:?}"
        );
    }
}

/// 10,000 tasks with Pareto durations over blocks of 4, 4, 8, 8, 16 and 16
/// nodes, every task with a (generous) walltime, 1% of them too short.
///
/// All are submitted at once, so a FIFO order with reservations makes the
/// 16-node tasks wait their turn, and backfill with walltimes keeps the
/// other nodes busy meanwhile. The reference model (reservation plus EASY
/// backfill) gave 88-95% utilization and makespans 1.06-1.14 times the
/// lower bound over seeds 1-3 (89.8% and 1.11 for seed 1); a greedy
/// scheduler that lets small tasks pass starves the 16-node tasks to the
/// end, where they run on two blocks while the rest sit idle: 79-82% and
/// 1.22-1.27. Thresholds: at least 85% and at most 1.20.
/// Also: nothing lost, and exactly the tasks whose walltime is shorter than
/// their duration fail, as walltime_exceeded.
#[test]
fn heavy_tailed_utilization_and_makespan() {
    let workload = workload::heavy_tailed(1);
    let (_, report) = run_clean_with(&workload, strict());
    let n_too_short = workload
        .tasks
        .iter()
        .filter(|task| {
            task.walltime
                .is_some_and(|walltime| task.duration > walltime)
        })
        .count();
    assert!(n_too_short > 0);
    assert_eq!(
        report
            .n_failed
            .get("walltime_exceeded")
            .copied()
            .unwrap_or(0),
        n_too_short,
        "{report}"
    );
    assert_eq!(report.n_completed + n_too_short, 10_000, "{report}");
    assert!(report.utilization >= HEAVY_MIN_UTILIZATION, "{report}");
    assert!(report.makespan_ratio <= HEAVY_MAX_RATIO, "{report}");
}

/// See [`heavy_tailed_utilization_and_makespan`].
const HEAVY_MIN_UTILIZATION: f64 = 0.85;
const HEAVY_MAX_RATIO: f64 = 1.20;

/// The starvation case: a stream of 1-node tasks keeps the 8-node block
/// busy, and an 8-node task arrives every 200 s.
///
/// Bound: once a whole-block task is at the head of the queue (every older
/// task has started), the block is reserved for it and nothing new starts
/// there, so it starts when the 1-node tasks already running end: at most
/// the longest 1-node duration (15 s) later. Older tasks waiting when it
/// arrives start as nodes free up, within a few seconds at this load (the
/// reference model's waits were 6-15 s over seeds 1-5); 5 s of margin
/// covers them. Without reservation each whole-block task waits until the
/// stream ends (200-1110 s here). A tighter check per task: it starts no
/// later than 15 s after the last older task started (or after its own
/// submission, if later).
#[test]
fn starvation_whole_block_tasks_wait_boundedly() {
    let longest_short = starvation_params::SHORT_DURATION.1;
    let bound = longest_short + 5.0;
    for seed in 1..=3 {
        let workload = workload::starvation(seed);
        let (simulation, report) = run_clean_with(&workload, strict());
        assert_eq!(report.largest_num_nodes, starvation_params::BLOCK_NODES);
        assert_eq!(report.n_largest, starvation_params::LARGE_AT.len());
        let tasks = simulation.tasks();
        for (index, task) in tasks.iter().enumerate() {
            if task.spec.num_nodes != Some(starvation_params::BLOCK_NODES) {
                continue;
            }
            let Some(wait) = task.wait() else {
                panic!("seed {seed}: whole-block task {index} never started\n{report}");
            };
            let wait = wait as f64 / 1000.0;
            assert!(
                wait <= bound,
                "seed {seed}: whole-block task {index} submitted at {} s waited {wait} s (bound {bound} s)\n{report}",
                task.spec.submit
            );
            let head_at = tasks[..index]
                .iter()
                .filter_map(|older| older.dispatches.first().map(|d| d.at as f64 / 1000.0))
                .fold(task.spec.submit, f64::max);
            let started = task.spec.submit + wait;
            assert!(
                started <= head_at + longest_short + 0.001,
                "seed {seed}: whole-block task {index} reached the head at {head_at} s but started at {started} s\n{report}"
            );
        }
        assert!(report.largest_wait_max <= bound, "{report}");
    }
}

/// The stream keeps the block busy: about 83% from the 1-node tasks and
/// 10% from the whole-block ones; the reference model loses about 2% to
/// the drains before each whole-block task (91-93%). Threshold 85%.
#[test]
fn starvation_keeps_the_block_busy() {
    let report = run_named("starvation", 1);
    assert_clean(&report);
    assert!(report.utilization >= 0.85, "{report}");
}

#[test]
fn same_seed_same_report() {
    for name in workload::WORKLOAD_NAMES {
        let first = run_named(name, 7);
        let second = run_named(name, 7);
        assert_eq!(first, second, "{name} differs between two runs");
        assert_eq!(first.to_json(), second.to_json());
        assert_eq!(first.to_string(), second.to_string());
    }
    assert_ne!(
        run_named("parsl-mixed", 7).makespan,
        run_named("parsl-mixed", 8).makespan,
        "another seed should give another workload"
    );
}

/// Sub-node packing: shared tasks take `ranks_per_node` slots and share
/// nodes, never beyond a node's 16 slots (each pool-manager core's
/// allocator checks every placement; a refusal is a violation).
///
/// Utilization counts a shared task as its ranks over the node's slots.
/// Giving each shared task whole nodes would cap it near 37% (per task on
/// average 0.46 node equivalents of work hold 1.25 whole nodes); packed,
/// the interchange reached 91.7-92.6% over seeds 1-3 when this test was
/// written, the rest lost to FIFO drains before whole-node and 2-node
/// tasks. Thresholds: at least 80% and at most 1.25 times the bound.
#[test]
fn packing_shares_nodes_without_over_allocation() {
    let workload = workload::packing(1);
    let (simulation, report) = run_clean_with(&workload, strict());
    assert!(report.utilization >= 0.80, "{report}");
    assert!(report.makespan_ratio <= 1.25, "{report}");
    // Some node ran two tasks at once.
    let mut spans: Vec<(usize, u32, u64, u64)> = Vec::new();
    for task in simulation.tasks() {
        let (Some(dispatch), Some((end, _))) = (task.dispatches.last(), &task.result) else {
            continue;
        };
        for share in &dispatch.placement {
            spans.push((dispatch.block, share.node, dispatch.at, *end));
        }
    }
    spans.sort_unstable();
    let shared = spans
        .windows(2)
        .any(|pair| pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1 && pair[1].2 < pair[0].3);
    assert!(shared, "no node ever ran two tasks at once");
}
