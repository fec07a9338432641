//! The queue of tasks waiting for nodes, indexed by node count.
//!
//! Matching asks one question many times: "of the tasks that need at most
//! `n` nodes, which comes first?" Tasks are kept in one bucket per node
//! count, each bucket ordered by (priority class, priority, arrival), so the
//! answer is the smallest head among the buckets up to `n`: the cost grows
//! with the number of distinct node counts, never with the number of tasks.

use protocol::TaskId;
use std::collections::BTreeMap;

/// Where a task stands in the order: smaller `priority` first, tasks without
/// a priority last, first come first served within a priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct QueueKey {
    /// 0 for tasks with a priority, 1 for tasks without one.
    class: u8,
    priority: i64,
    sequence: u64,
}

/// Tasks waiting for a manager, by node count then order.
#[derive(Debug, Default)]
pub(crate) struct TaskQueue {
    by_nodes: BTreeMap<u32, BTreeMap<QueueKey, TaskId>>,
    n_tasks: usize,
    next_sequence: u64,
}

impl TaskQueue {
    /// Appends a task; returns the key that removes it again.
    pub(crate) fn push(
        &mut self,
        task_id: TaskId,
        num_nodes: u32,
        priority: Option<i64>,
    ) -> QueueKey {
        let key = QueueKey {
            class: u8::from(priority.is_none()),
            priority: priority.unwrap_or(0),
            sequence: self.next_sequence,
        };
        self.next_sequence += 1;
        self.by_nodes
            .entry(num_nodes)
            .or_default()
            .insert(key, task_id);
        self.n_tasks += 1;
        key
    }

    /// Removes a task; false when it was not queued under this key.
    pub(crate) fn remove(&mut self, num_nodes: u32, key: QueueKey) -> bool {
        let Some(bucket) = self.by_nodes.get_mut(&num_nodes) else {
            return false;
        };
        let removed = bucket.remove(&key).is_some();
        if bucket.is_empty() {
            self.by_nodes.remove(&num_nodes);
        }
        if removed {
            self.n_tasks -= 1;
        }
        removed
    }

    /// The first task, in queue order, that needs at most `max_nodes` nodes.
    pub(crate) fn first_fitting(&self, max_nodes: u32) -> Option<(u32, QueueKey, TaskId)> {
        self.by_nodes
            .range(..=max_nodes)
            .filter_map(|(num_nodes, bucket)| {
                bucket
                    .first_key_value()
                    .map(|(key, task_id)| (*num_nodes, *key, *task_id))
            })
            .min_by_key(|(_, key, _)| *key)
    }

    /// Every queued task, bucket by bucket, in queue order within a bucket.
    pub(crate) fn drain_all(&mut self) -> Vec<TaskId> {
        let buckets = std::mem::take(&mut self.by_nodes);
        self.n_tasks = 0;
        let mut all: Vec<(QueueKey, TaskId)> = buckets
            .into_values()
            .flat_map(|bucket| bucket.into_iter())
            .collect();
        all.sort_by_key(|(key, _)| *key);
        all.into_iter().map(|(_, task_id)| task_id).collect()
    }

    /// (node count, number of tasks) for each non-empty bucket, smallest first.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.by_nodes
            .iter()
            .map(|(num_nodes, bucket)| (*num_nodes, bucket.len()))
    }

    pub(crate) fn len(&self) -> usize {
        self.n_tasks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> TaskId {
        TaskId::from_u128(n)
    }

    #[test]
    fn priority_then_arrival_then_no_priority() {
        let mut queue = TaskQueue::default();
        queue.push(id(1), 1, None);
        queue.push(id(2), 1, Some(5));
        queue.push(id(3), 2, Some(-1));
        queue.push(id(4), 1, Some(5));
        let mut order = Vec::new();
        while let Some((num_nodes, key, task_id)) = queue.first_fitting(u32::MAX) {
            assert!(queue.remove(num_nodes, key));
            order.push(task_id);
        }
        assert_eq!(order, vec![id(3), id(2), id(4), id(1)]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn first_fitting_skips_larger_buckets() {
        let mut queue = TaskQueue::default();
        queue.push(id(1), 8, Some(0));
        queue.push(id(2), 2, None);
        assert_eq!(queue.first_fitting(4).map(|found| found.2), Some(id(2)));
        assert_eq!(queue.first_fitting(1), None);
        assert_eq!(queue.buckets().collect::<Vec<_>>(), vec![(2, 1), (8, 1)]);
        assert_eq!(queue.drain_all(), vec![id(1), id(2)]);
        assert_eq!(queue.len(), 0);
    }
}
