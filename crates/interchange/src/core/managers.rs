//! The table of registered pool-managers, with an index by free nodes.
//!
//! Only managers that accept tasks (not held, not draining) and have at
//! least one free node are in the index, so the best fit for a task of `n`
//! nodes is the first entry at or above `n`, and the largest free count is
//! the last entry. Every change to a manager goes through
//! [`ManagerTable::update`], which keeps the index in step.

use super::{PeerId, Time};
use protocol::{Launcher, ManagerId, TaskId, UnixTime};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One registered pool-manager.
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) manager_id: ManagerId,
    pub(crate) peer: PeerId,
    pub(crate) block_id: String,
    pub(crate) hostname: String,
    pub(crate) launcher: Launcher,
    pub(crate) rhtex_version: String,
    pub(crate) n_nodes: u32,
    pub(crate) n_free_nodes: u32,
    /// Indexes (into the registered node list) of the nodes no task holds.
    pub(crate) free_node_ids: BTreeSet<u32>,
    pub(crate) slots_per_node: u32,
    /// Tasks it holds, with the node indexes of each.
    pub(crate) tasks: BTreeMap<TaskId, Vec<u32>>,
    pub(crate) held: bool,
    pub(crate) draining: bool,
    /// `shutdown` was sent; it must not be sent twice.
    pub(crate) shutdown_sent: bool,
    pub(crate) registered_at: UnixTime,
    /// When anything last came from it.
    pub(crate) last_heard: Time,
}

impl Manager {
    pub(crate) fn accepts_tasks(&self) -> bool {
        !self.held && !self.draining
    }

    fn index_key(&self) -> Option<(u32, ManagerId)> {
        (self.accepts_tasks() && self.n_free_nodes > 0)
            .then_some((self.n_free_nodes, self.manager_id))
    }

    /// "manager <id> on host <hostname> (block <block_id>)", for messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "manager {} on host {} (block {})",
            self.manager_id, self.hostname, self.block_id
        )
    }
}

/// Registered managers by id and by peer, and the free-node index.
#[derive(Debug, Default)]
pub(crate) struct ManagerTable {
    managers: BTreeMap<ManagerId, Manager>,
    by_peer: HashMap<PeerId, ManagerId>,
    free_index: BTreeSet<(u32, ManagerId)>,
}

impl ManagerTable {
    pub(crate) fn insert(&mut self, manager: Manager) {
        if let Some(key) = manager.index_key() {
            self.free_index.insert(key);
        }
        self.by_peer
            .insert(manager.peer.clone(), manager.manager_id);
        self.managers.insert(manager.manager_id, manager);
    }

    pub(crate) fn remove(&mut self, manager_id: ManagerId) -> Option<Manager> {
        let manager = self.managers.remove(&manager_id)?;
        if let Some(key) = manager.index_key() {
            self.free_index.remove(&key);
        }
        self.by_peer.remove(&manager.peer);
        Some(manager)
    }

    /// Changes a manager and re-indexes it. `None` for an unknown id.
    pub(crate) fn update<R>(
        &mut self,
        manager_id: ManagerId,
        change: impl FnOnce(&mut Manager) -> R,
    ) -> Option<R> {
        let manager = self.managers.get_mut(&manager_id)?;
        if let Some(key) = manager.index_key() {
            self.free_index.remove(&key);
        }
        let outcome = change(manager);
        if let Some(key) = manager.index_key() {
            self.free_index.insert(key);
        }
        Some(outcome)
    }

    pub(crate) fn get(&self, manager_id: ManagerId) -> Option<&Manager> {
        self.managers.get(&manager_id)
    }

    pub(crate) fn id_of_peer(&self, peer: &PeerId) -> Option<ManagerId> {
        self.by_peer.get(peer).copied()
    }

    /// The manager with the fewest free nodes that still has `n_nodes`.
    pub(crate) fn best_fit(&self, n_nodes: u32) -> Option<ManagerId> {
        self.free_index
            .range((n_nodes, ManagerId::from_u128(0))..)
            .next()
            .map(|(_, manager_id)| *manager_id)
    }

    /// The most free nodes any manager accepting tasks has (0 if none).
    pub(crate) fn max_free(&self) -> u32 {
        self.free_index.last().map_or(0, |(n_free, _)| *n_free)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Manager> {
        self.managers.values()
    }

    pub(crate) fn ids(&self) -> Vec<ManagerId> {
        self.managers.keys().copied().collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.managers.is_empty()
    }
}
