//! The client's link to the interchange: the only module of this crate that
//! touches ZeroMQ (through [`transport::Link`]).
//!
//! A [`Connection`] is a DEALER on its own thread; frames are encoded and
//! decoded here with `protocol::encode`/`decode`, so the rest of the crate
//! only sees [`FromClient`] and [`Incoming`].

use crate::error::ClientError;
use protocol::{FromClient, ToClient};
use std::path::Path;
use tokio::sync::mpsc;
use transport::{ClientSecurity, LinkEvent, LinkSender};

/// How to secure the connection.
#[derive(Clone, Debug)]
pub enum Security {
    /// CURVE with the keys of this directory (the default).
    Curve(transport::ClientKeys),
    /// No encryption (`--insecure`).
    Insecure,
}

impl Security {
    /// Loads the client keys of a key directory.
    pub fn from_keys_dir(dir: &Path) -> Result<Self, ClientError> {
        Ok(Security::Curve(transport::keys::load_client_keys(dir)?))
    }

    fn to_transport(&self) -> ClientSecurity {
        match self {
            Security::Curve(keys) => ClientSecurity::Curve(keys.clone()),
            Security::Insecure => ClientSecurity::Insecure,
        }
    }
}

/// What arrives on a connection.
#[derive(Debug)]
pub enum Incoming {
    Message(ToClient),
    /// A frame that is not a `ToClient` message (logged and skipped by callers).
    Undecodable(String),
    Connected,
    Disconnected,
    /// The security handshake was refused; retrying will not help.
    HandshakeFailed(String),
    /// The link thread stopped.
    Failed(String),
}

/// A DEALER connected to the interchange's client socket.
#[derive(Debug)]
pub struct Connection {
    url: String,
    sender: LinkSender,
    events: mpsc::UnboundedReceiver<LinkEvent>,
}

impl Connection {
    /// Starts connecting to `url`; the connection completes in the background.
    pub fn open(url: &str, security: &Security) -> Result<Self, ClientError> {
        if matches!(security, Security::Curve(_)) {
            transport::sockets::check_curve().map_err(|source| ClientError::Transport {
                url: url.to_owned(),
                source,
            })?;
        }
        let (sender, events) = transport::Link::start(url, &security.to_transport(), None)
            .map_err(|source| ClientError::Transport {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            url: url.to_owned(),
            sender,
            events,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues one message for the interchange.
    pub fn send(&self, message: &FromClient) -> Result<(), ClientError> {
        tracing::trace!(url = %self.url, ?message, "send");
        self.sender
            .send(&protocol::encode(message))
            .map_err(|source| ClientError::Transport {
                url: self.url.clone(),
                source,
            })
    }

    /// The next event; `Failed` once the link thread is gone.
    pub async fn recv(&mut self) -> Incoming {
        match self.events.recv().await {
            Some(LinkEvent::Message(frame)) => match protocol::decode::<ToClient>(&frame) {
                Ok(message) => {
                    tracing::trace!(url = %self.url, ?message, "receive");
                    Incoming::Message(message)
                }
                Err(error) => Incoming::Undecodable(error.to_string()),
            },
            Some(LinkEvent::Connected) => Incoming::Connected,
            Some(LinkEvent::Disconnected) => Incoming::Disconnected,
            Some(LinkEvent::HandshakeFailed(reason)) => Incoming::HandshakeFailed(reason),
            Some(LinkEvent::Failed(reason)) => Incoming::Failed(reason),
            None => Incoming::Failed("the link thread stopped".to_owned()),
        }
    }

    /// Closes the link, giving queued messages `flush_ms` to leave.
    pub fn close(self, flush_ms: u32) {
        self.sender.close(flush_ms);
    }
}
