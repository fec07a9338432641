//! What the core does with each message from a client: the handshake,
//! `submit`, `watch` and the commands (`status`, `task_status`, `hold`,
//! `release`, `drain`, `cancel`, `shutdown`), and with a client frame that
//! does not decode or a client that is gone. Each request is first checked
//! against what the client's identity may do (`authority.rs`).

use crate::clients::ClientRef;
use crate::interface::{PeerId, Undecodable};
use crate::machine::Core;
use crate::tasks::{Admission, Cancelled, Watched};
use protocol::{
    limits::{check_submission, task_data_bytes, MAX_TASKS_PER_SUBMIT, MAX_TASK_IDS_PER_WATCH},
    Command, Event, FromClient, ManagerId, Reply, TaskId, TaskSubmission, ToClient, ToManager,
    PROTOCOL_VERSION, RHTEX_VERSION,
};
use seam::Time;

impl Core {
    /// A message arrived on the client socket.
    pub fn handle_client_message(&mut self, now: Time, peer: PeerId, message: FromClient) {
        if !self.begin_input(now) {
            return;
        }
        match message {
            FromClient::Hello {
                protocol_version,
                client_version,
            } => {
                if protocol_version == PROTOCOL_VERSION {
                    tracing::debug!(peer = %peer, %client_version, "client connected");
                    self.clients.welcome(&peer);
                    self.send_client(
                        &peer,
                        ToClient::Welcome {
                            protocol_version: PROTOCOL_VERSION,
                            interchange_version: RHTEX_VERSION.to_owned(),
                            max_task_input_bytes: self.config.max_task_input_bytes,
                            max_task_output_bytes: self.config.max_task_output_bytes,
                        },
                    );
                } else {
                    self.refuse_client(&peer, Some(protocol_version));
                }
            }
            FromClient::Goodbye => {
                // Closing: forget the connection (a goodbye without hello
                // is harmless). Its tasks carry on.
                tracing::debug!(peer = %peer, "client said goodbye");
                self.forget_client(&peer);
            }
            request => self.handle_request(now, &peer, request),
        }
        self.after_input();
    }

    /// A request (`submit`, `watch`, `command`): refused with an error
    /// unless the client said hello first.
    fn handle_request(&mut self, now: Time, peer: &PeerId, message: FromClient) {
        let Some(client) = self.clients.get(peer) else {
            self.bad_message();
            let request_id = match &message {
                FromClient::Submit { request_id, .. }
                | FromClient::Watch { request_id, .. }
                | FromClient::Command { request_id, .. } => Some(*request_id),
                FromClient::Hello { .. } | FromClient::Goodbye => None,
            };
            tracing::warn!(peer = %peer, "request from a client that sent no hello");
            self.send_client(
                peer,
                ToClient::Error {
                    request_id,
                    message: "send hello first: no request is handled before the handshake"
                        .to_owned(),
                },
            );
            return;
        };
        match message {
            FromClient::Submit { request_id, tasks } => {
                self.submit(peer, &client, request_id, tasks);
            }
            FromClient::Watch {
                request_id,
                task_ids,
            } => self.watch(peer, &client, request_id, &task_ids),
            FromClient::Command {
                request_id,
                command,
            } => self.command(now, peer, request_id, command),
            // Handled by `handle_client_message`.
            FromClient::Hello { .. } | FromClient::Goodbye => {}
        }
    }

    /// A client frame that did not decode: a `hello` of another protocol
    /// version is refused by its version; anything else is counted and
    /// answered with an error.
    pub(crate) fn undecodable_from_client(&mut self, peer: &PeerId, undecodable: Undecodable) {
        match undecodable.handshake {
            Some(handshake)
                if handshake.message_type == "hello"
                    && handshake.protocol_version != Some(PROTOCOL_VERSION) =>
            {
                self.refuse_client(peer, handshake.protocol_version);
            }
            _ => {
                let error = undecodable.error;
                self.bad_message();
                tracing::warn!(peer = %peer, %error, "undecodable message from a client");
                self.send_client(
                    peer,
                    ToClient::Error {
                        request_id: None,
                        message: format!("cannot decode the request: {error}"),
                    },
                );
            }
        }
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
        self.clients.forget(peer);
    }

    fn submit(
        &mut self,
        peer: &PeerId,
        client: &ClientRef,
        request_id: u64,
        submissions: Vec<TaskSubmission>,
    ) {
        if submissions.len() > MAX_TASKS_PER_SUBMIT {
            self.refuse_request(
                peer,
                request_id,
                format!(
                    "submit refused: it has {} tasks; one submit may have at most \
                     {MAX_TASKS_PER_SUBMIT} (max_tasks_per_submit): split it",
                    submissions.len()
                ),
            );
            return;
        }
        let admission = Admission {
            shutting_down: self.shutdown_deadline.is_some(),
            max_block_nodes: self.config.max_block_nodes,
            max_task_input_bytes: self.config.max_task_input_bytes,
        };
        if let Some(message) = self.input_budget_exceeded(&submissions, admission) {
            self.n_busy_submits += 1;
            self.request_error(peer, request_id, message);
            return;
        }
        let mut n_accepted: u32 = 0;
        let mut immediate = Vec::new();
        for submission in submissions {
            match self.tasks.submit(submission, client, admission) {
                Ok(()) => n_accepted += 1,
                Err(result) => immediate.push(*result),
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

    /// Why a submit is refused as a whole: the input it adds (of tasks
    /// within the per-task limit) would take the input held for unfinished
    /// tasks past `max_queued_input_bytes`, or the rest of its tasks' data
    /// (of tasks within the per-task bounds) the data held past
    /// `max_queued_task_bytes`. `None` if it fits.
    fn input_budget_exceeded(
        &self,
        submissions: &[TaskSubmission],
        admission: Admission,
    ) -> Option<String> {
        let n_input: u64 = submissions
            .iter()
            .filter_map(|submission| submission.input.as_ref())
            .map(|input| input.len() as u64)
            .filter(|&n_bytes| n_bytes <= admission.max_task_input_bytes)
            .sum();
        let n_data: u64 = submissions
            .iter()
            .filter(|submission| check_submission(submission).is_ok())
            .map(task_data_bytes)
            .sum();
        busy(
            "bytes of input",
            n_input,
            self.tasks.input_bytes_held(),
            self.config.max_queued_input_bytes,
            "max_queued_input_bytes, --max-queued-input-mib",
        )
        .or_else(|| {
            busy(
                "bytes of commands, environments and paths",
                n_data,
                self.tasks.data_bytes_held(),
                self.config.max_queued_task_bytes,
                "max_queued_task_bytes, --max-queued-task-mib",
            )
        })
    }

    /// Answers a request past a per-message bound with an error; nothing
    /// of it is done.
    fn refuse_request(&mut self, peer: &PeerId, request_id: u64, message: String) {
        self.bad_message();
        self.request_error(peer, request_id, message);
    }

    /// Answers a request with an `error` that says why nothing of it was
    /// done, and logs it.
    pub(crate) fn request_error(&mut self, peer: &PeerId, request_id: u64, message: String) {
        tracing::warn!(peer = %peer, request_id, "request refused: {message}");
        self.send_client(
            peer,
            ToClient::Error {
                request_id: Some(request_id),
                message,
            },
        );
    }

    fn watch(&mut self, peer: &PeerId, client: &ClientRef, request_id: u64, task_ids: &[TaskId]) {
        if task_ids.len() > MAX_TASK_IDS_PER_WATCH {
            self.refuse_request(
                peer,
                request_id,
                format!(
                    "watch refused: it has {} task ids; one watch may have at most \
                     {MAX_TASK_IDS_PER_WATCH} (max_task_ids_per_watch): split it",
                    task_ids.len()
                ),
            );
            return;
        }
        if let Some(reason) = self.forbidden_task(peer, task_ids, "watch") {
            self.deny(peer, request_id, reason);
            return;
        }
        let mut n_known: u32 = 0;
        let mut unknown = Vec::new();
        for task_id in task_ids {
            match self.tasks.watch(*task_id, client) {
                Watched::Unknown => {
                    tracing::debug!(task_id = %task_id, "watch of an unknown task");
                    unknown.push(*task_id);
                    continue;
                }
                Watched::Finished(result) => {
                    self.pending_results
                        .entry(peer.clone())
                        .or_default()
                        .push(*result);
                }
                Watched::Unfinished => {}
            }
            n_known += 1;
        }
        // The answer goes before the results of finished tasks.
        self.send_client(
            peer,
            ToClient::Watching {
                request_id,
                n_tasks: n_known,
                unknown,
            },
        );
    }

    /// Why `peer` may not give `command`, if it may not.
    fn forbidden(&self, peer: &PeerId, command: &Command) -> Option<String> {
        match command {
            // Everyone may list; a listing shows a non-admin only its own.
            Command::Status | Command::Tasks { .. } => None,
            Command::TaskStatus { task_ids } => {
                self.forbidden_task(peer, task_ids, "see the status of")
            }
            Command::Cancel { task_id } => self.forbidden_task(peer, &[*task_id], "cancel"),
            Command::Hold { .. } => self.forbidden_command(peer, "hold"),
            Command::Release { .. } => self.forbidden_command(peer, "release"),
            Command::Drain { .. } => self.forbidden_command(peer, "drain"),
            Command::Shutdown => self.forbidden_command(peer, "shutdown"),
        }
    }

    fn command(&mut self, now: Time, peer: &PeerId, request_id: u64, command: Command) {
        if let Some(reason) = self.forbidden(peer, &command) {
            self.deny(peer, request_id, reason);
            return;
        }
        let reply = match command {
            Command::Status => Reply::Status(self.status(&peer.identity)),
            Command::TaskStatus { task_ids } => Reply::TaskStatus {
                tasks: task_ids
                    .iter()
                    .map(|id| self.task_status(*id, &peer.identity))
                    .collect(),
            },
            Command::Tasks { state } => Reply::Tasks {
                tasks: self.task_list(&crate::listing::TaskFilter {
                    state,
                    owner: (!self.is_admin(&peer.identity)).then(|| peer.identity.clone()),
                }),
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
                    self.matcher.clear(&mut self.managers);
                }
                self.emit(Event::ManagerHeld { manager_id, held });
                let verb = if held { "held" } else { "released" };
                tracing::info!(manager_id = %manager_id, "manager {verb}");
                Reply::Done {
                    message: format!("manager {manager_id} {verb}"),
                }
            }
        }
    }

    fn cancel(&mut self, task_id: TaskId) -> Reply {
        match self.tasks.cancel(task_id) {
            Cancelled::Unknown => Reply::Failed {
                message: format!("unknown task {task_id}"),
            },
            Cancelled::AlreadyFinished(state) => Reply::Failed {
                message: format!("task {task_id} already finished ({state})"),
            },
            Cancelled::WhileQueued(delivery) => {
                self.deliver(delivery);
                Reply::Done {
                    message: format!("task {task_id} cancelled"),
                }
            }
            Cancelled::Running(manager_id) => {
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
}

/// The busy refusal when `n_added` bytes of `what` would take the `n_held`
/// bytes held past `limit` (named by `setting`); `None` if they fit.
fn busy(what: &str, n_added: u64, n_held: u64, limit: u64, setting: &str) -> Option<String> {
    if n_added == 0 || n_held.saturating_add(n_added) <= limit {
        return None;
    }
    let advice = if n_added > limit {
        "this submit alone is over the limit: split it into smaller submits"
    } else {
        "submit again when some tasks have finished"
    };
    Some(format!(
        "busy: the tasks of this submit carry {n_added} {what} and unfinished tasks \
         already hold {n_held}; together they pass the interchange's limit of {limit} bytes \
         ({setting}); no task of it was accepted; {advice}"
    ))
}

fn unknown_manager(manager_id: ManagerId) -> Reply {
    Reply::Failed {
        message: format!("unknown manager {manager_id}: no registered manager has this id"),
    }
}
