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
//!
//! The interchange's core writes its records as they happen through
//! [`RecordRef`], which borrows what it records from the core's own state
//! (nothing is cloned) and encodes to the same bytes as the
//! [`JournalRecord`] it stands for, straight into a buffer of frames
//! ([`frame`]); [`next_frame`] reads them back.

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

/// The bytes before each record in a segment: its payload's length and
/// CRC-32 (both little-endian `u32`).
pub const FRAME_HEADER_BYTES: usize = 8;
/// A frame longer than this is taken as damage, not as a record.
pub const MAX_FRAME_BYTES: u32 = 1 << 30;

/// Appends one frame holding `record` (a [`JournalRecord`] or a
/// [`RecordRef`]) to `buffer`: length, CRC-32 of the payload, payload.
pub fn frame<T: Serialize>(buffer: &mut Vec<u8>, record: &T) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    crate::codec::encode_compact_into(buffer, record);
    let payload = &buffer[start + FRAME_HEADER_BYTES..];
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    buffer[start..start + 4].copy_from_slice(&length.to_le_bytes());
    buffer[start + 4..start + FRAME_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
}

/// The payload of the frame at the start of `bytes` and the frame's whole
/// length; `None` if the frame is incomplete, too long or fails its CRC.
pub fn next_frame(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let header = bytes.get(..FRAME_HEADER_BYTES)?;
    let word = |at: usize| {
        let mut word = [0u8; 4];
        word.copy_from_slice(&header[at..at + 4]);
        u32::from_le_bytes(word)
    };
    let (length, crc) = (word(0), word(4));
    if length > MAX_FRAME_BYTES {
        return None;
    }
    let end = FRAME_HEADER_BYTES + length as usize;
    let payload = bytes.get(FRAME_HEADER_BYTES..end)?;
    (crc32fast::hash(payload) == crc).then_some((payload, end))
}

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

/// A [`JournalRecord`] that borrows its fields: what the core records as
/// a change happens, without cloning the task or result it keeps. It
/// encodes to the same bytes as the owned record (the variants and fields
/// in the same order; a test checks it).
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordRef<'a> {
    Submitted(QueuedTaskRef<'a>),
    Started {
        task_id: TaskId,
        manager_id: ManagerId,
        placement: &'a [NodeShare],
    },
    CancelRequested {
        task_id: TaskId,
    },
    Requeued {
        task_id: TaskId,
        retry_used: bool,
    },
    Finished {
        result: &'a TaskResult,
        owner: Option<&'a str>,
    },
}

/// A [`QueuedTask`] that borrows its fields (see [`RecordRef`]).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct QueuedTaskRef<'a> {
    pub task_id: TaskId,
    pub command: &'a str,
    pub resources: &'a TaskResources,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a str>,
    pub stdout: Option<&'a str>,
    pub stderr: Option<&'a str>,
    #[serde(with = "serde_bytes")]
    pub input: Option<&'a [u8]>,
    pub sequence: u64,
    pub attempts: u32,
    pub submitted_at: UnixTime,
    pub owner: Option<&'a str>,
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
    fn borrowed_records_encode_as_the_owned_ones() {
        let task_id = TaskId::from_u128(7);
        let resources = TaskResources::serial();
        let env = BTreeMap::from([("A".to_owned(), "b".to_owned())]);
        let placement = vec![NodeShare { node: 1, slots: 2 }];
        let mut result = TaskResult::new(task_id, TaskState::Completed);
        result.stdout_tail = "out".into();
        result.nodes = vec!["n1".into()];
        let pairs = [
            (
                JournalRecord::Submitted(QueuedTask {
                    task_id,
                    command: "true".into(),
                    resources: resources.clone(),
                    env: env.clone(),
                    cwd: Some("/w".into()),
                    stdout: None,
                    stderr: Some("/e".into()),
                    input: Some(vec![9, 0]),
                    sequence: 3,
                    attempts: 1,
                    submitted_at: 2.5,
                    owner: Some("alice".into()),
                    data_bytes: 12,
                }),
                RecordRef::Submitted(QueuedTaskRef {
                    task_id,
                    command: "true",
                    resources: &resources,
                    env: &env,
                    cwd: Some("/w"),
                    stdout: None,
                    stderr: Some("/e"),
                    input: Some(&[9, 0]),
                    sequence: 3,
                    attempts: 1,
                    submitted_at: 2.5,
                    owner: Some("alice"),
                    data_bytes: 12,
                }),
            ),
            (
                JournalRecord::Started {
                    task_id,
                    manager_id: ManagerId::from_u128(2),
                    placement: placement.clone(),
                },
                RecordRef::Started {
                    task_id,
                    manager_id: ManagerId::from_u128(2),
                    placement: &placement,
                },
            ),
            (
                JournalRecord::CancelRequested { task_id },
                RecordRef::CancelRequested { task_id },
            ),
            (
                JournalRecord::Requeued {
                    task_id,
                    retry_used: false,
                },
                RecordRef::Requeued {
                    task_id,
                    retry_used: false,
                },
            ),
            (
                JournalRecord::Finished {
                    result: result.clone(),
                    owner: None,
                },
                RecordRef::Finished {
                    result: &result,
                    owner: None,
                },
            ),
        ];
        for (owned, borrowed) in pairs {
            assert_eq!(encode_compact(&borrowed), encode_compact(&owned));
        }
    }

    #[test]
    fn frames_read_back_and_a_damaged_one_does_not() {
        let mut buffer = Vec::new();
        let record = JournalRecord::CancelRequested {
            task_id: TaskId::from_u128(5),
        };
        frame(&mut buffer, &record);
        frame(&mut buffer, &record);
        let (payload, length) = next_frame(&buffer).expect("a whole frame");
        assert_eq!(decode::<JournalRecord>(payload), Ok(record));
        assert_eq!(length * 2, buffer.len());
        assert!(next_frame(&buffer[..length - 1]).is_none());
        let last = buffer.len() - 1;
        buffer[last] ^= 1;
        assert!(next_frame(&buffer[length..]).is_none());
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
