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
//! cloned for it. `replay.rs` rebuilds the table from such records, and
//! writes the records that describe it (a snapshot, for compaction).
//!
//! A task's record is internal: what the client asked to run
//! ([`TaskSpec`], validated), its queue key (kept, so that a retry keeps
//! its place), how often it was sent, and its phase. The wire messages are
//! built when they are sent: [`TaskTable::start`] gives the
//! [`TaskDispatch`] with its placement. A finished task keeps its
//! [`TaskResult`], which is what its watchers get, for late `watch` and
//! `task_status`, within the configured bounds (oldest forgotten first).
//!
//! The table's state and types are here; its methods are in the children:
//! `submit.rs` (a submission accepted or refused), `changes.rs` (every
//! change after it: start, result, loss, retry, cancel, watchers),
//! `views.rs` (what the status views, listings and ownership checks read),
//! `journal.rs` (the records the changes append and their draining) and
//! `replay.rs` (recovery and snapshots).

use crate::events::EventQueue;
use crate::interface::{Identity, PeerId};
use crate::metrics::TaskCounters;
use crate::queue::{QueueKey, TaskQueue};
use protocol::{ErrorKind, Event, ManagerId, TaskId, TaskResources, TaskResult, TaskState};
use seam::Time;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

mod changes;
mod journal;
mod replay;
mod submit;
mod views;

use journal::Frames;
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
    pub(super) fn input_len(&self) -> u64 {
        self.input.as_ref().map_or(0, |input| input.len() as u64)
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

    pub(super) fn emit(&mut self, event: Event) {
        self.events.push(self.now_unix, event);
    }

    /// The time of the input being handled, `now` on the core's clock and
    /// `now_unix` on the wall clock: what the metrics measure by.
    pub(crate) fn set_time(&mut self, now: Time, now_unix: protocol::UnixTime) {
        self.now = now;
        self.now_unix = now_unix;
    }
}
