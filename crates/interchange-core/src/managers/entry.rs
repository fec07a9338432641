//! One registered pool-manager: what it said at registration, its flags,
//! and its exact slot accounting (free slots per node, the tasks it runs
//! and the slots each was given). Changes to the slots go through the
//! table (`managers/mod.rs`), which keeps its indexes in step.

use crate::interface::PeerId;
use crate::queue::Shape;
use protocol::{Launcher, ManagerId, NodeShare, Registration, TaskId, UnixTime};
use seam::Time;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A task a manager runs: the exact slots it was given, and when it is
/// expected to end (dispatch time plus walltime; unknown without one).
#[derive(Debug, Clone)]
pub(crate) struct Allocation {
    pub(crate) placement: Vec<NodeShare>,
    pub(crate) expected_end: Option<Time>,
}

/// One registered pool-manager.
#[derive(Debug)]
pub(crate) struct ManagerEntry {
    pub(crate) manager_id: ManagerId,
    pub(crate) peer: PeerId,
    pub(crate) block_id: String,
    pub(crate) hostname: String,
    pub(crate) launcher: Launcher,
    pub(crate) rhtex_version: String,
    pub(crate) n_nodes: u32,
    /// Its nodes' names, by node index.
    pub(crate) node_names: Vec<String>,
    pub(crate) slots_per_node: u32,
    pub(crate) held: bool,
    pub(crate) draining: bool,
    /// `shutdown` was sent; it must not be sent twice.
    pub(crate) shutdown_sent: bool,
    /// A send to it failed (its connection is gone): it gets no new task
    /// until it is heard from again.
    pub(crate) unreachable: bool,
    /// It registered again (re-attach): it gets no new task until its
    /// first heartbeat, which it sends once it has ended the tasks it was
    /// told to drop.
    pub(crate) reattaching: bool,
    pub(crate) registered_at: UnixTime,
    /// When anything last came from it.
    pub(crate) last_heard: Time,
    // The allocation state below changes only through the table, which
    // keeps the indexes in step.
    /// Free slots of each node, by node index.
    pub(super) free_slots: Vec<u32>,
    /// (free slots, node) for every node with a free slot.
    pub(super) by_free: BTreeSet<(u32, u32)>,
    /// Nodes with every slot free.
    pub(super) n_whole_free: u32,
    /// Tasks it holds, with what each was given.
    pub(super) tasks: BTreeMap<TaskId, Allocation>,
    /// (expected end, task) of the tasks that have one, soonest first.
    pub(super) ends: BTreeSet<(Time, TaskId)>,
    /// Reserved for the queue's head: not in the table's indexes.
    pub(super) reserved: bool,
    /// Its position in registration order (a leaf of the segment trees).
    pub(super) order: usize,
}

/// When the task at the head of the queue could start on a manager.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shadow {
    /// Nodes still missing now.
    pub(crate) n_missing: u32,
    /// When enough nodes are expected to be free (known only if the tasks
    /// that must end first all have a walltime).
    pub(crate) at: Option<Time>,
    /// The nodes the head is expected to use at that time (empty if the
    /// time is unknown).
    pub(crate) nodes: BTreeSet<u32>,
}

impl ManagerEntry {
    /// A manager as it registers: every node free.
    pub(crate) fn new(
        registration: Registration,
        peer: PeerId,
        registered_at: UnixTime,
        now: Time,
    ) -> Self {
        let n_nodes = u32::try_from(registration.nodes.len()).unwrap_or(u32::MAX);
        let slots_per_node = registration
            .slots_per_node
            .unwrap_or(registration.cpu_count)
            .max(1);
        Self {
            manager_id: registration.manager_id,
            peer,
            block_id: registration.block_id,
            hostname: registration.hostname,
            launcher: registration.launcher,
            rhtex_version: registration.rhtex_version,
            n_nodes,
            node_names: registration.nodes,
            slots_per_node,
            held: false,
            draining: false,
            shutdown_sent: false,
            unreachable: false,
            reattaching: false,
            registered_at,
            last_heard: now,
            free_slots: vec![slots_per_node; n_nodes as usize],
            by_free: (0..n_nodes).map(|node| (slots_per_node, node)).collect(),
            n_whole_free: n_nodes,
            tasks: BTreeMap::new(),
            ends: BTreeSet::new(),
            reserved: false,
            order: 0,
        }
    }

    /// The names of the nodes of a placement.
    pub(crate) fn names_of(&self, placement: &[NodeShare]) -> Vec<String> {
        placement
            .iter()
            .filter_map(|share| self.node_names.get(share.node as usize).cloned())
            .collect()
    }

    pub(crate) fn accepts_tasks(&self) -> bool {
        !self.held && !self.draining && !self.unreachable && !self.reattaching
    }

    /// Whether the table holds it out of its indexes for the reservation.
    pub(crate) fn is_reserved(&self) -> bool {
        self.reserved
    }

    pub(super) fn listed(&self) -> bool {
        self.accepts_tasks() && !self.reserved
    }

    /// Nodes with every slot free.
    pub(crate) fn n_whole_free(&self) -> u32 {
        self.n_whole_free
    }

    pub(crate) fn tasks(&self) -> &BTreeMap<TaskId, Allocation> {
        &self.tasks
    }

    /// Its position in registration order (larger is newer).
    pub(crate) fn order(&self) -> usize {
        self.order
    }

    pub(crate) fn has_free_slot(&self) -> bool {
        !self.by_free.is_empty()
    }

    pub(super) fn max_free_slots(&self) -> u32 {
        self.by_free.last().map_or(0, |(free, _)| *free)
    }

    /// Whether the task could run here once enough tasks end.
    pub(crate) fn could_ever_fit(&self, shape: Shape) -> bool {
        self.n_nodes >= shape.num_nodes
            && shape.slots_on(self.slots_per_node) <= self.slots_per_node
    }

    /// Where the task would go now, leaving out the nodes in `excluded`:
    /// the `num_nodes` nodes with the fewest free slots that suffice, lowest
    /// index first. Also gives how tightly it fits (smaller is tighter):
    /// whole free nodes for an exclusive task, else the free slots of the
    /// roomiest node chosen.
    pub(crate) fn place(
        &self,
        shape: Shape,
        excluded: &BTreeSet<u32>,
    ) -> Option<(Vec<NodeShare>, u32)> {
        let slots = shape.slots_on(self.slots_per_node);
        if slots > self.slots_per_node || shape.num_nodes > self.n_nodes {
            return None;
        }
        if shape.ranks_per_node.is_none() && self.n_whole_free < shape.num_nodes {
            return None;
        }
        let mut placement = Vec::with_capacity(shape.num_nodes as usize);
        let mut roomiest = 0;
        for (free, node) in self.by_free.range((slots, 0)..) {
            if placement.len() == shape.num_nodes as usize {
                break;
            }
            if excluded.contains(node) {
                continue;
            }
            roomiest = *free;
            placement.push(NodeShare { node: *node, slots });
        }
        if placement.len() < shape.num_nodes as usize {
            return None;
        }
        let tightness = match shape.ranks_per_node {
            None => self.n_whole_free,
            Some(_) => roomiest,
        };
        Some((placement, tightness))
    }

    /// When the task could start here, from the expected ends of the tasks
    /// running here (tasks without a walltime never end, as far as this
    /// estimate knows). With a `cutoff`, gives up (time unknown) once the
    /// expected ends pass it. With `want_nodes`, also says which nodes the
    /// task would use then: those that free up by then, and as many of the
    /// nodes free now as it still needs. Costs O(needed nodes + tasks
    /// examined in order of their ends · their nodes), nothing per node of
    /// the manager.
    pub(crate) fn shadow(
        &self,
        shape: Shape,
        now: Time,
        cutoff: Option<Time>,
        want_nodes: bool,
    ) -> Shadow {
        let slots = shape.slots_on(self.slots_per_node);
        let needed = shape.num_nodes as usize;
        let n_qualifying_now = match shape.ranks_per_node {
            None => self.n_whole_free as usize,
            Some(_) => self.by_free.range((slots, 0)..).take(needed).count(),
        };
        let n_missing = needed.saturating_sub(n_qualifying_now);
        let mut shadow = Shadow {
            n_missing: u32::try_from(n_missing).unwrap_or(u32::MAX),
            at: None,
            nodes: BTreeSet::new(),
        };
        if !self.could_ever_fit(shape) {
            return shadow;
        }
        let mut becoming: Vec<u32> = Vec::new();
        if n_missing == 0 {
            shadow.at = Some(now);
        } else {
            // Free slots of the nodes the ending tasks give back.
            let mut touched: HashMap<u32, u32> = HashMap::new();
            for (end, task_id) in &self.ends {
                let end = (*end).max(now);
                if cutoff.is_some_and(|cutoff| end > cutoff) {
                    break;
                }
                let Some(running) = self.tasks.get(task_id) else {
                    continue;
                };
                for share in &running.placement {
                    let Some(free_now) = self.free_slots.get(share.node as usize) else {
                        continue;
                    };
                    let free = touched.entry(share.node).or_insert(*free_now);
                    let before = *free >= slots;
                    *free = (*free + share.slots).min(self.slots_per_node);
                    if !before && *free >= slots {
                        becoming.push(share.node);
                    }
                }
                if becoming.len() >= n_missing {
                    shadow.at = Some(end);
                    break;
                }
            }
        }
        if want_nodes && shadow.at.is_some() {
            let from_now = needed.saturating_sub(becoming.len());
            shadow.nodes = becoming
                .into_iter()
                .chain(
                    self.by_free
                        .range((slots, 0)..)
                        .map(|(_, node)| *node)
                        .take(from_now),
                )
                .collect();
        }
        shadow
    }

    /// "manager <id> on host <hostname> (block <block_id>)", for messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "manager {} on host {} (block {})",
            self.manager_id, self.hostname, self.block_id
        )
    }
}
