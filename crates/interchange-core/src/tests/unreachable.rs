//! A dispatch the shell could not deliver (the manager's connection is
//! gone): the tasks go back to the queue at once, in their places, without
//! using a retry; the manager gets nothing new until it is heard from.

use super::*;

#[test]
fn an_undelivered_dispatch_is_queued_again_in_its_place_without_a_retry() {
    let mut sim = Sim::new().with_client("c").with_managers(&[(1, 2), (2, 2)]);
    sim.submit("c", 1, vec![submission(1, nodes(2))]);
    let outputs = sim.drain();
    // Whichever manager got task 1 becomes unreachable; the other is busy
    // with task 2.
    let (lost, other) = match &outputs[1] {
        Output::ToManager(peer, _) if *peer == super::peer("m1") => ("m1", "m2"),
        _ => ("m2", "m1"),
    };
    assert_eq!(
        outputs,
        vec![
            submitted("c", 1, 1),
            run_tasks(lost, vec![dispatch(1, nodes(2))])
        ]
    );
    sim.submit("c", 2, submissions([(2, nodes(2)), (3, nodes(2))]));
    sim.check(vec![
        submitted("c", 2, 2),
        run_tasks(other, vec![dispatch(2, nodes(2))]),
    ]);

    undelivered_dispatch(&mut sim, lost);
    // Back in the queue, and nowhere to go: the lost manager takes nothing.
    sim.check(vec![]);
    let report = sim.status("c");
    assert_eq!(report.n_queued, 2, "{report:?}");
    assert!(sim.task_status("c", 1).result.is_none());

    // Task 2 ends: task 1 (ahead of task 3) starts on the other manager.
    sim.manager_results(other, vec![completed(2)]);
    let other_id = if other == "m1" { 1 } else { 2 };
    sim.check(vec![
        run_tasks(other, vec![dispatch(1, nodes(2))]),
        results("c", vec![forwarded(completed(2), other_id)]),
    ]);

    // Heard from again, the manager takes tasks again.
    sim.manager(lost, FromManager::Heartbeat);
    sim.check(vec![run_tasks(lost, vec![dispatch(3, nodes(2))])]);
}

#[test]
fn an_undelivered_dispatch_does_not_count_as_an_attempt() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.submit_and_start("c", 1, 1, nodes(2), "m1");
    undelivered_dispatch(&mut sim, "m1");
    sim.check(vec![]);
    // A heartbeat send that fails changes nothing more.
    sim.unreachable("m1", ToManager::Heartbeat);
    sim.check(vec![]);
    sim.manager("m1", FromManager::Heartbeat);
    sim.check(vec![run_tasks("m1", vec![dispatch(1, nodes(2))])]);
    // Lost for good: the message counts one attempt, not two.
    sim.advance(150);
    let outputs = sim.drain();
    let lost = failed(
        1,
        ErrorKind::ManagerLost,
        &format!(
            "task lost: manager {} on host host-1 (block block-1) sent nothing for 120 s (1 attempt made)",
            manager_id(1)
        ),
    );
    assert!(
        outputs.contains(&results("c", vec![forwarded(lost, 1)])),
        "{outputs:?}"
    );
}

#[test]
fn a_task_cancelled_before_its_dispatch_failed_ends_cancelled() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.submit_and_start("c", 1, 1, nodes(2), "m1");
    sim.cancel("c", 2, 1);
    let _ = sim.drain();
    undelivered_dispatch(&mut sim, "m1");
    let cancelled = failed(
        1,
        ErrorKind::Cancelled,
        "cancelled by a client before it reached its manager",
    );
    sim.check(vec![results("c", vec![cancelled])]);
    assert_eq!(sim.status("c").n_queued, 0);
}

/// The dispatch of task 1 (two nodes) to `manager` does not reach it.
fn undelivered_dispatch(sim: &mut Sim, manager: &str) {
    sim.unreachable(
        manager,
        ToManager::RunTasks {
            tasks: vec![dispatch(1, nodes(2))],
        },
    );
}
