//! One test per Parsl MPI-mode failure (contract section 7, items 1, 4, 5,
//! 6 and 7), each run through the real interchange core and real
//! pool-manager cores on the Pair harness, showing that the failure cannot
//! happen here.

mod common;

use common::{
    assert_clean, block, result_time, run, run_clean, run_clean_with, start, start_time,
    start_with, task_specs, workload,
};
use interchange_core::CoreConfig;
use protocol::{ErrorKind, TaskState};
use sim::{Report, SimConfig, TaskSpec};

fn config_with_limit(max_block_nodes: u32) -> SimConfig {
    SimConfig {
        core: CoreConfig {
            max_block_nodes: Some(max_block_nodes),
            ..CoreConfig::default()
        },
        ..SimConfig::default()
    }
}

/// Item 1, with `max_block_nodes`: a task larger than every block fails at
/// once as unschedulable; the others run.
#[test]
fn item1_too_large_task_fails_at_once_with_a_block_limit() {
    let tasks = task_specs(&[(0.0, 5.0, 2), (0.0, 5.0, 16), (0.0, 5.0, 8)]);
    let scenario = workload("item1-limit", vec![block(8, 0.0)], tasks);
    let (simulation, report) = run_clean_with(&scenario, config_with_limit(8));
    let large = &simulation.tasks()[1];
    assert!(large.dispatches.is_empty(), "{large:?}");
    assert_eq!(
        large.error_kind(),
        Some(ErrorKind::Unschedulable),
        "{large:?}"
    );
    assert_eq!(result_time(&simulation, 1), Some(0.0));
    assert_eq!(report.n_completed, 2, "{report}");
}

/// Item 1, without a limit: the task is never sent to a manager too small
/// for it, `status` and `task_status` say why it waits, smaller tasks are
/// not held up by it, and it runs once a large enough block joins.
#[test]
fn item1_too_large_task_waits_with_a_reason_and_runs_on_a_large_block() {
    let tasks = task_specs(&[(0.0, 5.0, 16), (0.0, 5.0, 2), (1.0, 5.0, 8), (2.0, 5.0, 4)]);
    let blocks = vec![block(8, 0.0), block(4, 0.0), block(16, 300.0)];
    let scenario = workload("item1-no-limit", blocks, tasks);
    let mut simulation = start(&scenario);
    simulation.run_until(200.0);
    let large = &simulation.tasks()[0];
    assert!(
        large.dispatches.is_empty(),
        "sent to a manager too small: {large:?}"
    );
    assert!(large.result.is_none(), "{large:?}");
    for index in 1..4 {
        assert_eq!(
            simulation.tasks()[index]
                .result
                .as_ref()
                .map(|(_, r)| r.state),
            Some(TaskState::Completed),
            "task {index} was held up by the oversized one"
        );
    }
    let Some(status) = simulation.status() else {
        panic!("no status reply");
    };
    assert_eq!(status.n_queued, 1, "{status:?}");
    let group = status
        .waiting
        .iter()
        .find(|group| group.num_nodes == 16)
        .unwrap_or_else(|| panic!("no waiting group for 16 nodes: {status:?}"));
    assert_eq!(group.n_tasks, 1);
    assert!(
        group.reason.contains("16") && group.reason.contains('8'),
        "the reason should name the need (16) and the largest manager (8): {:?}",
        group.reason
    );
    let Some(info) = simulation.task_status(0) else {
        panic!("no task_status reply");
    };
    assert_eq!(info.state, TaskState::Queued);
    let reason = info.waiting_reason.unwrap_or_default();
    assert!(reason.contains("16"), "task_status reason: {reason:?}");

    simulation.run();
    assert_eq!(start_time(&simulation, 0), Some(300.0));
    let report = Report::of(&simulation, "item1", "", None);
    assert_clean(&report);
    let dispatch = &simulation.tasks()[0].dispatches[0];
    assert_eq!(dispatch.block, 2, "ran on block {}", dispatch.block);
}

/// Item 4: a finished task frees nodes but the smallest waiting task still
/// does not fit. Parsl lost both the result and the waiting task; here the
/// result arrives when the task ends and the waiting tasks run when room
/// appears.
#[test]
fn item4_result_delivered_when_freed_nodes_fit_no_waiting_task() {
    let tasks = vec![
        TaskSpec::new(0.0, 10.0, 2),
        TaskSpec::new(0.0, 30.0, 6),
        TaskSpec::new(1.0, 5.0, 4),
        TaskSpec::new(1.0, 5.0, 3),
        // A second finish that frees too little, at the same instant as another.
        TaskSpec::new(31.0, 20.0, 4),
        TaskSpec::new(31.0, 20.0, 4),
        TaskSpec::new(32.0, 5.0, 8),
    ];
    let scenario = workload("item4", vec![block(8, 0.0)], tasks);
    let (simulation, report) = run_clean(&scenario);
    assert_eq!(report.n_completed, 7, "{report}");
    assert_eq!(result_time(&simulation, 0), Some(10.0));
    assert_eq!(start_time(&simulation, 2), Some(30.0));
    assert_eq!(start_time(&simulation, 3), Some(30.0));
    assert_eq!(result_time(&simulation, 1), Some(30.0));
    assert_eq!(start_time(&simulation, 4), Some(35.0));
    assert_eq!(start_time(&simulation, 5), Some(35.0));
    assert_eq!(start_time(&simulation, 6), Some(55.0));
}

/// Item 5: a task submitted at the very instant the last running task
/// finishes is not stranded, whichever of the two the interchange sees
/// first.
#[test]
fn item5_task_arriving_as_the_last_one_finishes_is_not_stranded() {
    // Submission handled first (it waits: the block is full), then the result.
    let tasks = task_specs(&[(0.0, 10.0, 2), (10.0, 5.0, 2)]);
    let scenario = workload("item5-submit-first", vec![block(2, 0.0)], tasks);
    let (simulation, _) = run_clean(&scenario);
    assert_eq!(start_time(&simulation, 1), Some(10.0));
    assert_eq!(result_time(&simulation, 1), Some(15.0));

    // The result handled first, then the submission at the same millisecond.
    let tasks = task_specs(&[(0.0, 10.0, 2)]);
    let scenario = workload("item5-result-first", vec![block(2, 0.0)], tasks);
    let mut simulation = start(&scenario);
    simulation.run_until(10.0);
    assert_eq!(result_time(&simulation, 0), Some(10.0));
    let late = simulation.add_task(TaskSpec::new(10.0, 5.0, 2));
    simulation.run();
    assert_eq!(start_time(&simulation, late), Some(10.0));
    assert_eq!(result_time(&simulation, late), Some(15.0));
    assert_clean(&Report::of(&simulation, "item5", "", None));
}

/// Item 6: a specification without `num_nodes` runs on exactly one node and
/// its result arrives.
#[test]
fn item6_spec_without_num_nodes_runs_on_one_node() {
    let bare = TaskSpec {
        num_nodes: None,
        ..TaskSpec::new(0.0, 3.0, 1)
    };
    let ranks_only = TaskSpec {
        ranks_per_node: Some(4),
        ..bare.clone()
    };
    let shared = TaskSpec {
        ranks_per_node: Some(2),
        exclusive: Some(false),
        ..bare.clone()
    };
    let scenario = workload("item6", vec![block(4, 0.0)], vec![bare, ranks_only, shared]);
    let (simulation, _) = run_clean(&scenario);
    for (index, task) in simulation.tasks().iter().enumerate() {
        assert_eq!(task.dispatches.len(), 1, "task {index}: {task:?}");
        assert_eq!(
            task.dispatches[0].placement.len(),
            1,
            "task {index}: {task:?}"
        );
        let Some((_, result)) = &task.result else {
            panic!("task {index} has no result");
        };
        assert_eq!(
            result.state,
            TaskState::Completed,
            "task {index}: {result:?}"
        );
        assert_eq!(result.nodes.len(), 1, "task {index}: {result:?}");
    }
}

/// Item 7 (#3323), the plain case: one block is full with a long task, the
/// other is idle; every task that fits the idle block starts there at once.
#[test]
fn item7_tasks_go_to_the_idle_block() {
    let mut tasks = task_specs(&[(0.0, 100.0, 4)]);
    for i in 0..6 {
        // At most two of them run at once (1.5 s each, one a second).
        tasks.push(TaskSpec::new(1.0 + f64::from(i), 1.5, 2));
    }
    let scenario = workload("item7-plain", vec![block(4, 0.0), block(4, 0.0)], tasks);
    let (simulation, _) = run_clean(&scenario);
    for index in 1..7 {
        let task = &simulation.tasks()[index];
        assert_eq!(task.wait(), Some(0), "task {index} waited: {task:?}");
    }
}

/// Item 7, checked at every event of a mixed run over two blocks: no
/// queued task ever waits while a block that could start it sits idle, nor
/// while a manager with room for it holds no reservation (the core's
/// `status` is asked after every event).
#[test]
fn item7_no_task_waits_while_a_block_that_fits_it_is_idle() {
    let mut rng = sim::rng::SplitMix64::new(3);
    let mut tasks = Vec::new();
    let mut at = 0.0;
    for _ in 0..300 {
        let num_nodes = rng
            .weighted(&[(1u32, 50.0), (2, 25.0), (4, 15.0), (8, 10.0)])
            .unwrap_or(1);
        tasks.push(TaskSpec::new(
            (at * 1000.0_f64).round() / 1000.0,
            (rng.uniform(1.0, 20.0) * 1000.0).round() / 1000.0,
            num_nodes,
        ));
        at += rng.exponential(1.0);
    }
    let scenario = workload("item7-mixed", vec![block(4, 0.0), block(8, 0.0)], tasks);
    let config = SimConfig {
        check_unreserved_capacity: true,
        ..SimConfig::default()
    };
    let (simulation, report) = run_clean_with(&scenario, config);
    assert_eq!(report.n_completed, 300, "{report}");
    let (n_events, _) = simulation.counters();
    assert!(n_events > 600, "the check ran at only {n_events} events");
}

/// A block whose manager goes silent (a lost manager) while a second block
/// runs: every task still gets exactly one result, and with `retries` the
/// lost tasks run again on the other block.
#[test]
fn lost_manager_tasks_get_exactly_one_result() {
    let tasks: Vec<TaskSpec> = (0..8).map(|_| TaskSpec::new(0.0, 100.0, 2)).collect();
    let mut lost = block(8, 0.0);
    lost.leave = Some(50.0);
    let scenario = workload("lost", vec![lost, block(8, 10.0)], tasks.clone());

    // No retries: the tasks on the lost block fail as manager_lost.
    let (simulation, report) = run(&scenario);
    assert!(report.exactly_once && report.n_violations == 0, "{report}");
    let n_lost = simulation
        .tasks()
        .iter()
        .filter(|task| task.error_kind() == Some(ErrorKind::ManagerLost))
        .count();
    assert_eq!(n_lost, 4, "{report}");
    assert_eq!(report.n_completed, 4, "{report}");

    // One retry each: every task completes, the lost ones on the other block.
    let retried: Vec<TaskSpec> = tasks
        .into_iter()
        .map(|task| TaskSpec {
            retries: Some(1),
            ..task
        })
        .collect();
    let mut lost = block(8, 0.0);
    lost.leave = Some(50.0);
    let scenario = workload("lost-retried", vec![lost, block(8, 10.0)], retried);
    let (simulation, report) = run_clean(&scenario);
    assert_eq!(report.n_completed, 8, "{report}");
    assert_eq!(report.n_redispatched, 4, "{report}");
    for task in simulation.tasks() {
        let last = task.dispatches.last().map(|dispatch| dispatch.block);
        assert_eq!(last, Some(1), "{task:?}");
    }
}

/// The other placement rule (prefer the newest block) keeps every check clean.
#[test]
fn newest_block_placement_is_clean_too() {
    let workload = sim::workload::parsl_mixed(2);
    let config = SimConfig {
        core: CoreConfig {
            placement: interchange_core::Placement::NewestBlock,
            ..CoreConfig::default()
        },
        ..SimConfig::default()
    };
    let mut simulation = start_with(&workload, config);
    simulation.run();
    assert_clean(&Report::of(&simulation, "newest", "", None));
}
