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

/// The routing id of a peer, as the ROUTER socket gives it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub Vec<u8>);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
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
