//! What crosses the seam between the core and its shell: the peers, the
//! frames that did not decode, and the outputs.
//!
//! The shell decodes every frame with `protocol`'s codec
//! ([`decode_client_frame`], [`decode_manager_frame`]) and hands the core
//! the message, or an [`Undecodable`] that keeps what the core needs to
//! answer it (the decode error, and the handshake fields every protocol
//! version agrees on, so that a peer of another version is refused by its
//! version).

use protocol::{DecodeError, FromClient, FromManager, Handshake, ToClient, ToManager};
use std::fmt;

/// Who a peer proved to be when it connected.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Identity {
    /// No authentication (`--insecure`): anyone who reaches the socket.
    /// Such a client is treated as an admin (there is nothing to check).
    Unauthenticated,
    /// The name of the CURVE identity whose key the peer proved it holds
    /// (the ZAP user id: `default` or NAME for a client identity,
    /// `manager` for the manager identity). The shell admits client keys
    /// only on the client socket and manager keys only on the manager
    /// socket, so a name is always of the socket's role.
    Key(String),
}

impl Identity {
    /// As the journal records an owner (`None`: unauthenticated).
    pub fn to_record(&self) -> Option<String> {
        match self {
            Identity::Unauthenticated => None,
            Identity::Key(name) => Some(name.clone()),
        }
    }

    /// [`Identity::to_record`], borrowed.
    pub fn as_record(&self) -> Option<&str> {
        match self {
            Identity::Unauthenticated => None,
            Identity::Key(name) => Some(name),
        }
    }

    /// An owner as the journal recorded it.
    pub fn from_record(owner: Option<String>) -> Self {
        owner.map_or(Identity::Unauthenticated, Identity::Key)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Unauthenticated => f.write_str("(unauthenticated)"),
            Identity::Key(name) => f.write_str(name),
        }
    }
}

/// A peer: the routing id the ROUTER socket gives its connection, and the
/// identity it authenticated as. Both are part of its equality, so that
/// messages are only ever taken as coming from the identity that sent
/// them: a connection that reuses a routing id under another key is
/// another peer (a manager's messages are checked against the key that
/// registered it this way).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId {
    pub routing_id: Vec<u8>,
    pub identity: Identity,
}

impl PeerId {
    pub fn new(routing_id: Vec<u8>, identity: Identity) -> Self {
        Self {
            routing_id,
            identity,
        }
    }

    /// A peer of an interchange without authentication (`--insecure`).
    pub fn unauthenticated(routing_id: Vec<u8>) -> Self {
        Self::new(routing_id, Identity::Unauthenticated)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.routing_id {
            write!(f, "{byte:02x}")?;
        }
        if let Identity::Key(name) = &self.identity {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

/// Which socket a frame came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    Client,
    Manager,
}

/// A frame that is not a message of the expected kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub error: DecodeError,
    /// The frame's `type` and `protocol_version`, when it has them.
    pub handshake: Option<Handshake>,
}

impl Undecodable {
    /// What the core needs to know of `frame`, which failed with `error`.
    pub fn new(frame: &[u8], error: DecodeError) -> Self {
        Self {
            error,
            handshake: protocol::peek_handshake(frame),
        }
    }
}

/// Decodes a frame from the client socket.
pub fn decode_client_frame(frame: &[u8]) -> Result<FromClient, Undecodable> {
    protocol::decode(frame).map_err(|error| Undecodable::new(frame, error))
}

/// Decodes a frame from the manager socket.
pub fn decode_manager_frame(frame: &[u8]) -> Result<FromManager, Undecodable> {
    protocol::decode(frame).map_err(|error| Undecodable::new(frame, error))
}

/// Something the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a message on the client socket.
    ToClient(PeerId, ToClient),
    /// Send a message on the manager socket.
    ToManager(PeerId, ToManager),
    /// Shutdown is complete: send what came before, then exit. Comes once,
    /// last.
    Exit,
}
