//! What crosses between the cores: a frame delivered and decoded by its
//! receiver, and each core's outputs drained into deliveries.

use super::{Delivery, Event, Pair, Process, SIGTERM};
use crate::checks::Problem;
use crate::config::{ManagerLife, Seen};
use interchange_core::{decode_client_frame, decode_manager_frame};
use interchange_core::{Output as InterchangeOutput, PeerId, Socket};
use pool_manager_core::{ExitStatus, Output as ManagerOutput};
use protocol::{ErrorKind, FromClient, FromManager, ToClient, ToManager};

impl Pair {
    pub(super) fn deliver(&mut self, delivery: Delivery) {
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

    /// Posts the frame `encode` gives to the client or manager (by
    /// `socket`) behind `peer`, if there is one.
    fn post_frame(&mut self, peer: &PeerId, socket: Socket, encode: impl FnOnce() -> Vec<u8>) {
        let delivery = match socket {
            Socket::Client => {
                let client = self.client_by_peer.get(peer).copied();
                client.map(|client| Delivery::ToClient {
                    client,
                    frame: encode(),
                })
            }
            Socket::Manager => {
                let manager = self.manager_by_peer.get(peer).copied();
                manager.map(|manager| Delivery::ToManager {
                    manager,
                    frame: encode(),
                })
            }
        };
        self.post_to_peer(delivery, peer);
    }

    pub(crate) fn drain_interchange(&mut self) {
        while let Some(output) = self.interchange.poll_output() {
            match output {
                // A task with a result, or sent to a manager, waits no more.
                InterchangeOutput::ToClient(peer, message) => {
                    if let ToClient::Results { results } = &message {
                        for result in results {
                            self.waiting.left(result.task_id);
                        }
                    }
                    self.post_frame(&peer, Socket::Client, || protocol::encode(&message));
                }
                InterchangeOutput::ToManager(peer, message) => {
                    if let ToManager::RunTasks { tasks } = &message {
                        for task in tasks {
                            self.waiting.left(task.task_id);
                        }
                    }
                    self.post_frame(&peer, Socket::Manager, || protocol::encode(&message));
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

    pub(super) fn note_refusals(&mut self, manager: usize, message: &FromManager) {
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
