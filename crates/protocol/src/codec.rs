//! The msgpack codec: the only caller of `rmp-serde` in the workspace.
//!
//! Messages are encoded as maps with named fields (`to_vec_named`), so that
//! any msgpack library can read them by name. Decoding never panics: any byte
//! string gives either a message or a [`DecodeError`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// A frame that is not a valid message of the expected kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {n_bytes}-byte message: {reason}")]
pub struct DecodeError {
    pub n_bytes: usize,
    pub reason: String,
}

/// Encodes a message as a msgpack map with named fields.
///
/// Encoding the types of this crate cannot fail (every map key is a string
/// and every value has a msgpack form), so this returns bytes directly.
///
/// The message is written into a buffer kept by the thread from one call
/// to the next, then copied out at its exact size: one allocation and one
/// copy, instead of growing a new vector by doubling (a copy at each
/// step) for every message.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    thread_local! {
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            let bytes = encode_named_into(&mut buffer, message);
            if buffer.capacity() > MAX_KEPT_BUFFER {
                // A rare large message: do not keep its buffer for ever.
                *buffer = Vec::new();
            }
            bytes
        }
        // Only if serializing a message encoded another (no type here does).
        Err(_) => encode_named_into(&mut Vec::new(), message),
    })
}

/// Largest encode buffer a thread keeps between messages.
const MAX_KEPT_BUFFER: usize = 1 << 20;

/// Writes `message` into `buffer` (empty), and returns a copy of it.
fn encode_named_into<T: Serialize>(buffer: &mut Vec<u8>, message: &T) -> Vec<u8> {
    // An error is unreachable for this crate's types; the empty frame it
    // would give is refused by the peer as undecodable rather than crashing here.
    match rmp_serde::encode::write_named(buffer, message) {
        Ok(()) => buffer.as_slice().to_vec(),
        Err(_) => Vec::new(),
    }
}

/// Encodes a record compactly: a msgpack array of its fields in
/// declaration order, without their names (the interchange's journal,
/// where size and speed matter and the reader is always this crate).
pub fn encode_compact<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_compact_into(&mut bytes, record);
    bytes
}

/// [`encode_compact`], appending to `buffer` (no allocation of its own).
pub fn encode_compact_into<T: Serialize>(buffer: &mut Vec<u8>, record: &T) {
    let start = buffer.len();
    if rmp_serde::encode::write(buffer, record).is_err() {
        // Unreachable for this crate's types, as in `encode`.
        buffer.truncate(start);
    }
}

/// Decodes one message.
///
/// The message enums are read in one pass when `type` is their first key
/// (`crate::tagged`). A frame that does not decode that way is decoded
/// again as serde's derive of internally tagged enums reads it, whose
/// result is the one returned: the same message, or the same error, as
/// before that fast path existed. (One leniency is new: in a struct inside
/// a message, an integer key is read as a field's index, as msgpack's
/// reader does for a struct on its own, and an unknown index is ignored
/// as an unknown name is.)
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes)
        .or_else(|_| crate::tagged::buffered(|| rmp_serde::from_slice(bytes)))
        .map_err(|error| DecodeError {
            n_bytes: bytes.len(),
            reason: error.to_string(),
        })
}

/// The part of a handshake every protocol version agrees on: the message
/// type and the sender's protocol version. Used to refuse a peer of another
/// version with a clear message even when the rest of its handshake does
/// not decode.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Handshake {
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(default)]
    pub protocol_version: Option<u32>,
}

/// Reads only `type` and `protocol_version` from a message, ignoring every
/// other field. `None` when the bytes are not a msgpack map with a `type`.
pub fn peek_handshake(bytes: &[u8]) -> Option<Handshake> {
    rmp_serde::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::*;
    use crate::{ManagerId, ResourceRequest, TaskId, TaskResources};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn sample_result() -> TaskResult {
        TaskResult {
            task_id: TaskId::from_u128(7),
            state: TaskState::Failed,
            exit_code: Some(3),
            signal: None,
            error: Some(TaskError {
                kind: ErrorKind::ExitCode,
                message: "exited with code 3".into(),
            }),
            manager_id: Some(ManagerId::from_u128(9)),
            block_id: Some("block-0".into()),
            nodes: vec!["n1".into(), "n2".into()],
            stdout_path: Some("/tmp/out".into()),
            stderr_path: None,
            stdout_tail: b"hello\n".to_vec(),
            stderr_tail: vec![0, 159, 146, 150],
            start_time: Some(1.5),
            end_time: Some(2.25),
            output: Some(vec![0x80, 0x04, 0xff, b'.']),
        }
    }

    #[test]
    fn messages_round_trip() {
        let submission = TaskSubmission {
            task_id: TaskId::from_u128(1),
            command: "echo hi".into(),
            resources: ResourceRequest::new().with("num_nodes", 2),
            env: BTreeMap::from([("A".into(), "1".into())]),
            cwd: None,
            stdout: Some("out.txt".into()),
            stderr: None,
            input: Some(vec![0, 1, 0xfe, 0xff]),
        };
        let client_messages = vec![
            FromClient::Hello {
                protocol_version: 1,
                client_version: "0.1.0".into(),
            },
            FromClient::Submit {
                request_id: 4,
                tasks: vec![submission],
            },
            FromClient::Command {
                request_id: 5,
                command: Command::Hold {
                    manager_id: ManagerId::from_u128(2),
                },
            },
            FromClient::Command {
                request_id: 6,
                command: Command::Shutdown,
            },
        ];
        for message in client_messages {
            let bytes = encode(&message);
            assert_eq!(decode::<FromClient>(&bytes), Ok(message));
        }
        let to_manager = ToManager::RunTasks {
            tasks: vec![TaskDispatch {
                task_id: TaskId::from_u128(3),
                command: "true".into(),
                resources: TaskResources::serial(),
                placement: vec![crate::NodeShare { node: 0, slots: 1 }],
                env: BTreeMap::new(),
                cwd: Some("/".into()),
                stdout: None,
                stderr: None,
                input: Some(vec![0xc1]),
            }],
        };
        assert_eq!(decode::<ToManager>(&encode(&to_manager)), Ok(to_manager));
        let results = FromManager::Results {
            results: vec![sample_result()],
        };
        assert_eq!(decode::<FromManager>(&encode(&results)), Ok(results));
        assert_eq!(
            decode::<FromManager>(&encode(&FromManager::Heartbeat)),
            Ok(FromManager::Heartbeat)
        );
    }

    #[test]
    fn tails_are_msgpack_bin() {
        let bytes = encode(&sample_result());
        // bin8 marker (0xc4) with length 6 followed by "hello\n"
        let needle = [0xc4, 6, b'h', b'e', b'l', b'l', b'o', b'\n'];
        assert!(bytes.windows(needle.len()).any(|window| window == needle));
    }

    #[test]
    fn payloads_are_msgpack_bin_and_absent_means_none() {
        let bytes = encode(&sample_result());
        let needle = [0xc4, 4, 0x80, 0x04, 0xff, b'.'];
        assert!(bytes.windows(needle.len()).any(|window| window == needle));
        let mut result = sample_result();
        result.output = None;
        let message = FromManager::Results {
            results: vec![result],
        };
        assert_eq!(decode::<FromManager>(&encode(&message)), Ok(message));
    }

    #[test]
    fn limits_absent_from_the_handshake_mean_the_defaults() {
        #[derive(Serialize)]
        struct OldRegistered {
            #[serde(rename = "type")]
            message_type: &'static str,
            interchange_version: &'static str,
            heartbeat_period: f64,
        }
        let bytes = rmp_serde::to_vec_named(&OldRegistered {
            message_type: "registered",
            interchange_version: "0.1.0",
            heartbeat_period: 30.0,
        })
        .expect("encode");
        assert_eq!(
            decode::<ToManager>(&bytes),
            Ok(ToManager::Registered {
                interchange_version: "0.1.0".into(),
                heartbeat_period: 30.0,
                max_task_output_bytes: DEFAULT_MAX_TASK_OUTPUT_BYTES,
                drop_tasks: Vec::new(),
            })
        );
    }

    #[test]
    fn handshake_of_another_version_is_readable() {
        #[derive(Serialize)]
        struct FutureRegister {
            #[serde(rename = "type")]
            message_type: &'static str,
            protocol_version: u32,
            something_new: Vec<u8>,
        }
        let bytes = rmp_serde::to_vec_named(&FutureRegister {
            message_type: "register",
            protocol_version: 99,
            something_new: vec![1, 2],
        })
        .expect("encode");
        assert!(decode::<FromManager>(&bytes).is_err());
        assert_eq!(
            peek_handshake(&bytes),
            Some(Handshake {
                message_type: "register".into(),
                protocol_version: Some(99)
            })
        );
    }

    #[test]
    fn unknown_type_is_an_error() {
        #[derive(Serialize)]
        struct Strange {
            #[serde(rename = "type")]
            message_type: &'static str,
        }
        let bytes = rmp_serde::to_vec_named(&Strange {
            message_type: "launch_missiles",
        })
        .expect("encode");
        let error = decode::<FromClient>(&bytes).expect_err("must fail");
        assert!(error.reason.contains("launch_missiles"), "{error}");
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<FromClient>(&bytes);
            let _ = decode::<ToClient>(&bytes);
            let _ = decode::<FromManager>(&bytes);
            let _ = decode::<ToManager>(&bytes);
            let _ = peek_handshake(&bytes);
        }

        #[test]
        fn decoding_mutated_messages_never_panics(
            position in 0usize..200,
            value in any::<u8>(),
            cut in 0usize..200,
        ) {
            let mut bytes = encode(&FromManager::Results { results: vec![sample_result()] });
            let index = position % bytes.len();
            bytes[index] = value;
            bytes.truncate(bytes.len().saturating_sub(cut % 8));
            let _ = decode::<FromManager>(&bytes);
        }

        #[test]
        fn results_round_trip(
            exit_code in proptest::option::of(any::<i32>()),
            tail in proptest::collection::vec(any::<u8>(), 0..300),
            nodes in proptest::collection::vec("[a-z0-9-]{1,12}", 0..5),
            output in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        ) {
            let mut result = sample_result();
            result.exit_code = exit_code;
            result.stdout_tail = tail;
            result.nodes = nodes;
            result.output = output;
            let message = FromManager::Results { results: vec![result] };
            prop_assert_eq!(decode::<FromManager>(&encode(&message)), Ok(message));
        }
    }
}
