//! Re-attach on the Pair: a manager that loses the interchange (its link
//! paused, its connection dropped, the interchange restarted with nothing)
//! keeps its tasks, holds their results and registers again; the
//! interchange core keeps, expects, drops and loses, and no task runs to
//! its end twice.

mod common;

use common::results;
use pair::{sleep_command, sleep_launcher, ManagerLife, ManagerSpec, Pair, PairConfig, Seen};
use pool_manager_core::ExitStatus;
use protocol::{
    ManagerId, NodeShare, ResourceRequest, TaskDispatch, TaskId, TaskResources, TaskState,
    TaskSubmission, ToManager,
};
use seam::Time;
use std::collections::BTreeMap;
use std::time::Duration;

const MANAGER_THRESHOLD: Duration = Duration::from_secs(60);
const INTERCHANGE_THRESHOLD: Duration = Duration::from_secs(300);
const WINDOW: Duration = Duration::from_secs(600);

fn seconds(seconds: f64) -> Time {
    Time::from_millis((seconds * 1000.0) as u64)
}

fn id(number: u128) -> TaskId {
    TaskId::from_u128(number)
}

fn task(number: u128, seconds: u64, retries: Option<i64>) -> TaskSubmission {
    let mut resources = ResourceRequest::new();
    resources.insert("num_nodes", 1);
    if let Some(retries) = retries {
        resources.insert("retries", retries);
    }
    TaskSubmission {
        resources,
        ..TaskSubmission::new(id(number), sleep_command(Duration::from_secs(seconds)))
    }
}

/// A Pair whose managers give up on the interchange after 60 s of silence
/// (the interchange on them only after 300 s), and one manager of
/// `n_nodes` nodes (1 slot each) with a re-attach window of 600 s.
fn pair_with_manager(n_nodes: u32) -> (Pair, usize, usize) {
    let mut config = PairConfig {
        record: true,
        reattach_timeout: WINDOW,
        ..PairConfig::default()
    };
    config.interchange.heartbeat_threshold = INTERCHANGE_THRESHOLD;
    let mut pair = Pair::new(config);
    pair.set_launcher(sleep_launcher());
    let client = pair.add_client();
    let spec = ManagerSpec {
        manager_id: ManagerId::from_u128(1),
        block_id: "b1".to_owned(),
        n_nodes,
        slots_per_node: 1,
    };
    let mut settings = spec.settings(&pair.config().interchange);
    settings.heartbeat_threshold = MANAGER_THRESHOLD;
    settings.reattach_timeout = WINDOW;
    let manager = pair.add_manager_with(settings);
    (pair, client, manager)
}

/// How often each task was launched, and ran to its end (exit 0).
fn runs(pair: &mut Pair) -> (BTreeMap<TaskId, u32>, BTreeMap<TaskId, u32>) {
    let mut launched = BTreeMap::new();
    let mut completed = BTreeMap::new();
    while let Some(seen) = pair.poll_seen() {
        match seen {
            Seen::Launched { task_id, .. } => *launched.entry(task_id).or_default() += 1,
            Seen::Exited {
                task_id,
                status: ExitStatus::Code(0),
                ..
            } => *completed.entry(task_id).or_default() += 1,
            _ => {}
        }
    }
    (launched, completed)
}

/// A task the interchange never sent, on node `node` (1 slot).
fn forged(number: u128, node: u32, seconds: u64) -> ToManager {
    ToManager::RunTasks {
        tasks: vec![TaskDispatch::new(
            id(number),
            sleep_command(Duration::from_secs(seconds)),
            TaskResources::serial(),
            vec![NodeShare { node, slots: 1 }],
        )],
    }
}

#[test]
fn a_paused_link_then_a_reconnection_reconcile_all_four_cases_and_nothing_runs_twice() {
    let (mut pair, client, manager) = pair_with_manager(5);
    // Node 4 runs a task the interchange never sent (it is unknown there).
    pair.inject_to_manager(manager, &forged(9, 4, 1000));
    // A (long) on node 0, B (short) on 1, C (ends while detached) on 2.
    pair.submit(
        client,
        vec![task(1, 100, None), task(2, 10, None), task(3, 65, None)],
    );
    pair.run_until(seconds(1.0));
    pair.pause_link(manager);
    // T (with a retry) is dispatched to node 3 while the link is paused:
    // its dispatch waits on the way.
    pair.submit(client, vec![task(4, 5, Some(1))]);
    // At 61 s the manager gives up hearing the interchange: it keeps its
    // tasks and registers again (on the paused link).
    pair.run_until(seconds(61.0));
    assert!(pair.manager(manager).is_detached());
    assert_eq!(pair.manager(manager).n_running(), 3);
    // C ends at 65 s: its result is held, after B's (sent at 10 s, after
    // the interchange was last heard: it may never have got there).
    pair.run_until(seconds(66.0));
    assert_eq!(pair.manager(manager).n_held_results(), 2);
    // The connection drops and comes back: a second registration, listing
    // C as held.
    pair.reconnect_manager(manager);
    pair.run_until(seconds(80.0));
    assert_eq!(pair.manager_life(manager), Some(&ManagerLife::Alive));
    // The link carries again: T's dispatch, B's result and both
    // registrations arrive, in the order sent.
    pair.resume_link(manager);
    pair.run_until(seconds(200.0));
    assert!(pair.manager(manager).is_registered());
    let mut found = results(&mut pair, client);
    found.sort_by_key(|result| result.task_id);
    let states: Vec<(TaskId, TaskState)> = found
        .iter()
        .map(|result| (result.task_id, result.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (id(1), TaskState::Completed),
            (id(2), TaskState::Completed),
            (id(3), TaskState::Completed),
            (id(4), TaskState::Completed),
        ],
        "{found:?}"
    );
    // T started on the manager after the register that missed it was
    // sent; it was dropped there (killed at once) and ran again, to its
    // end, once; the unknown task 9 was killed; nothing completed twice.
    let (launched, completed) = runs(&mut pair);
    assert_eq!(launched.get(&id(4)), Some(&2), "{launched:?}");
    assert_eq!(completed.get(&id(9)), None);
    assert!(completed.values().all(|n| *n == 1), "{completed:?}");
    assert_eq!(pair.n_running_tasks(), 0);
    let status = pair.status(client).expect("status");
    assert_eq!(status.managers.len(), 1);
    assert_eq!(status.managers[0].n_running_tasks, 0);
    assert_eq!(status.managers[0].n_free_nodes, 5);
    pair.check_quiet().expect("quiet");
}

#[test]
fn an_interchange_restarted_with_nothing_has_the_manager_kill_its_tasks_and_keep_it() {
    let (mut pair, client, manager) = pair_with_manager(2);
    pair.submit(client, vec![task(1, 100, None), task(2, 5, None)]);
    pair.run_until(seconds(1.0));
    pair.pause_link(manager);
    // Task 2 ends while nothing gets through; its result waits on the link.
    pair.run_until(seconds(6.0));
    results(&mut pair, client);
    // The interchange restarts with nothing: what was on the way is lost.
    pair.restart_interchange();
    pair.resume_link(manager);
    pair.run_until(seconds(20.0));
    // Task 1 was dropped (killed, not reported); the manager stays
    // registered, with both nodes free.
    assert!(pair.manager(manager).is_registered());
    assert_eq!(pair.n_running_tasks(), 0);
    let (_, completed) = runs(&mut pair);
    assert_eq!(completed.get(&id(1)), None);
    let client = pair.add_client();
    let status = pair.status(client).expect("status");
    assert_eq!(status.managers.len(), 1);
    assert_eq!(status.managers[0].n_free_nodes, 2);
    // And it takes new work.
    pair.submit(client, vec![task(3, 1, None)]);
    pair.run_until(seconds(30.0));
    let found = results(&mut pair, client);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].state, TaskState::Completed);
    let (_, completed) = runs(&mut pair);
    assert_eq!(completed.get(&id(3)), Some(&1));
    pair.check_quiet().expect("quiet");
}

/// What happens to a manager's link at some moment.
#[derive(Clone, Copy, Debug)]
enum LinkEvent {
    Pause,
    Resume,
    Reconnect,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Random tasks on two managers whose links pause (for less than the
    /// interchange's threshold, so it never gives up on them), resume and
    /// reconnect at random moments: every task gets exactly one result,
    /// completed, and none runs to its end twice.
    #[test]
    fn links_that_pause_and_reconnect_lose_nothing_and_run_nothing_twice(
        durations in proptest::collection::vec(1u64..150, 1..16),
        events in proptest::collection::vec((0u64..400, 0usize..2, 0u8..3), 0..10),
    ) {
        let (mut pair, client, first) = pair_with_manager(2);
        let spec = ManagerSpec {
            manager_id: ManagerId::from_u128(2),
            block_id: "b2".to_owned(),
            n_nodes: 3,
            slots_per_node: 1,
        };
        let mut settings = spec.settings(&pair.config().interchange);
        settings.heartbeat_threshold = MANAGER_THRESHOLD;
        settings.reattach_timeout = WINDOW;
        let second = pair.add_manager_with(settings);
        let managers = [first, second];
        let tasks: Vec<TaskSubmission> = durations
            .iter()
            .enumerate()
            .map(|(number, seconds)| task(number as u128 + 1, *seconds, Some(20)))
            .collect();
        pair.submit(client, tasks);
        let mut events: Vec<(u64, usize, LinkEvent)> = events
            .into_iter()
            .map(|(at, manager, kind)| {
                let kind = match kind {
                    0 => LinkEvent::Pause,
                    1 => LinkEvent::Resume,
                    _ => LinkEvent::Reconnect,
                };
                (at, managers[manager], kind)
            })
            .collect();
        events.sort_by_key(|(at, _, _)| *at);
        let mut paused_since: BTreeMap<usize, u64> = BTreeMap::new();
        // A pause never lasts as long as the interchange's threshold: the
        // links due are resumed in time order.
        let limit = INTERCHANGE_THRESHOLD.as_secs() - 50;
        for (at, manager, kind) in events {
            while let Some((until, paused)) = paused_since
                .iter()
                .map(|(paused, since)| (since + limit, *paused))
                .filter(|(until, _)| *until <= at)
                .min()
            {
                pair.run_until(seconds(until as f64));
                pair.resume_link(paused);
                paused_since.remove(&paused);
            }
            pair.run_until(seconds(at as f64));
            match kind {
                LinkEvent::Pause => {
                    paused_since.entry(manager).or_insert(at);
                    pair.pause_link(manager);
                }
                LinkEvent::Resume => {
                    paused_since.remove(&manager);
                    pair.resume_link(manager);
                }
                LinkEvent::Reconnect => pair.reconnect_manager(manager),
            }
        }
        let end = pair.now().as_millis() / 1000;
        for (paused, _) in paused_since {
            pair.resume_link(paused);
        }
        pair.run_until(seconds((end + 4000) as f64));
        let found = results(&mut pair, client);
        proptest::prop_assert_eq!(found.len(), durations.len(), "{:?}", found);
        for result in &found {
            proptest::prop_assert_eq!(result.state, TaskState::Completed, "{:?}", result);
        }
        let (_, completed) = runs(&mut pair);
        proptest::prop_assert!(completed.values().all(|n| *n == 1), "{:?}", completed);
        for manager in managers {
            proptest::prop_assert_eq!(pair.manager_life(manager), Some(&ManagerLife::Alive));
        }
        proptest::prop_assert_eq!(pair.check_quiet(), Ok(()));
    }
}
