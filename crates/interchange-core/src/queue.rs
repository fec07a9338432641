//! The queue of tasks waiting for nodes, indexed by task shape.
//!
//! Matching asks one question many times: "in queue order, which task comes
//! next, and what does it need?" Tasks are kept in one bucket per [`Shape`]
//! (whole nodes or slots per node, and the node count) and walltime class
//! (no walltime, or its power of two in milliseconds), each bucket ordered
//! by [`QueueKey`] (priority class, priority, arrival). Tasks of one shape
//! need exactly the same resources, so only the head of each bucket is ever
//! a candidate: matching walks the bucket heads in queue order
//! ([`TaskQueue::next_head`], O(log B) per step for B buckets), and the cost
//! never grows with the number of queued tasks. Push and remove are
//! O(log n + log B). The walltime class lets a short task behind a long one
//! of the same shape be seen when only short tasks may backfill (within a
//! class, only the head is tried: an approximation by a factor of two).
//!
//! A task queued again after its manager was lost keeps its original key
//! ([`TaskQueue::push_with_key`]), so it keeps its priority and its age.

use protocol::{TaskId, TaskResources};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

/// Where a task stands in the order: smaller `priority` first, tasks without
/// a priority last, first come first served within a priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct QueueKey {
    /// 0 for tasks with a priority, 1 for tasks without one.
    class: u8,
    priority: i64,
    sequence: u64,
}

impl QueueKey {
    /// The key of a task with these resources that arrived `sequence`th.
    pub(crate) fn new(resources: &TaskResources, sequence: u64) -> Self {
        Self {
            class: u8::from(resources.priority.is_none()),
            priority: resources.priority.unwrap_or(0),
            sequence,
        }
    }

    /// Its arrival number (what the journal records).
    pub(crate) fn sequence(self) -> u64 {
        self.sequence
    }
}

/// What a task needs from one manager: `num_nodes` distinct nodes, each
/// whole (exclusive) or with `ranks_per_node` free slots (non-exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Shape {
    pub(crate) num_nodes: u32,
    /// `None`: whole nodes (the task is exclusive). `Some(r)`: `r` slots on
    /// each node, which other non-exclusive tasks may share.
    pub(crate) ranks_per_node: Option<u32>,
}

/// A bucket: tasks of one shape and walltime class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Bucket {
    shape: Shape,
    /// Bits of the walltime in milliseconds; `u8::MAX` without a walltime.
    walltime_class: u8,
}

impl Bucket {
    fn of(resources: &TaskResources) -> Self {
        let walltime_class = match resources.walltime {
            // Validated positive and at most 1e9 s, so the cast is exact
            // enough and cannot overflow.
            Some(seconds) => {
                let millis = (seconds * 1000.0).ceil().max(1.0) as u64;
                (u64::BITS - millis.leading_zeros()) as u8
            }
            None => u8::MAX,
        };
        Self {
            shape: Shape::of(resources),
            walltime_class,
        }
    }
}

impl Shape {
    pub(crate) fn of(resources: &TaskResources) -> Self {
        Self {
            num_nodes: resources.num_nodes,
            ranks_per_node: (!resources.exclusive).then_some(resources.ranks_per_node),
        }
    }

    /// Slots the task takes on each of its nodes, on a manager with
    /// `slots_per_node` slots per node (every slot for an exclusive task).
    pub(crate) fn slots_on(self, slots_per_node: u32) -> u32 {
        self.ranks_per_node.unwrap_or(slots_per_node)
    }
}

impl fmt::Display for Shape {
    /// "1 node", "4 nodes", "2 nodes with 4 free slots each".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.num_nodes == 1 { "" } else { "s" };
        write!(f, "{} node{plural}", self.num_nodes)?;
        match self.ranks_per_node {
            None => Ok(()),
            Some(1) if self.num_nodes == 1 => f.write_str(" with 1 free slot"),
            Some(slots) if self.num_nodes == 1 => write!(f, " with {slots} free slots"),
            Some(1) => f.write_str(" with 1 free slot each"),
            Some(slots) => write!(f, " with {slots} free slots each"),
        }
    }
}

/// Tasks waiting for a manager, by shape then order.
#[derive(Debug, Default)]
pub(crate) struct TaskQueue {
    buckets: BTreeMap<Bucket, BTreeMap<QueueKey, TaskId>>,
    /// The head of every bucket, in queue order.
    heads: BTreeSet<(QueueKey, Bucket)>,
    n_tasks: usize,
    next_sequence: u64,
}

impl TaskQueue {
    /// Appends a task; returns the key that removes it again.
    pub(crate) fn push(&mut self, task_id: TaskId, resources: &TaskResources) -> QueueKey {
        let key = QueueKey::new(resources, self.next_sequence);
        self.next_sequence += 1;
        self.push_with_key(task_id, resources, key);
        key
    }

    /// Puts a task back under the key it had before (a retry keeps its
    /// place). A key already in use is left alone (false).
    pub(crate) fn push_with_key(
        &mut self,
        task_id: TaskId,
        resources: &TaskResources,
        key: QueueKey,
    ) -> bool {
        let shape = Bucket::of(resources);
        let bucket = self.buckets.entry(shape).or_default();
        if bucket.contains_key(&key) {
            return false;
        }
        let old_head = bucket.first_key_value().map(|(head, _)| *head);
        bucket.insert(key, task_id);
        if old_head.map_or(true, |head| key < head) {
            if let Some(head) = old_head {
                self.heads.remove(&(head, shape));
            }
            self.heads.insert((key, shape));
        }
        self.n_tasks += 1;
        true
    }

    /// A task that arrived `sequence`th is known (replayed from the
    /// journal): later tasks are numbered after it.
    pub(crate) fn note_sequence(&mut self, sequence: u64) {
        self.next_sequence = self.next_sequence.max(sequence.saturating_add(1));
    }

    /// Removes a task; false when it was not queued under this key.
    pub(crate) fn remove(&mut self, resources: &TaskResources, key: QueueKey) -> bool {
        let shape = Bucket::of(resources);
        let Some(bucket) = self.buckets.get_mut(&shape) else {
            return false;
        };
        let was_head = bucket
            .first_key_value()
            .is_some_and(|(head, _)| *head == key);
        if bucket.remove(&key).is_none() {
            return false;
        }
        if was_head {
            self.heads.remove(&(key, shape));
            if let Some((next, _)) = bucket.first_key_value() {
                self.heads.insert((*next, shape));
            }
        }
        if bucket.is_empty() {
            self.buckets.remove(&shape);
        }
        self.n_tasks -= 1;
        true
    }

    /// The first bucket head after `after` in queue order (the very first
    /// with `None`): its key, shape and task.
    pub(crate) fn next_head(&self, after: Option<QueueKey>) -> Option<(QueueKey, Shape, TaskId)> {
        let (key, bucket) = match after {
            None => self.heads.first()?,
            Some(after) => {
                let lowest = Bucket {
                    shape: Shape {
                        num_nodes: 0,
                        ranks_per_node: None,
                    },
                    walltime_class: 0,
                };
                self.heads
                    .range((Bound::Excluded((after, lowest)), Bound::Unbounded))
                    .find(|(key, _)| *key != after)?
            }
        };
        let task_id = self.buckets.get(bucket)?.get(key)?;
        Some((*key, bucket.shape, *task_id))
    }

    /// Every queued task, in queue order, leaving the queue empty.
    pub(crate) fn drain_all(&mut self) -> Vec<TaskId> {
        let buckets = std::mem::take(&mut self.buckets);
        self.heads.clear();
        self.n_tasks = 0;
        let mut all: Vec<(QueueKey, TaskId)> = buckets
            .into_values()
            .flat_map(|bucket| bucket.into_iter())
            .collect();
        all.sort_by_key(|(key, _)| *key);
        all.into_iter().map(|(_, task_id)| task_id).collect()
    }

    /// (shape, number of tasks) for each shape with queued tasks, in shape
    /// order. O(B).
    pub(crate) fn shapes(&self) -> Vec<(Shape, usize)> {
        let mut shapes: Vec<(Shape, usize)> = Vec::new();
        for (bucket, tasks) in &self.buckets {
            match shapes.last_mut() {
                Some((shape, n_tasks)) if *shape == bucket.shape => *n_tasks += tasks.len(),
                _ => shapes.push((bucket.shape, tasks.len())),
            }
        }
        shapes
    }

    pub(crate) fn len(&self) -> usize {
        self.n_tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn id(n: u128) -> TaskId {
        TaskId::from_u128(n)
    }

    fn whole(num_nodes: u32) -> Shape {
        Shape {
            num_nodes,
            ranks_per_node: None,
        }
    }

    fn nodes(num_nodes: u32, priority: Option<i64>) -> TaskResources {
        TaskResources {
            num_nodes,
            priority,
            ..TaskResources::serial()
        }
    }

    fn heads(queue: &TaskQueue) -> Vec<TaskId> {
        let mut after = None;
        let mut found = Vec::new();
        while let Some((key, _, task_id)) = queue.next_head(after) {
            found.push(task_id);
            after = Some(key);
        }
        found
    }

    #[test]
    fn priority_then_arrival_then_no_priority() {
        let mut queue = TaskQueue::default();
        let mut resources = BTreeMap::new();
        for (n, num_nodes, priority) in [
            (1, 1, None),
            (2, 1, Some(5)),
            (3, 2, Some(-1)),
            (4, 1, Some(5)),
        ] {
            resources.insert(id(n), nodes(num_nodes, priority));
            queue.push(id(n), &resources[&id(n)]);
        }
        let mut order = Vec::new();
        while let Some((key, _, task_id)) = queue.next_head(None) {
            assert!(queue.remove(&resources[&task_id], key));
            order.push(task_id);
        }
        assert_eq!(order, vec![id(3), id(2), id(4), id(1)]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn heads_are_one_per_shape_in_queue_order() {
        let mut queue = TaskQueue::default();
        let packed = Shape {
            num_nodes: 1,
            ranks_per_node: Some(2),
        };
        let packed_resources = TaskResources {
            ranks_per_node: 2,
            num_ranks: 2,
            exclusive: false,
            ..TaskResources::serial()
        };
        let short = TaskResources {
            walltime: Some(10.0),
            ..nodes(2, None)
        };
        queue.push(id(1), &nodes(8, Some(0)));
        queue.push(id(2), &nodes(2, None));
        queue.push(id(3), &packed_resources);
        queue.push(id(4), &nodes(2, Some(1)));
        queue.push(id(5), &short);
        queue.push(id(6), &short);
        // The short task is the head of its own walltime class.
        assert_eq!(heads(&queue), vec![id(1), id(4), id(3), id(5)]);
        assert_eq!(
            queue.shapes(),
            vec![(packed, 1), (whole(2), 4), (whole(8), 1)]
        );
        assert_eq!(
            queue.drain_all(),
            vec![id(1), id(4), id(2), id(3), id(5), id(6)]
        );
        assert_eq!(queue.len(), 0);
        assert_eq!(heads(&queue), vec![]);
    }

    #[test]
    fn a_task_put_back_keeps_its_place() {
        let mut queue = TaskQueue::default();
        let serial = TaskResources::serial();
        let first = queue.push(id(1), &serial);
        queue.push(id(2), &serial);
        assert!(queue.remove(&serial, first));
        assert!(!queue.remove(&serial, first));
        assert_eq!(heads(&queue), vec![id(2)]);
        assert!(queue.push_with_key(id(1), &serial, first));
        assert!(!queue.push_with_key(id(9), &serial, first));
        assert_eq!(heads(&queue), vec![id(1)]);
        assert_eq!(queue.drain_all(), vec![id(1), id(2)]);
    }

    #[test]
    fn shapes_read_plainly() {
        assert_eq!(whole(1).to_string(), "1 node");
        assert_eq!(whole(3).to_string(), "3 nodes");
        let packed = |num_nodes, ranks| Shape {
            num_nodes,
            ranks_per_node: Some(ranks),
        };
        assert_eq!(packed(2, 4).to_string(), "2 nodes with 4 free slots each");
        assert_eq!(packed(1, 1).to_string(), "1 node with 1 free slot");
        assert_eq!(packed(1, 3).to_string(), "1 node with 3 free slots");
    }
}
