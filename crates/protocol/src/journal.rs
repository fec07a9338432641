//! The interchange's journal records: what it writes under its run
//! directory so that a restarted interchange resumes where it stopped.
//!
//! Every record states one change of the interchange's durable state (a
//! task accepted, started, queued again, finished; a manager that runs
//! tasks registered; the provider's blocks). Replaying the records in order rebuilds the queue in
//! its order and priority, the running tasks on their managers and the
//! kept results. The core emits them; the interchange's store frames them
//! (length, CRC-32) into segment files. `proto/JOURNAL.md` is the normative
//! description of the files and of [`JOURNAL_VERSION`].
//!
//! Records are encoded with [`crate::codec::encode_compact`]: msgpack
//! arrays of their fields in declaration order, the first the record's
//! `type` (smaller and faster than the wire's named maps; the journal is
//! read only by this crate), and decoded with [`crate::codec::decode`].

use crate::ids::{ManagerId, TaskId};
use crate::messages::{BlockInfo, NodeShare, Registration, TaskResult, UnixTime};
use crate::spec::TaskResources;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the journal's format. A run directory whose journal has
/// another version is refused at start (start with `--fresh`); a change
/// that an older reader cannot replay exactly bumps it.
pub const JOURNAL_VERSION: u32 = 1;

/// The first bytes of every journal segment file, followed by the
/// journal version as a little-endian `u32`.
pub const JOURNAL_MAGIC: [u8; 8] = *b"rhtexjnl";

/// One change of the interchange's durable state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JournalRecord {
    /// A task was accepted and queued.
    Submitted(QueuedTask),
    /// A queued task was sent to a manager, on these nodes.
    Started {
        task_id: TaskId,
        manager_id: ManagerId,
        placement: Vec<NodeShare>,
    },
    /// A client asked to cancel a running task.
    CancelRequested { task_id: TaskId },
    /// A running task went back to the queue in its old place: its
    /// manager was lost (`retry_used`), or its dispatch was never
    /// delivered (no retry used).
    Requeued { task_id: TaskId, retry_used: bool },
    /// A task ended (or was refused at submission) with this result.
    Finished {
        result: TaskResult,
        /// The client identity that submitted the task (see
        /// [`QueuedTask::owner`]).
        #[serde(default)]
        owner: Option<String>,
    },
    /// A manager registered; replay keeps it only while it runs tasks.
    ManagerRegistered { registration: Registration },
    /// The provider's blocks changed: every block it knows, as `status`
    /// shows them (the last such record holds). A restarted interchange
    /// adopts the live ones (asks the batch system about their jobs)
    /// instead of submitting new ones.
    Blocks { blocks: Vec<BlockInfo> },
}

/// A task as it was accepted: its validated specification and its place in
/// the queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueuedTask {
    pub task_id: TaskId,
    pub command: String,
    pub resources: TaskResources,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub stdout: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
    #[serde(default, with = "serde_bytes")]
    pub input: Option<Vec<u8>>,
    /// Its arrival number: with its priority, its place in the queue.
    pub sequence: u64,
    /// Times it was already sent to a manager (written by compaction; 0
    /// when it is first accepted).
    #[serde(default)]
    pub attempts: u32,
    /// When it was accepted (wall clock).
    pub submitted_at: UnixTime,
    /// The client identity that submitted it (`None`: unauthenticated,
    /// `--insecure`): only it and the admins may reach the task.
    #[serde(default)]
    pub owner: Option<String>,
    /// What its command, environment, paths and resources count against
    /// the interchange's `max_queued_task_mib` (as when it was accepted).
    #[serde(default)]
    pub data_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode_compact};
    use crate::messages::TaskState;

    #[test]
    fn records_round_trip_through_the_codec() {
        let task_id = TaskId::from_u128(1);
        let records = [
            JournalRecord::Submitted(QueuedTask {
                task_id,
                command: "hostname".into(),
                resources: TaskResources::serial(),
                env: BTreeMap::from([("A".into(), "b".into())]),
                cwd: None,
                stdout: Some("/tmp/out".into()),
                stderr: None,
                input: Some(vec![0, 1, 255]),
                sequence: 42,
                attempts: 0,
                submitted_at: 1.5,
                owner: Some("alice".into()),
                data_bytes: 300,
            }),
            JournalRecord::Started {
                task_id,
                manager_id: ManagerId::from_u128(2),
                placement: vec![NodeShare { node: 0, slots: 4 }],
            },
            JournalRecord::CancelRequested { task_id },
            JournalRecord::Requeued {
                task_id,
                retry_used: true,
            },
            JournalRecord::Finished {
                result: TaskResult::new(task_id, TaskState::Completed),
                owner: None,
            },
        ];
        for record in records {
            let bytes = encode_compact(&record);
            assert_eq!(decode::<JournalRecord>(&bytes), Ok(record));
        }
    }

    #[test]
    fn a_record_of_an_unknown_type_does_not_decode() {
        #[derive(Serialize)]
        struct Other {
            #[serde(rename = "type")]
            kind: &'static str,
        }
        let bytes = encode_compact(&Other { kind: "moved" });
        assert!(decode::<JournalRecord>(&bytes).is_err());
    }
}
