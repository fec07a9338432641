//! The `tasks` command: every task the core knows (queued, running, and
//! the finished ones whose results are kept), in submission order, with
//! its nodes and times. One place builds the list, from a [`TaskFilter`]:
//! by state, and by owner (a client identity that is no admin sees only
//! its own tasks).

use crate::interface::Identity;
use crate::machine::Core;
use crate::tasks::TaskView;
use protocol::{TaskState, TaskSummary};

/// Which tasks a listing shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TaskFilter {
    /// Only tasks in this state (`None`: all).
    pub(crate) state: Option<TaskState>,
    /// Only tasks this identity submitted (`None`: everyone's).
    pub(crate) owner: Option<Identity>,
}

impl TaskFilter {
    fn admits(&self, summary: &TaskSummary) -> bool {
        self.state.map_or(true, |state| summary.state == state)
    }
}

impl Core {
    /// The tasks `filter` admits, oldest submission first. Costs a pass
    /// over every known task and a sort.
    pub(crate) fn task_list(&self, filter: &TaskFilter) -> Vec<TaskSummary> {
        let mut tasks: Vec<(u64, TaskSummary)> = self
            .tasks
            .list()
            .filter(|(task_id, _, _)| {
                filter
                    .owner
                    .as_ref()
                    .map_or(true, |owner| self.tasks.owner(*task_id) == Some(owner))
            })
            .map(|(task_id, view, listed)| {
                let mut summary = TaskSummary {
                    task_id,
                    state: TaskState::Queued,
                    num_nodes: listed.num_nodes,
                    manager_id: None,
                    nodes: Vec::new(),
                    submitted_at: listed.submitted_at,
                    start_time: None,
                    end_time: None,
                    exit_code: None,
                    error_kind: None,
                };
                match view {
                    TaskView::Queued(_) => {}
                    TaskView::Running(manager_id) => {
                        summary.state = TaskState::Running;
                        summary.manager_id = Some(manager_id);
                        summary.start_time = listed.dispatched_at;
                        summary.nodes = self.nodes_of(manager_id, task_id);
                    }
                    TaskView::Finished(result) => {
                        summary.state = result.state;
                        summary.manager_id = result.manager_id;
                        summary.nodes = result.nodes.clone();
                        summary.start_time = result.start_time.or(listed.dispatched_at);
                        summary.end_time = result.end_time.or(listed.finished_at);
                        summary.exit_code = result.exit_code;
                        summary.error_kind = result.error.as_ref().map(|error| error.kind);
                    }
                }
                (listed.seq, summary)
            })
            .filter(|(_, summary)| filter.admits(summary))
            .collect();
        tasks.sort_unstable_by_key(|(seq, _)| *seq);
        tasks.into_iter().map(|(_, summary)| summary).collect()
    }

    /// The names of the nodes a running task was given.
    fn nodes_of(&self, manager_id: protocol::ManagerId, task_id: protocol::TaskId) -> Vec<String> {
        let Some(manager) = self.managers.get(manager_id) else {
            return Vec::new();
        };
        manager
            .tasks()
            .get(&task_id)
            .map(|allocation| manager.names_of(&allocation.placement))
            .unwrap_or_default()
    }
}
