//! The pure node allocator: which of the block's nodes each running task
//! holds.
//!
//! Nodes are indices `0..n_total` into the block's node list. A task gets
//! the lowest free indices; releasing the task frees them. No I/O, no
//! clock; [`Allocator::validate`] checks the internal bookkeeping.

use protocol::TaskId;
use std::collections::BTreeMap;

/// Tracks which node each task holds.
#[derive(Clone, Debug)]
pub struct Allocator {
    /// For each node, the task holding it.
    owners: Vec<Option<TaskId>>,
    /// For each task, its nodes in increasing order.
    by_task: BTreeMap<TaskId, Vec<usize>>,
    n_free: usize,
}

impl Allocator {
    /// An allocator for `n_total` free nodes.
    pub fn new(n_total: usize) -> Self {
        Self {
            owners: vec![None; n_total],
            by_task: BTreeMap::new(),
            n_free: n_total,
        }
    }

    /// Gives `n` nodes (the lowest free indices) to `task_id`. `None` when
    /// fewer than `n` are free or the task already holds nodes.
    pub fn allocate(&mut self, task_id: TaskId, n: usize) -> Option<Vec<usize>> {
        if n > self.n_free || self.by_task.contains_key(&task_id) {
            return None;
        }
        let chosen: Vec<usize> = self
            .owners
            .iter()
            .enumerate()
            .filter(|(_, owner)| owner.is_none())
            .map(|(index, _)| index)
            .take(n)
            .collect();
        for &index in &chosen {
            self.owners[index] = Some(task_id);
        }
        self.n_free -= chosen.len();
        self.by_task.insert(task_id, chosen.clone());
        Some(chosen)
    }

    /// Frees the nodes of `task_id`; returns them (empty if it held none).
    pub fn release(&mut self, task_id: TaskId) -> Vec<usize> {
        let released = self.by_task.remove(&task_id).unwrap_or_default();
        for &index in &released {
            self.owners[index] = None;
        }
        self.n_free += released.len();
        released
    }

    /// The nodes `task_id` holds, if it holds any.
    pub fn nodes_of(&self, task_id: TaskId) -> Option<&[usize]> {
        self.by_task.get(&task_id).map(Vec::as_slice)
    }

    pub fn n_free(&self) -> usize {
        self.n_free
    }

    pub fn n_total(&self) -> usize {
        self.owners.len()
    }

    /// Checks that the two views agree: every owned node is listed under
    /// its task and nowhere else, and the free count matches.
    pub fn validate(&self) -> Result<(), String> {
        let mut n_owned = 0;
        for (task_id, nodes) in &self.by_task {
            for &index in nodes {
                match self.owners.get(index) {
                    Some(Some(owner)) if owner == task_id => n_owned += 1,
                    other => {
                        return Err(format!(
                            "task {task_id} lists node {index}, whose owner is {other:?}"
                        ))
                    }
                }
            }
        }
        let n_marked = self.owners.iter().filter(|owner| owner.is_some()).count();
        if n_marked != n_owned {
            return Err(format!(
                "{n_marked} nodes are marked owned but tasks list {n_owned}"
            ));
        }
        if self.n_free + n_owned != self.owners.len() {
            return Err(format!(
                "n_free {} + owned {n_owned} != total {}",
                self.n_free,
                self.owners.len()
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

    #[test]
    fn lowest_free_indices_first() {
        let mut allocator = Allocator::new(5);
        assert_eq!(allocator.allocate(task(1), 2), Some(vec![0, 1]));
        assert_eq!(allocator.allocate(task(2), 1), Some(vec![2]));
        assert_eq!(allocator.release(task(1)), vec![0, 1]);
        assert_eq!(allocator.allocate(task(3), 3), Some(vec![0, 1, 3]));
        assert_eq!(allocator.n_free(), 1);
        assert_eq!(allocator.allocate(task(4), 2), None);
        assert_eq!(allocator.allocate(task(3), 1), None, "duplicate task id");
        assert_eq!(allocator.release(task(99)), Vec::<usize>::new());
        allocator.validate().expect("consistent");
    }

    #[derive(Clone, Debug)]
    enum Step {
        Allocate(usize),
        Release(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0usize..6).prop_map(Step::Allocate),
            (0usize..40).prop_map(Step::Release),
        ]
    }

    proptest! {
        #[test]
        fn never_double_allocates_and_release_restores(
            n_total in 0usize..12,
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            let mut allocator = Allocator::new(n_total);
            let mut next_task = 0u128;
            let mut live: Vec<TaskId> = Vec::new();
            for step in steps {
                match step {
                    Step::Allocate(n) => {
                        next_task += 1;
                        let free_before = allocator.n_free();
                        let got = allocator.allocate(task(next_task), n);
                        prop_assert_eq!(got.is_none(), n > free_before);
                        if let Some(nodes) = got {
                            prop_assert_eq!(nodes.len(), n);
                            prop_assert_eq!(allocator.n_free(), free_before - n);
                            live.push(task(next_task));
                        }
                    }
                    Step::Release(pick) => {
                        if !live.is_empty() {
                            let task_id = live.remove(pick % live.len());
                            allocator.release(task_id);
                        }
                    }
                }
                prop_assert!(allocator.validate().is_ok(), "{:?}", allocator.validate());
                // No node belongs to two tasks.
                let mut seen = std::collections::HashSet::new();
                for task_id in &live {
                    for &index in allocator.nodes_of(*task_id).unwrap_or(&[]) {
                        prop_assert!(seen.insert(index), "node {} given twice", index);
                    }
                }
            }
            for task_id in live {
                allocator.release(task_id);
            }
            prop_assert_eq!(allocator.n_free(), n_total);
            prop_assert_eq!(allocator.n_total(), n_total);
            prop_assert!(allocator.validate().is_ok());
        }
    }
}
