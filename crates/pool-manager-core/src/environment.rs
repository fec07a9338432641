//! A task's environment as the core composes it: the manager's base
//! environment, shared by every task (never copied per task), and the
//! task's own variables on top ([`Environment`]). The shell turns it into
//! the array the spawn takes in one pass ([`Environment::iter`] visits the
//! variables in key order, each once).

use std::collections::BTreeMap;
use std::sync::Arc;

/// The base environment every task starts from, shared.
pub type BaseEnv = Arc<BTreeMap<String, String>>;

/// What a base environment can be given as: shared already (the core's,
/// no copy), or a map (copied once).
pub trait ToBase {
    fn to_base(&self) -> BaseEnv;
}

impl ToBase for BaseEnv {
    fn to_base(&self) -> BaseEnv {
        Arc::clone(self)
    }
}

impl ToBase for BTreeMap<String, String> {
    fn to_base(&self) -> BaseEnv {
        Arc::new(self.clone())
    }
}

/// A task's complete environment (the child's own is cleared first): the
/// `base` variables, then `overlay` on top, where `Some` sets a variable
/// and `None` removes it.
#[derive(Clone, Default)]
pub struct Environment {
    base: BaseEnv,
    overlay: BTreeMap<String, Option<String>>,
}

impl Environment {
    /// `base` and nothing on top.
    pub fn on(base: BaseEnv) -> Self {
        Self {
            base,
            overlay: BTreeMap::new(),
        }
    }

    /// The shared base.
    pub fn base(&self) -> &BaseEnv {
        &self.base
    }

    /// What this task sets (`Some`) or removes (`None`) on top of the base.
    pub fn overlay(&self) -> &BTreeMap<String, Option<String>> {
        &self.overlay
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        match self.overlay.get(key) {
            Some(value) => value.as_ref(),
            None => self.base.get(key),
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` for this task.
    pub fn insert(&mut self, key: String, value: String) {
        self.overlay.insert(key, Some(value));
    }

    /// Removes `key` for this task; gives the value it had.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let had = self.get(key).cloned();
        if had.is_some() {
            self.overlay.insert(key.to_owned(), None);
        }
        had
    }

    /// Every variable, in key order, each once.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        merge(&self.base, &self.overlay).filter_map(|(_, key, value)| Some((key, value?)))
    }

    /// Every variable, in key order, each once, saying where it comes from
    /// (for the shell, which encodes the base once and only the overlay
    /// per task).
    pub fn sources(&self) -> impl Iterator<Item = EnvSource<'_>> {
        merge(&self.base, &self.overlay).filter_map(|(index, key, value)| {
            let value = value?;
            Some(match index {
                Some(index) => EnvSource::Base(index),
                None => EnvSource::Overlay(key, value),
            })
        })
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// The entries of `base` and `overlay` in key order, each key once: a base
/// entry with its index (in key order), else the overlay's (`None`: a
/// removed variable).
fn merge<'a>(
    base: &'a BTreeMap<String, String>,
    overlay: &'a BTreeMap<String, Option<String>>,
) -> impl Iterator<Item = (Option<usize>, &'a String, Option<&'a String>)> {
    let mut base = base.iter().enumerate().peekable();
    let mut overlay = overlay.iter().peekable();
    std::iter::from_fn(move || {
        let from_base = match (base.peek(), overlay.peek()) {
            (Some((_, (base_key, _))), Some((overlay_key, _))) => {
                match base_key.as_str().cmp(overlay_key.as_str()) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => {
                        base.next();
                        false
                    }
                    std::cmp::Ordering::Greater => false,
                }
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_base {
            base.next()
                .map(|(index, (key, value))| (Some(index), key, Some(value)))
        } else {
            overlay
                .next()
                .map(|(key, value)| (None, key, value.as_ref()))
        }
    })
}

/// Where one variable of a task's environment comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvSource<'a> {
    /// The base's variable at this index (in key order).
    Base(usize),
    /// A variable the task sets.
    Overlay(&'a String, &'a String),
}

impl std::ops::Index<&str> for Environment {
    type Output = String;

    fn index(&self, key: &str) -> &String {
        self.get(key)
            .unwrap_or_else(|| panic!("no variable {key} in the environment"))
    }
}

impl PartialEq for Environment {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl PartialEq<BTreeMap<String, String>> for Environment {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(String, String)> for Environment {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        Self {
            base: BaseEnv::default(),
            overlay: pairs
                .into_iter()
                .map(|(key, value)| (key, Some(value)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::string_map as map;

    #[test]
    fn the_overlay_sets_and_removes_on_top_of_the_shared_base() {
        let base = Arc::new(map(&[("A", "1"), ("C", "3"), ("E", "5")]));
        let mut env = Environment::on(Arc::clone(&base));
        env.insert("B".into(), "2".into());
        env.insert("C".into(), "three".into());
        assert_eq!(env.remove("E").as_deref(), Some("5"));
        assert_eq!(env.remove("Z"), None);
        env.insert("F".into(), "6".into());
        let expected = map(&[("A", "1"), ("B", "2"), ("C", "three"), ("F", "6")]);
        assert_eq!(env, expected);
        assert_eq!(env.len(), 4);
        assert_eq!(env["C"], "three");
        assert!(!env.contains_key("E"));
        assert_eq!(base.len(), 3, "the base is never changed");
        // The shell's view: base entries by index, the rest from the overlay.
        let sources: Vec<EnvSource<'_>> = env.sources().collect();
        let (b, c, f) = ("B".to_string(), "C".to_string(), "F".to_string());
        let (two, three, six) = ("2".to_string(), "three".to_string(), "6".to_string());
        assert_eq!(
            sources,
            vec![
                EnvSource::Base(0),
                EnvSource::Overlay(&b, &two),
                EnvSource::Overlay(&c, &three),
                EnvSource::Overlay(&f, &six),
            ]
        );
    }
}
