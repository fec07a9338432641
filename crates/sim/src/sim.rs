//! The simulation: the real interchange core, one simulated client and one
//! simulated pool-manager per block, in virtual time.
//!
//! Everything happens in an event queue ordered by (time in milliseconds,
//! sequence number), so a workload gives the same run every time. Messages
//! cross between the core and the simulated peers as encoded frames with no
//! delay: the core's outputs are drained and acted on at once, and what a
//! peer says later (a task's result after its duration, a heartbeat) is an
//! event. The core's own deadlines (`poll_timeout`) are honoured between
//! events; when a deadline and an event fall at the same millisecond, the
//! deadline goes first.
//!
//! The simulated managers keep their own ledger of every node's slots and
//! check each placement the core sends against it: the right number of
//! distinct nodes, never more slots on a node than it has, an exclusive
//! task only on empty nodes. Any breach is recorded as a violation, as is a
//! task that gets two results, or (checked after every event) a queued task
//! that an entirely idle manager could have started.

use crate::workload::{BlockSpec, TaskSpec, Workload, WorkloadError};
use interchange_core::{
    decode_client_frame, decode_manager_frame, Core, CoreConfig, Output, PeerId, Socket,
};
use protocol::{
    Command, ErrorKind, FromClient, FromManager, Launcher, ManagerId, NodeShare, Registration,
    Reply, StatusReport, TaskDispatch, TaskError, TaskId, TaskResources, TaskResult, TaskState,
    TaskStatusInfo, TaskSubmission, ToClient, ToManager, PROTOCOL_VERSION, RHTEX_VERSION,
};
use seam::Time;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// How to run a simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The interchange core's settings (placement, retries, block limit,
    /// heartbeats). Managers heartbeat every `heartbeat_period`.
    pub core: CoreConfig,
    /// Most tasks in one `submit` message (tasks with the same submit time
    /// go together).
    pub batch_size: usize,
    /// After every event, also ask the core for `status` and record as a
    /// violation any queued task that a manager with room for it, and no
    /// reservation, did not start. Costs one status per event: for small
    /// workloads.
    pub check_unreserved_capacity: bool,
    /// At most this many violation messages are kept (all are counted).
    pub max_violation_messages: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            core: CoreConfig::default(),
            batch_size: 1000,
            check_unreserved_capacity: false,
            max_violation_messages: 50,
        }
    }
}

/// Why a simulation cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("the heartbeat period must be more than zero")]
    ZeroHeartbeat,
    #[error("the batch size must be at least 1")]
    ZeroBatch,
}

/// Milliseconds of virtual time.
pub type Millis = u64;

/// Seconds to milliseconds (workloads are validated to fit).
pub fn to_millis(seconds: f64) -> Millis {
    (seconds.max(0.0) * 1000.0).round() as Millis
}

/// Milliseconds to seconds.
pub fn to_seconds(millis: Millis) -> f64 {
    millis as f64 / 1000.0
}

/// One time the core sent a task to a manager.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatch {
    /// Index of the block whose manager got it.
    pub block: usize,
    pub at: Millis,
    pub placement: Vec<NodeShare>,
    pub resources: TaskResources,
}

/// What happened to one task of the workload.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    pub spec: TaskSpec,
    pub task_id: TaskId,
    /// The specification as validated (`None`: invalid, the core refuses it).
    pub resources: Option<TaskResources>,
    pub submitted: bool,
    /// Every dispatch, in order (more than one only after a retry).
    pub dispatches: Vec<Dispatch>,
    /// The first result the client got, and when.
    pub result: Option<(Millis, TaskResult)>,
    /// How many results the client got (exactly one is right).
    pub n_results: u32,
}

impl TaskRecord {
    /// Time from submission to the first dispatch.
    pub fn wait(&self) -> Option<Millis> {
        let first = self.dispatches.first()?;
        Some(first.at.saturating_sub(to_millis(self.spec.submit)))
    }

    pub fn error_kind(&self) -> Option<ErrorKind> {
        self.result
            .as_ref()
            .and_then(|(_, result)| result.error.as_ref().map(|error| error.kind))
    }
}

/// A span of time a task held part of a manager's nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BusySpan {
    pub start: Millis,
    pub end: Millis,
    /// Node equivalents held: whole nodes for an exclusive task; for a
    /// shared one, `ranks_per_node / slots_per_node` of each node.
    pub nodes: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ManagerState {
    NotJoined,
    /// Sent `register`, waiting for the answer (immediate in practice).
    Registering,
    Registered,
    /// Went silent at its leave time: does nothing any more.
    Lost,
    /// Refused, or told to shut down: does nothing any more.
    Gone,
}

#[derive(Debug)]
struct Running {
    attempt: u32,
    placement: Vec<NodeShare>,
    start: Millis,
    nodes_equivalent: f64,
}

#[derive(Debug)]
struct SimManager {
    spec: BlockSpec,
    manager_id: ManagerId,
    peer: PeerId,
    block_id: String,
    state: ManagerState,
    /// Slots in use on each node.
    used: Vec<u32>,
    running: BTreeMap<usize, Running>,
}

impl SimManager {
    fn node_name(&self, node: u32) -> String {
        format!("{}-n{node}", self.block_id)
    }

    /// Whether the ledger says a task of this shape could start now.
    fn fits(&self, shape: Shape) -> bool {
        let spn = self.spec.slots_per_node;
        let needed_slots = if shape.shared_ranks == 0 {
            spn
        } else {
            shape.shared_ranks
        };
        if needed_slots > spn {
            return false;
        }
        let n_room = self
            .used
            .iter()
            .filter(|used| spn - **used >= needed_slots)
            .count();
        n_room as u64 >= u64::from(shape.num_nodes)
    }
}

/// What a queued task needs: its node count, and for a shared
/// (non-exclusive) task its ranks per node (0 for whole nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Shape {
    num_nodes: u32,
    shared_ranks: u32,
}

impl Shape {
    fn of(resources: &TaskResources) -> Self {
        Self {
            num_nodes: resources.num_nodes,
            shared_ranks: if resources.exclusive {
                0
            } else {
                resources.ranks_per_node
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// The client submits tasks `first..end` (indices into the sorted task list).
    Submit {
        first: usize,
        end: usize,
    },
    Join {
        block: usize,
    },
    Leave {
        block: usize,
    },
    Heartbeat {
        block: usize,
    },
    Finish {
        block: usize,
        task: usize,
        attempt: u32,
    },
}

impl Event {
    /// Events that are not periodic: while one is pending, the run is not over.
    fn is_activity(self) -> bool {
        !matches!(self, Event::Heartbeat { .. })
    }
}

/// One run of a workload through the interchange core.
#[derive(Debug)]
pub struct Simulation {
    config: SimConfig,
    core: Core,
    now: Millis,
    sequence: u64,
    events: BTreeMap<(Millis, u64), Event>,
    n_pending_activity: u64,
    last_activity: Millis,
    managers: Vec<SimManager>,
    peers: HashMap<PeerId, usize>,
    tasks: Vec<TaskRecord>,
    index_of: HashMap<TaskId, usize>,
    /// Tasks the core has queued (as far as the client can tell), by shape.
    queued: BTreeMap<Shape, BTreeSet<usize>>,
    queued_shape: HashMap<usize, Shape>,
    client: PeerId,
    next_request: u64,
    replies: Vec<(u64, Reply)>,
    n_results_total: u64,
    n_unfinished: usize,
    busy: Vec<BusySpan>,
    violations: Vec<String>,
    n_violations: u64,
    n_events: u64,
    n_frames: u64,
    stalled: bool,
}

impl Simulation {
    /// Sets up the core, the client's `hello` and every scheduled event.
    pub fn new(workload: &Workload, config: SimConfig) -> Result<Self, SimError> {
        workload.validate()?;
        if config.core.heartbeat_period.is_zero() {
            return Err(SimError::ZeroHeartbeat);
        }
        if config.batch_size == 0 {
            return Err(SimError::ZeroBatch);
        }
        let mut specs = workload.tasks.clone();
        // Stable: tasks submitted at the same time keep their order.
        specs.sort_by(|a, b| a.submit.total_cmp(&b.submit));
        let tasks: Vec<TaskRecord> = specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| TaskRecord {
                task_id: TaskId::from_u128(index as u128 + 1),
                resources: spec.resources(),
                spec,
                submitted: false,
                dispatches: Vec::new(),
                result: None,
                n_results: 0,
            })
            .collect();
        let index_of = tasks
            .iter()
            .enumerate()
            .map(|(index, task)| (task.task_id, index))
            .collect();
        let managers: Vec<SimManager> = workload
            .blocks
            .iter()
            .enumerate()
            .map(|(index, spec)| SimManager {
                spec: spec.clone(),
                manager_id: ManagerId::from_u128(0x1000_0000 + index as u128),
                peer: PeerId(format!("manager-{index}").into_bytes()),
                block_id: format!("b{index}"),
                state: ManagerState::NotJoined,
                used: vec![0; spec.nodes as usize],
                running: BTreeMap::new(),
            })
            .collect();
        let peers = managers
            .iter()
            .enumerate()
            .map(|(index, manager)| (manager.peer.clone(), index))
            .collect();
        let n_unfinished = tasks.len();
        let mut simulation = Self {
            core: Core::new(config.core.clone(), Time::from_millis(0)),
            config,
            now: 0,
            sequence: 0,
            events: BTreeMap::new(),
            n_pending_activity: 0,
            last_activity: 0,
            managers,
            peers,
            tasks,
            index_of,
            queued: BTreeMap::new(),
            queued_shape: HashMap::new(),
            client: PeerId(b"client".to_vec()),
            next_request: 1,
            replies: Vec::new(),
            n_results_total: 0,
            n_unfinished,
            busy: Vec::new(),
            violations: Vec::new(),
            n_violations: 0,
            n_events: 0,
            n_frames: 0,
            stalled: false,
        };
        for (block, spec) in workload.blocks.iter().enumerate() {
            simulation.schedule(to_millis(spec.join), Event::Join { block });
            if let Some(leave) = spec.leave {
                simulation.schedule(to_millis(leave), Event::Leave { block });
            }
        }
        let mut first = 0;
        while first < simulation.tasks.len() {
            let at = to_millis(simulation.tasks[first].spec.submit);
            let mut end = first + 1;
            while end < simulation.tasks.len()
                && end - first < simulation.config.batch_size
                && to_millis(simulation.tasks[end].spec.submit) == at
            {
                end += 1;
            }
            simulation.schedule(at, Event::Submit { first, end });
            first = end;
        }
        let hello = protocol::encode(&FromClient::Hello {
            protocol_version: PROTOCOL_VERSION,
            client_version: RHTEX_VERSION.to_owned(),
        });
        simulation.client_frame(&hello);
        Ok(simulation)
    }

    fn schedule(&mut self, at: Millis, event: Event) {
        if event.is_activity() {
            self.n_pending_activity += 1;
        }
        self.events.insert((at, self.sequence), event);
        self.sequence += 1;
    }

    fn violation(&mut self, message: String) {
        self.n_violations += 1;
        if self.violations.len() < self.config.max_violation_messages {
            self.violations.push(message);
        }
    }

    // -----------------------------------------------------------------
    // Running
    // -----------------------------------------------------------------

    /// Runs until every task has its result, or nothing more can happen
    /// (no pending submission, join, leave or completion, and the core's
    /// deadlines past a heartbeat threshold after the last of them).
    pub fn run(&mut self) {
        self.run_until_millis(Millis::MAX);
    }

    /// Runs every event up to and including `seconds`; returns early when
    /// the run is over (see [`Simulation::run`]).
    pub fn run_until(&mut self, seconds: f64) {
        self.run_until_millis(to_millis(seconds));
    }

    fn quiet_limit(&self) -> Millis {
        let threshold = self.config.core.heartbeat_threshold;
        let period = self.config.core.heartbeat_period;
        let limit = threshold + period * 2 + Duration::from_secs(1);
        u64::try_from(limit.as_millis()).unwrap_or(Millis::MAX)
    }

    fn run_until_millis(&mut self, limit: Millis) {
        loop {
            if self.is_over() {
                return;
            }
            let next_event = self.events.first_key_value().map(|(key, _)| key.0);
            let next_deadline = self.core.poll_timeout().map(Time::as_millis);
            let deadline_first = match (next_deadline, next_event) {
                (Some(deadline), Some(event)) => deadline <= event,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => {
                    self.stalled = true;
                    return;
                }
            };
            let next = if deadline_first {
                next_deadline.unwrap_or(self.now)
            } else {
                next_event.unwrap_or(self.now)
            };
            if self.n_pending_activity == 0
                && next > self.last_activity.saturating_add(self.quiet_limit())
            {
                self.stalled = true;
                return;
            }
            if next > limit {
                self.now = self.now.max(limit);
                return;
            }
            self.now = self.now.max(next);
            self.n_events += 1;
            if deadline_first {
                self.core.handle_timeout(Time::from_millis(self.now));
                self.drain_outputs();
            } else if let Some(((_, _), event)) = self.events.pop_first() {
                if event.is_activity() {
                    self.n_pending_activity -= 1;
                    self.last_activity = self.now;
                }
                self.handle_event(event);
            }
            self.check_after_event();
        }
    }

    /// Adds a task while the simulation runs: it is submitted at
    /// `spec.submit` (or now, if that is earlier), after every event already
    /// scheduled for that millisecond. Returns its index in
    /// [`Simulation::tasks`].
    pub fn add_task(&mut self, mut spec: TaskSpec) -> usize {
        spec.submit = spec.submit.max(self.now());
        let index = self.tasks.len();
        let task_id = TaskId::from_u128(index as u128 + 1);
        self.tasks.push(TaskRecord {
            task_id,
            resources: spec.resources(),
            submitted: false,
            dispatches: Vec::new(),
            result: None,
            n_results: 0,
            spec,
        });
        self.index_of.insert(task_id, index);
        self.n_unfinished += 1;
        self.stalled = false;
        let at = to_millis(self.tasks[index].spec.submit);
        self.schedule(
            at,
            Event::Submit {
                first: index,
                end: index + 1,
            },
        );
        index
    }

    /// True once every task has a result, or the run stalled.
    pub fn is_over(&self) -> bool {
        self.n_unfinished == 0 || self.stalled
    }

    /// True when the run ended with tasks that can never get a result.
    pub fn stalled(&self) -> bool {
        self.stalled && self.n_unfinished > 0
    }

    /// Virtual time now, in seconds.
    pub fn now(&self) -> f64 {
        to_seconds(self.now)
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Submit { first, end } => self.submit(first, end),
            Event::Join { block } => self.join(block),
            Event::Leave { block } => {
                if let Some(manager) = self.managers.get_mut(block) {
                    tracing::debug!(block, "manager goes silent");
                    manager.state = ManagerState::Lost;
                    let now = self.now;
                    for running in std::mem::take(&mut manager.running).into_values() {
                        self.busy.push(BusySpan {
                            start: running.start,
                            end: now,
                            nodes: running.nodes_equivalent,
                        });
                    }
                }
            }
            Event::Heartbeat { block } => {
                let alive = self
                    .managers
                    .get(block)
                    .is_some_and(|manager| manager.state == ManagerState::Registered);
                if alive {
                    self.manager_frame(block, &protocol::encode(&FromManager::Heartbeat));
                    let period = self.period_millis();
                    self.schedule(self.now + period, Event::Heartbeat { block });
                }
            }
            Event::Finish {
                block,
                task,
                attempt,
            } => self.finish(block, task, attempt),
        }
    }

    fn period_millis(&self) -> Millis {
        u64::try_from(self.config.core.heartbeat_period.as_millis())
            .unwrap_or(Millis::MAX)
            .max(1)
    }

    fn submit(&mut self, first: usize, end: usize) {
        let submissions: Vec<TaskSubmission> = self.tasks[first..end]
            .iter()
            .map(|task| TaskSubmission {
                task_id: task.task_id,
                command: "true".to_owned(),
                resources: task.spec.request(),
                env: BTreeMap::new(),
                cwd: None,
                stdout: None,
                stderr: None,
                input: None,
            })
            .collect();
        for task in &mut self.tasks[first..end] {
            task.submitted = true;
        }
        let request_id = self.next_request;
        self.next_request += 1;
        let frame = protocol::encode(&FromClient::Submit {
            request_id,
            tasks: submissions,
        });
        self.client_frame(&frame);
        // Whatever was neither started nor answered is waiting in the queue.
        for index in first..end {
            let task = &self.tasks[index];
            if task.dispatches.is_empty() && task.n_results == 0 {
                if let Some(resources) = &task.resources {
                    let shape = Shape::of(resources);
                    self.queued.entry(shape).or_default().insert(index);
                    self.queued_shape.insert(index, shape);
                }
            }
        }
    }

    fn unqueue(&mut self, index: usize) {
        if let Some(shape) = self.queued_shape.remove(&index) {
            if let Some(set) = self.queued.get_mut(&shape) {
                set.remove(&index);
                if set.is_empty() {
                    self.queued.remove(&shape);
                }
            }
        }
    }

    fn join(&mut self, block: usize) {
        let Some(manager) = self.managers.get_mut(block) else {
            return;
        };
        if manager.state != ManagerState::NotJoined {
            return;
        }
        manager.state = ManagerState::Registering;
        let registration = Registration {
            protocol_version: PROTOCOL_VERSION,
            manager_id: manager.manager_id,
            block_id: manager.block_id.clone(),
            hostname: format!("{}-n0", manager.block_id),
            nodes: (0..manager.spec.nodes)
                .map(|node| manager.node_name(node))
                .collect(),
            launcher: Launcher::Mpiexec,
            rhtex_version: RHTEX_VERSION.to_owned(),
            cpu_count: manager.spec.slots_per_node,
            slots_per_node: Some(manager.spec.slots_per_node),
            versions: BTreeMap::new(),
        };
        self.manager_frame(
            block,
            &protocol::encode(&FromManager::Register(registration)),
        );
        let period = self.period_millis();
        self.schedule(self.now + period, Event::Heartbeat { block });
    }

    fn finish(&mut self, block: usize, task: usize, attempt: u32) {
        let now = self.now;
        let Some(manager) = self.managers.get_mut(block) else {
            return;
        };
        if manager.state != ManagerState::Registered {
            return;
        }
        let matches = manager
            .running
            .get(&task)
            .is_some_and(|running| running.attempt == attempt);
        if !matches {
            return;
        }
        let Some(running) = manager.running.remove(&task) else {
            return;
        };
        for share in &running.placement {
            if let Some(used) = manager.used.get_mut(share.node as usize) {
                *used = used.saturating_sub(share.slots);
            }
        }
        self.busy.push(BusySpan {
            start: running.start,
            end: now,
            nodes: running.nodes_equivalent,
        });
        let record = &self.tasks[task];
        let duration = to_millis(record.spec.duration);
        let walltime = record
            .resources
            .as_ref()
            .and_then(|resources| resources.walltime)
            .map(to_millis);
        let over = walltime.is_some_and(|walltime| duration > walltime);
        let wall_clock_at_zero = self.config.core.wall_clock_at_zero;
        let result = TaskResult {
            task_id: record.task_id,
            state: if over {
                TaskState::Failed
            } else {
                TaskState::Completed
            },
            exit_code: if over { None } else { Some(0) },
            signal: if over { Some(9) } else { None },
            error: over.then(|| TaskError {
                kind: ErrorKind::WalltimeExceeded,
                message: format!(
                    "the task ran longer than its walltime of {} s and was killed",
                    to_seconds(walltime.unwrap_or(0))
                ),
            }),
            manager_id: Some(manager.manager_id),
            block_id: Some(manager.block_id.clone()),
            nodes: running
                .placement
                .iter()
                .map(|share| manager.node_name(share.node))
                .collect(),
            stdout_path: None,
            stderr_path: None,
            stdout_tail: Vec::new(),
            stderr_tail: Vec::new(),
            start_time: Some(wall_clock_at_zero + to_seconds(running.start)),
            end_time: Some(wall_clock_at_zero + to_seconds(now)),
            output: None,
        };
        let frame = protocol::encode(&FromManager::Results {
            results: vec![result],
        });
        self.manager_frame(block, &frame);
    }

    // -----------------------------------------------------------------
    // Frames to the core, and its outputs
    // -----------------------------------------------------------------

    fn client_frame(&mut self, frame: &[u8]) {
        self.n_frames += 1;
        let (now, peer) = (Time::from_millis(self.now), self.client.clone());
        match decode_client_frame(frame) {
            Ok(message) => self.core.handle_client_message(now, peer, message),
            Err(undecodable) => {
                self.core
                    .handle_undecodable(now, Socket::Client, peer, undecodable)
            }
        }
        self.drain_outputs();
    }

    fn manager_frame(&mut self, block: usize, frame: &[u8]) {
        self.n_frames += 1;
        let peer = self.managers[block].peer.clone();
        let now = Time::from_millis(self.now);
        match decode_manager_frame(frame) {
            Ok(message) => self.core.handle_manager_message(now, peer, message),
            Err(undecodable) => {
                self.core
                    .handle_undecodable(now, Socket::Manager, peer, undecodable)
            }
        }
        self.drain_outputs();
    }

    fn drain_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::ToClient(peer, message) => {
                    if peer == self.client {
                        self.deliver_to_client(message);
                    } else {
                        self.violation(format!("message to an unknown client {peer}"));
                    }
                }
                Output::ToManager(peer, message) => match self.peers.get(&peer).copied() {
                    Some(block) => self.deliver_to_manager(block, message),
                    None => self.violation(format!("message to an unknown manager {peer}")),
                },
                Output::Exit => {
                    self.violation("the core exited".to_owned());
                    self.stalled = true;
                }
            }
        }
    }

    fn deliver_to_client(&mut self, message: ToClient) {
        match message {
            ToClient::Welcome { .. } | ToClient::Submitted { .. } | ToClient::Watching { .. } => {}
            ToClient::Results { results } => {
                for result in results {
                    self.client_result(result);
                }
            }
            ToClient::Reply { request_id, reply } => self.replies.push((request_id, reply)),
            ToClient::Refused { reason, .. } => {
                self.violation(format!("the client was refused: {reason}"));
            }
            ToClient::Error { message, .. } => {
                self.violation(format!("the client got an error: {message}"));
            }
        }
    }

    fn client_result(&mut self, result: TaskResult) {
        self.n_results_total += 1;
        let Some(&index) = self.index_of.get(&result.task_id) else {
            self.violation(format!("result for unknown task {}", result.task_id));
            return;
        };
        self.unqueue(index);
        let now = self.now;
        let task = &mut self.tasks[index];
        task.n_results += 1;
        if task.n_results == 1 {
            task.result = Some((now, result));
            self.n_unfinished -= 1;
        } else {
            let message = format!(
                "task {index} got result number {} at {} s",
                task.n_results,
                to_seconds(now)
            );
            self.violation(message);
        }
    }

    fn deliver_to_manager(&mut self, block: usize, message: ToManager) {
        let state = self.managers[block].state;
        match message {
            ToManager::Registered { .. } => {
                if state == ManagerState::Registering {
                    self.managers[block].state = ManagerState::Registered;
                } else {
                    self.violation(format!("block {block} got registered while {state:?}"));
                }
            }
            ToManager::Refused { reason, .. } => {
                if state != ManagerState::Lost {
                    self.violation(format!("block {block} was refused: {reason}"));
                    self.managers[block].state = ManagerState::Gone;
                }
            }
            ToManager::Heartbeat => {}
            ToManager::Shutdown { reason } => {
                if state == ManagerState::Registered {
                    self.violation(format!("block {block} was told to shut down: {reason}"));
                    self.managers[block].state = ManagerState::Gone;
                }
            }
            ToManager::CancelTask { task_id } => {
                self.violation(format!(
                    "block {block} was told to cancel {task_id}, which nobody asked for"
                ));
            }
            ToManager::RunTasks { tasks } => match state {
                ManagerState::Registered => {
                    for dispatch in tasks {
                        self.start(block, dispatch);
                    }
                }
                // A silent manager does nothing; the core will notice.
                ManagerState::Lost => {}
                other => self.violation(format!(
                    "block {block} got {} task(s) while {other:?}",
                    tasks.len()
                )),
            },
        }
    }

    /// A dispatch arrives at a live manager: check it against the ledger,
    /// take the slots, and schedule its end.
    fn start(&mut self, block: usize, dispatch: TaskDispatch) {
        let now = self.now;
        let Some(&index) = self.index_of.get(&dispatch.task_id) else {
            self.violation(format!(
                "block {block} got unknown task {}",
                dispatch.task_id
            ));
            return;
        };
        self.unqueue(index);
        if let Some(problem) = self.placement_problem(block, index, &dispatch) {
            self.violation(format!(
                "task {index} on block {block} at {} s: {problem}",
                to_seconds(now)
            ));
            return;
        }
        let resources = dispatch.resources.clone();
        let manager = &mut self.managers[block];
        let spn = manager.spec.slots_per_node;
        for share in &dispatch.placement {
            manager.used[share.node as usize] += share.slots;
        }
        let nodes_equivalent = if resources.exclusive {
            f64::from(resources.num_nodes)
        } else {
            f64::from(resources.num_nodes) * f64::from(resources.ranks_per_node.min(spn))
                / f64::from(spn)
        };
        let attempt = self.tasks[index].dispatches.len() as u32;
        manager.running.insert(
            index,
            Running {
                attempt,
                placement: dispatch.placement.clone(),
                start: now,
                nodes_equivalent,
            },
        );
        let record = &mut self.tasks[index];
        let run_for = match resources.walltime.map(to_millis) {
            Some(walltime) => to_millis(record.spec.duration).min(walltime),
            None => to_millis(record.spec.duration),
        };
        record.dispatches.push(Dispatch {
            block,
            at: now,
            placement: dispatch.placement,
            resources,
        });
        self.schedule(
            now + run_for,
            Event::Finish {
                block,
                task: index,
                attempt,
            },
        );
    }

    fn placement_problem(
        &self,
        block: usize,
        index: usize,
        dispatch: &TaskDispatch,
    ) -> Option<String> {
        let manager = &self.managers[block];
        let resources = &dispatch.resources;
        let spn = manager.spec.slots_per_node;
        if manager.running.contains_key(&index) {
            return Some("sent to a manager that already runs it".to_owned());
        }
        if let Some(other) = self
            .managers
            .iter()
            .position(|other| other.running.contains_key(&index))
        {
            return Some(format!("sent while block {other} still runs it"));
        }
        if self.tasks[index].n_results > 0 {
            return Some("sent after its result".to_owned());
        }
        if dispatch.placement.len() != resources.num_nodes as usize {
            return Some(format!(
                "placement names {} node(s) for num_nodes = {}",
                dispatch.placement.len(),
                resources.num_nodes
            ));
        }
        let distinct: BTreeSet<u32> = dispatch.placement.iter().map(|share| share.node).collect();
        if distinct.len() != dispatch.placement.len() {
            return Some(format!(
                "placement repeats a node: {:?}",
                dispatch.placement
            ));
        }
        for share in &dispatch.placement {
            let Some(&used) = manager.used.get(share.node as usize) else {
                return Some(format!(
                    "node {} does not exist (the manager has {} nodes)",
                    share.node, manager.spec.nodes
                ));
            };
            if share.slots == 0 {
                return Some(format!("no slots on node {}", share.node));
            }
            if used + share.slots > spn {
                return Some(format!(
                    "over-allocation: node {} has {used} of {spn} slots in use and gets {} more",
                    share.node, share.slots
                ));
            }
            if resources.exclusive && (used != 0 || share.slots != spn) {
                return Some(format!(
                    "exclusive task gets {} slots of node {} where {used} of {spn} are in use",
                    share.slots, share.node
                ));
            }
            if !resources.exclusive
                && resources.ranks_per_node <= spn
                && share.slots < resources.ranks_per_node
            {
                return Some(format!(
                    "shared task with ranks_per_node = {} gets only {} slots of node {}",
                    resources.ranks_per_node, share.slots, share.node
                ));
            }
        }
        None
    }

    // -----------------------------------------------------------------
    // Invariants after every event
    // -----------------------------------------------------------------

    fn check_after_event(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        // An entirely idle live manager that could start a queued task.
        let mut found = None;
        'managers: for (block, manager) in self.managers.iter().enumerate() {
            if manager.state != ManagerState::Registered || !manager.running.is_empty() {
                continue;
            }
            for (shape, indexes) in &self.queued {
                if manager.fits(*shape) {
                    if let Some(&index) = indexes.first() {
                        found = Some((block, index));
                        break 'managers;
                    }
                }
            }
        }
        if let Some((block, index)) = found {
            let message = format!(
                "at {} s task {index} waits while block {block}, idle, could start it",
                to_seconds(self.now)
            );
            self.violation(message);
        }
        if self.config.check_unreserved_capacity {
            self.check_unreserved();
        }
    }

    fn check_unreserved(&mut self) {
        let Some(status) = self.status() else {
            self.violation("no answer to status".to_owned());
            return;
        };
        let reserved: BTreeSet<ManagerId> = status
            .managers
            .iter()
            .filter(|manager| manager.reserved_for.is_some() || manager.held || manager.draining)
            .map(|manager| manager.manager_id)
            .collect();
        let mut found = None;
        'managers: for (block, manager) in self.managers.iter().enumerate() {
            if manager.state != ManagerState::Registered || reserved.contains(&manager.manager_id) {
                continue;
            }
            for (shape, indexes) in &self.queued {
                if manager.fits(*shape) {
                    if let Some(&index) = indexes.first() {
                        found = Some((block, index));
                        break 'managers;
                    }
                }
            }
        }
        if let Some((block, index)) = found {
            let message = format!(
                "at {} s task {index} waits while block {block}, not reserved, has room for it",
                to_seconds(self.now)
            );
            self.violation(message);
        }
    }

    // -----------------------------------------------------------------
    // Questions to the core, as a client asks them
    // -----------------------------------------------------------------

    fn command(&mut self, command: Command) -> Option<Reply> {
        let request_id = self.next_request;
        self.next_request += 1;
        let frame = protocol::encode(&FromClient::Command {
            request_id,
            command,
        });
        self.client_frame(&frame);
        let position = self.replies.iter().position(|(id, _)| *id == request_id)?;
        Some(self.replies.remove(position).1)
    }

    /// Asks the core for `status` now, as `rhtex status` does.
    pub fn status(&mut self) -> Option<StatusReport> {
        match self.command(Command::Status)? {
            Reply::Status(report) => Some(report),
            _ => None,
        }
    }

    /// Asks the core for the state of one task of the workload (by index
    /// into [`Simulation::tasks`]).
    pub fn task_status(&mut self, index: usize) -> Option<TaskStatusInfo> {
        let task_id = self.tasks.get(index)?.task_id;
        match self.command(Command::TaskStatus {
            task_ids: vec![task_id],
        })? {
            Reply::TaskStatus { mut tasks } => tasks.pop(),
            _ => None,
        }
    }

    // -----------------------------------------------------------------
    // Results
    // -----------------------------------------------------------------

    /// Every task: the workload's, sorted by submit time, then any added
    /// with [`Simulation::add_task`]. Task `i` has id `TaskId::from_u128(i + 1)`.
    pub fn tasks(&self) -> &[TaskRecord] {
        &self.tasks
    }

    /// The block specifications, in workload order.
    pub fn blocks(&self) -> Vec<BlockSpec> {
        self.managers
            .iter()
            .map(|manager| manager.spec.clone())
            .collect()
    }

    /// Busy spans so far (tasks still running are not included).
    pub fn busy_spans(&self) -> &[BusySpan] {
        &self.busy
    }

    /// Violation messages (at most `max_violation_messages`) and how many
    /// there were in all.
    pub fn violations(&self) -> (&[String], u64) {
        (&self.violations, self.n_violations)
    }

    /// Events handled (including the core's deadlines) and frames sent to
    /// the core.
    pub fn counters(&self) -> (u64, u64) {
        (self.n_events, self.n_frames)
    }

    /// Results the client received in all (duplicates included).
    pub fn n_results_total(&self) -> u64 {
        self.n_results_total
    }
}

#[cfg(test)]
mod tests {
    //! The checks must be able to fail: forged dispatches (as a faulty core
    //! would send them) are caught by the simulated managers' ledger.

    use super::*;

    fn one_block_simulation(n_tasks: usize) -> Simulation {
        let workload = Workload {
            name: "ledger".to_owned(),
            description: String::new(),
            // Long tasks submitted late, so that the block is idle at 1 s.
            tasks: (0..n_tasks)
                .map(|_| TaskSpec::new(100.0, 10.0, 2))
                .collect(),
            blocks: vec![BlockSpec::new(4, 8, 0.0)],
        };
        let mut simulation = match Simulation::new(&workload, SimConfig::default()) {
            Ok(simulation) => simulation,
            Err(error) => panic!("{error}"),
        };
        simulation.run_until(1.0);
        simulation
    }

    fn forged(index: usize, nodes: &[u32], slots: u32, exclusive: bool) -> TaskDispatch {
        let mut resources = TaskResources::serial();
        resources.num_nodes = nodes.len() as u32;
        resources.exclusive = exclusive;
        TaskDispatch {
            task_id: TaskId::from_u128(index as u128 + 1),
            command: "true".to_owned(),
            resources,
            placement: nodes
                .iter()
                .map(|&node| NodeShare { node, slots })
                .collect(),
            env: BTreeMap::new(),
            cwd: None,
            stdout: None,
            stderr: None,
            input: None,
        }
    }

    fn violations_after(dispatches: Vec<TaskDispatch>) -> Vec<String> {
        let mut simulation = one_block_simulation(3);
        simulation.deliver_to_manager(0, ToManager::RunTasks { tasks: dispatches });
        simulation.violations().0.to_vec()
    }

    #[test]
    fn a_valid_placement_is_accepted() {
        let found = violations_after(vec![
            forged(0, &[0, 1], 8, true),
            forged(1, &[2, 3], 8, true),
        ]);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn forged_placements_are_caught() {
        let cases: Vec<(Vec<TaskDispatch>, &str)> = vec![
            (
                vec![forged(0, &[0, 1], 8, true), forged(1, &[1, 2], 8, true)],
                "over-allocation",
            ),
            (vec![forged(0, &[0, 0], 8, true)], "repeats a node"),
            (vec![forged(0, &[7], 8, true)], "does not exist"),
            (
                vec![forged(0, &[0], 4, false), forged(1, &[0], 8, true)],
                "over-allocation",
            ),
            (
                vec![forged(0, &[0], 4, true)],
                "exclusive task gets 4 slots",
            ),
            (
                vec![forged(0, &[0, 1], 8, true), forged(0, &[2, 3], 8, true)],
                "already runs it",
            ),
        ];
        for (dispatches, expected) in cases {
            let found = violations_after(dispatches);
            assert!(
                found.iter().any(|message| message.contains(expected)),
                "expected a violation containing {expected:?}, got {found:?}"
            );
        }
        let mut wrong_count = forged(0, &[0, 1], 8, true);
        wrong_count.resources.num_nodes = 3;
        let found = violations_after(vec![wrong_count]);
        assert!(
            found
                .iter()
                .any(|message| message.contains("placement names 2 node(s) for num_nodes = 3")),
            "{found:?}"
        );
    }

    #[test]
    fn a_task_waiting_while_a_block_is_idle_is_a_violation() {
        let mut simulation = one_block_simulation(1);
        simulation.check_after_event();
        assert_eq!(simulation.violations().1, 0);
        // As if the core had queued a 2-node task and left the block idle.
        let shape = Shape {
            num_nodes: 2,
            shared_ranks: 0,
        };
        simulation.queued.entry(shape).or_default().insert(0);
        simulation.check_after_event();
        let (messages, n_violations) = simulation.violations();
        assert_eq!(n_violations, 1, "{messages:?}");
        assert!(messages[0].contains("idle, could start it"), "{messages:?}");
        // A task too large for the block is no violation.
        simulation.queued.clear();
        let too_large = Shape {
            num_nodes: 5,
            shared_ranks: 0,
        };
        simulation.queued.entry(too_large).or_default().insert(0);
        simulation.check_after_event();
        assert_eq!(simulation.violations().1, 1);
    }

    #[test]
    fn a_second_result_is_a_violation() {
        let mut simulation = one_block_simulation(1);
        let result = TaskResult::failed_before_start(
            TaskId::from_u128(1),
            ErrorKind::Cancelled,
            "forged".to_owned(),
        );
        simulation.deliver_to_client(ToClient::Results {
            results: vec![result.clone(), result],
        });
        let (messages, n_violations) = simulation.violations();
        assert_eq!(n_violations, 1, "{messages:?}");
        assert!(messages[0].contains("result number 2"), "{messages:?}");
    }
}
