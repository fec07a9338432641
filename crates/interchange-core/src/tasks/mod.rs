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

use crate::clients::ClientRef;
use crate::events::EventQueue;
use crate::interface::Identity;
use crate::metrics::TaskCounters;
use crate::queue::{QueueKey, Shape, TaskQueue};
use compact_str::CompactString;
use protocol::{ErrorKind, Event, ManagerId, TaskId, TaskResources, TaskResult, TaskState};
use seam::Time;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};

mod changes;
mod journal;
mod replay;
mod submit;
mod views;

use journal::Frames;
pub(crate) use replay::Replay;

/// What a client asked to run, with its resources validated. Kept
/// compact, as every queued task holds one: what most tasks leave out
/// (environment, paths, input; priority, walltime, retries, launcher
/// options) is boxed apart, and absent when empty.
#[derive(Debug)]
struct TaskSpec {
    /// Inline up to 24 bytes ("true", "$PARSL_MPI_PREFIX ./app"), so that
    /// a short command takes no allocation of its own.
    command: CompactString,
    resources: Resources,
    /// `None` when the task has no environment, paths or input.
    extra: Option<Box<Extra>>,
    /// The bytes of the rest (`protocol::limits::task_data_bytes`).
    data_bytes: u64,
}

/// The parts of a [`TaskSpec`] that most tasks leave out.
#[derive(Debug, Default)]
struct Extra {
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    /// Kept until the task finishes, so that a retry gets it too.
    input: Option<Vec<u8>>,
}

/// No environment: what a spec without [`Extra`] lends the journal.
static NO_ENV: BTreeMap<String, String> = BTreeMap::new();

/// Validated resources: the common kind (no priority, walltime, retries
/// or launcher options) inline, the rest boxed.
#[derive(Debug)]
enum Resources {
    Plain {
        num_nodes: u32,
        ranks_per_node: u32,
        num_ranks: u32,
        exclusive: bool,
    },
    Full(Box<TaskResources>),
}

impl Resources {
    fn new(resources: TaskResources) -> Self {
        match resources {
            TaskResources {
                num_nodes,
                ranks_per_node,
                num_ranks,
                launcher_options: None,
                priority: None,
                walltime: None,
                retries: None,
                exclusive,
            } => Resources::Plain {
                num_nodes,
                ranks_per_node,
                num_ranks,
                exclusive,
            },
            resources => Resources::Full(Box::new(resources)),
        }
    }

    /// The resources as the protocol states them (built without
    /// allocating for the plain kind).
    fn get(&self) -> Cow<'_, TaskResources> {
        match self {
            Resources::Plain {
                num_nodes,
                ranks_per_node,
                num_ranks,
                exclusive,
            } => Cow::Owned(TaskResources {
                num_nodes: *num_nodes,
                ranks_per_node: *ranks_per_node,
                num_ranks: *num_ranks,
                launcher_options: None,
                priority: None,
                walltime: None,
                retries: None,
                exclusive: *exclusive,
            }),
            Resources::Full(resources) => Cow::Borrowed(resources),
        }
    }

    fn num_nodes(&self) -> u32 {
        match self {
            Resources::Plain { num_nodes, .. } => *num_nodes,
            Resources::Full(resources) => resources.num_nodes,
        }
    }

    fn walltime(&self) -> Option<f64> {
        match self {
            Resources::Plain { .. } => None,
            Resources::Full(resources) => resources.walltime,
        }
    }

    fn retries(&self) -> Option<u32> {
        match self {
            Resources::Plain { .. } => None,
            Resources::Full(resources) => resources.retries,
        }
    }
}

impl TaskSpec {
    fn new(command: String, resources: TaskResources, extra: Extra, data_bytes: u64) -> Self {
        let extra = (!extra.env.is_empty()
            || extra.cwd.is_some()
            || extra.stdout.is_some()
            || extra.stderr.is_some()
            || extra.input.is_some())
        .then(|| Box::new(extra));
        Self {
            command: CompactString::from(command),
            resources: Resources::new(resources),
            extra,
            data_bytes,
        }
    }

    pub(super) fn input_len(&self) -> u64 {
        self.input().map_or(0, |input| input.len() as u64)
    }

    fn input(&self) -> Option<&[u8]> {
        self.extra.as_ref()?.input.as_deref()
    }

    fn env(&self) -> &BTreeMap<String, String> {
        self.extra.as_ref().map_or(&NO_ENV, |extra| &extra.env)
    }

    fn path(&self, pick: impl Fn(&Extra) -> &Option<String>) -> Option<&str> {
        self.extra
            .as_deref()
            .and_then(|extra| pick(extra).as_deref())
    }

    fn key(&self, sequence: u64) -> QueueKey {
        QueueKey::new(&self.resources.get(), sequence)
    }
}

/// The clients that get a task's result (while it is unfinished):
/// nearly always just the one that submitted it, so one is kept inline.
/// A client that left stays here, marked gone, until the task ends.
#[derive(Debug)]
pub(crate) enum Watchers {
    One(ClientRef),
    /// Nobody (empty, which allocates nothing), or more than one.
    Many(Box<[ClientRef]>),
}

impl Default for Watchers {
    fn default() -> Self {
        Watchers::Many(Box::default())
    }
}

impl Watchers {
    fn add(&mut self, client: &ClientRef) {
        if self.iter().any(|known| ClientRef::ptr_eq(known, client)) {
            return;
        }
        *self = match std::mem::take(self) {
            Watchers::Many(all) if all.is_empty() => Watchers::One(client.clone()),
            Watchers::One(first) => Watchers::Many(Box::new([first, client.clone()])),
            Watchers::Many(all) => {
                let mut all = all.into_vec();
                all.push(client.clone());
                Watchers::Many(all.into_boxed_slice())
            }
        };
    }

    /// The watchers, the gone ones too.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &ClientRef> {
        let (one, many): (Option<&ClientRef>, &[ClientRef]) = match self {
            Watchers::One(client) => (Some(client), &[]),
            Watchers::Many(all) => (None, all),
        };
        one.into_iter().chain(many)
    }
}

/// The owners of the tasks, each identity stored once: a task keeps its
/// owner's index.
#[derive(Debug, Default)]
struct Owners {
    identities: Vec<Identity>,
    index: HashMap<Identity, u32>,
}

impl Owners {
    fn intern(&mut self, identity: &Identity) -> u32 {
        if let Some(index) = self.index.get(identity) {
            return *index;
        }
        let index = u32::try_from(self.identities.len()).unwrap_or(u32::MAX);
        self.identities.push(identity.clone());
        self.index.insert(identity.clone(), index);
        index
    }

    fn identity(&self, index: u32) -> &Identity {
        self.identities
            .get(index as usize)
            .unwrap_or(&Identity::Unauthenticated)
    }
}

/// An unfinished task: queued, or running on a manager.
#[derive(Debug)]
struct Unfinished {
    spec: TaskSpec,
    /// Its arrival number: with its priority, its place in the queue
    /// ([`TaskSpec::key`]), kept while it runs so that a retry goes back
    /// to the same place.
    sequence: u64,
    /// Times it was sent to a manager (0 while it waits for its first).
    attempts: u32,
    /// Where it runs; `None` while it is queued.
    running: Option<Running>,
    /// When it was submitted, and when it last entered the queue (on the
    /// core's clock).
    submitted_at: Time,
    queued_at: Time,
}

impl Unfinished {
    fn key(&self) -> QueueKey {
        self.spec.key(self.sequence)
    }
}

#[derive(Debug)]
struct Running {
    manager_id: ManagerId,
    cancel_requested: bool,
}

#[derive(Debug)]
enum Phase {
    Unfinished(Unfinished),
    Finished(Box<TaskResult>),
}

/// A task, boxed in the table (so that the table's spare capacity costs a
/// pointer, not a task).
#[derive(Debug)]
struct Task {
    phase: Phase,
    /// Clients that get the result (while the task is unfinished).
    watchers: Watchers,
    /// The client identity that submitted it (an index in
    /// [`TaskTable::owners`]): only it (or an admin) may watch, see or
    /// cancel it.
    owner: u32,
    /// 0 if its specification was invalid.
    num_nodes: u32,
    /// Its place in submission order.
    seq: u64,
    /// Wall times: submitted, last sent to a manager (what the dispatch
    /// latency of a running task counts from), finished (NaN: not yet, or
    /// not known after a restart).
    submitted_at: protocol::UnixTime,
    dispatched_at: protocol::UnixTime,
    finished_at: protocol::UnixTime,
}

impl Task {
    /// What the `tasks` listing shows besides the phase.
    fn listed(&self) -> Listed {
        let known = |time: f64| (!time.is_nan()).then_some(time);
        Listed {
            seq: self.seq,
            submitted_at: self.submitted_at,
            num_nodes: self.num_nodes,
            dispatched_at: known(self.dispatched_at),
            finished_at: known(self.finished_at),
        }
    }
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
    Queued(Shape),
    Running(ManagerId),
    Finished(&'a TaskResult),
}

/// A task's result and the clients that get it.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) watchers: Watchers,
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
    tasks: HashMap<TaskId, Box<Task>>,
    queue: TaskQueue,
    owners: Owners,
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
            owners: Owners::default(),
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
    fn task(&self, task_id: TaskId) -> Option<&Task> {
        self.tasks.get(&task_id).map(|task| &**task)
    }

    fn task_mut(&mut self, task_id: TaskId) -> Option<&mut Task> {
        self.tasks.get_mut(&task_id).map(|task| &mut **task)
    }

    pub(crate) fn set_time(&mut self, now: Time, now_unix: protocol::UnixTime) {
        self.now = now;
        self.now_unix = now_unix;
    }
}

#[cfg(test)]
mod tests {
    use super::Watchers;
    use crate::clients::Clients;
    use crate::interface::PeerId;

    /// A short command is kept inline and the task in one allocation of
    /// 160 bytes (176 with malloc's header), what a queued task costs
    /// besides the table and the queue.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_task_record_stays_small() {
        assert_eq!(std::mem::size_of::<super::Task>(), 160);
        let spec = super::TaskSpec::new(
            "$PARSL_MPI_PREFIX ./app".to_owned(),
            protocol::TaskResources::serial(),
            super::Extra::default(),
            0,
        );
        assert!(!spec.command.is_heap_allocated());
    }

    #[test]
    fn watchers_keep_each_client_once_in_order() {
        let mut clients = Clients::default();
        let peers: Vec<PeerId> = (0..3u8).map(|n| PeerId::unauthenticated(vec![n])).collect();
        for peer in &peers {
            clients.welcome(peer);
        }
        let refs: Vec<_> = peers.iter().filter_map(|peer| clients.get(peer)).collect();
        let mut watchers = Watchers::default();
        assert_eq!(watchers.iter().count(), 0);
        for client in [&refs[0], &refs[0], &refs[1], &refs[2], &refs[1]] {
            watchers.add(client);
        }
        let seen: Vec<&PeerId> = watchers.iter().map(|client| &client.peer).collect();
        assert_eq!(seen, peers.iter().collect::<Vec<_>>());
        clients.forget(&peers[1]);
        let here: Vec<&PeerId> = watchers
            .iter()
            .filter(|client| client.is_here())
            .map(|client| &client.peer)
            .collect();
        assert_eq!(here, vec![&peers[0], &peers[2]]);
    }
}
