//! [`Pair`]: one interchange core, N pool-manager cores and in-memory
//! clients on one event queue in virtual time.
//!
//! A step handles the earliest thing due: an event (a message arriving
//! after its delay, a fake task exiting) or a core's deadline
//! (`poll_timeout`). Events go first when both fall at the same
//! millisecond (so a task that ends exactly at its walltime completes),
//! events in the order they were scheduled, deadlines the interchange's
//! first and then the managers' in the order they were added. After the
//! input every output is drained at once: a message becomes a delivery
//! (with no delay, within the same step, in the order sent), a `Launch` a
//! fake process whose exit is an event, a `Kill` an exit with `SIGTERM` at
//! once. Every message crosses as a frame: encoded, then decoded by the
//! receiver with `protocol`'s codec, as the daemons do.

use crate::checks::{Problem, Waiting};
use crate::config::{ManagerLife, ManagerSpec, PairConfig, Seen, Step};
use crate::launcher::{instant_launcher, LaunchPlan};
use interchange_core::{decode_client_frame, decode_manager_frame, Core, PeerId};
use interchange_core::{Output as InterchangeOutput, Socket};
use pool_manager_core::{
    ExitStatus, LinkStatus, Output as ManagerOutput, PoolManager, Settings, TaskExit, TaskOutput,
};
use protocol::{
    Command, ErrorKind, FromClient, FromManager, ManagerId, Reply, StatusReport, TaskId,
    TaskSubmission, ToClient, ToManager, UnixTime, PROTOCOL_VERSION, RHTEX_VERSION,
};
use seam::Time;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

/// A core's deadline, but never at or before the time its `handle_timeout`
/// last ran (which handled everything due then): a core whose deadline does
/// not move cannot hold the clock still.
fn after_handled(at: Time, handled: Option<Time>) -> Time {
    match handled {
        Some(handled) if at <= handled => handled.plus(Duration::from_millis(1)),
        _ => at,
    }
}

/// `SIGTERM`: how a killed fake task ends.
const SIGTERM: i32 = 15;

#[derive(Debug)]
pub(crate) enum Delivery {
    FromClient { client: usize, frame: Vec<u8> },
    FromManager { manager: usize, frame: Vec<u8> },
    ToManager { manager: usize, frame: Vec<u8> },
    ToClient { client: usize, frame: Vec<u8> },
}

#[derive(Debug)]
enum Event {
    Deliver(Delivery),
    TaskExit {
        manager: usize,
        task_id: TaskId,
        generation: u64,
        status: ExitStatus,
    },
}

/// A fake task's process.
#[derive(Debug)]
struct Process {
    /// Changes when it is killed, so that its planned exit is ignored.
    generation: u64,
    started: Time,
}

#[derive(Debug)]
pub(crate) struct ManagerSlot {
    pub(crate) core: PoolManager,
    pub(crate) peer: PeerId,
    pub(crate) manager_id: ManagerId,
    pub(crate) life: ManagerLife,
    processes: BTreeMap<TaskId, Process>,
    /// When its `handle_timeout` last ran.
    last_timeout: Option<Time>,
}

#[derive(Debug)]
pub(crate) struct ClientSlot {
    pub(crate) peer: PeerId,
    pub(crate) inbox: VecDeque<ToClient>,
    pub(crate) next_request: u64,
}

/// The real interchange core and real pool-manager cores, wired in memory.
/// See the crate documentation.
pub struct Pair {
    pub(crate) config: PairConfig,
    pub(crate) now: Time,
    pub(crate) interchange: Core,
    pub(crate) managers: Vec<ManagerSlot>,
    pub(crate) clients: Vec<ClientSlot>,
    pub(crate) manager_by_peer: HashMap<PeerId, usize>,
    pub(crate) client_by_peer: HashMap<PeerId, usize>,
    pub(crate) launcher: LaunchPlan,
    events: BTreeMap<(Time, u64), Event>,
    /// When the interchange's `handle_timeout` last ran.
    interchange_timeout: Option<Time>,
    pub(crate) sequence: u64,
    in_flight: VecDeque<Delivery>,
    pub(crate) n_generations: u64,
    pub(crate) waiting: Waiting,
    pub(crate) problems: Vec<Problem>,
    pub(crate) seen: VecDeque<Seen>,
    pub(crate) n_steps: u64,
    pub(crate) n_frames: u64,
    /// Managers whose link is paused (`links.rs`), and the messages held
    /// back meanwhile, in the order sent.
    pub(crate) paused: std::collections::BTreeSet<usize>,
    pub(crate) held_back: VecDeque<Delivery>,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("now", &self.now)
            .field("n_managers", &self.managers.len())
            .field("n_clients", &self.clients.len())
            .field("n_events", &self.events.len())
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// An interchange core started at `Time::ZERO`, no manager, no client;
    /// every task exits 0 at once until [`Pair::set_launcher`].
    pub fn new(config: PairConfig) -> Self {
        Self {
            interchange: Core::new(config.interchange.clone(), Time::ZERO),
            config,
            now: Time::ZERO,
            managers: Vec::new(),
            clients: Vec::new(),
            manager_by_peer: HashMap::new(),
            client_by_peer: HashMap::new(),
            launcher: instant_launcher(),
            events: BTreeMap::new(),
            interchange_timeout: None,
            sequence: 0,
            in_flight: VecDeque::new(),
            n_generations: 0,
            waiting: Waiting::default(),
            problems: Vec::new(),
            seen: VecDeque::new(),
            n_steps: 0,
            n_frames: 0,
            paused: std::collections::BTreeSet::new(),
            held_back: VecDeque::new(),
        }
    }

    /// How the fake launcher runs each task from now on.
    pub fn set_launcher(&mut self, launcher: LaunchPlan) {
        self.launcher = launcher;
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    // -----------------------------------------------------------------
    // Peers
    // -----------------------------------------------------------------

    /// A new client that says `hello` now. Returns its index.
    pub fn add_client(&mut self) -> usize {
        let client = self.clients.len();
        let peer = PeerId(format!("client-{client}").into_bytes());
        self.client_by_peer.insert(peer.clone(), client);
        self.clients.push(ClientSlot {
            peer,
            inbox: VecDeque::new(),
            next_request: 1,
        });
        self.send(
            client,
            &FromClient::Hello {
                protocol_version: PROTOCOL_VERSION,
                client_version: RHTEX_VERSION.to_owned(),
            },
        );
        client
    }

    /// A client sends a message now.
    pub fn send(&mut self, client: usize, message: &FromClient) {
        let frame = protocol::encode(message);
        self.post(Delivery::FromClient { client, frame });
        self.flush();
    }

    fn request_id(&mut self, client: usize) -> u64 {
        let slot = &mut self.clients[client];
        let request_id = slot.next_request;
        slot.next_request += 1;
        request_id
    }

    /// A client submits tasks now; returns the request id.
    pub fn submit(&mut self, client: usize, tasks: Vec<TaskSubmission>) -> u64 {
        let request_id = self.request_id(client);
        self.send(client, &FromClient::Submit { request_id, tasks });
        request_id
    }

    /// A client sends a command now; returns the request id.
    pub fn command(&mut self, client: usize, command: Command) -> u64 {
        let request_id = self.request_id(client);
        self.send(
            client,
            &FromClient::Command {
                request_id,
                command,
            },
        );
        request_id
    }

    /// A client sends a command and takes its reply from its inbox. With
    /// no delay the reply comes in the same step; with a delay the Pair
    /// first runs until the reply can have come back (two delays later).
    pub fn ask(&mut self, client: usize, command: Command) -> Option<Reply> {
        let request_id = self.command(client, command);
        if !self.config.delay.is_zero() {
            self.run_until(self.now.plus(self.config.delay * 2));
        }
        let inbox = &mut self.clients[client].inbox;
        let position = inbox.iter().position(
            |message| matches!(message, ToClient::Reply { request_id: id, .. } if *id == request_id),
        )?;
        match inbox.remove(position) {
            Some(ToClient::Reply { reply, .. }) => Some(reply),
            _ => None,
        }
    }

    /// `status`, as `rhtex status` asks it.
    pub fn status(&mut self, client: usize) -> Option<StatusReport> {
        match self.ask(client, Command::Status)? {
            Reply::Status(report) => Some(report),
            _ => None,
        }
    }

    /// The next message a client received.
    pub fn poll_client(&mut self, client: usize) -> Option<ToClient> {
        self.clients.get_mut(client)?.inbox.pop_front()
    }

    /// A manager built from `spec` starts now; see [`Pair::add_manager_with`].
    pub fn add_manager(&mut self, spec: &ManagerSpec) -> usize {
        let mut settings = spec.settings(&self.config.interchange);
        settings.reattach_timeout = self.config.reattach_timeout;
        self.add_manager_with(settings)
    }

    /// A manager core starts now, connects and registers. Returns its
    /// index (managers are numbered in the order added).
    pub fn add_manager_with(&mut self, settings: Settings) -> usize {
        let manager = self.managers.len();
        let peer = PeerId(format!("manager-{manager}").into_bytes());
        let manager_id = settings.registration.manager_id;
        let mut core = PoolManager::new(settings, self.now);
        core.handle_link(self.now, LinkStatus::Connected);
        self.manager_by_peer.insert(peer.clone(), manager);
        self.managers.push(ManagerSlot {
            core,
            peer,
            manager_id,
            life: ManagerLife::Alive,
            processes: BTreeMap::new(),
            last_timeout: None,
        });
        self.drain_manager(manager, false);
        self.flush();
        manager
    }

    /// The manager is killed now (a node failure, a block's job killed):
    /// it says nothing more, its messages in flight are lost, its running
    /// tasks vanish, and its core is driven no more.
    pub fn kill_manager(&mut self, manager: usize) {
        let Some(slot) = self.managers.get_mut(manager) else {
            return;
        };
        if slot.life != ManagerLife::Alive {
            return;
        }
        slot.life = ManagerLife::Killed;
        let vanished: Vec<TaskId> = std::mem::take(&mut slot.processes).into_keys().collect();
        if self.config.record {
            for task_id in vanished {
                self.seen.push_back(Seen::Vanished { manager, task_id });
            }
        }
    }

    /// The manager gets SIGTERM now: it kills its tasks, reports them, says
    /// `goodbye` and exits.
    pub fn stop_manager(&mut self, manager: usize) {
        if self.manager_life(manager) != Some(&ManagerLife::Alive) {
            return;
        }
        self.managers[manager]
            .core
            .handle_terminate(self.now, "SIGTERM");
        self.drain_manager(manager, false);
        self.flush();
    }

    /// Gives a manager a message now as if the interchange had sent it
    /// (to test what a manager core does with a forged message).
    pub fn inject_to_manager(&mut self, manager: usize, message: &ToManager) {
        let frame = protocol::encode(message);
        self.post_now(Delivery::ToManager { manager, frame });
        self.flush();
    }

    /// The interchange gets SIGTERM now.
    pub fn terminate_interchange(&mut self) {
        self.interchange.handle_terminate(self.now);
        self.drain_interchange();
        self.flush();
    }

    // -----------------------------------------------------------------
    // Views
    // -----------------------------------------------------------------

    pub fn interchange(&self) -> &Core {
        &self.interchange
    }

    pub fn n_managers(&self) -> usize {
        self.managers.len()
    }

    /// A manager's core (its state, its `validate()`, its allocator).
    pub fn manager(&self, manager: usize) -> &PoolManager {
        &self.managers[manager].core
    }

    pub fn manager_life(&self, manager: usize) -> Option<&ManagerLife> {
        self.managers.get(manager).map(|slot| &slot.life)
    }

    pub fn manager_id(&self, manager: usize) -> Option<ManagerId> {
        self.managers.get(manager).map(|slot| slot.manager_id)
    }

    /// Fake tasks running over all managers.
    pub fn n_running_tasks(&self) -> usize {
        self.managers.iter().map(|slot| slot.processes.len()).sum()
    }

    /// True while a message is in flight or a fake task runs.
    pub fn has_pending_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Steps taken and frames the interchange core received.
    pub fn counters(&self) -> (u64, u64) {
        (self.n_steps, self.n_frames)
    }

    /// The next entry of the trace ([`PairConfig::record`]).
    pub fn poll_seen(&mut self) -> Option<Seen> {
        self.seen.pop_front()
    }

    /// Everything that went wrong so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems recorded so far.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        std::mem::take(&mut self.problems)
    }

    /// Tasks waiting, as seen on the wire (see [`crate::checks`]).
    pub fn n_waiting(&self) -> usize {
        self.waiting.len()
    }

    // -----------------------------------------------------------------
    // Running
    // -----------------------------------------------------------------

    /// When the next step is due: the earliest event or deadline.
    pub fn next_time(&self) -> Option<Time> {
        let event = self.events.first_key_value().map(|(key, _)| key.0);
        let deadline = self.next_deadline().map(|(at, _)| at);
        match (event, deadline) {
            (Some(event), Some(deadline)) => Some(event.min(deadline)),
            (event, deadline) => event.or(deadline),
        }
    }

    /// The earliest deadline, and whose (`None`: the interchange's).
    fn next_deadline(&self) -> Option<(Time, Option<usize>)> {
        let mut best = self
            .interchange
            .poll_timeout()
            .map(|at| (after_handled(at, self.interchange_timeout), None));
        for (manager, slot) in self.managers.iter().enumerate() {
            if slot.life != ManagerLife::Alive {
                continue;
            }
            if let Some(at) = slot.core.poll_timeout() {
                let at = after_handled(at, slot.last_timeout);
                if best.map_or(true, |(best_at, _)| at < best_at) {
                    best = Some((at, Some(manager)));
                }
            }
        }
        best
    }

    /// Handles the next thing due (see the module documentation) and
    /// everything it causes with no delay. `None` when nothing is left.
    pub fn step(&mut self) -> Option<Step> {
        let event_at = self.events.first_key_value().map(|(key, _)| key.0);
        let deadline = self.next_deadline();
        let take_event = match (event_at, deadline) {
            (Some(event), Some((deadline, _))) => event <= deadline,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        self.n_steps += 1;
        let step = if take_event {
            let ((at, _), event) = self.events.pop_first()?;
            self.now = self.now.max(at);
            self.handle_event(event);
            Step::Event
        } else {
            let (at, whose) = deadline?;
            self.now = self.now.max(at);
            let now = self.now;
            let stuck = match whose {
                None => {
                    self.interchange.handle_timeout(now);
                    self.interchange_timeout = Some(now);
                    self.drain_interchange();
                    self.interchange.poll_timeout().is_some_and(|at| at <= now)
                }
                Some(manager) => {
                    let slot = &mut self.managers[manager];
                    slot.core.handle_timeout(now);
                    slot.last_timeout = Some(now);
                    let stuck = slot.life == ManagerLife::Alive
                        && slot.core.poll_timeout().is_some_and(|at| at <= now);
                    self.drain_manager(manager, false);
                    stuck
                }
            };
            if stuck {
                let core =
                    whose.map_or_else(|| "interchange".to_owned(), |m| format!("manager {m}"));
                let message =
                    format!("{core}: its deadline did not move past {now:?} after handle_timeout");
                self.problems.push(Problem::Invalid { message });
            }
            Step::Timeout
        };
        self.flush();
        if self.config.validate_every_step {
            if let Err(message) = self.validate() {
                self.problems.push(Problem::Invalid { message });
            }
        }
        Some(step)
    }

    /// Steps through everything due up to and including `limit`, then sets
    /// the clock to `limit` (never back).
    pub fn run_until(&mut self, limit: Time) {
        while self.next_time().is_some_and(|at| at <= limit) {
            self.step();
        }
        self.now = self.now.max(limit);
    }

    /// Steps while an event is pending (a message in flight, a task
    /// running), with the deadlines that fall before it; the periodic
    /// deadlines after the last event are left. At most `max_steps` steps;
    /// returns false if work was still pending then.
    pub fn drive(&mut self, max_steps: u64) -> bool {
        for _ in 0..max_steps {
            if self.events.is_empty() {
                return true;
            }
            self.step();
        }
        self.events.is_empty()
    }

    // -----------------------------------------------------------------
    // Inside
    // -----------------------------------------------------------------

    fn schedule(&mut self, at: Time, event: Event) {
        self.events.insert((at, self.sequence), event);
        self.sequence += 1;
    }

    /// A message leaves a peer: it arrives after the delay.
    fn post(&mut self, delivery: Delivery) {
        if self.config.delay.is_zero() {
            self.in_flight.push_back(delivery);
        } else {
            let at = self.now.plus(self.config.delay);
            self.schedule(at, Event::Deliver(delivery));
        }
    }

    /// Posts a message the interchange sent to `peer`, or records that no
    /// client or manager has that routing id.
    fn post_to_peer(&mut self, delivery: Option<Delivery>, peer: &impl std::fmt::Display) {
        match delivery {
            Some(delivery) => self.post(delivery),
            None => self.problems.push(Problem::UnknownPeer {
                peer: peer.to_string(),
            }),
        }
    }

    pub(crate) fn post_delivery_now(&mut self, delivery: Delivery) {
        self.post_now(delivery);
    }

    fn post_now(&mut self, delivery: Delivery) {
        self.in_flight.push_back(delivery);
    }

    pub(crate) fn flush(&mut self) {
        while let Some(delivery) = self.in_flight.pop_front() {
            self.deliver(delivery);
        }
    }

    fn wall(&self, at: Time) -> UnixTime {
        self.config.interchange.wall_clock_at_zero + at.as_millis() as f64 / 1000.0
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::Deliver(delivery) => self.deliver(delivery),
            Event::TaskExit {
                manager,
                task_id,
                generation,
                status,
            } => {
                let slot = &mut self.managers[manager];
                let current = slot
                    .processes
                    .get(&task_id)
                    .is_some_and(|process| process.generation == generation);
                if !current || slot.life != ManagerLife::Alive {
                    return;
                }
                let Some(process) = slot.processes.remove(&task_id) else {
                    return;
                };
                let exit = TaskExit {
                    status,
                    stdout_tail: Vec::new(),
                    stderr_tail: Vec::new(),
                    start_time: self.wall(process.started),
                    end_time: self.wall(self.now),
                    output: TaskOutput::Absent,
                };
                if self.config.record {
                    self.seen.push_back(Seen::Exited {
                        manager,
                        task_id,
                        status,
                    });
                }
                self.managers[manager]
                    .core
                    .handle_task_exited(self.now, task_id, exit);
                self.drain_manager(manager, false);
            }
        }
    }

    fn undecodable(&mut self, what: &'static str, error: impl fmt::Display) {
        self.problems.push(Problem::Undecodable {
            what,
            error: error.to_string(),
        });
    }

    fn deliver(&mut self, delivery: Delivery) {
        let now = self.now;
        if let Delivery::FromManager { manager, .. } | Delivery::ToManager { manager, .. } =
            &delivery
        {
            if self.paused.contains(manager) {
                self.held_back.push_back(delivery);
                return;
            }
        }
        match delivery {
            Delivery::FromClient { client, frame } => {
                self.n_frames += 1;
                let peer = self.clients[client].peer.clone();
                match decode_client_frame(&frame) {
                    Ok(message) => {
                        if let FromClient::Submit { tasks, .. } = &message {
                            self.waiting.submitted(tasks);
                        }
                        self.interchange.handle_client_message(now, peer, message);
                    }
                    Err(undecodable) => {
                        self.undecodable("a client's frame", &undecodable.error);
                        self.interchange
                            .handle_undecodable(now, Socket::Client, peer, undecodable);
                    }
                }
                self.drain_interchange();
            }
            Delivery::FromManager { manager, frame } => {
                if self.managers[manager].life == ManagerLife::Killed {
                    return;
                }
                self.n_frames += 1;
                let peer = self.managers[manager].peer.clone();
                match decode_manager_frame(&frame) {
                    Ok(message) => self.interchange.handle_manager_message(now, peer, message),
                    Err(undecodable) => {
                        self.undecodable("a manager's frame", &undecodable.error);
                        self.interchange.handle_undecodable(
                            now,
                            Socket::Manager,
                            peer,
                            undecodable,
                        );
                    }
                }
                self.drain_interchange();
            }
            Delivery::ToManager { manager, frame } => {
                if self.managers[manager].life != ManagerLife::Alive {
                    return;
                }
                let message: ToManager = match protocol::decode(&frame) {
                    Ok(message) => message,
                    Err(error) => {
                        self.undecodable("a frame to a manager", error);
                        self.managers[manager].core.handle_undecodable(now);
                        return;
                    }
                };
                let dispatch = matches!(message, ToManager::RunTasks { .. });
                if self.config.record {
                    self.seen.push_back(Seen::ToManager {
                        manager,
                        message: message.clone(),
                    });
                }
                let slot = &mut self.managers[manager];
                let refusals_count = dispatch && slot.core.is_registered();
                slot.core.handle_message(now, message);
                self.drain_manager(manager, refusals_count);
            }
            Delivery::ToClient { client, frame } => match protocol::decode::<ToClient>(&frame) {
                Ok(message) => self.clients[client].inbox.push_back(message),
                Err(error) => self.undecodable("a frame to a client", error),
            },
        }
    }

    pub(crate) fn drain_interchange(&mut self) {
        while let Some(output) = self.interchange.poll_output() {
            match output {
                InterchangeOutput::ToClient(peer, message) => {
                    if let ToClient::Results { results } = &message {
                        for result in results {
                            self.waiting.left(result.task_id);
                        }
                    }
                    let delivery = self.client_by_peer.get(&peer).map(|&client| {
                        let frame = protocol::encode(&message);
                        Delivery::ToClient { client, frame }
                    });
                    self.post_to_peer(delivery, &peer);
                }
                InterchangeOutput::ToManager(peer, message) => {
                    if let ToManager::RunTasks { tasks } = &message {
                        for task in tasks {
                            self.waiting.left(task.task_id);
                        }
                    }
                    let delivery = self.manager_by_peer.get(&peer).map(|&manager| {
                        let frame = protocol::encode(&message);
                        Delivery::ToManager { manager, frame }
                    });
                    self.post_to_peer(delivery, &peer);
                }
                InterchangeOutput::Exit => {
                    if self.config.record {
                        self.seen.push_back(Seen::InterchangeExited);
                    }
                }
            }
        }
    }

    /// Performs a manager core's outputs. `refusals_count`: the input was a
    /// `run_tasks` to a registered manager, so a `launch_failed` result
    /// among the outputs is a refused placement.
    pub(crate) fn drain_manager(&mut self, manager: usize, refusals_count: bool) {
        while let Some(output) = self.managers[manager].core.poll_output() {
            match output {
                ManagerOutput::Send(message) => {
                    if refusals_count {
                        self.note_refusals(manager, &message);
                    }
                    let frame = protocol::encode(&message);
                    self.post(Delivery::FromManager { manager, frame });
                }
                ManagerOutput::Launch(launch) => {
                    let run = (self.launcher)(&launch);
                    self.n_generations += 1;
                    let generation = self.n_generations;
                    let process = Process {
                        generation,
                        started: self.now,
                    };
                    self.managers[manager]
                        .processes
                        .insert(launch.task_id, process);
                    self.schedule(
                        self.now.plus(run.duration),
                        Event::TaskExit {
                            manager,
                            task_id: launch.task_id,
                            generation,
                            status: run.status,
                        },
                    );
                    if self.config.record {
                        self.seen.push_back(Seen::Launched {
                            manager,
                            task_id: launch.task_id,
                        });
                    }
                }
                ManagerOutput::Kill { task_id, .. } => {
                    self.n_generations += 1;
                    let generation = self.n_generations;
                    match self.managers[manager].processes.get_mut(&task_id) {
                        Some(process) => {
                            process.generation = generation;
                            self.schedule(
                                self.now,
                                Event::TaskExit {
                                    manager,
                                    task_id,
                                    generation,
                                    status: ExitStatus::Signal(SIGTERM),
                                },
                            );
                        }
                        None => self.problems.push(Problem::Launcher {
                            manager,
                            message: format!("kill of task {task_id}, which is not running"),
                        }),
                    }
                }
                ManagerOutput::Exit { reason, .. } => {
                    let slot = &mut self.managers[manager];
                    slot.life = ManagerLife::Exited(reason.clone());
                    if !slot.processes.is_empty() {
                        let message =
                            format!("exited with {} task(s) still running", slot.processes.len());
                        self.problems.push(Problem::Launcher { manager, message });
                    }
                    if self.config.record {
                        self.seen.push_back(Seen::ManagerExited { manager, reason });
                    }
                }
            }
        }
    }

    fn note_refusals(&mut self, manager: usize, message: &FromManager) {
        let FromManager::Results { results } = message else {
            return;
        };
        for result in results {
            if let Some(error) = result
                .error
                .as_ref()
                .filter(|error| error.kind == ErrorKind::LaunchFailed)
            {
                self.problems.push(Problem::Refused {
                    manager,
                    task_id: result.task_id,
                    message: error.message.clone(),
                });
            }
        }
    }
}
