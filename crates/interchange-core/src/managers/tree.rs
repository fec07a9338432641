//! A max segment tree over registration order, for "the newest manager
//! with at least ..." in O(log n).

/// A max segment tree over registration order: "the rightmost leaf before
/// `below` whose value is at least `threshold`" in O(log n).
#[derive(Debug, Default)]
pub(super) struct MaxTree {
    pub(super) n_leaves: usize,
    pub(super) values: Vec<u32>,
}

impl MaxTree {
    pub(super) fn with_leaves(n_leaves: usize) -> Self {
        let n_leaves = n_leaves.max(1).next_power_of_two();
        Self {
            n_leaves,
            values: vec![0; 2 * n_leaves],
        }
    }

    pub(super) fn set(&mut self, leaf: usize, value: u32) {
        if leaf >= self.n_leaves {
            let mut grown = Self::with_leaves(leaf + 1);
            for index in 0..self.n_leaves {
                grown.set(index, self.values[self.n_leaves + index]);
            }
            *self = grown;
        }
        let mut index = self.n_leaves + leaf;
        self.values[index] = value;
        while index > 1 {
            index /= 2;
            self.values[index] = self.values[2 * index].max(self.values[2 * index + 1]);
        }
    }

    pub(super) fn rightmost_at_least(&self, threshold: u32, below: usize) -> Option<usize> {
        if self.values.is_empty() {
            return None;
        }
        self.descend(1, 0, self.n_leaves, threshold, below)
    }

    fn descend(
        &self,
        index: usize,
        low: usize,
        high: usize,
        threshold: u32,
        below: usize,
    ) -> Option<usize> {
        if low >= below || self.values[index] < threshold {
            return None;
        }
        if high - low == 1 {
            return Some(low);
        }
        let middle = (low + high) / 2;
        self.descend(2 * index + 1, middle, high, threshold, below)
            .or_else(|| self.descend(2 * index, low, middle, threshold, below))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_tree_finds_the_rightmost_leaf_at_or_above_a_threshold() {
        let mut tree = MaxTree::default();
        for (leaf, value) in [3, 0, 5, 1, 2].into_iter().enumerate() {
            tree.set(leaf, value);
        }
        assert_eq!(tree.rightmost_at_least(2, 5), Some(4));
        assert_eq!(tree.rightmost_at_least(2, 4), Some(2));
        assert_eq!(tree.rightmost_at_least(4, 5), Some(2));
        assert_eq!(tree.rightmost_at_least(4, 2), None);
        assert_eq!(tree.rightmost_at_least(3, 2), Some(0));
        assert_eq!(tree.rightmost_at_least(6, 5), None);
        tree.set(2, 0);
        assert_eq!(tree.rightmost_at_least(4, 5), None);
    }

    proptest! {
        /// The tree answers as a scan of the leaves would.
        #[test]
        fn the_tree_agrees_with_a_scan(
            values in proptest::collection::vec(0u32..6, 1..40),
            threshold in 1u32..6,
            below in 0usize..45,
        ) {
            let mut tree = MaxTree::default();
            for (leaf, value) in values.iter().enumerate() {
                tree.set(leaf, *value);
            }
            let scan = values
                .iter()
                .enumerate()
                .take(below)
                .filter(|(_, value)| **value >= threshold)
                .map(|(leaf, _)| leaf)
                .next_back();
            prop_assert_eq!(tree.rightmost_at_least(threshold, below), scan);
        }
    }
}
