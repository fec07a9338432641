//! The table of registered pool-managers: exact per-node slot accounting and
//! the indexes that answer "which manager can start this task now?" in
//! O(log) time.
//!
//! Every node of a manager has `slots_per_node` slots (S). The table keeps,
//! per node, its free slots; an exclusive task takes whole free nodes (all S
//! slots), a non-exclusive task takes `r` slots on each of its nodes. So a
//! node is never shared between an exclusive task and any other task, and a
//! slot is never given twice ([`ManagerTable::check`] verifies it in tests).
//!
//! A manager is *listed* when it accepts tasks (not held, not draining) and
//! is not reserved for the queue's head (the core handles the reserved
//! manager apart). Only listed managers are in the indexes:
//! - `whole_index`: (whole free nodes, manager) — best fit for an exclusive
//!   task of `n` nodes is the first entry at or above `n`: O(log M);
//! - `node_index`: (free slots, manager, node) over every node with a free
//!   slot — best fit for a 1-node non-exclusive task of `r` slots is the
//!   first entry at or above `r`: O(log total nodes). A task of `n > 1` such
//!   nodes walks the entries from `r` up until one manager has `n` of them:
//!   O(nodes examined), all nodes with `r` free slots when none has (the
//!   matching pass then remembers the miss until capacity can grow);
//! - `whole_tree` and `slot_tree`: max segment trees over registration
//!   order holding each manager's whole free nodes and its largest free
//!   slot count, so "the newest manager with at least `n` whole free nodes"
//!   (or "with a node of at least `r` free slots") is one O(log M) descent.
//!   For an `n > 1` node non-exclusive task the descent is repeated past
//!   managers that have the slots on too few nodes: O(log M) per manager
//!   examined;
//! - `capacity`: counts of accepting managers by (slots per node, nodes), to
//!   answer "could any manager ever hold this shape?" in O(distinct slot
//!   counts).
//!
//! Within a manager, nodes are kept as (free slots, node) so that placing a
//! task takes the tightest nodes that suffice (for exclusive tasks: the
//! whole free nodes, lowest index first): O(n log nodes).
//!
//! Allocating and releasing touch only the nodes of the task; holding,
//! draining or reserving a manager re-lists it in O(its nodes · log).

mod entry;
mod tree;

use crate::interface::PeerId;
use crate::queue::Shape;
pub(crate) use entry::{Allocation, ManagerEntry, Shadow};
use protocol::{ManagerId, NodeShare, TaskId};
use seam::Time;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tree::MaxTree;

/// The indexes over listed managers (see the module documentation).
#[derive(Debug, Default)]
struct Indexes {
    whole_index: BTreeSet<(u32, ManagerId)>,
    node_index: BTreeSet<(u32, ManagerId, u32)>,
    whole_tree: MaxTree,
    slot_tree: MaxTree,
    /// Accepting managers (listed or reserved) by slots per node, then
    /// node count.
    capacity: BTreeMap<u32, BTreeMap<u32, usize>>,
}

impl Indexes {
    fn list(&mut self, manager: &ManagerEntry) {
        let id = manager.manager_id;
        if manager.n_whole_free > 0 {
            self.whole_index.insert((manager.n_whole_free, id));
        }
        for (free, node) in &manager.by_free {
            self.node_index.insert((*free, id, *node));
        }
        self.whole_tree.set(manager.order, manager.n_whole_free);
        self.slot_tree.set(manager.order, manager.max_free_slots());
    }

    fn unlist(&mut self, manager: &ManagerEntry) {
        let id = manager.manager_id;
        self.whole_index.remove(&(manager.n_whole_free, id));
        for (free, node) in &manager.by_free {
            self.node_index.remove(&(*free, id, *node));
        }
        self.whole_tree.set(manager.order, 0);
        self.slot_tree.set(manager.order, 0);
    }

    fn add_capacity(&mut self, manager: &ManagerEntry) {
        *self
            .capacity
            .entry(manager.slots_per_node)
            .or_default()
            .entry(manager.n_nodes)
            .or_default() += 1;
    }

    fn remove_capacity(&mut self, manager: &ManagerEntry) {
        if let Some(by_nodes) = self.capacity.get_mut(&manager.slots_per_node) {
            if let Some(count) = by_nodes.get_mut(&manager.n_nodes) {
                *count -= 1;
                if *count == 0 {
                    by_nodes.remove(&manager.n_nodes);
                }
            }
            if by_nodes.is_empty() {
                self.capacity.remove(&manager.slots_per_node);
            }
        }
    }
}

/// Why an allocation was refused (a bug in the caller, never a peer's
/// doing; the core logs it and leaves the task queued).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AllocationError {
    #[error("unknown manager {0}")]
    UnknownManager(ManagerId),
    #[error("task {0} already runs on this manager")]
    AlreadyRunning(TaskId),
    #[error("node {node} has {free} free slots, fewer than the {wanted} asked, or is not a node of this manager")]
    NotFree { node: u32, free: u32, wanted: u32 },
    #[error("node {0} appears twice in the placement")]
    RepeatedNode(u32),
}

/// Registered managers by id and by peer, and the indexes.
#[derive(Debug, Default)]
pub(crate) struct ManagerTable {
    managers: BTreeMap<ManagerId, ManagerEntry>,
    by_peer: HashMap<PeerId, ManagerId>,
    /// The manager at each position of registration order (`None` once it
    /// left; compacted when most are gone).
    by_order: Vec<Option<ManagerId>>,
    indexes: Indexes,
}

impl ManagerTable {
    pub(crate) fn insert(&mut self, mut manager: ManagerEntry) {
        manager.order = self.by_order.len();
        manager.reserved = false;
        self.by_order.push(Some(manager.manager_id));
        if manager.accepts_tasks() {
            self.indexes.add_capacity(&manager);
        }
        if manager.listed() {
            self.indexes.list(&manager);
        }
        self.by_peer
            .insert(manager.peer.clone(), manager.manager_id);
        self.managers.insert(manager.manager_id, manager);
    }

    pub(crate) fn remove(&mut self, manager_id: ManagerId) -> Option<ManagerEntry> {
        let manager = self.managers.remove(&manager_id)?;
        if manager.listed() {
            self.indexes.unlist(&manager);
        }
        if manager.accepts_tasks() {
            self.indexes.remove_capacity(&manager);
        }
        self.by_peer.remove(&manager.peer);
        if let Some(slot) = self.by_order.get_mut(manager.order) {
            *slot = None;
        }
        if self.by_order.len() > 64 && self.managers.len() * 4 < self.by_order.len() {
            self.compact_order();
        }
        Some(manager)
    }

    /// Renumbers registration order without the gaps departed managers
    /// left (O(M log M), amortized over the departures that made the gaps).
    fn compact_order(&mut self) {
        let live: Vec<ManagerId> = self.by_order.iter().flatten().copied().collect();
        self.by_order = live.iter().map(|id| Some(*id)).collect();
        self.indexes.whole_tree = MaxTree::with_leaves(live.len());
        self.indexes.slot_tree = MaxTree::with_leaves(live.len());
        for (order, id) in live.iter().enumerate() {
            if let Some(manager) = self.managers.get_mut(id) {
                manager.order = order;
                if manager.listed() {
                    self.indexes.whole_tree.set(order, manager.n_whole_free);
                    self.indexes.slot_tree.set(order, manager.max_free_slots());
                }
            }
        }
    }

    /// Changes a manager's flags and re-indexes it if it stopped or started
    /// accepting tasks. `None` for an unknown id.
    pub(crate) fn update<R>(
        &mut self,
        manager_id: ManagerId,
        change: impl FnOnce(&mut ManagerEntry) -> R,
    ) -> Option<R> {
        let manager = self.managers.get_mut(&manager_id)?;
        let (was_listed, was_accepting) = (manager.listed(), manager.accepts_tasks());
        let outcome = change(manager);
        let (listed, accepting) = (manager.listed(), manager.accepts_tasks());
        if was_listed != listed {
            if listed {
                self.indexes.list(manager);
            } else {
                self.indexes.unlist(manager);
            }
        }
        if was_accepting != accepting {
            if accepting {
                self.indexes.add_capacity(manager);
            } else {
                self.indexes.remove_capacity(manager);
            }
        }
        Some(outcome)
    }

    /// Takes a manager out of the indexes while it is reserved for the
    /// queue's head, or puts it back.
    pub(crate) fn set_reserved(&mut self, manager_id: ManagerId, reserved: bool) {
        self.update(manager_id, |manager| manager.reserved = reserved);
    }

    /// Gives a task exactly the slots of `placement`.
    pub(crate) fn allocate(
        &mut self,
        manager_id: ManagerId,
        task_id: TaskId,
        placement: Vec<NodeShare>,
        expected_end: Option<Time>,
    ) -> Result<(), AllocationError> {
        let manager = self
            .managers
            .get_mut(&manager_id)
            .ok_or(AllocationError::UnknownManager(manager_id))?;
        if manager.tasks.contains_key(&task_id) {
            return Err(AllocationError::AlreadyRunning(task_id));
        }
        if let Some(node) = repeated_node(&placement) {
            return Err(AllocationError::RepeatedNode(node));
        }
        for share in &placement {
            let free = manager
                .free_slots
                .get(share.node as usize)
                .copied()
                .unwrap_or(0);
            if share.slots == 0 || free < share.slots {
                return Err(AllocationError::NotFree {
                    node: share.node,
                    free,
                    wanted: share.slots,
                });
            }
        }
        let changes = placement
            .iter()
            .map(|share| (share.node, -i64::from(share.slots)));
        Self::change_nodes(&mut self.indexes, manager, changes);
        if let Some(end) = expected_end {
            manager.ends.insert((end, task_id));
        }
        manager.tasks.insert(
            task_id,
            Allocation {
                placement,
                expected_end,
            },
        );
        Ok(())
    }

    /// Frees exactly what a task was given. `None` if the manager does not
    /// hold the task.
    pub(crate) fn release(&mut self, manager_id: ManagerId, task_id: TaskId) -> Option<Allocation> {
        let manager = self.managers.get_mut(&manager_id)?;
        let running = manager.tasks.remove(&task_id)?;
        if let Some(end) = running.expected_end {
            manager.ends.remove(&(end, task_id));
        }
        let changes = running
            .placement
            .iter()
            .map(|share| (share.node, i64::from(share.slots)));
        Self::change_nodes(&mut self.indexes, manager, changes);
        Some(running)
    }

    /// Adds `delta` free slots to each node, keeping the manager's own
    /// index and (if it is listed) the table's indexes in step.
    fn change_nodes(
        indexes: &mut Indexes,
        manager: &mut ManagerEntry,
        changes: impl Iterator<Item = (u32, i64)>,
    ) {
        let listed = manager.listed();
        let id = manager.manager_id;
        if listed {
            indexes.whole_index.remove(&(manager.n_whole_free, id));
        }
        let whole = manager.slots_per_node;
        for (node, delta) in changes {
            let Some(free) = manager.free_slots.get_mut(node as usize) else {
                continue;
            };
            let before = *free;
            let after =
                u32::try_from((i64::from(before) + delta).clamp(0, i64::from(whole))).unwrap_or(0);
            *free = after;
            if before > 0 {
                manager.by_free.remove(&(before, node));
                if listed {
                    indexes.node_index.remove(&(before, id, node));
                }
            }
            if after > 0 {
                manager.by_free.insert((after, node));
                if listed {
                    indexes.node_index.insert((after, id, node));
                }
            }
            if before == whole && after != whole {
                manager.n_whole_free -= 1;
            } else if before != whole && after == whole {
                manager.n_whole_free += 1;
            }
        }
        if listed {
            if manager.n_whole_free > 0 {
                indexes.whole_index.insert((manager.n_whole_free, id));
            }
            indexes.whole_tree.set(manager.order, manager.n_whole_free);
            indexes
                .slot_tree
                .set(manager.order, manager.max_free_slots());
        }
    }

    pub(crate) fn get(&self, manager_id: ManagerId) -> Option<&ManagerEntry> {
        self.managers.get(&manager_id)
    }

    pub(crate) fn id_of_peer(&self, peer: &PeerId) -> Option<ManagerId> {
        self.by_peer.get(peer).copied()
    }

    /// Among listed managers, the one where the task fits most tightly now
    /// (see [`ManagerEntry::place`] for the measure), with that measure.
    pub(crate) fn best_fit(&self, shape: Shape) -> Option<(ManagerId, u32)> {
        let lowest = ManagerId::from_u128(0);
        match shape.ranks_per_node {
            None => self
                .indexes
                .whole_index
                .range((shape.num_nodes, lowest)..)
                .next()
                .map(|(n_free, manager_id)| (*manager_id, *n_free)),
            Some(slots) if shape.num_nodes <= 1 => self
                .indexes
                .node_index
                .range((slots, lowest, 0)..)
                .next()
                .map(|(free, manager_id, _)| (*manager_id, *free)),
            Some(slots) => {
                let mut counts: HashMap<ManagerId, u32> = HashMap::new();
                for (free, manager_id, _) in self.indexes.node_index.range((slots, lowest, 0)..) {
                    let count = counts.entry(*manager_id).or_default();
                    *count += 1;
                    if *count >= shape.num_nodes {
                        return Some((*manager_id, *free));
                    }
                }
                None
            }
        }
    }

    /// Among listed managers, the most recently registered one where the
    /// task fits now.
    pub(crate) fn newest_fit(&self, shape: Shape) -> Option<ManagerId> {
        let (tree, threshold) = match shape.ranks_per_node {
            None => (&self.indexes.whole_tree, shape.num_nodes),
            Some(slots) => (&self.indexes.slot_tree, slots),
        };
        let mut below = self.by_order.len();
        loop {
            let order = tree.rightmost_at_least(threshold, below)?;
            let manager_id = self.by_order.get(order).copied().flatten()?;
            // A leaf at or above the threshold is a fit, except for a
            // multi-node non-exclusive task, which needs that many nodes.
            let fits = shape.ranks_per_node.is_none()
                || shape.num_nodes <= 1
                || self
                    .managers
                    .get(&manager_id)
                    .is_some_and(|manager| manager.place(shape, &BTreeSet::new()).is_some());
            if fits {
                return Some(manager_id);
            }
            below = order;
        }
    }

    /// Whether some listed manager has a free slot.
    pub(crate) fn any_listed_free_slot(&self) -> bool {
        !self.indexes.node_index.is_empty()
    }

    /// Whether some manager that accepts tasks could hold the task once
    /// enough of its tasks end.
    pub(crate) fn could_ever_fit(&self, shape: Shape) -> bool {
        let minimum_slots = shape.ranks_per_node.unwrap_or(1);
        self.indexes
            .capacity
            .range(minimum_slots..)
            .any(|(_, by_nodes)| {
                by_nodes
                    .last_key_value()
                    .is_some_and(|(n_nodes, _)| *n_nodes >= shape.num_nodes)
            })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ManagerEntry> {
        self.managers.values()
    }

    pub(crate) fn ids(&self) -> Vec<ManagerId> {
        self.managers.keys().copied().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.managers.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.managers.is_empty()
    }

    /// Rebuilds every count and index from the tasks' placements and
    /// compares: no slot given twice, nothing lost, indexes in step.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut expected = Indexes::default();
        for manager in self.managers.values() {
            let mut free = vec![manager.slots_per_node; manager.n_nodes as usize];
            for (task_id, running) in &manager.tasks {
                let mut nodes = BTreeSet::new();
                for share in &running.placement {
                    if !nodes.insert(share.node) {
                        return Err(format!("task {task_id} has node {} twice", share.node));
                    }
                    let slot = free
                        .get_mut(share.node as usize)
                        .ok_or_else(|| format!("task {task_id} on a node out of range"))?;
                    *slot = slot.checked_sub(share.slots).ok_or_else(|| {
                        format!(
                            "node {} of {} over-allocated",
                            share.node, manager.manager_id
                        )
                    })?;
                }
            }
            let ends: BTreeSet<(Time, TaskId)> = manager
                .tasks
                .iter()
                .filter_map(|(task_id, running)| running.expected_end.map(|end| (end, *task_id)))
                .collect();
            if ends != manager.ends {
                return Err(format!(
                    "expected ends of {} out of step",
                    manager.manager_id
                ));
            }
            if free != manager.free_slots {
                return Err(format!("free slots of {} out of step", manager.manager_id));
            }
            let by_free: BTreeSet<(u32, u32)> = free
                .iter()
                .enumerate()
                .filter(|(_, free)| **free > 0)
                .map(|(node, free)| (*free, node as u32))
                .collect();
            if by_free != manager.by_free {
                return Err(format!("node index of {} out of step", manager.manager_id));
            }
            let whole = free
                .iter()
                .filter(|free| **free == manager.slots_per_node)
                .count();
            if whole != manager.n_whole_free as usize {
                return Err(format!("whole count of {} out of step", manager.manager_id));
            }
            if self.by_order.get(manager.order) != Some(&Some(manager.manager_id)) {
                return Err(format!("order of {} out of step", manager.manager_id));
            }
            if manager.accepts_tasks() {
                expected.add_capacity(manager);
            }
            if manager.listed() {
                expected.list(manager);
            }
        }
        if expected.whole_index != self.indexes.whole_index
            || expected.node_index != self.indexes.node_index
            || expected.capacity != self.indexes.capacity
        {
            return Err("table indexes out of step".to_owned());
        }
        for order in 0..self.by_order.len() {
            let leaf =
                |tree: &MaxTree| tree.values.get(tree.n_leaves + order).copied().unwrap_or(0);
            if leaf(&expected.whole_tree) != leaf(&self.indexes.whole_tree)
                || leaf(&expected.slot_tree) != leaf(&self.indexes.slot_tree)
            {
                return Err(format!("segment trees out of step at {order}"));
            }
        }
        Ok(())
    }
}

/// A node that appears twice in `placement`, if one does (without
/// allocating for the usual few nodes).
fn repeated_node(placement: &[NodeShare]) -> Option<u32> {
    const FEW: usize = 16;
    if placement.len() <= FEW {
        return placement.iter().enumerate().find_map(|(index, share)| {
            placement[..index]
                .iter()
                .any(|earlier| earlier.node == share.node)
                .then_some(share.node)
        });
    }
    let mut seen = BTreeSet::new();
    placement
        .iter()
        .find(|share| !seen.insert(share.node))
        .map(|share| share.node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Launcher, Registration};

    fn manager(id: u128, n_nodes: usize, slots: u32) -> ManagerEntry {
        let registration = Registration {
            protocol_version: protocol::PROTOCOL_VERSION,
            manager_id: ManagerId::from_u128(id),
            block_id: format!("b{id}"),
            hostname: format!("h{id}"),
            nodes: (0..n_nodes).map(|node| format!("n{node}")).collect(),
            launcher: Launcher::Mpiexec,
            rhtex_version: String::new(),
            cpu_count: 1,
            slots_per_node: Some(slots),
            versions: BTreeMap::new(),
            attempt: 0,
            running_tasks: Vec::new(),
            held_results: Vec::new(),
        };
        ManagerEntry::new(
            registration,
            PeerId::unauthenticated(vec![id as u8]),
            0.0,
            Time::from_millis(0),
        )
    }

    fn whole(num_nodes: u32) -> Shape {
        Shape {
            num_nodes,
            ranks_per_node: None,
        }
    }

    #[test]
    fn newest_fit_survives_many_departures_and_skips_reserved_managers() {
        let mut table = ManagerTable::default();
        for id in 1..=100 {
            table.insert(manager(id, 1 + (id % 3) as usize, 2));
        }
        for id in 1..=90 {
            assert!(table.remove(ManagerId::from_u128(id)).is_some());
        }
        assert_eq!(table.check(), Ok(()));
        assert!(
            table.by_order.len() < 100,
            "registration order was compacted"
        );
        // Left: 91..=100 with 2, 3, 1, 2, 3, 1, 2, 3, 1, 2 nodes.
        let id = ManagerId::from_u128;
        let newest = |table: &ManagerTable, n| table.newest_fit(whole(n));
        assert_eq!(newest(&table, 1), Some(id(100)));
        assert_eq!(newest(&table, 3), Some(id(98)));
        assert_eq!(newest(&table, 4), None);
        table.set_reserved(ManagerId::from_u128(98), true);
        assert_eq!(newest(&table, 3), Some(id(95)));
        assert_eq!(table.best_fit(whole(3)), Some((id(92), 3)));
        let packed = Shape {
            num_nodes: 2,
            ranks_per_node: Some(1),
        };
        table
            .allocate(
                ManagerId::from_u128(100),
                TaskId::from_u128(1),
                vec![NodeShare { node: 0, slots: 1 }],
                None,
            )
            .expect("node 0 of manager 100 is free");
        // Manager 100 has a slot on both nodes; 99 has one node only.
        assert_eq!(table.newest_fit(packed), Some(id(100)));
        // Best fit measures the roomiest node a task would get: 2 free
        // slots on manager 91 as on 100; the lower id wins the tie.
        assert_eq!(table.best_fit(packed), Some((id(91), 2)));
        assert_eq!(
            table.allocate(
                ManagerId::from_u128(100),
                TaskId::from_u128(2),
                vec![NodeShare { node: 0, slots: 2 }],
                None,
            ),
            Err(AllocationError::NotFree {
                node: 0,
                free: 1,
                wanted: 2
            })
        );
        assert_eq!(table.check(), Ok(()));
        assert!(table
            .release(ManagerId::from_u128(100), TaskId::from_u128(1))
            .is_some());
        table.set_reserved(ManagerId::from_u128(98), false);
        assert_eq!(table.check(), Ok(()));
        assert_eq!(newest(&table, 3), Some(id(98)));
    }
}
