//! A manager that registers again (re-attach): its registration lists the
//! tasks it runs (with their placements) and the results it holds, and the
//! core reconciles that with the tasks it has running on that manager,
//! whether it still had the manager's entry (the manager lost the
//! interchange for a while, or its connection dropped) or only tasks
//! recorded as running there (after a restart that restored them):
//!
//! - a task the manager runs that the core has running there is kept, on
//!   the placement the manager reports (its walltime estimate kept);
//! - a held result of a task the core has running there is expected: the
//!   task stays running there, taking no slots, until its result comes as
//!   any result does;
//! - a task the manager runs or holds that the core does not have running
//!   there is dropped: `registered` names it, and the manager kills it or
//!   forgets its result, and reports nothing of it;
//! - a task the core has running there that the manager does not list is
//!   lost, as when a manager leaves (queued again with retries left, else
//!   failed `manager_lost`), and is named in the drop list too, in case
//!   its dispatch is still on its way to the manager.
//!
//! A manager that registered again takes no new task until its first
//! heartbeat (`ManagerEntry::reattaching`), which it sends once the
//! dropped tasks have ended: their nodes are free then, and a register it
//! sent twice is not mistaken for a list of what it runs after new tasks.

use crate::machine::Core;
use crate::managers::ManagerEntry;
use crate::tasks::{Loss, Lost};
use protocol::{ErrorKind, HeldTask, ManagerId, TaskId};
use seam::Time;
use std::collections::{BTreeMap, BTreeSet};

/// What a registration's reconciliation decided for the manager.
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    /// Tasks the manager must kill or forget, without reporting them.
    pub(crate) drop_tasks: Vec<TaskId>,
    /// Kept tasks a client asked to cancel: `cancel_task` again (the first
    /// may have been lost with the connection).
    pub(crate) cancel: Vec<TaskId>,
}

impl Core {
    /// Reconciles what a manager that just registered (its new entry in
    /// the table, with no task) reports with what the core has running on
    /// it: its `previous` entry's tasks, or, with `look_up`, the tasks the
    /// task table has running there. See the module documentation.
    pub(crate) fn reconcile(
        &mut self,
        now: Time,
        manager_id: ManagerId,
        previous: Option<ManagerEntry>,
        running: Vec<HeldTask>,
        held: Vec<TaskId>,
        look_up: bool,
    ) -> Reconciled {
        // What the core had there, with each task's expected end.
        let had: BTreeMap<TaskId, Option<Time>> = match &previous {
            Some(previous) => previous
                .tasks()
                .iter()
                .map(|(task_id, allocation)| (*task_id, allocation.expected_end))
                .collect(),
            None if look_up => self
                .tasks
                .running_on(manager_id)
                .into_iter()
                .map(|task_id| (task_id, None))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut reconciled = Reconciled::default();
        let mut kept = BTreeSet::new();
        for HeldTask { task_id, placement } in running {
            let Some((cancel_requested, walltime)) = self
                .tasks
                .running_there(task_id, manager_id)
                .filter(|_| !kept.contains(&task_id))
            else {
                reconciled.drop_tasks.push(task_id);
                continue;
            };
            let expected_end = had
                .get(&task_id)
                .copied()
                .flatten()
                .or_else(|| walltime.map(|walltime| now.plus(walltime)));
            match self
                .managers
                .allocate(manager_id, task_id, placement, expected_end)
            {
                Ok(()) => {
                    kept.insert(task_id);
                    if cancel_requested {
                        reconciled.cancel.push(task_id);
                    }
                }
                Err(error) => {
                    tracing::warn!(manager_id = %manager_id, task_id = %task_id, %error, "a task the manager reports runs on a placement that does not fit; it is dropped");
                    reconciled.drop_tasks.push(task_id);
                }
            }
        }
        for task_id in held {
            let expected = !kept.contains(&task_id)
                && self.tasks.running_there(task_id, manager_id).is_some()
                && self
                    .managers
                    .allocate(manager_id, task_id, Vec::new(), None)
                    .is_ok();
            if expected {
                kept.insert(task_id);
            } else {
                reconciled.drop_tasks.push(task_id);
            }
        }
        // What the core had there (or a placement refused above) and the
        // manager did not bring back is lost.
        let candidates: BTreeSet<TaskId> = had
            .keys()
            .chain(reconciled.drop_tasks.iter())
            .copied()
            .collect();
        let lost: Vec<TaskId> = candidates
            .into_iter()
            .filter(|task_id| {
                !kept.contains(task_id) && self.tasks.running_there(*task_id, manager_id).is_some()
            })
            .collect();
        if !lost.is_empty() {
            let (description, block_id) = match self.managers.get(manager_id) {
                Some(manager) => (manager.describe(), manager.block_id.clone()),
                None => (format!("manager {manager_id}"), String::new()),
            };
            let message = format!("task lost: {description} registered again without it");
            let loss = Loss {
                manager_id,
                block_id: &block_id,
                kind: ErrorKind::ManagerLost,
                message: &message,
                may_retry: self.shutdown_deadline.is_none(),
            };
            let mut deliveries = Vec::new();
            for task_id in &lost {
                if !reconciled.drop_tasks.contains(task_id) {
                    reconciled.drop_tasks.push(*task_id);
                }
                if let Lost::Failed(delivery) = self.tasks.lose(*task_id, &loss) {
                    deliveries.push(delivery);
                }
            }
            for delivery in deliveries {
                self.deliver(delivery);
            }
        }
        if previous.is_some() || !kept.is_empty() || !reconciled.drop_tasks.is_empty() {
            tracing::info!(
                manager_id = %manager_id,
                n_kept = kept.len(),
                n_lost = lost.len(),
                n_dropped = reconciled.drop_tasks.len(),
                "manager re-attached: tasks reconciled"
            );
        }
        reconciled
    }
}
