//! The pure slot allocator: which share of which of the block's nodes each
//! running task holds.
//!
//! The interchange decides placements; this module only checks them and
//! keeps the books. Nodes are indices `0..n_nodes` into the block's node
//! list; each node has `slots_per_node` slots. [`Allocator::claim`] checks a
//! placement against the free slots and either records it whole or changes
//! nothing and says what is wrong ([`PlacementError`]);
//! [`Allocator::release`] frees a task's slots. No I/O, no clock;
//! [`Allocator::validate`] checks the internal bookkeeping.
//!
//! Rules for a placement of a task asking for `num_nodes` nodes:
//! - exactly `num_nodes` entries, on distinct nodes that exist;
//! - every entry takes at least one slot and at most the node's free slots;
//! - an exclusive task takes whole nodes: every node wholly free, and
//!   `slots == slots_per_node` on each.

use protocol::{NodeShare, TaskId};
use std::collections::{BTreeMap, BTreeSet};

/// Why a placement cannot be followed. Each message names the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("the placement lists no nodes; every task runs on at least one")]
    NoNodes,
    #[error("the placement lists {got} node(s) but the task asks for num_nodes = {expected}")]
    WrongNodeCount { expected: u32, got: usize },
    #[error("the placement names node {node}, but this manager has only {n_nodes} node(s) (indexes 0 to {})", n_nodes.saturating_sub(1))]
    NoSuchNode { node: u32, n_nodes: usize },
    #[error("the placement names node {node} more than once")]
    DuplicateNode { node: u32 },
    #[error("the placement gives the task 0 slots on node {node}; every node needs at least 1")]
    NoSlots { node: u32 },
    #[error("the placement takes {slots} slot(s) on node {node}, but only {free} of its {slots_per_node} are free")]
    NotEnoughSlots {
        node: u32,
        slots: u32,
        free: u32,
        slots_per_node: u32,
    },
    #[error("the task is exclusive but node {node} is not wholly free ({free} of {slots_per_node} slots free)")]
    NodeShared {
        node: u32,
        free: u32,
        slots_per_node: u32,
    },
    #[error("the task is exclusive, so it must take all {slots_per_node} slots of node {node}, but the placement gives it {slots}")]
    NotWholeNode {
        node: u32,
        slots: u32,
        slots_per_node: u32,
    },
    #[error("task {task_id} already holds slots on this manager")]
    AlreadyPlaced { task_id: TaskId },
}

/// What one task asks of its placement: how many nodes, and whether it
/// takes them whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRequest {
    pub num_nodes: u32,
    pub exclusive: bool,
}

/// Tracks the free slots of every node and the shares each task holds.
#[derive(Clone, Debug)]
pub struct Allocator {
    slots_per_node: u32,
    /// Free slots per node.
    free: Vec<u32>,
    /// For each task, its shares in placement order.
    by_task: BTreeMap<TaskId, Vec<NodeShare>>,
    /// Nodes with every slot free, for [`Allocator::n_free_nodes`].
    n_free_nodes: usize,
}

impl Allocator {
    /// An allocator for `n_nodes` nodes of `slots_per_node` slots each, all
    /// free. `slots_per_node` below 1 counts as 1.
    pub fn new(n_nodes: usize, slots_per_node: u32) -> Self {
        let slots_per_node = slots_per_node.max(1);
        Self {
            slots_per_node,
            free: vec![slots_per_node; n_nodes],
            by_task: BTreeMap::new(),
            n_free_nodes: n_nodes,
        }
    }

    /// Checks `placement` for a task with `request` and records it. On error
    /// nothing changes.
    pub fn claim(
        &mut self,
        task_id: TaskId,
        request: SlotRequest,
        placement: &[NodeShare],
    ) -> Result<(), PlacementError> {
        self.check(task_id, request, placement)?;
        for share in placement {
            let free = &mut self.free[share.node as usize];
            if *free == self.slots_per_node {
                self.n_free_nodes -= 1;
            }
            *free -= share.slots;
        }
        self.by_task.insert(task_id, placement.to_vec());
        Ok(())
    }

    fn check(
        &self,
        task_id: TaskId,
        request: SlotRequest,
        placement: &[NodeShare],
    ) -> Result<(), PlacementError> {
        if self.by_task.contains_key(&task_id) {
            return Err(PlacementError::AlreadyPlaced { task_id });
        }
        if placement.is_empty() {
            return Err(PlacementError::NoNodes);
        }
        if placement.len() != request.num_nodes as usize {
            return Err(PlacementError::WrongNodeCount {
                expected: request.num_nodes,
                got: placement.len(),
            });
        }
        let slots_per_node = self.slots_per_node;
        let mut seen = BTreeSet::new();
        for &NodeShare { node, slots } in placement {
            let Some(&free) = self.free.get(node as usize) else {
                return Err(PlacementError::NoSuchNode {
                    node,
                    n_nodes: self.free.len(),
                });
            };
            if !seen.insert(node) {
                return Err(PlacementError::DuplicateNode { node });
            }
            if slots == 0 {
                return Err(PlacementError::NoSlots { node });
            }
            if request.exclusive {
                if free != slots_per_node {
                    return Err(PlacementError::NodeShared {
                        node,
                        free,
                        slots_per_node,
                    });
                }
                if slots != slots_per_node {
                    return Err(PlacementError::NotWholeNode {
                        node,
                        slots,
                        slots_per_node,
                    });
                }
            }
            if slots > free {
                return Err(PlacementError::NotEnoughSlots {
                    node,
                    slots,
                    free,
                    slots_per_node,
                });
            }
        }
        Ok(())
    }

    /// Frees the slots of `task_id`; returns its shares (empty if it held
    /// none).
    pub fn release(&mut self, task_id: TaskId) -> Vec<NodeShare> {
        let released = self.by_task.remove(&task_id).unwrap_or_default();
        for share in &released {
            let free = &mut self.free[share.node as usize];
            *free += share.slots;
            if *free == self.slots_per_node {
                self.n_free_nodes += 1;
            }
        }
        released
    }

    /// The shares `task_id` holds, in placement order, if it holds any.
    pub fn shares_of(&self, task_id: TaskId) -> Option<&[NodeShare]> {
        self.by_task.get(&task_id).map(Vec::as_slice)
    }

    /// Nodes with every slot free.
    pub fn n_free_nodes(&self) -> usize {
        self.n_free_nodes
    }

    /// Free slots over all nodes.
    pub fn n_free_slots(&self) -> u64 {
        self.free.iter().map(|&free| u64::from(free)).sum()
    }

    /// Free slots of one node (0 for a node that does not exist).
    pub fn free_slots_on(&self, node: usize) -> u32 {
        self.free.get(node).copied().unwrap_or(0)
    }

    pub fn n_nodes(&self) -> usize {
        self.free.len()
    }

    pub fn slots_per_node(&self) -> u32 {
        self.slots_per_node
    }

    /// Slots over all nodes.
    pub fn n_total_slots(&self) -> u64 {
        self.free.len() as u64 * u64::from(self.slots_per_node)
    }

    /// Checks that the two views agree: on every node, the free slots plus
    /// the slots the tasks hold there make `slots_per_node`; no task holds a
    /// node twice or an empty share; the free-node count matches.
    pub fn validate(&self) -> Result<(), String> {
        let mut held = vec![0u64; self.free.len()];
        for (task_id, shares) in &self.by_task {
            let mut nodes = BTreeSet::new();
            for share in shares {
                let Some(slot) = held.get_mut(share.node as usize) else {
                    return Err(format!(
                        "task {task_id} holds node {}, which does not exist",
                        share.node
                    ));
                };
                if !nodes.insert(share.node) || share.slots == 0 {
                    return Err(format!(
                        "task {task_id} holds {shares:?}: a node twice or an empty share"
                    ));
                }
                *slot += u64::from(share.slots);
            }
        }
        for (node, (&free, &held)) in self.free.iter().zip(&held).enumerate() {
            if u64::from(free) + held != u64::from(self.slots_per_node) {
                return Err(format!(
                    "node {node}: {free} free + {held} held != {} slots per node",
                    self.slots_per_node
                ));
            }
        }
        let n_free_nodes = self
            .free
            .iter()
            .filter(|&&free| free == self.slots_per_node)
            .count();
        if n_free_nodes != self.n_free_nodes {
            return Err(format!(
                "{n_free_nodes} nodes are wholly free but the count says {}",
                self.n_free_nodes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn task(number: u128) -> TaskId {
        TaskId::from_u128(number)
    }

    fn shares(pairs: &[(u32, u32)]) -> Vec<NodeShare> {
        pairs
            .iter()
            .map(|&(node, slots)| NodeShare { node, slots })
            .collect()
    }

    const EXCLUSIVE: bool = true;
    const PACKED: bool = false;

    fn request(num_nodes: u32, exclusive: bool) -> SlotRequest {
        SlotRequest {
            num_nodes,
            exclusive,
        }
    }

    #[test]
    fn whole_nodes_and_packed_shares() {
        let mut allocator = Allocator::new(3, 4);
        allocator
            .claim(task(1), request(2, EXCLUSIVE), &shares(&[(2, 4), (0, 4)]))
            .expect("two whole nodes");
        assert_eq!(allocator.n_free_nodes(), 1);
        assert_eq!(
            allocator.shares_of(task(1)),
            Some(&shares(&[(2, 4), (0, 4)])[..])
        );
        allocator
            .claim(task(2), request(1, PACKED), &shares(&[(1, 2)]))
            .expect("half a node");
        allocator
            .claim(task(3), request(1, PACKED), &shares(&[(1, 2)]))
            .expect("the other half");
        assert_eq!((allocator.n_free_nodes(), allocator.n_free_slots()), (0, 0));
        allocator.validate().expect("consistent");
        assert_eq!(allocator.release(task(2)), shares(&[(1, 2)]));
        assert_eq!(
            (allocator.n_free_nodes(), allocator.free_slots_on(1)),
            (0, 2)
        );
        allocator.release(task(3));
        allocator.release(task(1));
        assert_eq!(
            (allocator.n_free_nodes(), allocator.n_free_slots()),
            (3, 12)
        );
        assert_eq!(allocator.release(task(99)), Vec::new());
        allocator.validate().expect("consistent");
    }

    /// One bad placement per rule; each is refused with its own error and
    /// changes nothing.
    #[test]
    fn bad_placements_are_refused_and_named() {
        let mut allocator = Allocator::new(3, 4);
        allocator
            .claim(task(1), request(1, PACKED), &shares(&[(0, 3)]))
            .expect("packed share");
        let cases: Vec<(SlotRequest, Vec<NodeShare>, PlacementError, &str)> = vec![
            (
                request(2, PACKED),
                shares(&[(1, 1)]),
                PlacementError::WrongNodeCount {
                    expected: 2,
                    got: 1,
                },
                "lists 1 node(s) but the task asks for num_nodes = 2",
            ),
            (
                request(1, PACKED),
                Vec::new(),
                PlacementError::NoNodes,
                "lists no nodes",
            ),
            (
                request(0, PACKED),
                Vec::new(),
                PlacementError::NoNodes,
                "lists no nodes",
            ),
            (
                request(1, PACKED),
                shares(&[(3, 1)]),
                PlacementError::NoSuchNode {
                    node: 3,
                    n_nodes: 3,
                },
                "names node 3, but this manager has only 3 node(s) (indexes 0 to 2)",
            ),
            (
                request(2, PACKED),
                shares(&[(1, 1), (1, 1)]),
                PlacementError::DuplicateNode { node: 1 },
                "names node 1 more than once",
            ),
            (
                request(1, PACKED),
                shares(&[(1, 0)]),
                PlacementError::NoSlots { node: 1 },
                "0 slots on node 1",
            ),
            (
                request(1, PACKED),
                shares(&[(0, 2)]),
                PlacementError::NotEnoughSlots {
                    node: 0,
                    slots: 2,
                    free: 1,
                    slots_per_node: 4,
                },
                "takes 2 slot(s) on node 0, but only 1 of its 4 are free",
            ),
            (
                request(1, EXCLUSIVE),
                shares(&[(0, 4)]),
                PlacementError::NodeShared {
                    node: 0,
                    free: 1,
                    slots_per_node: 4,
                },
                "exclusive but node 0 is not wholly free (1 of 4 slots free)",
            ),
            (
                request(1, EXCLUSIVE),
                shares(&[(1, 2)]),
                PlacementError::NotWholeNode {
                    node: 1,
                    slots: 2,
                    slots_per_node: 4,
                },
                "must take all 4 slots of node 1, but the placement gives it 2",
            ),
            (
                request(1, PACKED),
                shares(&[(1, 1)]),
                PlacementError::AlreadyPlaced { task_id: task(1) },
                "already holds slots",
            ),
        ];
        for (index, (request, placement, expected, message)) in cases.into_iter().enumerate() {
            // The AlreadyPlaced case reuses task 1's id; the others use fresh ids.
            let task_id = if matches!(expected, PlacementError::AlreadyPlaced { .. }) {
                task(1)
            } else {
                task(100 + index as u128)
            };
            let error = allocator
                .claim(task_id, request, &placement)
                .expect_err("bad placement");
            assert_eq!(error, expected, "case {index}");
            assert!(error.to_string().contains(message), "case {index}: {error}");
            assert_eq!(
                allocator.free_slots_on(0),
                1,
                "case {index} changed nothing"
            );
            assert_eq!(allocator.n_free_slots(), 9, "case {index} changed nothing");
            allocator.validate().expect("consistent");
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        /// Claim: num_nodes, exclusive, and raw placement entries (node, slots).
        Claim(u32, bool, Vec<(u32, u32)>),
        Release(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (
                0u32..4,
                any::<bool>(),
                proptest::collection::vec((0u32..6, 0u32..5), 0..4)
            )
                .prop_map(|(n, exclusive, entries)| Step::Claim(n, exclusive, entries)),
            (0usize..40).prop_map(Step::Release),
        ]
    }

    proptest! {
        #[test]
        fn never_overcommits_and_release_restores(
            n_nodes in 0usize..6,
            slots_per_node in 1u32..5,
            steps in proptest::collection::vec(step(), 0..80),
        ) {
            let mut allocator = Allocator::new(n_nodes, slots_per_node);
            let mut next_task = 0u128;
            let mut live: Vec<TaskId> = Vec::new();
            for step in steps {
                match step {
                    Step::Claim(num_nodes, exclusive, entries) => {
                        next_task += 1;
                        let placement = shares(&entries);
                        let free_before: Vec<u32> =
                            (0..n_nodes).map(|node| allocator.free_slots_on(node)).collect();
                        let outcome = allocator.claim(
                            task(next_task),
                            SlotRequest { num_nodes, exclusive },
                            &placement,
                        );
                        // The rules, restated independently.
                        let mut nodes: Vec<u32> = entries.iter().map(|&(node, _)| node).collect();
                        nodes.sort_unstable();
                        nodes.dedup();
                        let valid = !entries.is_empty()
                            && entries.len() == num_nodes as usize
                            && nodes.len() == entries.len()
                            && entries.iter().all(|&(node, slots)| {
                                let free = free_before.get(node as usize).copied();
                                match free {
                                    None => false,
                                    Some(free) => slots >= 1 && slots <= free
                                        && (!exclusive || (free == slots_per_node && slots == slots_per_node)),
                                }
                            });
                        prop_assert_eq!(outcome.is_ok(), valid, "{:?}", outcome);
                        if outcome.is_ok() {
                            live.push(task(next_task));
                        } else {
                            for (node, &free) in free_before.iter().enumerate() {
                                prop_assert_eq!(allocator.free_slots_on(node), free);
                            }
                        }
                    }
                    Step::Release(pick) => {
                        if !live.is_empty() {
                            let task_id = live.remove(pick % live.len());
                            prop_assert!(!allocator.release(task_id).is_empty());
                        }
                    }
                }
                prop_assert!(allocator.validate().is_ok(), "{:?}", allocator.validate());
                // No node is ever shared by more than its slots, and an
                // exclusive holder is alone on its nodes.
                let mut held = vec![0u32; n_nodes];
                for task_id in &live {
                    for share in allocator.shares_of(*task_id).unwrap_or(&[]) {
                        held[share.node as usize] += share.slots;
                    }
                }
                prop_assert!(held.iter().all(|&slots| slots <= slots_per_node));
            }
            for task_id in live {
                allocator.release(task_id);
            }
            prop_assert_eq!(allocator.n_free_nodes(), n_nodes);
            prop_assert_eq!(allocator.n_free_slots(), allocator.n_total_slots());
            prop_assert!(allocator.validate().is_ok());
        }
    }
}
