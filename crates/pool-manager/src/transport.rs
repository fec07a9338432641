//! The DEALER link to the interchange: the only module of this crate that
//! touches ZeroMQ (through `transport::Link`).
//!
//! Frames are encoded and decoded here with `protocol::encode/decode`; an
//! undecodable frame is logged (warn) and counted, never fatal.

use crate::config::Security;
use protocol::{FromManager, ManagerId, ToManager};
use tokio::sync::mpsc;
use transport::{ClientSecurity, KeyError, LinkEvent, LinkSender, TransportError};

/// The link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// What arrived on the link, decoded.
#[derive(Debug)]
pub enum Incoming {
    Message(ToManager),
    /// A frame that did not decode (already logged).
    Undecodable,
    Connected,
    Disconnected,
    HandshakeFailed(String),
    Failed(String),
}

/// The link to the interchange.
#[derive(Debug)]
pub struct InterchangeLink {
    sender: LinkSender,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    n_undecodable: u64,
}

/// Checks CURVE support and loads the keys (`Security::Curve`), or returns
/// the insecure setting.
pub fn client_security(security: &Security) -> Result<ClientSecurity, LinkError> {
    match security {
        Security::Insecure => Ok(ClientSecurity::Insecure),
        Security::Curve { keys_dir } => {
            transport::sockets::check_curve()?;
            Ok(ClientSecurity::Curve(transport::keys::load_client_keys(
                keys_dir,
            )?))
        }
    }
}

/// The libzmq version, for the registration's `versions`.
pub fn libzmq_version() -> String {
    transport::sockets::libzmq_version()
}

impl InterchangeLink {
    /// Connects to `url`; the routing id is the manager id.
    pub fn connect(
        url: &str,
        security: &ClientSecurity,
        manager_id: ManagerId,
    ) -> Result<Self, LinkError> {
        let identity = manager_id.to_string();
        let (sender, events) = transport::Link::start(url, security, Some(identity.as_bytes()))?;
        Ok(Self {
            sender,
            events,
            n_undecodable: 0,
        })
    }

    /// Queues a message for the interchange.
    pub fn send(&self, message: &FromManager) -> Result<(), TransportError> {
        tracing::trace!(?message, "to the interchange");
        self.sender.send(&protocol::encode(message))
    }

    /// The next event; `None` once the link thread is gone.
    pub async fn recv(&mut self) -> Option<Incoming> {
        let event = self.events.recv().await?;
        Some(match event {
            LinkEvent::Message(frame) => match protocol::decode::<ToManager>(&frame) {
                Ok(message) => {
                    tracing::trace!(?message, "from the interchange");
                    Incoming::Message(message)
                }
                Err(error) => {
                    self.n_undecodable += 1;
                    tracing::warn!(%error, n_undecodable = self.n_undecodable, "undecodable frame from the interchange; ignored");
                    Incoming::Undecodable
                }
            },
            LinkEvent::Connected => Incoming::Connected,
            LinkEvent::Disconnected => Incoming::Disconnected,
            LinkEvent::HandshakeFailed(message) => Incoming::HandshakeFailed(message),
            LinkEvent::Failed(message) => Incoming::Failed(message),
        })
    }

    /// Closes the link, giving queued messages up to `flush_ms` to leave.
    pub async fn close(self, flush_ms: u32) {
        let sender = self.sender;
        let _ = tokio::task::spawn_blocking(move || sender.close(flush_ms)).await;
    }
}
