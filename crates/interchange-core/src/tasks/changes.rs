//! The changes of a task after its submission: started on a manager,
//! finished by its result, lost (queued again or failed), cancelled, and
//! watched.

use super::journal::write_record;
use super::{
    Cancelled, Counts, Delivery, Loss, Lost, Phase, Running, Task, TaskTable, Watched, Watchers,
};
use crate::clients::ClientRef;
use protocol::{
    ErrorKind, Event, ManagerId, NodeShare, RecordRef, TaskDispatch, TaskId, TaskResult, TaskState,
};
use std::collections::hash_map::Entry;

impl TaskTable {
    // -----------------------------------------------------------------
    // Dispatch
    // -----------------------------------------------------------------

    /// Takes a queued task out of the queue: it runs on `manager_id` on the
    /// nodes of `placement`. Gives the message that starts it there; `None`
    /// if the task is not queued. `backfill` is for the log only.
    pub(crate) fn start(
        &mut self,
        task_id: TaskId,
        manager_id: ManagerId,
        placement: Vec<NodeShare>,
        backfill: bool,
    ) -> Option<TaskDispatch> {
        let now_unix = self.now_unix;
        let Some(Task {
            phase: Phase::Unfinished(task),
            dispatched_at,
            ..
        }) = self.tasks.get_mut(&task_id).map(|task| &mut **task)
        else {
            return None;
        };
        if task.running.is_some() {
            return None;
        }
        *dispatched_at = now_unix;
        let resources = task.spec.resources.get();
        self.queue.remove(&resources, task.key());
        task.attempts += 1;
        task.running = Some(Running {
            manager_id,
            cancel_requested: false,
        });
        self.counters.dispatched(task.queued_at, self.now);
        let spec = &task.spec;
        write_record(
            &mut self.journal,
            &RecordRef::Started {
                task_id,
                manager_id,
                placement: &placement,
            },
        );
        tracing::debug!(task_id = %task_id, manager_id = %manager_id, num_nodes = resources.num_nodes, attempt = task.attempts, backfill, "task sent");
        let owned = |path: Option<&str>| path.map(str::to_owned);
        let dispatch = TaskDispatch {
            task_id,
            command: String::from(&*spec.command),
            resources: resources.into_owned(),
            placement,
            env: spec.env().clone(),
            cwd: owned(spec.path(|extra| &extra.cwd)),
            stdout: owned(spec.path(|extra| &extra.stdout)),
            stderr: owned(spec.path(|extra| &extra.stderr)),
            input: spec.input().map(<[u8]>::to_vec),
        };
        Some(dispatch)
    }

    // -----------------------------------------------------------------
    // Results
    // -----------------------------------------------------------------

    pub(super) fn emit_finished(&mut self, result: &TaskResult) {
        self.emit(Event::TaskFinished {
            task_id: result.task_id,
            state: result.state,
            exit_code: result.exit_code,
            error_kind: result.error.as_ref().map(|error| error.kind),
            manager_id: result.manager_id,
        });
    }

    pub(super) fn count(&mut self, state: TaskState) {
        count(&mut self.counts, state);
    }

    /// Keeps a finished task's result for late `watch` and `task_status`,
    /// forgetting the oldest kept results beyond the configured bounds.
    pub(super) fn keep_finished(&mut self, task_id: TaskId, result: &TaskResult) {
        let bytes = result_size(result);
        self.finished.push_back((task_id, bytes));
        self.finished_bytes += bytes;
        while self.finished.len() > self.max_finished_results
            || self.finished_bytes > self.max_finished_bytes
        {
            let Some((oldest, oldest_bytes)) = self.finished.pop_front() else {
                break;
            };
            self.finished_bytes -= oldest_bytes;
            if let Entry::Occupied(entry) = self.tasks.entry(oldest) {
                if matches!(entry.get().phase, Phase::Finished(_)) {
                    entry.remove();
                }
            }
        }
    }

    /// Records the one result of a task; gives it with the clients that
    /// watched the task.
    pub(crate) fn finish(&mut self, task_id: TaskId, result: TaskResult) -> Delivery {
        // One look-up of the task for everything below.
        let task = self.tasks.get_mut(&task_id).map(|task| &mut **task);
        if self.journal.is_some() {
            let owner = task
                .as_ref()
                .and_then(|task| self.owners.identity(task.owner).as_record());
            write_record(
                &mut self.journal,
                &RecordRef::Finished {
                    result: &result,
                    owner,
                },
            );
        }
        count(&mut self.counts, result.state);
        let (submitted_at, dispatched_at_unix) = match task.as_deref() {
            Some(Task {
                phase: Phase::Unfinished(unfinished),
                dispatched_at,
                ..
            }) => (
                Some(unfinished.submitted_at),
                // Unknown (NaN) for a task that ran across a restart.
                (unfinished.running.is_some() && !dispatched_at.is_nan()).then_some(*dispatched_at),
            ),
            _ => (None, None),
        };
        self.counters
            .finished(&result, submitted_at, dispatched_at_unix, self.now);
        let watchers = match task {
            Some(task) => {
                task.finished_at = self.now_unix;
                let before =
                    std::mem::replace(&mut task.phase, Phase::Finished(Box::new(result.clone())));
                let watchers = std::mem::take(&mut task.watchers);
                if let Phase::Unfinished(unfinished) = before {
                    self.release_held(&unfinished.spec);
                }
                watchers
            }
            None => Watchers::default(),
        };
        self.keep_finished(task_id, &result);
        self.emit_finished(&result);
        Delivery {
            watchers,
            result: Box::new(result),
        }
    }

    /// Ends a task its manager no longer runs (`loss`): a task lost through
    /// no fault of its own with retries left and no cancel asked goes back
    /// to the queue in its old place; otherwise it fails with `loss.kind`,
    /// a lost task's message saying how many attempts were made.
    pub(crate) fn lose(&mut self, task_id: TaskId, loss: &Loss<'_>) -> Lost {
        if loss.may_retry && self.queue_again(task_id, loss.manager_id) {
            return Lost::QueuedAgain;
        }
        let attempts = match self.task(task_id).map(|task| &task.phase) {
            Some(Phase::Unfinished(task)) if task.running.is_some() => task.attempts,
            _ => 1,
        };
        let message = if loss.kind == ErrorKind::ManagerLost {
            let plural = if attempts == 1 { "" } else { "s" };
            format!("{} ({attempts} attempt{plural} made)", loss.message)
        } else {
            loss.message.to_owned()
        };
        let mut result = TaskResult::failed_before_start(task_id, loss.kind, message);
        result.manager_id = Some(loss.manager_id);
        result.block_id = Some(loss.block_id.to_owned());
        Lost::Failed(self.finish(task_id, result))
    }

    /// Puts a running task back in the queue with its original key, if it
    /// has retries left and no cancel was asked. False if not.
    pub(super) fn queue_again(&mut self, task_id: TaskId, manager_id: ManagerId) -> bool {
        let default_retries = self.default_retries;
        let Some(Task {
            phase: Phase::Unfinished(task),
            ..
        }) = self.tasks.get_mut(&task_id).map(|task| &mut **task)
        else {
            return false;
        };
        let Some(Running {
            cancel_requested: false,
            ..
        }) = task.running
        else {
            return false;
        };
        let budget = task.spec.resources.retries().unwrap_or(default_retries);
        if task.attempts > budget
            || !self
                .queue
                .push_with_key(task_id, &task.spec.resources.get(), task.key())
        {
            return false;
        }
        task.running = None;
        task.queued_at = self.now;
        let attempts = task.attempts;
        self.note_requeued(task_id, manager_id, true);
        tracing::info!(
            task_id = %task_id,
            attempt = attempts + 1,
            manager_id = %manager_id,
            "task queued again in its old place: its manager was lost"
        );
        true
    }

    /// Counts, tells and records a running task put back in the queue in
    /// its old place (`retry_used`: whether that took one of its retries).
    fn note_requeued(&mut self, task_id: TaskId, manager_id: ManagerId, retry_used: bool) {
        self.counters.requeued();
        self.emit(Event::TaskRetried {
            task_id,
            manager_id,
        });
        self.record(RecordRef::Requeued {
            task_id,
            retry_used,
        });
    }

    /// A dispatch of this task to `manager_id` could not be delivered (the
    /// manager's connection is gone): the task goes back to the queue in
    /// its old place without using a retry, or, if a cancel was asked
    /// meanwhile, ends as cancelled. `None` if it is not running there.
    pub(crate) fn undelivered(&mut self, task_id: TaskId, manager_id: ManagerId) -> Option<Lost> {
        let Some(Task {
            phase: Phase::Unfinished(task),
            ..
        }) = self.tasks.get_mut(&task_id).map(|task| &mut **task)
        else {
            return None;
        };
        let cancel_requested = match &task.running {
            Some(running) if running.manager_id == manager_id => running.cancel_requested,
            _ => return None,
        };
        if cancel_requested {
            let result = TaskResult::failed_before_start(
                task_id,
                ErrorKind::Cancelled,
                "cancelled by a client before it reached its manager".to_owned(),
            );
            return Some(Lost::Failed(self.finish(task_id, result)));
        }
        if !self
            .queue
            .push_with_key(task_id, &task.spec.resources.get(), task.key())
        {
            return None;
        }
        task.running = None;
        task.attempts = task.attempts.saturating_sub(1);
        task.queued_at = self.now;
        self.note_requeued(task_id, manager_id, false);
        tracing::info!(
            task_id = %task_id,
            manager_id = %manager_id,
            "task queued again in its old place: its dispatch could not be delivered (no retry used)"
        );
        Some(Lost::QueuedAgain)
    }

    // -----------------------------------------------------------------
    // Cancel and shutdown
    // -----------------------------------------------------------------

    /// A client asked to cancel the task.
    pub(crate) fn cancel(&mut self, task_id: TaskId) -> Cancelled {
        if matches!(
            self.task(task_id).map(|task| &task.phase),
            Some(Phase::Unfinished(_))
        ) {
            self.emit(Event::TaskCancelled { task_id });
        }
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Cancelled::Unknown;
        };
        let (resources, key) = match &mut task.phase {
            Phase::Finished(result) => return Cancelled::AlreadyFinished(result.state),
            Phase::Unfinished(unfinished) => match &mut unfinished.running {
                Some(running) => {
                    running.cancel_requested = true;
                    let manager_id = running.manager_id;
                    write_record(&mut self.journal, &RecordRef::CancelRequested { task_id });
                    return Cancelled::Running(manager_id);
                }
                None => (unfinished.spec.resources.get(), unfinished.key()),
            },
        };
        self.queue.remove(&resources, key);
        tracing::debug!(task_id = %task_id, "queued task cancelled");
        Cancelled::WhileQueued(self.finish(
            task_id,
            TaskResult::failed_before_start(
                task_id,
                ErrorKind::Cancelled,
                "cancelled by a client while queued".to_owned(),
            ),
        ))
    }

    /// Empties the queue at shutdown: every queued task is cancelled, in
    /// queue order.
    pub(crate) fn cancel_queued(&mut self) -> Vec<Delivery> {
        self.queue
            .drain_all()
            .into_iter()
            .map(|task_id| {
                self.finish(
                    task_id,
                    TaskResult::failed_before_start(
                        task_id,
                        ErrorKind::Cancelled,
                        "cancelled: the interchange shut down before the task started".to_owned(),
                    ),
                )
            })
            .collect()
    }

    // -----------------------------------------------------------------
    // Watchers
    // -----------------------------------------------------------------

    /// `client` watches the task: an unfinished one sends it its result
    /// when it ends; a finished one gives its result now.
    pub(crate) fn watch(&mut self, task_id: TaskId, client: &ClientRef) -> Watched {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Watched::Unknown;
        };
        match &task.phase {
            Phase::Finished(result) => Watched::Finished(result.clone()),
            Phase::Unfinished(_) => {
                task.watchers.add(client);
                Watched::Unfinished
            }
        }
    }
}

/// Counts a result by its state, for `status`.
fn count(counts: &mut Counts, state: TaskState) {
    match state {
        TaskState::Completed => counts.n_completed += 1,
        TaskState::Cancelled => counts.n_cancelled += 1,
        _ => counts.n_failed += 1,
    }
}

/// About how many bytes a kept result takes: its variable-size parts plus
/// a fixed overhead for the rest and the table entries.
pub(super) fn result_size(result: &TaskResult) -> usize {
    const OVERHEAD: usize = 512;
    let text = |value: &Option<String>| value.as_ref().map_or(0, String::len);
    OVERHEAD
        + result.stdout_tail.len()
        + result.stderr_tail.len()
        + result.output.as_ref().map_or(0, Vec::len)
        + result.nodes.iter().map(String::len).sum::<usize>()
        + text(&result.stdout_path)
        + text(&result.stderr_path)
        + text(&result.block_id)
        + result.error.as_ref().map_or(0, |error| error.message.len())
}
