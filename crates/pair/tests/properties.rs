//! Property tests of the two cores together, on the Pair: random workloads
//! (exclusive and packed tasks, walltimes, priorities, retries; managers of
//! random sizes that join, are killed, leave cleanly or are held; messages
//! with or without delay), run on the real interchange core and real
//! pool-manager cores. After every step the Pair checks every core's
//! `validate()` and that no manager refuses a placement; at the end every
//! accepted task has exactly one result, and nothing waits that an idle
//! manager fits.

use pair::{sleep_command, sleep_launcher, ManagerLife, ManagerSpec, Pair, PairConfig};
use proptest::prelude::*;
use protocol::{
    Command, ManagerId, Reply, ResourceRequest, TaskId, TaskState, TaskSubmission, ToClient,
};
use seam::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// One task of a random workload.
#[derive(Clone, Debug)]
struct Shape {
    num_nodes: u32,
    exclusive: bool,
    ranks_per_node: u32,
    priority: Option<i64>,
    walltime: Option<u32>,
    retries: Option<u32>,
    seconds: u64,
}

fn shapes() -> impl Strategy<Value = Vec<Shape>> {
    proptest::collection::vec(
        (
            1u32..4,
            any::<bool>(),
            1u32..5,
            proptest::option::of(0i64..3),
            proptest::option::of(1u32..200),
            proptest::option::of(0u32..2),
            0u64..100,
        )
            .prop_map(
                |(num_nodes, exclusive, ranks_per_node, priority, walltime, retries, seconds)| {
                    Shape {
                        num_nodes,
                        exclusive,
                        ranks_per_node,
                        priority,
                        walltime,
                        retries,
                        seconds,
                    }
                },
            ),
        1..40,
    )
}

fn submission(number: usize, shape: &Shape) -> TaskSubmission {
    let mut resources = ResourceRequest::new();
    resources.insert("num_nodes", shape.num_nodes);
    resources.insert("ranks_per_node", shape.ranks_per_node);
    if !shape.exclusive {
        resources.insert("exclusive", false);
    }
    if let Some(priority) = shape.priority {
        resources.insert("priority", priority);
    }
    if let Some(walltime) = shape.walltime {
        resources.insert("walltime", walltime);
    }
    if let Some(retries) = shape.retries {
        resources.insert("retries", retries);
    }
    TaskSubmission {
        resources,
        ..TaskSubmission::new(
            task_id(number),
            sleep_command(Duration::from_secs(shape.seconds)),
        )
    }
}

fn task_id(number: usize) -> TaskId {
    TaskId::from_u128(number as u128 + 1)
}

fn spec(number: usize, n_nodes: u32, slots_per_node: u32) -> ManagerSpec {
    ManagerSpec {
        manager_id: ManagerId::from_u128(0x100 + number as u128),
        block_id: format!("b{number}"),
        n_nodes,
        slots_per_node,
    }
}

fn later(pair: &Pair, seconds: u64) -> Time {
    pair.now().plus(Duration::from_secs(seconds))
}

/// Reads the client's inbox: counts results per task.
fn count_results(pair: &mut Pair, client: usize, counts: &mut BTreeMap<TaskId, usize>) {
    while let Some(message) = pair.poll_client(client) {
        if let ToClient::Results { results } = message {
            for result in results {
                *counts.entry(result.task_id).or_default() += 1;
            }
        }
    }
}

fn no_problems(pair: &Pair) -> Result<(), TestCaseError> {
    prop_assert!(
        pair.problems().is_empty(),
        "at {:?}: {:?}",
        pair.now(),
        pair.problems()
    );
    Ok(())
}

/// The managers that run, registered and not stopping.
fn alive(pair: &Pair) -> Vec<usize> {
    (0..pair.n_managers())
        .filter(|manager| {
            pair.manager_life(*manager) == Some(&ManagerLife::Alive)
                && pair.manager(*manager).is_registered()
        })
        .collect()
}

proptest! {
    /// Managers are only sent what they can start at once (a manager core
    /// refuses anything else, and the Pair records it), every task gets
    /// exactly one result once the work is done, and only tasks larger than
    /// every manager still wait.
    #[test]
    fn managers_never_get_more_than_their_free_nodes(
        manager_sizes in proptest::collection::vec(1u32..6, 1..4),
        tasks in proptest::collection::vec((1u32..7, proptest::option::of(0i64..3), 0u64..50), 1..40),
    ) {
        let mut pair = Pair::new(PairConfig::default());
        pair.set_launcher(sleep_launcher());
        let client = pair.add_client();
        for (number, size) in manager_sizes.iter().enumerate() {
            pair.add_manager(&spec(number, *size, 1));
        }
        let submissions: Vec<TaskSubmission> = tasks
            .iter()
            .enumerate()
            .map(|(number, (num_nodes, priority, seconds))| {
                submission(number, &Shape {
                    num_nodes: *num_nodes,
                    exclusive: true,
                    ranks_per_node: 1,
                    priority: *priority,
                    walltime: None,
                    retries: None,
                    seconds: *seconds,
                })
            })
            .collect();
        pair.submit(client, submissions);
        while pair.has_pending_events() {
            pair.step();
            no_problems(&pair)?;
            prop_assert!(pair.idle_manager_fitting().is_none(), "{:?}", pair.idle_manager_fitting());
        }
        let mut counts = BTreeMap::new();
        count_results(&mut pair, client, &mut counts);
        let largest = manager_sizes.iter().copied().max().unwrap_or(0);
        let n_too_large = tasks.iter().filter(|(num_nodes, ..)| *num_nodes > largest).count();
        let status = pair.status(client).ok_or_else(|| TestCaseError::fail("no status"))?;
        prop_assert_eq!(status.n_queued as usize, n_too_large);
        prop_assert_eq!(counts.len() + n_too_large, tasks.len());
        prop_assert!(counts.values().all(|count| *count == 1), "{:?}", counts);
        prop_assert!(pair.check_quiet().is_ok(), "{:?}", pair.check_quiet());
    }

    /// Random workloads under both placement rules, with managers joining,
    /// killed, leaving cleanly and held at random moments: no core ever
    /// fails its check, no placement is refused, nothing waits that an idle
    /// manager fits, and every task gets exactly one result.
    #[test]
    fn random_workloads_report_every_task_once_on_real_managers(
        newest_block in any::<bool>(),
        delay_millis in prop_oneof![Just(0u64), 1u64..500],
        initial in proptest::collection::vec((1u32..5, 1u32..5), 1..4),
        tasks in shapes(),
        actions in proptest::collection::vec(
            (0u8..8, any::<prop::sample::Index>(), 1u32..5, 1u32..5, 1u64..60), 0..60),
    ) {
        let mut config = PairConfig {
            delay: Duration::from_millis(delay_millis),
            ..PairConfig::default()
        };
        if newest_block {
            config.interchange.placement = interchange_core::Placement::NewestBlock;
        }
        let mut pair = Pair::new(config);
        pair.set_launcher(sleep_launcher());
        let client = pair.add_client();
        let mut n_specs = 0;
        for (size, slots) in &initial {
            pair.add_manager(&spec(n_specs, *size, *slots));
            n_specs += 1;
        }
        let submissions: Vec<TaskSubmission> = tasks
            .iter()
            .enumerate()
            .map(|(number, shape)| submission(number, shape))
            .collect();
        pair.submit(client, submissions);
        let mut held: Vec<ManagerId> = Vec::new();
        for (action, pick, size, slots, seconds) in actions {
            match action {
                // Mostly: time passes, tasks end.
                0..=3 => pair.run_until(later(&pair, seconds)),
                // A manager is killed (a node failure): silent from now on.
                4 => {
                    let live = alive(&pair);
                    if live.len() > 1 {
                        pair.kill_manager(live[pick.index(live.len())]);
                    }
                }
                // A new block starts.
                5 => {
                    pair.add_manager(&spec(n_specs, size, slots));
                    n_specs += 1;
                }
                // A manager leaves cleanly (SIGTERM): its tasks are
                // reported, it says goodbye.
                6 => {
                    let live = alive(&pair);
                    if live.len() > 1 {
                        pair.stop_manager(live[pick.index(live.len())]);
                    }
                }
                // A manager is held, or released.
                _ => {
                    let live = alive(&pair);
                    if live.is_empty() {
                        continue;
                    }
                    let Some(manager_id) = pair.manager_id(live[pick.index(live.len())]) else {
                        continue;
                    };
                    let command = if let Some(position) = held.iter().position(|id| *id == manager_id) {
                        held.remove(position);
                        Command::Release { manager_id }
                    } else {
                        held.push(manager_id);
                        Command::Hold { manager_id }
                    };
                    pair.command(client, command);
                }
            }
            no_problems(&pair)?;
        }
        // Release every manager, and let every task end (a lost manager is
        // found after the heartbeat threshold; retries then run).
        for manager_id in held {
            pair.command(client, Command::Release { manager_id });
        }
        pair.run_until(later(&pair, 2_000));
        no_problems(&pair)?;
        let mut counts = BTreeMap::new();
        count_results(&mut pair, client, &mut counts);
        // What still waits fits no live manager (all of them idle and
        // accepting now): nothing is stranded by a reservation.
        let status = pair.status(client).ok_or_else(|| TestCaseError::fail("no status"))?;
        prop_assert_eq!(status.n_running, 0);
        prop_assert!(pair.idle_manager_fitting().is_none(), "{:?}", pair.idle_manager_fitting());
        let waiting: Vec<TaskId> = (0..tasks.len())
            .map(task_id)
            .filter(|id| !counts.contains_key(id))
            .collect();
        if !waiting.is_empty() {
            let reply = pair.ask(client, Command::TaskStatus { task_ids: waiting.clone() });
            let Some(Reply::TaskStatus { tasks: infos }) = reply else {
                return Err(TestCaseError::fail("no task_status reply"));
            };
            for info in infos {
                prop_assert_eq!(info.state, TaskState::Queued, "{:?}", info);
                let number = (0..tasks.len())
                    .position(|number| task_id(number) == info.task_id)
                    .unwrap_or(0);
                let shape = &tasks[number];
                let fits_somewhere = status.managers.iter().any(|manager| {
                    manager.n_nodes >= shape.num_nodes
                        && (shape.exclusive || manager.slots_per_node >= shape.ranks_per_node)
                });
                prop_assert!(!fits_somewhere, "task {} waits though an idle manager fits it", number);
            }
        }
        // Shutdown cancels what waits; every manager leaves.
        pair.command(client, Command::Shutdown);
        pair.run_until(later(&pair, 60));
        count_results(&mut pair, client, &mut counts);
        prop_assert_eq!(counts.len(), tasks.len(), "every task has a result");
        prop_assert!(counts.values().all(|count| *count == 1), "no task has two results: {:?}", counts);
        prop_assert!(pair.interchange().has_exited());
        let still_there = (0..pair.n_managers())
            .any(|manager| pair.manager_life(manager) == Some(&ManagerLife::Alive));
        prop_assert!(!still_there, "every manager has left");
        prop_assert!(pair.check_quiet().is_ok(), "{:?}", pair.check_quiet());
    }
}
