//! What the harness checks as the cores run: the [`Problem`]s it records
//! (a refused placement, a frame that does not decode, a core whose own
//! `validate()` fails...), and the tasks that wait, as seen on the wire, for
//! the "nothing waits that an idle manager fits" checks.
//!
//! The waiting tasks are read from the messages that cross: a task joins
//! when a client's `submit` carrying it (with a valid specification) reaches
//! the interchange, and leaves when the interchange sends it in `run_tasks`
//! or sends its result. A task queued again after its manager was lost is
//! not seen (nothing crosses), so the checks miss it: they may miss a
//! problem, never report a false one.

use crate::config::ManagerLife;
use crate::pair::Pair;
use protocol::{ManagerId, StatusReport, TaskId, TaskSubmission};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Something that must not happen in a correct run.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A manager core refused a task the interchange sent it (`launch_failed`
    /// while registered: an invalid placement or a duplicate task id).
    Refused {
        manager: usize,
        task_id: TaskId,
        message: String,
    },
    /// A frame a core's message was encoded to did not decode.
    Undecodable { what: &'static str, error: String },
    /// The interchange sent to a peer the harness does not know.
    UnknownPeer { peer: String },
    /// A core's own check failed; the message names the core
    /// (`interchange: ...`, `manager 2: ...`).
    Invalid { message: String },
    /// The fake launcher's contract broke (a kill of a task that is not
    /// running, a manager that exited with tasks running).
    Launcher { manager: usize, message: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Refused {
                manager,
                task_id,
                message,
            } => write!(f, "manager {manager} refused task {task_id}: {message}"),
            Problem::Undecodable { what, error } => write!(f, "{what} did not decode: {error}"),
            Problem::UnknownPeer { peer } => write!(f, "message to an unknown peer {peer}"),
            Problem::Invalid { message } => write!(f, "inconsistent books: {message}"),
            Problem::Launcher { manager, message } => write!(f, "manager {manager}: {message}"),
        }
    }
}

/// What a waiting task needs of a manager: its node count, and for a
/// packed (non-exclusive) task its ranks per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Need {
    pub num_nodes: u32,
    /// `None`: whole nodes (an exclusive task).
    pub packed_ranks: Option<u32>,
}

impl Need {
    /// Whether a manager with this many nodes and slots per node could
    /// start it when entirely idle.
    pub fn fits_idle(self, n_nodes: usize, slots_per_node: u32) -> bool {
        n_nodes >= self.num_nodes as usize
            && self
                .packed_ranks
                .map_or(true, |ranks| ranks <= slots_per_node)
    }

    /// Whether it fits what is free now: `free_slots[node]` per node, of
    /// `slots_per_node` each.
    pub fn fits_free(self, free_slots: impl Iterator<Item = u32>, slots_per_node: u32) -> bool {
        let needed = self.packed_ranks.unwrap_or(slots_per_node);
        if needed > slots_per_node {
            return false;
        }
        free_slots.filter(|free| *free >= needed).count() >= self.num_nodes as usize
    }
}

/// The tasks that wait, by need, in submission order within a need.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    by_need: BTreeMap<Need, BTreeSet<(u64, TaskId)>>,
    of_task: HashMap<TaskId, (Need, u64)>,
    n_seen: u64,
}

impl Waiting {
    pub(crate) fn submitted(&mut self, tasks: &[TaskSubmission]) {
        for task in tasks {
            let Ok(resources) = protocol::validate(&task.resources) else {
                continue;
            };
            if self.of_task.contains_key(&task.task_id) {
                continue;
            }
            let need = Need {
                num_nodes: resources.num_nodes,
                packed_ranks: (!resources.exclusive).then_some(resources.ranks_per_node),
            };
            self.n_seen += 1;
            self.by_need
                .entry(need)
                .or_default()
                .insert((self.n_seen, task.task_id));
            self.of_task.insert(task.task_id, (need, self.n_seen));
        }
    }

    /// The task was sent to a manager, or got its result.
    pub(crate) fn left(&mut self, task_id: TaskId) {
        let Some((need, order)) = self.of_task.remove(&task_id) else {
            return;
        };
        if let Some(set) = self.by_need.get_mut(&need) {
            set.remove(&(order, task_id));
            if set.is_empty() {
                self.by_need.remove(&need);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.of_task.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.of_task.len()
    }

    /// The oldest waiting task whose need satisfies `fits`.
    pub(crate) fn first_fitting(&self, mut fits: impl FnMut(Need) -> bool) -> Option<TaskId> {
        self.by_need
            .iter()
            .filter(|(need, _)| fits(**need))
            .filter_map(|(_, set)| set.first())
            .min()
            .map(|(_, task_id)| *task_id)
    }
}

/// A waiting task and a manager that could start it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stranded {
    pub task_id: TaskId,
    pub manager: usize,
    pub manager_id: ManagerId,
}

impl Pair {
    /// Every live manager core's `validate()`, and the interchange core's.
    pub fn validate(&self) -> Result<(), String> {
        for (manager, slot) in self.managers.iter().enumerate() {
            if slot.life == ManagerLife::Alive {
                slot.core
                    .validate()
                    .map_err(|message| format!("manager {manager}: {message}"))?;
            }
        }
        self.interchange
            .validate()
            .map_err(|message| format!("interchange: {message}"))
    }

    /// Emptiness check, after a scenario: no problem was recorded, no
    /// client message and no trace entry was left unread, and every core's
    /// books are consistent.
    pub fn check_quiet(&self) -> Result<(), String> {
        if let Some(problem) = self.problems.first() {
            return Err(format!(
                "{} problem(s), the first: {problem}",
                self.problems.len()
            ));
        }
        for (client, slot) in self.clients.iter().enumerate() {
            if let Some(message) = slot.inbox.front() {
                return Err(format!("client {client} has an unread message {message:?}"));
            }
        }
        if let Some(seen) = self.seen.front() {
            return Err(format!("unread trace entry {seen:?}"));
        }
        self.validate()
    }

    /// A waiting task that a live, registered manager could start, the
    /// manager being entirely idle (in its own core and in the
    /// interchange's view) and neither held nor draining.
    pub fn idle_manager_fitting(&self) -> Option<Stranded> {
        if self.waiting.is_empty() {
            return None;
        }
        let views = self.interchange.managers_view();
        for (manager, slot) in self.managers.iter().enumerate() {
            if slot.life != ManagerLife::Alive
                || !slot.core.is_registered()
                || slot.core.n_running() > 0
            {
                continue;
            }
            let idle_there = views.iter().any(|view| {
                view.manager_id == slot.manager_id
                    && view.n_running_tasks == 0
                    && !view.held
                    && !view.draining
            });
            if !idle_there {
                continue;
            }
            let allocator = slot.core.allocator();
            let (n_nodes, slots) = (allocator.n_nodes(), allocator.slots_per_node());
            if let Some(task_id) = self
                .waiting
                .first_fitting(|need| need.fits_idle(n_nodes, slots))
            {
                return Some(Stranded {
                    task_id,
                    manager,
                    manager_id: slot.manager_id,
                });
            }
        }
        None
    }

    /// A waiting task that fits the free slots of a live, registered
    /// manager that `status` shows neither reserved, held nor draining.
    pub fn unreserved_manager_fitting(&self, status: &StatusReport) -> Option<Stranded> {
        if self.waiting.is_empty() {
            return None;
        }
        for (manager, slot) in self.managers.iter().enumerate() {
            if slot.life != ManagerLife::Alive || !slot.core.is_registered() {
                continue;
            }
            let kept = status.managers.iter().any(|info| {
                info.manager_id == slot.manager_id
                    && (info.reserved_for.is_some() || info.held || info.draining)
            });
            if kept {
                continue;
            }
            let allocator = slot.core.allocator();
            let fits = |need: Need| {
                need.fits_free(
                    (0..allocator.n_nodes()).map(|node| allocator.free_slots_on(node)),
                    allocator.slots_per_node(),
                )
            };
            if let Some(task_id) = self.waiting.first_fitting(fits) {
                return Some(Stranded {
                    task_id,
                    manager,
                    manager_id: slot.manager_id,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ResourceRequest;

    fn submission(number: u128, num_nodes: u32, packed_ranks: Option<u32>) -> TaskSubmission {
        let mut resources = ResourceRequest::new();
        resources.insert("num_nodes", num_nodes);
        if let Some(ranks) = packed_ranks {
            resources.insert("ranks_per_node", ranks);
            resources.insert("exclusive", false);
        }
        TaskSubmission {
            resources,
            ..TaskSubmission::new(TaskId::from_u128(number), "true".to_owned())
        }
    }

    #[test]
    fn the_oldest_waiting_task_that_fits_is_found_until_it_leaves() {
        let mut waiting = Waiting::default();
        waiting.submitted(&[
            submission(1, 5, None),
            submission(2, 2, Some(3)),
            submission(3, 2, None),
        ]);
        // A task with an invalid specification is refused, never waits.
        waiting.submitted(&[submission(4, 0, None)]);
        assert_eq!(waiting.len(), 3);
        let idle = |n_nodes, slots| move |need: Need| need.fits_idle(n_nodes, slots);
        assert_eq!(
            waiting.first_fitting(idle(8, 2)),
            Some(TaskId::from_u128(1))
        );
        // Packed task 2 needs 3 slots per node.
        assert_eq!(
            waiting.first_fitting(idle(2, 2)),
            Some(TaskId::from_u128(3))
        );
        assert_eq!(
            waiting.first_fitting(idle(2, 4)),
            Some(TaskId::from_u128(2))
        );
        assert_eq!(waiting.first_fitting(idle(1, 8)), None);
        waiting.left(TaskId::from_u128(2));
        waiting.left(TaskId::from_u128(2));
        assert_eq!(
            waiting.first_fitting(idle(2, 4)),
            Some(TaskId::from_u128(3))
        );
        waiting.left(TaskId::from_u128(1));
        waiting.left(TaskId::from_u128(3));
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_need_fits_free_slots_node_by_node() {
        let whole = Need {
            num_nodes: 2,
            packed_ranks: None,
        };
        let packed = Need {
            num_nodes: 2,
            packed_ranks: Some(3),
        };
        assert!(whole.fits_free([4, 0, 4].into_iter(), 4));
        assert!(!whole.fits_free([4, 3, 0].into_iter(), 4));
        assert!(packed.fits_free([3, 1, 4].into_iter(), 4));
        assert!(!packed.fits_free([2, 2, 4].into_iter(), 4));
        assert!(
            !packed.fits_free([8, 8].into_iter(), 2),
            "more ranks than slots"
        );
    }
}
