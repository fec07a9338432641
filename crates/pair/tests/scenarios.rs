//! Scenarios on the Pair: the real interchange core and real pool-manager
//! cores, each ending with the emptiness check.

mod common;

use common::results;
use pair::{
    sleep_command, sleep_launcher, ManagerLife, ManagerSpec, Pair, PairConfig, Problem, Seen,
};
use pool_manager_core::{ExitReason, ExitStatus};
use protocol::{
    ErrorKind, ManagerId, NodeShare, ResourceRequest, TaskDispatch, TaskId, TaskResources,
    TaskState, TaskSubmission, ToManager,
};
use seam::Time;
use std::collections::BTreeMap;
use std::time::Duration;

fn spec(number: u128, n_nodes: u32, slots_per_node: u32) -> ManagerSpec {
    ManagerSpec {
        manager_id: ManagerId::from_u128(number),
        block_id: format!("b{number}"),
        n_nodes,
        slots_per_node,
    }
}

fn task(number: u128, seconds: u64, num_nodes: u32) -> TaskSubmission {
    let mut resources = ResourceRequest::new();
    resources.insert("num_nodes", num_nodes);
    TaskSubmission {
        resources,
        ..TaskSubmission::new(
            TaskId::from_u128(number),
            sleep_command(Duration::from_secs(seconds)),
        )
    }
}

fn pair_with(config: PairConfig) -> (Pair, usize) {
    let mut pair = Pair::new(config);
    pair.set_launcher(sleep_launcher());
    let client = pair.add_client();
    (pair, client)
}

fn seconds(seconds: u64) -> Time {
    Time::from_millis(seconds * 1000)
}

#[test]
fn tasks_run_on_real_managers_and_report_once() {
    let (mut pair, client) = pair_with(PairConfig::default());
    pair.add_manager(&spec(1, 4, 8));
    pair.add_manager(&spec(2, 2, 8));
    pair.submit(
        client,
        vec![task(1, 10, 4), task(2, 5, 2), task(3, 1, 1), task(4, 3, 3)],
    );
    assert_eq!(pair.n_running_tasks(), 2);
    pair.run_until(seconds(60));
    let mut found = results(&mut pair, client);
    found.sort_by_key(|result| result.task_id);
    assert_eq!(found.len(), 4);
    for result in &found {
        assert_eq!(result.state, TaskState::Completed, "{result:?}");
    }
    // Task 1 took the 4-node manager for 10 s; task 4 (3 nodes) waited for it.
    assert_eq!(found[0].end_time, Some(10.0));
    assert_eq!(found[3].start_time, Some(10.0));
    assert_eq!(found[3].nodes.len(), 3);
    assert_eq!(pair.n_waiting(), 0);
    pair.check_quiet().expect("quiet");
}

#[test]
fn a_killed_manager_loses_its_tasks_and_they_are_retried_elsewhere() {
    let (mut pair, client) = pair_with(PairConfig::default());
    let doomed = pair.add_manager(&spec(1, 2, 4));
    let mut retried = task(1, 100, 2);
    retried.resources.insert("retries", 1u32);
    pair.submit(client, vec![retried, task(2, 100, 1)]);
    pair.run_until(seconds(10));
    // Task 2 waits: the manager is full.
    assert_eq!(pair.n_waiting(), 1);
    pair.kill_manager(doomed);
    assert_eq!(pair.n_running_tasks(), 0);
    pair.add_manager(&spec(2, 2, 4));
    pair.run_until(seconds(500));
    let mut found = results(&mut pair, client);
    found.sort_by_key(|result| result.task_id);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].state, TaskState::Completed);
    assert_eq!(found[0].block_id.as_deref(), Some("b2"));
    assert_eq!(found[1].state, TaskState::Completed);
    assert_eq!(pair.manager_life(doomed), Some(&ManagerLife::Killed));
    pair.check_quiet().expect("quiet");
}

#[test]
fn a_stopped_manager_reports_its_killed_tasks_and_leaves() {
    let (mut pair, client) = pair_with(PairConfig::default());
    let manager = pair.add_manager(&spec(1, 1, 1));
    pair.submit(client, vec![task(1, 100, 1)]);
    pair.run_until(seconds(5));
    pair.stop_manager(manager);
    assert!(pair.drive(100));
    let found = results(&mut pair, client);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].signal, Some(15), "{:?}", found[0]);
    assert!(matches!(
        pair.manager_life(manager),
        Some(ManagerLife::Exited(ExitReason::Terminated { .. }))
    ));
    assert!(pair.interchange().managers_view().is_empty());
    pair.check_quiet().expect("quiet");
}

#[test]
fn walltimes_are_enforced_by_the_manager_core() {
    let (mut pair, client) = pair_with(PairConfig::default());
    pair.add_manager(&spec(1, 2, 1));
    let mut over = task(1, 50, 1);
    over.resources.insert("walltime", 20u32);
    // A task that ends exactly at its walltime completes.
    let mut exact = task(2, 20, 1);
    exact.resources.insert("walltime", 20u32);
    pair.submit(client, vec![over, exact]);
    pair.run_until(seconds(100));
    let mut found = results(&mut pair, client);
    found.sort_by_key(|result| result.task_id);
    let kind = found[0].error.as_ref().map(|error| error.kind);
    assert_eq!(kind, Some(ErrorKind::WalltimeExceeded), "{:?}", found[0]);
    assert_eq!(found[0].end_time, Some(20.0));
    assert_eq!(found[1].state, TaskState::Completed, "{:?}", found[1]);
    pair.check_quiet().expect("quiet");
}

#[test]
fn messages_take_the_configured_delay() {
    let config = PairConfig {
        delay: Duration::from_millis(250),
        record: true,
        ..PairConfig::default()
    };
    let (mut pair, client) = pair_with(config);
    pair.add_manager(&spec(1, 1, 1));
    pair.run_until(seconds(1));
    pair.submit(client, vec![task(1, 2, 1)]);
    pair.run_until(seconds(10));
    // Submit reaches the interchange at 1.25 s, run_tasks the manager at
    // 1.5 s; the result leaves at 3.5 s and reaches the client at 4 s.
    let found = results(&mut pair, client);
    assert_eq!(found[0].start_time, Some(1.5));
    assert_eq!(found[0].end_time, Some(3.5));
    let mut seen = Vec::new();
    while let Some(entry) = pair.poll_seen() {
        seen.push(entry);
    }
    assert!(seen.iter().any(|entry| matches!(
        entry,
        Seen::ToManager {
            message: ToManager::Registered { .. },
            ..
        }
    )));
    assert!(seen.iter().any(|entry| matches!(
        entry,
        Seen::Exited {
            status: ExitStatus::Code(0),
            ..
        }
    )));
    pair.check_quiet().expect("quiet");
}

#[test]
fn a_forged_placement_is_refused_by_the_manager_and_recorded() {
    let (mut pair, client) = pair_with(PairConfig::default());
    let manager = pair.add_manager(&spec(1, 2, 4));
    results(&mut pair, client);
    let mut resources = TaskResources::serial();
    resources.num_nodes = 2;
    let forged = TaskDispatch {
        task_id: TaskId::from_u128(9),
        command: "true".to_owned(),
        resources,
        placement: vec![
            NodeShare { node: 0, slots: 4 },
            NodeShare { node: 0, slots: 4 },
        ],
        env: BTreeMap::new(),
        cwd: None,
        stdout: None,
        stderr: None,
        input: None,
    };
    pair.inject_to_manager(
        manager,
        &ToManager::RunTasks {
            tasks: vec![forged],
        },
    );
    let problems = pair.take_problems();
    assert!(
        matches!(&problems[..], [Problem::Refused { message, .. }] if message.contains("more than once")),
        "{problems:?}"
    );
    assert_eq!(pair.manager(manager).n_running(), 0);
    pair.check_quiet().expect("quiet");
}

#[test]
fn heartbeats_keep_both_sides_alive_for_hours() {
    let (mut pair, client) = pair_with(PairConfig::default());
    let manager = pair.add_manager(&spec(1, 1, 1));
    pair.run_until(seconds(4 * 3600));
    assert_eq!(pair.manager_life(manager), Some(&ManagerLife::Alive));
    assert!(pair.manager(manager).is_registered());
    let status = pair.status(client).expect("status");
    assert_eq!(status.managers.len(), 1);
    results(&mut pair, client);
    pair.check_quiet().expect("quiet");
}
