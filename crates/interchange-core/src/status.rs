//! What the core shows: `status` and `task_status` for clients (with why
//! each queued task waits), and the read-only views a block provider
//! scales by ([`QueueDemand`], [`ManagerView`]).

use crate::interface::Identity;
use crate::machine::Core;
use crate::queue::Shape;
use crate::tasks::TaskView;
use protocol::{
    ManagerId, ManagerInfo, StatusReport, TaskId, TaskState, TaskStatusInfo, UserCounts,
    WaitingGroup, PROTOCOL_VERSION, RHTEX_VERSION,
};
use seam::seconds_text;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the queue asks of blocks, for a provider deciding how many to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueDemand {
    /// Tasks waiting in the queue.
    pub n_queued_tasks: u64,
    /// The sum of `num_nodes` over the queued tasks (an upper bound on the
    /// nodes that would start them all at once).
    pub n_queued_nodes: u64,
    /// The largest `num_nodes` of a queued task (0 with an empty queue).
    pub max_task_nodes: u32,
}

/// One registered manager as a provider sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagerView {
    pub manager_id: ManagerId,
    pub block_id: String,
    pub n_nodes: u32,
    pub n_running_tasks: u32,
    pub draining: bool,
    pub held: bool,
}

impl Core {
    /// What the queued tasks need.
    pub fn demand(&self) -> QueueDemand {
        let mut demand = QueueDemand::default();
        for (shape, n_tasks) in self.tasks.queue().shapes() {
            demand.n_queued_tasks += n_tasks as u64;
            demand.n_queued_nodes += u64::from(shape.num_nodes) * n_tasks as u64;
            demand.max_task_nodes = demand.max_task_nodes.max(shape.num_nodes);
        }
        demand
    }

    /// Every registered manager.
    pub fn managers_view(&self) -> Vec<ManagerView> {
        self.managers
            .iter()
            .map(|manager| ManagerView {
                manager_id: manager.manager_id,
                block_id: manager.block_id.clone(),
                n_nodes: manager.n_nodes,
                n_running_tasks: u32::try_from(manager.tasks().len()).unwrap_or(u32::MAX),
                draining: manager.draining,
                held: manager.held,
            })
            .collect()
    }

    /// Why a queued task of this shape waits; `task_id` names the task
    /// when one task is meant, so that the reservation's holder is told
    /// which manager it holds and when it expects to start. The holder's
    /// id is named only to its owner and the admins (`viewer`).
    fn waiting_reason(&self, shape: Shape, task_id: Option<TaskId>, viewer: &Identity) -> String {
        let slots_needed = shape.ranks_per_node;
        let mut any_manager = false;
        let mut most_slots: u32 = 0;
        let mut largest_suitable: u32 = 0;
        let mut any_suitable_accepting = false;
        for manager in self.managers.iter() {
            any_manager = true;
            most_slots = most_slots.max(manager.slots_per_node);
            if slots_needed.map_or(true, |slots| manager.slots_per_node >= slots) {
                largest_suitable = largest_suitable.max(manager.n_nodes);
                if manager.n_nodes >= shape.num_nodes && manager.accepts_tasks() {
                    any_suitable_accepting = true;
                }
            }
        }
        let base = match slots_needed {
            _ if !any_manager => return "no manager connected".to_owned(),
            Some(slots) if most_slots < slots => {
                return format!(
                    "needs {slots} slots per node; the most slots per node of a connected manager is {most_slots}"
                )
            }
            None if largest_suitable < shape.num_nodes => {
                return format!(
                    "needs {}; the largest connected manager has {largest_suitable}",
                    count_nodes(shape.num_nodes)
                )
            }
            Some(slots) if largest_suitable < shape.num_nodes => {
                return format!(
                    "needs {shape}; the largest connected manager with {slots} slots per node has {}",
                    count_nodes(largest_suitable)
                )
            }
            _ if !any_suitable_accepting => {
                return format!("needs {shape}; every manager that large is held or draining")
            }
            None => format!(
                "waiting for {} free {}",
                shape.num_nodes,
                if shape.num_nodes == 1 { "node" } else { "nodes" }
            ),
            Some(_) => format!("waiting for {shape}"),
        };
        let Some(reservation) = self.matcher.reservation() else {
            return base;
        };
        if task_id == Some(reservation.task_id) {
            let expected = match reservation.shadow {
                None => {
                    "its start time is unknown: a task running there has no walltime".to_owned()
                }
                Some(at) if at > self.now => format!(
                    "expected to start in about {} s",
                    seconds_text(Duration::from_secs(self.now.until(at).as_secs()))
                ),
                Some(_) => "expected to start as soon as the tasks running there end".to_owned(),
            };
            format!(
                "{base}; manager {} is reserved for it, {expected}",
                reservation.manager_id
            )
        } else {
            let fits_there = self
                .managers
                .get(reservation.manager_id)
                .is_some_and(|manager| manager.place(shape, &Default::default()).is_some());
            if fits_there && self.may_access(viewer, reservation.task_id) {
                format!(
                    "{base}; manager {} could start it but is reserved for task {}, which is ahead in the queue",
                    reservation.manager_id, reservation.task_id
                )
            } else if fits_there {
                format!(
                    "{base}; manager {} could start it but is reserved for another user's task, \
                     which is ahead in the queue",
                    reservation.manager_id
                )
            } else {
                base
            }
        }
    }

    /// The status report as `viewer` may see it: everything but the ids of
    /// other identities' tasks.
    pub(crate) fn status(&self, viewer: &Identity) -> StatusReport {
        let managers: Vec<ManagerInfo> = self
            .managers
            .iter()
            .map(|manager| ManagerInfo {
                manager_id: manager.manager_id,
                block_id: manager.block_id.clone(),
                hostname: manager.hostname.clone(),
                launcher: manager.launcher,
                n_nodes: manager.n_nodes,
                n_free_nodes: manager.n_whole_free(),
                n_running_tasks: u32::try_from(manager.tasks().len()).unwrap_or(u32::MAX),
                held: manager.held,
                draining: manager.draining,
                registered_at: manager.registered_at,
                last_heartbeat: self.unix(manager.last_heard),
                rhtex_version: manager.rhtex_version.clone(),
                slots_per_node: manager.slots_per_node,
                reserved_for: self
                    .matcher
                    .reservation()
                    .filter(|reservation| reservation.manager_id == manager.manager_id)
                    .map(|reservation| reservation.task_id)
                    .filter(|task_id| self.may_access(viewer, *task_id)),
            })
            .collect();
        let n_running = managers
            .iter()
            .map(|manager| u64::from(manager.n_running_tasks))
            .sum();
        let mut waiting = Vec::new();
        for (shape, n_tasks) in self.tasks.queue().shapes() {
            let mut n_tasks = n_tasks as u64;
            // The reservation's holder waits for its own reason.
            if let Some(reservation) = self
                .matcher
                .reservation()
                .filter(|reservation| reservation.shape == shape)
            {
                waiting.push(WaitingGroup {
                    num_nodes: shape.num_nodes,
                    n_tasks: 1,
                    reason: self.waiting_reason(shape, Some(reservation.task_id), viewer),
                });
                n_tasks -= 1;
            }
            if n_tasks > 0 {
                waiting.push(WaitingGroup {
                    num_nodes: shape.num_nodes,
                    n_tasks,
                    reason: self.waiting_reason(shape, None, viewer),
                });
            }
        }
        StatusReport {
            interchange_version: RHTEX_VERSION.to_owned(),
            protocol_version: PROTOCOL_VERSION,
            n_queued: self.tasks.queue().len() as u64,
            n_running,
            n_completed: self.tasks.counts().n_completed,
            n_failed: self.tasks.counts().n_failed,
            n_cancelled: self.tasks.counts().n_cancelled,
            n_bad_messages: self.n_bad_messages,
            blocks: self.blocks.clone(),
            managers,
            waiting,
            users: self.user_counts(),
        }
    }

    /// Unfinished tasks by owner, by name. A pass over every task the
    /// core knows.
    fn user_counts(&self) -> Vec<UserCounts> {
        let mut counts: BTreeMap<&Identity, (u64, u64)> = BTreeMap::new();
        for (task_id, view, _) in self.tasks.list() {
            let (queued, running) = match view {
                TaskView::Queued(_) => (1, 0),
                TaskView::Running(_) => (0, 1),
                TaskView::Finished(_) => continue,
            };
            if let Some(owner) = self.tasks.owner(task_id) {
                let entry = counts.entry(owner).or_default();
                entry.0 += queued;
                entry.1 += running;
            }
        }
        counts
            .into_iter()
            .map(|(owner, (n_queued, n_running))| UserCounts {
                identity: owner.to_string(),
                n_queued,
                n_running,
            })
            .collect()
    }

    /// One task's status, for `viewer`, who may see it.
    pub(crate) fn task_status(&self, task_id: TaskId, viewer: &Identity) -> TaskStatusInfo {
        let mut info = TaskStatusInfo {
            task_id,
            state: TaskState::Unknown,
            manager_id: None,
            nodes: Vec::new(),
            waiting_reason: None,
            result: None,
        };
        match self.tasks.view(task_id) {
            None => {}
            Some(TaskView::Queued(shape)) => {
                info.state = TaskState::Queued;
                info.waiting_reason = Some(self.waiting_reason(shape, Some(task_id), viewer));
            }
            Some(TaskView::Running(manager_id)) => {
                info.state = TaskState::Running;
                info.manager_id = Some(manager_id);
            }
            Some(TaskView::Finished(result)) => {
                info.state = result.state;
                info.manager_id = result.manager_id;
                info.nodes = result.nodes.clone();
                info.result = Some(result.clone());
            }
        }
        info
    }
}

/// "1 node", "4 nodes".
fn count_nodes(n_nodes: u32) -> String {
    if n_nodes == 1 {
        "1 node".to_owned()
    } else {
        format!("{n_nodes} nodes")
    }
}
