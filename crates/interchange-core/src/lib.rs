//! The interchange's pure state machine: task queue, manager table,
//! matching, heartbeats and client commands.
//!
//! The seam: the shell feeds inputs (`handle_client_frame`,
//! `handle_manager_frame`, `handle_client_unreachable`, `handle_timeout`,
//! `handle_terminate`) with the current [`Time`], and drains outputs with
//! [`Core::poll_output`] (messages to send, in order, and finally
//! [`Output::Exit`]) and the next deadline with [`Core::poll_timeout`].
//! Peers are opaque routing ids ([`PeerId`]) on the client socket and on the
//! manager socket. Nothing here reads a clock, touches a socket or panics on
//! what a peer sends: bad input is logged, counted (`n_bad_messages`) and
//! dropped or refused.
//!
//! Matching sends a task only to a manager that can start it at once (a
//! registered manager, not held, not draining), and chooses its exact
//! placement: `TaskDispatch.placement` names the node indexes and slots.
//! Each manager has `slots_per_node` S (from its registration, else its
//! `cpu_count`, at least 1) and the core counts the free slots of every
//! node. An exclusive task (the default) takes `num_nodes` whole free nodes
//! (S slots each); a non-exclusive one takes `ranks_per_node` R slots on
//! each of `num_nodes` distinct nodes, the nodes with the fewest free slots
//! that suffice, sharing them with other non-exclusive tasks only. A task
//! with R > S never goes to that manager. A result frees exactly what its
//! task was given.
//!
//! Among the managers where a task fits, `Placement::BestFit` takes the
//! tightest (fewest whole free nodes for an exclusive task; for a
//! non-exclusive one, the node with the fewest free slots that suffice) and
//! `Placement::NewestBlock` the most recently registered. Tasks go in queue
//! order (smaller priority first, no priority last, FIFO within a priority).
//! The first task that cannot start anywhere but could on some manager once
//! its tasks end (the *holder*) reserves the manager where it can start
//! soonest, so that smaller tasks cannot starve it (EASY backfill; see
//! `matching.rs`); a task too large for every manager holds nothing back.
//! A task lost with its manager (silent past the threshold, or gone without
//! reporting it, outside shutdown) is queued again with its original
//! priority and age while it has retries left (`retries`, else
//! `CoreConfig::default_retries`); the dropped manager's late messages are
//! answered with `refused`, so no task is reported twice.
//!
//! Costs per event: a dispatch is O(B · log) for B queue buckets (task
//! shapes × walltime classes) plus O(log) per node given; a result frees in
//! O(log) per node; no input scans all tasks or all managers, except
//! choosing a reservation (a scan of the managers and their running tasks,
//! only when the holder changes and a task behind it could start, or its
//! manager leaves or stops accepting tasks), `status`, heartbeats and
//! expiry checks (per manager by nature), and hold/drain (O(nodes of that
//! manager)). See `queue.rs`, `managers.rs` and `matching.rs`.

mod managers;
mod matching;
pub mod provider;
mod queue;
#[cfg(test)]
mod tests;

use managers::{Manager, ManagerTable};
use matching::Reservation;
use protocol::{
    BlockInfo, Command, ErrorKind, FromClient, FromManager, ManagerId, ManagerInfo, Registration,
    Reply, StatusReport, TaskDispatch, TaskId, TaskResult, TaskState, TaskStatusInfo,
    TaskSubmission, ToClient, ToManager, UnixTime, WaitingGroup, PROTOCOL_VERSION, RHTEX_VERSION,
};
use queue::{QueueKey, Shape, TaskQueue};
pub use seam::Time;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

/// The routing id of a peer, as the ROUTER socket gives it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub Vec<u8>);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a message on the client socket.
    ToClient(PeerId, ToClient),
    /// Send a message on the manager socket.
    ToManager(PeerId, ToManager),
    /// Shutdown is complete: send what came before, then exit. Comes once,
    /// last.
    Exit,
}

/// The settings the core needs.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// How often `heartbeat` goes to every manager.
    pub heartbeat_period: Duration,
    /// A manager silent this long is dropped and its tasks fail.
    pub heartbeat_threshold: Duration,
    /// Tasks needing more nodes than this fail at once as unschedulable.
    pub max_block_nodes: Option<u32>,
    /// Finished results kept for late `watch` and `task_status`: at most
    /// this many...
    pub max_finished_results: usize,
    /// ...taking at most about this many bytes. The oldest go first.
    pub max_finished_bytes: usize,
    /// After `shutdown`, how long to wait for every manager's `goodbye`.
    pub shutdown_grace: Duration,
    /// The wall-clock time (seconds since the epoch) at `Time(0)`.
    pub wall_clock_at_zero: UnixTime,
    /// How to choose among the managers that can start a task now.
    pub placement: Placement,
    /// How many times a task without `retries` in its specification is
    /// queued again after its manager was lost.
    pub default_retries: u32,
}

impl Default for CoreConfig {
    /// The daemon's defaults, with `Time(0)` at the epoch.
    fn default() -> Self {
        Self {
            heartbeat_period: Duration::from_secs(30),
            heartbeat_threshold: Duration::from_secs(120),
            max_block_nodes: None,
            max_finished_results: 100_000,
            max_finished_bytes: 512 * 1024 * 1024,
            shutdown_grace: SHUTDOWN_GRACE,
            wall_clock_at_zero: 0.0,
            placement: Placement::BestFit,
            default_retries: 0,
        }
    }
}

/// How a task chooses among the managers that can start it now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// The manager whose free capacity fits the task most tightly, keeping
    /// large holes for large tasks.
    #[default]
    BestFit,
    /// The manager that registered last, so that older blocks go idle and
    /// can be released.
    NewestBlock,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::BestFit => "best-fit",
            Placement::NewestBlock => "newest-block",
        }
    }
}

impl std::str::FromStr for Placement {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "best-fit" => Ok(Placement::BestFit),
            "newest-block" => Ok(Placement::NewestBlock),
            other => Err(format!(
                "unknown placement {other:?}; valid placements are best-fit, newest-block"
            )),
        }
    }
}

/// What the queue asks of blocks, for a provider deciding how many to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Tasks waiting in the queue.
    pub n_queued_tasks: u64,
    /// The sum of `num_nodes` over the queued tasks (an upper bound on the
    /// nodes that would start them all at once).
    pub n_queued_nodes: u64,
    /// The largest `num_nodes` of a queued task (0 with an empty queue).
    pub max_task_nodes: u32,
}

/// One registered manager as a provider sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagerView {
    pub manager_id: ManagerId,
    pub block_id: String,
    pub n_nodes: u32,
    pub n_running_tasks: u32,
    pub draining: bool,
    pub held: bool,
}

/// Default bound on the wait for managers' `goodbye` after `shutdown`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Phase {
    Queued {
        dispatch: Box<TaskDispatch>,
        key: QueueKey,
        /// Times it was sent to a manager before (0 on its first wait).
        attempts: u32,
    },
    Running {
        manager_id: ManagerId,
        cancel_requested: bool,
        /// Times it was sent to a manager, this time included.
        attempts: u32,
        /// Kept while the task has retries left: what to queue again if
        /// its manager is lost.
        retry: Option<Box<Retry>>,
    },
    Finished(Box<TaskResult>),
}

/// A running task as it was queued, to queue it again in its old place.
#[derive(Debug)]
struct Retry {
    dispatch: TaskDispatch,
    key: QueueKey,
}

#[derive(Debug)]
struct Task {
    phase: Phase,
    /// Clients that get the result (while the task is unfinished).
    watchers: BTreeSet<PeerId>,
}

#[derive(Debug, Default)]
struct Client {
    /// Unfinished tasks this client watches.
    watching: HashSet<TaskId>,
}

#[derive(Debug, Default)]
struct Counts {
    n_completed: u64,
    n_failed: u64,
    n_cancelled: u64,
    n_bad_messages: u64,
}

/// The interchange state machine. See the module documentation.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    /// Clients that said a valid `hello`.
    clients: HashMap<PeerId, Client>,
    tasks: HashMap<TaskId, Task>,
    queue: TaskQueue,
    managers: ManagerTable,
    counts: Counts,
    outputs: VecDeque<Output>,
    /// Finished tasks whose results are kept, oldest first, with the bytes
    /// each result takes; and the sum of those bytes.
    finished: VecDeque<(TaskId, usize)>,
    finished_bytes: usize,
    /// Results gathered during one input, sent as one message per client.
    pending_results: BTreeMap<PeerId, Vec<TaskResult>>,
    next_heartbeat: Time,
    /// No manager can have expired before this time.
    next_expiry_check: Option<Time>,
    /// Set once shutdown began: the deadline for managers' goodbyes.
    shutdown_deadline: Option<Time>,
    exited: bool,
    /// The provider's blocks, shown by `status`.
    blocks: Vec<BlockInfo>,
    /// The latest time an input brought (the core reads no clock).
    now: Time,
    /// The manager held for the first queued task that cannot start yet.
    reservation: Option<Reservation>,
}

fn format_seconds(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds.fract() == 0.0 {
        format!("{seconds:.0}")
    } else {
        format!("{seconds}")
    }
}

impl Core {
    pub fn new(config: CoreConfig, now: Time) -> Self {
        let next_heartbeat = now.plus(config.heartbeat_period);
        Self {
            config,
            clients: HashMap::new(),
            tasks: HashMap::new(),
            queue: TaskQueue::default(),
            managers: ManagerTable::default(),
            counts: Counts::default(),
            outputs: VecDeque::new(),
            finished: VecDeque::new(),
            finished_bytes: 0,
            pending_results: BTreeMap::new(),
            next_heartbeat,
            next_expiry_check: None,
            shutdown_deadline: None,
            exited: false,
            blocks: Vec::new(),
            now,
            reservation: None,
        }
    }

    /// Remembers the time an input brings (never going back).
    fn observe(&mut self, now: Time) {
        self.now = self.now.max(now);
    }

    // -----------------------------------------------------------------
    // For a block provider (read-only views, and drain)
    // -----------------------------------------------------------------

    /// The provider's blocks, as `status` should show them from now on.
    pub fn set_blocks(&mut self, blocks: Vec<BlockInfo>) {
        self.blocks = blocks;
    }

    /// What the queued tasks need.
    pub fn demand(&self) -> Demand {
        let mut demand = Demand::default();
        for (shape, n_tasks) in self.queue.shapes() {
            demand.n_queued_tasks += n_tasks as u64;
            demand.n_queued_nodes += u64::from(shape.num_nodes) * n_tasks as u64;
            demand.max_task_nodes = demand.max_task_nodes.max(shape.num_nodes);
        }
        demand
    }

    /// Every registered manager.
    pub fn managers_view(&self) -> Vec<ManagerView> {
        self.managers
            .iter()
            .map(|manager| ManagerView {
                manager_id: manager.manager_id,
                block_id: manager.block_id.clone(),
                n_nodes: manager.n_nodes,
                n_running_tasks: u32::try_from(manager.tasks().len()).unwrap_or(u32::MAX),
                draining: manager.draining,
                held: manager.held,
            })
            .collect()
    }

    /// Sends no new tasks to this manager and tells it to exit once idle
    /// (as the `drain` command does). False for an unknown manager.
    pub fn drain_manager(&mut self, manager_id: ManagerId, reason: &str) -> bool {
        if self.managers.get(manager_id).is_none() {
            return false;
        }
        self.start_drain(manager_id, reason);
        self.after_input();
        true
    }

    // -----------------------------------------------------------------
    // Outputs
    // -----------------------------------------------------------------

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`Core::handle_timeout`] next; `None` once exited.
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.exited {
            return None;
        }
        [
            Some(self.next_heartbeat),
            self.next_expiry_check,
            self.shutdown_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// True once [`Output::Exit`] was queued.
    pub fn has_exited(&self) -> bool {
        self.exited
    }

    fn unix(&self, now: Time) -> UnixTime {
        self.config.wall_clock_at_zero + now.as_millis() as f64 / 1000.0
    }

    fn send_client(&mut self, peer: &PeerId, message: ToClient) {
        self.outputs
            .push_back(Output::ToClient(peer.clone(), message));
    }

    fn send_manager(&mut self, peer: &PeerId, message: ToManager) {
        self.outputs
            .push_back(Output::ToManager(peer.clone(), message));
    }

    fn bad_message(&mut self) {
        self.counts.n_bad_messages += 1;
    }

    /// Work every input ends with: match tasks, send gathered results,
    /// finish shutdown when it is complete.
    fn after_input(&mut self) {
        if self.exited {
            self.pending_results.clear();
            return;
        }
        if self.shutdown_deadline.is_none() {
            self.schedule();
        }
        for (peer, results) in std::mem::take(&mut self.pending_results) {
            self.send_client(&peer, ToClient::Results { results });
        }
        if self.shutdown_deadline.is_some() && self.managers.is_empty() {
            tracing::info!("every manager has gone; shutdown complete");
            self.outputs.push_back(Output::Exit);
            self.exited = true;
        }
    }

    // -----------------------------------------------------------------
    // Task results
    // -----------------------------------------------------------------

    fn count_result(&mut self, state: TaskState) {
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
        while self.finished.len() > self.config.max_finished_results
            || self.finished_bytes > self.config.max_finished_bytes
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

    /// Records the one result of a task and queues it for its watchers.
    fn finish(&mut self, task_id: TaskId, result: TaskResult) {
        self.count_result(result.state);
        let watchers = match self.tasks.get_mut(&task_id) {
            Some(task) => {
                task.phase = Phase::Finished(Box::new(result.clone()));
                std::mem::take(&mut task.watchers)
            }
            None => BTreeSet::new(),
        };
        self.keep_finished(task_id, &result);
        for peer in watchers {
            if let Some(client) = self.clients.get_mut(&peer) {
                client.watching.remove(&task_id);
            }
            self.pending_results
                .entry(peer)
                .or_default()
                .push(result.clone());
        }
    }

    /// Ends every task a departed manager held: a task lost through no
    /// fault of its own (`ManagerLost` outside shutdown) with retries left
    /// goes back to the queue in its old place; the others fail with
    /// `kind`, a lost task's message saying how many attempts were made.
    fn fail_tasks_of(&mut self, manager: &Manager, kind: ErrorKind, message: &str) {
        let may_retry = kind == ErrorKind::ManagerLost && self.shutdown_deadline.is_none();
        for task_id in manager.tasks().keys() {
            if may_retry && self.queue_again(*task_id, manager) {
                continue;
            }
            let attempts = match self.tasks.get(task_id).map(|task| &task.phase) {
                Some(Phase::Running { attempts, .. }) => *attempts,
                _ => 1,
            };
            let message = if kind == ErrorKind::ManagerLost {
                let plural = if attempts == 1 { "" } else { "s" };
                format!("{message} ({attempts} attempt{plural} made)")
            } else {
                message.to_owned()
            };
            let mut result = TaskResult::failed_before_start(*task_id, kind, message);
            result.manager_id = Some(manager.manager_id);
            result.block_id = Some(manager.block_id.clone());
            self.finish(*task_id, result);
        }
    }

    /// Puts a task its manager lost back in the queue with its original
    /// key, if it has retries left and no cancel was asked. False if not.
    fn queue_again(&mut self, task_id: TaskId, manager: &Manager) -> bool {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return false;
        };
        let Phase::Running {
            cancel_requested: false,
            attempts,
            retry,
            ..
        } = &mut task.phase
        else {
            return false;
        };
        let attempts = *attempts;
        let Some(retry) = retry.take() else {
            return false;
        };
        let Retry { mut dispatch, key } = *retry;
        dispatch.placement.clear();
        if !self.queue.push_with_key(task_id, &dispatch.resources, key) {
            return false;
        }
        task.phase = Phase::Queued {
            dispatch: Box::new(dispatch),
            key,
            attempts,
        };
        tracing::info!(
            task_id = %task_id,
            attempt = attempts + 1,
            manager_id = %manager.manager_id,
            "task queued again in its old place: its manager was lost"
        );
        true
    }

    // -----------------------------------------------------------------
    // Clients
    // -----------------------------------------------------------------

    /// A frame arrived on the client socket.
    pub fn handle_client_frame(&mut self, now: Time, peer: PeerId, frame: &[u8]) {
        if self.exited {
            return;
        }
        self.observe(now);
        match protocol::decode::<FromClient>(frame) {
            Err(error) => match protocol::peek_handshake(frame) {
                Some(handshake)
                    if handshake.message_type == "hello"
                        && handshake.protocol_version != Some(PROTOCOL_VERSION) =>
                {
                    self.refuse_client(&peer, handshake.protocol_version);
                }
                _ => {
                    self.bad_message();
                    tracing::warn!(peer = %peer, %error, "undecodable message from a client");
                    self.send_client(
                        &peer,
                        ToClient::Error {
                            request_id: None,
                            message: format!("cannot decode the request: {error}"),
                        },
                    );
                }
            },
            Ok(FromClient::Hello {
                protocol_version,
                client_version,
            }) => {
                if protocol_version == PROTOCOL_VERSION {
                    tracing::debug!(peer = %peer, %client_version, "client connected");
                    self.clients.entry(peer.clone()).or_default();
                    self.send_client(
                        &peer,
                        ToClient::Welcome {
                            protocol_version: PROTOCOL_VERSION,
                            interchange_version: RHTEX_VERSION.to_owned(),
                        },
                    );
                } else {
                    self.refuse_client(&peer, Some(protocol_version));
                }
            }
            Ok(FromClient::Goodbye) => {
                // Closing: forget the connection (a goodbye without hello
                // is harmless). Its tasks carry on.
                tracing::debug!(peer = %peer, "client said goodbye");
                self.forget_client(&peer);
            }
            Ok(message) if !self.clients.contains_key(&peer) => {
                self.bad_message();
                let request_id = match &message {
                    FromClient::Submit { request_id, .. }
                    | FromClient::Watch { request_id, .. }
                    | FromClient::Command { request_id, .. } => Some(*request_id),
                    FromClient::Hello { .. } | FromClient::Goodbye => None,
                };
                tracing::warn!(peer = %peer, "request from a client that sent no hello");
                self.send_client(
                    &peer,
                    ToClient::Error {
                        request_id,
                        message: "send hello first: no request is handled before the handshake"
                            .to_owned(),
                    },
                );
            }
            Ok(FromClient::Submit { request_id, tasks }) => {
                self.submit(&peer, request_id, tasks);
            }
            Ok(FromClient::Watch {
                request_id,
                task_ids,
            }) => self.watch(&peer, request_id, &task_ids),
            Ok(FromClient::Command {
                request_id,
                command,
            }) => self.command(now, &peer, request_id, command),
        }
        self.after_input();
    }

    fn refuse_client(&mut self, peer: &PeerId, their_version: Option<u32>) {
        let theirs = their_version.map_or_else(|| "none".to_owned(), |version| version.to_string());
        tracing::warn!(peer = %peer, their_version = %theirs, "refused a client of another protocol version");
        self.forget_client(peer);
        self.send_client(
            peer,
            ToClient::Refused {
                reason: format!(
                    "protocol version mismatch: the client speaks version {theirs}, \
                     this interchange speaks version {PROTOCOL_VERSION}"
                ),
                protocol_version: PROTOCOL_VERSION,
            },
        );
    }

    /// A send to this client failed: it is gone. Stop sending it results.
    pub fn handle_client_unreachable(&mut self, peer: &PeerId) {
        tracing::debug!(peer = %peer, "client gone");
        self.forget_client(peer);
        self.pending_results.remove(peer);
    }

    fn forget_client(&mut self, peer: &PeerId) {
        if let Some(client) = self.clients.remove(peer) {
            for task_id in client.watching {
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.watchers.remove(peer);
                }
            }
        }
    }

    fn submit(&mut self, peer: &PeerId, request_id: u64, submissions: Vec<TaskSubmission>) {
        let mut n_accepted: u32 = 0;
        let mut immediate = Vec::new();
        for submission in submissions {
            let task_id = submission.task_id;
            if self.tasks.contains_key(&task_id) {
                tracing::warn!(task_id = %task_id, "duplicate task id refused");
                self.count_result(TaskState::Failed);
                immediate.push(TaskResult::failed_before_start(
                    task_id,
                    ErrorKind::DuplicateTaskId,
                    format!("task id {task_id} was already submitted; each task needs a fresh id"),
                ));
                continue;
            }
            let refusal = if self.shutdown_deadline.is_some() {
                Some((
                    ErrorKind::Cancelled,
                    "the interchange is shutting down and takes no new tasks".to_owned(),
                ))
            } else {
                match protocol::validate(&submission.resources) {
                    Err(error) => Some((ErrorKind::InvalidSpec, error.to_string())),
                    Ok(resources) => match self.config.max_block_nodes {
                        Some(limit) if resources.num_nodes > limit => Some((
                            ErrorKind::Unschedulable,
                            format!(
                                "the task needs num_nodes = {} but blocks have at most {limit} nodes \
                                 (--max-block-nodes {limit}), so it can never run",
                                resources.num_nodes
                            ),
                        )),
                        _ => {
                            let num_nodes = resources.num_nodes;
                            let dispatch = TaskDispatch {
                                task_id,
                                command: submission.command,
                                resources,
                                placement: Vec::new(),
                                env: submission.env,
                                cwd: submission.cwd,
                                stdout: submission.stdout,
                                stderr: submission.stderr,
                            };
                            let key = self.queue.push(task_id, &dispatch.resources);
                            self.tasks.insert(
                                task_id,
                                Task {
                                    phase: Phase::Queued {
                                        dispatch: Box::new(dispatch),
                                        key,
                                        attempts: 0,
                                    },
                                    watchers: BTreeSet::from([peer.clone()]),
                                },
                            );
                            if let Some(client) = self.clients.get_mut(peer) {
                                client.watching.insert(task_id);
                            }
                            tracing::debug!(task_id = %task_id, num_nodes, "task queued");
                            n_accepted += 1;
                            None
                        }
                    },
                }
            };
            if let Some((kind, message)) = refusal {
                tracing::debug!(task_id = %task_id, %kind, %message, "task not accepted");
                let result = TaskResult::failed_before_start(task_id, kind, message);
                self.count_result(result.state);
                // Kept as finished, so that `watch` and `task_status` know it.
                self.tasks.insert(
                    task_id,
                    Task {
                        phase: Phase::Finished(Box::new(result.clone())),
                        watchers: BTreeSet::new(),
                    },
                );
                self.keep_finished(task_id, &result);
                immediate.push(result);
            }
        }
        self.send_client(
            peer,
            ToClient::Submitted {
                request_id,
                n_tasks: n_accepted,
            },
        );
        if !immediate.is_empty() {
            self.pending_results
                .entry(peer.clone())
                .or_default()
                .extend(immediate);
        }
    }

    fn watch(&mut self, peer: &PeerId, request_id: u64, task_ids: &[TaskId]) {
        let mut n_known: u32 = 0;
        for task_id in task_ids {
            let Some(task) = self.tasks.get_mut(task_id) else {
                tracing::debug!(task_id = %task_id, "watch of an unknown task");
                continue;
            };
            n_known += 1;
            match &task.phase {
                Phase::Finished(result) => {
                    let result = (**result).clone();
                    self.pending_results
                        .entry(peer.clone())
                        .or_default()
                        .push(result);
                }
                Phase::Queued { .. } | Phase::Running { .. } => {
                    task.watchers.insert(peer.clone());
                    if let Some(client) = self.clients.get_mut(peer) {
                        client.watching.insert(*task_id);
                    }
                }
            }
        }
        // The answer goes before the results of finished tasks.
        self.send_client(
            peer,
            ToClient::Watching {
                request_id,
                n_tasks: n_known,
            },
        );
    }

    fn command(&mut self, now: Time, peer: &PeerId, request_id: u64, command: Command) {
        let reply = match command {
            Command::Status => Reply::Status(self.status()),
            Command::TaskStatus { task_ids } => Reply::TaskStatus {
                tasks: task_ids.iter().map(|id| self.task_status(*id)).collect(),
            },
            Command::Hold { manager_id } => self.set_held(manager_id, true),
            Command::Release { manager_id } => self.set_held(manager_id, false),
            Command::Drain { manager_id } => match self.managers.get(manager_id) {
                None => unknown_manager(manager_id),
                Some(_) => {
                    tracing::info!(manager_id = %manager_id, "manager drained by a client");
                    self.start_drain(manager_id, "drained by a client");
                    Reply::Done {
                        message: format!(
                            "manager {manager_id} gets no new tasks and will be told to exit once idle"
                        ),
                    }
                }
            },
            Command::Cancel { task_id } => self.cancel(task_id),
            Command::Shutdown => {
                self.send_client(
                    peer,
                    ToClient::Reply {
                        request_id,
                        reply: Reply::Done {
                            message: "shutting down: managers told to stop, queued tasks cancelled"
                                .to_owned(),
                        },
                    },
                );
                self.begin_shutdown(now, "the interchange is shutting down");
                return;
            }
        };
        self.send_client(peer, ToClient::Reply { request_id, reply });
    }

    fn set_held(&mut self, manager_id: ManagerId, held: bool) -> Reply {
        match self
            .managers
            .update(manager_id, |manager| manager.held = held)
        {
            None => unknown_manager(manager_id),
            Some(()) => {
                if !held {
                    // It may now suit the reservation better: choose again.
                    self.clear_reservation();
                }
                let verb = if held { "held" } else { "released" };
                tracing::info!(manager_id = %manager_id, "manager {verb}");
                Reply::Done {
                    message: format!("manager {manager_id} {verb}"),
                }
            }
        }
    }

    fn cancel(&mut self, task_id: TaskId) -> Reply {
        let Some(task) = self.tasks.get_mut(&task_id) else {
            return Reply::Failed {
                message: format!("unknown task {task_id}"),
            };
        };
        match &mut task.phase {
            Phase::Finished(result) => Reply::Failed {
                message: format!("task {task_id} already finished ({})", result.state),
            },
            Phase::Queued { dispatch, key, .. } => {
                self.queue.remove(&dispatch.resources, *key);
                tracing::debug!(task_id = %task_id, "queued task cancelled");
                self.finish(
                    task_id,
                    TaskResult::failed_before_start(
                        task_id,
                        ErrorKind::Cancelled,
                        "cancelled by a client while queued".to_owned(),
                    ),
                );
                Reply::Done {
                    message: format!("task {task_id} cancelled"),
                }
            }
            Phase::Running {
                manager_id,
                cancel_requested,
                ..
            } => {
                *cancel_requested = true;
                let manager_id = *manager_id;
                let Some(peer) = self
                    .managers
                    .get(manager_id)
                    .map(|manager| manager.peer.clone())
                else {
                    // Cannot happen: a departed manager's tasks are finished.
                    return Reply::Failed {
                        message: format!(
                            "task {task_id} runs on manager {manager_id}, which is gone"
                        ),
                    };
                };
                tracing::debug!(task_id = %task_id, manager_id = %manager_id, "cancel sent to the manager");
                self.send_manager(&peer, ToManager::CancelTask { task_id });
                Reply::Done {
                    message: format!(
                        "task {task_id} is running on manager {manager_id}: told it to cancel"
                    ),
                }
            }
        }
    }

    fn begin_shutdown(&mut self, now: Time, reason: &str) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        tracing::info!(n_managers = self.managers.len(), "shutdown begins");
        self.shutdown_deadline = Some(now.plus(self.config.shutdown_grace));
        self.clear_reservation();
        for manager_id in self.managers.ids() {
            self.tell_manager_to_stop(manager_id, reason);
        }
        for task_id in self.queue.drain_all() {
            self.finish(
                task_id,
                TaskResult::failed_before_start(
                    task_id,
                    ErrorKind::Cancelled,
                    "cancelled: the interchange shut down before the task started".to_owned(),
                ),
            );
        }
    }

    fn tell_manager_to_stop(&mut self, manager_id: ManagerId, reason: &str) {
        let peer = self.managers.update(manager_id, |manager| {
            let first_time = !manager.shutdown_sent;
            manager.shutdown_sent = true;
            manager.draining = true;
            first_time.then(|| manager.peer.clone())
        });
        if let Some(Some(peer)) = peer {
            self.send_manager(
                &peer,
                ToManager::Shutdown {
                    reason: reason.to_owned(),
                },
            );
        }
    }

    fn start_drain(&mut self, manager_id: ManagerId, reason: &str) {
        let idle = self.managers.update(manager_id, |manager| {
            manager.draining = true;
            manager.tasks().is_empty()
        });
        if idle == Some(true) {
            self.tell_manager_to_stop(manager_id, reason);
        }
    }

    /// The signal path: tell every manager to stop (best effort), give every
    /// unfinished task its result, and exit at once.
    pub fn handle_terminate(&mut self, now: Time) {
        if self.exited {
            return;
        }
        self.observe(now);
        self.begin_shutdown(now, "the interchange was stopped by a signal");
        for manager_id in self.managers.ids() {
            if let Some(manager) = self.managers.remove(manager_id) {
                self.fail_tasks_of(
                    &manager,
                    ErrorKind::Killed,
                    "the interchange was stopped by a signal while the task ran",
                );
            }
        }
        self.after_input();
    }

    // -----------------------------------------------------------------
    // Status
    // -----------------------------------------------------------------

    /// Why a queued task of this shape waits; `task_id` names the task
    /// when one task is meant, so that the reservation's holder is told
    /// which manager it holds and when it expects to start.
    fn waiting_reason(&self, shape: Shape, task_id: Option<TaskId>) -> String {
        let slots_needed = shape.ranks_per_node;
        let mut any_manager = false;
        let mut most_slots: u32 = 0;
        let mut largest_suitable: u32 = 0;
        let mut any_suitable_accepting = false;
        for manager in self.managers.iter() {
            any_manager = true;
            most_slots = most_slots.max(manager.slots_per_node);
            if slots_needed.map_or(true, |slots| manager.slots_per_node >= slots) {
                largest_suitable = largest_suitable.max(manager.n_nodes);
                if manager.n_nodes >= shape.num_nodes && manager.accepts_tasks() {
                    any_suitable_accepting = true;
                }
            }
        }
        let base = match slots_needed {
            _ if !any_manager => return "no manager connected".to_owned(),
            Some(slots) if most_slots < slots => {
                return format!(
                    "needs {slots} slots per node; the most slots per node of a connected manager is {most_slots}"
                )
            }
            None if largest_suitable < shape.num_nodes => {
                return format!(
                    "needs {}; the largest connected manager has {largest_suitable}",
                    count_nodes(shape.num_nodes)
                )
            }
            Some(slots) if largest_suitable < shape.num_nodes => {
                return format!(
                    "needs {shape}; the largest connected manager with {slots} slots per node has {}",
                    count_nodes(largest_suitable)
                )
            }
            _ if !any_suitable_accepting => {
                return format!("needs {shape}; every manager that large is held or draining")
            }
            None => format!(
                "waiting for {} free {}",
                shape.num_nodes,
                if shape.num_nodes == 1 { "node" } else { "nodes" }
            ),
            Some(_) => format!("waiting for {shape}"),
        };
        let Some(reservation) = &self.reservation else {
            return base;
        };
        if task_id == Some(reservation.task_id) {
            let expected = match reservation.shadow {
                None => {
                    "its start time is unknown: a task running there has no walltime".to_owned()
                }
                Some(at) if at > self.now => format!(
                    "expected to start in about {} s",
                    format_seconds(Duration::from_secs(self.now.until(at).as_secs()))
                ),
                Some(_) => "expected to start as soon as the tasks running there end".to_owned(),
            };
            format!(
                "{base}; manager {} is reserved for it, {expected}",
                reservation.manager_id
            )
        } else {
            let fits_there = self
                .managers
                .get(reservation.manager_id)
                .is_some_and(|manager| manager.place(shape, &Default::default()).is_some());
            if fits_there {
                format!(
                    "{base}; manager {} could start it but is reserved for task {}, which is ahead in the queue",
                    reservation.manager_id, reservation.task_id
                )
            } else {
                base
            }
        }
    }

    fn status(&self) -> StatusReport {
        let managers: Vec<ManagerInfo> = self
            .managers
            .iter()
            .map(|manager| ManagerInfo {
                manager_id: manager.manager_id,
                block_id: manager.block_id.clone(),
                hostname: manager.hostname.clone(),
                launcher: manager.launcher,
                n_nodes: manager.n_nodes,
                n_free_nodes: manager.n_whole_free(),
                n_running_tasks: u32::try_from(manager.tasks().len()).unwrap_or(u32::MAX),
                held: manager.held,
                draining: manager.draining,
                registered_at: manager.registered_at,
                last_heartbeat: self.unix(manager.last_heard),
                rhtex_version: manager.rhtex_version.clone(),
                slots_per_node: manager.slots_per_node,
                reserved_for: self
                    .reservation
                    .as_ref()
                    .filter(|reservation| reservation.manager_id == manager.manager_id)
                    .map(|reservation| reservation.task_id),
            })
            .collect();
        let n_running = managers
            .iter()
            .map(|manager| u64::from(manager.n_running_tasks))
            .sum();
        let mut waiting = Vec::new();
        for (shape, n_tasks) in self.queue.shapes() {
            let mut n_tasks = n_tasks as u64;
            // The reservation's holder waits for its own reason.
            if let Some(reservation) = self
                .reservation
                .as_ref()
                .filter(|reservation| reservation.shape == shape)
            {
                waiting.push(WaitingGroup {
                    num_nodes: shape.num_nodes,
                    n_tasks: 1,
                    reason: self.waiting_reason(shape, Some(reservation.task_id)),
                });
                n_tasks -= 1;
            }
            if n_tasks > 0 {
                waiting.push(WaitingGroup {
                    num_nodes: shape.num_nodes,
                    n_tasks,
                    reason: self.waiting_reason(shape, None),
                });
            }
        }
        StatusReport {
            interchange_version: RHTEX_VERSION.to_owned(),
            protocol_version: PROTOCOL_VERSION,
            n_queued: self.queue.len() as u64,
            n_running,
            n_completed: self.counts.n_completed,
            n_failed: self.counts.n_failed,
            n_cancelled: self.counts.n_cancelled,
            n_bad_messages: self.counts.n_bad_messages,
            blocks: self.blocks.clone(),
            managers,
            waiting,
        }
    }

    fn task_status(&self, task_id: TaskId) -> TaskStatusInfo {
        let mut info = TaskStatusInfo {
            task_id,
            state: TaskState::Unknown,
            manager_id: None,
            nodes: Vec::new(),
            waiting_reason: None,
            result: None,
        };
        match self.tasks.get(&task_id).map(|task| &task.phase) {
            None => {}
            Some(Phase::Queued { dispatch, .. }) => {
                info.state = TaskState::Queued;
                info.waiting_reason =
                    Some(self.waiting_reason(Shape::of(&dispatch.resources), Some(task_id)));
            }
            Some(Phase::Running { manager_id, .. }) => {
                info.state = TaskState::Running;
                info.manager_id = Some(*manager_id);
            }
            Some(Phase::Finished(result)) => {
                info.state = result.state;
                info.manager_id = result.manager_id;
                info.nodes = result.nodes.clone();
                info.result = Some((**result).clone());
            }
        }
        info
    }

    // -----------------------------------------------------------------
    // Managers
    // -----------------------------------------------------------------

    /// A frame arrived on the manager socket.
    pub fn handle_manager_frame(&mut self, now: Time, peer: PeerId, frame: &[u8]) {
        if self.exited {
            return;
        }
        self.observe(now);
        let known = self.managers.id_of_peer(&peer);
        match (known, protocol::decode::<FromManager>(frame)) {
            (None, Ok(FromManager::Register(registration))) => {
                self.register(now, &peer, registration);
            }
            (Some(manager_id), Ok(FromManager::Register(registration))) => {
                self.bad_message();
                tracing::warn!(
                    manager_id = %manager_id,
                    registered_again_as = %registration.manager_id,
                    "register from a manager already registered; ignored"
                );
                self.refresh(manager_id, now);
            }
            (None, Err(error)) => match protocol::peek_handshake(frame) {
                Some(handshake) if handshake.message_type == "register" => {
                    self.bad_message();
                    let reason = match handshake.protocol_version {
                        Some(version) if version == PROTOCOL_VERSION => {
                            format!("malformed register message: {error}")
                        }
                        theirs => version_mismatch_reason(theirs),
                    };
                    tracing::warn!(peer = %peer, %reason, "refused a manager");
                    self.send_manager(
                        &peer,
                        ToManager::Refused {
                            reason,
                            protocol_version: PROTOCOL_VERSION,
                        },
                    );
                }
                _ => {
                    self.bad_message();
                    tracing::warn!(peer = %peer, %error, "undecodable message from unknown manager; dropped");
                }
            },
            (None, Ok(FromManager::Goodbye { .. })) => {
                self.bad_message();
                tracing::warn!(peer = %peer, "goodbye from unknown manager; dropped");
            }
            (None, Ok(_)) => {
                // A manager we dropped (silent past the threshold) that is
                // still alive, or one from before a restart. Its tasks were
                // failed as manager_lost; tell it so that it stops instead
                // of idling on its allocation. Its message is dropped.
                self.bad_message();
                tracing::warn!(peer = %peer, "message from unknown manager; dropped, and the manager told to stop");
                self.send_manager(
                    &peer,
                    ToManager::Refused {
                        reason: UNKNOWN_MANAGER_REASON.to_owned(),
                        protocol_version: PROTOCOL_VERSION,
                    },
                );
            }
            (Some(manager_id), Err(error)) => {
                self.bad_message();
                self.refresh(manager_id, now);
                tracing::warn!(manager_id = %manager_id, %error, "undecodable message from a manager; dropped");
            }
            (Some(manager_id), Ok(message)) => {
                self.refresh(manager_id, now);
                self.manager_message(manager_id, message);
            }
        }
        self.after_input();
    }

    fn refresh(&mut self, manager_id: ManagerId, now: Time) {
        self.managers
            .update(manager_id, |manager| manager.last_heard = now);
    }

    fn register(&mut self, now: Time, peer: &PeerId, registration: Registration) {
        let refusal = if registration.protocol_version != PROTOCOL_VERSION {
            Some(version_mismatch_reason(Some(registration.protocol_version)))
        } else if registration.nodes.is_empty() {
            Some("the registration lists no nodes; a manager needs at least one node".to_owned())
        } else if self.managers.get(registration.manager_id).is_some() {
            Some(format!(
                "manager id {} is already registered from another connection",
                registration.manager_id
            ))
        } else if self.shutdown_deadline.is_some() {
            Some("the interchange is shutting down".to_owned())
        } else {
            None
        };
        if let Some(reason) = refusal {
            tracing::warn!(manager_id = %registration.manager_id, hostname = %registration.hostname, %reason, "refused a manager");
            self.send_manager(
                peer,
                ToManager::Refused {
                    reason,
                    protocol_version: PROTOCOL_VERSION,
                },
            );
            return;
        }
        let n_nodes = u32::try_from(registration.nodes.len()).unwrap_or(u32::MAX);
        tracing::info!(
            manager_id = %registration.manager_id,
            block_id = %registration.block_id,
            hostname = %registration.hostname,
            n_nodes,
            slots_per_node = registration.slots_per_node.unwrap_or(registration.cpu_count).max(1),
            "manager registered"
        );
        if self
            .reservation
            .as_ref()
            .is_some_and(|reservation| reservation.manager_id == registration.manager_id)
        {
            // A dropped manager back under the same id starts afresh.
            self.clear_reservation();
        }
        let registered_at = self.unix(now);
        self.managers
            .insert(Manager::new(registration, peer.clone(), registered_at, now));
        let expiry = now.plus(self.config.heartbeat_threshold);
        self.next_expiry_check = Some(self.next_expiry_check.map_or(expiry, |at| at.min(expiry)));
        self.send_manager(
            peer,
            ToManager::Registered {
                interchange_version: RHTEX_VERSION.to_owned(),
                heartbeat_period: self.config.heartbeat_period.as_secs_f64(),
            },
        );
    }

    fn manager_message(&mut self, manager_id: ManagerId, message: FromManager) {
        match message {
            FromManager::Register(_) | FromManager::Heartbeat => {}
            FromManager::Results { results } => {
                for result in results {
                    self.manager_result(manager_id, result);
                }
                let stop = self.managers.get(manager_id).is_some_and(|manager| {
                    manager.draining && manager.tasks().is_empty() && !manager.shutdown_sent
                });
                if stop {
                    self.tell_manager_to_stop(manager_id, "drained");
                }
            }
            FromManager::DrainRequest => {
                tracing::info!(manager_id = %manager_id, "manager asked to drain");
                self.start_drain(manager_id, "drained");
            }
            FromManager::Goodbye { reason } => {
                if let Some(manager) = self.managers.remove(manager_id) {
                    tracing::info!(manager_id = %manager_id, %reason, n_tasks = manager.tasks().len(), "manager said goodbye");
                    let message = format!(
                        "task lost: {} said goodbye ({reason}) without reporting it",
                        manager.describe()
                    );
                    self.fail_tasks_of(&manager, ErrorKind::ManagerLost, &message);
                }
            }
        }
    }

    fn manager_result(&mut self, manager_id: ManagerId, mut result: TaskResult) {
        let task_id = result.task_id;
        if !result.state.is_final() {
            self.bad_message();
            tracing::warn!(manager_id = %manager_id, task_id = %task_id, state = %result.state, "result with a state that is not final; dropped");
            return;
        }
        let freed = self
            .managers
            .release(manager_id, task_id)
            .and_then(|_| self.managers.get(manager_id))
            .map(|manager| manager.block_id.clone());
        let Some(block_id) = freed else {
            self.bad_message();
            tracing::warn!(manager_id = %manager_id, task_id = %task_id, "result for a task this manager does not hold; dropped");
            return;
        };
        if self
            .reservation
            .as_ref()
            .is_some_and(|reservation| reservation.manager_id == manager_id)
        {
            self.reservation_changed();
        }
        result.manager_id.get_or_insert(manager_id);
        result.block_id.get_or_insert(block_id);
        tracing::debug!(task_id = %task_id, manager_id = %manager_id, state = %result.state, "task finished");
        self.finish(task_id, result);
    }

    // -----------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------

    /// The time is `now`: send heartbeats, drop silent managers, end a
    /// shutdown whose grace period has passed.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.exited {
            return;
        }
        self.observe(now);
        if now >= self.next_heartbeat {
            for manager in self.managers.iter() {
                self.outputs.push_back(Output::ToManager(
                    manager.peer.clone(),
                    ToManager::Heartbeat,
                ));
            }
            self.next_heartbeat = self.next_heartbeat.plus(self.config.heartbeat_period);
            if self.next_heartbeat <= now {
                self.next_heartbeat = now.plus(self.config.heartbeat_period);
            }
        }
        if self.next_expiry_check.is_some_and(|at| now >= at) {
            self.expire_silent_managers(now);
        }
        if self
            .shutdown_deadline
            .is_some_and(|deadline| now >= deadline)
        {
            let grace = format_seconds(self.config.shutdown_grace);
            for manager_id in self.managers.ids() {
                if let Some(manager) = self.managers.remove(manager_id) {
                    tracing::warn!(manager_id = %manager_id, "manager did not say goodbye before the shutdown deadline");
                    let message = format!(
                        "task lost: {} did not say goodbye within {grace} s of shutdown",
                        manager.describe()
                    );
                    self.fail_tasks_of(&manager, ErrorKind::ManagerLost, &message);
                }
            }
        }
        self.after_input();
    }

    fn expire_silent_managers(&mut self, now: Time) {
        let threshold = self.config.heartbeat_threshold;
        let mut next_check: Option<Time> = None;
        let mut expired = Vec::new();
        for manager in self.managers.iter() {
            let expiry = manager.last_heard.plus(threshold);
            if now >= expiry {
                expired.push(manager.manager_id);
            } else {
                next_check = Some(next_check.map_or(expiry, |at| at.min(expiry)));
            }
        }
        self.next_expiry_check = next_check;
        for manager_id in expired {
            if let Some(manager) = self.managers.remove(manager_id) {
                let silence = format_seconds(manager.last_heard.until(now));
                tracing::warn!(
                    manager_id = %manager_id,
                    hostname = %manager.hostname,
                    block_id = %manager.block_id,
                    n_tasks = manager.tasks().len(),
                    "manager silent for {silence} s; dropped"
                );
                let message = format!(
                    "task lost: {} sent nothing for {silence} s",
                    manager.describe()
                );
                self.fail_tasks_of(&manager, ErrorKind::ManagerLost, &message);
            }
        }
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
        + result.nodes.iter().map(String::len).sum::<usize>()
        + text(&result.stdout_path)
        + text(&result.stderr_path)
        + text(&result.block_id)
        + result.error.as_ref().map_or(0, |error| error.message.len())
}

/// "1 node", "4 nodes".
fn count_nodes(n_nodes: u32) -> String {
    if n_nodes == 1 {
        "1 node".to_owned()
    } else {
        format!("{n_nodes} nodes")
    }
}

fn unknown_manager(manager_id: ManagerId) -> Reply {
    Reply::Failed {
        message: format!("unknown manager {manager_id}: no registered manager has this id"),
    }
}

/// Why a message from an unregistered manager is answered with `refused`.
pub const UNKNOWN_MANAGER_REASON: &str = "this manager is not registered with the interchange: \
     it was dropped after a silence past the heartbeat threshold (its tasks were failed as manager_lost), \
     or it never registered; stop and start a new manager";

fn version_mismatch_reason(theirs: Option<u32>) -> String {
    let theirs = theirs.map_or_else(|| "none".to_owned(), |version| version.to_string());
    format!(
        "protocol version mismatch: the manager speaks version {theirs}, \
         this interchange speaks version {PROTOCOL_VERSION}"
    )
}
