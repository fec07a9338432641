//! What the core does with each message from a pool-manager: `register`
//! (accepted, accepted again from a manager that re-attaches, or refused),
//! heartbeats, results, drain requests and `goodbye`, and with a manager
//! frame that does not decode. A message from a connection that is not
//! registered is answered with `not_registered`, so that the manager
//! registers again (its late results are never forwarded); how a
//! registration is reconciled with the tasks the core has on that manager
//! is in `reattach.rs`.

use crate::interface::{PeerId, Undecodable};
use crate::machine::Core;
use crate::managers::ManagerEntry;
use crate::tasks::Lost;
use protocol::limits::{check_node_names, truncate_tails, MAX_RESULTS_PER_MESSAGE};
use protocol::{
    ErrorKind, Event, FromManager, ManagerId, Registration, TaskResult, ToManager, MAX_TAIL_BYTES,
    PROTOCOL_VERSION, RHTEX_VERSION,
};
use seam::Time;

/// Why a message from a connection that is not registered is answered
/// with `not_registered`.
pub const UNKNOWN_MANAGER_REASON: &str = "this connection is not registered with the interchange: \
     it dropped this manager after a silence past the heartbeat threshold, or it restarted; \
     register again, listing the tasks you run and the results you hold";

impl Core {
    /// A message arrived on the manager socket.
    pub fn handle_manager_message(&mut self, now: Time, peer: PeerId, message: FromManager) {
        if !self.begin_input(now) {
            return;
        }
        match (self.managers.id_of_peer(&peer), message) {
            (_, FromManager::Register(registration)) => {
                self.register(now, &peer, registration);
            }
            (None, FromManager::Goodbye { .. }) => {
                self.bad_message();
                tracing::warn!(peer = %peer, "goodbye from unknown manager; dropped");
            }
            (None, _) => {
                // A manager we dropped (silent past the threshold) that is
                // still alive, or one from before a restart. Its message is
                // dropped (a result is never forwarded from here); it is
                // told to register again, listing what it holds.
                self.bad_message();
                tracing::warn!(peer = %peer, "message from unknown manager; dropped, and the manager told to register again");
                self.send_manager(
                    &peer,
                    ToManager::NotRegistered {
                        reason: UNKNOWN_MANAGER_REASON.to_owned(),
                    },
                );
            }
            (Some(manager_id), message) => {
                let heartbeat = matches!(message, FromManager::Heartbeat);
                self.refresh(manager_id, now, heartbeat);
                self.manager_message(manager_id, message);
            }
        }
        self.after_input();
    }

    /// A manager frame that did not decode: from an unregistered peer, a
    /// `register` is refused (by its version, or as malformed) and anything
    /// else dropped; from a registered manager it still counts as a sign
    /// of life. Either way it is counted.
    pub(crate) fn undecodable_from_manager(
        &mut self,
        now: Time,
        peer: &PeerId,
        undecodable: Undecodable,
    ) {
        let Undecodable { error, handshake } = undecodable;
        self.bad_message();
        match self.managers.id_of_peer(peer) {
            Some(manager_id) => {
                self.refresh(manager_id, now, false);
                tracing::warn!(manager_id = %manager_id, %error, "undecodable message from a manager; dropped");
            }
            None => match handshake {
                Some(handshake) if handshake.message_type == "register" => {
                    let reason = match handshake.protocol_version {
                        Some(version) if version == PROTOCOL_VERSION => {
                            format!("malformed register message: {error}")
                        }
                        theirs => version_mismatch_reason(theirs),
                    };
                    tracing::warn!(peer = %peer, %reason, "refused a manager");
                    self.send_manager(
                        peer,
                        ToManager::Refused {
                            reason,
                            protocol_version: PROTOCOL_VERSION,
                        },
                    );
                }
                _ => {
                    tracing::warn!(peer = %peer, %error, "undecodable message from unknown manager; dropped");
                }
            },
        }
    }

    /// Anything from a manager shows it is alive and reachable; its first
    /// heartbeat after it registered again ends its re-attach.
    fn refresh(&mut self, manager_id: ManagerId, now: Time, heartbeat: bool) {
        let taken_back = self.managers.update(manager_id, |manager| {
            manager.last_heard = now;
            let before = manager.unreachable || manager.reattaching;
            manager.unreachable = false;
            manager.reattaching &= !heartbeat;
            before && !manager.reattaching
        });
        if taken_back == Some(true) {
            tracing::info!(manager_id = %manager_id, "manager heard from again; it takes tasks again");
            // As after a release: it may suit the reservation better.
            self.matcher.clear(&mut self.managers);
        }
    }

    fn register(&mut self, now: Time, peer: &PeerId, mut registration: Registration) {
        let manager_id = registration.manager_id;
        let refusal = if registration.protocol_version != PROTOCOL_VERSION {
            Some(version_mismatch_reason(Some(registration.protocol_version)))
        } else if registration.nodes.is_empty() {
            Some("the registration lists no nodes; a manager needs at least one node".to_owned())
        } else if let Err(error) =
            check_node_names(&registration.nodes, self.config.max_manager_nodes)
        {
            Some(format!("bad node list: {error}"))
        } else if self.shutdown_deadline.is_some() {
            Some("the interchange is shutting down".to_owned())
        } else {
            match self.managers.id_of_peer(peer) {
                Some(registered_as) if registered_as != manager_id => Some(format!(
                    "this connection is registered as manager {registered_as}, not {manager_id}"
                )),
                // A manager registers again from its own connection (its
                // routing id is its manager id, and its key the manager
                // key); another connection that claims a live manager's id
                // is refused, and the live manager is not disturbed. (An
                // entry restored from the journal, unreachable until its
                // manager is back, does not know the identity: its routing
                // id is enough.)
                _ => self
                    .managers
                    .get(manager_id)
                    .filter(|entry| {
                        entry.peer.routing_id != peer.routing_id
                            || (entry.peer.identity != peer.identity && !entry.unreachable)
                    })
                    .map(|_| {
                        format!(
                            "manager id {manager_id} is already registered from another connection"
                        )
                    }),
            }
        };
        if let Some(reason) = refusal {
            tracing::warn!(manager_id = %manager_id, hostname = %registration.hostname, %reason, "refused a manager");
            self.send_manager(
                peer,
                ToManager::Refused {
                    reason,
                    protocol_version: PROTOCOL_VERSION,
                },
            );
            return;
        }
        let running = std::mem::take(&mut registration.running_tasks);
        let held = std::mem::take(&mut registration.held_results);
        let attempt = registration.attempt;
        // A manager that registers again starts from what it reports; the
        // entry it had (if any) goes, its tasks reconciled below.
        self.matcher.clear_on(manager_id, &mut self.managers);
        let previous = self.managers.remove(manager_id);
        let n_nodes = u32::try_from(registration.nodes.len()).unwrap_or(u32::MAX);
        tracing::info!(
            manager_id = %manager_id,
            block_id = %registration.block_id,
            hostname = %registration.hostname,
            n_nodes,
            slots_per_node = registration.slots_per_node.unwrap_or(registration.cpu_count).max(1),
            attempt,
            n_running = running.len(),
            n_held_results = held.len(),
            known = previous.is_some(),
            "manager registered"
        );
        let registered_at = previous
            .as_ref()
            .map_or_else(|| self.unix(now), |previous| previous.registered_at);
        self.emit(Event::ManagerRegistered {
            manager_id: registration.manager_id,
            block_id: registration.block_id.clone(),
            hostname: registration.hostname.clone(),
            nodes: registration.nodes.clone(),
        });
        self.journal_registration(&registration);
        let mut entry = ManagerEntry::new(registration, peer.clone(), registered_at, now);
        if let Some(previous) = &previous {
            entry.held = previous.held;
            entry.draining = previous.draining;
        }
        entry.reattaching = attempt > 0;
        self.managers.insert(entry);
        let expiry = now.plus(self.config.heartbeat_threshold);
        self.next_expiry_check = Some(self.next_expiry_check.map_or(expiry, |at| at.min(expiry)));
        let look_up =
            previous.is_none() && (attempt > 0 || !running.is_empty() || !held.is_empty());
        let reconciled = self.reconcile(now, manager_id, previous, running, held, look_up);
        self.send_manager(
            peer,
            ToManager::Registered {
                interchange_version: RHTEX_VERSION.to_owned(),
                heartbeat_period: self.config.heartbeat_period.as_secs_f64(),
                max_task_output_bytes: self.config.max_task_output_bytes,
                drop_tasks: reconciled.drop_tasks,
            },
        );
        for task_id in reconciled.cancel {
            self.send_manager(peer, ToManager::CancelTask { task_id });
        }
        let stop = self
            .managers
            .get(manager_id)
            .is_some_and(|manager| manager.draining && manager.tasks().is_empty());
        if stop {
            self.tell_manager_to_stop(manager_id, "drained");
        }
    }

    fn manager_message(&mut self, manager_id: ManagerId, message: FromManager) {
        match message {
            FromManager::Register(_) | FromManager::Heartbeat => {}
            FromManager::Results { results } if results.len() > MAX_RESULTS_PER_MESSAGE => {
                self.bad_message();
                tracing::warn!(
                    manager_id = %manager_id,
                    n_results = results.len(),
                    "results message with more than {MAX_RESULTS_PER_MESSAGE} results \
                     (max_results_per_message); dropped"
                );
            }
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
                    self.emit(Event::ManagerGone {
                        manager_id,
                        block_id: manager.block_id.clone(),
                        reason: reason.clone(),
                    });
                    let message = format!(
                        "task lost: {} said goodbye ({reason}) without reporting it",
                        manager.describe()
                    );
                    self.end_tasks_of(&manager, ErrorKind::ManagerLost, &message);
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
        self.matcher.task_ended_on(manager_id);
        let (stdout_bytes, stderr_bytes) = truncate_tails(&mut result);
        if stdout_bytes.is_some() || stderr_bytes.is_some() {
            tracing::warn!(
                manager_id = %manager_id,
                task_id = %task_id,
                stdout_tail_bytes = stdout_bytes,
                stderr_tail_bytes = stderr_bytes,
                "result with a tail longer than {MAX_TAIL_BYTES} bytes; kept its last {MAX_TAIL_BYTES} bytes"
            );
        }
        result.manager_id.get_or_insert(manager_id);
        result.block_id.get_or_insert(block_id);
        tracing::debug!(task_id = %task_id, manager_id = %manager_id, state = %result.state, "task finished");
        let delivery = self.tasks.finish(task_id, result);
        self.deliver(delivery);
    }

    /// The shell could not deliver `message` to `peer` (the ROUTER send
    /// failed: the manager's connection is gone). The manager gets no new
    /// task until it is heard from again; the tasks of an undelivered
    /// `run_tasks` go back to the queue at once, in their old places and
    /// without using a retry, and may start on another manager. The tasks
    /// it already runs wait for it (or for the heartbeat threshold).
    pub fn handle_manager_unreachable(&mut self, now: Time, peer: &PeerId, message: ToManager) {
        if !self.begin_input(now) {
            return;
        }
        let Some(manager_id) = self.managers.id_of_peer(peer) else {
            return;
        };
        let newly = self.managers.update(manager_id, |manager| {
            !std::mem::replace(&mut manager.unreachable, true)
        });
        if newly == Some(true) {
            tracing::warn!(manager_id = %manager_id, "manager unreachable: no new task until it is heard from again");
        }
        self.matcher.clear_on(manager_id, &mut self.managers);
        if let ToManager::RunTasks { tasks } = message {
            for dispatch in tasks {
                let task_id = dispatch.task_id;
                if self.managers.release(manager_id, task_id).is_none() {
                    continue;
                }
                self.matcher.task_ended_on(manager_id);
                if let Some(Lost::Failed(delivery)) = self.tasks.undelivered(task_id, manager_id) {
                    self.deliver(delivery);
                }
            }
        }
        self.after_input();
    }
}

fn version_mismatch_reason(theirs: Option<u32>) -> String {
    let theirs = theirs.map_or_else(|| "none".to_owned(), |version| version.to_string());
    format!(
        "protocol version mismatch: the manager speaks version {theirs}, \
         this interchange speaks version {PROTOCOL_VERSION}"
    )
}
