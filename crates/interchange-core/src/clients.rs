//! The clients that said a valid `hello`, and the unfinished tasks each
//! watches (the other half of each task's watchers, kept by the task
//! table), so that a client that leaves is taken off its tasks.

use crate::interface::PeerId;
use protocol::TaskId;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Default)]
struct Client {
    /// Unfinished tasks this client watches.
    watching: HashSet<TaskId>,
}

/// The connected clients, by routing id.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    clients: HashMap<PeerId, Client>,
}

impl Clients {
    /// The client said a valid `hello` (again, it may).
    pub(crate) fn welcome(&mut self, peer: &PeerId) {
        self.clients.entry(peer.clone()).or_default();
    }

    /// Whether the client said a valid `hello`.
    pub(crate) fn is_welcome(&self, peer: &PeerId) -> bool {
        self.clients.contains_key(peer)
    }

    /// Forgets the client; gives the unfinished tasks it watched.
    pub(crate) fn forget(&mut self, peer: &PeerId) -> HashSet<TaskId> {
        self.clients
            .remove(peer)
            .map(|client| client.watching)
            .unwrap_or_default()
    }

    /// The client watches an unfinished task (no-op for a client that said
    /// no `hello`).
    pub(crate) fn watch(&mut self, peer: &PeerId, task_id: TaskId) {
        if let Some(client) = self.clients.get_mut(peer) {
            client.watching.insert(task_id);
        }
    }

    /// The task finished: the client no longer watches it.
    pub(crate) fn unwatch(&mut self, peer: &PeerId, task_id: TaskId) {
        if let Some(client) = self.clients.get_mut(peer) {
            client.watching.remove(&task_id);
        }
    }
}
