//! What a manager keeps while it has lost the interchange, and what it
//! must do once it is registered again: the only owner of the held
//! results, the tasks being dropped at the interchange's request, and the
//! count of registrations.
//!
//! While registered, the results sent since the last message heard from
//! the interchange are kept as unconfirmed ([`Reattach::sent`],
//! [`Reattach::heard`]): an interchange that stops, dies or is cut off
//! right after may never have read them. While detached (the interchange
//! silent past the heartbeat threshold, or its connection dropped) the
//! manager keeps running its tasks and holds the results of those that
//! end, after the unconfirmed ones ([`Reattach::detach`]). Its next `register` lists its
//! running tasks (with their placements) and the held results
//! ([`Reattach::registration`]). The interchange's `registered` names the
//! tasks to drop: running ones are killed and not reported, held results
//! of those are forgotten, and the others are sent
//! ([`Reattach::registered`]). The first heartbeat after a registration
//! again tells the interchange that the dropped tasks have ended: it is
//! due once none is left ([`Reattach::confirm_due`]). Pure.

use protocol::{HeldTask, Registration, TaskId, TaskResult};
use std::collections::{BTreeSet, VecDeque};

/// The most unconfirmed results kept (the oldest go first): results sent
/// between two messages from the interchange.
const MAX_UNCONFIRMED: usize = 4096;

/// The re-attach state (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Reattach {
    /// Registrations sent after the first.
    attempt: u32,
    /// Results of tasks that ended while detached, in the order they ended.
    held: Vec<TaskResult>,
    /// Results sent since the last message heard from the interchange.
    unconfirmed: VecDeque<TaskResult>,
    /// Tasks being killed because the interchange dropped them; their
    /// results are not reported.
    dropping: BTreeSet<TaskId>,
    /// A registration again was answered; its confirming heartbeat has not
    /// gone yet.
    confirm_pending: bool,
}

/// What to do once registered again.
#[derive(Debug, Default)]
pub(crate) struct Registered {
    /// Running tasks to kill (dropped by the interchange).
    pub(crate) kill: Vec<TaskId>,
    /// Held results to send now.
    pub(crate) send: Vec<TaskResult>,
}

impl Reattach {
    /// The next registration again: `base` with the next attempt, the
    /// running tasks and the held results.
    pub(crate) fn registration(
        &mut self,
        base: &Registration,
        running: Vec<HeldTask>,
    ) -> Registration {
        self.attempt += 1;
        Registration {
            attempt: self.attempt,
            running_tasks: running,
            held_results: self.held.iter().map(|result| result.task_id).collect(),
            ..base.clone()
        }
    }

    /// A result was sent: unconfirmed until the interchange is heard from.
    pub(crate) fn sent(&mut self, result: &TaskResult) {
        if self.unconfirmed.len() == MAX_UNCONFIRMED {
            self.unconfirmed.pop_front();
        }
        self.unconfirmed.push_back(result.clone());
    }

    /// The interchange was heard from: the results sent before reached it.
    pub(crate) fn heard(&mut self) {
        self.unconfirmed.clear();
    }

    /// The interchange is lost: the unconfirmed results are held, as if
    /// their tasks had ended now.
    pub(crate) fn detach(&mut self) -> usize {
        let n_unconfirmed = self.unconfirmed.len();
        let mut held: Vec<TaskResult> = self.unconfirmed.drain(..).collect();
        held.append(&mut self.held);
        self.held = held;
        n_unconfirmed
    }

    /// Keeps the result of a task that ended while detached.
    pub(crate) fn hold(&mut self, result: TaskResult) {
        self.held.push(result);
    }

    pub(crate) fn n_held(&self) -> usize {
        self.held.len()
    }

    /// `registered` arrived with `drop_tasks`; `is_running` tells which
    /// tasks run here. Held results not dropped are handed out to send.
    /// Only after a registration again (`attempt` > 0) does a heartbeat
    /// confirm it.
    pub(crate) fn registered(
        &mut self,
        drop_tasks: &[TaskId],
        is_running: impl Fn(TaskId) -> bool,
    ) -> Registered {
        let dropped: BTreeSet<TaskId> = drop_tasks.iter().copied().collect();
        let kill: Vec<TaskId> = dropped
            .iter()
            .copied()
            .filter(|task_id| is_running(*task_id))
            .collect();
        self.dropping.extend(kill.iter().copied());
        let (forgotten, send): (Vec<TaskResult>, Vec<TaskResult>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|result| dropped.contains(&result.task_id));
        for result in &forgotten {
            tracing::info!(task_id = %result.task_id, "held result dropped: the interchange does not have the task running here");
        }
        self.confirm_pending |= self.attempt > 0;
        Registered { kill, send }
    }

    /// A task ended: true if it was dropped (its result is not reported).
    pub(crate) fn ended(&mut self, task_id: TaskId) -> bool {
        self.dropping.remove(&task_id)
    }

    /// Whether the confirming heartbeat is due now (no dropped task left),
    /// and if so, marks it sent.
    pub(crate) fn confirm_due(&mut self) -> bool {
        let due = self.confirm_pending && self.dropping.is_empty();
        if due {
            self.confirm_pending = false;
        }
        due
    }

    /// Whether heartbeats wait for the dropped tasks to end.
    pub(crate) fn confirm_waits(&self) -> bool {
        self.confirm_pending
    }

    /// The held results, given up (the manager stops).
    pub(crate) fn give_up(&mut self) -> usize {
        std::mem::take(&mut self.held).len()
    }
}
