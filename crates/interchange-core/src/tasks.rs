//! Every task the interchange knows, and every change of a task's state.
//!
//! This module is the one place a task changes phase: accepted or refused
//! at submission, started on a manager, finished by its result, queued
//! again after its manager was lost, cancelled, or cancelled by shutdown.
//! Queue membership is part of a task's state, so the queue lives here
//! too; matching only reads it.
//!
//! With the journal on, every change here also appends a journal record,
//! framed, to a buffer (drained by the shell through `Core::take_journal`,
//! written before the replies of the same turn are sent); the record
//! borrows what it states from the table ([`RecordRef`]), so nothing is
//! cloned for it. `tasks/replay.rs`
//! rebuilds the table from such records, and writes the records that
//! describe it (a snapshot, for compaction).
//!
//! A task's record is internal: what the client asked to run
//! ([`TaskSpec`], validated), its queue key (kept, so that a retry keeps
//! its place), how often it was sent, and its phase. The wire messages are
//! built when they are sent: [`TaskTable::start`] gives the
//! [`TaskDispatch`] with its placement. A finished task keeps its
//! [`TaskResult`], which is what its watchers get, for late `watch` and
//! `task_status`, within the configured bounds (oldest forgotten first).

use crate::events::EventQueue;
use crate::interface::{Identity, PeerId};
use crate::metrics::TaskCounters;
use crate::queue::{QueueKey, TaskQueue};
use protocol::{
    ErrorKind, Event, JournalRecord, ManagerId, NodeShare, QueuedTask, QueuedTaskRef, RecordRef,
    TaskDispatch, TaskId, TaskResources, TaskResult, TaskState, TaskSubmission,
};
use seam::Time;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

mod replay;

pub(crate) use replay::Replay;

/// What a client asked to run, with its resources validated.
#[derive(Debug)]
struct TaskSpec {
    command: String,
    resources: TaskResources,
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    /// Kept until the task finishes, so that a retry gets it too.
    input: Option<Vec<u8>>,
    /// The bytes of the rest (`protocol::limits::task_data_bytes`).
    data_bytes: u64,
}

impl TaskSpec {
    fn input_len(&self) -> u64 {
        self.input.as_ref().map_or(0, |input| input.len() as u64)
    }

    /// The task as the journal records it, borrowed.
    fn queued_ref<'a>(
        &'a self,
        task_id: TaskId,
        key: QueueKey,
        attempts: u32,
        submitted_at: protocol::UnixTime,
        owner: &'a Identity,
    ) -> QueuedTaskRef<'a> {
        QueuedTaskRef {
            task_id,
            command: &self.command,
            resources: &self.resources,
            env: &self.env,
            cwd: self.cwd.as_deref(),
            stdout: self.stdout.as_deref(),
            stderr: self.stderr.as_deref(),
            input: self.input.as_deref(),
            sequence: key.sequence(),
            attempts,
            submitted_at,
            owner: owner.as_record(),
            data_bytes: self.data_bytes,
        }
    }

    /// The task as the journal records it.
    fn queued(
        &self,
        task_id: TaskId,
        key: QueueKey,
        attempts: u32,
        submitted_at: protocol::UnixTime,
        owner: &Identity,
    ) -> QueuedTask {
        QueuedTask {
            task_id,
            command: self.command.clone(),
            resources: self.resources.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            input: self.input.clone(),
            sequence: key.sequence(),
            attempts,
            submitted_at,
            owner: owner.to_record(),
            data_bytes: self.data_bytes,
        }
    }
}

/// Who a task is for: the clients that get its result, and the identity
/// that owns it.
pub(super) struct People {
    pub(super) watchers: BTreeSet<PeerId>,
    pub(super) owner: Identity,
}

/// An unfinished task: queued, or running on a manager.
#[derive(Debug)]
struct Unfinished {
    spec: TaskSpec,
    /// Its place in the queue, kept while it runs so that a retry goes
    /// back to the same place.
    key: QueueKey,
    /// Times it was sent to a manager (0 while it waits for its first).
    attempts: u32,
    /// Where it runs; `None` while it is queued.
    running: Option<Running>,
    /// When it was submitted (on the core's clock and the wall clock), and
    /// when it last entered the queue.
    submitted_at: Time,
    submitted_at_unix: protocol::UnixTime,
    queued_at: Time,
}

#[derive(Debug)]
struct Running {
    manager_id: ManagerId,
    cancel_requested: bool,
    /// The wall time it was sent, for the dispatch latency.
    dispatched_at_unix: protocol::UnixTime,
}

#[derive(Debug)]
enum Phase {
    Unfinished(Box<Unfinished>),
    Finished(Box<TaskResult>),
}

#[derive(Debug)]
struct Task {
    phase: Phase,
    /// Clients that get the result (while the task is unfinished).
    watchers: BTreeSet<PeerId>,
    /// The client identity that submitted it: only it (or an admin) may
    /// watch, see or cancel it.
    owner: Identity,
    /// What `tasks` lists besides its phase.
    listed: Listed,
}

/// What the `tasks` listing shows of a task besides its phase (wall times
/// on the interchange's clock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listed {
    /// Its place in submission order.
    pub(crate) seq: u64,
    pub(crate) submitted_at: protocol::UnixTime,
    /// 0 if its specification was invalid.
    pub(crate) num_nodes: u32,
    /// When it was last sent to a manager.
    pub(crate) dispatched_at: Option<protocol::UnixTime>,
    /// When it got its result.
    pub(crate) finished_at: Option<protocol::UnixTime>,
}

/// A task's phase as the status views see it.
#[derive(Debug)]
pub(crate) enum TaskView<'a> {
    Queued(&'a TaskResources),
    Running(ManagerId),
    Finished(&'a TaskResult),
}

/// A task's result and the clients that get it.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) watchers: BTreeSet<PeerId>,
    pub(crate) result: Box<TaskResult>,
}

/// What a client's `cancel` did.
#[derive(Debug)]
pub(crate) enum Cancelled {
    Unknown,
    AlreadyFinished(TaskState),
    /// It was queued: it is finished as cancelled.
    WhileQueued(Delivery),
    /// It runs there: the manager must be told.
    Running(ManagerId),
}

/// What `watch` found.
#[derive(Debug)]
pub(crate) enum Watched {
    Unknown,
    Finished(Box<TaskResult>),
    Unfinished,
}

/// What became of a task its manager lost.
#[derive(Debug)]
pub(crate) enum Lost {
    QueuedAgain,
    Failed(Delivery),
}

/// How a task left its manager: the manager's id and block, and why.
#[derive(Debug)]
pub(crate) struct Loss<'a> {
    pub(crate) manager_id: ManagerId,
    pub(crate) block_id: &'a str,
    pub(crate) kind: ErrorKind,
    pub(crate) message: &'a str,
    /// Whether a task with retries left goes back to the queue.
    pub(crate) may_retry: bool,
}

/// Results by state, for `status`.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) n_completed: u64,
    pub(crate) n_failed: u64,
    pub(crate) n_cancelled: u64,
}

/// What, besides the task itself, decides whether a submission is queued.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    pub(crate) shutting_down: bool,
    pub(crate) max_block_nodes: Option<u32>,
    pub(crate) max_task_input_bytes: u64,
}

/// The tasks, the queue of those waiting, and the kept results.
#[derive(Debug)]
pub(crate) struct TaskTable {
    tasks: HashMap<TaskId, Task>,
    queue: TaskQueue,
    /// Finished tasks whose results are kept, oldest first, with the bytes
    /// each result takes; and the sum of those bytes.
    finished: VecDeque<(TaskId, usize)>,
    finished_bytes: usize,
    /// The input bytes of the unfinished tasks, and the bytes of the rest
    /// of their data (command, environment, paths, launcher options).
    input_bytes_held: u64,
    data_bytes_held: u64,
    max_finished_results: usize,
    max_finished_bytes: usize,
    default_retries: u32,
    counts: Counts,
    /// What the metrics count, and the time of the input being handled
    /// (monotonic, and as wall time) that they measure durations by.
    counters: TaskCounters,
    now: Time,
    now_unix: protocol::UnixTime,
    /// Task events for the event log (`events.rs`).
    events: EventQueue,
    /// Tasks submitted so far (the next `Listed::seq`).
    n_submitted: u64,
    /// The journal's frames not yet drained ([`protocol::journal::frame`]);
    /// `None` with the journal off.
    journal: Option<Frames>,
}

impl TaskTable {
    pub(crate) fn new(
        max_finished_results: usize,
        max_finished_bytes: usize,
        default_retries: u32,
        record_events: bool,
    ) -> Self {
        Self {
            tasks: HashMap::new(),
            queue: TaskQueue::default(),
            finished: VecDeque::new(),
            finished_bytes: 0,
            input_bytes_held: 0,
            data_bytes_held: 0,
            max_finished_results,
            max_finished_bytes,
            default_retries,
            counts: Counts::default(),
            counters: TaskCounters::default(),
            now: Time::ZERO,
            now_unix: 0.0,
            events: EventQueue::new(record_events),
            n_submitted: 0,
            journal: None,
        }
    }

    pub(crate) fn events_mut(&mut self) -> &mut EventQueue {
        &mut self.events
    }

    fn emit(&mut self, event: Event) {
        self.events.push(self.now_unix, event);
    }

    /// Times the task was sent to a manager (0 if unknown or never).
    pub(crate) fn attempts(&self, task_id: TaskId) -> u32 {
        match self.tasks.get(&task_id).map(|task| &task.phase) {
            Some(Phase::Unfinished(task)) => task.attempts,
            _ => 0,
        }
    }

    /// Appends a journal record, if the journal is on.
    fn record(&mut self, record: RecordRef<'_>) {
        write_record(&mut self.journal, &record);
    }

    /// The time of the input being handled, `now` on the core's clock and
    /// `now_unix` on the wall clock: what the metrics measure by.
    pub(crate) fn set_time(&mut self, now: Time, now_unix: protocol::UnixTime) {
        self.now = now;
        self.now_unix = now_unix;
    }

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
        self.tasks.get(&task_id).map(|task| &task.owner)
    }

    pub(crate) fn view(&self, task_id: TaskId) -> Option<TaskView<'_>> {
        self.tasks.get(&task_id).map(|task| match &task.phase {
            Phase::Unfinished(task) => match &task.running {
                None => TaskView::Queued(&task.spec.resources),
                Some(running) => TaskView::Running(running.manager_id),
            },
            Phase::Finished(result) => TaskView::Finished(result),
        })
    }

    /// Every task with what a listing shows of it, in no order.
    pub(crate) fn list(&self) -> impl Iterator<Item = (TaskId, TaskView<'_>, Listed)> {
        self.tasks.iter().filter_map(|(task_id, task)| {
            let view = self.view(*task_id)?;
            Some((*task_id, view, task.listed))
        })
    }

    /// The walltime of a queued task.
    pub(crate) fn walltime_of_queued(&self, task_id: TaskId) -> Option<Duration> {
        self.queued(task_id)?
            .spec
            .resources
            .walltime
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
    }

    fn queued(&self, task_id: TaskId) -> Option<&Unfinished> {
        match self.tasks.get(&task_id).map(|task| &task.phase) {
            Some(Phase::Unfinished(task)) if task.running.is_none() => Some(task),
            _ => None,
        }
    }

    // -----------------------------------------------------------------
    // Submission
    // -----------------------------------------------------------------

    /// Queues a submitted task that `watcher` watches, or refuses it with
    /// the result its client gets at once. A refused task is kept as
    /// finished (so that `watch` and `task_status` know it), except a
    /// duplicate id, which leaves the first task alone.
    pub(crate) fn submit(
        &mut self,
        submission: TaskSubmission,
        watcher: &PeerId,
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
                        owner: watcher.identity.as_record(),
                    },
                );
                self.tasks.insert(
                    task_id,
                    Task {
                        phase: Phase::Finished(Box::new(result.clone())),
                        watchers: BTreeSet::new(),
                        owner: watcher.identity.clone(),
                        listed: Listed {
                            seq: self.n_submitted,
                            submitted_at: self.now_unix,
                            num_nodes: 0,
                            dispatched_at: None,
                            finished_at: Some(self.now_unix),
                        },
                    },
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
        let spec = TaskSpec {
            command: submission.command,
            resources,
            env: submission.env,
            cwd: submission.cwd,
            stdout: submission.stdout,
            stderr: submission.stderr,
            input: submission.input,
            data_bytes,
        };
        let submitted_at = self.now_unix;
        let owner = watcher.identity.clone();
        write_record(
            &mut self.journal,
            &RecordRef::Submitted(spec.queued_ref(task_id, key, 0, submitted_at, &owner)),
        );
        let people = People {
            watchers: BTreeSet::from([watcher.clone()]),
            owner,
        };
        self.insert_queued(task_id, spec, key, 0, submitted_at, people);
        tracing::debug!(task_id = %task_id, num_nodes, "task queued");
        Ok(())
    }

    /// A task is no longer unfinished: what it held of the queued-data
    /// budgets is free.
    fn release_held(&mut self, spec: &TaskSpec) {
        self.input_bytes_held = self.input_bytes_held.saturating_sub(spec.input_len());
        self.data_bytes_held = self.data_bytes_held.saturating_sub(spec.data_bytes);
    }

    /// Adds a task queued under `key` (already in the queue).
    fn insert_queued(
        &mut self,
        task_id: TaskId,
        spec: TaskSpec,
        key: QueueKey,
        attempts: u32,
        submitted_at_unix: protocol::UnixTime,
        people: People,
    ) {
        let People { watchers, owner } = people;
        let resources_nodes = spec.resources.num_nodes;
        self.input_bytes_held += spec.input_len();
        self.data_bytes_held += spec.data_bytes;
        self.tasks.insert(
            task_id,
            Task {
                phase: Phase::Unfinished(Box::new(Unfinished {
                    spec,
                    key,
                    attempts,
                    running: None,
                    submitted_at: self.now,
                    submitted_at_unix,
                    queued_at: self.now,
                })),
                watchers,
                owner,
                listed: Listed {
                    seq: self.n_submitted,
                    submitted_at: submitted_at_unix,
                    num_nodes: resources_nodes,
                    dispatched_at: None,
                    finished_at: None,
                },
            },
        );
    }

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
        let Some(Task {
            phase: Phase::Unfinished(task),
            listed,
            ..
        }) = self.tasks.get_mut(&task_id)
        else {
            return None;
        };
        if task.running.is_some() {
            return None;
        }
        listed.dispatched_at = Some(self.now_unix);
        self.queue.remove(&task.spec.resources, task.key);
        task.attempts += 1;
        task.running = Some(Running {
            manager_id,
            cancel_requested: false,
            dispatched_at_unix: self.now_unix,
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
        tracing::debug!(task_id = %task_id, manager_id = %manager_id, num_nodes = spec.resources.num_nodes, attempt = task.attempts, backfill, "task sent");
        let dispatch = TaskDispatch {
            task_id,
            command: spec.command.clone(),
            resources: spec.resources.clone(),
            placement,
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            stdout: spec.stdout.clone(),
            stderr: spec.stderr.clone(),
            input: spec.input.clone(),
        };
        Some(dispatch)
    }

    // -----------------------------------------------------------------
    // Results
    // -----------------------------------------------------------------

    fn emit_finished(&mut self, result: &TaskResult) {
        self.emit(Event::TaskFinished {
            task_id: result.task_id,
            state: result.state,
            exit_code: result.exit_code,
            error_kind: result.error.as_ref().map(|error| error.kind),
            manager_id: result.manager_id,
        });
    }

    fn count(&mut self, state: TaskState) {
        match state {
            TaskState::Completed => self.counts.n_completed += 1,
            TaskState::Cancelled => self.counts.n_cancelled += 1,
            _ => self.counts.n_failed += 1,
        }
    }

    /// Keeps a finished task's result for late `watch` and `task_status`,
    /// forgetting the oldest kept results beyond the configured bounds.
    fn keep_finished(&mut self, task_id: TaskId, result: &TaskResult) {
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
            if matches!(
                self.tasks.get(&oldest).map(|task| &task.phase),
                Some(Phase::Finished(_))
            ) {
                self.tasks.remove(&oldest);
            }
        }
    }

    /// Records the one result of a task; gives it with the clients that
    /// watched the task.
    pub(crate) fn finish(&mut self, task_id: TaskId, result: TaskResult) -> Delivery {
        if self.journal.is_some() {
            let owner = self
                .tasks
                .get(&task_id)
                .and_then(|task| task.owner.as_record());
            write_record(
                &mut self.journal,
                &RecordRef::Finished {
                    result: &result,
                    owner,
                },
            );
        }
        self.count(result.state);
        let (submitted_at, dispatched_at_unix) = match self.tasks.get(&task_id) {
            Some(Task {
                phase: Phase::Unfinished(task),
                ..
            }) => (
                Some(task.submitted_at),
                task.running
                    .as_ref()
                    .map(|running| running.dispatched_at_unix),
            ),
            _ => (None, None),
        };
        self.counters
            .finished(&result, submitted_at, dispatched_at_unix, self.now);
        let watchers = match self.tasks.get_mut(&task_id) {
            Some(task) => {
                task.listed.finished_at = Some(self.now_unix);
                let before =
                    std::mem::replace(&mut task.phase, Phase::Finished(Box::new(result.clone())));
                let watchers = std::mem::take(&mut task.watchers);
                if let Phase::Unfinished(unfinished) = before {
                    self.release_held(&unfinished.spec);
                }
                watchers
            }
            None => BTreeSet::new(),
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
        let attempts = match self.tasks.get(&task_id).map(|task| &task.phase) {
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
    fn queue_again(&mut self, task_id: TaskId, manager_id: ManagerId) -> bool {
        let default_retries = self.default_retries;
        let Some(Task {
            phase: Phase::Unfinished(task),
            ..
        }) = self.tasks.get_mut(&task_id)
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
        let budget = task.spec.resources.retries.unwrap_or(default_retries);
        if task.attempts > budget
            || !self
                .queue
                .push_with_key(task_id, &task.spec.resources, task.key)
        {
            return false;
        }
        task.running = None;
        task.queued_at = self.now;
        self.counters.requeued();
        let attempts = task.attempts;
        self.emit(Event::TaskRetried {
            task_id,
            manager_id,
        });
        self.record(RecordRef::Requeued {
            task_id,
            retry_used: true,
        });
        tracing::info!(
            task_id = %task_id,
            attempt = attempts + 1,
            manager_id = %manager_id,
            "task queued again in its old place: its manager was lost"
        );
        true
    }

    /// A dispatch of this task to `manager_id` could not be delivered (the
    /// manager's connection is gone): the task goes back to the queue in
    /// its old place without using a retry, or, if a cancel was asked
    /// meanwhile, ends as cancelled. `None` if it is not running there.
    pub(crate) fn undelivered(&mut self, task_id: TaskId, manager_id: ManagerId) -> Option<Lost> {
        let Some(Task {
            phase: Phase::Unfinished(task),
            ..
        }) = self.tasks.get_mut(&task_id)
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
            .push_with_key(task_id, &task.spec.resources, task.key)
        {
            return None;
        }
        task.running = None;
        task.attempts = task.attempts.saturating_sub(1);
        task.queued_at = self.now;
        self.counters.requeued();
        self.emit(Event::TaskRetried {
            task_id,
            manager_id,
        });
        self.record(RecordRef::Requeued {
            task_id,
            retry_used: false,
        });
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
            self.tasks.get(&task_id).map(|task| &task.phase),
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
                None => (&unfinished.spec.resources, unfinished.key),
            },
        };
        self.queue.remove(resources, key);
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

    /// `peer` watches the task: an unfinished one sends it its result when
    /// it ends; a finished one gives its result now.
    pub(crate) fn watch(&mut self, task_id: TaskId, peer: &PeerId) -> Watched {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Watched::Unknown;
        };
        match &task.phase {
            Phase::Finished(result) => Watched::Finished(result.clone()),
            Phase::Unfinished(_) => {
                task.watchers.insert(peer.clone());
                Watched::Unfinished
            }
        }
    }

    /// `peer` no longer watches the task.
    pub(crate) fn unwatch(&mut self, task_id: TaskId, peer: &PeerId) {
        if let Some(task) = self.tasks.get_mut(&task_id) {
            task.watchers.remove(peer);
        }
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
        let Some(Phase::Unfinished(task)) = self.tasks.get(&task_id).map(|task| &task.phase) else {
            return None;
        };
        let running = task
            .running
            .as_ref()
            .filter(|running| running.manager_id == manager_id)?;
        let walltime = task
            .spec
            .resources
            .walltime
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
        Some((running.cancel_requested, walltime))
    }
}

/// About how many bytes a kept result takes: its variable-size parts plus
/// a fixed overhead for the rest and the table entries.
fn result_size(result: &TaskResult) -> usize {
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

/// The journal's frames not yet drained, and how far `Core::poll_journal`
/// has read them.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    bytes: Vec<u8>,
    read: usize,
}

/// Appends `record`, framed, if the journal is on.
fn write_record(journal: &mut Option<Frames>, record: &RecordRef<'_>) {
    if let Some(frames) = journal {
        protocol::journal::frame(&mut frames.bytes, record);
    }
}

/// [`write_record`] for a record the core builds whole (rare ones).
fn write_owned(journal: &mut Option<Frames>, record: &JournalRecord) {
    if let Some(frames) = journal {
        protocol::journal::frame(&mut frames.bytes, record);
    }
}
