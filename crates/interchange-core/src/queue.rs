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
//! never grows with the number of queued tasks. The walltime class lets a
//! short task behind a long one of the same shape be seen when only short
//! tasks may backfill (within a class, only the head is tried: an
//! approximation by a factor of two).
//!
//! A task queued again after its manager was lost keeps its original key
//! ([`TaskQueue::push_with_key`]), so it keeps its priority and its age.
//!
//! A bucket holds its tasks as runs: each run is a ring buffer of at most
//! [`RUN_CAPACITY`] (arrival, task) pairs of one priority, 24 bytes each,
//! in a map of runs keyed by where each run begins. Tasks nearly always
//! arrive in order within their priority, so they are appended to the last
//! run of their priority, which fills completely before the next one
//! starts (at full size at once): about 24 bytes a task, where a B-tree of
//! whole keys filled by appends took about 80. For R runs in a bucket
//! (about n / [`RUN_CAPACITY`] plus one per priority in use; at most n),
//! an append and taking the head are O(log R + log B). A task put back out
//! of order (a retry) or removed from the middle (a cancel) is found in
//! O(log R + log [`RUN_CAPACITY`]) and moves at most [`RUN_CAPACITY`] / 2
//! entries of its run (a full run splits in two). So push and remove stay
//! O(log n + log B).

use protocol::{TaskId, TaskResources};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::ops::Bound;

/// The most tasks one run of a bucket holds (6 KiB of entries).
const RUN_CAPACITY: usize = 256;

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

    /// Whether `other` has the same priority class and priority.
    fn same_level(self, other: QueueKey) -> bool {
        (self.class, self.priority) == (other.class, other.priority)
    }

    /// The key of the same level with another arrival number.
    fn with_sequence(self, sequence: u64) -> Self {
        Self { sequence, ..self }
    }
}

/// Tasks of one level (priority class and priority) in arrival order:
/// (arrival number, task), sorted, never empty.
type Run = VecDeque<(u64, TaskId)>;

/// The tasks of one bucket, in queue order: runs keyed by their floor.
/// Every task of a run has the run's level, a key at least its floor and
/// below the next run's floor; so a key is found in the run with the
/// greatest floor not above it.
#[derive(Debug, Default)]
struct Lane {
    runs: BTreeMap<QueueKey, Run>,
    n_tasks: usize,
}

impl Lane {
    /// The first task in queue order.
    fn head(&self) -> Option<(QueueKey, TaskId)> {
        let (floor, run) = self.runs.first_key_value()?;
        let (sequence, task_id) = run.front()?;
        Some((floor.with_sequence(*sequence), *task_id))
    }

    /// Adds a task under `key`; false (and nothing changed) when the key is
    /// in use.
    fn insert(&mut self, key: QueueKey, task_id: TaskId) -> bool {
        let entry = (key.sequence, task_id);
        let mut after_full_run = false;
        if let Some((_, run)) = self
            .runs
            .range_mut(..=key)
            .next_back()
            .filter(|(floor, _)| floor.same_level(key))
        {
            let position = match run.binary_search_by_key(&key.sequence, |(sequence, _)| *sequence)
            {
                Ok(_) => return false,
                Err(position) => position,
            };
            if run.len() < RUN_CAPACITY {
                run.insert(position, entry);
                self.n_tasks += 1;
                return true;
            }
            if position < run.len() {
                // Inside a full run: split it in two.
                let half = RUN_CAPACITY / 2;
                let mut tail = run.split_off(half);
                if position <= half {
                    run.insert(position, entry);
                } else {
                    tail.insert(position - half, entry);
                }
                let tail_floor =
                    key.with_sequence(tail.front().map_or(key.sequence, |first| first.0));
                self.runs.insert(tail_floor, tail);
                self.n_tasks += 1;
                return true;
            }
            after_full_run = true;
        }
        // After every task of the run before it (if any): at the front of
        // the next run when that one has its level and room, else a new run.
        let next = self
            .runs
            .range((Bound::Excluded(key), Bound::Unbounded))
            .next()
            .filter(|(floor, run)| floor.same_level(key) && run.len() < RUN_CAPACITY)
            .map(|(floor, _)| *floor);
        let run = match next.and_then(|floor| self.runs.remove(&floor)) {
            Some(mut run) => {
                run.push_front(entry);
                run
            }
            None => {
                // A run started because the one before is full is likely
                // to fill too: it takes its whole size at once.
                let mut run = Run::with_capacity(if after_full_run { RUN_CAPACITY } else { 1 });
                run.push_back(entry);
                run
            }
        };
        self.runs.insert(key, run);
        self.n_tasks += 1;
        true
    }

    /// Removes the task under `key`; false when there is none.
    fn remove(&mut self, key: QueueKey) -> bool {
        let Some((floor, run)) = self.runs.range_mut(..=key).next_back() else {
            return false;
        };
        if !floor.same_level(key) {
            return false;
        }
        let Ok(position) = run.binary_search_by_key(&key.sequence, |(sequence, _)| *sequence)
        else {
            return false;
        };
        run.remove(position);
        if run.is_empty() {
            let floor = *floor;
            self.runs.remove(&floor);
        }
        self.n_tasks -= 1;
        true
    }

    /// Every task with its key, in queue order.
    fn into_keyed(self) -> impl Iterator<Item = (QueueKey, TaskId)> {
        self.runs.into_iter().flat_map(|(floor, run)| {
            run.into_iter()
                .map(move |(sequence, task_id)| (floor.with_sequence(sequence), task_id))
        })
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
    buckets: BTreeMap<Bucket, Lane>,
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
        let lane = self.buckets.entry(shape).or_default();
        let old_head = lane.head().map(|(head, _)| head);
        if !lane.insert(key, task_id) {
            return false;
        }
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
        let Some(lane) = self.buckets.get_mut(&shape) else {
            return false;
        };
        let was_head = lane.head().is_some_and(|(head, _)| head == key);
        if !lane.remove(key) {
            return false;
        }
        if was_head {
            self.heads.remove(&(key, shape));
            if let Some((next, _)) = lane.head() {
                self.heads.insert((next, shape));
            }
        }
        if lane.n_tasks == 0 {
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
        let (head, task_id) = self.buckets.get(bucket)?.head()?;
        (head == *key).then_some((head, bucket.shape, task_id))
    }

    /// Every queued task, in queue order, leaving the queue empty.
    pub(crate) fn drain_all(&mut self) -> Vec<TaskId> {
        let buckets = std::mem::take(&mut self.buckets);
        self.heads.clear();
        self.n_tasks = 0;
        let mut all: Vec<(QueueKey, TaskId)> =
            buckets.into_values().flat_map(Lane::into_keyed).collect();
        all.sort_by_key(|(key, _)| *key);
        all.into_iter().map(|(_, task_id)| task_id).collect()
    }

    /// (shape, number of tasks) for each shape with queued tasks, in shape
    /// order. O(B).
    pub(crate) fn shapes(&self) -> Vec<(Shape, usize)> {
        let mut shapes: Vec<(Shape, usize)> = Vec::new();
        for (bucket, lane) in &self.buckets {
            match shapes.last_mut() {
                Some((shape, n_tasks)) if *shape == bucket.shape => *n_tasks += lane.n_tasks,
                _ => shapes.push((bucket.shape, lane.n_tasks)),
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
    fn tasks_put_back_out_of_order_and_removed_from_the_middle_keep_order() {
        let mut queue = TaskQueue::default();
        let serial = TaskResources::serial();
        let keys: Vec<QueueKey> = (1..=6).map(|n| queue.push(id(n), &serial)).collect();
        // From the middle, then the last, then the head.
        assert!(queue.remove(&serial, keys[2]));
        assert!(queue.remove(&serial, keys[5]));
        assert!(queue.remove(&serial, keys[0]));
        assert!(!queue.remove(&serial, keys[2]));
        assert_eq!(queue.len(), 3);
        assert_eq!(heads(&queue), vec![id(2)]);
        // Back between the others, after them, and in front of them.
        assert!(queue.push_with_key(id(3), &serial, keys[2]));
        assert!(queue.push_with_key(id(6), &serial, keys[5]));
        assert!(queue.push_with_key(id(1), &serial, keys[0]));
        assert!(!queue.push_with_key(id(9), &serial, keys[2]));
        assert_eq!(heads(&queue), vec![id(1)]);
        assert_eq!(queue.len(), 6);
        assert_eq!(queue.drain_all(), (1..=6).map(id).collect::<Vec<_>>());
    }

    #[test]
    fn appended_tasks_fill_whole_runs_and_full_runs_split() {
        let mut queue = TaskQueue::default();
        let serial = TaskResources::serial();
        let n_tasks = 3 * RUN_CAPACITY as u128;
        let keys: Vec<QueueKey> = (0..n_tasks).map(|n| queue.push(id(n), &serial)).collect();
        let runs = |queue: &TaskQueue| -> Vec<usize> {
            let lane = &queue.buckets[&Bucket::of(&serial)];
            lane.runs.values().map(Run::len).collect()
        };
        assert_eq!(runs(&queue), vec![RUN_CAPACITY; 3]);
        // Every third task leaves, then they come back, last first.
        let moved: Vec<usize> = (0..keys.len()).step_by(3).collect();
        for &index in &moved {
            assert!(queue.remove(&serial, keys[index]));
        }
        for &index in moved.iter().rev() {
            assert!(queue.push_with_key(id(index as u128), &serial, keys[index]));
        }
        // Into full runs (of every other arrival number): each splits.
        let mut later = TaskQueue::default();
        let key = |sequence: u128| QueueKey::new(&serial, sequence as u64);
        for sequence in (0..2 * n_tasks).step_by(2) {
            assert!(later.push_with_key(id(sequence / 2), &serial, key(sequence)));
        }
        assert_eq!(runs(&later), vec![RUN_CAPACITY; 3]);
        let odd: Vec<u128> = (1..2 * n_tasks).step_by(2).collect();
        for sequence in odd.into_iter().rev() {
            assert!(later.push_with_key(id(n_tasks + sequence / 2), &serial, key(sequence)));
        }
        assert!(runs(&later).len() > 6);
        let mut expected = Vec::new();
        for n in 0..n_tasks {
            expected.extend([id(n), id(n_tasks + n)]);
        }
        assert_eq!(later.len(), 2 * keys.len());
        assert!(runs(&later).iter().all(|len| *len <= RUN_CAPACITY));
        assert_eq!(later.drain_all(), expected);
        // The whole first run leaves (as if dispatched), then comes back
        // last first (as retries): in front of the others, in one run.
        for key in &keys[..RUN_CAPACITY] {
            assert!(queue.remove(&serial, *key));
        }
        assert_eq!(runs(&queue), vec![RUN_CAPACITY; 2]);
        for (n, key) in keys[..RUN_CAPACITY].iter().enumerate().rev() {
            assert!(queue.push_with_key(id(n as u128), &serial, *key));
        }
        assert_eq!(runs(&queue), vec![RUN_CAPACITY; 3]);
        assert_eq!(queue.len(), keys.len());
        assert_eq!(queue.drain_all(), (0..n_tasks).map(id).collect::<Vec<_>>());
    }

    #[test]
    fn interleaved_priorities_keep_their_own_order() {
        let mut queue = TaskQueue::default();
        let mut resources = BTreeMap::new();
        let mut keys = BTreeMap::new();
        let id = |n: u32| id(n.into());
        for n in 0..600 {
            let priority = [Some(2), None, Some(-1)][(n % 3) as usize];
            resources.insert(id(n), nodes(1, priority));
            keys.insert(id(n), queue.push(id(n), &resources[&id(n)]));
        }
        for n in (0..600).step_by(7) {
            assert!(queue.remove(&resources[&id(n)], keys[&id(n)]));
        }
        for n in (0..600).step_by(7).rev() {
            assert!(queue.push_with_key(id(n), &resources[&id(n)], keys[&id(n)]));
        }
        let mut expected: Vec<TaskId> = (0..600).map(id).collect();
        expected.sort_by_key(|task_id| keys[task_id]);
        assert_eq!(expected[0], id(2));
        assert_eq!(expected[599], id(598));
        let mut order = Vec::new();
        while let Some((key, _, task_id)) = queue.next_head(None) {
            assert!(queue.remove(&resources[&task_id], key));
            order.push(task_id);
        }
        assert_eq!(order, expected);
    }

    /// What the queue is asked to do in the property test below.
    #[derive(Clone, Debug)]
    enum Step {
        /// Appends this many tasks of one shape (1 or 2 nodes) and
        /// priority; with `true`, every other one is removed at once (so
        /// that runs fill with gaps, which a put back task splits).
        Push(u32, Option<i64>, usize, bool),
        /// Removes the queued task at this place (modulo their number) in
        /// queue order.
        Remove(usize),
        /// Puts back the removed task at this place (modulo their number).
        PutBack(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (
                1u32..3,
                proptest::option::of(-1i64..2),
                1usize..300,
                any::<bool>()
            )
                .prop_map(|(num_nodes, priority, n, gaps)| Step::Push(
                    num_nodes, priority, n, gaps
                )),
            any::<usize>().prop_map(Step::Remove),
            any::<usize>().prop_map(Step::PutBack),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// The queue keeps the order and the heads a sorted map of all its
        /// keys would, whatever is appended, removed and put back.
        #[test]
        fn the_queue_agrees_with_a_sorted_map(steps in proptest::collection::vec(step(), 1..60)) {
            let mut queue = TaskQueue::default();
            let mut queued: BTreeMap<QueueKey, (TaskId, TaskResources)> = BTreeMap::new();
            let mut removed: Vec<(QueueKey, TaskId, TaskResources)> = Vec::new();
            let mut next_id = 0u128;
            for step in steps {
                match step {
                    Step::Push(num_nodes, priority, n, gaps) => {
                        for n in 0..n {
                            let resources = nodes(num_nodes, priority);
                            let key = queue.push(id(next_id), &resources);
                            if gaps && n % 2 == 1 {
                                prop_assert!(queue.remove(&resources, key));
                                removed.push((key, id(next_id), resources));
                            } else {
                                queued.insert(key, (id(next_id), resources));
                            }
                            next_id += 1;
                        }
                    }
                    Step::Remove(place) if !queued.is_empty() => {
                        let key = *queued.keys().nth(place % queued.len()).expect("a queued task");
                        let (task_id, resources) = queued.remove(&key).expect("a queued task");
                        prop_assert!(queue.remove(&resources, key));
                        prop_assert!(!queue.remove(&resources, key));
                        removed.push((key, task_id, resources));
                    }
                    Step::PutBack(place) if !removed.is_empty() => {
                        let (key, task_id, resources) = removed.swap_remove(place % removed.len());
                        prop_assert!(queue.push_with_key(task_id, &resources, key));
                        prop_assert!(!queue.push_with_key(task_id, &resources, key));
                        queued.insert(key, (task_id, resources));
                    }
                    Step::Remove(_) | Step::PutBack(_) => {}
                }
                prop_assert_eq!(queue.len(), queued.len());
                let mut expected_heads: Vec<TaskId> = Vec::new();
                let mut seen = Vec::new();
                for (task_id, resources) in queued.values() {
                    let bucket = Bucket::of(resources);
                    if !seen.contains(&bucket) {
                        seen.push(bucket);
                        expected_heads.push(*task_id);
                    }
                }
                prop_assert_eq!(heads(&queue), expected_heads);
            }
            let order: Vec<TaskId> = queued.values().map(|(task_id, _)| *task_id).collect();
            prop_assert_eq!(queue.drain_all(), order);
        }
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
