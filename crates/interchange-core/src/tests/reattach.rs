//! A manager that registers again (re-attach): what it runs and holds is
//! reconciled with what the core has running on it (module `reattach`).

use super::*;
use protocol::HeldTask;

fn on(node: u32) -> Vec<NodeShare> {
    vec![NodeShare { node, slots: SLOTS }]
}

/// `registration(1, n_nodes)` again, listing what it runs and holds.
fn again(n_nodes: usize, running: Vec<(u128, u32)>, held: Vec<u128>) -> FromManager {
    let mut registration = registration(1, n_nodes);
    registration.attempt = 1;
    registration.running_tasks = running
        .into_iter()
        .map(|(id, node)| HeldTask {
            task_id: task_id(id),
            placement: on(node),
        })
        .collect();
    registration.held_results = held.into_iter().map(task_id).collect();
    FromManager::Register(registration)
}

fn registered_dropping(ids: &[u128]) -> ToManager {
    match registered() {
        ToManager::Registered {
            interchange_version,
            heartbeat_period,
            max_task_output_bytes,
            ..
        } => ToManager::Registered {
            interchange_version,
            heartbeat_period,
            max_task_output_bytes,
            drop_tasks: ids.iter().map(|id| task_id(*id)).collect(),
        },
        other => other,
    }
}

/// Tasks 1 to 4, one node each, run on m1 (4 nodes): task `k` on node
/// `k - 1`. Task 3 has a retry.
fn four_tasks_on_m1() -> Sim {
    let mut sim = Sim::new().with_client("c").with_manager(1, 4);
    let request = |id| match id {
        3 => nodes(1).with("retries", 1),
        _ => nodes(1),
    };
    let ids = [1, 2, 3, 4];
    sim.submit("c", 1, submissions(ids.map(|id| (id, request(id)))));
    sim.check(vec![
        submitted("c", 1, 4),
        run_tasks(
            "m1",
            each_on_one_node(ids.map(|id| (id, request(id), id as u32 - 1))),
        ),
    ]);
    sim
}

/// The four cases: task 1 runs there (kept), task 2's result is held
/// (expected), task 5 is unknown (dropped), tasks 3 and 4 are not listed
/// (lost: 3 queued again, 4 failed).
fn check_the_four_cases(sim: &mut Sim, new_connection: &str) {
    sim.manager(new_connection, again(4, vec![(1, 0), (5, 3)], vec![2]));
    let lost = format!(
        "task lost: manager {} on host host-1 (block block-1) registered again without it (1 attempt made)",
        manager_id(1)
    );
    sim.check(vec![
        to_manager(new_connection, registered_dropping(&[5, 3, 4])),
        results(
            "c",
            vec![forwarded(failed(4, ErrorKind::ManagerLost, &lost), 1)],
        ),
    ]);
    assert_eq!(sim.task_status("c", 1).state, TaskState::Running);
    assert_eq!(sim.task_status("c", 2).state, TaskState::Running);
    assert_eq!(sim.task_status("c", 3).state, TaskState::Queued);
    // No new task before its first heartbeat, although it has free nodes.
    let report = sim.status("c");
    assert_eq!(report.managers.len(), 1);
    assert_eq!(report.managers[0].n_running_tasks, 2);
    assert_eq!(report.n_queued, 1);
    // The held result comes as any result does.
    sim.manager_results(new_connection, vec![completed(2)]);
    sim.check(vec![results("c", vec![forwarded(completed(2), 1)])]);
    // The heartbeat (the dropped task 5 has ended): task 3 runs again,
    // on the lowest free node.
    sim.manager(new_connection, FromManager::Heartbeat);
    sim.check(vec![run_tasks(
        new_connection,
        vec![dispatch_on(3, nodes(1).with("retries", 1), &[1])],
    )]);
    sim.manager_results(new_connection, vec![completed(1), completed(3)]);
    sim.check(vec![results(
        "c",
        vec![forwarded(completed(1), 1), forwarded(completed(3), 1)],
    )]);
    let report = sim.status("c");
    assert_eq!(
        (report.n_completed, report.n_failed, report.n_running),
        (3, 1, 0)
    );
    assert_eq!(sim.core.validate(), Ok(()));
}

#[test]
fn another_connection_claiming_a_live_manager_is_refused_and_the_manager_reattaches() {
    let mut sim = four_tasks_on_m1();
    // Another connection (another routing id) claims m1's id while m1's
    // entry lives: refused, and m1's tasks stay.
    sim.manager("m1-again", again(1, vec![(1, 0)], Vec::new()));
    expect_refused(&mut sim, "m1-again", "already registered");
    // m1 itself comes back (after its connection was unreachable).
    sim.unreachable("m1", ToManager::Heartbeat);
    check_the_four_cases(&mut sim, "m1");
}

#[test]
fn a_manager_back_on_the_same_connection_is_reconciled_the_same_way() {
    let mut sim = four_tasks_on_m1();
    // Its connection was unreachable meanwhile: still no new task.
    sim.unreachable("m1", ToManager::Heartbeat);
    check_the_four_cases(&mut sim, "m1");
}

#[test]
fn tasks_recorded_as_running_on_a_manager_the_table_does_not_hold_are_reconciled() {
    // The state a restart that restored its tasks leaves: tasks running on
    // m1, and no entry for m1.
    let mut sim = four_tasks_on_m1();
    assert!(sim.core.managers.remove(manager_id(1)).is_some());
    check_the_four_cases(&mut sim, "m1-after-restart");
}

#[test]
fn an_interchange_that_knows_nothing_drops_everything_and_takes_the_manager() {
    // A fresh interchange (restarted without its tasks).
    let mut sim = Sim::new().with_client("c");
    sim.manager("m1", again(2, vec![(1, 0)], vec![2]));
    sim.check(vec![to_manager("m1", registered_dropping(&[1, 2]))]);
    sim.submit("c", 1, vec![submission(3, nodes(2))]);
    sim.check(vec![submitted("c", 1, 1)]);
    // Task 1 ended (killed): the heartbeat makes both nodes free.
    sim.manager("m1", FromManager::Heartbeat);
    sim.check(vec![run_tasks("m1", vec![dispatch(3, nodes(2))])]);
    let report = sim.status("c");
    assert_eq!(report.managers[0].n_running_tasks, 1);
}

#[test]
fn a_placement_that_does_not_fit_is_dropped_and_the_task_lost() {
    let mut sim = four_tasks_on_m1();
    // Tasks 1 and 2 both claim node 0: the second does not fit.
    sim.manager(
        "m1",
        again(4, vec![(1, 0), (2, 0), (3, 2), (4, 3)], Vec::new()),
    );
    let outputs = sim.drain();
    assert_eq!(
        outputs.first(),
        Some(&to_manager("m1", registered_dropping(&[2])))
    );
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(sim.task_status("c", 2).state, TaskState::Failed);
    assert_eq!(sim.core.validate(), Ok(()));
}

#[test]
fn a_cancel_asked_while_the_manager_was_away_is_sent_again() {
    let mut sim = four_tasks_on_m1();
    sim.cancel("c", 7, 1);
    let outputs = sim.drain();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    sim.unreachable("m1", ToManager::Heartbeat);
    sim.manager(
        "m1",
        again(4, vec![(1, 0), (2, 1), (3, 2), (4, 3)], Vec::new()),
    );
    sim.check(vec![
        to_manager("m1", registered_dropping(&[])),
        to_manager(
            "m1",
            ToManager::CancelTask {
                task_id: task_id(1),
            },
        ),
    ]);
}
