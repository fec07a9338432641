//! Who may do what: a task belongs to the client identity that submitted
//! it; other identities may not watch, see or cancel it; admin commands
//! need an admin; a manager's messages count only from the identity that
//! registered it.

use super::*;
use protocol::DENIED_PREFIX;

/// The one output expected: an `error` to `name` for `request_id` that
/// starts with `denied:` and contains `needle`.
fn expect_denied(sim: &mut Sim, name: &str, request_id: u64, needle: &str) {
    let outputs = sim.drain();
    match outputs.as_slice() {
        [Output::ToClient(
            to,
            ToClient::Error {
                request_id: Some(id),
                message,
            },
        )] if *to == peer(name) && *id == request_id => {
            assert!(message.starts_with(DENIED_PREFIX), "{message}");
            assert!(message.contains(needle), "{message}");
        }
        other => panic!("expected one denied error, got {other:?}"),
    }
}

fn sim_with_admins(admins: &[&str]) -> Sim {
    Sim::with_config(CoreConfig {
        admins: admins.iter().map(|name| (*name).to_owned()).collect(),
        ..test_config()
    })
}

#[test]
fn only_the_owner_or_an_admin_may_watch_see_or_cancel_a_task() {
    let mut sim = Sim::with_peers(&["a@alice", "b@bob", "d@default"], &[(1, 1)]);
    sim.submit("a@alice", 1, submissions([(1, nodes(1)), (2, nodes(1))]));
    sim.check(vec![
        submitted("a@alice", 1, 2),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
    ]);

    // Bob may not watch, see or cancel them; nothing of his requests is done.
    sim.watch("b@bob", 2, &[3, 1]);
    expect_denied(&mut sim, "b@bob", 2, "may watch it");
    sim.command(
        "b@bob",
        3,
        Command::TaskStatus {
            task_ids: vec![task_id(2)],
        },
    );
    expect_denied(
        &mut sim,
        "b@bob",
        3,
        "this connection is client identity bob",
    );
    for (request_id, id) in [(4, 1), (5, 2)] {
        sim.cancel("b@bob", request_id, id);
        expect_denied(&mut sim, "b@bob", request_id, "may cancel it");
    }
    // Ids nobody submitted are no one's: bob may ask after them.
    assert_eq!(sim.task_status("b@bob", 9).state, TaskState::Unknown);

    // The owner and the default identity (an admin) may.
    assert_eq!(sim.task_status("a@alice", 2).state, TaskState::Queued);
    assert_eq!(sim.task_status("d@default", 1).state, TaskState::Running);
    sim.watch("d@default", 6, &[1]);
    sim.check(vec![watching("d@default", 6, 1)]);
    sim.cancel("a@alice", 7, 2);
    sim.check(vec![
        reply(
            "a@alice",
            7,
            done(&format!("task {} cancelled", task_id(2))),
        ),
        results(
            "a@alice",
            vec![TaskResult::failed_before_start(
                task_id(2),
                ErrorKind::Cancelled,
                "cancelled by a client while queued".to_owned(),
            )],
        ),
    ]);
    // The result goes to the owner and the admin who watches, never to bob.
    sim.manager_results("m1", vec![completed(1)]);
    sim.check(vec![
        results("a@alice", vec![forwarded(completed(1), 1)]),
        results("d@default", vec![forwarded(completed(1), 1)]),
    ]);
    sim.command(
        "b@bob",
        8,
        Command::TaskStatus {
            task_ids: vec![task_id(1)],
        },
    );
    expect_denied(&mut sim, "b@bob", 8, "see the status of");
    assert_eq!(sim.core.metrics().n_denied_requests, 5);
}

#[test]
fn status_shows_other_identities_tasks_only_as_counts() {
    let mut sim = Sim::with_peers(&["a@alice", "b@bob"], &[(1, 2)]);
    // Task 1 runs on one node; task 2 needs both and reserves m1.
    sim.submit("a@alice", 1, submissions([(1, nodes(1)), (2, nodes(2))]));
    sim.check(vec![
        submitted("a@alice", 1, 2),
        run_tasks("m1", vec![dispatch(1, nodes(1))]),
    ]);
    sim.submit("b@bob", 2, vec![submission(3, nodes(1))]);
    sim.check(vec![submitted("b@bob", 2, 1)]);
    let for_alice = sim.status("a@alice");
    let for_bob = sim.status("b@bob");
    assert_eq!(for_alice.managers[0].reserved_for, Some(task_id(2)));
    assert_eq!(for_bob.managers[0].reserved_for, None);
    assert_eq!((for_bob.n_queued, for_bob.n_running), (2, 1));
    let text = format!("{:?}", for_bob.waiting);
    assert!(!text.contains(&task_id(2).to_string()), "{text}");
    assert!(text.contains("another user's task"), "{text}");
    let text = format!("{:?}", for_alice.waiting);
    assert!(text.contains(&task_id(2).to_string()), "{text}");
}

#[test]
fn only_admins_may_hold_release_drain_or_shut_down() {
    let mut sim = sim_with_admins(&["carol"])
        .with_clients(&["b@bob", "c@carol"])
        .with_manager(1, 1);
    let commands = [
        (
            "hold",
            Command::Hold {
                manager_id: manager_id(1),
            },
        ),
        (
            "release",
            Command::Release {
                manager_id: manager_id(1),
            },
        ),
        (
            "drain",
            Command::Drain {
                manager_id: manager_id(1),
            },
        ),
        ("shutdown", Command::Shutdown),
    ];
    for (request_id, (name, command)) in (1..).zip(commands.iter()) {
        sim.command("b@bob", request_id, command.clone());
        expect_denied(
            &mut sim,
            "b@bob",
            request_id,
            &format!("{name} needs an admin"),
        );
    }
    assert!(!sim.status("b@bob").managers[0].held);
    // An admin the config lists may.
    sim.command(
        "c@carol",
        10,
        Command::Hold {
            manager_id: manager_id(1),
        },
    );
    sim.check(vec![reply(
        "c@carol",
        10,
        done(&format!("manager {} held", manager_id(1))),
    )]);
}

#[test]
fn a_manager_counts_only_from_the_identity_that_registered_it() {
    let mut sim = Sim::new().with_client("c@default");
    sim.manager("m1@manager", FromManager::Register(registration(1, 1)));
    sim.check(vec![to_manager("m1@manager", registered())]);
    sim.submit_and_start("c@default", 1, 1, nodes(1), "m1@manager");
    // The same routing id under another key is another peer: its forged
    // result is refused and never reaches the client; the manager stays.
    sim.manager_results("m1@intruder", vec![completed(1)]);
    sim.check(vec![unknown_manager_refused("m1@intruder")]);
    sim.manager("m1@intruder", FromManager::Register(registration(1, 1)));
    expect_refused(&mut sim, "m1@intruder", "already registered");
    assert_eq!(sim.task_status("c@default", 1).state, TaskState::Running);
    sim.manager_results("m1@manager", vec![completed(1)]);
    sim.check(vec![results("c@default", vec![forwarded(completed(1), 1)])]);
}

/// The ids `tasks` lists for `name`.
fn listed(sim: &mut Sim, name: &str) -> Vec<TaskId> {
    sim.command(name, 997, Command::Tasks { state: None });
    match sim.drain().as_slice() {
        [Output::ToClient(
            to,
            ToClient::Reply {
                request_id: 997,
                reply: Reply::Tasks { tasks },
            },
        )] if *to == peer(name) => tasks.iter().map(|task| task.task_id).collect(),
        other => panic!("expected one tasks reply, got {other:?}"),
    }
}

#[test]
fn a_listing_shows_an_identity_its_own_tasks_and_an_admin_every_task() {
    let mut sim = Sim::new().with_clients(&["a@alice", "b@bob", "d@default"]);
    sim.submit("a@alice", 1, vec![submission(1, nodes(1))]);
    sim.submit("b@bob", 1, vec![submission(2, nodes(1))]);
    sim.drain();
    assert_eq!(listed(&mut sim, "a@alice"), vec![task_id(1)]);
    assert_eq!(listed(&mut sim, "b@bob"), vec![task_id(2)]);
    assert_eq!(listed(&mut sim, "d@default"), vec![task_id(1), task_id(2)]);
}

#[test]
fn status_counts_every_identitys_unfinished_tasks_by_name() {
    let mut sim = Sim::with_peers(&["a@alice", "b@bob"], &[(1, 1)]);
    sim.submit("a@alice", 1, submissions([(1, nodes(1)), (2, nodes(1))]));
    sim.submit("b@bob", 1, vec![submission(3, nodes(1))]);
    sim.drain();
    let counts = |report: &StatusReport| -> Vec<(String, u64, u64)> {
        report
            .users
            .iter()
            .map(|user| (user.identity.clone(), user.n_queued, user.n_running))
            .collect()
    };
    // Alice's first task runs on the one node; bob sees her counts too.
    assert_eq!(
        counts(&sim.status("b@bob")),
        vec![("alice".to_owned(), 1, 1), ("bob".to_owned(), 1, 0)]
    );
    // A finished task is no longer counted.
    sim.manager_results("m1", vec![completed(1)]);
    sim.drain();
    assert_eq!(
        counts(&sim.status("a@alice")),
        vec![("alice".to_owned(), 0, 1), ("bob".to_owned(), 1, 0)]
    );
}
