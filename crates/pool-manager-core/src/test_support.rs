//! Helpers shared by this crate's unit tests.

use std::collections::BTreeMap;

/// A string map (an environment, a task's variables) from literal pairs.
pub(crate) fn string_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}
