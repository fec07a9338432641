//! What the table shows of its tasks: their phases for the status views
//! and listings, their owners, and what re-registration asks of them.

use super::{Counts, Listed, Phase, TaskTable, TaskView, Unfinished};
use crate::interface::Identity;
use crate::metrics::TaskCounters;
use crate::queue::{Shape, TaskQueue};
use protocol::{ManagerId, TaskId};
use std::time::Duration;

impl TaskTable {
    pub(crate) fn counters(&self) -> &TaskCounters {
        &self.counters
    }

    pub(crate) fn queue(&self) -> &TaskQueue {
        &self.queue
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The input bytes the unfinished tasks hold (queued or running).
    pub(crate) fn input_bytes_held(&self) -> u64 {
        self.input_bytes_held
    }

    /// The bytes of the unfinished tasks' other data (command, environment,
    /// paths, launcher options).
    pub(crate) fn data_bytes_held(&self) -> u64 {
        self.data_bytes_held
    }

    /// The identity that submitted the task, if the task is known.
    pub(crate) fn owner(&self, task_id: TaskId) -> Option<&Identity> {
        self.task(task_id)
            .map(|task| self.owners.identity(task.owner))
    }

    pub(crate) fn view(&self, task_id: TaskId) -> Option<TaskView<'_>> {
        self.task(task_id).map(|task| match &task.phase {
            Phase::Unfinished(task) => match &task.running {
                None => TaskView::Queued(Shape::of(&task.spec.resources.get())),
                Some(running) => TaskView::Running(running.manager_id),
            },
            Phase::Finished(result) => TaskView::Finished(result),
        })
    }

    /// Every task with what a listing shows of it, in no order.
    pub(crate) fn list(&self) -> impl Iterator<Item = (TaskId, TaskView<'_>, Listed)> {
        self.tasks.iter().filter_map(|(task_id, task)| {
            let view = self.view(*task_id)?;
            Some((*task_id, view, task.listed()))
        })
    }

    /// The walltime of a queued task.
    pub(crate) fn walltime_of_queued(&self, task_id: TaskId) -> Option<Duration> {
        self.queued(task_id)?
            .spec
            .resources
            .walltime()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
    }

    /// A queued task's walltime and the times it was sent so far (`None`
    /// and 0 if it is not queued), in one look-up.
    pub(crate) fn walltime_and_attempts(&self, task_id: TaskId) -> (Option<Duration>, u32) {
        match self.queued(task_id) {
            Some(task) => (
                task.spec
                    .resources
                    .walltime()
                    .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok()),
                task.attempts,
            ),
            None => (None, 0),
        }
    }

    pub(super) fn queued(&self, task_id: TaskId) -> Option<&Unfinished> {
        match self.task(task_id).map(|task| &task.phase) {
            Some(Phase::Unfinished(task)) if task.running.is_none() => Some(task),
            _ => None,
        }
    }

    /// How many results are kept.
    pub(crate) fn n_kept_results(&self) -> usize {
        self.finished.len()
    }

    /// Whether the task waits in the queue.
    pub(crate) fn is_queued(&self, task_id: TaskId) -> bool {
        self.queued(task_id).is_some()
    }

    // -----------------------------------------------------------------
    // Re-registration
    // -----------------------------------------------------------------

    /// The unfinished tasks the table has running on `manager_id`. A pass
    /// over every task: only for a manager that registers again and that
    /// the manager table does not hold (dropped, or from before a restart).
    pub(crate) fn running_on(&self, manager_id: ManagerId) -> Vec<TaskId> {
        self.tasks
            .iter()
            .filter(|(_, task)| match &task.phase {
                Phase::Unfinished(task) => task
                    .running
                    .as_ref()
                    .is_some_and(|running| running.manager_id == manager_id),
                Phase::Finished(_) => false,
            })
            .map(|(task_id, _)| *task_id)
            .collect()
    }

    /// For a task running on `manager_id`: whether a cancel was asked, and
    /// its walltime. `None` if it does not run there.
    pub(crate) fn running_there(
        &self,
        task_id: TaskId,
        manager_id: ManagerId,
    ) -> Option<(bool, Option<Duration>)> {
        let Some(Phase::Unfinished(task)) = self.task(task_id).map(|task| &task.phase) else {
            return None;
        };
        let running = task
            .running
            .as_ref()
            .filter(|running| running.manager_id == manager_id)?;
        let walltime = task
            .spec
            .resources
            .walltime()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
        Some((running.cancel_requested, walltime))
    }
}
