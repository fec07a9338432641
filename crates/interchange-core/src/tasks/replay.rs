//! The task table rebuilt from journal records (replay), and the records
//! that describe the table as it is (a snapshot, for compaction). The
//! records its changes append are drained in `journal.rs`.
//!
//! Replay applies each record as the change it states, without queuing
//! records, touching the metrics or telling anyone: the tasks come back
//! with no watchers (clients watch again). A record that does not fit the
//! table (a start of a task that is not queued...) is skipped and counted
//! in [`Replay::n_skipped`]; the store's checksums make that a bug, never
//! a torn write.

use super::{Extra, Phase, Running, Task, TaskSpec, TaskTable, Unfinished, Watchers};
use crate::interface::Identity;
use crate::queue::QueueKey;
use protocol::{
    BlockInfo, JournalRecord, ManagerId, NodeShare, QueuedTask, Registration, TaskId, TaskResult,
};
use std::collections::HashMap;

/// What a replay gathered besides the tasks: the managers' registrations
/// and where each running task runs, for the core to rebuild its managers.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    pub(crate) registrations: HashMap<ManagerId, Registration>,
    /// The manager and nodes of every task running at the end.
    pub(crate) placements: HashMap<TaskId, (ManagerId, Vec<NodeShare>)>,
    pub(crate) n_records: u64,
    pub(crate) n_skipped: u64,
    /// The provider's blocks, as last recorded.
    pub(crate) blocks: Vec<BlockInfo>,
}

impl TaskTable {
    /// Applies one record.
    pub(crate) fn replay(&mut self, record: JournalRecord, replay: &mut Replay) {
        replay.n_records += 1;
        let applied = match record {
            JournalRecord::ManagerRegistered { registration } => {
                replay
                    .registrations
                    .insert(registration.manager_id, registration);
                true
            }
            JournalRecord::Blocks { blocks } => {
                replay.blocks = blocks;
                true
            }
            JournalRecord::Submitted(queued) => self.replay_submitted(queued),
            JournalRecord::Started {
                task_id,
                manager_id,
                placement,
            } => {
                let started = self.replay_started(task_id, manager_id);
                if started {
                    replay.placements.insert(task_id, (manager_id, placement));
                }
                started
            }
            JournalRecord::CancelRequested { task_id } => match self.unfinished_mut(task_id) {
                Some(Unfinished {
                    running: Some(running),
                    ..
                }) => {
                    running.cancel_requested = true;
                    true
                }
                _ => false,
            },
            JournalRecord::Requeued {
                task_id,
                retry_used,
            } => {
                replay.placements.remove(&task_id);
                self.replay_requeued(task_id, retry_used)
            }
            JournalRecord::Finished { result, owner } => {
                replay.placements.remove(&result.task_id);
                self.replay_finished(result, owner);
                true
            }
        };
        if !applied {
            replay.n_skipped += 1;
        }
    }

    fn unfinished_mut(&mut self, task_id: TaskId) -> Option<&mut Unfinished> {
        match self.task_mut(task_id).map(|task| &mut task.phase) {
            Some(Phase::Unfinished(task)) => Some(task),
            _ => None,
        }
    }

    fn replay_submitted(&mut self, queued: QueuedTask) -> bool {
        let task_id = queued.task_id;
        if self.tasks.contains_key(&task_id) {
            return false;
        }
        let key = QueueKey::new(&queued.resources, queued.sequence);
        self.queue.note_sequence(queued.sequence);
        if !self.queue.push_with_key(task_id, &queued.resources, key) {
            return false;
        }
        let extra = Extra {
            env: queued.env,
            cwd: queued.cwd,
            stdout: queued.stdout,
            stderr: queued.stderr,
            input: queued.input,
        };
        let spec = TaskSpec::new(queued.command, queued.resources, extra, queued.data_bytes);
        self.n_submitted += 1;
        let owner = self.owners.intern(&Identity::from_record(queued.owner));
        self.insert_queued(
            task_id,
            spec,
            key.sequence(),
            queued.attempts,
            queued.submitted_at,
            (Watchers::default(), owner),
        );
        true
    }

    fn replay_started(&mut self, task_id: TaskId, manager_id: ManagerId) -> bool {
        let Some(Phase::Unfinished(task)) =
            self.tasks.get_mut(&task_id).map(|task| &mut task.phase)
        else {
            return false;
        };
        if task.running.is_some() || !self.queue.remove(&task.spec.resources.get(), task.key()) {
            return false;
        }
        task.attempts += 1;
        task.running = Some(Running {
            manager_id,
            cancel_requested: false,
        });
        true
    }

    fn replay_requeued(&mut self, task_id: TaskId, retry_used: bool) -> bool {
        let Some(Phase::Unfinished(task)) =
            self.tasks.get_mut(&task_id).map(|task| &mut task.phase)
        else {
            return false;
        };
        if task.running.is_none()
            || !self
                .queue
                .push_with_key(task_id, &task.spec.resources.get(), task.key())
        {
            return false;
        }
        task.running = None;
        if !retry_used {
            task.attempts = task.attempts.saturating_sub(1);
        }
        true
    }

    /// A task's result: the task leaves the queue if it was there, and its
    /// result is kept as a finished task's is (within the same bounds).
    fn replay_finished(&mut self, result: TaskResult, owner: Option<String>) {
        let task_id = result.task_id;
        self.count(result.state);
        let finished = Phase::Finished(Box::new(result.clone()));
        let finished_at = result.end_time.unwrap_or(self.now_unix);
        match self.tasks.get_mut(&task_id) {
            Some(task) => {
                task.finished_at = finished_at;
                if let Phase::Unfinished(unfinished) = std::mem::replace(&mut task.phase, finished)
                {
                    if unfinished.running.is_none() {
                        self.queue
                            .remove(&unfinished.spec.resources.get(), unfinished.key());
                    }
                    self.release_held(&unfinished.spec);
                }
            }
            None => {
                self.n_submitted += 1;
                let owner = self.owners.intern(&Identity::from_record(owner));
                self.tasks.insert(
                    task_id,
                    Box::new(Task {
                        phase: finished,
                        watchers: Watchers::default(),
                        owner,
                        num_nodes: 0,
                        seq: self.n_submitted,
                        submitted_at: result.start_time.unwrap_or(self.now_unix),
                        dispatched_at: result.start_time.unwrap_or(f64::NAN),
                        finished_at,
                    }),
                );
            }
        }
        self.keep_finished(task_id, &result);
    }

    /// Gives `sink` the records that rebuild the table as it is: the kept
    /// results oldest first, then the unfinished tasks in queue order, each
    /// running one followed by its start (its nodes from `placement_of`)
    /// and its cancel request. The managers' registrations must come
    /// before.
    pub(crate) fn snapshot(
        &self,
        placement_of: &dyn Fn(TaskId, ManagerId) -> Option<Vec<NodeShare>>,
        sink: &mut dyn FnMut(JournalRecord),
    ) {
        for (task_id, _) in &self.finished {
            if let Some(task) = self.task(*task_id) {
                if let Phase::Finished(result) = &task.phase {
                    sink(JournalRecord::Finished {
                        result: (**result).clone(),
                        owner: self.owners.identity(task.owner).to_record(),
                    });
                }
            }
        }
        let mut unfinished: Vec<(QueueKey, TaskId, &Task, &Unfinished)> = self
            .tasks
            .iter()
            .filter_map(|(task_id, task)| match &task.phase {
                Phase::Unfinished(unfinished) => {
                    Some((unfinished.key(), *task_id, &**task, unfinished))
                }
                Phase::Finished(_) => None,
            })
            .collect();
        unfinished.sort_by_key(|(key, task_id, _, _)| (*key, *task_id));
        for (_, task_id, whole, task) in unfinished {
            let started = task.running.as_ref().and_then(|running| {
                placement_of(task_id, running.manager_id)
                    .map(|placement| (running.manager_id, placement, running.cancel_requested))
            });
            let attempts = if started.is_some() {
                task.attempts.saturating_sub(1)
            } else {
                task.attempts
            };
            sink(JournalRecord::Submitted(task.spec.queued(
                task_id,
                task.sequence,
                attempts,
                whole.submitted_at,
                self.owners.identity(whole.owner),
            )));
            if let Some((manager_id, placement, cancel_requested)) = started {
                sink(JournalRecord::Started {
                    task_id,
                    manager_id,
                    placement,
                });
                if cancel_requested {
                    sink(JournalRecord::CancelRequested { task_id });
                }
            }
        }
    }
}
