//! The journal: records from every change, and a core rebuilt from them
//! (`Core::recover`) that resumes where the first one stopped.

use super::*;
use proptest::prelude::*;
use protocol::JournalRecord;

impl Sim {
    /// A core with the journal on, started from no records.
    fn journaled() -> Self {
        let mut sim = Self::new();
        sim.core = Core::recover(test_config(), sim.now, Vec::new()).0;
        sim
    }

    /// The journal records not yet drained, decoded from the frames the
    /// shell takes ([`Core::take_journal`]), in order.
    fn records(&mut self) -> Vec<JournalRecord> {
        let mut frames = Vec::new();
        self.core.take_journal(&mut frames);
        let mut rest = frames.as_slice();
        std::iter::from_fn(|| {
            let (payload, length) = protocol::journal::next_frame(rest)?;
            rest = &rest[length..];
            Some(protocol::decode(payload).expect("journal records decode"))
        })
        .collect()
    }

    /// The core of a restart: rebuilt from every record so far, at the
    /// same time (the outputs and records of the old one are dropped).
    fn restart(&mut self, records: Vec<JournalRecord>) -> Recovery {
        let (core, recovery) = Core::recover(test_config(), self.now, records);
        self.core = core;
        self.core
            .validate()
            .expect("a recovered core is consistent");
        recovery
    }

    /// A restart from the records not yet drained.
    fn restart_from_journal(&mut self) -> Recovery {
        let records = self.records();
        self.restart(records)
    }
}

/// Client "c" connects again after a restart and submits task `id` (one
/// node) as request `request_id`, which is accepted.
fn submit_after_restart(sim: Sim, request_id: u64, id: u128) -> Sim {
    let mut sim = sim.with_client("c");
    sim.submit("c", request_id, vec![submission(id, nodes(1))]);
    sim.check(vec![submitted("c", request_id, 1)]);
    sim
}

/// The records that describe a core's durable state (its snapshot).
fn snapshot(core: &mut Core) -> Vec<JournalRecord> {
    let mut records = Vec::new();
    core.journal_snapshot(&mut |record| records.push(record));
    records
}

#[test]
fn a_core_without_the_journal_queues_no_records() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.submit("c", 1, vec![submission(1, nodes(1))]);
    sim.drain();
    assert_eq!(sim.records(), Vec::new());
}

#[test]
fn queued_tasks_come_back_in_their_order_and_priority() {
    let request = |id| match id {
        2 => nodes_priority(1, 5),
        3 => nodes_priority(1, -1),
        _ => nodes(1),
    };
    let mut sim = Sim::journaled().with_client("c");
    sim.submit(
        "c",
        1,
        submissions([1, 2, 3, 4].map(|id| (id, request(id)))),
    );
    sim.check(vec![submitted("c", 1, 4)]);
    let records = sim.records();
    assert_eq!(records.len(), 4, "{records:?}");
    let recovery = sim.restart(records);
    assert_eq!(
        (recovery.n_queued, recovery.n_running, recovery.n_skipped),
        (4, 0, 0)
    );
    // A task submitted after the restart comes after them.
    let mut sim = submit_after_restart(sim, 2, 5);
    sim.manager("m1", FromManager::Register(registration(1, 5)));
    let dispatches: Vec<TaskDispatch> = [3, 2, 1, 4, 5]
        .into_iter()
        .zip(0u32..)
        .map(|(id, node)| dispatch_on(id, request(id), &[node]))
        .collect();
    sim.check(vec![
        to_manager("m1", registered()),
        run_tasks("m1", dispatches),
    ]);
}

#[test]
fn finished_results_come_back_for_late_watchers() {
    let mut sim = Sim::journaled().with_client("c").with_manager(1, 2);
    sim.submit("c", 1, submissions([(1, nodes(1)), (2, nodes(9))]));
    sim.drain();
    sim.manager_results("m1", vec![completed(1)]);
    sim.drain();
    let recovery = sim.restart_from_journal();
    // Task 1 finished; task 2 (too large for manager 1) waits.
    assert_eq!(
        (recovery.n_finished, recovery.n_queued, recovery.n_managers),
        (1, 1, 0)
    );
    let mut sim = sim.with_client("w");
    sim.watch("w", 7, &[1]);
    sim.check(vec![
        watching("w", 7, 1),
        results("w", vec![forwarded(completed(1), 1)]),
    ]);
}

#[test]
fn a_running_task_waits_for_its_manager_then_is_lost_past_the_threshold() {
    let mut sim = Sim::journaled().with_client("c").with_manager(1, 2);
    let retried = nodes(1).with("retries", 1);
    sim.submit("c", 1, submissions([(1, retried.clone()), (2, nodes(1))]));
    sim.drain();
    sim.cancel("c", 2, 2);
    sim.drain();
    let recovery = sim.restart_from_journal();
    assert_eq!(
        (recovery.n_running, recovery.n_managers, recovery.n_queued),
        (2, 1, 0)
    );
    // The manager gets nothing new while it is not heard from.
    let mut sim = submit_after_restart(sim, 3, 3);
    assert_eq!(sim.status("c").n_queued, 1);
    // Past the threshold it is dropped as a silent manager: task 1 goes
    // back to the queue (a retry left), task 2 (cancel asked) fails.
    sim.advance(THRESHOLD.as_secs());
    sim.drain();
    let report = sim.status("c");
    assert_eq!(
        (report.n_queued, report.managers.len()),
        (2, 0),
        "{report:?}"
    );
    let status = sim.task_status("c", 2);
    let result = status.result.expect("task 2 ended");
    assert_eq!(
        result.error.map(|error| error.kind),
        Some(ErrorKind::ManagerLost)
    );
    // Another manager runs task 1 (first in the queue) then task 3.
    sim.manager("m2", FromManager::Register(registration(2, 2)));
    let outputs = sim.drain();
    let Some(Output::ToManager(_, ToManager::RunTasks { tasks })) = outputs.get(1) else {
        panic!("expected run_tasks, got {outputs:?}");
    };
    let ids: Vec<TaskId> = tasks.iter().map(|task| task.task_id).collect();
    assert_eq!(ids, vec![task_id(1), task_id(3)]);
}

#[test]
fn a_recovered_manager_heard_from_again_keeps_its_tasks() {
    let mut sim = Sim::journaled().with_client("c");
    let name = manager_id(1).to_string();
    sim.manager(&name, FromManager::Register(registration(1, 2)));
    sim.submit("c", 1, vec![submission(1, nodes(1))]);
    sim.drain();
    sim.restart_from_journal();
    sim.manager(&name, FromManager::Heartbeat);
    sim.check(vec![]);
    sim.manager_results(&name, vec![completed(1)]);
    sim.check(vec![]);
    let mut sim = sim.with_client("c");
    let status = sim.task_status("c", 1);
    assert_eq!(status.result, Some(forwarded(completed(1), 1)));
}

/// One step of a random run.
#[derive(Clone, Debug)]
enum Step {
    Submit {
        id: u8,
        n_nodes: u32,
        priority: Option<i8>,
        retries: u32,
    },
    Register(u8),
    Complete(u8),
    Cancel(u8),
    Goodbye(u8),
    Unreachable(u8),
    Advance(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<u8>(), 1u32..4, proptest::option::of(-3i8..3), 0u32..3).prop_map(
            |(id, n_nodes, priority, retries)| Step::Submit { id, n_nodes, priority, retries }
        ),
        1 => (0u8..4).prop_map(Step::Register),
        3 => any::<u8>().prop_map(Step::Complete),
        1 => any::<u8>().prop_map(Step::Cancel),
        1 => (0u8..4).prop_map(Step::Goodbye),
        1 => (0u8..4).prop_map(Step::Unreachable),
        1 => (0u16..200).prop_map(Step::Advance),
    ]
}

fn apply(sim: &mut Sim, step: &Step) {
    let manager_name = |n: u8| manager_id(u128::from(n)).to_string();
    match step {
        Step::Submit {
            id,
            n_nodes,
            priority,
            retries,
        } => {
            let mut request = nodes(*n_nodes).with("retries", i64::from(*retries));
            if let Some(priority) = priority {
                request = request.with("priority", i64::from(*priority));
            }
            sim.submit("c", 1, vec![submission(u128::from(*id), request)]);
        }
        Step::Register(n) => sim.manager(
            &manager_name(*n),
            FromManager::Register(registration(u128::from(*n), 3)),
        ),
        Step::Complete(id) => {
            // The result goes from whichever manager runs it (if any).
            for n in 0..4 {
                sim.manager_results(&manager_name(n), vec![completed(u128::from(*id))]);
            }
        }
        Step::Cancel(id) => sim.command(
            "c",
            2,
            Command::Cancel {
                task_id: task_id(u128::from(*id)),
            },
        ),
        Step::Goodbye(n) => sim.manager(
            &manager_name(*n),
            FromManager::Goodbye {
                reason: "test".into(),
            },
        ),
        Step::Unreachable(n) => sim.core.handle_manager_unreachable(
            sim.now,
            &peer(&manager_name(*n)),
            ToManager::Heartbeat,
        ),
        Step::Advance(seconds) => sim.advance(u64::from(*seconds)),
    }
    sim.drain();
}

proptest! {
    /// Whatever happened, the records rebuild a core with the same durable
    /// state (the same snapshot), consistent by `validate`; and a snapshot
    /// replays to itself (compaction loses nothing).
    #[test]
    fn replaying_the_records_rebuilds_the_same_state(
        steps in proptest::collection::vec(step(), 0..60)
    ) {
        let mut sim = Sim::journaled().with_client("c");
        let mut records = Vec::new();
        for step in &steps {
            apply(&mut sim, step);
            records.extend(sim.records());
        }
        let expected = snapshot(&mut sim.core);
        let (mut recovered, recovery) = Core::recover(test_config(), sim.now, records);
        prop_assert_eq!(recovery.n_skipped, 0);
        prop_assert!(recovered.validate().is_ok(), "{:?}", recovered.validate());
        let rebuilt = snapshot(&mut recovered);
        prop_assert_eq!(&rebuilt, &expected);
        let (mut again, recovery) = Core::recover(test_config(), sim.now, rebuilt);
        prop_assert_eq!(recovery.n_skipped, 0);
        prop_assert_eq!(snapshot(&mut again), expected);
    }
}

#[test]
fn the_providers_blocks_are_recorded_and_come_back_for_adoption() {
    let mut sim = Sim::journaled();
    let block = protocol::BlockInfo {
        block_id: "rhtex-1-1".into(),
        job_id: "4242".into(),
        provider: "slurm".into(),
        state: protocol::BlockState::Pending,
        n_nodes: 2,
        manager_id: None,
        submitted_at: WALL_CLOCK,
        output_path: Some("/run/blocks/rhtex-1-1.out".into()),
        message: None,
    };
    sim.core.set_blocks(sim.now, vec![block.clone()]);
    // Setting the same blocks again records nothing.
    sim.core.set_blocks(sim.now, vec![block.clone()]);
    let records = sim.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let recovery = sim.restart(records);
    assert_eq!(recovery.n_blocks, 1);
    assert_eq!(sim.core.blocks(), [block.clone()].as_slice());
    assert_eq!(
        snapshot(&mut sim.core),
        vec![JournalRecord::Blocks {
            blocks: vec![block]
        }]
    );
}
