//! The `tasks` command: every known task in submission order, with its
//! state, nodes and times, filtered by state.

use super::*;
use protocol::TaskSummary;

fn list(sim: &mut Sim, state: Option<TaskState>) -> Vec<TaskSummary> {
    sim.command("c", 9, Command::Tasks { state });
    match sim.drain().pop() {
        Some(Output::ToClient(
            _,
            ToClient::Reply {
                reply: Reply::Tasks { tasks },
                ..
            },
        )) => tasks,
        other => panic!("expected a tasks reply, got {other:?}"),
    }
}

#[test]
fn tasks_are_listed_in_submission_order_with_nodes_and_times() {
    let mut sim = Sim::new().with_client("c").with_manager(1, 2);
    sim.submit("c", 1, vec![submission(1, nodes(2))]);
    sim.advance(1);
    sim.submit("c", 2, submissions([(2, nodes(1)), (3, nodes(0))]));
    sim.drain();
    let tasks = list(&mut sim, None);
    let ids: Vec<TaskId> = tasks.iter().map(|task| task.task_id).collect();
    assert_eq!(ids, vec![task_id(1), task_id(2), task_id(3)]);
    assert_eq!(tasks[0].state, TaskState::Running);
    assert_eq!(tasks[0].nodes, vec!["m1n0".to_owned(), "m1n1".to_owned()]);
    assert_eq!(tasks[0].manager_id, Some(manager_id(1)));
    assert_eq!(tasks[0].submitted_at, WALL_CLOCK);
    assert_eq!(tasks[0].start_time, Some(WALL_CLOCK));
    assert_eq!(tasks[1].state, TaskState::Queued);
    assert_eq!(
        (tasks[1].num_nodes, tasks[1].submitted_at),
        (1, WALL_CLOCK + 1.0)
    );
    assert_eq!(tasks[2].state, TaskState::Failed);
    assert_eq!(tasks[2].error_kind, Some(ErrorKind::InvalidSpec));
    assert_eq!(tasks[2].end_time, Some(WALL_CLOCK + 1.0));

    sim.advance(2);
    let mut result = forwarded(completed(1), 1);
    result.exit_code = Some(0);
    sim.manager_results("m1", vec![result]);
    sim.drain();
    let completed_tasks = list(&mut sim, Some(TaskState::Completed));
    assert_eq!(completed_tasks.len(), 1);
    assert_eq!(completed_tasks[0].task_id, task_id(1));
    assert_eq!(completed_tasks[0].exit_code, Some(0));
    assert_eq!(completed_tasks[0].end_time, Some(WALL_CLOCK + 3.0));
    let running = list(&mut sim, Some(TaskState::Running));
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].task_id, task_id(2));
    assert_eq!(running[0].start_time, Some(WALL_CLOCK + 3.0));
    assert!(list(&mut sim, Some(TaskState::Queued)).is_empty());
}
