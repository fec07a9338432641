//! The state machine: [`Core`] holds the parts (clients, tasks and their
//! queue, the manager table, matching) and ties them together. Each input
//! goes to the module that handles it (`from_clients.rs`,
//! `from_managers.rs`, or here for time, the signal path and the provider's
//! calls); every input ends with [`Core::after_input`]: match, send the
//! results gathered, finish a shutdown that is complete.

use crate::clients::Clients;
use crate::config::CoreConfig;
use crate::events::EventQueue;
use crate::interface::{Output, PeerId, Socket, Undecodable};
use crate::managers::{ManagerEntry, ManagerTable};
use crate::matching::{Context, Matcher, Pass};
use crate::tasks::{Delivery, Loss, Lost, TaskTable};
use protocol::{
    BlockInfo, ErrorKind, Event, ManagerId, Registration, TaskResult, ToClient, ToManager, UnixTime,
};
use seam::{seconds_text, Time};
use std::collections::{BTreeMap, VecDeque};

/// The interchange state machine. See the crate documentation.
#[derive(Debug)]
pub struct Core {
    pub(crate) config: CoreConfig,
    pub(crate) clients: Clients,
    pub(crate) tasks: TaskTable,
    pub(crate) managers: ManagerTable,
    pub(crate) matcher: Matcher,
    pub(crate) n_bad_messages: u64,
    /// Submits refused as a whole as busy (the queued input budget).
    pub(crate) n_busy_submits: u64,
    /// Requests refused because the client identity may not make them.
    pub(crate) n_denied: u64,
    outputs: VecDeque<Output>,
    /// Results gathered during one input, sent as one message per client.
    pub(crate) pending_results: BTreeMap<PeerId, Vec<TaskResult>>,
    next_heartbeat: Time,
    /// No manager can have expired before this time.
    pub(crate) next_expiry_check: Option<Time>,
    /// Set once shutdown began: the deadline for managers' goodbyes.
    pub(crate) shutdown_deadline: Option<Time>,
    exited: bool,
    /// The provider's blocks, shown by `status`.
    pub(crate) blocks: Vec<BlockInfo>,
    /// The latest time an input brought (the core reads no clock).
    pub(crate) now: Time,
    /// Manager and block events for the event log (`events.rs`).
    pub(crate) events: EventQueue,
    /// With the journal on: the registrations of the managers, for
    /// snapshots (`journal.rs`).
    pub(crate) journal_managers: BTreeMap<ManagerId, Registration>,
}

impl Core {
    pub fn new(config: CoreConfig, now: Time) -> Self {
        let next_heartbeat = now.plus(config.heartbeat_period);
        Self {
            clients: Clients::default(),
            tasks: TaskTable::new(
                config.max_finished_results,
                config.max_finished_bytes,
                config.default_retries,
                config.record_events,
            ),
            managers: ManagerTable::default(),
            matcher: Matcher::new(config.placement),
            n_bad_messages: 0,
            n_busy_submits: 0,
            n_denied: 0,
            outputs: VecDeque::new(),
            pending_results: BTreeMap::new(),
            next_heartbeat,
            next_expiry_check: None,
            shutdown_deadline: None,
            exited: false,
            blocks: Vec::new(),
            now,
            events: EventQueue::new(config.record_events),
            journal_managers: BTreeMap::new(),
            config,
        }
    }

    /// Takes the time an input brings (never going back); false once the
    /// core has exited, when inputs are ignored.
    pub(crate) fn begin_input(&mut self, now: Time) -> bool {
        self.now = self.now.max(now);
        self.tasks.set_time(self.now, self.unix(self.now));
        !self.exited
    }

    // -----------------------------------------------------------------
    // Inputs: undecodable frames, time, the signal path
    // -----------------------------------------------------------------

    /// A frame arrived on `socket` that did not decode.
    pub fn handle_undecodable(
        &mut self,
        now: Time,
        socket: Socket,
        peer: PeerId,
        undecodable: Undecodable,
    ) {
        if !self.begin_input(now) {
            return;
        }
        match socket {
            Socket::Client => self.undecodable_from_client(&peer, undecodable),
            Socket::Manager => self.undecodable_from_manager(now, &peer, undecodable),
        }
        self.after_input();
    }

    /// The time is `now`: send heartbeats, drop silent managers, end a
    /// shutdown whose grace period has passed.
    pub fn handle_timeout(&mut self, now: Time) {
        if !self.begin_input(now) {
            return;
        }
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
            let grace = seconds_text(self.config.shutdown_grace);
            for manager_id in self.managers.ids() {
                if let Some(manager) = self.managers.remove(manager_id) {
                    tracing::warn!(manager_id = %manager_id, "manager did not say goodbye before the shutdown deadline");
                    self.emit_lost(&manager, "no goodbye before the shutdown deadline");
                    let message = format!(
                        "task lost: {} did not say goodbye within {grace} s of shutdown",
                        manager.describe()
                    );
                    self.end_tasks_of(&manager, ErrorKind::ManagerLost, &message);
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
                let silence = seconds_text(manager.last_heard.until(now));
                tracing::warn!(
                    manager_id = %manager_id,
                    hostname = %manager.hostname,
                    block_id = %manager.block_id,
                    n_tasks = manager.tasks().len(),
                    "manager silent for {silence} s; dropped"
                );
                self.emit_lost(&manager, &format!("silent for {silence} s"));
                let message = format!(
                    "task lost: {} sent nothing for {silence} s",
                    manager.describe()
                );
                self.end_tasks_of(&manager, ErrorKind::ManagerLost, &message);
            }
        }
    }

    /// The signal path (SIGTERM, SIGINT): the daemon stops and the work is
    /// kept. Nothing is said to managers or clients and no task gets a
    /// result: managers keep running their tasks and register again with
    /// the interchange that comes back (which knows the tasks if it
    /// restored them), and clients watch again. Exits at once. (`shutdown`
    /// is what ends the work.)
    pub fn handle_terminate(&mut self, now: Time) {
        if !self.begin_input(now) {
            return;
        }
        tracing::info!(
            n_managers = self.managers.len(),
            "stopped by a signal: managers keep their tasks and will register again"
        );
        self.pending_results.clear();
        self.outputs.push_back(Output::Exit);
        self.exited = true;
    }

    // -----------------------------------------------------------------
    // For a block provider
    // -----------------------------------------------------------------

    /// The provider's blocks, as `status` should show them from now on
    /// (at `now`: the time of their changes in the event log).
    pub fn set_blocks(&mut self, now: Time, blocks: Vec<BlockInfo>) {
        self.now = self.now.max(now);
        if blocks != self.blocks {
            self.tasks.journal_blocks(&blocks);
        }
        self.emit_block_changes(&blocks);
        self.blocks = blocks;
    }

    /// The provider's blocks as last set (after [`Core::recover`]: as the
    /// journal last recorded them, for the provider to adopt).
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.blocks
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

    pub(crate) fn unix(&self, now: Time) -> UnixTime {
        self.config.wall_clock_at_zero + now.as_millis() as f64 / 1000.0
    }

    pub(crate) fn send_client(&mut self, peer: &PeerId, message: ToClient) {
        self.outputs
            .push_back(Output::ToClient(peer.clone(), message));
    }

    pub(crate) fn send_manager(&mut self, peer: &PeerId, message: ToManager) {
        self.outputs
            .push_back(Output::ToManager(peer.clone(), message));
    }

    pub(crate) fn bad_message(&mut self) {
        self.n_bad_messages += 1;
    }

    /// Work every input ends with: match tasks, send gathered results,
    /// finish shutdown when it is complete.
    pub(crate) fn after_input(&mut self) {
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
    // Applying decisions
    // -----------------------------------------------------------------

    /// Starts every queued task that can start now, as matching decides;
    /// one `run_tasks` per manager.
    fn schedule(&mut self) {
        let mut batches: BTreeMap<ManagerId, Vec<protocol::TaskDispatch>> = BTreeMap::new();
        let mut pass = Pass::default();
        loop {
            let mut context = Context {
                tasks: &self.tasks,
                managers: &mut self.managers,
                now: self.now,
            };
            let Some(start) = self.matcher.next_start(&mut pass, &mut context) else {
                break;
            };
            let (walltime, attempts) = self.tasks.walltime_and_attempts(start.task_id);
            let expected_end = walltime.map(|walltime| self.now.plus(walltime));
            if let Err(error) = self.managers.allocate(
                start.manager_id,
                start.task_id,
                start.placement.clone(),
                expected_end,
            ) {
                // A bug, never a peer's doing: the task stays queued.
                tracing::error!(task_id = %start.task_id, manager_id = %start.manager_id, %error, "placement refused; the task stays queued");
                break;
            }
            self.matcher.started(&start, &mut self.managers, &mut pass);
            self.emit_started(&start, attempts + 1);
            if let Some(dispatch) = self.tasks.start(
                start.task_id,
                start.manager_id,
                start.placement,
                start.backfill,
            ) {
                batches.entry(start.manager_id).or_default().push(dispatch);
            }
        }
        for (manager_id, tasks) in batches {
            if let Some(manager) = self.managers.get(manager_id) {
                let peer = manager.peer.clone();
                self.send_manager(&peer, ToManager::RunTasks { tasks });
            }
        }
    }

    /// The event of a task sent for its `attempt`th time (built only when
    /// events are recorded: it copies the node names).
    fn emit_started(&mut self, start: &crate::matching::Start, attempt: u32) {
        if !self.config.record_events {
            return;
        }
        let Some(manager) = self.managers.get(start.manager_id) else {
            return;
        };
        let nodes = manager.names_of(&start.placement);
        let event = Event::TaskStarted {
            task_id: start.task_id,
            manager_id: start.manager_id,
            block_id: manager.block_id.clone(),
            nodes,
            attempt,
        };
        self.emit(event);
    }

    pub(crate) fn emit_lost(&mut self, manager: &ManagerEntry, reason: &str) {
        self.emit(Event::ManagerLost {
            manager_id: manager.manager_id,
            block_id: manager.block_id.clone(),
            reason: reason.to_owned(),
        });
    }

    /// Queues a task's result for the clients that watch it.
    pub(crate) fn deliver(&mut self, delivery: Delivery) {
        let Delivery { watchers, result } = delivery;
        let n_here = watchers.iter().filter(|client| client.is_here()).count();
        let mut here = watchers.iter().filter(|client| client.is_here());
        // The last watcher (nearly always the only one) gets the result
        // itself; the others a copy.
        for client in here.by_ref().take(n_here.saturating_sub(1)) {
            self.gather_result(&client.peer, (*result).clone());
        }
        if let Some(last) = here.next() {
            self.gather_result(&last.peer, *result);
        }
    }

    /// Adds a result to those gathered for `peer` in this input (its peer
    /// id is cloned once per input, not once per result).
    pub(crate) fn gather_result(&mut self, peer: &PeerId, result: TaskResult) {
        match self.pending_results.get_mut(peer) {
            Some(results) => results.push(result),
            None => {
                self.pending_results.insert(peer.clone(), vec![result]);
            }
        }
    }

    /// Ends every task a departed manager held: a task lost through no
    /// fault of its own (`ManagerLost` outside shutdown) with retries left
    /// goes back to the queue in its old place; the others fail with
    /// `kind`.
    pub(crate) fn end_tasks_of(&mut self, manager: &ManagerEntry, kind: ErrorKind, message: &str) {
        let loss = Loss {
            manager_id: manager.manager_id,
            block_id: &manager.block_id,
            kind,
            message,
            may_retry: kind == ErrorKind::ManagerLost && self.shutdown_deadline.is_none(),
        };
        for task_id in manager.tasks().keys() {
            if let Lost::Failed(delivery) = self.tasks.lose(*task_id, &loss) {
                self.deliver(delivery);
            }
        }
    }

    pub(crate) fn begin_shutdown(&mut self, now: Time, reason: &str) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        tracing::info!(n_managers = self.managers.len(), "shutdown begins");
        self.shutdown_deadline = Some(now.plus(self.config.shutdown_grace));
        self.matcher.clear(&mut self.managers);
        for manager_id in self.managers.ids() {
            self.tell_manager_to_stop(manager_id, reason);
        }
        for delivery in self.tasks.cancel_queued() {
            self.deliver(delivery);
        }
    }

    pub(crate) fn tell_manager_to_stop(&mut self, manager_id: ManagerId, reason: &str) {
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

    pub(crate) fn start_drain(&mut self, manager_id: ManagerId, reason: &str) {
        let update = self.managers.update(manager_id, |manager| {
            let first_time = !manager.draining;
            manager.draining = true;
            (first_time, manager.tasks().is_empty())
        });
        if let Some((true, _)) = update {
            self.emit(Event::ManagerDrained { manager_id });
        }
        let idle = update.map(|(_, idle)| idle);
        if idle == Some(true) {
            self.tell_manager_to_stop(manager_id, reason);
        }
    }

    /// Checks the core's books: the manager table rebuilt from the tasks'
    /// placements (no slot given twice, indexes in step), the reservation,
    /// and that its holder is queued. For tests and the simulator (costs a
    /// pass over every manager and running task).
    pub fn validate(&self) -> Result<(), String> {
        self.matcher.check(&self.managers, &self.tasks)
    }
}
