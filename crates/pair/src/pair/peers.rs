//! The peers of a [`Pair`]: clients that send and are answered, managers
//! added, killed or stopped, and the interchange told to terminate.

use super::{ClientSlot, Delivery, ManagerSlot, Pair};
use crate::config::{ManagerLife, ManagerSpec, Seen};
use interchange_core::PeerId;
use pool_manager_core::{LinkStatus, PoolManager, Settings};
use protocol::{
    Command, FromClient, Reply, StatusReport, TaskId, TaskSubmission, ToClient, ToManager,
    PROTOCOL_VERSION, RHTEX_VERSION,
};
use std::collections::{BTreeMap, VecDeque};

impl Pair {
    // -----------------------------------------------------------------
    // Peers
    // -----------------------------------------------------------------

    /// A new client that says `hello` now. Returns its index.
    pub fn add_client(&mut self) -> usize {
        let client = self.clients.len();
        let peer = PeerId::unauthenticated(format!("client-{client}").into_bytes());
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

    pub(super) fn request_id(&mut self, client: usize) -> u64 {
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
        let peer = PeerId::unauthenticated(format!("manager-{manager}").into_bytes());
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
}
