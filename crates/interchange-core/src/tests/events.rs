//! The event log's events: what a scenario emits, in order, with the wall
//! time of the input that caused each; and nothing when recording is off.

use super::*;
use protocol::{BlockInfo, BlockState, Event};

fn recording() -> Sim {
    Sim::with_config(CoreConfig {
        record_events: true,
        ..test_config()
    })
}

fn events(sim: &mut Sim) -> Vec<(f64, Event)> {
    std::iter::from_fn(|| sim.core.poll_event()).collect()
}

fn block(block_id: &str, state: BlockState) -> BlockInfo {
    BlockInfo {
        block_id: block_id.to_owned(),
        job_id: "77".to_owned(),
        provider: "slurm".to_owned(),
        state,
        n_nodes: 2,
        manager_id: None,
        submitted_at: WALL_CLOCK,
        output_path: None,
        message: None,
    }
}

#[test]
fn a_run_emits_its_task_manager_and_block_events_in_order() {
    let mut sim = recording().with_client("c");
    sim.core
        .set_blocks(sim.now, vec![block("block-1", BlockState::Pending)]);
    sim.advance(1);
    sim.manager("m1", FromManager::Register(registration(1, 2)));
    sim.core
        .set_blocks(sim.now, vec![block("block-1", BlockState::Connected)]);
    sim.submit(
        "c",
        1,
        submissions([(1, nodes(2)), (2, nodes(1)), (3, nodes(0))]),
    );
    sim.advance(2);
    let mut result = forwarded(completed(1), 1);
    result.exit_code = Some(0);
    sim.manager_results("m1", vec![result]);
    sim.cancel("c", 2, 2);
    sim.command(
        "c",
        3,
        Command::Hold {
            manager_id: manager_id(1),
        },
    );
    sim.command(
        "c",
        4,
        Command::Drain {
            manager_id: manager_id(1),
        },
    );
    sim.manager(
        "m1",
        FromManager::Goodbye {
            reason: "drained".to_owned(),
        },
    );
    sim.core
        .set_blocks(sim.now, vec![block("block-1", BlockState::Ended)]);
    sim.drain();

    let at = |seconds: f64| WALL_CLOCK + seconds;
    let nodes_of = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
    let expected = vec![
        (
            at(0.0),
            Event::BlockSubmitted {
                block_id: "block-1".to_owned(),
                job_id: "77".to_owned(),
                n_nodes: 2,
            },
        ),
        (
            at(1.0),
            Event::ManagerRegistered {
                manager_id: manager_id(1),
                block_id: "block-1".to_owned(),
                hostname: "host-1".to_owned(),
                nodes: nodes_of(&["m1n0", "m1n1"]),
            },
        ),
        (
            at(1.0),
            Event::BlockRunning {
                block_id: "block-1".to_owned(),
                job_id: "77".to_owned(),
            },
        ),
        (
            at(1.0),
            Event::TaskSubmitted {
                task_id: task_id(1),
                num_nodes: Some(2),
            },
        ),
        (
            at(1.0),
            Event::TaskSubmitted {
                task_id: task_id(2),
                num_nodes: Some(1),
            },
        ),
        (
            at(1.0),
            Event::TaskSubmitted {
                task_id: task_id(3),
                num_nodes: None,
            },
        ),
        (
            at(1.0),
            Event::TaskFinished {
                task_id: task_id(3),
                state: TaskState::Failed,
                exit_code: None,
                error_kind: Some(ErrorKind::InvalidSpec),
                manager_id: None,
            },
        ),
        (
            at(1.0),
            Event::TaskStarted {
                task_id: task_id(1),
                manager_id: manager_id(1),
                block_id: "block-1".to_owned(),
                nodes: nodes_of(&["m1n0", "m1n1"]),
                attempt: 1,
            },
        ),
        (
            at(3.0),
            Event::TaskFinished {
                task_id: task_id(1),
                state: TaskState::Completed,
                exit_code: Some(0),
                error_kind: None,
                manager_id: Some(manager_id(1)),
            },
        ),
        (
            at(3.0),
            Event::TaskStarted {
                task_id: task_id(2),
                manager_id: manager_id(1),
                block_id: "block-1".to_owned(),
                nodes: nodes_of(&["m1n0"]),
                attempt: 1,
            },
        ),
        (
            at(3.0),
            Event::TaskCancelled {
                task_id: task_id(2),
            },
        ),
        (
            at(3.0),
            Event::ManagerHeld {
                manager_id: manager_id(1),
                held: true,
            },
        ),
        (
            at(3.0),
            Event::ManagerDrained {
                manager_id: manager_id(1),
            },
        ),
        (
            at(3.0),
            Event::ManagerGone {
                manager_id: manager_id(1),
                block_id: "block-1".to_owned(),
                reason: "drained".to_owned(),
            },
        ),
        (
            at(3.0),
            Event::TaskFinished {
                task_id: task_id(2),
                state: TaskState::Failed,
                exit_code: None,
                error_kind: Some(ErrorKind::ManagerLost),
                manager_id: Some(manager_id(1)),
            },
        ),
        (
            at(3.0),
            Event::BlockEnded {
                block_id: "block-1".to_owned(),
                job_id: "77".to_owned(),
                state: BlockState::Ended,
            },
        ),
    ];
    let actual = events(&mut sim);
    assert_eq!(actual.len(), expected.len(), "{actual:#?}");
    for (actual, expected) in actual.iter().zip(&expected) {
        assert_eq!(actual, expected);
    }
}

#[test]
fn a_lost_manager_and_a_retried_task_are_events() {
    let mut sim = recording().with_client("c").with_manager(1, 1);
    sim.submit("c", 1, vec![submission(1, nodes(1).with("retries", 1))]);
    sim.drain();
    events(&mut sim);
    sim.advance(THRESHOLD.as_secs() + PERIOD.as_secs());
    sim.drain();
    let kinds: Vec<Event> = events(&mut sim)
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    assert!(
        matches!(&kinds[0], Event::ManagerLost { manager_id: lost, reason, .. } if *lost == manager_id(1) && reason.starts_with("silent for")),
        "{kinds:?}"
    );
    assert_eq!(
        kinds[1],
        Event::TaskRetried {
            task_id: task_id(1),
            manager_id: manager_id(1)
        }
    );
    assert_eq!(kinds.len(), 2, "{kinds:?}");
}

#[test]
fn nothing_is_kept_when_recording_is_off() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 1);
    sim.submit("c", 1, vec![submission(1, nodes(1))]);
    sim.drain();
    assert_eq!(sim.core.poll_event(), None);
}
