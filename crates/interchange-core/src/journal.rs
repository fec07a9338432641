//! The core's side of the interchange's journal (durable state).
//!
//! With the journal on ([`Core::recover`], also from no records at all),
//! every change of a task's state appends a journal record, framed as the
//! store writes it ([`protocol::journal::frame`]), in `tasks/`, the one
//! module that changes tasks, and a manager's registration appends one
//! here. The shell drains the frames with [`Core::take_journal`] and writes
//! them durably before it performs the outputs of the same turn, so no
//! client hears "accepted" of a task the journal could lose.
//!
//! [`Core::recover`] rebuilds a core from records: the queue in its order
//! and priority, the kept results within the configured bounds, and every
//! running task on its manager. Such a manager comes back unreachable (no
//! new task goes to it) and silent since the recovery: if it is not heard
//! from within the heartbeat threshold it is dropped as any silent manager
//! is, its tasks queued again or failed as `manager_lost` by their
//! retries. [`Core::journal_snapshot`] gives the records that rebuild the
//! core as it is, for compaction. The core does no I/O here either.

use crate::interface::{Identity, PeerId};
use crate::machine::Core;
use crate::managers::ManagerEntry;
use crate::tasks::Replay;
use crate::CoreConfig;
use protocol::{JournalRecord, ManagerId, NodeShare, Registration, TaskId};
use seam::Time;
use std::collections::BTreeMap;

/// What [`Core::recover`] rebuilt, for the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The provider's blocks the journal last recorded (in
    /// [`Core::blocks`]).
    pub n_blocks: usize,
    pub n_records: u64,
    pub n_queued: usize,
    /// Tasks running on managers that are expected back.
    pub n_running: usize,
    pub n_managers: usize,
    /// Results kept for late `watch` and `task_status`.
    pub n_finished: usize,
    /// Records that did not fit the state replayed so far (a bug if not 0).
    pub n_skipped: u64,
}

impl Core {
    /// A core rebuilt from the journal's `records`, in order, at `now`,
    /// with the journal on. See the module documentation.
    pub fn recover(
        config: CoreConfig,
        now: Time,
        records: impl IntoIterator<Item = JournalRecord>,
    ) -> (Core, Recovery) {
        let mut core = Core::new(config, now);
        core.begin_input(now);
        let mut replay = Replay::default();
        for record in records {
            core.tasks.replay(record, &mut replay);
        }
        let mut by_manager: BTreeMap<ManagerId, Vec<(TaskId, Vec<NodeShare>)>> = BTreeMap::new();
        for (task_id, (manager_id, placement)) in std::mem::take(&mut replay.placements) {
            by_manager
                .entry(manager_id)
                .or_default()
                .push((task_id, placement));
        }
        for (manager_id, mut tasks) in by_manager {
            tasks.sort_by_key(|(task_id, _)| *task_id);
            let registration = replay.registrations.remove(&manager_id);
            if let Some(registration) = &registration {
                let mut manager = ManagerEntry::new(
                    registration.clone(),
                    // Its routing id is its manager id; the identity it
                    // registered with is not recorded: its registration
                    // again from that routing id is taken (see
                    // `from_managers`, register).
                    PeerId::new(
                        manager_id.to_string().into_bytes(),
                        Identity::Unauthenticated,
                    ),
                    core.unix(now),
                    now,
                );
                manager.unreachable = true;
                core.managers.insert(manager);
                core.journal_managers
                    .insert(manager_id, registration.clone());
            }
            for (task_id, placement) in tasks {
                let placed = registration.is_some()
                    && core
                        .managers
                        .allocate(manager_id, task_id, placement, None)
                        .is_ok();
                if !placed {
                    // Its manager's registration is missing: queued again.
                    replay.n_skipped += 1;
                    core.tasks.undelivered(task_id, manager_id);
                }
            }
        }
        if !core.managers.is_empty() {
            core.next_expiry_check = Some(now.plus(core.config.heartbeat_threshold));
        }
        core.blocks = std::mem::take(&mut replay.blocks);
        core.tasks.enable_journal();
        let recovery = Recovery {
            n_blocks: core.blocks.len(),
            n_records: replay.n_records,
            n_queued: core.tasks.queue().len(),
            n_running: core
                .managers
                .iter()
                .map(|manager| manager.tasks().len())
                .sum(),
            n_managers: core.managers.len(),
            n_finished: core.tasks.n_kept_results(),
            n_skipped: replay.n_skipped,
        };
        (core, recovery)
    }

    /// Appends the journal records not yet drained, framed as the store
    /// writes them, to `into`; gives how many bytes (0 with the journal
    /// off).
    pub fn take_journal(&mut self, into: &mut Vec<u8>) -> usize {
        self.tasks.take_journal(into)
    }

    /// Gives `sink` the records that rebuild this core's durable state:
    /// the provider's blocks, the registrations of the managers that run
    /// tasks, then the tasks (`TaskTable::snapshot`). For compaction; records not yet drained
    /// with [`Core::take_journal`] must be drained first.
    pub fn journal_snapshot(&mut self, sink: &mut dyn FnMut(JournalRecord)) {
        if !self.blocks.is_empty() {
            sink(JournalRecord::Blocks {
                blocks: self.blocks.clone(),
            });
        }
        let managers = &self.managers;
        self.journal_managers
            .retain(|manager_id, _| managers.get(*manager_id).is_some());
        for (manager_id, registration) in &self.journal_managers {
            if managers
                .get(*manager_id)
                .is_some_and(|manager| !manager.tasks().is_empty())
            {
                sink(JournalRecord::ManagerRegistered {
                    registration: registration.clone(),
                });
            }
        }
        let placement_of = |task_id: TaskId, manager_id: ManagerId| {
            managers
                .get(manager_id)?
                .tasks()
                .get(&task_id)
                .map(|allocation| allocation.placement.clone())
        };
        self.tasks.snapshot(&placement_of, sink);
    }

    /// A manager registered: recorded, with the journal on, so that its
    /// running tasks can be placed on it again after a restart.
    pub(crate) fn journal_registration(&mut self, registration: &Registration) {
        if self.tasks.journaling() {
            self.tasks.journal_registration(registration);
            self.journal_managers
                .insert(registration.manager_id, registration.clone());
        }
    }
}
