//! Re-attach: a manager that loses the interchange keeps its tasks, holds
//! their results and registers again listing both; `registered` tells it
//! what to drop; past `reattach_timeout` it gives up.

use super::*;
use protocol::{HeldTask, NodeShare};

const WINDOW: Duration = Duration::from_secs(600);

/// A registered manager with re-attach on (`WINDOW`).
fn reattaching(n_nodes: usize) -> Harness {
    let mut settings = settings(n_nodes, None);
    settings.reattach_timeout = WINDOW;
    Harness::with_settings(settings)
}

fn whole(nodes: &[u32]) -> Vec<NodeShare> {
    nodes
        .iter()
        .map(|&node| NodeShare { node, slots: SLOTS })
        .collect()
}

fn registered_dropping(drop_tasks: Vec<TaskId>) -> ToManager {
    registered_message(30.0, protocol::DEFAULT_MAX_TASK_OUTPUT_BYTES, drop_tasks)
}

fn expect_register(harness: &mut Harness) -> Registration {
    match harness.expect_send() {
        FromManager::Register(registration) => registration,
        other => panic!("expected register, got {other:?}"),
    }
}

/// Two tasks run (1 on nodes 0-1, 2 on node 2) when the interchange goes
/// silent; the manager re-registers at the threshold.
fn silent_with_two_tasks() -> Harness {
    let mut harness = reattaching(4);
    harness.launch([dispatch(1, 2), dispatch_on(2, &[2])]);
    harness.at(30.0);
    harness.tick();
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.at(120.0);
    harness.tick();
    // No kill: the tasks keep running; a registration again lists them.
    let registration = expect_register(&mut harness);
    assert_eq!(registration.attempt, 1);
    assert_eq!(registration.manager_id, ManagerId::from_u128(0x11));
    assert_eq!(
        registration.running_tasks,
        vec![
            HeldTask {
                task_id: task(1),
                placement: whole(&[0, 1]),
            },
            HeldTask {
                task_id: task(2),
                placement: whole(&[2]),
            },
        ]
    );
    assert!(registration.held_results.is_empty());
    assert!(harness.manager.is_detached());
    harness.check_idle();
    harness
}

#[test]
fn silence_keeps_the_tasks_holds_results_and_registers_again_listing_both() {
    let mut harness = silent_with_two_tasks();
    // Task 1 ends while detached: held, not sent; no heartbeat goes out.
    harness.at(130.0);
    harness.exited(1, ExitStatus::Code(0));
    harness.tick();
    harness.check_idle();
    assert_eq!(harness.manager.n_held_results(), 1);
    // The connection comes back (a new one): registered again, listing the
    // held result.
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Disconnected);
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Connected);
    let registration = expect_register(&mut harness);
    assert_eq!(registration.attempt, 2);
    assert_eq!(registration.held_results, vec![task(1)]);
    assert_eq!(registration.running_tasks.len(), 1);
    harness.check_idle();
    // The interchange keeps both: the held result goes, then the
    // heartbeat that confirms the registration.
    harness.at(131.0);
    harness.receive(registered_dropping(Vec::new()));
    assert!(harness.manager.is_registered());
    let result = harness.expect_result();
    assert_eq!(
        (result.task_id, result.state),
        (task(1), TaskState::Completed)
    );
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.check_idle();
    // Task 2 ends: reported as usual.
    harness.exited(2, ExitStatus::Code(0));
    assert_eq!(harness.expect_result().task_id, task(2));
    harness.check_idle();
    assert_eq!(harness.manager.n_free_nodes(), 4);
}

#[test]
fn dropped_tasks_are_killed_unreported_and_the_heartbeat_waits_for_them() {
    let mut harness = silent_with_two_tasks();
    harness.exited(1, ExitStatus::Code(0));
    harness.check_idle();
    // An interchange that knows neither task (restarted without them).
    harness.at(125.0);
    harness.receive(registered_dropping(vec![task(1), task(2)]));
    harness.expect_kill(task(2), KillReason::Dropped);
    harness.check_idle();
    assert_eq!(harness.manager.n_held_results(), 0);
    // The periodic heartbeat waits too: it would confirm too early.
    harness.at(160.0);
    harness.receive(ToManager::Heartbeat);
    harness.tick();
    harness.check_idle();
    harness.exited(2, ExitStatus::Signal(15));
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.check_idle();
    assert!(harness.manager.is_registered());
    assert_eq!(harness.manager.n_free_nodes(), 4);
    // New tasks run on the freed nodes.
    harness.launch([dispatch(3, 4)]);
    harness.check_idle();
}

#[test]
fn past_the_reattach_window_the_tasks_are_killed_and_the_manager_exits_4() {
    let mut harness = silent_with_two_tasks();
    harness.exited(2, ExitStatus::Code(0));
    harness.check_idle();
    assert_eq!(
        harness.manager.poll_timeout(),
        Some(harness.start.plus(Duration::from_secs(120) + WINDOW))
    );
    harness.at(120.0 + WINDOW.as_secs_f64() - 0.1);
    harness.tick();
    harness.check_idle();
    harness.at(120.0 + WINDOW.as_secs_f64());
    harness.tick();
    harness.killed_for_a_lost_interchange(1);
    harness.expect_exit_saying(
        ExitReason::ReattachTimedOut { window: WINDOW },
        &["--reattach-timeout", "1 held result"],
    );
    harness.check_idle();
}

#[test]
fn a_dropped_connection_or_not_registered_leads_to_a_registration_again() {
    let mut harness = reattaching(2);
    harness.launch([dispatch(1, 1)]);
    // The connection drops: nothing is sent until the next connection.
    harness.at(5.0);
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Disconnected);
    assert!(harness.manager.is_detached());
    harness.exited(1, ExitStatus::Code(3));
    harness.check_idle();
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Connected);
    let registration = expect_register(&mut harness);
    assert_eq!(
        (registration.attempt, registration.held_results.len()),
        (1, 1)
    );
    // The answer to a heartbeat sent before: the registration is on its way.
    harness.receive(ToManager::NotRegistered {
        reason: "not registered".into(),
    });
    harness.check_idle();
    harness.receive(registered_dropping(Vec::new()));
    let result = harness.expect_result();
    assert_eq!((result.task_id, result.state), (task(1), TaskState::Failed));
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.check_idle();
    // Registered, then told it is not: it registers again at once.
    harness.at(10.0);
    harness.receive(ToManager::NotRegistered {
        reason: "not registered".into(),
    });
    let registration = expect_register(&mut harness);
    assert_eq!(registration.attempt, 2);
    assert!(registration.running_tasks.is_empty() && registration.held_results.is_empty());
    harness.check_idle();
    // `refused` still ends it (exit 3).
    harness.receive(ToManager::Refused {
        reason: "the interchange is shutting down".into(),
        protocol_version: protocol::PROTOCOL_VERSION,
    });
    harness.expect_exit(ExitReason::Refused {
        reason: "the interchange is shutting down".into(),
        protocol_version: protocol::PROTOCOL_VERSION,
    });
    harness.check_idle();
}

#[test]
fn a_failed_handshake_while_registering_again_is_retried_within_the_window() {
    let mut harness = reattaching(1);
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Disconnected);
    assert!(harness.manager.is_detached());
    // The restarted interchange's socket, reached while it starts.
    let failed = LinkStatus::HandshakeFailed("security handshake failed".into());
    harness.manager.handle_link(harness.now, failed);
    assert!(harness.manager.is_detached());
    harness.check_idle();
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Connected);
    assert_eq!(expect_register(&mut harness).attempt, 1);
    harness.check_idle();
}

#[test]
fn a_zero_window_keeps_the_old_behaviour_on_a_dropped_connection() {
    let mut harness = Harness::registered(1);
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Disconnected);
    assert!(harness.manager.is_registered());
    harness
        .manager
        .handle_link(harness.now, LinkStatus::Connected);
    harness.check_idle();
}

#[test]
fn results_sent_since_the_interchange_was_last_heard_are_listed_again() {
    let mut harness = reattaching(2);
    harness.launch([dispatch(1, 1), dispatch_on(2, &[1])]);
    // Task 1's result goes out, and the interchange is heard from after:
    // it reached the interchange.
    harness.at(10.0);
    harness.exited(1, ExitStatus::Code(0));
    assert_eq!(harness.expect_result().task_id, task(1));
    harness.at(11.0);
    harness.receive(ToManager::Heartbeat);
    // Task 2's result goes out; then nothing more is heard.
    harness.at(20.0);
    harness.exited(2, ExitStatus::Code(0));
    assert_eq!(harness.expect_result().task_id, task(2));
    harness.check_idle();
    harness.at(131.0);
    harness.tick();
    // The interchange may never have read it: it is listed as held.
    let registration = expect_register(&mut harness);
    assert_eq!(registration.held_results, vec![task(2)]);
    assert!(registration.running_tasks.is_empty());
    harness.check_idle();
    // The interchange had it (the task is not running there any more):
    // dropped, not sent twice.
    harness.receive(registered_dropping(vec![task(2)]));
    assert_eq!(harness.expect_send(), FromManager::Heartbeat);
    harness.check_idle();
}
