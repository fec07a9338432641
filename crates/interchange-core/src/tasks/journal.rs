//! The task table's journal: the records its changes append, framed, to
//! a buffer the shell drains, and the records it states whole.

use super::{Extra, TaskSpec, TaskTable};
use crate::interface::Identity;
use protocol::{
    BlockInfo, JournalRecord, QueuedTask, QueuedTaskRef, RecordRef, Registration, TaskId,
    TaskResources,
};

impl TaskSpec {
    /// The task as the journal records it, borrowed (its `resources` from
    /// [`Resources::get`](super::Resources), which the caller keeps).
    pub(super) fn queued_ref<'a>(
        &'a self,
        task_id: TaskId,
        resources: &'a TaskResources,
        sequence: u64,
        attempts: u32,
        submitted_at: protocol::UnixTime,
        owner: &'a Identity,
    ) -> QueuedTaskRef<'a> {
        QueuedTaskRef {
            task_id,
            command: &self.command,
            resources,
            env: self.env(),
            cwd: self.path(|extra| &extra.cwd),
            stdout: self.path(|extra| &extra.stdout),
            stderr: self.path(|extra| &extra.stderr),
            input: self.input(),
            sequence,
            attempts,
            submitted_at,
            owner: owner.as_record(),
            data_bytes: self.data_bytes,
        }
    }

    /// The task as the journal records it.
    pub(super) fn queued(
        &self,
        task_id: TaskId,
        sequence: u64,
        attempts: u32,
        submitted_at: protocol::UnixTime,
        owner: &Identity,
    ) -> QueuedTask {
        let path = |pick: fn(&Extra) -> &Option<String>| self.path(pick).map(str::to_owned);
        QueuedTask {
            task_id,
            command: self.command.to_string(),
            resources: self.resources.get().into_owned(),
            env: self.env().clone(),
            cwd: path(|extra| &extra.cwd),
            stdout: path(|extra| &extra.stdout),
            stderr: path(|extra| &extra.stderr),
            input: self.input().map(<[u8]>::to_vec),
            sequence,
            attempts,
            submitted_at,
            owner: owner.to_record(),
            data_bytes: self.data_bytes,
        }
    }
}

impl TaskTable {
    /// From now on every change appends a journal record.
    pub(crate) fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(Frames::default);
    }

    pub(crate) fn journaling(&self) -> bool {
        self.journal.is_some()
    }

    /// Appends the journal's frames not yet drained to `into`; gives how
    /// many bytes.
    pub(crate) fn take_journal(&mut self, into: &mut Vec<u8>) -> usize {
        let Some(frames) = &mut self.journal else {
            return 0;
        };
        into.extend_from_slice(&frames.bytes);
        let n_bytes = frames.bytes.len();
        frames.bytes.clear();
        n_bytes
    }

    /// Records that a manager registered (its tasks' records follow).
    pub(crate) fn journal_registration(&mut self, registration: &Registration) {
        write_owned(
            &mut self.journal,
            &JournalRecord::ManagerRegistered {
                registration: registration.clone(),
            },
        );
    }

    /// Records the provider's blocks as they are now.
    pub(crate) fn journal_blocks(&mut self, blocks: &[BlockInfo]) {
        write_owned(
            &mut self.journal,
            &JournalRecord::Blocks {
                blocks: blocks.to_vec(),
            },
        );
    }

    /// Appends a journal record, if the journal is on.
    pub(super) fn record(&mut self, record: RecordRef<'_>) {
        write_record(&mut self.journal, &record);
    }
}

/// The journal's frames not yet drained.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    bytes: Vec<u8>,
}

/// Appends `record`, framed, if the journal is on.
pub(super) fn write_record(journal: &mut Option<Frames>, record: &RecordRef<'_>) {
    if let Some(frames) = journal {
        protocol::journal::frame(&mut frames.bytes, record);
    }
}

/// [`write_record`] for a record the core builds whole (rare ones).
pub(super) fn write_owned(journal: &mut Option<Frames>, record: &JournalRecord) {
    if let Some(frames) = journal {
        protocol::journal::frame(&mut frames.bytes, record);
    }
}
