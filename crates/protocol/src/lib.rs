//! The rhtex wire protocol.
//!
//! This is the only crate in the workspace that derives `Serialize`/`Deserialize`,
//! and [`codec`] is the only caller of `rmp-serde`. Everything that crosses a
//! socket is defined here:
//!
//! - [`messages`]: the four message enums, named by direction
//!   ([`FromClient`], [`ToClient`], [`FromManager`], [`ToManager`]).
//! - [`ids`]: newtype ids ([`TaskId`], [`ManagerId`]), UUIDs on the wire as strings.
//! - [`spec`]: resource specifications as sent ([`ResourceRequest`]) and as
//!   validated ([`TaskResources`]), with the validation rules shared by the
//!   client library and the interchange.
//! - [`limits`]: bounds on tasks and messages, and the node-name rule,
//!   shared by the client library, the interchange and the pool-manager.
//! - [`codec`]: msgpack encoding with named fields, and decoding that never panics.
//! - [`ready`]: the interchange's ready line ([`ReadyLine`]), JSON on its
//!   stdout once its sockets are bound.
//! - [`journal`]: the records of the interchange's journal under its run
//!   directory ([`JournalRecord`]; `proto/JOURNAL.md`).
//!
//! `proto/PROTOCOL.md` at the repository root is the normative description of
//! the wire format; `proto/golden/` holds encoded examples that the tests
//! decode and re-encode.

pub mod codec;
pub mod events;
pub mod ids;
pub mod journal;
pub mod limits;
pub mod messages;
pub mod ready;
pub mod spec;
mod tagged;

pub use codec::{
    decode, encode, encode_compact, encode_compact_into, peek_handshake, DecodeError, Handshake,
};
pub use events::{Event, EventRecord};
pub use ids::{ManagerId, TaskId};
pub use journal::{
    JournalRecord, QueuedTask, QueuedTaskRef, RecordRef, JOURNAL_MAGIC, JOURNAL_VERSION,
};
pub use limits::{LimitError, NodeNameError};
pub use messages::*;
pub use ready::{ReadyLine, ReadyLineError};
pub use spec::{validate, ResourceRequest, SpecError, SpecValue, TaskResources};

/// Version of the wire protocol. Peers with a different version are refused
/// at the handshake (`hello` for clients, `register` for managers), with a
/// message that names both versions.
pub const PROTOCOL_VERSION: u32 = 4;

/// The name of the default client identity (`client.key` in a key
/// directory): an admin on every interchange.
pub const DEFAULT_CLIENT_IDENTITY: &str = "default";

/// How an `error` message's text starts when the interchange refused a
/// request because the client identity may not make it (PROTOCOL.md
/// section 5.1, "Who may do what").
pub const DENIED_PREFIX: &str = "denied:";

/// Version of the rhtex software, carried in handshakes for diagnostics.
pub const RHTEX_VERSION: &str = env!("CARGO_PKG_VERSION");
