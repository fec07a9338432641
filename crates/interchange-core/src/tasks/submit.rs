//! Submission: a task accepted into the queue, or refused with its result.

use super::journal::write_record;
use super::{Admission, Extra, Phase, Task, TaskSpec, TaskTable, Unfinished, Watchers};
use crate::clients::ClientRef;
use protocol::{ErrorKind, Event, RecordRef, TaskId, TaskResult, TaskState, TaskSubmission};

impl TaskTable {
    // -----------------------------------------------------------------
    // Submission
    // -----------------------------------------------------------------

    /// Queues a submitted task that `watcher` watches (and owns), or refuses it with
    /// the result its client gets at once. A refused task is kept as
    /// finished (so that `watch` and `task_status` know it), except a
    /// duplicate id, which leaves the first task alone.
    pub(crate) fn submit(
        &mut self,
        submission: TaskSubmission,
        watcher: &ClientRef,
        admission: Admission,
    ) -> Result<(), Box<TaskResult>> {
        let task_id = submission.task_id;
        self.counters.submitted();
        self.n_submitted += 1;
        if self.tasks.contains_key(&task_id) {
            tracing::warn!(task_id = %task_id, "duplicate task id refused");
            self.count(TaskState::Failed);
            let result = TaskResult::failed_before_start(
                task_id,
                ErrorKind::DuplicateTaskId,
                format!("task id {task_id} was already submitted; each task needs a fresh id"),
            );
            self.counters.finished(&result, None, None, self.now);
            return Err(Box::new(result));
        }
        let input_len = submission
            .input
            .as_ref()
            .map_or(0, |input| input.len() as u64);
        let refusal = if admission.shutting_down {
            Err((
                ErrorKind::Cancelled,
                "the interchange is shutting down and takes no new tasks".to_owned(),
            ))
        } else if let Err(error) = protocol::limits::check_submission(&submission) {
            Err((ErrorKind::InvalidSpec, error.to_string()))
        } else if input_len > admission.max_task_input_bytes {
            Err((
                ErrorKind::InputTooLarge,
                format!(
                    "the task's input has {input_len} bytes; the interchange takes at most \
                     {} bytes per task (max_task_input_bytes, --max-task-input-bytes)",
                    admission.max_task_input_bytes
                ),
            ))
        } else {
            match protocol::validate(&submission.resources) {
                Err(error) => Err((ErrorKind::InvalidSpec, error.to_string())),
                Ok(resources) => match admission.max_block_nodes {
                    Some(limit) if resources.num_nodes > limit => Err((
                        ErrorKind::Unschedulable,
                        format!(
                            "the task needs num_nodes = {} but blocks have at most {limit} nodes \
                             (--max-block-nodes {limit}), so it can never run",
                            resources.num_nodes
                        ),
                    )),
                    _ => Ok(resources),
                },
            }
        };
        let resources = match refusal {
            Ok(resources) => resources,
            Err((kind, message)) => {
                tracing::debug!(task_id = %task_id, %kind, %message, "task not accepted");
                self.emit(Event::TaskSubmitted {
                    task_id,
                    num_nodes: None,
                });
                let result = TaskResult::failed_before_start(task_id, kind, message);
                self.count(result.state);
                self.counters.finished(&result, None, None, self.now);
                write_record(
                    &mut self.journal,
                    &RecordRef::Finished {
                        result: &result,
                        owner: watcher.peer.identity.as_record(),
                    },
                );
                let owner = self.owners.intern(&watcher.peer.identity);
                self.tasks.insert(
                    task_id,
                    Box::new(Task {
                        phase: Phase::Finished(Box::new(result.clone())),
                        watchers: Watchers::default(),
                        owner,
                        num_nodes: 0,
                        seq: self.n_submitted,
                        submitted_at: self.now_unix,
                        dispatched_at: f64::NAN,
                        finished_at: self.now_unix,
                    }),
                );
                self.keep_finished(task_id, &result);
                self.emit_finished(&result);
                return Err(Box::new(result));
            }
        };
        let num_nodes = resources.num_nodes;
        self.emit(Event::TaskSubmitted {
            task_id,
            num_nodes: Some(num_nodes),
        });
        let key = self.queue.push(task_id, &resources);
        let data_bytes = protocol::limits::task_data_bytes(&submission);
        let extra = Extra {
            env: submission.env,
            cwd: submission.cwd,
            stdout: submission.stdout,
            stderr: submission.stderr,
            input: submission.input,
        };
        let submitted_at = self.now_unix;
        let owner = &watcher.peer.identity;
        let spec = TaskSpec::new(submission.command, resources, extra, data_bytes);
        if self.journal.is_some() {
            let resources = spec.resources.get();
            write_record(
                &mut self.journal,
                &RecordRef::Submitted(spec.queued_ref(
                    task_id,
                    &resources,
                    key.sequence(),
                    0,
                    submitted_at,
                    owner,
                )),
            );
        }
        let owner = self.owners.intern(owner);
        let watchers = Watchers::One(watcher.clone());
        self.insert_queued(
            task_id,
            spec,
            key.sequence(),
            0,
            submitted_at,
            (watchers, owner),
        );
        tracing::debug!(task_id = %task_id, num_nodes, "task queued");
        Ok(())
    }

    /// A task is no longer unfinished: what it held of the queued-data
    /// budgets is free.
    pub(super) fn release_held(&mut self, spec: &TaskSpec) {
        self.input_bytes_held = self.input_bytes_held.saturating_sub(spec.input_len());
        self.data_bytes_held = self.data_bytes_held.saturating_sub(spec.data_bytes);
    }

    /// Adds a task queued as the `sequence`th arrival (already in the
    /// queue), with its watchers and its owner's index.
    pub(super) fn insert_queued(
        &mut self,
        task_id: TaskId,
        spec: TaskSpec,
        sequence: u64,
        attempts: u32,
        submitted_at_unix: protocol::UnixTime,
        (watchers, owner): (Watchers, u32),
    ) {
        let num_nodes = spec.resources.num_nodes();
        self.input_bytes_held += spec.input_len();
        self.data_bytes_held += spec.data_bytes;
        self.tasks.insert(
            task_id,
            Box::new(Task {
                phase: Phase::Unfinished(Unfinished {
                    spec,
                    sequence,
                    attempts,
                    running: None,
                    submitted_at: self.now,
                    queued_at: self.now,
                }),
                watchers,
                owner,
                num_nodes,
                seq: self.n_submitted,
                submitted_at: submitted_at_unix,
                dispatched_at: f64::NAN,
                finished_at: f64::NAN,
            }),
        );
    }
}
